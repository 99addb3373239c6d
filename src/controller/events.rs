//! The events of a pass: what it minted, promoted, drained, pruned and put
//! back, a release that failed, and a ref that moved or was rewritten.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::EventType;

use super::context::Context;
use super::status;
use crate::api::Channel;
use crate::engine::{Delivery, Fetched};
use crate::rollout::Phase;
use crate::source::short_sha;

/// One event to publish about a channel.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Told {
    /// Normal or Warning.
    pub type_: EventType,
    /// Its reason.
    pub reason: &'static str,
    /// Its note.
    pub note: String,
    /// The object it is about besides the channel: events of different
    /// releases must name different objects, or the recorder folds them.
    pub related: Option<ObjectReference>,
}

impl Told {
    fn normal(reason: &'static str, note: String) -> Self {
        Told {
            type_: EventType::Normal,
            reason,
            note,
            related: None,
        }
    }
}

/// Publishes the events of a delivery.
pub(super) async fn publish(ctx: &Context, channel: &Channel, delivery: &Delivery) {
    for told in of_delivery(channel, delivery) {
        ctx.publish_related(channel, told.type_, told.reason, told.note, told.related)
            .await;
    }
}

/// The events of a delivery, in order: a retry started, revisions minted,
/// the promotion (and the test that passed), drains, deletions, hand edits
/// put back, and a release that failed now.
pub(super) fn of_delivery(channel: &Channel, delivery: &Delivery) -> Vec<Told> {
    let (rendered, plan, done) = (&delivery.rendered, &delivery.plan, &delivery.changes);
    let release = &rendered.desired.id;
    let commit = &rendered.commit;
    let mut told = Vec::new();
    if plan.retrying {
        let note = format!("Retrying release {release} on request");
        told.push(Told::normal("Retrying", note));
    }
    let minted = done.minted();
    let created: Vec<&str> = rendered
        .summaries
        .iter()
        .filter(|(name, _)| minted.contains(&name.as_str()))
        .map(|(_, summary)| summary.as_str())
        .collect();
    if !created.is_empty() {
        let note = format!(
            "Minted {} for release {release} from commit {}: {}",
            created.join(", "),
            short_sha(&commit.sha),
            commit.subject
        );
        told.push(Told::normal("Minted", note));
    }
    if delivery.promoted_now {
        let (reason, note) = if rendered.desired.revisions.is_empty() {
            (
                "Applied",
                format!(
                    "Applied release {release} from commit {}: {}",
                    short_sha(&commit.sha),
                    commit.subject
                ),
            )
        } else {
            let names: Vec<&str> = rendered
                .desired
                .revisions
                .iter()
                .map(|r| r.name.as_str())
                .collect();
            (
                "Promoted",
                format!(
                    "Promoted release {release} from commit {}: Services now select {}",
                    short_sha(&commit.sha),
                    names.join(", ")
                ),
            )
        };
        let related = rendered
            .desired
            .revisions
            .first()
            .map(|r| reference("apps/v1", "ReplicaSet", Some(&r.namespace), &r.name));
        told.push(Told {
            related,
            ..Told::normal(reason, note)
        });
        // A passed test is told too, with its last log lines.
        if let Some(first) = rendered.desired.hooks.first() {
            let jobs: Vec<&str> = rendered
                .desired
                .hooks
                .iter()
                .map(|h| h.id.name.as_str())
                .collect();
            let logs = delivery
                .test
                .as_ref()
                .and_then(|t| t.logs.as_deref())
                .map(|l| format!("; last log lines:\n{l}"))
                .unwrap_or_default();
            let note = format!(
                "Pre-promotion test Job {} of release {release} passed{logs}",
                jobs.join(", ")
            );
            let job = reference(
                &first.api_version,
                "Job",
                first.id.namespace.as_deref(),
                &first.id.name,
            );
            told.push(Told {
                related: Some(job),
                ..Told::normal("TestPassed", note)
            });
        }
    }
    let drained = done.drained();
    if !drained.is_empty() {
        told.push(Told::normal(
            "Drained",
            format!("Scaled {} to zero", drained.join(", ")),
        ));
    }
    let deleted: Vec<String> = done
        .deleted()
        .map(|c| match c.reason {
            crate::cluster::changes::ChangeReason::Pruned => c.object.to_string(),
            _ => format!("{} {}", c.object.kind, c.object.name),
        })
        .collect();
    if !deleted.is_empty() {
        told.push(Told::normal(
            "Pruned",
            format!("Deleted {}", deleted.join(", ")),
        ));
    }
    for (object, manager) in done.corrected() {
        let note = format!("{object} was changed by {manager}; put back as declared");
        told.push(Told::normal("DriftCorrected", note));
    }
    if let Phase::Failed {
        now: true, hook, ..
    } = &plan.phase
    {
        let logs = delivery.test.as_ref().and_then(|t| t.logs.as_deref());
        let message = status::failure_message(release, &channel.spec.rollout, plan, logs);
        let desired = &rendered.desired;
        let related = match hook
            .as_ref()
            .and_then(|j| desired.hooks.iter().find(|h| &h.id.name == j))
        {
            Some(h) => Some(reference(
                &h.api_version,
                "Job",
                h.id.namespace.as_deref(),
                &h.id.name,
            )),
            None => desired
                .revisions
                .first()
                .map(|r| reference("apps/v1", "ReplicaSet", Some(&r.namespace), &r.name)),
        };
        told.push(Told {
            type_: EventType::Warning,
            reason: "ReleaseFailed",
            note: message,
            related,
        });
    }
    told
}

/// A reference to an object of the release, for an event's `related`.
fn reference(
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> ObjectReference {
    ObjectReference {
        api_version: Some(api_version.to_string()),
        kind: Some(kind.to_string()),
        namespace: namespace.map(str::to_string),
        name: Some(name.to_string()),
        ..Default::default()
    }
}

pub(super) async fn log_new_commit(channel: &Channel, ctx: &Context, fetched: &Fetched) {
    tracing::info!(
        channel = %channel.key(),
        reference = %fetched.reference,
        commit = %short_sha(&fetched.commit.sha),
        received_bytes = fetched.stats.received_bytes,
        signed_by = ?fetched.signers,
        "new commit fetched"
    );
    if let Some(old) = &fetched.rewritten_from {
        let note = format!(
            "{} was rewritten (force-push): {} is no longer an ancestor of {}; applying the new tip",
            fetched.reference,
            short_sha(old),
            short_sha(&fetched.commit.sha)
        );
        ctx.publish(channel, EventType::Warning, "HistoryRewritten", note)
            .await;
    }
}
