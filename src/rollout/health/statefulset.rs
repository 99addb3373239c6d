//! StatefulSet: every replica ready, then updated as its update strategy asks.

use serde_json::Value;

use super::{count, current, in_progress, int_at, spec_replicas, str_at, Judgement};

/// kstatus' rule: `OnDelete` is rolled by the user, so current; otherwise all
/// replicas ready and none pending termination, then with a partition above 0
/// the replicas at or above it updated, and otherwise all replicas current and
/// `currentRevision == updateRevision`.
pub(super) fn health(sts: &Value) -> Judgement {
    if str_at(sts, &["spec", "updateStrategy", "type"]) == Some("OnDelete") {
        return current("update strategy OnDelete: pods are replaced by hand");
    }
    let spec = spec_replicas(sts);
    let replicas = count(sts, "replicas");
    let ready = count(sts, "readyReplicas");
    let updated = count(sts, "updatedReplicas");
    let current_replicas = count(sts, "currentReplicas");
    if spec > replicas {
        return in_progress(format!("replicas: {replicas}/{spec}"));
    }
    if spec > ready {
        return in_progress(format!("ready: {ready}/{spec}"));
    }
    if replicas > spec {
        return in_progress(format!("pending termination: {}", replicas - spec));
    }
    // The API server defaults `partition` to 0 (seen on the captured objects):
    // only a partition above 0 holds pods back; 0 waits for the full roll-out.
    let partition = int_at(
        sts,
        &["spec", "updateStrategy", "rollingUpdate", "partition"],
    );
    if let Some(partition) = partition.filter(|p| *p > 0) {
        let wanted = (spec - partition).max(0);
        if updated < wanted {
            return in_progress(format!(
                "updated: {updated}/{wanted} (partition {partition})"
            ));
        }
        return current(format!(
            "partitioned roll-out complete: {updated} updated (partition {partition})"
        ));
    }
    if spec > current_replicas {
        return in_progress(format!("current: {current_replicas}/{spec}"));
    }
    let current_revision = str_at(sts, &["status", "currentRevision"]).unwrap_or("");
    let update_revision = str_at(sts, &["status", "updateRevision"]).unwrap_or("");
    if current_revision != update_revision {
        return in_progress(format!(
            "waiting for revision {update_revision} (current {current_revision})"
        ));
    }
    current(format!(
        "{ready} replicas ready at revision {update_revision}"
    ))
}
