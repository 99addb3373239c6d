//! The UI's HTTP routes: pages, their live fragments, sign-in, actions and
//! the embedded assets, every response with a strict Content-Security-Policy.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;

use super::access::{Access, Identified, Viewer};
use super::actions;
use super::auth::{self, AuthError};
use super::cache::Caches;
use super::git::GitSide;
use super::html::{self, Chrome};
use super::model::{self, Snapshot};
use crate::api::Channel;

const CSS: &str = include_str!("assets/ui.css");
const JS: &str = include_str!("assets/ui.js");
const ICON: &str = include_str!("assets/icon.svg");

/// No inline script or style, nothing from elsewhere, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// What the handlers share.
#[derive(Clone)]
pub struct UiState {
    /// The caches pages are built from.
    pub caches: Caches,
    /// Who may see and do what.
    pub access: Access,
    /// The release diffs and deployment notes.
    pub git: GitSide,
}

/// The UI's routes under `/ui/`, reading `caches` and `git`, authorizing with `access`.
pub fn router(caches: Caches, access: Access, git: GitSide) -> Router {
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(overview))
        .route(
            "/ui/assets/ui.css",
            get(|| asset(CSS, "text/css; charset=utf-8")),
        )
        .route(
            "/ui/assets/ui.js",
            get(|| asset(JS, "text/javascript; charset=utf-8")),
        )
        .route("/ui/assets/icon.svg", get(|| asset(ICON, "image/svg+xml")))
        .route("/ui/sign-in", get(sign_in_page).post(sign_in))
        .route("/ui/sign-out", axum::routing::post(sign_out))
        .route("/ui/{namespace}/{name}", get(timeline))
        .route("/ui/{namespace}/{name}/release/{commit}", get(release))
        .route(
            "/ui/{namespace}/{name}/do/{action}",
            get(actions::confirm).post(actions::act),
        )
        .layer(axum::middleware::map_response(secure))
        .with_state(UiState {
            caches,
            access,
            git,
        })
}

async fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // Not no-referrer: with it Chromium sends `Origin: null` on the
        // UI's own form posts, and the same-origin check needs the origin.
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn asset(body: &'static str, content_type: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// `?fragment=1`: only the page's `main`, for the live script.
#[derive(Deserialize, Default)]
pub struct View {
    #[serde(default)]
    fragment: Option<String>,
}

impl View {
    /// A full page.
    pub fn page() -> View {
        View::default()
    }
}

/// The caches' contents, held while a page is built.
pub struct Held {
    channels: Vec<Arc<Channel>>,
    replica_sets: Vec<Arc<ReplicaSet>>,
    events: Vec<Arc<Event>>,
}

impl Held {
    /// What the caches hold now.
    pub fn of(caches: &Caches) -> Held {
        Held {
            channels: caches.channels.state(),
            replica_sets: caches.replica_sets.state(),
            events: caches.events.state(),
        }
    }

    /// Keeps only the channels of namespaces `keep` says yes to.
    async fn retain_namespaces(&mut self, viewer: &Viewer) -> Result<(), AuthError> {
        let mut namespaces: Vec<String> = self
            .channels
            .iter()
            .filter_map(|c| c.metadata.namespace.clone())
            .collect();
        namespaces.sort();
        namespaces.dedup();
        let mut allowed = Vec::new();
        for ns in namespaces {
            if viewer.may("get", &ns).await? {
                allowed.push(ns);
            }
        }
        self.channels.retain(|c| {
            c.metadata
                .namespace
                .as_ref()
                .is_some_and(|ns| allowed.contains(ns))
        });
        Ok(())
    }

    /// A snapshot of it, now.
    pub fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            channels: self.channels.iter().map(|c| c.as_ref()).collect(),
            replica_sets: self.replica_sets.iter().map(|r| r.as_ref()).collect(),
            events: self.events.iter().map(|e| e.as_ref()).collect(),
            now: Some(Timestamp::now()),
        }
    }

    /// The channel `namespace/name`, if cached.
    pub fn channel(&self, namespace: &str, name: &str) -> Option<Arc<Channel>> {
        self.channels
            .iter()
            .find(|c| {
                c.metadata.namespace.as_deref() == Some(namespace)
                    && c.metadata.name.as_deref() == Some(name)
            })
            .cloned()
    }
}

/// An HTML response: the whole page, or only `main` for the live script.
pub fn respond(view: &View, status: StatusCode, chrome: &Chrome, main: String) -> Response {
    let body = if view.fragment.is_some() {
        main
    } else {
        html::page(chrome, &main)
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The page of someone who may not see `what`, or of a failed check.
pub fn refused(view: &View, status: StatusCode, viewer: Option<&Viewer>, what: &str) -> Response {
    let heading = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::CONFLICT => "Changed meanwhile",
        _ => "Not available",
    };
    let chrome = Chrome::new(heading, viewer);
    respond(view, status, &chrome, html::message(heading, what))
}

/// The viewer of a request, or the response that stands in for the page.
pub async fn viewer(state: &UiState, headers: &HeaderMap, view: &View) -> Result<Viewer, Response> {
    match Viewer::identify(&state.access, headers).await {
        Ok(Identified::Viewer(v)) => Ok(*v),
        Ok(Identified::Anonymous) if view.fragment.is_some() => {
            Err((StatusCode::UNAUTHORIZED, "sign in").into_response())
        }
        Ok(Identified::Anonymous) => Err(Redirect::to("/ui/sign-in").into_response()),
        Ok(Identified::Rejected) => {
            let mut r = sign_in_form(
                StatusCode::UNAUTHORIZED,
                Some("The token was not accepted; it may have expired."),
            );
            clear_cookie(&mut r, headers);
            Err(r)
        }
        Err(e) => Err(unavailable(view, None, &e)),
    }
}

/// A review the API server did not answer.
pub fn unavailable(view: &View, viewer: Option<&Viewer>, e: &AuthError) -> Response {
    tracing::warn!(error = %e, "UI request could not be authorized");
    refused(
        view,
        StatusCode::SERVICE_UNAVAILABLE,
        viewer,
        &e.to_string(),
    )
}

async fn overview(
    State(state): State<UiState>,
    headers: HeaderMap,
    Query(view): Query<View>,
) -> Response {
    let viewer = match viewer(&state, &headers, &view).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut held = Held::of(&state.caches);
    if let Err(e) = held.retain_namespaces(&viewer).await {
        return unavailable(&view, Some(&viewer), &e);
    }
    let snapshot = held.snapshot();
    let main = html::overview(&model::overview(&snapshot), snapshot.now);
    let chrome = Chrome::new("Channels", Some(&viewer)).live("/ui/?fragment=1");
    respond(&view, StatusCode::OK, &chrome, main)
}

/// The viewer of a request, the caches' contents and the channel
/// `namespace/name` in them, when the viewer may read it; else the response
/// that stands in for the page.
pub async fn open(
    state: &UiState,
    headers: &HeaderMap,
    view: &View,
    namespace: &str,
    name: &str,
) -> Result<(Viewer, Held, Arc<Channel>), Response> {
    let viewer = viewer(state, headers, view).await?;
    let held = Held::of(&state.caches);
    let missing = |viewer: &Viewer| {
        refused(
            view,
            StatusCode::NOT_FOUND,
            Some(viewer),
            &format!("No channel {namespace}/{name} that you may read."),
        )
    };
    match viewer.may("get", namespace).await {
        Ok(true) => match held.channel(namespace, name) {
            Some(channel) => Ok((viewer, held, channel)),
            None => Err(missing(&viewer)),
        },
        Ok(false) => Err(missing(&viewer)),
        Err(e) => Err(unavailable(view, Some(&viewer), &e)),
    }
}

async fn timeline(
    State(state): State<UiState>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
    Query(view): Query<View>,
) -> Response {
    let (viewer, held, channel) = match open(&state, &headers, &view, &namespace, &name).await {
        Ok(opened) => opened,
        Err(r) => return r,
    };
    let snapshot = held.snapshot();
    let timeline = model::timeline(&channel, &snapshot);
    let main = html::timeline(&timeline, snapshot.now);
    let path = html::channel_path(&namespace, &name);
    let live = format!("{path}?fragment=1");
    let chrome = Chrome::new(&format!("{namespace}/{name}"), Some(&viewer))
        .crumb(&path, &format!("{namespace}/{name}"))
        .live(&live);
    respond(&view, StatusCode::OK, &chrome, main)
}

async fn release(
    State(state): State<UiState>,
    headers: HeaderMap,
    Path((namespace, name, commit)): Path<(String, String, String)>,
    Query(view): Query<View>,
) -> Response {
    let (viewer, held, channel) = match open(&state, &headers, &view, &namespace, &name).await {
        Ok(opened) => opened,
        Err(r) => return r,
    };
    let snapshot = held.snapshot();
    let timeline = model::timeline(&channel, &snapshot);
    let Some(entry) = model::find_entry(&timeline, &commit) else {
        let what = format!("No release of commit {commit} in {namespace}/{name}.");
        return refused(&view, StatusCode::NOT_FOUND, Some(&viewer), &what);
    };
    let facts = state.git.facts(&channel, entry).await;
    let main = html::release(&timeline, entry, &facts, snapshot.now);
    let path = html::channel_path(&namespace, &name);
    let here = html::release_path(&namespace, &name, &commit);
    let live = format!("{here}?fragment=1");
    let chrome = Chrome::new(&format!("release {}", entry.id), Some(&viewer))
        .crumb(&path, &format!("{namespace}/{name}"))
        .crumb(&here, &format!("release {}", entry.id))
        .live(&live);
    respond(&view, StatusCode::OK, &chrome, main)
}

fn sign_in_form(status: StatusCode, message: Option<&str>) -> Response {
    let chrome = Chrome::new("Sign in", None);
    respond(&View::page(), status, &chrome, html::sign_in(message))
}

async fn sign_in_page() -> Response {
    sign_in_form(StatusCode::OK, None)
}

/// Whether cookies set for this request should be `Secure` (TLS at a proxy in front).
fn secure_request(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes() == b"https")
}

fn clear_cookie(response: &mut Response, headers: &HeaderMap) {
    let cookie = auth::session_cookie(None, secure_request(headers));
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
}

/// The sign-in form.
#[derive(Deserialize)]
struct SignIn {
    token: String,
}

async fn sign_in(
    State(state): State<UiState>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    if !auth::same_origin(&headers) {
        return refused(
            &View::page(),
            StatusCode::FORBIDDEN,
            None,
            "A request from another site was refused.",
        );
    }
    let Access::Kubernetes(reviewer) = &state.access else {
        return Redirect::to("/ui/").into_response();
    };
    let token = form.token.trim();
    if token.is_empty() {
        return sign_in_form(StatusCode::BAD_REQUEST, Some("Paste a token to sign in."));
    }
    match reviewer.authenticate(token).await {
        Ok(Some(_)) => {
            let mut r = Redirect::to("/ui/").into_response();
            let cookie = auth::session_cookie(Some(token), secure_request(&headers));
            match HeaderValue::from_str(&cookie) {
                Ok(v) => {
                    r.headers_mut().insert(header::SET_COOKIE, v);
                    r
                }
                Err(_) => sign_in_form(StatusCode::BAD_REQUEST, Some("That is not a token.")),
            }
        }
        Ok(None) => sign_in_form(
            StatusCode::UNAUTHORIZED,
            Some("The token was not accepted."),
        ),
        Err(e) => unavailable(&View::page(), None, &e),
    }
}

/// A form carrying only its CSRF token.
#[derive(Deserialize)]
pub struct Csrf {
    /// The CSRF token.
    pub csrf: String,
}

async fn sign_out(
    State(state): State<UiState>,
    headers: HeaderMap,
    Form(form): Form<Csrf>,
) -> Response {
    let view = View::page();
    let viewer = match viewer(&state, &headers, &view).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !auth::same_origin(&headers) || !viewer.csrf_valid(&form.csrf) {
        return refused(
            &view,
            StatusCode::FORBIDDEN,
            Some(&viewer),
            "A request from another site was refused.",
        );
    }
    let mut r = Redirect::to("/ui/sign-in").into_response();
    clear_cookie(&mut r, &headers);
    r
}
