//! End-to-end: a Channel delivers commits of a real git repository to a real
//! API server (started by `support`), through the real `kubemint run` binary.

use crate::fixture;
use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use fixture::{apply_channel, channel, condition, install_crd, wait_applied, GitRepo, Operator};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;
use support::{wait_for, ServingChecker};

const CONFIG_V1: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
  labels: {app: web}
data:
  GREETING: hello
";

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
  # These tests cover plain delivery; minting is tested in e2e_rollout.rs.
  annotations: {kubemint.io/strategy: apply}
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: ghcr.io/acme/web:1.0.0
          ports:
            - containerPort: 8080
          envFrom:
            - configMapRef: {name: web-config}
";

const WEB_SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web}
spec:
  selector: {app: web}
  ports:
    - port: 80
      targetPort: 8080
";

const API_SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: api
  labels: {app: web}
spec:
  selector: {app: web}
  ports:
    - port: 81
      targetPort: 8080
";

/// A repository with the first commit of a small release, the operator
/// watching it, and the serving checker on the namespace (finished at the end
/// of each test). The Services here select the pods of a `strategy: apply`
/// Deployment and are not pinned to a revision, so the checker has nothing to
/// hold them to unless kubemint starts pinning them; it runs anyway, so that
/// such a change is checked too.
async fn setup(prefix: &str) -> (Client, String, GitRepo, String, Operator, ServingChecker) {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace(prefix).await;
    let checker = ServingChecker::start(client.clone(), &ns).await;
    let repo = GitRepo::new();
    let sha = repo
        .write(&[
            ("deploy/web/config.yaml", CONFIG_V1),
            ("deploy/web/deployment.yaml", DEPLOYMENT),
            ("deploy/web/service.yaml", WEB_SERVICE),
            ("deploy/api/service.yaml", API_SERVICE),
            ("README.md", "not a manifest\n"),
        ])
        .commit("first release");
    let op = Operator::start(cluster.kubeconfig(), &ns);
    apply_channel(&client, &ns, "shop", &repo.url(), "deploy").await;
    (client, ns, repo, sha, op, checker)
}

fn labels_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}

#[tokio::test]
async fn first_commit_applies_and_next_commit_prunes_only_what_it_dropped() {
    let (client, ns, repo, sha1, op, checker) = setup("deliver").await;
    let ch = wait_applied(&client, &ns, "shop", &sha1, &op).await;

    let status = ch.status.clone().unwrap();
    let applied = status.last_applied_commit.unwrap();
    assert_eq!(applied.subject, "first release");
    assert_eq!(applied.author, "Ada Lovelace <ada@example.com>");
    assert_eq!(status.last_attempted_commit.unwrap().sha, sha1);
    assert!(status.active_release.is_some());
    assert_eq!(status.observed_generation, ch.metadata.generation);
    let inventory: Vec<String> = status
        .inventory
        .unwrap()
        .entries
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert_eq!(
        inventory,
        [
            format!("ConfigMap/{ns}/web-config"),
            format!("Service/{ns}/api"),
            format!("Service/{ns}/web"),
            format!("apps/Deployment/{ns}/web"),
        ]
    );
    assert_eq!(condition(&ch, "Reconciling").unwrap().0, "False");
    assert!(condition(&ch, "Stalled").is_none());

    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let configs: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let web = services.get("web").await.unwrap();
    let labels = labels_of(&web.metadata);
    assert_eq!(labels["app.kubernetes.io/managed-by"], "kubemint");
    assert_eq!(labels["kubemint.io/channel"], format!("{ns}.shop"));
    let annotations = web.metadata.annotations.clone().unwrap();
    assert_eq!(annotations["kubemint.io/commit"], sha1);
    // The Service port had no protocol in git; it was defaulted so apply works.
    assert_eq!(
        web.spec.unwrap().ports.unwrap()[0].protocol.as_deref(),
        Some("TCP")
    );
    let deployment_uid = deployments.get("web").await.unwrap().metadata.uid;

    // Unmanaged objects that carry the same app labels must survive any prune.
    let bystander: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "bystander", "labels": {"app": "web"}},
        "data": {"owner": "someone else"}
    }))
    .unwrap();
    configs
        .create(&PostParams::default(), &bystander)
        .await
        .unwrap();
    let stray: Service = serde_json::from_value(json!({
        "metadata": {"name": "stray", "labels": {"app": "web"}},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 82, "protocol": "TCP"}]}
    }))
    .unwrap();
    services
        .create(&PostParams::default(), &stray)
        .await
        .unwrap();

    let sha2 = repo
        .write(&[(
            "deploy/web/config.yaml",
            &CONFIG_V1.replace("hello", "bonjour"),
        )])
        .remove(&["deploy/api/service.yaml"])
        .commit("greet in French, drop the api service");
    let ch = wait_applied(&client, &ns, "shop", &sha2, &op).await;

    assert!(
        services.get_opt("api").await.unwrap().is_none(),
        "api Service was pruned"
    );
    assert!(services.get_opt("web").await.unwrap().is_some());
    assert!(
        services.get_opt("stray").await.unwrap().is_some(),
        "unmanaged Service untouched"
    );
    assert_eq!(
        configs.get("bystander").await.unwrap().data.unwrap()["owner"],
        "someone else"
    );
    assert_eq!(
        configs.get("web-config").await.unwrap().data.unwrap()["GREETING"],
        "bonjour"
    );
    assert_eq!(
        deployments.get("web").await.unwrap().metadata.uid,
        deployment_uid
    );
    assert_eq!(ch.status.unwrap().inventory.unwrap().entries.len(), 3);

    // The applies and the prune were announced as Events on the channel.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns);
    let reasons = wait_for(Duration::from_secs(10), || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        let reasons: Vec<String> = list.items.iter().filter_map(|e| e.reason.clone()).collect();
        (reasons.iter().any(|r| r == "Applied") && reasons.iter().any(|r| r == "Pruned"))
            .then_some(reasons)
    })
    .await;
    assert!(
        reasons.iter().all(|r| r != "ReconcileFailed"),
        "{reasons:?}"
    );
    checker.finish().await;
}

#[tokio::test]
async fn invalid_commit_is_rejected_whole() {
    let (client, ns, repo, sha1, op, checker) = setup("invalid").await;
    wait_applied(&client, &ns, "shop", &sha1, &op).await;

    // A valid change and a broken file in one commit: neither may be applied.
    let bad = repo
        .write(&[
            (
                "deploy/web/config.yaml",
                CONFIG_V1.replace("hello", "changed").as_str(),
            ),
            (
                "deploy/web/broken.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [oops\n",
            ),
        ])
        .remove(&["deploy/api/service.yaml"])
        .commit("broken commit");
    let ch = wait_for(Duration::from_secs(60), || async {
        let ch = channel(&client, &ns, "shop").await;
        let stalled = condition(&ch, "Stalled")?;
        (stalled.0 == "True").then_some(ch)
    })
    .await;
    let (ready, reason, message) = condition(&ch, "Ready").unwrap();
    assert_eq!(ready, "False");
    assert_eq!(reason, "ValidationFailed");
    assert!(message.contains("deploy/web/broken.yaml"), "{message}");
    let status = ch.status.unwrap();
    assert_eq!(status.last_applied_commit.unwrap().sha, sha1);
    assert_eq!(status.last_attempted_commit.unwrap().sha, bad);

    let configs: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    assert_eq!(
        configs.get("web-config").await.unwrap().data.unwrap()["GREETING"],
        "hello"
    );
    assert!(
        services.get_opt("api").await.unwrap().is_some(),
        "nothing pruned"
    );

    // A commit that empties the path is held, never a reason to delete everything.
    let empty = repo
        .remove(&[
            "deploy/web/broken.yaml",
            "deploy/web/config.yaml",
            "deploy/web/deployment.yaml",
            "deploy/web/service.yaml",
        ])
        .commit("delete everything");
    let ch = wait_for(Duration::from_secs(60), || async {
        let ch = channel(&client, &ns, "shop").await;
        let attempted = ch
            .status
            .as_ref()?
            .last_attempted_commit
            .as_ref()?
            .sha
            .clone();
        (attempted == empty).then_some(ch)
    })
    .await;
    assert_eq!(condition(&ch, "Stalled").unwrap().0, "True");
    assert!(services.get_opt("web").await.unwrap().is_some());
    assert!(configs.get_opt("web-config").await.unwrap().is_some());

    // The fix is a new commit, applied as usual.
    let fixed = repo
        .write(&[
            ("deploy/web/config.yaml", CONFIG_V1),
            ("deploy/web/service.yaml", WEB_SERVICE),
        ])
        .commit("restore");
    let ch = wait_applied(&client, &ns, "shop", &fixed, &op).await;
    assert!(condition(&ch, "Stalled").is_none());
    assert!(
        services.get_opt("api").await.unwrap().is_none(),
        "dropped by the fix commit"
    );
    checker.finish().await;
}

#[tokio::test]
async fn unreachable_repository_changes_nothing_and_recovers() {
    let (client, ns, repo, sha1, op, checker) = setup("unreachable").await;
    wait_applied(&client, &ns, "shop", &sha1, &op).await;

    let moved = repo.path().with_extension("moved");
    std::fs::rename(repo.path(), &moved).unwrap();
    let ch = wait_for(Duration::from_secs(60), || async {
        let ch = channel(&client, &ns, "shop").await;
        let ready = condition(&ch, "Ready")?;
        (ready.0 == "False").then_some(ch)
    })
    .await;
    std::fs::rename(&moved, repo.path()).unwrap();
    let (_, reason, message) = condition(&ch, "Ready").unwrap();
    assert_eq!(reason, "GitUnreachable", "{message}");
    assert_eq!(
        condition(&ch, "Reconciling").unwrap().0,
        "True",
        "it retries"
    );
    assert!(condition(&ch, "Stalled").is_none());
    assert_eq!(fixture::last_applied(&ch), Some(sha1.as_str()));
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    assert!(services.get_opt("api").await.unwrap().is_some());
    assert!(services.get_opt("web").await.unwrap().is_some());

    // Back online: the next retry succeeds.
    let sha2 = repo.remove(&["deploy/api/service.yaml"]).commit("drop api");
    wait_applied(&client, &ns, "shop", &sha2, &op).await;
    assert!(services.get_opt("api").await.unwrap().is_none());
    checker.finish().await;
}

#[tokio::test]
async fn hand_edits_are_reverted_without_a_write_loop() {
    let (client, ns, _repo, sha1, op, checker) = setup("drift").await;
    wait_applied(&client, &ns, "shop", &sha1, &op).await;

    let configs: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    // As `kubectl edit` would: another field manager changes managed fields.
    configs
        .patch(
            "web-config",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"GREETING": "hacked"}})),
        )
        .await
        .unwrap();
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    wait_for(Duration::from_secs(30), || async {
        let greeting = configs
            .get("web-config")
            .await
            .ok()?
            .data?
            .get("GREETING")?
            .clone();
        let replicas = deployments.get("web").await.ok()?.spec?.replicas?;
        (greeting == "hello" && replicas == 1).then_some(())
    })
    .await;

    // With nothing to change, reconciles make no writes: the channel's
    // resourceVersion stays put across several poll intervals.
    let channels: Api<kubemint::controller::Channel> = Api::namespaced(client.clone(), &ns);
    let before = channels
        .get("shop")
        .await
        .unwrap()
        .metadata
        .resource_version;
    tokio::time::sleep(Duration::from_secs(7)).await;
    let after = channels
        .get("shop")
        .await
        .unwrap()
        .metadata
        .resource_version;
    assert_eq!(
        before,
        after,
        "status rewritten without a change:\n{}",
        op.log_text()
    );
    checker.finish().await;
}

#[tokio::test]
async fn crds_and_namespaces_go_first_and_their_objects_apply_in_the_same_commit() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("staged").await;
    let suffix = ns.replace('-', "");
    let group = format!("{suffix}.example.com");
    let crd = format!(
        "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: widgets, singular: widget, kind: Widget}}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: {{type: integer}}
"
    );
    let widget = format!(
        "apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: w1\n  namespace: {ns}-extra\nspec:\n  size: 3\n"
    );
    let namespace = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}-extra\n");
    let config = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: in-extra\n  namespace: {ns}-extra\ndata: {{a: b}}\n"
    );
    let repo = GitRepo::new();
    // File order puts the custom resource before its CRD and namespace.
    let sha = repo
        .write(&[
            ("a-widget.yaml", &widget),
            ("b-config.yaml", &config),
            ("z-crd.yaml", &crd),
            ("z-namespace.yaml", &namespace),
        ])
        .commit("widgets");
    let op = Operator::start(cluster.kubeconfig(), &ns);
    apply_channel(&client, &ns, "staged", &repo.url(), ".").await;
    let ch = wait_applied(&client, &ns, "staged", &sha, &op).await;
    let inventory: Vec<String> = ch
        .status
        .unwrap()
        .inventory
        .unwrap()
        .entries
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert!(
        inventory.contains(&format!("{group}/Widget/{ns}-extra/w1")),
        "{inventory:?}"
    );
    assert!(
        inventory.contains(&format!("Namespace/{ns}-extra")),
        "{inventory:?}"
    );
    let gvk = kube::api::GroupVersionKind::gvk(&group, "v1", "Widget");
    let (ar, _) = kube::discovery::pinned_kind(&client, &gvk).await.unwrap();
    let widgets: Api<kube::api::DynamicObject> =
        Api::namespaced_with(client.clone(), &format!("{ns}-extra"), &ar);
    assert_eq!(widgets.get("w1").await.unwrap().data["spec"]["size"], 3);

    // Dropping the widget prunes it; the CRD and namespace stay.
    let sha2 = repo.remove(&["a-widget.yaml"]).commit("no more widgets");
    wait_applied(&client, &ns, "staged", &sha2, &op).await;
    assert!(widgets.get_opt("w1").await.unwrap().is_none());
    let configs: Api<ConfigMap> = Api::namespaced(client.clone(), &format!("{ns}-extra"));
    assert!(configs.get_opt("in-extra").await.unwrap().is_some());
}

#[tokio::test]
async fn suspend_pauses_and_deleting_the_channel_prunes_what_it_delivered() {
    let (client, ns, repo, sha1, op, checker) = setup("lifecycle").await;
    wait_applied(&client, &ns, "shop", &sha1, &op).await;
    let channels: Api<kubemint::controller::Channel> = Api::namespaced(client.clone(), &ns);
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);

    channels
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": true}})),
        )
        .await
        .unwrap();
    wait_for(Duration::from_secs(20), || async {
        let ch = channel(&client, &ns, "shop").await;
        (condition(&ch, "Reconciling")?.1 == "Suspended").then_some(())
    })
    .await;
    let sha2 = repo
        .remove(&["deploy/api/service.yaml"])
        .commit("drop api while suspended");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        services.get_opt("api").await.unwrap().is_some(),
        "suspended: nothing changes"
    );
    channels
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": false}})),
        )
        .await
        .unwrap();
    wait_applied(&client, &ns, "shop", &sha2, &op).await;
    assert!(services.get_opt("api").await.unwrap().is_none());

    // An unmanaged object must survive the channel's deletion.
    let configs: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let keep: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "keep", "labels": {"app": "web"}}}))
            .unwrap();
    configs.create(&PostParams::default(), &keep).await.unwrap();
    channels.delete("shop", &Default::default()).await.unwrap();
    wait_for(Duration::from_secs(30), || async {
        channels.get_opt("shop").await.ok()?.is_none().then_some(())
    })
    .await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    assert!(services.get_opt("web").await.unwrap().is_none());
    assert!(deployments.get_opt("web").await.unwrap().is_none());
    assert!(configs.get_opt("web-config").await.unwrap().is_none());
    assert!(configs.get_opt("keep").await.unwrap().is_some());
    checker.finish().await;
}
