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

/// Serves the UI on 127.0.0.1:`port` (0: any free port), channels of
/// `namespace` or of every namespace, release diffs from a git cache in
/// `cache_dir`; prints the URL, and runs until Ctrl-C.
pub async fn serve(
    namespace: Option<String>,
    port: u16,
    cache_dir: std::path::PathBuf,
    kustomize: Option<crate::render::KustomizeCommand>,
    limits: crate::render::Limits,
) -> Result<(), UiCliError> {
    let (_, client) = super::connect().await?;
    let caches = Caches::start(&client, namespace.as_deref()).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // The user's own git, as `kubemint diff` reads it: local paths are fine.
    let git = GitSide::new(
        client.clone(),
        GitSettings {
            cache_dir,
            cluster: None,
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
