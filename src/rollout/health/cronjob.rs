//! CronJob: nothing to wait for once applied and observed.

use serde_json::Value;

use super::{current, Judgement};

/// kstatus' rule: past the generic checks, a CronJob is current; its Jobs are
/// judged on their own when they run.
pub(super) fn health(_cronjob: &Value) -> Judgement {
    current("scheduled")
}
