//! The engine's view of the cluster: reflectors (watches, label-selected to
//! objects kubemint manages) keep every channel's ReplicaSets, Services and
//! delivered objects in memory, and wake the channel that an event touches.
//! A pass reads a snapshot of them instead of listing anything. A watch
//! runs while some channel needs it, and a refused one backs off.
//!
//! The operator acting as itself watches each kind cluster-wide. A channel that
//! impersonates a ServiceAccount gets an observer of its own, whose watches go
//! through that ServiceAccount namespace by namespace: a tenant may be allowed
//! to list its own namespaces only, and must not see anything it could not read.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
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

use super::by_channel::ByChannel;
use crate::api::Channel;
use crate::cluster::{self, lists};
use crate::rollout::{
    foreign_editors, FailedMark, LiveCopy, LiveHook, LiveObject, LiveRevision, LiveService,
    ObjectId, Observed, APPLIED_HASH_ANNOTATION, CHANNEL_LABEL, COMMIT_ANNOTATION,
    CONFIG_COPY_LABEL, DRAINED_ANNOTATION, FAILED_ANNOTATION, FAILED_HOOK_ANNOTATION,
    FAILED_READY_ANNOTATION, FAILED_RETRY_ANNOTATION, FIELD_MANAGER, HOOK_RETRY_ANNOTATION,
    PROGRESSING_ANNOTATION, PROMOTED_ANNOTATION, RELEASE_ANNOTATION, REVISION_LABEL,
    WORKLOAD_LABEL,
};

/// How long a new watch may take to list its objects before a pass gives up (and retries).
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest wait between two attempts of a watch the API server refuses
/// (403): a tenant's missing RoleBinding must not load the API server for
/// everyone. A sync request retries at once ([`Observer::retry_refused`]).
pub const REFUSED_WATCH_MAX_BACKOFF: Duration = Duration::from_secs(240);

/// The longest wait between two attempts of a watch that failed otherwise (the
/// API server restarting, say): short, so the channel resumes soon after.
const WATCH_MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The wait before the next attempt of a watch after `failures` consecutive
/// failures: doubling from 1 s (800 ms for failures other than a refusal) up
/// to [`REFUSED_WATCH_MAX_BACKOFF`] for a refusal, [`WATCH_MAX_BACKOFF`] otherwise.
pub fn watch_backoff(failures: u32, forbidden: bool) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    if forbidden {
        Duration::from_secs(1u64 << doublings).min(REFUSED_WATCH_MAX_BACKOFF)
    } else {
        (Duration::from_millis(800) * (1u32 << doublings.min(8))).min(WATCH_MAX_BACKOFF)
    }
}

/// Metadata watches, by kind and namespace (`None`: all namespaces, or cluster-scoped).
type MetaWatches = HashMap<WatchKey, Watched<PartialObjectMeta<DynamicObject>>>;
/// A metadata watch: a kind in a namespace (`None`: all namespaces, or cluster-scoped).
type WatchKey = (GroupVersionKind, Option<String>);

/// The watches one channel needs.
#[derive(Debug, Default, PartialEq, Eq)]
struct Needs {
    /// Namespaces of the typed watches (`None`: all).
    typed: HashSet<Option<String>>,
    /// The metadata watches.
    kinds: HashSet<WatchKey>,
}

/// Where a channel's objects live: what a scoped observer must watch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// Namespaces the channel delivers into (or delivered into, for pruning).
    pub namespaces: BTreeSet<String>,
    /// `(group, kind)` of the cluster-scoped kinds it delivers.
    pub cluster_kinds: BTreeSet<(String, String)>,
}

impl Scope {
    fn namespaced(&self, ar: &ApiResource) -> bool {
        !self
            .cluster_kinds
            .contains(&(ar.group.clone(), ar.kind.clone()))
    }
}

/// What one watch lists: a kind in a namespace (`None`: all, or cluster-scoped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchTarget {
    /// API group, empty for the core group.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Resource (plural), as RBAC names it.
    pub plural: String,
    /// Namespace.
    pub namespace: Option<String>,
}

/// Why a watch has not listed: what the API server said, and whether it refused (403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchFailure {
    /// What it lists.
    pub target: WatchTarget,
    /// The API server's message (a 403 names the user, the verb and the resource).
    pub message: String,
    /// Whether the API server refused the client (403).
    pub forbidden: bool,
}

/// A reflector's store and the last error of its watch, if it is failing.
/// The watch runs while any clone of it is held.
struct Watched<K: Resource + Clone + 'static>
where
    K::DynamicType: Eq + Hash + Clone,
{
    store: Store<K>,
    /// The store's keys by channel label.
    by_channel: Arc<Mutex<ByChannel<ObjectRef<K>>>>,
    error: Arc<Mutex<Option<WatchFailure>>>,
    /// Wakes a watch waiting out its backoff.
    retry: Arc<tokio::sync::Notify>,
    _task: Arc<StopOnDrop>,
}

/// Stops a watch's task when the last holder lets go (an observer of a
/// ServiceAccount no channel acts as any more).
struct StopOnDrop(tokio::task::AbortHandle);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<K: Resource + Clone + 'static> Clone for Watched<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    fn clone(&self) -> Self {
        Watched {
            store: self.store.clone(),
            by_channel: self.by_channel.clone(),
            error: self.error.clone(),
            retry: self.retry.clone(),
            _task: self._task.clone(),
        }
    }
}

impl<K: Resource + Clone + 'static> Watched<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    fn failing(&self) -> Option<WatchFailure> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The objects of channel `label` in the store.
    fn of_channel(&self, label: &str) -> Vec<Arc<K>> {
        let keys = lock(&self.by_channel).keys(label);
        keys.iter().filter_map(|key| self.store.get(key)).collect()
    }

    /// Retries a failing watch now instead of at the end of its backoff.
    fn retry_if_failing(&self) {
        if self.failing().is_some() {
            self.retry.notify_waiters();
        }
    }
}

/// The typed reflectors of one namespace (or of all, as `None`).
#[derive(Clone)]
struct Typed {
    replica_sets: Watched<ReplicaSet>,
    services: Watched<Service>,
    jobs: Watched<Job>,
}

/// The reflectors of every channel (or of one impersonating channel), and the stream of channels to wake.
pub struct Observer {
    client: Client,
    /// Watches namespace by namespace (an impersonated client) instead of cluster-wide.
    scoped: bool,
    typed: Mutex<BTreeMap<Option<String>, Typed>>,
    kinds: Mutex<MetaWatches>,
    /// The watches each channel (by key) needs.
    needs: Mutex<HashMap<String, Needs>>,
    wake: Wake,
    /// Objects another manager wrote to, checked and found as declared, at this resourceVersion.
    verified: Mutex<HashMap<ObjectId, String>>,
    /// Whether the API server streams initial lists to this client, once known.
    streaming: Mutex<Option<bool>>,
}

impl Observer {
    /// An observer whose watches are cluster-wide (started on first use, so an
    /// operator whose channels all impersonate needs no cluster-wide reads);
    /// events wake their channel through `wake` (only channels in `namespace`,
    /// when the operator watches one).
    pub fn start(
        client: Client,
        wake: mpsc::UnboundedSender<ObjectRef<Channel>>,
        namespace: Option<String>,
    ) -> Arc<Self> {
        Arc::new(Observer::new(client, wake, namespace, false))
    }

    /// An observer whose watches are made per namespace of a channel's [`Scope`],
    /// for a client that impersonates the channel's ServiceAccount.
    pub fn scoped(client: Client, wake: mpsc::UnboundedSender<ObjectRef<Channel>>) -> Arc<Self> {
        Arc::new(Observer::new(client, wake, None, true))
    }

    fn new(
        client: Client,
        wake: mpsc::UnboundedSender<ObjectRef<Channel>>,
        namespace: Option<String>,
        scoped: bool,
    ) -> Self {
        Observer {
            client,
            scoped,
            typed: Mutex::default(),
            kinds: Mutex::default(),
            needs: Mutex::default(),
            wake: Wake { wake, namespace },
            verified: Mutex::default(),
            streaming: Mutex::default(),
        }
    }

    /// The configuration of every watch of this observer: streaming lists
    /// where the server serves them to this client (asked with the first watch
    /// it needs, so with the permissions its watches use).
    async fn watcher_config(&self, namespace: Option<&str>) -> watcher::Config {
        let known = *self.streaming.lock().unwrap_or_else(|p| p.into_inner());
        let streaming = match known {
            Some(streaming) => streaming,
            None => {
                let api: Api<ReplicaSet> = cluster::namespaced_or_all(&self.client, namespace);
                let answer = lists::serves_streaming_lists(&api, CHANNEL_LABEL).await;
                *self.streaming.lock().unwrap_or_else(|p| p.into_inner()) = answer;
                answer.unwrap_or(false)
            }
        };
        lists::watcher_config(CHANNEL_LABEL, streaming)
    }

    /// The typed reflectors of `namespace` (`None`: all), started on first use.
    fn typed_of(&self, namespace: Option<&str>, config: &watcher::Config) -> Typed {
        let mut typed = self.typed.lock().unwrap_or_else(|p| p.into_inner());
        typed
            .entry(namespace.map(str::to_string))
            .or_insert_with(|| {
                let config = config.clone();
                let target = |group: &str, kind: &str, plural: &str| WatchTarget {
                    group: group.into(),
                    kind: kind.into(),
                    plural: plural.into(),
                    namespace: namespace.map(str::to_string),
                };
                Typed {
                    replica_sets: spawn(
                        watcher(
                            cluster::namespaced_or_all(&self.client, namespace),
                            config.clone(),
                        ),
                        (),
                        self.wake.clone(),
                        target("apps", "ReplicaSet", "replicasets"),
                    ),
                    services: spawn(
                        watcher(
                            cluster::namespaced_or_all(&self.client, namespace),
                            config.clone(),
                        ),
                        (),
                        self.wake.clone(),
                        target("", "Service", "services"),
                    ),
                    jobs: spawn(
                        watcher(cluster::namespaced_or_all(&self.client, namespace), config),
                        (),
                        self.wake.clone(),
                        target("batch", "Job", "jobs"),
                    ),
                }
            })
            .clone()
    }

    /// Records the watches `channel` needs now; watches no channel needs any
    /// more end (their tasks stop with the last holder).
    fn need(&self, channel: &str, needs: Needs) {
        let mut all = self.needs.lock().unwrap_or_else(|p| p.into_inner());
        // Most passes need what they needed before: nothing to let go, and no
        // walk of every channel's needs.
        if all.get(channel) == Some(&needs) {
            return;
        }
        all.insert(channel.to_string(), needs);
        self.drop_unneeded(&all);
    }

    /// A channel that is gone (or acts as another identity now) needs none of these watches.
    pub fn release(&self, channel: &str) {
        let mut all = self.needs.lock().unwrap_or_else(|p| p.into_inner());
        if all.remove(channel).is_some() {
            self.drop_unneeded(&all);
        }
    }

    fn drop_unneeded(&self, all: &HashMap<String, Needs>) {
        let typed: HashSet<&Option<String>> = all.values().flat_map(|n| &n.typed).collect();
        let kinds: HashSet<&WatchKey> = all.values().flat_map(|n| &n.kinds).collect();
        self.typed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|ns, _| typed.contains(ns));
        self.kinds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|key, _| kinds.contains(key));
    }

    /// Whether every watch of `needs` runs already.
    fn all_running(&self, needs: &Needs) -> bool {
        let typed = self.typed.lock().unwrap_or_else(|p| p.into_inner());
        let kinds = self.kinds.lock().unwrap_or_else(|p| p.into_inner());
        needs.typed.iter().all(|ns| typed.contains_key(ns))
            && needs.kinds.iter().all(|key| kinds.contains_key(key))
    }

    /// How many watches run (typed watches count three).
    #[cfg(test)]
    fn running(&self) -> usize {
        3 * self.typed.lock().unwrap_or_else(|p| p.into_inner()).len()
            + self.kinds.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Makes sure objects of kinds `ars` are watched where `scope` says for
    /// `channel` (a key), and that every such watch has listed its objects.
    /// Watches the channel no longer needs are let go.
    pub async fn watch(
        &self,
        channel: &str,
        ars: &[ApiResource],
        scope: &Scope,
    ) -> Result<(), Unsynced> {
        // Cluster-wide, every kind is one watch; scoped, one per namespace.
        let namespaces: Vec<Option<&str>> = if self.scoped {
            scope.namespaces.iter().map(|n| Some(n.as_str())).collect()
        } else {
            vec![None]
        };
        let mut needs = Needs {
            typed: namespaces.iter().map(|ns| ns.map(str::to_string)).collect(),
            kinds: HashSet::new(),
        };
        for ar in ars.iter().filter(|ar| !is_typed(ar)) {
            let gvk = GroupVersionKind::gvk(&ar.group, &ar.version, &ar.kind);
            if self.scoped && !scope.namespaced(ar) {
                needs.kinds.insert((gvk, None));
            } else {
                needs.kinds.extend(
                    namespaces
                        .iter()
                        .map(|ns| (gvk.clone(), ns.map(str::to_string))),
                );
            }
        }
        // Asking the server whether it streams lists is a request: made only
        // when a watch has to start (a refused identity would be asked every pass).
        let config = if self.all_running(&needs) {
            lists::watcher_config(CHANNEL_LABEL, false)
        } else {
            self.watcher_config(namespaces.first().copied().flatten())
                .await
        };
        self.need(channel, needs);
        let mut typed = Vec::new();
        let mut stores = Vec::new();
        for ns in &namespaces {
            typed.push(self.typed_of(*ns, &config));
        }
        for ar in ars.iter().filter(|ar| !is_typed(ar)) {
            let gvk = GroupVersionKind::gvk(&ar.group, &ar.version, &ar.kind);
            let wheres: Vec<Option<&str>> = if self.scoped && !scope.namespaced(ar) {
                vec![None]
            } else {
                namespaces.clone()
            };
            let mut kinds = self.kinds.lock().unwrap_or_else(|p| p.into_inner());
            for ns in wheres {
                let store = kinds
                    .entry((gvk.clone(), ns.map(str::to_string)))
                    .or_insert_with(|| {
                        let api: Api<PartialObjectMeta<DynamicObject>> = match ns {
                            Some(ns) => Api::namespaced_with(self.client.clone(), ns, ar),
                            None => Api::all_with(self.client.clone(), ar),
                        };
                        let target = WatchTarget {
                            group: ar.group.clone(),
                            kind: ar.kind.clone(),
                            plural: ar.plural.clone(),
                            namespace: ns.map(str::to_string),
                        };
                        spawn(
                            watcher(api, config.clone()),
                            ar.clone(),
                            self.wake.clone(),
                            target,
                        )
                    });
                stores.push(store.clone());
            }
        }
        let all = async {
            for t in &typed {
                t.replica_sets.store.wait_until_ready().await.ok();
                t.services.store.wait_until_ready().await.ok();
                t.jobs.store.wait_until_ready().await.ok();
            }
            for store in &stores {
                store.store.wait_until_ready().await.ok();
            }
        };
        let failing = || -> Vec<WatchFailure> {
            typed
                .iter()
                .flat_map(|t| {
                    [
                        t.replica_sets.failing(),
                        t.services.failing(),
                        t.jobs.failing(),
                    ]
                })
                .chain(stores.iter().map(Watched::failing))
                .flatten()
                .collect()
        };
        // A watch that is forbidden will not list by itself: say so at once
        // instead of waiting out the timeout.
        let forbidden = async {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if failing().iter().any(|e| e.forbidden) {
                    break;
                }
            }
        };
        let synced = tokio::time::timeout(SYNC_TIMEOUT, async {
            tokio::select! {
                () = all => true,
                () = forbidden => false,
            }
        })
        .await
        .unwrap_or(false);
        if synced {
            return Ok(());
        }
        let failures = failing();
        let mut errors: Vec<String> = failures.iter().map(|f| f.message.clone()).collect();
        errors.sort();
        errors.dedup();
        let refused = failures.into_iter().filter(|f| f.forbidden).collect();
        Err(Unsynced { errors, refused })
    }

    /// Retries every failing watch now (a sync request, a spec change: a
    /// RoleBinding may have been fixed) instead of at the end of its backoff.
    pub fn retry_refused(&self) {
        for t in self
            .typed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            t.replica_sets.retry_if_failing();
            t.services.retry_if_failing();
            t.jobs.retry_if_failing();
        }
        for w in self
            .kinds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            w.retry_if_failing();
        }
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
            let watches: Vec<Watched<PartialObjectMeta<DynamicObject>>> = self
                .kinds
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .filter(|((g, _), _)| *g == gvk)
                .map(|(_, w)| w.clone())
                .collect();
            for object in watches.iter().flat_map(|w| w.of_channel(label)) {
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
        let typed: Vec<Typed> = self
            .typed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
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
}

/// A watch did not list its objects in time (the API server may be restarting,
/// or the client may not list them: `errors` says what the watches were told).
#[derive(Debug)]
pub struct Unsynced {
    /// The distinct errors of the watches that have not listed yet.
    pub errors: Vec<String>,
    /// The watches the API server refused (403), with what they list.
    pub refused: Vec<WatchFailure>,
}

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

/// Runs a reflector on its own task while the returned [`Watched`] is held;
/// every event wakes the channel of the object it touches.
///
/// A failed watch waits out [`watch_backoff`] before its next attempt; only
/// progress (objects listed or changed) resets it. kube's own backoff is
/// reset by the `Init` event that opens every attempt, so a refused watch
/// would be retried about every second, forever.
/// Drops the field sets of kubemint's own managed-fields entry and of status
/// writers: drift is told from the other managers' entries (and the time of
/// ours), and kubemint's own entry lists every field it applies, the largest
/// part of an object a reflector keeps.
fn trim_managed_fields(meta: &mut ObjectMeta) {
    for entry in meta.managed_fields.iter_mut().flatten() {
        if entry.manager.as_deref() == Some(FIELD_MANAGER)
            || entry.subresource.as_deref() == Some("status")
        {
            entry.fields_v1 = None;
        }
    }
}

/// A lock that a panicked holder did not leave unusable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The `kubemint.io/channel` label of an object, if it has one.
fn channel_label(meta: &ObjectMeta) -> Option<&str> {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(CHANNEL_LABEL))
        .map(String::as_str)
}

fn spawn<K, S>(stream: S, dyntype: K::DynamicType, wake: Wake, target: WatchTarget) -> Watched<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
    S: futures::Stream<Item = watcher::Result<Event<K>>> + Send + 'static,
{
    let writer = reflector::store::Writer::new(dyntype.clone());
    let store = writer.as_reader();
    let by_channel: Arc<Mutex<ByChannel<ObjectRef<K>>>> = Arc::default();
    let index = by_channel.clone();
    let indexed = store.clone();
    let error = Arc::new(Mutex::new(None));
    let failing = error.clone();
    let retry = Arc::new(tokio::sync::Notify::new());
    let retry_now = retry.clone();
    // What the stores keep of each object is what a pass reads of it.
    let stream = stream.modify(|o: &mut K| trim_managed_fields(o.meta_mut()));
    let events = reflector::reflector(writer, stream);
    let task = tokio::spawn(async move {
        let mut events = std::pin::pin!(events);
        let mut failures = 0u32;
        while let Some(event) = events.next().await {
            let failure = match event {
                // Every attempt opens with `Init`: no progress yet.
                Ok(Event::Init) => continue,
                Ok(Event::Apply(o) | Event::InitApply(o)) => {
                    let key = ObjectRef::from_obj_with(&o, dyntype.clone());
                    lock(&index).put(key, channel_label(o.meta()));
                    if let Some(channel) = channel_of(o.meta()) {
                        wake.send(channel);
                    }
                    None
                }
                Ok(Event::Delete(o)) => {
                    lock(&index).remove(&ObjectRef::from_obj_with(&o, dyntype.clone()));
                    if let Some(channel) = channel_of(o.meta()) {
                        wake.send(channel);
                    }
                    None
                }
                // The store now holds the new list: so does the index.
                Ok(Event::InitDone) => {
                    let objects = indexed.state();
                    lock(&index).rebuild(objects.iter().map(|o| {
                        (
                            ObjectRef::from_obj_with(o.as_ref(), dyntype.clone()),
                            channel_label(o.meta()),
                        )
                    }));
                    None
                }
                Err(e) => Some(e),
            };
            let Some(e) = failure else {
                failures = 0;
                *failing.lock().unwrap_or_else(|p| p.into_inner()) = None;
                continue;
            };
            failures += 1;
            let forbidden = is_forbidden(&e);
            let delay = watch_backoff(failures, forbidden);
            tracing::debug!(error = %e, retry_in = ?delay, "watch failed; retrying");
            *failing.lock().unwrap_or_else(|p| p.into_inner()) = Some(WatchFailure {
                target: target.clone(),
                message: watch_error(&e),
                forbidden,
            });
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = retry_now.notified() => {}
            }
        }
    });
    Watched {
        store,
        by_channel,
        error,
        retry,
        _task: Arc::new(StopOnDrop(task.abort_handle())),
    }
}

/// Whether the API server refused the watch's client (403).
fn is_forbidden(err: &watcher::Error) -> bool {
    match err {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => crate::cluster::is_forbidden(e),
        _ => false,
    }
}

/// What a failing watch was told, as the API server put it (a 403 names the
/// user, the verb and the resource).
fn watch_error(err: &watcher::Error) -> String {
    match err {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => crate::cluster::api_message(e),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_watch_ends_when_its_last_channel_no_longer_needs_it() {
        let client =
            Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
        let (wake, _woken) = mpsc::unbounded_channel();
        let observer = Observer::scoped(client, wake);
        let gvk = GroupVersionKind::gvk("", "v1", "ConfigMap");
        let needs = |namespaces: &[&str]| Needs {
            typed: namespaces.iter().map(|ns| Some(ns.to_string())).collect(),
            kinds: namespaces
                .iter()
                .map(|ns| (gvk.clone(), Some(ns.to_string())))
                .collect(),
        };
        // What `watch` starts after recording the needs (without waiting for a list).
        let config = lists::watcher_config(CHANNEL_LABEL, false);
        let start = |namespaces: &[&str]| {
            for ns in namespaces {
                observer.typed_of(Some(ns), &config);
            }
        };
        observer.need("shop/web", needs(&["shop"]));
        start(&["shop"]);
        observer.need("shop/api", needs(&["shop", "old"]));
        start(&["shop", "old"]);
        assert_eq!(observer.running(), 6, "typed watches of shop and old");
        // `api` no longer delivers to `old`: its watches end.
        observer.need("shop/api", needs(&["shop"]));
        assert_eq!(observer.running(), 3);
        observer.release("shop/web");
        assert_eq!(observer.running(), 3, "api still needs shop");
        observer.release("shop/api");
        assert_eq!(observer.running(), 0);
    }

    #[test]
    fn a_refused_watch_backs_off_to_minutes_and_another_failure_to_seconds() {
        let refused: Vec<u64> = (1..=10).map(|n| watch_backoff(n, true).as_secs()).collect();
        assert_eq!(refused, [1, 2, 4, 8, 16, 32, 64, 128, 240, 240]);
        // After the first minute, a refused watch makes at most one attempt a minute.
        let mut elapsed = Duration::ZERO;
        let mut attempts_after_a_minute = 0;
        for n in 1.. {
            elapsed += watch_backoff(n, true);
            if elapsed > Duration::from_secs(180) {
                break;
            }
            if elapsed > Duration::from_secs(60) {
                attempts_after_a_minute += 1;
            }
        }
        assert!(
            attempts_after_a_minute <= 2,
            "{attempts_after_a_minute} in two minutes"
        );
        let other: Vec<u128> = (1..=7)
            .map(|n| watch_backoff(n, false).as_millis())
            .collect();
        assert_eq!(other, [800, 1600, 3200, 6400, 12800, 25600, 30000]);
        assert_eq!(watch_backoff(u32::MAX, false), Duration::from_secs(30));
        assert_eq!(watch_backoff(u32::MAX, true), REFUSED_WATCH_MAX_BACKOFF);
    }

    #[tokio::test]
    async fn a_watch_task_stops_when_its_last_holder_lets_go() {
        let task = tokio::spawn(futures::future::pending::<()>());
        let held = Arc::new(StopOnDrop(task.abort_handle()));
        let clone = held.clone();
        drop(held);
        tokio::task::yield_now().await;
        assert!(!task.is_finished(), "a clone still holds it");
        drop(clone);
        let outcome = task.await;
        assert!(outcome.is_err_and(|e| e.is_cancelled()));
    }
}
