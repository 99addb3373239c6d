//! `kubemint ui`: the web UI on 127.0.0.1, reading with the user's own
//! kubeconfig, as `kubectl proxy` does.

use std::net::SocketAddr;
use std::time::Duration;

use crate::server::ui::{self, access::Access, Caches, GitSettings, GitSide, UiError};

/// Why `kubemint ui` stopped.
#[derive(Debug, thiserror::Error)]
pub enum UiCliError {
    /// The cluster could not be reached.
    #[error(transparent)]
    Cli(#[from] super::CliError),
    /// The UI could not be served.
    #[error(transparent)]
    Serve(#[from] UiError),
}

/// What `kubemint ui` was asked.
pub struct UiOptions {
    /// Only channels of this namespace (`None`: every namespace).
    pub namespace: Option<String>,
    /// Port on 127.0.0.1 (0: any free port).
    pub port: u16,
    /// This cluster's name in deployment notes, if the user said.
    pub cluster_name: Option<String>,
    /// The git cache of release diffs.
    pub cache_dir: std::path::PathBuf,
    /// The kustomize command (`None`: the default).
    pub kustomize: Option<crate::render::KustomizeCommand>,
    /// The limits of one commit.
    pub limits: crate::render::Limits,
}

/// Serves the UI as `options` say; prints the URL, and runs until Ctrl-C.
pub async fn serve(options: UiOptions) -> Result<(), UiCliError> {
    let UiOptions {
        namespace,
        port,
        cluster_name,
        cache_dir,
        kustomize,
        limits,
    } = options;
    let (_, client) = super::connect().await?;
    let caches = Caches::start(&client, namespace.as_deref()).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // The user's own git, as `kubemint diff` reads it: local paths are fine.
    let git = GitSide::new(
        client.clone(),
        GitSettings {
            cache_dir,
            cluster: cluster_name,
            allow_local_sources: true,
            kustomize,
            limits,
        },
    );
    let bound = ui::serve(addr, caches.clone(), Access::local(client), git).await?;
    if !caches.wait_ready(Duration::from_secs(30)).await {
        eprintln!("warning: the caches have not listed everything yet (permissions?); pages may be incomplete");
    }
    println!("kubemint UI: http://{bound}/ui/");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = super::run::terminated() => {}
    }
    Ok(())
}
