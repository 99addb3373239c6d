//! GitLab's REST API (`/api/v4`): merge requests, their notes, commit statuses.
//! <https://docs.gitlab.com/api/merge_requests/#list-project-merge-requests>,
//! <https://docs.gitlab.com/api/notes/#merge-requests>,
//! <https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit>.

use serde_json::{json, Value};

use super::{encode, parse_list, text, Api, Comment, CommitState, ForgeError, ForgeKind};
use super::{Method, PullRequest, Request, Status, Token};

/// One GitLab project.
#[derive(Debug, Clone)]
pub struct GitLab {
    /// `/api/v4/projects/{id}`, the id being the URL-encoded full path.
    project: String,
}

impl GitLab {
    /// The project at `path` (`group/sub/name`).
    pub fn new(path: &str) -> Self {
        GitLab {
            project: format!("/api/v4/projects/{}", encode(path)),
        }
    }
}

impl Api for GitLab {
    fn kind(&self) -> ForgeKind {
        ForgeKind::GitLab
    }

    fn authorization(&self, token: &Token) -> (&'static str, String) {
        ("PRIVATE-TOKEN", token.expose().to_string())
    }

    fn list_pulls(&self, base: &str, limit: usize) -> Request {
        Request::new(
            Method::Get,
            format!(
                "{}/merge_requests?state=opened&target_branch={}&order_by=created_at&sort=desc&per_page={}",
                self.project,
                encode(base),
                limit.clamp(1, 100)
            ),
        )
    }

    fn parse_pulls(&self, body: &Value, base: &str) -> Result<Vec<PullRequest>, ForgeError> {
        let pulls = parse_list(ForgeKind::GitLab, "merge requests", body, |m| {
            Some(PullRequest {
                number: m.get("iid")?.as_u64()?,
                title: text(m, &["title"])?,
                head_sha: text(m, &["sha"])?,
                head_branch: text(m, &["source_branch"])?,
                base_branch: text(m, &["target_branch"])?,
            })
        })?;
        Ok(pulls
            .into_iter()
            .filter(|p| p.base_branch == base)
            .collect())
    }

    fn list_comments(&self, number: u64) -> Request {
        Request::new(
            Method::Get,
            format!(
                "{}/merge_requests/{number}/notes?sort=asc&per_page=100",
                self.project
            ),
        )
    }

    fn parse_comments(&self, body: &Value) -> Result<Vec<Comment>, ForgeError> {
        parse_list(ForgeKind::GitLab, "notes", body, |n| {
            Some(Comment {
                id: n.get("id")?.as_u64()?,
                body: text(n, &["body"]).unwrap_or_default(),
            })
        })
    }

    fn create_comment(&self, number: u64, body: &str) -> Request {
        Request::new(
            Method::Post,
            format!("{}/merge_requests/{number}/notes", self.project),
        )
        .json(json!({ "body": body }))
    }

    fn edit_comment(&self, number: u64, id: u64, body: &str) -> Request {
        Request::new(
            Method::Put,
            format!("{}/merge_requests/{number}/notes/{id}", self.project),
        )
        .json(json!({ "body": body }))
    }

    fn set_status(&self, sha: &str, status: &Status) -> Request {
        let state = match status.state {
            CommitState::Pending => "pending",
            CommitState::Success => "success",
            CommitState::Failure => "failed",
        };
        let mut body = json!({
            "state": state,
            "name": status.context,
            "description": super::description(&status.description),
        });
        if let Some(url) = &status.target_url {
            body["target_url"] = json!(url);
        }
        Request::new(
            Method::Post,
            format!("{}/statuses/{}", self.project, encode(sha)),
        )
        .json(body)
    }

    fn head_ref(&self, number: u64) -> String {
        format!("refs/merge-requests/{number}/head")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_the_documented_shapes() {
        let api = GitLab::new("group/sub/deploy");
        let status = |state| Status {
            state,
            context: "kubemint/prod/shop/web".into(),
            description: "delivered".into(),
            target_url: None,
        };
        let p = "/api/v4/projects/group%2Fsub%2Fdeploy";
        let cases: Vec<(Request, Method, String, Option<Value>)> = vec![
            (
                api.list_pulls("main", 20),
                Method::Get,
                format!("{p}/merge_requests?state=opened&target_branch=main&order_by=created_at&sort=desc&per_page=20"),
                None,
            ),
            (
                api.list_comments(5),
                Method::Get,
                format!("{p}/merge_requests/5/notes?sort=asc&per_page=100"),
                None,
            ),
            (
                api.create_comment(5, "hello"),
                Method::Post,
                format!("{p}/merge_requests/5/notes"),
                Some(json!({"body": "hello"})),
            ),
            (
                api.edit_comment(5, 77, "again"),
                Method::Put,
                format!("{p}/merge_requests/5/notes/77"),
                Some(json!({"body": "again"})),
            ),
            (
                api.set_status("abc", &status(CommitState::Failure)),
                Method::Post,
                format!("{p}/statuses/abc"),
                Some(json!({"state": "failed", "name": "kubemint/prod/shop/web", "description": "delivered"})),
            ),
            (
                api.set_status("abc", &status(CommitState::Pending)),
                Method::Post,
                format!("{p}/statuses/abc"),
                Some(json!({"state": "pending", "name": "kubemint/prod/shop/web", "description": "delivered"})),
            ),
        ];
        for (request, method, path, body) in cases {
            assert_eq!(request.method, method, "{path}");
            assert_eq!(request.path, path);
            assert!(request.headers.is_empty(), "{path}");
            assert_eq!(request.body, body, "{path}");
        }
        let (name, value) = api.authorization(&Token::new("glpat-x"));
        assert_eq!((name, value.as_str()), ("PRIVATE-TOKEN", "glpat-x"));
        assert_eq!(api.head_ref(5), "refs/merge-requests/5/head");
    }

    #[test]
    fn merge_requests_and_notes_are_read_from_the_documented_answers() {
        let api = GitLab::new("shop/deploy");
        let body = json!([
            {"id": 1001, "iid": 5, "title": "Bump", "state": "opened", "sha": "bbb",
             "source_branch": "bump", "target_branch": "main", "source_project_id": 9},
            {"id": 1002, "iid": 6, "title": "Dev", "sha": "ccc",
             "source_branch": "x", "target_branch": "dev"},
        ]);
        assert_eq!(
            api.parse_pulls(&body, "main").unwrap(),
            [PullRequest {
                number: 5,
                title: "Bump".into(),
                head_sha: "bbb".into(),
                head_branch: "bump".into(),
                base_branch: "main".into(),
            }]
        );
        let notes = json!([{"id": 77, "body": "hi", "system": false}]);
        assert_eq!(
            api.parse_comments(&notes).unwrap(),
            [Comment {
                id: 77,
                body: "hi".into()
            }]
        );
        assert!(api.parse_comments(&json!({"message": "404"})).is_err());
    }
}
