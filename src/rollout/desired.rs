//! The release a channel wants, in the form the plan compares with the
//! cluster: every object with its namespace settled, its kubemint labels, and
//! the hash of the manifest it should have.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::mint::{Minted, WorkloadKey};
use super::observed::ObjectId;
use super::{stage_of, MANAGED_BY, MANAGED_BY_LABEL};
use crate::api::InventoryEntry;
use crate::render::Object;

/// Label naming the channel (`<namespace>.<name>`) that manages an object.
pub const CHANNEL_LABEL: &str = "kubemint.io/channel";
/// Annotation with the commit that last changed an object (or minted a revision).
pub const COMMIT_ANNOTATION: &str = "kubemint.io/commit";
/// Annotation with the release that last changed an object (or minted a revision).
pub const RELEASE_ANNOTATION: &str = "kubemint.io/release";
/// Annotation with the hash of the manifest kubemint last applied to an object.
pub const APPLIED_HASH_ANNOTATION: &str = "kubemint.io/applied-hash";
/// Label on preview Services (`<name>-preview`), which select the newest revision.
pub const PREVIEW_LABEL: &str = "kubemint.io/preview";

/// One object to deliver as declared (a config copy, a Service pinned later).
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredObject {
    /// Its identity, namespace settled.
    pub id: ObjectId,
    /// `apiVersion`.
    pub api_version: String,
    /// The file it was declared in.
    pub file: String,
    /// The manifest with namespace and labels settled; no kubemint annotations.
    pub manifest: Value,
    /// Apply stage: CRDs and Namespaces (0) before the rest (1).
    pub stage: u8,
    /// The workload whose revision this Service is pinned to, if it is one.
    pub pinned_to: Option<WorkloadKey>,
    /// The workload this HorizontalPodAutoscaler scales: it targets the serving revision.
    pub scales: Option<WorkloadKey>,
    /// Whether it is an immutable config copy (tracked by label, not inventory).
    pub copy: bool,
    /// Whether it is a preview Service: pinned to the newest revision as soon as it exists.
    pub preview: bool,
}

impl DesiredObject {
    /// Its inventory entry.
    pub fn entry(&self) -> InventoryEntry {
        let version = self
            .api_version
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        InventoryEntry {
            group: self.id.group.clone(),
            version,
            kind: self.id.kind.clone(),
            namespace: self.id.namespace.clone(),
            name: self.id.name.clone(),
        }
    }
}

/// One revision the release wants.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredRevision {
    /// The workload, namespace settled.
    pub workload: WorkloadKey,
    /// Namespace of the ReplicaSet.
    pub namespace: String,
    /// ReplicaSet name.
    pub name: String,
    /// Revision hash.
    pub hash: String,
    /// Replicas it runs at when wanted (the Deployment's).
    pub replicas: i32,
    /// `(minReplicas, maxReplicas)` of the autoscaler of its workload, if it has one.
    pub autoscale: Option<(i32, i32)>,
    /// The ReplicaSet manifest with namespace and labels settled (replicas as declared).
    pub manifest: Value,
    /// The file its Deployment was declared in.
    pub file: String,
}

/// A release, ready to be compared with the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredRelease {
    /// Release id.
    pub id: String,
    /// Full commit id it was rendered from.
    pub commit: String,
    /// `<namespace>.<name>` of the channel.
    pub channel: String,
    /// Declared objects and config copies, in apply order.
    pub objects: Vec<DesiredObject>,
    /// The revisions of its minted workloads.
    pub revisions: Vec<DesiredRevision>,
    /// Pre-promotion test Jobs, named for the release.
    pub hooks: Vec<DesiredHook>,
}

/// A pre-promotion test Job of the release.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredHook {
    /// The Job, named `<name>-<release id>`.
    pub id: ObjectId,
    /// `apiVersion`.
    pub api_version: String,
    /// The file it was declared in.
    pub file: String,
    /// The Job manifest, with one `KUBEMINT_PREVIEW_<SERVICE>` variable per preview Service.
    pub manifest: Value,
}

impl DesiredHook {
    /// Its inventory-style entry (hooks are tracked by label, not inventory).
    pub fn entry(&self) -> InventoryEntry {
        InventoryEntry {
            group: self.id.group.clone(),
            version: self
                .api_version
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string(),
            kind: self.id.kind.clone(),
            namespace: self.id.namespace.clone(),
            name: self.id.name.clone(),
        }
    }
}

impl DesiredRelease {
    /// Builds the desired release from a minted release. `namespace_of` settles
    /// the namespace of an object: `Some` for namespaced kinds, `None` for
    /// cluster-scoped ones (it knows the cluster's kinds and the release's CRDs).
    pub fn new(
        release_id: &str,
        commit: &str,
        channel: &str,
        minted: &Minted,
        namespace_of: &dyn Fn(&Object) -> Option<String>,
    ) -> Self {
        Self::with_previews(release_id, commit, channel, minted, namespace_of, false)
    }

    /// Like [`DesiredRelease::new`]; with `preview` (or a pre-promotion test),
    /// every pinned Service gets a companion `<name>-preview`.
    pub fn with_previews(
        release_id: &str,
        commit: &str,
        channel: &str,
        minted: &Minted,
        namespace_of: &dyn Fn(&Object) -> Option<String>,
        preview: bool,
    ) -> Self {
        let labels = |manifest: &Value, namespace: Option<&str>| -> Value {
            let mut out = manifest.clone();
            let metadata = object_entry(&mut out, "metadata");
            match namespace {
                Some(ns) => {
                    metadata.insert("namespace".into(), json!(ns));
                }
                None => {
                    metadata.remove("namespace");
                }
            }
            let labels = object_entry_in(metadata, "labels");
            labels.insert(MANAGED_BY_LABEL.into(), json!(MANAGED_BY));
            labels.insert(CHANNEL_LABEL.into(), json!(channel));
            out
        };
        let pinned: BTreeSet<usize> = minted.pinned_services.iter().map(|(i, _)| *i).collect();
        let objects = minted
            .objects
            .iter()
            .enumerate()
            .map(|(index, object)| {
                let namespace = namespace_of(object);
                let pinned_to = pinned.contains(&index).then(|| {
                    let (_, key) = minted
                        .pinned_services
                        .iter()
                        .find(|(i, _)| *i == index)
                        .expect("index is pinned");
                    resolve(key, namespace.as_deref())
                });
                let copy = minted.made(&object.kind, &object.name);
                let scales = minted
                    .autoscalers
                    .iter()
                    .find(|(i, _)| *i == index)
                    .map(|(_, a)| resolve(&a.workload, namespace.as_deref()));
                DesiredObject {
                    id: ObjectId {
                        group: object.group().to_string(),
                        kind: object.kind.clone(),
                        namespace: namespace.clone(),
                        name: object.name.clone(),
                    },
                    api_version: object.api_version.clone(),
                    file: object.file.clone(),
                    manifest: labels(&object.manifest, namespace.as_deref()),
                    stage: stage_of(object.group(), &object.kind),
                    pinned_to,
                    scales,
                    copy,
                    preview: false,
                }
            })
            .collect::<Vec<_>>();
        let mut objects = objects;
        if preview || !minted.hooks.is_empty() {
            let previews: Vec<DesiredObject> = objects.iter().filter_map(preview_of).collect();
            objects.extend(previews);
        }
        let hooks = minted
            .hooks
            .iter()
            .map(|job| {
                let namespace = namespace_of(job);
                let name = format!("{}-{release_id}", job.name);
                let mut manifest = labels(&job.manifest, namespace.as_deref());
                manifest["metadata"]["name"] = json!(name);
                let env: Vec<Value> = objects
                    .iter()
                    .filter(|o| o.preview)
                    .map(|o| {
                        let service = o.id.name.trim_end_matches("-preview");
                        json!({
                            "name": format!("KUBEMINT_PREVIEW_{}", service.to_uppercase().replace(['-', '.'], "_")),
                            "value": format!("{}.{}.svc", o.id.name, o.id.namespace.as_deref().unwrap_or_default()),
                        })
                    })
                    .collect();
                if let Some(containers) = manifest
                    .pointer_mut("/spec/template/spec/containers")
                    .and_then(Value::as_array_mut)
                {
                    for container in containers {
                        let list = container
                            .as_object_mut()
                            .map(|c| c.entry("env").or_insert_with(|| json!([])));
                        if let Some(Value::Array(list)) = list {
                            list.extend(env.iter().cloned());
                        }
                    }
                }
                DesiredHook {
                    id: ObjectId {
                        group: "batch".into(),
                        kind: "Job".into(),
                        namespace,
                        name,
                    },
                    api_version: job.api_version.clone(),
                    file: job.file.clone(),
                    manifest,
                }
            })
            .collect();
        let revisions = minted
            .revisions
            .iter()
            .map(|r| {
                let namespace =
                    namespace_of(&r.replica_set).unwrap_or_else(|| "default".to_string());
                let autoscale = minted
                    .autoscalers
                    .iter()
                    .find(|(_, a)| a.workload == r.key())
                    .map(|(_, a)| (a.min, a.max));
                DesiredRevision {
                    autoscale,
                    workload: (Some(namespace.clone()), r.workload.clone()),
                    namespace: namespace.clone(),
                    name: r.replica_set.name.clone(),
                    hash: r.hash.clone(),
                    replicas: r.replicas,
                    manifest: labels(&r.replica_set.manifest, Some(&namespace)),
                    file: r.replica_set.file.clone(),
                }
            })
            .collect();
        DesiredRelease {
            id: release_id.to_string(),
            commit: commit.to_string(),
            channel: channel.to_string(),
            objects,
            revisions,
            hooks,
        }
    }

    /// The inventory of the release: its declared objects (copies and revisions are tracked by label).
    pub fn inventory(&self) -> Vec<InventoryEntry> {
        let mut entries: Vec<InventoryEntry> = self
            .objects
            .iter()
            .filter(|o| !o.copy)
            .map(DesiredObject::entry)
            .collect();
        entries.sort();
        entries.dedup();
        entries
    }
}

/// The preview companion of a pinned Service: `<name>-preview`, same ports and pin rule's workload.
fn preview_of(service: &DesiredObject) -> Option<DesiredObject> {
    let workload = service.pinned_to.clone()?;
    let name = format!("{}-preview", service.id.name);
    let mut manifest = service.manifest.clone();
    manifest["metadata"]["name"] = json!(name);
    manifest["metadata"]["labels"][PREVIEW_LABEL] = json!("true");
    if let Some(spec) = manifest.get_mut("spec").and_then(Value::as_object_mut) {
        // A preview is for testing inside the cluster: no external exposure, and
        // a fresh cluster IP rather than a copied one.
        for key in [
            "clusterIP",
            "clusterIPs",
            "type",
            "externalIPs",
            "loadBalancerIP",
            "externalTrafficPolicy",
            "healthCheckNodePort",
        ] {
            spec.remove(key);
        }
        if let Some(Value::Array(ports)) = spec.get_mut("ports") {
            for port in ports {
                if let Some(p) = port.as_object_mut() {
                    p.remove("nodePort");
                }
            }
        }
    }
    Some(DesiredObject {
        id: ObjectId {
            name,
            ..service.id.clone()
        },
        manifest,
        pinned_to: Some(workload),
        preview: true,
        ..service.clone()
    })
}

/// A workload key with its namespace settled: as written, or the Service's.
fn resolve(key: &WorkloadKey, namespace: Option<&str>) -> WorkloadKey {
    (
        key.0.clone().or_else(|| namespace.map(str::to_string)),
        key.1.clone(),
    )
}

/// The hash of a manifest as kubemint applies it, over its canonical JSON.
pub fn manifest_hash(manifest: &Value) -> String {
    use sha2::{Digest, Sha256};
    let bytes = serde_json::to_vec(manifest).unwrap_or_default();
    hex::encode(&Sha256::digest(&bytes)[..10])
}

/// `manifest` with kubemint's annotations: what the applied object records.
pub fn annotated(manifest: &Value, commit: &str, release: &str, hash: &str) -> Value {
    let mut out = manifest.clone();
    let metadata = object_entry(&mut out, "metadata");
    let annotations = object_entry_in(metadata, "annotations");
    annotations.insert(COMMIT_ANNOTATION.into(), json!(commit));
    annotations.insert(RELEASE_ANNOTATION.into(), json!(release));
    annotations.insert(APPLIED_HASH_ANNOTATION.into(), json!(hash));
    out
}

fn object_entry<'a>(value: &'a mut Value, key: &str) -> &'a mut serde_json::Map<String, Value> {
    if !value.is_object() {
        *value = json!({});
    }
    let map = value.as_object_mut().expect("just made an object");
    object_entry_in(map, key)
}

fn object_entry_in<'a>(
    parent: &'a mut serde_json::Map<String, Value>,
    key: &str,
) -> &'a mut serde_json::Map<String, Value> {
    let slot = parent.entry(key).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    slot.as_object_mut().expect("just made an object")
}
