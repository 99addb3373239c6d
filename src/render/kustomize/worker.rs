//! Building through the render worker: `kubemint-render-worker`
//! (tools/render-worker), kustomize's own Go API in a long-lived process,
//! instead of one `kubectl kustomize` process per build.
//!
//! kubemint starts a few workers on first use and sends each one build at a
//! time over a pipe (JSON lines: a directory and the output bound in, YAML or
//! kustomize's error out). The confinement is the same as a forked build's:
//! the worker reads only the private copy of the checkout (its file system
//! refuses every other path and every write), each kustomization root-only,
//! builtin generators and transformers only; [`super::inspect`] refuses
//! remote bases and Helm charts before either runs. The time limit is kept
//! here: a worker that does not answer in time, or dies, is stopped, and the
//! build that was in it fails with [`WorkerError::Lost`] (retried by the
//! controller); the next build starts a fresh worker.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The worker's program name, looked up on `PATH` (or named with `--kustomize`).
pub const WORKER_PROGRAM: &str = "kubemint-render-worker";
/// The protocol this side speaks (the worker's greeting says its own).
const PROTOCOL: u32 = 1;
/// How long a new worker may take to greet.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a build through the worker gave no YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WorkerError {
    /// No worker could be started (missing, not executable, no greeting):
    /// build with the executable instead.
    Unavailable(String),
    /// The worker died or did not answer within the time limit; it was
    /// stopped. The build may be retried: a fresh worker takes the next one.
    Lost(String),
    /// The output was over the bound.
    TooLarge,
    /// kustomize rejected the kustomization (its own message).
    Failed(String),
}

/// One build.
#[derive(Serialize)]
struct Request<'a> {
    id: u64,
    dir: &'a Path,
    root: &'a Path,
    #[serde(rename = "maxOutput")]
    max_output: usize,
}

/// Its answer.
#[derive(Deserialize)]
struct Response {
    id: u64,
    #[serde(default)]
    yaml: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default, rename = "tooLarge")]
    too_large: bool,
}

/// The first line a worker prints.
#[derive(Deserialize)]
struct Greeting {
    worker: String,
    protocol: u32,
}

/// One running worker.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<std::io::Result<String>>,
    next_id: u64,
    /// Its `HOME` and `TMPDIR`, removed with it.
    _home: tempfile::TempDir,
}

impl Worker {
    /// Starts `program` with nothing of this process's environment (as a
    /// forked build) and waits for its greeting.
    fn start(program: &Path, max_line: usize) -> Result<Worker, WorkerError> {
        let unavailable = |what: String| WorkerError::Unavailable(what);
        let home = tempfile::Builder::new()
            .prefix("kubemint-render-worker-")
            .tempdir()
            .map_err(|e| unavailable(format!("creating its home directory: {e}")))?;
        let mut command = Command::new(program);
        super::process::confine(&mut command, home.path());
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| unavailable(format!("starting {}: {e}", program.display())))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(unavailable("its pipes could not be opened".into()));
        };
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || read_lines(stdout, max_line, tx));
        let worker = Worker {
            child,
            stdin,
            lines,
            next_id: 1,
            _home: home,
        };
        let line = worker
            .lines
            .recv_timeout(START_TIMEOUT)
            .map_err(|_| unavailable(format!("{} did not start", program.display())))?
            .map_err(|e| unavailable(format!("reading its greeting: {e}")))?;
        match serde_json::from_str::<Greeting>(&line) {
            Ok(g) if g.worker == WORKER_PROGRAM && g.protocol == PROTOCOL => Ok(worker),
            Ok(g) => Err(unavailable(format!(
                "{} speaks protocol {} of {}, not {PROTOCOL}: install the worker of this kubemint release",
                program.display(),
                g.protocol,
                g.worker
            ))),
            Err(_) => Err(unavailable(format!(
                "{} is not a kubemint render worker",
                program.display()
            ))),
        }
    }

    /// Builds `dir` (inside `root`) within `timeout`.
    fn build(
        &mut self,
        dir: &Path,
        root: &Path,
        max_output: usize,
        timeout: Duration,
    ) -> Result<String, WorkerError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::to_vec(&Request {
            id,
            dir,
            root,
            max_output,
        })
        .map_err(|e| WorkerError::Lost(format!("could not be sent the build: {e}")))?;
        line.push(b'\n');
        if let Err(e) = self
            .stdin
            .write_all(&line)
            .and_then(|()| self.stdin.flush())
        {
            return Err(WorkerError::Lost(
                self.gone(&format!("took no request ({e})")),
            ));
        }
        let answer = match self.lines.recv_timeout(timeout) {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => return Err(WorkerError::Lost(self.gone(&format!("broke off ({e})")))),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(WorkerError::Lost(format!(
                    "did not finish within {timeout:?}; it was stopped"
                )))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(WorkerError::Lost(self.gone("exited")))
            }
        };
        let response: Response = serde_json::from_str(&answer)
            .map_err(|_| WorkerError::Lost("answered something unreadable".into()))?;
        if response.id != id {
            return Err(WorkerError::Lost(format!(
                "answered build {} instead of {id}",
                response.id
            )));
        }
        match response {
            Response {
                too_large: true, ..
            } => Err(WorkerError::TooLarge),
            Response {
                error: Some(message),
                ..
            } => Err(WorkerError::Failed(message)),
            Response {
                yaml: Some(yaml), ..
            } => Ok(yaml),
            Response { yaml: None, .. } => Ok(String::new()),
        }
    }

    /// What became of a worker that stopped answering: `what` and its exit status.
    fn gone(&mut self, what: &str) -> String {
        let _ = self.child.kill();
        match self.child.wait() {
            Ok(status) => format!("{what} ({status})"),
            Err(_) => what.to_string(),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `\n`-terminated lines of at most `max` bytes; a longer one ends the
/// stream with an error (a worker that prints without end is not followed).
fn read_lines(stdout: impl Read, max: usize, tx: mpsc::Sender<std::io::Result<String>>) {
    let mut reader = BufReader::with_capacity(256 * 1024, stdout);
    loop {
        let mut line = Vec::new();
        let read = (&mut reader)
            .take(max as u64 + 1)
            .read_until(b'\n', &mut line);
        let sent = match read {
            Ok(0) => return,
            Ok(_) if line.last() != Some(&b'\n') => {
                let _ = tx.send(Err(std::io::Error::other(if line.len() > max {
                    "an answer over the output bound"
                } else {
                    "an unterminated answer"
                })));
                return;
            }
            Ok(_) => tx.send(String::from_utf8(line).map_err(std::io::Error::other)),
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        if sent.is_err() {
            return; // the worker was dropped
        }
    }
}

/// The idle workers of one program, and how many more may start.
struct Pool {
    program: PathBuf,
    state: Mutex<PoolState>,
    freed: Condvar,
}

struct PoolState {
    idle: Vec<Worker>,
    /// Builds that may still start (each with an idle worker or a new one).
    slots: usize,
}

/// Most workers of one program: one build at a time each, so as many as the
/// machine runs builds at once (kustomize's global state, such as its OpenAPI
/// schema, is not safe to share between concurrent builds in one process).
fn pool_size() -> usize {
    std::thread::available_parallelism()
        .map_or(2, usize::from)
        .clamp(1, 4)
}

impl Pool {
    fn of(program: &Path) -> Arc<Pool> {
        static POOLS: OnceLock<Mutex<Vec<Arc<Pool>>>> = OnceLock::new();
        let pools = POOLS.get_or_init(Mutex::default);
        let mut pools = pools.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pool) = pools.iter().find(|p| p.program == program) {
            return pool.clone();
        }
        let pool = Arc::new(Pool {
            program: program.to_path_buf(),
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                slots: pool_size(),
            }),
            freed: Condvar::new(),
        });
        pools.push(pool.clone());
        pool
    }

    /// Runs one build on an idle worker, or a new one; a worker that failed
    /// the build as [`WorkerError::Lost`] is not kept.
    fn build(
        &self,
        dir: &Path,
        root: &Path,
        max_output: usize,
        timeout: Duration,
    ) -> Result<String, WorkerError> {
        let idle = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            while state.slots == 0 {
                state = self.freed.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            state.slots -= 1;
            state.idle.pop()
        };
        let mut kept = None;
        let result = (|| {
            let mut worker = match idle {
                Some(worker) => worker,
                None => Worker::start(&self.program, max_line(max_output))?,
            };
            let result = worker.build(dir, root, max_output, timeout);
            if !matches!(result, Err(WorkerError::Lost(_))) {
                kept = Some(worker);
            }
            result
        })();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.slots += 1;
        state.idle.extend(kept);
        self.freed.notify_one();
        result
    }

    /// The process ids of the idle workers.
    #[cfg(test)]
    fn idle_pids(&self) -> Vec<u32> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.idle.iter().map(|w| w.child.id()).collect()
    }
}

/// The longest line an answer bounded by `max_output` bytes of YAML can take:
/// JSON escapes (`\n`, `\"`, `\u001b`) take up to six bytes per byte.
fn max_line(max_output: usize) -> usize {
    max_output.saturating_mul(6).saturating_add(64 * 1024)
}

/// Builds the kustomization in `dir`, inside the private copy `root`, with
/// the worker `program`, within `timeout` and `max_output` bytes of YAML.
pub(crate) fn build(
    program: &Path,
    dir: &Path,
    root: &Path,
    max_output: usize,
    timeout: Duration,
) -> Result<String, WorkerError> {
    Pool::of(program).build(dir, root, max_output, timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(30);

    /// The real worker, as tests/run.sh installs it.
    pub(crate) fn real_worker() -> PathBuf {
        super::super::command::find_program(WORKER_PROGRAM).unwrap_or_else(|| {
            panic!(
                "{WORKER_PROGRAM} is not on PATH: install it with tools/render-worker/install.sh"
            )
        })
    }

    /// The real worker under a path of its own, so that its pool is this
    /// test's alone (other tests build with the shared one meanwhile).
    fn private_worker() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WORKER_PROGRAM);
        std::os::unix::fs::symlink(real_worker(), &path).unwrap();
        (dir, path)
    }

    /// A stand-in for a broken worker: a shell script that greets, then does `then`.
    fn broken(then: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("worker.sh");
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho '{{\"worker\":\"{WORKER_PROGRAM}\",\"protocol\":{PROTOCOL}}}'\n{then}\n"
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        (dir, path)
    }

    fn checkout(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    const CONFIG: &str = "configMapGenerator:\n  - name: app\n    literals: [A=1]\n";

    #[test]
    fn a_worker_builds_one_kustomization_after_another() {
        let repo = checkout(&[("app/kustomization.yaml", CONFIG)]);
        let root = repo.path();
        let (_dir, worker) = private_worker();
        let pool = Pool::of(&worker);
        let first = pool
            .build(&root.join("app"), root, 1 << 20, TIMEOUT)
            .unwrap();
        assert!(first.contains("name: app-"), "{first}");
        let pids = pool.idle_pids();
        assert!(!pids.is_empty());
        // The next build takes the same process: nothing is started per build.
        let again = pool
            .build(&root.join("app"), root, 1 << 20, TIMEOUT)
            .unwrap();
        assert_eq!(again, first);
        assert!(pool.idle_pids().iter().any(|p| pids.contains(p)));
        // Its errors are kustomize's, and the worker stays.
        let missing = pool.build(&root.join("none"), root, 1 << 20, TIMEOUT);
        assert!(
            matches!(missing, Err(WorkerError::Failed(_))),
            "{missing:?}"
        );
        // Output over the bound is refused as such.
        assert_eq!(
            pool.build(&root.join("app"), root, 10, TIMEOUT),
            Err(WorkerError::TooLarge)
        );
    }

    #[test]
    fn the_worker_reads_nothing_outside_the_checkout() {
        let outside = checkout(&[("secret.env", "TOKEN=outside\n")]);
        let link = outside.path().join("secret.env");
        let repo = checkout(&[(
            "app/kustomization.yaml",
            "configMapGenerator:\n  - name: app\n    envs: [secret.env]\n",
        )]);
        std::os::unix::fs::symlink(&link, repo.path().join("app/secret.env")).unwrap();
        let built = build(
            &real_worker(),
            &repo.path().join("app"),
            repo.path(),
            1 << 20,
            TIMEOUT,
        );
        match built {
            Err(WorkerError::Failed(message)) => assert!(!message.contains("outside=")),
            other => panic!("read through a link out of the checkout: {other:?}"),
        }
        // A root that holds the kustomization, but not what it reaches, is no wider.
        let repo = checkout(&[("app/kustomization.yaml", "resources: [../base]\n")]);
        let base = checkout(&[("kustomization.yaml", CONFIG)]);
        std::os::unix::fs::symlink(base.path(), repo.path().join("base")).unwrap();
        let built = build(
            &real_worker(),
            &repo.path().join("app"),
            repo.path(),
            1 << 20,
            TIMEOUT,
        );
        assert!(matches!(built, Err(WorkerError::Failed(_))), "{built:?}");
    }

    #[test]
    fn a_worker_that_hangs_is_stopped_and_the_build_fails_retryably() {
        let (_dir, hangs) = broken("read line; exec /bin/sleep 30");
        let pool = Pool::of(&hangs);
        let started = std::time::Instant::now();
        let result = pool.build(
            Path::new("/x"),
            Path::new("/"),
            100,
            Duration::from_millis(300),
        );
        assert!(
            matches!(&result, Err(WorkerError::Lost(m)) if m.contains("did not finish within")),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(pool.idle_pids().is_empty(), "a stuck worker is not kept");
    }

    #[test]
    fn a_worker_that_dies_is_replaced_for_the_next_build() {
        let (_dir, dies) = broken("read line; exit 3");
        let result = build(&dies, Path::new("/x"), Path::new("/"), 100, TIMEOUT);
        assert!(
            matches!(&result, Err(WorkerError::Lost(m)) if m.contains("exit status: 3")),
            "{result:?}"
        );
        // The real worker killed between builds: the next build starts another.
        let repo = checkout(&[("app/kustomization.yaml", CONFIG)]);
        let (_dir, worker) = private_worker();
        let pool = Pool::of(&worker);
        let root = repo.path();
        pool.build(&root.join("app"), root, 1 << 20, TIMEOUT)
            .unwrap();
        for pid in pool.idle_pids() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        // The build sent to a dead worker fails, retryably; the one after succeeds.
        let mut results = Vec::new();
        for _ in 0..=pool_size() {
            results.push(pool.build(&root.join("app"), root, 1 << 20, TIMEOUT));
        }
        assert!(results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(WorkerError::Lost(_)))));
        assert!(results.last().unwrap().is_ok(), "{results:?}");
    }

    #[test]
    fn what_is_not_a_worker_is_unavailable() {
        let (_dir, silent) = broken("exit 0");
        std::fs::write(&silent, "#!/bin/sh\necho hello\n").unwrap();
        let result = build(&silent, Path::new("/x"), Path::new("/"), 100, TIMEOUT);
        assert!(
            matches!(result, Err(WorkerError::Unavailable(_))),
            "{result:?}"
        );
        let result = build(
            Path::new("/nonexistent/kubemint-render-worker"),
            Path::new("/x"),
            Path::new("/"),
            100,
            TIMEOUT,
        );
        assert!(
            matches!(result, Err(WorkerError::Unavailable(_))),
            "{result:?}"
        );
    }
}
