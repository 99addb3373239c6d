//! Actions on a channel, each behind a confirmation page, a same-origin check,
//! a CSRF token and the verbs it needs: sync now (`kubemint.io/reconcile`),
//! approving a held prune (`kubemint.io/approve-prune`), both annotations the
//! operator already acts on, and reverting a release: the commit
//! `kubemint revert --release <id> --push` makes, pushed with the channel's
//! credentials.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use kube::api::{Api, Patch, PatchParams};
use serde::Deserialize;
use serde_json::json;

use super::access::Viewer;
use super::auth::{self, Check};
use super::html::{self, Chrome};
use super::model;
use super::routes::{open, refused, respond, unavailable, UiState, View};
use crate::api::{Channel, APPROVE_PRUNE_ANNOTATION};
use crate::revert::{ChannelRevert, RevertError, Target, Workdir};

/// What a user can ask of a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Sync now.
    Sync,
    /// Approve the commit the prune guard holds.
    ApprovePrune,
    /// Revert a release in git.
    Revert,
}

impl Action {
    /// The action named in the URL.
    pub fn parse(name: &str) -> Option<Action> {
        match name {
            "sync" => Some(Action::Sync),
            "approve-prune" => Some(Action::ApprovePrune),
            "revert" => Some(Action::Revert),
            _ => None,
        }
    }

    /// Its name in URLs.
    pub fn name(self) -> &'static str {
        match self {
            Action::Sync => "sync",
            Action::ApprovePrune => "approve-prune",
            Action::Revert => "revert",
        }
    }

    /// The verb on `channels` it needs: what `kubectl annotate` needs; a
    /// revert also needs `get` on the channel's git Secret (see [`act`]).
    pub fn verb(self) -> &'static str {
        "patch"
    }

    /// The button's words.
    pub fn label(self) -> &'static str {
        match self {
            Action::Sync => "Sync now",
            Action::ApprovePrune => "Approve the prune",
            Action::Revert => "Revert the release",
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
        Action::Sync => Ok(crate::api::sync_request_patch(now)),
        Action::ApprovePrune => match (held, confirmed) {
            (Some(h), Some(c)) if h == c => {
                Ok(json!({"metadata": {"annotations": {APPROVE_PRUNE_ANNOTATION: h}}}))
            }
            (None, _) => Err("The channel holds no prune now."),
            _ => {
                Err("The channel now holds another commit than the one you confirmed; look again.")
            }
        },
        Action::Revert => Err("A revert is a commit in git, not a patch."),
    }
}

/// The form of a confirmed action.
#[derive(Deserialize)]
pub struct ActForm {
    csrf: String,
    #[serde(default)]
    commit: Option<String>,
}

/// `?commit=`: the release (by its commit) an action is about.
#[derive(Deserialize, Default)]
pub struct About {
    #[serde(default)]
    commit: Option<String>,
}

/// The action named in the URL, the viewer and the channel, or the refusal.
async fn prelude(
    state: &UiState,
    headers: &HeaderMap,
    namespace: &str,
    name: &str,
    action: &str,
) -> Result<(Action, Viewer, std::sync::Arc<Channel>), Response> {
    let view = View::page();
    let action = Action::parse(action)
        .ok_or_else(|| refused(&view, StatusCode::NOT_FOUND, None, "No such action."))?;
    let (viewer, _, channel) = open(state, headers, &view, namespace, name).await?;
    Ok((action, viewer, channel))
}

/// GET: the confirmation page of an action.
pub async fn confirm(
    State(state): State<UiState>,
    headers: HeaderMap,
    Path((namespace, name, action)): Path<(String, String, String)>,
    Query(about): Query<About>,
) -> Response {
    let view = View::page();
    let (action, viewer, channel) =
        match prelude(&state, &headers, &namespace, &name, &action).await {
            Ok(found) => found,
            Err(r) => return r,
        };
    let channel = channel.as_ref();
    let summary = model::summary(channel, &model::Revisions::new(&[]), None);
    let path = html::channel_path(&namespace, &name);
    let chrome =
        Chrome::new(action.label(), Some(&viewer)).crumb(&path, &format!("{namespace}/{name}"));
    let release = match (action, about.commit.as_deref()) {
        (Action::Revert, Some(commit)) => {
            let timeline = model::timeline(channel, &model::Snapshot::default());
            match model::find_entry(&timeline, commit) {
                Some(e) => Some(e.clone()),
                None => {
                    let what = format!("No release of commit {commit} in {namespace}/{name}.");
                    return refused(&view, StatusCode::NOT_FOUND, Some(&viewer), &what);
                }
            }
        }
        (Action::Revert, None) => {
            return refused(
                &view,
                StatusCode::NOT_FOUND,
                Some(&viewer),
                "Which release?",
            );
        }
        _ => None,
    };
    let main = html::confirm(&summary, action, release.as_ref(), &viewer.csrf());
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
    let (action, viewer, channel) =
        match prelude(&state, &headers, &namespace, &name, &action).await {
            Ok(found) => found,
            Err(r) => return r,
        };
    let channel = channel.as_ref();
    if !auth::same_origin(&headers) || !viewer.csrf_valid(&form.csrf) {
        let what = "A request from another site (or an expired form) was refused.";
        return refused(&view, StatusCode::FORBIDDEN, Some(&viewer), what);
    }
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
    if action == Action::Revert {
        return match revert(&state, &viewer, channel, form.commit.as_deref()).await {
            Ok(()) => Redirect::to(&html::channel_path(&namespace, &name)).into_response(),
            Err((status, why)) => refused(&view, status, Some(&viewer), &why),
        };
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

/// Reverts the release of `commit` as `kubemint revert --release <id> --push`
/// does, with the channel's credentials, when the viewer may read them.
async fn revert(
    state: &UiState,
    viewer: &Viewer,
    channel: &Channel,
    commit: Option<&str>,
) -> Result<(), (StatusCode, String)> {
    let ns = channel.metadata.namespace.clone().unwrap_or_default();
    let key = channel.key();
    let status = channel.status.clone().unwrap_or_default();
    let record = commit
        .filter(|c| !c.is_empty())
        .and_then(|c| status.releases.iter().find(|r| r.commit.sha.starts_with(c)))
        .ok_or((StatusCode::NOT_FOUND, "No such release.".to_string()))?;
    // Pushing with the channel's credentials is as good as reading them.
    if let Some(secret) = &channel.spec.git.secret_ref {
        let check = Check {
            group: "",
            resource: "secrets",
            verb: "get",
            namespace: &ns,
            name: Some(&secret.name),
        };
        match viewer.may_do(&check).await {
            Ok(true) => {}
            Ok(false) => {
                return Err((
                    StatusCode::FORBIDDEN,
                    format!(
                        "You may not get the Secret {} in namespace {ns}, whose credentials push the revert.",
                        secret.name
                    ),
                ))
            }
            Err(e) => return Err((StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
        }
    }
    let credentials = crate::engine::source::credentials(state.access.client(), channel)
        .await
        .map_err(|e| {
            let why = match e {
                crate::engine::Error::Source(e) => e.to_string(),
                other => format!("git credentials (spec.git.secretRef): {other}"),
            };
            (StatusCode::BAD_GATEWAY, why)
        })?;
    let bad = |e: RevertError| (StatusCode::CONFLICT, e.to_string());
    // On the operator, the user is the author; locally, git config says who.
    let author = viewer.name().map(|user| {
        (
            format!("{user} (kubemint UI)"),
            "kubemint@localhost".to_string(),
        )
    });
    let reverted = ChannelRevert::of(channel, &status, &Target::Release(record.id.clone()))
        .map_err(bad)?
        .author(author)
        .workdir(Workdir::Scratch("kubemint-ui-revert-"))
        .push(true)
        .run(credentials)
        .await
        .map_err(bad)?
        .reverted;
    tracing::info!(
        user = viewer.name().unwrap_or("(local)"),
        channel = %key,
        release = %record.id,
        commit = %reverted.sha,
        "UI revert pushed"
    );
    Ok(())
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
