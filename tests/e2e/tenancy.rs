//! Many teams, one cluster (issue 13): a channel acts as the ServiceAccount it
//! names (impersonation), `--default-service-account` makes that mandatory,
//! and `--no-cross-namespace-refs` keeps a channel inside its own namespace.
//! The operator in these tests runs with the admin's kubeconfig: whatever a
//! channel is refused, it was refused as its ServiceAccount, not as kubemint.

use crate::fixture;
use crate::support;

use fixture::manifests::config_map_in;
use fixture::release::workload;
use fixture::tenancy::{deployer_rules, service_account};
use fixture::{apply_channel_with, condition, install_crd, wait_refused, GitRepo, Operator};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, ListParams};
use kube::Client;
use serde_json::{json, Value};

/// Reads everything, writes Services and ReplicaSets, but may not write ConfigMaps.
fn no_configmap_rules() -> Value {
    json!([
        {"apiGroups": ["", "apps", "batch"], "resources": ["*"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["", "apps"], "resources": ["services", "replicasets", "secrets"],
         "verbs": ["create", "patch", "update", "delete"]}
    ])
}

/// A namespace, a repository with workload `web`, and an operator with `flags`.
async fn tenant(prefix: &str, flags: &[&str]) -> (Client, String, GitRepo, String, Operator) {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace(prefix).await;
    let repo = GitRepo::new();
    let sha = repo
        .write(&workload("web", "nginx:1.0", "one"))
        .commit("web 1.0");
    let op = Operator::start_with(cluster.kubeconfig(), &ns, "", flags);
    (client, ns, repo, sha, op)
}

async fn nothing_applied(client: &Client, ns: &str) {
    let rs: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let svc: Api<Service> = Api::namespaced(client.clone(), ns);
    let ours = ListParams::default().labels("app.kubernetes.io/managed-by=kubemint");
    assert!(rs.list(&ours).await.unwrap().items.is_empty());
    assert!(cms.list(&ours).await.unwrap().items.is_empty());
    assert!(svc.list(&ours).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn a_channel_delivers_as_its_service_account_and_a_denied_write_rejects_the_commit() {
    let (client, ns, repo, sha, op) = tenant("imp", &[]).await;
    service_account(&client, &ns, "deployer", deployer_rules()).await;

    // Allowed: everything the commit declares is delivered as `deployer`.
    let spec = json!({"serviceAccountName": "deployer"});
    apply_channel_with(&client, &ns, "allowed", &repo.url(), ".", spec).await;
    fixture::wait_applied(&client, &ns, "allowed", &sha, &op).await;
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let web = services.get("web").await.expect("Service web delivered");
    assert!(web
        .spec
        .and_then(|s| s.selector)
        .is_some_and(|s| s.contains_key("kubemint.io/revision")));

    // Denied: the ServiceAccount may not write ConfigMaps. The dry run catches
    // it, nothing of the commit is applied, and the status names the verb, the
    // resource and the ServiceAccount.
    let ns2 = support::cluster().namespace("imp-denied").await;
    service_account(&client, &ns2, "no-config", no_configmap_rules()).await;
    let op2 = Operator::start_with(support::cluster().kubeconfig(), &ns2, "", &[]);
    let spec = json!({"serviceAccountName": "no-config"});
    apply_channel_with(&client, &ns2, "denied", &repo.url(), ".", spec).await;
    let message = wait_refused(&client, &ns2, "denied", "Forbidden", &op2).await;
    for part in [
        &format!("system:serviceaccount:{ns2}:no-config"),
        "cannot patch resource \"configmaps\"",
    ] {
        assert!(message.contains(part), "{part:?} not in {message:?}");
    }
    nothing_applied(&client, &ns2).await;
    let ch = fixture::channel(&client, &ns2, "denied").await;
    let stalled = condition(&ch, "Stalled").expect("a Stalled condition");
    assert_eq!(stalled.0, "True", "{stalled:?}");
}

#[tokio::test]
async fn the_default_service_account_makes_impersonation_mandatory() {
    let (client, ns, repo, sha, op) = tenant(
        "imp-default",
        &["--default-service-account", "kubemint-deployer"],
    )
    .await;
    // No such account has any permission yet: the channel, which names none,
    // is not delivered as the operator (which could), but refused as the default.
    apply_channel_with(&client, &ns, "web", &repo.url(), ".", json!({})).await;
    let message = wait_refused(&client, &ns, "web", "Forbidden", &op).await;
    assert!(
        message.contains(&format!("system:serviceaccount:{ns}:kubemint-deployer")),
        "{message}"
    );
    nothing_applied(&client, &ns).await;

    // Granting the default account what it needs lets the same channel through.
    service_account(&client, &ns, "kubemint-deployer", deployer_rules()).await;
    fixture::request(&client, &ns, "web", "kubemint.io/reconcile").await;
    fixture::wait_applied(&client, &ns, "web", &sha, &op).await;
}

#[tokio::test]
async fn no_cross_namespace_refs_keeps_a_channel_in_its_namespace() {
    let (client, ns, repo, _sha, op) = tenant("xns", &["--no-cross-namespace-refs"]).await;
    let other = support::cluster().namespace("xns-other").await;

    // A targetNamespace elsewhere is refused, and nothing reaches either namespace.
    let spec = json!({"targetNamespace": other});
    apply_channel_with(&client, &ns, "moved", &repo.url(), ".", spec).await;
    let message = wait_refused(&client, &ns, "moved", "CrossNamespaceRefused", &op).await;
    assert!(message.contains(&format!("namespace {other}")), "{message}");
    assert!(message.contains("--no-cross-namespace-refs"), "{message}");
    nothing_applied(&client, &ns).await;
    nothing_applied(&client, &other).await;

    // So is an object that names another namespace, and a cluster-scoped one,
    // each naming its file.
    let repo2 = GitRepo::new();
    let mut files = workload("web", "nginx:1.0", "one");
    files.push((
        "elsewhere.yaml".to_string(),
        config_map_in(&other, "x", &[]),
    ));
    repo2.write(&files).commit("reaches into another namespace");
    apply_channel_with(&client, &ns, "reach", &repo2.url(), ".", json!({})).await;
    let message = wait_refused(&client, &ns, "reach", "CrossNamespaceRefused", &op).await;
    assert!(message.starts_with("elsewhere.yaml:"), "{message}");

    let repo3 = GitRepo::new();
    let mut files = workload("web", "nginx:1.0", "one");
    files.push((
        "role.yaml".to_string(),
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: tenant-wide\nrules: []\n".to_string(),
    ));
    repo3.write(&files).commit("a cluster-scoped object");
    apply_channel_with(&client, &ns, "wide", &repo3.url(), ".", json!({})).await;
    let message = wait_refused(&client, &ns, "wide", "CrossNamespaceRefused", &op).await;
    assert!(message.contains("cluster scope"), "{message}");
    nothing_applied(&client, &ns).await;

    // Inside its own namespace the channel delivers as usual.
    let sha = repo.git(&["rev-parse", "HEAD"]);
    apply_channel_with(&client, &ns, "home", &repo.url(), ".", json!({})).await;
    fixture::wait_applied(&client, &ns, "home", sha.trim(), &op).await;
}

#[tokio::test]
async fn local_sources_are_refused_without_allow_local_sources() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("local-refused").await;
    let repo = GitRepo::new();
    repo.write(&workload("web", "nginx:1.0", "one"))
        .commit("web 1.0");
    // The defaults of a real install: no --allow-local-sources.
    let op = Operator::start_strict(cluster.kubeconfig(), &ns);

    let path = repo.path().display().to_string();
    for (name, url) in [("by-url", repo.url()), ("by-path", path)] {
        apply_channel_with(&client, &ns, name, &url, ".", json!({})).await;
        let message = wait_refused(&client, &ns, name, "LocalSourceRefused", &op).await;
        assert!(message.contains(&url), "{message}");
        assert!(message.contains("--allow-local-sources"), "{message}");
        let ch = fixture::channel(&client, &ns, name).await;
        let stalled = condition(&ch, "Stalled").expect("a Stalled condition");
        assert_eq!(
            (stalled.0.as_str(), stalled.1.as_str()),
            ("True", "LocalSourceRefused")
        );
        // Refused before any fetch: no commit was ever looked at.
        let status = ch.status.unwrap();
        assert!(status.last_attempted_commit.is_none(), "{status:?}");
        assert!(status.last_applied_commit.is_none(), "{status:?}");
        let events = fixture::channel_events(&client, &ns, name).await;
        assert!(
            events
                .iter()
                .any(|(t, r, _)| t == "Warning" && r == "LocalSourceRefused"),
            "{events:?}"
        );
    }
    nothing_applied(&client, &ns).await;
    let log = op.log_text();
    assert!(!log.contains("new commit fetched"), "{log}");
}
