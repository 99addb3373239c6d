//! The channel's git side: from `spec.git` (and its Secrets) to a fetched commit.

use kube::Client;

use super::crd::Channel;
use super::Error;
use crate::source::{CommitMeta, GitCache};

/// A commit fetched for a channel.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The commit to deliver.
    pub commit: CommitMeta,
    /// The ref it was resolved from, e.g. `refs/heads/main`.
    pub reference: String,
}

/// Fetches the commit that `spec.git.ref` points to into the cache.
pub async fn fetch(git: &GitCache, _client: &Client, channel: &Channel) -> Result<Fetched, Error> {
    let branch = channel.spec.git.reference.branch();
    let commit = git.fetch_branch(&channel.spec.git.url, branch).await?;
    Ok(Fetched {
        commit,
        reference: format!("refs/heads/{branch}"),
    })
}
