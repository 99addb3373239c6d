//! Leader election: among several replicas of `kubemint run`, only the holder of
//! a `coordination.k8s.io/v1` Lease reconciles; the others wait as standbys.
//! The Lease protocol itself is kube-lease-manager's.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::Shard;

/// Name of the Lease that replicas of the unsharded operator compete for.
pub const LEASE_NAME: &str = "kubemint-leader";

/// The Lease of `shard`'s replicas: each shard elects its own leader, so
/// [`LEASE_NAME`] for the unsharded operator and `kubemint-leader-shard-<key>`
/// for a shard (a shard key is a DNS label, so this is a valid name).
pub fn lease_name(shard: &Shard) -> String {
    match shard.key() {
        Some(key) => format!("{LEASE_NAME}-shard-{key}"),
        None => LEASE_NAME.to_string(),
    }
}

/// How a replica takes part in the election.
#[derive(Debug, Clone)]
pub struct LeaderElection {
    /// Name of the Lease ([`lease_name`] of the operator's shard).
    pub name: String,
    /// Namespace of the Lease (the operator's own namespace).
    pub namespace: String,
    /// This replica's name in the Lease (`holderIdentity`); unique per process.
    pub identity: String,
    /// How long the Lease is valid after its last renewal. A replica that stops
    /// renewing (killed, partitioned) is replaced after at most this long.
    pub lease_duration: Duration,
}

/// Why leader election failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The Lease could not be read, created or updated.
    #[error("leader election on Lease {lease}: {source}")]
    Lease {
        /// `namespace/name` of the Lease.
        lease: String,
        /// What the lease manager said.
        #[source]
        source: LeaseManagerError,
    },
    /// The task that renews the Lease ended before it was held.
    #[error("leader election on Lease {lease} stopped before the lease was acquired")]
    Ended {
        /// `namespace/name` of the Lease.
        lease: String,
    },
}

/// The Lease, held by this process.
pub struct Leadership {
    held: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, LeaseManagerError>>,
}

impl LeaderElection {
    /// `namespace/name` of the Lease.
    pub fn lease(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Waits until this process holds the Lease (creating it when it does not
    /// exist), then keeps renewing it in the background.
    pub async fn acquire(&self, client: Client) -> Result<Leadership, LeaderError> {
        let seconds = self.lease_duration.as_secs().max(2);
        let manager = LeaseManagerBuilder::new(client, &self.name)
            .with_namespace(&self.namespace)
            .with_identity(&self.identity)
            .with_duration(seconds)
            // Renew a third of the duration before expiry, as client-go's
            // defaults do (15 s lease, renewed with 5 s to spare).
            .with_grace((seconds / 3).max(1))
            .build()
            .await
            .map_err(|source| LeaderError::Lease {
                lease: self.lease(),
                source,
            })?;
        let (mut held, task) = manager.watch().await;
        while !*held.borrow_and_update() {
            if held.changed().await.is_err() {
                return Err(LeaderError::Ended {
                    lease: self.lease(),
                });
            }
        }
        Ok(Leadership { held, task })
    }
}

impl Leadership {
    /// Resolves when the Lease is lost: another replica took it (this one could
    /// not renew in time), or the renewing task ended.
    pub async fn lost(&mut self) {
        while self.held.changed().await.is_ok() {
            if !*self.held.borrow_and_update() {
                return;
            }
        }
    }

    /// Releases the Lease so a standby takes over at once instead of after it
    /// expires. Bounded: shutdown must not hang on an unreachable API server.
    pub async fn step_down(self) {
        drop(self.held);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// A unique identity for this process: the pod name in a cluster, the host name
/// elsewhere, with the process id so that two processes on one host differ.
pub fn identity(pod_name: Option<&str>) -> String {
    let host = pod_name
        .map(str::to_string)
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "kubemint".to_string());
    format!("{host}_{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_shard_has_its_own_lease() {
        assert_eq!(lease_name(&Shard::unsharded()), "kubemint-leader");
        assert_eq!(
            lease_name(&Shard::parse("a").unwrap()),
            "kubemint-leader-shard-a"
        );
        assert_ne!(
            lease_name(&Shard::parse("a").unwrap()),
            lease_name(&Shard::parse("b").unwrap())
        );
    }

    #[test]
    fn identities_name_the_pod_and_the_process() {
        let id = identity(Some("kubemint-7d9f-abcde"));
        assert_eq!(id, format!("kubemint-7d9f-abcde_{}", std::process::id()));
        assert!(!identity(None).is_empty());
    }
}
