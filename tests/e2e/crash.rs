//! End-to-end: the operator crashes right after each kind of action of a
//! rollout, and a fresh operator converges from what the cluster and git
//! show (issue 9: "a failpoint crash test after each kind of action").
//!
//! `KUBEMINT_FAILPOINT=<kind>:<n>` makes `kubemint run` exit with code 86
//! right after the n-th action of that kind succeeded (it logs
//! `failpoint <kind>:<n> reached`). Each test delivers release A, stops the
//! operator, commits B (image bump, a ConfigMap change, and a removed
//! workload with its ConfigMap, so that drain, delete-revision, delete-copy
//! and prune all happen with `drainSeconds: 0`, `keepReleases: 1`), runs an
//! operator with the failpoint until it exits 86, then a plain one, and
//! requires convergence on B with the serving checker clean throughout.

use crate::fixture;
use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use fixture::condition;
use fixture::manifests::{config, deployment, service};
use fixture::release::{available, replicas, revisions, Env};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use serde_json::json;
use support::eventually;

/// The exit code of a reached failpoint.
const FAILPOINT_EXIT: i32 = 86;

/// Release A: web (1 pod, Service, ConfigMap) and worker (1 pod, ConfigMap, no Service).
fn release_a() -> Vec<(String, String)> {
    vec![
        (
            "web/deployment.yaml".into(),
            deployment("web", "web:1.0", 1),
        ),
        ("web/service.yaml".into(), service("web")),
        ("web/config.yaml".into(), config("web", "a")),
        (
            "worker/deployment.yaml".into(),
            deployment("worker", "worker:1.0", 1),
        ),
        ("worker/config.yaml".into(), config("worker", "a")),
    ]
}

/// Names of the ConfigMaps in the namespace, with the value of `VALUE`.
async fn config_maps(env: &Env) -> BTreeMap<String, String> {
    Api::<ConfigMap>::namespaced(env.client.clone(), &env.ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|cm| {
            let value = cm.data.as_ref()?.get("VALUE")?.clone();
            Some((cm.metadata.name?, value))
        })
        .collect()
}

/// Waits for the operator to exit by itself, and returns the exit code. Fails
/// at once if it has delivered B without reaching the failpoint.
async fn wait_failpoint(env: &mut Env, failpoint: &str, sha_b: &str) -> i32 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut settled_since = None;
    loop {
        if let Some(code) = env.op.wait_exit(Duration::from_millis(500)).await {
            return code;
        }
        let ch = env.channel().await;
        let applied = ch
            .status
            .as_ref()
            .and_then(|s| s.last_applied_commit.as_ref())
            .is_some_and(|c| c.sha == sha_b);
        let settled = applied && condition(&ch, "Reconciling").is_some_and(|c| c.0 == "False");
        let now = tokio::time::Instant::now();
        let since = *settled_since.get_or_insert(now);
        if !settled {
            settled_since = None;
        }
        // Settled for 5 s: nothing left to do that could reach it.
        let gave_up = settled && now - since > Duration::from_secs(5);
        if gave_up || now > deadline {
            panic!(
                "the operator {} without reaching failpoint {failpoint}; channel status {:?}; its log:\n{}",
                if gave_up { "delivered B" } else { "ran 90 s" },
                ch.status,
                env.op.log_text()
            );
        }
    }
}

/// A, then B delivered by an operator that crashes after action `kind:n`,
/// then convergence by a fresh operator.
async fn crash_after(kind: &str, n: u32) {
    let rollout = json!({"drainSeconds": 0, "keepReleases": 1});
    let mut env = Env::start(&format!("crash-{kind}"), rollout).await;
    let files = release_a();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let sha_a = env.repo.write(&refs).commit("A");
    let a = revisions(&env.repo);
    env.wait_settled(&sha_a).await;
    let web_uid = env.services().get("web").await.unwrap().metadata.uid;

    // B lands while no operator runs, so the failpoint counts B's actions only.
    env.op.stop();
    let sha_b = env
        .repo
        .write(&[
            ("web/deployment.yaml", &deployment("web", "web:2.0", 1)),
            ("web/config.yaml", &config("web", "b")),
        ])
        .remove(&["worker/deployment.yaml", "worker/config.yaml"])
        .commit("B");
    let b = revisions(&env.repo);
    assert!(!b.contains_key("worker"));
    let failpoint = format!("{kind}:{n}");
    env.restart_operator("-failpoint", &[("KUBEMINT_FAILPOINT", &failpoint)]);
    let code = wait_failpoint(&mut env, &failpoint, &sha_b).await;
    let log = env.op.log_text();
    assert_eq!(
        code, FAILPOINT_EXIT,
        "exit code of the failpoint run; its log:\n{log}"
    );
    assert!(
        log.contains(&format!("failpoint {failpoint} reached")),
        "the failpoint is logged:\n{log}"
    );

    env.restart_operator("-after", &[]);
    env.wait_settled(&sha_b).await;
    let (web_a, web_b) = (format!("web-{}", a["web"]), format!("web-{}", b["web"]));
    let worker_a = format!("worker-{}", a["worker"]);
    eventually(Duration::from_secs(60), "converged on B", || async {
        let on = env.service_revision("web").await;
        let new = env.rs(&web_b).await;
        let old = env.rs(&web_a).await;
        let worker = env.rs(&worker_a).await;
        let ok = on.as_deref() == Some(b["web"].as_str())
            && new.as_ref().is_some_and(|rs| replicas(rs) == 1 && available(rs) == 1)
            && old.as_ref().is_some_and(|rs| replicas(rs) == 0)
            && worker.is_none();
        ok.then_some(()).ok_or(format!(
            "Service web on {on:?}; {web_b}: {:?}; {web_a} (kept, drained): {:?}; {worker_a} (deleted): {:?}",
            new.map(|rs| (replicas(&rs), available(&rs))),
            old.map(|rs| replicas(&rs)),
            worker.map(|rs| replicas(&rs)),
        ))
    })
    .await;

    // Pruned: the worker's ConfigMap and its copy. Kept: web's ConfigMap
    // (as declared, now b), the copies of both kept revisions, the Service.
    let configs = config_maps(&env).await;
    let workers: Vec<&String> = configs.keys().filter(|k| k.starts_with("worker")).collect();
    assert!(workers.is_empty(), "worker config pruned: {configs:?}");
    assert_eq!(
        configs.get("web-config").map(String::as_str),
        Some("b"),
        "{configs:?}"
    );
    let copies: Vec<&String> = configs
        .iter()
        .filter(|(k, _)| k.starts_with("web-config-"))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        copies.len(),
        2,
        "copies of A's and B's web config: {configs:?}"
    );
    assert_eq!(
        env.services().get("web").await.unwrap().metadata.uid,
        web_uid,
        "Service web was never pruned"
    );
    let ch = env.channel().await;
    assert_ne!(
        condition(&ch, "Stalled").map(|c| c.0).as_deref(),
        Some("True")
    );
    let seen = env.finish().await.unwrap();
    assert!(seen.served.contains("web"), "{seen:?}");
}

#[tokio::test]
async fn crash_after_an_apply() {
    // The second: in the middle of the applies (declared config, copy, ...).
    crash_after("apply", 2).await;
}

#[tokio::test]
async fn crash_after_creating_a_revision() {
    crash_after("create-revision", 1).await;
}

#[tokio::test]
async fn crash_after_switching_a_service() {
    crash_after("switch", 1).await;
}

#[tokio::test]
async fn crash_after_marking_a_revision_promoted() {
    crash_after("mark-promoted", 1).await;
}

#[tokio::test]
async fn crash_after_a_drain() {
    crash_after("drain", 1).await;
}

#[tokio::test]
async fn crash_after_deleting_a_revision() {
    crash_after("delete-revision", 1).await;
}

#[tokio::test]
async fn crash_after_deleting_a_config_copy() {
    crash_after("delete-copy", 1).await;
}

#[tokio::test]
async fn crash_after_a_prune() {
    crash_after("prune", 1).await;
}

#[tokio::test]
async fn crash_after_a_status_write() {
    crash_after("status", 1).await;
}
