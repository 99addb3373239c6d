//! Namespace: active.

use serde_json::Value;

use super::{current, in_progress, str_at, Judgement};

/// `Active` is current; `Terminating` (or no phase yet) is in progress.
pub(super) fn health(ns: &Value) -> Judgement {
    match str_at(ns, &["status", "phase"]) {
        Some("Active") => current("active"),
        Some(phase) => in_progress(phase.to_string()),
        None => in_progress("no phase yet"),
    }
}
