//! Reading a commit's tree, or a directory on disk, into the render layer's [`RepoTree`].

use std::path::Path;

use git2::{ObjectType, Oid, Repository, TreeWalkMode, TreeWalkResult};

use crate::render::{
    self, EntryKind, Limits, Release, RenderError, RenderOptions, RepoTree, TreeEntry,
};

/// File mode git uses for symbolic links.
const SYMLINK_MODE: i32 = 0o120000;

/// Reads the blobs of `commit`'s tree; symlinks are kept as links for render to
/// resolve. A file over `limits` is left unread ([`EntryKind::Unread`]): its
/// size comes from the object's header, so it is never inflated. The files
/// under directory `first` (the render path) get the commit's budget before
/// the rest of the tree (kustomize bases, a monorepo's other directories).
pub fn tree_at(
    repo: &Repository,
    commit: Oid,
    limits: &Limits,
    first: &str,
) -> Result<RepoTree, git2::Error> {
    let tree = repo.find_commit(commit)?.tree()?;
    // Paths, ids and modes first: nothing is inflated yet.
    let mut blobs: Vec<(String, Oid, bool)> = Vec::new();
    tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
        // Trees are walked into; submodules are skipped.
        if entry.kind() == Some(ObjectType::Blob) {
            let path = format!("{dir}{}", String::from_utf8_lossy(entry.name_bytes()));
            blobs.push((path, entry.id(), entry.filemode() == SYMLINK_MODE));
        }
        TreeWalkResult::Ok
    })?;
    let prefix = first.trim_start_matches("./").trim_matches('/');
    let prefix = if prefix == "." { "" } else { prefix };
    let under = |path: &str| {
        prefix.is_empty()
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    let mut order: Vec<usize> = (0..blobs.len()).collect();
    order.sort_by_key(|&i| !under(&blobs[i].0)); // stable: tree order within each part
    let odb = repo.odb()?;
    let mut budget = limits.budget();
    let mut kinds: Vec<Option<EntryKind>> = vec![None; blobs.len()];
    for i in order {
        let (_, id, symlink) = &blobs[i];
        let (size, _) = odb.read_header(*id)?;
        let size = size as u64;
        // A link's target is tiny by nature; it is not counted.
        kinds[i] = Some(if !symlink && !budget.admit(size) {
            EntryKind::Unread { size }
        } else {
            let blob = repo.find_blob(*id)?;
            if *symlink {
                EntryKind::Symlink(String::from_utf8_lossy(blob.content()).into_owned())
            } else {
                EntryKind::File(blob.content().to_vec())
            }
        });
    }
    let entries = blobs
        .into_iter()
        .zip(kinds)
        .filter_map(|((path, _, _), kind)| Some(TreeEntry { path, kind: kind? }))
        .collect();
    Ok(RepoTree { entries })
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
    pub fn render_release(&self, opts: &RenderOptions) -> Result<Release, RenderError> {
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
    fn the_render_path_gets_the_commit_s_budget_before_the_rest_of_the_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        git(root, &["init", "-q", "-b", "main"]);
        std::fs::create_dir_all(root.join("assets")).unwrap();
        std::fs::create_dir_all(root.join("deploy")).unwrap();
        std::fs::write(root.join("assets/video.bin"), "v".repeat(600)).unwrap();
        std::fs::write(root.join("deploy/a.yaml"), "a".repeat(100)).unwrap();
        git(root, &["add", "-A"]);
        git(
            root,
            &[
                "-c",
                "user.name=T",
                "-c",
                "user.email=t@e",
                "commit",
                "-q",
                "-m",
                "x",
            ],
        );
        let repo = Repository::open(root).unwrap();
        let head = repo.head().unwrap().peel_to_commit().unwrap().id();
        let limits = Limits {
            max_release_bytes: 650,
            ..Limits::default()
        };
        let kind = |tree: &RepoTree, path: &str| {
            tree.entries
                .iter()
                .find(|e| e.path == path)
                .unwrap()
                .kind
                .clone()
        };
        let tree = tree_at(&repo, head, &limits, "./deploy").unwrap();
        assert_eq!(
            kind(&tree, "deploy/a.yaml"),
            EntryKind::File(b"a".repeat(100))
        );
        assert_eq!(
            kind(&tree, "assets/video.bin"),
            EntryKind::Unread { size: 600 }
        );
        // In plain tree order the assets would have taken the budget.
        let tree = tree_at(&repo, head, &limits, ".").unwrap();
        assert_eq!(
            kind(&tree, "deploy/a.yaml"),
            EntryKind::Unread { size: 100 }
        );
        let paths: Vec<&str> = tree.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            ["assets/video.bin", "deploy/a.yaml"],
            "tree order kept"
        );
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
