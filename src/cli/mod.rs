//! Commands a user runs against a cluster or a checkout: `diff` (the
//! pipeline in preview mode), `status` and `history` (`inspect`), and the
//! offline render behind `kubemint plan` (`offline`), `revert`, `run` (the
//! operator) and `ui` (the web UI on 127.0.0.1). [`args`] defines the
//! command line, `main.rs` parses it, and [`dispatch`] runs the command and
//! prints what these return; [`reference`] generates
//! `docs/reference.md` from [`args`] and the Channel CRD.

pub mod args;
pub mod diff;
pub mod dispatch;
pub mod inspect;
pub mod offline;
pub mod reference;
pub mod revert;
pub mod run;
pub mod ui;

use kube::{Api, Client};

use crate::api::Channel;
use crate::cluster::api_message;

/// Why a command could not reach its channel.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// No kubeconfig or in-cluster config could be read.
    #[error("reading the cluster config (KUBECONFIG or in-cluster config): {}", api_message(.0))]
    Config(#[source] kube::Error),
    /// A client could not be made from the config.
    #[error("connecting to the cluster (KUBECONFIG or in-cluster config): {}", api_message(.0))]
    Connect(#[source] kube::Error),
    /// The channel could not be read.
    #[error("reading channel {channel}: {}", api_message(.source))]
    ReadChannel {
        /// `namespace/name`.
        channel: String,
        /// The client error.
        source: kube::Error,
    },
}

/// The cluster config (in-cluster, or `KUBECONFIG`'s) and a client made from it.
pub async fn connect() -> Result<(kube::Config, Client), CliError> {
    let config = crate::cluster::config().await.map_err(CliError::Config)?;
    let client = Client::try_from(config.clone()).map_err(CliError::Connect)?;
    Ok((config, client))
}

/// Channel `name` in `namespace`, or in the kube context's namespace.
pub async fn read_channel(
    client: &Client,
    name: &str,
    namespace: Option<String>,
) -> Result<Channel, CliError> {
    let namespace = namespace.unwrap_or_else(|| client.default_namespace().to_string());
    Api::<Channel>::namespaced(client.clone(), &namespace)
        .get(name)
        .await
        .map_err(|source| CliError::ReadChannel {
            channel: crate::api::channel_key(&namespace, name),
            source,
        })
}
