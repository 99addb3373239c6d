//! The report of a pass that delivered: its events, the status written from
//! its outcome, and the audit trail (an automatic revert, deployment notes).

use std::sync::Arc;

use kube::runtime::events::EventType;

use super::audit;
use super::context::Context;
use super::reconcile::write_status;
use super::{events, status, Error};
use crate::api::{Channel, ChannelStatus};
use crate::engine::{source, Delivery};
use crate::rollout::Phase;

/// Publishes the pass's events and, unless the ref's head was rejected (the
/// status keeps saying so), writes its status and audit trail.
pub(super) async fn report(
    ctx: &Arc<Context>,
    channel: &Channel,
    delivery: &Delivery,
) -> Result<(), Error> {
    events::publish(ctx, channel, delivery).await;
    if delivery.head_rejected {
        return Ok(());
    }
    let mut status = status::report(channel, delivery);
    audit_pass(ctx, channel, delivery, &mut status).await;
    super::forge::report_delivery(ctx, channel, delivery, &status);
    write_status(ctx, channel, &status).await
}

/// The audit trail of a pass: the automatic revert of a release that failed
/// now (awaited: the status reports it), then the deployment notes (in the
/// background: a note never holds up or fails a pass).
async fn audit_pass(
    ctx: &Arc<Context>,
    channel: &Channel,
    delivery: &Delivery,
    status: &mut ChannelStatus,
) {
    let (rendered, plan, now) = (&delivery.rendered, &delivery.plan, delivery.now);
    let release = &rendered.desired.id;
    let key = channel.key();
    let revert_key = format!("Revert/{release}/{}", rendered.commit.sha);
    let revert = audit::should_revert(
        channel,
        &plan.phase,
        channel.status.as_ref(),
        release,
        &rendered.commit.sha,
        now,
    ) && ctx.memo(&key, |m| !m.audited.contains(&revert_key));
    let notes_on = channel.spec.audit.git_notes;
    if !revert && !notes_on {
        return;
    }
    let now = now.to_string();
    let drained: Vec<String> = delivery
        .changes
        .drained()
        .into_iter()
        .map(str::to_string)
        .collect();
    let facts = |status: &ChannelStatus, revert_commit: Option<&str>| {
        audit::notes_of_pass(&audit::PassFacts {
            cluster: &ctx.cluster_name,
            channel: &channel.key(),
            before: channel.status.as_ref(),
            after: status,
            release,
            commit: &rendered.commit.sha,
            revisions: &rendered.desired.revisions,
            phase: &plan.phase,
            drained: &drained,
            now: &now,
            revert_commit,
        })
    };
    if !revert && facts(status, None).is_empty() {
        return; // nothing to write: no Secret read either
    }
    let credentials = match source::credentials(ctx.engine.client(), channel).await {
        Ok(c) => c,
        Err(e) => {
            let note = format!(
                "deployment notes and automatic reverts need the channel's git credentials: {e}"
            );
            ctx.publish(channel, EventType::Warning, "NotesPushFailed", note)
                .await;
            ctx.metrics.count_note(e.reason());
            return;
        }
    };
    let mut revert_commit = None;
    if revert {
        let (pending, hook) = match &plan.phase {
            Phase::Failed { pending, hook, .. } => (pending.clone(), hook.clone()),
            _ => (Vec::new(), None),
        };
        let keys = audit::RevertKeys {
            credentials: credentials.clone(),
            signing_key: audit::revert_signing_key(&ctx.client, channel).await,
        };
        let outcome = audit::auto_revert(
            channel,
            status,
            keys,
            release,
            &rendered.commit.sha,
            &pending,
            hook.as_deref(),
        )
        .await;
        if outcome.outcome != crate::api::RevertOutcome::Retrying {
            ctx.memo(&key, |m| m.audit_once(revert_key.clone()));
        }
        let (type_, reason, note) = audit::auto_revert_event(&outcome);
        tracing::info!(channel = %channel.key(), release = %release, outcome = %outcome.outcome, message = %outcome.message, "automatic revert");
        ctx.publish(channel, type_, reason, note).await;
        revert_commit = outcome.revert_commit.clone();
        status.auto_revert = Some(outcome);
    }
    if notes_on {
        let notes: Vec<_> = facts(status, revert_commit.as_deref())
            .into_iter()
            .filter(|n| {
                let once = format!("{:?}/{}/{}", n.event, n.release, n.commit);
                ctx.memo(&key, |m| m.audit_once(once))
            })
            .collect();
        audit::spawn_notes(ctx, channel, credentials, notes);
    }
}
