//! End-to-end, issue 19: many channels on one operator.
//! - 50 channels on one monorepo served over smart HTTP: a commit to one app
//!   renders and writes only that app's channel, the 49 others record the
//!   commit and send nothing else, and idle polls make about one ref
//!   advertisement per interval for all 50 (counted in the server's log);
//! - fairness: while a channel's 1000-object release is applied under a low
//!   API rate limit, a one-object commit on another channel is Ready in
//!   seconds.

use crate::fixture;
use crate::gitserver;
use crate::support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fixture::fleet;
use fixture::{channel, condition, install_crd, last_applied, Operator};
use gitserver::counted::CountedHttp;
use gitserver::GitRepo;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use kubemint::controller::Channel;
use support::audit::{self, Class};

const APPS: usize = 50;
const CHANGED: usize = 7;

async fn create_channel(client: &Client, ns: &str, spec: &serde_json::Value) {
    let name = spec["metadata"]["name"].as_str().unwrap();
    Api::<Channel>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::apply("kubemint-tests").force(),
            &Patch::Apply(spec),
        )
        .await
        .expect("applying the Channel");
}

#[tokio::test]
async fn a_commit_to_one_app_of_fifty_renders_and_writes_only_that_app() {
    let _alone = crate::CONTROL_PLANE.write().await;
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("fleet").await;
    let upstream = GitRepo::new();
    let sha1 = upstream
        .write(&fleet::files(0..APPS, "nginx:1.27"))
        .commit("50 apps");
    let http = CountedHttp::start(upstream.root());
    let url = http.url("work");
    let op = Operator::start(cluster.kubeconfig(), &ns);
    let addr = op.http_addr().await;

    let installing = Instant::now();
    for i in 0..APPS {
        create_channel(
            &client,
            &ns,
            &fleet::channel(&ns, i, &url, &fleet::path(i), "10s"),
        )
        .await;
    }
    fleet::wait_all_ready(&client, &ns, APPS, &sha1, Duration::from_secs(240)).await;
    let install = http.requests("work");
    eprintln!(
        "install of {APPS} channels: {:.1} s, {} ref advertisements, {} fetches, {} renders",
        installing.elapsed().as_secs_f64(),
        install.advertisements,
        install.fetches,
        fleet::metric(addr, "kubemint_renders_total", "rendered").await,
    );
    assert!(
        install.advertisements < APPS,
        "channels created together share polls: {install:?} for {APPS} channels"
    );

    // One app's image changes.
    let rendered = fleet::metric(addr, "kubemint_renders_total", "\"rendered\"").await;
    let carried = fleet::metric(addr, "kubemint_renders_total", "carried_over").await;
    let from = Timestamp::now();
    let changed = fleet::name(CHANGED);
    let sha2 = upstream
        .write(&fleet::files(CHANGED..CHANGED + 1, "nginx:1.28"))
        .commit("app-0007: nginx 1.28");
    fleet::wait_all_ready(&client, &ns, APPS, &sha2, Duration::from_secs(60)).await;
    // Past the one pass that follows the new revision's readiness.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let to = Timestamp::now();
    let renders = fleet::metric(addr, "kubemint_renders_total", "\"rendered\"").await - rendered;
    let carried = fleet::metric(addr, "kubemint_renders_total", "carried_over").await - carried;
    assert_eq!(renders, 1.0, "only {changed} renders the commit");
    assert_eq!(
        carried,
        (APPS - 1) as f64,
        "the others carry their release over"
    );

    let writes: Vec<audit::Request> = audit::requests(
        &cluster.audit_log(),
        kubemint::cluster::USER_AGENT,
        from,
        to,
    )
    .into_iter()
    .filter(|r| r.namespace.as_deref() == Some(ns.as_str()) && r.class() == Class::Write)
    .collect();
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for w in &writes {
        *by_kind.entry(w.resource.as_str()).or_default() += 1;
    }
    eprintln!("writes after the commit: {by_kind:?}");
    let of_changed = |r: &&audit::Request| {
        r.name.as_deref().is_some_and(|n| {
            n == changed
                || n.starts_with(&format!("{changed}-"))
                || n.starts_with(&format!("{changed}."))
        })
    };
    let objects: Vec<&audit::Request> = writes
        .iter()
        .filter(|r| r.resource != "channels/status")
        .collect();
    let others: Vec<String> = objects
        .iter()
        .filter(|r| !of_changed(r))
        .map(|r| r.describe())
        .collect();
    assert!(
        others.is_empty(),
        "the 49 unchanged channels wrote no object and no event: {others:#?}"
    );
    let own = objects.len();
    assert!(
        own <= 10,
        "{changed}'s delivery took {own} writes: {by_kind:?}"
    );
    let statuses: BTreeMap<String, usize> = writes
        .iter()
        .filter(|r| r.resource == "channels/status")
        .fold(BTreeMap::new(), |mut m, r| {
            *m.entry(r.name.clone().unwrap_or_default()).or_default() += 1;
            m
        });
    eprintln!(
        "status writes after the commit: {} (of them {changed}: {})",
        statuses.values().sum::<usize>(),
        statuses.get(&changed).copied().unwrap_or_default()
    );
    assert!(
        statuses
            .iter()
            .filter(|(name, _)| **name != changed)
            .all(|(_, n)| *n == 1),
        "an unchanged channel records the commit with one status write: {statuses:?}"
    );
    let ch = channel(&client, &ns, &fleet::name(0)).await;
    assert_eq!(last_applied(&ch), Some(sha2.as_str()));

    // Idle: 50 channels polling every 10 s share about one poll per interval.
    let before = http.requests("work");
    let from = Timestamp::now();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let idle = http.requests("work") - before;
    let idle_writes = audit::requests(
        &cluster.audit_log(),
        kubemint::cluster::USER_AGENT,
        from,
        Timestamp::now(),
    )
    .into_iter()
    .filter(|r| r.namespace.as_deref() == Some(ns.as_str()) && r.class() == Class::Write)
    .count();
    eprintln!("30 s idle, {APPS} channels at 10 s: {idle:?}, {idle_writes} writes");
    assert!(
        idle.advertisements <= 6,
        "3 intervals need about 3 ref advertisements for all {APPS} channels, not {}",
        idle.advertisements
    );
    assert_eq!(idle.fetches, 0, "nothing moved: no fetch");
    assert_eq!(idle_writes, 0, "idle: no write");
}

#[tokio::test]
async fn a_small_commit_is_not_held_up_by_another_channel_s_huge_release() {
    let _alone = crate::CONTROL_PLANE.write().await;
    const BIG: usize = 250; // 1000 objects
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("fairness").await;
    let upstream = GitRepo::new();
    let small = |image: &str| vec![("small/app.yaml".to_string(), fleet::manifests(BIG, image))];
    let mut files = fleet::files(0..BIG, "nginx:1.27");
    for (path, _) in &mut files {
        *path = format!("big/{path}");
    }
    files.extend(small("nginx:1.27"));
    let sha1 = upstream
        .write(&files)
        .commit("a huge release and a small one");
    let url = format!("file://{}", upstream.path().display());
    // A low rate limit stretches the huge release over tens of seconds.
    let op = Operator::start_with(
        cluster.kubeconfig(),
        &ns,
        "fairness",
        &["--kube-api-qps", "80", "--kube-api-burst", "80"],
    );
    create_channel(&client, &ns, &fleet::channel(&ns, BIG, &url, "small", "1s")).await;
    let small_name = fleet::name(BIG);
    fixture::wait_applied(&client, &ns, &small_name, &sha1, &op).await;

    let big_started = Instant::now();
    let mut big = fleet::channel(&ns, 0, &url, "big", "1s");
    big["metadata"]["name"] = "big".into();
    create_channel(&client, &ns, &big).await;
    // The huge release is being applied.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let committed = Instant::now();
    let sha2 = upstream
        .write(&small("nginx:1.28"))
        .commit("small: nginx 1.28");
    fixture::wait_applied(&client, &ns, &small_name, &sha2, &op).await;
    let small_took = committed.elapsed();
    let big_now = channel(&client, &ns, "big").await;
    let big_ready = condition(&big_now, "Ready").is_some_and(|c| c.0 == "True");
    eprintln!(
        "small commit Ready in {:.1} s while the huge release was {}",
        small_took.as_secs_f64(),
        if big_ready {
            "done"
        } else {
            "still being applied"
        }
    );
    assert!(
        !big_ready,
        "the huge release was still being applied when the small commit was Ready"
    );
    assert!(
        small_took < Duration::from_secs(5),
        "a one-object commit waited {small_took:?} behind another channel's release"
    );
    fixture::wait_applied(&client, &ns, "big", &sha2, &op).await;
    eprintln!(
        "the huge release (1000 objects at 80 requests/s) took {:.1} s",
        big_started.elapsed().as_secs_f64()
    );
}

/// Unshared (network) polls the operator at `addr` has made so far.
async fn own_polls(addr: std::net::SocketAddr) -> f64 {
    fleet::metric(addr, "kubemint_git_polls_total", "shared=\"false\"").await
}

#[tokio::test]
async fn equal_credentials_share_polls_across_namespaces_and_other_credentials_get_nothing() {
    // Issue 25: channels in four namespaces, each with a Secret of its own
    // holding the same user and password, poll a repository over basic auth
    // together; a tenant whose Secret holds another password is refused by
    // the server and gets nothing from their polls.
    const NAMESPACES: usize = 4;
    const PER_NAMESPACE: usize = 3;
    let _alone = crate::CONTROL_PLANE.write().await;
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let upstream = GitRepo::new();
    let sha = upstream
        .write(&fleet::files(0..PER_NAMESPACE, "nginx:1.27"))
        .commit("three apps");
    let server = gitserver::HttpServer::start(upstream.root());
    let url = server.url("work");
    let credentials = serde_json::json!({
        "username": gitserver::HTTP_USER,
        "password": gitserver::HTTP_PASSWORD,
    });
    let mut namespaces = Vec::new();
    for n in 0..NAMESPACES {
        let ns = cluster.namespace(&format!("creds-{n}")).await;
        fixture::create_secret(&client, &ns, "git", credentials.clone()).await;
        namespaces.push(ns);
    }
    let tenant = cluster.namespace("creds-other").await;
    fixture::create_secret(
        &client,
        &tenant,
        "git",
        serde_json::json!({"username": gitserver::HTTP_USER, "password": "not-the-password"}),
    )
    .await;
    let op = Operator::start_cluster_wide(cluster.kubeconfig(), "fleet-credentials", &[]);
    let addr = op.http_addr().await;
    let with_secret = |ns: &str, i: usize| {
        let mut spec = fleet::channel(ns, i, &url, &fleet::path(i), "10s");
        spec["spec"]["git"]["secretRef"] = serde_json::json!({"name": "git"});
        spec
    };
    for ns in &namespaces {
        for i in 0..PER_NAMESPACE {
            create_channel(&client, ns, &with_secret(ns, i)).await;
        }
    }
    create_channel(&client, &tenant, &with_secret(&tenant, 0)).await;
    for ns in &namespaces {
        fleet::wait_all_ready(&client, ns, PER_NAMESPACE, &sha, Duration::from_secs(120)).await;
    }
    let install = own_polls(addr).await;
    let channels = (NAMESPACES * PER_NAMESPACE) as f64;
    eprintln!("install of {channels} channels in {NAMESPACES} namespaces: {install} polls");
    assert!(
        install < NAMESPACES as f64,
        "channels with equal credentials share polls across namespaces: {install} polls for \
         {channels} channels (one per namespace's Secret would be {NAMESPACES})"
    );

    // Idle: about one poll per interval for all of them, not one per namespace.
    let before = own_polls(addr).await;
    tokio::time::sleep(Duration::from_secs(21)).await;
    let idle = own_polls(addr).await - before;
    eprintln!("idle 21 s (10 s interval): {idle} polls for {NAMESPACES} namespaces");
    assert!(
        idle <= 4.0,
        "{idle} polls in two intervals: one per namespace would be {}",
        2 * NAMESPACES
    );

    // The tenant with other credentials: refused by the server, no commit, nothing delivered.
    let name = fleet::name(0);
    let ch = support::eventually(
        Duration::from_secs(60),
        "the tenant's channel refused by the git server",
        || async {
            let ch = channel(&client, &tenant, &name).await;
            match condition(&ch, "Ready") {
                Some((status, reason, _)) if status == "False" && reason == "GitUnreachable" => {
                    Ok(ch)
                }
                other => Err(format!(
                    "Ready: {other:?}\noperator log:\n{}",
                    op.log_text()
                )),
            }
        },
    )
    .await;
    assert!(last_applied(&ch).is_none(), "{:?}", ch.status);
    let status = ch.status.clone().unwrap_or_default();
    assert!(status.last_attempted_commit.is_none(), "{status:?}");
    let delivered =
        Api::<k8s_openapi::api::apps::v1::ReplicaSet>::namespaced(client.clone(), &tenant)
            .list(&Default::default())
            .await
            .unwrap();
    assert!(
        delivered.items.is_empty(),
        "the tenant got {} ReplicaSets",
        delivered.items.len()
    );
    assert!(!op.log_text().contains(gitserver::HTTP_PASSWORD));
}
