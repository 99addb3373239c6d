//! Pod: ready while it runs, succeeded when it has finished.

use serde_json::Value;

use super::{condition, current, failed, in_progress, str_at, Judgement};

/// Waiting reasons of a container that do not clear by waiting.
const STUCK: [&str; 3] = ["CrashLoopBackOff", "ImagePullBackOff", "InvalidImageName"];

/// kstatus' rule, with an image that cannot be pulled failing like a crash loop.
/// An unschedulable pod stays in progress (kstatus fails it after a window, which
/// needs a clock; the release's timeout does that here).
pub(super) fn health(pod: &Value) -> Judgement {
    match str_at(pod, &["status", "phase"]).unwrap_or("") {
        "Succeeded" => current("completed"),
        "Failed" => failed(match str_at(pod, &["status", "reason"]) {
            Some(r) => format!("failed ({r})"),
            None => "failed".to_string(),
        }),
        "Running" => {
            if condition(pod, "Ready").is_some_and(|c| c.status == "True") {
                return current("running and ready");
            }
            if let Some(stuck) = stuck_containers(pod) {
                return failed(stuck);
            }
            in_progress("running, not ready")
        }
        "Pending" => {
            if let Some(stuck) = stuck_containers(pod) {
                return failed(stuck);
            }
            match condition(pod, "PodScheduled").filter(|c| c.status == "False") {
                Some(c) => in_progress(c.describe("PodScheduled")),
                None => in_progress("pending"),
            }
        }
        _ => in_progress("no phase yet"),
    }
}

/// `container web: CrashLoopBackOff, ...` for the containers waiting for a reason in [`STUCK`].
fn stuck_containers(pod: &Value) -> Option<String> {
    let mut stuck = Vec::new();
    for list in ["initContainerStatuses", "containerStatuses"] {
        let statuses = pod
            .pointer(&format!("/status/{list}"))
            .and_then(Value::as_array);
        for s in statuses.into_iter().flatten() {
            let reason = str_at(s, &["state", "waiting", "reason"]).unwrap_or("");
            if STUCK.contains(&reason) {
                let name = str_at(s, &["name"]).unwrap_or("?");
                stuck.push(format!("container {name}: {reason}"));
            }
        }
    }
    (!stuck.is_empty()).then(|| stuck.join(", "))
}
