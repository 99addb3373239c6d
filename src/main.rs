//! The `kubemint` command: CLI wiring only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use kube::CustomResourceExt;

use kubemint::controller::{Channel, Metrics, Operator, Settings, SyncRequests};
use kubemint::server::hooks::Hooks;
use kubemint::server::{self, ServerState};
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
        /// Address of /healthz, /readyz and /metrics.
        #[arg(long, env = "KUBEMINT_HTTP_ADDR", default_value = "0.0.0.0:8080")]
        http_addr: SocketAddr,
        /// Log format.
        #[arg(long, value_enum, default_value = "text")]
        log_format: LogFormat,
    },
    /// Render a repository or directory offline and print its release.
    Plan {
        /// A directory (rendered as it is on disk) or, with --ref, a git repository.
        target: PathBuf,
        /// Render this commit, branch or tag of the git repository instead of the files on disk.
        #[arg(long = "ref")]
        reference: Option<String>,
        /// Directory inside the target that holds the manifests.
        #[arg(long, default_value = ".")]
        path: String,
        /// Print the rendered objects as YAML instead of a summary.
        #[arg(long)]
        objects: bool,
    },
    /// Where a channel stands: source, applied commit, active release, conditions.
    Status {
        /// The channel's name.
        channel: String,
        /// Its namespace (default: the kube context's namespace).
        #[arg(short, long)]
        namespace: Option<String>,
    },
    /// A channel's releases, newest first: id, phase, commit, author, times.
    History {
        /// The channel's name.
        channel: String,
        /// Its namespace (default: the kube context's namespace).
        #[arg(short, long)]
        namespace: Option<String>,
    },
    /// Print the Channel CustomResourceDefinition.
    Crd,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd => print_crd(),
        Command::Status { channel, namespace } => {
            inspect(&channel, namespace, kubemint::inspect::describe_status)
        }
        Command::History { channel, namespace } => {
            inspect(&channel, namespace, kubemint::inspect::describe_history)
        }
        Command::Plan {
            target,
            reference,
            path,
            objects,
        } => plan(&target, reference.as_deref(), &path, objects),
        Command::Run {
            namespace,
            cache_dir,
            http_addr,
            log_format,
        } => {
            telemetry::init(log_format);
            let settings = Settings {
                namespace,
                cache_dir,
                instance: std::env::var("POD_NAME").ok(),
            };
            tokio::runtime::Runtime::new()
                .context("starting the async runtime")
                .and_then(|rt| rt.block_on(run(settings, http_addr)))
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

fn print_crd() -> anyhow::Result<()> {
    print!("{}", serde_yaml::to_string(&Channel::crd())?);
    Ok(())
}

/// Reads a channel from the cluster and prints `describe(channel)`.
fn inspect(
    name: &str,
    namespace: Option<String>,
    describe: fn(&Channel) -> String,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let channel = runtime.block_on(read_channel(name, namespace))?;
    print!("{}", describe(&channel));
    Ok(())
}

/// The channel `name` in `namespace`, or in the kube context's namespace.
async fn read_channel(name: &str, namespace: Option<String>) -> anyhow::Result<Channel> {
    let client = kube::Client::try_default()
        .await
        .context("connecting to the cluster (KUBECONFIG or in-cluster config)")?;
    let namespace = namespace.unwrap_or_else(|| client.default_namespace().to_string());
    kube::Api::<Channel>::namespaced(client, &namespace)
        .get(name)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "reading channel {namespace}/{name}: {}",
                kubemint::cluster::api_message(&e)
            )
        })
}

fn plan(
    target: &std::path::Path,
    reference: Option<&str>,
    path: &str,
    objects: bool,
) -> anyhow::Result<()> {
    let plan = kubemint::plan::plan(target, reference, path)?;
    if objects {
        for o in &plan.release.objects {
            print!("---\n{}", serde_yaml::to_string(&o.manifest)?);
        }
    } else {
        print!("{}", kubemint::plan::describe(&plan));
    }
    Ok(())
}

async fn run(settings: Settings, http_addr: SocketAddr) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let (requests, wake) = SyncRequests::new();
    let client = kube::Client::try_default()
        .await
        .context("connecting to the cluster (in-cluster config or KUBECONFIG)")?;
    let operator = Operator::new(
        client.clone(),
        &settings,
        metrics.clone(),
        requests.clone(),
        wake,
    );
    let hooks = Hooks {
        channels: operator.channels(),
        client: client.clone(),
        requests,
    };
    let bound = server::serve(
        http_addr,
        ServerState {
            metrics,
            ready: ready.clone(),
            hooks,
        },
    )
    .await
    .with_context(|| format!("binding {http_addr}"))?;
    tracing::info!(%bound, "serving /healthz, /readyz, /metrics and /hooks");
    client
        .apiserver_version()
        .await
        .context("the API server does not answer")?;
    ready.store(true, Ordering::Relaxed);
    tracing::info!(namespace = ?settings.namespace, "watching channels");
    operator.run().await;
    Ok(())
}
