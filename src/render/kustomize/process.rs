//! Running one kustomize process: clean environment, no network, a deadline
//! and a bound on what it may print.

use std::ffi::OsString;
use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// A proxy nobody listens on: an HTTP fetch that slipped past the checks of
/// the kustomizations fails at once instead of reaching the network.
const DEAD_PROXY: &str = "http://127.0.0.1:9";
/// Most of stderr that is kept for the error message; the rest is drained.
const MAX_STDERR: usize = 256 * 1024;
/// How long the readers may take to hand over what they read once the process ended.
const READER_GRACE: Duration = Duration::from_secs(2);

/// Bounds on one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// The process is killed past this.
    pub timeout: Duration,
    /// Most bytes of stdout; the process is killed when it prints more.
    pub max_output: usize,
}

/// Why a run produced no output.
#[derive(Debug)]
pub(crate) enum RunError {
    /// The program could not be started.
    Spawn(std::io::Error),
    /// Killed at the deadline.
    TimedOut(Duration),
    /// Killed for printing more than the bound.
    TooLarge(usize),
    /// Exited unsuccessfully.
    Failed { status: ExitStatus, stderr: Vec<u8> },
}

/// Gives `command` nothing of this process's environment: it runs in `home`
/// (also its `HOME`, `TMPDIR` and `XDG_CONFIG_HOME`), with an empty `PATH`,
/// no credentials or kubeconfig, and proxies that lead nowhere.
pub(crate) fn confine(command: &mut Command, home: &Path) {
    command
        .current_dir(home)
        .env_clear()
        .env("HOME", home)
        .env("TMPDIR", home)
        .env("XDG_CONFIG_HOME", home)
        .env("PATH", "")
        .env("LANG", "C");
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
    ] {
        command.env(var, DEAD_PROXY);
    }
}

/// Runs `program args` in `home` (also its `HOME` and `TMPDIR`) with nothing
/// of this process's environment: no credentials, no proxies, no kubeconfig, an
/// empty `PATH`. Returns stdout.
pub(crate) fn run(
    program: &Path,
    args: &[OsString],
    home: &Path,
    limits: &Limits,
) -> Result<Vec<u8>, RunError> {
    let mut command = Command::new(program);
    command.args(args);
    confine(&mut command, home);
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(RunError::Spawn)?;

    let over = Arc::new(AtomicBool::new(false));
    let (out_tx, out_rx) = mpsc::channel();
    let (err_tx, err_rx) = mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        let over = over.clone();
        let cap = limits.max_output;
        std::thread::spawn(move || {
            let read = read_capped(stdout, cap, false);
            if read.1 {
                over.store(true, Ordering::SeqCst);
            }
            let _ = out_tx.send(read);
        });
    }
    if let Some(stderr) = child.stderr.take() {
        std::thread::spawn(move || {
            let _ = err_tx.send(read_capped(stderr, MAX_STDERR, true).0);
        });
    }

    let deadline = Instant::now() + limits.timeout;
    let mut pause = Duration::from_millis(1);
    let status = loop {
        if over.load(Ordering::SeqCst) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(RunError::TooLarge(limits.max_output));
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(RunError::TimedOut(limits.timeout));
            }
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(RunError::Spawn(e));
            }
        }
    };
    // The readers finish when the pipes close; a leftover grandchild holding one
    // open must not hang the render, hence the grace period.
    let (stdout, too_large) = out_rx
        .recv_timeout(READER_GRACE)
        .unwrap_or((Vec::new(), false));
    if too_large {
        return Err(RunError::TooLarge(limits.max_output));
    }
    if !status.success() {
        let stderr = err_rx.recv_timeout(READER_GRACE).unwrap_or_default();
        return Err(RunError::Failed { status, stderr });
    }
    Ok(stdout)
}

/// Reads up to `cap` bytes. Past the cap: with `drain`, keeps reading and drops
/// the rest (so the writer never blocks); without, stops and says so.
fn read_capped(mut reader: impl Read, cap: usize, drain: bool) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return (kept, false),
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                if n > room && !drain {
                    return (kept, true);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return (kept, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, limits: Limits) -> Result<Vec<u8>, RunError> {
        let home = tempfile::tempdir().unwrap();
        run(
            Path::new("/bin/sh"),
            &["-c".into(), script.into()],
            home.path(),
            &limits,
        )
    }

    const ROOMY: Limits = Limits {
        timeout: Duration::from_secs(20),
        max_output: 1 << 20,
    };

    #[test]
    fn runs_with_a_clean_environment() {
        // cargo sets CARGO_MANIFEST_DIR for tests: it stands for anything inherited.
        assert!(std::env::var_os("PATH").is_some());
        let out = sh(
            "echo \"$HOME|$PATH|$HTTPS_PROXY|$CARGO_MANIFEST_DIR\"",
            ROOMY,
        )
        .unwrap();
        let out = String::from_utf8(out).unwrap();
        let fields: Vec<&str> = out.trim().split('|').collect();
        assert!(fields[0].starts_with(&std::env::temp_dir().display().to_string()));
        assert_eq!(&fields[1..], ["", DEAD_PROXY, ""]);
    }

    #[test]
    fn a_failure_carries_stderr() {
        match sh("echo oops >&2; exit 3", ROOMY) {
            Err(RunError::Failed { status, stderr }) => {
                assert_eq!(status.code(), Some(3));
                assert_eq!(stderr, b"oops\n");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_slow_build_is_killed_at_the_deadline() {
        let started = Instant::now();
        let limits = Limits {
            timeout: Duration::from_millis(300),
            ..ROOMY
        };
        // `exec` so that the shell itself is the sleeping process that gets killed.
        let result = sh("exec /bin/sleep 30", limits);
        assert!(matches!(result, Err(RunError::TimedOut(_))), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn too_much_output_is_cut_off() {
        let limits = Limits {
            max_output: 100_000,
            ..ROOMY
        };
        let started = Instant::now();
        // Endless output: only the cap can stop it.
        let result = sh("while :; do echo 0123456789abcdef; done", limits);
        assert!(
            matches!(result, Err(RunError::TooLarge(100_000))),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        let out = sh(
            "i=0; while [ $i -lt 10 ]; do echo 123456789; i=$((i+1)); done",
            limits,
        )
        .unwrap();
        assert_eq!(out.len(), 100);
    }
}
