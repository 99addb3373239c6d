//! What the cluster shows of one channel, as plain data: the input of
//! [`plan`](super::plan). The controller fills it from its reflectors, `kubemint
//! diff` from one-shot lists; neither is needed to build one in a test.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::mint::WorkloadKey;
pub use crate::api::ObjectId;

/// Field manager of every write kubemint makes.
pub const FIELD_MANAGER: &str = "kubemint";

/// A managed object as it is in the cluster (its metadata is enough).
#[derive(Debug, Clone, PartialEq)]
pub struct LiveObject {
    /// `kubemint.io/applied-hash`: the hash of the manifest kubemint last applied.
    pub applied_hash: Option<String>,
    /// Field managers other than kubemint that own fields outside `status`.
    pub foreign_managers: Vec<String>,
    /// A foreign manager that wrote after kubemint did: a hand edit to check.
    pub edited_by: Option<String>,
    /// Every foreign manager that wrote after kubemint did, oldest first, with
    /// the fields it owns as JSON pointers a few levels deep (`/spec/ports`,
    /// `/metadata/labels/team`): an edit of fields the release does not declare
    /// (a controller adding its own) is no drift.
    pub edits: Vec<(String, Vec<String>)>,
}

/// A Service of the channel, with the selector that decides what serves.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveService {
    /// Its selector as it is now.
    pub selector: BTreeMap<String, String>,
}

/// Why a revision was scaled to zero without serving: the release that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedMark {
    /// The release whose readiness gate it failed.
    pub release: String,
    /// The `kubemint.io/retry` value at the time: a new value retries.
    pub retry: String,
    /// `ready/wanted` pods when it failed.
    pub ready: String,
    /// The pre-promotion test Job that failed, when it was the test rather than readiness.
    pub hook: Option<String>,
}

/// A ReplicaSet minted for the channel, as it is in the cluster. Its labels and
/// annotations are the revision's history.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveRevision {
    /// Namespace.
    pub namespace: String,
    /// ReplicaSet name.
    pub name: String,
    /// Workload (Deployment) name.
    pub workload: String,
    /// Revision hash.
    pub hash: String,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.availableReplicas`.
    pub available: i32,
    /// `status.readyReplicas`.
    pub ready: i32,
    /// The ReplicaSet controller has seen the current spec.
    pub observed: bool,
    /// When it was created.
    pub created: Timestamp,
    /// When it was last created or scaled up: the start of its readiness wait.
    pub progressing_since: Option<Timestamp>,
    /// When Services last switched to it.
    pub promoted_at: Option<Timestamp>,
    /// When it was last scaled to zero after serving.
    pub drained_at: Option<Timestamp>,
    /// Set when it failed a release's readiness gate.
    pub failed: Option<FailedMark>,
    /// The release that minted it.
    pub release: Option<String>,
    /// The commit that minted it.
    pub commit: Option<String>,
    /// Names of the ConfigMaps and Secrets its pods read.
    pub reads: Vec<String>,
    /// Metadata shared with every managed object.
    pub meta: LiveObject,
}

impl LiveRevision {
    /// Its workload's key, namespace resolved.
    pub fn workload_key(&self) -> WorkloadKey {
        (Some(self.namespace.clone()), self.workload.clone())
    }

    /// Whether it was promoted and has not been drained since.
    pub fn is_promoted(&self) -> bool {
        match (self.promoted_at, self.drained_at) {
            (Some(p), Some(d)) => p > d,
            (Some(_), None) => true,
            _ => false,
        }
    }

    /// When it last served: now if it runs, else when it was drained.
    pub fn last_active(&self, now: Timestamp) -> Timestamp {
        if self.replicas > 0 {
            now
        } else {
            self.drained_at.or(self.promoted_at).unwrap_or(self.created)
        }
    }
}

/// An immutable config copy of the channel.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LiveCopy {
    /// `ConfigMap` or `Secret`.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name (`<original>-<hash>`).
    pub name: String,
}

/// A pre-promotion test Job of the channel, as it is in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveHook {
    /// It completed successfully.
    pub succeeded: bool,
    /// It failed (its pods used up its backoff limit, or its deadline passed).
    pub failed: bool,
    /// When it was created: the start of its `testTimeout`.
    pub created: Timestamp,
    /// The `kubemint.io/retry` value it was started under: a new value runs it again.
    pub retry: String,
}

/// Everything the plan of one channel looks at.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// Every object labelled for the channel, of the kinds it delivers.
    pub objects: BTreeMap<ObjectId, LiveObject>,
    /// The channel's Services, by (namespace, name).
    pub services: BTreeMap<(String, String), LiveService>,
    /// The channel's minted ReplicaSets.
    pub revisions: Vec<LiveRevision>,
    /// The channel's config copies.
    pub copies: Vec<LiveCopy>,
    /// The channel's pre-promotion test Jobs, by (namespace, name).
    pub hooks: BTreeMap<(String, String), LiveHook>,
}

impl Observed {
    /// The ReplicaSet `namespace/name`, if it exists.
    pub fn revision(&self, namespace: &str, name: &str) -> Option<&LiveRevision> {
        self.revisions
            .iter()
            .find(|r| r.namespace == namespace && r.name == name)
    }
}

/// Who else owns fields of an object, from its `managedFields`: the foreign
/// managers (fields outside `status`), and the one that wrote after kubemint's
/// last write, if any. Status writers (controllers reporting) are not edits.
pub fn foreign_editors(
    entries: &[ManagedFieldsEntry],
) -> (Vec<String>, Vec<(String, Vec<String>)>) {
    let ours = entries
        .iter()
        .filter(|e| e.manager.as_deref() == Some(FIELD_MANAGER))
        .filter_map(|e| e.time.as_ref().map(|t| t.0))
        .max();
    let mut foreign: Vec<String> = Vec::new();
    let mut after: Vec<(Timestamp, &ManagedFieldsEntry)> = Vec::new();
    for entry in entries {
        // A write without a field manager name is someone else's too.
        let manager = entry.manager.as_deref().unwrap_or("(unnamed)");
        if manager == FIELD_MANAGER || only_status(entry) {
            continue;
        }
        if !foreign.iter().any(|m| m == manager) {
            foreign.push(manager.to_string());
        }
        let Some(time) = entry.time.as_ref().map(|t| t.0) else {
            continue;
        };
        // Timestamps have whole seconds: a write in the same second as ours may be after it.
        let after_ours = ours.is_none_or(|o| time >= o);
        if after_ours {
            after.push((time, entry));
        }
    }
    after.sort_by_key(|(t, _)| *t);
    let edits = after
        .into_iter()
        .map(|(_, e)| {
            let mut paths = Vec::new();
            if let Some(fields) = e.fields_v1.as_ref() {
                field_paths(&fields.0, "", 0, &mut paths);
            }
            (
                e.manager.clone().unwrap_or_else(|| "(unnamed)".into()),
                paths,
            )
        })
        .collect();
    (foreign, edits)
}

/// JSON pointers of the fields in a `fieldsV1` set, two levels deep (three
/// under `metadata`), leaving `status` out.
fn field_paths(fields: &Value, prefix: &str, depth: usize, out: &mut Vec<String>) {
    let Some(map) = fields.as_object() else {
        return;
    };
    let limit = if prefix.starts_with("/metadata") {
        3
    } else {
        2
    };
    let mut leaf = true;
    for (key, value) in map {
        let Some(name) = key.strip_prefix("f:") else {
            continue;
        };
        if depth == 0 && name == "status" {
            continue;
        }
        leaf = false;
        let path = format!("{prefix}/{}", name.replace('~', "~0").replace('/', "~1"));
        if depth + 1 >= limit {
            out.push(path);
        } else {
            field_paths(value, &path, depth + 1, out);
        }
    }
    if leaf && !prefix.is_empty() {
        out.push(prefix.to_string());
    }
}

fn only_status(entry: &ManagedFieldsEntry) -> bool {
    if entry.subresource.as_deref() == Some("status") {
        return true;
    }
    match entry.fields_v1.as_ref().map(|f| &f.0) {
        Some(Value::Object(fields)) => fields.keys().all(|k| k == "f:status"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, Time};
    use serde_json::json;

    fn entry(manager: &str, secs: i64, fields: Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Update".into()),
            time: Some(Time(Timestamp::from_second(1_700_000_000 + secs).unwrap())),
            fields_v1: Some(FieldsV1(fields)),
            ..Default::default()
        }
    }

    #[test]
    fn a_write_after_ours_is_an_edit_and_status_writes_are_not() {
        let spec = json!({"f:spec": {"f:ports": {}}});
        let status = json!({"f:status": {"f:loadBalancer": {}}});
        let entries = vec![
            entry(FIELD_MANAGER, 10, spec.clone()),
            entry("kube-controller-manager", 20, status),
            entry("kubectl-patch", 15, spec.clone()),
        ];
        let (foreign, edited) = foreign_editors(&entries);
        assert_eq!(foreign, ["kubectl-patch"]);
        let (manager, paths) = edited.last().cloned().unwrap();
        assert_eq!(manager, "kubectl-patch");
        assert_eq!(paths, ["/spec/ports"]);
    }

    #[test]
    fn an_older_foreign_owner_is_no_edit() {
        let spec = json!({"f:metadata": {"f:annotations": {}}});
        let entries = vec![
            entry("kubectl-annotate", 5, spec.clone()),
            entry(FIELD_MANAGER, 10, spec),
        ];
        let (foreign, edited) = foreign_editors(&entries);
        assert_eq!(foreign, ["kubectl-annotate"]);
        assert!(edited.is_empty());
    }
}
