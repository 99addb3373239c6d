//! Actions on a channel, each behind a confirmation page, a same-origin check,
//! a CSRF token and the verb it needs: sync now (`kubemint.io/reconcile`) and
//! approving a held prune (`kubemint.io/approve-prune`). Both are annotations
//! the operator already acts on, so the UI only patches the Channel.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use kube::api::{Api, Patch, PatchParams};
use serde::Deserialize;
use serde_json::json;

use super::auth;
use super::html::{self, Chrome};
use super::model;
use super::routes::{readable, refused, respond, unavailable, viewer, Held, UiState, View};
use crate::api::{Channel, APPROVE_PRUNE_ANNOTATION, RECONCILE_ANNOTATION};

/// What a user can ask of a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Sync now.
    Sync,
    /// Approve the commit the prune guard holds.
    ApprovePrune,
}

impl Action {
    /// The action named in the URL.
    pub fn parse(name: &str) -> Option<Action> {
        match name {
            "sync" => Some(Action::Sync),
            "approve-prune" => Some(Action::ApprovePrune),
            _ => None,
        }
    }

    /// Its name in URLs.
    pub fn name(self) -> &'static str {
        match self {
            Action::Sync => "sync",
            Action::ApprovePrune => "approve-prune",
        }
    }

    /// The verb on `channels` it needs (what `kubectl annotate` needs).
    pub fn verb(self) -> &'static str {
        "patch"
    }

    /// The button's words.
    pub fn label(self) -> &'static str {
        match self {
            Action::Sync => "Sync now",
            Action::ApprovePrune => "Approve the prune",
        }
    }
}

/// The merge patch that carries out `action` at `now`, given the commit the
/// channel holds now (`held`) and the one the form was confirmed for.
pub fn patch_for(
    action: Action,
    now: &str,
    held: Option<&str>,
    confirmed: Option<&str>,
) -> Result<serde_json::Value, &'static str> {
    match action {
        Action::Sync => Ok(json!({"metadata": {"annotations": {RECONCILE_ANNOTATION: now}}})),
        Action::ApprovePrune => match (held, confirmed) {
            (Some(h), Some(c)) if h == c => {
                Ok(json!({"metadata": {"annotations": {APPROVE_PRUNE_ANNOTATION: h}}}))
            }
            (None, _) => Err("The channel holds no prune now."),
            _ => {
                Err("The channel now holds another commit than the one you confirmed; look again.")
            }
        },
    }
}

/// The form of a confirmed action.
#[derive(Deserialize)]
pub struct ActForm {
    csrf: String,
    #[serde(default)]
    commit: Option<String>,
}

/// GET: the confirmation page of an action.
pub async fn confirm(
    State(state): State<UiState>,
    headers: HeaderMap,
    Path((namespace, name, action)): Path<(String, String, String)>,
) -> Response {
    let view = View::page();
    let viewer = match viewer(&state, &headers, &view).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(action) = Action::parse(&action) else {
        return refused(
            &view,
            StatusCode::NOT_FOUND,
            Some(&viewer),
            "No such action.",
        );
    };
    let held = Held::of(&state.caches);
    let channel = match readable(&held, &viewer, &view, &namespace, &name).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let summary = model::summary(channel, &model::Revisions::new(&[]), None);
    let path = html::channel_path(&namespace, &name);
    let chrome =
        Chrome::new(action.label(), Some(&viewer)).crumb(&path, &format!("{namespace}/{name}"));
    let main = html::confirm(&summary, action, &viewer.csrf());
    respond(&view, StatusCode::OK, &chrome, main)
}

/// POST: carries out a confirmed action.
pub async fn act(
    State(state): State<UiState>,
    headers: HeaderMap,
    Path((namespace, name, action)): Path<(String, String, String)>,
    Form(form): Form<ActForm>,
) -> Response {
    let view = View::page();
    let viewer = match viewer(&state, &headers, &view).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if !auth::same_origin(&headers) || !viewer.csrf_valid(&form.csrf) {
        let what = "A request from another site (or an expired form) was refused.";
        return refused(&view, StatusCode::FORBIDDEN, Some(&viewer), what);
    }
    let Some(action) = Action::parse(&action) else {
        return refused(
            &view,
            StatusCode::NOT_FOUND,
            Some(&viewer),
            "No such action.",
        );
    };
    let held = Held::of(&state.caches);
    let channel = match readable(&held, &viewer, &view, &namespace, &name).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match viewer.may(action.verb(), &namespace).await {
        Ok(true) => {}
        Ok(false) => {
            let what = format!(
                "You may not {} channels in namespace {namespace}, which {} needs.",
                action.verb(),
                action.label().to_lowercase()
            );
            return refused(&view, StatusCode::FORBIDDEN, Some(&viewer), &what);
        }
        Err(e) => return unavailable(&view, Some(&viewer), &e),
    }
    let summary = model::summary(channel, &model::Revisions::new(&[]), None);
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let patch = match patch_for(
        action,
        &now,
        summary.held_commit.as_deref(),
        form.commit.as_deref(),
    ) {
        Ok(p) => p,
        Err(why) => return refused(&view, StatusCode::CONFLICT, Some(&viewer), why),
    };
    let api: Api<Channel> = Api::namespaced(state.access.client().clone(), &namespace);
    if let Err(e) = api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        let what = format!(
            "{} failed: {}",
            action.label(),
            crate::cluster::api_message(&e)
        );
        return refused(&view, StatusCode::BAD_GATEWAY, Some(&viewer), &what);
    }
    tracing::info!(
        user = viewer.name().unwrap_or("(local)"),
        channel = %format!("{namespace}/{name}"),
        action = action.name(),
        "UI action"
    );
    Redirect::to(&html::channel_path(&namespace, &name)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_patch_the_annotations_the_operator_reads() {
        let now = "2026-12-04T14:00:00Z";
        assert_eq!(
            patch_for(Action::Sync, now, None, None).unwrap(),
            json!({"metadata": {"annotations": {"kubemint.io/reconcile": now}}})
        );
        assert_eq!(
            patch_for(Action::ApprovePrune, now, Some("abc"), Some("abc")).unwrap(),
            json!({"metadata": {"annotations": {"kubemint.io/approve-prune": "abc"}}})
        );
        assert!(patch_for(Action::ApprovePrune, now, Some("abc"), Some("def")).is_err());
        assert!(patch_for(Action::ApprovePrune, now, None, Some("abc")).is_err());
        assert!(patch_for(Action::ApprovePrune, now, Some("abc"), None).is_err());
        assert_eq!(Action::parse("sync"), Some(Action::Sync));
        assert_eq!(Action::parse("delete"), None);
    }
}
