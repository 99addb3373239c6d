//! kstatus-style conditions.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

#[cfg(test)]
use super::crd::WorkloadRevision;
use super::crd::{ReleasePhase, ReleaseRecord};

/// Condition type: the last applied commit is in the cluster as declared.
pub const READY: &str = "Ready";
/// Condition type: work is under way or being retried.
pub const RECONCILING: &str = "Reconciling";
/// Condition type: no progress is possible without a new commit or spec change.
pub const STALLED: &str = "Stalled";

/// The three values of a condition's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionStatus {
    /// `True`.
    True,
    /// `False`.
    False,
    /// `Unknown`: e.g. Ready while a rollout is in progress.
    Unknown,
}

impl ConditionStatus {
    fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

impl From<bool> for ConditionStatus {
    fn from(b: bool) -> Self {
        if b {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        }
    }
}

/// Sets a condition, keeping `lastTransitionTime` when its status did not change.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: impl Into<ConditionStatus>,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) {
    let status = status.into().as_str().to_string();
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

/// Most releases kept in `status.releases`.
pub const MAX_RELEASES: usize = 20;

/// The revisions serving now: those of the release marked Active, keyed by (namespace, workload).
pub fn active_revisions(releases: &[ReleaseRecord]) -> BTreeMap<(Option<String>, String), String> {
    releases
        .iter()
        .find(|r| r.phase == ReleasePhase::Active)
        .map(|r| {
            r.revisions
                .iter()
                .map(|w| {
                    (
                        (w.namespace.clone(), w.workload.clone()),
                        w.revision.clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Adds a release as the newest record, keeping at most [`MAX_RELEASES`] but
/// never dropping the active one (it names the revisions that serve traffic).
pub fn push_release(releases: &mut Vec<ReleaseRecord>, record: ReleaseRecord) {
    releases.insert(0, record);
    while releases.len() > MAX_RELEASES {
        let victim = releases
            .iter()
            .rposition(|r| r.phase != ReleasePhase::Active)
            .unwrap_or(releases.len() - 1);
        releases.remove(victim);
    }
}

/// Marks release `index` as promoted now; the previously active one is superseded.
pub fn mark_promoted(releases: &mut [ReleaseRecord], index: usize, now: &str) {
    for (i, r) in releases.iter_mut().enumerate() {
        if i == index {
            r.phase = ReleasePhase::Active;
            r.promoted_at = Some(now.to_string());
            r.message = None;
        } else if matches!(r.phase, ReleasePhase::Active | ReleasePhase::Progressing) {
            r.phase = ReleasePhase::Superseded;
        }
    }
}

#[cfg(test)]
mod release_tests {
    use super::*;

    fn record(id: &str, phase: ReleasePhase) -> ReleaseRecord {
        ReleaseRecord {
            id: id.into(),
            phase,
            revisions: vec![WorkloadRevision {
                namespace: Some("shop".into()),
                workload: "web".into(),
                revision: format!("h-{id}"),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn history_is_bounded_and_keeps_the_active_release() {
        let mut releases = vec![record("active", ReleasePhase::Active)];
        for i in 0..30 {
            push_release(
                &mut releases,
                record(&format!("r{i}"), ReleasePhase::Superseded),
            );
        }
        assert_eq!(releases.len(), MAX_RELEASES);
        assert_eq!(releases[0].id, "r29");
        assert!(releases.iter().any(|r| r.id == "active"));
        assert_eq!(
            active_revisions(&releases)[&(Some("shop".to_string()), "web".to_string())],
            "h-active"
        );
    }

    #[test]
    fn promotion_supersedes_the_previous_release() {
        let mut releases = vec![
            record("new", ReleasePhase::Progressing),
            record("old", ReleasePhase::Active),
            record("failed", ReleasePhase::Failed),
        ];
        mark_promoted(&mut releases, 0, "2026-11-22T00:00:00Z");
        let phases: Vec<ReleasePhase> = releases.iter().map(|r| r.phase).collect();
        assert_eq!(
            phases,
            [
                ReleasePhase::Active,
                ReleasePhase::Superseded,
                ReleasePhase::Failed
            ]
        );
        assert_eq!(
            releases[0].promoted_at.as_deref(),
            Some("2026-11-22T00:00:00Z")
        );
    }
}
