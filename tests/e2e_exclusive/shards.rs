//! End-to-end: shards. `kubemint run --shard KEY` reconciles only the channels
//! labelled `kubemint.io/shard=KEY`, the unsharded operator only those without
//! the label; each shard elects its own leader; a webhook received by another
//! shard reaches the channel's own; a relabelled channel moves. Who touched
//! what is read from the API server's audit log, by User-Agent (each shard
//! sends its own, see `kubemint::cluster::user_agent`).

use crate::fixture;
use crate::support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use fixture::{apply_channel, apply_channel_with, create_secret, install_crd, wait_applied};
use fixture::{GitRepo, Operator};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use kubemint::api::{Channel, Shard, FINALIZER, SHARD_LABEL};
use kubemint::cluster::user_agent;
use kubemint::controller::leader::lease_name;
use serde_json::json;
use support::audit::{self, Class, Request};
use support::wait_for;

fn config_map(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  VALUE: \"{value}\"\n"
    )
}

/// The test cluster's client, with the Channel CRD installed, and a new
/// namespace named after `prefix`.
async fn setup(prefix: &str) -> (Client, String) {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    (client, cluster.namespace(prefix).await)
}

/// Labels channel `name` for `shard` (`None`: removes the label).
async fn set_shard(client: &Client, ns: &str, name: &str, shard: Option<&str>) {
    Api::<Channel>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {SHARD_LABEL: shard}}})),
        )
        .await
        .expect("labelling the channel");
}

/// `kubemint run` for `shard` in `ns`, with `extra` arguments.
fn operator(
    kubeconfig: &std::path::Path,
    ns: &str,
    shard: Option<&str>,
    extra: &[&str],
) -> Operator {
    let mut args: Vec<&str> = extra.to_vec();
    if let Some(key) = shard {
        args.extend(["--shard", key]);
    }
    let name = format!("-{}-{}", shard.unwrap_or("unsharded"), std::process::id());
    Operator::start_with(kubeconfig, ns, &name, &args)
}

/// The requests in `ns` of the operator of `shard` (its exact User-Agent:
/// the unsharded one's is a prefix of the shards'), received since `from`.
fn requests_of(shard: Option<&str>, ns: &str, from: Timestamp) -> Vec<Request> {
    let agent = user_agent(shard);
    audit::read(&support::cluster().audit_log())
        .into_iter()
        .filter(|r| r.user_agent == agent && r.at >= from && r.namespace.as_deref() == Some(ns))
        .collect()
}

/// The persisted writes among `requests`, described.
fn writes(requests: &[Request]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.class() == Class::Write)
        .map(Request::describe)
        .collect()
}

/// The `labelSelector` of a request, decoded.
fn label_selector(request: &Request) -> Option<String> {
    let url = reqwest::Url::parse(&format!("https://api{}", request.request_uri)).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == "labelSelector")
        .map(|(_, v)| v.into_owned())
}

/// Posts a push of `main` for channel `ns/hooked` to the operator at `addr`,
/// signed with `secret` (generic HMAC); the status and body of the answer.
async fn post(addr: std::net::SocketAddr, ns: &str, body: Vec<u8>, secret: &str) -> (u16, String) {
    let signature = kubemint::source::webhook::sign(&body, secret.as_bytes());
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/hooks/{ns}/hooked"))
        .header("x-signature-256", signature)
        .body(body)
        .send()
        .await
        .expect("posting the webhook");
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

/// How many passes the operator has finished well, from its metrics.
async fn successful_passes(op: &Operator) -> u64 {
    let addr = op.http_addr().await;
    let Ok(response) = reqwest::get(format!("http://{addr}/metrics")).await else {
        return 0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("kubemint_reconciles_total{") && l.contains("success"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn each_operator_touches_only_its_own_shard_s_channels() {
    let _alone = crate::CONTROL_PLANE.write().await;
    let (client, ns) = setup("shards").await;
    let channels = [("plain", None), ("alpha", Some("a")), ("beta", Some("b"))];

    let repo = GitRepo::new();
    let files: Vec<(String, String)> = channels
        .iter()
        .map(|(name, _)| (format!("{name}/cm.yaml"), config_map(name, "one")))
        .collect();
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let sha = repo.write(&files).commit("one");
    // Labelled before any operator runs, so no operator ever sees another's channel.
    for (name, shard) in channels {
        apply_channel(&client, &ns, name, &repo.url(), name).await;
        set_shard(&client, &ns, name, shard).await;
    }

    let from = Timestamp::now();
    let kubeconfig = support::cluster().kubeconfig();
    let ops: Vec<Operator> = channels
        .iter()
        .map(|(_, shard)| operator(kubeconfig, &ns, *shard, &[]))
        .collect();
    for ((name, _), op) in channels.iter().zip(&ops) {
        wait_applied(&client, &ns, name, &sha, op).await;
    }
    // A few more passes (every 2 s), which must stay on their side too.
    tokio::time::sleep(Duration::from_secs(5)).await;

    for ((name, shard), op) in channels.iter().zip(&ops) {
        let ours = requests_of(*shard, &ns, from);
        assert!(!ours.is_empty(), "no request from {:?}", user_agent(*shard));
        let touched: BTreeSet<&str> = ours
            .iter()
            .filter(|r| r.resource.starts_with("channels"))
            .filter_map(|r| r.name.as_deref())
            .collect();
        assert_eq!(touched, BTreeSet::from([*name]), "{:?}", user_agent(*shard));
        let delivered: BTreeSet<&str> = ours
            .iter()
            .filter(|r| r.class() == Class::Write && r.resource == "configmaps")
            .filter_map(|r| r.name.as_deref())
            .collect();
        assert_eq!(
            delivered,
            BTreeSet::from([*name]),
            "{:?}",
            user_agent(*shard)
        );
        // Its watch of channels selects its shard on the server.
        let selectors: BTreeSet<String> = ours
            .iter()
            .filter(|r| r.resource == "channels" && (r.verb == "watch" || r.verb == "list"))
            .filter_map(label_selector)
            .collect();
        let want = match shard {
            Some(key) => Shard::parse(key).unwrap(),
            None => Shard::unsharded(),
        };
        assert_eq!(
            selectors,
            BTreeSet::from([want.selector()]),
            "{}",
            op.log_text()
        );
    }
}

#[tokio::test]
async fn killing_a_shard_s_leader_hands_its_channels_to_its_standby_within_the_lease() {
    let _alone = crate::CONTROL_PLANE.write().await;
    let (client, ns) = setup("shard-leader").await;
    let kubeconfig = support::cluster().kubeconfig();
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let holder = |name: String| {
        let leases = leases.clone();
        async move { leases.get_opt(&name).await.ok()??.spec?.holder_identity }
    };
    let held_by = |op: &Operator| format!("_{}", op.pid());
    let shard_a = lease_name(&Shard::parse("a").unwrap());
    let unsharded = lease_name(&Shard::unsharded());

    let repo = GitRepo::new();
    let first = repo
        .write(&[
            ("alpha/cm.yaml", &config_map("alpha", "one")),
            ("plain/cm.yaml", &config_map("plain", "one")),
        ])
        .commit("one");
    apply_channel(&client, &ns, "alpha", &repo.url(), "alpha").await;
    set_shard(&client, &ns, "alpha", Some("a")).await;
    apply_channel(&client, &ns, "plain", &repo.url(), "plain").await;

    let lease = Duration::from_secs(4);
    let elect = [
        "--leader-elect",
        "--leader-election-namespace",
        &ns,
        "--leader-election-lease-duration",
        "4s",
    ];
    let started = Timestamp::now();
    let plain_leader = operator(kubeconfig, &ns, None, &elect);
    let a1 = operator(kubeconfig, &ns, Some("a"), &elect);
    // Both lead at once: each shard has a Lease of its own.
    let (a1_id, plain_id) = (held_by(&a1), held_by(&plain_leader));
    wait_for(Duration::from_secs(30), || async {
        holder(shard_a.clone())
            .await
            .filter(|h| h.ends_with(&a1_id))
    })
    .await;
    wait_for(Duration::from_secs(30), || async {
        holder(unsharded.clone())
            .await
            .filter(|h| h.ends_with(&plain_id))
    })
    .await;
    wait_applied(&client, &ns, "alpha", &first, &a1).await;
    wait_applied(&client, &ns, "plain", &first, &plain_leader).await;

    let a2 = operator(kubeconfig, &ns, Some("a"), &elect);
    wait_for(Duration::from_secs(10), || async {
        a2.log_text().contains("standby").then_some(())
    })
    .await;
    assert!(holder(shard_a.clone()).await.unwrap().ends_with(&a1_id));

    // The leader of shard a dies without a word.
    a1.kill();
    let killed = Instant::now();
    let second = repo
        .write(&[
            ("alpha/cm.yaml", &config_map("alpha", "two")),
            ("plain/cm.yaml", &config_map("plain", "two")),
        ])
        .commit("two");
    let a2_id = held_by(&a2);
    wait_for(Duration::from_secs(30), || async {
        holder(shard_a.clone())
            .await
            .filter(|h| h.ends_with(&a2_id))
    })
    .await;
    let took = killed.elapsed();
    println!("shard a's standby took the Lease {took:?} after its leader died (lease {lease:?})");
    // The Lease expires at most `lease` after the last renewal; the standby
    // tries at expiry. A second of slack for a loaded machine.
    assert!(took <= lease + Duration::from_secs(1), "took {took:?}");
    wait_applied(&client, &ns, "alpha", &second, &a2).await;
    println!("and delivered the next commit {:?} after", killed.elapsed());
    // The unsharded leader kept its own Lease and channel throughout.
    wait_applied(&client, &ns, "plain", &second, &plain_leader).await;
    assert!(holder(unsharded.clone())
        .await
        .unwrap()
        .ends_with(&plain_id));
    // Shard a never wrote for the unsharded operator's channel.
    let crossed: Vec<String> = writes(&requests_of(Some("a"), &ns, started))
        .into_iter()
        .filter(|w| w.contains("/plain"))
        .collect();
    assert!(crossed.is_empty(), "{crossed:?}");
}

#[tokio::test]
async fn a_relabelled_channel_moves_to_its_new_shard_without_a_prune_or_a_second_apply() {
    let _alone = crate::CONTROL_PLANE.write().await;
    let (client, ns) = setup("shard-move").await;
    let kubeconfig = support::cluster().kubeconfig();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);

    let repo = GitRepo::new();
    let first = repo
        .write(&[("deploy/cm.yaml", &config_map("mover", "one"))])
        .commit("one");
    apply_channel_with(
        &client,
        &ns,
        "mover",
        &repo.url(),
        "deploy",
        json!({"prune": true}),
    )
    .await;
    set_shard(&client, &ns, "mover", Some("a")).await;
    let a = operator(kubeconfig, &ns, Some("a"), &[]);
    let b = operator(kubeconfig, &ns, Some("b"), &[]);
    wait_applied(&client, &ns, "mover", &first, &a).await;
    let uid = config_maps.get("mover").await.unwrap().metadata.uid;
    assert_eq!(successful_passes(&b).await, 0);

    let moved = Timestamp::now();
    set_shard(&client, &ns, "mover", Some("b")).await;
    // Shard b takes it at once, and its first pass finds the release applied.
    wait_for(Duration::from_secs(30), || async {
        (successful_passes(&b).await > 0).then_some(())
    })
    .await;
    let b_first = writes(&requests_of(Some("b"), &ns, moved));
    println!("shard b's first pass after the move wrote: {b_first:?}");
    // At most its status and an event: nothing delivered again.
    let delivered: Vec<&String> = b_first
        .iter()
        .filter(|w| !w.contains(" channels/status ") && !w.contains(" events "))
        .collect();
    assert!(
        delivered.is_empty(),
        "shard b delivered again: {delivered:?}\n{}",
        b.log_text()
    );

    // No gap: the next commit is delivered by shard b.
    let second = repo
        .write(&[("deploy/cm.yaml", &config_map("mover", "two"))])
        .commit("two");
    wait_applied(&client, &ns, "mover", &second, &b).await;
    let cm = config_maps.get("mover").await.unwrap();
    assert_eq!(cm.data.unwrap()["VALUE"], "two");
    // Never pruned or recreated on the way.
    assert_eq!(cm.metadata.uid, uid);
    let channel = fixture::channel(&client, &ns, "mover").await;
    assert!(channel
        .metadata
        .finalizers
        .unwrap_or_default()
        .contains(&FINALIZER.to_string()));

    // The old shard wrote nothing after the move: no prune, no status, no apply.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let a_writes = writes(&requests_of(Some("a"), &ns, moved));
    assert!(
        a_writes.is_empty(),
        "shard a wrote after the move: {a_writes:?}\n{}",
        a.log_text()
    );
    assert!(
        a.log_text().contains("moved to another shard"),
        "{}",
        a.log_text()
    );
}

#[tokio::test]
async fn a_webhook_received_by_any_shard_wakes_the_repository_s_channels_in_every_shard() {
    let _alone = crate::CONTROL_PLANE.write().await;
    let (client, ns) = setup("shard-hook").await;
    let kubeconfig = support::cluster().kubeconfig();
    let token = "shard-hook-token-5f1c";
    create_secret(&client, &ns, "hook", json!({"token": token})).await;

    // Two channels on one repository: `hooked` (shard a, with the webhook)
    // and `sibling` (shard b), both polled hourly, so that only the webhook
    // can bring the next commit in time.
    let repo = GitRepo::new();
    let commit = |value: &str| {
        repo.write(&[
            ("hooked/cm.yaml", &config_map("hooked", value)),
            ("sibling/cm.yaml", &config_map("sibling", value)),
        ])
        .commit(value)
    };
    let first = commit("one");
    let hourly = json!({"git": {"interval": "1h"}, "driftInterval": "1h",
                        "webhook": {"secretRef": {"name": "hook"}}});
    for (name, shard) in [("hooked", "a"), ("sibling", "b")] {
        apply_channel_with(&client, &ns, name, &repo.url(), name, hourly.clone()).await;
        set_shard(&client, &ns, name, Some(shard)).await;
    }
    let plain = operator(kubeconfig, &ns, None, &[]);
    let a = operator(kubeconfig, &ns, Some("a"), &[]);
    let b = operator(kubeconfig, &ns, Some("b"), &[]);
    wait_applied(&client, &ns, "hooked", &first, &a).await;
    wait_applied(&client, &ns, "sibling", &first, &b).await;

    let second = commit("two");
    let body = br#"{"ref":"refs/heads/main"}"#.to_vec();
    let (plain_addr, a_addr) = (plain.http_addr().await, a.http_addr().await);
    // The unsharded operator checks the signature before it passes anything on.
    let (status, _) = post(plain_addr, &ns, body.clone(), "wrong").await;
    assert_eq!(status, 401);
    let sent = Timestamp::now();
    let started = Instant::now();
    let (status, text) = post(plain_addr, &ns, body.clone(), token).await;
    assert_eq!(status, 202, "{text}\n{}", plain.log_text());
    wait_applied(&client, &ns, "hooked", &second, &a).await;
    wait_applied(&client, &ns, "sibling", &second, &b).await;
    println!(
        "webhook to the unsharded operator -> applied by shards a and b in {:?}",
        started.elapsed()
    );
    // The unsharded operator's only writes: one annotation per channel.
    let passed_on = writes(&requests_of(None, &ns, sent));
    assert_eq!(
        passed_on,
        [
            format!("patch channels {ns}/hooked"),
            format!("patch channels {ns}/sibling")
        ],
        "{}",
        plain.log_text()
    );

    // Received by shard a, its own channel is woken in memory (no write) and
    // shard b's through its annotation.
    let third = commit("three");
    let direct = Timestamp::now();
    let (status, text) = post(a_addr, &ns, body.clone(), token).await;
    assert_eq!(status, 202, "{text}");
    wait_applied(&client, &ns, "hooked", &third, &a).await;
    wait_applied(&client, &ns, "sibling", &third, &b).await;
    let annotations: Vec<String> = writes(&requests_of(Some("a"), &ns, direct))
        .into_iter()
        .filter(|w| w.starts_with("patch channels "))
        .collect();
    assert_eq!(annotations, [format!("patch channels {ns}/sibling")]);
    for op in [&plain, &a, &b] {
        assert!(!op.log_text().contains(token), "the token is in a log");
    }
}

#[test]
fn a_shard_key_that_cannot_name_a_lease_is_refused_before_anything_runs() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubemint"))
        .args(["run", "--shard", "Team_A"])
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .expect("running kubemint");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("shard key 'Team_A' is not usable") && stderr.contains("lowercase"),
        "{stderr}"
    );
}
