//! The controller's view of the cluster: reflectors (watches, label-selected to
//! objects kubemint manages) keep every channel's ReplicaSets, Services and
//! delivered objects in memory, and wake the channel that an event touches.
//! A pass reads a snapshot of them instead of listing anything.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject};
use kube::core::{GroupVersionKind, PartialObjectMeta};
use kube::discovery::ApiResource;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::api::Channel;
use crate::rollout::{
    foreign_editors, FailedMark, LiveCopy, LiveHook, LiveObject, LiveRevision, LiveService,
    ObjectId, Observed, APPLIED_HASH_ANNOTATION, CHANNEL_LABEL, COMMIT_ANNOTATION,
    CONFIG_COPY_LABEL, DRAINED_ANNOTATION, FAILED_ANNOTATION, FAILED_HOOK_ANNOTATION,
    FAILED_READY_ANNOTATION, FAILED_RETRY_ANNOTATION, HOOK_RETRY_ANNOTATION,
    PROGRESSING_ANNOTATION, PROMOTED_ANNOTATION, RELEASE_ANNOTATION, REVISION_LABEL,
    WORKLOAD_LABEL,
};

/// How long a new watch may take to list its objects before a pass gives up (and retries).
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

type MetaStore = Store<PartialObjectMeta<DynamicObject>>;

/// The reflectors of every channel, and the stream of channels to wake.
pub struct Observer {
    client: Client,
    replica_sets: Store<ReplicaSet>,
    services: Store<Service>,
    jobs: Store<Job>,
    kinds: Mutex<HashMap<GroupVersionKind, MetaStore>>,
    wake: Wake,
    /// Objects another manager wrote to, checked and found as declared, at this resourceVersion.
    verified: Mutex<HashMap<ObjectId, String>>,
}

impl Observer {
    /// Starts the ReplicaSet and Service reflectors; events wake their channel
    /// through `wake` (only channels in `namespace`, when the operator watches one).
    pub fn start(
        client: Client,
        wake: mpsc::UnboundedSender<ObjectRef<Channel>>,
        namespace: Option<String>,
    ) -> Arc<Self> {
        let wake = Wake { wake, namespace };
        let config = watcher::Config::default().labels(CHANNEL_LABEL);
        let replica_sets = spawn(
            watcher(Api::<ReplicaSet>::all(client.clone()), config.clone()),
            reflector::store::Writer::default(),
            wake.clone(),
        );
        let services = spawn(
            watcher(Api::<Service>::all(client.clone()), config.clone()),
            reflector::store::Writer::default(),
            wake.clone(),
        );
        let jobs = spawn(
            watcher(Api::<Job>::all(client.clone()), config),
            reflector::store::Writer::default(),
            wake.clone(),
        );
        Arc::new(Observer {
            client,
            replica_sets,
            services,
            jobs,
            kinds: Mutex::default(),
            wake,
            verified: Mutex::default(),
        })
    }

    /// Makes sure objects of kind `ar` are watched, and that every watch has listed its objects.
    pub async fn watch(&self, ars: &[ApiResource]) -> Result<(), Unsynced> {
        let mut stores = vec![];
        for ar in ars {
            if is_typed(ar) {
                continue;
            }
            let gvk = GroupVersionKind::gvk(&ar.group, &ar.version, &ar.kind);
            let mut kinds = self.kinds.lock().unwrap_or_else(|p| p.into_inner());
            let store = kinds.entry(gvk).or_insert_with(|| {
                let api: Api<PartialObjectMeta<DynamicObject>> =
                    Api::all_with(self.client.clone(), ar);
                let config = watcher::Config::default().labels(CHANNEL_LABEL);
                spawn(
                    watcher(api, config),
                    reflector::store::Writer::new(ar.clone()),
                    self.wake.clone(),
                )
            });
            stores.push(store.clone());
        }
        let all = async {
            self.replica_sets.wait_until_ready().await.ok();
            self.services.wait_until_ready().await.ok();
            self.jobs.wait_until_ready().await.ok();
            for store in &stores {
                store.wait_until_ready().await.ok();
            }
        };
        tokio::time::timeout(SYNC_TIMEOUT, all)
            .await
            .map_err(|_| Unsynced)
    }

    /// Records that `id` was checked at `resource_version` after a foreign write and found as declared.
    pub fn verified(&self, id: ObjectId, resource_version: String) {
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, resource_version);
    }

    /// What the cluster shows of channel `label` (`<namespace>.<name>`), for kinds `ars`.
    pub fn snapshot(&self, label: &str, ars: &[ApiResource]) -> Observed {
        let verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
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
            let Some(store) = self
                .kinds
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&gvk)
                .cloned()
            else {
                continue;
            };
            for object in store.state() {
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
        for service in self.services.state() {
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
        for rs in self.replica_sets.state() {
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
        for job in self.jobs.state() {
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
}

/// A watch did not list its objects in time (the API server may be restarting).
#[derive(Debug)]
pub struct Unsynced;

/// ReplicaSets and Services have typed reflectors of their own.
fn is_typed(ar: &ApiResource) -> bool {
    matches!(
        (ar.group.as_str(), ar.kind.as_str()),
        ("apps", "ReplicaSet") | ("", "Service")
    )
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

/// The channel an object belongs to, from its `kubemint.io/channel` label
/// (`<namespace>.<name>`; namespaces cannot contain dots, names can).
pub fn channel_of(meta: &ObjectMeta) -> Option<ObjectRef<Channel>> {
    let (namespace, name) = meta.labels.as_ref()?.get(CHANNEL_LABEL)?.split_once('.')?;
    Some(ObjectRef::new(name).within(namespace))
}

/// Where events go: the channels of this operator's scope.
#[derive(Clone)]
struct Wake {
    wake: mpsc::UnboundedSender<ObjectRef<Channel>>,
    namespace: Option<String>,
}

impl Wake {
    fn send(&self, channel: ObjectRef<Channel>) {
        if self.namespace.is_none() || channel.namespace == self.namespace {
            let _ = self.wake.send(channel);
        }
    }
}

/// Runs a reflector on its own task for the life of the process; every event
/// wakes the channel of the object it touches.
fn spawn<K, S>(stream: S, writer: reflector::store::Writer<K>, wake: Wake) -> Store<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
    S: futures::Stream<Item = watcher::Result<Event<K>>> + Send + 'static,
{
    let store = writer.as_reader();
    let events = reflector::reflector(writer, stream.default_backoff());
    tokio::spawn(async move {
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            match event {
                Ok(Event::Apply(o) | Event::Delete(o) | Event::InitApply(o)) => {
                    if let Some(channel) = channel_of(o.meta()) {
                        wake.send(channel);
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "watch interrupted; retrying"),
            }
        }
    });
    store
}
