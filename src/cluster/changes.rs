//! The change set of a pass: what delivering a release did (or, previewed,
//! would do) to each object, as typed entries. The executor and `kubemint
//! diff` both fill one; events, metrics, the status and the diff output are
//! rendered from it. [`dry_run_apply`] is the one place that decides whether
//! an apply changes anything: a server-side dry run compared with the live
//! object.

use kube::api::DynamicObject;
use kube::discovery::ApiResource;
use kube::Client;
use serde_json::Value;

use super::{apply, is_missing_namespace, is_transient, ClusterError};
use crate::api::InventoryEntry;
use crate::render::diff::{is_secret, mask_secrets, unified, LAST_APPLIED_ANNOTATION};
use crate::rollout::{
    APPLIED_HASH_ANNOTATION, COMMIT_ANNOTATION, PROGRESSING_ANNOTATION, RELEASE_ANNOTATION,
};

/// What happened (or, in a preview, would happen) to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChangeAction {
    /// It did not exist: created.
    Created,
    /// It existed and some field changed.
    Configured,
    /// Applying it changes nothing.
    Unchanged,
    /// A revision scaled to zero replicas.
    ScaledDown,
    /// Deleted.
    Deleted,
}

impl ChangeAction {
    /// Its name in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            ChangeAction::Created => "created",
            ChangeAction::Configured => "configured",
            ChangeAction::Unchanged => "unchanged",
            ChangeAction::ScaledDown => "scaled_down",
            ChangeAction::Deleted => "deleted",
        }
    }
}

/// Why a pass touches an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeReason {
    /// A declared object, or an immutable config copy, of the release.
    Declared,
    /// Someone else wrote to it since kubemint did: put back as declared.
    Drift {
        /// The field manager that wrote.
        manager: String,
    },
    /// A revision's ReplicaSet, minted (or scaled back to its size, or repaired).
    Revision,
    /// Promotion: a Service's selector switched to revision `to`.
    Switch {
        /// The revision it selects after.
        to: String,
    },
    /// A pre-promotion test Job started.
    Test,
    /// A revision that nothing selects any more (the drain after promotion, or an abandoned attempt).
    Drain,
    /// A revision of a release that failed its gates, scaled to zero.
    FailedRelease,
    /// A revision past `keepReleases`, or of a workload the release no longer has.
    Retired,
    /// An immutable config copy that nothing reads any more.
    UnusedCopy,
    /// A test Job of an earlier release, or a failed one run again on retry.
    FinishedTest,
    /// An object the release no longer declares.
    Pruned,
}

/// One object's change.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The object.
    pub object: InventoryEntry,
    /// What happens to it.
    pub action: ChangeAction,
    /// Why.
    pub reason: ChangeReason,
    /// The file it comes from, for declared objects.
    pub file: Option<String>,
    /// A unified diff, live -> after, with Secret values masked; computed
    /// only by previews, empty when there is nothing to show.
    pub diff: String,
}

impl Change {
    /// A change without a diff.
    pub fn new(object: InventoryEntry, action: ChangeAction, reason: ChangeReason) -> Self {
        Change {
            object,
            action,
            reason,
            file: None,
            diff: String::new(),
        }
    }

    /// The same change, naming the file the object comes from.
    pub fn in_file(mut self, file: &str) -> Self {
        self.file = Some(file.to_string());
        self
    }
}

/// Every change of a pass, in the order they were made.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChangeSet {
    /// The entries.
    pub entries: Vec<Change>,
}

impl ChangeSet {
    /// Adds one change.
    pub fn push(&mut self, change: Change) {
        self.entries.push(change);
    }

    /// The changes made for `reason`'s kind of cause that did `action`.
    fn of<'a>(
        &'a self,
        reason: impl Fn(&ChangeReason) -> bool + 'a,
    ) -> impl Iterator<Item = &'a Change> + 'a {
        self.entries
            .iter()
            .filter(move |c| c.action != ChangeAction::Unchanged && reason(&c.reason))
    }

    /// Names of the ReplicaSets minted or scaled back up.
    pub fn minted(&self) -> Vec<&str> {
        self.of(|r| *r == ChangeReason::Revision)
            .map(|c| c.object.name.as_str())
            .collect()
    }

    /// Whether a Service was switched.
    pub fn switched(&self) -> bool {
        self.of(|r| matches!(r, ChangeReason::Switch { .. }))
            .next()
            .is_some()
    }

    /// Names of the revisions drained (scaled to zero after serving, or abandoned).
    pub fn drained(&self) -> Vec<&str> {
        self.of(|r| *r == ChangeReason::Drain)
            .map(|c| c.object.name.as_str())
            .collect()
    }

    /// Objects pruned: declared once, no longer declared (revisions and
    /// config copies retired are not among them).
    pub fn pruned(&self) -> impl Iterator<Item = &Change> {
        self.of(|r| *r == ChangeReason::Pruned)
    }

    /// Everything deleted that the channel owned: pruned objects, retired
    /// revisions and unused config copies (not finished test Jobs).
    pub fn deleted(&self) -> impl Iterator<Item = &Change> {
        self.of(|r| {
            matches!(
                r,
                ChangeReason::Pruned | ChangeReason::Retired | ChangeReason::UnusedCopy
            )
        })
        .filter(|c| c.action == ChangeAction::Deleted)
    }

    /// Hand edits put back: the object and the manager that made them.
    pub fn corrected(&self) -> impl Iterator<Item = (&InventoryEntry, &str)> {
        self.entries.iter().filter_map(|c| match &c.reason {
            ChangeReason::Drift { manager } if c.action != ChangeAction::Unchanged => {
                Some((&c.object, manager.as_str()))
            }
            _ => None,
        })
    }

    /// How many entries did `action`.
    pub fn count(&self, action: ChangeAction) -> usize {
        self.entries.iter().filter(|c| c.action == action).count()
    }

    /// Whether anything changes.
    pub fn has_changes(&self) -> bool {
        self.entries
            .iter()
            .any(|c| c.action != ChangeAction::Unchanged)
    }
}

/// The inventory entry of a minted ReplicaSet.
pub fn revision_entry(namespace: &str, name: &str) -> InventoryEntry {
    v1_entry("apps", "ReplicaSet", namespace, name)
}

/// The entry of an immutable config copy (`ConfigMap` or `Secret`).
pub fn copy_entry(kind: &str, namespace: &str, name: &str) -> InventoryEntry {
    v1_entry("", kind, namespace, name)
}

/// The entry of a test Job.
pub fn job_entry(namespace: &str, name: &str) -> InventoryEntry {
    v1_entry("batch", "Job", namespace, name)
}

fn v1_entry(group: &str, kind: &str, namespace: &str, name: &str) -> InventoryEntry {
    InventoryEntry {
        group: group.to_string(),
        version: "v1".into(),
        kind: kind.to_string(),
        namespace: Some(namespace.to_string()),
        name: name.to_string(),
    }
}

/// The object to dry-run: where it goes and where it comes from.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Its API resource.
    pub resource: &'a ApiResource,
    /// Its entry.
    pub object: &'a InventoryEntry,
    /// The file it comes from (for a rejection's message).
    pub file: &'a str,
    /// The manifest to apply.
    pub manifest: &'a Value,
    /// Namespaces the release itself creates: a dry run into one of them
    /// that does not exist yet is no rejection.
    pub declared_namespaces: &'a [String],
}

/// What a server-side apply dry run says of one object.
#[derive(Debug, Clone)]
pub struct DryRun {
    /// The object as the API server would store it; `None` when its
    /// namespace is one the release creates and does not exist yet.
    pub predicted: Option<DynamicObject>,
    /// The live object, when it was read (`compare`).
    pub live: Option<DynamicObject>,
    /// The verdict, when the live object was read: created, configured or unchanged.
    pub verdict: Option<ChangeAction>,
}

/// Dry-runs the server-side apply of `target` and, with `compare`, reads
/// the live object and says whether the apply would create it, change it or
/// change nothing.
///
/// # Errors
///
/// A transient API error is [`ClusterError::Write`] (retried); the API
/// server's refusal of the object is [`ClusterError::Rejected`], naming its
/// file (the commit stalls until a new one).
pub async fn dry_run_apply(
    client: &Client,
    target: Target<'_>,
    compare: bool,
) -> Result<DryRun, ClusterError> {
    let object = target.object.to_string();
    let namespace = target.object.namespace.as_deref();
    let predicted =
        match apply::dry_run_object(client, target.resource, namespace, target.manifest).await {
            Ok(predicted) => Some(predicted),
            Err(e)
                if is_missing_namespace(&e)
                    && namespace
                        .is_some_and(|ns| target.declared_namespaces.iter().any(|d| d == ns)) =>
            {
                None
            }
            Err(source) if is_transient(&source) => {
                return Err(ClusterError::Write {
                    action: "dry-running",
                    object,
                    source,
                })
            }
            Err(source) => {
                return Err(ClusterError::Rejected {
                    file: target.file.to_string(),
                    object,
                    source,
                })
            }
        };
    if !compare {
        return Ok(DryRun {
            predicted,
            live: None,
            verdict: None,
        });
    }
    let live = apply::live_object(client, target.resource, namespace, &target.object.name)
        .await
        .map_err(|source| ClusterError::Observe {
            what: object,
            source,
        })?;
    let verdict = Some(verdict(live.as_ref(), predicted.as_ref()));
    Ok(DryRun {
        predicted,
        live,
        verdict,
    })
}

/// Created, configured or unchanged: the live object against the dry run's.
/// Without a dry run (a namespace the release creates), an existing object
/// counts as configured.
pub fn verdict(live: Option<&DynamicObject>, predicted: Option<&DynamicObject>) -> ChangeAction {
    match (live, predicted) {
        (None, _) => ChangeAction::Created,
        (Some(_), None) => ChangeAction::Configured,
        (Some(live), Some(predicted))
            if comparable(&to_value(live)) == comparable(&to_value(predicted)) =>
        {
            ChangeAction::Unchanged
        }
        (Some(_), Some(_)) => ChangeAction::Configured,
    }
}

/// The unified diff of a dry run, live -> after, with Secret values masked.
pub fn diff_of(object: &InventoryEntry, dry_run: &DryRun) -> String {
    let Some(predicted) = &dry_run.predicted else {
        return String::new();
    };
    let mut after = comparable(&to_value(predicted));
    let mut before = dry_run.live.as_ref().map(|l| comparable(&to_value(l)));
    if before.as_ref() == Some(&after) {
        return String::new();
    }
    if is_secret(&object.group, &object.kind) {
        mask_secrets(before.as_mut(), Some(&mut after));
    }
    unified(before.as_ref(), Some(&after), ("live", "after"))
}

fn to_value(object: &DynamicObject) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

/// The object without what the server owns or what changes with every
/// commit anyway: status, bookkeeping metadata, kubemint's commit, release
/// and progress stamps, and kubectl's last-applied copy (never kubemint's to
/// change; on a Secret it holds the values in clear).
pub fn comparable(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "managedFields",
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
            "selfLink",
        ] {
            meta.remove(key);
        }
        if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            for key in [
                COMMIT_ANNOTATION,
                RELEASE_ANNOTATION,
                APPLIED_HASH_ANNOTATION,
                PROGRESSING_ANNOTATION,
                LAST_APPLIED_ANNOTATION,
            ] {
                annotations.remove(key);
            }
            if annotations.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    object
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(kind: &str, name: &str) -> InventoryEntry {
        InventoryEntry {
            group: if kind == "ReplicaSet" { "apps" } else { "" }.into(),
            version: "v1".into(),
            kind: kind.into(),
            namespace: Some("shop".into()),
            name: name.into(),
        }
    }

    fn object(value: Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_verdict_ignores_what_the_server_and_kubemint_stamp() {
        let declared = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "web", "namespace": "shop",
                         "annotations": {COMMIT_ANNOTATION: "c2", RELEASE_ANNOTATION: "r2"}},
            "data": {"a": "1"}});
        let live_same = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "7", "uid": "u",
                         "creationTimestamp": "2026-12-01T00:00:00Z",
                         "annotations": {COMMIT_ANNOTATION: "c1", RELEASE_ANNOTATION: "r1",
                                         LAST_APPLIED_ANNOTATION: "{}"},
                         "managedFields": [{"manager": "kubectl"}]},
            "data": {"a": "1"}});
        let mut edited = live_same.clone();
        edited["data"]["a"] = json!("2");
        let predicted = object(declared.clone());
        let mut with_last_applied = declared;
        with_last_applied["metadata"]["annotations"][LAST_APPLIED_ANNOTATION] = json!("{}");
        let rows: [(&str, Option<Value>, Option<Value>, ChangeAction); 5] = [
            (
                "no live object",
                None,
                Some(with_last_applied.clone()),
                ChangeAction::Created,
            ),
            (
                "only stamps differ",
                Some(live_same.clone()),
                Some(with_last_applied.clone()),
                ChangeAction::Unchanged,
            ),
            (
                "a field differs",
                Some(edited),
                Some(with_last_applied),
                ChangeAction::Configured,
            ),
            (
                "no dry run (namespace to come), live exists",
                Some(live_same),
                None,
                ChangeAction::Configured,
            ),
            (
                "no dry run, no live object",
                None,
                None,
                ChangeAction::Created,
            ),
        ];
        for (name, live, predicted_value, want) in rows {
            let live = live.map(object);
            let predicted = predicted_value.map(object);
            assert_eq!(verdict(live.as_ref(), predicted.as_ref()), want, "{name}");
        }
        assert_eq!(
            verdict(None, Some(&predicted)),
            ChangeAction::Created,
            "created whatever the dry run says"
        );
    }

    #[test]
    fn a_secret_s_diff_masks_its_values() {
        let live = object(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "shop"}, "data": {"password": "b2xk"}}));
        let predicted = object(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "shop"}, "data": {"password": "bmV3"}}));
        let run = DryRun {
            predicted: Some(predicted.clone()),
            live: Some(live),
            verdict: Some(ChangeAction::Configured),
        };
        let diff = diff_of(&entry("Secret", "db"), &run);
        assert!(!diff.is_empty(), "a changed value shows as changed");
        assert!(!diff.contains("b2xk") && !diff.contains("bmV3"), "{diff}");
        let same = DryRun {
            predicted: Some(predicted.clone()),
            live: Some(predicted),
            verdict: Some(ChangeAction::Unchanged),
        };
        assert_eq!(diff_of(&entry("Secret", "db"), &same), "");
    }

    #[test]
    fn the_set_tells_each_reader_its_part() {
        let mut set = ChangeSet::default();
        let rows = [
            (
                entry("ConfigMap", "web"),
                ChangeAction::Created,
                ChangeReason::Declared,
            ),
            (
                entry("ConfigMap", "tuned"),
                ChangeAction::Unchanged,
                ChangeReason::Drift {
                    manager: "kubectl".into(),
                },
            ),
            (
                entry("Service", "web"),
                ChangeAction::Configured,
                ChangeReason::Drift {
                    manager: "kubectl-edit".into(),
                },
            ),
            (
                entry("ReplicaSet", "web-b"),
                ChangeAction::Created,
                ChangeReason::Revision,
            ),
            (
                entry("Service", "api"),
                ChangeAction::Configured,
                ChangeReason::Switch { to: "b".into() },
            ),
            (
                entry("ReplicaSet", "web-a"),
                ChangeAction::ScaledDown,
                ChangeReason::Drain,
            ),
            (
                entry("ReplicaSet", "web-z"),
                ChangeAction::ScaledDown,
                ChangeReason::FailedRelease,
            ),
            (
                entry("ReplicaSet", "web-0"),
                ChangeAction::Deleted,
                ChangeReason::Retired,
            ),
            (
                entry("ConfigMap", "web-0"),
                ChangeAction::Deleted,
                ChangeReason::UnusedCopy,
            ),
            (
                entry("ConfigMap", "old"),
                ChangeAction::Deleted,
                ChangeReason::Pruned,
            ),
            (
                entry("Job", "smoke-0"),
                ChangeAction::Deleted,
                ChangeReason::FinishedTest,
            ),
        ];
        for (object, action, reason) in rows {
            set.push(Change::new(object, action, reason));
        }
        assert_eq!(set.minted(), ["web-b"]);
        assert!(set.switched());
        assert_eq!(
            set.drained(),
            ["web-a"],
            "a failed release's revisions are not drained"
        );
        let pruned: Vec<&str> = set.pruned().map(|c| c.object.name.as_str()).collect();
        assert_eq!(
            pruned,
            ["old"],
            "retired revisions and copies are not pruned objects"
        );
        let deleted: Vec<&str> = set.deleted().map(|c| c.object.name.as_str()).collect();
        assert_eq!(deleted, ["web-0", "web-0", "old"], "test Jobs are not told");
        let corrected: Vec<(String, &str)> =
            set.corrected().map(|(o, m)| (o.name.clone(), m)).collect();
        assert_eq!(
            corrected,
            [("web".to_string(), "kubectl-edit")],
            "an unchanged drift check is no correction"
        );
        assert_eq!(set.count(ChangeAction::Deleted), 4);
        assert!(set.has_changes());
        assert!(!ChangeSet::default().has_changes());
    }

    /// The verdict and diff of a dry run, as a preview computes them.
    struct Compared {
        change: ChangeAction,
        diff: String,
    }

    fn compare((kind, live, predicted): (&str, Option<Value>, Option<Value>)) -> Compared {
        let run = DryRun {
            predicted: predicted.map(object),
            live: live.map(object),
            verdict: None,
        };
        Compared {
            change: verdict(run.live.as_ref(), run.predicted.as_ref()),
            diff: diff_of(&entry(kind, "web"), &run),
        }
    }

    fn preview(
        kind: &str,
        live: Option<Value>,
        predicted: Option<Value>,
    ) -> (&str, Option<Value>, Option<Value>) {
        (kind, live, predicted)
    }

    fn config_map(value: &str, commit: &str, resource_version: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {
                "name": "web", "namespace": "shop", "uid": "u-1",
                "resourceVersion": resource_version, "creationTimestamp": "2026-11-25T00:00:00Z",
                "managedFields": [{"manager": "kubemint"}],
                "labels": {"app.kubernetes.io/managed-by": "kubemint"},
                "annotations": {"kubemint.io/commit": commit, "kubemint.io/release": commit}
            },
            "data": {"GREETING": value}
        })
    }

    #[test]
    fn server_bookkeeping_and_commit_stamps_are_not_changes() {
        let live = config_map("hello", "aaaa", "10");
        let after = config_map("hello", "bbbb", "11");
        let c = compare(preview("ConfigMap", Some(live), Some(after)));
        assert_eq!(c.change, ChangeAction::Unchanged);
        assert!(c.diff.is_empty());
    }

    #[test]
    fn a_changed_field_is_a_configure_with_its_lines() {
        let live = config_map("hello", "aaaa", "10");
        let after = config_map("bonjour", "bbbb", "11");
        let c = compare(preview("ConfigMap", Some(live), Some(after)));
        assert_eq!(c.change, ChangeAction::Configured);
        assert!(c.diff.contains("-  GREETING: hello"), "{}", c.diff);
        assert!(c.diff.contains("+  GREETING: bonjour"), "{}", c.diff);
        assert!(!c.diff.contains("resourceVersion"), "{}", c.diff);
        assert!(!c.diff.contains("kubemint.io/commit"), "{}", c.diff);
    }

    #[test]
    fn a_missing_object_is_created_and_shown_whole() {
        let c = compare(preview(
            "ConfigMap",
            None,
            Some(config_map("hello", "a", "1")),
        ));
        assert_eq!(c.change, ChangeAction::Created);
        assert!(c.diff.contains("+  GREETING: hello"), "{}", c.diff);
        assert!(c.diff.contains("+kind: ConfigMap"), "{}", c.diff);
    }

    #[test]
    fn a_kind_from_the_release_s_own_crd_is_created_unchecked() {
        let c = compare(preview("Widget", None, None));
        assert_eq!(c.change, ChangeAction::Created);
        assert!(c.diff.is_empty());
    }

    #[test]
    fn secret_values_never_appear_but_changed_keys_do() {
        let secret = |token: &str, other: &str| {
            let applied = json!({"data": {"token": token}}).to_string();
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "web", "labels": {"size": token.len().to_string()},
                                "annotations": {LAST_APPLIED_ANNOTATION: applied}},
                   "data": {"token": token, "other": other}})
        };
        let c = compare(preview(
            "Secret",
            Some(secret("czNjcjN0", "c2FtZQ==")),
            Some(secret("bjN3czNjcmV0", "c2FtZQ==")),
        ));
        assert_eq!(c.change, ChangeAction::Configured);
        for value in ["czNjcjN0", "bjN3czNjcmV0", "c2FtZQ=="] {
            assert!(!c.diff.contains(value), "{value} leaked:\n{}", c.diff);
        }
        assert!(c.diff.contains("-  token: '*** (before)'"), "{}", c.diff);
        assert!(c.diff.contains("+  token: '*** (after)'"), "{}", c.diff);
        assert!(c.diff.contains("   other: '***'"), "{}", c.diff);

        let same = compare(preview(
            "Secret",
            Some(secret("czNjcjN0", "c2FtZQ==")),
            Some(secret("czNjcjN0", "c2FtZQ==")),
        ));
        assert_eq!(same.change, ChangeAction::Unchanged);
    }
}
