//! End-to-end: `kubemint diff` refuses what the controller refuses (issue 18).
//! It runs the controller's pipeline in preview mode, as the channel's
//! ServiceAccount, with the operator's tenancy flags: a commit the controller
//! refuses is reported with the controller's reason and message, exit code 2.
//! Each test has the controller refuse the commit first, then asks the diff.

use crate::fixture;
use crate::support;

use fixture::manifests::config;
use fixture::manifests::config_map_in;
use fixture::release::workload;
use fixture::tenancy::service_account;
use fixture::{
    apply_channel, apply_channel_with, install_crd, kubemint, wait_applied, wait_refused, GitRepo,
    Operator,
};
use serde_json::json;

/// The refusal line the diff prints on stderr.
fn refusal(reason: &str) -> String {
    format!("the controller would refuse this commit ({reason}): ")
}

#[tokio::test]
async fn a_write_impersonation_forbids_is_refused_by_diff_as_by_the_controller() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("diff-imp").await;
    // Reads everything, writes Services and ReplicaSets, but no ConfigMaps.
    let rules = json!([
        {"apiGroups": ["", "apps", "batch"], "resources": ["*"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["", "apps"], "resources": ["services", "replicasets", "secrets"],
         "verbs": ["create", "patch", "update", "delete"]}
    ]);
    service_account(&client, &ns, "no-config", rules).await;
    let repo = GitRepo::new();
    repo.write(&workload("web", "nginx:1.0", "one"))
        .commit("web 1.0");
    let op = Operator::start_with(cluster.kubeconfig(), &ns, "", &[]);
    let spec = json!({"serviceAccountName": "no-config"});
    apply_channel_with(&client, &ns, "denied", &repo.url(), ".", spec).await;
    let message = wait_refused(&client, &ns, "denied", "Forbidden", &op).await;

    let diff = kubemint(cluster.kubeconfig(), &["diff", "denied", "-n", &ns], &[]);
    assert_eq!(diff.code, 2, "{}\n{}", diff.stdout, diff.stderr);
    assert!(
        diff.stderr.contains(&refusal("Forbidden")),
        "{}",
        diff.stderr
    );
    // The same verb, resource and identity as the controller's message (which
    // of the ConfigMaps is dry-run first may differ).
    for part in [
        format!("system:serviceaccount:{ns}:no-config"),
        "cannot patch resource \"configmaps\"".to_string(),
    ] {
        assert!(
            message.contains(&part),
            "controller: {part:?} not in {message:?}"
        );
        assert!(
            diff.stderr.contains(&part),
            "diff: {part:?} not in {}",
            diff.stderr
        );
    }
}

#[tokio::test]
async fn a_cross_namespace_refusal_is_reported_by_diff_as_by_the_controller() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("diff-xns").await;
    let other = cluster.namespace("diff-xns-other").await;
    let repo = GitRepo::new();
    let mut files = workload("web", "nginx:1.0", "one");
    files.push((
        "elsewhere.yaml".to_string(),
        config_map_in(&other, "x", &[]),
    ));
    repo.write(&files).commit("reaches into another namespace");
    let op = Operator::start_with(
        cluster.kubeconfig(),
        &ns,
        "",
        &["--no-cross-namespace-refs"],
    );
    apply_channel(&client, &ns, "reach", &repo.url(), ".").await;
    let message = wait_refused(&client, &ns, "reach", "CrossNamespaceRefused", &op).await;

    let args = ["diff", "reach", "-n", &ns, "--no-cross-namespace-refs"];
    let diff = kubemint(cluster.kubeconfig(), &args, &[]);
    assert_eq!(diff.code, 2, "{}\n{}", diff.stdout, diff.stderr);
    let expected = format!("{}{message}", refusal("CrossNamespaceRefused"));
    assert!(
        diff.stderr.contains(&expected),
        "expected {expected:?} in:\n{}",
        diff.stderr
    );

    // Without the operator's flag the diff has nothing to refuse: it shows the change.
    let lax = kubemint(cluster.kubeconfig(), &["diff", "reach", "-n", &ns], &[]);
    assert_eq!(lax.code, 1, "{}\n{}", lax.stdout, lax.stderr);
    assert!(
        lax.stdout.contains(&format!("ConfigMap/{other}/x")),
        "{}",
        lax.stdout
    );
}

#[tokio::test]
async fn a_commit_the_prune_guard_holds_is_shown_and_refused_by_diff_as_by_the_controller() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("diff-held").await;
    let op = Operator::start(cluster.kubeconfig(), &ns);
    let repo = GitRepo::new();
    let configs: Vec<(String, String)> = ["a", "b", "c"]
        .iter()
        .map(|n| (format!("{n}.yaml"), config(n, n)))
        .collect();
    let first = repo.write(&configs).commit("three configs");
    apply_channel(&client, &ns, "cfg", &repo.url(), ".").await;
    wait_applied(&client, &ns, "cfg", &first, &op).await;

    let held = repo.remove(&["b.yaml", "c.yaml"]).commit("drop b and c");
    let message = wait_refused(&client, &ns, "cfg", "PruneHeld", &op).await;
    assert!(message.contains(&held[..12]), "{message}");

    let diff = kubemint(cluster.kubeconfig(), &["diff", "cfg", "-n", &ns], &[]);
    assert_eq!(diff.code, 2, "{}\n{}", diff.stdout, diff.stderr);
    let expected = format!("{}{message}", refusal("PruneHeld"));
    assert!(
        diff.stderr.contains(&expected),
        "expected {expected:?} in:\n{}",
        diff.stderr
    );
    // What it would prune is still shown, with the hold.
    assert!(
        diff.stdout.contains("Held     by the prune guard"),
        "{}",
        diff.stdout
    );
    assert!(
        diff.stdout
            .contains(&format!("- ConfigMap/{ns}/b-config (pruned")),
        "{}",
        diff.stdout
    );
}

#[tokio::test]
async fn a_user_who_may_not_impersonate_the_channel_s_account_is_told_so() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("diff-noimp").await;
    service_account(&client, &ns, "deployer", fixture::tenancy::deployer_rules()).await;
    // A user who may read channels (and everything else here) but not impersonate.
    let reader_rules = json!([
        {"apiGroups": ["", "apps", "batch", "kubemint.io"], "resources": ["*"], "verbs": ["get", "list", "watch"]}
    ]);
    service_account(&client, &ns, "reader", reader_rules).await;
    let repo = GitRepo::new();
    repo.write(&workload("web", "nginx:1.0", "one"))
        .commit("web 1.0");
    let spec = json!({"serviceAccountName": "deployer"});
    apply_channel_with(&client, &ns, "web", &repo.url(), ".", spec).await;

    let dir = tempfile::tempdir().unwrap();
    let token = fixture::service_account_token(&client, &ns, "reader").await;
    let reader = fixture::kubeconfig_with_token(cluster.kubeconfig(), &token, dir.path());
    let diff = kubemint(&reader, &["diff", "web", "-n", &ns], &[]);
    assert_eq!(diff.code, 2, "{}\n{}", diff.stdout, diff.stderr);
    assert!(
        diff.stderr.contains(&format!(
            "channel {ns}/web acts as ServiceAccount {ns}/deployer, which you may not impersonate"
        )),
        "{}",
        diff.stderr
    );
    assert!(
        diff.stdout.is_empty(),
        "no guess is printed:\n{}",
        diff.stdout
    );

    // The admin may impersonate it: the diff runs as the channel.
    let admin = kubemint(cluster.kubeconfig(), &["diff", "web", "-n", &ns], &[]);
    assert_eq!(admin.code, 1, "{}\n{}", admin.stdout, admin.stderr);
}
