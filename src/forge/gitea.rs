//! Gitea's and Forgejo's REST API (`/api/v1`): pulls, issue comments (a pull
//! request's conversation), commit statuses; the shapes of Gitea v1.26's
//! swagger (`routers/api/v1/repo/{pull,issue_comment,status}.go`), which
//! follow GitHub's.

use super::rest::{Dialect, RestRepo};
use super::ForgeKind;

/// Gitea's (and Forgejo's) flavour.
pub static GITEA: Dialect = Dialect {
    kind: ForgeKind::Gitea,
    prefix: "/api/v1/repos",
    headers: &[("Accept", "application/json")],
    auth_scheme: "token",
    // Gitea's default order is newest first; `base_branch` filters on the server.
    pulls_query: |base, limit| {
        format!("state=open&base_branch={base}&limit={}", limit.clamp(1, 50))
    },
    comments_query: "",
};

/// One Gitea or Forgejo repository, `owner/name`.
pub fn gitea(repository: &str) -> RestRepo {
    RestRepo::new(&GITEA, repository)
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::forge::{Api, CommitState, Method, Request, Status, Token};

    #[test]
    fn requests_have_the_documented_shapes() {
        let api = gitea("shop/deploy");
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
