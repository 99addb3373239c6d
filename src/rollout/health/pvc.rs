//! PersistentVolumeClaim: bound.

use serde_json::Value;

use super::{current, failed, in_progress, str_at, Judgement};

/// kstatus' rule (`Bound` is current, anything else in progress), with `Lost`
/// (its volume is gone) failed.
pub(super) fn health(pvc: &Value) -> Judgement {
    match str_at(pvc, &["status", "phase"]) {
        Some("Bound") => current(match str_at(pvc, &["spec", "volumeName"]) {
            Some(v) => format!("bound to {v}"),
            None => "bound".to_string(),
        }),
        Some("Lost") => failed("lost its volume"),
        Some(phase) => in_progress(format!("not bound ({phase})")),
        None => in_progress("not bound"),
    }
}
