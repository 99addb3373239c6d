//! One pass of one channel: poll git when due, render a new commit once,
//! plan against the reflectors' view of the cluster, carry the plan out, and
//! write the status as a report of what the cluster shows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, LogParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::audit;
use super::context::{backoff, Context};
use super::execute::{failpoint, Executed, Executor};
use super::prepare::{prepare, Rendered};
use super::status::{self, remove_condition, set_condition, READY, RECONCILING, STALLED};
use super::{source, tenancy, Error};
use crate::api::{
    Channel, ChannelStatus, CommitInfo, ReleasePhase, APPROVE_PRUNE_ANNOTATION, FINALIZER,
    RECONCILE_ANNOTATION, RETRY_ANNOTATION,
};
use crate::cluster;
use crate::rollout::{self, prune_set, Phase, Plan};
use crate::source::{short_sha, CommitMeta};

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

/// Errors reach here only from the finalizer itself; a pass handles its own.
pub fn error_policy(
    channel: Arc<Channel>,
    err: &kube::runtime::finalizer::Error<Error>,
    ctx: Arc<Context>,
) -> Action {
    let key = key_of(&channel);
    let failures = ctx.memo(&key, |m| {
        m.failures += 1;
        m.failures
    });
    let retry = backoff(failures);
    tracing::warn!(channel = %key, error = %err, retry_in = ?retry, "reconcile failed");
    Action::requeue(retry)
}

fn key_of(channel: &Channel) -> String {
    format!(
        "{}/{}",
        channel.namespace().unwrap_or_default(),
        channel.name_any()
    )
}

/// What makes a pass fetch at once: a spec change or a reconcile or retry request.
fn trigger_of(channel: &Channel) -> String {
    let annotation = |name: &str| channel.annotations().get(name).cloned().unwrap_or_default();
    format!(
        "{}|{}|{}|{}",
        channel.metadata.generation.unwrap_or_default(),
        annotation(RECONCILE_ANNOTATION),
        annotation(RETRY_ANNOTATION),
        annotation(APPROVE_PRUNE_ANNOTATION)
    )
}

/// The spec's durations, parsed.
struct Timing {
    interval: Duration,
    drift: Duration,
    ready_timeout: Duration,
    test_timeout: Duration,
}

fn timing(channel: &Channel) -> Result<Timing, Error> {
    Ok(Timing {
        interval: parse_duration("spec.git.interval", &channel.spec.git.interval)?,
        drift: parse_duration("spec.driftInterval", &channel.spec.drift_interval)?,
        ready_timeout: parse_duration(
            "spec.rollout.readyTimeout",
            &channel.spec.rollout.ready_timeout,
        )?,
        test_timeout: parse_duration(
            "spec.rollout.testTimeout",
            &channel.spec.rollout.test_timeout,
        )?,
    })
}

async fn sync(channel: &Channel, ctx: &Arc<Context>) -> Result<Action, Error> {
    let key = key_of(channel);
    let policy = ctx.tenancy.policy();
    if let Some(refused) = tenancy::local_source_refusal(&channel.spec.git.url, policy) {
        // Refused before anything reads the path: no fetch, no watch of it.
        ctx.metrics.count("error", refused.reason());
        record_failure(ctx, channel, &refused, None).await;
        return Ok(Action::await_change());
    }
    watch_local_repository(channel, ctx);
    if channel.spec.suspend {
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
        return Ok(Action::await_change());
    }
    let timing = match timing(channel) {
        Ok(t) => t,
        Err(e) => {
            record_failure(ctx, channel, &e, None).await;
            return Ok(Action::await_change());
        }
    };
    let started = Instant::now();
    let result = pass(channel, ctx, &timing).await;
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    match result {
        Ok(after) => {
            ctx.memo(&key, |m| {
                m.failures = 0;
                m.retry_at = None;
            });
            Ok(Action::requeue(after))
        }
        Err((err, commit)) => {
            ctx.metrics.count("error", err.reason());
            record_failure(ctx, channel, &err, commit.as_ref()).await;
            if err.is_stalled() {
                // Only a new commit or spec change can help: poll for one at the interval.
                let trigger = trigger_of(channel);
                ctx.memo(&key, |m| {
                    m.failures = 0;
                    m.retry_at = None;
                    if let Some(c) = &commit {
                        m.rejected = Some((c.sha.clone(), trigger));
                    }
                });
                return Ok(Action::requeue(timing.interval));
            }
            let retry = ctx.memo(&key, |m| {
                m.failures += 1;
                let retry = backoff(m.failures);
                m.retry_at = Some(Instant::now() + retry);
                retry
            });
            tracing::warn!(channel = %key, reason = err.reason(), error = %err, retry_in = ?retry, "pass failed; retrying");
            Ok(Action::requeue(retry.min(timing.interval)))
        }
    }
}

type PassError = (Error, Option<CommitInfo>);

/// One pass; returns when to look again.
async fn pass(
    channel: &Channel,
    ctx: &Arc<Context>,
    timing: &Timing,
) -> Result<Duration, PassError> {
    let key = key_of(channel);
    let trigger = trigger_of(channel);
    let requested = ctx.requests.take(&key);
    let (polled_at, rendered, retry_at, same_trigger, rejected, head) = ctx.memo(&key, |m| {
        (
            m.polled_at,
            m.rendered.clone(),
            m.retry_at,
            m.trigger == trigger,
            m.rejected.clone(),
            m.head.clone(),
        )
    });
    let poll_due = requested
        || !same_trigger
        || rendered.is_none()
        || polled_at.is_none_or(|t| t.elapsed() >= timing.interval);
    let until_poll = |at: Option<Instant>| {
        timing
            .interval
            .saturating_sub(at.map_or(Duration::ZERO, |t| t.elapsed()))
    };
    let backing_off = retry_at.filter(|t| *t > Instant::now() && same_trigger && !requested);
    if !poll_due {
        if let Some(at) = backing_off {
            return Ok(at
                .saturating_duration_since(Instant::now())
                .min(until_poll(polled_at)));
        }
    }

    let rendered = if poll_due {
        let fetched = source::fetch(&ctx.git, &ctx.client, channel)
            .await
            .map_err(|e| (e, None))?;
        ctx.metrics.observe_fetch(&fetched.stats);
        ctx.memo(&key, |m| {
            m.polled_at = Some(Instant::now());
            m.trigger = trigger.clone();
        });
        // Nothing rendered yet (the first render failed): the head fetched last time counts.
        let moved = match &rendered {
            Some(r) => r.commit.sha != fetched.commit.sha,
            None => head.as_deref() != Some(fetched.commit.sha.as_str()),
        };
        if let Some(at) = backing_off {
            if !moved {
                // A transient failure is retried after its backoff; a new commit at once.
                return Ok(at.saturating_duration_since(Instant::now()));
            }
        }
        if head.as_deref() != Some(fetched.commit.sha.as_str()) {
            log_new_commit(channel, ctx, &fetched).await;
        }
        let info = CommitInfo {
            reference: Some(fetched.reference.clone()),
            ..commit_info(&fetched.commit)
        };
        ctx.memo(&key, |m| m.head = Some(fetched.commit.sha.clone()));
        let head_rejected =
            rejected.as_ref() == Some(&(fetched.commit.sha.clone(), trigger.clone()));
        match rendered {
            // Rejected for good already (the status says why): the previous
            // release stays as declared meanwhile.
            Some(r) if head_rejected => r,
            None if head_rejected => return Ok(timing.interval),
            Some(r) if !moved && same_trigger && !r.unresolved => r,
            _ => {
                let r = Arc::new(
                    render(ctx, channel, &fetched, info.clone())
                        .await
                        .map_err(|e| (e, Some(info.clone())))?,
                );
                ctx.memo(&key, |m| m.rendered = Some(r.clone()));
                r
            }
        }
    } else {
        rendered.expect("a pass without a poll has a rendered commit")
    };
    // The newest commit was rejected: the status keeps saying so.
    let head_rejected = ctx.memo(&key, |m| {
        m.head.is_some()
            && m.rejected.as_ref().map(|(sha, t)| (Some(sha), t))
                == Some((m.head.as_ref(), &trigger))
    });
    let commit = Some(rendered.commit.clone());

    // Plan against what the reflectors show, then act, as the channel's identity.
    let access = ctx.access(channel).map_err(|e| (e, commit.clone()))?;
    let scope = tenancy::scope_of(&rendered.desired, &channel.inventory_entries());
    access
        .observer
        .watch(&rendered.kinds, &scope)
        .await
        .map_err(|u| (Error::Unsynced(u.errors), commit.clone()))?;
    let mut observed = access
        .observer
        .snapshot(&channel.label_value(), &rendered.kinds);
    for (key, selector) in &rendered.unlabelled {
        observed
            .services
            .entry(key.clone())
            .or_insert_with(|| rollout::LiveService {
                selector: selector.clone(),
            });
    }
    let now = Timestamp::now();
    let settings = rollout::Settings {
        ready_timeout: timing.ready_timeout,
        test_timeout: timing.test_timeout,
        drain: Duration::from_secs(channel.spec.rollout.drain_seconds.into()),
        keep: channel.spec.rollout.keep_releases as usize,
        prune: channel.spec.prune,
        retry: channel
            .annotations()
            .get(RETRY_ANNOTATION)
            .cloned()
            .unwrap_or_default(),
    };
    let plan = rollout::plan(
        &rendered.desired,
        &observed,
        &channel.inventory_entries(),
        now,
        &settings,
    );
    if plan.retrying {
        ctx.publish(
            channel,
            EventType::Normal,
            "Retrying",
            format!("Retrying release {} on request", rendered.desired.id),
        )
        .await;
    }
    let executor = Executor {
        client: &access.client,
        resolver: &ctx.resolver,
        observer: &access.observer,
        channel: &channel.label_value(),
        declared_namespaces: &rendered.namespaces,
        now,
    };
    let done = executor.run(&plan).await.map_err(|e| (e, commit.clone()))?;
    if !plan.actions.is_empty() {
        let actions: Vec<&str> = plan.actions.iter().map(|a| a.kind()).collect();
        tracing::info!(channel = %key, release = %rendered.desired.id, ?actions, phase = ?plan.phase, "pass");
    }
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
        } if *now || !reported => Some(hook_logs(&access.client, job, &rendered).await),
        _ => None,
    };
    publish(ctx, channel, &rendered, &plan, &done, logs.as_deref()).await;
    if !head_rejected {
        let mut status =
            status::report(channel, &rendered, &plan, &settings.retry, logs.as_deref());
        audit_pass(ctx, channel, &rendered, &plan, &done, now, &mut status).await;
        write_status(ctx, channel, &status)
            .await
            .map_err(|e| (e, commit.clone()))?;
    }
    ctx.metrics.count("success", phase_reason(&plan.phase));

    // Watch events wake the channel for readiness and edits; a pass comes at
    // least at the next poll, deadline or drain, and every driftInterval.
    let mut after = until_poll(ctx.memo(&key, |m| m.polled_at)).min(timing.drift);
    if let Some(due) = plan.requeue {
        after = after.min(due.max(Duration::from_millis(200)));
    }
    Ok(after.max(Duration::from_millis(200)))
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
    let key = key_of(channel);
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
            channel: &key_of(channel),
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
    let credentials = match source::credentials(&ctx.client, channel).await {
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
        if outcome.outcome != audit::RETRYING {
            ctx.memo(&key, |m| m.audit_once(revert_key.clone()));
        }
        let (type_, reason, note) = audit::auto_revert_event(&outcome);
        tracing::info!(channel = %key_of(channel), release = %release, outcome = %outcome.outcome, message = %outcome.message, "automatic revert");
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

fn phase_reason(phase: &Phase) -> &'static str {
    match phase {
        Phase::Progressing { .. } => "Progressing",
        Phase::Testing { .. } => "Testing",
        Phase::Failed { .. } => "ReleaseFailed",
        Phase::Draining => "Draining",
        Phase::Active => "ReconciliationSucceeded",
    }
}

async fn log_new_commit(channel: &Channel, ctx: &Context, fetched: &source::Fetched) {
    tracing::info!(
        channel = %key_of(channel),
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

/// Renders a commit and settles every object's kind and namespace.
async fn render(
    ctx: &Context,
    channel: &Channel,
    fetched: &source::Fetched,
    commit: CommitInfo,
) -> Result<Rendered, Error> {
    let sha = fetched.commit.sha.as_str();
    let release = source::render(
        &ctx.git,
        channel,
        fetched,
        ctx.kustomize.as_ref(),
        &ctx.limits,
    )
    .await?;
    let access = ctx.access(channel)?;
    let rendered = prepare(&access.client, &ctx.resolver, channel, &release, commit).await?;
    if ctx.tenancy.policy().no_cross_namespace_refs {
        let namespace = channel.namespace().unwrap_or_default();
        if let Some((file, object, location)) =
            tenancy::cross_namespace_violation(&namespace, &rendered.desired)
        {
            return Err(Error::CrossNamespace {
                file,
                object,
                location,
                namespace,
            });
        }
    }
    if let Some(hold) = rollout::channel_prune_hold(channel, sha, &rendered.desired.inventory()) {
        return Err(Error::PruneHeld {
            commit: sha.to_string(),
            hold,
            channel: channel.name_any(),
            namespace: channel.namespace().unwrap_or_default(),
        });
    }
    Ok(rendered)
}

/// Events for what the pass did.
async fn publish(
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
    let was_active = channel
        .status
        .as_ref()
        .and_then(|s| s.active_release.as_deref())
        == Some(release.as_str())
        && channel
            .status
            .as_ref()
            .and_then(|s| s.last_applied_commit.as_ref())
            .map(|c| c.sha.as_str())
            == Some(commit.sha.as_str());
    let promoted = matches!(plan.phase, Phase::Active | Phase::Draining);
    if !done.switched.is_empty() || (promoted && !was_active) {
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
        ctx.publish(channel, EventType::Normal, reason, note).await;
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
    if let Phase::Failed { now: true, .. } = &plan.phase {
        let message = status::failure_message(release, &channel.spec.rollout, plan, logs);
        ctx.publish(channel, EventType::Warning, "ReleaseFailed", message)
            .await;
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

/// A channel on a local repository syncs as soon as a ref moves there, not at
/// the next poll. A failed watch only means polling; the fetch reports the cause.
fn watch_local_repository(channel: &Channel, ctx: &Context) {
    let key = key_of(channel);
    let (ns, name) = (channel.namespace().unwrap_or_default(), channel.name_any());
    let requests = ctx.requests.clone();
    let on_change = Arc::new(move || requests.request(&ns, &name));
    if let Err(e) = ctx.watches.ensure(&key, &channel.spec.git.url, on_change) {
        tracing::debug!(channel = %key, error = %e, "not watching; polling instead");
    }
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
        tracing::warn!(channel = %key_of(channel), error = %e, "writing the failure to status failed");
    }
    if !unchanged {
        ctx.publish(channel, EventType::Warning, reason, message)
            .await;
    }
    tracing::warn!(channel = %key_of(channel), reason, error = %err, "pass failed");
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

/// Deleting a channel: with `prune: true` everything it delivered goes, in reverse apply order.
async fn cleanup(channel: &Channel, ctx: &Context) -> Result<Action, Error> {
    let entries = channel.inventory_entries();
    let label = channel.label_value();
    if channel.spec.prune && !channel.spec.suspend {
        let access = ctx.access(channel)?;
        let gone = prune_set(&entries, &[]);
        let outcome = cluster::prune(&access.client, &ctx.resolver, &gone, &label, false).await?;
        ctx.metrics
            .pruned_objects
            .inc_by(outcome.deleted.len() as u64);
        // Minted revisions and config copies are not inventory: they go by label.
        let kinds = standard_kinds(ctx).await?;
        let scope = tenancy::Scope {
            namespaces: entries
                .iter()
                .filter_map(|e| e.namespace.clone())
                .chain([channel.target_namespace()])
                .collect(),
            ..tenancy::Scope::default()
        };
        access
            .observer
            .watch(&kinds, &scope)
            .await
            .map_err(|u| Error::Unsynced(u.errors))?;
        let observed = access.observer.snapshot(&label, &kinds);
        for r in &observed.revisions {
            cluster::delete_revision(&access.client, &r.namespace, &r.name).await?;
        }
        for c in &observed.copies {
            cluster::delete_config_copy(&access.client, &c.kind, &c.namespace, &c.name).await?;
        }
        tracing::info!(channel = %key_of(channel), deleted = outcome.deleted.len(), "channel deleted; pruned its objects");
    }
    ctx.forget(&key_of(channel));
    ctx.watches.forget(&key_of(channel));
    ctx.tenancy.release(channel);
    Ok(Action::await_change())
}

async fn standard_kinds(ctx: &Context) -> Result<Vec<kube::discovery::ApiResource>, Error> {
    let mut kinds = Vec::new();
    for kind in ["ConfigMap", "Secret"] {
        if let Some((ar, _)) = ctx.resolver.resolve("", "v1", kind).await? {
            kinds.push(ar);
        }
    }
    Ok(kinds)
}

fn commit_info(c: &CommitMeta) -> CommitInfo {
    CommitInfo {
        sha: c.sha.clone(),
        author: c.author.clone(),
        subject: c.subject.clone(),
        time: c.time.clone(),
        reference: None,
    }
}

/// Parses a duration field of the spec (`30s`, `1m`, `1h30m`); `field` names it in errors.
pub fn parse_duration(field: &str, text: &str) -> Result<Duration, Error> {
    let d = humantime::parse_duration(text).map_err(|e| {
        Error::InvalidSpec(format!(
            "{field} '{text}': {e}; use a duration such as 30s, 5m or 1h"
        ))
    })?;
    if d < Duration::from_secs(1) {
        return Err(Error::InvalidSpec(format!("{field} '{text}' is below 1s")));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_intervals() {
        assert_eq!(
            parse_duration("spec.git.interval", "1m").unwrap(),
            Duration::from_secs(60)
        );
        assert_eq!(
            parse_duration("spec.git.interval", "1h30m").unwrap(),
            Duration::from_secs(5400)
        );
        assert!(parse_duration("spec.git.interval", "soon").is_err());
        assert!(parse_duration("spec.git.interval", "10ms").is_err());
    }
}
