//! `kubemint ui`: the web UI on 127.0.0.1, reading with the user's own
//! kubeconfig, as `kubectl proxy` does.

use std::net::SocketAddr;
use std::time::Duration;

use crate::server::ui::{self, access::Access, Caches, UiError};

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
/// `namespace` or of every namespace; prints the URL, and runs until Ctrl-C.
pub async fn serve(namespace: Option<String>, port: u16) -> Result<(), UiCliError> {
    let (_, client) = super::connect().await?;
    let caches = Caches::start(&client, namespace.as_deref()).await;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let bound = ui::serve(addr, caches.clone(), Access::local(client)).await?;
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
