//! The forge layer against a real Gitea (`support::Gitea`): pull requests
//! listed, kubemint's one comment posted then edited in place, commit
//! statuses, a bad token's error, and the backoff of a forge answering 503.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kubemint::forge::{
    marker, Client, CommitState, ForgeError, ForgeKind, Listed, Retry, Status, Token, Upserted,
};

use crate::support::{Gitea, GITEA_USER};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.test"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn fast_retry() -> Retry {
    Retry {
        attempts: 3,
        first: Duration::from_millis(10),
        max: Duration::from_millis(50),
        cool_down: Duration::from_secs(60),
    }
}

#[tokio::test]
async fn gitea_pulls_comments_and_statuses_through_the_forge_client() {
    let gitea = Gitea::start().await;
    gitea.create_repo("deploy").await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    git(dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("app.yaml"), "image: web:1\n").unwrap();
    git(dir, &["add", "."]);
    git(dir, &["commit", "-qm", "web 1"]);
    git(dir, &["push", "-q", &gitea.push_url("deploy"), "main"]);
    git(dir, &["checkout", "-qb", "bump"]);
    std::fs::write(dir.join("app.yaml"), "image: web:2\n").unwrap();
    git(dir, &["commit", "-qam", "web 2"]);
    let head = git(dir, &["rev-parse", "HEAD"]);
    git(dir, &["push", "-q", &gitea.push_url("deploy"), "bump"]);
    let title = "Bump <img src=x onerror=alert(1)> **web**";
    let number = gitea.create_pull("deploy", "bump", "main", title).await;

    let token = gitea
        .token("kubemint", &["write:repository", "write:issue"])
        .await;
    let repository = format!("{GITEA_USER}/deploy");
    let client = Client::new(
        &gitea.url,
        ForgeKind::Gitea.api(&repository),
        Token::new(&token),
        fast_retry(),
    );
    let Listed::Pulls(pulls, _) = client.list_pulls("main", 20, None).await.unwrap() else {
        panic!("a first list has no ETag to be unmodified against")
    };
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    let pull = &pulls[0];
    assert_eq!(
        (pull.number, pull.title.as_str(), pull.head_sha.as_str()),
        (number, title, head.as_str())
    );
    assert_eq!(
        (pull.head_branch.as_str(), pull.base_branch.as_str()),
        ("bump", "main")
    );
    assert_eq!(
        client.list_pulls("dev", 20, None).await.unwrap(),
        Listed::Pulls(Vec::new(), None),
        "no pull request targets dev"
    );
    // The head ref the preview fetches is served by Gitea's git.
    let refs = git(dir, &["ls-remote", &gitea.git_url("deploy")]);
    let head_ref = client.api().head_ref(number);
    assert!(refs.contains(&format!("{head}\t{head_ref}")), "{refs}");

    let mark = marker("test", "shop", "web");
    let first = format!("{mark}\nrelease r1");
    let second = format!("{mark}\nrelease r2");
    let other = format!("{}\nrelease r1", marker("test", "shop", "api"));
    assert_eq!(
        client.upsert_comment(number, &mark, &first).await.unwrap(),
        Upserted::Created
    );
    assert_eq!(
        client.upsert_comment(number, &mark, &first).await.unwrap(),
        Upserted::Unchanged,
        "the same text is not written again"
    );
    assert_eq!(
        client.upsert_comment(number, &mark, &second).await.unwrap(),
        Upserted::Edited
    );
    let other_mark = marker("test", "shop", "api");
    assert_eq!(
        client
            .upsert_comment(number, &other_mark, &other)
            .await
            .unwrap(),
        Upserted::Created,
        "another channel has a comment of its own"
    );
    let comments = gitea.comments("deploy", number).await;
    let bodies: Vec<&str> = comments.iter().map(|(_, b)| b.as_str()).collect();
    assert_eq!(
        bodies,
        [second.as_str(), other.as_str()],
        "one comment per channel"
    );

    let status = Status {
        state: CommitState::Success,
        context: "kubemint/test/shop/web".into(),
        description: "would deliver release r2".into(),
        target_url: Some("http://ui.example/releases/r2".into()),
    };
    client.set_status(&head, &status).await.unwrap();
    let statuses = gitea.statuses("deploy", &head).await;
    assert_eq!(
        statuses,
        [(
            "kubemint/test/shop/web".to_string(),
            "success".to_string(),
            "would deliver release r2".to_string(),
            "http://ui.example/releases/r2".to_string()
        )]
    );

    // A wrong token: an error that says what to check, and never the token.
    let wrong = "0123456789abcdef-not-a-token";
    let refused = Client::new(
        &gitea.url,
        ForgeKind::Gitea.api(&repository),
        Token::new(wrong),
        fast_retry(),
    );
    let error = refused.list_pulls("main", 20, None).await.unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, ForgeError::Status { status: 401, .. }),
        "{text}"
    );
    assert!(text.contains("token's permissions"), "{text}");
    assert!(
        !text.contains(wrong) && !format!("{error:?}").contains(wrong),
        "{text}"
    );
    assert!(!text.contains(&token), "{text}");
}

/// A forge that answers 503 to everything: asked `attempts` times, then left
/// alone for the cool-down (no request at all).
#[tokio::test]
async fn a_forge_answering_503_is_retried_then_left_alone() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let counted = requests.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            let mut buf = vec![0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let _ = socket
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
                .await;
        }
    });
    let client = Client::new(
        &url,
        ForgeKind::GitHub.api("shop/deploy"),
        Token::new("secret-token-value"),
        fast_retry(),
    );
    let error = client.list_pulls("main", 20, None).await.unwrap_err();
    assert!(
        matches!(error, ForgeError::Unavailable { status: 503, .. }),
        "{error}"
    );
    assert_eq!(requests.load(Ordering::SeqCst), 3, "three attempts");
    let again = client
        .set_status(
            "abc",
            &Status {
                state: CommitState::Pending,
                context: "kubemint/test/shop/web".into(),
                description: "rolling out".into(),
                target_url: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(again, ForgeError::Unavailable { .. }), "{again}");
    assert_eq!(
        requests.load(Ordering::SeqCst),
        3,
        "a forge that kept failing is not asked during its cool-down"
    );
    assert!(!again.to_string().contains("secret-token-value"));
}
