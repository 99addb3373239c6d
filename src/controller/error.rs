//! The controller's error: every layer's error, plus the controller's own.

use crate::cluster::ClusterError;
use crate::render::RenderError;
use crate::source::SourceError;

/// Why a reconcile did not complete.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Fetching the commit failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The commit does not render into a valid release.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// Applying or pruning failed.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The channel's spec cannot be used as written.
    #[error("invalid channel spec: {0}")]
    InvalidSpec(String),
    /// The watches of the cluster have not listed their objects yet (the API
    /// server may be restarting): planning now would see an empty cluster.
    #[error("the watches of the cluster are not in sync yet; retrying")]
    Unsynced,
    /// Reading or writing the channel itself failed.
    #[error("updating the channel failed: {}", crate::cluster::api_message(.0))]
    Kube(#[source] kube::Error),
}

impl Error {
    /// CamelCase reason for conditions, events and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Source(e) => e.reason(),
            Error::Render(e) => e.reason(),
            Error::Cluster(e) => e.reason(),
            Error::InvalidSpec(_) => "InvalidSpec",
            Error::Unsynced => "WatchNotSynced",
            Error::Kube(_) => "ChannelUpdateFailed",
        }
    }

    /// Whether only a new commit or spec change can help (kstatus `Stalled`);
    /// otherwise the same commit is retried with backoff.
    pub fn is_stalled(&self) -> bool {
        match self {
            Error::Render(_) | Error::InvalidSpec(_) => true,
            Error::Cluster(e) => e.is_permanent(),
            Error::Source(e) if e.is_permanent() => true,
            Error::Source(_) | Error::Kube(_) | Error::Unsynced => false,
        }
    }
}
