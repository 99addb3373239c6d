//! HorizontalPodAutoscaler: able to scale, and scaling on its metrics.

use serde_json::Value;

use super::{condition, current, failed, in_progress, Judgement};

/// Argo CD's rule, simplified (kstatus has none): `AbleToScale=False` (the target
/// cannot be read or scaled) fails; `ScalingActive=False` waits with its reason
/// (metrics often arrive after the pods), except `ScalingDisabled` (the target is
/// scaled to zero on purpose), which is current.
pub(super) fn health(hpa: &Value) -> Judgement {
    let Some(able) = condition(hpa, "AbleToScale") else {
        return in_progress("not yet observed by the autoscaler");
    };
    if able.status == "False" {
        return failed(able.describe("AbleToScale"));
    }
    match condition(hpa, "ScalingActive") {
        Some(c) if c.status == "False" && c.reason == "ScalingDisabled" => {
            current(c.describe("ScalingActive"))
        }
        Some(c) if c.status != "True" => in_progress(c.describe("ScalingActive")),
        Some(_) => current("scaling on its metrics"),
        None => in_progress("no ScalingActive condition yet"),
    }
}
