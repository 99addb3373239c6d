//! The ReplicaSets and config copies a channel minted: listing, scaling, deleting.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::{api_message, ClusterError, FIELD_MANAGER};
use crate::rollout::{
    LiveRevision, CHANNEL_LABEL, CONFIG_COPY_LABEL, REVISION_LABEL, WORKLOAD_LABEL,
};

/// Annotation recording when a revision last served traffic (set when it is scaled down).
pub const LAST_ACTIVE_ANNOTATION: &str = "kubemint.io/last-active";

/// A live revision with the namespace it is in and the config it reads.
#[derive(Debug, Clone)]
pub struct ObservedRevision {
    /// Namespace of the ReplicaSet.
    pub namespace: String,
    /// What the decision logic needs.
    pub revision: LiveRevision,
    /// Names of the ConfigMaps and Secrets its pods reference.
    pub reads: Vec<String>,
}

/// Every ReplicaSet minted for `channel` (`<namespace>.<name>`), in all namespaces.
pub async fn list_revisions(
    client: &Client,
    channel: &str,
) -> Result<Vec<ObservedRevision>, ClusterError> {
    let api: Api<ReplicaSet> = Api::all(client.clone());
    let params =
        ListParams::default().labels(&format!("{CHANNEL_LABEL}={channel},{REVISION_LABEL}"));
    let list = api.list(&params).await.map_err(|e| ClusterError::Observe {
        what: format!("ReplicaSets of channel {channel}"),
        message: api_message(&e),
    })?;
    Ok(list.items.iter().filter_map(observe).collect())
}

fn observe(rs: &ReplicaSet) -> Option<ObservedRevision> {
    let labels = rs.labels();
    let namespace = rs.namespace()?;
    let workload = labels.get(WORKLOAD_LABEL)?.clone();
    let hash = labels.get(REVISION_LABEL)?.clone();
    let spec = rs.spec.as_ref()?;
    let status = rs.status.clone().unwrap_or_default();
    let last_active = rs
        .annotations()
        .get(LAST_ACTIVE_ANNOTATION)
        .and_then(|t| t.parse::<Timestamp>().ok())
        .or_else(|| rs.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(Timestamp::UNIX_EPOCH);
    let reads = spec
        .template
        .as_ref()
        .and_then(|t| t.spec.as_ref())
        .and_then(|pod| serde_json::to_value(pod).ok())
        .and_then(|pod| pod.as_object().map(crate::render::referenced_configs))
        .map(|refs| refs.into_iter().map(|(_, name)| name).collect())
        .unwrap_or_default();
    Some(ObservedRevision {
        namespace: namespace.clone(),
        reads,
        revision: LiveRevision {
            name: rs.name_any(),
            workload: (Some(namespace), workload),
            hash,
            replicas: spec.replicas.unwrap_or(1),
            available: status.available_replicas.unwrap_or(0),
            ready: status.ready_replicas.unwrap_or(0),
            observed: status.observed_generation.unwrap_or(0)
                >= rs.metadata.generation.unwrap_or(0),
            last_active,
        },
    })
}

/// Scales a revision to zero and records when it stopped serving.
pub async fn scale_down(
    client: &Client,
    namespace: &str,
    name: &str,
    now: Timestamp,
) -> Result<(), ClusterError> {
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
    let patch = json!({
        "metadata": {"annotations": {LAST_ACTIVE_ANNOTATION: now.to_string()}},
        "spec": {"replicas": 0},
    });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    api.patch(name, &params, &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| ClusterError::Apply {
            file: String::new(),
            object: format!("apps/ReplicaSet/{namespace}/{name}"),
            message: format!("scaling to zero: {}", api_message(&e)),
        })
}

/// Deletes a revision (its pods go with it).
pub async fn delete_revision(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<(), ClusterError> {
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
    ignore_missing(
        api.delete(name, &DeleteParams::background()).await,
        &format!("apps/ReplicaSet/{namespace}/{name}"),
    )
}

/// Config copies minted for `channel`: `(kind, namespace, name)`.
pub async fn list_config_copies(
    client: &Client,
    channel: &str,
) -> Result<Vec<(&'static str, String, String)>, ClusterError> {
    let params =
        ListParams::default().labels(&format!("{CHANNEL_LABEL}={channel},{CONFIG_COPY_LABEL}"));
    let observe_err = |e: kube::Error| ClusterError::Observe {
        what: format!("config copies of channel {channel}"),
        message: api_message(&e),
    };
    let mut out = Vec::new();
    for cm in Api::<ConfigMap>::all(client.clone())
        .list_metadata(&params)
        .await
        .map_err(observe_err)?
    {
        out.push((
            "ConfigMap",
            cm.namespace().unwrap_or_default(),
            cm.name_any(),
        ));
    }
    for s in Api::<Secret>::all(client.clone())
        .list_metadata(&params)
        .await
        .map_err(observe_err)?
    {
        out.push(("Secret", s.namespace().unwrap_or_default(), s.name_any()));
    }
    Ok(out)
}

/// Deletes a config copy.
pub async fn delete_config_copy(
    client: &Client,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Result<(), ClusterError> {
    let what = format!("{kind}/{namespace}/{name}");
    let params = DeleteParams::background();
    let result = match kind {
        "Secret" => Api::<Secret>::namespaced(client.clone(), namespace)
            .delete(name, &params)
            .await
            .map(|_| ()),
        _ => Api::<ConfigMap>::namespaced(client.clone(), namespace)
            .delete(name, &params)
            .await
            .map(|_| ()),
    };
    ignore_missing(result, &what)
}

fn ignore_missing<T>(result: Result<T, kube::Error>, what: &str) -> Result<(), ClusterError> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(ClusterError::Prune {
            object: what.to_string(),
            message: api_message(&e),
        }),
    }
}
