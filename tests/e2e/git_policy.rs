//! End-to-end, with real git servers on loopback and the real `kubemint run`:
//! signatures that hold from a trust anchor (`spec.git.verify.since`), a
//! rollback that a verifying channel accepts because `kubemint revert --sign`
//! signed it, and a revert in a monorepo that leaves other directories alone.

use crate::fixture;
use crate::gitserver;
use crate::support;

use std::time::Duration;

use fixture::manifests::{self, deployment};
use fixture::release::{revisions_in, workload};
use fixture::revert::{new_commit, pushable, revert_app, wait_reverted};
use fixture::{
    apply_channel_with, channel, condition, create_secret, install_crd, last_applied, wait_applied,
    Operator,
};
use gitserver::{GitDaemon, GitRepo, SshSigningKey};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::Client;
use serde_json::json;
use support::{eventually, hold_revision};

async fn greeting(client: &Client, ns: &str) -> Option<String> {
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get_opt("greeting")
        .await
        .unwrap()?;
    cm.data?.get("GREETING").cloned()
}

/// Waits until the channel is Stalled by a signature check that names `commit`; returns the message.
async fn wait_refused(
    client: &Client,
    ns: &str,
    name: &str,
    commit: &str,
    op: &Operator,
) -> String {
    eventually(
        Duration::from_secs(60),
        "stalled by signature verification",
        || async {
            let ch = channel(client, ns, name).await;
            match condition(&ch, "Stalled") {
                Some((status, reason, message))
                    if status == "True"
                        && reason == "SignatureVerificationFailed"
                        && message.contains(commit) =>
                {
                    Ok(message)
                }
                other => Err(format!("{other:?}\n{}", op.log_text())),
            }
        },
    )
    .await
}

/// Commits in `upstream` are signed with `signer` from now on (`gpg.format ssh`).
fn sign_commits(upstream: &GitRepo, signer: &SshSigningKey) {
    upstream.git(&["config", "gpg.format", "ssh"]);
    upstream.git(&[
        "config",
        "user.signingkey",
        &signer.key_path().display().to_string(),
    ]);
    upstream.git(&["config", "commit.gpgsign", "true"]);
}

#[tokio::test]
async fn all_commits_from_a_trust_anchor_then_an_unsigned_commit_is_refused() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("anchor").await;
    let signer = SshSigningKey::generate();
    let upstream = GitRepo::new();
    // The history from before the team signed its commits...
    let first = upstream
        .write(&[("deploy/cm.yaml", &manifests::greeting("one"))])
        .commit("one, unsigned");
    let anchor = upstream
        .write(&[("deploy/cm.yaml", &manifests::greeting("two"))])
        .commit("two, unsigned");
    // ...and from the day it did.
    sign_commits(&upstream, &signer);
    upstream
        .write(&[("deploy/cm.yaml", &manifests::greeting("three"))])
        .commit("three, signed");
    let four = upstream
        .write(&[("deploy/cm.yaml", &manifests::greeting("four"))])
        .commit("four, signed");
    let daemon = GitDaemon::start(upstream.root());
    let url = daemon.url("work");
    create_secret(
        &client,
        &ns,
        "signers",
        json!({"allowed_signers": signer.allowed_signers("ada@example.com")}),
    )
    .await;
    let op = Operator::start(cluster.kubeconfig(), &ns);

    // Without an anchor a first delivery needs the whole history signed.
    let verify = |since: Option<&str>| {
        let mut v = json!({"mode": "AllCommits", "secretRef": {"name": "signers"}});
        if let Some(s) = since {
            v["since"] = json!(s);
        }
        json!({"git": {"verify": v}})
    };
    apply_channel_with(&client, &ns, "app", &url, "deploy", verify(None)).await;
    let message = wait_refused(&client, &ns, "app", &first, &op).await;
    assert!(message.contains("not signed"), "{message}");
    assert_eq!(
        greeting(&client, &ns).await,
        None,
        "delivered unverified history"
    );

    // From the anchor on, every commit is signed: delivered.
    apply_channel_with(&client, &ns, "app", &url, "deploy", verify(Some(&anchor))).await;
    wait_applied(&client, &ns, "app", &four, &op).await;
    assert_eq!(greeting(&client, &ns).await.as_deref(), Some("four"));

    // An unsigned commit pushed after it is refused; the release stays.
    upstream.git(&["config", "commit.gpgsign", "false"]);
    let five = upstream
        .write(&[("deploy/cm.yaml", &manifests::greeting("five"))])
        .commit("five, unsigned");
    let message = wait_refused(&client, &ns, "app", &five, &op).await;
    assert!(message.contains("not signed"), "{message}");
    let ch = channel(&client, &ns, "app").await;
    assert_eq!(last_applied(&ch), Some(four.as_str()));
    assert_eq!(greeting(&client, &ns).await.as_deref(), Some("four"));
}

#[tokio::test]
async fn a_signed_revert_is_accepted_where_an_unsigned_one_is_refused() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("signrevert").await;
    let kubeconfig = cluster.kubeconfig();
    let (upstream, server) = pushable(&client, &ns).await;
    let signer = SshSigningKey::generate();
    let anchor = upstream
        .write(&[("README.md", "deploy/ holds the manifests\n")])
        .commit("start");
    sign_commits(&upstream, &signer);
    upstream
        .write(&[("deploy/cm.yaml", &manifests::greeting("one"))])
        .commit("one");
    let two = upstream
        .write(&[("deploy/cm.yaml", &manifests::greeting("two"))])
        .commit("two");
    create_secret(
        &client,
        &ns,
        "signers",
        json!({"allowed_signers": signer.allowed_signers("grace@example.com")}),
    )
    .await;
    let git = json!({"git": {"secretRef": {"name": "git-creds"},
        "verify": {"mode": "AllCommits", "since": anchor, "secretRef": {"name": "signers"}}}});
    apply_channel_with(&client, &ns, "app", &server.url("work"), "deploy", git).await;
    let op = Operator::start(kubeconfig, &ns);
    wait_applied(&client, &ns, "app", &two, &op).await;
    let private_key = std::fs::read_to_string(signer.key_path()).unwrap();
    let key_line = private_key.lines().nth(1).unwrap().to_string();

    // Without --sign, the channel's own rollback is refused like any unsigned commit.
    let run = revert_app(kubeconfig, &ns, &["--push"], &[]);
    assert!(run.ok, "{}", run.stderr);
    let unsigned = new_commit(&run.stdout);
    let message = wait_refused(&client, &ns, "app", &unsigned, &op).await;
    assert!(message.contains("not signed"), "{message}");
    assert_eq!(greeting(&client, &ns).await.as_deref(), Some("two"));
    // Take it back (as a maintainer would), and sign the rollback.
    upstream.git(&["reset", "-q", "--hard", &two]);

    let key = signer.key_path().display().to_string();
    let run = revert_app(
        kubeconfig,
        &ns,
        &[
            "--push",
            "--sign",
            "--signing-format",
            "ssh",
            "--signing-key",
            &key,
        ],
        &[&key_line],
    );
    assert!(run.ok, "{}", run.stderr);
    let signed = new_commit(&run.stdout);
    assert_eq!(upstream.git(&["rev-parse", "main"]), signed);
    assert_eq!(upstream.git(&["rev-parse", "main^"]), two);
    // Real git agrees the signature is good.
    let allowed = upstream.root().join("allowed_signers");
    std::fs::write(&allowed, signer.allowed_signers("grace@example.com")).unwrap();
    upstream.git(&[
        "config",
        "gpg.ssh.allowedSignersFile",
        &allowed.display().to_string(),
    ]);
    upstream.git(&["verify-commit", &signed]);
    wait_applied(&client, &ns, "app", &signed, &op).await;
    assert_eq!(greeting(&client, &ns).await.as_deref(), Some("one"));
    assert!(
        !op.log_text().contains(&key_line),
        "the key reached the log"
    );

    // A key that cannot sign: nothing is committed or pushed, the message names the key file.
    let run = revert_app(
        kubeconfig,
        &ns,
        &[
            "--push",
            "--signing-format",
            "ssh",
            "--signing-key",
            "/nonexistent/key",
        ],
        &[],
    );
    assert!(!run.ok);
    assert!(
        run.stderr.contains("signing the revert commit") && run.stderr.contains("/nonexistent/key"),
        "{}",
        run.stderr
    );
    assert_eq!(upstream.git(&["rev-parse", "main"]), signed);
}

#[tokio::test]
async fn revert_in_a_monorepo_leaves_other_paths_alone() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("monorevert").await;
    let kubeconfig = cluster.kubeconfig();
    let (upstream, server) = pushable(&client, &ns).await;
    let files = |cm: &str, team: &str| {
        vec![
            ("deploy/cm.yaml".to_string(), manifests::greeting(cm)),
            ("billing/app.yaml".to_string(), format!("team: {team}\n")),
        ]
    };
    upstream.write(&files("one", "1")).commit("one; billing 1");
    // One commit changes this channel's directory and another team's.
    let two = upstream.write(&files("two", "2")).commit("two; billing 2");
    apply_channel_with(
        &client,
        &ns,
        "app",
        &server.url("work"),
        "./deploy/",
        json!({"git": {"secretRef": {"name": "git-creds"}}}),
    )
    .await;
    let op = Operator::start(kubeconfig, &ns);
    wait_applied(&client, &ns, "app", &two, &op).await;

    let run = revert_app(kubeconfig, &ns, &["--push"], &[]);
    assert!(run.ok, "{}", run.stderr);
    let revert = new_commit(&run.stdout);
    assert_eq!(
        upstream.git(&["show", "main:deploy/cm.yaml"]),
        manifests::greeting("one").trim()
    );
    assert_eq!(upstream.git(&["show", "main:billing/app.yaml"]), "team: 2");
    let body = upstream.git(&["log", "-1", "--format=%b"]);
    assert!(
        body.contains("Only changes under deploy/ are reverted"),
        "{body}"
    );
    wait_applied(&client, &ns, "app", &revert, &op).await;
    assert_eq!(greeting(&client, &ns).await.as_deref(), Some("one"));

    // Within the path there is nothing left to undo of that commit...
    let run = revert_app(kubeconfig, &ns, &["--commit", &two], &[]);
    assert!(!run.ok);
    assert!(run.stderr.contains("changes nothing"), "{}", run.stderr);
    // ...but --all-paths reverts it everywhere.
    let workdir = tempfile::tempdir().unwrap();
    let clone = workdir.path().join("clone");
    let run = revert_app(
        kubeconfig,
        &ns,
        &[
            "--commit",
            &two,
            "--all-paths",
            "--workdir",
            clone.to_str().unwrap(),
        ],
        &[],
    );
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(clone.join("billing/app.yaml")).unwrap(),
        "team: 1\n"
    );
    assert_eq!(upstream.git(&["show", "main:billing/app.yaml"]), "team: 2");
}

#[tokio::test]
async fn an_automatic_revert_is_signed_so_the_verifying_channel_delivers_it() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("autosign").await;
    let (upstream, server) = pushable(&client, &ns).await;
    let (team, bot) = (SshSigningKey::generate(), SshSigningKey::generate());
    sign_commits(&upstream, &team);
    let good = upstream
        .write(&workload("web", "web:1.0", "one"))
        .commit("web 1.0");
    let allowed = format!(
        "{}{}",
        team.allowed_signers("ada@example.com"),
        bot.allowed_signers("kubemint@localhost")
    );
    create_secret(&client, &ns, "signers", json!({"allowed_signers": allowed})).await;
    let private_key = std::fs::read_to_string(bot.key_path()).unwrap();
    let key_line = private_key.lines().nth(1).unwrap().to_string();
    create_secret(
        &client,
        &ns,
        "revert-key",
        json!({"signing_key": private_key}),
    )
    .await;
    let spec = json!({
        "git": {"secretRef": {"name": "git-creds"},
                "verify": {"mode": "HEAD", "secretRef": {"name": "signers"}}},
        "rollout": {"readyTimeout": "5s", "drainSeconds": 0, "onFailure": "revert",
                    "revertSigning": {"secretRef": {"name": "revert-key"}}}
    });
    apply_channel_with(&client, &ns, "app", &server.url("work"), ".", spec).await;
    let op = Operator::start(cluster.kubeconfig(), &ns);
    wait_applied(&client, &ns, "app", &good, &op).await;

    // A release whose pods never get ready fails, and kubemint pushes its revert, signed.
    std::fs::write(
        upstream.path().join("web/deployment.yaml"),
        deployment("web", "web:1.1-broken", 2),
    )
    .unwrap();
    hold_revision(&ns, &revisions_in(upstream.path())["web"]).await;
    let bad = upstream.commit("web 1.1");
    let revert = wait_reverted(&upstream, &bad, &op).await;
    assert_eq!(upstream.git(&["rev-parse", "main^"]), bad);
    let file = upstream.root().join("allowed_signers");
    std::fs::write(&file, &allowed).unwrap();
    upstream.git(&[
        "config",
        "gpg.ssh.allowedSignersFile",
        &file.display().to_string(),
    ]);
    upstream.git(&["verify-commit", &revert]); // real git agrees

    // The channel verifies it like any commit, and delivers it: web 1.0 again.
    wait_applied(&client, &ns, "app", &revert, &op).await;
    let auto = channel(&client, &ns, "app")
        .await
        .status
        .unwrap()
        .auto_revert
        .unwrap();
    assert_eq!(auto.outcome.to_string(), "Pushed", "{auto:?}");
    assert!(
        !op.log_text().contains(&key_line),
        "the key reached the log"
    );
}
