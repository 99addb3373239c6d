//! The plan of one pass: from the desired release, what the cluster shows, the
//! time and the channel's settings, the ordered actions that move the cluster
//! toward the release, and where the release stands. Pure: the controller
//! observes, calls [`plan`], and carries the actions out; `kubemint diff`
//! prints the same plan.
//!
//! The live cluster is the truth. What serves a workload is what its Services
//! select; what a ReplicaSet's annotations say is that revision's history. A
//! crash after any prefix of the actions leaves a state from which the next
//! plan finishes the job, and no action leaves a Service that served ready
//! pods selecting none: Services switch only to ready revisions, and a
//! revision is drained only once nothing selects it.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

use super::desired::{annotated, manifest_hash, DesiredObject, DesiredRelease, DesiredRevision};
use super::mint::{WorkloadKey, REVISION_LABEL};
use super::observed::{LiveRevision, ObjectId, Observed};
use super::prune_set;
use crate::api::InventoryEntry;

/// Annotation on a ReplicaSet: when it was last created or scaled up.
pub const PROGRESSING_ANNOTATION: &str = "kubemint.io/progressing-since";
/// Annotation on a ReplicaSet: when Services last switched to it.
pub const PROMOTED_ANNOTATION: &str = "kubemint.io/promoted-at";
/// Annotation on a ReplicaSet: when it was last scaled to zero after serving.
pub const DRAINED_ANNOTATION: &str = "kubemint.io/drained-at";
/// Annotation on a ReplicaSet: the release whose readiness gate it failed.
pub const FAILED_ANNOTATION: &str = "kubemint.io/failed-release";
/// Annotation on a ReplicaSet: the `kubemint.io/retry` value when it failed.
pub const FAILED_RETRY_ANNOTATION: &str = "kubemint.io/failed-retry";
/// Annotation on a ReplicaSet: `ready/wanted` pods when it failed.
pub const FAILED_READY_ANNOTATION: &str = "kubemint.io/failed-ready";
/// Annotation on a ReplicaSet: the pre-promotion test Job that failed.
pub const FAILED_HOOK_ANNOTATION: &str = "kubemint.io/failed-hook";
/// Annotation on a test Job: the `kubemint.io/retry` value it was started under.
pub const HOOK_RETRY_ANNOTATION: &str = "kubemint.io/retry";

/// The channel's rollout settings, as the plan needs them.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `spec.rollout.readyTimeout`.
    pub ready_timeout: Duration,
    /// `spec.rollout.testTimeout`.
    pub test_timeout: Duration,
    /// `spec.rollout.drainSeconds`.
    pub drain: Duration,
    /// `spec.rollout.keepReleases`.
    pub keep: usize,
    /// `spec.prune`.
    pub prune: bool,
    /// The channel's `kubemint.io/retry` annotation (empty when unset).
    pub retry: String,
}

/// Why an object is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyReason {
    /// It does not exist.
    Create,
    /// Its manifest changed.
    Update,
    /// Someone else wrote to it since kubemint did: check, and put it back.
    Drift {
        /// The field manager that wrote.
        manager: String,
    },
}

/// Why a revision's ReplicaSet is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevisionReason {
    /// It does not exist yet.
    Create,
    /// It exists at another size (scaled down before, or by hand).
    Scale,
    /// Someone else wrote to it.
    Repair,
}

/// One step of a pass.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Server-side apply of a declared object or config copy.
    Apply {
        /// The object.
        id: ObjectId,
        /// Its inventory entry (with the version to apply).
        entry: InventoryEntry,
        /// The file it comes from.
        file: String,
        /// The manifest to send, annotations included.
        manifest: Value,
        /// Why.
        reason: ApplyReason,
        /// Other field managers of the object: taken over if their fields make
        /// the merged object invalid.
        foreign: Vec<String>,
    },
    /// Server-side apply of a revision's ReplicaSet at its wanted size.
    ApplyRevision {
        /// Namespace.
        namespace: String,
        /// ReplicaSet name.
        name: String,
        /// The file of its Deployment.
        file: String,
        /// The manifest to send.
        manifest: Value,
        /// Why.
        reason: RevisionReason,
        /// Replicas it is applied with.
        replicas: i32,
    },
    /// Promotion: a Service's selector switches to a ready revision.
    Switch {
        /// The Service.
        id: ObjectId,
        /// Its inventory entry.
        entry: InventoryEntry,
        /// The file it comes from.
        file: String,
        /// The manifest to send.
        manifest: Value,
        /// The revision it selects now.
        from: Option<String>,
        /// The revision it selects after.
        to: String,
    },
    /// Records on a revision that Services switched to it.
    MarkPromoted {
        /// Namespace.
        namespace: String,
        /// ReplicaSet name.
        name: String,
    },
    /// A revision failed the readiness gate: scaled to zero, the failure recorded on it.
    MarkFailed {
        /// Namespace.
        namespace: String,
        /// ReplicaSet name.
        name: String,
        /// The release that failed.
        release: String,
        /// The retry annotation value it failed under.
        retry: String,
        /// `ready/wanted` pods.
        ready: String,
        /// The test Job that failed, when it was the test.
        hook: Option<String>,
    },
    /// A revision that nothing selects is scaled to zero.
    Drain {
        /// Namespace.
        namespace: String,
        /// ReplicaSet name.
        name: String,
        /// Whether it served (a drain after promotion) or never did (an abandoned attempt).
        served: bool,
    },
    /// A revision past `keepReleases`, or of a workload the release no longer has.
    DeleteRevision {
        /// Namespace.
        namespace: String,
        /// ReplicaSet name.
        name: String,
    },
    /// A config copy that nothing reads any more.
    DeleteCopy {
        /// `ConfigMap` or `Secret`.
        kind: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// Starts a pre-promotion test Job.
    RunHook {
        /// The Job.
        id: ObjectId,
        /// Its entry (for the API resource).
        entry: InventoryEntry,
        /// The file it comes from.
        file: String,
        /// The manifest to send.
        manifest: Value,
    },
    /// Deletes a test Job: of an earlier release, or a failed one to run again on retry.
    DeleteHook {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// An object the release no longer declares.
    Prune {
        /// The object, as the inventory recorded it.
        entry: InventoryEntry,
    },
}

impl Action {
    /// The action's kind, as failpoints and metrics name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Apply { .. } => "apply",
            Action::ApplyRevision { .. } => "create-revision",
            Action::Switch { .. } => "switch",
            Action::MarkPromoted { .. } => "mark-promoted",
            Action::MarkFailed { .. } => "fail",
            Action::Drain { .. } => "drain",
            Action::DeleteRevision { .. } => "delete-revision",
            Action::DeleteCopy { .. } => "delete-copy",
            Action::RunHook { .. } => "run-hook",
            Action::DeleteHook { .. } => "delete-hook",
            Action::Prune { .. } => "prune",
        }
    }

    /// Whether it is a server-side apply (and so dry-run first).
    pub fn is_apply(&self) -> bool {
        matches!(
            self,
            Action::Apply { .. }
                | Action::ApplyRevision { .. }
                | Action::Switch { .. }
                | Action::RunHook { .. }
        )
    }
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

/// Where the release stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// New revisions are not all ready yet.
    Progressing {
        /// The workloads waited for.
        pending: Vec<NotReady>,
    },
    /// Every new revision is ready; the pre-promotion test Job runs.
    Testing {
        /// The Job.
        job: String,
    },
    /// The readiness gate failed; traffic stayed where it was.
    Failed {
        /// The workloads that were not ready (`ready/wanted` as recorded).
        pending: Vec<(String, String)>,
        /// Whether it failed in this pass (not held from before).
        now: bool,
        /// The pre-promotion test Job, when the test failed rather than readiness.
        hook: Option<String>,
    },
    /// Promoted: the previous revisions are still draining.
    Draining,
    /// Promoted and cleaned up.
    Active,
}

/// The plan of one pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// What to do, in order.
    pub actions: Vec<Action>,
    /// Where the release stands once the actions are done.
    pub phase: Phase,
    /// The channel's inventory once the actions are done.
    pub inventory: Vec<InventoryEntry>,
    /// Look again after this long at the latest (a drain or a deadline is due).
    pub requeue: Option<Duration>,
    /// A failed release is tried again on request (`kubemint.io/retry`) in this pass.
    pub retrying: bool,
    /// When the release was promoted, as its revisions record it (this pass's
    /// time if it is promoted now); `None` until it is.
    pub promoted_at: Option<Timestamp>,
}

/// Plans one pass. See the module docs.
pub fn plan(
    desired: &DesiredRelease,
    observed: &Observed,
    previous_inventory: &[InventoryEntry],
    now: Timestamp,
    settings: &Settings,
) -> Plan {
    let mut state = Pass::new(desired, observed, now, settings);
    state.run(previous_inventory)
}

/// Where the pre-promotion test stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Test {
    /// Passed, or there is none.
    Passed,
    /// Running (or being started) as this Job.
    Running(String),
    /// This Job failed or timed out.
    Failed(String),
}

impl Test {
    /// Both: a failure wins over running, running over passed.
    fn and(self, other: Test) -> Test {
        match (self, other) {
            (Test::Failed(j), _) | (_, Test::Failed(j)) => Test::Failed(j),
            (Test::Running(j), _) | (_, Test::Running(j)) => Test::Running(j),
            _ => Test::Passed,
        }
    }
}

struct Pass<'a> {
    desired: &'a DesiredRelease,
    observed: &'a Observed,
    now: Timestamp,
    settings: &'a Settings,
    actions: Vec<Action>,
    requeue: Option<Duration>,
    promoted_at: Option<Timestamp>,
    /// Indexes, so a pass over thousands of objects stays linear.
    by_name: HashMap<(String, String), &'a LiveRevision>,
    by_workload: HashMap<(String, String), Vec<&'a LiveRevision>>,
    pinned: HashMap<&'a WorkloadKey, Vec<&'a DesiredObject>>,
    serving_cache: RefCell<HashMap<WorkloadKey, Option<&'a LiveRevision>>>,
}

impl<'a> Pass<'a> {
    fn new(
        desired: &'a DesiredRelease,
        observed: &'a Observed,
        now: Timestamp,
        settings: &'a Settings,
    ) -> Self {
        let mut by_name = HashMap::new();
        let mut by_workload: HashMap<(String, String), Vec<&LiveRevision>> = HashMap::new();
        for r in &observed.revisions {
            by_name.insert((r.namespace.clone(), r.name.clone()), r);
            by_workload
                .entry((r.namespace.clone(), r.workload.clone()))
                .or_default()
                .push(r);
        }
        let mut pinned: HashMap<&WorkloadKey, Vec<&DesiredObject>> = HashMap::new();
        for o in desired.objects.iter().filter(|o| !o.preview) {
            if let Some(w) = &o.pinned_to {
                pinned.entry(w).or_default().push(o);
            }
        }
        Pass {
            desired,
            observed,
            now,
            settings,
            actions: Vec::new(),
            requeue: None,
            promoted_at: None,
            by_name,
            by_workload,
            pinned,
            serving_cache: RefCell::default(),
        }
    }

    /// The live ReplicaSet `namespace/name`.
    fn rs(&self, namespace: &str, name: &str) -> Option<&'a LiveRevision> {
        self.by_name
            .get(&(namespace.to_string(), name.to_string()))
            .copied()
    }

    /// The live ReplicaSets of a workload.
    fn revisions_of(&self, workload: &WorkloadKey) -> &[&'a LiveRevision] {
        let namespace = workload.0.as_deref().unwrap_or_default();
        self.by_workload
            .get(&(namespace.to_string(), workload.1.clone()))
            .map_or(&[], Vec::as_slice)
    }

    fn run(&mut self, previous_inventory: &[InventoryEntry]) -> Plan {
        let held = self.held();
        let retried = !held && self.failed_before();
        let ready = self.not_ready();
        let promoted = self.promoted();
        // The release-wide test runs once every new revision is ready, before the switch.
        let test = if ready.is_empty() && !held && !promoted {
            self.test()
        } else {
            Test::Passed
        };
        let promotable = ready.is_empty() && !held && test == Test::Passed;

        // Declared objects and config copies first, Services at their current pins.
        let mut switches = Vec::new();
        for stage in [0, 1] {
            for object in self.desired.objects.iter().filter(|o| o.stage == stage) {
                self.object(object, promotable, &mut switches);
            }
        }
        if !held {
            for revision in &self.desired.revisions {
                self.revision(revision);
            }
        }

        let mut phase = if held {
            let (pending, hook) = self.failed_marks();
            Phase::Failed {
                pending,
                now: false,
                hook,
            }
        } else if !ready.is_empty() {
            match self.deadline_passed(&ready) {
                true => {
                    self.fail(&ready, None);
                    Phase::Failed {
                        pending: ready
                            .iter()
                            .map(|p| (p.workload.clone(), format!("{}/{}", p.ready, p.wanted)))
                            .collect(),
                        now: true,
                        hook: None,
                    }
                }
                false => Phase::Progressing { pending: ready },
            }
        } else {
            match test {
                Test::Passed => Phase::Active,
                Test::Running(job) => Phase::Testing { job },
                Test::Failed(job) => {
                    self.fail(&[], Some(&job));
                    Phase::Failed {
                        pending: Vec::new(),
                        now: true,
                        hook: Some(job),
                    }
                }
            }
        };

        if promotable {
            self.actions.extend(switches);
            for w in &self.desired.revisions {
                let live = self.rs(&w.namespace, &w.name);
                // A revision without pods serves nothing: there is no promotion to record.
                if self.wanted_replicas(w) > 0 && !live.is_some_and(LiveRevision::is_promoted) {
                    self.actions.push(Action::MarkPromoted {
                        namespace: w.namespace.clone(),
                        name: w.name.clone(),
                    });
                }
            }
        }

        let inventory = if promotable {
            if self.settings.prune {
                for entry in prune_set(previous_inventory, &self.desired.inventory()) {
                    self.actions.push(Action::Prune { entry });
                }
            }
            let draining = self.clean_up(promoted);
            if draining && phase == Phase::Active {
                phase = Phase::Draining;
            }
            self.desired.inventory()
        } else {
            // Until promotion both releases' objects are managed.
            self.abandon();
            let mut union = previous_inventory.to_vec();
            union.extend(self.desired.inventory());
            union.sort();
            union.dedup();
            union
        };
        Plan {
            actions: std::mem::take(&mut self.actions),
            phase,
            inventory,
            requeue: self.requeue,
            retrying: retried,
            promoted_at: self.promoted_at,
        }
    }

    /// The revision each workload's live Services select, or else its latest
    /// promoted revision still running (workloads without Services).
    fn serving(&self, workload: &WorkloadKey) -> Option<&'a LiveRevision> {
        if let Some(hit) = self.serving_cache.borrow().get(workload) {
            return *hit;
        }
        let found = self.find_serving(workload);
        self.serving_cache
            .borrow_mut()
            .insert(workload.clone(), found);
        found
    }

    fn find_serving(&self, workload: &WorkloadKey) -> Option<&'a LiveRevision> {
        let revisions = self.revisions_of(workload);
        let of_workload = |hash: &str| revisions.iter().copied().find(|r| r.hash == hash);
        let selected: Vec<&LiveRevision> = self
            .pinned
            .get(workload)
            .into_iter()
            .flatten()
            .filter_map(|o| self.live_pin(&o.id))
            .filter_map(|hash| of_workload(&hash))
            .collect();
        let best = |candidates: Vec<&'a LiveRevision>| {
            candidates.into_iter().max_by_key(|r| {
                (
                    r.ready > 0,
                    r.promoted_at.unwrap_or(Timestamp::UNIX_EPOCH),
                    r.ready,
                )
            })
        };
        // A Service pointed (by hand, or by a crash mid-switch) at a revision
        // without ready pods does not make that revision the serving one.
        let ready_selected: Vec<&LiveRevision> =
            selected.iter().copied().filter(|r| r.ready > 0).collect();
        if !ready_selected.is_empty() {
            return best(ready_selected);
        }
        let running = revisions
            .iter()
            .copied()
            .filter(|r| r.replicas > 0 && r.is_promoted())
            .collect();
        best(running).or_else(|| best(selected))
    }

    /// The revision a live Service selects, if it is pinned.
    fn live_pin(&self, id: &ObjectId) -> Option<String> {
        let service = self.live_service(id)?;
        service.selector.get(REVISION_LABEL).cloned()
    }

    fn live_service(&self, id: &ObjectId) -> Option<&'a super::observed::LiveService> {
        self.observed
            .services
            .get(&(id.namespace.clone().unwrap_or_default(), id.name.clone()))
    }

    /// Whether the release is held after a failure (and no retry was asked for).
    fn held(&self) -> bool {
        self.desired.revisions.iter().any(|w| {
            self.observed
                .revision(&w.namespace, &w.name)
                .and_then(|l| l.failed.as_ref())
                .is_some_and(|f| f.release == self.desired.id && f.retry == self.settings.retry)
        })
    }

    /// Whether a revision of this release failed before and is still scaled down.
    fn failed_before(&self) -> bool {
        self.desired.revisions.iter().any(|w| {
            self.observed
                .revision(&w.namespace, &w.name)
                .is_some_and(|l| {
                    l.replicas == 0
                        && l.failed
                            .as_ref()
                            .is_some_and(|f| f.release == self.desired.id)
                })
        })
    }

    fn failed_marks(&self) -> (Vec<(String, String)>, Option<String>) {
        let mut hook = None;
        let marks = self
            .desired
            .revisions
            .iter()
            .filter_map(|w| {
                let live = self.rs(&w.namespace, &w.name)?;
                let mark = live.failed.as_ref()?;
                if mark.release != self.desired.id {
                    return None;
                }
                hook = hook.take().or_else(|| mark.hook.clone());
                Some((w.workload.1.clone(), mark.ready.clone()))
            })
            .collect();
        (marks, hook)
    }

    /// Where the release's test Jobs stand, starting or restarting them as needed.
    fn test(&mut self) -> Test {
        let mut outcome = Test::Passed;
        for hook in &self.desired.hooks {
            let namespace = hook.id.namespace.clone().unwrap_or_default();
            let live = self
                .observed
                .hooks
                .get(&(namespace.clone(), hook.id.name.clone()));
            let job = hook.id.name.clone();
            match live {
                None => {
                    let mut manifest = annotated(
                        &hook.manifest,
                        &self.desired.commit,
                        &self.desired.id,
                        &manifest_hash(&hook.manifest),
                    );
                    manifest["metadata"]["annotations"][HOOK_RETRY_ANNOTATION] =
                        json!(self.settings.retry);
                    self.actions.push(Action::RunHook {
                        id: hook.id.clone(),
                        entry: hook.entry(),
                        file: hook.file.clone(),
                        manifest,
                    });
                    outcome = outcome.and(Test::Running(job));
                }
                // A retry runs the test again: the old Job goes first.
                Some(l) if l.retry != self.settings.retry => {
                    self.actions.push(Action::DeleteHook {
                        namespace,
                        name: job.clone(),
                    });
                    outcome = outcome.and(Test::Running(job));
                }
                Some(l) if l.succeeded => {}
                Some(l) if l.failed => outcome = outcome.and(Test::Failed(job)),
                Some(l) => {
                    let deadline = add(l.created, self.settings.test_timeout);
                    if self.now >= deadline {
                        outcome = outcome.and(Test::Failed(job));
                    } else {
                        self.due(deadline);
                        outcome = outcome.and(Test::Running(job));
                    }
                }
            }
        }
        outcome
    }

    /// The wanted revisions that are not ready at their wanted size.
    fn not_ready(&self) -> Vec<NotReady> {
        self.desired
            .revisions
            .iter()
            .filter_map(|w| {
                let live = self.rs(&w.namespace, &w.name);
                let wanted = self.wanted_replicas(w);
                // A revision of no pods has nothing to wait for: its controller's
                // status (late for hundreds of new ReplicaSets) cannot change that.
                let ready = live.is_some_and(|l| {
                    l.replicas == wanted && (wanted == 0 || (l.observed && l.available >= wanted))
                });
                (!ready).then(|| NotReady {
                    workload: w.workload.1.clone(),
                    ready: live.map_or(0, |l| if l.replicas == wanted { l.ready } else { 0 }),
                    wanted,
                })
            })
            .collect()
    }

    /// The size a wanted revision runs at: the Deployment's `replicas`, or for an
    /// autoscaled workload the serving revision's live size (clamped to the
    /// autoscaler's bounds), so a release does not drop capacity. The serving
    /// revision of an autoscaled workload keeps whatever size its autoscaler set.
    fn wanted_replicas(&self, w: &DesiredRevision) -> i32 {
        let Some((min, max)) = w.autoscale else {
            return w.replicas;
        };
        let live = self.rs(&w.namespace, &w.name);
        match self.serving(&w.workload) {
            Some(s) if s.name == w.name && s.replicas > 0 => s.replicas,
            Some(s) if s.replicas > 0 => s.replicas.clamp(min, max.max(min)),
            _ => live
                .filter(|l| l.replicas > 0 && l.failed.is_none())
                .map_or(w.replicas, |l| l.replicas)
                .clamp(min, max.max(min)),
        }
    }

    /// Whether every wanted revision serves already (promoted before this pass).
    fn promoted(&self) -> bool {
        self.desired.revisions.iter().all(|w| {
            let live = self.rs(&w.namespace, &w.name);
            if self.wanted_replicas(w) == 0 {
                return live.is_some_and(|l| l.replicas == 0);
            }
            self.serving(&w.workload).is_some_and(|s| s.name == w.name)
                && live.is_some_and(LiveRevision::is_promoted)
        })
    }

    /// Plans the apply of one declared object or copy, if it differs from the
    /// cluster. A Service's pin switching revision is a [`Action::Switch`],
    /// collected in `switches` for the promotion.
    fn object(&mut self, object: &DesiredObject, promotable: bool, switches: &mut Vec<Action>) {
        let mut manifest = object.manifest.clone();
        let mut switch = None;
        if let (true, Some(workload)) = (object.preview, &object.pinned_to) {
            // A preview selects the newest revision as soon as it exists, the
            // serving one otherwise; it never takes part in the promotion.
            let newest = self
                .desired
                .revisions
                .iter()
                .find(|r| &r.workload == workload)
                .filter(|r| self.rs(&r.namespace, &r.name).is_some())
                .map(|r| r.hash.clone());
            let pin = newest
                .or_else(|| self.serving(workload).map(|r| r.hash.clone()))
                .or_else(|| wanted_pin(self.desired, object));
            if let Some(pin) = pin {
                manifest["spec"]["selector"][REVISION_LABEL] = json!(pin);
            }
        } else if let Some(workload) = &object.pinned_to {
            let wanted = self
                .desired
                .revisions
                .iter()
                .find(|r| &r.workload == workload)
                .map(|r| r.hash.clone());
            let live_pin = self.live_pin(&object.id);
            let pin = match (promotable, self.serving(workload)) {
                (true, _) => wanted.clone(),
                (false, Some(serving)) => Some(serving.hash.clone()),
                // No serving revision: a live Service keeps what it selects (pods
                // kubemint did not mint, being adopted) until promotion.
                (false, None) => match self.live_service(&object.id) {
                    Some(live) if live_pin.is_none() && !live.selector.is_empty() => {
                        manifest["spec"]["selector"] = json!(live.selector);
                        None
                    }
                    _ => wanted.clone(),
                },
            };
            if let Some(pin) = &pin {
                manifest["spec"]["selector"][REVISION_LABEL] = json!(pin);
                let exists = self.live_service(&object.id).is_some();
                if exists && live_pin.as_deref() != Some(pin.as_str()) {
                    if !promotable && !self.has_ready_pods(workload, pin) {
                        return; // never point a live Service at pods that are not ready
                    }
                    switch = Some((live_pin, pin.clone()));
                }
            }
        }
        if let Some(workload) = &object.scales {
            // The autoscaler follows the Services: the serving revision until promotion.
            let wanted = self
                .desired
                .revisions
                .iter()
                .find(|r| &r.workload == workload);
            let serving = self.serving(workload).map(|r| r.name.clone());
            let target = match (promotable, &serving) {
                (false, Some(serving)) => Some(serving.clone()),
                _ => wanted.map(|r| r.name.clone()),
            };
            if promotable && serving.is_some() && serving != target {
                if let Some(to) = &target {
                    switch = Some((serving.clone(), to.clone()));
                }
            }
            if let Some(target) = target {
                manifest["spec"]["scaleTargetRef"] =
                    json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": target});
            }
        }
        let hash = manifest_hash(&manifest);
        let live = self.observed.objects.get(&object.id);
        let reason = match live {
            None => ApplyReason::Create,
            Some(l) if l.applied_hash.as_deref() != Some(hash.as_str()) => ApplyReason::Update,
            Some(l) => match l.edits.iter().rev().find(|(_, p)| touches(&manifest, p)) {
                Some((manager, _)) => ApplyReason::Drift {
                    manager: manager.clone(),
                },
                _ if switch.is_none() => return,
                _ => ApplyReason::Update,
            },
        };
        let manifest = annotated(&manifest, &self.desired.commit, &self.desired.id, &hash);
        let promoting = promotable
            && (object.scales.is_some()
                || wanted_pin(self.desired, object).as_ref() == switch.as_ref().map(|s| &s.1));
        match switch {
            // A correction back to the serving revision is not a promotion: it goes now.
            Some((from, to)) if !promoting => self.actions.push(Action::Switch {
                id: object.id.clone(),
                entry: object.entry(),
                file: object.file.clone(),
                manifest,
                from,
                to,
            }),
            Some((from, to)) => switches.push(Action::Switch {
                id: object.id.clone(),
                entry: object.entry(),
                file: object.file.clone(),
                manifest,
                from,
                to,
            }),
            None => self.actions.push(Action::Apply {
                id: object.id.clone(),
                entry: object.entry(),
                file: object.file.clone(),
                manifest,
                reason,
                foreign: live.map(|l| l.foreign_managers.clone()).unwrap_or_default(),
            }),
        }
    }

    /// Plans the ReplicaSet of one wanted revision: created, scaled to its size, or repaired.
    fn revision(&mut self, wanted: &DesiredRevision) {
        let live = self.rs(&wanted.namespace, &wanted.name);
        let replicas = self.wanted_replicas(wanted);
        let autoscaled_serving = wanted.autoscale.is_some()
            && self
                .serving(&wanted.workload)
                .is_some_and(|s| s.name == wanted.name);
        let reason = match live {
            None => RevisionReason::Create,
            // Its autoscaler owns the size of a serving revision: no fight over it.
            Some(_) if autoscaled_serving => return,
            Some(l) if l.replicas != replicas => RevisionReason::Scale,
            Some(l) if l.meta.edited_by.is_some() => RevisionReason::Repair,
            Some(l) if l.meta.applied_hash.as_deref() != Some(&revision_hash(wanted)) => {
                RevisionReason::Repair
            }
            Some(_) => return,
        };
        let scaling_up = live.is_none_or(|l| l.replicas < replicas);
        let since = match live.and_then(|l| l.progressing_since) {
            Some(t) if !scaling_up => t,
            _ => self.now,
        };
        let hash = revision_hash(wanted);
        let mut manifest = wanted.manifest.clone();
        manifest["spec"]["replicas"] = json!(replicas);
        let commit = live
            .and_then(|l| l.commit.clone())
            .unwrap_or_else(|| self.desired.commit.clone());
        let release = live
            .and_then(|l| l.release.clone())
            .unwrap_or_else(|| self.desired.id.clone());
        let mut manifest = annotated(&manifest, &commit, &release, &hash);
        manifest["metadata"]["annotations"][PROGRESSING_ANNOTATION] = json!(since.to_string());
        self.actions.push(Action::ApplyRevision {
            namespace: wanted.namespace.clone(),
            name: wanted.name.clone(),
            file: wanted.file.clone(),
            manifest,
            reason,
            replicas,
        });
    }

    /// Whether a pending revision waited past `readyTimeout`; if not, when to look again.
    fn deadline_passed(&mut self, pending: &[NotReady]) -> bool {
        let mut passed = false;
        for w in &self.desired.revisions {
            if !pending.iter().any(|p| p.workload == w.workload.1) {
                continue;
            }
            let wanted = self.wanted_replicas(w);
            let Some(live) = self
                .observed
                .revision(&w.namespace, &w.name)
                .filter(|l| l.replicas == wanted)
            else {
                continue; // created or scaled up in this pass: its wait starts now
            };
            let since = live.progressing_since.unwrap_or(live.created);
            let deadline = add(since, self.settings.ready_timeout);
            if self.now >= deadline {
                passed = true;
            } else {
                self.due(deadline);
            }
        }
        passed
    }

    /// The readiness gate failed: the new revisions that do not serve go to zero.
    fn fail(&mut self, pending: &[NotReady], hook: Option<&str>) {
        // Nothing about a failing release is applied now but the failure itself.
        self.actions
            .retain(|a| !matches!(a, Action::ApplyRevision { .. }));
        for w in &self.desired.revisions {
            if self.serving(&w.workload).is_some_and(|s| s.name == w.name) {
                continue;
            }
            let Some(live) = self.rs(&w.namespace, &w.name) else {
                continue;
            };
            let ready = pending
                .iter()
                .find(|p| p.workload == w.workload.1)
                .map_or(format!("{}/{}", live.ready, self.wanted_replicas(w)), |p| {
                    format!("{}/{}", p.ready, p.wanted)
                });
            self.actions.push(Action::MarkFailed {
                namespace: w.namespace.clone(),
                name: w.name.clone(),
                release: self.desired.id.clone(),
                retry: self.settings.retry.clone(),
                ready,
                hook: hook.map(str::to_string),
            });
        }
    }

    /// Before promotion: revisions that neither serve nor are wanted (an
    /// abandoned attempt) go to zero at once.
    fn abandon(&mut self) {
        let selected = self.selected_revisions();
        let serving: BTreeSet<&str> = self
            .desired
            .revisions
            .iter()
            .filter_map(|w| self.serving(&w.workload))
            .map(|r| r.name.as_str())
            .collect();
        for r in &self.observed.revisions {
            let wanted = self.is_wanted(r);
            let busy = selected.contains(&(r.namespace.as_str(), r.hash.as_str()))
                || serving.contains(r.name.as_str())
                || (r.is_promoted() && !self.workload_wanted(r));
            if r.replicas > 0 && !wanted && !busy {
                self.actions.push(Action::Drain {
                    namespace: r.namespace.clone(),
                    name: r.name.clone(),
                    served: false,
                });
            }
        }
    }

    /// After promotion: drain the previous revisions after `drainSeconds`, then
    /// keep the last `keepReleases` per workload and delete the rest, and the
    /// config copies nothing reads. Returns whether a drain is still to come.
    fn clean_up(&mut self, promoted_before: bool) -> bool {
        let promoted_at = if promoted_before {
            self.desired
                .revisions
                .iter()
                .filter_map(|w| self.rs(&w.namespace, &w.name))
                .filter_map(|r| r.promoted_at)
                .max()
                .unwrap_or(self.now)
        } else {
            self.now
        };
        self.promoted_at = Some(promoted_at);
        let drain_due = add(promoted_at, self.settings.drain);
        let draining = self.now < drain_due;
        // Services that stay (declared) select the wanted revisions after this pass;
        // live Services of the channel that are not declared are pruned above.
        let mut pending_drain = false;
        let mut deleted: BTreeSet<(String, String)> = BTreeSet::new();
        let mut by_workload: BTreeMap<WorkloadKey, Vec<&LiveRevision>> = BTreeMap::new();
        for r in &self.observed.revisions {
            if self.is_wanted(r) {
                continue;
            }
            if !self.workload_wanted(r) {
                // Its workload is gone: the revision goes after the drain.
                if draining {
                    pending_drain = true;
                } else {
                    deleted.insert((r.namespace.clone(), r.name.clone()));
                }
                continue;
            }
            by_workload.entry(r.workload_key()).or_default().push(r);
        }
        for (_, mut previous) in by_workload {
            if draining && previous.iter().any(|r| r.replicas > 0) {
                pending_drain = true;
                continue;
            }
            for r in previous.iter().filter(|r| r.replicas > 0) {
                self.actions.push(Action::Drain {
                    namespace: r.namespace.clone(),
                    name: r.name.clone(),
                    served: r.is_promoted(),
                });
            }
            // Drained now counts as the most recently active.
            previous.sort_by(|a, b| {
                b.last_active(self.now)
                    .cmp(&a.last_active(self.now))
                    .then_with(|| a.name.cmp(&b.name))
            });
            for r in previous.iter().skip(self.settings.keep) {
                deleted.insert((r.namespace.clone(), r.name.clone()));
            }
        }
        // Drains of revisions about to be deleted are pointless.
        self.actions.retain(|a| match a {
            Action::Drain {
                namespace, name, ..
            } => !deleted.contains(&(namespace.clone(), name.clone())),
            _ => true,
        });
        for (namespace, name) in &deleted {
            self.actions.push(Action::DeleteRevision {
                namespace: namespace.clone(),
                name: name.clone(),
            });
        }
        if pending_drain {
            self.due(drain_due);
        }
        // Config copies that no remaining revision reads and the release does not declare.
        let declared: BTreeSet<(Option<&str>, &str)> = self
            .desired
            .objects
            .iter()
            .filter(|o| o.copy)
            .map(|o| (o.id.namespace.as_deref(), o.id.name.as_str()))
            .collect();
        let read: BTreeSet<(&str, &str)> = self
            .observed
            .revisions
            .iter()
            .filter(|r| !deleted.contains(&(r.namespace.clone(), r.name.clone())))
            .flat_map(|r| r.reads.iter().map(|n| (r.namespace.as_str(), n.as_str())))
            .collect();
        for copy in &self.observed.copies {
            let key = (copy.namespace.as_str(), copy.name.as_str());
            if !read.contains(&key) && !declared.contains(&(Some(key.0), key.1)) {
                self.actions.push(Action::DeleteCopy {
                    kind: copy.kind.clone(),
                    namespace: copy.namespace.clone(),
                    name: copy.name.clone(),
                });
            }
        }
        // Test Jobs of earlier releases.
        for (namespace, name) in self.observed.hooks.keys() {
            let current = self.desired.hooks.iter().any(|h| {
                h.id.name == *name && h.id.namespace.as_deref() == Some(namespace.as_str())
            });
            if !current {
                self.actions.push(Action::DeleteHook {
                    namespace: namespace.clone(),
                    name: name.clone(),
                });
            }
        }
        pending_drain
    }

    fn has_ready_pods(&self, workload: &WorkloadKey, hash: &str) -> bool {
        let namespace = workload.0.as_deref().unwrap_or_default();
        self.observed.revisions.iter().any(|r| {
            r.namespace == namespace && r.workload == workload.1 && r.hash == hash && r.ready > 0
        })
    }

    /// `(namespace, hash)` of every revision a live Service of the channel selects.
    fn selected_revisions(&self) -> BTreeSet<(&'a str, &'a str)> {
        self.observed
            .services
            .iter()
            .filter_map(|((ns, _), s)| {
                Some((ns.as_str(), s.selector.get(REVISION_LABEL)?.as_str()))
            })
            .collect()
    }

    fn is_wanted(&self, r: &LiveRevision) -> bool {
        self.desired
            .revisions
            .iter()
            .any(|w| w.namespace == r.namespace && w.name == r.name)
    }

    fn workload_wanted(&self, r: &LiveRevision) -> bool {
        let key = r.workload_key();
        self.desired.revisions.iter().any(|w| w.workload == key)
    }

    fn due(&mut self, at: Timestamp) {
        let after = until(self.now, at);
        self.requeue = Some(self.requeue.map_or(after, |r| r.min(after)));
    }
}

/// Whether an edit of `paths` touches what `manifest` declares (no paths: assume it does).
fn touches(manifest: &Value, paths: &[String]) -> bool {
    paths.is_empty() || paths.iter().any(|p| manifest.pointer(p).is_some())
}

/// The hash of the revision the release wants for a pinned Service's workload.
fn wanted_pin(desired: &DesiredRelease, object: &DesiredObject) -> Option<String> {
    let workload = object.pinned_to.as_ref()?;
    desired
        .revisions
        .iter()
        .find(|r| &r.workload == workload)
        .map(|r| r.hash.clone())
}

/// The applied hash of a wanted revision's ReplicaSet. Its size is left out:
/// the plan compares sizes itself (and an autoscaler changes them).
fn revision_hash(wanted: &DesiredRevision) -> String {
    manifest_hash(&wanted.manifest)
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(d).unwrap_or(t)
}

fn until(now: Timestamp, then: Timestamp) -> Duration {
    Duration::try_from(then.duration_since(now)).unwrap_or(Duration::ZERO)
}
