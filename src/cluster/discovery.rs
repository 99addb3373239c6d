//! Finding the API resource and scope of a kind. Shared and cached for the
//! life of the operator; misses are forgotten when CRDs are established.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::core::discovery::Scope;
use kube::core::GroupVersionKind;
use kube::discovery::{pinned_kind, ApiResource};
use kube::Client;

use super::ClusterError;

type Cache = HashMap<GroupVersionKind, Option<(ApiResource, bool)>>;

/// Resolves kinds to API resources. Cloning shares the cache.
#[derive(Clone)]
pub struct Resolver {
    client: Client,
    cache: Arc<Mutex<Cache>>,
}

impl Resolver {
    /// A resolver with an empty cache.
    pub fn new(client: Client) -> Self {
        Resolver {
            client,
            cache: Arc::default(),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The resource of a kind and whether it is namespaced; `None` if the cluster does not serve it.
    pub async fn resolve(
        &self,
        group: &str,
        version: &str,
        kind: &str,
    ) -> Result<Option<(ApiResource, bool)>, ClusterError> {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        if let Some(hit) = self.cache().get(&gvk) {
            return Ok(hit.clone());
        }
        let found = match pinned_kind(&self.client, &gvk).await {
            Ok((ar, caps)) => Some((ar, caps.scope == Scope::Namespaced)),
            Err(kube::Error::Api(status)) if status.code == 404 => None,
            Err(kube::Error::Discovery(_)) => None,
            Err(source) => {
                return Err(ClusterError::Discovery {
                    kind: format!("{group}/{version}/{kind}"),
                    source,
                })
            }
        };
        self.cache().insert(gvk, found.clone());
        Ok(found)
    }

    /// Drops cached misses, so kinds whose CRD was just established are found.
    pub fn forget_unknown(&self) {
        self.cache().retain(|_, v| v.is_some());
    }
}
