//! Job: complete, or failed.

use serde_json::Value;

use super::{at, condition, count, current, failed, in_progress, Judgement};

/// kstatus' rule: `Complete=True` is current, `Failed=True` failed; also
/// `FailureTarget=True` (the controller has decided, pods are still stopping)
/// fails at once. A suspended Job is what its spec asks for: current.
pub(super) fn health(job: &Value) -> Judgement {
    let succeeded = count(job, "succeeded");
    let failures = count(job, "failed");
    let active = count(job, "active");
    if let Some(c) = condition(job, "Complete").filter(|c| c.status == "True") {
        return current(format!(
            "complete: {succeeded} succeeded{}",
            tail(&c.message)
        ));
    }
    for kind in ["Failed", "FailureTarget"] {
        if let Some(c) = condition(job, kind).filter(|c| c.status == "True") {
            return failed(format!("{}, {failures} failed pods", c.describe(kind)));
        }
    }
    if at(job, &["spec", "suspend"]).and_then(Value::as_bool) == Some(true) {
        return current("suspended");
    }
    if at(job, &["status", "startTime"]).is_none() {
        return in_progress("not started");
    }
    in_progress(format!(
        "running: {succeeded} succeeded, {active} active, {failures} failed"
    ))
}

fn tail(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(" ({message})")
    }
}
