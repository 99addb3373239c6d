//! The release: objects in apply order, their workloads and the hashes that name them.

use std::collections::{BTreeSet, HashMap};

use serde_json::{Map, Value};

use super::hash::{canonical, short_sha256};
use super::{pods, Object};
use crate::api::ObjectId;

/// Hex characters of a release id.
const RELEASE_ID_LEN: usize = 12;
/// Hex characters of a workload (revision) hash.
const WORKLOAD_HASH_LEN: usize = 10;

/// What one commit of a channel renders to.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    /// Short (12 hex) sha256 of the canonical content of all objects: the same
    /// objects always give the same id, whichever commit or file layout they came from.
    pub id: String,
    /// Objects in apply order: stage 0 (CRDs, Namespaces) first, then by file and document.
    pub objects: Vec<Object>,
    /// One per Deployment, StatefulSet and DaemonSet, sorted by namespace and name.
    pub workloads: Vec<Workload>,
    /// How kustomize built the path's kustomizations; `None` for plain manifests.
    /// Not part of the id: the same objects are the same release.
    pub kustomize: Option<super::KustomizeBuild>,
    /// The directories of the repository it was rendered from (the render
    /// path and every kustomization directory reached; `""`: the whole tree).
    /// A commit that changes none of them renders to the same release. Not
    /// part of the id.
    pub inputs: Vec<String>,
}

impl Release {
    /// Passes every file path through `f` (e.g. to show paths relative to the
    /// directory a user named). The id does not depend on file paths.
    pub fn map_files(&mut self, f: impl Fn(&str) -> String) {
        for object in &mut self.objects {
            object.file = f(&object.file);
        }
        if let Some(build) = &mut self.kustomize {
            for file in &mut build.kustomizations {
                *file = f(file);
            }
        }
    }
}

/// A pod-template workload and the hash of its revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// `Deployment`, `StatefulSet` or `DaemonSet`.
    pub kind: String,
    /// Namespace as written.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// 10 hex chars over the pod template and the content of every referenced
    /// ConfigMap/Secret that is in the release.
    pub hash: String,
    /// Every container, regular then init, with its image after overrides.
    pub containers: Vec<ContainerImage>,
    /// ConfigMaps/Secrets its pods reference that exist in the release, sorted.
    pub config_refs: Vec<ObjectId>,
}

/// A container and its image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerImage {
    /// Container name.
    pub container: String,
    /// Image reference after `images.yaml`.
    pub image: String,
}

/// Release id: short sha256 over the canonical form of every object, in key order.
pub(crate) fn release_id(objects: &[Object]) -> String {
    let mut sorted: Vec<(ObjectId, String)> = objects
        .iter()
        .map(|o| (o.key(), canonical(&o.manifest)))
        .collect();
    sorted.sort();
    short_sha256(sorted.iter().map(|(_, c)| c.as_str()), RELEASE_ID_LEN)
}

/// Builds the workloads of a set of objects (in any order).
pub(crate) fn workloads(objects: &[Object]) -> Vec<Workload> {
    let by_key: HashMap<ObjectId, &Object> = objects.iter().map(|o| (o.key(), o)).collect();
    let mut out: Vec<Workload> = objects
        .iter()
        .filter(|o| {
            o.group() == "apps"
                && matches!(o.kind.as_str(), "Deployment" | "StatefulSet" | "DaemonSet")
        })
        .map(|o| workload(o, &by_key))
        .collect();
    out.sort_by(|a, b| (&a.namespace, &a.name, &a.kind).cmp(&(&b.namespace, &b.name, &b.kind)));
    out
}

fn workload(obj: &Object, by_key: &HashMap<ObjectId, &Object>) -> Workload {
    let template = obj
        .manifest
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    let spec = pods::pod_spec(&obj.manifest, obj.group(), &obj.kind);
    let containers = spec
        .map(|spec| {
            pods::containers(spec)
                .map(|c| ContainerImage {
                    container: str_field(c, "name"),
                    image: str_field(c, "image"),
                })
                .collect()
        })
        .unwrap_or_default();
    let config_refs: Vec<ObjectId> = spec
        .map(referenced_configs)
        .unwrap_or_default()
        .into_iter()
        .map(|(kind, name)| ObjectId {
            group: String::new(),
            kind: kind.to_string(),
            namespace: obj.namespace.clone(),
            name,
        })
        .filter(|key| by_key.contains_key(key))
        .collect();
    let mut parts = vec![canonical(&template)];
    for key in &config_refs {
        // Kind and name only: the config is in the workload's namespace, whether
        // that is written or the channel's target, and the hash must not depend on how.
        parts.push(format!("{}/{}", key.kind, key.name));
        parts.push(canonical(&config_content(&by_key[key].manifest)));
    }
    Workload {
        kind: obj.kind.clone(),
        namespace: obj.namespace.clone(),
        name: obj.name.clone(),
        hash: short_sha256(parts.iter().map(String::as_str), WORKLOAD_HASH_LEN),
        containers,
        config_refs,
    }
}

fn str_field(map: &Map<String, Value>, key: &str) -> String {
    map.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The content of a ConfigMap/Secret that pods see.
fn config_content(manifest: &Value) -> Value {
    let mut content = Map::new();
    for key in ["data", "binaryData", "stringData"] {
        if let Some(v) = manifest.get(key) {
            content.insert(key.to_string(), v.clone());
        }
    }
    Value::Object(content)
}

/// Short hash of what pods see of a ConfigMap/Secret: names its immutable copy.
pub fn config_hash(manifest: &Value) -> String {
    short_sha256(
        [canonical(&config_content(manifest)).as_str()],
        WORKLOAD_HASH_LEN,
    )
}

/// `(kind, name)` of every ConfigMap and Secret a pod spec references, sorted.
pub fn referenced_configs(spec: &Map<String, Value>) -> BTreeSet<(&'static str, String)> {
    let mut refs = BTreeSet::new();
    // The visitor needs mutable access; a copy keeps this function read-only.
    let mut copy = spec.clone();
    visit_config_refs(&mut copy, &mut |kind, name| {
        if let Some(name) = name.as_str() {
            refs.insert((kind, name.to_string()));
        }
    });
    refs
}

/// Calls `f(kind, name)` for every ConfigMap/Secret reference of a pod spec
/// (env, envFrom, volumes, projected volumes), with the name mutable so that
/// references can be rewritten.
pub fn visit_config_refs(
    spec: &mut Map<String, Value>,
    f: &mut dyn FnMut(&'static str, &mut Value),
) {
    let mut at = |value: &mut Value, kind: &'static str, pointer: &str| {
        if let Some(name) = value.pointer_mut(pointer) {
            f(kind, name);
        }
    };
    for container in pods::containers_mut(spec) {
        for env in container
            .get_mut("env")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            at(env, "ConfigMap", "/valueFrom/configMapKeyRef/name");
            at(env, "Secret", "/valueFrom/secretKeyRef/name");
        }
        for from in container
            .get_mut("envFrom")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            at(from, "ConfigMap", "/configMapRef/name");
            at(from, "Secret", "/secretRef/name");
        }
    }
    for volume in spec
        .get_mut("volumes")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        at(volume, "ConfigMap", "/configMap/name");
        at(volume, "Secret", "/secret/secretName");
        let sources = volume
            .pointer_mut("/projected/sources")
            .and_then(Value::as_array_mut);
        for source in sources.into_iter().flatten() {
            at(source, "ConfigMap", "/configMap/name");
            at(source, "Secret", "/secret/name");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(api_version: &str, kind: &str, name: &str, manifest: Value) -> Object {
        Object {
            file: "f.yaml".into(),
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
            namespace: None,
            manifest,
        }
    }

    #[test]
    fn references_are_found_everywhere_and_only_when_in_the_release() {
        let deploy = obj(
            "apps/v1",
            "Deployment",
            "web",
            json!({"spec": {"template": {"spec": {
                "containers": [{"name": "web", "image": "web:1",
                    "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm-env", "key": "a"}}},
                            {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s-env", "key": "b"}}}],
                    "envFrom": [{"configMapRef": {"name": "cm-from"}}, {"secretRef": {"name": "s-from"}}]}],
                "initContainers": [{"name": "init", "image": "init:1"}],
                "volumes": [{"name": "v1", "configMap": {"name": "cm-vol"}},
                            {"name": "v2", "secret": {"secretName": "s-vol"}},
                            {"name": "v3", "projected": {"sources": [{"configMap": {"name": "cm-proj"}}, {"secret": {"name": "s-proj"}}]}}]
            }}}}),
        );
        let mut objects = vec![deploy];
        for name in ["cm-env", "cm-from", "cm-vol", "cm-proj"] {
            objects.push(obj("v1", "ConfigMap", name, json!({"data": {"k": "v"}})));
        }
        for name in ["s-env", "s-from", "s-vol", "s-proj"] {
            objects.push(obj("v1", "Secret", name, json!({"stringData": {"k": "v"}})));
        }
        let w = &workloads(&objects)[0];
        let refs: Vec<String> = w.config_refs.iter().map(ToString::to_string).collect();
        assert_eq!(
            refs,
            [
                "ConfigMap/cm-env",
                "ConfigMap/cm-from",
                "ConfigMap/cm-proj",
                "ConfigMap/cm-vol",
                "Secret/s-env",
                "Secret/s-from",
                "Secret/s-proj",
                "Secret/s-vol"
            ]
        );
        assert_eq!(
            w.containers,
            [
                ContainerImage {
                    container: "web".into(),
                    image: "web:1".into()
                },
                ContainerImage {
                    container: "init".into(),
                    image: "init:1".into()
                }
            ]
        );
        assert_eq!(w.hash.len(), 10);

        // Without the configs in the release, nothing is referenced and the hash is the template's.
        let alone = &workloads(&objects[..1])[0];
        assert!(alone.config_refs.is_empty());
        assert_ne!(alone.hash, w.hash);
    }

    #[test]
    fn hash_changes_with_template_and_referenced_config_only() {
        let make = |image: &str, data: &str, label: &str| {
            vec![
                obj(
                    "apps/v1",
                    "Deployment",
                    "web",
                    json!({"metadata": {"labels": {"l": label}}, "spec": {"replicas": 1, "template": {"spec": {
                        "containers": [{"name": "web", "image": image, "envFrom": [{"configMapRef": {"name": "cfg"}}]}]}}}}),
                ),
                obj(
                    "v1",
                    "ConfigMap",
                    "cfg",
                    json!({"metadata": {"labels": {"l": label}}, "data": {"k": data}}),
                ),
                obj("v1", "ConfigMap", "other", json!({"data": {"k": data}})),
            ]
        };
        let base = workloads(&make("web:1", "a", "x"))[0].hash.clone();
        assert_eq!(workloads(&make("web:1", "a", "x"))[0].hash, base);
        assert_ne!(workloads(&make("web:2", "a", "x"))[0].hash, base);
        assert_ne!(workloads(&make("web:1", "b", "x"))[0].hash, base);
        // Metadata of the workload or the config is not part of the pods.
        assert_eq!(workloads(&make("web:1", "a", "y"))[0].hash, base);
    }

    #[test]
    fn release_id_ignores_object_order_and_file() {
        let a = obj("v1", "ConfigMap", "a", json!({"data": {"x": "1"}}));
        let mut b = obj("v1", "ConfigMap", "b", json!({"data": {"x": "2"}}));
        let id = release_id(&[a.clone(), b.clone()]);
        assert_eq!(id.len(), 12);
        b.file = "moved.yaml".into();
        assert_eq!(release_id(&[b.clone(), a.clone()]), id);
        b.manifest["data"]["x"] = json!("3");
        assert_ne!(release_id(&[a, b]), id);
    }
}
