//! The Channel watch of one shard, and what happens when a channel moves
//! between shards.
//!
//! # Moving a channel (relabelling `kubemint.io/shard`)
//!
//! Each operator watches only its shard's channels (a label selector, see
//! [`Shard::selector`]). When a channel's label changes, the API server tells
//! the old shard's watch that it was *deleted* and the new shard's that it was
//! *added*; nothing else marks the move. The move must neither deliver twice
//! nor leave a gap:
//!
//! - **No cleanup by the old shard.** kube-runtime drops the channel from the
//!   old shard's cache and never calls the reconciler for a deleted watch
//!   event: the finalizer's cleanup (the prune of everything the channel
//!   delivered) runs only for a channel that is still watched and has a
//!   `deletionTimestamp`, that is, for a real deletion. The finalizer stays on
//!   the channel for its new shard. Wake-ups still queued in the old shard
//!   (a requeue, a watch event of one of its objects, a webhook) find no
//!   channel in the cache and do nothing.
//! - **The old shard forgets it** ([`Membership`]): its memo (schedule,
//!   rendered commit), its local-repository watch and its identities go, so
//!   that nothing of it lingers, and so that if the channel comes back later,
//!   its first pass starts from git and the cluster instead of an old memo
//!   (which could re-apply an older rendered commit). The departure is seen on
//!   the delete event, or, when the watch restarts, as a channel missing from
//!   the new list; an arrival forgets too, for the same reason.
//! - **No double apply by the new shard.** The operator keeps no state of its
//!   own: the new shard's first pass fetches, renders, and plans against the
//!   live objects, exactly as after a restart. The release is already there,
//!   so the plan has nothing to apply, and the pass writes at most the status.
//! - **No gap.** The new shard's watch wakes it at once (the added event); its
//!   first pass polls git, so a commit that landed during the move is
//!   delivered by it.
//! - **A pass in flight** in the old shard when the label changes runs to its
//!   end (stopping an apply half-way would be worse). Whatever it and the new
//!   shard's first pass both send is the same server-side apply of the same
//!   release by the same field manager, which changes nothing the second time.
//!   Should a commit land in that very moment, so that the old pass writes an
//!   older release than the new shard's, the objects it changes wake the new
//!   shard through its reflectors, and its next pass puts its release back.

use std::collections::HashSet;
use std::sync::Arc;

use futures::TryStreamExt;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, PredicateConfig, WatchStreamExt};
use kube::Api;

use super::Context;
use crate::api::{Channel, Shard};

/// A change in the set of channels this operator watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipChange {
    /// A channel that was not watched is now (at start: every channel).
    Arrived(String),
    /// A watched channel is not any more: deleted, or moved to another shard.
    Departed(String),
}

/// The keys of the channels the watch has delivered, kept from its events so
/// that departures are seen even when a watch restart hides their delete
/// events (a channel that is missing from the new list has departed).
#[derive(Debug, Default)]
pub struct Membership {
    members: HashSet<String>,
    /// The keys of a list in progress (between `Init` and `InitDone`).
    listing: Option<HashSet<String>>,
}

impl Membership {
    /// What `event` changes, `key` naming its objects.
    pub fn observe<K>(
        &mut self,
        event: &watcher::Event<K>,
        key: impl Fn(&K) -> String,
    ) -> Vec<MembershipChange> {
        match event {
            watcher::Event::Apply(obj) => {
                let k = key(obj);
                if self.members.insert(k.clone()) {
                    vec![MembershipChange::Arrived(k)]
                } else {
                    vec![]
                }
            }
            watcher::Event::Delete(obj) => {
                let k = key(obj);
                if self.members.remove(&k) {
                    vec![MembershipChange::Departed(k)]
                } else {
                    vec![]
                }
            }
            watcher::Event::Init => {
                self.listing = Some(HashSet::new());
                vec![]
            }
            watcher::Event::InitApply(obj) => {
                let k = key(obj);
                self.listing.get_or_insert_default().insert(k.clone());
                if self.members.contains(&k) {
                    vec![]
                } else {
                    vec![MembershipChange::Arrived(k)]
                }
            }
            watcher::Event::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                let mut departed: Vec<String> = self.members.difference(&listed).cloned().collect();
                departed.sort();
                self.members = listed;
                departed
                    .into_iter()
                    .map(MembershipChange::Departed)
                    .collect()
            }
        }
    }
}

/// Why a channel left: it is gone, or its labels now name another shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// It was being deleted (the finalizer has done its part).
    Deleted,
    /// Relabelled to another shard, which now delivers it (or deleted before
    /// it ever had the finalizer).
    Moved,
    /// Not in the watch's new list: deleted or moved while the watch restarted.
    Unlisted,
}

/// Why a channel left, from its last state as the delete event carries it:
/// `Some(deleting)`, whether it had a deletion timestamp; `None`, no event.
/// (The labels do not tell: for an object that leaves a label selector, the
/// API server sends its state from *before* the change.)
pub fn departure(deleting: Option<bool>) -> Departure {
    match deleting {
        Some(true) => Departure::Deleted,
        Some(false) => Departure::Moved,
        None => Departure::Unlisted,
    }
}

/// The controller of `shard`'s channels in `api`: its watch selects them by
/// label, and forgets channels that leave it (see the module's doc).
pub(super) fn controller(
    api: Api<Channel>,
    shard: &Shard,
    ctx: Arc<Context>,
) -> Controller<Channel> {
    let (reader, writer) = reflector::store();
    let config = watcher::Config::default()
        .any_semantic()
        .labels(&shard.selector());
    let mut membership = Membership::default();
    let (known, shard) = (reader.clone(), shard.clone());
    // Changes are seen before the cache applies the event, so a channel that
    // vanished from a new list can still be read from the cache.
    let stream = watcher(api, config)
        .map_ok(move |event| {
            for change in membership.observe(&event, Channel::key) {
                on_change(&ctx, &shard, &known, &event, change);
            }
            event
        })
        .reflect(writer)
        .applied_objects()
        .predicate_filter(asks_for_a_pass, PredicateConfig::default());
    Controller::for_stream(stream, reader)
}

/// What of a channel asks for a pass when it changes: its spec (generation),
/// annotations (sync, retry and approval requests), labels and deletion. Its
/// status does not: a pass's own status write would otherwise be followed by
/// a pass that has nothing to do, which for a monorepo's thousand channels
/// recording a commit is a thousand passes more. The cache still takes the
/// new status; timers and the watches of delivered objects bring the passes.
fn asks_for_a_pass(channel: &Channel) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let meta = &channel.metadata;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    meta.generation.hash(&mut hasher);
    meta.annotations.hash(&mut hasher);
    meta.labels.hash(&mut hasher);
    meta.deletion_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .hash(&mut hasher);
    meta.finalizers.hash(&mut hasher);
    Some(hasher.finish())
}

fn on_change(
    ctx: &Context,
    shard: &Shard,
    known: &Store<Channel>,
    event: &watcher::Event<Channel>,
    change: MembershipChange,
) {
    match change {
        MembershipChange::Arrived(key) => {
            // Nothing of an earlier stint in this shard may steer its first pass.
            ctx.forget(&key);
            tracing::debug!(channel = %key, %shard, "channel watched");
        }
        MembershipChange::Departed(key) => {
            let channel = match event {
                watcher::Event::Delete(channel) => Some(Arc::new(channel.clone())),
                _ => cached(known, &key),
            };
            let why = departure(match event {
                watcher::Event::Delete(channel) => {
                    Some(channel.metadata.deletion_timestamp.is_some())
                }
                _ => None,
            });
            ctx.let_go(&key, channel.as_deref());
            match why {
                Departure::Deleted => {
                    tracing::debug!(channel = %key, %shard, "channel deleted; forgotten")
                }
                Departure::Moved => {
                    tracing::info!(channel = %key, %shard, "channel moved to another shard (kubemint.io/shard changed): forgotten here, nothing pruned; its new shard delivers it")
                }
                Departure::Unlisted => {
                    tracing::info!(channel = %key, %shard, "channel no longer listed (deleted, or moved to another shard): forgotten here, nothing pruned")
                }
            }
        }
    }
}

/// The cached channel `namespace/name`.
fn cached(store: &Store<Channel>, key: &str) -> Option<Arc<Channel>> {
    let (namespace, name) = key.split_once('/')?;
    store.get(&ObjectRef::new(name).within(namespace))
}

#[cfg(test)]
mod tests {
    use super::*;
    use watcher::Event;

    fn changes(membership: &mut Membership, event: Event<&str>) -> Vec<MembershipChange> {
        membership.observe(&event, |k| k.to_string())
    }

    #[test]
    fn arrivals_and_departures_from_watch_events() {
        let mut m = Membership::default();
        let arrived = |k: &str| MembershipChange::Arrived(k.into());
        let departed = |k: &str| MembershipChange::Departed(k.into());
        // The first list: every channel arrives.
        assert_eq!(changes(&mut m, Event::Init), []);
        assert_eq!(changes(&mut m, Event::InitApply("ns/a")), [arrived("ns/a")]);
        assert_eq!(changes(&mut m, Event::InitApply("ns/b")), [arrived("ns/b")]);
        assert_eq!(changes(&mut m, Event::InitDone), []);
        // Updates of a watched channel change nothing.
        assert_eq!(changes(&mut m, Event::Apply("ns/a")), []);
        // Relabelled in: arrives; relabelled away (or deleted): departs, once.
        assert_eq!(changes(&mut m, Event::Apply("ns/c")), [arrived("ns/c")]);
        assert_eq!(changes(&mut m, Event::Delete("ns/a")), [departed("ns/a")]);
        assert_eq!(changes(&mut m, Event::Delete("ns/a")), []);
        // A watch restart: `b` moved away and `a` came back while the watch was
        // down; neither had an event of its own.
        assert_eq!(changes(&mut m, Event::Init), []);
        assert_eq!(changes(&mut m, Event::InitApply("ns/a")), [arrived("ns/a")]);
        assert_eq!(changes(&mut m, Event::InitApply("ns/c")), []);
        assert_eq!(changes(&mut m, Event::InitDone), [departed("ns/b")]);
        assert_eq!(changes(&mut m, Event::Delete("ns/b")), []);
    }

    #[test]
    fn a_departure_is_a_move_unless_the_channel_was_being_deleted() {
        assert_eq!(departure(Some(true)), Departure::Deleted);
        assert_eq!(departure(Some(false)), Departure::Moved);
        assert_eq!(departure(None), Departure::Unlisted);
    }
}
