//! HTTP endpoints: `/healthz`, `/readyz`, `/metrics` and the webhook receivers.

pub mod directory;
pub mod hooks;
pub mod ui;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::controller::Metrics;

/// Shared state of the HTTP server.
#[derive(Clone)]
pub struct ServerState {
    /// Metrics to serve.
    pub metrics: Arc<Metrics>,
    /// Set once the controller is connected and watching.
    pub ready: Arc<AtomicBool>,
    /// Set while this replica reconciles (always, without leader election); a
    /// standby passes webhooks on to the leader through the channel.
    pub leading: Arc<AtomicBool>,
    /// What the webhook receivers need.
    pub hooks: hooks::Hooks,
    /// The web UI's routes under `/ui/` (`kubemint run --ui`).
    pub ui: Option<Router>,
}

/// The router with every endpoint.
pub fn router(state: ServerState) -> Router {
    let ui = state.ui.clone();
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(hooks::routes())
        .with_state(state);
    match ui {
        Some(ui) => router.merge(ui),
        None => router,
    }
}

/// Binds `addr` and serves until the process ends. Returns the bound address (port 0 picks one).
pub async fn serve(addr: SocketAddr, state: ServerState) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(state)).await {
            tracing::error!(error = %e, "HTTP server stopped");
        }
    });
    Ok(bound)
}

async fn readyz(State(state): State<ServerState>) -> impl IntoResponse {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

async fn metrics(State(state): State<ServerState>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.metrics.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
