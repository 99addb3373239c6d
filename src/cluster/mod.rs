//! kube-rs at the edge: discovery, server-side apply, revisions, pruning.

mod apply;
pub mod changes;
mod discovery;
pub mod lists;
mod prune;
mod revisions;
pub mod services;
pub mod throttle;

pub use apply::{apply_object, is_missing_namespace, take_ownership, wait_for_crd};
pub use discovery::Resolver;
pub use prune::{prune, prune_one, PruneOutcome};
pub use revisions::{
    delete_config_copy, delete_job, delete_revision, mark_failed, mark_promoted, scale_to_zero,
};

pub use crate::rollout::FIELD_MANAGER;

/// An API for the namespaced kind `K` in `namespace`, or in all namespaces.
pub fn namespaced_or_all<K>(client: &kube::Client, namespace: Option<&str>) -> kube::Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => kube::Api::namespaced(client.clone(), ns),
        None => kube::Api::all(client.clone()),
    }
}

/// Errors of the cluster layer. Variants name condition reasons and metric
/// labels; a client error is kept whole, so it can be told transient or not.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Discovery of an API kind failed for a reason other than "it does not exist".
    #[error("discovery of {kind} failed: {}", api_message(.source))]
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
    #[error("{file}: {object} rejected by the API server: {}", api_message(.source))]
    Rejected {
        /// File the object came from.
        file: String,
        /// The object.
        object: String,
        /// The server's answer.
        source: kube::Error,
    },
    /// A write failed (`action` says which: applying, scaling, deleting...).
    #[error("{action} {object} failed: {}", api_message(.source))]
    Write {
        /// What was being done.
        action: &'static str,
        /// The object.
        object: String,
        /// The client error.
        source: kube::Error,
    },
    /// A CRD did not become established in time.
    #[error("{object} did not become ready within {seconds}s")]
    NotEstablished {
        /// The object waited for.
        object: String,
        /// How long we waited.
        seconds: u64,
    },
    /// Reading the cluster's state failed.
    #[error("reading {what} failed: {}", api_message(.source))]
    Observe {
        /// What was read.
        what: String,
        /// The client error.
        source: kube::Error,
    },
}

impl ClusterError {
    /// CamelCase reason for conditions, events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ClusterError::Discovery { .. } => "DiscoveryFailed",
            ClusterError::UnknownKind { .. } => "UnknownKind",
            ClusterError::Rejected { source, .. }
            | ClusterError::Observe { source, .. }
            | ClusterError::Write { source, .. }
                if is_forbidden(source) =>
            {
                "Forbidden"
            }
            ClusterError::Rejected { .. } => "ValidationFailed",
            ClusterError::Write { .. } => "ApplyFailed",
            ClusterError::NotEstablished { .. } => "DependencyNotReady",
            ClusterError::Observe { .. } => "ObserveFailed",
        }
    }

    /// Whether retrying the same commit cannot help (a real rejection: the
    /// channel is stalled until a new commit); otherwise it is retried with backoff.
    pub fn is_permanent(&self) -> bool {
        match self {
            ClusterError::UnknownKind { .. } | ClusterError::Rejected { .. } => true,
            ClusterError::Write { source, .. } => !is_transient(source),
            // A read the client may not make waits for RBAC to change, not for time.
            ClusterError::Observe { source, .. } => is_forbidden(source),
            ClusterError::Discovery { .. } | ClusterError::NotEstablished { .. } => false,
        }
    }
}

/// Whether a client error may go away by itself: throttling, server errors,
/// conflicts, timeouts, and anything that is not an answer (connection refused
/// while the API server restarts, TLS, a broken stream).
pub fn is_transient(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => matches!(status.code, 408 | 409 | 429) || status.code >= 500,
        _ => true,
    }
}

/// Whether the API server said 403.
pub fn is_forbidden(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 403)
}

/// User-Agent of every request kubemint makes, so the API server's audit log
/// and metrics tell its requests apart from kubectl's and controllers'.
pub const USER_AGENT: &str = concat!("kubemint/", env!("CARGO_PKG_VERSION"));

/// The in-cluster config or `KUBECONFIG`'s, sending [`USER_AGENT`].
pub async fn config() -> Result<kube::Config, kube::Error> {
    let mut config = kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)?;
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(USER_AGENT),
    ));
    Ok(config)
}

/// The User-Agent of an operator of shard `shard`: [`USER_AGENT`], with the
/// shard in a comment (`kubemint/0.1.0 (shard a)`) so that the audit log and
/// API server metrics tell the shards apart, while a prefix match on
/// [`USER_AGENT`] still finds every kubemint.
pub fn user_agent(shard: Option<&str>) -> String {
    match shard {
        Some(key) => format!("{USER_AGENT} (shard {key})"),
        None => USER_AGENT.to_string(),
    }
}

/// Replaces the User-Agent that `config` sends (the one [`config`] set).
/// Fails only on a value that is no valid header (a shard key never is).
pub fn set_user_agent(
    config: &mut kube::Config,
    agent: &str,
) -> Result<(), http::header::InvalidHeaderValue> {
    let value = http::HeaderValue::from_str(agent)?;
    config
        .headers
        .retain(|(name, _)| name != http::header::USER_AGENT);
    config.headers.push((http::header::USER_AGENT, value));
    Ok(())
}

/// A client from [`config`].
pub async fn connect() -> Result<kube::Client, kube::Error> {
    kube::Client::try_from(config().await?)
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
) -> Result<std::collections::BTreeMap<String, Vec<u8>>, ClusterError> {
    let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), namespace);
    let secret = api
        .get(name)
        .await
        .map_err(|source| ClusterError::Observe {
            what: format!("Secret {namespace}/{name}"),
            source,
        })?;
    Ok(secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_have_their_own_user_agent_under_kubemints() {
        assert_eq!(user_agent(None), USER_AGENT);
        let a = user_agent(Some("a"));
        assert_eq!(a, format!("{USER_AGENT} (shard a)"));
        assert!(a.starts_with(USER_AGENT));
        let mut config = kube::Config::new("https://127.0.0.1:6443".parse().unwrap());
        config.headers.push((
            http::header::USER_AGENT,
            http::HeaderValue::from_static(USER_AGENT),
        ));
        set_user_agent(&mut config, &a).unwrap();
        let agents: Vec<_> = config
            .headers
            .iter()
            .filter(|(n, _)| n == http::header::USER_AGENT)
            .map(|(_, v)| v.to_str().unwrap().to_string())
            .collect();
        assert_eq!(agents, [a]);
    }

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(
            kube::core::Status::failure("configmaps is forbidden", "Forbidden").with_code(code),
        ))
    }

    #[test]
    fn a_refusal_is_forbidden_and_waits_for_rbac_whatever_the_verb() {
        let object = || "ConfigMap/shop/web".to_string();
        let refusals = [
            ClusterError::Rejected {
                file: "web.yaml".into(),
                object: object(),
                source: api(403),
            },
            ClusterError::Observe {
                what: "Services in shop".into(),
                source: api(403),
            },
            ClusterError::Write {
                action: "applying",
                object: object(),
                source: api(403),
            },
        ];
        for e in refusals {
            assert_eq!(e.reason(), "Forbidden", "{e}");
            assert!(e.is_permanent(), "{e}");
        }
        let busy = ClusterError::Observe {
            what: "Services in shop".into(),
            source: api(503),
        };
        assert_eq!(busy.reason(), "ObserveFailed");
        assert!(!busy.is_permanent(), "a server error is retried");
    }
}
