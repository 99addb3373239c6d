//! A revert limited to one directory of the repository (the channel's
//! `spec.git.path`): in a monorepo, the commits a release brought may also
//! change other teams' directories, and those changes stay.

use git2::{Oid, Repository, Tree};

/// The components of a repository path (`./deploy/`, `deploy` -> `["deploy"]`;
/// `.` or empty -> the root). `None` if it climbs out of the repository.
pub fn components(path: &str) -> Option<Vec<String>> {
    let mut parts: Vec<String> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p.to_string()),
        }
    }
    Some(parts)
}

/// The tree at `parts` under `root`; an empty tree where there is none (absent, or a file).
pub fn at<'r>(
    repo: &'r Repository,
    root: &Tree<'r>,
    parts: &[String],
) -> Result<Tree<'r>, git2::Error> {
    if parts.is_empty() {
        return Ok(root.clone());
    }
    let entry = root.get_path(std::path::Path::new(&parts.join("/")));
    match entry {
        Ok(e) if e.kind() == Some(git2::ObjectType::Tree) => repo.find_tree(e.id()),
        Ok(_) => empty(repo),
        Err(e) if e.code() == git2::ErrorCode::NotFound => empty(repo),
        Err(e) => Err(e),
    }
}

/// `root` with the tree at `parts` replaced by `new`; an empty `new` removes
/// the directory (and parents it leaves empty), as git stores no empty trees.
pub fn replace(
    repo: &Repository,
    root: &Tree<'_>,
    parts: &[String],
    new: Oid,
) -> Result<Oid, git2::Error> {
    let replaced = replace_in(repo, Some(root), parts, new)?;
    match replaced {
        Some(oid) => Ok(oid),
        None => Ok(empty(repo)?.id()),
    }
}

fn replace_in(
    repo: &Repository,
    tree: Option<&Tree<'_>>,
    parts: &[String],
    new: Oid,
) -> Result<Option<Oid>, git2::Error> {
    let Some((first, rest)) = parts.split_first() else {
        let is_empty = repo.find_tree(new)?.is_empty();
        return Ok((!is_empty).then_some(new));
    };
    let child = match tree.and_then(|t| t.get_name(first)) {
        Some(e) if e.kind() == Some(git2::ObjectType::Tree) => Some(repo.find_tree(e.id())?),
        _ => None,
    };
    let mut builder = repo.treebuilder(tree)?;
    match replace_in(repo, child.as_ref(), rest, new)? {
        Some(oid) => {
            builder.insert(first, oid, 0o040000)?;
        }
        None => {
            if builder.get(first)?.is_some() {
                builder.remove(first)?;
            }
        }
    }
    if builder.is_empty() {
        return Ok(None);
    }
    builder.write().map(Some)
}

fn empty(repo: &Repository) -> Result<Tree<'_>, git2::Error> {
    let oid = repo.treebuilder(None)?.write()?;
    repo.find_tree(oid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised() {
        let c = |p: &str| components(p).map(|v| v.join("/"));
        assert_eq!(c("./deploy/"), Some("deploy".into()));
        assert_eq!(c("apps//web/./prod"), Some("apps/web/prod".into()));
        assert_eq!(c("."), Some(String::new()));
        assert_eq!(c(""), Some(String::new()));
        assert_eq!(c("a/../b"), Some("b".into()));
        assert_eq!(c("../x"), None);
    }

    #[test]
    fn a_subtree_is_replaced_and_an_emptied_one_removed() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let blob = repo.blob(b"x").unwrap();
        let tree_with = |entries: &[(&str, Oid, i32)]| {
            let mut b = repo.treebuilder(None).unwrap();
            for (name, oid, mode) in entries {
                b.insert(name, *oid, *mode).unwrap();
            }
            b.write().unwrap()
        };
        let web = tree_with(&[("cm.yaml", blob, 0o100644)]);
        let apps = tree_with(&[("web", web, 0o040000)]);
        let root = tree_with(&[("apps", apps, 0o040000), ("README", blob, 0o100644)]);
        let root = repo.find_tree(root).unwrap();
        let parts = components("apps/web").unwrap();
        assert_eq!(at(&repo, &root, &parts).unwrap().id(), web);
        assert!(at(&repo, &root, &components("apps/nope").unwrap())
            .unwrap()
            .is_empty());

        let other = tree_with(&[("other.yaml", blob, 0o100644)]);
        let replaced = repo
            .find_tree(replace(&repo, &root, &parts, other).unwrap())
            .unwrap();
        assert_eq!(at(&repo, &replaced, &parts).unwrap().id(), other);
        assert!(replaced.get_name("README").is_some());

        let nothing = tree_with(&[]);
        let removed = repo
            .find_tree(replace(&repo, &root, &parts, nothing).unwrap())
            .unwrap();
        assert!(removed.get_name("apps").is_none(), "apps/ became empty");
        assert!(removed.get_name("README").is_some());
    }
}
