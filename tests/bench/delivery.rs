//! Benchmark of the delivery engine (issue 9), not part of the test run:
//! `cargo bench --bench delivery` starts the local control plane and prints
//! one table with the targets next to each figure:
//!
//! - (a) first delivery of 1000 objects (250 each of ConfigMap,
//!   ServiceAccount, Service and Deployment with `replicas: 0`) by a kubemint
//!   operator, from Channel creation to Ready on the commit, next to
//!   `kubectl apply --server-side` of the same files into a fresh namespace;
//!   the requests of each during it, from the API server's audit log;
//! - (b) one image bump of one Deployment: kubemint's writes, and seconds
//!   from the commit to the Service switch;
//! - (c) 60 s with nothing changing (`interval: 10s`, `driftInterval: 5m`):
//!   kubemint's requests and the operator's CPU seconds;
//! - (d) the operator's RSS after the first delivery;
//! - (e) `kubemint plan` of a directory of 5000 manifests, wall time.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it only says it
//! was skipped.

// Cargo also discovers this file as an integration test, built with the test
// harness (cfg(test)) and so without a use for `main`: nothing to run there.
#![cfg_attr(test, allow(dead_code, unused_imports))]

#[path = "../fixture/mod.rs"]
mod fixture;
#[path = "../gitserver/mod.rs"]
mod gitserver;
mod process;
#[path = "../support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fixture::{apply_channel_with, channel, condition, install_crd, GitRepo, Operator};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::Client;
use process::{cpu_seconds, memory_mib, secs};
use serde_json::json;
use support::audit::{self, Counts};

/// Objects of each kind in the first delivery.
const APPS: usize = 250;
/// Apps (4 manifests each) in the directory `kubemint plan` renders.
const PLAN_APPS: usize = 1250;
/// The idle window.
const IDLE: Duration = Duration::from_secs(60);
/// `spec.git.interval` in seconds.
const POLL_SECONDS: u64 = 10;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("delivery benchmark skipped (run: cargo bench --bench delivery)");
        return;
    }
    let cluster = support::cluster();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(cluster));
}

/// The four manifests of app `i`, as one multi-document file (protocol
/// spelled out, as kubectl's server-side apply needed it up to 1.20).
fn app(i: usize, image: &str) -> String {
    format!(
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: cm-{i}
data:
  INDEX: \"{i}\"
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: sa-{i}
---
apiVersion: v1
kind: Service
metadata:
  name: app-{i}
spec:
  selector: {{app: app-{i}}}
  ports:
    - port: 80
      protocol: TCP
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{i}
spec:
  replicas: 0
  selector:
    matchLabels: {{app: app-{i}}}
  template:
    metadata:
      labels: {{app: app-{i}}}
    spec:
      containers:
        - name: app
          image: {image}
"
    )
}

fn write_apps(dir: &Path, apps: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..apps {
        std::fs::write(dir.join(format!("app-{i:04}.yaml")), app(i, "app:1.0")).unwrap();
    }
}

/// Waits (up to 10 min) until the channel is Ready with `sha` applied and
/// nothing is pending; returns when it was first seen so.
async fn wait_settled(client: &Client, ns: &str, sha: &str, op: &Operator) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let ch = channel(client, ns, "bench").await;
        let applied = ch
            .status
            .as_ref()
            .and_then(|s| s.last_applied_commit.as_ref())
            .is_some_and(|c| c.sha == sha);
        let ready = condition(&ch, "Ready").is_some_and(|c| c.0 == "True");
        let idle = condition(&ch, "Reconciling").is_some_and(|c| c.0 == "False");
        if applied && ready && idle {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "commit {sha} not delivered in 10 min; status {:?}\n{}",
            ch.status,
            op.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct Row {
    what: String,
    kubemint: String,
    target: String,
}

fn row(what: &str, kubemint: String, target: &str) -> Row {
    Row {
        what: what.into(),
        kubemint,
        target: target.into(),
    }
}

async fn run(cluster: &'static support::TestCluster) {
    let client = cluster.client().await;
    install_crd(&client).await;
    let audit_log = cluster.audit_log();
    let agent = kubemint::cluster::USER_AGENT;
    let mut rows = Vec::new();

    // (a) kubectl apply --server-side of the files, into a fresh namespace.
    let files = tempfile::tempdir().unwrap();
    write_apps(files.path(), APPS);
    let kubectl_ns = cluster.namespace("bench-kubectl").await;
    let from = Timestamp::now();
    let started = Instant::now();
    let out = Command::new(&cluster.kubectl)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(["apply", "--server-side", "-n", &kubectl_ns, "-f"])
        .arg(files.path())
        .output()
        .expect("running kubectl");
    let kubectl_time = started.elapsed();
    assert!(
        out.status.success(),
        "kubectl apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kubectl = audit::count(&audit_log, "kubectl/", from, Timestamp::now());

    // (a) the same files as a commit, delivered by an operator.
    let ns = cluster.namespace("bench").await;
    let repo = GitRepo::new();
    write_apps(repo.path(), APPS);
    let sha1 = repo.commit("1000 objects");
    let op = Operator::start(cluster.kubeconfig(), &ns);
    // Let it start (discovery, watches) before the clock runs.
    op.http_addr().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let spec = json!({
        "git": {"url": repo.url(), "ref": {"branch": "main"}, "path": ".", "interval": format!("{POLL_SECONDS}s")},
        "driftInterval": "5m",
        "rollout": {"drainSeconds": 0},
    });
    let from = Timestamp::now();
    let started = Instant::now();
    apply_channel_with(&client, &ns, "bench", &repo.url(), ".", spec).await;
    let delivered = wait_settled(&client, &ns, &sha1, &op).await - started;
    let first = audit::count(&audit_log, agent, from, Timestamp::now());
    let rss = memory_mib(op.pid(), "VmRSS");
    let hwm = memory_mib(op.pid(), "VmHWM");
    rows.push(row(
        "(a) first delivery of 1000 objects, Channel to Ready",
        secs(delivered),
        &format!("kubectl apply --server-side: {}", secs(kubectl_time)),
    ));
    rows.push(row(
        "(a) requests during it (reads/writes/dry-runs)",
        format!("{}/{}/{}", first.reads, first.writes, first.dry_runs),
        &format!(
            "kubectl: {}/{}/{}",
            kubectl.reads, kubectl.writes, kubectl.dry_runs
        ),
    ));

    // (b) one image bump of one Deployment.
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let pinned = |svc: Service| svc.spec?.selector?.get("kubemint.io/revision").cloned();
    let before = pinned(services.get("app-0").await.unwrap());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let from = Timestamp::now();
    let started = Instant::now();
    let sha2 = repo
        .write(&[("app-0000.yaml", &app(0, "app:1.1"))])
        .commit("app-0 1.1");
    let switched = loop {
        let now = pinned(services.get("app-0").await.unwrap());
        if now.is_some() && now != before {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no switch of app-0 in 5 min"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    wait_settled(&client, &ns, &sha2, &op).await;
    let bump_requests = audit::requests(&audit_log, agent, from, Timestamp::now());
    let bump = Counts::of(&bump_requests);
    rows.push(row(
        "(b) image bump of one Deployment: writes",
        format!(
            "{} (and {} dry-runs, {} reads)",
            bump.writes, bump.dry_runs, bump.reads
        ),
        "<= 10",
    ));
    rows.push(row("(b) commit to Service switch", secs(switched), "< 2 s"));

    // (c) 60 s of nothing changing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu_before = cpu_seconds(op.pid());
    let from = Timestamp::now();
    tokio::time::sleep(IDLE).await;
    let idle = audit::count(&audit_log, agent, from, Timestamp::now());
    let cpu = cpu_seconds(op.pid()) - cpu_before;
    let polls = IDLE.as_secs() / POLL_SECONDS;
    rows.push(row(
        "(c) 60 s idle: writes",
        format!("{} (and {} dry-runs)", idle.writes, idle.dry_runs),
        "0",
    ));
    rows.push(row(
        "(c) 60 s idle: reads per poll",
        format!(
            "{:.1} ({} reads in {polls} polls)",
            idle.reads as f64 / polls as f64,
            idle.reads
        ),
        "<= 1",
    ));
    rows.push(row(
        "(c) 60 s idle: operator CPU",
        format!("{cpu:.2} s"),
        "-",
    ));
    rows.push(row(
        "(d) operator RSS after the first delivery",
        format!("{rss:.1} MiB (peak {hwm:.1} MiB)"),
        "<= 64 MiB",
    ));

    // (e) kubemint plan of 5000 manifests.
    let big = tempfile::tempdir().unwrap();
    write_apps(big.path(), PLAN_APPS);
    let started = Instant::now();
    let plan = Command::new(env!("CARGO_BIN_EXE_kubemint"))
        .arg("plan")
        .arg(big.path())
        .output()
        .expect("running kubemint plan");
    let plan_time = started.elapsed();
    assert!(
        plan.status.success(),
        "kubemint plan failed: {}",
        String::from_utf8_lossy(&plan.stderr)
    );
    rows.push(row(
        "(e) kubemint plan of 5000 manifests",
        secs(plan_time),
        "<= 1 s",
    ));
    op.terminate();

    let width = rows.iter().map(|r| r.what.len()).max().unwrap_or(0);
    let value = rows.iter().map(|r| r.kubemint.len()).max().unwrap_or(0);
    println!();
    let server = client
        .apiserver_version()
        .await
        .map_or_else(|e| format!("unknown: {e}"), |v| v.git_version);
    println!("delivery benchmark ({agent}; local control plane {server})");
    println!(
        "{:<width$}  {:<value$}  target / comparison",
        "measure", "kubemint"
    );
    println!(
        "{}  {}  {}",
        "-".repeat(width),
        "-".repeat(value),
        "-".repeat(30)
    );
    for r in &rows {
        println!("{:<width$}  {:<value$}  {}", r.what, r.kubemint, r.target);
    }
    println!();
    println!("(b) kubemint's writes for the image bump, by verb and resource:");
    let mut writes = std::collections::BTreeMap::new();
    for request in bump_requests
        .iter()
        .filter(|r| r.class() == audit::Class::Write)
    {
        *writes
            .entry(format!("{} {}", request.verb, request.resource))
            .or_insert(0) += 1;
    }
    for (what, n) in writes {
        println!("  {n:>5}  {what}");
    }
}
