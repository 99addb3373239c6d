//! A cache of bare repositories, one per remote URL, kept between reconciles so
//! that a poll fetches only what is new (and nothing when the ref has not moved).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use git2::{Direction, FetchOptions, Oid, Remote, Repository};
use sha2::{Digest, Sha256};

use super::{redact_url, tree_at, SourceError};
use crate::render::RepoTree;

/// A commit as it is shown to users: id, author, subject and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitMeta {
    /// Full commit id.
    pub sha: String,
    /// `Name <email>`.
    pub author: String,
    /// First line of the message.
    pub subject: String,
    /// Commit time, RFC 3339 (UTC).
    pub time: String,
}

/// Bare repositories under one directory, keyed by URL; safe to share between tasks.
#[derive(Clone)]
pub struct GitCache {
    root: PathBuf,
    // One lock per repository: git2 must not fetch into one repository twice at once.
    locks: Arc<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>>,
}

impl GitCache {
    /// A cache rooted at `root` (created on first use).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        GitCache {
            root: root.into(),
            locks: Arc::default(),
        }
    }

    /// Brings the cache up to date with `branch` of `url` and returns its tip.
    ///
    /// When the remote tip is already in the cache this is one ref advertisement
    /// and no pack transfer.
    pub async fn fetch_branch(&self, url: &str, branch: &str) -> Result<CommitMeta, SourceError> {
        let dir = self.repo_dir(url);
        let lock = self.lock_for(&dir);
        let _guard = lock.lock().await;
        let (url, branch) = (url.to_string(), branch.to_string());
        tokio::task::spawn_blocking(move || fetch_blocking(&dir, &url, &branch))
            .await
            .map_err(|e| SourceError::Task(e.to_string()))?
    }

    /// The tree of `sha`, which must have been fetched from `url` before.
    pub async fn tree(&self, url: &str, sha: &str) -> Result<RepoTree, SourceError> {
        let dir = self.repo_dir(url);
        let sha = sha.to_string();
        tokio::task::spawn_blocking(move || {
            let cache_err = |e: git2::Error| SourceError::Cache {
                path: dir.display().to_string(),
                message: e.message().to_string(),
            };
            let repo = Repository::open_bare(&dir).map_err(cache_err)?;
            let oid = Oid::from_str(&sha).map_err(cache_err)?;
            tree_at(&repo, oid).map_err(cache_err)
        })
        .await
        .map_err(|e| SourceError::Task(e.to_string()))?
    }

    /// Path of the bare repository that caches `url`.
    pub fn repo_dir(&self, url: &str) -> PathBuf {
        let digest = hex::encode(Sha256::digest(url.as_bytes()));
        self.root.join(format!("{}.git", &digest[..16]))
    }

    fn lock_for(&self, dir: &Path) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(dir.to_path_buf()).or_default().clone()
    }
}

fn fetch_blocking(dir: &Path, url: &str, branch: &str) -> Result<CommitMeta, SourceError> {
    let cache_err = |e: git2::Error| SourceError::Cache {
        path: dir.display().to_string(),
        message: e.message().to_string(),
    };
    let unreachable = |e: git2::Error| SourceError::Unreachable {
        url: redact_url(url),
        message: redact_message(e.message(), url),
    };
    let repo = match Repository::open_bare(dir) {
        Ok(repo) => repo,
        Err(_) => {
            std::fs::create_dir_all(dir).map_err(|e| SourceError::Cache {
                path: dir.display().to_string(),
                message: e.to_string(),
            })?;
            Repository::init_bare(dir).map_err(cache_err)?
        }
    };
    let remote_ref = format!("refs/heads/{branch}");
    let mut remote = repo.remote_anonymous(url).map_err(cache_err)?;
    let tip = advertised_tip(&mut remote, &remote_ref).map_err(unreachable)?;
    let tip = tip.ok_or_else(|| SourceError::RefNotFound {
        url: redact_url(url),
        branch: branch.to_string(),
    })?;
    let local_ref = format!("refs/remotes/origin/{branch}");
    if repo.find_commit(tip).is_err() {
        let mut options = FetchOptions::new();
        options.download_tags(git2::AutotagOption::None);
        let refspec = format!("+{remote_ref}:{local_ref}");
        remote
            .fetch(&[refspec.as_str()], Some(&mut options), None)
            .map_err(unreachable)?;
    }
    // The tip may have been fetched before under another ref name; pin it here
    // so that git's garbage collection never drops a commit we may render.
    repo.reference(&local_ref, tip, true, "kubemint fetch")
        .map_err(cache_err)?;
    let commit = repo.find_commit(tip).map_err(cache_err)?;
    Ok(commit_meta(&commit))
}

/// Asks the remote for its refs (one round trip) and returns the id of `name`.
fn advertised_tip(remote: &mut Remote<'_>, name: &str) -> Result<Option<Oid>, git2::Error> {
    remote.connect(Direction::Fetch)?;
    let tip = remote
        .list()?
        .iter()
        .find(|head| head.name() == name)
        .map(|head| head.oid());
    remote.disconnect()?;
    Ok(tip)
}

/// Describes a commit for status, events and the CLI.
pub fn commit_meta(commit: &git2::Commit<'_>) -> CommitMeta {
    let author = commit.author();
    let time = k8s_openapi::jiff::Timestamp::from_second(commit.time().seconds())
        .map(|t| t.to_string())
        .unwrap_or_default();
    CommitMeta {
        sha: commit.id().to_string(),
        author: format!(
            "{} <{}>",
            author.name().unwrap_or_default(),
            author.email().unwrap_or_default()
        ),
        subject: commit
            .summary()
            .ok()
            .flatten()
            .unwrap_or_default()
            .to_string(),
        time,
    }
}

/// git's messages may quote the URL, credentials included.
fn redact_message(message: &str, url: &str) -> String {
    message.replace(url, &redact_url(url))
}
