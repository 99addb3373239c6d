//! GitHub's REST API (api.github.com, or GitHub Enterprise's `/api/v3`):
//! pulls, issue comments (a pull request's conversation), commit statuses.
//! <https://docs.github.com/en/rest/pulls/pulls#list-pull-requests>,
//! <https://docs.github.com/en/rest/issues/comments>,
//! <https://docs.github.com/en/rest/commits/statuses#create-a-commit-status>.

use serde_json::{json, Value};

use super::{encode, parse_list, text, Api, Comment, CommitState, ForgeError, ForgeKind};
use super::{Method, PullRequest, Request, Status, Token};

/// The API version the requests are written against.
const API_VERSION: &str = "2022-11-28";

/// One GitHub repository.
#[derive(Debug, Clone)]
pub struct GitHub {
    /// `/repos/{owner}/{repo}`, encoded.
    repo: String,
}

impl GitHub {
    /// The repository `owner/name`.
    pub fn new(repository: &str) -> Self {
        let repo = repository
            .split('/')
            .map(encode)
            .collect::<Vec<_>>()
            .join("/");
        GitHub {
            repo: format!("/repos/{repo}"),
        }
    }

    fn request(&self, method: Method, path: String) -> Request {
        Request::new(method, path)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", API_VERSION)
    }
}

impl Api for GitHub {
    fn kind(&self) -> ForgeKind {
        ForgeKind::GitHub
    }

    fn authorization(&self, token: &Token) -> (&'static str, String) {
        ("Authorization", format!("Bearer {}", token.expose()))
    }

    fn list_pulls(&self, base: &str, limit: usize) -> Request {
        self.request(
            Method::Get,
            format!(
                "{}/pulls?state=open&base={}&sort=created&direction=desc&per_page={}",
                self.repo,
                encode(base),
                limit.clamp(1, 100)
            ),
        )
    }

    fn parse_pulls(&self, body: &Value, base: &str) -> Result<Vec<PullRequest>, ForgeError> {
        let pulls = parse_list(ForgeKind::GitHub, "pull requests", body, |p| {
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
            format!("{}/issues/{number}/comments?per_page=100", self.repo),
        )
    }

    fn parse_comments(&self, body: &Value) -> Result<Vec<Comment>, ForgeError> {
        parse_list(ForgeKind::GitHub, "comments", body, |c| {
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

    fn headers() -> Vec<(&'static str, String)> {
        vec![
            ("Accept", "application/vnd.github+json".into()),
            ("X-GitHub-Api-Version", "2022-11-28".into()),
        ]
    }

    #[test]
    fn requests_have_the_documented_shapes() {
        let api = GitHub::new("shop/deploy");
        let status = Status {
            state: CommitState::Failure,
            context: "kubemint/prod/shop/web".into(),
            description: "refused (UnsignedCommit)".into(),
            target_url: Some("https://ui.example/releases/r1".into()),
        };
        let cases: Vec<(Request, Method, &str, Option<Value>)> = vec![
            (
                api.list_pulls("release/v1", 20),
                Method::Get,
                "/repos/shop/deploy/pulls?state=open&base=release%2Fv1&sort=created&direction=desc&per_page=20",
                None,
            ),
            (
                api.list_pulls("main", 1000),
                Method::Get,
                "/repos/shop/deploy/pulls?state=open&base=main&sort=created&direction=desc&per_page=100",
                None,
            ),
            (
                api.list_comments(7),
                Method::Get,
                "/repos/shop/deploy/issues/7/comments?per_page=100",
                None,
            ),
            (
                api.create_comment(7, "hello"),
                Method::Post,
                "/repos/shop/deploy/issues/7/comments",
                Some(json!({"body": "hello"})),
            ),
            (
                api.edit_comment(7, 42, "again"),
                Method::Patch,
                "/repos/shop/deploy/issues/comments/42",
                Some(json!({"body": "again"})),
            ),
            (
                api.set_status("abc123", &status),
                Method::Post,
                "/repos/shop/deploy/statuses/abc123",
                Some(json!({
                    "state": "failure",
                    "context": "kubemint/prod/shop/web",
                    "description": "refused (UnsignedCommit)",
                    "target_url": "https://ui.example/releases/r1",
                })),
            ),
        ];
        for (request, method, path, body) in cases {
            assert_eq!(request.method, method, "{path}");
            assert_eq!(request.path, path);
            assert_eq!(request.headers, headers(), "{path}");
            assert_eq!(request.body, body, "{path}");
        }
        let (name, value) = api.authorization(&Token::new("t0k"));
        assert_eq!((name, value.as_str()), ("Authorization", "Bearer t0k"));
        assert_eq!(api.head_ref(7), "refs/pull/7/head");
    }

    #[test]
    fn pulls_are_read_from_the_documented_answer_and_other_bases_dropped() {
        let api = GitHub::new("shop/deploy");
        let body = json!([
            {"number": 2, "title": "Bump web to 1.2 <b>", "state": "open",
             "head": {"ref": "bump", "sha": "bbb", "repo": {"full_name": "fork/deploy"}},
             "base": {"ref": "main", "sha": "aaa"}},
            {"number": 1, "title": "Other", "head": {"ref": "x", "sha": "ccc"}, "base": {"ref": "dev"}},
        ]);
        assert_eq!(
            api.parse_pulls(&body, "main").unwrap(),
            [PullRequest {
                number: 2,
                title: "Bump web to 1.2 <b>".into(),
                head_sha: "bbb".into(),
                head_branch: "bump".into(),
                base_branch: "main".into(),
            }]
        );
        let broken = json!([{"number": 3, "title": "no head"}]);
        let error = api.parse_pulls(&broken, "main").unwrap_err().to_string();
        assert!(
            error.contains("pull requests") && error.contains("item 0"),
            "{error}"
        );
        let comments =
            json!([{"id": 9, "body": "hi", "user": {"login": "a"}}, {"id": 10, "body": null}]);
        assert_eq!(
            api.parse_comments(&comments).unwrap(),
            [
                Comment {
                    id: 9,
                    body: "hi".into()
                },
                Comment {
                    id: 10,
                    body: String::new()
                }
            ]
        );
    }
}
