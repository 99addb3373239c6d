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

/// The release files of the pull request tests: one workload, its Service and a Secret.
fn release(image: &str, secret: &str) -> Vec<(&'static str, String)> {
    use crate::fixture::manifests::{bare_deployment, service};
    vec![
        ("app/web.yaml", bare_deployment("web", image, 1)),
        ("app/svc.yaml", service("web")),
        (
            "app/secret.yaml",
            format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  password: {secret}\n"),
        ),
    ]
}

fn write(dir: &Path, files: &[(&str, String)], message: &str) -> String {
    for (path, content) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", message]);
    git(dir, &["rev-parse", "HEAD"])
}

/// The comments of pull request `number` that carry `marker`.
async fn marked(gitea: &Gitea, number: u64, marker: &str) -> Vec<(u64, String)> {
    let comments = gitea.comments("deploy", number).await;
    comments
        .into_iter()
        .filter(|(_, body)| body.contains(marker))
        .collect()
}

#[tokio::test]
async fn a_pull_request_gets_one_comment_with_the_release_diff_and_a_status() {
    use crate::fixture::{apply_channel_with, create_secret, install_crd, wait_applied, Operator};

    let cluster = crate::support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("forge").await;
    let gitea = Gitea::start().await;
    gitea.create_repo("deploy").await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    git(dir, &["init", "-q", "-b", "main"]);
    let first = write(dir, &release("web:1.0", "old-password-1"), "web 1.0");
    git(dir, &["push", "-q", &gitea.push_url("deploy"), "main"]);

    let token = gitea
        .token("kubemint-preview", &["write:repository", "write:issue"])
        .await;
    create_secret(
        &client,
        &ns,
        "forge-token",
        serde_json::json!({"token": token}),
    )
    .await;
    apply_channel_with(
        &client,
        &ns,
        "web",
        &gitea.git_url("deploy"),
        "app",
        serde_json::json!({
            "rollout": {"drainSeconds": 0},
            "forge": {"type": "gitea", "secretRef": {"name": "forge-token"}, "uiUrl": "http://ui.example"},
        }),
    )
    .await;
    // A second channel on the same branch that verifies signatures: the
    // commits here are unsigned, so it refuses them, in previews too.
    let signer = crate::gitserver::SshSigningKey::generate();
    create_secret(
        &client,
        &ns,
        "signers",
        serde_json::json!({"allowed_signers": signer.allowed_signers("ada@example.com")}),
    )
    .await;
    apply_channel_with(
        &client,
        &ns,
        "signed",
        &gitea.git_url("deploy"),
        "app",
        serde_json::json!({
            "git": {"verify": {"mode": "HEAD", "secretRef": {"name": "signers"}}},
            "forge": {"type": "gitea", "secretRef": {"name": "forge-token"}},
        }),
    )
    .await;
    let op = Operator::start_with(cluster.kubeconfig(), &ns, "", &["--cluster-name", "test"]);
    wait_applied(&client, &ns, "web", &first, &op).await;

    // A pull request that bumps the image and changes the Secret's value.
    git(dir, &["checkout", "-qb", "bump"]);
    let head = write(dir, &release("web:2.0", "new-password-2"), "web 2.0");
    git(dir, &["push", "-q", &gitea.push_url("deploy"), "bump"]);
    let title = "Bump web <script>alert(1)</script> **now** [x](http://evil)";
    let number = gitea.create_pull("deploy", "bump", "main", title).await;

    let mark = marker("test", &ns, "web");
    let wait_comment = |sha: String| {
        let (gitea, mark, op) = (&gitea, &mark, &op);
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
            loop {
                let found = marked(gitea, number, mark).await;
                if let [(id, body)] = found.as_slice() {
                    if body.contains(&sha[..12]) {
                        return (*id, body.clone());
                    }
                }
                assert!(found.len() <= 1, "one comment per channel: {found:?}");
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no comment for {sha}: {found:?}\noperator log:\n{}",
                    op.log_text()
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let (id, body) = wait_comment(head.clone()).await;
    assert!(body.contains("would be delivered"), "{body}");
    assert!(body.contains("ReplicaSet"), "the new revision: {body}");
    assert!(
        body.contains("web:2.0"),
        "the diff shows the new image: {body}"
    );
    assert!(
        body.contains("&lt;script&gt;") && !body.contains("<script>"),
        "the title renders as text: {body}"
    );
    assert!(!body.contains("[x](http"), "no link from the title: {body}");
    for secret in ["new-password-2", "old-password-1", &token] {
        assert!(!body.contains(secret), "{secret} leaked: {body}");
    }
    let context = format!("kubemint/test/{ns}/web");
    let statuses = gitea.statuses("deploy", &head).await;
    assert!(
        statuses
            .iter()
            .any(|(c, state, _, _)| *c == context && state == "success"),
        "{statuses:?}"
    );

    // The verifying channel's own comment and status: refused, with the controller's reason.
    let signed_mark = marker("test", &ns, "signed");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let refused = loop {
        let found = marked(&gitea, number, &signed_mark).await;
        if let [(_, body)] = found.as_slice() {
            break body.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no comment of the verifying channel: {found:?}\noperator log:\n{}",
            op.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        refused.contains("**Refused** (SignatureVerificationFailed)"),
        "{refused}"
    );
    let signed_context = format!("kubemint/test/{ns}/signed");
    let statuses = gitea.statuses("deploy", &head).await;
    assert!(
        statuses
            .iter()
            .any(|(c, state, _, _)| *c == signed_context && state == "failure"),
        "{statuses:?}"
    );

    // Two channels follow the branch: one list per interval (2s) for both,
    // counted in Gitea's access log.
    let lists = || {
        gitea
            .access_log()
            .lines()
            .filter(|l| l.contains("/pulls?state=open"))
            .count()
    };
    let before = lists();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let listed = lists() - before;
    eprintln!("pull request lists in 10s, two channels on one branch: {listed}");
    assert!(
        (1..=6).contains(&listed),
        "{listed} lists in 10s for two channels with a 2s interval"
    );

    // A second push: the same comment, edited.
    let second = write(dir, &release("web:3.0", "new-password-3"), "web 3.0");
    git(dir, &["push", "-q", &gitea.push_url("deploy"), "bump"]);
    let (again, body) = wait_comment(second.clone()).await;
    assert_eq!(again, id, "the comment is edited in place");
    assert!(body.contains("web:3.0"), "{body}");
    assert!(!body.contains("new-password-3"), "{body}");
    // Nothing of the pull request reached the cluster.
    let deployments: kube::Api<k8s_openapi::api::apps::v1::ReplicaSet> =
        kube::Api::namespaced(client.clone(), &ns);
    let images: Vec<String> = deployments
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .flat_map(|rs| {
            rs.spec.as_ref()?.template.as_ref()?.spec.as_ref().map(|s| {
                s.containers
                    .iter()
                    .filter_map(|c| c.image.clone())
                    .collect::<Vec<_>>()
            })
        })
        .flatten()
        .collect();
    assert_eq!(images, ["web:1.0"], "a preview writes nothing");
    std::fs::write("/tmp/kubemint-forge-comment.md", &body).ok();

    // The merge: its commit goes pending while it rolls out, then success with the UI link.
    gitea.merge_pull("deploy", number).await;
    let merged = gitea
        .api(
            reqwest::Method::GET,
            &format!("/repos/{GITEA_USER}/deploy/branches/main"),
            None,
        )
        .await["commit"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(merged, first);
    wait_applied(&client, &ns, "web", &merged, &op).await;
    let link = format!("http://ui.example/ui/{ns}/web/release/{merged}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let statuses = loop {
        let statuses = gitea.statuses("deploy", &merged).await;
        if statuses.iter().any(|(_, state, _, _)| state == "success") {
            break statuses;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no success status on {merged}: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let ours: Vec<(&str, &str)> = statuses
        .iter()
        .filter(|(c, ..)| *c == context)
        .map(|(_, state, _, url)| (state.as_str(), url.as_str()))
        .collect();
    assert_eq!(
        ours,
        [("pending", ""), ("success", link.as_str())],
        "pending while it rolls out, then success: {statuses:?}"
    );
    assert!(
        statuses.last().unwrap().2.contains("promoted"),
        "{statuses:?}"
    );

    // A pull request that would prune most of what the channel delivered: held.
    git(dir, &["fetch", "-q", &gitea.git_url("deploy"), "main"]);
    git(dir, &["checkout", "-q", "-B", "main", &merged]);
    git(dir, &["checkout", "-qb", "drop"]);
    git(dir, &["rm", "-q", "app/svc.yaml", "app/secret.yaml"]);
    git(dir, &["commit", "-qm", "drop the Service and the Secret"]);
    let drop = git(dir, &["rev-parse", "HEAD"]);
    git(dir, &["push", "-q", &gitea.push_url("deploy"), "drop"]);
    let dropping = gitea
        .create_pull("deploy", "drop", "main", "Drop most")
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let body = loop {
        let found = marked(&gitea, dropping, &mark).await;
        if let [(_, body)] = found.as_slice() {
            break body.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no comment on the pruning pull request: {found:?}\noperator log:\n{}",
            op.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(body.contains("**Held** (PruneHeld)"), "{body}");
    assert!(body.contains("Service/"), "what it would prune: {body}");
    let statuses = gitea.statuses("deploy", &drop).await;
    assert!(
        statuses
            .iter()
            .any(|(c, state, d, _)| *c == context && state == "failure" && d.contains("PruneHeld")),
        "{statuses:?}"
    );
}
