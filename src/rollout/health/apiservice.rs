//! APIService: available.

use serde_json::Value;

use super::{condition, current, in_progress, Judgement};

/// `Available=True` is current; otherwise in progress with the condition's reason
/// (a backing Service whose pods are still starting), which the timeout turns into
/// a failure that names it.
pub(super) fn health(api: &Value) -> Judgement {
    match condition(api, "Available") {
        Some(c) if c.status == "True" => current(c.describe("Available")),
        Some(c) => in_progress(c.describe("Available")),
        None => in_progress("no Available condition yet"),
    }
}
