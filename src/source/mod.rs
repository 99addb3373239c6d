//! Where commits come from: git repositories fetched into a local cache.

mod cache;
mod tree;

pub use cache::{commit_meta, CommitMeta, GitCache};
pub use tree::tree_at;

/// Errors of the source layer. Variants name condition reasons and metric labels.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The remote could not be reached or refused us.
    #[error("cannot fetch {url}: {message}; check the URL, the network and the credentials")]
    Unreachable {
        /// Redacted URL.
        url: String,
        /// What git said, redacted.
        message: String,
    },
    /// The remote has no such ref.
    #[error("{url} has no branch '{branch}'; check spec.git.ref")]
    RefNotFound {
        /// Redacted URL.
        url: String,
        /// The branch that was asked for.
        branch: String,
    },
    /// The local cache repository or a commit in it could not be read.
    #[error("git cache {path}: {message}")]
    Cache {
        /// Cache repository path.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A background git task panicked or was cancelled.
    #[error("git task failed: {0}")]
    Task(String),
}

impl SourceError {
    /// CamelCase reason for conditions, events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            SourceError::Unreachable { .. } => "GitUnreachable",
            SourceError::RefNotFound { .. } => "RefNotFound",
            SourceError::Cache { .. } => "GitCacheFailed",
            SourceError::Task(_) => "GitTaskFailed",
        }
    }
}

/// Removes userinfo (user, password, token) from a URL so it can be logged.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if let Some((_, host)) = authority.rsplit_once('@') {
            return format!("{scheme}://***@{host}{path}");
        }
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redacts_userinfo() {
        assert_eq!(
            redact_url("https://bob:s3cret@git.example.com/acme/deploy.git"),
            "https://***@git.example.com/acme/deploy.git"
        );
        assert_eq!(redact_url("https://token@host/x@y"), "https://***@host/x@y");
        assert_eq!(
            redact_url("ssh://git@host:22/r.git"),
            "ssh://***@host:22/r.git"
        );
        assert_eq!(redact_url("/srv/git/deploy"), "/srv/git/deploy");
        assert_eq!(redact_url("https://host/repo.git"), "https://host/repo.git");
    }
}
