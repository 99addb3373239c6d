//! The `Channel` controller, the kube-runtime shell around the
//! [`engine`](crate::engine): watches channels, runs a pass of each, writes
//! their status and events, drives the audit trail (deployment notes,
//! automatic reverts), and elects a leader among replicas.

mod audit;
pub(crate) mod context;
mod error;
mod events;
mod forge;
pub mod leader;
mod metrics;
mod reconcile;
mod report;
#[cfg(test)]
mod report_tests;
mod shards;
mod status;
mod triggers;

use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::controller::Controller;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::Store;
use kube::{Api, Client};

/// The Channel API types, under their old path.
pub use crate::api as crd;
pub use crate::api::{Channel, ChannelSpec, ChannelStatus};
pub use context::Context;
pub use error::Error;
pub use metrics::Metrics;
pub use triggers::SyncRequests;

use crate::engine::{observe, tenancy};

/// How long a channel's pass waits for more watch events after the first of a burst.
const PASS_WINDOW: std::time::Duration = std::time::Duration::from_millis(300);

/// How often unused git cache entries are looked for.
const CACHE_COLLECTION_PERIOD: std::time::Duration = std::time::Duration::from_secs(3600);

/// Settings of `kubemint run`.
#[derive(Debug, Clone)]
pub struct OperatorSettings {
    /// Watch only this namespace; all namespaces when `None`.
    pub namespace: Option<String>,
    /// Where bare repositories are cached between reconciles.
    pub cache_dir: PathBuf,
    /// Cache entries nothing fetched into for this long are deleted (`--cache-max-age`).
    pub cache_max_age: std::time::Duration,
    /// Name of this instance in events (the pod name in a cluster).
    pub instance: Option<String>,
    /// The kustomize command (`--kustomize`); `None`: the default.
    pub kustomize: Option<crate::render::KustomizeCommand>,
    /// The limits of one commit (`--max-file-size`, `--max-release-size`, `--max-objects`).
    pub limits: crate::render::Limits,
    /// This cluster's name in deployment notes (`refs/notes/kubemint/<cluster>`).
    pub cluster_name: String,
    /// Impersonation and namespace limits of channels.
    pub tenancy: tenancy::TenancyPolicy,
    /// Channel passes that run at once (`--concurrency`).
    pub concurrency: u16,
    /// The rate limit of every client of the operator (`--kube-api-qps`, `--kube-api-burst`).
    pub throttle: crate::cluster::throttle::Throttle,
    /// The channels this operator takes (`--shard`): those labelled with its
    /// key, or, unsharded, those without the label.
    pub shard: crate::api::Shard,
    /// A new channel takes a poll of its group made this long before its
    /// creation (`--poll-join-window`).
    pub poll_join_window: std::time::Duration,
}

/// The default of `--concurrency`.
pub const DEFAULT_CONCURRENCY: u16 = 16;

/// The controller, built but not yet running. Its cache of channels can be
/// shared before it runs (the webhook receivers read it).
pub struct Operator {
    controller: Controller<Channel>,
    ctx: Arc<Context>,
}

impl Operator {
    /// Builds the controller. `config` is the operator's own (impersonating
    /// clients are made from it), `client` made from it. `requests` and `wake` come from [`SyncRequests::new`];
    /// webhooks and local-path watches use `requests` to ask for an immediate sync.
    pub fn new(
        config: kube::Config,
        client: Client,
        settings: &OperatorSettings,
        metrics: Arc<Metrics>,
        requests: SyncRequests,
        wake: impl futures::Stream<Item = kube::runtime::reflector::ObjectRef<Channel>> + Send + 'static,
    ) -> Self {
        let channels: Api<Channel> = match &settings.namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let reporter = Reporter {
            controller: "kubemint".into(),
            instance: settings.instance.clone(),
        };
        // Reflectors on the objects kubemint manages wake the channel an event touches.
        let (touched, events) = tokio::sync::mpsc::unbounded_channel();
        let observer =
            observe::Observer::start(client.clone(), touched.clone(), settings.namespace.clone());
        let tenancy = tenancy::Tenancy::new(
            config,
            settings.throttle.clone(),
            settings.tenancy.clone(),
            tenancy::Access {
                client: client.clone(),
                observer,
                service_account: None,
            },
            touched,
        );
        // Watch events come in bursts (a delivery touches every object): they
        // are folded into one pass per channel per window instead of one per event.
        let events = triggers::coalesced(events, PASS_WINDOW);
        let ctx = Arc::new(Context::new(
            client.clone(),
            settings,
            reporter,
            metrics,
            requests,
            tenancy,
        ));
        let controller = shards::controller(channels, &settings.shard, ctx.clone())
            .reconcile_on(events)
            .reconcile_on(wake)
            .with_config(
                kube::runtime::controller::Config::default().concurrency(settings.concurrency),
            )
            .shutdown_on_signal();
        Operator { controller, ctx }
    }

    /// The controller's cache of channels, filled once it runs.
    pub fn channels(&self) -> Store<Channel> {
        self.controller.store()
    }

    /// Runs until the process is asked to stop (SIGTERM / Ctrl-C).
    pub async fn run(self) {
        // The pull request previews: a task of their own, never in a channel's pass.
        let previews = tokio::spawn(forge::run(self.ctx.clone(), self.controller.store()));
        let (git, max_age) = (self.ctx.engine.git().clone(), self.ctx.cache_max_age);
        // Unused cache entries go at start and then every hour.
        let collector = tokio::spawn(async move {
            let mut every = tokio::time::interval(CACHE_COLLECTION_PERIOD);
            loop {
                every.tick().await;
                let removed = git.collect_garbage(max_age).await;
                if removed > 0 {
                    tracing::info!(removed, ?max_age, "deleted unused git cache entries");
                }
            }
        });
        self.controller
            .run(reconcile::reconcile, reconcile::error_policy, self.ctx)
            .for_each(|outcome| async move {
                if let Err(err) = outcome {
                    tracing::debug!(error = %err, "reconcile loop");
                }
            })
            .await;
        collector.abort();
        previews.abort();
    }
}
