//! The `kubemint` command: argument parsing and dispatch only.

#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use kube::CustomResourceExt;

use kubemint::api::Channel;
use kubemint::cli;
use kubemint::cli::diff::{DiffOptions, DiffSource};
use kubemint::controller::OperatorSettings;
use kubemint::engine::tenancy::TenancyPolicy;
use kubemint::render::KustomizeCommand;
use kubemint::revert::Target;
use kubemint::telemetry::{self, LogFormat};

#[derive(Parser)]
#[command(
    name = "kubemint",
    version,
    about = "Pull-based GitOps for immutable, blue/green releases"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How commits are rendered, the same on `run`, `plan` and `diff`:
/// `--kustomize` and the limits of one commit.
#[derive(clap::Args)]
struct KustomizeArg {
    /// The kustomize command for paths holding a kustomization, e.g.
    /// `kustomize`, `/usr/local/bin/kustomize` or `kubectl kustomize`
    /// (default, also when empty: kustomize if on PATH, else kubectl kustomize).
    #[arg(
        long = "kustomize",
        env = "KUBEMINT_KUSTOMIZE",
        value_parser = kustomize_command
    )]
    command: Option<KustomizeCommand>,
    /// Largest file read from a commit (e.g. 8Mi): a commit that needs a larger
    /// one is rejected, naming it.
    #[arg(long, env = "KUBEMINT_MAX_FILE_SIZE", value_name = "SIZE",
          default_value_t = kubemint::render::DEFAULT_MAX_FILE_BYTES, value_parser = kubemint::render::parse_size)]
    max_file_size: u64,
    /// Most bytes read from one commit, and most rendered from it (manifests
    /// and kustomize output).
    #[arg(long, env = "KUBEMINT_MAX_RELEASE_SIZE", value_name = "SIZE",
          default_value_t = kubemint::render::DEFAULT_MAX_RELEASE_BYTES, value_parser = kubemint::render::parse_size)]
    max_release_size: u64,
    /// Most objects one commit may declare.
    #[arg(long, env = "KUBEMINT_MAX_OBJECTS", value_name = "N", default_value_t = kubemint::render::DEFAULT_MAX_OBJECTS)]
    max_objects: usize,
}

impl KustomizeArg {
    /// The limits of one commit.
    fn limits(&self) -> kubemint::render::Limits {
        kubemint::render::Limits {
            max_file_bytes: self.max_file_size,
            max_release_bytes: self.max_release_size,
            max_objects: self.max_objects,
        }
    }
}

/// An empty value (an unset Helm value, say) is the default command.
fn cluster_name(value: &str) -> Result<String, String> {
    if kubemint::source::notes::valid_cluster_name(value) {
        Ok(value.to_string())
    } else {
        Err(format!(
            "'{value}' cannot be part of a git ref: use letters, digits, '-', '_' and '.'"
        ))
    }
}

/// `--shard`: a key that can name a Lease and a Deployment.
fn shard_key(value: &str) -> Result<kubemint::api::Shard, String> {
    kubemint::api::Shard::parse(value).map_err(|e| e.to_string())
}

fn kustomize_command(value: &str) -> Result<KustomizeCommand, String> {
    if value.trim().is_empty() {
        Ok(KustomizeCommand::default_command())
    } else {
        KustomizeCommand::parse(value)
    }
}

/// How channels act in the cluster, the same on `run` and `diff` (the diff
/// takes the operator's settings to refuse what the operator refuses).
#[derive(clap::Args)]
struct ChannelPolicyArgs {
    /// ServiceAccount (of the channel's namespace) that channels without
    /// `spec.serviceAccountName` impersonate: makes impersonation mandatory.
    #[arg(long, env = "KUBEMINT_DEFAULT_SERVICE_ACCOUNT", value_name = "NAME")]
    default_service_account: Option<String>,
    /// A channel may only deliver into its own namespace (and use Secrets there).
    #[arg(long, env = "KUBEMINT_NO_CROSS_NAMESPACE_REFS")]
    no_cross_namespace_refs: bool,
}

/// How channels act in the cluster (`kubemint run`).
#[derive(clap::Args)]
struct TenancyArgs {
    #[command(flatten)]
    channels: ChannelPolicyArgs,
    /// Accept local paths and file:// URLs as a channel's spec.git.url (refused
    /// by default: they read the operator's own filesystem).
    #[arg(long, env = "KUBEMINT_ALLOW_LOCAL_SOURCES")]
    allow_local_sources: bool,
}

impl From<ChannelPolicyArgs> for TenancyPolicy {
    fn from(args: ChannelPolicyArgs) -> Self {
        TenancyPolicy {
            default_service_account: args.default_service_account,
            no_cross_namespace_refs: args.no_cross_namespace_refs,
            allow_local_sources: false,
        }
    }
}

impl From<TenancyArgs> for TenancyPolicy {
    fn from(args: TenancyArgs) -> Self {
        TenancyPolicy {
            allow_local_sources: args.allow_local_sources,
            ..args.channels.into()
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller (in-cluster config, or $KUBECONFIG / ~/.kube/config).
    Run {
        /// Watch channels in this namespace only (default: all namespaces).
        #[arg(long, env = "KUBEMINT_NAMESPACE")]
        namespace: Option<String>,
        /// Directory for the git cache, kept between reconciles.
        #[arg(
            long,
            env = "KUBEMINT_CACHE_DIR",
            default_value = "/var/cache/kubemint"
        )]
        cache_dir: PathBuf,
        /// Delete git cache entries nothing fetched into for this long (of
        /// deleted channels, rotated credentials).
        #[arg(long, env = "KUBEMINT_CACHE_MAX_AGE", default_value = "7d", value_parser = humantime::parse_duration)]
        cache_max_age: std::time::Duration,
        /// Address of /healthz, /readyz and /metrics.
        #[arg(long, env = "KUBEMINT_HTTP_ADDR", default_value = "0.0.0.0:8080")]
        http_addr: SocketAddr,
        /// Log format.
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
        /// Elect a leader among replicas through a Lease: only the holder
        /// reconciles, the others wait as standbys (run more than one replica).
        #[arg(long, env = "KUBEMINT_LEADER_ELECT")]
        leader_elect: bool,
        /// Namespace of the leader Lease (default: the kube context's namespace).
        #[arg(long, env = "POD_NAMESPACE")]
        leader_election_namespace: Option<String>,
        /// How long the leader's Lease stays valid without renewal: a leader
        /// that dies is replaced after at most this long.
        #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
        leader_election_lease_duration: std::time::Duration,
        #[command(flatten)]
        kustomize: KustomizeArg,
        /// This cluster's name in deployment notes: channels with
        /// `spec.audit.gitNotes` write to `refs/notes/kubemint/<cluster-name>`.
        #[arg(long, env = "KUBEMINT_CLUSTER_NAME", default_value = "default", value_parser = cluster_name)]
        cluster_name: String,
        #[command(flatten)]
        tenancy: TenancyArgs,
        #[command(flatten)]
        throughput: ThroughputArgs,
        /// Serve the web UI at /ui/ on --http-addr: a Kubernetes bearer token
        /// signs in, TokenReview and SubjectAccessReview decide what it sees.
        #[arg(long, env = "KUBEMINT_UI")]
        ui: bool,
        /// Reconcile only the channels labelled `kubemint.io/shard=KEY`, with a
        /// leader Lease of this shard's own (default: only the channels without
        /// that label).
        #[arg(long, env = "KUBEMINT_SHARD", value_name = "KEY", value_parser = shard_key)]
        shard: Option<kubemint::api::Shard>,
    },
    /// Render a repository or directory offline and print its release.
    Plan {
        /// A directory (rendered as it is on disk) or, with --ref, a git repository
        /// (a path or a file:// URL).
        target: String,
        /// Render this commit, branch or tag of the git repository instead of the files on disk.
        #[arg(long = "ref")]
        reference: Option<String>,
        /// Directory inside the target that holds the manifests.
        #[arg(long, default_value = ".")]
        path: String,
        /// Print the rendered objects as YAML instead of a summary.
        #[arg(long)]
        objects: bool,
        #[command(flatten)]
        kustomize: KustomizeArg,
    },
    /// Where a channel stands: source, applied commit, active release, conditions.
    Status {
        /// The channel's name.
        channel: String,
        /// Its namespace (default: the kube context's namespace).
        #[arg(short, long)]
        namespace: Option<String>,
    },
    /// What delivering a channel's current commit (or local files) would change:
    /// server-side dry runs compared with the live objects, plus the revisions
    /// drained and the objects pruned. Writes nothing. Exit status: 0 no
    /// changes, 1 changes, 2 error (like `kubectl diff`).
    Diff {
        /// The channel's name.
        channel: String,
        /// Its namespace (default: the kube context's namespace).
        #[arg(short, long)]
        namespace: Option<String>,
        /// Compare these files instead of the channel's commit, as if they were
        /// its `spec.git.path` (a pull request's checkout, say).
        #[arg(long, value_name = "DIR")]
        local: Option<PathBuf>,
        #[command(flatten)]
        kustomize: KustomizeArg,
        /// The operator's settings on how channels act, as `kubemint run` has them.
        #[command(flatten)]
        policy: ChannelPolicyArgs,
    },
    /// A channel's releases, newest first: id, phase, commit, author, times.
    /// With --from-git, the deployment notes of a repository instead, no
    /// cluster needed.
    History {
        /// The channel's name (with --from-git: only this channel's notes).
        #[arg(required_unless_present = "from_git")]
        channel: Option<String>,
        /// Its namespace (default: the kube context's namespace).
        #[arg(short, long)]
        namespace: Option<String>,
        /// Read the deployment notes (refs/notes/kubemint/*) of this repository,
        /// a URL or a path. Credentials, if needed: $KUBEMINT_GIT_USERNAME and
        /// $KUBEMINT_GIT_PASSWORD (or $KUBEMINT_GIT_BEARER_TOKEN), $KUBEMINT_GIT_CA_FILE.
        #[arg(long, value_name = "URL_OR_PATH")]
        from_git: Option<String>,
        /// With --from-git: only the notes of this cluster.
        #[arg(long, requires = "from_git")]
        cluster: Option<String>,
    },
    /// Roll back in git: commit the revert of a channel's release or commit, in a
    /// clone of its repository, and push it with --push.
    Revert {
        /// The channel's name.
        channel: String,
        /// Its namespace (default: the kube context's namespace).
        #[arg(short, long)]
        namespace: Option<String>,
        /// Revert this release (id or unique prefix): every commit it brought since
        /// the release before it. Default: the active release.
        #[arg(long, conflicts_with = "commit")]
        release: Option<String>,
        /// Revert this one commit.
        #[arg(long)]
        commit: Option<String>,
        /// Subject line of the revert commit (the body always names what is reverted).
        #[arg(short, long)]
        message: Option<String>,
        /// Author name (default: git config user.name).
        #[arg(long, requires = "author_email")]
        author_name: Option<String>,
        /// Author email (default: git config user.email).
        #[arg(long, requires = "author_name")]
        author_email: Option<String>,
        /// Push the commit to the channel's branch with the channel's credentials.
        #[arg(long)]
        push: bool,
        /// Clone into this directory (default: a new directory under $TMPDIR, kept).
        #[arg(long)]
        workdir: Option<PathBuf>,
        /// Sign the commit, as `git commit -S` does (with ssh-keygen or gpg), so that a
        /// channel with spec.git.verify accepts it.
        #[arg(long)]
        sign: bool,
        /// The signing key (implies --sign): an SSH key file, or an OpenPGP key id
        /// (default: git config user.signingkey).
        #[arg(long, value_name = "PATH_OR_KEY_ID")]
        signing_key: Option<String>,
        /// ssh or openpgp (implies --sign; default: git config gpg.format, else openpgp).
        #[arg(long, value_name = "FORMAT")]
        signing_format: Option<kubemint::revert::SigningFormat>,
        /// Revert the commits' changes everywhere in the repository, not only under
        /// the channel's spec.git.path (e.g. a kustomize base outside it).
        #[arg(long)]
        all_paths: bool,
    },
    /// Print the Channel CustomResourceDefinition.
    Crd,
    /// Serve the web UI on 127.0.0.1, reading with your own kubeconfig (so you
    /// see what your RBAC lets you see); prints the URL.
    Ui {
        /// Only channels of this namespace (default: every namespace).
        #[arg(short, long)]
        namespace: Option<String>,
        /// Port on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// The cluster the kube context points to, by its name in deployment
        /// notes (`kubemint run --cluster-name`): "where it ran" then lists the
        /// other clusters only.
        #[arg(long, env = "KUBEMINT_CLUSTER_NAME", value_parser = cluster_name)]
        cluster_name: Option<String>,
        /// Git cache of the release diffs (default: $XDG_CACHE_HOME/kubemint/ui,
        /// or ~/.cache/kubemint/ui).
        #[arg(long, env = "KUBEMINT_UI_CACHE_DIR")]
        cache_dir: Option<PathBuf>,
        #[command(flatten)]
        kustomize: KustomizeArg,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Diff {
            channel,
            namespace,
            local,
            kustomize,
            policy,
        } => {
            let limits = kustomize.limits();
            let source = match local {
                Some(dir) => DiffSource::Local(dir),
                None => DiffSource::Channel,
            };
            let options = DiffOptions {
                source,
                kustomize: kustomize.command,
                limits,
                policy: policy.into(),
            };
            return match diff(&channel, namespace, options) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(2)
                }
            };
        }
        Command::Crd => print_crd(),
        Command::Ui {
            namespace,
            port,
            cluster_name,
            cache_dir,
            kustomize,
        } => {
            let cache_dir = cache_dir.unwrap_or_else(ui_cache_dir);
            let limits = kustomize.limits();
            tokio::runtime::Runtime::new()
                .context("starting the async runtime")
                .and_then(|rt| {
                    Ok(rt.block_on(cli::ui::serve(cli::ui::UiOptions {
                        namespace,
                        port,
                        cluster_name,
                        cache_dir,
                        kustomize: kustomize.command,
                        limits,
                    }))?)
                })
        }
        Command::Status { channel, namespace } => {
            inspect(&channel, namespace, kubemint::cli::inspect::describe_status)
        }
        Command::History {
            channel,
            namespace,
            from_git,
            cluster,
        } => match from_git {
            Some(url) => history_from_git(&url, cluster.as_deref(), channel, namespace),
            None => inspect(
                &channel.unwrap_or_default(),
                namespace,
                kubemint::cli::inspect::describe_history,
            ),
        },
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
                kubemint::revert::SigningRequest {
                    format: signing_format,
                    key: signing_key,
                },
            );
            let target = match (release, commit) {
                (Some(id), _) => Target::Release(id),
                (None, Some(sha)) => Target::Commit(sha),
                (None, None) => Target::Active,
            };
            let options = cli::revert::RevertOptions {
                target,
                message,
                author: author_name.zip(author_email),
                push,
                workdir,
                signing,
                all_paths,
            };
            tokio::runtime::Runtime::new()
                .context("starting the async runtime")
                .and_then(|rt| {
                    let out = rt.block_on(cli::revert::run(&channel, namespace, options))?;
                    print!("{out}");
                    Ok(())
                })
        }
        Command::Plan {
            target,
            reference,
            path,
            objects,
            kustomize,
        } => plan(
            &target,
            reference.as_deref(),
            &path,
            objects,
            kustomize.command.as_ref(),
            &kustomize.limits(),
        ),
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
            telemetry::init(log_format);
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
                throttle: kubemint::cluster::throttle::Throttle::new(
                    throughput.kube_api_qps,
                    throughput.kube_api_burst,
                ),
                shard: shard.unwrap_or_default(),
                poll_join_window: throughput.poll_join_window,
            };
            let election = leader_elect.then_some(cli::run::Election {
                namespace: leader_election_namespace,
                lease_duration: leader_election_lease_duration,
            });
            tokio::runtime::Runtime::new()
                .context("starting the async runtime")
                .and_then(|rt| Ok(rt.block_on(cli::run::run(settings, http_addr, election, ui))?))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// How much the operator does at once, and how fast it may talk to the API server.
#[derive(clap::Args, Debug)]
struct ThroughputArgs {
    /// Channel passes that run at once. More lets a fleet converge faster; one
    /// huge release never holds up the others beyond one slot.
    #[arg(long, env = "KUBEMINT_CONCURRENCY", default_value_t = kubemint::controller::DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..))]
    concurrency: u16,
    /// API requests per second, shared by all channels, after a burst of
    /// --kube-api-burst (0: no limit). The API server's own fairness still applies.
    #[arg(long, env = "KUBEMINT_KUBE_API_QPS", default_value_t = kubemint::cluster::throttle::DEFAULT_QPS)]
    kube_api_qps: f32,
    /// API requests that may go at once before --kube-api-qps applies.
    #[arg(long, env = "KUBEMINT_KUBE_API_BURST", default_value_t = kubemint::cluster::throttle::DEFAULT_BURST)]
    kube_api_burst: u32,
    /// A new channel takes its group's poll if that started at most this long
    /// before the channel was created (a fleet created at once makes a few
    /// polls, not one each); a sync request still waits for a poll made after it.
    #[arg(long, env = "KUBEMINT_POLL_JOIN_WINDOW", default_value = "5s", value_parser = humantime::parse_duration)]
    poll_join_window: std::time::Duration,
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

fn print_crd() -> anyhow::Result<()> {
    print!("{}", serde_yaml::to_string(&Channel::crd())?);
    Ok(())
}

/// Prints the deployment notes of a repository: what ran, where and when.
fn history_from_git(
    url: &str,
    cluster: Option<&str>,
    channel: Option<String>,
    namespace: Option<String>,
) -> anyhow::Result<()> {
    print!(
        "{}",
        cli::inspect::notes_from_git(url, cluster, channel, namespace)?
    );
    Ok(())
}

/// Reads a channel from the cluster and prints `describe(channel)`.
fn inspect(
    name: &str,
    namespace: Option<String>,
    describe: fn(&Channel) -> String,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let (_, channel) = runtime.block_on(read_channel(name, namespace))?;
    print!("{}", describe(&channel));
    Ok(())
}

/// Prints what delivering the channel's commit (or local files) would change.
/// Exit status: 0 no changes, 1 changes, 2 a commit the controller would refuse.
fn diff(name: &str, namespace: Option<String>, options: DiffOptions) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let cache = tempfile::tempdir().context("creating a temporary git cache")?;
    let report = runtime.block_on(cli::diff::run(name, namespace, options, cache.path()))?;
    print!("{}", cli::diff::describe(&report));
    if let Some((reason, message)) = &report.refused {
        eprintln!("error: {}", cli::diff::refusal(reason, message));
        return Ok(ExitCode::from(2));
    }
    Ok(if report.has_changes() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The channel `name` in `namespace`, or in the kube context's namespace, and the client that read it.
async fn read_channel(
    name: &str,
    namespace: Option<String>,
) -> anyhow::Result<(kube::Client, Channel)> {
    let (_, client) = cli::connect().await?;
    let channel = cli::read_channel(&client, name, namespace).await?;
    Ok((client, channel))
}

fn plan(
    target: &str,
    reference: Option<&str>,
    path: &str,
    objects: bool,
    kustomize: Option<&KustomizeCommand>,
    limits: &kubemint::render::Limits,
) -> anyhow::Result<()> {
    let out = cli::offline::output(target, reference, path, objects, kustomize, limits)?;
    print!("{out}");
    Ok(())
}
