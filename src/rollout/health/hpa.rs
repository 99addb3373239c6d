//! HorizontalPodAutoscaler: able to scale, and scaling on its metrics.

use std::borrow::Cow;

use serde_json::Value;

use super::{condition, current, failed, in_progress, str_at, Judgement};

/// Where `autoscaling/v1` carries the conditions that v2 has in `status.conditions`.
const V1_CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";

/// Argo CD's rule, simplified (kstatus has none): `AbleToScale=False` (the target
/// cannot be read or scaled) fails; `ScalingActive=False` waits with its reason
/// (metrics often arrive after the pods), except `ScalingDisabled` (the target is
/// scaled to zero on purpose), which is current.
pub(super) fn health(hpa: &Value) -> Judgement {
    let hpa = with_v1_conditions(hpa);
    let Some(able) = condition(&hpa, "AbleToScale") else {
        return in_progress("not yet observed by the autoscaler");
    };
    if able.status == "False" {
        return failed(able.describe("AbleToScale"));
    }
    match condition(&hpa, "ScalingActive") {
        Some(c) if c.status == "False" && c.reason == "ScalingDisabled" => {
            current(c.describe("ScalingActive"))
        }
        Some(c) if c.status != "True" => in_progress(c.describe("ScalingActive")),
        Some(_) => current("scaling on its metrics"),
        None => in_progress("no ScalingActive condition yet"),
    }
}

/// The object as read, or, read as `autoscaling/v1` (no `status.conditions`), with
/// the conditions of its annotation moved to where v2 has them.
fn with_v1_conditions(hpa: &Value) -> Cow<'_, Value> {
    if hpa.pointer("/status/conditions").is_some() {
        return Cow::Borrowed(hpa);
    }
    let parsed = str_at(hpa, &["metadata", "annotations", V1_CONDITIONS_ANNOTATION])
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .filter(Value::is_array);
    match parsed {
        Some(conditions) => {
            let mut v2 = hpa.clone();
            v2["status"]["conditions"] = conditions;
            Cow::Owned(v2)
        }
        None => Cow::Borrowed(hpa),
    }
}
