//! The report of a pass that went through: the status written from the plan
//! and the live objects, with the logs of a failed test, and the audit trail
//! (an automatic revert, deployment notes).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, LogParams};
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};

use super::audit;
use super::context::Context;
use super::reconcile::write_status;
use super::{events, status, Error};
use crate::api::{Channel, ChannelStatus, ReleasePhase};
use crate::cluster;
use crate::engine::{source, Executed, Observation, Rendered};
use crate::rollout::{Phase, Plan};

/// Publishes the pass's events and, unless the ref's head was rejected (the
/// status keeps saying so), writes its status and audit trail.
pub(super) async fn report(
    ctx: &Arc<Context>,
    channel: &Channel,
    (rendered, seen): (&Rendered, &Observation),
    plan: &Plan,
    done: &Executed,
    head_rejected: bool,
) -> Result<(), Error> {
    // The test's logs go into the failure's report; also when the pass that
    // failed it could not write that report (it is rebuilt in full, once).
    let reported = channel.status.as_ref().is_some_and(|s| {
        s.releases.iter().any(|r| {
            r.id == rendered.desired.id
                && r.commit.sha == rendered.commit.sha
                && r.phase == ReleasePhase::Failed
                && r.message.is_some()
        })
    });
    let logs = match &plan.phase {
        Phase::Failed {
            now,
            hook: Some(job),
            ..
        } if *now || !reported => Some(hook_logs(&seen.access.client, job, rendered).await),
        // A test that passed: its logs go into the TestPassed event.
        _ if events::promoted_now(channel, rendered, plan, done) => {
            match rendered.desired.hooks.first() {
                Some(hook) => Some(hook_logs(&seen.access.client, &hook.id.name, rendered).await),
                None => None,
            }
        }
        _ => None,
    };
    events::publish(ctx, channel, rendered, plan, done, logs.as_deref()).await;
    if head_rejected {
        return Ok(());
    }
    let retry = &seen.settings.retry;
    let mut status = status::report(channel, rendered, plan, retry, logs.as_deref());
    audit_pass(ctx, channel, rendered, plan, done, seen.now, &mut status).await;
    write_status(ctx, channel, &status).await
}

/// The audit trail of a pass: the automatic revert of a release that failed
/// now (awaited: the status reports it), then the deployment notes (in the
/// background: a note never holds up or fails a pass).
async fn audit_pass(
    ctx: &Arc<Context>,
    channel: &Channel,
    rendered: &Rendered,
    plan: &Plan,
    done: &Executed,
    now: Timestamp,
    status: &mut ChannelStatus,
) {
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
    let drained: Vec<String> = done.drained.clone();
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

/// The last log lines of a test Job's newest pod, or why there are none.
async fn hook_logs(client: &kube::Client, job: &str, rendered: &Rendered) -> String {
    let namespace = rendered
        .desired
        .hooks
        .iter()
        .find(|h| h.id.name == job)
        .and_then(|h| h.id.namespace.clone())
        .unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let list = match pods
        .list(&ListParams::default().labels(&format!("job-name={job}")))
        .await
    {
        Ok(list) => list.items,
        Err(e) => return format!("(logs unavailable: {})", cluster::api_message(&e)),
    };
    let Some(pod) = list
        .iter()
        .max_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0))
    else {
        return "(no pod of the Job found)".to_string();
    };
    let params = LogParams {
        tail_lines: Some(10),
        ..LogParams::default()
    };
    match pods.logs(&pod.name_any(), &params).await {
        Ok(text) if !text.trim().is_empty() => text.trim_end().to_string(),
        Ok(_) => "(the pod logged nothing)".to_string(),
        Err(e) => format!("(logs unavailable: {})", cluster::api_message(&e)),
    }
}
