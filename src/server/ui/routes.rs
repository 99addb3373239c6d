//! The UI's HTTP routes: pages, their live fragments and the embedded assets,
//! every response with a strict Content-Security-Policy.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;

use super::cache::Caches;
use super::html;
use super::model::{self, Snapshot};
use crate::api::Channel;

const CSS: &str = include_str!("assets/ui.css");
const JS: &str = include_str!("assets/ui.js");
const ICON: &str = include_str!("assets/icon.svg");

/// No inline script or style, nothing from elsewhere, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// The UI's routes under `/ui/`, reading `caches`.
pub fn router(caches: Caches) -> Router {
    Router::new()
        .route(
            "/ui",
            get(|| async { axum::response::Redirect::to("/ui/") }),
        )
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
        .route("/ui/{namespace}/{name}", get(timeline))
        .route("/ui/{namespace}/{name}/release/{commit}", get(release))
        .layer(axum::middleware::map_response(secure))
        .with_state(caches)
}

async fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
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
struct View {
    #[serde(default)]
    fragment: Option<String>,
}

/// The caches' contents, held while a page is built.
struct Held {
    channels: Vec<Arc<Channel>>,
    replica_sets: Vec<Arc<ReplicaSet>>,
    events: Vec<Arc<Event>>,
}

impl Held {
    fn of(caches: &Caches) -> Held {
        Held {
            channels: caches.channels.state(),
            replica_sets: caches.replica_sets.state(),
            events: caches.events.state(),
        }
    }

    fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            channels: self.channels.iter().map(|c| c.as_ref()).collect(),
            replica_sets: self.replica_sets.iter().map(|r| r.as_ref()).collect(),
            events: self.events.iter().map(|e| e.as_ref()).collect(),
            now: Some(Timestamp::now()),
        }
    }

    fn channel(&self, namespace: &str, name: &str) -> Option<&Channel> {
        self.channels.iter().map(|c| c.as_ref()).find(|c| {
            c.metadata.namespace.as_deref() == Some(namespace)
                && c.metadata.name.as_deref() == Some(name)
        })
    }
}

fn respond(
    view: &View,
    status: StatusCode,
    title: &str,
    crumbs: &[(String, String)],
    main: String,
    live: Option<&str>,
) -> Response {
    let body = if view.fragment.is_some() {
        main
    } else {
        html::page(title, crumbs, &main, live)
    };
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn overview(State(caches): State<Caches>, Query(view): Query<View>) -> Response {
    let held = Held::of(&caches);
    let snapshot = held.snapshot();
    let main = html::overview(&model::overview(&snapshot), snapshot.now);
    respond(
        &view,
        StatusCode::OK,
        "Channels",
        &[],
        main,
        Some("/ui/?fragment=1"),
    )
}

fn missing(view: &View, what: &str) -> Response {
    respond(
        view,
        StatusCode::NOT_FOUND,
        "Not found",
        &[],
        html::not_found(what),
        None,
    )
}

async fn timeline(
    State(caches): State<Caches>,
    Path((namespace, name)): Path<(String, String)>,
    Query(view): Query<View>,
) -> Response {
    let held = Held::of(&caches);
    let Some(channel) = held.channel(&namespace, &name) else {
        return missing(
            &view,
            &format!("No channel {namespace}/{name} that you may read."),
        );
    };
    let snapshot = held.snapshot();
    let timeline = model::timeline(channel, &snapshot);
    let main = html::timeline(&timeline, snapshot.now);
    let path = html::channel_path(&namespace, &name);
    let crumbs = [(path.clone(), format!("{namespace}/{name}"))];
    let live = format!("{path}?fragment=1");
    respond(
        &view,
        StatusCode::OK,
        &format!("{namespace}/{name}"),
        &crumbs,
        main,
        Some(&live),
    )
}

async fn release(
    State(caches): State<Caches>,
    Path((namespace, name, commit)): Path<(String, String, String)>,
    Query(view): Query<View>,
) -> Response {
    let held = Held::of(&caches);
    let Some(channel) = held.channel(&namespace, &name) else {
        return missing(
            &view,
            &format!("No channel {namespace}/{name} that you may read."),
        );
    };
    let snapshot = held.snapshot();
    let timeline = model::timeline(channel, &snapshot);
    let Some(entry) = model::find_entry(&timeline, &commit) else {
        return missing(
            &view,
            &format!("No release of commit {commit} in {namespace}/{name}."),
        );
    };
    let main = html::release(&timeline, entry, snapshot.now);
    let path = html::channel_path(&namespace, &name);
    let here = html::release_path(&namespace, &name, &commit);
    let crumbs = [
        (path, format!("{namespace}/{name}")),
        (here.clone(), format!("release {}", entry.id)),
    ];
    let live = format!("{here}?fragment=1");
    respond(
        &view,
        StatusCode::OK,
        &format!("release {}", entry.id),
        &crumbs,
        main,
        Some(&live),
    )
}
