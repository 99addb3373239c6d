//! kstatus-style conditions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition type: the last applied commit is in the cluster as declared.
pub const READY: &str = "Ready";
/// Condition type: work is under way or being retried.
pub const RECONCILING: &str = "Reconciling";
/// Condition type: no progress is possible without a new commit or spec change.
pub const STALLED: &str = "Stalled";

/// Sets a condition, keeping `lastTransitionTime` when its status did not change.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) {
    let status = if status { "True" } else { "False" }.to_string();
    let previous = conditions.iter().position(|c| c.type_ == type_);
    let last_transition_time = match previous.map(|i| &conditions[i]) {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Time(k8s_openapi::jiff::Timestamp::now()),
    };
    let condition = Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message: truncate(message, 4096),
        observed_generation: generation,
        last_transition_time,
    };
    match previous {
        Some(i) => conditions[i] = condition,
        None => conditions.push(condition),
    }
}

/// Removes a condition type (kstatus: abnormal-true conditions are absent when false).
pub fn remove_condition(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// Cuts a message to at most `max` bytes on a character boundary.
pub fn truncate(message: &str, max: usize) -> String {
    if message.len() <= max {
        return message.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &message[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_transition_time_when_status_is_unchanged() {
        let mut conds = Vec::new();
        set_condition(&mut conds, READY, false, "A", "first", Some(1));
        let t0 = conds[0].last_transition_time.clone();
        std::thread::sleep(std::time::Duration::from_millis(5));
        set_condition(&mut conds, READY, false, "B", "second", Some(2));
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0].last_transition_time, t0);
        assert_eq!(conds[0].reason, "B");
        set_condition(&mut conds, READY, true, "C", "third", Some(2));
        assert_ne!(conds[0].last_transition_time, t0);
        remove_condition(&mut conds, READY);
        assert!(conds.is_empty());
    }

    #[test]
    fn truncates_on_char_boundary() {
        assert_eq!(truncate("héllo", 100), "héllo");
        let t = truncate(&"é".repeat(100), 10);
        assert!(t.len() <= 10 && t.ends_with("..."));
    }
}
