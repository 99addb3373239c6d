//! What every reconcile shares: the client, the engine (git cache,
//! reflectors, discovery, identities, each channel's schedule), the event
//! recorder and what the audit driver remembers of each channel.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};

use super::status::truncate;
use super::{Metrics, OperatorSettings, SyncRequests};
use crate::api::Channel;
use crate::engine::tenancy::Tenancy;
use crate::engine::Engine;
use crate::source::GitCache;

/// What the controller remembers of a channel between passes.
#[derive(Default)]
pub struct Memo {
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
    /// The stages of a pass.
    pub(super) engine: Engine,
    recorder: Recorder,
    pub(super) metrics: Arc<Metrics>,
    pub(super) requests: SyncRequests,
    pub(super) cache_max_age: std::time::Duration,
    /// `--cluster-name`: the notes ref of this operator.
    pub(super) cluster_name: String,
    memo: Mutex<HashMap<String, Memo>>,
}

impl Context {
    /// A context for the controller.
    pub fn new(
        client: Client,
        settings: &OperatorSettings,
        reporter: Reporter,
        metrics: Arc<Metrics>,
        requests: SyncRequests,
        tenancy: Tenancy,
    ) -> Self {
        let wake = requests.clone();
        let engine = Engine::new(
            client.clone(),
            GitCache::new(&settings.cache_dir),
            tenancy,
            settings.kustomize.clone(),
            settings.limits,
        )
        .with_local_watches(Arc::new(move |ns: &str, name: &str| wake.request(ns, name)))
        .with_poll_join_window(settings.poll_join_window);
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            engine,
            metrics,
            requests,
            cache_max_age: settings.cache_max_age,
            cluster_name: settings.cluster_name.clone(),
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

    /// Runs `f` on the memo of channel `key`.
    pub(super) fn memo<T>(&self, key: &str, f: impl FnOnce(&mut Memo) -> T) -> T {
        let mut memo = self.memo.lock().unwrap_or_else(|p| p.into_inner());
        f(memo.entry(key.to_string()).or_default())
    }

    /// Forgets what this process remembers of channel `key`, here and in the engine.
    pub(super) fn forget(&self, key: &str) {
        self.memo
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        self.engine.forget(key);
    }

    /// Lets go of everything held for channel `key` (deleted, or moved to
    /// another shard): its memo here and all the engine holds for it.
    pub(super) fn let_go(&self, key: &str, channel: Option<&Channel>) {
        self.forget(key);
        self.engine.let_go(key, channel);
    }

    /// Publishes an event about `channel`; failures to publish are logged, not fatal.
    pub async fn publish(&self, channel: &Channel, type_: EventType, reason: &str, note: String) {
        self.publish_related(channel, type_, reason, note, None)
            .await;
    }

    /// Like [`Context::publish`], naming the object it is about besides the
    /// channel (a release's ReplicaSet or test Job). The recorder folds events
    /// of the same reason and related object into one series, keeping the
    /// first note: events of different releases must name different objects.
    pub async fn publish_related(
        &self,
        channel: &Channel,
        type_: EventType,
        reason: &str,
        note: String,
        related: Option<k8s_openapi::api::core::v1::ObjectReference>,
    ) {
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(truncate(&note, 1000)),
            action: "Reconcile".to_string(),
            secondary: related,
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
