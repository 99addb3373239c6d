//! Local-path watches: a channel whose `spec.git.url` is a path on this machine
//! (or a `file://` URL) is synced as soon as one of the repository's refs
//! changes, instead of at the next poll.
//!
//! Only refs are watched (`HEAD`, `packed-refs`, `refs/`): a commit is visible
//! to a fetch exactly when a ref moves, and object writes are many and noisy.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use super::local_path;

/// What to do when a watched repository's refs change.
pub type OnChange = Arc<dyn Fn() + Send + Sync>;

/// Whether a changed file inside a git directory moves a ref. Lock files are
/// written first and renamed into place, so only the rename target counts.
pub fn moves_a_ref(git_dir: &Path, changed: &Path) -> bool {
    let Ok(relative) = changed.strip_prefix(git_dir) else {
        return false;
    };
    if relative.extension().is_some_and(|e| e == "lock") {
        return false;
    }
    relative == Path::new("HEAD")
        || relative == Path::new("packed-refs")
        || relative.starts_with("refs")
}

/// Errors of a watch; the channel falls back to polling at its interval.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The path is not a git repository.
    #[error("{path} is not a git repository: {message}")]
    NotARepository {
        /// The path.
        path: String,
        /// What git2 said.
        message: String,
    },
    /// inotify (or the platform's equivalent) refused the watch.
    #[error("cannot watch {path}: {message}")]
    Notify {
        /// The path.
        path: String,
        /// What notify said.
        message: String,
    },
}

struct Active {
    url: String,
    _watcher: RecommendedWatcher,
}

/// The watches of all channels, keyed by channel (`namespace/name`).
#[derive(Default)]
pub struct WatchRegistry {
    active: Mutex<HashMap<String, Active>>,
}

impl WatchRegistry {
    /// Makes sure `key` watches the repository at `url` when it is local, calling
    /// `on_change` for every ref change; drops its watch when `url` is remote.
    /// Cheap when nothing changed, so it can run on every reconcile.
    pub fn ensure(&self, key: &str, url: &str, on_change: OnChange) -> Result<(), WatchError> {
        let Some(path) = local_path(url) else {
            self.forget(key);
            return Ok(());
        };
        if self
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .is_some_and(|a| a.url == url)
        {
            return Ok(());
        }
        let git_dir = git2::Repository::open(&path)
            .map(|r| r.path().to_path_buf())
            .map_err(|e| WatchError::NotARepository {
                path: path.display().to_string(),
                message: e.message().to_string(),
            })?;
        let watcher = watch_refs(&git_dir, on_change)?;
        tracing::info!(channel = %key, path = %git_dir.display(), "watching local repository for new commits");
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                key.to_string(),
                Active {
                    url: url.to_string(),
                    _watcher: watcher,
                },
            );
        Ok(())
    }

    /// Stops watching for `key` (the channel was deleted or moved to a remote URL).
    pub fn forget(&self, key: &str) {
        let removed = self
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        if removed.is_some() {
            tracing::info!(channel = %key, "stopped watching local repository");
        }
    }

    /// How many channels are watched.
    pub fn len(&self) -> usize {
        self.active.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no channel is watched.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn watch_refs(git_dir: &Path, on_change: OnChange) -> Result<RecommendedWatcher, WatchError> {
    let notify_error = |path: &Path, e: notify::Error| WatchError::Notify {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let dir = git_dir.to_path_buf();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        if event.paths.iter().any(|p| moves_a_ref(&dir, p)) {
            on_change();
        }
    })
    .map_err(|e| notify_error(git_dir, e))?;
    // The git dir itself non-recursively (HEAD, packed-refs), refs/ recursively.
    watcher
        .watch(git_dir, RecursiveMode::NonRecursive)
        .map_err(|e| notify_error(git_dir, e))?;
    let refs = git_dir.join("refs");
    watcher
        .watch(&refs, RecursiveMode::Recursive)
        .map_err(|e| notify_error(&refs, e))?;
    Ok(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, Instant};

    #[test]
    fn only_ref_files_count() {
        let git = Path::new("/r/.git");
        assert!(moves_a_ref(git, Path::new("/r/.git/refs/heads/main")));
        assert!(moves_a_ref(git, Path::new("/r/.git/refs/heads/team/x")));
        assert!(moves_a_ref(git, Path::new("/r/.git/packed-refs")));
        assert!(moves_a_ref(git, Path::new("/r/.git/HEAD")));
        assert!(!moves_a_ref(git, Path::new("/r/.git/refs/heads/main.lock")));
        assert!(!moves_a_ref(git, Path::new("/r/.git/objects/ab/cdef")));
        assert!(!moves_a_ref(git, Path::new("/r/.git/index")));
        assert!(!moves_a_ref(git, Path::new("/elsewhere/refs/heads/main")));
    }

    /// A real repository and inotify: a commit made by git fires the callback.
    #[test]
    fn a_commit_fires_the_watch() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        let fired = Arc::new(AtomicUsize::new(0));
        let registry = WatchRegistry::default();
        let counter = fired.clone();
        registry
            .ensure(
                "ns/ch",
                dir.path().to_str().unwrap(),
                Arc::new(move || {
                    counter.fetch_add(1, Ordering::SeqCst);
                }),
            )
            .unwrap();
        assert_eq!(registry.len(), 1);
        let sig = git2::Signature::now("Ada", "ada@example.com").unwrap();
        let tree = repo
            .find_tree(repo.index().unwrap().write_tree().unwrap())
            .unwrap();
        repo.commit(Some("HEAD"), &sig, &sig, "first", &tree, &[])
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while fired.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(fired.load(Ordering::SeqCst) > 0, "no event for the commit");
        registry.forget("ns/ch");
        assert!(registry.is_empty());
    }

    #[test]
    fn remote_urls_are_not_watched() {
        let registry = WatchRegistry::default();
        registry
            .ensure("ns/ch", "https://example.com/r.git", Arc::new(|| {}))
            .unwrap();
        assert!(registry.is_empty());
        assert!(registry
            .ensure("ns/ch", "/nonexistent/kubemint/repo", Arc::new(|| {}))
            .is_err());
    }
}
