//! Writing the part of the tree a build needs into a private directory.
//!
//! kustomize reads files from disk; render works on the tree of a commit. The
//! directories of the kustomizations a build reaches are written out with the
//! same layout, so relative paths mean the same. Nothing in the copy points
//! outside it: a symlink to a file becomes a copy of that file, a symlink to a
//! directory stays a (relative) link and that directory is written too, and a
//! link that leaves the repository, dangles or loops is left out.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use crate::render::walk::{join, Index, Resolved};
use crate::render::EntryKind;

/// Writes the real directories `dirs` of the tree (and every directory a
/// symlink in them points to) under `dest`.
pub(crate) fn materialize(index: &Index<'_>, dirs: &[String], dest: &Path) -> io::Result<()> {
    let mut writer = Writer {
        index,
        dest,
        done: HashSet::new(),
        pending: dirs.to_vec(),
    };
    while let Some(dir) = writer.pending.pop() {
        writer.write_dir(&dir)?;
    }
    Ok(())
}

struct Writer<'i, 'a> {
    index: &'i Index<'a>,
    dest: &'i Path,
    /// Directories written already (each is written whole).
    done: HashSet<String>,
    /// Directories still to write: link targets found on the way.
    pending: Vec<String>,
}

impl Writer<'_, '_> {
    fn write_dir(&mut self, dir: &str) -> io::Result<()> {
        if !self.done.insert(dir.to_string()) {
            return Ok(());
        }
        std::fs::create_dir_all(self.target(dir)?)?;
        for name in self.index.children(dir) {
            let path = join(dir, name);
            match self.index.get(&path) {
                // Implied by the paths below it: a directory.
                None => self.write_dir(&path)?,
                Some(EntryKind::File(bytes)) => self.write_file(&path, bytes)?,
                Some(EntryKind::Symlink(target)) => match self.index.resolve(&path) {
                    Resolved::File(bytes) => self.write_file(&path, bytes)?,
                    Resolved::Dir(real) => {
                        let link = self.target(&path)?;
                        if std::fs::symlink_metadata(&link).is_err() {
                            std::os::unix::fs::symlink(target, &link)?;
                        }
                        self.pending.push(real);
                    }
                    // Left out: kustomize reports the missing file if it needs it.
                    Resolved::Missing | Resolved::Outside(_) | Resolved::Loop => {}
                },
            }
        }
        Ok(())
    }

    fn write_file(&self, path: &str, bytes: &[u8]) -> io::Result<()> {
        let target = self.target(path)?;
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(target, bytes)
    }

    /// Where a tree path goes under `dest`. Tree paths never climb (git and
    /// the directory reader cannot produce such entries); refuse them anyway.
    fn target(&self, path: &str) -> io::Result<PathBuf> {
        let mut out = self.dest.to_path_buf();
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{RepoTree, TreeEntry};

    #[test]
    fn writes_the_directories_with_links_kept_inside() {
        let tree = RepoTree {
            entries: [
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
            ]
            .into_iter()
            .map(|(p, k): (&str, Result<&str, &str>)| TreeEntry {
                path: p.into(),
                kind: match k {
                    Ok(c) => EntryKind::File(c.as_bytes().to_vec()),
                    Err(t) => EntryKind::Symlink(t.into()),
                },
            })
            .collect(),
        };
        let dest = tempfile::tempdir().unwrap();
        let index = Index::new(&tree);
        materialize(&index, &["dev".into(), "base".into()], dest.path()).unwrap();
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
}
