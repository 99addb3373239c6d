//! End-to-end: `kubemint revert` makes a rollback a git commit. The channel's
//! repository is served by lighttpd + `git http-backend` with basic auth; the
//! revert clones and pushes with the credentials in the channel's Secret, and
//! the operator then delivers the revert like any other commit.

use crate::fixture;
use crate::gitserver;
use crate::support;

use std::process::Command;

use fixture::manifests::config_map;
use fixture::revert::{new_commit, revert_app};
use fixture::{channel, install_crd, kubemint, wait_applied, Operator};
use gitserver::{GitRepo, HttpServer, HTTP_PASSWORD, HTTP_USER};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use kubemint::controller::Channel;
use serde_json::json;

async fn apply(client: &Client, ns: &str, name: &str, url: &str, reference: serde_json::Value) {
    let body = json!({"apiVersion": "kubemint.io/v1alpha1", "kind": "Channel",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"git": {"url": url, "ref": reference, "path": "deploy", "interval": "2s",
                         "secretRef": {"name": "git-creds"}}, "driftInterval": "2s"}});
    Api::<Channel>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::apply("kubemint-tests").force(),
            &Patch::Apply(&body),
        )
        .await
        .unwrap();
}

async fn active_release(client: &Client, ns: &str) -> String {
    channel(client, ns, "app")
        .await
        .status
        .and_then(|s| s.active_release)
        .expect("an active release")
}

#[tokio::test]
async fn revert_commits_and_pushes_a_rollback_that_the_operator_delivers() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("revert").await;
    let upstream = GitRepo::new();
    // Pushes to the checked-out branch update its work tree, so the test keeps committing there.
    upstream.git(&["config", "receive.denyCurrentBranch", "updateInstead"]);
    let server = HttpServer::start(upstream.root());
    let kubeconfig = cluster.kubeconfig();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "git-creds"},
        "stringData": {"username": HTTP_USER, "password": HTTP_PASSWORD}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    let first = upstream
        .write(&[(
            "deploy/cm.yaml",
            &config_map("greeting", &[("VALUE", "one")]),
        )])
        .commit("greeting one");
    apply(
        &client,
        &ns,
        "app",
        &server.url("work"),
        json!({"branch": "main"}),
    )
    .await;
    let op = Operator::start(kubeconfig, &ns);
    wait_applied(&client, &ns, "app", &first, &op).await;
    let release_one = active_release(&client, &ns).await;
    let second = upstream
        .write(&[(
            "deploy/cm.yaml",
            &config_map("greeting", &[("VALUE", "two")]),
        )])
        .commit("greeting two");
    wait_applied(&client, &ns, "app", &second, &op).await;
    let release_two = active_release(&client, &ns).await;
    assert_ne!(release_one, release_two);

    // Roll back the active release, pushed with the channel's credentials.
    let run = revert_app(kubeconfig, &ns, &["--push"], &[]);
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    println!("$ kubemint revert app --push\n{}", run.stdout);
    assert!(
        run.stdout
            .contains(&format!("Reverted release {release_two}")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("pushed to"), "{}", run.stdout);
    let revert = new_commit(&run.stdout);
    assert_eq!(upstream.git(&["rev-parse", "main"]), revert);
    assert_eq!(upstream.git(&["rev-parse", "main^"]), second);
    assert_eq!(
        upstream.git(&["show", "main:deploy/cm.yaml"]),
        config_map("greeting", &[("VALUE", "one")]).trim()
    );
    assert_eq!(
        upstream.git(&["log", "-1", "--format=%an <%ae>"]),
        "Grace Hopper <grace@example.com>"
    );
    assert!(upstream
        .git(&["log", "-1", "--format=%b"])
        .contains(&format!("This reverts commits {first}..{second}.")));
    // Delivered like any commit, and the same content is the same release.
    wait_applied(&client, &ns, "app", &revert, &op).await;
    assert_eq!(active_release(&client, &ns).await, release_one);

    // The rollback is a release like any other: reverting it brings "two" back,
    // though release one now has two records (its first commit and the revert).
    let run = revert_app(kubeconfig, &ns, &["--push"], &[]);
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains(&format!("Reverted release {release_one}")),
        "{}",
        run.stdout
    );
    let redo = new_commit(&run.stdout);
    assert_eq!(
        upstream.git(&["show", "main:deploy/cm.yaml"]),
        config_map("greeting", &[("VALUE", "two")]).trim()
    );
    wait_applied(&client, &ns, "app", &redo, &op).await;
    assert_eq!(active_release(&client, &ns).await, release_two);

    // One commit in the middle of three, touching different files: only it is undone.
    let x = upstream
        .write(&[("deploy/x.yaml", &config_map("x", &[("VALUE", "1")]))])
        .commit("add x");
    let y = upstream
        .write(&[("deploy/y.yaml", &config_map("y", &[("VALUE", "1")]))])
        .commit("add y");
    let z = upstream
        .write(&[("deploy/z.yaml", &config_map("z", &[("VALUE", "1")]))])
        .commit("add z");
    wait_applied(&client, &ns, "app", &z, &op).await;
    let run = revert_app(
        kubeconfig,
        &ns,
        &["--commit", &y, "--push", "-m", "Drop y: not needed"],
        &[],
    );
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    let drop_y = new_commit(&run.stdout);
    let files = upstream.git(&["ls-tree", "--name-only", "main", "deploy/"]);
    assert_eq!(
        files, "deploy/cm.yaml\ndeploy/x.yaml\ndeploy/z.yaml",
        "{files}"
    );
    assert_eq!(
        upstream.git(&["log", "-1", "--format=%s"]),
        "Drop y: not needed"
    );
    assert!(upstream
        .git(&["log", "-1", "--format=%b"])
        .contains(&format!("This reverts commit {y}.")));
    wait_applied(&client, &ns, "app", &drop_y, &op).await;
    let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), &ns);
    assert!(
        config_maps.get_opt("y").await.unwrap().is_none(),
        "y was not pruned"
    );
    assert!(config_maps.get_opt("x").await.unwrap().is_some());

    // Without --push: the commit stays in the clone, the remote is untouched.
    let workdir = tempfile::tempdir().unwrap();
    let clone = workdir.path().join("clone");
    let run = revert_app(
        kubeconfig,
        &ns,
        &["--commit", &x, "--workdir", clone.to_str().unwrap()],
        &[],
    );
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    let local = new_commit(&run.stdout);
    assert!(
        run.stdout.contains("not pushed") && run.stdout.contains("push origin HEAD:main"),
        "{}",
        run.stdout
    );
    assert_eq!(
        upstream.git(&["rev-parse", "main"]),
        drop_y,
        "pushed without --push"
    );
    let in_clone = Command::new("git")
        .arg("-C")
        .arg(&clone)
        .args(["rev-parse", "HEAD"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&in_clone.stdout).trim(), local);

    // A revert that conflicts with later changes: nothing is committed or pushed.
    upstream
        .write(&[(
            "deploy/cm.yaml",
            &config_map("greeting", &[("VALUE", "three")]),
        )])
        .commit("greeting three");
    let before = upstream.git(&["rev-parse", "main"]);
    let run = revert_app(kubeconfig, &ns, &["--commit", &second, "--push"], &[]);
    assert!(!run.ok);
    assert!(
        run.stderr.contains("conflicts") && run.stderr.contains("deploy/cm.yaml"),
        "{}",
        run.stderr
    );
    assert_eq!(upstream.git(&["rev-parse", "main"]), before);

    // Unknown releases list the known ones; a commit not on the branch is refused.
    let run = revert_app(kubeconfig, &ns, &["--release", "0000dead"], &[]);
    assert!(!run.ok);
    assert!(
        run.stderr.contains("no release '0000dead'") && run.stderr.contains(&release_one),
        "{}",
        run.stderr
    );
    let run = revert_app(
        kubeconfig,
        &ns,
        &["--commit", "0123456789abcdef0123456789abcdef01234567"],
        &[],
    );
    assert!(!run.ok);
    assert!(
        run.stderr.contains("is not on branch 'main'"),
        "{}",
        run.stderr
    );

    // A channel that follows a tag has no branch to commit to.
    upstream.git(&["tag", "v1.0.0"]);
    apply(
        &client,
        &ns,
        "pinned",
        &server.url("work"),
        json!({"tag": "v1.0.0"}),
    )
    .await;
    let run = kubemint(
        kubeconfig,
        &["revert", "pinned", "-n", &ns, "--commit", &x],
        &[HTTP_PASSWORD],
    );
    assert!(!run.ok);
    assert!(
        run.stderr.contains("follows tag 'v1.0.0', not a branch"),
        "{}",
        run.stderr
    );
}
