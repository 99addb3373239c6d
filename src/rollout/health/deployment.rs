//! Deployment (those applied in place, `kubemint.io/strategy: apply`): rolled out and available.

use serde_json::Value;

use super::{condition, count, current, failed, in_progress, int_at, spec_replicas, Judgement};

/// kstatus' rule: `ProgressDeadlineExceeded` fails; otherwise every replica
/// updated, available and ready, none pending termination, `Progressing` with
/// `NewReplicaSetAvailable` (unless no deadline is set) and `Available=True`.
pub(super) fn health(d: &Value) -> Judgement {
    let progressing = condition(d, "Progressing");
    if let Some(c) = progressing
        .as_ref()
        .filter(|c| c.reason == "ProgressDeadlineExceeded")
    {
        return failed(c.describe("Progressing"));
    }
    let spec = spec_replicas(d);
    let replicas = count(d, "replicas");
    let updated = count(d, "updatedReplicas");
    let ready = count(d, "readyReplicas");
    let available = count(d, "availableReplicas");
    if spec > replicas {
        return in_progress(format!("replicas: {replicas}/{spec}"));
    }
    if spec > updated {
        return in_progress(format!("updated: {updated}/{spec}"));
    }
    if replicas > spec {
        return in_progress(format!("pending termination: {}", replicas - spec));
    }
    if updated > available {
        return in_progress(format!("available: {available}/{updated}"));
    }
    if spec > ready {
        return in_progress(format!("ready: {ready}/{spec}"));
    }
    // Without a deadline the controller never reports `NewReplicaSetAvailable`.
    let no_deadline = int_at(d, &["spec", "progressDeadlineSeconds"]).is_none();
    let rolled_out = progressing
        .as_ref()
        .is_some_and(|c| c.status == "True" && c.reason == "NewReplicaSetAvailable");
    if !rolled_out && !no_deadline {
        return in_progress("new ReplicaSet not yet available");
    }
    if condition(d, "Available").is_none_or(|c| c.status != "True") {
        return in_progress("Deployment not available");
    }
    current(format!("{available} replicas available"))
}
