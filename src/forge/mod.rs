//! Forges: the pull requests of a channel's repository, the one comment
//! kubemint keeps on each, and commit statuses. One interface ([`Api`]: the
//! requests of each operation and the parsing of the answers, pure) with one
//! implementation per forge ([`gitea`], [`github`], [`gitlab`]), and one
//! [`Client`] that sends them (the token, conditional requests, backoff).
//! The forge is an edge like the cluster: nothing here waits on the engine,
//! and a token is never in a log, an error or a comment.

pub mod client;
pub mod gitea;
pub mod github;
pub mod gitlab;
mod request;
pub mod rest;

pub use client::{Client, Listed, Retry, Upserted};
pub use request::{encode, Method, Request};

use serde_json::Value;

/// Which forge a repository lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForgeKind {
    /// Gitea or Forgejo (`/api/v1`).
    Gitea,
    /// GitHub or GitHub Enterprise (`/repos/...` under the API base).
    GitHub,
    /// GitLab (`/api/v4`).
    GitLab,
}

impl ForgeKind {
    /// The forge of `name` as `spec.forge.type` spells it.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "gitea" | "forgejo" => Some(ForgeKind::Gitea),
            "github" => Some(ForgeKind::GitHub),
            "gitlab" => Some(ForgeKind::GitLab),
            _ => None,
        }
    }

    /// The interface of this forge for repository `repository` (`owner/name`,
    /// or a GitLab project's full path).
    pub fn api(self, repository: &str) -> Box<dyn Api> {
        match self {
            ForgeKind::Gitea => Box::new(gitea::gitea(repository)),
            ForgeKind::GitHub => Box::new(github::github(repository)),
            ForgeKind::GitLab => Box::new(gitlab::GitLab::new(repository)),
        }
    }
}

/// An open pull (or merge) request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// Its number (GitLab: the project-scoped `iid`).
    pub number: u64,
    /// Its title, as the author wrote it: untrusted.
    pub title: String,
    /// The commit at its head.
    pub head_sha: String,
    /// The branch it comes from (untrusted; may be a fork's).
    pub head_branch: String,
    /// The branch it targets.
    pub base_branch: String,
}

/// A comment on a pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    /// The forge's id of the comment.
    pub id: u64,
    /// Its text.
    pub body: String,
}

/// The state of a commit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitState {
    /// Rolling out, or being previewed.
    Pending,
    /// Delivered (or, previewed, would be).
    Success,
    /// Failed (or, previewed, would be refused).
    Failure,
}

/// A commit status kubemint sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Its state.
    pub state: CommitState,
    /// `kubemint/<cluster>/<namespace>/<channel>` (see [`context`]).
    pub context: String,
    /// One line for the forge's list of checks (forges cut it at 140 characters).
    pub description: String,
    /// A link, such as the release's page in the UI.
    pub target_url: Option<String>,
}

/// A forge's token. Its `Debug` says nothing of it, so that it cannot reach a log.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// Wraps a token read from a Secret (surrounding whitespace dropped).
    pub fn new(token: &str) -> Self {
        Token(token.trim().to_string())
    }

    /// The token, for the one place that puts it into a header.
    fn expose(&self) -> &str {
        &self.0
    }
}

impl PartialEq for Token {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

/// The requests of one forge's REST API, and the reading of its answers.
/// Pure: [`Client`] sends them.
pub trait Api: Send + Sync {
    /// Which forge this is.
    fn kind(&self) -> ForgeKind;
    /// The header that carries `token`.
    fn authorization(&self, token: &Token) -> (&'static str, String);
    /// Open pull requests targeting `base`, newest first, at most `limit`.
    fn list_pulls(&self, base: &str, limit: usize) -> Request;
    /// Reads the answer of [`Api::list_pulls`]; keeps those targeting `base`.
    fn parse_pulls(&self, body: &Value, base: &str) -> Result<Vec<PullRequest>, ForgeError>;
    /// The comments of pull request `number` (the first page of 100: kubemint's
    /// comment is looked for there and, once posted, found by its marker).
    fn list_comments(&self, number: u64) -> Request;
    /// Reads the answer of [`Api::list_comments`].
    fn parse_comments(&self, body: &Value) -> Result<Vec<Comment>, ForgeError>;
    /// Posts a new comment on pull request `number`.
    fn create_comment(&self, number: u64, body: &str) -> Request;
    /// Replaces the text of comment `id` on pull request `number`.
    fn edit_comment(&self, number: u64, id: u64, body: &str) -> Request;
    /// Sets a status on commit `sha`.
    fn set_status(&self, sha: &str, status: &Status) -> Request;
    /// The git ref at the head of pull request `number`, fetched like a branch.
    fn head_ref(&self, number: u64) -> String;
}

/// The hidden marker that finds kubemint's comment of one channel in one cluster.
pub fn marker(cluster: &str, namespace: &str, channel: &str) -> String {
    format!(
        "<!-- kubemint:preview {} -->",
        context(cluster, namespace, channel)
    )
}

/// The context of a channel's commit statuses: `kubemint/<cluster>/<namespace>/<channel>`.
pub fn context(cluster: &str, namespace: &str, channel: &str) -> String {
    format!("kubemint/{cluster}/{namespace}/{channel}")
}

/// The comment among `comments` that carries `marker`, if any.
pub fn find_marked<'c>(comments: &'c [Comment], marker: &str) -> Option<&'c Comment> {
    comments.iter().find(|c| c.body.contains(marker))
}

/// The repository path (`owner/name`, or a GitLab group path) of git URL `url`:
/// `https://host/owner/name.git`, `ssh://git@host/owner/name`, `git@host:owner/name.git`.
pub fn repository_of(url: &str) -> Option<String> {
    let rest = match url.split_once("://") {
        Some((_, rest)) => rest.split_once('/')?.1,
        None => url.split_once(':')?.1,
    };
    let path = rest.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    (path.split('/').filter(|p| !p.is_empty()).count() >= 2).then(|| path.to_string())
}

/// Why a forge could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// The forge answered with an error status.
    #[error("{forge:?} answered {status} to {method} {path}: {message}; check spec.forge (url, repository) and the token's permissions (docs/forges.md)")]
    Status {
        /// Which forge.
        forge: ForgeKind,
        /// The request's method.
        method: &'static str,
        /// The request's path (no token is ever in it).
        path: String,
        /// The HTTP status.
        status: u16,
        /// The start of the forge's message.
        message: String,
    },
    /// The forge kept answering 429 or 5xx; asked again after `retry_after`.
    #[error("{forge:?} is unavailable ({status} to {method} {path}): backed off for {}s", .retry_after.as_secs())]
    Unavailable {
        /// Which forge.
        forge: ForgeKind,
        /// The request's method.
        method: &'static str,
        /// The request's path.
        path: String,
        /// The last HTTP status.
        status: u16,
        /// How long the forge is left alone.
        retry_after: std::time::Duration,
    },
    /// The forge could not be reached.
    #[error("{forge:?} at {url} could not be reached: {message}; check spec.forge.url")]
    Transport {
        /// Which forge.
        forge: ForgeKind,
        /// The API base URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The channel's token could not be read.
    #[error("the forge token of channel {channel} could not be read from Secret {secret} (key 'token'): {message}; create it in the channel's namespace (docs/forges.md)")]
    Token {
        /// `namespace/name` of the channel.
        channel: String,
        /// `namespace/name` of the Secret.
        secret: String,
        /// What went wrong.
        message: String,
    },
    /// `spec.forge` does not say enough to reach the forge.
    #[error("spec.forge of channel {channel}: {message}")]
    Spec {
        /// `namespace/name` of the channel.
        channel: String,
        /// What is missing.
        message: String,
    },
    /// An answer was not what the forge's API documents.
    #[error("{forge:?} answered {what} in an unexpected shape: {message}")]
    Shape {
        /// Which forge.
        forge: ForgeKind,
        /// What was read.
        what: &'static str,
        /// What was missing.
        message: String,
    },
}

/// Reads a JSON array of objects with `read`, naming `what` on failure.
fn parse_list<T>(
    forge: ForgeKind,
    what: &'static str,
    body: &Value,
    read: impl Fn(&Value) -> Option<T>,
) -> Result<Vec<T>, ForgeError> {
    let shape = |message: String| ForgeError::Shape {
        forge,
        what,
        message,
    };
    body.as_array()
        .ok_or_else(|| shape("not a JSON array".into()))?
        .iter()
        .enumerate()
        .map(|(i, item)| read(item).ok_or_else(|| shape(format!("item {i} lacks a field"))))
        .collect()
}

/// A status's description as forges take it: one line of at most 140 characters.
fn description(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() <= 140 {
        return line.to_string();
    }
    let cut: String = line.chars().take(139).collect();
    format!("{cut}…")
}

/// A string field at `path` (e.g. `["head", "sha"]`).
fn text(item: &Value, path: &[&str]) -> Option<String> {
    path.iter()
        .try_fold(item, |v, key| v.get(key))?
        .as_str()
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_paths_come_from_every_git_url_form() {
        for (url, repository) in [
            ("https://gitea.example/shop/deploy.git", Some("shop/deploy")),
            ("http://127.0.0.1:3000/shop/deploy", Some("shop/deploy")),
            ("ssh://git@github.com/shop/deploy.git", Some("shop/deploy")),
            ("git@github.com:shop/deploy.git", Some("shop/deploy")),
            (
                "https://gitlab.com/group/sub/deploy.git",
                Some("group/sub/deploy"),
            ),
            ("https://gitea.example/deploy.git", None),
            ("/srv/git/deploy", None),
        ] {
            assert_eq!(repository_of(url).as_deref(), repository, "{url}");
        }
    }

    #[test]
    fn the_marker_names_cluster_namespace_and_channel_and_finds_its_comment() {
        let marker = marker("prod", "shop", "web");
        assert_eq!(marker, "<!-- kubemint:preview kubemint/prod/shop/web -->");
        let comments = [
            Comment {
                id: 1,
                body: "LGTM".into(),
            },
            Comment {
                id: 2,
                body: "<!-- kubemint:preview kubemint/staging/shop/web -->".into(),
            },
            Comment {
                id: 3,
                body: format!("{marker}\nrelease r1"),
            },
        ];
        assert_eq!(find_marked(&comments, &marker).map(|c| c.id), Some(3));
        assert_eq!(find_marked(&comments[..2], &marker), None);
    }

    #[test]
    fn a_token_is_never_printed() {
        let token = Token::new(" s3cr3t\n");
        assert_eq!(format!("{token:?}"), "Token(***)");
        assert_eq!(token.expose(), "s3cr3t");
    }

    #[test]
    fn descriptions_are_one_short_line() {
        assert_eq!(description("delivered\nmore"), "delivered");
        let long = "x".repeat(200);
        assert_eq!(description(&long).chars().count(), 140);
        assert_eq!(description(&"é".repeat(140)), "é".repeat(140));
    }

    #[test]
    fn forge_names_parse() {
        for (name, kind) in [
            ("gitea", Some(ForgeKind::Gitea)),
            ("forgejo", Some(ForgeKind::Gitea)),
            ("github", Some(ForgeKind::GitHub)),
            ("gitlab", Some(ForgeKind::GitLab)),
            ("bitbucket", None),
        ] {
            assert_eq!(ForgeKind::parse(name), kind, "{name}");
        }
    }
}
