//! CustomResourceDefinition: established.

use serde_json::Value;

use super::{condition, current, failed, in_progress, Judgement};

/// kstatus' rule: `Established=True` is current; `NamesAccepted=False` (a name
/// another CRD holds) fails; anything else is in progress.
pub(super) fn health(crd: &Value) -> Judgement {
    if let Some(c) = condition(crd, "NamesAccepted").filter(|c| c.status == "False") {
        return failed(c.describe("NamesAccepted"));
    }
    match condition(crd, "Established") {
        Some(c) if c.status == "True" => current("established"),
        Some(c) => in_progress(c.describe("Established")),
        None => in_progress("not yet established"),
    }
}
