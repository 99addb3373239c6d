//! Benchmark (not a timed test): the cost of a no-change poll next to a full
//! fetch, against `git daemon` and lighttpd + `git http-backend` on loopback.
//! Prints bytes received, objects, round trips and time. `harness = false`, so
//! `cargo test --all-targets` runs it once, quickly, and it exits 0.

mod gitserver;

use std::time::Duration;

use gitserver::{GitDaemon, GitRepo, HttpServer, HTTP_PASSWORD, HTTP_USER};
use kubemint::source::{FetchRequest, GitCache, GitCredentials, RefRequest, TransferStats};

const FILES: usize = 300;
const POLLS: u32 = 20;

fn row(what: &str, s: &TransferStats) {
    println!(
        "  {what:<28} {:>10} B {:>7} objects {:>3} round trips {:>9.2} ms",
        s.received_bytes,
        s.received_objects,
        s.round_trips,
        s.elapsed.as_secs_f64() * 1000.0
    );
}

async fn bench(name: &str, url: &str, creds: GitCredentials) {
    let request = FetchRequest {
        credentials: creds,
        ..FetchRequest::new(url, RefRequest::Branch("main".into()))
    };
    let deep = FetchRequest {
        shallow: false,
        ..request.clone()
    };
    println!("{name}: {url}");
    let shallow_dir = tempfile::tempdir().unwrap();
    let full = GitCache::new(shallow_dir.path())
        .fetch(&request)
        .await
        .unwrap();
    row("full fetch (shallow)", &full.stats);
    let deep_dir = tempfile::tempdir().unwrap();
    let deep_full = GitCache::new(deep_dir.path()).fetch(&deep).await.unwrap();
    row("full fetch (history)", &deep_full.stats);

    let cache = GitCache::new(shallow_dir.path());
    let mut total = Duration::ZERO;
    let mut bytes = 0;
    let mut last = TransferStats::default();
    for _ in 0..POLLS {
        let poll = cache.fetch(&request).await.unwrap();
        assert!(poll.unchanged());
        total += poll.stats.elapsed;
        bytes += poll.stats.received_bytes;
        last = poll.stats;
    }
    row("no-change poll (last)", &last);
    // The cache entry is per URL and credentials: a no-change poll of the same
    // channel still finds its own entry, and costs one ref advertisement.
    assert_eq!(last.round_trips, 1, "a no-change poll is one round trip");
    assert_eq!(last.received_bytes, 0, "a no-change poll receives no pack");
    println!(
        "  {:<28} {:>10} B {:>29.2} ms (mean of {POLLS})",
        "no-change poll (mean)",
        bytes / POLLS as usize,
        total.as_secs_f64() * 1000.0 / f64::from(POLLS)
    );
}

#[tokio::main]
async fn main() {
    let upstream = GitRepo::new();
    for i in 0..FILES {
        let path = upstream.path().join(format!("deploy/cm-{i:03}.yaml"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let body = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:03}\ndata:\n  value: \"{}\"\n",
            "x".repeat(200 + i)
        );
        std::fs::write(path, body).unwrap();
    }
    upstream.git(&["add", "-A"]);
    upstream.git(&["commit", "-q", "-m", "many files"]);
    for n in 0..5 {
        upstream
            .write(&[("deploy/cm-000.yaml", &format!("v: {n}\n"))])
            .commit("change");
    }
    println!("bench_poll: {FILES} manifests, 6 commits");
    let daemon = GitDaemon::start(upstream.root());
    bench("git daemon", &daemon.url("work"), GitCredentials::none()).await;
    let http = HttpServer::start(upstream.root());
    let creds = GitCredentials::from_secret_data(
        &[
            ("username".to_string(), HTTP_USER.as_bytes().to_vec()),
            ("password".to_string(), HTTP_PASSWORD.as_bytes().to_vec()),
        ]
        .into(),
    )
    .unwrap();
    bench("http (basic auth)", &http.url("work"), creds).await;
}
