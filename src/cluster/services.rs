//! The live Services that select a revision, read from the API server just
//! before the revision is scaled down. The reflectors can lag behind the
//! cluster (after an API server outage, a watch that missed kubemint's own
//! switch), and a revision that a Service selects must keep its pods.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use kube::Client;

use super::ClusterError;
use crate::rollout::PREVIEW_LABEL;

/// The Services that could serve a revision's pods, as (name, selector): all
/// but the preview Services, which select a new revision before it is ready
/// by design (and must not keep a failed one up).
pub fn serving_candidates(services: Vec<Service>) -> Vec<(String, BTreeMap<String, String>)> {
    services
        .into_iter()
        .filter(|svc| {
            let labels = svc.metadata.labels.as_ref();
            labels
                .and_then(|l| l.get(PREVIEW_LABEL))
                .map(String::as_str)
                != Some("true")
        })
        .map(|svc| {
            let selector = svc.spec.and_then(|s| s.selector).unwrap_or_default();
            (
                svc.metadata.name.unwrap_or_default(),
                selector.into_iter().collect(),
            )
        })
        .collect()
}

/// The names of the `services` (name, selector) whose selector selects pods
/// labelled `pods`. A Service without a selector selects no pod.
pub fn selecting<'a>(
    services: &'a [(String, BTreeMap<String, String>)],
    pods: &BTreeMap<String, String>,
) -> Vec<&'a str> {
    services
        .iter()
        .filter(|(_, selector)| {
            !selector.is_empty() && selector.iter().all(|(k, v)| pods.get(k) == Some(v))
        })
        .map(|(name, _)| name.as_str())
        .collect()
}

/// Whether one of the Services `candidates` (names in `namespace`) selects
/// the pods of ReplicaSet `namespace/revision`, both read from the API
/// server (GETs), not from a cache. Logs which ones when it does: the caller
/// skips the scale-down, and the next pass plans again.
///
/// # Errors
///
/// [`ClusterError::Observe`] when the ReplicaSet or a Service cannot be read.
pub async fn is_selected(
    client: &Client,
    namespace: &str,
    revision: &str,
    candidates: &[String],
) -> Result<bool, ClusterError> {
    if candidates.is_empty() {
        return Ok(false);
    }
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
    let rs = replica_sets
        .get_opt(revision)
        .await
        .map_err(|source| ClusterError::Observe {
            what: format!("apps/ReplicaSet/{namespace}/{revision}"),
            source,
        })?;
    let Some(pods) = rs
        .and_then(|rs| rs.spec?.template?.metadata?.labels)
        .map(|labels| labels.into_iter().collect::<BTreeMap<_, _>>())
    else {
        // Gone, or without pod labels: no Service selects its pods.
        return Ok(false);
    };
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let mut live = Vec::with_capacity(candidates.len());
    for name in candidates {
        let svc = services
            .get_opt(name)
            .await
            .map_err(|source| ClusterError::Observe {
                what: format!("Service/{namespace}/{name}"),
                source,
            })?;
        live.extend(svc);
    }
    let selectors = serving_candidates(live);
    let serving = selecting(&selectors, &pods);
    if serving.is_empty() {
        return Ok(false);
    }
    tracing::warn!(
        revision = %format!("{namespace}/{revision}"),
        services = ?serving,
        "not scaling down a revision that a live Service selects (the watches lag behind the cluster); the next pass plans again"
    );
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_revision_is_selected_by_the_services_whose_selector_its_pods_match() {
        let pods = labels(&[("app", "web"), ("kubemint.io/revision", "abc")]);
        let service = |name: &str, selector: &[(&str, &str)]| (name.to_string(), labels(selector));
        let services = vec![
            service("web", &[("app", "web"), ("kubemint.io/revision", "abc")]),
            service(
                "web-old",
                &[("app", "web"), ("kubemint.io/revision", "def")],
            ),
            service("web-any", &[("app", "web")]),
            service("api", &[("app", "api")]),
            service("external", &[]),
            service(
                "stricter",
                &[
                    ("app", "web"),
                    ("tier", "front"),
                    ("kubemint.io/revision", "abc"),
                ],
            ),
        ];
        // (pods, Services that select them)
        let cases = [
            (pods.clone(), vec!["web", "web-any"]),
            (
                labels(&[("app", "web"), ("kubemint.io/revision", "def")]),
                vec!["web-old", "web-any"],
            ),
            (labels(&[("app", "db")]), vec![]),
            (labels(&[]), vec![]),
        ];
        for (pods, want) in cases {
            assert_eq!(selecting(&services, &pods), want, "pods {pods:?}");
        }
        assert!(selecting(&[], &pods).is_empty(), "no Service, no selection");
    }

    #[test]
    fn preview_services_are_no_candidates() {
        let service = |name: &str, labels: serde_json::Value| -> Service {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "labels": labels},
                "spec": {"selector": {"app": "web"}},
            }))
            .unwrap()
        };
        // (Service, a candidate)
        let cases = [
            (service("web", serde_json::json!({})), true),
            (
                service(
                    "web-preview",
                    serde_json::json!({"kubemint.io/preview": "true"}),
                ),
                false,
            ),
            (
                service("odd", serde_json::json!({"kubemint.io/preview": "false"})),
                true,
            ),
        ];
        for (svc, candidate) in cases {
            let name = svc.metadata.name.clone().unwrap();
            let found = serving_candidates(vec![svc]);
            assert_eq!(found.len() == 1, candidate, "{name}");
            if candidate {
                assert_eq!(found[0].1, labels(&[("app", "web")]));
            }
        }
    }
}
