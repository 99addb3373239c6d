//! The REST API that GitHub defined and Gitea/Forgejo follow: pulls, issue
//! comments (a pull request's conversation) and commit statuses, on the same
//! paths with the same bodies. A [`Dialect`] holds what differs: the path
//! prefix, headers, the authorization scheme and the list queries.

use serde_json::{json, Value};

use super::{encode, parse_list, text, Api, Comment, CommitState, ForgeError, ForgeKind};
use super::{Method, PullRequest, Request, Status, Token};

/// What one forge's flavour of the API says differently.
#[derive(Debug)]
pub struct Dialect {
    /// The forge.
    pub kind: ForgeKind,
    /// The path before `{owner}/{repo}`: `/repos` or `/api/v1/repos`.
    pub prefix: &'static str,
    /// Headers of every request.
    pub headers: &'static [(&'static str, &'static str)],
    /// `Bearer` or `token`.
    pub auth_scheme: &'static str,
    /// The query listing open pull requests into an (encoded) base branch,
    /// newest first, at most `limit`.
    pub pulls_query: fn(&str, usize) -> String,
    /// The query of a comment list (`?per_page=100`, or nothing).
    pub comments_query: &'static str,
}

/// One repository on a forge of that API.
#[derive(Debug, Clone)]
pub struct RestRepo {
    /// `{prefix}/{owner}/{repo}`, encoded.
    repo: String,
    dialect: &'static Dialect,
}

impl RestRepo {
    /// The repository `owner/name` in `dialect`.
    pub fn new(dialect: &'static Dialect, repository: &str) -> Self {
        let repo = repository
            .split('/')
            .map(encode)
            .collect::<Vec<_>>()
            .join("/");
        RestRepo {
            repo: format!("{}/{repo}", dialect.prefix),
            dialect,
        }
    }

    fn request(&self, method: Method, path: String) -> Request {
        self.dialect
            .headers
            .iter()
            .fold(Request::new(method, path), |r, (name, value)| {
                r.header(name, value)
            })
    }
}

impl Api for RestRepo {
    fn kind(&self) -> ForgeKind {
        self.dialect.kind
    }

    fn authorization(&self, token: &Token) -> (&'static str, String) {
        (
            "Authorization",
            format!("{} {}", self.dialect.auth_scheme, token.expose()),
        )
    }

    fn list_pulls(&self, base: &str, limit: usize) -> Request {
        let query = (self.dialect.pulls_query)(&encode(base), limit);
        self.request(Method::Get, format!("{}/pulls?{query}", self.repo))
    }

    fn parse_pulls(&self, body: &Value, base: &str) -> Result<Vec<PullRequest>, ForgeError> {
        let pulls = parse_list(self.dialect.kind, "pull requests", body, |p| {
            Some(PullRequest {
                number: p.get("number")?.as_u64()?,
                title: text(p, &["title"])?,
                head_sha: text(p, &["head", "sha"])?,
                head_branch: text(p, &["head", "ref"])?,
                base_branch: text(p, &["base", "ref"])?,
            })
        })?;
        Ok(pulls
            .into_iter()
            .filter(|p| p.base_branch == base)
            .collect())
    }

    fn list_comments(&self, number: u64) -> Request {
        self.request(
            Method::Get,
            format!(
                "{}/issues/{number}/comments{}",
                self.repo, self.dialect.comments_query
            ),
        )
    }

    fn parse_comments(&self, body: &Value) -> Result<Vec<Comment>, ForgeError> {
        parse_list(self.dialect.kind, "comments", body, |c| {
            Some(Comment {
                id: c.get("id")?.as_u64()?,
                body: text(c, &["body"]).unwrap_or_default(),
            })
        })
    }

    fn create_comment(&self, number: u64, body: &str) -> Request {
        self.request(
            Method::Post,
            format!("{}/issues/{number}/comments", self.repo),
        )
        .json(json!({ "body": body }))
    }

    fn edit_comment(&self, _number: u64, id: u64, body: &str) -> Request {
        self.request(Method::Patch, format!("{}/issues/comments/{id}", self.repo))
            .json(json!({ "body": body }))
    }

    fn set_status(&self, sha: &str, status: &Status) -> Request {
        let state = match status.state {
            CommitState::Pending => "pending",
            CommitState::Success => "success",
            CommitState::Failure => "failure",
        };
        let mut body = json!({
            "state": state,
            "context": status.context,
            "description": super::description(&status.description),
        });
        if let Some(url) = &status.target_url {
            body["target_url"] = json!(url);
        }
        self.request(
            Method::Post,
            format!("{}/statuses/{}", self.repo, encode(sha)),
        )
        .json(body)
    }

    fn head_ref(&self, number: u64) -> String {
        format!("refs/pull/{number}/head")
    }
}
