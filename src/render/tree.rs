//! The repository tree render works on, and reading one from a directory.

use std::path::Path;

use super::{Budget, Limits, RenderError};

/// A repository tree as read from a directory or from a git commit.
///
/// Paths are relative to the repository root, `/`-separated, with no leading `./`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoTree {
    /// Every file and symlink of the tree; directories are implied by the paths.
    pub entries: Vec<TreeEntry>,
}

/// One file or symlink of a [`RepoTree`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// Repository-relative, `/`-separated path.
    pub path: String,
    /// Content or link target.
    pub kind: EntryKind,
}

/// What a [`TreeEntry`] holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file and its bytes.
    File(Vec<u8>),
    /// A symbolic link and its target as written (resolved by render, never by the reader).
    Symlink(String),
    /// A regular file left unread: over the limit of one file, or past the
    /// commit's budget ([`Limits`]). Render refuses the commit if it needs it.
    Unread {
        /// Its size in bytes.
        size: u64,
    },
}

impl RepoTree {
    /// Reads a directory (the repository root) recursively.
    ///
    /// Skips `.git` (directory or submodule file) and anything that is neither a
    /// file, a directory nor a symlink. Symlinks are recorded as
    /// [`EntryKind::Symlink`] and never followed, so a link cannot make render read
    /// outside the repository. Files beyond `limits` are left unread
    /// ([`EntryKind::Unread`]). Entries come out sorted by path.
    pub fn from_dir(root: &Path, limits: &Limits) -> Result<RepoTree, RenderError> {
        RepoTree::from_dir_filtered(root, &|_, _| true, limits)
    }

    /// Like [`RepoTree::from_dir`], reading only what `keep(relative path, is_dir)`
    /// accepts (a directory that is not kept is not entered).
    pub fn from_dir_filtered(
        root: &Path,
        keep: &dyn Fn(&str, bool) -> bool,
        limits: &Limits,
    ) -> Result<RepoTree, RenderError> {
        let mut entries = Vec::new();
        let mut budget = limits.budget();
        read_dir_into(root, "", keep, &mut budget, &mut entries)?;
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(RepoTree { entries })
    }
}

fn io_err(path: &Path, source: std::io::Error) -> RenderError {
    RenderError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn read_dir_into(
    dir: &Path,
    prefix: &str,
    keep: &dyn Fn(&str, bool) -> bool,
    budget: &mut Budget,
    out: &mut Vec<TreeEntry>,
) -> Result<(), RenderError> {
    let read = std::fs::read_dir(dir).map_err(|e| io_err(dir, e))?;
    for entry in read {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == ".git" {
            continue;
        }
        let full = entry.path();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        // symlink_metadata: a link is described as a link, never as what it points to.
        let meta = std::fs::symlink_metadata(&full).map_err(|e| io_err(&full, e))?;
        let file_type = meta.file_type();
        if !keep(&rel, file_type.is_dir()) {
            continue;
        }
        if file_type.is_symlink() {
            let target = std::fs::read_link(&full).map_err(|e| io_err(&full, e))?;
            out.push(TreeEntry {
                path: rel,
                kind: EntryKind::Symlink(target.to_string_lossy().into_owned()),
            });
        } else if file_type.is_dir() {
            read_dir_into(&full, &rel, keep, budget, out)?;
        } else if file_type.is_file() {
            let size = meta.len();
            let kind = if budget.admit(size) {
                EntryKind::File(std::fs::read(&full).map_err(|e| io_err(&full, e))?)
            } else {
                EntryKind::Unread { size }
            };
            out.push(TreeEntry { path: rel, kind });
        }
    }
    Ok(())
}

#[cfg(test)]
impl RepoTree {
    /// A tree of files (`Ok(content)`) and symlinks (`Err(target)`), for tests.
    pub(crate) fn for_tests(entries: &[(&str, Result<&str, &str>)]) -> RepoTree {
        RepoTree {
            entries: entries
                .iter()
                .map(|(p, k)| TreeEntry {
                    path: p.to_string(),
                    kind: match k {
                        Ok(content) => EntryKind::File(content.as_bytes().to_vec()),
                        Err(target) => EntryKind::Symlink(target.to_string()),
                    },
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn from_dir_reads_files_and_links_and_skips_git() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join(".git/objects")).unwrap();
        std::fs::write(root.join(".git/config"), "x").unwrap();
        std::fs::create_dir_all(root.join("deploy/web")).unwrap();
        std::fs::write(root.join("deploy/web/a.yaml"), "a: 1").unwrap();
        symlink("web/a.yaml", root.join("deploy/link.yaml")).unwrap();
        symlink("/etc/passwd", root.join("deploy/evil.yaml")).unwrap();

        let tree = RepoTree::from_dir(root, &Limits::default()).unwrap();
        let paths: Vec<&str> = tree.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["deploy/evil.yaml", "deploy/link.yaml", "deploy/web/a.yaml"]
        );
        assert_eq!(
            tree.entries[0].kind,
            EntryKind::Symlink("/etc/passwd".into())
        );
        assert_eq!(
            tree.entries[1].kind,
            EntryKind::Symlink("web/a.yaml".into())
        );
        assert_eq!(tree.entries[2].kind, EntryKind::File(b"a: 1".to_vec()));
    }

    #[test]
    fn from_dir_leaves_files_over_the_limits_unread() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "x".repeat(100)).unwrap();
        std::fs::write(dir.path().join("b.yaml"), "y".repeat(10)).unwrap();
        let limits = Limits {
            max_file_bytes: 50,
            ..Limits::default()
        };
        let tree = RepoTree::from_dir(dir.path(), &limits).unwrap();
        assert_eq!(tree.entries[0].kind, EntryKind::Unread { size: 100 });
        assert_eq!(tree.entries[1].kind, EntryKind::File(b"y".repeat(10)));
    }

    #[test]
    fn from_dir_on_missing_directory_is_a_read_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = RepoTree::from_dir(&dir.path().join("nope"), &Limits::default()).unwrap_err();
        assert_eq!(err.reason(), "ReadFailed");
    }
}
