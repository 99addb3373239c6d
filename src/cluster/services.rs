//! The live selectors of Services, read before kubemint pins them.

use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use kube::Client;
use serde_json::Value;

use super::{api_message, ClusterError};

/// The selector of Service `namespace/name` as it is in the cluster, or `None`
/// when the Service does not exist (or selects nothing).
pub async fn live_selector(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<Value>, ClusterError> {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let live = api.get_opt(name).await.map_err(|e| ClusterError::Observe {
        what: format!("Service {namespace}/{name}"),
        message: api_message(&e),
    })?;
    Ok(live
        .and_then(|s| s.spec?.selector)
        .filter(|s| !s.is_empty())
        .map(|s| serde_json::to_value(s).unwrap_or_default()))
}
