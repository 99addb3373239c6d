//! The snapshot of one channel: what the reflectors' stores show of its
//! ReplicaSets, Services, test Jobs and delivered objects, as the plan reads
//! them. Hand edits already checked and found as declared (at a
//! resourceVersion) are not reported again.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::DynamicObject;
use kube::core::{GroupVersionKind, PartialObjectMeta};
use kube::discovery::ApiResource;
use kube::ResourceExt;

use super::needs::is_typed;
use super::reflector::Watched;
use super::Typed;
use crate::rollout::{
    foreign_editors, FailedMark, LiveCopy, LiveHook, LiveObject, LiveRevision, LiveService,
    ObjectId, Observed, APPLIED_HASH_ANNOTATION, CHANNEL_LABEL, COMMIT_ANNOTATION,
    CONFIG_COPY_LABEL, DRAINED_ANNOTATION, FAILED_ANNOTATION, FAILED_HOOK_ANNOTATION,
    FAILED_READY_ANNOTATION, FAILED_RETRY_ANNOTATION, HOOK_RETRY_ANNOTATION,
    PROGRESSING_ANNOTATION, PROMOTED_ANNOTATION, RELEASE_ANNOTATION, REVISION_LABEL,
    WORKLOAD_LABEL,
};

/// What the stores show of channel `label` (`<namespace>.<name>`), for kinds
/// `ars`: `typed` are the typed reflectors, `kinds` the metadata ones;
/// `verified` the hand edits checked at a resourceVersion.
pub(super) fn snapshot(
    label: &str,
    ars: &[ApiResource],
    typed: &[Typed],
    kinds: &[(GroupVersionKind, Watched<PartialObjectMeta<DynamicObject>>)],
    verified: &HashMap<ObjectId, String>,
) -> Observed {
    let ours = |meta: &ObjectMeta| {
        meta.labels
            .as_ref()
            .and_then(|l| l.get(CHANNEL_LABEL))
            .map(String::as_str)
            == Some(label)
    };
    let live = |id: &ObjectId, meta: &ObjectMeta| -> LiveObject {
        let (foreign, edited_by) =
            foreign_editors(meta.managed_fields.as_deref().unwrap_or_default());
        let checked = verified.get(id) == meta.resource_version.as_ref();
        let edits = if checked { Vec::new() } else { edited_by };
        let edited_by = edits.last().map(|(m, _)| m.clone());
        LiveObject {
            applied_hash: annotation(meta, APPLIED_HASH_ANNOTATION),
            foreign_managers: foreign,
            edited_by,
            edits,
        }
    };
    let mut observed = Observed::default();
    for ar in ars.iter().filter(|ar| !is_typed(ar)) {
        let gvk = GroupVersionKind::gvk(&ar.group, &ar.version, &ar.kind);
        let watches = kinds.iter().filter(|(g, _)| *g == gvk).map(|(_, w)| w);
        for object in watches.flat_map(|w| w.of_channel(label)) {
            if !ours(&object.metadata) {
                continue;
            }
            let id = ObjectId {
                group: ar.group.clone(),
                kind: ar.kind.clone(),
                namespace: object.metadata.namespace.clone(),
                name: object.name_any(),
            };
            let is_copy = object
                .metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key(CONFIG_COPY_LABEL));
            if is_copy {
                observed.copies.push(LiveCopy {
                    kind: ar.kind.clone(),
                    namespace: id.namespace.clone().unwrap_or_default(),
                    name: id.name.clone(),
                });
            }
            let value = live(&id, &object.metadata);
            observed.objects.insert(id, value);
        }
    }
    for service in typed.iter().flat_map(|t| t.services.of_channel(label)) {
        if !ours(&service.metadata) {
            continue;
        }
        let namespace = service.namespace().unwrap_or_default();
        let id = ObjectId {
            group: String::new(),
            kind: "Service".into(),
            namespace: Some(namespace.clone()),
            name: service.name_any(),
        };
        let selector: BTreeMap<String, String> = service
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default()
            .into_iter()
            .collect();
        observed
            .services
            .insert((namespace, id.name.clone()), LiveService { selector });
        let value = live(&id, &service.metadata);
        observed.objects.insert(id, value);
    }
    for rs in typed.iter().flat_map(|t| t.replica_sets.of_channel(label)) {
        if !ours(&rs.metadata) {
            continue;
        }
        let id = ObjectId {
            group: "apps".into(),
            kind: "ReplicaSet".into(),
            namespace: rs.namespace(),
            name: rs.name_any(),
        };
        let meta = live(&id, &rs.metadata);
        if let Some(revision) = revision(&rs, meta) {
            observed.revisions.push(revision);
        }
    }
    for job in typed.iter().flat_map(|t| t.jobs.of_channel(label)) {
        if !ours(&job.metadata) || annotation(&job.metadata, HOOK_RETRY_ANNOTATION).is_none() {
            continue;
        }
        let status = job.status.clone().unwrap_or_default();
        let condition = |type_: &str| {
            status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == type_ && c.status == "True")
        };
        observed.hooks.insert(
            (job.namespace().unwrap_or_default(), job.name_any()),
            LiveHook {
                succeeded: condition("Complete"),
                failed: condition("Failed"),
                created: job
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0)
                    .unwrap_or(Timestamp::UNIX_EPOCH),
                retry: annotation(&job.metadata, HOOK_RETRY_ANNOTATION).unwrap_or_default(),
            },
        );
    }
    observed.revisions.sort_by(|a, b| a.name.cmp(&b.name));
    observed.copies.sort();
    observed
}

/// The names of `services` in `namespace`, sorted, once each (a namespace
/// can be watched twice: cluster-wide and on its own).
pub(super) fn names_in(
    services: impl IntoIterator<Item = std::sync::Arc<Service>>,
    namespace: &str,
) -> Vec<String> {
    let names: BTreeSet<String> = services
        .into_iter()
        .filter(|s| s.metadata.namespace.as_deref() == Some(namespace))
        .map(|s| s.name_any())
        .collect();
    names.into_iter().collect()
}

fn annotation(meta: &ObjectMeta, key: &str) -> Option<String> {
    meta.annotations.as_ref()?.get(key).cloned()
}

fn time(meta: &ObjectMeta, key: &str) -> Option<Timestamp> {
    annotation(meta, key)?.parse().ok()
}

/// A minted ReplicaSet as the plan sees it: its labels and annotations are its history.
fn revision(rs: &ReplicaSet, meta: LiveObject) -> Option<LiveRevision> {
    let labels = rs.metadata.labels.as_ref()?;
    let workload = labels.get(WORKLOAD_LABEL)?.clone();
    let hash = labels.get(REVISION_LABEL)?.clone();
    let spec = rs.spec.as_ref()?;
    let status = rs.status.clone().unwrap_or_default();
    let m = &rs.metadata;
    let failed = annotation(m, FAILED_ANNOTATION).map(|release| FailedMark {
        release,
        retry: annotation(m, FAILED_RETRY_ANNOTATION).unwrap_or_default(),
        ready: annotation(m, FAILED_READY_ANNOTATION).unwrap_or_default(),
        hook: annotation(m, FAILED_HOOK_ANNOTATION),
    });
    let reads = spec
        .template
        .as_ref()
        .and_then(|t| t.spec.as_ref())
        .and_then(|pod| serde_json::to_value(pod).ok())
        .and_then(|pod| pod.as_object().map(crate::render::referenced_configs))
        .map(|refs| refs.into_iter().map(|(_, name)| name).collect())
        .unwrap_or_default();
    Some(LiveRevision {
        namespace: rs.namespace()?,
        name: rs.name_any(),
        workload,
        hash,
        replicas: spec.replicas.unwrap_or(1),
        available: status.available_replicas.unwrap_or(0),
        ready: status.ready_replicas.unwrap_or(0),
        observed: status.observed_generation.unwrap_or(0) >= m.generation.unwrap_or(0),
        created: m
            .creation_timestamp
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(Timestamp::UNIX_EPOCH),
        progressing_since: time(m, PROGRESSING_ANNOTATION),
        promoted_at: time(m, PROMOTED_ANNOTATION),
        drained_at: time(m, DRAINED_ANNOTATION),
        failed,
        release: annotation(m, RELEASE_ANNOTATION),
        commit: annotation(m, COMMIT_ANNOTATION),
        reads,
        meta,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_services_that_could_select_a_revision_are_the_channel_s_in_its_namespace() {
        let svc = |namespace: &str, name: &str| -> std::sync::Arc<Service> {
            std::sync::Arc::new(
                serde_json::from_value(serde_json::json!({
                    "metadata": {"name": name, "namespace": namespace},
                }))
                .unwrap(),
            )
        };
        let services = [
            svc("shop", "web"),
            svc("shop", "admin"),
            svc("blog", "web"),
            svc("shop", "web"), // the same Service from two watches
        ];
        // (namespace, names)
        let cases = [
            ("shop", vec!["admin", "web"]),
            ("blog", vec!["web"]),
            ("none", vec![]),
        ];
        for (namespace, want) in cases {
            assert_eq!(
                names_in(services.iter().cloned(), namespace),
                want,
                "{namespace}"
            );
        }
    }
}
