//! `kubemint run`: the controller, its HTTP server (health, metrics,
//! webhooks) and, with `--leader-elect`, the election among replicas.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::api::Shard;
use crate::controller::leader::{self, LeaderElection, LeaderError};
use crate::controller::{Metrics, Operator, OperatorSettings, SyncRequests};
use crate::render::KustomizeCommand;
use crate::server::hooks::Hooks;
use crate::server::{self, ServerState};

/// `--leader-elect` and its settings.
pub struct Election {
    /// Namespace of the Lease (default: the kube context's).
    pub namespace: Option<String>,
    /// How long the Lease stays valid without renewal.
    pub lease_duration: std::time::Duration,
}

/// Why the operator stopped other than on request.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The cluster config could not be read or used.
    #[error(transparent)]
    Cli(#[from] super::CliError),
    /// The HTTP address could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The API server did not answer the first request.
    #[error("the API server does not answer: {}", crate::cluster::api_message(.0))]
    Unreachable(#[source] kube::Error),
    /// Taking part in the election failed.
    #[error(transparent)]
    Leader(#[from] LeaderError),
    /// Another replica took the lease: this one stops rather than act beside it.
    #[error("lost the leader lease {0}; exiting")]
    LostLease(String),
}

/// Runs the operator until it is asked to stop (SIGTERM, Ctrl-C).
pub async fn run(
    settings: OperatorSettings,
    http_addr: SocketAddr,
    election: Option<Election>,
    ui: bool,
) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let leading = Arc::new(AtomicBool::new(election.is_none()));
    let (requests, wake) = SyncRequests::new();
    let config = shard_config(&settings.shard).await?;
    // The operator's own client and every impersonated one share one rate limit.
    let client = settings
        .throttle
        .client(config.clone())
        .map_err(super::CliError::Connect)?;
    let operator = Operator::new(
        config,
        client.clone(),
        &settings,
        metrics.clone(),
        requests.clone(),
        wake,
    );
    let hooks = Hooks::new(
        operator.channels(),
        client.clone(),
        requests,
        settings.namespace.clone(),
    );
    // `--ui`: the UI's own watches (channels, minted ReplicaSets, channel
    // events), so pages are built from memory whichever replica leads.
    let ui = if ui {
        let caches = server::ui::Caches::start(&client, settings.namespace.as_deref()).await;
        let access = server::ui::access::Access::kubernetes(client.clone());
        // A git cache of the UI's own, beside the controller's.
        let git = server::ui::GitSide::new(
            client.clone(),
            server::ui::GitSettings {
                cache_dir: settings.cache_dir.join("ui"),
                cluster: Some(settings.cluster_name.clone()),
                allow_local_sources: settings.tenancy.allow_local_sources,
                kustomize: settings.kustomize.clone(),
                limits: settings.limits,
            },
        );
        Some(server::ui::router(caches, access, git))
    } else {
        None
    };
    let state = ServerState {
        metrics,
        ready: ready.clone(),
        leading: leading.clone(),
        hooks,
        ui,
    };
    let bound = server::serve(http_addr, state)
        .await
        .map_err(|source| RunError::Bind {
            addr: http_addr,
            source,
        })?;
    tracing::info!(%bound, "serving /healthz, /readyz, /metrics and /hooks");
    client
        .apiserver_version()
        .await
        .map_err(RunError::Unreachable)?;
    ready.store(true, Ordering::Relaxed);
    log_kustomize(settings.kustomize.as_ref());
    let Some(election) = election else {
        tracing::info!(namespace = ?settings.namespace, shard = %settings.shard, selector = %settings.shard.selector(), "watching channels");
        operator.run().await;
        return Ok(());
    };
    let election = LeaderElection {
        name: leader::lease_name(&settings.shard),
        namespace: election
            .namespace
            .unwrap_or_else(|| client.default_namespace().to_string()),
        identity: leader::identity(settings.instance.as_deref()),
        lease_duration: election.lease_duration,
    };
    tracing::info!(lease = %election.lease(), identity = %election.identity, "standby: waiting for the leader lease");
    let mut leadership = tokio::select! {
        held = election.acquire(client.clone()) => held?,
        _ = tokio::signal::ctrl_c() => return Ok(()),
        _ = terminated() => return Ok(()),
    };
    leading.store(true, Ordering::Relaxed);
    tracing::info!(lease = %election.lease(), identity = %election.identity, namespace = ?settings.namespace, shard = %settings.shard, selector = %settings.shard.selector(), "leading: watching channels");
    tokio::select! {
        () = operator.run() => {
            leadership.step_down().await;
            Ok(())
        }
        // Another replica holds the lease now: stop at once rather than act
        // beside it. The pod restarts as a standby.
        () = leadership.lost() => Err(RunError::LostLease(election.lease())),
    }
}

/// The cluster config, sending the User-Agent of `shard` (so that the audit
/// log tells the shards apart).
async fn shard_config(shard: &Shard) -> Result<kube::Config, RunError> {
    let mut config = crate::cluster::config()
        .await
        .map_err(super::CliError::Config)?;
    let agent = crate::cluster::user_agent(shard.key());
    crate::cluster::set_user_agent(&mut config, &agent)
        .expect("a shard key is a valid header value");
    Ok(config)
}

/// Says at startup which kustomize builds kustomizations, or that none can.
fn log_kustomize(configured: Option<&KustomizeCommand>) {
    let command = configured
        .cloned()
        .unwrap_or_else(KustomizeCommand::default_command);
    match command.version() {
        Some(version) => {
            tracing::info!(%command, %version, "kustomizations are built with kustomize")
        }
        None => {
            tracing::warn!(%command, "kustomize is not available: channels whose path holds a kustomization will fail until it is installed")
        }
    }
}

/// Resolves on SIGTERM (how Kubernetes stops a pod).
pub async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            term.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}
