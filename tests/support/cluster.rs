//! One control plane per test process, shared by all its tests.
//!
//! Lifetimes: the daemons must not outlive the test process however it ends
//! (success, panic, abort, SIGKILL), and that without `libc`/PDEATHSIG.
//! `up.sh --watch <our pid>` starts a watchdog (a bash loop in a session of its
//! own) before any daemon; it polls once a second whether this process still
//! runs (matching its start time, so a reused PID doesn't count) and then runs
//! `down.sh`, which TERMs and after 5 s KILLs everything up.sh started. So the
//! control plane is gone about 1–6 s after the test process.
//!
//! The node is kwok's, a daemon like the others (up.sh starts it and waits
//! until the node is Ready), so nothing runs in the test process: each
//! `#[tokio::test]` has a runtime of its own that ends with the test, and
//! nothing shared could live on one.
//!
//! State directories live in `target/tmp/kubemint-clusters/<pid>` (logs of the
//! last run stay there for debugging); those of processes that are gone are
//! removed when the next test process starts.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use serde_json::json;

/// A Kubernetes cluster for the tests of this process.
pub struct TestCluster {
    /// Admin kubeconfig (token auth, `certificate-authority-data`).
    pub kubeconfig: PathBuf,
    /// The `up.sh` state directory (logs, certificates) when this process
    /// started the control plane; `None` with `KUBEMINT_TEST_KUBECONFIG`.
    pub state_dir: Option<PathBuf>,
    /// kubectl of the control plane's release (`install.sh` builds it);
    /// `kubectl` from `PATH` with `KUBEMINT_TEST_KUBECONFIG`.
    pub kubectl: PathBuf,
}

static CLUSTER: OnceLock<Result<TestCluster, String>> = OnceLock::new();

/// The cluster of this test process, started on first use (blocking, about
/// 8–12 s) and shared by all its tests. Uses `$KUBEMINT_TEST_KUBECONFIG`
/// instead when set (then no processes are started; that cluster needs a
/// node and `tests/cluster/kwok/policy.yaml` as `up.sh` sets them up).
/// Panics in every test if the cluster could not be started.
pub fn cluster() -> &'static TestCluster {
    match CLUSTER.get_or_init(start) {
        Ok(cluster) => cluster,
        Err(e) => panic!("test cluster unavailable: {e}"),
    }
}

impl TestCluster {
    /// A new client from the kubeconfig. Make one per test: a client belongs to
    /// the Tokio runtime it was made on.
    pub async fn client(&self) -> Client {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)
            .unwrap_or_else(|e| panic!("reading {}: {e}", self.kubeconfig.display()));
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .unwrap_or_else(|e| panic!("loading {}: {e}", self.kubeconfig.display()));
        Client::try_from(config).expect("kube client")
    }

    /// Creates a new namespace `<prefix>-<n>` and returns its name, once its
    /// `default` ServiceAccount exists (pods can't be created before that).
    pub async fn namespace(&self, prefix: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let client = self.client().await;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let name = loop {
            let name = format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed));
            let ns: Namespace =
                serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
            match namespaces.create(&PostParams::default(), &ns).await {
                Ok(_) => break name,
                // Left over in a reused cluster, or made by another test binary.
                Err(kube::Error::Api(status)) if status.code == 409 => continue,
                Err(e) => panic!("creating namespace {name}: {e}"),
            }
        };
        let accounts: Api<ServiceAccount> = Api::namespaced(client, &name);
        let accounts = &accounts;
        super::wait_for(Duration::from_secs(60), || async move {
            accounts.get_opt("default").await.ok()?.map(|_| ())
        })
        .await;
        name
    }

    /// Path of the admin kubeconfig.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The API server's audit log (JSON lines, level Metadata; see
    /// `tests/cluster/up.sh` and [`super::audit`]). Panics with
    /// `KUBEMINT_TEST_KUBECONFIG`, whose cluster is not ours to inspect.
    pub fn audit_log(&self) -> PathBuf {
        self.own_state_dir("the audit log").join("audit.log")
    }

    /// Stops kube-apiserver and starts it again with identical flags and port
    /// (`tests/cluster/restart-apiserver.sh`), keeping etcd and its data and
    /// every other process; returns once `/readyz` answers. Clients see the
    /// server vanish for a few seconds, as in a control-plane upgrade.
    pub async fn restart_apiserver(&self) {
        self.restart_apiserver_after(Duration::ZERO).await;
    }

    /// Like [`restart_apiserver`](Self::restart_apiserver), with the API
    /// server kept down for `down` between stopping it and starting it
    /// again: clients see connections refused all that time, as in a long outage.
    pub async fn restart_apiserver_after(&self, down: Duration) {
        let state = self.own_state_dir("restarting the API server");
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cluster/restart-apiserver.sh");
        let out = tokio::process::Command::new("bash")
            .arg(script)
            .arg(state)
            .env(
                "KUBEMINT_APISERVER_DOWN_SECONDS",
                down.as_secs().to_string(),
            )
            .stdin(Stdio::null())
            .output()
            .await
            .expect("running restart-apiserver.sh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        log(stderr.trim());
        assert!(
            out.status.success(),
            "restart-apiserver.sh failed ({}):\n{stderr}",
            out.status
        );
    }

    fn own_state_dir(&self, what: &str) -> &Path {
        self.state_dir.as_deref().unwrap_or_else(|| {
            panic!("{what} needs the tests' own control plane (KUBEMINT_TEST_KUBECONFIG is set)")
        })
    }
}

fn log(msg: &str) {
    // Straight to fd 2: the test harness captures eprintln! of the test that
    // happens to start the cluster, and this concerns them all.
    let _ = writeln!(std::io::stderr(), "[kubemint-test] {msg}");
}

fn start() -> Result<TestCluster, String> {
    if let Some(kubeconfig) = std::env::var_os("KUBEMINT_TEST_KUBECONFIG") {
        return Ok(TestCluster {
            kubeconfig: kubeconfig.into(),
            state_dir: None,
            kubectl: PathBuf::from("kubectl"),
        });
    }
    let started = Instant::now();
    let (kubeconfig, state_dir, bin) = start_control_plane()?;
    log(&format!(
        "control plane and node up in {:.1}s; state in {}",
        started.elapsed().as_secs_f64(),
        state_dir.display()
    ));
    Ok(TestCluster {
        kubeconfig,
        state_dir: Some(state_dir),
        kubectl: bin.join("kubectl"),
    })
}

/// Runs `install.sh` and `up.sh`; returns the kubeconfig, the state dir and
/// the directory of the control plane's binaries.
fn start_control_plane() -> Result<(PathBuf, PathBuf, PathBuf), String> {
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cluster");
    // install.sh prints progress (a first build takes ~15 min) on stderr.
    let install = Command::new("bash")
        .arg(scripts.join("install.sh"))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("running install.sh: {e}"))?;
    if !install.status.success() {
        return Err(format!(
            "tests/cluster/install.sh failed ({})",
            install.status
        ));
    }
    let bin = String::from_utf8_lossy(&install.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .to_string();

    // Cargo sets CARGO_TARGET_TMPDIR for tests and benchmarks, not for the
    // dev-cluster example.
    let tmp = option_env!("CARGO_TARGET_TMPDIR")
        .unwrap_or(concat!(env!("CARGO_MANIFEST_DIR"), "/target/tmp"));
    let root = Path::new(tmp).join("kubemint-clusters");
    remove_stale_state(&root, &scripts);
    let state_dir = root.join(std::process::id().to_string());
    // A second try covers the rare race of another process taking one of the
    // free ports up.sh picked before its daemon bound it.
    let mut failure = String::new();
    for attempt in 1..=2 {
        let up = Command::new("bash")
            .arg(scripts.join("up.sh"))
            .arg("--watch")
            .arg(std::process::id().to_string())
            .arg(&state_dir)
            .env("KUBEMINT_BIN", &bin)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running up.sh: {e}"))?;
        if up.status.success() {
            let stdout = String::from_utf8_lossy(&up.stdout);
            let kubeconfig = stdout.lines().last().unwrap_or("").trim();
            return Ok((PathBuf::from(kubeconfig), state_dir, PathBuf::from(&bin)));
        }
        failure = format!(
            "tests/cluster/up.sh failed ({}):\n{}",
            up.status,
            String::from_utf8_lossy(&up.stderr)
        );
        if attempt == 1 {
            log(&format!("{failure}\nretrying once"));
        }
    }
    Err(failure)
}

/// Removes the state directories of test processes that are gone, stopping
/// their control planes first in case their watchdogs have not yet.
fn remove_stale_state(root: &Path, scripts: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let _ = Command::new("bash")
            .arg(scripts.join("down.sh"))
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
