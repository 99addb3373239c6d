//! Writing the part of the tree a build needs into a private directory.
//!
//! kustomize reads files from disk; render works on the tree of a commit. The
//! directories of the kustomizations a build reaches are written out with the
//! same layout, so relative paths mean the same. Nothing in the copy points
//! outside it: a symlink to a file becomes a copy of that file, a symlink to a
//! directory stays a (relative) link and that directory is written too, and a
//! link that leaves the repository, dangles or loops is left out.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::render::walk::{join, Index, Resolved};
use crate::render::EntryKind;

/// One entry of the copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item<'a> {
    /// A directory (written even when empty).
    Dir,
    /// A file and its content.
    File(&'a [u8]),
    /// A link to a directory inside the tree, with its target as written.
    Link(&'a str),
}

/// What a build's copy holds, by tree path: the real directories `dirs` and
/// every directory a symlink in them points to.
#[derive(Debug, Default)]
pub(crate) struct Layout<'a> {
    items: BTreeMap<String, Item<'a>>,
    /// Files of the build left unread by the tree's reader (over a limit), and their sizes.
    pub(crate) unread: Vec<(String, u64)>,
}

impl<'a> Layout<'a> {
    /// The layout of `dirs` in `index`.
    pub(crate) fn of(index: &Index<'a>, dirs: &[String]) -> Layout<'a> {
        let mut layout = Layout::default();
        let mut done = HashSet::new();
        let mut pending = dirs.to_vec();
        while let Some(dir) = pending.pop() {
            layout.add_dir(index, &dir, &mut done, &mut pending);
        }
        layout
    }

    fn add_dir(
        &mut self,
        index: &Index<'a>,
        dir: &str,
        done: &mut HashSet<String>,
        pending: &mut Vec<String>,
    ) {
        if !done.insert(dir.to_string()) {
            return;
        }
        self.items.insert(dir.to_string(), Item::Dir);
        for name in index.children(dir) {
            let path = join(dir, name);
            match index.get(&path) {
                // Implied by the paths below it: a directory.
                None => self.add_dir(index, &path, done, pending),
                Some(EntryKind::File(bytes)) => {
                    self.items.insert(path, Item::File(bytes));
                }
                Some(EntryKind::Unread { size }) => self.unread.push((path, *size)),
                Some(EntryKind::Symlink(target)) => match index.resolve(&path) {
                    Resolved::File(bytes) => {
                        self.items.insert(path, Item::File(bytes));
                    }
                    Resolved::Unread(size) => self.unread.push((path, size)),
                    Resolved::Dir(real) => {
                        self.items.insert(path, Item::Link(target));
                        pending.push(real);
                    }
                    // Left out: kustomize reports the missing file if it needs it.
                    Resolved::Missing | Resolved::Outside(_) | Resolved::Loop => {}
                },
            }
        }
    }

    /// A digest of every path and content: equal layouts build the same.
    pub(crate) fn fingerprint(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        for (path, item) in &self.items {
            // Length-prefixed, so no two layouts hash alike by shifting bytes.
            let (tag, bytes): (u8, &[u8]) = match item {
                Item::Dir => (b'd', b""),
                Item::File(bytes) => (b'f', bytes),
                Item::Link(target) => (b'l', target.as_bytes()),
            };
            hash.update([tag]);
            hash.update((path.len() as u64).to_le_bytes());
            hash.update(path.as_bytes());
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(bytes);
        }
        hash.finalize().into()
    }

    /// Writes the layout under `dest`.
    pub(crate) fn write(&self, dest: &Path) -> io::Result<()> {
        // Path order puts every directory before what it holds.
        for (path, item) in &self.items {
            let target = under(dest, path)?;
            match item {
                Item::Dir => std::fs::create_dir_all(&target)?,
                Item::File(bytes) => {
                    if let Some(parent) = target.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    std::fs::write(&target, bytes)?;
                }
                Item::Link(link) => {
                    if let Some(parent) = target.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    // A directory of the layout may already stand there (it
                    // is also reached as a real directory): keep it.
                    if std::fs::symlink_metadata(&target).is_err() {
                        std::os::unix::fs::symlink(link, &target)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Where a tree path goes under `dest`. Tree paths never climb (git and the
/// directory reader cannot produce such entries); refuse them anyway.
fn under(dest: &Path, path: &str) -> io::Result<PathBuf> {
    let mut out = dest.to_path_buf();
    for comp in path.split('/').filter(|c| !c.is_empty()) {
        if comp == "." || comp == ".." {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unexpected path in the tree: {path}"),
            ));
        }
        out.push(comp);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::RepoTree;

    fn tree(entries: &[(&str, Result<&str, &str>)]) -> RepoTree {
        RepoTree::for_tests(entries)
    }

    #[test]
    fn writes_the_directories_with_links_kept_inside() {
        let tree = tree(&[
            ("dev/kustomization.yaml", Ok("resources: [../base]")),
            ("dev/.env", Ok("A=1")),
            ("dev/patch.yaml", Err("../common/patch.yaml")),
            ("dev/shared", Err("../common")),
            ("dev/passwd", Err("/etc/passwd")),
            ("dev/up", Err("../../outside")),
            ("dev/self", Err(".")),
            ("common/patch.yaml", Ok("p")),
            ("base/kustomization.yaml", Ok("")),
            ("base/sub/x.yaml", Ok("x")),
            ("unrelated/big.bin", Ok("nope")),
        ]);
        let dest = tempfile::tempdir().unwrap();
        let index = Index::new(&tree);
        Layout::of(&index, &["dev".into(), "base".into()])
            .write(dest.path())
            .unwrap();
        let read = |p: &str| std::fs::read_to_string(dest.path().join(p)).ok();
        assert_eq!(read("dev/.env").as_deref(), Some("A=1"));
        assert_eq!(read("base/sub/x.yaml").as_deref(), Some("x"));
        // A file link is a copy; a directory link stays a link, to a written directory.
        let patch = dest.path().join("dev/patch.yaml");
        assert!(!std::fs::symlink_metadata(&patch).unwrap().is_symlink());
        assert_eq!(read("dev/patch.yaml").as_deref(), Some("p"));
        assert!(std::fs::symlink_metadata(dest.path().join("dev/shared"))
            .unwrap()
            .is_symlink());
        assert_eq!(read("dev/shared/patch.yaml").as_deref(), Some("p"));
        // Links out of the tree are left out; what nothing reaches is not written.
        for absent in ["dev/passwd", "dev/up", "unrelated/big.bin"] {
            assert!(
                std::fs::symlink_metadata(dest.path().join(absent)).is_err(),
                "{absent}"
            );
        }
    }

    #[test]
    fn the_fingerprint_covers_what_is_written_and_only_that() {
        let print = |entries: &[(&str, Result<&str, &str>)]| {
            let t = tree(entries);
            Layout::of(&Index::new(&t), &["dev".into()]).fingerprint()
        };
        let base = print(&[("dev/k.yaml", Ok("a")), ("other/x", Ok("1"))]);
        assert_eq!(
            base,
            print(&[("dev/k.yaml", Ok("a")), ("other/x", Ok("2"))])
        );
        assert_ne!(
            base,
            print(&[("dev/k.yaml", Ok("b")), ("other/x", Ok("1"))])
        );
        assert_ne!(base, print(&[("dev/k.yml", Ok("a")), ("other/x", Ok("1"))]));
        // A link to a file is written as the file: the same copy, the same print.
        assert_eq!(
            base,
            print(&[("dev/k.yaml", Err("../other/x")), ("other/x", Ok("a"))])
        );
    }
}
