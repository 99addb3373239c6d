//! Reading a commit's tree into the render layer's [`RepoTree`].

use git2::{ObjectType, Oid, Repository, TreeWalkMode, TreeWalkResult};

use crate::render::{EntryKind, RepoTree, TreeEntry};

/// File mode git uses for symbolic links.
const SYMLINK_MODE: i32 = 0o120000;

/// Reads every blob of `commit`'s tree; symlinks are kept as links for render to resolve.
pub fn tree_at(repo: &Repository, commit: Oid) -> Result<RepoTree, git2::Error> {
    let tree = repo.find_commit(commit)?.tree()?;
    let mut entries = Vec::new();
    let mut failure = None;
    tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
        if entry.kind() != Some(ObjectType::Blob) {
            return TreeWalkResult::Ok; // trees are walked into; submodules are skipped
        }
        let path = format!("{dir}{}", String::from_utf8_lossy(entry.name_bytes()));
        match repo.find_blob(entry.id()) {
            Ok(blob) => {
                let kind = if entry.filemode() == SYMLINK_MODE {
                    EntryKind::Symlink(String::from_utf8_lossy(blob.content()).into_owned())
                } else {
                    EntryKind::File(blob.content().to_vec())
                };
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
