//! The UI's reflectors: Channels, minted ReplicaSets and Events about
//! Channels, kept in memory so that a page view makes no API request.

use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Event;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::api::Channel;
use crate::cluster::{self, lists};
use crate::rollout::{MANAGED_BY, MANAGED_BY_LABEL};

/// The stores the pages read.
#[derive(Clone)]
pub struct Caches {
    /// Channels.
    pub channels: Store<Channel>,
    /// ReplicaSets kubemint minted.
    pub replica_sets: Store<ReplicaSet>,
    /// Events about Channels.
    pub events: Store<Event>,
}

/// Starts a reflector of `api` with `config` and returns its store.
fn reflect<K>(api: Api<K>, config: watcher::Config) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    lists::spawn_reflector(api, config, |_| {}, "UI")
}

impl Caches {
    /// Starts the reflectors with `client`, in `namespace` or every namespace,
    /// with streaming lists where the API server serves them (as the
    /// operator's own reflectors do, see [`lists`]).
    pub async fn start(client: &Client, namespace: Option<&str>) -> Caches {
        let minted = format!("{MANAGED_BY_LABEL}={MANAGED_BY}");
        let channels: Api<Channel> = cluster::namespaced_or_all(client, namespace);
        let streaming = lists::serves_streaming_lists(&channels, "")
            .await
            .unwrap_or(false);
        let about_channels =
            lists::watcher_config("", streaming).fields("involvedObject.kind=Channel");
        Caches {
            channels: reflect(channels, lists::watcher_config("", streaming)),
            replica_sets: reflect(
                cluster::namespaced_or_all(client, namespace),
                lists::watcher_config(&minted, streaming),
            ),
            events: reflect(
                cluster::namespaced_or_all(client, namespace),
                about_channels,
            ),
        }
    }

    /// Waits until every store has listed once, or `timeout` passes; false then.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let all = async {
            let _ = self.channels.wait_until_ready().await;
            let _ = self.replica_sets.wait_until_ready().await;
            let _ = self.events.wait_until_ready().await;
        };
        tokio::time::timeout(timeout, all).await.is_ok()
    }
}
