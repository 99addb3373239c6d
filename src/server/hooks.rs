//! Webhook receivers: `POST /hooks/<namespace>/<channel>` asks for an immediate
//! sync of a channel that has `spec.webhook`, when the request is signed with
//! the `token` of the Secret it names and pushes the channel's ref.
//!
//! Any replica answers, whatever channels it reconciles: the leader of the
//! channel's shard queues the sync in memory; any other replica (a standby,
//! another shard's) checks the request the same way and then sets the
//! channel's `kubemint.io/reconcile` annotation, which wakes the channel's own
//! operator through its watch, as the UI's "sync now" does.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};

use super::directory::{Directory, DirectoryError};
use super::ServerState;
use crate::controller::{Channel, SyncRequests};
use crate::source::webhook::{self, Provider, WebhookError, MAX_BODY_BYTES};
use crate::source::RefRequest;

/// Key of the webhook Secret that holds the shared token.
pub const TOKEN_KEY: &str = "token";

/// How long a token read from its Secret is reused. Unauthenticated requests
/// must not become one API read each; a rotated token takes effect within this.
const TOKEN_TTL: Duration = Duration::from_secs(10);

/// Field manager of the annotation a forwarded webhook sets.
pub const FIELD_MANAGER: &str = "kubemint-webhook";

/// What the receivers need: the controller's channel cache and a directory of
/// every channel (no API read per request), a client for the Secret and the
/// forwarding annotation, and the handle that asks for syncs.
#[derive(Clone)]
pub struct Hooks {
    channels: Store<Channel>,
    directory: Directory,
    client: Client,
    requests: SyncRequests,
    tokens: TokenCache,
}

impl Hooks {
    /// Receivers reading channels from the controller's cache (else from a
    /// directory of `namespace`'s channels, or every namespace's) and Secrets
    /// with `client`.
    pub fn new(
        channels: Store<Channel>,
        client: Client,
        requests: SyncRequests,
        namespace: Option<String>,
    ) -> Self {
        Hooks {
            channels,
            directory: Directory::new(client.clone(), namespace),
            client,
            requests,
            tokens: TokenCache::default(),
        }
    }
}

/// How an accepted webhook reaches the operator that reconciles the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// This replica: a sync request in memory, no API write.
    Here,
    /// Another replica or shard: the `kubemint.io/reconcile` annotation.
    Annotate,
}

/// The route of a webhook for a channel, received by a replica that is
/// `leading` (or runs without election) and whose controller cache `holds`
/// the channel (so it is this shard's). Only a leader's cache is filled.
pub fn route(leading: bool, holds: bool) -> Route {
    if leading && holds {
        Route::Here
    } else {
        Route::Annotate
    }
}

/// A token (`None`: the Secret was unusable) and when it was read.
type Cached = (Instant, Option<Vec<u8>>);

/// Webhook tokens by Secret (`namespace/name`). Unusable Secrets are remembered
/// too, so that requests for them do not each cost an API read and a warning.
#[derive(Clone, Default)]
struct TokenCache {
    entries: Arc<Mutex<HashMap<String, Cached>>>,
}

impl TokenCache {
    /// `Some(None)`: the Secret was read recently and was unusable.
    fn get(&self, key: &str, now: Instant) -> Option<Option<Vec<u8>>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (read_at, token) = entries.get(key)?;
        (now.duration_since(*read_at) < TOKEN_TTL).then(|| token.clone())
    }

    fn put(&self, key: &str, token: Option<&[u8]>, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|_, (read_at, _)| now.duration_since(*read_at) < TOKEN_TTL);
        entries.insert(key.to_string(), (now, token.map(<[u8]>::to_vec)));
    }
}

/// Why a request did not trigger a sync. Variants give the status code and metric label.
#[derive(Debug, thiserror::Error)]
enum Rejection {
    /// Unknown channel, or a channel without `spec.webhook`. One answer for both,
    /// so an unauthenticated caller learns nothing about which channels exist.
    #[error("no webhook receiver here")]
    NotFound,
    /// The webhook Secret is missing or has no `token`; details go to the log only.
    #[error("the receiver's secret is not available; see the operator's log")]
    SecretUnavailable,
    /// The request failed authentication or could not be read.
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    /// Authentic, but not a push to the channel's ref.
    #[error("{0}")]
    Ignored(String),
    /// This replica cannot look channels up yet.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// Authentic, but the annotation that passes it on could not be written;
    /// details go to the log only.
    #[error("the sync could not be passed on to the channel's operator; see this operator's log")]
    Forward,
}

impl Rejection {
    fn status(&self) -> StatusCode {
        match self {
            Rejection::NotFound => StatusCode::NOT_FOUND,
            Rejection::SecretUnavailable => StatusCode::INTERNAL_SERVER_ERROR,
            Rejection::Webhook(WebhookError::BadPayload(_)) => StatusCode::BAD_REQUEST,
            Rejection::Webhook(_) => StatusCode::UNAUTHORIZED,
            Rejection::Ignored(_) => StatusCode::OK,
            Rejection::Forward => StatusCode::BAD_GATEWAY,
            Rejection::Directory(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            Rejection::NotFound => "NotFound",
            Rejection::SecretUnavailable => "SecretUnavailable",
            Rejection::Webhook(e) => e.reason(),
            Rejection::Ignored(_) => "Ignored",
            Rejection::Forward => "ForwardFailed",
            Rejection::Directory(_) => "NotListed",
        }
    }
}

/// The receiver routes; bodies over [`MAX_BODY_BYTES`] get 413 before any work.
pub fn routes() -> Router<ServerState> {
    Router::new()
        .route("/hooks/{namespace}/{name}", post(receive))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

async fn receive(
    State(state): State<ServerState>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let channel = crate::api::channel_key(&namespace, &name);
    let leading = state.leading.load(Ordering::Relaxed);
    match handle(&state.hooks, leading, &namespace, &name, &headers, &body).await {
        Ok((provider, route)) => {
            state.metrics.count_webhook("Accepted");
            tracing::info!(%channel, provider = provider.name(), ?route, "webhook: sync requested");
            (
                StatusCode::ACCEPTED,
                format!("sync of {channel} requested\n"),
            )
                .into_response()
        }
        Err(rejection) => {
            state.metrics.count_webhook(rejection.reason());
            tracing::info!(%channel, reason = rejection.reason(), detail = %rejection, "webhook: no sync");
            (rejection.status(), format!("{rejection}\n")).into_response()
        }
    }
}

async fn handle(
    hooks: &Hooks,
    leading: bool,
    namespace: &str,
    name: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Provider, Route), Rejection> {
    let held = hooks.channels.get(&ObjectRef::new(name).within(namespace));
    let route = route(leading, held.is_some());
    let channel = match (route, held) {
        (Route::Here, Some(channel)) => channel,
        _ => hooks
            .directory
            .get(namespace, name)
            .await?
            .ok_or(Rejection::NotFound)?,
    };
    let secret = channel
        .spec
        .webhook
        .as_ref()
        .ok_or(Rejection::NotFound)?
        .secret_ref
        .name
        .clone();
    let key = format!("{namespace}/{secret}");
    let token = match hooks.tokens.get(&key, Instant::now()) {
        Some(Some(token)) => token,
        Some(None) => return Err(Rejection::SecretUnavailable),
        None => {
            let token = read_token(&hooks.client, namespace, &secret).await;
            hooks
                .tokens
                .put(&key, token.as_deref().ok(), Instant::now());
            token?
        }
    };
    let provider = webhook::authenticate(headers, body, &token)?;
    let event = webhook::event(provider, headers, body)?;
    // An unusable ref is the controller's to report; any push then triggers, and
    // the sync will say what is wrong with spec.git.ref.
    if let Ok(followed) = RefRequest::from_spec(&channel.spec.git.reference) {
        webhook::should_sync(&followed, &event).map_err(Rejection::Ignored)?;
    }
    match route {
        Route::Here => hooks.requests.request(namespace, name),
        Route::Annotate => forward(&hooks.client, namespace, name).await?,
    }
    Ok((provider, route))
}

/// Asks the channel's own operator for a sync through its watch.
async fn forward(client: &Client, namespace: &str, name: &str) -> Result<(), Rejection> {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    Api::<Channel>::namespaced(client.clone(), namespace)
        .patch(
            name,
            &params,
            &Patch::Merge(crate::api::sync_request_patch(&now)),
        )
        .await
        .map_err(|e| {
            tracing::warn!(channel = %crate::api::channel_key(namespace, name), error = %crate::cluster::api_message(&e), "webhook: could not annotate the channel to pass the sync on; the operator needs patch on channels");
            Rejection::Forward
        })?;
    Ok(())
}

async fn read_token(client: &Client, namespace: &str, secret: &str) -> Result<Vec<u8>, Rejection> {
    let unavailable = |why: String| {
        tracing::warn!(secret = %format!("{namespace}/{secret}"), %why, "webhook Secret unusable (spec.webhook.secretRef)");
        Rejection::SecretUnavailable
    };
    crate::cluster::secret_data(client, namespace, secret)
        .await
        .map_err(|e| unavailable(e.to_string()))?
        .remove(TOKEN_KEY)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unavailable(format!("it has no `{TOKEN_KEY}` key")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_leader_holding_the_channel_syncs_in_memory() {
        for (leading, holds, want) in [
            (true, true, Route::Here),
            // Another shard's channel, or not listed yet: its operator is told.
            (true, false, Route::Annotate),
            // A standby's cache is empty; its leader is told.
            (false, false, Route::Annotate),
            (false, true, Route::Annotate),
        ] {
            assert_eq!(
                route(leading, holds),
                want,
                "leading {leading}, holds {holds}"
            );
        }
    }

    #[test]
    fn tokens_are_reused_until_they_expire() {
        let cache = TokenCache::default();
        let t0 = Instant::now();
        assert_eq!(cache.get("ns/hook", t0), None);
        cache.put("ns/hook", Some(b"tok"), t0);
        assert_eq!(
            cache.get("ns/hook", t0 + Duration::from_secs(9)),
            Some(Some(b"tok".to_vec()))
        );
        assert_eq!(cache.get("ns/hook", t0 + TOKEN_TTL), None);
        assert_eq!(cache.get("ns/other", t0), None);
        // An unusable Secret is remembered as such, for as long.
        cache.put("ns/missing", None, t0);
        assert_eq!(cache.get("ns/missing", t0), Some(None));
        assert_eq!(cache.get("ns/missing", t0 + TOKEN_TTL), None);
        // Expired entries go when another is stored.
        cache.put("ns/other", Some(b"x"), t0 + TOKEN_TTL);
        assert_eq!(cache.entries.lock().unwrap().len(), 1);
    }
}
