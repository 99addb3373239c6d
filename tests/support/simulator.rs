//! What a test asks of the simulated node. kwok plays its kubelet
//! (`tests/cluster/up.sh`, stages in `tests/cluster/kwok/stages.yaml`) and
//! decides from each pod's annotations; the MutatingAdmissionPolicies of
//! `tests/cluster/kwok/policy.yaml` set those on new pods from the keys of the
//! ConfigMap `kubemint-sim/control`, which the functions here set and remove.
//! So the state lives in the cluster, and holds for pods not created yet.

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::{json, Value};
use std::time::Duration;

/// The simulated node's name.
pub const NODE_NAME: &str = "kubemint-sim-node";

/// With value `"true"` on a pod, kwok keeps it unready (phase Running,
/// Ready=False); removing it or setting `"false"` makes it ready.
pub const UNREADY_ANNOTATION: &str = "sim.kubemint.io/unready";

/// With value `"true"` on a Job's pod (its template), kwok lets it fail (exit code 1).
pub const FAIL_ANNOTATION: &str = "sim.kubemint.io/fail";

/// Where the control keys live (`tests/cluster/kwok/policy.yaml`).
const CONTROL_NAMESPACE: &str = "kubemint-sim";
const CONTROL_NAME: &str = "control";

/// Keeps pods labelled `kubemint.io/revision=<revision>` in `namespace`
/// unready from now on, including pods not created yet (pods that exist keep
/// their readiness). Returns once the API server annotates new pods so. An
/// explicit `UNREADY_ANNOTATION: "false"` on a pod overrides it.
pub async fn hold_revision(namespace: &str, revision: &str) {
    let client = super::cluster().client().await;
    let key = format!("unready.{namespace}.{revision}");
    set_control(&client, &key, true).await;
    let labels = json!({"kubemint.io/revision": revision});
    admitted_with(&client, namespace, labels, None, UNREADY_ANNOTATION, true).await;
}

/// Stops holding `revision` and marks its existing pods ready (through the
/// annotation, set to `"false"`).
pub async fn release_revision(client: &Client, namespace: &str, revision: &str) {
    let key = format!("unready.{namespace}.{revision}");
    set_control(client, &key, false).await;
    let labels = json!({"kubemint.io/revision": revision});
    // New pods first, so that none made meanwhile is left unready.
    admitted_with(client, namespace, labels, None, UNREADY_ANNOTATION, false).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = ListParams::default().labels(&format!("kubemint.io/revision={revision}"));
    let list = pods
        .list(&params)
        .await
        .unwrap_or_else(|e| panic!("listing pods of revision {revision} in {namespace}: {e}"));
    let patch = json!({"metadata": {"annotations": {UNREADY_ANNOTATION: "false"}}});
    for pod in list.items {
        let name = pod.metadata.name.unwrap_or_default();
        match pods
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            // Deleted meanwhile.
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => panic!("marking pod {namespace}/{name} ready: {e}"),
        }
    }
}

/// Makes Job pods created in `namespace` from now on fail with exit code 1
/// (`true`) or succeed (`false`); returns once the API server annotates new
/// pods so. An explicit `FAIL_ANNOTATION` on a pod overrides it.
pub async fn fail_jobs(namespace: &str, fail: bool) {
    let client = super::cluster().client().await;
    set_control(&client, &format!("fail-jobs.{namespace}"), fail).await;
    let owner = json!([{
        "apiVersion": "batch/v1", "kind": "Job", "name": "sim-probe",
        "uid": "00000000-0000-0000-0000-000000000000",
    }]);
    admitted_with(
        &client,
        namespace,
        json!({}),
        Some(owner),
        FAIL_ANNOTATION,
        fail,
    )
    .await;
}

/// Sets (`"true"`) or removes a key of the control ConfigMap. A merge patch
/// of one key: concurrent tests never overwrite each other's keys.
async fn set_control(client: &Client, key: &str, on: bool) {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), CONTROL_NAMESPACE);
    let value = if on { json!("true") } else { Value::Null };
    let patch = json!({"data": {key: value}});
    maps.patch(CONTROL_NAME, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_or_else(|e| {
            panic!("setting {key} in {CONTROL_NAMESPACE}/{CONTROL_NAME} (made by up.sh): {e}")
        });
}

/// Waits until a pod created in `namespace` with `labels` (and `owners`)
/// would carry `annotation: "true"` (`want`) or not: the admission policies
/// read the ConfigMap through an informer, a moment behind the write. Each
/// check is a dry-run create, which runs admission and stores nothing.
async fn admitted_with(
    client: &Client,
    namespace: &str,
    labels: Value,
    owners: Option<Value>,
    annotation: &str,
    want: bool,
) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut metadata = json!({"generateName": "sim-probe-", "labels": labels});
    if let Some(owners) = owners {
        metadata["ownerReferences"] = owners;
    }
    let pod: Pod = serde_json::from_value(json!({
        "metadata": metadata,
        "spec": {"containers": [{"name": "probe", "image": "probe"}]},
    }))
    .expect("probe pod");
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let (pods, pod, params) = (&pods, &pod, &params);
    super::eventually(
        Duration::from_secs(30),
        &format!("new pods in {namespace} annotated {annotation}={want}"),
        || async move {
            let admitted = pods.create(params, pod).await.map_err(|e| e.to_string())?;
            let value = admitted
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(annotation))
                .map(String::as_str);
            if (value == Some("true")) == want {
                Ok(())
            } else {
                Err(format!("a dry-run pod got {annotation}={value:?}"))
            }
        },
    )
    .await;
}
