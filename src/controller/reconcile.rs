//! One reconcile of one channel: fetch -> render -> apply -> prune -> status.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use super::crd::{
    Channel, ChannelStatus, CommitInfo, FINALIZER, RECONCILE_ANNOTATION, RETRY_ANNOTATION,
};
use super::release::{self, Outcome};
use super::status::{remove_condition, set_condition, truncate, READY, RECONCILING, STALLED};
use super::{source, Error, Metrics, Settings, SyncRequests};
use crate::cluster;
use crate::rollout::prune_set;
use crate::source::{short_sha, CommitMeta, GitCache, WatchRegistry};

/// Longest wait between retries of a failing channel.
const MAX_BACKOFF: Duration = Duration::from_secs(120);

/// What every reconcile shares.
pub struct Context {
    client: Client,
    git: GitCache,
    recorder: Recorder,
    metrics: Arc<Metrics>,
    requests: SyncRequests,
    watches: WatchRegistry,
    kustomize: Option<crate::render::KustomizeCommand>,
    // In-memory only, so losing it (a restart) just means one extra full reconcile.
    memo: Mutex<HashMap<String, Memo>>,
}

/// What the last reconcile of a channel saw, to skip watch events caused by our own status writes.
#[derive(Clone)]
struct Memo {
    trigger: String,
    done_at: Instant,
    failures: u32,
    pending: bool,
    /// When the last full render + apply finished: drift is checked every `spec.driftInterval`.
    applied_at: Option<Instant>,
}

impl Context {
    /// A context for the controller.
    pub fn new(
        client: Client,
        settings: &Settings,
        reporter: Reporter,
        metrics: Arc<Metrics>,
        requests: SyncRequests,
    ) -> Self {
        Context {
            git: GitCache::new(&settings.cache_dir),
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            requests,
            watches: WatchRegistry::default(),
            kustomize: settings.kustomize.clone(),
            memo: Mutex::default(),
        }
    }

    /// The API client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The controller's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn memo(&self) -> std::sync::MutexGuard<'_, HashMap<String, Memo>> {
        self.memo.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes an event about `channel`; failures to publish are logged, not fatal.
    pub async fn publish(&self, channel: &Channel, type_: EventType, reason: &str, note: String) {
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(truncate(&note, 1000)),
            action: "Reconcile".to_string(),
            secondary: None,
        };
        if let Err(e) = self
            .recorder
            .publish(&event, &channel.object_ref(&()))
            .await
        {
            tracing::warn!(error = %e, "publishing event failed");
        }
    }
}

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

/// Retries a failed reconcile with exponential backoff.
pub fn error_policy(
    channel: Arc<Channel>,
    err: &kube::runtime::finalizer::Error<Error>,
    ctx: Arc<Context>,
) -> Action {
    let key = key_of(&channel);
    let failures = ctx.memo().get(&key).map_or(1, |m| m.failures.max(1));
    let backoff = Duration::from_secs(2u64.saturating_pow(failures.min(10))).min(MAX_BACKOFF);
    tracing::warn!(channel = %key, error = %err, retry_in = ?backoff, "reconcile failed");
    Action::requeue(backoff)
}

fn key_of(channel: &Channel) -> String {
    format!(
        "{}/{}",
        channel.namespace().unwrap_or_default(),
        channel.name_any()
    )
}

/// What makes a reconcile due before its interval: a spec change or a reconcile request.
fn trigger_of(channel: &Channel) -> String {
    let annotation = |name: &str| channel.annotations().get(name).cloned().unwrap_or_default();
    format!(
        "{}|{}|{}",
        channel.metadata.generation.unwrap_or_default(),
        annotation(RECONCILE_ANNOTATION),
        annotation(RETRY_ANNOTATION)
    )
}

async fn sync(channel: &Channel, ctx: &Context) -> Result<Action, Error> {
    let key = key_of(channel);
    watch_local_repository(channel, ctx);
    let interval = parse_duration("spec.git.interval", &channel.spec.git.interval);
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
    let interval = match interval {
        Ok(i) => i,
        Err(e) => {
            return match record_failure(ctx, channel, e, None).await {
                Err(e) if !e.is_stalled() => Err(e),
                _ => Ok(Action::await_change()),
            };
        }
    };
    let trigger = trigger_of(channel);
    let requested = ctx.requests.take(&key);
    if let Some(memo) = ctx.memo().get(&key).cloned().filter(|_| !requested) {
        let elapsed = memo.done_at.elapsed();
        if memo.failures == 0 && !memo.pending && memo.trigger == trigger && elapsed < interval {
            return Ok(Action::requeue(interval - elapsed));
        }
    }

    let started = Instant::now();
    let outcome = deliver(channel, ctx).await;
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    let mut memo = ctx.memo();
    let entry = memo.entry(key).or_insert(Memo {
        trigger: trigger.clone(),
        done_at: Instant::now(),
        failures: 0,
        pending: false,
        applied_at: None,
    });
    entry.trigger = trigger;
    entry.done_at = Instant::now();
    entry.pending = false;
    match outcome {
        Ok(Outcome::Pending(after)) => {
            // A rollout is under way: ReplicaSet changes must reach it, so the memo does not skip.
            entry.failures = 0;
            entry.pending = true;
            ctx.metrics.count("success", "Progressing");
            Ok(Action::requeue(
                after.min(interval).max(Duration::from_millis(200)),
            ))
        }
        Ok(Outcome::Done) => {
            entry.failures = 0;
            ctx.metrics.count("success", "ReconciliationSucceeded");
            Ok(Action::requeue(interval))
        }
        Ok(Outcome::Failed) => {
            entry.failures = 0;
            ctx.metrics.count("error", "ReleaseFailed");
            Ok(Action::requeue(interval))
        }
        // Stalled: retrying the same commit cannot help; poll for a new one at the interval.
        Err(e) if e.is_stalled() => {
            entry.failures = 0;
            ctx.metrics.count("error", e.reason());
            Ok(Action::requeue(interval))
        }
        Err(e) => {
            entry.failures += 1;
            ctx.metrics.count("error", e.reason());
            Err(e)
        }
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

/// Fetch and render, then one pass of the release's rollout; failures are recorded in status and events.
async fn deliver(channel: &Channel, ctx: &Context) -> Result<Outcome, Error> {
    let fetched = match source::fetch(&ctx.git, &ctx.client, channel).await {
        Ok(f) => f,
        Err(e) => {
            return record_failure(ctx, channel, e, None)
                .await
                .map(|()| Outcome::Done)
        }
    };
    ctx.metrics.observe_fetch(&fetched.stats);
    if fetched.previous.as_deref() != Some(fetched.commit.sha.as_str()) {
        tracing::info!(
            channel = %key_of(channel),
            reference = %fetched.reference,
            commit = %short_sha(&fetched.commit.sha),
            received_bytes = fetched.stats.received_bytes,
            signed_by = ?fetched.signers,
            "new commit fetched"
        );
    }
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
    // A cheap poll: the ref has not moved, nothing is pending and drift was checked
    // recently, so there is nothing to render and nothing to write.
    let drift_interval = parse_duration("spec.driftInterval", &channel.spec.drift_interval)
        .unwrap_or(Duration::from_secs(300));
    let last_full_apply = ctx
        .memo()
        .get(&key_of(channel))
        .filter(|m| !m.pending)
        .and_then(|m| m.applied_at);
    // After a restart there is no last apply: the first pass always compares.
    let drift_due = last_full_apply.is_none_or(|t| t.elapsed() >= drift_interval);
    if fetched.is_noop(channel, drift_due) {
        tracing::debug!(channel = %key_of(channel), commit = %short_sha(&fetched.commit.sha), "ref unchanged; nothing to apply");
        return Ok(Outcome::Done);
    }
    let commit = fetched.commit;
    let release = match source::render(&ctx.git, channel, &commit.sha, ctx.kustomize.as_ref()).await
    {
        Ok(r) => r,
        Err(e) => {
            return record_failure(ctx, channel, e, Some(&commit))
                .await
                .map(|()| Outcome::Done)
        }
    };
    let info = CommitInfo {
        reference: Some(fetched.reference.clone()),
        ..commit_info(&commit)
    };
    match release::deliver(ctx, channel, &release, &info, drift_due).await {
        Ok(outcome) => {
            // A held failed release was re-applied when drift was due.
            if outcome == Outcome::Done || (outcome == Outcome::Failed && drift_due) {
                ctx.memo()
                    .entry(key_of(channel))
                    .and_modify(|m| m.applied_at = Some(Instant::now()));
            }
            tracing::info!(channel = %key_of(channel), commit = %short_sha(&commit.sha), release = %release.id, ?outcome, "reconciled");
            Ok(outcome)
        }
        Err(e) => record_failure(ctx, channel, e, Some(&commit))
            .await
            .map(|()| Outcome::Done),
    }
}

/// Writes a failure into status and events; objects in the cluster are left as they are.
async fn record_failure(
    ctx: &Context,
    channel: &Channel,
    err: Error,
    commit: Option<&CommitMeta>,
) -> Result<(), Error> {
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
        status.last_attempted_commit = Some(commit_info(commit));
    }
    status.last_handled_reconcile_at = channel.annotations().get(RECONCILE_ANNOTATION).cloned();
    let unchanged = channel.status.as_ref() == Some(&status);
    write_status(ctx, channel, &status).await?;
    if !unchanged {
        ctx.publish(channel, EventType::Warning, reason, message)
            .await;
    }
    tracing::warn!(channel = %key_of(channel), reason, error = %err, "reconcile failed");
    Err(err)
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
    Ok(())
}

/// Deleting a channel: with `prune: true` everything it delivered goes, in reverse apply order.
async fn cleanup(channel: &Channel, ctx: &Context) -> Result<Action, Error> {
    let entries = channel.inventory_entries();
    if channel.spec.prune && !channel.spec.suspend && !entries.is_empty() {
        let gone = prune_set(&entries, &[]);
        let outcome = cluster::prune(&ctx.client, &gone, &channel.label_value(), false).await?;
        ctx.metrics
            .pruned_objects
            .inc_by(outcome.deleted.len() as u64);
        tracing::info!(channel = %key_of(channel), deleted = outcome.deleted.len(), "channel deleted; pruned its objects");
    }
    if channel.spec.prune && !channel.spec.suspend {
        // Minted revisions and config copies are not inventory: they go by label.
        let label = channel.label_value();
        for o in cluster::list_revisions(&ctx.client, &label).await? {
            cluster::delete_revision(&ctx.client, &o.namespace, &o.revision.name).await?;
        }
        for (kind, ns, name) in cluster::list_config_copies(&ctx.client, &label).await? {
            cluster::delete_config_copy(&ctx.client, kind, &ns, &name).await?;
        }
    }
    ctx.memo().remove(&key_of(channel));
    ctx.watches.forget(&key_of(channel));
    Ok(Action::await_change())
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
        assert_eq!(
            parse_duration("spec.git.interval", "30s").unwrap(),
            Duration::from_secs(30)
        );
        assert!(parse_duration("spec.git.interval", "soon").is_err());
        assert!(parse_duration("spec.git.interval", "10ms").is_err());
    }
}
