//! The `kubemint` command line: every command, flag, environment variable
//! and default, as clap types. `main.rs` parses [`Cli`]; tests and the
//! reference generator reach the same definitions through
//! [`clap::CommandFactory`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::engine::tenancy::TenancyPolicy;
use crate::render::KustomizeCommand;
use crate::telemetry::LogFormat;

/// The `kubemint` command line.
#[derive(Parser)]
#[command(
    name = "kubemint",
    version,
    about = "Pull-based GitOps for immutable, blue/green releases"
)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// How commits are rendered, the same on `run`, `plan` and `diff`:
/// `--kustomize` and the limits of one commit.
#[derive(clap::Args)]
pub struct KustomizeArg {
    /// The kustomize command for paths holding a kustomization, e.g.
    /// `kubemint-render-worker`, `kustomize` or `kubectl kustomize` (default,
    /// also when empty: the render worker if on PATH, else kustomize if on
    /// PATH, else kubectl kustomize).
    #[arg(
        long = "kustomize",
        env = "KUBEMINT_KUSTOMIZE",
        value_parser = kustomize_command
    )]
    pub command: Option<KustomizeCommand>,
    /// Largest file read from a commit (e.g. 8Mi): a commit that needs a larger
    /// one is rejected, naming it.
    #[arg(long, env = "KUBEMINT_MAX_FILE_SIZE", value_name = "SIZE",
          default_value_t = crate::render::DEFAULT_MAX_FILE_BYTES, value_parser = crate::render::parse_size)]
    pub max_file_size: u64,
    /// Most bytes read from one commit, and most rendered from it (manifests
    /// and kustomize output).
    #[arg(long, env = "KUBEMINT_MAX_RELEASE_SIZE", value_name = "SIZE",
          default_value_t = crate::render::DEFAULT_MAX_RELEASE_BYTES, value_parser = crate::render::parse_size)]
    pub max_release_size: u64,
    /// Most objects one commit may declare.
    #[arg(long, env = "KUBEMINT_MAX_OBJECTS", value_name = "N", default_value_t = crate::render::DEFAULT_MAX_OBJECTS)]
    pub max_objects: usize,
}

impl KustomizeArg {
    /// The limits of one commit.
    pub fn limits(&self) -> crate::render::Limits {
        crate::render::Limits {
            max_file_bytes: self.max_file_size,
            max_release_bytes: self.max_release_size,
            max_objects: self.max_objects,
        }
    }
}

/// `--cluster-name`: a name that can be part of a git ref.
fn cluster_name(value: &str) -> Result<String, String> {
    if crate::source::notes::valid_cluster_name(value) {
        Ok(value.to_string())
    } else {
        Err(format!(
            "'{value}' cannot be part of a git ref: use letters, digits, '-', '_' and '.'"
        ))
    }
}

/// `--shard`: a key that can name a Lease and a Deployment.
fn shard_key(value: &str) -> Result<crate::api::Shard, String> {
    crate::api::Shard::parse(value).map_err(|e| e.to_string())
}

/// `--kustomize`: an empty value (an unset Helm value, say) is the default command.
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
pub struct ChannelPolicyArgs {
    /// ServiceAccount (of the channel's namespace) that channels without
    /// `spec.serviceAccountName` impersonate: makes impersonation mandatory.
    #[arg(long, env = "KUBEMINT_DEFAULT_SERVICE_ACCOUNT", value_name = "NAME")]
    pub default_service_account: Option<String>,
    /// A channel may only deliver into its own namespace (and use Secrets there).
    #[arg(long, env = "KUBEMINT_NO_CROSS_NAMESPACE_REFS")]
    pub no_cross_namespace_refs: bool,
}

/// How channels act in the cluster (`kubemint run`).
#[derive(clap::Args)]
pub struct TenancyArgs {
    /// What `diff` takes too.
    #[command(flatten)]
    pub channels: ChannelPolicyArgs,
    /// Accept local paths and file:// URLs as a channel's spec.git.url (refused
    /// by default: they read the operator's own filesystem).
    #[arg(long, env = "KUBEMINT_ALLOW_LOCAL_SOURCES")]
    pub allow_local_sources: bool,
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
/// The `kubemint` commands.
pub enum Command {
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
        /// How commits are rendered.
        #[command(flatten)]
        kustomize: KustomizeArg,
        /// This cluster's name in deployment notes: channels with
        /// `spec.audit.gitNotes` write to `refs/notes/kubemint/<cluster-name>`.
        #[arg(long, env = "KUBEMINT_CLUSTER_NAME", default_value = "default", value_parser = cluster_name)]
        cluster_name: String,
        /// How channels act in the cluster.
        #[command(flatten)]
        tenancy: TenancyArgs,
        /// How much the operator does at once.
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
        shard: Option<crate::api::Shard>,
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
        /// How commits are rendered.
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
        /// How commits are rendered.
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
        signing_format: Option<crate::revert::SigningFormat>,
        /// Revert the commits' changes everywhere in the repository, not only under
        /// the channel's spec.git.path (e.g. a kustomize base outside it).
        #[arg(long)]
        all_paths: bool,
    },
    /// Print the Channel CustomResourceDefinition.
    Crd,
    /// Print the reference page (docs/reference.md), generated from the
    /// Channel CRD and these commands.
    #[command(hide = true)]
    Reference,
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
        /// How commits are rendered.
        #[command(flatten)]
        kustomize: KustomizeArg,
    },
}

/// How much the operator does at once, and how fast it may talk to the API server.
#[derive(clap::Args, Debug)]
pub struct ThroughputArgs {
    /// Channel passes that run at once. More lets a fleet converge faster; one
    /// huge release never holds up the others beyond one slot.
    #[arg(long, env = "KUBEMINT_CONCURRENCY", default_value_t = crate::controller::DEFAULT_CONCURRENCY, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// API requests per second, shared by all channels, after a burst of
    /// --kube-api-burst (0: no limit). The API server's own fairness still applies.
    #[arg(long, env = "KUBEMINT_KUBE_API_QPS", default_value_t = crate::cluster::throttle::DEFAULT_QPS)]
    pub kube_api_qps: f32,
    /// API requests that may go at once before --kube-api-qps applies.
    #[arg(long, env = "KUBEMINT_KUBE_API_BURST", default_value_t = crate::cluster::throttle::DEFAULT_BURST)]
    pub kube_api_burst: u32,
    /// A new channel takes its group's poll if that started at most this long
    /// before the channel was created (a fleet created at once makes a few
    /// polls, not one each); a sync request still waits for a poll made after it.
    #[arg(long, env = "KUBEMINT_POLL_JOIN_WINDOW", default_value = "5s", value_parser = humantime::parse_duration)]
    pub poll_join_window: std::time::Duration,
}
