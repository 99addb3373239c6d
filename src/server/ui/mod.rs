//! The web UI: an overview of channels, each channel's release timeline and a
//! page per release, server-rendered from in-memory caches (see [`cache`]),
//! readable without JavaScript; a small embedded script keeps a page live.
//!
//! Layout: [`model`] builds view models (pure), [`html`] writes them out
//! (escaping everything), [`routes`] serves them, [`cache`] feeds them, and
//! [`git`] adds what only git knows (release diffs, deployment notes).

pub mod access;
pub mod actions;
pub mod auth;
pub mod cache;
pub mod git;
pub mod html;
pub mod model;
pub mod routes;

use std::net::SocketAddr;

pub use cache::Caches;
pub use git::{GitSettings, GitSide};
pub use routes::router;

/// What can go wrong serving the UI.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// The listening socket could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Serves the UI alone (`kubemint ui`) on `addr` from `caches`; returns the
/// bound address. `/` leads to `/ui/`.
pub async fn serve(
    addr: SocketAddr,
    caches: Caches,
    access: access::Access,
    git: GitSide,
) -> Result<SocketAddr, UiError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| UiError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| UiError::Bind { addr, source })?;
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(|| async { axum::response::Redirect::to("/ui/") }),
        )
        .merge(router(caches, access, git));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "UI server stopped");
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests;
