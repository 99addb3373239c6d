//! GitHub's REST API (api.github.com, or GitHub Enterprise's `/api/v3`):
//! pulls, issue comments (a pull request's conversation), commit statuses.
//! <https://docs.github.com/en/rest/pulls/pulls#list-pull-requests>,
//! <https://docs.github.com/en/rest/issues/comments>,
//! <https://docs.github.com/en/rest/commits/statuses#create-a-commit-status>.

use super::rest::{Dialect, RestRepo};
use super::ForgeKind;

/// GitHub's flavour, at API version 2022-11-28.
pub static GITHUB: Dialect = Dialect {
    kind: ForgeKind::GitHub,
    prefix: "/repos",
    headers: &[
        ("Accept", "application/vnd.github+json"),
        ("X-GitHub-Api-Version", "2022-11-28"),
    ],
    auth_scheme: "Bearer",
    pulls_query: |base, limit| {
        format!(
            "state=open&base={base}&sort=created&direction=desc&per_page={}",
            limit.clamp(1, 100)
        )
    },
    comments_query: "?per_page=100",
};

/// One GitHub repository, `owner/name`.
pub fn github(repository: &str) -> RestRepo {
    RestRepo::new(&GITHUB, repository)
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::forge::{Api, Comment, CommitState, Method, PullRequest, Request, Status, Token};

    fn headers() -> Vec<(&'static str, String)> {
        vec![
            ("Accept", "application/vnd.github+json".into()),
            ("X-GitHub-Api-Version", "2022-11-28".into()),
        ]
    }

    #[test]
    fn requests_have_the_documented_shapes() {
        let api = github("shop/deploy");
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
        let api = github("shop/deploy");
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
