//! The sequence of one pass, the same for the controller and `kubemint diff`:
//! fetch -> render -> prepare -> every gate (local source, cross-namespace,
//! impersonation, prune hold; the limits are enforced while reading and
//! rendering) -> observe -> rollout settings taken from the channel. What comes
//! out is everything [`rollout::plan`] needs.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::{Client, ResourceExt};

use super::execute::Executor;
use super::pass::Memo;
use super::prepare::{prepare, Rendered};
use super::source::{self, Fetched};
use super::tenancy::{self, Access, Tenancy};
use super::Error;
use crate::api::{Channel, CommitInfo, InventoryEntry, RETRY_ANNOTATION};
use crate::cluster::changes::ChangeSet;
use crate::cluster::Resolver;
use crate::render::{KustomizeCommand, Limits, Release};
use crate::rollout::{self, Observed};
use crate::source::{CommitMeta, GitCache, WatchRegistry};

/// Whether the pipeline feeds a delivery or a preview of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The controller's pass: the channel's timeouts, drain and retry request.
    Deliver,
    /// `kubemint diff`: the release as it will stand once promoted (nothing
    /// times out, the drain is over), so the plan shows every change it brings.
    Preview,
}

/// The spec's durations, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// `spec.git.interval`: how often git is polled.
    pub interval: Duration,
    /// `spec.driftInterval`: how often the cluster is compared with the release.
    pub drift: Duration,
    /// `spec.rollout.readyTimeout`.
    pub ready_timeout: Duration,
    /// `spec.rollout.testTimeout`.
    pub test_timeout: Duration,
}

/// Parses the channel's durations; an invalid one is an `InvalidSpec` refusal.
pub fn timing(channel: &Channel) -> Result<Timing, Error> {
    let rollout = &channel.spec.rollout;
    Ok(Timing {
        interval: parse_duration("spec.git.interval", &channel.spec.git.interval)?,
        drift: parse_duration("spec.driftInterval", &channel.spec.drift_interval)?,
        ready_timeout: parse_duration("spec.rollout.readyTimeout", &rollout.ready_timeout)?,
        test_timeout: parse_duration("spec.rollout.testTimeout", &rollout.test_timeout)?,
    })
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

/// The rollout settings of `channel` for `mode`. The one place where a preview
/// differs from a delivery.
pub fn rollout_settings(channel: &Channel, mode: Mode) -> Result<rollout::Settings, Error> {
    let spec = &channel.spec.rollout;
    let keep = spec.keep_releases as usize;
    Ok(match mode {
        Mode::Deliver => {
            let timing = timing(channel)?;
            rollout::Settings {
                ready_timeout: timing.ready_timeout,
                test_timeout: timing.test_timeout,
                drain: Duration::from_secs(spec.drain_seconds.into()),
                keep,
                prune: channel.spec.prune,
                retry: channel
                    .annotations()
                    .get(RETRY_ANNOTATION)
                    .cloned()
                    .unwrap_or_default(),
            }
        }
        Mode::Preview => rollout::Settings {
            ready_timeout: Duration::from_secs(u32::MAX.into()),
            test_timeout: Duration::from_secs(u32::MAX.into()),
            drain: Duration::ZERO,
            keep,
            prune: channel.spec.prune,
            retry: String::new(),
        },
    })
}

/// What [`rollout::plan`] needs besides the desired release.
pub struct Observation {
    /// The channel's objects as the reflectors show them.
    pub observed: Observed,
    /// The channel's inventory (from its status).
    pub inventory: Vec<InventoryEntry>,
    /// The time the plan is made at.
    pub now: Timestamp,
    /// The rollout settings.
    pub settings: rollout::Settings,
    /// The identity the channel acts as, for the executor.
    pub access: Access,
}

/// The stages of the pipeline and what they share: the client that reads the
/// channel's Secrets, the git cache, discovery, the identities channels act
/// as, and how commits are rendered.
pub struct Engine {
    client: Client,
    git: GitCache,
    resolver: Resolver,
    tenancy: Tenancy,
    kustomize: Option<KustomizeCommand>,
    limits: Limits,
    secrets: source::CredentialsCache,
    /// Each channel's schedule and rendered release.
    pub(super) memos: std::sync::Mutex<std::collections::HashMap<String, Memo>>,
    /// Watches of local repositories, and what to call when a ref moves there.
    local: Option<(WatchRegistry, LocalChange)>,
    /// A new channel takes a poll of its group made this long before its creation.
    pub(super) poll_join_window: Duration,
}

/// Called with a channel's namespace and name when a ref of its local repository moves.
pub type LocalChange = Arc<dyn Fn(&str, &str) + Send + Sync>;

impl Engine {
    /// An engine acting with `client` (the operator's, or the CLI user's), caching git in `git`.
    pub fn new(
        client: Client,
        git: GitCache,
        tenancy: Tenancy,
        kustomize: Option<KustomizeCommand>,
        limits: Limits,
    ) -> Self {
        Engine {
            resolver: Resolver::new(client.clone()),
            client,
            git,
            tenancy,
            kustomize,
            limits,
            secrets: source::CredentialsCache::default(),
            memos: Default::default(),
            local: None,
            poll_join_window: Duration::ZERO,
        }
    }

    /// The same engine, letting a new channel take its group's poll made up
    /// to `window` before the channel's creation (`--poll-join-window`).
    pub fn with_poll_join_window(mut self, window: Duration) -> Self {
        self.poll_join_window = window;
        self
    }

    /// The same engine, watching the local repositories of channels (a
    /// `file://` URL or a path) and calling `on_change` when one of their refs moves.
    pub fn with_local_watches(mut self, on_change: LocalChange) -> Self {
        self.local = Some((WatchRegistry::default(), on_change));
        self
    }

    /// A channel on a local repository syncs as soon as a ref moves there, not at
    /// the next poll. A failed watch only means polling; the fetch reports the cause.
    pub(super) fn watch_local(&self, channel: &Channel) {
        let Some((watches, on_change)) = &self.local else {
            return;
        };
        let key = channel.key();
        let (ns, name) = (channel.namespace().unwrap_or_default(), channel.name_any());
        let on_change = on_change.clone();
        let wake = Arc::new(move || on_change(&ns, &name));
        if let Err(e) = watches.ensure(&key, &channel.spec.git.url, wake) {
            tracing::debug!(channel = %key, error = %e, "not watching; polling instead");
        }
    }

    /// Stops watching channel `key`'s local repository.
    pub(super) fn forget_local_watch(&self, key: &str) {
        if let Some((watches, _)) = &self.local {
            watches.forget(key);
        }
    }

    /// The client of the operator (or CLI user) itself.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The git cache.
    pub fn git(&self) -> &GitCache {
        &self.git
    }

    /// Kinds to API resources.
    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// The identities channels act as.
    pub fn tenancy(&self) -> &Tenancy {
        &self.tenancy
    }

    /// The kustomize command (`None`: the default).
    pub fn kustomize(&self) -> Option<&KustomizeCommand> {
        self.kustomize.as_ref()
    }

    /// The limits of one commit.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Gate: a local `spec.git.url` without `--allow-local-sources` is refused
    /// before anything reads the path.
    pub fn admit(&self, channel: &Channel) -> Result<(), Error> {
        match tenancy::local_source_refusal(&channel.spec.git.url, self.tenancy.policy()) {
            Some(refused) => Err(refused),
            None => Ok(()),
        }
    }

    /// Gate: the client and watches `channel` acts with, its ServiceAccount's or the operator's.
    pub fn access(&self, channel: &Channel) -> Result<Access, Error> {
        self.tenancy
            .access(channel)
            .map_err(|e| Error::Impersonation(crate::cluster::api_message(&e)))
    }

    /// Fetches (and verifies) the commit `spec.git.ref` points to, from a poll
    /// that started at or after `not_before` (shared with the channels that
    /// follow the same ref; `None`: any poll).
    pub async fn fetch(
        &self,
        channel: &Channel,
        not_before: Option<std::time::Instant>,
    ) -> Result<Fetched, Error> {
        self.admit(channel)?;
        source::fetch(&self.git, &self.client, &self.secrets, channel, not_before).await
    }

    /// A fetched commit made deliverable: rendered, [`Engine::prepare`]d, and through the [`Engine::gates`].
    pub async fn deliverable(
        &self,
        channel: &Channel,
        fetched: &Fetched,
    ) -> Result<Rendered, Error> {
        let release = self.render_release(channel, fetched).await?;
        let commit = CommitInfo {
            reference: Some(fetched.reference.clone()),
            ..commit_info(&fetched.commit)
        };
        let mut rendered = self.prepare(channel, &release, commit).await?;
        self.gates(channel, &rendered)?;
        let ids = self.input_ids(channel, fetched, &release.inputs).await?;
        rendered.inputs = release.inputs.into_iter().zip(ids).collect();
        Ok(rendered)
    }

    /// `previous` carried over to the commit of `fetched` if that commit
    /// changed none of the directories `previous` was rendered from: the
    /// channel records the new commit and sends nothing else, with no render,
    /// no API request and no event. `None`: render it. The gates that depend
    /// on the channel's state (the prune hold) are checked again.
    pub async fn carried_over(
        &self,
        channel: &Channel,
        previous: &Rendered,
        fetched: &Fetched,
    ) -> Result<Option<Rendered>, Error> {
        let dirs: Vec<String> = previous.inputs.iter().map(|(d, _)| d.clone()).collect();
        let ids = self.input_ids(channel, fetched, &dirs).await?;
        let commit = CommitInfo {
            reference: Some(fetched.reference.clone()),
            ..commit_info(&fetched.commit)
        };
        let Some(carried) = super::prepare::carried_over(previous, commit, &ids) else {
            return Ok(None);
        };
        self.gates(channel, &carried)?;
        Ok(Some(carried))
    }

    /// The git object ids of `dirs` in the fetched commit.
    async fn input_ids(
        &self,
        channel: &Channel,
        fetched: &Fetched,
        dirs: &[String],
    ) -> Result<Vec<Option<String>>, Error> {
        Ok(self
            .git
            .tree_ids(
                &channel.spec.git.url,
                &fetched.credentials,
                &fetched.commit.sha,
                dirs,
            )
            .await?)
    }

    /// Renders a fetched commit at the channel's path, within the limits.
    pub async fn render_release(
        &self,
        channel: &Channel,
        fetched: &Fetched,
    ) -> Result<Release, Error> {
        source::render_commit(
            &self.git,
            channel,
            fetched,
            self.kustomize.as_ref(),
            &self.limits,
        )
        .await
    }

    /// Settles every object's kind and namespace, as the channel's identity.
    pub async fn prepare(
        &self,
        channel: &Channel,
        release: &Release,
        commit: CommitInfo,
    ) -> Result<Rendered, Error> {
        let access = self.access(channel)?;
        prepare(&access.client, &self.resolver, channel, release, commit).await
    }

    /// The gates on a prepared release: cross-namespace, then the prune hold.
    pub fn gates(&self, channel: &Channel, rendered: &Rendered) -> Result<(), Error> {
        let sha = rendered.commit.sha.clone();
        if self.tenancy.policy().no_cross_namespace_refs {
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
        if let Some(hold) =
            rollout::channel_prune_hold(channel, &sha, &rendered.desired.inventory())
        {
            return Err(Error::PruneHeld {
                commit: sha,
                hold,
                channel: channel.name_any(),
                namespace: channel.namespace().unwrap_or_default(),
            });
        }
        Ok(())
    }

    /// Carries `plan` out as the channel's identity.
    pub async fn execute(
        &self,
        channel: &Channel,
        rendered: &Rendered,
        seen: &Observation,
        plan: &rollout::Plan,
    ) -> Result<ChangeSet, Error> {
        let executor = Executor {
            client: &seen.access.client,
            resolver: &self.resolver,
            observer: &seen.access.observer,
            channel: &channel.label_value(),
            declared_namespaces: &rendered.namespaces,
            now: seen.now,
        };
        let done = executor.run(plan).await?;
        if !plan.actions.is_empty() {
            let actions: Vec<&str> = plan.actions.iter().map(|a| a.kind()).collect();
            tracing::info!(channel = %channel.key(), release = %rendered.desired.id, ?actions, phase = ?plan.phase, "pass");
        }
        Ok(done)
    }

    /// Retries the channel's failing watches now instead of at the end of
    /// their backoff (a sync request or a spec change: RBAC may have been fixed).
    /// An identity that cannot be had is reported by the pass's observe.
    pub fn retry_refused_watches(&self, channel: &Channel) {
        if let Ok(access) = self.access(channel) {
            access.observer.retry_refused();
        }
    }

    /// Observes the channel's objects as its identity (once the watches of its
    /// scope have listed), with the settings of `mode`. A watch the channel's
    /// ServiceAccount may not make is a `Forbidden` refusal naming the object
    /// that needs it.
    pub async fn observe(
        &self,
        channel: &Channel,
        rendered: &Rendered,
        mode: Mode,
    ) -> Result<Observation, Error> {
        let settings = rollout_settings(channel, mode)?;
        let access = self.access(channel)?;
        let inventory = channel.inventory_entries();
        let scope = tenancy::scope_of(&rendered.desired, &inventory);
        access
            .observer
            .watch(&channel.key(), &rendered.kinds, &scope)
            .await
            .map_err(|unsynced| unsynced_error(&access, unsynced, Some(&rendered.desired)))?;
        let mut observed = access
            .observer
            .snapshot(&channel.label_value(), &rendered.kinds);
        // Services made by hand and being adopted keep serving what they select until promotion.
        for (key, selector) in &rendered.unlabelled {
            observed
                .services
                .entry(key.clone())
                .or_insert_with(|| rollout::LiveService {
                    selector: selector.clone(),
                });
        }
        Ok(Observation {
            observed,
            inventory,
            now: Timestamp::now(),
            settings,
            access,
        })
    }
}

/// Why the watches of `access` have not listed: a watch the channel's
/// ServiceAccount may not make is a `Forbidden` refusal naming the object of
/// `desired` that needs it; with the operator's own identity it is a
/// deployment problem that a fixed ClusterRole solves, retried.
pub(super) fn unsynced_error(
    access: &Access,
    unsynced: super::observe::Unsynced,
    desired: Option<&crate::rollout::DesiredRelease>,
) -> Error {
    match (&access.service_account, unsynced.refused.first()) {
        (Some(account), Some(refused)) => tenancy::watch_refusal(account, refused, desired),
        _ => Error::Unsynced(unsynced.errors),
    }
}

/// The plan of a pass: [`rollout::plan`] of what the pipeline produced.
pub fn plan(rendered: &Rendered, seen: &Observation) -> rollout::Plan {
    rollout::plan(
        &rendered.desired,
        &seen.observed,
        &seen.inventory,
        seen.now,
        &seen.settings,
    )
}

/// A fetched commit as the status records it.
pub fn commit_info(c: &CommitMeta) -> CommitInfo {
    CommitInfo {
        sha: c.sha.clone(),
        author: c.author.clone(),
        subject: c.subject.clone(),
        time: c.time.clone(),
        reference: None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::ChannelSpec;

    fn channel(rollout: serde_json::Value) -> Channel {
        let spec: ChannelSpec = serde_json::from_value(json!({
            "git": {"url": "https://example.com/r.git"},
            "rollout": rollout,
        }))
        .unwrap();
        let mut channel = Channel::new("web", spec);
        channel.metadata.namespace = Some("shop".into());
        channel
            .annotations_mut()
            .insert(RETRY_ANNOTATION.into(), "again".into());
        channel
    }

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

    #[test]
    fn a_delivery_takes_the_channel_s_settings_and_a_preview_the_promoted_state() {
        let ch = channel(json!({"drainSeconds": 45, "keepReleases": 3, "readyTimeout": "2m"}));
        let deliver = rollout_settings(&ch, Mode::Deliver).unwrap();
        assert_eq!(deliver.ready_timeout, Duration::from_secs(120));
        assert_eq!(deliver.drain, Duration::from_secs(45));
        assert_eq!(deliver.keep, 3);
        assert_eq!(deliver.retry, "again");
        let preview = rollout_settings(&ch, Mode::Preview).unwrap();
        assert_eq!(preview.drain, Duration::ZERO, "the drain is over");
        assert!(preview.ready_timeout > Duration::from_secs(86_400 * 365));
        assert!(preview.test_timeout > Duration::from_secs(86_400 * 365));
        assert_eq!(preview.keep, 3);
        assert_eq!(preview.retry, "", "a preview retries nothing");

        let broken = channel(json!({"readyTimeout": "soon"}));
        let err = rollout_settings(&broken, Mode::Deliver).unwrap_err();
        assert_eq!(err.reason(), "InvalidSpec");
        assert!(
            err.to_string().contains("spec.rollout.readyTimeout"),
            "{err}"
        );
    }
}
