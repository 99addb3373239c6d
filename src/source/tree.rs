//! Reading a commit's tree, or a directory on disk, into the render layer's [`RepoTree`].

use std::path::Path;

use git2::{ObjectType, Oid, Repository, TreeWalkMode, TreeWalkResult};

use crate::render::{
    self, EntryKind, KustomizeFailure, Limits, Release, RenderError, RenderOptions, RepoTree,
    TreeEntry,
};

/// File mode git uses for symbolic links.
const SYMLINK_MODE: i32 = 0o120000;

/// Reads the blobs of `commit`'s tree; symlinks are kept as links for render to
/// resolve. A file over `limits` is left unread ([`EntryKind::Unread`]): its
/// size comes from the object's header, so it is never inflated.
pub fn tree_at(repo: &Repository, commit: Oid, limits: &Limits) -> Result<RepoTree, git2::Error> {
    let tree = repo.find_commit(commit)?.tree()?;
    let odb = repo.odb()?;
    let mut budget = limits.budget();
    let mut entries = Vec::new();
    let mut failure = None;
    tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
        if entry.kind() != Some(ObjectType::Blob) {
            return TreeWalkResult::Ok; // trees are walked into; submodules are skipped
        }
        let path = format!("{dir}{}", String::from_utf8_lossy(entry.name_bytes()));
        let symlink = entry.filemode() == SYMLINK_MODE;
        let read = odb.read_header(entry.id()).and_then(|(size, _)| {
            let size = size as u64;
            // A link's target is tiny by nature; it is not counted.
            if !symlink && !budget.admit(size) {
                return Ok(EntryKind::Unread { size });
            }
            let blob = repo.find_blob(entry.id())?;
            Ok(if symlink {
                EntryKind::Symlink(String::from_utf8_lossy(blob.content()).into_owned())
            } else {
                EntryKind::File(blob.content().to_vec())
            })
        });
        match read {
            Ok(kind) => {
                entries.push(TreeEntry { path, kind });
                TreeWalkResult::Ok
            }
            Err(e) => {
                failure = Some(e);
                TreeWalkResult::Abort
            }
        }
    })?;
    match failure {
        Some(e) => Err(e),
        None => Ok(RepoTree { entries }),
    }
}

/// A directory on disk, read for rendering as the repository it belongs to.
///
/// Inside a git work tree the tree is the whole work tree (what git does not
/// ignore, and everything under the directory itself), so an overlay in the
/// directory reaches its base elsewhere in the checkout, and symlinks and
/// kustomize are confined to the checkout as they are for a commit. Outside
/// git, the directory alone is the repository.
#[derive(Debug)]
pub struct LocalTree {
    /// The files.
    pub tree: RepoTree,
    /// The directory's path in `tree` (`""` when it is the root).
    pub prefix: String,
    /// Whether `tree` is a git work tree (else: the directory alone).
    pub in_git: bool,
}

impl LocalTree {
    /// Reads `dir`, leaving files over `limits` unread.
    pub fn read(dir: &Path, limits: &Limits) -> Result<LocalTree, RenderError> {
        let repo = Repository::discover(dir).ok();
        let inside = repo.as_ref().and_then(|repo| {
            let workdir = repo.workdir()?.canonicalize().ok()?;
            let rel = dir
                .canonicalize()
                .ok()?
                .strip_prefix(&workdir)
                .ok()?
                .to_path_buf();
            Some((workdir, rel.to_string_lossy().into_owned()))
        });
        let (Some(repo), Some((workdir, prefix))) = (repo, inside) else {
            return Ok(LocalTree {
                tree: RepoTree::from_dir(dir, limits)?,
                prefix: String::new(),
                in_git: false,
            });
        };
        let index = repo.index().ok();
        let keep = |rel: &str, is_dir: bool| {
            // The directory asked for, and the way down to it, are read whatever
            // the ignore rules say; elsewhere only what git would see.
            let on_the_way = prefix == rel || prefix.starts_with(&format!("{rel}/"));
            let under = prefix.is_empty() || rel.starts_with(&format!("{prefix}/"));
            if on_the_way || under {
                return true;
            }
            let tracked = !is_dir
                && index
                    .as_ref()
                    .is_some_and(|i| i.get_path(Path::new(rel), 0).is_some());
            tracked || !repo.is_path_ignored(rel).unwrap_or(false)
        };
        Ok(LocalTree {
            tree: RepoTree::from_dir_filtered(&workdir, &keep, limits)?,
            prefix,
            in_git: true,
        })
    }

    /// Renders `opts.path` relative to the directory. Files in the release and
    /// in errors are shown relative to the directory when they are inside it,
    /// and relative to the repository otherwise.
    pub fn render(&self, opts: &RenderOptions) -> Result<Release, RenderError> {
        let opts = RenderOptions {
            path: format!("{}/{}", self.prefix, opts.path),
            ..opts.clone()
        };
        let shown = |file: &str| self.relative(file);
        match render::render(&self.tree, &opts) {
            Ok(mut release) => {
                release.map_files(shown);
                Ok(release)
            }
            Err(RenderError::Kustomize {
                file,
                failure: KustomizeFailure::Refused,
                message,
            }) if !self.in_git && message.contains("leaves the repository") => {
                Err(RenderError::Kustomize {
                    file,
                    failure: KustomizeFailure::Refused,
                    message: format!(
                        "{message} (outside a git checkout the directory given is the \
                         repository: name the directory that holds the bases, with --path)"
                    ),
                })
            }
            Err(e) => Err(e.map_files(shown)),
        }
    }

    fn relative(&self, file: &str) -> String {
        if self.prefix.is_empty() {
            return file.to_string();
        }
        file.strip_prefix(&format!("{}/", self.prefix))
            .unwrap_or(file)
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let ok = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", dir)
            .status()
            .expect("git runs")
            .success();
        assert!(ok, "git {args:?}");
    }

    #[test]
    fn a_directory_in_a_work_tree_is_read_with_its_repository() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        git(root, &["init", "-q"]);
        for (path, content) in [
            (".gitignore", "target/\n*.log\ngen/\n"),
            ("base/cm.yaml", "base"),
            ("app/dev/kustomization.yaml", "resources: [../../base]"),
            ("target/debug/huge", "ignored"),
            ("app/dev/notes.log", "under the directory: kept"),
            ("gen/out.yaml", "ignored but asked for"),
        ] {
            std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
            std::fs::write(root.join(path), content).unwrap();
        }
        let local = LocalTree::read(&root.join("app/dev"), &Limits::default()).unwrap();
        assert_eq!(local.prefix, "app/dev");
        let paths: Vec<&str> = local.tree.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                ".gitignore",
                "app/dev/kustomization.yaml",
                "app/dev/notes.log",
                "base/cm.yaml"
            ]
        );
        let local = LocalTree::read(&root.join("gen"), &Limits::default()).unwrap();
        assert!(local.tree.entries.iter().any(|e| e.path == "gen/out.yaml"));
        assert_eq!(local.relative("gen/out.yaml"), "out.yaml");
        assert_eq!(local.relative("base/cm.yaml"), "base/cm.yaml");
    }

    #[test]
    fn a_directory_outside_git_is_its_own_repository() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), "a").unwrap();
        let local = LocalTree::read(dir.path(), &Limits::default()).unwrap();
        assert_eq!(local.prefix, "");
        assert_eq!(local.tree.entries.len(), 1);
    }
}
