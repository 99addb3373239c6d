//! What every pass shares: the client, git cache, reflectors, discovery cache,
//! event recorder and the in-memory memo of each channel (losing it, on a
//! restart, costs one fetch and one render, nothing else).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use k8s_openapi::api::core::v1::Service;
use kube::{Api, Client, Resource, ResourceExt};

use super::observe::Observer;
use super::status::truncate;
use super::{Error, Metrics, Settings, SyncRequests};
use crate::api::{Channel, CommitInfo};
use crate::cluster::{ClusterError, Resolver};
use crate::render::{Object, Release};
use crate::rollout::{mint, DesiredRelease, CHANNEL_LABEL};
use crate::source::{GitCache, WatchRegistry};
use kube::discovery::ApiResource;

/// A rendered commit, ready to plan against the cluster.
pub struct Rendered {
    /// The commit, with the ref it came from.
    pub commit: CommitInfo,
    /// The release as desired state.
    pub desired: DesiredRelease,
    /// The kinds it delivers (plus ConfigMaps and Secrets, for copies), to watch.
    pub kinds: Vec<ApiResource>,
    /// Whether some kinds come from CRDs in the release that are not served yet.
    pub unresolved: bool,
    /// Namespaces the release creates.
    pub namespaces: Vec<String>,
    /// `Minted ...` summaries of its revisions, for the event.
    pub summaries: Vec<String>,
    /// Selectors of declared Services that exist without kubemint's labels
    /// (made by hand, being adopted): they keep serving what they select until promotion.
    pub unlabelled: BTreeMap<(String, String), BTreeMap<String, String>>,
}

/// What the controller remembers of a channel between passes.
#[derive(Default)]
pub struct Memo {
    /// Generation and request annotations last seen: a change forces a fetch.
    pub trigger: String,
    /// When git was last polled.
    pub polled_at: Option<Instant>,
    /// The newest commit the ref pointed to at the last poll.
    pub head: Option<String>,
    /// The rendered commit being delivered.
    pub rendered: Option<Arc<Rendered>>,
    /// A commit rejected for good (render or dry run), with the trigger it was
    /// rejected under: not tried again until either changes.
    pub rejected: Option<(String, String)>,
    /// Consecutive transient failures.
    pub failures: u32,
    /// No retry before this, unless a new commit or a request comes.
    pub retry_at: Option<Instant>,
}

/// What every reconcile shares.
pub struct Context {
    pub(super) client: Client,
    pub(super) git: GitCache,
    pub(super) resolver: Resolver,
    pub(super) observer: Arc<Observer>,
    recorder: Recorder,
    pub(super) metrics: Arc<Metrics>,
    pub(super) requests: SyncRequests,
    pub(super) watches: WatchRegistry,
    memo: Mutex<HashMap<String, Memo>>,
}

impl Context {
    /// A context for the controller.
    pub fn new(
        client: Client,
        settings: &Settings,
        reporter: Reporter,
        metrics: Arc<Metrics>,
        requests: SyncRequests,
        observer: Arc<Observer>,
    ) -> Self {
        Context {
            git: GitCache::new(&settings.cache_dir),
            recorder: Recorder::new(client.clone(), reporter),
            resolver: Resolver::new(client.clone()),
            client,
            observer,
            metrics,
            requests,
            watches: WatchRegistry::default(),
            memo: Mutex::default(),
        }
    }

    /// The API client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The controller's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Runs `f` on the memo of channel `key`.
    pub(super) fn memo<T>(&self, key: &str, f: impl FnOnce(&mut Memo) -> T) -> T {
        let mut memo = self.memo.lock().unwrap_or_else(|p| p.into_inner());
        f(memo.entry(key.to_string()).or_default())
    }

    /// Forgets a deleted channel.
    pub(super) fn forget(&self, key: &str) {
        self.memo
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// Publishes an event about `channel`; failures to publish are logged, not fatal.
    pub async fn publish(&self, channel: &Channel, type_: EventType, reason: &str, note: String) {
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(truncate(&note, 1000)),
            action: "Reconcile".to_string(),
            secondary: None,
        };
        if let Err(e) = self
            .recorder
            .publish(&event, &channel.object_ref(&()))
            .await
        {
            tracing::warn!(error = %e, "publishing event failed");
        }
    }
}

/// Settles every object's kind and namespace: the release as desired state, and the kinds to watch.
pub async fn prepare(
    client: &Client,
    resolver: &Resolver,
    channel: &Channel,
    release: &Release,
    commit: CommitInfo,
) -> Result<Rendered, Error> {
    let target = channel.target_namespace();
    let minted = mint(release, &|_| None);
    let mut kinds = Vec::new();
    let mut scopes = std::collections::HashMap::new();
    let mut unresolved = false;
    let all: Vec<&Object> = minted
        .objects
        .iter()
        .chain(minted.revisions.iter().map(|r| &r.replica_set))
        .collect();
    for object in &all {
        let gvk = (object.group().to_string(), object.version().to_string(), object.kind.clone());
        if scopes.contains_key(&gvk) {
            continue;
        }
        let namespaced = match resolver
            .resolve(object.group(), object.version(), &object.kind)
            .await?
        {
            Some((ar, namespaced)) => {
                kinds.push(ar);
                namespaced
            }
            None => match crd_scope_in_release(&release.objects, object.group(), &object.kind) {
                Some(namespaced) => {
                    unresolved = true;
                    namespaced
                }
                None => {
                    return Err(ClusterError::UnknownKind {
                        file: object.file.clone(),
                        object: object.key().to_string(),
                        api_version: object.api_version.clone(),
                        kind: object.kind.clone(),
                    }
                    .into())
                }
            },
        };
        scopes.insert(gvk, namespaced);
    }
    // Config copies are watched even when the release declares no ConfigMap or Secret.
    for kind in ["ConfigMap", "Secret"] {
        if let Some((ar, _)) = resolver.resolve("", "v1", kind).await? {
            if !kinds.iter().any(|k| k.kind == kind && k.group.is_empty()) {
                kinds.push(ar);
            }
        }
    }
    let namespace_of = |o: &Object| -> Option<String> {
        let key = (o.group().to_string(), o.version().to_string(), o.kind.clone());
        scopes
            .get(&key)
            .copied()
            .unwrap_or(true)
            .then(|| o.namespace.clone().unwrap_or_else(|| target.clone()))
    };
    let desired = DesiredRelease::new(
        &release.id,
        &commit.sha,
        &channel.label_value(),
        &minted,
        &namespace_of,
    );
    let unlabelled = unlabelled_services(client, &desired).await?;
    let namespaces = release
        .objects
        .iter()
        .filter(|o| o.kind == "Namespace" && o.group().is_empty())
        .map(|o| o.name.clone())
        .collect();
    Ok(Rendered {
        commit,
        desired,
        kinds,
        unresolved,
        namespaces,
        summaries: minted.revisions.iter().map(|r| r.summary()).collect(),
        unlabelled,
    })
}

/// Declared, pinned Services that exist but are not labelled for the channel
/// (one list per namespace, once per commit).
async fn unlabelled_services(
    client: &Client,
    desired: &DesiredRelease,
) -> Result<BTreeMap<(String, String), BTreeMap<String, String>>, Error> {
    let pinned: BTreeSet<(String, String)> = desired
        .objects
        .iter()
        .filter(|o| o.pinned_to.is_some())
        .map(|o| (o.id.namespace.clone().unwrap_or_default(), o.id.name.clone()))
        .collect();
    let namespaces: BTreeSet<&String> = pinned.iter().map(|(ns, _)| ns).collect();
    let mut found = BTreeMap::new();
    for ns in namespaces {
        let list = Api::<Service>::namespaced(client.clone(), ns)
            .list(&Default::default())
            .await
            .map_err(|source| ClusterError::Observe {
                what: format!("Services in {ns}"),
                source,
            })?;
        for svc in list.items {
            let key = (ns.clone(), svc.name_any());
            let ours = svc.labels().get(CHANNEL_LABEL) == Some(&desired.channel);
            if ours || !pinned.contains(&key) {
                continue;
            }
            let selector = svc.spec.and_then(|s| s.selector).unwrap_or_default();
            found.insert(key, selector.into_iter().collect());
        }
    }
    Ok(found)
}

/// `Some(namespaced)` when the release holds a CRD that defines `group`/`kind`.
fn crd_scope_in_release(objects: &[Object], group: &str, kind: &str) -> Option<bool> {
    objects
        .iter()
        .filter(|o| o.kind == "CustomResourceDefinition")
        .find(|o| {
            o.manifest["spec"]["group"] == group && o.manifest["spec"]["names"]["kind"] == kind
        })
        .map(|crd| crd.manifest["spec"]["scope"] != "Cluster")
}

/// Backoff after `failures` consecutive transient failures: 1 s, doubling, at most 5 minutes.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(9)).min(Duration::from_secs(300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let secs: Vec<u64> = (1..=11).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    }
}
