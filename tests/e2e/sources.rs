//! End-to-end: commits that reach the operator without waiting for a poll. A
//! webhook (GitHub, GitLab and generic HMAC formats) on a channel served by a
//! real `git daemon`, and a notify watch on a local repository. Both channels
//! poll only every hour, so a commit can only arrive through the trigger.

use crate::fixture;
use crate::gitserver;
use crate::support;

use std::time::{Duration, Instant};

use fixture::manifests::greeting;
use fixture::{channel, install_crd, wait_applied, GitRepo, Operator};
use gitserver::GitDaemon;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use kubemint::controller::Channel;
use kubemint::source::webhook::sign;
use serde_json::json;

const TOKEN: &str = "hook-token-5b1f0e";

/// A push payload as GitHub sends it (fields trimmed to what a push carries).
fn github_push(reference: &str, before: &str, after: &str, message: &str) -> Vec<u8> {
    let commit = json!({
        "id": after,
        "tree_id": "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
        "distinct": true,
        "message": message,
        "timestamp": "2026-11-22T10:00:00+00:00",
        "url": format!("https://github.com/acme/deploy/commit/{after}"),
        "author": {"name": "Ada Lovelace", "email": "ada@example.com", "username": "ada"},
        "committer": {"name": "Ada Lovelace", "email": "ada@example.com", "username": "ada"},
        "added": [], "removed": [], "modified": ["deploy/cm.yaml"]
    });
    serde_json::to_vec(&json!({
        "ref": reference,
        "before": before,
        "after": after,
        "repository": {
            "id": 123456789, "node_id": "R_kgDOHx", "name": "deploy", "full_name": "acme/deploy",
            "private": true, "owner": {"name": "acme", "login": "acme", "id": 42},
            "html_url": "https://github.com/acme/deploy",
            "clone_url": "https://github.com/acme/deploy.git",
            "ssh_url": "git@github.com:acme/deploy.git",
            "default_branch": "main", "master_branch": "main"
        },
        "pusher": {"name": "ada", "email": "ada@example.com"},
        "sender": {"login": "ada", "id": 7, "type": "User"},
        "created": false, "deleted": false, "forced": false, "base_ref": null,
        "compare": format!("https://github.com/acme/deploy/compare/{}...{}", &before[..12], &after[..12]),
        "commits": [commit.clone()],
        "head_commit": commit
    }))
    .unwrap()
}

/// A client that opens a connection per request: a rejected request may be
/// answered before its body is read, after which the server closes that
/// connection, and a pooled one would race with that close.
fn fresh_connections() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("http client")
}

struct Hook {
    http: reqwest::Client,
    url: String,
}

impl Hook {
    async fn post(&self, headers: &[(&str, String)], body: Vec<u8>) -> (u16, String) {
        let mut request = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            request = request.header(*k, v);
        }
        let response = request.send().await.expect("posting to the webhook");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    async fn github(&self, body: Vec<u8>, secret: &str) -> (u16, String) {
        let signature = sign(&body, secret.as_bytes());
        let headers = [
            ("x-github-event", "push".to_string()),
            (
                "x-github-delivery",
                "72d3162e-cc78-11e3-81ab-4c9367dc0958".to_string(),
            ),
            ("user-agent", "GitHub-Hookshot/044aadd".to_string()),
            ("x-hub-signature-256", signature),
        ];
        self.post(&headers, body).await
    }
}

async fn last_applied(client: &Client, ns: &str, name: &str) -> Option<String> {
    channel(client, ns, name)
        .await
        .status?
        .last_applied_commit
        .map(|c| c.sha)
}

/// Waits (polling every 20 ms) until `sha` is the last applied commit; returns how long it took.
async fn time_to_apply(
    client: &Client,
    ns: &str,
    name: &str,
    sha: &str,
    op: &Operator,
) -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if last_applied(client, ns, name).await.as_deref() == Some(sha) {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{sha} not applied within 30 s\n{}", op.log_text());
}

async fn create_token_secret(client: &Client, ns: &str) {
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "hook"}, "stringData": {"token": TOKEN}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

async fn apply_hourly_channel(client: &Client, ns: &str, url: &str, webhook: bool) {
    let mut spec = json!({
        "git": {"url": url, "ref": {"branch": "main"}, "path": "deploy", "interval": "1h"},
        "driftInterval": "1h"
    });
    if webhook {
        spec["webhook"] = json!({"secretRef": {"name": "hook"}});
    }
    let body = json!({"apiVersion": "kubemint.io/v1alpha1", "kind": "Channel",
                      "metadata": {"name": "app", "namespace": ns}, "spec": spec});
    Api::<Channel>::namespaced(client.clone(), ns)
        .patch(
            "app",
            &PatchParams::apply("kubemint-tests").force(),
            &Patch::Apply(&body),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn webhooks_trigger_a_sync_only_when_signed_and_for_the_channels_ref() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("hooks").await;
    let upstream = GitRepo::new();
    let first = upstream
        .write(&[("deploy/cm.yaml", &greeting("one"))])
        .commit("first");
    let daemon = GitDaemon::start(upstream.root());
    create_token_secret(&client, &ns).await;
    apply_hourly_channel(&client, &ns, &daemon.url("work"), true).await;
    let op = Operator::start(cluster.kubeconfig(), &ns);
    wait_applied(&client, &ns, "app", &first, &op).await;
    let addr = op.http_addr().await;
    let hook = Hook {
        http: fresh_connections(),
        url: format!("http://{addr}/hooks/{ns}/app"),
    };

    let second = upstream
        .write(&[("deploy/cm.yaml", &greeting("two"))])
        .commit("second");
    let push = github_push("refs/heads/main", &first, &second, "second");
    // Refused: unsigned, signed with another secret, tampered, oversized, wrong GitLab token.
    let (status, body) = hook
        .post(&[("x-github-event", "push".into())], push.clone())
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("unsigned"), "{body}");
    assert_eq!(hook.github(push.clone(), "not-the-token").await.0, 401);
    let mut tampered = push.clone();
    let (status, _) = {
        let signature = sign(&push, TOKEN.as_bytes());
        tampered.extend_from_slice(b" ");
        hook.post(
            &[
                ("x-github-event", "push".into()),
                ("x-hub-signature-256", signature),
            ],
            tampered,
        )
        .await
    };
    assert_eq!(status, 401);
    let huge = vec![b' '; 5 * 1024 * 1024];
    assert_eq!(hook.github(huge, TOKEN).await.0, 413);
    let gitlab_wrong = [
        ("x-gitlab-event", "Push Hook".to_string()),
        ("x-gitlab-token", "guess".to_string()),
    ];
    assert_eq!(hook.post(&gitlab_wrong, push.clone()).await.0, 401);
    // Authentic, but a push to another branch: accepted as a delivery, no sync.
    let other = github_push("refs/heads/feature", &first, &second, "second");
    let (status, body) = hook.github(other, TOKEN).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("ignored"), "{body}");
    // Unknown channel: the same answer as a channel without a webhook.
    let stranger = Hook {
        http: fresh_connections(),
        url: format!("http://{addr}/hooks/{ns}/nobody"),
    };
    assert_eq!(stranger.github(push.clone(), TOKEN).await.0, 404);
    // None of that may have synced: the channel polls hourly.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        last_applied(&client, &ns, "app").await.as_deref(),
        Some(first.as_str()),
        "a refused or ignored request triggered a sync"
    );

    // GitHub: a signed push to main.
    let sent = Instant::now();
    let (status, body) = hook.github(push, TOKEN).await;
    assert_eq!(status, 202, "{body}");
    let took = time_to_apply(&client, &ns, "app", &second, &op).await;
    println!(
        "webhook (GitHub) -> applied: {took:?} (request answered in {:?})",
        sent.elapsed() - took
    );

    // GitLab: the token header.
    let third = upstream
        .write(&[("deploy/cm.yaml", &greeting("three"))])
        .commit("third");
    let body = serde_json::to_vec(&json!({"object_kind": "push", "ref": "refs/heads/main",
        "before": second, "after": third, "project": {"path_with_namespace": "acme/deploy"}}))
    .unwrap();
    let headers = [
        ("x-gitlab-event", "Push Hook".to_string()),
        ("x-gitlab-token", TOKEN.to_string()),
    ];
    assert_eq!(hook.post(&headers, body).await.0, 202);
    let took = time_to_apply(&client, &ns, "app", &third, &op).await;
    println!("webhook (GitLab) -> applied: {took:?}");

    // Generic: an HMAC-SHA256 of the body.
    let fourth = upstream
        .write(&[("deploy/cm.yaml", &greeting("four"))])
        .commit("fourth");
    let body = br#"{"ref":"refs/heads/main"}"#.to_vec();
    let headers = [("x-signature-256", sign(&body, TOKEN.as_bytes()))];
    assert_eq!(hook.post(&headers, body).await.0, 202);
    let took = time_to_apply(&client, &ns, "app", &fourth, &op).await;
    println!("webhook (generic HMAC) -> applied: {took:?}");

    let metrics = op.metrics().await;
    assert!(
        metrics.contains(r#"kubemint_webhook_requests_total{outcome="Accepted"} 3"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"kubemint_webhook_requests_total{outcome="BadSignature"} 3"#),
        "{metrics}"
    );
    // Every sync polled git once; the first fetch and each new commit received a pack.
    let value = |name: &str| -> f64 {
        let line = metrics.lines().find(|l| l.starts_with(name));
        line.and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
    };
    assert!(value("kubemint_git_poll_duration_seconds_count") >= 4.0);
    assert!(value("kubemint_git_received_bytes_total") > 0.0);
}

#[tokio::test]
async fn a_commit_in_a_local_repository_syncs_without_a_poll() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("notify").await;
    let repo = GitRepo::new();
    let first = repo
        .write(&[("deploy/cm.yaml", &greeting("one"))])
        .commit("first");
    // A plain path, as a sidecar-mounted repository or a development loop has it.
    apply_hourly_channel(&client, &ns, repo.path().to_str().unwrap(), false).await;
    let op = Operator::start(cluster.kubeconfig(), &ns);
    wait_applied(&client, &ns, "app", &first, &op).await;

    let mut shas = vec![first];
    for round in ["two", "three"] {
        let sha = repo
            .write(&[("deploy/cm.yaml", &greeting(round))])
            .commit(round);
        let took = time_to_apply(&client, &ns, "app", &sha, &op).await;
        println!("local commit -> applied (notify): {took:?}");
        shas.push(sha);
    }
    let cm: k8s_openapi::api::core::v1::ConfigMap = Api::namespaced(client.clone(), &ns)
        .get("greeting")
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap()["GREETING"], "three");

    // `kubemint history` and `kubemint status` read the same channel.
    let cli = |args: &[&str]| {
        let run = fixture::kubemint(cluster.kubeconfig(), args, &[]);
        (run.ok, run.stdout, run.stderr)
    };
    let (ok, history, err) = cli(&["history", "app", "-n", &ns]);
    assert!(ok, "{err}");
    let rows: Vec<&str> = history.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{history}");
    for (row, sha) in rows.iter().zip(shas.iter().rev()) {
        assert!(row.contains(&sha[..12]), "{history}");
    }
    assert!(
        rows[0].contains("Active") && rows[2].contains("Superseded"),
        "{history}"
    );
    let (ok, status, err) = cli(&["status", "app", "-n", &ns]);
    assert!(ok, "{err}");
    println!("$ kubemint history app\n{history}\n$ kubemint status app\n{status}");
    assert!(
        status.contains(&format!("Applied   {} three", &shas[2][..12])),
        "{status}"
    );
    assert!(status.contains("Ready"), "{status}");
    let (ok, _, err) = cli(&["status", "nobody", "-n", &ns]);
    assert!(!ok);
    assert!(
        err.contains(&format!("reading channel {ns}/nobody")),
        "{err}"
    );
}
