//! Gitea's and Forgejo's REST API (`/api/v1`): pulls, issue comments (a pull
//! request's conversation), commit statuses; the shapes of Gitea v1.26's
//! swagger (`routers/api/v1/repo/{pull,issue_comment,status}.go`).

use serde_json::{json, Value};

use super::{encode, parse_list, text, Api, Comment, CommitState, ForgeError, ForgeKind};
use super::{Method, PullRequest, Request, Status, Token};

/// One Gitea repository.
#[derive(Debug, Clone)]
pub struct Gitea {
    /// `/api/v1/repos/{owner}/{repo}`, encoded.
    repo: String,
}

impl Gitea {
    /// The repository `owner/name`.
    pub fn new(repository: &str) -> Self {
        let repo = repository
            .split('/')
            .map(encode)
            .collect::<Vec<_>>()
            .join("/");
        Gitea {
            repo: format!("/api/v1/repos/{repo}"),
        }
    }

    fn request(&self, method: Method, path: String) -> Request {
        Request::new(method, path).header("Accept", "application/json")
    }
}

impl Api for Gitea {
    fn kind(&self) -> ForgeKind {
        ForgeKind::Gitea
    }

    fn authorization(&self, token: &Token) -> (&'static str, String) {
        ("Authorization", format!("token {}", token.expose()))
    }

    fn list_pulls(&self, base: &str, limit: usize) -> Request {
        // Gitea's default order is newest first; `base_branch` filters on the server.
        self.request(
            Method::Get,
            format!(
                "{}/pulls?state=open&base_branch={}&limit={}",
                self.repo,
                encode(base),
                limit.clamp(1, 50)
            ),
        )
    }

    fn parse_pulls(&self, body: &Value, base: &str) -> Result<Vec<PullRequest>, ForgeError> {
        let pulls = parse_list(ForgeKind::Gitea, "pull requests", body, |p| {
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
            format!("{}/issues/{number}/comments", self.repo),
        )
    }

    fn parse_comments(&self, body: &Value) -> Result<Vec<Comment>, ForgeError> {
        parse_list(ForgeKind::Gitea, "comments", body, |c| {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_the_documented_shapes() {
        let api = Gitea::new("shop/deploy");
        let status = Status {
            state: CommitState::Success,
            context: "kubemint/prod/shop/web".into(),
            description: "would deliver release r1".into(),
            target_url: None,
        };
        let p = "/api/v1/repos/shop/deploy";
        let cases: Vec<(Request, Method, String, Option<Value>)> = vec![
            (
                api.list_pulls("main", 20),
                Method::Get,
                format!("{p}/pulls?state=open&base_branch=main&limit=20"),
                None,
            ),
            (
                api.list_comments(3),
                Method::Get,
                format!("{p}/issues/3/comments"),
                None,
            ),
            (
                api.create_comment(3, "hi"),
                Method::Post,
                format!("{p}/issues/3/comments"),
                Some(json!({"body": "hi"})),
            ),
            (
                api.edit_comment(3, 8, "again"),
                Method::Patch,
                format!("{p}/issues/comments/8"),
                Some(json!({"body": "again"})),
            ),
            (
                api.set_status("abc", &status),
                Method::Post,
                format!("{p}/statuses/abc"),
                Some(
                    json!({"state": "success", "context": "kubemint/prod/shop/web", "description": "would deliver release r1"}),
                ),
            ),
        ];
        for (request, method, path, body) in cases {
            assert_eq!(request.method, method, "{path}");
            assert_eq!(request.path, path);
            assert_eq!(
                request.headers,
                [("Accept", "application/json".to_string())]
            );
            assert_eq!(request.body, body, "{path}");
        }
        let (name, value) = api.authorization(&Token::new("abc"));
        assert_eq!((name, value.as_str()), ("Authorization", "token abc"));
    }
}
