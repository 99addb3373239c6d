//! Decisions about a release, as pure functions: how objects are labelled,
//! which stage they go in, and what to prune. No client here.

mod decide;
mod mint;

pub use decide::{
    decide, orphan_copies, Decision, LiveRevision, NotReady, RolloutState, Step, WantedRevision,
};
pub use mint::{
    is_minted, mint, Minted, Revision, WorkloadKey, CONFIG_COPY_LABEL, REVISION_LABEL,
    STRATEGY_ANNOTATION, WORKLOAD_LABEL,
};

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::controller::crd::InventoryEntry;

/// Label on every managed object.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "kubemint";
/// Label naming the channel (`<namespace>.<name>`) that manages an object.
pub const CHANNEL_LABEL: &str = "kubemint.io/channel";
/// Annotation with the commit an object was last applied from.
pub const COMMIT_ANNOTATION: &str = "kubemint.io/commit";
/// Annotation with the release an object belongs to.
pub const RELEASE_ANNOTATION: &str = "kubemint.io/release";
/// Annotation that protects an object from pruning when set to `disabled`.
pub const PRUNE_ANNOTATION: &str = "kubemint.io/prune";

/// What kubemint stamps on every object it applies.
#[derive(Debug, Clone)]
pub struct Stamp<'a> {
    /// `<namespace>.<name>` of the channel.
    pub channel: &'a str,
    /// Full commit id.
    pub commit: &'a str,
    /// Release id.
    pub release: &'a str,
}

/// Returns `manifest` with its namespace settled and kubemint's labels and annotations added.
///
/// `namespace` is `Some` for namespaced kinds (the object's own namespace or the
/// channel's target), `None` for cluster-scoped ones, whose namespace is removed.
pub fn stamp(manifest: &Value, namespace: Option<&str>, stamp: &Stamp<'_>) -> Value {
    let mut out = manifest.clone();
    let Some(obj) = out.as_object_mut() else {
        return out;
    };
    let metadata = obj.entry("metadata").or_insert_with(|| json!({}));
    let Some(metadata) = metadata.as_object_mut() else {
        return out;
    };
    match namespace {
        Some(ns) => {
            metadata.insert("namespace".into(), json!(ns));
        }
        None => {
            metadata.remove("namespace");
        }
    }
    let labels = map_entry(metadata, "labels");
    labels.insert(MANAGED_BY_LABEL.into(), json!(MANAGED_BY));
    labels.insert(CHANNEL_LABEL.into(), json!(stamp.channel));
    let annotations = map_entry(metadata, "annotations");
    annotations.insert(COMMIT_ANNOTATION.into(), json!(stamp.commit));
    annotations.insert(RELEASE_ANNOTATION.into(), json!(stamp.release));
    out
}

fn map_entry<'a>(
    parent: &'a mut serde_json::Map<String, Value>,
    key: &str,
) -> &'a mut serde_json::Map<String, Value> {
    let slot = parent.entry(key).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    slot.as_object_mut().expect("just made an object")
}

/// Apply stage of a kind: CRDs and Namespaces (0) go before everything else (1).
pub fn stage_of(group: &str, kind: &str) -> u8 {
    match (group, kind) {
        ("apiextensions.k8s.io", "CustomResourceDefinition") | ("", "Namespace") => 0,
        _ => 1,
    }
}

/// Objects of the previous inventory that the next one no longer declares, in
/// prune order: the reverse of apply order (namespaced and other objects first,
/// then Namespaces, then CRDs), so that nothing is orphaned mid-way.
pub fn prune_set(previous: &[InventoryEntry], next: &[InventoryEntry]) -> Vec<InventoryEntry> {
    let keep: BTreeSet<(&str, &str, Option<&str>, &str)> = next.iter().map(identity).collect();
    let mut gone: Vec<InventoryEntry> = previous
        .iter()
        .filter(|e| !keep.contains(&identity(e)))
        .cloned()
        .collect();
    gone.sort_by(|a, b| {
        let order = |e: &InventoryEntry| match (e.group.as_str(), e.kind.as_str()) {
            ("apiextensions.k8s.io", "CustomResourceDefinition") => 2,
            ("", "Namespace") => 1,
            _ => 0,
        };
        order(a).cmp(&order(b)).then_with(|| a.cmp(b))
    });
    gone.dedup();
    gone
}

/// Version is not part of an object's identity: a `v1beta1` -> `v1` move is not a prune.
fn identity(e: &InventoryEntry) -> (&str, &str, Option<&str>, &str) {
    (&e.group, &e.kind, e.namespace.as_deref(), &e.name)
}

/// Why a live object is or is not deleted by a prune.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PruneDecision {
    /// It is ours and not protected.
    Delete,
    /// Labelled for another channel, or not labelled by kubemint at all: never touched.
    NotOurs,
    /// Annotated `kubemint.io/prune: disabled`.
    Protected,
}

/// Decides from a live object's labels and annotations whether a prune may delete it.
pub fn prune_decision(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    channel: &str,
) -> PruneDecision {
    if labels.get(CHANNEL_LABEL).map(String::as_str) != Some(channel) {
        return PruneDecision::NotOurs;
    }
    if annotations.get(PRUNE_ANNOTATION).map(String::as_str) == Some("disabled") {
        return PruneDecision::Protected;
    }
    PruneDecision::Delete
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(group: &str, kind: &str, ns: Option<&str>, name: &str) -> InventoryEntry {
        InventoryEntry {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            namespace: ns.map(Into::into),
            name: name.into(),
        }
    }

    #[test]
    fn stamp_sets_namespace_labels_and_annotations() {
        let m = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "labels": {"app": "web"}}});
        let s = Stamp {
            channel: "ops.shop",
            commit: "abc",
            release: "r1",
        };
        let out = stamp(&m, Some("shop"), &s);
        assert_eq!(out["metadata"]["namespace"], "shop");
        assert_eq!(out["metadata"]["labels"]["app"], "web");
        assert_eq!(out["metadata"]["labels"][CHANNEL_LABEL], "ops.shop");
        assert_eq!(out["metadata"]["labels"][MANAGED_BY_LABEL], "kubemint");
        assert_eq!(out["metadata"]["annotations"][COMMIT_ANNOTATION], "abc");
        assert_eq!(out["metadata"]["annotations"][RELEASE_ANNOTATION], "r1");
        // The input is not modified.
        assert!(m["metadata"].get("namespace").is_none());
    }

    #[test]
    fn stamp_drops_namespace_of_cluster_scoped_objects() {
        let m = json!({"kind": "ClusterRole", "metadata": {"name": "r", "namespace": "x"}});
        let s = Stamp {
            channel: "a.b",
            commit: "c",
            release: "r",
        };
        assert!(stamp(&m, None, &s)["metadata"].get("namespace").is_none());
    }

    #[test]
    fn prune_set_is_previous_minus_next_in_reverse_apply_order() {
        let prev = vec![
            entry(
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
                None,
                "w.x.io",
            ),
            entry("", "Namespace", None, "old"),
            entry("", "Service", Some("shop"), "web"),
            entry("", "ConfigMap", Some("shop"), "cfg"),
            entry("apps", "Deployment", Some("shop"), "web"),
        ];
        let next = vec![
            entry("apps", "Deployment", Some("shop"), "web"),
            entry("", "ConfigMap", Some("shop"), "cfg"),
        ];
        let gone = prune_set(&prev, &next);
        let kinds: Vec<&str> = gone.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["Service", "Namespace", "CustomResourceDefinition"]);
    }

    #[test]
    fn prune_set_ignores_version_changes() {
        let mut moved = entry("networking.k8s.io", "Ingress", Some("a"), "i");
        let prev = vec![moved.clone()];
        moved.version = "v1beta1".into();
        assert!(prune_set(&prev, &[moved]).is_empty());
    }

    #[test]
    fn prune_decision_respects_ownership_and_protection() {
        let ours: BTreeMap<String, String> =
            [(CHANNEL_LABEL.to_string(), "ops.shop".to_string())].into();
        let none = BTreeMap::new();
        assert_eq!(
            prune_decision(&ours, &none, "ops.shop"),
            PruneDecision::Delete
        );
        assert_eq!(
            prune_decision(&ours, &none, "ops.other"),
            PruneDecision::NotOurs
        );
        assert_eq!(
            prune_decision(&none, &none, "ops.shop"),
            PruneDecision::NotOurs
        );
        let protected: BTreeMap<String, String> =
            [(PRUNE_ANNOTATION.to_string(), "disabled".to_string())].into();
        assert_eq!(
            prune_decision(&ours, &protected, "ops.shop"),
            PruneDecision::Protected
        );
    }
}
