//! Finding the API resource and scope of a kind, cached for one reconcile.

use std::collections::HashMap;

use kube::core::discovery::Scope;
use kube::core::GroupVersionKind;
use kube::discovery::{pinned_kind, ApiResource};
use kube::Client;

use super::ClusterError;

/// Resolves kinds to API resources. Unknown kinds are cached as `None` until
/// [`Resolver::forget_unknown`] (after CRDs were applied).
pub struct Resolver {
    client: Client,
    cache: HashMap<GroupVersionKind, Option<(ApiResource, bool)>>,
}

impl Resolver {
    /// A resolver with an empty cache.
    pub fn new(client: Client) -> Self {
        Resolver {
            client,
            cache: HashMap::new(),
        }
    }

    /// The resource of a kind and whether it is namespaced; `None` if the cluster does not serve it.
    pub async fn resolve(
        &mut self,
        group: &str,
        version: &str,
        kind: &str,
    ) -> Result<Option<(ApiResource, bool)>, ClusterError> {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        if let Some(hit) = self.cache.get(&gvk) {
            return Ok(hit.clone());
        }
        let found = match pinned_kind(&self.client, &gvk).await {
            Ok((ar, caps)) => Some((ar, caps.scope == Scope::Namespaced)),
            Err(kube::Error::Api(status)) if status.code == 404 => None,
            Err(kube::Error::Discovery(_)) => None,
            Err(source) => {
                return Err(ClusterError::Discovery {
                    kind: format!("{}/{version}/{kind}", group),
                    source,
                })
            }
        };
        self.cache.insert(gvk, found.clone());
        Ok(found)
    }

    /// Drops cached misses, so kinds whose CRD was just established are found.
    pub fn forget_unknown(&mut self) {
        self.cache.retain(|_, v| v.is_some());
    }
}
