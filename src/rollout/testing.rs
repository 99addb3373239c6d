//! For tests of the layers above: a release rendered from files and minted
//! into desired state, as a pass would prepare it.

use super::{mint, DesiredRelease, Minted};
use crate::render::{render, EntryKind, RenderOptions, RepoTree, TreeEntry};

/// `files` (path, content) rendered into namespace `namespace`, minted, and
/// made the desired release of `commit` for channel `channel`
/// (`<namespace>.<name>`); with the minted revisions.
pub fn desired_of(
    files: &[(String, String)],
    namespace: &str,
    commit: &str,
    channel: &str,
) -> (DesiredRelease, Minted) {
    let tree = RepoTree {
        entries: files
            .iter()
            .map(|(p, c)| TreeEntry {
                path: p.clone(),
                kind: EntryKind::File(c.as_bytes().to_vec()),
            })
            .collect(),
    };
    let options = RenderOptions {
        path: ".".into(),
        namespace: Some(namespace.into()),
        ..Default::default()
    };
    let release = render(&tree, &options).unwrap();
    let minted = mint(&release, &|_| None);
    let desired = DesiredRelease::new(&release.id, commit, channel, &minted, &|o| {
        Some(o.namespace.clone().unwrap_or_else(|| namespace.into()))
    });
    (desired, minted)
}
