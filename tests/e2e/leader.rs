//! End-to-end: replicas of `kubemint run --leader-elect` share one Lease. Only
//! its holder reconciles; a standby takes over when the leader dies, and a
//! leader stopped with SIGTERM hands the Lease over at once.

use crate::fixture;
use crate::support;

use std::time::Duration;

use fixture::manifests::greeting;
use fixture::{apply_channel, install_crd, wait_applied, GitRepo, Operator};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use kubemint::controller::leader::LEASE_NAME;
use support::wait_for;

fn elected(kubeconfig: &std::path::Path, ns: &str, name: &str, lease: &str) -> Operator {
    Operator::start_with(
        kubeconfig,
        ns,
        name,
        &[
            "--leader-elect",
            "--leader-election-namespace",
            ns,
            "--leader-election-lease-duration",
            lease,
        ],
    )
}

#[tokio::test]
async fn only_the_leader_reconciles_and_a_standby_takes_over() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("leader").await;
    let kubeconfig = cluster.kubeconfig();
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let holder = || async {
        leases
            .get_opt(LEASE_NAME)
            .await
            .ok()??
            .spec?
            .holder_identity
    };
    let held_by = |op: &Operator| format!("_{}", op.pid());

    let repo = GitRepo::new();
    let first = repo
        .write(&[("deploy/cm.yaml", &greeting("one"))])
        .commit("one");
    apply_channel(&client, &ns, "app", &repo.url(), "deploy").await;

    // The first replica finds the Lease free and leads.
    let a = elected(kubeconfig, &ns, "-a", "3s");
    let a_id = held_by(&a);
    wait_for(Duration::from_secs(30), || async {
        holder().await.filter(|h| h.ends_with(&a_id))
    })
    .await;
    wait_applied(&client, &ns, "app", &first, &a).await;

    // The second is a standby: healthy and ready, but it does not reconcile.
    // It still answers webhooks as the leader would (it passes accepted ones
    // on through the channel): this channel has none, so 404.
    let b = elected(kubeconfig, &ns, "-b", "30s");
    let addr = b.http_addr().await;
    let http = reqwest::Client::new();
    let ready = http
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let hook = http
        .post(format!("http://{addr}/hooks/{ns}/app"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status(), 404);
    wait_for(Duration::from_secs(10), || async {
        b.log_text().contains("standby").then_some(())
    })
    .await;
    assert!(holder().await.unwrap().ends_with(&a_id));
    assert!(!b.log_text().contains("reconciled"), "{}", b.log_text());

    // The leader dies without a word: once its Lease expires the standby leads
    // and delivers the next commit.
    a.kill();
    let second = repo
        .write(&[("deploy/cm.yaml", &greeting("two"))])
        .commit("two");
    let b_id = held_by(&b);
    wait_for(Duration::from_secs(60), || async {
        holder().await.filter(|h| h.ends_with(&b_id))
    })
    .await;
    wait_applied(&client, &ns, "app", &second, &b).await;
    assert!(b.log_text().contains("leading"), "{}", b.log_text());

    // Stopped the way Kubernetes stops a pod, the leader releases its Lease
    // (it wrote a 30 s one, so it would otherwise still hold it).
    b.terminate();
    let after = holder().await;
    assert!(
        after.as_deref().is_none_or(|h| !h.ends_with(&b_id)),
        "still held by the stopped leader: {after:?}"
    );
}
