//! Fleet benchmark (issue 19), in the format of Flux's flux-benchmark; not
//! part of the test run: `cargo bench --bench fleet [-- N,N,...]` (default
//! 100,500,1000) starts the local control plane and, for each N, prints:
//!
//! - the floor: `kubectl apply --server-side` of the same N×4 objects;
//! - a monorepo variant (N channels on `apps/<name>` of one repository) and a
//!   variant with N repositories, each through:
//!   - install: from creating the N channels to all of them Ready with the commit;
//!   - upgrade: one commit changing every app's image (N commits, one per
//!     repository, in the second variant) to all of them Ready with it;
//!   - one app: one commit changing one app, to that channel Ready (and then
//!     every channel having recorded the commit);
//!   - idle: 60 s with nothing changing;
//!
//!   each with the wall time, the operator's CPU seconds and peak RSS,
//!   kubemint's API requests by verb (audit log, by user agent), git requests
//!   (ref advertisements and fetches, from the git server's access log) and
//!   renders (the operator's metrics);
//! - a kustomize variant (issue 25; `FLEET_VARIANTS=kustomize`): every app a
//!   kustomize overlay (`resources: [../../base]`, `namePrefix`, `labels`) of
//!   one shared base with a `configMapGenerator` and `images`, built by the
//!   render worker (`kubemint-render-worker` on PATH or from
//!   tools/render-worker/install.sh's cache, passed as `--kustomize`); the
//!   channels spread over 10 namespaces, each with a git Secret of its own
//!   holding the same basic-auth credentials (and the test CA), and the
//!   repository served over HTTPS with basic auth. One cluster-wide operator
//!   (its own `--shard`) takes them through install, a change to the shared
//!   base (no webhook: it arrives with the next poll; every app re-minted), one
//!   app's commit (with a webhook), 60 s idle, and where memory goes: the
//!   operator before any channel, after the N, and a second operator with one
//!   channel whose watches hold the N apps' objects (the reflector caches
//!   without the channels); the render workers' RSS beside the operator's.
//!   Its memory figures are clean with one N per run (a later N's watches
//!   would also hold an earlier N's objects).
//!
//! Each app is a Deployment with 0 replicas, a ServiceAccount, a Service and
//! an Ingress. Channels poll every 60 s, and every push is followed by a push
//! webhook (GitLab's format) to the operator for one channel of the pushed
//! repository, as a forge would send: the operator wakes every channel of
//! that repository and ref.

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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fixture::fleet;
use fixture::{install_crd, Operator};
use futures::StreamExt;
use gitserver::counted::{CountedHttp, GitRequests};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use kubemint::controller::Channel;
use process::{cpu_seconds, memory_mib, secs};
use support::audit;

const IDLE: Duration = Duration::from_secs(60);
/// The Secret of the channels' push webhook, and its token.
const HOOK_SECRET: &str = "push-hook";
const HOOK_TOKEN: &str = "bench-webhook-token";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("fleet benchmark skipped (run: cargo bench --bench fleet [-- 100,500,1000])");
        return;
    }
    let sizes: Vec<usize> = args
        .iter()
        .skip(1)
        .find(|a| a.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(|a| a.split(',').map(|n| n.parse().expect("N,N,...")).collect())
        .unwrap_or_else(|| vec![100, 500, 1000]);
    let variants: Vec<String> = std::env::var("FLEET_VARIANTS")
        .unwrap_or_else(|_| "monorepo,repos,kustomize".into())
        .split(',')
        .map(str::to_string)
        .collect();
    let cluster = support::cluster();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let client = cluster.client().await;
        install_crd(&client).await;
        for n in sizes {
            floor(cluster, n).await;
            for variant in &variants {
                let shape = match variant.as_str() {
                    "monorepo" => Shape::Monorepo,
                    "repos" => Shape::Repos,
                    "kustomize" => Shape::Kustomize,
                    other => {
                        panic!("FLEET_VARIANTS: no variant {other:?} (monorepo, repos, kustomize)")
                    }
                };
                Fleet::run(cluster, &client, n, shape).await;
            }
        }
    });
}

/// `kubectl apply --server-side` of the N apps' objects into a fresh namespace.
async fn floor(cluster: &support::TestCluster, n: usize) {
    let dir = tempfile::tempdir().unwrap();
    for (path, content) in fleet::files(0..n, "nginx:1.27") {
        let file = dir.path().join(path.replace('/', "-"));
        std::fs::write(file, content).unwrap();
    }
    let ns = cluster.namespace("floor").await;
    let from = Timestamp::now();
    let started = Instant::now();
    let out = Command::new(&cluster.kubectl)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args(["apply", "--server-side", "-n", &ns, "-f"])
        .arg(dir.path())
        .output()
        .expect("running kubectl");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "kubectl apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counts = audit::count(&cluster.audit_log(), "kubectl/", from, Timestamp::now());
    println!(
        "\nN={n}: kubectl apply --server-side of {} objects: {} ({counts})",
        n * 4,
        secs(took)
    );
}

/// The variants.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Plain manifests at `apps/<name>` of one repository, anonymous HTTP.
    Monorepo,
    /// Plain manifests, one repository per app.
    Repos,
    /// Kustomize overlays of one shared base in one repository, over HTTPS
    /// with basic auth, channels in [`NAMESPACES`] namespaces.
    Kustomize,
}

/// The kustomize variant's namespaces, each with its own git Secret.
const NAMESPACES: usize = 10;
/// The git Secret of each of the kustomize variant's namespaces.
const GIT_SECRET: &str = "git";
const WORKER: &str = "kubemint-render-worker";

/// One variant's run: the repositories, the git server, the operator, and
/// what it has measured so far.
struct Fleet {
    cluster: &'static support::TestCluster,
    client: Client,
    /// Channel `i` is in `namespaces[i % len]` (one namespace but for the kustomize variant).
    namespaces: Vec<String>,
    n: usize,
    /// The monorepo (`mono`), or one repository per app (`r-<name>`), under `root`.
    monorepo: bool,
    shape: Shape,
    /// The kustomize variant's `--shard` (its channels' `kubemint.io/shard`).
    shard: Option<String>,
    /// RSS of the operator before any channel existed, MiB.
    empty_rss: f64,
    root: tempfile::TempDir,
    http: CountedHttp,
    op: Operator,
    addr: std::net::SocketAddr,
    channels: Store<Channel>,
}

/// What one phase cost.
struct Phase {
    wall: Duration,
    cpu: f64,
    peak_rss: f64,
    requests: BTreeMap<String, usize>,
    git: GitRequests,
    renders: f64,
    carried: f64,
}

impl Fleet {
    async fn run(cluster: &'static support::TestCluster, client: &Client, n: usize, shape: Shape) {
        let monorepo = shape != Shape::Repos;
        let root = tempfile::tempdir().unwrap();
        let name = match shape {
            Shape::Monorepo => "monorepo",
            Shape::Repos => "repositories",
            Shape::Kustomize => "kustomize overlays, 10 namespaces, HTTPS with basic auth",
        };
        let prepared = Instant::now();
        match shape {
            Shape::Monorepo => {
                git_init(&root.path().join("mono"));
                commit(
                    &root.path().join("mono"),
                    &fleet::files(0..n, "nginx:1.27"),
                    "apps",
                );
            }
            Shape::Repos => {
                for i in 0..n {
                    let repo = root.path().join(format!("r-{}", fleet::name(i)));
                    git_init(&repo);
                    commit(&repo, &fleet::files(i..i + 1, "nginx:1.27"), "app");
                }
            }
            // One overlay more than N: the memory probe's app.
            Shape::Kustomize => {
                git_init(&root.path().join("mono"));
                commit(
                    &root.path().join("mono"),
                    &fleet::kustomize_files(0..n + 1, "hello"),
                    "base and overlays",
                );
            }
        }
        let (http, ca) = match shape {
            Shape::Kustomize => {
                let (http, ca) = CountedHttp::start_tls_basic(root.path());
                (http, Some(ca))
            }
            _ => (CountedHttp::start(root.path()), None),
        };
        let credentials = serde_json::json!({
            "username": gitserver::HTTP_USER,
            "password": gitserver::HTTP_PASSWORD,
            "ca.crt": ca.unwrap_or_default(),
        });
        let mut namespaces = Vec::new();
        for _ in 0..if shape == Shape::Kustomize {
            NAMESPACES
        } else {
            1
        } {
            let ns = cluster
                .namespace(match shape {
                    Shape::Monorepo => "mono",
                    Shape::Repos => "repos",
                    Shape::Kustomize => "kz",
                })
                .await;
            fixture::create_secret(
                client,
                &ns,
                HOOK_SECRET,
                serde_json::json!({"token": HOOK_TOKEN}),
            )
            .await;
            if shape == Shape::Kustomize {
                fixture::create_secret(client, &ns, GIT_SECRET, credentials.clone()).await;
            }
            namespaces.push(ns);
        }
        let shard = (shape == Shape::Kustomize).then(|| format!("kz-{n}"));
        let op = match &shard {
            Some(shard) => {
                let worker = worker_program();
                println!("\n(render worker: {})", worker.display());
                Operator::start_cluster_wide(
                    cluster.kubeconfig(),
                    &format!("fleet-{n}-kustomize"),
                    &["--shard", shard, "--kustomize", &worker.to_string_lossy()],
                )
            }
            None => Operator::start_with(
                cluster.kubeconfig(),
                &namespaces[0],
                &format!("-fleet-{n}-{name}"),
                &[],
            ),
        };
        let addr = op.http_addr().await;
        // Settled: the operator with no channel yet.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let empty_rss = memory_mib(op.pid(), "VmRSS");
        let api: Api<Channel> = match shape {
            Shape::Kustomize => Api::all(client.clone()),
            _ => Api::namespaced(client.clone(), &namespaces[0]),
        };
        let (channels, writer) = reflector::store();
        let stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(writer)
            .applied_objects();
        tokio::spawn(stream.for_each(|_| async {}));
        let fleet = Fleet {
            cluster,
            client: client.clone(),
            namespaces,
            n,
            monorepo,
            shape,
            shard,
            empty_rss,
            root,
            http,
            op,
            addr,
            channels,
        };
        println!(
            "\nN={n}, {name} (repositories made in {}):",
            secs(prepared.elapsed())
        );
        match shape {
            Shape::Kustomize => fleet.kustomize_phases().await,
            _ => fleet.phases().await,
        }
    }

    /// The namespace of channel `i`.
    fn ns(&self, i: usize) -> &str {
        &self.namespaces[i % self.namespaces.len()]
    }

    /// Channel `i`'s spec: on its path, polling every 60 s, with the push
    /// webhook; in the kustomize variant also its namespace's git Secret and
    /// the operator's shard.
    fn spec(&self, i: usize) -> serde_json::Value {
        let ns = self.ns(i);
        let mut spec = fleet::channel(ns, i, &self.url(i), &fleet::path(i), "60s");
        spec["spec"]["webhook"] = serde_json::json!({"secretRef": {"name": HOOK_SECRET}});
        if let Some(shard) = &self.shard {
            spec["spec"]["git"]["secretRef"] = serde_json::json!({"name": GIT_SECRET});
            spec["metadata"]["labels"] = shard_labels(shard);
        }
        spec
    }

    /// Creates (server-side applies) the channels `range`, 32 at a time.
    async fn create_channels(&self, range: std::ops::Range<usize>) {
        futures::stream::iter(range)
            .for_each_concurrent(32, |i| async move {
                Api::<Channel>::namespaced(self.client.clone(), self.ns(i))
                    .patch(
                        &fleet::name(i),
                        &PatchParams::apply("kubemint-bench").force(),
                        &Patch::Apply(&self.spec(i)),
                    )
                    .await
                    .expect("creating a channel");
            })
            .await;
    }

    /// The kustomize variant (issue 25): install, a change to the shared
    /// base, one app's commit, idle, and where the memory goes.
    async fn kustomize_phases(&self) {
        let n = self.n;
        let repo = self.repo(0);
        let sha = head(&repo);
        let install = self
            .measure(|| async {
                self.create_channels(0..n).await;
                self.wait(|i| self.ready_with(i, &sha), "install").await;
            })
            .await;
        self.report(
            "install",
            &install,
            "target: 1000 apps <= 60 s, <= 120 MiB, a few ref advertisements",
        );
        self.report_workers();

        // A change to the shared base: every app's ConfigMap (and so its
        // Deployment) changes. No webhook: it arrives with the next poll.
        let (mut first, mut all) = (Duration::ZERO, Duration::ZERO);
        let base = self
            .measure(|| async {
                let started = Instant::now();
                let sha = commit(&repo, &fleet::kustomize_base("hola"), "base: GREETING=hola");
                // The first channel Ready with it tells when the poll came.
                loop {
                    if (0..n).any(|i| self.ready_with(i, &sha)) {
                        break;
                    }
                    assert!(
                        started.elapsed() < Duration::from_secs(300),
                        "no channel took the base change in 5 min"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                first = started.elapsed();
                self.wait(|i| self.ready_with(i, &sha), "base change").await;
                all = started.elapsed();
            })
            .await;
        self.report(
            "base",
            &base,
            "target: all 1000 re-minted <= 60 s after the poll",
        );
        println!(
            "    first channel Ready with it {} after the commit (the poll), all {n} after {} ({} after the first)",
            secs(first),
            secs(all),
            secs(all - first)
        );
        self.report_workers();

        // One app's commit, with its webhook.
        let one = n / 2;
        let (mut ready, mut recorded) = (Duration::ZERO, Duration::ZERO);
        let single = self
            .measure(|| async {
                let started = Instant::now();
                let sha = commit(
                    &repo,
                    &[fleet::kustomize_overlay(one, Some("1.29"))],
                    "one app: nginx 1.29",
                );
                self.push_webhook(one).await;
                self.wait(|i| i != one || self.ready_with(i, &sha), "one app")
                    .await;
                ready = started.elapsed();
                self.wait(|i| self.ready_with(i, &sha), "one app, recorded")
                    .await;
                recorded = started.elapsed();
            })
            .await;
        self.report(
            "one app",
            &single,
            "target: Ready < 2 s, the others render nothing",
        );
        println!(
            "    {} Ready with it {} after the push; every channel had recorded it after {}",
            fleet::name(one),
            secs(ready),
            secs(recorded)
        );

        let idle = self.measure(|| tokio::time::sleep(IDLE)).await;
        self.report(
            "idle 60 s",
            &idle,
            "target: 1 ref advertisement per repository and credentials per interval, 0 writes",
        );
        self.memory().await;
    }

    /// Where the memory goes: the operator before any channel, with the N,
    /// and a second operator with one channel, whose cluster-wide watches
    /// (label-selected to every channel's objects) hold the N apps' objects
    /// too, but not the N channels, their polls or their rendered releases.
    async fn memory(&self) {
        let n = self.n;
        let rss = memory_mib(self.op.pid(), "VmRSS");
        let shard = format!("{}-probe", self.shard.as_deref().unwrap_or("probe"));
        let worker = worker_program();
        let probe = Operator::start_cluster_wide(
            self.cluster.kubeconfig(),
            &format!("fleet-{n}-kustomize-probe"),
            &["--shard", &shard, "--kustomize", &worker.to_string_lossy()],
        );
        probe.http_addr().await;
        let mut spec = self.spec(n);
        spec["metadata"]["labels"] = shard_labels(&shard);
        let ns = self.ns(n).to_string();
        Api::<Channel>::namespaced(self.client.clone(), &ns)
            .patch(
                &fleet::name(n),
                &PatchParams::apply("kubemint-bench").force(),
                &Patch::Apply(&spec),
            )
            .await
            .expect("creating the probe's channel");
        let sha = head(&self.repo(0));
        let started = Instant::now();
        loop {
            let ch = Api::<Channel>::namespaced(self.client.clone(), &ns)
                .get(&fleet::name(n))
                .await
                .expect("reading the probe's channel");
            if fixture::last_applied(&ch) == Some(sha.as_str()) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the probe's channel not Ready in 2 min:\n{}",
                probe.log_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Let the watches settle after its first pass.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let probe_rss = memory_mib(probe.pid(), "VmRSS");
        drop(probe);
        let per = |mib: f64| mib * 1024.0 / n as f64;
        println!(
            "  memory   operator with no channel {:.1} MiB; with the {n} channels {rss:.1} MiB ({:.0} KiB per channel); \
             an operator with 1 channel whose watches hold the {n} apps' objects {probe_rss:.1} MiB",
            self.empty_rss,
            per(rss - self.empty_rss),
        );
        println!(
            "    per channel: {:.0} KiB the reflector caches of its objects, {:.0} KiB the rest (the channel, its poll, its rendered release, its status)",
            per(probe_rss - self.empty_rss),
            per(rss - probe_rss),
        );
        self.report_workers();
    }

    /// The render workers' RSS (children of the operator), beside the operator's.
    fn report_workers(&self) {
        let workers = children(self.op.pid(), WORKER);
        let rss: f64 = workers.iter().map(|p| memory_mib(*p, "VmRSS")).sum();
        let peak: f64 = workers.iter().map(|p| memory_mib(*p, "VmHWM")).sum();
        println!(
            "    operator RSS {:.1} MiB (peak {:.1}); {} render worker(s) RSS {rss:.1} MiB (peaks summed {peak:.1})",
            memory_mib(self.op.pid(), "VmRSS"),
            memory_mib(self.op.pid(), "VmHWM"),
            workers.len(),
        );
    }

    fn url(&self, i: usize) -> String {
        if self.monorepo {
            self.http.url("mono")
        } else {
            self.http.url(&format!("r-{}", fleet::name(i)))
        }
    }

    fn repo(&self, i: usize) -> PathBuf {
        match self.monorepo {
            true => self.root.path().join("mono"),
            false => self.root.path().join(format!("r-{}", fleet::name(i))),
        }
    }

    async fn phases(&self) {
        let n = self.n;
        // Install.
        let shas: Vec<String> = (0..n).map(|i| head(&self.repo(i))).collect();
        let install = self
            .measure(|| async {
                self.create_channels(0..n).await;
                self.wait(|i| self.ready_with(i, &shas[i]), "install").await;
            })
            .await;
        self.report(
            "install",
            &install,
            "target: 1000 apps <= 2 min, <= 150 MiB",
        );

        // Upgrade: every app's image.
        let upgrade = self
            .measure(|| async {
                let shas = self.commit_apps(0..n, "nginx:1.28").await;
                self.wait(|i| self.ready_with(i, &shas[i]), "upgrade").await;
            })
            .await;
        self.report("upgrade", &upgrade, "target: 1000 apps <= 3 min");

        // One app.
        let one = n / 2;
        let (mut ready, mut recorded) = (Duration::ZERO, Duration::ZERO);
        let single = self
            .measure(|| async {
                let started = Instant::now();
                let shas = self.commit_apps(one..one + 1, "nginx:1.29").await;
                let sha = shas[one].clone();
                self.wait(|i| i != one || self.ready_with(i, &sha), "one app")
                    .await;
                ready = started.elapsed();
                // Then until every channel of the repository recorded the commit.
                if self.monorepo {
                    self.wait(|i| self.ready_with(i, &sha), "one app, recorded")
                        .await;
                }
                recorded = started.elapsed();
            })
            .await;
        self.report(
            "one app",
            &single,
            "target: < 2 s, <= 10 writes, others render nothing",
        );
        println!(
            "    {} Ready with it {} after the push; every channel had recorded it after {}",
            fleet::name(one),
            secs(ready),
            secs(recorded)
        );

        // Idle.
        let idle = self.measure(|| tokio::time::sleep(IDLE)).await;
        self.report(
            "idle 60 s",
            &idle,
            "target: 1 ref advertisement per repository per interval, 0 writes",
        );
        println!(
            "    RSS now {:.1} MiB ({:.1} KiB per channel over a 40 MiB base)",
            memory_mib(self.op.pid(), "VmRSS"),
            (memory_mib(self.op.pid(), "VmRSS") - 40.0) * 1024.0 / n as f64
        );
    }

    /// Commits `image` to the apps in `range`, each push followed by its
    /// webhook; the sha each app's channel must reach.
    async fn commit_apps(&self, range: std::ops::Range<usize>, image: &str) -> Vec<String> {
        if self.monorepo {
            let first = range.start;
            let sha = commit(&self.repo(0), &fleet::files(range, image), image);
            self.push_webhook(first).await;
            return vec![sha; self.n];
        }
        let mut shas: Vec<String> = (0..self.n).map(|i| head(&self.repo(i))).collect();
        let pushing = Instant::now();
        let pushes = range.len();
        for i in range {
            shas[i] = commit(&self.repo(i), &fleet::files(i..i + 1, image), image);
            self.push_webhook(i).await;
        }
        if pushes > 1 {
            println!(
                "    ({pushes} commits and webhooks, one after another, took {} of it)",
                secs(pushing.elapsed())
            );
        }
        shas
    }

    /// The push webhook a forge sends for app `i`'s repository.
    async fn push_webhook(&self, i: usize) {
        let url = format!(
            "http://{}/hooks/{}/{}",
            self.addr,
            self.ns(i),
            fleet::name(i)
        );
        let response = reqwest::Client::new()
            .post(url)
            .header("X-Gitlab-Token", HOOK_TOKEN)
            .header("X-Gitlab-Event", "Push Hook")
            .body(r#"{"object_kind":"push","ref":"refs/heads/main"}"#)
            .send()
            .await
            .expect("sending the webhook");
        assert_eq!(response.status().as_u16(), 202, "webhook refused");
    }

    fn ready_with(&self, i: usize, sha: &str) -> bool {
        let Some(ch) = self
            .channels
            .get(&reflector::ObjectRef::new(&fleet::name(i)).within(self.ns(i)))
        else {
            return false;
        };
        let Some(status) = ch.status.as_ref() else {
            return false;
        };
        status
            .last_applied_commit
            .as_ref()
            .is_some_and(|c| c.sha == sha)
            && status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    }

    /// Waits (up to 15 min) until `done(i)` for every app.
    async fn wait(&self, done: impl Fn(usize) -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(900);
        loop {
            let missing = (0..self.n).filter(|i| !done(*i)).count();
            if missing == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {missing} of {} channels not done after 15 min\n{}",
                self.n,
                self.op
                    .log_text()
                    .lines()
                    .rev()
                    .take(40)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn measure<F, Fut>(&self, phase: F) -> Phase
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let pid = self.op.pid();
        let (cpu, git) = (cpu_seconds(pid), self.http.requests(""));
        let renders = fleet::metric(self.addr, "kubemint_renders_total", "\"rendered\"").await;
        let carried = fleet::metric(self.addr, "kubemint_renders_total", "carried_over").await;
        let from = Timestamp::now();
        let started = Instant::now();
        phase().await;
        let wall = started.elapsed();
        // Requests are logged a moment after they were answered (lighttpd
        // buffers its access log for a second or two).
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut requests = BTreeMap::new();
        for r in audit::requests(
            &self.cluster.audit_log(),
            kubemint::cluster::USER_AGENT,
            from,
            Timestamp::now(),
        ) {
            let verb = match r.class() {
                audit::Class::DryRun => "dry-run".to_string(),
                _ => r.verb.clone(),
            };
            *requests.entry(verb).or_default() += 1;
        }
        Phase {
            wall,
            cpu: cpu_seconds(pid) - cpu,
            peak_rss: memory_mib(pid, "VmHWM"),
            requests,
            git: self.http.requests("") - git,
            renders: fleet::metric(self.addr, "kubemint_renders_total", "\"rendered\"").await
                - renders,
            carried: fleet::metric(self.addr, "kubemint_renders_total", "carried_over").await
                - carried,
        }
    }

    fn report(&self, what: &str, p: &Phase, target: &str) {
        let total: usize = p.requests.values().sum();
        let verbs: Vec<String> = p.requests.iter().map(|(v, n)| format!("{v} {n}")).collect();
        println!(
            "  {what:<10} {:>9}  cpu {:>6.1} s  peak RSS {:>6.1} MiB  git {} adv/{} fetch  renders {} (+{} carried over)  ({target})",
            secs(p.wall),
            p.cpu,
            p.peak_rss,
            p.git.advertisements,
            p.git.fetches,
            p.renders,
            p.carried,
        );
        println!("    API requests {total}: {}", verbs.join(", "));
        if p.git.challenged > 0 {
            println!(
                "    git requests answered 401 (credentials asked for, not counted above): {}",
                p.git.challenged
            );
        }
    }
}

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(repo)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Ada Lovelace")
        .env("GIT_AUTHOR_EMAIL", "ada@example.com")
        .env("GIT_COMMITTER_NAME", "Ada Lovelace")
        .env("GIT_COMMITTER_EMAIL", "ada@example.com")
        .output()
        .expect("running git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn git_init(repo: &Path) {
    std::fs::create_dir_all(repo).unwrap();
    git(repo, &["init", "-q", "-b", "main"]);
}

/// Writes `files` and commits them; the new sha.
fn commit(repo: &Path, files: &[(String, String)], message: &str) -> String {
    for (path, content) in files {
        let file = repo.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    }
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
    head(repo)
}

fn head(repo: &Path) -> String {
    git(repo, &["rev-parse", "HEAD"])
}

/// The render worker: on PATH, or where tools/render-worker/install.sh caches it.
fn worker_program() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(WORKER))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let cache = std::env::var_os("KUBEMINT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/kubemint")
        });
    let cached = std::fs::read_dir(&cache)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("render-worker-")
        })
        .map(|e| e.path().join("bin").join(WORKER));
    on_path
        .into_iter()
        .chain(cached)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "{WORKER} is neither on PATH nor in {}: run tools/render-worker/install.sh",
                cache.display()
            )
        })
}

/// The running children of `parent` whose program is `program` (as /proc
/// names it: its first 15 bytes).
fn children(parent: u32, program: &str) -> Vec<u32> {
    let parent = parent.to_string();
    let comm = &program[..program.len().min(15)];
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((name, rest)) = stat.split_once(") ") else {
            continue;
        };
        let ppid = rest.split(' ').nth(1).unwrap_or("");
        if ppid == parent && name.rsplit_once('(').map(|c| c.1) == Some(comm) {
            found.push(pid);
        }
    }
    found
}

/// `metadata.labels` putting a channel in `shard`.
fn shard_labels(shard: &str) -> serde_json::Value {
    let mut labels = serde_json::Map::new();
    labels.insert(kubemint::api::SHARD_LABEL.into(), shard.into());
    labels.into()
}
