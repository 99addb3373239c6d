//! Test support: a real Kubernetes control plane for integration tests.
//!
//! `cluster()` starts one per test process (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler of the release in
//! `tests/cluster/k8s/go.mod`, now 1.37.2, via `tests/cluster/up.sh`)
//! plus a node whose kubelet kwok simulates, or uses the cluster of
//! `$KUBEMINT_TEST_KUBECONFIG` when that is set. `hold_revision`,
//! `release_revision` and `fail_jobs` steer the simulated kubelet.
//!
//! ```ignore
//! mod support;
//! let cluster = support::cluster();
//! let client = cluster.client().await;
//! let ns = cluster.namespace("demo").await;
//! ```
#![allow(dead_code)]

pub mod audit;
pub mod checker;
mod cluster;
mod gitea;
pub mod sampler;
mod simulator;

use std::future::Future;
use std::time::{Duration, Instant};

// Not every test binary uses every item.
#[allow(unused_imports)]
pub use checker::ServingChecker;
#[allow(unused_imports)]
pub use cluster::{cluster, TestCluster};
#[allow(unused_imports)]
pub use gitea::{Gitea, GITEA_USER};
#[allow(unused_imports)]
pub use sampler::Sampler;
#[allow(unused_imports)]
pub use simulator::{
    fail_jobs, hold_revision, release_revision, FAIL_ANNOTATION, NODE_NAME, UNREADY_ANNOTATION,
};

/// Polls `check` every 100 ms until it returns `Some`, and returns that value.
/// Panics when `timeout` passes first (a single check is cut off at the
/// deadline too, so a hung request cannot hang the test).
///
/// ```ignore
/// let api = &deployments;
/// wait_for(Duration::from_secs(60), || async move {
///     let d = api.get("web").await.ok()?;
///     (d.status?.ready_replicas == Some(2)).then_some(())
/// })
/// .await;
/// ```
pub async fn wait_for<T, F, Fut>(timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Ok(Some(value)) = tokio::time::timeout(left, check()).await {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("condition not met within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Like [`wait_for`], for checks that can say what they saw: polls `check`
/// every 100 ms until it returns `Ok`, and panics after `timeout` with `what`
/// and the last `Err` (so a timeout tells what state things were left in).
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::from("(no check finished)");
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, check()).await {
            Ok(Ok(value)) => return value,
            Ok(Err(seen)) => last = seen,
            Err(_) => {}
        }
        if Instant::now() >= deadline {
            panic!("{what}: not within {timeout:?}; last seen: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
