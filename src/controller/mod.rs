//! The `Channel` controller: watches channels and reconciles each one.

pub mod crd;
mod error;
mod metrics;
mod reconcile;
mod status;

use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::controller::Controller;
use kube::runtime::events::Reporter;
use kube::runtime::watcher;
use kube::{Api, Client};

pub use crd::{Channel, ChannelSpec, ChannelStatus};
pub use error::Error;
pub use metrics::Metrics;
pub use reconcile::Context;

/// Settings of `kubemint run`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Watch only this namespace; all namespaces when `None`.
    pub namespace: Option<String>,
    /// Where bare repositories are cached between reconciles.
    pub cache_dir: PathBuf,
    /// Name of this instance in events (the pod name in a cluster).
    pub instance: Option<String>,
}

/// Runs the controller until the process is asked to stop (SIGTERM / Ctrl-C).
pub async fn run(client: Client, settings: Settings, metrics: Arc<Metrics>) {
    let channels: Api<Channel> = match &settings.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let reporter = Reporter {
        controller: "kubemint".into(),
        instance: settings.instance.clone(),
    };
    let ctx = Arc::new(Context::new(client, &settings, reporter, metrics));
    Controller::new(channels, watcher::Config::default().any_semantic())
        .shutdown_on_signal()
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|outcome| async move {
            if let Err(err) = outcome {
                tracing::debug!(error = %err, "reconcile loop");
            }
        })
        .await;
}
