//! Where commits come from: git repositories fetched into a local cache.

use std::path::PathBuf;

pub mod auth;
mod cache;
pub mod cache_gc;
pub mod cache_key;
pub mod notes;
pub mod polls;
pub mod refs;
mod tree;
pub mod verify;
pub mod watch;
pub mod webhook;

pub use auth::{push_refspec, remote_callbacks, GitCredentials, PushFailure};
pub use cache::{commit_meta, CommitMeta, FetchOutcome, FetchRequest, GitCache, TransferStats};
pub use polls::Polled;
pub use refs::RefRequest;
pub use tree::{tree_at, LocalTree};
pub use verify::TrustedKeys;
pub use watch::WatchRegistry;

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
    #[error("{url} has no {reference}; check spec.git.ref")]
    RefNotFound {
        /// Redacted URL.
        url: String,
        /// What was asked for, e.g. `branch 'main'`.
        reference: String,
    },
    /// `spec.git.ref` cannot be used as written (bad semver range, bad commit id).
    #[error("{message}")]
    InvalidRef {
        /// What is wrong.
        message: String,
    },
    /// The credentials Secret is missing, unreadable or incomplete. Never quotes a value.
    #[error("git credentials (spec.git.secretRef): {message}")]
    Credentials {
        /// What is wrong, naming keys only.
        message: String,
    },
    /// The trusted keys Secret of `spec.git.verify` is missing or holds no usable key.
    #[error("trusted keys (spec.git.verify.secretRef): {message}")]
    InvalidKeys {
        /// What is wrong.
        message: String,
    },
    /// A commit that must be signed by a trusted key is not; nothing is applied.
    #[error("commit {commit} failed signature verification: {reason}")]
    SignatureVerificationFailed {
        /// The commit that failed.
        commit: String,
        /// Why.
        reason: String,
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
    /// Whether only a change in git, the spec or a Secret can help (kstatus `Stalled`).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            SourceError::RefNotFound { .. }
                | SourceError::InvalidRef { .. }
                | SourceError::Credentials { .. }
                | SourceError::InvalidKeys { .. }
                | SourceError::SignatureVerificationFailed { .. }
        )
    }

    /// CamelCase reason for conditions, events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            SourceError::Unreachable { .. } => "GitUnreachable",
            SourceError::RefNotFound { .. } => "RefNotFound",
            SourceError::InvalidRef { .. } => "InvalidRef",
            SourceError::Credentials { .. } => "InvalidCredentials",
            SourceError::InvalidKeys { .. } => "InvalidVerificationKeys",
            SourceError::SignatureVerificationFailed { .. } => "SignatureVerificationFailed",
            SourceError::Cache { .. } => "GitCacheFailed",
            SourceError::Task(_) => "GitTaskFailed",
        }
    }
}

/// The local filesystem path of `url`, when it names one: an absolute or
/// relative path, or a `file://` URL. `None` for network URLs.
pub fn local_path(url: &str) -> Option<PathBuf> {
    if let Some(path) = url.strip_prefix("file://") {
        return Some(PathBuf::from(path));
    }
    // `scheme://` and scp-like `user@host:path` are remote.
    let scp_like = url
        .split_once(':')
        .is_some_and(|(host, _)| !host.contains('/'));
    (!url.contains("://") && !scp_like).then(|| PathBuf::from(url))
}

/// A git message fit for logs, status and errors: the URL's userinfo and every
/// credential value removed. libgit2 replaces the host key callback's message
/// with its own; that one is said plainly.
pub fn sanitize(message: &str, url: &str, creds: &GitCredentials) -> String {
    let message = message.replace(url, &redact_url(url));
    if message.contains("invalid or unknown remote ssh hostkey") {
        return "host key verification failed: the server's host key matches no known_hosts entry for it".into();
    }
    creds.scrub(&message)
}

/// The first 12 characters of a commit id, as messages and tables show it.
pub fn short_sha(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
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
        // `user:pa/ss@host`: a password with an unescaped `/` cuts the authority
        // short and leaves a "port" that is no number. Hide up to the last `@`.
        let bad_port = authority
            .split_once(':')
            .is_some_and(|(_, port)| !port.chars().all(|c| c.is_ascii_digit()));
        if bad_port {
            if let Some((_, after)) = rest.rsplit_once('@') {
                return format!("{scheme}://***@{after}");
            }
        }
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::{local_path, redact_url};
    use std::path::PathBuf;
    #[test]
    fn tells_local_paths_from_remote_urls() {
        assert_eq!(
            local_path("file:///srv/git/deploy"),
            Some(PathBuf::from("/srv/git/deploy"))
        );
        assert_eq!(
            local_path("/srv/git/deploy"),
            Some(PathBuf::from("/srv/git/deploy"))
        );
        assert_eq!(local_path("./deploy"), Some(PathBuf::from("./deploy")));
        assert_eq!(local_path("https://git.example.com/deploy.git"), None);
        assert_eq!(local_path("ssh://git@host/deploy.git"), None);
        assert_eq!(local_path("git@github.com:acme/deploy.git"), None);
    }

    #[test]
    fn git_messages_lose_userinfo_and_credentials() {
        let data = [("username", "bot"), ("password", "hunter2-secret")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        let creds = super::GitCredentials::from_secret_data(&data).unwrap();
        let url = "https://bot:t0ken@git.example.com/r.git";
        let message = format!("failed to push to '{url}': auth hunter2-secret refused");
        let clean = super::sanitize(&message, url, &creds);
        assert_eq!(
            clean,
            "failed to push to 'https://***@git.example.com/r.git': auth *** refused"
        );
    }

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
        assert_eq!(
            redact_url("https://bob:pa/ss@git.example.com/r.git"),
            "https://***@git.example.com/r.git"
        );
        assert_eq!(
            redact_url("https://host:8443/r@1.git"),
            "https://host:8443/r@1.git"
        );
        assert_eq!(redact_url("/srv/git/deploy"), "/srv/git/deploy");
        assert_eq!(redact_url("https://host/repo.git"), "https://host/repo.git");
    }
}
