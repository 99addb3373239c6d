//! Ingress: an address published by its controller.

use serde_json::Value;

use super::{at, current, in_progress, service::first_address, Judgement};

/// Argo CD's rule (kstatus has none): current once the ingress controller has
/// published an address in `status.loadBalancer.ingress`.
pub(super) fn health(ingress: &Value) -> Judgement {
    match first_address(at(ingress, &["status", "loadBalancer", "ingress"])) {
        Some(address) => current(format!("address {address}")),
        None => in_progress("no address published yet"),
    }
}
