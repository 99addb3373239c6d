//! The controller's error: the engine's, or a write of the channel itself.

use crate::engine;

/// Why a reconcile did not complete.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A stage of the pipeline failed or refused the commit.
    #[error(transparent)]
    Engine(#[from] engine::Error),
    /// Reading or writing the channel itself failed.
    #[error("updating the channel failed: {}", crate::cluster::api_message(.0))]
    Kube(#[source] kube::Error),
}

impl Error {
    /// CamelCase reason for conditions, events and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Engine(e) => e.reason(),
            Error::Kube(_) => "ChannelUpdateFailed",
        }
    }

    /// Whether only a new commit or spec change can help (kstatus `Stalled`);
    /// otherwise the same commit is retried with backoff.
    pub fn is_stalled(&self) -> bool {
        match self {
            Error::Engine(e) => e.is_stalled(),
            Error::Kube(_) => false,
        }
    }
}
