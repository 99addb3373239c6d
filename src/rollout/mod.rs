//! Decisions about a release, as pure functions: how a release is minted,
//! what it looks like as desired state, and the plan of each pass. No client here.

mod desired;
mod guard;
pub mod health;
mod mint;
mod observed;
mod plan;
#[cfg(test)]
mod plan_tests;
pub mod simulator;
#[cfg(test)]
pub(crate) mod testing;

pub use desired::{
    annotated, manifest_hash, DesiredHook, DesiredObject, DesiredRelease, DesiredRevision,
    APPLIED_HASH_ANNOTATION, CHANNEL_LABEL, COMMIT_ANNOTATION, PREVIEW_LABEL, RELEASE_ANNOTATION,
};
pub use guard::{channel_prune_hold, prune_hold, PruneHold};
pub use mint::{
    is_hook, is_minted, mint, Autoscaler, Minted, Revision, WorkloadKey, CONFIG_COPY_LABEL,
    HOOK_ANNOTATION, REVISION_LABEL, STRATEGY_ANNOTATION, WORKLOAD_LABEL,
};
pub use observed::{
    foreign_editors, FailedMark, LiveCopy, LiveHook, LiveObject, LiveRevision, LiveService,
    ObjectId, Observed, FIELD_MANAGER,
};
pub use plan::{
    plan, Action, ApplyReason, NotReady, Phase, Plan, RevisionReason, Settings, DRAINED_ANNOTATION,
    FAILED_ANNOTATION, FAILED_HOOK_ANNOTATION, FAILED_READY_ANNOTATION, FAILED_RETRY_ANNOTATION,
    HOOK_RETRY_ANNOTATION, PROGRESSING_ANNOTATION, PROMOTED_ANNOTATION,
};

pub use simulator::Simulator;

use std::collections::{BTreeMap, BTreeSet};

use crate::api::InventoryEntry;

/// Label on every managed object.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "kubemint";
/// Annotation that protects an object from pruning when set to `disabled`.
pub const PRUNE_ANNOTATION: &str = "kubemint.io/prune";

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
