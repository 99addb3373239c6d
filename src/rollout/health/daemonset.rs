//! DaemonSet: a pod scheduled, updated, available and ready on every node it wants.

use serde_json::Value;

use super::{count, current, in_progress, int_at, str_at, Judgement};

/// kstatus' rule; with the `OnDelete` strategy the old pods stay until deleted by
/// hand, so the updated count is not waited for.
pub(super) fn health(ds: &Value) -> Judgement {
    let Some(desired) = int_at(ds, &["status", "desiredNumberScheduled"]) else {
        return in_progress("not yet observed by the DaemonSet controller");
    };
    let scheduled = count(ds, "currentNumberScheduled");
    let updated = count(ds, "updatedNumberScheduled");
    let available = count(ds, "numberAvailable");
    let ready = count(ds, "numberReady");
    let on_delete = str_at(ds, &["spec", "updateStrategy", "type"]) == Some("OnDelete");
    if desired > scheduled {
        return in_progress(format!("scheduled: {scheduled}/{desired}"));
    }
    if !on_delete && desired > updated {
        return in_progress(format!("updated: {updated}/{desired}"));
    }
    if desired > available {
        return in_progress(format!("available: {available}/{desired}"));
    }
    if desired > ready {
        return in_progress(format!("ready: {ready}/{desired}"));
    }
    current(format!("{ready}/{desired} scheduled pods ready"))
}
