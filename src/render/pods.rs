//! Where pod specs live in the pod-bearing kinds.

use serde_json::{Map, Value};

/// Path from the object root to its pod spec, for the kinds that carry pods.
fn pod_spec_path(group: &str, kind: &str) -> Option<&'static [&'static str]> {
    match (group, kind) {
        ("", "Pod") => Some(&["spec"]),
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("batch", "Job")
        | ("", "ReplicationController") => Some(&["spec", "template", "spec"]),
        ("batch", "CronJob") => Some(&["spec", "jobTemplate", "spec", "template", "spec"]),
        _ => None,
    }
}

/// Whether objects of this kind carry a pod template (or are pods).
pub(crate) fn carries_pods(group: &str, kind: &str) -> bool {
    pod_spec_path(group, kind).is_some()
}

/// The pod spec of an object, if its kind carries pods and the spec is there.
pub fn pod_spec<'a>(
    manifest: &'a Value,
    group: &str,
    kind: &str,
) -> Option<&'a Map<String, Value>> {
    let mut cur = manifest;
    for key in pod_spec_path(group, kind)? {
        cur = cur.get(key)?;
    }
    cur.as_object()
}

/// Mutable access to the pod spec of an object.
pub fn pod_spec_mut<'a>(
    manifest: &'a mut Value,
    group: &str,
    kind: &str,
) -> Option<&'a mut Map<String, Value>> {
    let mut cur = manifest;
    for key in pod_spec_path(group, kind)? {
        cur = cur.get_mut(key)?;
    }
    cur.as_object_mut()
}

/// Lists of containers in a pod spec that carry images and ports: regular, then init.
pub(crate) const CONTAINER_LISTS: [&str; 2] = ["containers", "initContainers"];

/// Every container (regular, then init) of a pod spec, mutably.
pub(crate) fn containers_mut(
    spec: &mut Map<String, Value>,
) -> impl Iterator<Item = &mut Map<String, Value>> {
    spec.iter_mut()
        .filter(|(k, _)| CONTAINER_LISTS.contains(&k.as_str()))
        .filter_map(|(_, v)| v.as_array_mut())
        .flatten()
        .filter_map(Value::as_object_mut)
}

/// Every container of a pod spec: regular containers first, then init containers.
pub(crate) fn containers(spec: &Map<String, Value>) -> impl Iterator<Item = &Map<String, Value>> {
    CONTAINER_LISTS
        .iter()
        .filter_map(|list| spec.get(*list)?.as_array())
        .flatten()
        .filter_map(Value::as_object)
}
