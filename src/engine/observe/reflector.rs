//! One reflector: a watch on its own task keeping a store (and its keys by
//! channel), waking the channel an event touches, backing off when it fails,
//! and saying whether its store holds a list taken since its last failure.
//!
//! A watch that failed is started over with a fresh list, and its store is
//! stale until that list is in: kube's watcher would otherwise resume from its
//! last resourceVersion, and a pass that trusted the old store after an API
//! server outage took the Service it had just switched for one still on the
//! previous revision, and drained the revision that served.

use std::fmt::{self, Debug};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Resource;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::super::by_channel::ByChannel;
use crate::api::Channel;
use crate::rollout::{CHANNEL_LABEL, FIELD_MANAGER};

/// The longest wait between two attempts of a watch the API server refuses
/// (403): a tenant's missing RoleBinding must not load the API server for
/// everyone. A sync request retries at once ([`super::Observer::retry_refused`]).
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

impl fmt::Display for WatchTarget {
    /// `replicasets.apps in namespace shop`, `services cluster-wide`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.plural)?;
        if !self.group.is_empty() {
            write!(f, ".{}", self.group)?;
        }
        match &self.namespace {
            Some(ns) => write!(f, " in namespace {ns}"),
            None => write!(f, " cluster-wide"),
        }
    }
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

/// One step of a watch, as far as the freshness of its store goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// A new list begins (`Init`): the store still holds the previous one.
    Relisting,
    /// The list is complete (`InitDone`): the store holds it.
    Listed,
    /// An object was listed, changed or deleted.
    Changed,
    /// The watch failed: events may be missed until a new list is in.
    Failed,
}

/// Whether the store holds a list taken since the watch last failed, after `step`.
fn listed_after(listed: bool, step: Step) -> bool {
    match step {
        Step::Relisting | Step::Failed => false,
        Step::Listed => true,
        Step::Changed => listed,
    }
}

/// The last failure of a watch and whether its store is fresh, shared by the
/// task and every holder of the watch.
struct Health {
    failure: Mutex<Option<WatchFailure>>,
    /// Whether the store holds a list taken since the last failure.
    listed: tokio::sync::watch::Sender<bool>,
}

/// A reflector's store and the state of its watch. The watch runs while any
/// clone of it is held.
pub(super) struct Watched<K: Resource + Clone + 'static>
where
    K::DynamicType: Eq + Hash + Clone,
{
    pub(super) store: Store<K>,
    /// The store's keys by channel label.
    by_channel: Arc<Mutex<ByChannel<ObjectRef<K>>>>,
    target: WatchTarget,
    health: Arc<Health>,
    /// Wakes a watch waiting out its backoff.
    retry: Arc<tokio::sync::Notify>,
    _task: Arc<StopOnDrop>,
}

/// Stops a watch's task when the last holder lets go (an observer of a
/// ServiceAccount no channel acts as any more).
pub(super) struct StopOnDrop(pub(super) tokio::task::AbortHandle);

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
            target: self.target.clone(),
            health: self.health.clone(),
            retry: self.retry.clone(),
            _task: self._task.clone(),
        }
    }
}

impl<K: Resource + Clone + 'static> Watched<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    /// The last failure of the watch, until it makes progress again.
    pub(super) fn failing(&self) -> Option<WatchFailure> {
        lock(&self.health.failure).clone()
    }

    /// Why a pass may not trust this store now: its last failure, or (the
    /// failure over, the new list not yet in) that it is still listing.
    /// `None` once the store holds a list taken since the last failure.
    pub(super) fn unsynced(&self) -> Option<WatchFailure> {
        if *self.health.listed.borrow() {
            return None;
        }
        Some(self.failing().unwrap_or_else(|| WatchFailure {
            target: self.target.clone(),
            message: format!("the watch of {} is listing", self.target),
            forbidden: false,
        }))
    }

    /// Returns once the store holds a list taken since the last failure.
    pub(super) async fn until_listed(&self) {
        let mut listed = self.health.listed.subscribe();
        // The sender lives as long as `self`: this ends only when listed.
        let _ = listed.wait_for(|listed| *listed).await;
    }

    /// The objects of channel `label` in the store.
    pub(super) fn of_channel(&self, label: &str) -> Vec<Arc<K>> {
        let keys = lock(&self.by_channel).keys(label);
        keys.iter().filter_map(|key| self.store.get(key)).collect()
    }

    /// Retries a failing watch now instead of at the end of its backoff.
    pub(super) fn retry_if_failing(&self) {
        if self.failing().is_some() {
            self.retry.notify_waiters();
        }
    }
}

/// Where events go: the channels of this operator's scope.
#[derive(Clone)]
pub(super) struct Wake {
    pub(super) wake: mpsc::UnboundedSender<ObjectRef<Channel>>,
    pub(super) namespace: Option<String>,
}

impl Wake {
    fn send(&self, channel: ObjectRef<Channel>) {
        if self.namespace.is_none() || channel.namespace == self.namespace {
            let _ = self.wake.send(channel);
        }
    }
}

/// The channel an object belongs to, from its `kubemint.io/channel` label
/// (`<namespace>.<name>`; namespaces cannot contain dots, names can).
pub fn channel_of(meta: &ObjectMeta) -> Option<ObjectRef<Channel>> {
    let (namespace, name) = meta.labels.as_ref()?.get(CHANNEL_LABEL)?.split_once('.')?;
    Some(ObjectRef::new(name).within(namespace))
}

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
pub(super) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The `kubemint.io/channel` label of an object, if it has one.
fn channel_label(meta: &ObjectMeta) -> Option<&str> {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(CHANNEL_LABEL))
        .map(String::as_str)
}

/// Runs a reflector on its own task while the returned [`Watched`] is held;
/// every event wakes the channel of the object it touches. `watch` makes
/// the watcher: a new one, which lists afresh, after every failure.
///
/// A failed watch waits out [`watch_backoff`] before its next attempt; only
/// progress (objects listed or changed) resets it. kube's own backoff is
/// reset by the `Init` event that opens every attempt, so a refused watch
/// would be retried about every second, forever.
pub(super) fn spawn<K, S>(
    watch: impl Fn() -> S + Send + 'static,
    dyntype: K::DynamicType,
    wake: Wake,
    target: WatchTarget,
) -> Watched<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
    S: futures::Stream<Item = watcher::Result<Event<K>>> + Send + 'static,
{
    let mut writer = reflector::store::Writer::new(dyntype.clone());
    let store = writer.as_reader();
    let by_channel: Arc<Mutex<ByChannel<ObjectRef<K>>>> = Arc::default();
    let index = by_channel.clone();
    let indexed = store.clone();
    let health = Arc::new(Health {
        failure: Mutex::new(None),
        listed: tokio::sync::watch::Sender::new(false),
    });
    let state = health.clone();
    let retry = Arc::new(tokio::sync::Notify::new());
    let retry_now = retry.clone();
    let failed_target = target.clone();
    let advance = move |health: &Health, step: Step| {
        health.listed.send_if_modified(|listed| {
            let after = listed_after(*listed, step);
            std::mem::replace(listed, after) != after
        });
    };
    let task = tokio::spawn(async move {
        let mut failures = 0u32;
        loop {
            // What the stores keep of each object is what a pass reads of it.
            let events = watch().modify(|o: &mut K| trim_managed_fields(o.meta_mut()));
            let mut events = std::pin::pin!(events);
            let mut failure = None;
            while let Some(event) = events.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                };
                writer.apply_watcher_event(&event);
                let step = match event {
                    // Every attempt opens with `Init`: no progress yet.
                    Event::Init => Step::Relisting,
                    Event::Apply(o) | Event::InitApply(o) => {
                        let key = ObjectRef::from_obj_with(&o, dyntype.clone());
                        lock(&index).put(key, channel_label(o.meta()));
                        if let Some(channel) = channel_of(o.meta()) {
                            wake.send(channel);
                        }
                        Step::Changed
                    }
                    Event::Delete(o) => {
                        lock(&index).remove(&ObjectRef::from_obj_with(&o, dyntype.clone()));
                        if let Some(channel) = channel_of(o.meta()) {
                            wake.send(channel);
                        }
                        Step::Changed
                    }
                    // The store now holds the new list: so does the index.
                    Event::InitDone => {
                        let objects = indexed.state();
                        lock(&index).rebuild(objects.iter().map(|o| {
                            (
                                ObjectRef::from_obj_with(o.as_ref(), dyntype.clone()),
                                channel_label(o.meta()),
                            )
                        }));
                        Step::Listed
                    }
                };
                advance(&state, step);
                if step != Step::Relisting {
                    failures = 0;
                    *lock(&state.failure) = None;
                }
            }
            // A watcher's stream does not end by itself; a failure (or that)
            // starts a new watcher, whose list replaces the stale store.
            advance(&state, Step::Failed);
            let Some(e) = failure else { continue };
            if is_gone(&e) {
                // The server answered (410 Gone: it no longer has the
                // watch's resourceVersion, as after a restart): list again
                // at once, not after the backoff the outage built up.
                tracing::debug!(watch = %failed_target, "watch expired; listing again");
                continue;
            }
            failures += 1;
            let forbidden = is_forbidden(&e);
            let delay = watch_backoff(failures, forbidden);
            tracing::debug!(error = %e, retry_in = ?delay, watch = %failed_target, "watch failed; listing again");
            *lock(&state.failure) = Some(WatchFailure {
                target: failed_target.clone(),
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
        target,
        health,
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
        watcher::Error::WatchError(status) => status.code == 403,
        _ => false,
    }
}

/// Whether the API server said the watch's resourceVersion is gone (410).
fn is_gone(err: &watcher::Error) -> bool {
    match err {
        watcher::Error::WatchError(status) => status.code == 410,
        watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code == 410,
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

    #[test]
    fn a_store_is_trusted_from_a_complete_list_until_the_next_failure_or_relist() {
        use Step::*;
        // (listed before, step, listed after)
        let cases = [
            (false, Relisting, false),
            (false, Changed, false), // objects of a list still coming in
            (false, Listed, true),
            (true, Changed, true),    // a watch event on a fresh list
            (true, Failed, false),    // events may be missed from here on
            (true, Relisting, false), // 410 Gone: the watcher lists again
            (false, Failed, false),
        ];
        for (before, step, after) in cases {
            assert_eq!(listed_after(before, step), after, "{before} then {step:?}");
        }
        // An outage in the middle of a watch: stale until the new list is done.
        let steps = [Listed, Changed, Failed, Failed, Relisting, Changed, Changed];
        let listed = steps.iter().fold(false, |l, s| listed_after(l, *s));
        assert!(!listed, "the new list is not complete yet");
        assert!(listed_after(listed, Listed));
    }

    #[test]
    fn an_expired_watch_lists_again_at_once_and_a_refusal_backs_off() {
        use kube::core::Status;
        let status = |code: u16| Status::failure("answer", "Reason").with_code(code);
        // (error, gone: list again at once, forbidden: the long backoff)
        let cases = [
            (watcher::Error::WatchError(status(410).boxed()), true, false),
            (
                watcher::Error::WatchFailed(kube::Error::Api(status(410).boxed())),
                true,
                false,
            ),
            (watcher::Error::WatchError(status(403).boxed()), false, true),
            (
                watcher::Error::InitialListFailed(kube::Error::Api(status(403).boxed())),
                false,
                true,
            ),
            (
                watcher::Error::WatchStartFailed(kube::Error::Api(status(503).boxed())),
                false,
                false,
            ),
        ];
        for (error, gone, forbidden) in cases {
            assert_eq!(is_gone(&error), gone, "{error}");
            assert_eq!(is_forbidden(&error), forbidden, "{error}");
        }
    }

    #[test]
    fn a_watch_target_names_its_resource_and_where() {
        let target = |group: &str, plural: &str, ns: Option<&str>| WatchTarget {
            group: group.into(),
            kind: String::new(),
            plural: plural.into(),
            namespace: ns.map(str::to_string),
        };
        let cases = [
            (
                target("apps", "replicasets", Some("shop")),
                "replicasets.apps in namespace shop",
            ),
            (target("", "services", None), "services cluster-wide"),
        ];
        for (target, text) in cases {
            assert_eq!(target.to_string(), text);
        }
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
