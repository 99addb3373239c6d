//! A cache of bare repositories, one per remote URL and credentials identity,
//! kept between reconciles so that a poll fetches only what is new (and nothing
//! when the ref has not moved), and never serves one tenant what another fetched.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use std::time::{Duration, Instant};

use git2::{Oid, Remote, Repository};

use std::cell::Cell;
use std::rc::Rc;

use super::auth::{fetch_options, remote_callbacks, GitCredentials};
use super::cache_key::{entry_name, load_or_create_salt, CredentialsIdentity, SALT_LEN};
use super::polls::{Polled, SharedPolls};
use super::refs::{peel_advertisement, resolve, RefRequest};
use super::verify::{verify_range, Policy, TrustedKeys, Verified};
use super::{redact_url, sanitize, tree_at, SourceError};
use crate::render::{EntryKind, Limits, RepoTree};

/// What to fetch, from where, with which credentials.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    /// Remote URL (may carry userinfo; it is redacted in every message).
    pub url: String,
    /// Which ref or commit.
    pub reference: RefRequest,
    /// Credentials; [`GitCredentials::none`] for anonymous access.
    pub credentials: GitCredentials,
    /// Fetch with depth 1 into an empty cache. Off when the history is needed
    /// (signature verification of every commit).
    pub shallow: bool,
}

impl FetchRequest {
    /// An anonymous, shallow request.
    pub fn new(url: &str, reference: RefRequest) -> Self {
        FetchRequest {
            url: url.to_string(),
            reference,
            credentials: GitCredentials::none(),
            shallow: true,
        }
    }
}

/// What a fetch found.
#[derive(Debug, Clone)]
pub struct FetchOutcome {
    /// The commit the ref resolved to, now in the cache.
    pub commit: CommitMeta,
    /// The full ref it was resolved from (`refs/heads/main`, `refs/tags/v1.2.0`),
    /// or the commit id for a pinned commit.
    pub reference: String,
    /// The commit the cache had for this ref before this fetch, if any.
    pub previous: Option<String>,
    /// Set when the ref moved to a commit that does not descend from `previous`
    /// (a force-push that rewrote history).
    pub rewritten_from: Option<String>,
    /// Network cost of this fetch.
    pub stats: TransferStats,
}

impl FetchOutcome {
    /// Whether the remote ref still points where it pointed at the previous fetch.
    pub fn unchanged(&self) -> bool {
        self.previous.as_deref() == Some(self.commit.sha.as_str())
    }
}

/// Network cost of one fetch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransferStats {
    /// Connections made (each starts with a ref advertisement).
    pub round_trips: u32,
    /// Pack bytes received.
    pub received_bytes: usize,
    /// Objects received.
    pub received_objects: usize,
    /// Wall time of the whole fetch.
    pub elapsed: Duration,
}

impl TransferStats {
    fn add(&mut self, progress: &git2::Progress<'_>, bytes: usize) {
        self.received_bytes += progress.received_bytes().max(bytes);
        self.received_objects += progress.received_objects();
    }
}

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

/// A cache entry in memory: the URL and who fetched it.
type EntryKey = (String, CredentialsIdentity);

/// Bare repositories under one directory, one per remote URL and credentials
/// identity (see [`super::cache_key`]); safe to share between tasks.
///
/// A commit or ref in an entry is served only to fetches with the same URL and
/// the same credentials: a channel naming another tenant's private URL and a
/// commit that tenant fetched gets an entry of its own, and so has to fetch
/// the commit itself, with its own credentials.
#[derive(Clone)]
pub struct GitCache {
    root: PathBuf,
    // One lock per entry: git2 must not fetch into one repository twice at once.
    locks: Arc<Mutex<HashMap<EntryKey, Arc<tokio::sync::Mutex<()>>>>>,
    salt: Arc<Mutex<Option<[u8; SALT_LEN]>>>,
    polls: SharedPolls,
    /// The trees read last, shared by the channels that render the same
    /// commit (a monorepo's apps): one read, not one per channel.
    trees: Arc<Mutex<RecentTrees>>,
    /// The entries fetched into with credentials of the same content, by URL
    /// and content: a poll shared between them (Secrets of several
    /// namespaces holding the same credentials) fetched into one of them,
    /// and the others read its commit there.
    siblings: Arc<Mutex<HashMap<EntryKey, Vec<CredentialsIdentity>>>>,
}

/// A tree read from one cache entry at one commit within one set of limits.
type TreeKey = (PathBuf, String, Limits);

/// The trees read last, oldest first.
type RecentTrees = VecDeque<(TreeKey, Arc<RepoTree>)>;

/// How many recent trees are kept.
const RECENT_TREES: usize = 4;

impl GitCache {
    /// A cache rooted at `root` (created on first use).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        GitCache {
            root: root.into(),
            locks: Arc::default(),
            salt: Arc::default(),
            polls: SharedPolls::default(),
            trees: Arc::default(),
            siblings: Arc::default(),
        }
    }

    /// Brings the cache up to date with `branch` of `url` and returns its tip
    /// (anonymous; see [`GitCache::fetch`] for credentials and other refs).
    pub async fn fetch_branch(&self, url: &str, branch: &str) -> Result<CommitMeta, SourceError> {
        let request = FetchRequest::new(url, RefRequest::Branch(branch.to_string()));
        Ok(self.fetch(&request).await?.commit)
    }

    /// Resolves `request.reference` on the remote and brings the cache entry of
    /// `request.url` and `request.credentials` up to date with it.
    ///
    /// When the remote ref still points to a commit the entry has, this is one
    /// ref advertisement and no pack transfer. Otherwise only the missing objects
    /// are fetched (shallow, depth 1, into an empty entry when `request.shallow`).
    /// A pinned commit that is already in the entry needs no network at all.
    pub async fn fetch(&self, request: &FetchRequest) -> Result<FetchOutcome, SourceError> {
        let lock = self.lock_for(&request.url, &request.credentials);
        let _guard = lock.lock().await;
        self.note_sibling(&request.url, &request.credentials);
        let (cache, request) = (self.clone(), request.clone());
        tokio::task::spawn_blocking(move || {
            let dir = cache.repo_dir(&request.url, &request.credentials)?;
            let outcome = fetch_blocking(&dir, &request);
            super::cache_gc::mark_used(&dir);
            outcome
        })
        .await
        .map_err(|e| SourceError::Task(e.to_string()))?
    }

    /// [`GitCache::fetch`] shared between the channels that follow the same
    /// remote ref with the same credentials (see [`super::polls`]): the outcome
    /// of a poll that started at or after `not_before` (`None`: any).
    pub async fn poll(
        &self,
        request: &FetchRequest,
        not_before: Option<Instant>,
    ) -> Result<Polled, SourceError> {
        self.polls
            .poll(request, not_before, || self.fetch(request))
            .await
    }

    /// Checks the signatures of the commits that `policy` requires, from `last_applied`
    /// (exclusive) to `tip`, in the entry of `url` fetched with `credentials`.
    pub async fn verify(
        &self,
        url: &str,
        credentials: &GitCredentials,
        policy: &Policy,
        last_applied: Option<&str>,
        tip: &str,
        keys: &TrustedKeys,
    ) -> Result<Vec<Verified>, SourceError> {
        let lock = self.lock_for(url, credentials);
        let _guard = lock.lock().await;
        let (cache, url, credentials) = (self.clone(), url.to_string(), credentials.clone());
        let (policy, last, tip, keys) = (
            policy.clone(),
            last_applied.map(str::to_string),
            tip.to_string(),
            keys.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let dir = cache.dir_with(&url, &credentials, &tip)?;
            let repo = Repository::open_bare(&dir).map_err(|e| cache_error(&dir, e))?;
            verify_range(&repo, &policy, last.as_deref(), &tip, &keys)
        })
        .await
        .map_err(|e| SourceError::Task(e.to_string()))?
    }

    /// The tree of `sha`, which must have been fetched from `url` with
    /// `credentials` before; files over `limits` are left unread, the files
    /// under directory `first` (the render path) getting the budget first.
    /// A tree that fit the budget whole is the same whatever `first` is: it is
    /// kept and served to the next channels that render the same commit.
    pub async fn tree(
        &self,
        url: &str,
        credentials: &GitCredentials,
        sha: &str,
        limits: &Limits,
        first: &str,
    ) -> Result<Arc<RepoTree>, SourceError> {
        let first = first.to_string();
        let (cache, url, credentials) = (self.clone(), url.to_string(), credentials.clone());
        let limits = *limits;
        let sha = sha.to_string();
        tokio::task::spawn_blocking(move || {
            let dir = cache.dir_with(&url, &credentials, &sha)?;
            let key: TreeKey = (dir.clone(), sha.clone(), limits);
            if let Some(tree) = cache.recent_tree(&key) {
                return Ok(tree);
            }
            let cache_err = |e: git2::Error| cache_error(&dir, e);
            let repo = Repository::open_bare(&dir).map_err(cache_err)?;
            let oid = Oid::from_str(&sha).map_err(cache_err)?;
            let tree = Arc::new(tree_at(&repo, oid, &limits, &first).map_err(cache_err)?);
            if !left_unread_by_budget(&tree, &limits) {
                cache.keep_tree(key, tree.clone());
            }
            Ok(tree)
        })
        .await
        .map_err(|e| SourceError::Task(e.to_string()))?
    }

    fn recent_tree(&self, key: &TreeKey) -> Option<Arc<RepoTree>> {
        let trees = self.trees.lock().unwrap_or_else(|p| p.into_inner());
        trees.iter().find(|(k, _)| k == key).map(|(_, t)| t.clone())
    }

    fn keep_tree(&self, key: TreeKey, tree: Arc<RepoTree>) {
        let mut trees = self.trees.lock().unwrap_or_else(|p| p.into_inner());
        if trees.iter().any(|(k, _)| *k == key) {
            return;
        }
        if trees.len() == RECENT_TREES {
            trees.pop_front();
        }
        trees.push_back((key, tree));
    }

    /// The git object id of each of `dirs` (repository-relative; `""`: the
    /// root) in commit `sha`, fetched from `url` with `credentials` before;
    /// `None` for a directory the commit lacks. Two commits with the same ids
    /// have the same content there: nothing under the directories is read.
    pub async fn tree_ids(
        &self,
        url: &str,
        credentials: &GitCredentials,
        sha: &str,
        dirs: &[String],
    ) -> Result<Vec<Option<String>>, SourceError> {
        let (cache, url, credentials) = (self.clone(), url.to_string(), credentials.clone());
        let (sha, dirs) = (sha.to_string(), dirs.to_vec());
        tokio::task::spawn_blocking(move || {
            let dir = cache.dir_with(&url, &credentials, &sha)?;
            let cache_err = |e: git2::Error| cache_error(&dir, e);
            let repo = Repository::open_bare(&dir).map_err(cache_err)?;
            let oid = Oid::from_str(&sha).map_err(cache_err)?;
            let tree = repo
                .find_commit(oid)
                .and_then(|c| c.tree())
                .map_err(cache_err)?;
            Ok(dirs
                .iter()
                .map(|d| {
                    if d.is_empty() {
                        Some(tree.id().to_string())
                    } else {
                        tree.get_path(Path::new(d))
                            .ok()
                            .map(|entry| entry.id().to_string())
                    }
                })
                .collect())
        })
        .await
        .map_err(|e| SourceError::Task(e.to_string()))?
    }

    /// Path of the bare repository that caches `url` fetched with
    /// `credentials`. Reads (or, the first time, writes) the cache's salt:
    /// blocking.
    pub fn repo_dir(
        &self,
        url: &str,
        credentials: &GitCredentials,
    ) -> Result<PathBuf, SourceError> {
        let salt = self.salt()?;
        let name = entry_name(&salt, url, credentials.cache_identity());
        Ok(self.root.join(format!("{name}.git")))
    }

    /// The entry of `url` that holds commit `sha` for `credentials`: their
    /// own, else that of credentials of the same content (whose poll they
    /// shared), else their own (where reading it then fails). Blocking.
    fn dir_with(
        &self,
        url: &str,
        credentials: &GitCredentials,
        sha: &str,
    ) -> Result<PathBuf, SourceError> {
        let own = self.repo_dir(url, credentials)?;
        let has = |dir: &Path| {
            let Ok(oid) = Oid::from_str(sha) else {
                return false;
            };
            Repository::open_bare(dir).is_ok_and(|repo| repo.find_commit(oid).is_ok())
        };
        if has(&own) {
            return Ok(own);
        }
        let salt = self.salt()?;
        let key = (url.to_string(), credentials.poll_identity().clone());
        let siblings = self
            .siblings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned()
            .unwrap_or_default();
        let found = siblings
            .iter()
            .filter(|who| *who != credentials.cache_identity())
            .map(|who| {
                self.root
                    .join(format!("{}.git", entry_name(&salt, url, who)))
            })
            .find(|dir| has(dir));
        Ok(found.unwrap_or(own))
    }

    /// Records that `credentials` fetch into their entry of `url`.
    fn note_sibling(&self, url: &str, credentials: &GitCredentials) {
        let key = (url.to_string(), credentials.poll_identity().clone());
        let mut siblings = self.siblings.lock().unwrap_or_else(|p| p.into_inner());
        let entries = siblings.entry(key).or_default();
        if !entries.contains(credentials.cache_identity()) {
            entries.push(credentials.cache_identity().clone());
        }
    }

    fn salt(&self) -> Result<[u8; SALT_LEN], SourceError> {
        let mut salt = self.salt.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(salt) = *salt {
            return Ok(salt);
        }
        let made = load_or_create_salt(&self.root).map_err(|e| SourceError::Cache {
            path: self.root.display().to_string(),
            message: e.to_string(),
        })?;
        *salt = Some(made);
        Ok(made)
    }

    /// Deletes the entries nothing fetched into for `max_age` (of deleted
    /// channels, rotated credentials, older releases' names); an entry a fetch
    /// holds now is left alone. Returns how many went.
    pub async fn collect_garbage(&self, max_age: Duration) -> usize {
        let root = self.root.clone();
        let stale = tokio::task::spawn_blocking(move || {
            super::cache_gc::stale_entries(&root, std::time::SystemTime::now(), max_age)
        })
        .await
        .unwrap_or_default();
        if stale.is_empty() {
            return 0;
        }
        let Ok(salt) = self.salt() else { return 0 };
        // The locks of the entries this process knows, by directory.
        let locks: HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>> = self
            .locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|((url, who), lock)| {
                let name = entry_name(&salt, url, who);
                (self.root.join(format!("{name}.git")), lock.clone())
            })
            .collect();
        let mut removed = 0;
        for dir in stale {
            let guard = match locks.get(&dir) {
                Some(lock) => match lock.clone().try_lock_owned() {
                    Ok(guard) => Some(guard),
                    Err(_) => continue, // a fetch is using it right now
                },
                None => None,
            };
            let gone = tokio::task::spawn_blocking({
                let dir = dir.clone();
                move || std::fs::remove_dir_all(&dir)
            })
            .await;
            drop(guard);
            match gone {
                Ok(Ok(())) => removed += 1,
                Ok(Err(e)) => {
                    tracing::warn!(entry = %dir.display(), error = %e, "removing an unused git cache entry failed")
                }
                Err(e) => tracing::warn!(error = %e, "git cache collection task failed"),
            }
        }
        removed
    }

    fn lock_for(&self, url: &str, credentials: &GitCredentials) -> Arc<tokio::sync::Mutex<()>> {
        let key = (url.to_string(), credentials.cache_identity().clone());
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(key).or_default().clone()
    }
}

/// Whether the commit's budget left a file unread that the file limit alone
/// would have read: then which files were read depends on the render path.
fn left_unread_by_budget(tree: &RepoTree, limits: &Limits) -> bool {
    tree.entries
        .iter()
        .any(|e| matches!(e.kind, EntryKind::Unread { size } if size <= limits.max_file_bytes))
}

fn cache_error(dir: &Path, e: git2::Error) -> SourceError {
    SourceError::Cache {
        path: dir.display().to_string(),
        message: e.message().to_string(),
    }
}

fn open_or_init(dir: &Path) -> Result<Repository, SourceError> {
    match Repository::open_bare(dir) {
        Ok(repo) => Ok(repo),
        Err(_) => {
            std::fs::create_dir_all(dir).map_err(|e| SourceError::Cache {
                path: dir.display().to_string(),
                message: e.to_string(),
            })?;
            Repository::init_bare(dir).map_err(|e| cache_error(dir, e))
        }
    }
}

/// Where the cache keeps the tip of a remote ref: `refs/kubemint/<full remote ref>`.
fn local_ref(remote_ref: &str) -> String {
    format!("refs/kubemint/{remote_ref}")
}

fn fetch_blocking(dir: &Path, request: &FetchRequest) -> Result<FetchOutcome, SourceError> {
    let started = Instant::now();
    let url = request.url.as_str();
    let creds = &request.credentials;
    let unreachable = |e: git2::Error| SourceError::Unreachable {
        url: redact_url(url),
        message: sanitize(e.message(), url, creds),
    };
    let repo = open_or_init(dir)?;
    let mut remote = repo
        .remote_anonymous(url)
        .map_err(|e| cache_error(dir, e))?;
    let mut stats = TransferStats::default();

    if let RefRequest::Commit(id) = &request.reference {
        // A pinned commit never moves: once cached, no network at all.
        let deepen = !request.shallow && repo.is_shallow();
        if let Some(commit) = find_commit(&repo, id).filter(|_| !deepen) {
            return pinned_outcome(&repo, dir, commit, stats, started);
        }
        let received = Rc::new(Cell::new(0usize));
        let mut options = counting_fetch_options(creds, url, received.clone());
        options.download_tags(git2::AutotagOption::None);
        options.update_fetchhead(false);
        if deepen {
            options.depth(i32::MAX); // unshallow: history is needed (AllCommits)
        }
        let refspecs = [
            "+refs/heads/*:refs/kubemint/refs/heads/*",
            "+refs/tags/*:refs/kubemint/refs/tags/*",
        ];
        remote
            .fetch(&refspecs, Some(&mut options), None)
            .map_err(unreachable)?;
        stats.add(&remote.stats(), received.get());
        stats.round_trips += 1;
        let commit = find_commit(&repo, id).ok_or_else(|| SourceError::RefNotFound {
            url: redact_url(url),
            reference: request.reference.describe(),
        })?;
        return pinned_outcome(&repo, dir, commit, stats, started);
    }

    let heads = ls_remote(&mut remote, creds, url).map_err(unreachable)?;
    stats.round_trips += 1;
    let refs = peel_advertisement(&heads);
    let resolved = resolve(&request.reference, &refs).ok_or_else(|| SourceError::RefNotFound {
        url: redact_url(url),
        reference: request.reference.describe(),
    })?;
    let local = local_ref(&resolved.name);
    let previous = repo
        .refname_to_id(&local)
        .ok()
        .filter(|oid| repo.find_commit(*oid).is_ok());

    // A cache made shallow by a HEAD-mode fetch lacks the history AllCommits
    // verifies: deepen it even when the tip is already there.
    let deepen = !request.shallow && repo.is_shallow();
    if repo.find_commit(resolved.commit).is_err() || deepen {
        let received = Rc::new(Cell::new(0usize));
        let mut options = counting_fetch_options(creds, url, received.clone());
        options.download_tags(git2::AutotagOption::None);
        options.update_fetchhead(false);
        if request.shallow
            && !is_local(url)
            && previous.is_none()
            && repo.is_empty().unwrap_or(false)
        {
            options.depth(1);
        } else if deepen {
            options.depth(i32::MAX); // unshallow: history is needed (AllCommits)
        }
        let refspec = format!("+{}:{local}", resolved.name);
        remote
            .fetch(&[refspec.as_str()], Some(&mut options), None)
            .map_err(unreachable)?;
        stats.add(&remote.stats(), received.get());
        stats.round_trips += 1;
    }
    // The tip may have been fetched under another ref name (or be a peeled tag):
    // pin the commit itself so that gc never drops a commit we may render.
    let commit = repo
        .find_commit(resolved.commit)
        .map_err(|e| cache_error(dir, e))?;
    repo.reference(&local, commit.id(), true, "kubemint fetch")
        .map_err(|e| cache_error(dir, e))?;
    let rewritten_from = previous.filter(|old| {
        *old != commit.id() && !repo.graph_descendant_of(commit.id(), *old).unwrap_or(false)
    });
    stats.elapsed = started.elapsed();
    Ok(FetchOutcome {
        commit: commit_meta(&commit),
        reference: resolved.name,
        previous: previous.map(|o| o.to_string()),
        rewritten_from: rewritten_from.map(|o| o.to_string()),
        stats,
    })
}

/// Fetch options whose transfer progress records the pack bytes received in `received`.
fn counting_fetch_options(
    creds: &GitCredentials,
    url: &str,
    received: Rc<Cell<usize>>,
) -> git2::FetchOptions<'static> {
    let mut callbacks = remote_callbacks(creds, url);
    callbacks.transfer_progress(move |p| {
        received.set(received.get().max(p.received_bytes()));
        true
    });
    let mut options = git2::FetchOptions::new();
    options.remote_callbacks(callbacks);
    let headers = creds.http_headers();
    if !headers.is_empty() {
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        options.custom_headers(&headers);
    }
    options
}

/// Local paths and `file://` URLs: libgit2's local transport cannot fetch shallow
/// (and needs not: objects are copied from disk).
fn is_local(url: &str) -> bool {
    url.starts_with("file://") || url.starts_with('/') || url.starts_with('.') || !url.contains(':')
}

fn find_commit<'r>(repo: &'r Repository, id: &str) -> Option<git2::Commit<'r>> {
    repo.revparse_single(id).ok()?.peel_to_commit().ok()
}

fn pinned_outcome(
    repo: &Repository,
    dir: &Path,
    commit: git2::Commit<'_>,
    mut stats: TransferStats,
    started: Instant,
) -> Result<FetchOutcome, SourceError> {
    let local = format!("refs/kubemint/pinned/{}", commit.id());
    repo.reference(&local, commit.id(), true, "kubemint pin")
        .map_err(|e| cache_error(dir, e))?;
    stats.elapsed = started.elapsed();
    Ok(FetchOutcome {
        commit: commit_meta(&commit),
        reference: commit.id().to_string(),
        previous: Some(commit.id().to_string()),
        rewritten_from: None,
        stats,
    })
}

/// The remote's ref advertisement, in one round trip and with the same
/// callbacks and HTTP headers as a fetch. It is a fetch whose refspec matches
/// nothing: libgit2 connects, reads the advertisement, wants nothing and so
/// requests no pack.
fn ls_remote(
    remote: &mut Remote<'_>,
    creds: &GitCredentials,
    url: &str,
) -> Result<Vec<(String, Oid)>, git2::Error> {
    let mut options = fetch_options(creds, url);
    options.download_tags(git2::AutotagOption::None);
    options.update_fetchhead(false);
    options.prune(git2::FetchPrune::Off);
    remote.fetch(
        &["+refs/kubemint-list-only/*:refs/kubemint-list-only/*"],
        Some(&mut options),
        None,
    )?;
    Ok(remote
        .list()?
        .iter()
        .map(|h| (h.name().to_string(), h.oid()))
        .collect())
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

#[cfg(test)]
mod tests {
    use super::{is_local, left_unread_by_budget};
    use crate::render::{EntryKind, Limits, RepoTree, TreeEntry};

    #[test]
    fn a_tree_is_shared_only_when_the_budget_left_nothing_out() {
        let limits = Limits {
            max_file_bytes: 100,
            max_release_bytes: 1000,
            ..Limits::default()
        };
        let tree = |kinds: Vec<EntryKind>| RepoTree {
            entries: kinds
                .into_iter()
                .enumerate()
                .map(|(i, kind)| TreeEntry {
                    path: format!("f{i}"),
                    kind,
                })
                .collect(),
        };
        let rows = [
            (
                "everything read",
                vec![EntryKind::File(b"x".to_vec())],
                false,
            ),
            (
                "a file over the file limit: left out whatever the path",
                vec![EntryKind::Unread { size: 101 }],
                false,
            ),
            (
                "a small file left out by the commit's budget: depends on the path",
                vec![EntryKind::Unread { size: 50 }],
                true,
            ),
        ];
        for (name, kinds, want) in rows {
            assert_eq!(left_unread_by_budget(&tree(kinds), &limits), want, "{name}");
        }
    }

    /// A repository with one commit of `deploy/a.yaml`; its path and the commit.
    fn upstream() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        let blob = repo.blob(b"a: 1\n").unwrap();
        let mut deploy = repo.treebuilder(None).unwrap();
        deploy.insert("a.yaml", blob, 0o100644).unwrap();
        let deploy = deploy.write().unwrap();
        let mut root = repo.treebuilder(None).unwrap();
        root.insert("deploy", deploy, 0o040000).unwrap();
        let tree = repo.find_tree(root.write().unwrap()).unwrap();
        let who = git2::Signature::now("A", "a@example.com").unwrap();
        let sha = repo
            .commit(Some("refs/heads/main"), &who, &who, "first", &tree, &[])
            .unwrap();
        (dir, sha.to_string())
    }

    fn with(namespace: &str, password: &str) -> super::GitCredentials {
        let data = [("username", "bot"), ("password", password)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        super::GitCredentials::from_secret(namespace, "git", &data).unwrap()
    }

    #[tokio::test]
    async fn a_shared_poll_s_commit_is_read_by_equal_credentials_only() {
        let (repo, sha) = upstream();
        let url = repo.path().display().to_string();
        let root = tempfile::tempdir().unwrap();
        let cache = super::GitCache::new(root.path());
        let request = |credentials| super::FetchRequest {
            credentials,
            ..super::FetchRequest::new(&url, super::RefRequest::Branch("main".into()))
        };
        let (a, b, other) = (
            with("team-a", "s3cret"),
            with("team-b", "s3cret"),
            with("team-c", "guess"),
        );
        assert_ne!(
            a.cache_identity(),
            b.cache_identity(),
            "an entry per Secret"
        );
        assert_eq!(a.poll_identity(), b.poll_identity(), "one poll for both");
        let polled = cache.poll(&request(a.clone()), None).await.unwrap();
        assert!(!polled.shared);
        let shared = cache.poll(&request(b.clone()), None).await.unwrap();
        assert!(shared.shared, "B takes A's poll");
        assert_eq!(shared.outcome.commit.sha, sha);
        let limits = Limits::default();
        // B reads the commit A's poll fetched, from A's entry: nothing fetched into B's.
        let tree = cache.tree(&url, &b, &sha, &limits, "deploy").await.unwrap();
        assert!(tree.entries.iter().any(|e| e.path == "deploy/a.yaml"));
        assert!(!cache.repo_dir(&url, &b).unwrap().exists());
        let ids = cache
            .tree_ids(&url, &b, &sha, &["deploy".into()])
            .await
            .unwrap();
        assert!(ids[0].is_some());
        // Other credentials get nothing from it: neither the poll nor the commit.
        assert!(cache.tree(&url, &other, &sha, &limits, "").await.is_err());
        assert!(cache
            .tree(&url, &super::GitCredentials::none(), &sha, &limits, "")
            .await
            .is_err());
        let own = cache.poll(&request(other.clone()), None).await.unwrap();
        assert!(!own.shared, "other credentials poll on their own");
    }

    #[test]
    fn local_urls_are_never_fetched_shallow() {
        assert!(is_local("file:///srv/git/deploy"));
        assert!(is_local("/srv/git/deploy"));
        assert!(is_local("./deploy"));
        assert!(!is_local("https://host/repo.git"));
        assert!(!is_local("git@github.com:acme/deploy.git"));
        assert!(!is_local("ssh://git@host:22/r.git"));
    }
}
