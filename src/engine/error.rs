//! The engine's error: every lower layer's error, plus the refusals of the
//! pipeline's gates. Its variants give condition reasons and metric labels.

use super::observe::WatchErrors;
use crate::cluster::ClusterError;
use crate::render::RenderError;
use crate::source::SourceError;

/// Why a pass of the pipeline did not complete.
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
    #[error("the watches of the cluster are not in sync yet; retrying{}", watch_errors(.0))]
    Unsynced(WatchErrors),
    /// The channel's ServiceAccount may not list and watch what the channel
    /// delivers (RBAC): only a RoleBinding (then a sync request) or a new commit helps.
    #[error("{0}")]
    Forbidden(Box<RefusedWatch>),
    /// A client impersonating the channel's ServiceAccount could not be made.
    #[error("impersonating the channel's ServiceAccount: {0}")]
    Impersonation(String),
    /// `--no-cross-namespace-refs`: the commit delivers outside the channel's namespace.
    #[error("{file}: {object} is in {location}, but this operator runs with --no-cross-namespace-refs: a channel delivers only into its own namespace ({namespace}); move the object or deliver it from a channel there")]
    CrossNamespace {
        /// The file that declares it.
        file: String,
        /// The object.
        object: String,
        /// Where it would go.
        location: String,
        /// The channel's namespace.
        namespace: String,
    },
    /// The prune guard holds the commit until a person approves it.
    #[error("commit {} would prune {}, more than spec.pruneGuard.maxFraction ({:.0}%): held, nothing of it was applied. If that is intended: kubectl annotate channel {channel} -n {namespace} {}={commit} --overwrite", crate::source::short_sha(.commit), .hold.describe(), .hold.max_fraction * 100.0, crate::api::APPROVE_PRUNE_ANNOTATION)]
    PruneHeld {
        /// The commit held.
        commit: String,
        /// What it would prune.
        hold: crate::rollout::PruneHold,
        /// The channel's name.
        channel: String,
        /// Its namespace.
        namespace: String,
    },
    /// A local path or `file://` URL in `spec.git.url`, without `--allow-local-sources`.
    #[error("spec.git.url {url} is a local path, which this operator refuses: a channel could read any repository on the operator's filesystem; use a network URL (https://, ssh://, git://), or run kubemint with --allow-local-sources (chart value allowLocalSources) when a sidecar keeps the repository on a volume shared with the operator")]
    LocalSourceRefused {
        /// The URL, redacted.
        url: String,
    },
}

impl Error {
    /// CamelCase reason for conditions, events and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Source(e) => e.reason(),
            Error::Render(e) => e.reason(),
            Error::Cluster(e) => e.reason(),
            Error::InvalidSpec(_) => "InvalidSpec",
            Error::Unsynced(errors) if errors.forbidden => "WatchForbidden",
            Error::Unsynced(_) => "WatchNotSynced",
            Error::Impersonation(_) => "ImpersonationFailed",
            Error::Forbidden(_) => "Forbidden",
            Error::CrossNamespace { .. } => "CrossNamespaceRefused",
            Error::PruneHeld { .. } => "PruneHeld",
            Error::LocalSourceRefused { .. } => "LocalSourceRefused",
        }
    }

    /// Whether only a new commit or spec change can help (kstatus `Stalled`);
    /// otherwise the same commit is retried with backoff.
    pub fn is_stalled(&self) -> bool {
        match self {
            Error::Render(e) if e.is_transient() => false,
            Error::Render(_)
            | Error::InvalidSpec(_)
            | Error::CrossNamespace { .. }
            | Error::PruneHeld { .. }
            | Error::LocalSourceRefused { .. }
            | Error::Forbidden(_) => true,
            Error::Cluster(e) => e.is_permanent(),
            Error::Source(e) if e.is_permanent() => true,
            Error::Source(_) | Error::Unsynced(_) | Error::Impersonation(_) => false,
        }
    }
}

/// `: <error>; <error>` of failing watches, or nothing.
fn watch_errors(errors: &WatchErrors) -> String {
    if errors.messages.is_empty() {
        String::new()
    } else {
        format!(": {}", errors.messages.join("; "))
    }
}

/// A watch the channel's ServiceAccount may not make, and what needs it.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {object}: ServiceAccount {account} may not {verb} {resource} {location}, which kubemint needs to watch what the channel delivers: {message}")]
pub struct RefusedWatch {
    /// The file of the object that needs it.
    pub file: String,
    /// The object.
    pub object: String,
    /// `namespace/name` of the ServiceAccount.
    pub account: String,
    /// What it may not do (`list and watch`).
    pub verb: String,
    /// The resource, as RBAC names it (`configmaps`, `replicasets.apps`).
    pub resource: String,
    /// `in namespace <ns>` or `cluster-wide`.
    pub location: String,
    /// The API server's message.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_not_synced_is_forbidden_by_its_flag_not_by_its_words() {
        let unsynced = |messages: &[&str], forbidden: bool| {
            Error::Unsynced(WatchErrors {
                messages: messages.iter().map(|m| m.to_string()).collect(),
                forbidden,
            })
        };
        // (error, reason)
        let cases = [
            (unsynced(&[], false), "WatchNotSynced"),
            (
                unsynced(&["configmaps is forbidden: User \"x\" cannot list"], true),
                "WatchForbidden",
            ),
            // A message that merely mentions the word is not a refusal.
            (
                unsynced(&["admission webhook said: forbidden label"], false),
                "WatchNotSynced",
            ),
        ];
        for (error, reason) in cases {
            assert_eq!(error.reason(), reason, "{error}");
            assert!(!error.is_stalled(), "retried: {error}");
        }
    }
}
