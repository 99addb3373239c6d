//! End-to-end: the audit trail in git. Channels with `spec.audit.gitNotes`
//! add a note under `refs/notes/kubemint/<cluster>` to the commit of every
//! release that is promoted, fails or is superseded, pushed with the channel's
//! own credentials to real servers on loopback (HTTPS `git http-backend` with
//! basic auth, sshd; a read-only `git daemon` for refused pushes);
//! `history --from-git` reads them back without a cluster.
//! With `spec.rollout.onFailure: revert` a failed release is reverted in git
//! and the revert delivered like any commit, under a loop guard.
//!
//! Every check reads what the servers hold (`git notes show`, `git log`), not
//! what the operator says it did.

use crate::fixture;
use crate::gitserver;
use crate::support;

use std::time::Duration;

use fixture::manifests::{config_map, deployment};
use fixture::release::{revisions_in, workload};
use fixture::revert::wait_reverted;
use fixture::{
    apply_channel_with, channel, channel_events, install_crd, kubemint, request, wait_applied,
    Operator,
};
use gitserver::{GitDaemon, GitRepo, HttpServer, SshServer, HTTP_PASSWORD, HTTP_USER};
use kube::Client;
use kubemint::controller::crd::ReleasePhase;
use kubemint::controller::Channel;
use serde_json::json;
use support::{hold_revision, wait_for};

async fn create_secret(client: &Client, ns: &str, data: serde_json::Value) {
    fixture::create_secret(client, ns, "git-creds", data).await
}

/// The note of `sha` under `refs/notes/kubemint/<cluster>` in the server's repository, once it has `want` entries.
async fn wait_note(upstream: &GitRepo, cluster: &str, sha: &str, want: usize) -> String {
    let reference = format!("--ref=kubemint/{cluster}");
    let mut last = String::new();
    for _ in 0..300 {
        if let Some(note) = upstream.git_opt(&["notes", &reference, "show", sha]) {
            if note.matches("event: ").count() >= want {
                return note;
            }
            last = note;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "no note with {want} entries on {sha} under kubemint/{cluster} within 30 s; last:\n{last}"
    );
}

async fn wait_failed(client: &Client, ns: &str, name: &str, sha: &str) -> Channel {
    wait_for(Duration::from_secs(60), || async {
        let ch = channel(client, ns, name).await;
        let r = ch.status.as_ref()?.releases.first()?.clone();
        (r.phase == ReleasePhase::Failed && r.commit.sha == sha).then_some(ch)
    })
    .await
}

/// Sets annotation `name` of channel `channel` to a new value (a sync or retry request).
fn web(image: &str) -> Vec<(String, String)> {
    workload("web", image, "a")
}

#[tokio::test]
async fn notes_are_pushed_on_promotion_failure_and_supersede_and_read_back_from_git() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("notes").await;
    let upstream = GitRepo::new();
    upstream.allow_push();
    let (server, ca) = HttpServer::start_tls(upstream.root());
    create_secret(
        &client,
        &ns,
        json!({"username": HTTP_USER, "password": HTTP_PASSWORD, "ca.crt": ca}),
    )
    .await;
    let sha1 = upstream.write(&web("web:1.0")).commit("web 1.0");
    let h1 = revisions_in(upstream.path())["web"].clone();
    apply_channel_with(
        &client,
        &ns,
        "app",
        &server.https_url("work"),
        ".",
        json!({"git": {"secretRef": {"name": "git-creds"}},
               "audit": {"gitNotes": true},
               "rollout": {"readyTimeout": "5s", "drainSeconds": 0}}),
    )
    .await;
    let op = Operator::start_with(cluster.kubeconfig(), &ns, "", &["--cluster-name", "prod"]);
    wait_applied(&client, &ns, "app", &sha1, &op).await;
    let release1 = channel(&client, &ns, "app")
        .await
        .status
        .unwrap()
        .active_release
        .unwrap();

    // Promotion: the note names cluster, channel, release, phase, times, revision and image.
    let note = wait_note(&upstream, "prod", &sha1, 1).await;
    println!("$ git notes --ref=kubemint/prod show {sha1}\n{note}");
    for want in [
        "cluster: prod".to_string(),
        format!("channel: {ns}/app"),
        format!("release: {release1}"),
        "event: Promoted".into(),
        "phase: Active".into(),
        "applied: ".into(),
        "promoted: ".into(),
        format!("revision: {h1}"),
        "- web:1.0".into(),
        "operator: kubemint ".into(),
    ] {
        assert!(note.contains(&want), "{want:?} missing from\n{note}");
    }
    assert!(!note.contains(HTTP_PASSWORD));
    let log = upstream.git(&["log", "--notes=kubemint/prod", "--format=%H%n%N", "-1"]);
    assert!(log.contains("event: Promoted"), "{log}");

    // Failure: a revision that never gets ready.
    std::fs::write(
        upstream.path().join("web/deployment.yaml"),
        deployment("web", "web:1.1-broken", 2),
    )
    .unwrap();
    let h2 = revisions_in(upstream.path())["web"].clone();
    hold_revision(&ns, &h2).await;
    let sha2 = upstream.commit("web 1.1 (broken)");
    wait_failed(&client, &ns, "app", &sha2).await;
    let note = wait_note(&upstream, "prod", &sha2, 1).await;
    println!("$ git notes --ref=kubemint/prod show {sha2}\n{note}");
    for want in [
        "event: Failed",
        "phase: Failed",
        "failed: ",
        "web has 0/2 pods ready",
        "- web:1.1-broken",
    ] {
        assert!(note.contains(want), "{want:?} missing from\n{note}");
    }
    assert_eq!(note.matches("event: ").count(), 1);

    // A good release: promoted, and release 1 superseded (appended to its note).
    let sha3 = upstream.write(&web("web:1.2")).commit("web 1.2");
    wait_applied(&client, &ns, "app", &sha3, &op).await;
    let note = wait_note(&upstream, "prod", &sha3, 1).await;
    assert!(
        note.contains("event: Promoted") && note.contains("- web:1.2"),
        "{note}"
    );
    let note1 = wait_note(&upstream, "prod", &sha1, 2).await;
    println!("$ git notes --ref=kubemint/prod show {sha1}\n{note1}");
    assert!(
        note1.find("event: Promoted") < note1.find("event: Superseded"),
        "entries are appended, not replaced:\n{note1}"
    );
    assert!(
        note1.contains("superseded: ") && note1.contains("drained: "),
        "{note1}"
    );

    // Read back without a cluster: from the repository's path and over HTTPS.
    let run = kubemint(
        std::path::Path::new("/nonexistent"),
        &["history", "--from-git", upstream.path().to_str().unwrap()],
        &[],
    );
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    println!("$ kubemint history --from-git <path>\n{}", run.stdout);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "header and four entries:\n{}", run.stdout);
    assert!(lines[0].contains("CLUSTER") && lines[0].contains("EVENT"));
    let short = |s: &str| s[..12].to_string();
    for (sha, event) in [
        (&sha1, "Promoted"),
        (&sha2, "Failed"),
        (&sha3, "Promoted"),
        (&sha1, "Superseded"),
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&short(sha)) && l.contains(event) && l.contains("prod")),
            "{event} of {sha} missing:\n{}",
            run.stdout
        );
    }
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), &ca).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubemint"))
        .args([
            "history",
            "--from-git",
            &server.https_url("work"),
            "--cluster",
            "prod",
        ])
        .env("KUBEMINT_GIT_USERNAME", HTTP_USER)
        .env("KUBEMINT_GIT_PASSWORD", HTTP_PASSWORD)
        .env("KUBEMINT_GIT_CA_FILE", ca_file.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 5, "{stdout}");
    assert!(!stdout.contains(HTTP_PASSWORD));
    let log = op.log_text();
    assert!(
        !log.contains(HTTP_PASSWORD),
        "the password leaked into the log"
    );
}

#[tokio::test]
async fn two_operators_with_different_cluster_names_share_one_repository_over_ssh() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let upstream = GitRepo::new();
    upstream.allow_push();
    let server = SshServer::start();
    let url = server.url(upstream.path());
    let cm = |name: &str| config_map(name, &[("V", "1")]);
    let sha1 = upstream
        .write(&[("a/cm.yaml", cm("a")), ("b/cm.yaml", cm("b"))])
        .commit("config a and b");
    // Operators east and west, plus a second operator named east (another
    // process writing to the same ref: a real race on the server).
    let mut operators = Vec::new();
    let mut namespaces = Vec::new();
    for name in ["east", "west", "east"] {
        let ns = cluster.namespace(name).await;
        create_secret(
            &client,
            &ns,
            json!({"identity": server.identity, "known_hosts": server.known_hosts}),
        )
        .await;
        // Two channels per operator on the same commit: their notes race for one ref.
        for path in ["a", "b"] {
            apply_channel_with(
                &client,
                &ns,
                path,
                &url,
                path,
                json!({"git": {"secretRef": {"name": "git-creds"}},
                       "audit": {"gitNotes": true}}),
            )
            .await;
        }
        operators.push(Operator::start_with_env(
            cluster.kubeconfig(),
            &ns,
            name,
            &[],
            &[("KUBEMINT_CLUSTER_NAME", name)],
        ));
        namespaces.push(ns);
    }
    for (ns, op) in namespaces.iter().zip(&operators) {
        for c in ["a", "b"] {
            wait_applied(&client, ns, c, &sha1, op).await;
        }
    }
    // Every pass after the promotion writes nothing more: exactly two entries per ref.
    tokio::time::sleep(Duration::from_secs(5)).await;
    for (name, want) in [("east", 4), ("west", 2)] {
        let note = wait_note(&upstream, name, &sha1, want).await;
        println!("$ git notes --ref=kubemint/{name} show {sha1}\n{note}");
        for (ns, cluster_name) in namespaces.iter().zip(["east", "west", "east"]) {
            if cluster_name == name {
                for c in ["a", "b"] {
                    assert!(
                        note.contains(&format!("channel: {ns}/{c}\n")),
                        "the entry of {ns}/{c} was lost:\n{note}"
                    );
                }
            }
        }
        assert_eq!(
            note.matches(&format!("cluster: {name}\n")).count(),
            want,
            "{note}"
        );
        assert_eq!(note.matches("event: Promoted").count(), want, "{note}");
    }
    let refs = upstream.git(&["for-each-ref", "--format=%(refname)", "refs/notes/"]);
    assert_eq!(refs, "refs/notes/kubemint/east\nrefs/notes/kubemint/west");
    let run = kubemint(
        std::path::Path::new("/nonexistent"),
        &["history", "--from-git", upstream.path().to_str().unwrap()],
        &[],
    );
    assert!(run.ok, "{}", run.stderr);
    println!("$ kubemint history --from-git <path>\n{}", run.stdout);
    assert_eq!(run.stdout.lines().count(), 7, "{}", run.stdout);
    for op in &operators {
        assert!(!op.log_text().contains("BEGIN OPENSSH PRIVATE KEY"));
    }
}

#[tokio::test]
async fn a_failed_release_is_reverted_in_git_then_delivered_and_never_twice() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("autorevert").await;
    let upstream = GitRepo::new();
    upstream.allow_push();
    let (server, ca) = HttpServer::start_tls(upstream.root());
    create_secret(
        &client,
        &ns,
        json!({"username": HTTP_USER, "password": HTTP_PASSWORD, "ca.crt": ca}),
    )
    .await;
    let sha1 = upstream.write(&web("web:3.0")).commit("web 3.0");
    apply_channel_with(
        &client,
        &ns,
        "app",
        &server.https_url("work"),
        ".",
        json!({"git": {"secretRef": {"name": "git-creds"}},
               "audit": {"gitNotes": true},
               "rollout": {"readyTimeout": "5s", "drainSeconds": 0, "onFailure": "revert"}}),
    )
    .await;
    let op = Operator::start_with(cluster.kubeconfig(), &ns, "", &["--cluster-name", "prod"]);
    wait_applied(&client, &ns, "app", &sha1, &op).await;
    let release1 = channel(&client, &ns, "app")
        .await
        .status
        .unwrap()
        .active_release
        .unwrap();

    std::fs::write(
        upstream.path().join("web/deployment.yaml"),
        deployment("web", "web:3.1-broken", 2),
    )
    .unwrap();
    let h2 = revisions_in(upstream.path())["web"].clone();
    hold_revision(&ns, &h2).await;
    let sha2 = upstream.commit("web 3.1");
    let ch = wait_failed(&client, &ns, "app", &sha2).await;
    let release2 = ch.status.as_ref().unwrap().releases[0].id.clone();

    // The revert is on the branch, with a message naming release, workload, counts.
    let revert = wait_reverted(&upstream, &sha2, &op).await;
    assert_eq!(upstream.git(&["rev-parse", "main^"]), sha2);
    let message = upstream.git(&["log", "-1", "--format=%B", "main"]);
    println!("$ git log -1 main\n{message}");
    assert!(
        message.starts_with(&format!(
            "Revert failed release {release2} (commit {}): web 0/2 ready after 5s",
            &sha2[..12]
        )),
        "{message}"
    );
    assert!(
        message.contains(&format!("This reverts commits {sha1}..{sha2}.")),
        "{message}"
    );
    assert!(
        message.contains(&format!("Kubemint-Reverts-Release: {release2}")),
        "{message}"
    );
    assert_eq!(
        upstream.git(&["show", "main:web/deployment.yaml"]),
        deployment("web", "web:3.0", 2).trim()
    );
    assert_eq!(
        upstream.git(&["log", "-1", "--format=%an", "main"]),
        "kubemint"
    );
    let auto = channel(&client, &ns, "app")
        .await
        .status
        .unwrap()
        .auto_revert
        .unwrap();
    assert_eq!(
        (
            auto.outcome.to_string().as_str(),
            auto.revert_commit.as_deref()
        ),
        ("Pushed", Some(revert.as_str()))
    );
    let events = channel_events(&client, &ns, "app").await;
    assert!(
        events
            .iter()
            .any(|(_, r, m)| r == "AutoReverted" && m.contains(&release2)),
        "{events:?}"
    );
    // The failure note links the revert.
    let note = wait_note(&upstream, "prod", &sha2, 1).await;
    assert!(note.contains(&format!("revertCommit: {revert}")), "{note}");

    // The next poll delivers the revert: the same content is release 1 again.
    wait_applied(&client, &ns, "app", &revert, &op).await;
    let status = channel(&client, &ns, "app").await.status.unwrap();
    assert_eq!(status.active_release.as_deref(), Some(release1.as_str()));

    // The same release landing again is held by the engine (it failed before) and
    // not reverted again.
    let sha3 = upstream
        .write(&[(
            "web/deployment.yaml",
            deployment("web", "web:3.1-broken", 2),
        )])
        .commit("web 3.1 again");
    wait_failed(&client, &ns, "app", &sha3).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(upstream.git(&["rev-parse", "main"]), sha3, "reverted twice");
    // Loop guard 1: retried on request it fails again, now; git says it was reverted already.
    request(&client, &ns, "app", "kubemint.io/retry").await;
    let auto = wait_for(Duration::from_secs(40), || async {
        let a = channel(&client, &ns, "app").await.status?.auto_revert?;
        (a.commit == sha3).then_some(a)
    })
    .await;
    assert_eq!(auto.outcome.to_string(), "Skipped", "{auto:?}");
    assert!(
        auto.message.contains("AlreadyReverted") && auto.message.contains(&revert),
        "{auto:?}"
    );
    assert_eq!(upstream.git(&["rev-parse", "main"]), sha3, "reverted twice");
    let reverted = channel_events(&client, &ns, "app")
        .await
        .into_iter()
        .filter(|(_, r, _)| r == "AutoReverted")
        .count();
    assert_eq!(reverted, 1);

    // Loop guard 2: a failing commit that is itself a kubemint revert is never reverted.
    std::fs::write(
        upstream.path().join("web/deployment.yaml"),
        deployment("web", "web:3.2-broken", 2),
    )
    .unwrap();
    hold_revision(&ns, &revisions_in(upstream.path())["web"]).await;
    let sha4 = upstream.commit("Revert something\n\nKubemint-Reverts-Release: 0123456789ab");
    wait_failed(&client, &ns, "app", &sha4).await;
    let auto = wait_for(Duration::from_secs(20), || async {
        let a = channel(&client, &ns, "app").await.status?.auto_revert?;
        (a.commit == sha4).then_some(a)
    })
    .await;
    assert_eq!(auto.outcome.to_string(), "Skipped", "{auto:?}");
    assert!(auto.message.contains("RevertOfRevert"), "{auto:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(upstream.git(&["rev-parse", "main"]), sha4);
}

#[tokio::test]
async fn a_revert_that_conflicts_with_a_moved_branch_pushes_nothing() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("revertconflict").await;
    let upstream = GitRepo::new();
    upstream.allow_push();
    let server = SshServer::start();
    let url = server.url(upstream.path());
    create_secret(
        &client,
        &ns,
        json!({"identity": server.identity, "known_hosts": server.known_hosts}),
    )
    .await;
    let sha1 = upstream.write(&web("web:4.0")).commit("web 4.0");
    // A long interval: the channel sees only what the test asks it to fetch.
    let spec = json!({"git": {"secretRef": {"name": "git-creds"}, "interval": "1h"},
                      "rollout": {"readyTimeout": "5s", "onFailure": "revert"}});
    apply_channel_with(&client, &ns, "app", &url, ".", spec.clone()).await;
    let op = Operator::start(cluster.kubeconfig(), &ns);
    wait_applied(&client, &ns, "app", &sha1, &op).await;

    std::fs::write(
        upstream.path().join("web/deployment.yaml"),
        deployment("web", "web:4.1-broken", 2),
    )
    .unwrap();
    hold_revision(&ns, &revisions_in(upstream.path())["web"]).await;
    let sha2 = upstream.commit("web 4.1");
    // Ask for a sync (a spec change fetches at once), wait until it is trying sha2.
    let mut spec = spec;
    spec["driftInterval"] = json!("3s");
    apply_channel_with(&client, &ns, "app", &url, ".", spec).await;
    wait_for(Duration::from_secs(30), || async {
        let s = channel(&client, &ns, "app").await.status?;
        (s.last_attempted_commit?.sha == sha2).then_some(())
    })
    .await;
    // Meanwhile the branch moves on the same line.
    let sha3 = upstream
        .write(&[("web/deployment.yaml", deployment("web", "web:4.2", 2))])
        .commit("web 4.2");
    let ch = wait_failed(&client, &ns, "app", &sha2).await;
    let _ = ch;
    let auto = wait_for(Duration::from_secs(20), || async {
        channel(&client, &ns, "app").await.status?.auto_revert
    })
    .await;
    println!("autoRevert: {auto:?}");
    assert_eq!(auto.outcome.to_string(), "Conflict", "{auto:?}");
    assert!(auto.message.contains("web/deployment.yaml"), "{auto:?}");
    assert_eq!(auto.revert_commit, None);
    assert_eq!(
        upstream.git(&["rev-parse", "main"]),
        sha3,
        "the branch was touched"
    );
    let events = channel_events(&client, &ns, "app").await;
    assert!(
        events
            .iter()
            .any(|(t, r, m)| t == "Warning" && r == "AutoRevertFailed" && m.contains("conflicts")),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_note_that_cannot_be_pushed_is_a_warning_and_a_metric_not_a_failed_delivery() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("notesfail").await;
    let upstream = GitRepo::new();
    // git daemon serves fetches only: every push is refused.
    let daemon = GitDaemon::start(upstream.root());
    let sha1 = upstream.write(&web("web:5.0")).commit("web 5.0");
    apply_channel_with(
        &client,
        &ns,
        "app",
        &daemon.url("work"),
        ".",
        json!({"audit": {"gitNotes": true}}),
    )
    .await;
    let op = Operator::start(cluster.kubeconfig(), &ns);
    wait_applied(&client, &ns, "app", &sha1, &op).await;
    let events = wait_for(Duration::from_secs(40), || async {
        let events = channel_events(&client, &ns, "app").await;
        events
            .iter()
            .any(|(_, r, _)| r == "NotesPushFailed")
            .then_some(events)
    })
    .await;
    let (type_, _, message) = events
        .iter()
        .find(|(_, r, _)| r == "NotesPushFailed")
        .unwrap();
    println!("NotesPushFailed: {message}");
    assert_eq!(type_, "Warning");
    assert!(
        message.contains("refs/notes/kubemint/default")
            && message.contains("refused the notes push")
            && message.contains("(attempt 1)"),
        "{message}"
    );
    // The delivery is untouched: still Ready on the commit.
    let ch = channel(&client, &ns, "app").await;
    assert_eq!(fixture::condition(&ch, "Ready").unwrap().0, "True");
    assert!(upstream
        .git_opt(&["notes", "--ref=kubemint/default", "show", &sha1])
        .is_none());
    let metrics = op.metrics().await;
    assert!(
        metrics.contains("kubemint_git_notes_total{outcome=\"NotesPushRejected\"} 1"),
        "{metrics}"
    );
}
