//! One pass of one channel, the controller's side: the finalizer, the
//! engine's pass, and its report (status, events, metrics, audit); a failure
//! is written to the status and backs off or stalls as the pass decided.

use std::sync::Arc;

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::context::Context;
use super::status::{remove_condition, set_condition, READY, RECONCILING, STALLED};
use super::{events, report, Error};
use crate::api::{Channel, ChannelStatus, CommitInfo, FINALIZER, RECONCILE_ANNOTATION};
use crate::cluster::changes::ChangeAction;
use crate::engine::execute::failpoint;
use crate::engine::{trigger, PassResult};

/// Entry point for the controller runtime.
pub async fn reconcile(
    channel: Arc<Channel>,
    ctx: Arc<Context>,
) -> Result<Action, kube::runtime::finalizer::Error<Error>> {
    let ns = channel.namespace().unwrap_or_default();
    let api: Api<Channel> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&api, FINALIZER, channel, |event| async {
        match event {
            Finalizer::Apply(channel) => sync(&channel, &ctx).await,
            Finalizer::Cleanup(channel) => cleanup(&channel, &ctx).await,
        }
    })
    .await
}

/// Errors reach here only from the finalizer itself and the report's status
/// write; a pass handles its own.
pub fn error_policy(
    channel: Arc<Channel>,
    err: &kube::runtime::finalizer::Error<Error>,
    ctx: Arc<Context>,
) -> Action {
    let key = channel.key();
    let retry = ctx.engine.backoff_after_error(&key);
    tracing::warn!(channel = %key, error = %err, retry_in = ?retry, "reconcile failed");
    Action::requeue(retry)
}

/// One pass, and its report.
async fn sync(channel: &Channel, ctx: &Arc<Context>) -> Result<Action, Error> {
    let key = channel.key();
    let trigger = trigger::trigger(channel, ctx.requests.take(&key));
    let outcome = ctx.engine.pass(channel, &trigger).await;
    let requeue = outcome.requeue;
    ctx.metrics.record_pass(&outcome);
    if let Some(poll) = outcome.poll.as_ref().filter(|p| p.new_commit) {
        events::log_new_commit(channel, ctx, &poll.fetched).await;
    }
    match outcome.result {
        PassResult::Waited => {}
        PassResult::Suspended => {
            let mut status = channel.status.clone().unwrap_or_default();
            set_condition(
                &mut status.conditions,
                RECONCILING,
                false,
                "Suspended",
                "spec.suspend is true",
                channel.metadata.generation,
            );
            write_status(ctx, channel, &status).await?;
        }
        PassResult::Failed { error, commit } => {
            let error = Error::from(*error);
            record_failure(ctx, channel, &error, commit.as_ref()).await;
            if let (Some(retry), false) = (requeue, error.is_stalled()) {
                tracing::warn!(channel = %key, reason = error.reason(), error = %error, retry_in = ?retry, "pass failed; retrying");
            }
        }
        PassResult::Delivered(delivery) => report::report(ctx, channel, &delivery).await?,
    }
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

/// Writes a failure into status and events; objects in the cluster are left as they are.
async fn record_failure(
    ctx: &Context,
    channel: &Channel,
    err: &Error,
    commit: Option<&CommitInfo>,
) {
    let mut status = channel.status.clone().unwrap_or_default();
    let generation = channel.metadata.generation;
    let reason = err.reason();
    let message = err.to_string();
    set_condition(
        &mut status.conditions,
        READY,
        false,
        reason,
        &message,
        generation,
    );
    if err.is_stalled() {
        set_condition(
            &mut status.conditions,
            STALLED,
            true,
            reason,
            &message,
            generation,
        );
        set_condition(
            &mut status.conditions,
            RECONCILING,
            false,
            reason,
            "waiting for a new commit or spec change",
            generation,
        );
    } else {
        remove_condition(&mut status.conditions, STALLED);
        set_condition(
            &mut status.conditions,
            RECONCILING,
            true,
            "RetryingAfterError",
            &message,
            generation,
        );
    }
    status.observed_generation = generation;
    if let Some(commit) = commit {
        status.last_attempted_commit = Some(commit.clone());
    }
    status.last_handled_reconcile_at = channel.annotations().get(RECONCILE_ANNOTATION).cloned();
    let unchanged = channel.status.as_ref() == Some(&status);
    if let Err(e) = write_status(ctx, channel, &status).await {
        tracing::warn!(channel = %channel.key(), error = %e, "writing the failure to status failed");
    }
    if !unchanged {
        ctx.publish(channel, EventType::Warning, reason, message)
            .await;
    }
    tracing::warn!(channel = %channel.key(), reason, error = %err, "pass failed");
}

/// Writes `status` unless it equals what the channel already has.
pub async fn write_status(
    ctx: &Context,
    channel: &Channel,
    status: &ChannelStatus,
) -> Result<(), Error> {
    if channel.status.as_ref() == Some(status) {
        return Ok(()); // nothing new: no write, no watch event
    }
    let api: Api<Channel> =
        Api::namespaced(ctx.client.clone(), &channel.namespace().unwrap_or_default());
    api.patch_status(
        &channel.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .map_err(Error::Kube)?;
    failpoint("status");
    Ok(())
}

/// Deleting a channel: with `prune: true` everything it delivered goes, in
/// reverse apply order; a refusal is reported like any other.
async fn cleanup(channel: &Channel, ctx: &Context) -> Result<Action, Error> {
    if channel.spec.prune && !channel.spec.suspend {
        match ctx.engine.delete_channel(channel).await {
            Ok(deleted) => {
                ctx.metrics
                    .pruned_objects
                    .inc_by(deleted.pruned().count() as u64);
                let count = deleted.count(ChangeAction::Deleted);
                tracing::info!(channel = %channel.key(), deleted = count, "channel deleted; pruned its objects");
            }
            Err(e) => {
                let error = Error::from(e);
                record_failure(ctx, channel, &error, None).await;
                return Err(error);
            }
        }
    }
    ctx.let_go(&channel.key(), Some(channel));
    Ok(Action::await_change())
}
