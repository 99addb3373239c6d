//! End-to-end (issue 13, many teams, one cluster): the operator's git cache
//! does not lend one tenant's private commits to another. Tenant A's channel
//! fetches a private repository over HTTPS with basic auth (lighttpd +
//! `git http-backend` on loopback, a test CA) with its credentials Secret.
//! Tenant B's channels, in another namespace of the same operator, name the
//! same URL and pin A's commit (`ref.commit`), without credentials or with
//! wrong ones. A cache keyed by URL alone would serve them that commit with
//! no network at all; B must instead fetch for itself and be refused, see
//! none of A's manifests, and deliver nothing, while A keeps delivering.
//!
//! One operator watches every namespace (so both tenants share its cache);
//! this file holds one test, so it sees only this test's channels.

use crate::fixture;
use crate::gitserver;
use crate::support;

use std::time::Duration;

use fixture::manifests::config_map;
use fixture::{apply_channel_with, channel, channel_events, condition, install_crd, Operator};
use gitserver::{GitRepo, HttpServer, HTTP_PASSWORD, HTTP_USER};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use kube::Client;
use serde_json::json;
use support::eventually;

/// What only tenant A's repository holds: none of it may reach tenant B.
const PRIVATE_NAME: &str = "a-private-plan";
const PRIVATE_VALUE: &str = "tenant-a-confidential-7c1e";
const PRIVATE_SUBJECT: &str = "tenant A's private rollout plan";

async fn create_secret(client: &Client, ns: &str, data: serde_json::Value) {
    fixture::create_secret(client, ns, "git", data).await
}

/// Everything B can read about its channel: status and events, as text.
async fn visible_to_b(client: &Client, ns: &str, name: &str) -> String {
    let ch = channel(client, ns, name).await;
    let events = channel_events(client, ns, name).await;
    format!("{}\n{events:?}", serde_json::to_string(&ch.status).unwrap())
}

#[tokio::test]
async fn a_tenant_cannot_read_another_tenant_s_cached_commit() {
    // Its operator watches every namespace.
    let _alone = crate::CONTROL_PLANE.write().await;
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns_a = cluster.namespace("iso-a").await;
    let ns_b = cluster.namespace("iso-b").await;

    let upstream = GitRepo::new();
    let sha = upstream
        .write(&[(
            "deploy/plan.yaml",
            &config_map(PRIVATE_NAME, &[("PLAN", PRIVATE_VALUE)]),
        )])
        .commit(PRIVATE_SUBJECT);
    let (server, ca_pem) = HttpServer::start_tls(upstream.root());
    let url = server.https_url("work");

    // Tenant A: its Secret, its channel on the branch; delivered.
    create_secret(
        &client,
        &ns_a,
        json!({"username": HTTP_USER, "password": HTTP_PASSWORD, "ca.crt": ca_pem}),
    )
    .await;
    let op = Operator::start_cluster_wide(cluster.kubeconfig(), "git-isolation", &[]);
    let a_spec = json!({"git": {"secretRef": {"name": "git"}}});
    apply_channel_with(&client, &ns_a, "web", &url, "deploy", a_spec).await;
    fixture::wait_applied(&client, &ns_a, "web", &sha, &op).await;
    let a_configs: Api<ConfigMap> = Api::namespaced(client.clone(), &ns_a);
    let plan = a_configs.get(PRIVATE_NAME).await.expect("A's ConfigMap");
    assert_eq!(plan.data.unwrap()["PLAN"], PRIVATE_VALUE);

    // Tenant B: A's URL and A's commit, once without credentials and once
    // with a Secret of its own holding the right CA but a wrong password.
    create_secret(
        &client,
        &ns_b,
        json!({"username": HTTP_USER, "password": "not-the-password", "ca.crt": ca_pem}),
    )
    .await;
    let pinned = json!({"commit": sha});
    let b_channels = [
        ("anonymous", json!({"git": {"ref": pinned}})),
        (
            "wrong-password",
            json!({"git": {"ref": pinned, "secretRef": {"name": "git"}}}),
        ),
    ];
    for (name, spec) in &b_channels {
        apply_channel_with(&client, &ns_b, name, &url, "deploy", spec.clone()).await;
    }
    for (name, _) in &b_channels {
        let (reason, message) = eventually(
            Duration::from_secs(60),
            &format!("B's channel {name} refused by the git server"),
            || async {
                let ch = channel(&client, &ns_b, name).await;
                match condition(&ch, "Ready") {
                    Some((status, reason, message)) if status == "False" => Ok((reason, message)),
                    other => Err(format!(
                        "Ready: {other:?}\noperator log:\n{}",
                        op.log_text()
                    )),
                }
            },
        )
        .await;
        assert_eq!(reason, "GitUnreachable", "{name}: {message}");
        assert!(message.contains("cannot fetch"), "{name}: {message}");
    }

    // A few polls later B still has nothing: never Ready, no commit, no object,
    // and not a word of A's manifests or commit in what B can read.
    tokio::time::sleep(Duration::from_secs(6)).await;
    for (name, _) in &b_channels {
        let ch = channel(&client, &ns_b, name).await;
        let ready = condition(&ch, "Ready").expect("a Ready condition");
        assert_eq!(ready.0, "False", "{name}: {ready:?}");
        let status = ch.status.clone().unwrap();
        assert!(status.last_applied_commit.is_none(), "{name}: {status:?}");
        assert!(status.last_attempted_commit.is_none(), "{name}: {status:?}");
        assert!(status.active_release.is_none(), "{name}: {status:?}");
        let seen = visible_to_b(&client, &ns_b, name).await;
        for private in [PRIVATE_NAME, PRIVATE_VALUE, PRIVATE_SUBJECT, "plan.yaml"] {
            assert!(!seen.contains(private), "{name} sees {private:?}:\n{seen}");
        }
        for secret in [HTTP_PASSWORD, "not-the-password"] {
            assert!(!seen.contains(secret), "{name} sees a password:\n{seen}");
        }
    }
    let b_configs: Api<ConfigMap> = Api::namespaced(client.clone(), &ns_b);
    assert!(b_configs.get_opt(PRIVATE_NAME).await.unwrap().is_none());
    let ours = ListParams::default().labels("app.kubernetes.io/managed-by=kubemint");
    assert!(b_configs.list(&ours).await.unwrap().items.is_empty());
    let log = op.log_text();
    for secret in [HTTP_PASSWORD, "not-the-password"] {
        assert!(!log.contains(secret), "the operator logged a password");
    }

    // A keeps working: its next commit is delivered as usual.
    let next = upstream
        .write(&[(
            "deploy/plan.yaml",
            &config_map(PRIVATE_NAME, &[("PLAN", "tenant-a-next")]),
        )])
        .commit("tenant A's next plan");
    fixture::wait_applied(&client, &ns_a, "web", &next, &op).await;
    let plan = a_configs.get(PRIVATE_NAME).await.unwrap();
    assert_eq!(plan.data.unwrap()["PLAN"], "tenant-a-next");
    assert!(b_configs.get_opt(PRIVATE_NAME).await.unwrap().is_none());
}
