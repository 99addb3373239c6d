//! `kubemint revert`: a rollback made as a git commit, so that it stays in the
//! history like every other change.
//!
//! The revert is computed with a three-way merge: the tree of the commit being
//! undone is the ancestor, the branch tip is "ours", and the state to return to
//! is "theirs" (the commit's first parent, or for a release the commit of the
//! release before it). For a single commit this is exactly `git revert`; for a
//! release it undoes every commit the release brought, as one commit.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use git2::{build::RepoBuilder, Oid, Repository, Signature};

mod channel;
mod sign;
pub mod subtree;

pub use channel::{ChannelRevert, ChannelReverted, Workdir};
pub use sign::{InMemoryKey, SigningFormat, SigningRequest};

use crate::api::Channel;
use crate::api::{ChannelStatus, ReleasePhase};
use crate::source::auth::fetch_options;
use crate::source::{push_refspec, redact_url, sanitize, short_sha, GitCredentials, RefRequest};

/// Errors of `kubemint revert`. Messages name the channel, commit or release, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum RevertError {
    /// The channel does not follow a branch, so there is nothing to commit onto.
    #[error("channel {channel} follows {reference}, not a branch: revert the commit on the branch that produces it instead")]
    NotABranch {
        /// `namespace/name`.
        channel: String,
        /// What it follows.
        reference: String,
    },
    /// No release matches the id (or the prefix matches several).
    #[error("channel {channel} has no release '{id}'{}; known releases: {known}", if *.ambiguous { " (ambiguous prefix)" } else { "" })]
    UnknownRelease {
        /// `namespace/name`.
        channel: String,
        /// What was asked for.
        id: String,
        /// Whether the prefix matched more than one release.
        ambiguous: bool,
        /// The ids it has.
        known: String,
    },
    /// Nothing to revert by default: the channel has no active release.
    #[error("channel {channel} has no active release; pass --release ID or --commit SHA")]
    NoActiveRelease {
        /// `namespace/name`.
        channel: String,
    },
    /// The commit is not in the branch's history.
    #[error("{commit} is not on branch '{branch}' of {url}")]
    NotOnBranch {
        /// The commit asked for.
        commit: String,
        /// The branch.
        branch: String,
        /// Redacted URL.
        url: String,
    },
    /// The revert does not apply cleanly to the tip.
    #[error("reverting {what} conflicts with later changes in: {}; revert by hand in a clone, nothing was committed or pushed", .paths.join(", "))]
    Conflict {
        /// What was being reverted.
        what: String,
        /// Conflicting paths.
        paths: Vec<String>,
    },
    /// The tip already has the content the revert would produce.
    #[error("reverting {what} changes nothing: the tip of '{branch}' already has that content")]
    NothingToRevert {
        /// What was being reverted.
        what: String,
        /// The branch.
        branch: String,
    },
    /// No author: neither flags nor git config give one.
    #[error("no author for the revert commit: pass --author-name and --author-email, or set user.name and user.email in git config")]
    NoAuthor,
    /// The remote refused the push (not a fast-forward, protected branch, hook).
    #[error(
        "{url} refused the push to '{branch}': {message}; fetch, check the branch and try again"
    )]
    PushRejected {
        /// Redacted URL.
        url: String,
        /// The branch.
        branch: String,
        /// The remote's reason.
        message: String,
    },
    /// A git operation failed.
    #[error("{action} {url}: {message}")]
    Git {
        /// What was being done (`cloning`, `pushing to`...).
        action: &'static str,
        /// Redacted URL.
        url: String,
        /// What git said, scrubbed of secrets.
        message: String,
    },
    /// The background git task failed.
    #[error("git task failed: {0}")]
    Task(String),
    /// Loop guard: a commit to revert is itself a kubemint revert.
    #[error("commit {commit} is itself kubemint's revert of {release}; kubemint does not revert its own reverts automatically: fix forward with a new commit")]
    RevertOfRevert {
        /// The revert commit.
        commit: String,
        /// The release (or commit) it reverted.
        release: String,
    },
    /// The revert commit could not be signed (`--sign`).
    #[error("signing the revert commit: {message}; nothing was committed or pushed")]
    Signing {
        /// What went wrong, naming the tool and the key path or id, never key material.
        message: String,
    },
    /// `spec.git.path` leaves the repository.
    #[error("spec.git.path '{path}' climbs out of the repository; fix the channel")]
    InvalidPath {
        /// The path as written.
        path: String,
    },
    /// Loop guard: the release was reverted already.
    #[error("release {release} was reverted already by commit {commit}; not reverting it twice")]
    AlreadyReverted {
        /// The release.
        release: String,
        /// The earlier revert.
        commit: String,
    },
}

impl RevertError {
    /// CamelCase reason for events, status and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            RevertError::NotABranch { .. } => "NotABranch",
            RevertError::UnknownRelease { .. } => "UnknownRelease",
            RevertError::NoActiveRelease { .. } => "NoActiveRelease",
            RevertError::NotOnBranch { .. } => "NotOnBranch",
            RevertError::Conflict { .. } => "RevertConflict",
            RevertError::NothingToRevert { .. } => "NothingToRevert",
            RevertError::NoAuthor => "NoAuthor",
            RevertError::PushRejected { .. } => "RevertPushRejected",
            RevertError::Git { .. } => "RevertGitFailed",
            RevertError::Task(_) => "RevertTaskFailed",
            RevertError::RevertOfRevert { .. } => "RevertOfRevert",
            RevertError::AlreadyReverted { .. } => "AlreadyReverted",
            RevertError::Signing { .. } => "RevertSigningFailed",
            RevertError::InvalidPath { .. } => "InvalidPath",
        }
    }
}

/// The trailer that marks kubemint's reverts of a release (automatic or
/// `kubemint revert`): `Kubemint-Reverts-Release: <id>`.
pub const REVERTS_RELEASE_TRAILER: &str = "Kubemint-Reverts-Release";
/// The trailer of `kubemint revert --commit`: `Kubemint-Reverts-Commit: <sha>`.
pub const REVERTS_COMMIT_TRAILER: &str = "Kubemint-Reverts-Commit";

fn trailer<'m>(message: &'m str, name: &str) -> Option<&'m str> {
    message.lines().rev().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim().eq_ignore_ascii_case(name) && !value.trim().is_empty()).then(|| value.trim())
    })
}

/// The release a commit message says it reverts (its `Kubemint-Reverts-Release` trailer).
pub fn reverted_release(message: &str) -> Option<&str> {
    trailer(message, REVERTS_RELEASE_TRAILER)
}

/// What a kubemint revert commit says it reverts (a release id or a commit), if it is one.
pub fn kubemint_revert_of(message: &str) -> Option<&str> {
    reverted_release(message).or_else(|| trailer(message, REVERTS_COMMIT_TRAILER))
}

/// The trailer a revert commit of `change` carries.
pub fn revert_trailer(change: &RevertRange) -> String {
    match &change.release {
        Some(id) => format!("{REVERTS_RELEASE_TRAILER}: {id}"),
        None => format!("{REVERTS_COMMIT_TRAILER}: {}", change.to),
    }
}

/// The loop guard of automatic reverts. `failing` are the commits the revert
/// would undo and `since` the commits of the branch (newest first), each as
/// `(sha, message)`: never revert a kubemint revert, never revert a release twice.
pub fn loop_guard(
    release: &str,
    failing: &[(String, String)],
    since: &[(String, String)],
) -> Result<(), RevertError> {
    if let Some((sha, reverted)) = failing
        .iter()
        .find_map(|(sha, m)| kubemint_revert_of(m).map(|r| (sha, r)))
    {
        return Err(RevertError::RevertOfRevert {
            commit: sha.clone(),
            release: reverted.to_string(),
        });
    }
    if let Some((sha, _)) = since
        .iter()
        .chain(failing)
        .find(|(_, m)| reverted_release(m) == Some(release))
    {
        return Err(RevertError::AlreadyReverted {
            release: release.to_string(),
            commit: sha.clone(),
        });
    }
    Ok(())
}

/// What to revert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The channel's active release.
    Active,
    /// A release, by id or unique id prefix.
    Release(String),
    /// One commit.
    Commit(String),
}

/// The range of commits a revert undoes: the content of `to` goes, that of
/// `base` (`None`: the first parent of `to`) comes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevertRange {
    /// The commit whose content is undone.
    pub to: String,
    /// The commit whose content comes back; `None` means `to`'s first parent.
    pub base: Option<String>,
    /// For messages: `release 3f2a9c (commit 1a2b3c4d5e6f "web 1.5.0")` or `commit 1a2b3c4d5e6f`.
    pub what: String,
    /// The subject of `to`, when the channel's status knows it.
    pub subject: Option<String>,
    /// The release undone, when a release (not a single commit) is reverted.
    pub release: Option<String>,
}

/// Which change `target` means for a channel with `status`. Releases are
/// newest first; a release's base is the next older release that did not fail
/// (a failed release never served), so reverting it returns to what ran before.
pub fn pick_change(
    channel: &str,
    status: &ChannelStatus,
    target: &Target,
) -> Result<RevertRange, RevertError> {
    let id = match target {
        Target::Commit(sha) => {
            return Ok(RevertRange {
                to: sha.clone(),
                base: None,
                what: format!("commit {}", short_sha(sha)),
                subject: None,
                release: None,
            })
        }
        Target::Release(id) => id.clone(),
        Target::Active => {
            status
                .active_release
                .clone()
                .ok_or_else(|| RevertError::NoActiveRelease {
                    channel: channel.to_string(),
                })?
        }
    };
    let matches: Vec<usize> = (0..status.releases.len())
        .filter(|&i| status.releases[i].id.starts_with(&id))
        .collect();
    // A rollback renders to the id of the release it restores, so one release can
    // have several records: the one serving now, else the newest, is meant.
    let ids: BTreeSet<&str> = matches
        .iter()
        .map(|&i| status.releases[i].id.as_str())
        .collect();
    let chosen = (ids.len() == 1).then(|| {
        matches
            .iter()
            .copied()
            .find(|&i| status.releases[i].phase == ReleasePhase::Active)
            .unwrap_or(matches[0])
    });
    let Some(index) = chosen else {
        let known: Vec<&str> = status.releases.iter().map(|r| r.id.as_str()).collect();
        return Err(RevertError::UnknownRelease {
            channel: channel.to_string(),
            id,
            ambiguous: ids.len() > 1,
            known: if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            },
        });
    };
    let release = &status.releases[index];
    let base = status.releases[index + 1..]
        .iter()
        .find(|r| r.phase != ReleasePhase::Failed && r.commit.sha != release.commit.sha)
        .map(|r| r.commit.sha.clone());
    Ok(RevertRange {
        to: release.commit.sha.clone(),
        base,
        what: format!(
            "release {} (commit {} \"{}\")",
            release.id,
            short_sha(&release.commit.sha),
            release.commit.subject
        ),
        subject: Some(release.commit.subject.clone()),
        release: Some(release.id.clone()),
    })
}

/// The revert commit's message: `--message` replaces the subject line; the body
/// always says what was reverted, so history stays auditable.
pub fn revert_message(
    change: &RevertRange,
    to_subject: &str,
    base: Option<&str>,
    custom: Option<&str>,
) -> String {
    let subject = match (custom, &change.base) {
        (Some(m), _) => m.trim().to_string(),
        (None, None) => format!("Revert \"{to_subject}\""),
        (None, Some(_)) => format!("Revert {}", change.what),
    };
    let body = match base {
        Some(base) if change.base.is_some() => {
            format!("This reverts commits {base}..{}.", change.to)
        }
        _ => format!("This reverts commit {}.", change.to),
    };
    format!("{subject}\n\n{body}\n")
}

/// A revert to make in a clone of a channel's repository.
pub struct RevertRequest {
    /// Repository URL (`spec.git.url`).
    pub url: String,
    /// The branch the channel follows.
    pub branch: String,
    /// Credentials from `spec.git.secretRef`.
    pub credentials: GitCredentials,
    /// What to undo.
    pub change: RevertRange,
    /// `--message`.
    pub message: Option<String>,
    /// `--author-name` and `--author-email`.
    pub author: Option<(String, String)>,
    /// Where to clone; a new directory under the system temp dir when `None`.
    pub workdir: Option<PathBuf>,
    /// Push the commit to the branch.
    pub push: bool,
    /// An automatic revert of this release: the loop guard applies and the
    /// message gets the `Kubemint-Reverts-Release` trailer.
    pub automatic: Option<String>,
    /// Only changes under this directory are reverted (the channel's
    /// `spec.git.path`); `None` or `.`: the whole repository.
    pub path: Option<String>,
    /// Sign the commit (`--sign`), as `git commit -S` would.
    pub signing: Option<SigningRequest>,
    /// Sign the commit with this key in-process instead (the automatic revert).
    pub signing_key: Option<InMemoryKey>,
}

/// The commit made.
#[derive(Debug, Clone)]
pub struct Reverted {
    /// The new commit.
    pub sha: String,
    /// Its first line.
    pub subject: String,
    /// The clone that holds it.
    pub clone: PathBuf,
    /// Whether it was pushed.
    pub pushed: bool,
}

/// The branch a channel follows, or why it cannot be reverted.
pub fn branch_of(channel: &Channel) -> Result<String, RevertError> {
    let name = channel.key();
    match RefRequest::from_spec(&channel.spec.git.reference) {
        Ok(RefRequest::Branch(b)) => Ok(b),
        Ok(other) => Err(RevertError::NotABranch {
            channel: name,
            reference: other.describe(),
        }),
        Err(e) => Err(RevertError::NotABranch {
            channel: name,
            reference: e.to_string(),
        }),
    }
}

/// Clones, commits the revert and pushes it when asked; blocking git work runs off the async workers.
pub async fn revert(request: RevertRequest) -> Result<Reverted, RevertError> {
    tokio::task::spawn_blocking(move || revert_blocking(&request))
        .await
        .map_err(|e| RevertError::Task(e.to_string()))?
}

fn revert_blocking(request: &RevertRequest) -> Result<Reverted, RevertError> {
    let url = &request.url;
    let creds = &request.credentials;
    let git_error = |action: &'static str| {
        move |e: git2::Error| RevertError::Git {
            action,
            url: redact_url(url),
            message: sanitize(e.message(), url, creds),
        }
    };
    let clone_dir = match &request.workdir {
        Some(dir) => dir.clone(),
        None => tempdir_kept().map_err(|e| RevertError::Git {
            action: "creating a directory for the clone of",
            url: redact_url(url),
            message: e.to_string(),
        })?,
    };
    let repo = RepoBuilder::new()
        .branch(&request.branch)
        .fetch_options(fetch_options(creds, url))
        .clone(url, &clone_dir)
        .map_err(git_error("cloning"))?;
    let head = repo
        .head()
        .and_then(|h| h.peel_to_commit())
        .map_err(git_error("reading the branch tip of"))?;
    let not_on_branch = || RevertError::NotOnBranch {
        commit: request.change.to.clone(),
        branch: request.branch.clone(),
        url: redact_url(url),
    };
    let find = |sha: &str| -> Result<git2::Commit<'_>, RevertError> {
        let commit = repo
            .revparse_single(sha)
            .and_then(|o| o.peel_to_commit())
            .map_err(|_| not_on_branch())?;
        let on_branch = commit.id() == head.id()
            || repo
                .graph_descendant_of(head.id(), commit.id())
                .unwrap_or(false);
        if on_branch {
            Ok(commit)
        } else {
            Err(not_on_branch())
        }
    };
    let to = find(&request.change.to)?;
    // `git revert -m 1` for merges: the first parent is the branch's own line.
    let base = match &request.change.base {
        Some(sha) => Some(find(sha)?),
        None => to.parent(0).ok(),
    };
    let empty_tree;
    let base_tree = match &base {
        Some(c) => c.tree().map_err(git_error("reading"))?,
        None => {
            // Reverting a root commit: back to nothing.
            let oid = repo
                .treebuilder(None)
                .and_then(|b| b.write())
                .map_err(git_error("writing in the clone of"))?;
            empty_tree = repo.find_tree(oid).map_err(git_error("reading"))?;
            empty_tree
        }
    };
    if let Some(release) = &request.automatic {
        let messages = |from: Oid, hide: Option<Oid>, limit: usize| {
            let mut walk = repo
                .revwalk()
                .map_err(git_error("walking the history of"))?;
            walk.push(from)
                .map_err(git_error("walking the history of"))?;
            if let Some(h) = hide {
                walk.hide(h).map_err(git_error("walking the history of"))?;
            }
            let mut out = Vec::new();
            for oid in walk.take(limit) {
                let oid = oid.map_err(git_error("walking the history of"))?;
                let commit = repo.find_commit(oid).map_err(git_error("reading"))?;
                out.push((
                    oid.to_string(),
                    commit.message().unwrap_or_default().to_string(),
                ));
            }
            Ok::<_, RevertError>(out)
        };
        let failing = match &base {
            Some(b) => messages(to.id(), Some(b.id()), 1000)?,
            None => messages(to.id(), None, 1)?,
        };
        // The whole branch (bounded): a release reverted once, then landed again, stays.
        let since = messages(head.id(), None, 2_000)?;
        loop_guard(release, &failing, &since)?;
    }
    let parts = match &request.path {
        Some(path) => subtree::components(path)
            .ok_or_else(|| RevertError::InvalidPath { path: path.clone() })?,
        None => Vec::new(),
    };
    let prefix = if parts.is_empty() {
        String::new()
    } else {
        format!("{}/", parts.join("/"))
    };
    let head_tree = head.tree().map_err(git_error("reading"))?;
    // Merged within the channel's directory only: what the commits changed
    // elsewhere (another team's directory in a monorepo) stays as it is.
    let to_tree = to.tree().map_err(git_error("reading"))?;
    let to_tree = subtree::at(&repo, &to_tree, &parts).map_err(git_error("reading"))?;
    let head_sub = subtree::at(&repo, &head_tree, &parts).map_err(git_error("reading"))?;
    let base_tree = subtree::at(&repo, &base_tree, &parts).map_err(git_error("reading"))?;
    let mut index = repo
        .merge_trees(&to_tree, &head_sub, &base_tree, None)
        .map_err(git_error("merging in the clone of"))?;
    if index.has_conflicts() {
        let mut paths: Vec<String> = index
            .conflicts()
            .map_err(git_error("reading conflicts in the clone of"))?
            .filter_map(Result::ok)
            .filter_map(|c| c.our.or(c.their).or(c.ancestor))
            .map(|e| format!("{prefix}{}", String::from_utf8_lossy(&e.path)))
            .collect();
        paths.sort();
        paths.dedup();
        return Err(RevertError::Conflict {
            what: request.change.what.clone(),
            paths,
        });
    }
    let sub_id = index
        .write_tree_to(&repo)
        .map_err(git_error("writing in the clone of"))?;
    let tree_id = if parts.is_empty() {
        sub_id
    } else {
        subtree::replace(&repo, &head_tree, &parts, sub_id)
            .map_err(git_error("writing in the clone of"))?
    };
    if tree_id == head_tree.id() {
        return Err(RevertError::NothingToRevert {
            what: request.change.what.clone(),
            branch: request.branch.clone(),
        });
    }
    let tree = repo.find_tree(tree_id).map_err(git_error("reading"))?;
    let signature = match &request.author {
        Some((name, email)) => Signature::now(name, email).map_err(|_| RevertError::NoAuthor)?,
        None => repo.signature().map_err(|_| RevertError::NoAuthor)?,
    };
    let mut message = revert_message(
        &request.change,
        to.summary().ok().flatten().unwrap_or_default(),
        base.as_ref().map(|b| b.id().to_string()).as_deref(),
        request.message.as_deref(),
    );
    // Every kubemint revert says what it reverts, for the loop guard and for people.
    let trailer = match &request.automatic {
        Some(release) => format!("{REVERTS_RELEASE_TRAILER}: {release}"),
        None => revert_trailer(&request.change),
    };
    if !prefix.is_empty() {
        message.push_str(&format!(
            "\nOnly changes under {prefix} are reverted; the rest of these commits stays.\n"
        ));
    }
    message.push_str(&format!("\n{trailer}\n"));
    let committed = match (&request.signing_key, &request.signing) {
        (Some(key), _) => commit_signed(&repo, &signature, &message, &tree, &head, |buffer| {
            key.sign(buffer)
        }),
        (None, Some(signing)) => {
            let config = repo.config().map_err(git_error("reading the config of"))?;
            let signer = sign::resolve(signing, &config, signature.email().unwrap_or_default())?;
            commit_signed(&repo, &signature, &message, &tree, &head, |buffer| {
                sign::sign(&signer, buffer)
            })
        }
        (None, None) => repo
            .commit(
                Some("HEAD"),
                &signature,
                &signature,
                &message,
                &tree,
                &[&head],
            )
            .map_err(Signed::Git),
    };
    let sha = committed.map_err(|e| match e {
        Signed::Git(e) => git_error("committing in the clone of")(e),
        Signed::Signing(e) => e,
    })?;
    repo.checkout_head(Some(git2::build::CheckoutBuilder::new().force()))
        .map_err(git_error("checking out in the clone of"))?;
    if request.push {
        push(&repo, request, sha)?;
    }
    Ok(Reverted {
        sha: sha.to_string(),
        subject: message.lines().next().unwrap_or_default().to_string(),
        clone: clone_dir,
        pushed: request.push,
    })
}

enum Signed {
    Git(git2::Error),
    Signing(RevertError),
}

impl From<git2::Error> for Signed {
    fn from(e: git2::Error) -> Self {
        Signed::Git(e)
    }
}

/// `git commit -S`: the commit's buffer, signed by `sign` (the standard tool,
/// or a key in memory), written with its `gpgsig` header, then the branch moved to it.
fn commit_signed(
    repo: &Repository,
    signature: &Signature<'_>,
    message: &str,
    tree: &git2::Tree<'_>,
    head: &git2::Commit<'_>,
    sign: impl FnOnce(&[u8]) -> Result<String, RevertError>,
) -> Result<Oid, Signed> {
    let buffer = repo.commit_create_buffer(signature, signature, message, tree, &[head])?;
    let armored = sign(&buffer).map_err(Signed::Signing)?;
    let content = buffer
        .as_str()
        .map_err(|_| git2::Error::from_str("the commit buffer is not UTF-8"))?;
    let oid = repo.commit_signed(content, &armored, Some("gpgsig"))?;
    repo.head()?.set_target(oid, "kubemint revert (signed)")?;
    Ok(oid)
}

/// Pushes the branch; a ref the remote rejects is an error, not a silent no-op.
fn push(repo: &Repository, request: &RevertRequest, sha: Oid) -> Result<(), RevertError> {
    let url = &request.url;
    let creds = &request.credentials;
    let refspec = format!("{sha}:refs/heads/{}", request.branch);
    let mut remote = repo.find_remote("origin").map_err(|e| RevertError::Git {
        action: "pushing to",
        url: redact_url(url),
        message: sanitize(e.message(), url, creds),
    })?;
    push_refspec(&mut remote, &refspec, creds, url).map_err(|e| RevertError::PushRejected {
        url: redact_url(url),
        branch: request.branch.clone(),
        message: sanitize(e.message(), url, creds),
    })
}

/// A new directory for the clone that outlives this process: without `--push`
/// the user pushes from it.
fn tempdir_kept() -> std::io::Result<PathBuf> {
    Ok(tempfile::Builder::new()
        .prefix("kubemint-revert-")
        .tempdir()?
        .keep())
}

/// How to push a commit made without `--push`.
pub fn push_hint(clone: &Path, branch: &str) -> String {
    format!("git -C {} push origin HEAD:{branch}", clone.display())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CommitInfo, ReleaseRecord};

    fn record(id: &str, sha: &str, phase: ReleasePhase) -> ReleaseRecord {
        ReleaseRecord {
            id: id.into(),
            commit: CommitInfo {
                sha: sha.into(),
                subject: format!("subject of {sha}"),
                ..Default::default()
            },
            phase,
            ..Default::default()
        }
    }

    fn status() -> ChannelStatus {
        ChannelStatus {
            active_release: Some("bbb222".into()),
            releases: vec![
                record("ccc333", "c3", ReleasePhase::Failed),
                record("bbb222", "b2", ReleasePhase::Active),
                record("bbb999", "b9", ReleasePhase::Failed),
                record("aaa111", "a1", ReleasePhase::Superseded),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn a_release_is_undone_back_to_the_last_release_that_served() {
        let change = pick_change("ns/ch", &status(), &Target::Release("bbb2".into())).unwrap();
        assert_eq!(change.to, "b2");
        assert_eq!(
            change.base.as_deref(),
            Some("a1"),
            "the failed b9 never served"
        );
        assert!(change.what.contains("release bbb222"));
    }

    #[test]
    fn without_a_target_the_active_release_is_reverted() {
        let change = pick_change("ns/ch", &status(), &Target::Active).unwrap();
        assert_eq!(
            (change.to.as_str(), change.base.as_deref()),
            ("b2", Some("a1"))
        );
        let none = ChannelStatus::default();
        assert!(matches!(
            pick_change("ns/ch", &none, &Target::Active),
            Err(RevertError::NoActiveRelease { .. })
        ));
    }

    #[test]
    fn the_oldest_release_reverts_its_commit_alone() {
        let change = pick_change("ns/ch", &status(), &Target::Release("aaa".into())).unwrap();
        assert_eq!((change.to.as_str(), change.base), ("a1", None));
    }

    #[test]
    fn unknown_and_ambiguous_ids_list_the_known_ones() {
        let err = pick_change("ns/ch", &status(), &Target::Release("zzz".into())).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("no release 'zzz'") && text.contains("ccc333, bbb222, bbb999, aaa111"),
            "{text}"
        );
        let err = pick_change("ns/ch", &status(), &Target::Release("bbb".into())).unwrap_err();
        assert!(err.to_string().contains("ambiguous"), "{err}");
    }

    #[test]
    fn after_a_rollback_the_release_it_restored_is_found_by_its_id() {
        // b2 was reverted by r1, which renders to aaa111 again.
        let mut status = status();
        status.releases[1].phase = ReleasePhase::Superseded;
        status.releases[3].phase = ReleasePhase::Superseded;
        status
            .releases
            .insert(0, record("aaa111", "r1", ReleasePhase::Active));
        status.active_release = Some("aaa111".into());
        for target in [Target::Active, Target::Release("aaa111".into())] {
            let change = pick_change("ns/ch", &status, &target).unwrap();
            assert_eq!(
                (change.to.as_str(), change.base.as_deref()),
                ("r1", Some("b2")),
                "undoing the rollback brings back what it rolled back"
            );
        }
    }

    #[test]
    fn the_trailer_names_the_reverted_release() {
        let m =
            "Revert release abc\n\nThis reverts commits a..b.\n\nKubemint-Reverts-Release: abc\n";
        assert_eq!(reverted_release(m), Some("abc"));
        assert_eq!(
            reverted_release("Revert \"x\"\n\nThis reverts commit a.\n"),
            None
        );
        assert_eq!(reverted_release("x\n\nKubemint-Reverts-Release: \n"), None);
        let by_hand = "Drop y\n\nThis reverts commit c1.\n\nKubemint-Reverts-Commit: c1\n";
        assert_eq!(
            (reverted_release(by_hand), kubemint_revert_of(by_hand)),
            (None, Some("c1"))
        );
        let change = pick_change("ns/ch", &status(), &Target::Active).unwrap();
        assert_eq!(revert_trailer(&change), "Kubemint-Reverts-Release: bbb222");
        let change = pick_change("ns/ch", &status(), &Target::Commit("c1".into())).unwrap();
        assert_eq!(revert_trailer(&change), "Kubemint-Reverts-Commit: c1");
    }

    #[test]
    fn the_loop_guard_refuses_reverting_a_revert_or_a_release_twice() {
        let c = |sha: &str, m: &str| (sha.to_string(), m.to_string());
        let plain = [c("f1", "web 1.5.0\n"), c("f0", "docs\n")];
        assert!(loop_guard("rel1", &plain, &[c("x", "later\n")]).is_ok());
        let revert = [c("r1", "Revert\n\nKubemint-Reverts-Release: rel0\n")];
        assert!(matches!(
            loop_guard("rel1", &revert, &[]),
            Err(RevertError::RevertOfRevert { commit, release }) if commit == "r1" && release == "rel0"
        ));
        let done = [c("r2", "Revert\n\nKubemint-Reverts-Release: rel1\n")];
        assert!(matches!(
            loop_guard("rel1", &plain, &done),
            Err(RevertError::AlreadyReverted { commit, .. }) if commit == "r2"
        ));
        assert!(
            loop_guard("rel2", &plain, &done).is_ok(),
            "another release's revert"
        );
    }

    #[test]
    fn a_commit_is_reverted_alone() {
        let change = pick_change("ns/ch", &status(), &Target::Commit("deadbeef".into())).unwrap();
        assert_eq!(change.base, None);
        let message = revert_message(&change, "web 1.5.0", Some("cafe"), None);
        assert_eq!(
            message,
            "Revert \"web 1.5.0\"\n\nThis reverts commit deadbeef.\n"
        );
    }

    #[test]
    fn release_messages_name_the_range_and_keep_it_under_a_custom_subject() {
        let change = pick_change("ns/ch", &status(), &Target::Active).unwrap();
        let message = revert_message(&change, "subject of b2", Some("a1"), None);
        assert_eq!(
            message,
            "Revert release bbb222 (commit b2 \"subject of b2\")\n\nThis reverts commits a1..b2.\n"
        );
        let custom = revert_message(&change, "x", Some("a1"), Some("Roll back web: 500s\n"));
        assert_eq!(
            custom,
            "Roll back web: 500s\n\nThis reverts commits a1..b2.\n"
        );
    }
}
