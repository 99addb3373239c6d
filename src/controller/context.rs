//! What every pass shares: the client, git cache, reflectors, discovery cache,
//! event recorder and the in-memory memo of each channel (losing it, on a
//! restart, costs one fetch and one render, nothing else).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};

use super::prepare::Rendered;
use super::status::truncate;
use super::tenancy::{Access, Tenancy};
use super::{Metrics, Settings, SyncRequests};
use crate::api::Channel;
use crate::cluster::Resolver;
use crate::source::{GitCache, WatchRegistry};

/// What the controller remembers of a channel between passes.
#[derive(Default)]
pub struct Memo {
    /// Generation and request annotations last seen: a change forces a fetch.
    pub trigger: String,
    /// When git was last polled.
    pub polled_at: Option<Instant>,
    /// The newest commit the ref pointed to at the last poll.
    pub head: Option<String>,
    /// The rendered commit being delivered.
    pub rendered: Option<Arc<Rendered>>,
    /// A commit rejected for good (render or dry run), with the trigger it was
    /// rejected under: not tried again until either changes.
    pub rejected: Option<(String, String)>,
    /// Consecutive transient failures.
    pub failures: u32,
    /// No retry before this, unless a new commit or a request comes.
    pub retry_at: Option<Instant>,
    /// Notes and reverts already made by this process (`event/release/commit`,
    /// the newest few): a pass that runs on a channel read before the previous
    /// pass's status arrived does not write them twice.
    pub audited: Vec<String>,
}

impl Memo {
    /// Records `key` as done; false when it was done already.
    pub fn audit_once(&mut self, key: String) -> bool {
        if self.audited.contains(&key) {
            return false;
        }
        self.audited.push(key);
        if self.audited.len() > 64 {
            self.audited.remove(0);
        }
        true
    }
}

/// What every reconcile shares.
pub struct Context {
    pub(super) client: Client,
    pub(super) git: GitCache,
    pub(super) resolver: Resolver,
    /// Who each channel acts as.
    pub(super) tenancy: Tenancy,
    recorder: Recorder,
    pub(super) metrics: Arc<Metrics>,
    pub(super) requests: SyncRequests,
    pub(super) watches: WatchRegistry,
    pub(super) kustomize: Option<crate::render::KustomizeCommand>,
    pub(super) limits: crate::render::Limits,
    pub(super) cache_max_age: std::time::Duration,
    /// `--cluster-name`: the notes ref of this operator.
    pub(super) cluster_name: String,
    memo: Mutex<HashMap<String, Memo>>,
}

impl Context {
    /// A context for the controller.
    pub fn new(
        client: Client,
        settings: &Settings,
        reporter: Reporter,
        metrics: Arc<Metrics>,
        requests: SyncRequests,
        tenancy: Tenancy,
    ) -> Self {
        Context {
            git: GitCache::new(&settings.cache_dir),
            recorder: Recorder::new(client.clone(), reporter),
            resolver: Resolver::new(client.clone()),
            client,
            tenancy,
            metrics,
            requests,
            watches: WatchRegistry::default(),
            kustomize: settings.kustomize.clone(),
            limits: settings.limits,
            cache_max_age: settings.cache_max_age,
            cluster_name: settings.cluster_name.clone(),
            memo: Mutex::default(),
        }
    }

    /// The API client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The client and watches `channel` acts with: its ServiceAccount's, or the operator's.
    pub(super) fn access(&self, channel: &Channel) -> Result<Access, super::Error> {
        self.tenancy
            .access(channel)
            .map_err(|e| super::Error::Impersonation(crate::cluster::api_message(&e)))
    }

    /// The controller's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Runs `f` on the memo of channel `key`.
    pub(super) fn memo<T>(&self, key: &str, f: impl FnOnce(&mut Memo) -> T) -> T {
        let mut memo = self.memo.lock().unwrap_or_else(|p| p.into_inner());
        f(memo.entry(key.to_string()).or_default())
    }

    /// Forgets a deleted channel.
    pub(super) fn forget(&self, key: &str) {
        self.memo
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
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

/// Backoff after `failures` consecutive transient failures: 1 s, doubling, at most 5 minutes.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(9)).min(Duration::from_secs(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let secs: Vec<u64> = (1..=11).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    }
}
