//! Webhook receivers: `POST /hooks/<namespace>/<channel>` asks for an immediate
//! sync of a channel that has `spec.webhook`, when the request is signed with
//! the `token` of the Secret it names and pushes the channel's ref.
//!
//! Any replica answers, whatever channels it reconciles, and checks the
//! request the same way. A push wakes every channel that follows the same
//! repository and ref, in every shard: those the receiving replica leads, in
//! memory; the others (another shard's, or all of them on a standby) through
//! a new value of their `kubemint.io/reconcile` annotation, which wakes each
//! one's own operator through its watch, as the UI's "sync now" does.

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
        Ok((provider, woken)) => {
            state.metrics.count_webhook("Accepted");
            tracing::info!(%channel, provider = provider.name(), woken_here = woken.here, annotated = woken.annotated, "webhook: sync requested");
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
) -> Result<(Provider, Woken), Rejection> {
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
    // Every channel that follows the same ref of the repository shares the
    // poll this push calls for: all of them are woken, and they poll once.
    // Those this replica reconciles are woken in memory; the others (another
    // shard's, or every one on a standby) through their annotation.
    let everyone = match hooks.directory.all().await {
        Ok(all) => all,
        // Without the list, still every follower this replica holds.
        Err(e) if route == Route::Here => {
            tracing::warn!(channel = %crate::api::channel_key(namespace, name), error = %e, "webhook: waking only this shard's channels of the repository");
            Vec::new()
        }
        Err(e) => return Err(e.into()),
    };
    let held = if leading {
        hooks.channels.state()
    } else {
        Vec::new()
    };
    let mut woken = Woken::default();
    let holds: std::collections::HashSet<String> = held.iter().map(|c| c.key()).collect();
    let known: Vec<Arc<Channel>> = everyone.into_iter().chain(held).collect();
    for (ns, follower) in followers(&known, &channel) {
        let here = holds.contains(&crate::api::channel_key(&ns, &follower));
        match self::route(leading, here) {
            Route::Here => {
                hooks.requests.request(&ns, &follower);
                woken.here += 1;
            }
            Route::Annotate => {
                forward(&hooks.client, &ns, &follower).await?;
                woken.annotated += 1;
            }
        }
    }
    Ok((provider, woken))
}

/// How many channels an accepted webhook woke, and how.
#[derive(Debug, Default, Clone, Copy)]
struct Woken {
    /// In memory, on this replica.
    here: usize,
    /// Through their `kubemint.io/reconcile` annotation.
    annotated: usize,
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

/// The channels (`(namespace, name)`) that follow the same URL and ref as
/// `channel`, itself included: a push to it is news to all of them.
fn followers(channels: &[Arc<Channel>], channel: &Channel) -> Vec<(String, String)> {
    let git = &channel.spec.git;
    channels
        .iter()
        .filter(|c| c.spec.git.url == git.url && c.spec.git.reference == git.reference)
        .chain(std::iter::once(&Arc::new(channel.clone())))
        .filter_map(|c| Some((c.metadata.namespace.clone()?, c.metadata.name.clone()?)))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(ns: &str, name: &str, url: &str, branch: &str) -> Arc<Channel> {
        let spec = serde_json::from_value(serde_json::json!({
            "git": {"url": url, "ref": {"branch": branch}, "path": name},
        }))
        .unwrap();
        let mut c = Channel::new(name, spec);
        c.metadata.namespace = Some(ns.into());
        Arc::new(c)
    }

    #[test]
    fn a_push_wakes_every_channel_that_follows_the_same_ref_of_the_repository() {
        let mono = "https://git.example.com/mono.git";
        let all = vec![
            channel("shop", "web", mono, "main"),
            channel("shop", "api", mono, "main"),
            channel("blog", "site", mono, "main"),
            channel("shop", "staging", mono, "staging"),
            channel("shop", "other", "https://git.example.com/other.git", "main"),
        ];
        let woken = followers(&all, &all[0]);
        assert_eq!(
            woken,
            [
                ("blog".to_string(), "site".to_string()),
                ("shop".to_string(), "api".to_string()),
                ("shop".to_string(), "web".to_string()),
            ]
        );
        // A channel not yet in the cache is woken all the same.
        let new = channel("shop", "new", "https://git.example.com/new.git", "main");
        assert_eq!(
            followers(&all, &new),
            [("shop".to_string(), "new".to_string())]
        );
    }

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
