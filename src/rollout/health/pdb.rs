//! PodDisruptionBudget: the budget is met.

use serde_json::Value;

use super::{count, current, in_progress, Judgement};

/// kstatus' rule: current when `currentHealthy >= desiredHealthy`.
pub(super) fn health(pdb: &Value) -> Judgement {
    let healthy = count(pdb, "currentHealthy");
    let desired = count(pdb, "desiredHealthy");
    if pdb.pointer("/status/observedGeneration").is_none() {
        return in_progress("not yet observed by the disruption controller");
    }
    if desired > healthy {
        return in_progress(format!(
            "budget not met: {healthy} healthy, {desired} needed"
        ));
    }
    current(format!("budget met: {healthy} healthy, {desired} needed"))
}
