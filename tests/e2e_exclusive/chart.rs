//! The Helm chart, rendered by real Helm (helm-python-sdk, Helm v4 embedded)
//! and applied to the local control plane: kubemint runs out of cluster with
//! the token of the chart's ServiceAccount, so with exactly the permissions the
//! chart grants, and delivers two tenants' channels, each as its own
//! ServiceAccount. Taking a permission away fails clearly, naming it.
//! `manifests/install.yaml` is checked to be the chart's render.

use crate::fixture;
use crate::gitserver;
use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fixture::release::workload;
use fixture::tenancy::{apply_all, deployer_rules, service_account};
use fixture::{apply_channel_with, condition, install_crd, Operator};
use gitserver::{GitDaemon, GitRepo};
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::Api;
use kube::Client;
use serde::Deserialize;
use serde_json::{json, Value};
use support::eventually;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/kubemint");

/// The python of the virtualenv holding helm-python-sdk (tests/chart/install.sh),
/// installed once per test process: concurrent installs would remove each other's.
fn helm_python() -> PathBuf {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON.get_or_init(install_helm_python).clone()
}

fn install_helm_python() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("bash")
        .arg(root.join("tests/chart/install.sh"))
        .output()
        .expect("running tests/chart/install.sh");
    assert!(
        out.status.success(),
        "tests/chart/install.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(stdout.lines().last().expect("the python path").trim())
}

/// Runs tests/chart/render.py with `args`; its stdout, or a panic with its stderr.
fn helm(args: &[&str]) -> String {
    let out = helm_output(args);
    assert!(
        out.status.success(),
        "helm {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// How tests/chart/render.py with `args` exited, and what it printed.
fn helm_output(args: &[&str]) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/chart/render.py");
    Command::new(helm_python())
        .arg(script)
        .args(args)
        .output()
        .expect("running helm")
}

fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).expect("a YAML document"))
        .filter(|v| !v.is_null())
        .collect()
}

/// The chart rendered by Helm as release `release` in `namespace`.
fn render(release: &str, namespace: &str, values: Value) -> Vec<Value> {
    documents(&helm(&[
        "render",
        CHART,
        release,
        namespace,
        &values.to_string(),
    ]))
}

#[test]
fn the_chart_lints_and_install_yaml_is_its_render() {
    let lint: Value = serde_json::from_str(&helm(&["lint", CHART, "{}"])).unwrap();
    assert_eq!(lint["errors"], json!([]), "{lint}");

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/install.yaml");
    let install: Vec<Value> = documents(&std::fs::read_to_string(path).unwrap())
        .into_iter()
        .filter(|d| d["kind"] != "Namespace")
        .collect();
    let rendered = render("kubemint", "kubemint-system", json!({}));
    assert_eq!(
        install, rendered,
        "manifests/install.yaml is not the chart's render: regenerate it (see its header)"
    );
    // Least privilege by default: no cluster-admin unless asked for by name.
    let bound: Vec<&Value> = rendered
        .iter()
        .filter(|d| d["kind"] == "ClusterRoleBinding")
        .map(|d| &d["roleRef"]["name"])
        .collect();
    assert_eq!(bound, [&json!("kubemint")]);
    let admin = render(
        "kubemint",
        "kubemint-system",
        json!({"applyAsClusterAdmin": true}),
    );
    assert!(admin
        .iter()
        .any(|d| d["kind"] == "ClusterRoleBinding" && d["roleRef"]["name"] == "cluster-admin"));
}

/// The arguments of the chart's operator container.
fn operator_args(rendered: &[Value]) -> Vec<String> {
    let deployment = rendered
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("the operator Deployment");
    serde_json::from_value(deployment["spec"]["template"]["spec"]["containers"][0]["args"].clone())
        .expect("container args")
}

#[test]
fn the_chart_s_tenancy_values_are_flags_that_kubemint_run_knows() {
    // Strict by default: local sources refused.
    let default = operator_args(&render("kubemint", "kubemint-system", json!({})));
    assert!(
        !default.iter().any(|a| a == "--allow-local-sources"),
        "{default:?}"
    );
    let values = json!({"allowLocalSources": true, "noCrossNamespaceRefs": true,
                        "defaultServiceAccount": "kubemint-deployer",
                        "limits": {"maxFileSize": "4Mi", "maxReleaseSize": "64Mi", "maxObjects": 2000}});
    let args = operator_args(&render("kubemint", "kubemint-system", values));
    for flag in [
        "--allow-local-sources",
        "--no-cross-namespace-refs",
        "--default-service-account=kubemint-deployer",
        "--max-file-size=4Mi",
        "--max-release-size=64Mi",
        "--max-objects=2000",
    ] {
        assert!(args.iter().any(|a| a == flag), "{flag} not in {args:?}");
    }
    assert_kubemint_accepts(&args);
}

/// The binary accepts every argument the chart renders (clap rejects an
/// unknown one before it gets to --help).
fn assert_kubemint_accepts(args: &[String]) {
    let out = Command::new(env!("CARGO_BIN_EXE_kubemint"))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubemint {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A tenant: a namespace with ServiceAccount `deployer`, and a repository served by git daemon.
struct Tenant {
    ns: String,
    upstream: GitRepo,
    _daemon: GitDaemon,
    url: String,
}

async fn tenant(client: &Client, prefix: &str) -> Tenant {
    let ns = support::cluster().namespace(prefix).await;
    service_account(client, &ns, "deployer", deployer_rules()).await;
    let upstream = GitRepo::new();
    upstream
        .write(&workload("web", "nginx:1.0", prefix))
        .commit("web 1.0");
    let daemon = GitDaemon::start(upstream.root());
    let url = daemon.url("work");
    Tenant {
        ns,
        upstream,
        _daemon: daemon,
        url,
    }
}

#[tokio::test]
async fn the_least_privileged_chart_delivers_two_tenants_and_names_a_missing_permission() {
    // Its operator watches every namespace.
    let _alone = crate::CONTROL_PLANE.write().await;
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("kubemint-chart").await;
    let release = "kubemint-e2e";
    let chart = render(release, &ns, json!({"leaderElection": true}));
    apply_all(&client, &chart).await;

    let dir = tempfile::tempdir().unwrap();
    let token = fixture::service_account_token(&client, &ns, release).await;
    let kubeconfig = fixture::kubeconfig_with_token(cluster.kubeconfig(), &token, dir.path());
    // The chart's account may not read tenants' objects by itself.
    let as_operator = Client::try_from(
        kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&kubeconfig).unwrap(),
            &Default::default(),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    let denied = Api::<ReplicaSet>::all(as_operator)
        .list(&Default::default())
        .await;
    assert!(
        matches!(&denied, Err(kube::Error::Api(s)) if s.code == 403),
        "{denied:?}"
    );

    let a = tenant(&client, "tenant-a").await;
    let b = tenant(&client, "tenant-b").await;
    let op = Operator::start_cluster_wide(
        &kubeconfig,
        "chart",
        &["--leader-elect", "--leader-election-namespace", &ns],
    );
    for t in [&a, &b] {
        let spec = json!({"serviceAccountName": "deployer"});
        apply_channel_with(&client, &t.ns, "web", &t.url, ".", spec).await;
    }
    for t in [&a, &b] {
        let sha = t.upstream.git(&["rev-parse", "HEAD"]);
        fixture::wait_applied(&client, &t.ns, "web", &sha, &op).await;
    }

    // Take `impersonate` away: the next commit fails, and the status says which
    // permission the operator lacks.
    let mut role = chart
        .iter()
        .find(|d| d["kind"] == "ClusterRole")
        .unwrap()
        .clone();
    let rules = role["rules"].as_array_mut().unwrap();
    rules.retain(|r| r["verbs"] != json!(["impersonate"]));
    apply_all(&client, &[role]).await;
    a.upstream
        .write(&workload("web", "nginx:1.1", "tenant-a"))
        .commit("web 1.1");
    eventually(
        Duration::from_secs(90),
        "the channel to report the missing impersonate permission",
        || async {
            let ch = fixture::channel(&client, &a.ns, "web").await;
            match condition(&ch, "Ready") {
                Some((status, _, message))
                    if status == "False"
                        && message.contains("cannot impersonate")
                        && message.contains("serviceaccounts") =>
                {
                    Ok(())
                }
                other => Err(format!("Ready: {other:?}\n{}", op.log_text())),
            }
        },
    )
    .await;
}

#[test]
fn the_chart_s_ui_value_adds_the_flag_what_the_caches_read_and_only_the_two_review_permissions() {
    let rules = |rendered: &[Value]| -> Vec<Value> {
        let role = rendered
            .iter()
            .find(|d| d["kind"] == "ClusterRole")
            .expect("the operator's ClusterRole");
        role["rules"].as_array().unwrap().clone()
    };
    let default = render("kubemint", "kubemint-system", json!({}));
    let with_ui = render(
        "kubemint",
        "kubemint-system",
        json!({"ui": {"enabled": true}}),
    );
    assert!(!operator_args(&default).iter().any(|a| a == "--ui"));
    let args = operator_args(&with_ui);
    assert!(args.iter().any(|a| a == "--ui"), "{args:?}");
    let (before, after) = (rules(&default), rules(&with_ui));
    let added: Vec<&Value> = after.iter().filter(|r| !before.contains(r)).collect();
    assert_eq!(
        added,
        [
            // What the UI's caches list and watch (besides channels, which the operator watches anyway).
            &json!({"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["list", "watch"]}),
            &json!({"apiGroups": [""], "resources": ["events"], "verbs": ["list", "watch"]}),
            &json!({"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]}),
            &json!({"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]}),
        ]
    );
    assert_eq!(after.len(), before.len() + 4);
}

/// A client with the token of ServiceAccount `name` in `ns`.
async fn client_as(client: &Client, admin: &Path, ns: &str, name: &str, dir: &Path) -> Client {
    let token = fixture::service_account_token(client, ns, name).await;
    let kubeconfig = fixture::kubeconfig_with_token(admin, &token, dir);
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    Client::try_from(config).unwrap()
}

#[tokio::test]
async fn the_chart_s_ui_role_lets_the_ui_s_caches_list_and_watch_and_the_default_does_not() {
    // Shares the control plane, but not with a test that stops its API server.
    let _shared = crate::CONTROL_PLANE.read().await;
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("kubemint-chart-ui").await;
    let dir = tempfile::tempdir().unwrap();
    // The release is named for the namespace: its ClusterRole is the test's own.
    let without = render(&ns, &ns, json!({}));
    apply_all(&client, &without).await;
    let operator = client_as(&client, cluster.kubeconfig(), &ns, &ns, dir.path()).await;
    let caches = kubemint::server::ui::Caches::start(&operator, None).await;
    assert!(
        !caches.wait_ready(Duration::from_secs(5)).await,
        "without ui.enabled the chart's role must not read ReplicaSets and events"
    );

    apply_all(&client, &render(&ns, &ns, json!({"ui": {"enabled": true}}))).await;
    // RBAC changes take a moment to be seen: fresh caches until they list.
    eventually(
        Duration::from_secs(60),
        "the UI's caches to list with the chart's role",
        || async {
            let caches = kubemint::server::ui::Caches::start(&operator, None).await;
            if caches.wait_ready(Duration::from_secs(10)).await {
                Ok(())
            } else {
                Err("not ready".to_string())
            }
        },
    )
    .await;
}

#[test]
fn the_chart_s_shards_value_renders_one_deployment_per_shard() {
    let rendered = render(
        "kubemint",
        "kubemint-system",
        json!({"shards": ["a", "eu-west"], "ui": {"enabled": true}}),
    );
    let deployments: Vec<&Value> = rendered
        .iter()
        .filter(|d| d["kind"] == "Deployment")
        .collect();
    let names: Vec<&str> = deployments
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["kubemint", "kubemint-shard-a", "kubemint-shard-eu-west"]
    );
    let args = |d: &Value| -> Vec<String> {
        serde_json::from_value(d["spec"]["template"]["spec"]["containers"][0]["args"].clone())
            .unwrap()
    };
    let shard_flags = |d: &Value| -> Vec<String> {
        args(d)
            .into_iter()
            .filter(|a| a.starts_with("--shard"))
            .collect()
    };
    assert_eq!(shard_flags(deployments[0]), Vec::<String>::new());
    assert_eq!(shard_flags(deployments[1]), ["--shard=a"]);
    assert_eq!(shard_flags(deployments[2]), ["--shard=eu-west"]);
    // Every shard elects its own leader; only the unsharded one, behind the
    // Service, serves the UI.
    for d in &deployments {
        assert!(args(d).iter().any(|a| a == "--leader-elect"), "{d}");
        let ui = args(d).iter().any(|a| a == "--ui");
        assert_eq!(ui, d["metadata"]["name"] == "kubemint", "{d}");
    }

    // No Deployment's selector matches another's pods (a Deployment adopts
    // what its selector matches), and the Service selects the unsharded pods.
    let matches = |selector: &Value, labels: &Value| {
        selector
            .as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| &labels[k] == v)
    };
    for d in &deployments {
        for other in &deployments {
            let selected = matches(
                &d["spec"]["selector"]["matchLabels"],
                &other["spec"]["template"]["metadata"]["labels"],
            );
            assert_eq!(
                selected,
                d["metadata"]["name"] == other["metadata"]["name"],
                "{} selects the pods of {}",
                d["metadata"]["name"],
                other["metadata"]["name"]
            );
        }
    }
    let service = rendered.iter().find(|d| d["kind"] == "Service").unwrap();
    let served: Vec<&Value> = deployments
        .iter()
        .filter(|d| {
            matches(
                &service["spec"]["selector"],
                &d["spec"]["template"]["metadata"]["labels"],
            )
        })
        .map(|d| &d["metadata"]["name"])
        .collect();
    assert_eq!(served, [&json!("kubemint")]);

    assert_kubemint_accepts(&args(deployments[2]));

    // A key that cannot name a Lease and a Deployment fails the render, naming it.
    let bad = helm_output(&[
        "render",
        CHART,
        "kubemint",
        "kubemint-system",
        &json!({"shards": ["Team_A"]}).to_string(),
    ]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("\"Team_A\" is not a usable shard key"),
        "{stderr}"
    );
}
