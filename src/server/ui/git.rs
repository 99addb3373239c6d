//! The git side of the release page: its diff against the release before,
//! rendered from a git cache of the UI's own, and where its commit ran, from
//! the deployment notes of every cluster.
//!
//! A page view never waits on the network or the API server: it reads what
//! is known and, when that is missing or old, asks for a refresh in the
//! background (the channel's credentials, the release commits, the notes);
//! the live script swaps the result in once it is there.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::Client;

use super::model::{where_it_ran, Entry, RanView};
use crate::api::Channel;
use crate::engine::{self, tenancy};
use crate::render::diff::{release_diff, ObjectDiff};
use crate::render::{self, KustomizeCommand, Limits, RenderOptions};
use crate::source::notes::{read_notes, NoteRecord};
use crate::source::{FetchRequest, GitCache, GitCredentials, RefRequest, SourceError};

/// How long what was read from git is shown before it is read again.
const MAX_AGE: Duration = Duration::from_secs(30);

/// How long the channel's git credentials are used before they are read
/// again (a rotated Secret is picked up then, or at once after a failed fetch).
const CREDENTIALS_AGE: Duration = Duration::from_secs(300);

/// Cache entries nothing fetched into for this long are deleted, checked
/// at most every [`GC_EVERY`].
const GC_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
const GC_EVERY: Duration = Duration::from_secs(3600);

/// Diffs kept in memory at most (each a pair of commits of one channel).
const MAX_DIFFS: usize = 256;

/// Why the git side could not tell something.
#[derive(Debug, thiserror::Error)]
pub enum GitSideError {
    /// The channel's credentials could not be read, or a stage refused.
    #[error(transparent)]
    Engine(#[from] engine::Error),
    /// Reading the cache failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A commit did not render (it could not have been delivered either).
    #[error(transparent)]
    Render(#[from] render::RenderError),
    /// The notes could not be read.
    #[error(transparent)]
    Notes(#[from] crate::source::notes::NotesError),
}

/// What the UI's git side was set up with.
#[derive(Clone)]
pub struct GitSettings {
    /// The UI's own git cache (never the controller's: two processes or
    /// caches fetching into one repository at once is not safe).
    pub cache_dir: PathBuf,
    /// This cluster's name in notes (`--cluster-name`), to tell the others apart.
    pub cluster: Option<String>,
    /// Whether `spec.git.url` may be a local path (the operator's
    /// `--allow-local-sources`; `kubemint ui` reads with the user's own git).
    pub allow_local_sources: bool,
    /// The kustomize command (`None`: the default).
    pub kustomize: Option<KustomizeCommand>,
    /// The limits of one commit.
    pub limits: Limits,
}

/// What is known from git about one channel.
#[derive(Default)]
struct Known {
    /// The URL it was read for (a changed `spec.git.url` starts over).
    url: String,
    credentials: Option<GitCredentials>,
    /// When the credentials were read.
    credentials_read: Option<Instant>,
    /// Commits known to be in the cache.
    fetched: HashSet<String>,
    notes: Option<Arc<Vec<NoteRecord>>>,
    notes_error: Option<String>,
    fetch_error: Option<String>,
    refreshed: Option<Instant>,
    busy: bool,
}

/// A release's diff, as far as it is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffState {
    /// Computed: the objects that differ.
    Ready(Arc<Vec<ObjectDiff>>),
    /// Being read from git.
    Pending,
    /// It cannot be shown, and why.
    Unavailable(String),
}

/// What the release page shows from git.
#[derive(Debug, Clone)]
pub struct GitFacts {
    /// The diff against the release before.
    pub diff: DiffState,
    /// Where else the commit ran; `None` while the notes are being read.
    pub ran: Option<Vec<RanView>>,
    /// Why the notes could not be read.
    pub notes_error: Option<String>,
}

type DiffKey = (String, String, String, Option<String>, String);

struct Inner {
    cache: GitCache,
    client: Client,
    settings: GitSettings,
    known: Mutex<HashMap<String, Known>>,
    diffs: Mutex<HashMap<DiffKey, DiffState>>,
    collected: Mutex<Option<Instant>>,
}

/// The git side, shared by the handlers.
#[derive(Clone)]
pub struct GitSide {
    inner: Arc<Inner>,
}

impl GitSide {
    /// Reads the channels' Secrets with `client` (in the background only).
    pub fn new(client: Client, settings: GitSettings) -> GitSide {
        GitSide {
            inner: Arc::new(Inner {
                cache: GitCache::new(&settings.cache_dir),
                client,
                settings,
                known: Mutex::default(),
                diffs: Mutex::default(),
                collected: Mutex::default(),
            }),
        }
    }

    /// What git tells about release `entry` of `channel` now; starts a
    /// refresh in the background when that is missing or old.
    pub async fn facts(&self, channel: &Channel, entry: &Entry) -> GitFacts {
        let url = channel.spec.git.url.clone();
        if let Some(refused) =
            tenancy::local_source_refusal(&url, &self.policy()).map(|e| e.to_string())
        {
            return GitFacts {
                diff: DiffState::Unavailable(refused.clone()),
                ran: None,
                notes_error: Some(refused),
            };
        }
        let wanted: Vec<&str> = std::iter::once(entry.commit.sha.as_str())
            .chain(entry.before.as_deref())
            .collect();
        let (credentials, have_all, fetch_error, notes, notes_error) = {
            let mut known = self.inner.known.lock().unwrap_or_else(|p| p.into_inner());
            let k = known.entry(channel.key()).or_default();
            if k.url != url {
                *k = Known {
                    url: url.clone(),
                    ..Known::default()
                };
            }
            let have_all = wanted.iter().all(|c| k.fetched.contains(*c));
            let stale = k.refreshed.is_none_or(|t| t.elapsed() > MAX_AGE) || !have_all;
            if stale && !k.busy {
                k.busy = true;
                let (side, channel) = (self.clone(), channel.clone());
                tokio::spawn(async move { side.refresh(channel).await });
            }
            (
                k.credentials.clone(),
                have_all,
                k.fetch_error.clone(),
                k.notes.clone(),
                k.notes_error.clone(),
            )
        };
        let diff = match (credentials, have_all, fetch_error) {
            (Some(creds), true, _) => self.diff(channel, &creds, entry).await,
            (_, _, Some(e)) => DiffState::Unavailable(e),
            _ => DiffState::Pending,
        };
        let own = (self.inner.settings.cluster.as_deref(), channel.key());
        let ran = notes.map(|n| where_it_ran(&n, &entry.commit.sha, (own.0, &own.1)));
        GitFacts {
            diff,
            ran,
            notes_error,
        }
    }

    fn policy(&self) -> tenancy::TenancyPolicy {
        tenancy::TenancyPolicy {
            allow_local_sources: self.inner.settings.allow_local_sources,
            ..tenancy::TenancyPolicy::default()
        }
    }

    /// The diff of `entry`, from memory or rendered from the cache.
    async fn diff(&self, channel: &Channel, creds: &GitCredentials, entry: &Entry) -> DiffState {
        let spec = &channel.spec.git;
        let key: DiffKey = (
            spec.url.clone(),
            spec.path.clone(),
            channel.target_namespace(),
            entry.before.clone(),
            entry.commit.sha.clone(),
        );
        if let Some(known) = self.memo().get(&key) {
            return known.clone();
        }
        let state = match self.render_diff(channel, creds, entry).await {
            Ok(diffs) => DiffState::Ready(Arc::new(diffs)),
            Err(e) => DiffState::Unavailable(e.to_string()),
        };
        let mut memo = self.memo();
        if memo.len() >= MAX_DIFFS {
            memo.clear();
        }
        memo.insert(key, state.clone());
        state
    }

    fn memo(&self) -> std::sync::MutexGuard<'_, HashMap<DiffKey, DiffState>> {
        self.inner.diffs.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn render_diff(
        &self,
        channel: &Channel,
        creds: &GitCredentials,
        entry: &Entry,
    ) -> Result<Vec<ObjectDiff>, GitSideError> {
        let after = self.render(channel, creds, &entry.commit.sha).await?;
        let before = match &entry.before {
            Some(sha) => Some(self.render(channel, creds, sha).await?),
            None => None,
        };
        Ok(release_diff(before.as_ref(), &after))
    }

    async fn render(
        &self,
        channel: &Channel,
        creds: &GitCredentials,
        sha: &str,
    ) -> Result<render::Release, GitSideError> {
        let settings = &self.inner.settings;
        let spec = &channel.spec.git;
        let tree = self
            .inner
            .cache
            .tree(&spec.url, creds, sha, &settings.limits, &spec.path)
            .await?;
        let options = RenderOptions {
            path: spec.path.clone(),
            namespace: Some(channel.target_namespace()),
            kustomize: settings.kustomize.clone(),
            limits: settings.limits,
        };
        // CPU work (and maybe kustomize): off the async workers.
        let release = tokio::task::spawn_blocking(move || render::render(&tree, &options))
            .await
            .map_err(|e| SourceError::Task(e.to_string()))??;
        Ok(release)
    }

    /// Reads the channel's credentials, fetches its release commits into the
    /// cache and reads every cluster's notes; records what it found.
    async fn refresh(&self, channel: Channel) {
        let key = channel.key();
        let url = channel.spec.git.url.clone();
        let mut fetched = HashSet::new();
        let mut fetch_error = None;
        let mut notes = None;
        let mut notes_error = None;
        let kept = {
            let known = self.inner.known.lock().unwrap_or_else(|p| p.into_inner());
            known
                .get(&key)
                .filter(|k| k.fetch_error.is_none() && k.url == url)
                .filter(|k| {
                    k.credentials_read
                        .is_some_and(|t| t.elapsed() < CREDENTIALS_AGE)
                })
                .and_then(|k| k.credentials.clone())
        };
        let read_now = kept.is_none();
        let credentials = match kept {
            Some(c) => Some(c),
            None => match engine::source::credentials(&self.inner.client, &channel).await {
                Ok(c) => Some(c),
                Err(e) => {
                    fetch_error = Some(e.to_string());
                    notes_error = Some(e.to_string());
                    None
                }
            },
        };
        if let Some(creds) = &credentials {
            let mut commits: Vec<String> = channel
                .status
                .iter()
                .flat_map(|s| &s.releases)
                .map(|r| r.commit.sha.clone())
                .collect();
            commits.sort();
            commits.dedup();
            for sha in commits {
                // A commit once cached needs no network: the first one missing
                // fetches the branches' history, and the rest are then there.
                let request = FetchRequest {
                    url: url.clone(),
                    reference: RefRequest::Commit(sha.clone()),
                    credentials: creds.clone(),
                    shallow: false,
                };
                match self.inner.cache.fetch(&request).await {
                    Ok(_) => {
                        fetched.insert(sha);
                    }
                    Err(e) => fetch_error = Some(GitSideError::from(e).to_string()),
                }
            }
            match read_notes(url.clone(), creds.clone()).await {
                Ok(n) => notes = Some(Arc::new(n)),
                Err(e) => notes_error = Some(GitSideError::from(e).to_string()),
            }
        }
        self.collect_garbage().await;
        let mut known = self.inner.known.lock().unwrap_or_else(|p| p.into_inner());
        let k = known.entry(key).or_default();
        if k.url != url {
            return; // the spec changed meanwhile: a new refresh will come
        }
        k.busy = false;
        k.refreshed = Some(Instant::now());
        if read_now && credentials.is_some() {
            k.credentials_read = Some(Instant::now());
        }
        k.credentials = credentials.or(k.credentials.take());
        k.fetched.extend(fetched);
        k.fetch_error = fetch_error;
        if notes.is_some() {
            k.notes = notes;
        }
        k.notes_error = notes_error;
    }

    /// Deletes the cache entries of channels no one has looked at for long.
    async fn collect_garbage(&self) {
        {
            let mut last = self
                .inner
                .collected
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < GC_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        self.inner.cache.collect_garbage(GC_AGE).await;
    }
}
