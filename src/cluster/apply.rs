//! Server-side apply of one object at a time: dry runs, applies, taking
//! ownership back from another field manager, and waiting for CRDs.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use kube::runtime::wait::{await_condition, conditions};
use kube::Client;
use serde_json::{json, Value};

use super::{ClusterError, FIELD_MANAGER};

/// How long a CRD may take to be established.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

fn api(client: &Client, ar: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}

fn name_of(manifest: &Value) -> &str {
    manifest["metadata"]["name"].as_str().unwrap_or_default()
}

/// Server-side apply of `manifest` (forced: kubemint owns what it declares).
pub async fn apply_object(
    client: &Client,
    ar: &ApiResource,
    namespace: Option<&str>,
    manifest: &Value,
) -> Result<DynamicObject, kube::Error> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api(client, ar, namespace)
        .patch(name_of(manifest), &params, &Patch::Apply(manifest))
        .await
}

/// The same apply as a server-side dry run: what the API server would store.
pub(super) async fn dry_run_object(
    client: &Client,
    ar: &ApiResource,
    namespace: Option<&str>,
    manifest: &Value,
) -> Result<DynamicObject, kube::Error> {
    let params = PatchParams::apply(FIELD_MANAGER).force().dry_run();
    api(client, ar, namespace)
        .patch(name_of(manifest), &params, &Patch::Apply(manifest))
        .await
}

/// The object as it is now, if it exists.
pub(super) async fn live_object(
    client: &Client,
    ar: &ApiResource,
    namespace: Option<&str>,
    name: &str,
) -> Result<Option<DynamicObject>, kube::Error> {
    api(client, ar, namespace).get_opt(name).await
}

/// Whether a failed dry run only says that the object's namespace does not exist yet.
pub fn is_missing_namespace(err: &kube::Error) -> bool {
    // The API server names the missing object in the status's details.
    matches!(err, kube::Error::Api(s) if s.code == 404
        && s.details.as_ref().is_some_and(|d| d.kind == "namespaces"))
}

/// Hands the fields of `managers` to kubemint, so that the next apply removes
/// what they added. Server-side apply alone cannot undo a foreign list entry
/// that makes the merged object invalid (a Service port replaced by hand: the
/// merge has both ports, unnamed); after this the entry is kubemint's, and an
/// apply that does not declare it deletes it.
pub async fn take_ownership(
    client: &Client,
    ar: &ApiResource,
    namespace: Option<&str>,
    name: &str,
    managers: &[String],
) -> Result<bool, kube::Error> {
    let api = api(client, ar, namespace);
    let Some(live) = api.get_opt(name).await? else {
        return Ok(false);
    };
    let entries = live.metadata.managed_fields.clone().unwrap_or_default();
    let mut ours: Option<Value> = None;
    let mut rest = Vec::new();
    let mut taken = false;
    for entry in &entries {
        let manager = entry.manager.as_deref().unwrap_or_default();
        let fields = entry
            .fields_v1
            .as_ref()
            .map(|f| f.0.clone())
            .unwrap_or(json!({}));
        let is_ours = manager == FIELD_MANAGER && entry.operation.as_deref() == Some("Apply");
        let theirs = managers.iter().any(|m| m == manager)
            && entry.subresource.as_deref().unwrap_or_default().is_empty();
        if is_ours || theirs {
            taken |= theirs;
            ours = Some(match ours {
                Some(mut acc) => {
                    union(&mut acc, &fields);
                    acc
                }
                None => fields,
            });
        } else {
            rest.push(serde_json::to_value(entry).unwrap_or(Value::Null));
        }
    }
    if !taken {
        return Ok(false);
    }
    let mut owned = json!({
        "manager": FIELD_MANAGER,
        "operation": "Apply",
        "apiVersion": live.types.as_ref().map(|t| t.api_version.clone()).unwrap_or_else(|| ar.api_version.clone()),
        "fieldsType": "FieldsV1",
        "fieldsV1": ours.unwrap_or(json!({})),
    });
    if let Some(time) = entries
        .iter()
        .find(|e| e.manager.as_deref() == Some(FIELD_MANAGER))
        .and_then(|e| e.time.clone())
    {
        owned["time"] = serde_json::to_value(time).unwrap_or(Value::Null);
    }
    rest.insert(0, owned);
    let patch = json!({"metadata": {
        "managedFields": rest,
        "resourceVersion": live.metadata.resource_version,
    }});
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    api.patch(name, &params, &Patch::Merge(&patch)).await?;
    Ok(true)
}

/// Adds every field of `more` to the field set `acc` (`fieldsV1` trees).
fn union(acc: &mut Value, more: &Value) {
    let (Some(acc), Some(more)) = (acc.as_object_mut(), more.as_object()) else {
        return;
    };
    for (key, value) in more {
        match acc.get_mut(key) {
            Some(existing) => union(existing, value),
            None => {
                acc.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Waits until CRD `name` is established.
pub async fn wait_for_crd(client: &Client, name: &str) -> Result<(), ClusterError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let wait = await_condition(crds, name, conditions::is_crd_established());
    match tokio::time::timeout(ESTABLISH_TIMEOUT, wait).await {
        Ok(Ok(Some(_))) => Ok(()),
        _ => Err(ClusterError::NotEstablished {
            object: format!("apiextensions.k8s.io/CustomResourceDefinition/{name}"),
            seconds: ESTABLISH_TIMEOUT.as_secs(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_missing_namespace_is_a_missing_namespace() {
        let status = |code: u16, kind: &str, message: &str| {
            kube::Error::Api(Box::new(
                serde_json::from_value(json!({
                    "status": "Failure", "code": code, "reason": "NotFound", "message": message,
                    "details": {"name": "x", "kind": kind}
                }))
                .unwrap(),
            ))
        };
        let rows = [
            (
                "the namespace",
                status(404, "namespaces", "namespaces \"x\" not found"),
                true,
            ),
            (
                "the object itself, named like one",
                status(404, "configmaps", "configmaps \"namespace\" not found"),
                false,
            ),
            (
                "another code",
                status(409, "namespaces", "namespace x is terminating"),
                false,
            ),
        ];
        for (name, err, want) in rows {
            assert_eq!(is_missing_namespace(&err), want, "{name}");
        }
    }

    #[test]
    fn field_sets_are_united_recursively() {
        let mut acc = json!({"f:spec": {"f:ports": {"k:{\"port\":80}": {".": {}}}}});
        union(
            &mut acc,
            &json!({"f:spec": {"f:ports": {"k:{\"port\":81}": {".": {}}}, "f:type": {}}}),
        );
        assert_eq!(
            acc,
            json!({"f:spec": {"f:ports": {"k:{\"port\":80}": {".": {}}, "k:{\"port\":81}": {".": {}}}, "f:type": {}}})
        );
    }
}
