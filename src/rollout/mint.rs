//! Minting: a release's Deployments become immutable ReplicaSets, the config
//! they read becomes immutable copies, and their Services are pinned to one
//! revision. Pure: the same release and pins always give the same objects.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use crate::render::{
    config_hash, pod_spec, pod_spec_mut, referenced_configs, visit_config_refs, Object, Release,
};

/// Label with a revision's hash, on ReplicaSets, their pods and pinned Service selectors.
pub const REVISION_LABEL: &str = "kubemint.io/revision";
/// Label with the workload (Deployment) name, on its ReplicaSets.
pub const WORKLOAD_LABEL: &str = "kubemint.io/workload";
/// Label on immutable config copies, naming the ConfigMap/Secret they copy.
pub const CONFIG_COPY_LABEL: &str = "kubemint.io/config-copy";
/// Annotation on a Deployment: `apply` opts it out of minting.
pub const STRATEGY_ANNOTATION: &str = "kubemint.io/strategy";
/// Annotation on a Job: `pre-promotion` runs it once per release, after every
/// new revision is ready and before the switch; promotion waits for its success.
pub const HOOK_ANNOTATION: &str = "kubemint.io/hook";

/// Whether a rendered object is a pre-promotion test Job.
pub fn is_hook(obj: &Object) -> bool {
    obj.group() == "batch"
        && obj.kind == "Job"
        && obj.manifest.pointer(&format!(
            "/metadata/annotations/{}",
            HOOK_ANNOTATION.replace('/', "~1")
        )) == Some(&json!("pre-promotion"))
}

/// A workload, identified by its namespace as written and its name.
pub type WorkloadKey = (Option<String>, String);

/// The immutable pod set of one workload in this release.
#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    /// Namespace as written (`None`: the channel's target namespace).
    pub namespace: Option<String>,
    /// Deployment name.
    pub workload: String,
    /// Revision hash.
    pub hash: String,
    /// Desired replicas.
    pub replicas: i32,
    /// The ReplicaSet, at full size.
    pub replica_set: Object,
}

impl Revision {
    /// The workload's key.
    pub fn key(&self) -> WorkloadKey {
        (self.namespace.clone(), self.workload.clone())
    }

    /// `web-2b78ad82ce (2 replicas)`, for events and `plan`.
    pub fn summary(&self) -> String {
        let unit = if self.replicas == 1 {
            "replica"
        } else {
            "replicas"
        };
        format!("{} ({} {unit})", self.replica_set.name, self.replicas)
    }
}

/// What a release delivers once minted.
#[derive(Debug, Clone, PartialEq)]
pub struct Minted {
    /// Objects applied as they are (Services pinned), plus immutable config copies, in apply order.
    pub objects: Vec<Object>,
    /// One revision per minted Deployment.
    pub revisions: Vec<Revision>,
    /// Indexes into `objects` of the Services pinned to a workload's revision, with that workload.
    pub pinned_services: Vec<(usize, WorkloadKey)>,
    /// Indexes into `objects` of the HorizontalPodAutoscalers of a minted
    /// workload, retargeted to its serving ReplicaSet.
    pub autoscalers: Vec<(usize, Autoscaler)>,
    /// Pre-promotion test Jobs: not applied with the rest, run before the switch.
    pub hooks: Vec<Object>,
    /// Names of the config copies (with their namespace as written), which are not inventory.
    pub config_copies: BTreeSet<(Option<String>, String, String)>,
}

impl Minted {
    /// Everything to apply: the objects, then the revisions' ReplicaSets.
    pub fn to_apply(&self) -> Vec<Object> {
        let mut all = self.objects.clone();
        all.extend(self.revisions.iter().map(|r| r.replica_set.clone()));
        all
    }

    /// Services pinned to a workload that `active` knows no serving revision of:
    /// new to the channel, renamed, or just opted in to minting. Such a Service
    /// may still carry traffic to pods kubemint did not mint, so it keeps its live
    /// selector until the release is promoted ([`Minted::hold`]).
    pub fn unpinned_services(&self, has_active: &dyn Fn(&WorkloadKey) -> bool) -> Vec<usize> {
        self.pinned_services
            .iter()
            .filter(|(_, workload)| !has_active(workload))
            .map(|(index, _)| *index)
            .collect()
    }

    /// Replaces the selector of the Service at `index` with `live`.
    pub fn hold(&mut self, index: usize, live: Value) {
        if let Some(service) = self.objects.get_mut(index) {
            service.manifest["spec"]["selector"] = live;
        }
    }

    /// Whether `kind`/`name` is something minting made (a revision's ReplicaSet or
    /// a config copy): those are tracked by label, not in the inventory.
    pub fn made(&self, kind: &str, name: &str) -> bool {
        match kind {
            "ReplicaSet" => self.revisions.iter().any(|r| r.replica_set.name == name),
            _ => self
                .config_copies
                .iter()
                .any(|(_, k, n)| k == kind && n == name),
        }
    }
}

/// A HorizontalPodAutoscaler of a minted workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Autoscaler {
    /// The workload it scales.
    pub workload: WorkloadKey,
    /// `spec.minReplicas` (default 1).
    pub min: i32,
    /// `spec.maxReplicas`.
    pub max: i32,
}

/// The autoscaler of `obj` if it is an HPA whose `scaleTargetRef` names one of `revisions`.
fn autoscaler_of(obj: &Object, revisions: &[Revision]) -> Option<Autoscaler> {
    if obj.group() != "autoscaling" || obj.kind != "HorizontalPodAutoscaler" {
        return None;
    }
    let target = obj.manifest.pointer("/spec/scaleTargetRef")?;
    if target["kind"] != "Deployment" {
        return None;
    }
    let name = target["name"].as_str()?;
    // A namespace left out is the channel's target, which render may have
    // settled for the workload: either side unspelled pairs.
    let revision = revisions.iter().find(|r| {
        r.workload == name
            && (r.namespace == obj.namespace || r.namespace.is_none() || obj.namespace.is_none())
    })?;
    let spec = &obj.manifest["spec"];
    Some(Autoscaler {
        workload: revision.key(),
        min: spec["minReplicas"].as_i64().unwrap_or(1) as i32,
        max: spec["maxReplicas"].as_i64().unwrap_or(i64::from(i32::MAX)) as i32,
    })
}

/// Whether a rendered object is a Deployment that kubemint mints.
pub fn is_minted(obj: &Object) -> bool {
    obj.group() == "apps"
        && obj.kind == "Deployment"
        && obj.manifest.pointer(&format!(
            "/metadata/annotations/{}",
            STRATEGY_ANNOTATION.replace('/', "~1")
        )) != Some(&json!("apply"))
}

/// Mints `release`. Services selecting a minted workload's pods are pinned to
/// `active(workload)`, or to the new revision when the workload has none yet.
pub fn mint(release: &Release, active: &dyn Fn(&WorkloadKey) -> Option<String>) -> Minted {
    let hashes: BTreeMap<WorkloadKey, &str> = release
        .workloads
        .iter()
        .map(|w| ((w.namespace.clone(), w.name.clone()), w.hash.as_str()))
        .collect();
    let minted: Vec<&Object> = release.objects.iter().filter(|o| is_minted(o)).collect();

    // Config read by minted pods is delivered as immutable copies, in addition to
    // the declared original: other readers (an Ingress's TLS, a ServiceAccount's
    // pull secrets, unminted workloads, people) use it by its own name.
    let mut copied: BTreeMap<(Option<String>, &'static str, String), String> = BTreeMap::new();
    for obj in release.objects.iter().filter(|o| is_minted(o)) {
        let Some(spec) = pod_spec(&obj.manifest, obj.group(), &obj.kind) else {
            continue;
        };
        for (kind, name) in referenced_configs(spec) {
            let key = (obj.namespace.clone(), kind, name);
            if let Some(config) = find_config(release, &key) {
                copied.insert(
                    key,
                    format!("{}-{}", config.name, config_hash(&config.manifest)),
                );
            }
        }
    }

    let mut objects = Vec::new();
    let mut hooks = Vec::new();
    let mut config_copies = BTreeSet::new();
    for obj in &release.objects {
        if is_minted(obj) {
            continue;
        }
        if is_hook(obj) {
            hooks.push(obj.clone());
            continue;
        }
        let config_key =
            config_kind(obj).map(|kind| (obj.namespace.clone(), kind, obj.name.clone()));
        match config_key
            .as_ref()
            .and_then(|k| copied.get(k).map(|copy| (k, copy)))
        {
            Some((key, copy)) => {
                objects.push(obj.clone());
                objects.push(config_copy(obj, copy));
                config_copies.insert((obj.namespace.clone(), key.1.to_string(), copy.clone()));
            }
            None => objects.push(obj.clone()),
        }
    }

    let mut revisions = Vec::new();
    for deployment in &minted {
        let key = (deployment.namespace.clone(), deployment.name.clone());
        let Some(hash) = hashes.get(&key) else {
            continue;
        };
        revisions.push(replica_set(deployment, hash, &copied));
    }

    let mut pinned_services = Vec::new();
    for (index, obj) in objects.iter_mut().enumerate() {
        if obj.group() != "" || obj.kind != "Service" {
            continue;
        }
        let Some(revision) = selected_revision(obj, &revisions) else {
            continue;
        };
        let key = revision.key();
        let pin = active(&key).unwrap_or_else(|| revision.hash.clone());
        if let Some(selector) = obj
            .manifest
            .pointer_mut("/spec/selector")
            .and_then(Value::as_object_mut)
        {
            selector.insert(REVISION_LABEL.into(), json!(pin));
        }
        pinned_services.push((index, key));
    }

    let autoscalers = objects
        .iter()
        .enumerate()
        .filter_map(|(index, obj)| autoscaler_of(obj, &revisions).map(|a| (index, a)))
        .collect();
    Minted {
        objects,
        revisions,
        pinned_services,
        autoscalers,
        hooks,
        config_copies,
    }
}

fn config_kind(obj: &Object) -> Option<&'static str> {
    match (obj.group(), obj.kind.as_str()) {
        ("", "ConfigMap") => Some("ConfigMap"),
        ("", "Secret") => Some("Secret"),
        _ => None,
    }
}

fn find_config<'a>(
    release: &'a Release,
    key: &(Option<String>, &'static str, String),
) -> Option<&'a Object> {
    release
        .objects
        .iter()
        .find(|o| o.namespace == key.0 && config_kind(o) == Some(key.1) && o.name == key.2)
}

fn config_copy(obj: &Object, copy_name: &str) -> Object {
    let mut manifest = obj.manifest.clone();
    manifest["metadata"]["name"] = json!(copy_name);
    let labels = object_entry(&mut manifest["metadata"], "labels");
    labels.insert(CONFIG_COPY_LABEL.into(), json!(obj.name));
    manifest["immutable"] = json!(true);
    Object {
        name: copy_name.to_string(),
        manifest,
        ..obj.clone()
    }
}

fn object_entry<'a>(parent: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !parent[key].is_object() {
        parent[key] = json!({});
    }
    parent[key].as_object_mut().expect("just made an object")
}

/// The ReplicaSet of one Deployment revision: same pods, selector and labels
/// extended by the revision, config references pointing at the copies.
fn replica_set(
    deployment: &Object,
    hash: &str,
    copies: &BTreeMap<(Option<String>, &'static str, String), String>,
) -> Revision {
    let spec = &deployment.manifest["spec"];
    let replicas = spec["replicas"].as_i64().unwrap_or(1) as i32;
    let mut template = spec["template"].clone();
    object_entry(&mut template["metadata"], "labels").insert(REVISION_LABEL.into(), json!(hash));
    let mut selector = spec["selector"].clone();
    object_entry(&mut selector, "matchLabels").insert(REVISION_LABEL.into(), json!(hash));
    let mut wrapper = json!({ "spec": { "template": template } });
    if let Some(pod) = pod_spec_mut(&mut wrapper, "apps", "ReplicaSet") {
        visit_config_refs(pod, &mut |kind, name| {
            let key = (
                deployment.namespace.clone(),
                kind,
                name.as_str().unwrap_or_default().to_string(),
            );
            if let Some(copy) = copies.get(&key) {
                *name = json!(copy);
            }
        });
    }
    let template = wrapper["spec"]["template"].take();
    let mut labels = template["metadata"]["labels"].clone();
    labels[WORKLOAD_LABEL] = json!(deployment.name);
    let name = format!("{}-{}", deployment.name, hash);
    let mut rs_spec = json!({ "replicas": replicas, "selector": selector, "template": template });
    if let Some(min_ready) = spec.get("minReadySeconds") {
        rs_spec["minReadySeconds"] = min_ready.clone();
    }
    let mut metadata = json!({ "name": name, "labels": labels });
    if let Some(ns) = &deployment.namespace {
        metadata["namespace"] = json!(ns);
    }
    let manifest = json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": metadata,
        "spec": rs_spec,
    });
    Revision {
        namespace: deployment.namespace.clone(),
        workload: deployment.name.clone(),
        hash: hash.to_string(),
        replicas,
        replica_set: Object {
            file: deployment.file.clone(),
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name,
            namespace: deployment.namespace.clone(),
            manifest,
        },
    }
}

/// The one minted workload whose pods a Service selects (selector ⊆ pod labels).
/// A Service selecting pods of several workloads cannot be pinned and is left alone.
fn selected_revision<'a>(service: &Object, revisions: &'a [Revision]) -> Option<&'a Revision> {
    let selector = service.manifest.pointer("/spec/selector")?.as_object()?;
    if selector.is_empty() {
        return None;
    }
    let mut matching = revisions.iter().filter(|r| {
        r.namespace == service.namespace
            && r.replica_set
                .manifest
                .pointer("/spec/template/metadata/labels")
                .and_then(Value::as_object)
                .is_some_and(|labels| {
                    selector
                        .iter()
                        .filter(|(k, _)| k.as_str() != REVISION_LABEL)
                        .all(|(k, v)| labels.get(k) == Some(v))
                })
    });
    let first = matching.next()?;
    matching.next().is_none().then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{render, EntryKind, RenderOptions, RepoTree, TreeEntry};

    const DEPLOY: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  minReadySeconds: 5
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: web:1
          envFrom: [{configMapRef: {name: cfg}}]
          env:
            - name: PASSWORD
              valueFrom: {secretKeyRef: {name: creds, key: password}}
      volumes:
        - name: files
          projected:
            sources: [{configMap: {name: cfg}}]
";
    const CFG: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: '1'}\n";
    const CREDS: &str =
        "apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\nstringData: {password: x}\n";
    const SVC: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n";

    fn release(files: &[(&str, &str)]) -> Release {
        release_in(files, None)
    }

    fn release_in(files: &[(&str, &str)], namespace: Option<&str>) -> Release {
        let tree = RepoTree {
            entries: files
                .iter()
                .map(|(p, c)| TreeEntry {
                    path: p.to_string(),
                    kind: EntryKind::File(c.as_bytes().to_vec()),
                })
                .collect(),
        };
        render(
            &tree,
            &RenderOptions {
                path: ".".into(),
                namespace: namespace.map(str::to_string),
                ..Default::default()
            },
        )
        .unwrap()
    }

    fn shop() -> Release {
        release(&[
            ("cfg.yaml", CFG),
            ("creds.yaml", CREDS),
            ("deploy.yaml", DEPLOY),
            ("svc.yaml", SVC),
        ])
    }

    #[test]
    fn a_deployment_becomes_a_replica_set_named_by_its_revision() {
        let r = shop();
        let m = mint(&r, &|_| None);
        assert_eq!(m.revisions.len(), 1);
        let rev = &m.revisions[0];
        assert_eq!(rev.hash, r.workloads[0].hash);
        assert_eq!(rev.replica_set.name, format!("web-{}", rev.hash));
        let rs = &rev.replica_set.manifest;
        assert_eq!(rs["kind"], "ReplicaSet");
        assert_eq!(rs["spec"]["replicas"], 3);
        assert_eq!(rs["spec"]["minReadySeconds"], 5);
        assert_eq!(
            rs["spec"]["selector"]["matchLabels"][REVISION_LABEL],
            rev.hash.as_str()
        );
        assert_eq!(rs["spec"]["selector"]["matchLabels"]["app"], "web");
        assert_eq!(
            rs["spec"]["template"]["metadata"]["labels"][REVISION_LABEL],
            rev.hash.as_str()
        );
        assert_eq!(rs["metadata"]["labels"][WORKLOAD_LABEL], "web");
        // No Deployment is applied.
        assert!(m.objects.iter().all(|o| o.kind != "Deployment"));
    }

    #[test]
    fn config_is_copied_immutably_and_references_point_at_the_copies() {
        let m = mint(&shop(), &|_| None);
        let pod = &m.revisions[0].replica_set.manifest["spec"]["template"]["spec"];
        let cfg_copy = pod["containers"][0]["envFrom"][0]["configMapRef"]["name"]
            .as_str()
            .unwrap();
        let secret_copy = pod["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["name"]
            .as_str()
            .unwrap();
        assert!(
            cfg_copy.starts_with("cfg-") && cfg_copy.len() == 14,
            "{cfg_copy}"
        );
        assert!(secret_copy.starts_with("creds-"), "{secret_copy}");
        assert_eq!(
            pod["volumes"][0]["projected"]["sources"][0]["configMap"]["name"],
            cfg_copy
        );
        let copy = m.objects.iter().find(|o| o.name == cfg_copy).unwrap();
        assert_eq!(copy.manifest["immutable"], true);
        assert_eq!(copy.manifest["data"]["a"], "1");
        assert_eq!(
            copy.manifest["metadata"]["labels"][CONFIG_COPY_LABEL],
            "cfg"
        );
        // The declared originals are applied too, unchanged.
        let original = m.objects.iter().find(|o| o.name == "cfg").unwrap();
        assert!(original.manifest.get("immutable").is_none());
        assert!(m.objects.iter().any(|o| o.name == "creds"));
        assert_eq!(m.config_copies.len(), 2);
    }

    #[test]
    fn a_config_change_mints_a_new_revision_and_a_new_copy() {
        let a = mint(&shop(), &|_| None);
        let changed = release(&[
            ("cfg.yaml", &CFG.replace("'1'", "'2'")),
            ("creds.yaml", CREDS),
            ("deploy.yaml", DEPLOY),
            ("svc.yaml", SVC),
        ]);
        let b = mint(&changed, &|_| None);
        assert_ne!(a.revisions[0].hash, b.revisions[0].hash);
        assert_ne!(a.config_copies, b.config_copies);
        // Only the ConfigMap copy changed; the Secret copy is the same object.
        let secrets = |m: &Minted| {
            m.config_copies
                .iter()
                .filter(|c| c.1 == "Secret")
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(secrets(&a), secrets(&b));
    }

    #[test]
    fn services_are_pinned_to_the_active_revision_or_the_new_one() {
        let r = shop();
        let new = r.workloads[0].hash.clone();
        let m = mint(&r, &|_| None);
        let svc = &m.objects[m.pinned_services[0].0];
        assert_eq!(
            svc.manifest["spec"]["selector"][REVISION_LABEL],
            new.as_str()
        );
        let m = mint(&r, &|k| (k.1 == "web").then(|| "0ld0ld0ld0".to_string()));
        let svc = &m.objects[m.pinned_services[0].0];
        assert_eq!(
            svc.manifest["spec"]["selector"][REVISION_LABEL],
            "0ld0ld0ld0"
        );
        assert_eq!(svc.manifest["spec"]["selector"]["app"], "web");
    }

    #[test]
    fn a_service_naming_the_target_namespace_pairs_with_a_deployment_that_does_not() {
        let svc = SVC.replace(
            "metadata: {name: web}",
            "metadata: {name: web, namespace: shop}",
        );
        let files = [("deploy.yaml", DEPLOY), ("svc.yaml", svc.as_str())];
        let m = mint(&release_in(&files, Some("shop")), &|_| None);
        assert_eq!(m.pinned_services.len(), 1);
        // Without knowing the target, they cannot be paired.
        let m = mint(&release_in(&files, None), &|_| None);
        assert!(m.pinned_services.is_empty());
    }

    #[test]
    fn services_of_workloads_without_a_serving_revision_are_held_at_their_live_selector() {
        let r = shop();
        let mut m = mint(&r, &|_| None);
        assert_eq!(m.unpinned_services(&|k| k.1 == "web"), Vec::<usize>::new());
        let held = m.unpinned_services(&|_| false);
        assert_eq!(held, vec![m.pinned_services[0].0]);
        m.hold(held[0], json!({"app": "web"}));
        assert_eq!(
            m.objects[held[0]].manifest["spec"]["selector"],
            json!({"app": "web"})
        );
    }

    #[test]
    fn opted_out_deployments_are_applied_as_they_are_with_their_config() {
        let opted = DEPLOY.replace(
            "metadata: {name: web}",
            "metadata: {name: web, annotations: {kubemint.io/strategy: apply}}",
        );
        let r = release(&[
            ("cfg.yaml", CFG),
            ("creds.yaml", CREDS),
            ("deploy.yaml", &opted),
            ("svc.yaml", SVC),
        ]);
        let m = mint(&r, &|_| None);
        assert!(m.revisions.is_empty());
        assert!(m.pinned_services.is_empty());
        let names: Vec<&str> = m.objects.iter().map(|o| o.name.as_str()).collect();
        assert!(
            names.contains(&"web") && names.contains(&"cfg") && names.contains(&"creds"),
            "{names:?}"
        );
    }

    #[test]
    fn config_also_read_by_an_unminted_workload_is_applied_as_well() {
        let job = "apiVersion: batch/v1\nkind: Job\nmetadata: {name: migrate}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: m, image: m:1, envFrom: [{configMapRef: {name: cfg}}]}]\n";
        let r = release(&[
            ("cfg.yaml", CFG),
            ("creds.yaml", CREDS),
            ("deploy.yaml", DEPLOY),
            ("job.yaml", job),
        ]);
        let m = mint(&r, &|_| None);
        let names: Vec<&str> = m.objects.iter().map(|o| o.name.as_str()).collect();
        assert!(names.contains(&"cfg"), "{names:?}");
        assert!(names.iter().any(|n| n.starts_with("cfg-")), "{names:?}");
    }

    #[test]
    fn a_service_selecting_two_workloads_is_not_pinned() {
        let shared = SVC.replace("{app: web}", "{tier: front}");
        let a = DEPLOY.replace("{app: web}", "{app: web, tier: front}");
        let b = a
            .replace("name: web}", "name: web2}")
            .replace("app: web", "app: web2");
        let r = release(&[
            ("cfg.yaml", CFG),
            ("creds.yaml", CREDS),
            ("a.yaml", &a),
            ("b.yaml", &b),
            ("svc.yaml", &shared),
        ]);
        let m = mint(&r, &|_| None);
        assert_eq!(m.revisions.len(), 2);
        assert!(m.pinned_services.is_empty());
    }
}
