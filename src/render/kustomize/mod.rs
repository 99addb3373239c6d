//! Building a kustomization with the kustomize executable, confined to the repository.
//!
//! One build, one job per file: [`inspect`] checks every kustomization it
//! reaches (no remote bases, no paths out of the repository) before anything
//! runs; [`materialize`] writes what the build needs into a private directory;
//! [`process`] runs kustomize there with a clean environment, a deadline and
//! an output bound; [`redact`] turns its errors into messages without secrets;
//! [`memo`] keeps recent outputs, so an unchanged commit is not built again;
//! [`worker`] builds in a long-lived kustomize process instead of one per
//! build, when the render worker is installed.
//! What comes out is a YAML stream that render treats like any manifest file.

mod command;
#[cfg(test)]
mod differential_tests;
mod inspect;
mod materialize;
mod memo;
mod process;
mod redact;
#[cfg(test)]
mod tests;
pub mod worker;

use std::path::Path;
use std::sync::Once;
use std::time::Duration;

use sha2::{Digest, Sha256};

pub use command::KustomizeCommand;

use super::walk::{Index, KustomizationDir};
use super::{KustomizeFailure, Limits, RenderError};
use process::{Limits as RunLimits, RunError};
use worker::WorkerError;

/// How long one build may take before it is killed.
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(60);
/// Most output one build may print before it is killed.
pub const MAX_OUTPUT: usize = 64 * 1024 * 1024;

/// How the kustomizations of a release were built, for `plan` and the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KustomizeBuild {
    /// The command, e.g. `kubectl kustomize`.
    pub command: String,
    /// Its kustomize version, e.g. `v5.5.0`, when it says.
    pub version: Option<String>,
    /// The kustomization files built, as the user sees them.
    pub kustomizations: Vec<String>,
}

impl KustomizeBuild {
    /// `kustomize v5.5.0 (kubectl kustomize)`.
    pub fn describe(&self) -> String {
        let version = self.version.as_deref().unwrap_or("(version unknown)");
        format!("kustomize {version} ({})", self.command)
    }
}

/// Builds one kustomization directory and returns kustomize's YAML stream,
/// stopping kustomize once it prints more than `budget` bytes (what is left of
/// the release's `limits`). The real directories of every kustomization it
/// reaches are added to `reached`.
pub(crate) fn build(
    index: &Index<'_>,
    unit: &KustomizationDir,
    command: &KustomizeCommand,
    limits: &Limits,
    budget: u64,
    reached: &mut Vec<String>,
) -> Result<String, RenderError> {
    let fail = |failure: KustomizeFailure, message: String| RenderError::Kustomize {
        file: unit.file.clone(),
        failure,
        message,
    };
    let reach = inspect::reach(index, unit).map_err(|r| RenderError::Kustomize {
        file: r.file,
        failure: KustomizeFailure::Refused,
        message: r.message,
    })?;
    reached.extend(reach.dirs.iter().cloned());
    if !command.is_worker() {
        command
            .program()
            .map_err(|m| fail(KustomizeFailure::Unavailable, m))?;
    }
    let layout = materialize::Layout::of(index, &reach.dirs);
    if let Some((file, size)) = layout.unread.first() {
        return Err(limits.unread(file, *size));
    }
    let key: [u8; 32] = Sha256::new()
        .chain_update(command.to_string())
        .chain_update([0])
        .chain_update(&unit.real)
        .chain_update([0])
        .chain_update(layout.fingerprint())
        .finalize()
        .into();
    if let Some(stream) = memo::get(&key) {
        return Ok(stream);
    }

    let work = tempfile::Builder::new()
        .prefix("kubemint-kustomize-")
        .tempdir()
        .map_err(|e| {
            fail(
                KustomizeFailure::Failed,
                format!("creating a work directory: {e}"),
            )
        })?;
    let repo = work.path().join("repo");
    let home = work.path().join("home");
    std::fs::create_dir_all(&home)
        .and_then(|()| std::fs::create_dir_all(&repo))
        .and_then(|()| layout.write(&repo))
        .map_err(|e| {
            fail(
                KustomizeFailure::Failed,
                format!("writing the kustomization to a work directory: {e}"),
            )
        })?;

    let bounded = budget < MAX_OUTPUT as u64;
    let max_output = if bounded { budget as usize } else { MAX_OUTPUT };
    let too_large = |bytes: usize| {
        if bounded {
            RenderError::ReleaseTooLarge {
                file: unit.file.clone(),
                limit: limits.max_release_bytes,
            }
        } else {
            fail(
                KustomizeFailure::Failed,
                format!(
                    "`{command}` printed more than {} MiB; it was stopped",
                    bytes / (1024 * 1024)
                ),
            )
        }
    };
    let failed = |said: &[u8], status: String| {
        let said = redact::message(said, &repo, &reach.secrets);
        let said = if said.is_empty() { status } else { said };
        fail(
            KustomizeFailure::Failed,
            format!("kustomize build failed: {said}"),
        )
    };
    let root = repo.join(&unit.real);
    let mut command = command.clone();
    if command.is_worker() {
        let built = command
            .program()
            .map_err(WorkerError::Unavailable)
            .and_then(|program| worker::build(&program, &root, &repo, max_output, BUILD_TIMEOUT));
        match built {
            Ok(stream) => {
                memo::put(key, &stream);
                return Ok(stream);
            }
            Err(WorkerError::Unavailable(why)) => {
                command = KustomizeCommand::executable();
                worker_unavailable(&why, &command);
            }
            Err(WorkerError::TooLarge) => return Err(too_large(max_output)),
            Err(WorkerError::Failed(message)) => {
                return Err(failed(message.as_bytes(), "failed".into()))
            }
            Err(WorkerError::Lost(what)) => {
                return Err(fail(
                    KustomizeFailure::WorkerLost,
                    format!("the render worker {what}; the build will be retried in a new worker"),
                ))
            }
        }
    }
    let out = fork(&command, &root, &home, max_output).map_err(|e| match e {
        RunError::TooLarge(bytes) => too_large(bytes),
        RunError::Spawn(e) => fail(
            KustomizeFailure::Unavailable,
            format!("starting `{command}`: {e}"),
        ),
        RunError::TimedOut(after) => fail(
            KustomizeFailure::Failed,
            format!("`{command}` did not finish within {after:?}; it was stopped"),
        ),
        RunError::Failed { status, stderr } => failed(&stderr, format!("exited with {status}")),
    })?;
    let stream = String::from_utf8(out).map_err(|_| {
        fail(
            KustomizeFailure::Failed,
            "kustomize printed invalid UTF-8".into(),
        )
    })?;
    memo::put(key, &stream);
    Ok(stream)
}

/// Runs `command` on `dir` as its own process.
fn fork(
    command: &KustomizeCommand,
    dir: &Path,
    home: &Path,
    max_output: usize,
) -> Result<Vec<u8>, RunError> {
    let program = command
        .program()
        .map_err(|m| RunError::Spawn(std::io::Error::new(std::io::ErrorKind::NotFound, m)))?;
    let limits = RunLimits {
        timeout: BUILD_TIMEOUT,
        max_output,
    };
    process::run(&program, &command.build_args(dir), home, &limits)
}

/// Says once per process that the render worker could not start, and which
/// executable builds instead.
fn worker_unavailable(why: &str, instead: &KustomizeCommand) {
    static SAID: Once = Once::new();
    SAID.call_once(|| {
        tracing::warn!(
            kustomize = %instead,
            "the render worker is unavailable ({why}): kustomizations are built by \
             `{instead}`, one process per build"
        );
    });
}
