//! Every channel the operator may see, whatever its shard, for the webhook
//! receivers: a webhook can reach any replica (a standby, another shard's),
//! which must still check it against the channel's secret and pass it on.
//!
//! A push wakes every channel that follows the repository's ref, in whatever
//! shard: this is where they are found. The watch starts with the first
//! webhook, so an operator that receives none never runs it. It keeps what
//! the receivers read (labels, spec), not the status, and serves every later
//! lookup from memory: a stream of unauthenticated requests for made-up
//! channels costs no API request.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::Client;
use tokio::sync::OnceCell;

use crate::api::Channel;

/// How long a lookup waits for the first list, once.
const FIRST_LIST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a channel could not be looked up.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The first list of channels has not come in time (the log says why).
    #[error("the operator has not listed the channels yet; retry shortly")]
    NotListed,
}

/// The channels of a namespace, or of every namespace, started on first use.
#[derive(Clone)]
pub struct Directory {
    client: Client,
    namespace: Option<String>,
    store: Arc<OnceCell<Store<Channel>>>,
}

impl Directory {
    /// A directory of `namespace`'s channels (every namespace's when `None`),
    /// read with `client` once first asked.
    pub fn new(client: Client, namespace: Option<String>) -> Self {
        Directory {
            client,
            namespace,
            store: Arc::default(),
        }
    }

    /// Channel `namespace/name`, without its status (`None`: no such channel).
    pub async fn get(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<Channel>>, DirectoryError> {
        Ok(self
            .listed()
            .await?
            .get(&ObjectRef::new(name).within(namespace)))
    }

    /// Every channel, without its status.
    pub async fn all(&self) -> Result<Vec<Arc<Channel>>, DirectoryError> {
        Ok(self.listed().await?.state())
    }

    /// The store, once it has listed (started on first use).
    async fn listed(&self) -> Result<&Store<Channel>, DirectoryError> {
        let store = self.store.get_or_init(|| async { self.start() }).await;
        if tokio::time::timeout(FIRST_LIST_TIMEOUT, store.wait_until_ready())
            .await
            .is_err()
        {
            tracing::warn!(
                "webhooks: the list of channels is not ready yet; check the operator's permission to list and watch channels"
            );
            return Err(DirectoryError::NotListed);
        }
        Ok(store)
    }

    fn start(&self) -> Store<Channel> {
        let api = crate::cluster::namespaced_or_all(&self.client, self.namespace.as_deref());
        crate::cluster::lists::spawn_reflector(
            api,
            watcher::Config::default(),
            strip,
            "webhook channels",
        )
    }
}

/// Drops what the receivers never read: the status (inventories can be large),
/// managed fields and annotations.
fn strip(channel: &mut Channel) {
    channel.status = None;
    channel.metadata.managed_fields = None;
    channel.metadata.annotations = None;
}
