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
//!
//! A pass plans only on stores that hold a list taken since their watch last
//! failed ([`Observer::watch`] says [`Unsynced`] until then): after an API
//! server outage, a store still shows the cluster as it was.
//!
//! Parts: [`reflector`] (one watch and its store), [`needs`] (which watches a
//! channel needs), [`snapshot`] (a channel's objects as the plan reads them).

mod needs;
mod reflector;
mod snapshot;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DynamicObject};
use kube::core::{GroupVersionKind, PartialObjectMeta};
use kube::discovery::ApiResource;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::{self, watcher};
use kube::Client;
use tokio::sync::mpsc;

use crate::api::Channel;
use crate::cluster::{self, lists};
use crate::rollout::{ObjectId, Observed, CHANNEL_LABEL};
use needs::{is_typed, Needs, WatchKey};
use reflector::{lock, spawn, Wake, Watched};

pub use needs::Scope;
pub use reflector::{
    channel_of, watch_backoff, WatchFailure, WatchTarget, REFUSED_WATCH_MAX_BACKOFF,
};

/// How long a new watch may take to list its objects before a pass gives up (and retries).
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// Metadata watches, by kind and namespace (`None`: all namespaces, or cluster-scoped).
type MetaWatches = HashMap<WatchKey, Watched<PartialObjectMeta<DynamicObject>>>;

/// The typed reflectors of one namespace (or of all, as `None`).
#[derive(Clone)]
struct Typed {
    replica_sets: Watched<ReplicaSet>,
    services: Watched<Service>,
    jobs: Watched<Job>,
}

impl Typed {
    /// Why each of the three may not be trusted now (see [`Watched::unsynced`]).
    fn unsynced(&self) -> [Option<WatchFailure>; 3] {
        [
            self.replica_sets.unsynced(),
            self.services.unsynced(),
            self.jobs.unsynced(),
        ]
    }

    async fn until_listed(&self) {
        self.replica_sets.until_listed().await;
        self.services.until_listed().await;
        self.jobs.until_listed().await;
    }
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
        let known = *lock(&self.streaming);
        let streaming = match known {
            Some(streaming) => streaming,
            None => {
                let api: Api<ReplicaSet> = cluster::namespaced_or_all(&self.client, namespace);
                let answer = lists::serves_streaming_lists(&api, CHANNEL_LABEL).await;
                *lock(&self.streaming) = answer;
                answer.unwrap_or(false)
            }
        };
        lists::watcher_config(CHANNEL_LABEL, streaming)
    }

    /// The typed reflectors of `namespace` (`None`: all), started on first use.
    fn typed_of(&self, namespace: Option<&str>, config: &watcher::Config) -> Typed {
        let mut typed = lock(&self.typed);
        typed
            .entry(namespace.map(str::to_string))
            .or_insert_with(|| {
                let target = |group: &str, kind: &str, plural: &str| WatchTarget {
                    group: group.into(),
                    kind: kind.into(),
                    plural: plural.into(),
                    namespace: namespace.map(str::to_string),
                };
                let client = &self.client;
                Typed {
                    replica_sets: spawn(
                        watch_of(cluster::namespaced_or_all(client, namespace), config),
                        (),
                        self.wake.clone(),
                        target("apps", "ReplicaSet", "replicasets"),
                    ),
                    services: spawn(
                        watch_of(cluster::namespaced_or_all(client, namespace), config),
                        (),
                        self.wake.clone(),
                        target("", "Service", "services"),
                    ),
                    jobs: spawn(
                        watch_of(cluster::namespaced_or_all(client, namespace), config),
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
        let mut all = lock(&self.needs);
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
        let mut all = lock(&self.needs);
        if all.remove(channel).is_some() {
            self.drop_unneeded(&all);
        }
    }

    fn drop_unneeded(&self, all: &HashMap<String, Needs>) {
        let (typed, kinds) = needs::needed(all);
        lock(&self.typed).retain(|ns, _| typed.contains(ns));
        lock(&self.kinds).retain(|key, _| kinds.contains(key));
    }

    /// Whether every watch of `needs` runs already.
    fn all_running(&self, needs: &Needs) -> bool {
        let typed = lock(&self.typed);
        let kinds = lock(&self.kinds);
        needs.typed.iter().all(|ns| typed.contains_key(ns))
            && needs.kinds.iter().all(|key| kinds.contains_key(key))
    }

    /// How many watches run (typed watches count three).
    #[cfg(test)]
    fn running(&self) -> usize {
        3 * lock(&self.typed).len() + lock(&self.kinds).len()
    }

    /// Makes sure objects of kinds `ars` are watched where `scope` says for
    /// `channel` (a key), and that every such watch holds a list taken since
    /// it last failed. Watches the channel no longer needs are let go.
    ///
    /// # Errors
    ///
    /// [`Unsynced`] when a watch has not listed within 30 s (at once when the
    /// API server refuses one): a new watch, or one that failed (the API
    /// server restarting) and has not listed again. A pass must not plan on
    /// its store then: it shows the cluster as it was before the failure.
    pub async fn watch(
        &self,
        channel: &str,
        ars: &[ApiResource],
        scope: &Scope,
    ) -> Result<(), Unsynced> {
        let namespaces = needs::namespaces(self.scoped, scope);
        let needs = needs::needs_of(self.scoped, ars, scope);
        // Asking the server whether it streams lists is a request: made only
        // when a watch has to start (a refused identity would be asked every pass).
        let config = if self.all_running(&needs) {
            lists::watcher_config(CHANNEL_LABEL, false)
        } else {
            self.watcher_config(namespaces.first().copied().flatten())
                .await
        };
        self.need(channel, needs);
        let typed: Vec<Typed> = namespaces
            .iter()
            .map(|ns| self.typed_of(*ns, &config))
            .collect();
        let mut stores = Vec::new();
        for ar in ars.iter().filter(|ar| !is_typed(ar)) {
            let gvk = GroupVersionKind::gvk(&ar.group, &ar.version, &ar.kind);
            let mut kinds = lock(&self.kinds);
            for ns in needs::wheres(self.scoped, scope, ar, &namespaces) {
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
                            watch_of(api, &config),
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
                t.until_listed().await;
            }
            for store in &stores {
                store.until_listed().await;
            }
        };
        let unsynced = || -> Vec<WatchFailure> {
            typed
                .iter()
                .flat_map(Typed::unsynced)
                .chain(stores.iter().map(Watched::unsynced))
                .flatten()
                .collect()
        };
        // A watch that is forbidden will not list by itself: say so at once
        // instead of waiting out the timeout.
        let forbidden = async {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if unsynced().iter().any(|e| e.forbidden) {
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
        Err(Unsynced::of(unsynced()))
    }

    /// Retries every failing watch now (a sync request, a spec change: a
    /// RoleBinding may have been fixed) instead of at the end of its backoff.
    pub fn retry_refused(&self) {
        for t in lock(&self.typed).values() {
            t.replica_sets.retry_if_failing();
            t.services.retry_if_failing();
            t.jobs.retry_if_failing();
        }
        for w in lock(&self.kinds).values() {
            w.retry_if_failing();
        }
    }

    /// Records that `id` was checked at `resource_version` after a foreign write and found as declared.
    pub fn verified(&self, id: ObjectId, resource_version: String) {
        lock(&self.verified).insert(id, resource_version);
    }

    /// The names of the Services of channel `label` in `namespace`, from the
    /// stores: the Services that could select one of its revisions (their
    /// selectors are read live before a revision is scaled down).
    pub fn services_of(&self, label: &str, namespace: &str) -> Vec<String> {
        let typed: Vec<Typed> = lock(&self.typed).values().cloned().collect();
        let services = typed.iter().flat_map(|t| t.services.of_channel(label));
        snapshot::names_in(services, namespace)
    }

    /// What the cluster shows of channel `label` (`<namespace>.<name>`), for kinds `ars`.
    pub fn snapshot(&self, label: &str, ars: &[ApiResource]) -> Observed {
        let typed: Vec<Typed> = lock(&self.typed).values().cloned().collect();
        let wanted: HashSet<GroupVersionKind> = ars
            .iter()
            .filter(|ar| !is_typed(ar))
            .map(|ar| GroupVersionKind::gvk(&ar.group, &ar.version, &ar.kind))
            .collect();
        let kinds: Vec<(GroupVersionKind, Watched<PartialObjectMeta<DynamicObject>>)> =
            lock(&self.kinds)
                .iter()
                .filter(|((gvk, _), _)| wanted.contains(gvk))
                .map(|((gvk, _), w)| (gvk.clone(), w.clone()))
                .collect();
        let verified = lock(&self.verified);
        snapshot::snapshot(label, ars, &typed, &kinds, &verified)
    }
}

/// A maker of watchers of `api` with `config`: each one lists afresh.
fn watch_of<K>(
    api: Api<K>,
    config: &watcher::Config,
) -> impl Fn() -> futures::stream::BoxStream<'static, watcher::Result<watcher::Event<K>>> + Send + 'static
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let config = config.clone();
    move || futures::StreamExt::boxed(watcher(api.clone(), config.clone()))
}

/// What the watches that have not listed were told.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchErrors {
    /// The distinct messages, sorted.
    pub messages: Vec<String>,
    /// Whether the API server refused (403) one of the watches.
    pub forbidden: bool,
}

/// A watch did not list its objects in time (the API server may be restarting,
/// or the client may not list them: `errors` says what the watches were told).
#[derive(Debug)]
pub struct Unsynced {
    /// The distinct errors of the watches that have not listed yet.
    pub errors: WatchErrors,
    /// The watches the API server refused (403), with what they list.
    pub refused: Vec<WatchFailure>,
}

impl Unsynced {
    /// The report of `failures`, the watches that have not listed.
    fn of(failures: Vec<WatchFailure>) -> Unsynced {
        let mut messages: Vec<String> = failures.iter().map(|f| f.message.clone()).collect();
        messages.sort();
        messages.dedup();
        let refused: Vec<WatchFailure> = failures.into_iter().filter(|f| f.forbidden).collect();
        Unsynced {
            errors: WatchErrors {
                messages,
                forbidden: !refused.is_empty(),
            },
            refused,
        }
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

    // Paused time: the 30 s of waiting pass at once.
    #[tokio::test(start_paused = true)]
    async fn a_pass_waits_for_a_failed_watch_to_list_again_and_says_why() {
        // Nothing listens on port 9: every watch fails and never lists.
        let client =
            Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
        let (wake, _woken) = mpsc::unbounded_channel();
        let observer = Observer::start(client, wake, None);
        let scope = Scope::default();
        let started = tokio::time::Instant::now();
        let unsynced = observer
            .watch("shop/web", &[], &scope)
            .await
            .expect_err("no list: not synced");
        assert!(started.elapsed() >= SYNC_TIMEOUT, "waited for a list");
        assert!(!unsynced.errors.forbidden);
        assert!(unsynced.refused.is_empty());
        assert!(!unsynced.errors.messages.is_empty(), "{unsynced:?}");
    }

    #[test]
    fn the_report_of_watches_not_listed_says_whether_one_was_refused() {
        let failure = |plural: &str, message: &str, forbidden: bool| WatchFailure {
            target: WatchTarget {
                group: String::new(),
                kind: String::new(),
                plural: plural.into(),
                namespace: Some("shop".into()),
            },
            message: message.into(),
            forbidden,
        };
        let down = "error trying to connect: Connection refused";
        let denied = "services is forbidden: User \"x\" cannot list resource \"services\"";
        // (failures, messages, forbidden, refused)
        let cases = [
            (vec![], vec![], false, 0),
            (
                vec![
                    failure("replicasets", down, false),
                    failure("jobs", down, false),
                ],
                vec![down],
                false,
                0,
            ),
            (
                vec![
                    failure("services", denied, true),
                    failure("jobs", down, false),
                ],
                vec![down, denied],
                true,
                1,
            ),
        ];
        for (failures, messages, forbidden, refused) in cases {
            let report = Unsynced::of(failures);
            assert_eq!(report.errors.messages, messages);
            assert_eq!(report.errors.forbidden, forbidden);
            assert_eq!(report.refused.len(), refused);
        }
    }
}
