//! Writes to minted ReplicaSets and config copies that are not applies:
//! recording a promotion or a failure, scaling to zero, deleting.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::Client;
use serde_json::{json, Value};

use super::{ClusterError, FIELD_MANAGER};
use k8s_openapi::api::batch::v1::Job;

use crate::rollout::{
    DRAINED_ANNOTATION, FAILED_ANNOTATION, FAILED_HOOK_ANNOTATION, FAILED_READY_ANNOTATION,
    FAILED_RETRY_ANNOTATION, PROMOTED_ANNOTATION,
};

async fn patch_rs(
    client: &Client,
    namespace: &str,
    name: &str,
    patch: Value,
    action: &'static str,
) -> Result<(), ClusterError> {
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    match api.patch(name, &params, &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(source) => Err(ClusterError::Write {
            action,
            object: format!("apps/ReplicaSet/{namespace}/{name}"),
            source,
        }),
    }
}

/// Records on a revision that its Services switched to it now.
pub async fn mark_promoted(
    client: &Client,
    namespace: &str,
    name: &str,
    now: Timestamp,
) -> Result<(), ClusterError> {
    let patch = json!({"metadata": {"annotations": {
        PROMOTED_ANNOTATION: now.to_string(),
        FAILED_ANNOTATION: null, FAILED_RETRY_ANNOTATION: null, FAILED_READY_ANNOTATION: null,
        FAILED_HOOK_ANNOTATION: null,
    }}});
    patch_rs(client, namespace, name, patch, "recording the promotion of").await
}

/// Scales a revision to zero; `served` records when it stopped serving.
pub async fn scale_to_zero(
    client: &Client,
    namespace: &str,
    name: &str,
    served: bool,
    now: Timestamp,
) -> Result<(), ClusterError> {
    let mut patch = json!({"spec": {"replicas": 0}});
    if served {
        patch["metadata"] = json!({"annotations": {DRAINED_ANNOTATION: now.to_string()}});
    }
    patch_rs(client, namespace, name, patch, "scaling to zero").await
}

/// Scales a revision that failed the readiness gate to zero and records why.
pub async fn mark_failed(
    client: &Client,
    namespace: &str,
    name: &str,
    release: &str,
    retry: &str,
    ready: &str,
    hook: Option<&str>,
) -> Result<(), ClusterError> {
    let patch = json!({
        "metadata": {"annotations": {
            FAILED_ANNOTATION: release, FAILED_RETRY_ANNOTATION: retry, FAILED_READY_ANNOTATION: ready,
            FAILED_HOOK_ANNOTATION: hook,
        }},
        "spec": {"replicas": 0},
    });
    patch_rs(client, namespace, name, patch, "recording the failure of").await
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
        format!("apps/ReplicaSet/{namespace}/{name}"),
    )
}

/// Deletes a test Job and its pods.
pub async fn delete_job(client: &Client, namespace: &str, name: &str) -> Result<(), ClusterError> {
    let api: Api<Job> = Api::namespaced(client.clone(), namespace);
    ignore_missing(
        api.delete(name, &DeleteParams::background()).await,
        format!("batch/Job/{namespace}/{name}"),
    )
}

/// Deletes a config copy.
pub async fn delete_config_copy(
    client: &Client,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Result<(), ClusterError> {
    let object = format!("{kind}/{namespace}/{name}");
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
    ignore_missing(result, object)
}

fn ignore_missing<T>(result: Result<T, kube::Error>, object: String) -> Result<(), ClusterError> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(source) => Err(ClusterError::Write {
            action: "deleting",
            object,
            source,
        }),
    }
}
