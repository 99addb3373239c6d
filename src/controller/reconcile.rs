//! One pass of one channel, the controller's side: the finalizer, the
//! schedule, the engine's pipeline, the plan, its execution and the report;
//! a failure is written to the status and backs off or stalls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::context::Context;
use super::status::{remove_condition, set_condition, READY, RECONCILING, STALLED};
use super::{events, report, tenancy, Error};
use crate::api::{
    Channel, ChannelStatus, CommitInfo, APPROVE_PRUNE_ANNOTATION, FINALIZER, RECONCILE_ANNOTATION,
    RETRY_ANNOTATION,
};
use crate::cluster;
use crate::engine::execute::failpoint;
use crate::engine::schedule::{self, backoff, Next, Start, Trigger};
use crate::engine::{pipeline, Mode, Rendered, Timing};
use crate::rollout::{prune_set, Phase};

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
    let key = channel.key();
    let failures = ctx.memo(&key, |m| {
        m.schedule.failures += 1;
        m.schedule.failures
    });
    let retry = backoff(failures);
    tracing::warn!(channel = %key, error = %err, retry_in = ?retry, "reconcile failed");
    Action::requeue(retry)
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

/// When the channel's spec or annotations last changed, as a time of this
/// process: the newest of its managed-fields times outside its status, else
/// its creation. Those times have whole seconds, so a second is added: a poll
/// that started then surely started after the change. That may be a moment
/// ahead (a change made this very second): the pass then waits for it, and
/// the channels changed in the same second (created together) share the one
/// poll made then. `None` when the channel says nothing usable, or the clocks
/// disagree by more than [`CLOCK_SKEW`] (then a poll made now serves).
fn changed_at(channel: &Channel, now: Instant, wall: Timestamp) -> Option<Instant> {
    let meta = &channel.metadata;
    let written = meta
        .managed_fields
        .iter()
        .flatten()
        .filter(|f| f.subresource.as_deref() != Some("status"))
        .filter_map(|f| f.time.as_ref().map(|t| t.0))
        .max()
        .or_else(|| meta.creation_timestamp.as_ref().map(|t| t.0))?;
    let changed = written
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(1))
        .ok()?;
    let ago = wall.duration_since(changed);
    if ago.is_negative() {
        let ahead = ago.unsigned_abs();
        return (ahead <= CLOCK_SKEW).then(|| now + ahead);
    }
    Some(now.checked_sub(ago.unsigned_abs()).unwrap_or(now))
}

/// How far ahead of this process's clock a change may seem before the
/// clocks are taken to disagree.
const CLOCK_SKEW: Duration = Duration::from_secs(2);

async fn sync(channel: &Channel, ctx: &Arc<Context>) -> Result<Action, Error> {
    let key = channel.key();
    if let Err(refused) = ctx.engine.admit(channel) {
        // Refused before anything reads the path: no fetch, no watch of it.
        let refused = Error::from(refused);
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
    let timing = match pipeline::timing(channel) {
        Ok(t) => t,
        Err(e) => {
            record_failure(ctx, channel, &e.into(), None).await;
            return Ok(Action::await_change());
        }
    };
    let started = Instant::now();
    let result = pass(channel, ctx, &timing).await;
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    let (err, commit) = match result {
        Ok(after) => return Ok(Action::requeue(after)),
        Err(failed) => failed,
    };
    ctx.metrics.count("error", err.reason());
    record_failure(ctx, channel, &err, commit.as_ref()).await;
    let trigger = trigger_of(channel);
    let sha = commit.as_ref().map(|c| c.sha.as_str());
    let stalled = err.is_stalled();
    let retry = ctx.memo(&key, |m| {
        schedule::failed(
            &mut m.schedule,
            &trigger,
            stalled,
            sha,
            Instant::now(),
            timing.interval,
        )
    });
    if !stalled {
        tracing::warn!(channel = %key, reason = err.reason(), error = %err, retry_in = ?retry, "pass failed; retrying");
    }
    Ok(Action::requeue(retry))
}

type PassError = (Error, Option<CommitInfo>);

/// One pass: schedule -> pipeline -> plan -> execute -> report; returns when to look again.
async fn pass(
    channel: &Channel,
    ctx: &Arc<Context>,
    timing: &Timing,
) -> Result<Duration, PassError> {
    let key = channel.key();
    let trigger = Trigger {
        spec: trigger_of(channel),
        requested: ctx.requests.take(&key),
        changed_at: changed_at(channel, Instant::now(), Timestamp::now()),
    };
    let (start, asked) = ctx.memo(&key, |m| {
        let start = schedule::start(&m.schedule, &trigger, Instant::now(), timing.interval);
        (start, schedule::asked(&m.schedule, &trigger))
    });
    if asked {
        ctx.engine.retry_refused_watches(channel); // a RoleBinding may have been fixed
    }
    let rendered = match start {
        Start::Wait(after) => return Ok(after),
        Start::UseRendered => ctx.memo(&key, |m| m.rendered.clone()),
        Start::Poll => match poll(channel, ctx, &trigger, timing).await? {
            Ok(rendered) => Some(rendered),
            Err(after) => return Ok(after),
        },
    }
    .expect("the schedule uses a rendered commit only when there is one");
    let head_rejected = ctx.memo(&key, |m| {
        schedule::head_rejected(&m.schedule, &trigger.spec)
    });
    let failed = |e: crate::engine::Error| (Error::from(e), Some(rendered.commit.clone()));

    // Plan against what the reflectors show, then act, as the channel's identity.
    let seen = ctx
        .engine
        .observe(channel, &rendered, Mode::Deliver)
        .await
        .map_err(failed)?;
    let plan = pipeline::plan(&rendered, &seen);
    events::retrying(ctx, channel, &rendered, &plan).await;
    let done = ctx
        .engine
        .execute(channel, &rendered, &seen, &plan)
        .await
        .map_err(failed)?;
    report::report(
        ctx,
        channel,
        (&rendered, &seen),
        &plan,
        &done,
        head_rejected,
    )
    .await
    .map_err(|e| (e, Some(rendered.commit.clone())))?;
    ctx.metrics.count("success", phase_reason(&plan.phase));
    // Watch events wake the channel for readiness and edits; a pass comes at
    // least at the next poll, deadline or drain, and every driftInterval.
    Ok(ctx.memo(&key, |m| {
        schedule::succeeded(
            &mut m.schedule,
            Instant::now(),
            timing.interval,
            timing.drift,
            plan.requeue,
        )
    }))
}

/// Polls git and, if the schedule says so, renders the commit found: the
/// commit to deliver, or how long to wait.
async fn poll(
    channel: &Channel,
    ctx: &Arc<Context>,
    trigger: &Trigger,
    timing: &Timing,
) -> Result<Result<Arc<Rendered>, Duration>, PassError> {
    let key = channel.key();
    let now = Instant::now();
    let not_before = ctx.memo(&key, |m| {
        schedule::poll_not_before(
            &m.schedule,
            trigger,
            now,
            timing.interval,
            ctx.poll_join_window,
        )
    });
    if let Some(at) = not_before.filter(|at| *at > now) {
        // Changed this very second: poll when it is over, with the channels
        // changed in the same second, without holding a pass slot meanwhile.
        return Ok(Err(at - now));
    }
    let fetched = ctx
        .engine
        .fetch(channel, not_before)
        .await
        .map_err(|e| (e.into(), None))?;
    ctx.metrics.observe_fetch(&fetched.stats, fetched.shared);
    let sha = fetched.commit.sha.as_str();
    let step = ctx.memo(&key, |m| {
        schedule::fetched(
            &mut m.schedule,
            trigger,
            sha,
            (fetched.polled_at, Instant::now()),
            timing.interval,
        )
    });
    if step.new_commit {
        events::log_new_commit(channel, ctx, &fetched).await;
    }
    match step.next {
        Next::Wait(after) => Ok(Err(after)),
        Next::UseRendered => Ok(Ok(ctx
            .memo(&key, |m| m.rendered.clone())
            .expect("the schedule uses a rendered commit only when there is one"))),
        Next::Render | Next::RenderIfChanged => {
            let info = || CommitInfo {
                reference: Some(fetched.reference.clone()),
                ..pipeline::commit_info(&fetched.commit)
            };
            let previous = match step.next {
                Next::RenderIfChanged => ctx.memo(&key, |m| m.rendered.clone()),
                _ => None,
            };
            let carried = match previous {
                Some(previous) => ctx
                    .engine
                    .carried_over(channel, &previous, &fetched)
                    .await
                    .map_err(|e| (e.into(), Some(info())))?,
                None => None,
            };
            let rendered = match carried {
                Some(carried) => {
                    ctx.metrics.count_render("carried_over");
                    carried
                }
                None => {
                    ctx.metrics.count_render("rendered");
                    ctx.engine
                        .deliverable(channel, &fetched)
                        .await
                        .map_err(|e| (e.into(), Some(info())))?
                }
            };
            let rendered = Arc::new(rendered);
            ctx.memo(&key, |m| {
                schedule::rendered(&mut m.schedule, sha, rendered.unresolved);
                m.rendered = Some(rendered.clone());
            });
            Ok(Ok(rendered))
        }
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

/// A channel on a local repository syncs as soon as a ref moves there, not at
/// the next poll. A failed watch only means polling; the fetch reports the cause.
fn watch_local_repository(channel: &Channel, ctx: &Context) {
    let key = channel.key();
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

/// Deleting a channel: with `prune: true` everything it delivered goes, in reverse apply order.
async fn cleanup(channel: &Channel, ctx: &Context) -> Result<Action, Error> {
    if channel.spec.prune && !channel.spec.suspend {
        prune_all(channel, ctx).await?;
    }
    ctx.let_go(&channel.key(), Some(channel));
    Ok(Action::await_change())
}

/// Deletes the inventory, then the minted revisions and config copies (not
/// inventory: they go by label).
async fn prune_all(channel: &Channel, ctx: &Context) -> Result<(), crate::engine::Error> {
    let entries = channel.inventory_entries();
    let label = channel.label_value();
    let access = ctx.engine.access(channel)?;
    let resolver = ctx.engine.resolver();
    let gone = prune_set(&entries, &[]);
    let outcome = cluster::prune(&access.client, resolver, &gone, &label, false).await?;
    ctx.metrics
        .pruned_objects
        .inc_by(outcome.deleted.len() as u64);
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
        .watch(&channel.key(), &kinds, &scope)
        .await
        .map_err(|u| crate::engine::Error::Unsynced(u.errors))?;
    let observed = access.observer.snapshot(&label, &kinds);
    for r in &observed.revisions {
        cluster::delete_revision(&access.client, &r.namespace, &r.name).await?;
    }
    for c in &observed.copies {
        cluster::delete_config_copy(&access.client, &c.kind, &c.namespace, &c.name).await?;
    }
    tracing::info!(channel = %channel.key(), deleted = outcome.deleted.len(), "channel deleted; pruned its objects");
    Ok(())
}

async fn standard_kinds(
    ctx: &Context,
) -> Result<Vec<kube::discovery::ApiResource>, crate::engine::Error> {
    let mut kinds = Vec::new();
    for kind in ["ConfigMap", "Secret"] {
        if let Some((ar, _)) = ctx.engine.resolver().resolve("", "v1", kind).await? {
            kinds.push(ar);
        }
    }
    Ok(kinds)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};
    use k8s_openapi::jiff::Timestamp;

    use super::changed_at;
    use crate::api::{Channel, ChannelSpec};

    fn at(s: &str) -> Time {
        Time(s.parse::<Timestamp>().unwrap())
    }

    fn channel(created: &str, writes: &[(&str, Option<&str>)]) -> Channel {
        let spec: ChannelSpec = serde_json::from_value(
            serde_json::json!({"git": {"url": "https://example.com/r.git"}}),
        )
        .unwrap();
        let mut c = Channel::new("web", spec);
        c.metadata.creation_timestamp = Some(at(created));
        c.metadata.managed_fields = Some(
            writes
                .iter()
                .map(|(time, sub)| ManagedFieldsEntry {
                    time: Some(at(time)),
                    subresource: sub.map(str::to_string),
                    ..ManagedFieldsEntry::default()
                })
                .collect(),
        );
        c
    }

    #[test]
    fn a_change_is_dated_from_the_newest_write_outside_the_status_plus_a_second() {
        let now = Instant::now() + Duration::from_secs(3600);
        let wall: Timestamp = "2026-12-04T12:00:10Z".parse().unwrap();
        let rows = [
            (
                "the spec was last written 6 s ago: a poll after 5 s ago",
                channel(
                    "2026-12-04T11:00:00Z",
                    &[
                        ("2026-12-04T12:00:04Z", None),
                        ("2026-12-04T12:00:09Z", Some("status")),
                    ],
                ),
                Some(now - Duration::from_secs(5)),
            ),
            (
                "no managed fields: the creation",
                channel("2026-12-04T12:00:00Z", &[]),
                Some(now - Duration::from_secs(9)),
            ),
            (
                "written this very second: a moment ahead, when the second is over",
                channel("2026-12-04T11:00:00Z", &[("2026-12-04T12:00:10Z", None)]),
                Some(now + Duration::from_secs(1)),
            ),
            (
                "a clock far ahead of ours: a poll made now",
                channel("2026-12-04T11:00:00Z", &[("2026-12-04T12:00:30Z", None)]),
                None,
            ),
        ];
        for (name, ch, want) in rows {
            assert_eq!(changed_at(&ch, now, wall), want, "{name}");
        }
        let mut unknown = channel("2026-12-04T11:00:00Z", &[]);
        unknown.metadata.creation_timestamp = None;
        assert_eq!(changed_at(&unknown, now, wall), None);
    }
}
