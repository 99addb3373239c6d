//! The blue/green state machine of one release, as a pure function of what
//! the cluster and the channel's status show. The controller observes, calls
//! [`decide`], and carries the decision out; a crash at any point leaves
//! cluster state from which the same decision is made again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::mint::WorkloadKey;

/// A ReplicaSet of this channel as it is in the cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveRevision {
    /// ReplicaSet name.
    pub name: String,
    /// Workload it belongs to (namespace as written in the release, name).
    pub workload: WorkloadKey,
    /// Revision hash.
    pub hash: String,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `status.availableReplicas` (ready for at least minReadySeconds).
    pub available: i32,
    /// `status.readyReplicas`.
    pub ready: i32,
    /// The ReplicaSet controller has seen the current spec.
    pub observed: bool,
    /// When it last served traffic (annotation), or its creation time.
    pub last_active: Timestamp,
}

impl LiveRevision {
    /// All its replicas are available, as of the current spec.
    pub fn is_ready(&self, wanted: i32) -> bool {
        self.observed && self.replicas == wanted && self.available >= wanted
    }
}

/// A revision the release wants.
#[derive(Debug, Clone, PartialEq)]
pub struct WantedRevision {
    /// The workload.
    pub workload: WorkloadKey,
    /// Revision hash.
    pub hash: String,
    /// ReplicaSet name.
    pub name: String,
    /// Desired replicas.
    pub replicas: i32,
}

/// Everything a decision depends on.
#[derive(Debug, Clone)]
pub struct RolloutState<'a> {
    /// The revisions of the release being delivered.
    pub wanted: &'a [WantedRevision],
    /// Every ReplicaSet of the channel.
    pub live: &'a [LiveRevision],
    /// The revision serving each workload now (from the active release).
    pub active: &'a BTreeMap<WorkloadKey, String>,
    /// When this release was first applied (start of the readiness wait).
    pub started_at: Timestamp,
    /// When this release was promoted, if it was.
    pub promoted_at: Option<Timestamp>,
    /// Now.
    pub now: Timestamp,
    /// `spec.rollout.readyTimeout`.
    pub ready_timeout: Duration,
    /// `spec.rollout.drainSeconds`.
    pub drain: Duration,
    /// `spec.rollout.keepReleases`.
    pub keep: usize,
}

/// A workload whose new revision is not ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady {
    /// Workload name.
    pub workload: String,
    /// Pods ready.
    pub ready: i32,
    /// Pods wanted.
    pub wanted: i32,
}

/// What to do now.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// New revisions are not all ready yet; look again by `deadline` at the latest.
    Wait {
        /// The workloads still waited for.
        pending: Vec<NotReady>,
    },
    /// Every new revision is ready: switch all Services now.
    Promote,
    /// The readiness deadline passed: keep traffic, scale the new revisions down.
    Fail {
        /// The workloads that were not ready.
        pending: Vec<NotReady>,
    },
    /// Promoted: drain and clean up.
    Promoted,
}

/// A decision: the step, and housekeeping on old ReplicaSets.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Where the release stands.
    pub step: Step,
    /// ReplicaSets to scale to zero now.
    pub scale_down: Vec<String>,
    /// ReplicaSets to delete now.
    pub delete: Vec<String>,
    /// Look again after this long (a drain or the ready deadline is due), if anything is pending.
    pub requeue: Option<Duration>,
}

/// Decides the next step of a release. See the module docs.
pub fn decide(state: &RolloutState<'_>) -> Decision {
    let wanted_names: Vec<&str> = state.wanted.iter().map(|w| w.name.as_str()).collect();
    let active_names: Vec<String> = state
        .active
        .iter()
        .filter_map(|(key, hash)| {
            state
                .live
                .iter()
                .find(|l| &l.workload == key && &l.hash == hash)
                .map(|l| l.name.clone())
        })
        .collect();
    let others = || {
        state
            .live
            .iter()
            .filter(|l| !wanted_names.contains(&l.name.as_str()))
    };

    let Some(promoted_at) = state.promoted_at else {
        let pending = not_ready(state);
        // Revisions that are neither wanted nor serving (an abandoned attempt) go at once.
        let scale_down: Vec<String> = others()
            .filter(|l| l.replicas > 0 && !active_names.contains(&l.name))
            .map(|l| l.name.clone())
            .collect();
        if pending.is_empty() {
            return Decision {
                step: Step::Promote,
                scale_down,
                delete: Vec::new(),
                requeue: Some(Duration::ZERO),
            };
        }
        let deadline = add(state.started_at, state.ready_timeout);
        if state.now >= deadline {
            // The new revisions that do not serve traffic are scaled down; a
            // workload whose revision did not change keeps serving.
            let mut scale_down = scale_down;
            scale_down.extend(
                state
                    .wanted
                    .iter()
                    .filter(|w| state.active.get(&w.workload) != Some(&w.hash))
                    .map(|w| w.name.clone()),
            );
            return Decision {
                step: Step::Fail { pending },
                scale_down,
                delete: Vec::new(),
                requeue: None,
            };
        }
        return Decision {
            step: Step::Wait { pending },
            scale_down,
            delete: Vec::new(),
            requeue: Some(until(state.now, deadline)),
        };
    };

    // Promoted: drain the previous revisions, then keep a few as records.
    let drain_due = add(promoted_at, state.drain);
    let draining = state.now < drain_due;
    let mut decision = Decision {
        step: Step::Promoted,
        scale_down: Vec::new(),
        delete: Vec::new(),
        requeue: None,
    };
    if draining {
        if others().any(|l| l.replicas > 0) {
            decision.requeue = Some(until(state.now, drain_due));
        }
        return decision;
    }
    decision.scale_down = others()
        .filter(|l| l.replicas > 0)
        .map(|l| l.name.clone())
        .collect();
    let wanted_workloads: Vec<&WorkloadKey> = state.wanted.iter().map(|w| &w.workload).collect();
    let mut by_workload: BTreeMap<&WorkloadKey, Vec<&LiveRevision>> = BTreeMap::new();
    for l in others() {
        if wanted_workloads.contains(&&l.workload) {
            by_workload.entry(&l.workload).or_default().push(l);
        } else {
            // The workload is gone from the release: its revisions go after the drain.
            decision.delete.push(l.name.clone());
        }
    }
    for mut kept in by_workload.into_values() {
        // A revision still running served until now, whatever its annotation says.
        let active_at = |l: &LiveRevision| {
            if l.replicas > 0 {
                state.now
            } else {
                l.last_active
            }
        };
        kept.sort_by(|a, b| {
            active_at(b)
                .cmp(&active_at(a))
                .then_with(|| a.name.cmp(&b.name))
        });
        decision
            .delete
            .extend(kept.iter().skip(state.keep).map(|l| l.name.clone()));
    }
    decision.scale_down.retain(|n| !decision.delete.contains(n));
    decision
}

fn not_ready(state: &RolloutState<'_>) -> Vec<NotReady> {
    state
        .wanted
        .iter()
        .filter_map(|w| {
            let live = state.live.iter().find(|l| l.name == w.name);
            let ready = live.is_some_and(|l| l.is_ready(w.replicas));
            (!ready).then(|| NotReady {
                workload: w.workload.1.clone(),
                ready: live.map_or(0, |l| l.ready),
                wanted: w.replicas,
            })
        })
        .collect()
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(d).unwrap_or(t)
}

fn until(now: Timestamp, then: Timestamp) -> Duration {
    Duration::try_from(then.duration_since(now)).unwrap_or(Duration::ZERO)
}

/// Config copies that nothing reads any more: not wanted by the release and not
/// referenced by any ReplicaSet that remains.
pub fn orphan_copies(copies: &[String], still_read: &BTreeSet<String>) -> Vec<String> {
    copies
        .iter()
        .filter(|name| !still_read.contains(*name))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn key(name: &str) -> WorkloadKey {
        (None, name.to_string())
    }

    fn live(
        name: &str,
        workload: &str,
        replicas: i32,
        available: i32,
        last_active: i64,
    ) -> LiveRevision {
        LiveRevision {
            name: name.into(),
            workload: key(workload),
            hash: name.rsplit('-').next().unwrap().into(),
            replicas,
            available,
            ready: available,
            observed: true,
            last_active: t(last_active),
        }
    }

    fn wanted(workload: &str, hash: &str, replicas: i32) -> WantedRevision {
        WantedRevision {
            workload: key(workload),
            hash: hash.into(),
            name: format!("{workload}-{hash}"),
            replicas,
        }
    }

    struct Case {
        wanted: Vec<WantedRevision>,
        live: Vec<LiveRevision>,
        active: BTreeMap<WorkloadKey, String>,
        promoted_at: Option<Timestamp>,
        now: Timestamp,
    }

    impl Case {
        fn state(&self) -> RolloutState<'_> {
            RolloutState {
                wanted: &self.wanted,
                live: &self.live,
                active: &self.active,
                started_at: t(0),
                promoted_at: self.promoted_at,
                now: self.now,
                ready_timeout: Duration::from_secs(600),
                drain: Duration::from_secs(30),
                keep: 2,
            }
        }

        fn decide(&self) -> Decision {
            decide(&self.state())
        }
    }

    fn image_bump() -> Case {
        Case {
            wanted: vec![wanted("web", "new", 2)],
            live: vec![
                live("web-old", "web", 2, 2, -100),
                live("web-new", "web", 2, 1, 0),
            ],
            active: [(key("web"), "old".to_string())].into(),
            promoted_at: None,
            now: t(10),
        }
    }

    #[test]
    fn waits_while_a_new_revision_is_not_ready() {
        let d = image_bump().decide();
        assert_eq!(
            d.step,
            Step::Wait {
                pending: vec![NotReady {
                    workload: "web".into(),
                    ready: 1,
                    wanted: 2
                }]
            }
        );
        assert!(d.scale_down.is_empty(), "the serving revision stays up");
        assert_eq!(d.requeue, Some(Duration::from_secs(590)));
    }

    #[test]
    fn promotes_only_when_every_new_revision_is_ready() {
        let mut case = image_bump();
        case.wanted.push(wanted("api", "b2", 1));
        case.live.push(live("api-b2", "api", 1, 0, 0));
        case.live[1].available = 2;
        assert!(
            matches!(case.decide().step, Step::Wait { .. }),
            "api is not ready"
        );
        case.live[2].available = 1;
        assert_eq!(case.decide().step, Step::Promote);
    }

    #[test]
    fn a_revision_not_yet_observed_is_not_ready() {
        let mut case = image_bump();
        case.live[1].available = 2;
        case.live[1].observed = false;
        assert!(matches!(case.decide().step, Step::Wait { .. }));
    }

    #[test]
    fn fails_after_the_ready_timeout_and_scales_only_new_revisions_down() {
        let mut case = image_bump();
        case.wanted.push(wanted("worker", "same", 1));
        case.live.push(live("worker-same", "worker", 1, 1, -100));
        case.active.insert(key("worker"), "same".into());
        case.now = t(600);
        let d = case.decide();
        assert!(
            matches!(d.step, Step::Fail { ref pending } if pending.len() == 1 && pending[0].workload == "web")
        );
        assert_eq!(
            d.scale_down,
            ["web-new"],
            "the unchanged worker keeps serving"
        );
    }

    #[test]
    fn drains_previous_revisions_only_after_drain_seconds() {
        let mut case = image_bump();
        case.live[1].available = 2;
        case.promoted_at = Some(t(20));
        case.now = t(30);
        let d = case.decide();
        assert_eq!(d.step, Step::Promoted);
        assert!(d.scale_down.is_empty());
        assert_eq!(d.requeue, Some(Duration::from_secs(20)));
        case.now = t(50);
        let d = case.decide();
        assert_eq!(d.scale_down, ["web-old"]);
        assert!(d.delete.is_empty());
    }

    #[test]
    fn keeps_the_most_recently_active_scaled_down_revisions() {
        let case = Case {
            wanted: vec![wanted("web", "e", 1)],
            live: vec![
                live("web-a", "web", 0, 0, -400),
                live("web-b", "web", 0, 0, -300),
                live("web-c", "web", 0, 0, -100),
                live("web-d", "web", 1, 1, -50),
                live("web-e", "web", 1, 1, 0),
            ],
            active: [(key("web"), "e".to_string())].into(),
            promoted_at: Some(t(0)),
            now: t(100),
        };
        let d = case.decide();
        assert_eq!(d.scale_down, ["web-d"]);
        // keep = 2: d (just drained) and c stay; b and a go.
        assert_eq!(d.delete, ["web-b", "web-a"]);
    }

    #[test]
    fn a_revision_drained_now_counts_as_the_most_recently_active() {
        // web-b was drained long ago but after web-c was created; web-c serves until now.
        let case = Case {
            wanted: vec![wanted("web", "d", 1)],
            live: vec![
                live("web-b", "web", 0, 0, -50),
                live("web-c", "web", 1, 1, -100),
                live("web-d", "web", 1, 1, 0),
            ],
            active: [(key("web"), "d".to_string())].into(),
            promoted_at: Some(t(0)),
            now: t(100),
        };
        let d = decide(&RolloutState {
            keep: 1,
            ..case.state()
        });
        assert_eq!(d.scale_down, ["web-c"]);
        assert_eq!(d.delete, ["web-b"]);
    }

    #[test]
    fn revisions_of_removed_workloads_go_after_the_drain() {
        let case = Case {
            wanted: vec![wanted("web", "n", 1)],
            live: vec![
                live("web-n", "web", 1, 1, 0),
                live("gone-x", "gone", 2, 2, -10),
            ],
            active: [(key("web"), "n".to_string())].into(),
            promoted_at: Some(t(0)),
            now: t(10),
        };
        assert!(case.decide().delete.is_empty(), "still draining");
        let later = Case { now: t(31), ..case };
        let d = later.decide();
        assert_eq!(d.delete, ["gone-x"]);
        assert!(d.scale_down.is_empty());
    }

    #[test]
    fn abandoned_attempts_are_scaled_down_at_once() {
        let mut case = image_bump();
        case.live.push(live("web-abandoned", "web", 2, 0, -5));
        let d = case.decide();
        assert_eq!(d.scale_down, ["web-abandoned"]);
    }

    #[test]
    fn a_revert_to_a_kept_revision_waits_for_it_to_scale_up() {
        let case = Case {
            wanted: vec![wanted("web", "old", 2)],
            live: vec![
                live("web-old", "web", 0, 0, -100),
                live("web-new", "web", 2, 2, 0),
            ],
            active: [(key("web"), "new".to_string())].into(),
            promoted_at: None,
            now: t(1),
        };
        let d = case.decide();
        assert!(matches!(d.step, Step::Wait { .. }));
        assert!(
            d.scale_down.is_empty(),
            "the serving revision stays until promotion"
        );
    }

    #[test]
    fn orphan_copies_are_those_nothing_reads() {
        let copies = vec!["cfg-1".to_string(), "cfg-2".to_string()];
        let read: BTreeSet<String> = ["cfg-2".to_string()].into();
        assert_eq!(orphan_copies(&copies, &read), ["cfg-1"]);
    }
}
