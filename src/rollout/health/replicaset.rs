//! ReplicaSet: every replica labelled, available and ready.

use serde_json::Value;

use super::{condition, count, current, in_progress, spec_replicas, Judgement};

/// kstatus' rule. `ReplicaFailure=True` (a quota, a refused pod) is in progress
/// with its message: it clears when the cause does.
pub(super) fn health(rs: &Value) -> Judgement {
    if let Some(c) = condition(rs, "ReplicaFailure").filter(|c| c.status == "True") {
        return in_progress(c.describe("ReplicaFailure"));
    }
    let spec = spec_replicas(rs);
    let replicas = count(rs, "replicas");
    let labelled = count(rs, "fullyLabeledReplicas");
    let available = count(rs, "availableReplicas");
    let ready = count(rs, "readyReplicas");
    if spec > labelled {
        return in_progress(format!("labelled: {labelled}/{spec}"));
    }
    if spec > available {
        return in_progress(format!("available: {available}/{spec}"));
    }
    if spec > ready {
        return in_progress(format!("ready: {ready}/{spec}"));
    }
    if replicas > spec {
        return in_progress(format!("pending termination: {}", replicas - spec));
    }
    current(format!("{available} replicas available"))
}
