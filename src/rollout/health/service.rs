//! Service: a load balancer's address, when it asks for one.

use serde_json::Value;

use super::{at, current, in_progress, str_at, Judgement};

/// kstatus' rule: a `LoadBalancer` Service is in progress until it has a cluster
/// IP and an ingress address in `status.loadBalancer`; every other type is current.
pub(super) fn health(svc: &Value) -> Judgement {
    let kind = str_at(svc, &["spec", "type"]).unwrap_or("ClusterIP");
    if kind != "LoadBalancer" {
        return current(format!("type {kind}"));
    }
    if str_at(svc, &["spec", "clusterIP"]).is_none_or(str::is_empty) {
        return in_progress("no cluster IP yet");
    }
    match first_address(at(svc, &["status", "loadBalancer", "ingress"])) {
        Some(address) => current(format!("load balancer at {address}")),
        None => in_progress("no load balancer address yet"),
    }
}

/// The first `ip` or `hostname` of a `loadBalancer.ingress` list.
pub(super) fn first_address(ingress: Option<&Value>) -> Option<String> {
    ingress?.as_array()?.iter().find_map(|i| {
        str_at(i, &["ip"])
            .or_else(|| str_at(i, &["hostname"]))
            .map(str::to_string)
    })
}
