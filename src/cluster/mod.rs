//! kube-rs at the edge: discovery, server-side apply, readiness waits and pruning.

mod apply;
mod discovery;
mod prune;
mod revisions;
mod services;

pub use apply::{apply_release, preview_release, AppliedRelease, ApplyRequest, Preview};
pub use discovery::Resolver;
pub use prune::{prune, PruneOutcome};
pub use revisions::{
    delete_config_copy, delete_revision, list_config_copies, list_revisions, scale_down,
    ObservedRevision, LAST_ACTIVE_ANNOTATION,
};
pub use services::live_selector;

/// Field manager of every write kubemint makes.
pub const FIELD_MANAGER: &str = "kubemint";

/// Errors of the cluster layer. Variants name condition reasons and metric labels.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Discovery of an API kind failed for a reason other than "it does not exist".
    #[error("discovery of {kind} failed: {source}")]
    Discovery {
        /// `group/version/kind`.
        kind: String,
        /// The client error.
        source: kube::Error,
    },
    /// Neither the cluster nor the release defines the kind.
    #[error("{file}: {object}: the cluster has no kind {api_version}/{kind}; install its CRD first or add it to the repository")]
    UnknownKind {
        /// File the object came from.
        file: String,
        /// The object.
        object: String,
        /// Its apiVersion.
        api_version: String,
        /// Its kind.
        kind: String,
    },
    /// The API server rejected an object in the dry run, before anything was applied.
    #[error("{file}: {object} rejected by the API server: {message}")]
    Rejected {
        /// File the object came from.
        file: String,
        /// The object.
        object: String,
        /// The server's message.
        message: String,
    },
    /// Applying an object failed.
    #[error("{file}: applying {object} failed: {message}")]
    Apply {
        /// File the object came from.
        file: String,
        /// The object.
        object: String,
        /// The server's message.
        message: String,
    },
    /// A CRD or Namespace did not become ready in time.
    #[error("{object} did not become ready within {seconds}s")]
    NotEstablished {
        /// The object waited for.
        object: String,
        /// How long we waited.
        seconds: u64,
    },
    /// Reading the cluster's state failed.
    #[error("reading {what} failed: {message}")]
    Observe {
        /// What was read.
        what: String,
        /// The server's message.
        message: String,
    },
    /// Deleting an object that the commit no longer declares failed.
    #[error("pruning {object} failed: {message}")]
    Prune {
        /// The object.
        object: String,
        /// The server's message.
        message: String,
    },
}

impl ClusterError {
    /// CamelCase reason for conditions, events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ClusterError::Discovery { .. } => "DiscoveryFailed",
            ClusterError::UnknownKind { .. } => "UnknownKind",
            ClusterError::Rejected { .. } => "ValidationFailed",
            ClusterError::Apply { .. } => "ApplyFailed",
            ClusterError::NotEstablished { .. } => "DependencyNotReady",
            ClusterError::Prune { .. } => "PruneFailed",
            ClusterError::Observe { .. } => "ObserveFailed",
        }
    }

    /// Whether retrying the same commit can help; if not, the channel is stalled until a new commit.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            ClusterError::UnknownKind { .. } | ClusterError::Rejected { .. }
        )
    }
}

/// User-Agent of every request kubemint makes, so the API server's audit log
/// and metrics tell its requests apart from kubectl's and controllers'.
pub const USER_AGENT: &str = concat!("kubemint/", env!("CARGO_PKG_VERSION"));

/// A client from the in-cluster config or `KUBECONFIG`, sending [`USER_AGENT`].
pub async fn connect() -> Result<kube::Client, kube::Error> {
    let mut config = kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)?;
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(USER_AGENT),
    ));
    kube::Client::try_from(config)
}

/// The message of a client error without its Rust debug wrapping.
pub fn api_message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

/// The `data` of Secret `namespace/name`. The error names the Secret, never its content.
pub async fn secret_data(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<std::collections::BTreeMap<String, Vec<u8>>, String> {
    let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), namespace);
    let secret = api
        .get(name)
        .await
        .map_err(|e| format!("reading Secret {namespace}/{name}: {}", api_message(&e)))?;
    Ok(secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect())
}
