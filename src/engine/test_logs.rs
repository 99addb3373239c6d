//! The last log lines of a pre-promotion test Job, read as the channel's
//! identity, for the release's status and events.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, LogParams};
use kube::{Api, ResourceExt};

use crate::cluster;

/// How many lines of a test's log are kept.
const LINES: i64 = 10;

/// The last log lines of the newest pod of Job `job` in `namespace`, or why
/// there are none (in words: a report, never an error of the pass).
pub async fn last_log_lines(client: &kube::Client, namespace: &str, job: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = match pods
        .list(&ListParams::default().labels(&format!("job-name={job}")))
        .await
    {
        Ok(list) => list.items,
        Err(e) => return format!("(logs unavailable: {})", cluster::api_message(&e)),
    };
    let Some(pod) = list
        .iter()
        .max_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0))
    else {
        return "(no pod of the Job found)".to_string();
    };
    let params = LogParams {
        tail_lines: Some(LINES),
        ..LogParams::default()
    };
    match pods.logs(&pod.name_any(), &params).await {
        Ok(text) if !text.trim().is_empty() => text.trim_end().to_string(),
        Ok(_) => "(the pod logged nothing)".to_string(),
        Err(e) => format!("(logs unavailable: {})", cluster::api_message(&e)),
    }
}
