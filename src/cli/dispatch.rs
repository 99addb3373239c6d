//! Runs a parsed [`Cli`]: each command's options built from its flags, the
//! one async runtime, what the command prints, and how it ended
//! ([`Outcome`], or a [`CommandError`]); [`exit_code`] turns that into the
//! exit status.

use std::future::Future;
use std::path::PathBuf;

use kube::CustomResourceExt;

use super::args::{Cli, Command};
use super::diff::{DiffError, DiffOptions, DiffSource};
use super::inspect::NotesFromGitError;
use super::offline::OfflineError;
use super::revert::{RevertCommandError, RevertOptions};
use super::run::{Election, RunError};
use super::ui::{UiCliError, UiOptions};
use super::CliError;
use crate::api::Channel;
use crate::controller::OperatorSettings;
use crate::revert::{SigningRequest, Target};

/// How a command that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It did what was asked (for `diff`: nothing would change).
    Done,
    /// `diff`: delivering would change something.
    Changes,
    /// `diff`: the controller would refuse the commit (the reason is printed).
    Refused,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The async runtime could not start.
    #[error("starting the async runtime")]
    Runtime(#[source] std::io::Error),
    /// `diff` could not make its temporary git cache.
    #[error("creating a temporary git cache")]
    DiffCache(#[source] std::io::Error),
    /// A failure of `kubemint diff`, which exits 2 as `kubectl diff` does.
    #[error(transparent)]
    Diff(Box<CommandError>),
    /// `diff` could not compute the diff.
    #[error(transparent)]
    DiffFailed(#[from] DiffError),
    /// `plan` could not render.
    #[error(transparent)]
    Plan(#[from] OfflineError),
    /// `crd` could not print the CRD.
    #[error(transparent)]
    Crd(#[from] serde_yaml::Error),
    /// `status` or `history` could not read the channel.
    #[error(transparent)]
    Channel(#[from] CliError),
    /// `history --from-git` could not read the notes.
    #[error(transparent)]
    Notes(#[from] NotesFromGitError),
    /// `revert` did not revert.
    #[error(transparent)]
    Revert(#[from] RevertCommandError),
    /// `ui` stopped.
    #[error(transparent)]
    Ui(#[from] UiCliError),
    /// `run`: the operator stopped other than on request.
    #[error(transparent)]
    Run(#[from] RunError),
}

/// The exit status of a command that ended with `result`: `diff` follows
/// `kubectl diff` (0 no changes, 1 changes, 2 refused or failed); every other
/// command exits 0, or 1 on failure. The only place that decides it.
pub fn exit_code(result: &Result<Outcome, CommandError>) -> u8 {
    match result {
        Ok(Outcome::Done) => 0,
        Ok(Outcome::Changes) => 1,
        Ok(Outcome::Refused) | Err(CommandError::Diff(_)) => 2,
        Err(_) => 1,
    }
}

/// Runs the command `cli` names; what it prints goes to stdout (a diff's
/// refusal to stderr).
pub fn run(cli: Cli) -> Result<Outcome, CommandError> {
    match cli.command {
        Command::Diff {
            channel,
            namespace,
            local,
            kustomize,
            policy,
        } => {
            let options = DiffOptions {
                source: local.map_or(DiffSource::Channel, DiffSource::Local),
                limits: kustomize.limits(),
                kustomize: kustomize.command,
                policy: policy.into(),
            };
            diff(&channel, namespace, options).map_err(|e| CommandError::Diff(Box::new(e)))
        }
        Command::Crd => printed(serde_yaml::to_string(&Channel::crd())?),
        Command::Reference => printed(super::reference::markdown()),
        Command::Ui {
            namespace,
            port,
            cluster_name,
            cache_dir,
            kustomize,
        } => block_on(super::ui::serve(UiOptions {
            namespace,
            port,
            cluster_name,
            cache_dir: cache_dir.unwrap_or_else(ui_cache_dir),
            limits: kustomize.limits(),
            kustomize: kustomize.command,
        }))
        .map(|()| Outcome::Done),
        Command::Status { channel, namespace } => {
            inspect(&channel, namespace, super::inspect::describe_status)
        }
        Command::History {
            channel,
            namespace,
            from_git: Some(url),
            cluster,
        } => printed(super::inspect::notes_from_git(
            &url,
            cluster.as_deref(),
            channel,
            namespace,
        )?),
        Command::History {
            channel, namespace, ..
        } => inspect(
            &channel.unwrap_or_default(),
            namespace,
            super::inspect::describe_history,
        ),
        Command::Revert {
            channel,
            namespace,
            release,
            commit,
            message,
            author_name,
            author_email,
            push,
            workdir,
            sign,
            signing_key,
            signing_format,
            all_paths,
        } => {
            let signing = (sign || signing_key.is_some() || signing_format.is_some()).then_some(
                SigningRequest {
                    format: signing_format,
                    key: signing_key,
                },
            );
            let target = match (release, commit) {
                (Some(id), _) => Target::Release(id),
                (None, Some(sha)) => Target::Commit(sha),
                (None, None) => Target::Active,
            };
            let options = RevertOptions {
                target,
                message,
                author: author_name.zip(author_email),
                push,
                workdir,
                signing,
                all_paths,
            };
            printed(block_on(super::revert::run(&channel, namespace, options))?)
        }
        Command::Plan {
            target,
            reference,
            path,
            objects,
            kustomize,
        } => printed(super::offline::output(
            &target,
            reference.as_deref(),
            &path,
            objects,
            kustomize.command.as_ref(),
            &kustomize.limits(),
        )?),
        Command::Run {
            namespace,
            cache_dir,
            cache_max_age,
            http_addr,
            log_format,
            leader_elect,
            leader_election_namespace,
            leader_election_lease_duration,
            kustomize,
            cluster_name,
            tenancy,
            throughput,
            ui,
            shard,
        } => {
            crate::telemetry::init(log_format);
            let settings = OperatorSettings {
                namespace,
                cache_dir,
                cache_max_age,
                instance: std::env::var("POD_NAME").ok(),
                limits: kustomize.limits(),
                kustomize: kustomize.command,
                cluster_name,
                tenancy: tenancy.into(),
                concurrency: throughput.concurrency,
                throttle: crate::cluster::throttle::Throttle::new(
                    throughput.kube_api_qps,
                    throughput.kube_api_burst,
                ),
                shard: shard.unwrap_or_default(),
                poll_join_window: throughput.poll_join_window,
            };
            let election = leader_elect.then_some(Election {
                namespace: leader_election_namespace,
                lease_duration: leader_election_lease_duration,
            });
            block_on(super::run::run(settings, http_addr, election, ui)).map(|()| Outcome::Done)
        }
    }
}

/// Prints what a command found: it is done.
fn printed(out: impl std::fmt::Display) -> Result<Outcome, CommandError> {
    print!("{out}");
    Ok(Outcome::Done)
}

/// Runs `future` to completion on the one runtime of this process (commands
/// that need none, such as `plan`, never start it).
fn block_on<T, E>(future: impl Future<Output = Result<T, E>>) -> Result<T, CommandError>
where
    CommandError: From<E>,
{
    let runtime = tokio::runtime::Runtime::new().map_err(CommandError::Runtime)?;
    Ok(runtime.block_on(future)?)
}

/// Reads channel `name` (in `namespace`, or the context's) and prints `describe(channel)`.
fn inspect(
    name: &str,
    namespace: Option<String>,
    describe: fn(&Channel) -> String,
) -> Result<Outcome, CommandError> {
    let channel = block_on(async {
        let (_, client) = super::connect().await?;
        super::read_channel(&client, name, namespace).await
    })?;
    printed(describe(&channel))
}

/// Prints what delivering the channel's commit (or local files) would change,
/// and on stderr why the controller would refuse it, if it would.
fn diff(
    name: &str,
    namespace: Option<String>,
    options: DiffOptions,
) -> Result<Outcome, CommandError> {
    let cache = tempfile::tempdir().map_err(CommandError::DiffCache)?;
    let report = block_on(super::diff::run(name, namespace, options, cache.path()))?;
    print!("{}", super::diff::describe(&report));
    if let Some((reason, message)) = &report.refused {
        eprintln!("error: {}", super::diff::refusal(reason, message));
        return Ok(Outcome::Refused);
    }
    Ok(if report.has_changes() {
        Outcome::Changes
    } else {
        Outcome::Done
    })
}

/// Where `kubemint ui` caches git by default (XDG's cache directory).
fn ui_cache_dir() -> PathBuf {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    env("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("kubemint/ui")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_each_commands_convention() {
        let failed = || CommandError::Runtime(std::io::Error::other("no threads"));
        let cases: [(Result<Outcome, CommandError>, u8); 6] = [
            (Ok(Outcome::Done), 0),
            (Ok(Outcome::Changes), 1),
            (Ok(Outcome::Refused), 2),
            (Err(CommandError::Diff(Box::new(failed()))), 2),
            (Err(failed()), 1),
            (
                Err(CommandError::Crd(
                    serde_yaml::from_str::<u8>("x").unwrap_err(),
                )),
                1,
            ),
        ];
        for (result, code) in cases {
            assert_eq!(exit_code(&result), code, "{result:?}");
        }
    }
}
