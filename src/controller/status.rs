//! kstatus-style conditions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;

use crate::api::{
    Channel, ChannelStatus, Inventory, ReleasePhase, ReleaseRecord, WorkloadRevision,
    RECONCILE_ANNOTATION,
};
use crate::engine::Delivery;
use crate::rollout::{Phase, Plan};
use crate::source::short_sha;

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

/// The channel's status after a pass: a report of where the release stands,
/// written from the plan (which read the cluster), never read back as state.
/// `releases` is the history log: the record of this release is added or updated.
pub fn report(channel: &Channel, delivery: &Delivery) -> ChannelStatus {
    let (rendered, plan, retry) = (&delivery.rendered, &delivery.plan, &delivery.retry);
    let mut status = channel.status.clone().unwrap_or_default();
    let generation = channel.metadata.generation;
    let commit = &rendered.commit;
    let id = &rendered.desired.id;
    status.observed_generation = generation;
    status.last_attempted_commit = Some(commit.clone());
    status.last_handled_reconcile_at = channel.annotations().get(RECONCILE_ANNOTATION).cloned();
    status.inventory = Some(Inventory {
        entries: plan.inventory.clone(),
    });
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let found = status
        .releases
        .iter()
        .position(|r| &r.id == id && r.commit.sha == commit.sha);
    // A superseded release delivered again (a force-push back, a pin to an older
    // commit) is a new event in the history: it moves to the front.
    let found = match found {
        Some(i) if status.releases[i].phase == ReleasePhase::Superseded => {
            status.releases.remove(i);
            None
        }
        other => other,
    };
    let index = match found {
        Some(i) => i,
        None => {
            push_release(
                &mut status.releases,
                ReleaseRecord {
                    id: id.clone(),
                    commit: commit.clone(),
                    applied_at: Some(now.clone()),
                    promoted_at: None,
                    failed_at: None,
                    phase: ReleasePhase::Progressing,
                    message: None,
                    revisions: rendered
                        .desired
                        .revisions
                        .iter()
                        .map(|r| WorkloadRevision {
                            namespace: r.workload.0.clone(),
                            workload: r.workload.1.clone(),
                            revision: r.hash.clone(),
                        })
                        .collect(),
                    test: None,
                },
            );
            0
        }
    };
    if let Some(test) = &delivery.test {
        status.releases[index].test = Some(test.clone());
    }
    let c = &mut status.conditions;
    match &plan.phase {
        Phase::Progressing { pending } => {
            let waiting: Vec<String> = pending
                .iter()
                .map(|p| format!("{} {}/{}", p.workload, p.ready, p.wanted))
                .collect();
            let message = format!(
                "Release {id} progressing: waiting for ready pods: {}",
                waiting.join(", ")
            );
            let record = &mut status.releases[index];
            if record.phase == ReleasePhase::Failed {
                // Retried: its test runs again.
                record.phase = ReleasePhase::Progressing;
                record.message = None;
                record.test = None;
                record.failed_at = None;
                record.applied_at = Some(now);
            }
            set_condition(
                c,
                READY,
                ConditionStatus::Unknown,
                "Progressing",
                &message,
                generation,
            );
            set_condition(c, RECONCILING, true, "Progressing", &message, generation);
            remove_condition(c, STALLED);
        }
        Phase::Testing { job } => {
            let message = format!(
                "Release {id}: every new revision is ready; waiting for the pre-promotion test Job {job}"
            );
            set_condition(
                c,
                READY,
                ConditionStatus::Unknown,
                "Testing",
                &message,
                generation,
            );
            set_condition(c, RECONCILING, true, "Testing", &message, generation);
            remove_condition(c, STALLED);
        }
        Phase::Failed {
            now: failed_now, ..
        } => {
            let record = &mut status.releases[index];
            // The message of the failure itself is kept while held.
            let message = match (&record.message, failed_now) {
                (Some(kept), false) if record.phase == ReleasePhase::Failed => kept.clone(),
                _ => failure_message(id, &channel.spec.rollout, plan, None),
            };
            if record.phase != ReleasePhase::Failed {
                record.failed_at = Some(now.clone());
            }
            record.phase = ReleasePhase::Failed;
            record.message = Some(message.clone());
            status.last_handled_retry = Some(retry.to_string()).filter(|r| !r.is_empty());
            set_condition(c, READY, false, "ReleaseFailed", &message, generation);
            set_condition(c, STALLED, true, "ReleaseFailed", &message, generation);
            set_condition(
                c,
                RECONCILING,
                false,
                "ReleaseFailed",
                "waiting for a new commit or the kubemint.io/retry annotation",
                generation,
            );
        }
        Phase::Draining | Phase::Active => {
            if status.releases[index].phase != ReleasePhase::Active {
                // The time the revisions record, which the drain counts from.
                let promoted = plan.promoted_at.map_or(now, |t| t.to_string());
                mark_promoted(&mut status.releases, index, &promoted);
            }
            status.last_applied_commit = Some(commit.clone());
            status.active_release = Some(id.clone());
            let message = format!(
                "Release {id} is active (commit {}{})",
                short_sha(&commit.sha),
                commit
                    .reference
                    .as_deref()
                    .map(|r| format!(" from {r}"))
                    .unwrap_or_default()
            );
            set_condition(c, READY, true, "ReleaseActive", &message, generation);
            if plan.phase == Phase::Draining {
                set_condition(
                    c,
                    RECONCILING,
                    true,
                    "Draining",
                    "draining the previous revisions",
                    generation,
                );
            } else {
                set_condition(c, RECONCILING, false, "ReleaseActive", &message, generation);
            }
            remove_condition(c, STALLED);
        }
    }
    status
}

/// Why a release failed: each workload that was not ready, or the test Job
/// that failed (with `logs`, its last log lines, for an event).
pub fn failure_message(
    release: &str,
    rollout: &crate::api::RolloutSpec,
    plan: &Plan,
    logs: Option<&str>,
) -> String {
    let Phase::Failed { pending, hook, .. } = &plan.phase else {
        return String::new();
    };
    if let Some(job) = hook {
        // The status keeps the logs in the release's test record; an event
        // (read by people, with kubectl) carries them in its note.
        let logs = match logs {
            Some(l) => format!("; last log lines:\n{l}"),
            None => "; its last log lines are in the release's test record".to_string(),
        };
        return format!(
            "release {release} failed: the pre-promotion test Job {job} failed or did not finish within {}; traffic stays on the previous release{logs}",
            rollout.test_timeout
        );
    }
    let timeout = &rollout.ready_timeout;
    let detail: Vec<String> = pending
        .iter()
        .map(|(workload, ready)| format!("{workload} has {ready} pods ready"))
        .collect();
    format!(
        "release {release} failed: not ready within {timeout}: {}; traffic stays on the previous release",
        detail.join(", ")
    )
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
