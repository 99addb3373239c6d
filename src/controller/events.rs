//! The events of a pass: what it minted, promoted, drained, pruned and put
//! back, a release that failed, and a ref that moved or was rewritten.

use kube::runtime::events::EventType;

use super::context::Context;
use super::status;
use crate::api::Channel;
use crate::engine::{Executed, Fetched, Rendered};
use crate::rollout::{Phase, Plan};
use crate::source::short_sha;

/// The event of a failed release retried on request, before the retry starts.
pub(super) async fn retrying(ctx: &Context, channel: &Channel, rendered: &Rendered, plan: &Plan) {
    if plan.retrying {
        let note = format!("Retrying release {} on request", rendered.desired.id);
        ctx.publish(channel, EventType::Normal, "Retrying", note)
            .await;
    }
}

/// Events for what the pass did.
pub(super) async fn publish(
    ctx: &Context,
    channel: &Channel,
    rendered: &Rendered,
    plan: &Plan,
    done: &Executed,
    logs: Option<&str>,
) {
    let release = &rendered.desired.id;
    let commit = &rendered.commit;
    let created: Vec<&String> = rendered
        .summaries
        .iter()
        .filter(|s| {
            let name = s.split(' ').next().unwrap_or_default();
            done.minted.iter().any(|m| m == name)
        })
        .collect();
    if !created.is_empty() {
        let names: Vec<&str> = created.iter().map(|s| s.as_str()).collect();
        let note = format!(
            "Minted {} for release {release} from commit {}: {}",
            names.join(", "),
            short_sha(&commit.sha),
            commit.subject
        );
        ctx.publish(channel, EventType::Normal, "Minted", note)
            .await;
    }
    let promoted_now = promoted_now(channel, rendered, plan, done);
    if promoted_now {
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
        ctx.publish_related(channel, EventType::Normal, reason, note, related)
            .await;
        // A passed test is told too, with its last log lines (the UI shows them).
        // (The logs are the first Job's, as report.rs reads them.)
        let jobs: Vec<&str> = rendered
            .desired
            .hooks
            .iter()
            .map(|h| h.id.name.as_str())
            .collect();
        if let Some(first) = rendered.desired.hooks.first() {
            let logs = logs
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
            ctx.publish_related(channel, EventType::Normal, "TestPassed", note, Some(job))
                .await;
        }
    }
    if !done.drained.is_empty() {
        let note = format!("Scaled {} to zero", done.drained.join(", "));
        ctx.publish(channel, EventType::Normal, "Drained", note)
            .await;
    }
    if !done.deleted.is_empty() {
        let note = format!("Deleted {}", done.deleted.join(", "));
        ctx.publish(channel, EventType::Normal, "Pruned", note)
            .await;
        ctx.metrics.pruned_objects.inc_by(done.deleted.len() as u64);
    }
    for (object, manager) in &done.corrected {
        let note = format!("{object} was changed by {manager}; put back as declared");
        ctx.publish(channel, EventType::Normal, "DriftCorrected", note)
            .await;
    }
    if let Phase::Failed {
        now: true, hook, ..
    } = &plan.phase
    {
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
        ctx.publish_related(
            channel,
            EventType::Warning,
            "ReleaseFailed",
            message,
            related,
        )
        .await;
    }
}

/// A reference to an object of the release, for an event's `related`.
fn reference(
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> k8s_openapi::api::core::v1::ObjectReference {
    k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some(api_version.to_string()),
        kind: Some(kind.to_string()),
        namespace: namespace.map(str::to_string),
        name: Some(name.to_string()),
        ..Default::default()
    }
}

/// Whether the pass promoted the release (or applied one without workloads)
/// that was not serving before it.
pub(super) fn promoted_now(
    channel: &Channel,
    rendered: &Rendered,
    plan: &Plan,
    done: &Executed,
) -> bool {
    // A commit that renders to the release already serving (one that changed
    // nothing the channel reads) promotes nothing: no event.
    let was_active = channel
        .status
        .as_ref()
        .and_then(|s| s.active_release.as_deref())
        == Some(rendered.desired.id.as_str());
    let promoted = matches!(plan.phase, Phase::Active | Phase::Draining);
    !done.switched.is_empty() || (promoted && !was_active)
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
