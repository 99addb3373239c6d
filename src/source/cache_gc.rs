//! Removing cache entries nothing has fetched into for a while: the entries of
//! deleted channels, of rotated credentials (a new Secret content is a new
//! entry), and those named the way older releases named them.
//!
//! Every fetch stamps its entry (a `kubemint-last-used` file holding the Unix
//! time); an entry without a stamp is judged by its directory's modification time.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The stamp file inside an entry.
const STAMP: &str = "kubemint-last-used";

/// Records that the entry at `dir` was used now. Best effort: a cache that
/// cannot be stamped is collected a little early at worst, and fetched again.
pub fn mark_used(dir: &Path) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let _ = std::fs::write(dir.join(STAMP), now.to_string());
}

/// When the entry at `dir` was last used, as far as the disk says.
fn last_used(dir: &Path) -> Option<SystemTime> {
    let stamped = std::fs::read_to_string(dir.join(STAMP))
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(|secs| UNIX_EPOCH + Duration::from_secs(secs));
    stamped.or_else(|| std::fs::metadata(dir).and_then(|m| m.modified()).ok())
}

/// The entries under `root` (bare repositories `*.git`) not used for `max_age` at `now`.
pub fn stale_entries(root: &Path, now: SystemTime, max_age: Duration) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut stale: Vec<PathBuf> = read
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.extension().is_some_and(|x| x == "git"))
        .filter(|p| {
            last_used(p)
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > max_age)
        })
        .collect();
    stale.sort();
    stale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_unused_for_longer_than_the_age_are_stale() {
        let root = tempfile::tempdir().unwrap();
        for name in ["fresh.git", "old.git", "unstamped.git", "not-an-entry"] {
            std::fs::create_dir(root.path().join(name)).unwrap();
        }
        let now = SystemTime::now();
        mark_used(&root.path().join("fresh.git"));
        let week_ago = now - Duration::from_secs(7 * 24 * 3600);
        let secs = week_ago.duration_since(UNIX_EPOCH).unwrap().as_secs();
        std::fs::write(root.path().join("old.git").join(STAMP), secs.to_string()).unwrap();
        std::fs::write(root.path().join("salt"), "x").unwrap();

        let day = Duration::from_secs(24 * 3600);
        assert_eq!(
            stale_entries(root.path(), now, day),
            [root.path().join("old.git")]
        );
        // An entry without a stamp (an older release's) ages with its directory.
        let later = now + 2 * day;
        let all: Vec<PathBuf> = ["fresh.git", "old.git", "unstamped.git"]
            .iter()
            .map(|n| root.path().join(n))
            .collect();
        assert_eq!(stale_entries(root.path(), later, day), all);
        assert!(stale_entries(&root.path().join("missing"), now, day).is_empty());
    }
}
