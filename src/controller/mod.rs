//! The `Channel` controller: watches channels and reconciles each one.

pub mod crd;
mod error;
pub mod leader;
mod metrics;
mod reconcile;
mod release;
pub mod source;
mod status;
mod triggers;

use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::runtime::controller::Controller;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use crate::rollout::{CHANNEL_LABEL, REVISION_LABEL};

pub use crd::{Channel, ChannelSpec, ChannelStatus};
pub use error::Error;
pub use metrics::Metrics;
pub use reconcile::Context;
pub use triggers::SyncRequests;

/// Settings of `kubemint run`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Watch only this namespace; all namespaces when `None`.
    pub namespace: Option<String>,
    /// Where bare repositories are cached between reconciles.
    pub cache_dir: PathBuf,
    /// Name of this instance in events (the pod name in a cluster).
    pub instance: Option<String>,
    /// The kustomize command (`--kustomize`); `None`: the default.
    pub kustomize: Option<crate::render::KustomizeCommand>,
}

/// The controller, built but not yet running. Its cache of channels can be
/// shared before it runs (the webhook receivers read it).
pub struct Operator {
    controller: Controller<Channel>,
    ctx: Arc<Context>,
}

impl Operator {
    /// Builds the controller. `requests` and `wake` come from [`SyncRequests::new`];
    /// webhooks and local-path watches use `requests` to ask for an immediate sync.
    pub fn new(
        client: Client,
        settings: &Settings,
        metrics: Arc<Metrics>,
        requests: SyncRequests,
        wake: impl futures::Stream<Item = ()> + Send + 'static,
    ) -> Self {
        let channels: Api<Channel> = match &settings.namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let reporter = Reporter {
            controller: "kubemint".into(),
            instance: settings.instance.clone(),
        };
        let ctx = Arc::new(Context::new(
            client.clone(),
            settings,
            reporter,
            metrics,
            requests,
        ));
        // Revisions report readiness through their ReplicaSets: watch them (labelled
        // with their channel) instead of polling.
        let replica_sets: Api<ReplicaSet> = Api::all(client);
        let revisions =
            watcher::Config::default().labels(&format!("{CHANNEL_LABEL},{REVISION_LABEL}"));
        let controller = Controller::new(channels, watcher::Config::default().any_semantic())
            .watches(replica_sets, revisions, |rs| channel_of(&rs))
            .reconcile_all_on(wake)
            .shutdown_on_signal();
        Operator { controller, ctx }
    }

    /// The controller's cache of channels, filled once it runs.
    pub fn channels(&self) -> Store<Channel> {
        self.controller.store()
    }

    /// Runs until the process is asked to stop (SIGTERM / Ctrl-C).
    pub async fn run(self) {
        self.controller
            .run(reconcile::reconcile, reconcile::error_policy, self.ctx)
            .for_each(|outcome| async move {
                if let Err(err) = outcome {
                    tracing::debug!(error = %err, "reconcile loop");
                }
            })
            .await;
    }
}

/// The channel a minted object belongs to, from its `kubemint.io/channel` label
/// (`<namespace>.<name>`; namespaces cannot contain dots, names can).
fn channel_of(obj: &impl ResourceExt) -> Option<ObjectRef<Channel>> {
    let (namespace, name) = obj.labels().get(CHANNEL_LABEL)?.split_once('.')?;
    Some(ObjectRef::new(name).within(namespace))
}
