//! Any other object: the conventions of `observedGeneration` and conditions.

use serde_json::Value;

use super::{condition, current, generic, in_progress, int_at, Health, Judgement, Rule, Verdict};

/// The generic checks (deletion, `observedGeneration`, `Reconciling`, `Stalled`),
/// then `Ready`: `True` is current unless it speaks of an older generation, and
/// `False` or `Unknown` is in progress with its reason and message, so that the
/// release's timeout fails it naming them (a `Certificate` is `Ready=False` while
/// it is issued). An object with neither `observedGeneration` nor conditions is
/// current, not checked.
pub(super) fn health(object: &Value) -> Health {
    let has_conditions = object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| !c.is_empty());
    let has_generation = object.pointer("/status/observedGeneration").is_some();
    let judged = generic(object).or_else(|| ready(object));
    match judged {
        Some((verdict, reason)) => Health {
            verdict,
            reason,
            rule: Rule::Conventions,
        },
        None if has_conditions || has_generation => Health {
            verdict: Verdict::Current,
            reason: "generation observed, no Ready condition".into(),
            rule: Rule::Conventions,
        },
        None => Health {
            verdict: Verdict::Current,
            reason: "no rule for its kind and no conditions: not checked".into(),
            rule: Rule::NotChecked,
        },
    }
}

fn ready(object: &Value) -> Option<Judgement> {
    let c = condition(object, "Ready")?;
    if c.status != "True" {
        return Some(in_progress(c.describe("Ready")));
    }
    let generation = int_at(object, &["metadata", "generation"]);
    if let (Some(seen), Some(generation)) = (c.observed_generation, generation) {
        if seen < generation {
            return Some(in_progress(format!(
                "Ready=True is for generation {seen}, not {generation}"
            )));
        }
    }
    Some(current(c.describe("Ready")))
}
