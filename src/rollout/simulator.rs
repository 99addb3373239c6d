//! A small model of the cluster for [`plan`]: it carries actions out the way
//! the API server and the ReplicaSet controller would, and lets pods become
//! ready between passes. The plan's table tests run rollouts on it, and
//! `kubemint diff` uses it to predict a release as it will stand once promoted.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::{
    plan, Action, DesiredRelease, FailedMark, LiveCopy, LiveHook, LiveObject, LiveRevision,
    LiveService, Observed, Phase, Plan, Settings, APPLIED_HASH_ANNOTATION, COMMIT_ANNOTATION,
    HOOK_RETRY_ANNOTATION, PROGRESSING_ANNOTATION, RELEASE_ANNOTATION, REVISION_LABEL,
};
use crate::api::InventoryEntry;

/// The most passes [`Simulator::converge`] makes.
pub const MAX_PASSES: usize = 12;

/// The cluster as the plan sees it, changed by actions the way the API server
/// and the ReplicaSet controller would.
#[derive(Clone, Debug)]
pub struct Simulator {
    /// What the plan sees.
    pub observed: Observed,
    /// The channel's inventory, as the last pass reported it.
    pub inventory: Vec<InventoryEntry>,
    /// The simulated time.
    pub now: Timestamp,
    /// Revisions whose pods never become ready.
    pub broken: BTreeSet<String>,
    /// Services that have selected ready pods at some point.
    pub served: BTreeSet<(String, String)>,
    /// Panic when a Service that served ready pods selects none (for tests);
    /// otherwise such moments are only counted in `violations`.
    pub strict: bool,
    /// Moments a Service that served ready pods selected none.
    pub violations: Vec<String>,
}

impl Simulator {
    /// A cluster showing `observed`, with the channel's `inventory`, at `now`.
    pub fn new(observed: Observed, inventory: Vec<InventoryEntry>, now: Timestamp) -> Self {
        Simulator {
            observed,
            inventory,
            now,
            broken: BTreeSet::new(),
            served: BTreeSet::new(),
            strict: false,
            violations: Vec::new(),
        }
    }

    /// The plan of a pass against the simulated cluster.
    pub fn plan(&self, desired: &DesiredRelease, settings: &Settings) -> Plan {
        plan(desired, &self.observed, &self.inventory, self.now, settings)
    }

    fn annotation(manifest: &Value, key: &str) -> Option<String> {
        manifest["metadata"]["annotations"][key]
            .as_str()
            .map(str::to_string)
    }

    /// Carries out one action the way the API server and the ReplicaSet
    /// controller would (new pods start unready).
    pub fn act(&mut self, action: &Action, desired: &DesiredRelease) {
        let now = self.now;
        match action {
            Action::Apply { id, manifest, .. } | Action::Switch { id, manifest, .. } => {
                self.observed.objects.insert(
                    id.clone(),
                    LiveObject {
                        applied_hash: Simulator::annotation(manifest, APPLIED_HASH_ANNOTATION),
                        foreign_managers: Vec::new(),
                        edited_by: None,
                        edits: Vec::new(),
                    },
                );
                let namespace = id.namespace.clone().unwrap_or_default();
                if id.kind == "Service" && id.group.is_empty() {
                    let selector = manifest["spec"]["selector"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect();
                    self.observed.services.insert(
                        (namespace.clone(), id.name.clone()),
                        LiveService { selector },
                    );
                }
                if manifest["immutable"] == true {
                    self.observed.copies.push(LiveCopy {
                        kind: id.kind.clone(),
                        namespace,
                        name: id.name.clone(),
                    });
                }
            }
            Action::ApplyRevision {
                namespace,
                name,
                manifest,
                replicas,
                ..
            } => {
                let existing = self.observed.revision(namespace, name).cloned();
                let wanted = desired.revisions.iter().find(|r| &r.name == name);
                let (workload, hash) = match (wanted, &existing) {
                    (Some(w), _) => (w.workload.1.clone(), w.hash.clone()),
                    (None, Some(e)) => (e.workload.clone(), e.hash.clone()),
                    (None, None) => return, // the plan applies only revisions it knows
                };
                let since = Simulator::annotation(manifest, PROGRESSING_ANNOTATION)
                    .map(|s| s.parse().unwrap());
                let reads = manifest["spec"]["template"]["spec"]
                    .as_object()
                    .map(crate::render::referenced_configs)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(_, name)| name)
                    .collect();
                let mut r = existing.unwrap_or(LiveRevision {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    workload,
                    hash,
                    replicas: 0,
                    available: 0,
                    ready: 0,
                    observed: true,
                    created: now,
                    progressing_since: None,
                    promoted_at: None,
                    drained_at: None,
                    failed: None,
                    release: Simulator::annotation(manifest, RELEASE_ANNOTATION),
                    commit: Simulator::annotation(manifest, COMMIT_ANNOTATION),
                    reads,
                    meta: LiveObject {
                        applied_hash: None,
                        foreign_managers: Vec::new(),
                        edited_by: None,
                        edits: Vec::new(),
                    },
                });
                if *replicas > r.replicas {
                    // New pods start unready.
                    r.ready = r.ready.min(r.replicas);
                    r.available = r.available.min(r.replicas);
                }
                r.replicas = *replicas;
                r.progressing_since = since;
                r.meta.applied_hash = Simulator::annotation(manifest, APPLIED_HASH_ANNOTATION);
                self.observed
                    .revisions
                    .retain(|x| !(x.namespace == *namespace && x.name == *name));
                self.observed.revisions.push(r);
            }
            Action::MarkPromoted { namespace, name } => {
                if let Some(r) = self.revision_mut(namespace, name) {
                    r.promoted_at = Some(now);
                }
            }
            Action::MarkFailed {
                namespace,
                name,
                release,
                retry,
                ready,
                hook,
            } => {
                let Some(r) = self.revision_mut(namespace, name) else {
                    return;
                };
                scale_to_zero(r);
                r.failed = Some(FailedMark {
                    release: release.clone(),
                    retry: retry.clone(),
                    ready: ready.clone(),
                    hook: hook.clone(),
                });
            }
            Action::Drain {
                namespace,
                name,
                served,
            } => {
                let Some(r) = self.revision_mut(namespace, name) else {
                    return;
                };
                scale_to_zero(r);
                if *served {
                    r.drained_at = Some(now);
                }
            }
            Action::DeleteRevision { namespace, name } => self
                .observed
                .revisions
                .retain(|x| !(x.namespace == *namespace && x.name == *name)),
            Action::DeleteCopy {
                namespace, name, ..
            } => self
                .observed
                .copies
                .retain(|c| !(c.namespace == *namespace && c.name == *name)),
            Action::RunHook { id, manifest, .. } => {
                self.observed.hooks.insert(
                    (id.namespace.clone().unwrap_or_default(), id.name.clone()),
                    LiveHook {
                        succeeded: false,
                        failed: false,
                        created: now,
                        retry: Simulator::annotation(manifest, HOOK_RETRY_ANNOTATION)
                            .unwrap_or_default(),
                    },
                );
            }
            Action::DeleteHook { namespace, name } => {
                self.observed
                    .hooks
                    .remove(&(namespace.clone(), name.clone()));
            }
            Action::Prune { entry } => {
                self.observed.objects.remove(&entry.id());
                if entry.kind == "Service" && entry.group.is_empty() {
                    let namespace = entry.namespace.clone().unwrap_or_default();
                    self.observed
                        .services
                        .remove(&(namespace, entry.name.clone()));
                }
            }
        }
        self.check();
    }

    /// Revision `namespace/name`, to change by hand (as an autoscaler would).
    pub fn revision_mut(&mut self, namespace: &str, name: &str) -> Option<&mut LiveRevision> {
        self.observed
            .revisions
            .iter_mut()
            .find(|r| r.namespace == namespace && r.name == name)
    }

    /// Pods of every running revision become ready, and every test Job that
    /// runs succeeds (but the broken ones).
    pub fn settle(&mut self) {
        for r in &mut self.observed.revisions {
            if !self.broken.contains(&r.name) {
                r.ready = r.replicas;
                r.available = r.replicas;
            }
        }
        for ((_, name), hook) in &mut self.observed.hooks {
            if !self.broken.contains(name) && !hook.failed {
                hook.succeeded = true;
            }
        }
        self.check();
    }

    /// The invariant: a pinned Service that served ready pods always does.
    fn check(&mut self) {
        for ((ns, name), service) in &self.observed.services {
            let Some(hash) = service.selector.get(REVISION_LABEL) else {
                continue;
            };
            let ready = self
                .observed
                .revisions
                .iter()
                .any(|r| &r.namespace == ns && &r.hash == hash && r.ready > 0);
            let key = (ns.clone(), name.clone());
            if ready {
                self.served.insert(key);
            } else if self.served.contains(&key) {
                let violation =
                    format!("Service {ns}/{name} selects revision {hash} with no ready pod");
                assert!(!self.strict, "{violation}");
                self.violations.push(violation);
            }
        }
    }

    /// Carries out a whole plan and records the inventory it reports.
    pub fn run(&mut self, desired: &DesiredRelease, settings: &Settings) -> Plan {
        let plan = self.plan(desired, settings);
        for action in &plan.actions {
            self.act(action, desired);
        }
        self.inventory = plan.inventory.clone();
        plan
    }

    /// Passes (pods settling and time moving between them) until the release
    /// is active or has failed, at most `MAX_PASSES`; returns every pass's plan.
    pub fn converge(&mut self, desired: &DesiredRelease, settings: &Settings) -> Vec<Plan> {
        let mut plans = Vec::new();
        for _ in 0..MAX_PASSES {
            let plan = self.run(desired, settings);
            let settled = plan.actions.is_empty()
                && matches!(plan.phase, Phase::Active | Phase::Failed { .. });
            let requeue = plan.requeue;
            plans.push(plan);
            if settled {
                break;
            }
            self.settle();
            self.advance(requeue);
        }
        plans
    }

    /// Moves the clock to the next pass: the plan's `requeue`, at least a second.
    pub fn advance(&mut self, requeue: Option<Duration>) {
        let step = requeue
            .unwrap_or(Duration::from_secs(1))
            .max(Duration::from_secs(1));
        self.now = self.now.checked_add(step).unwrap_or(self.now);
    }

    /// Whether the last of `plans` left the release active with nothing to do.
    pub fn converged(plans: &[Plan]) -> bool {
        plans.last().is_some_and(|p| {
            p.actions.is_empty() && matches!(p.phase, Phase::Active | Phase::Failed { .. })
        })
    }

    /// The revision Service `namespace/name` selects, if any.
    pub fn serving_in(&self, namespace: &str, service: &str) -> Option<String> {
        self.observed
            .services
            .get(&(namespace.to_string(), service.to_string()))?
            .selector
            .get(REVISION_LABEL)
            .cloned()
    }

    /// The replicas of revision `name`, if it exists.
    pub fn replicas(&self, name: &str) -> Option<i32> {
        self.observed
            .revisions
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.replicas)
    }
}

/// A revision scaled to zero: its pods are gone at once.
fn scale_to_zero(r: &mut LiveRevision) {
    r.replicas = 0;
    r.ready = 0;
    r.available = 0;
}
