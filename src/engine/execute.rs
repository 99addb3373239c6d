//! The executor of a plan: every server-side apply of the pass is dry-run
//! first (so a commit is rejected whole), then the actions are carried out in
//! order. It decides nothing; a failure stops the pass and the next pass plans
//! again from what the cluster shows.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use futures::{stream, StreamExt, TryStreamExt};
use k8s_openapi::jiff::Timestamp;
use kube::discovery::ApiResource;
use kube::Client;

use super::observe::Observer;
use super::Error;
use crate::api::InventoryEntry;
use crate::cluster::changes::{
    self, copy_entry, job_entry, revision_entry, Change, ChangeAction, ChangeReason, ChangeSet,
    Target,
};
use crate::cluster::{self, ClusterError, Resolver};
use crate::rollout::{Action, ApplyReason, ObjectId, Plan, PruneDecision, RevisionReason};

/// How many writes are in flight at once: enough to hide latency, few enough to be polite.
const CONCURRENCY: usize = 16;

/// Environment variable naming a failpoint: `<action kind>:<n>` makes the
/// operator exit (code 86) right after the n-th action of that kind succeeded.
/// For tests that crash the operator between any two steps of a rollout.
pub const FAILPOINT_ENV: &str = "KUBEMINT_FAILPOINT";

/// Where the executor writes, and what it needs to know of the release.
pub struct Executor<'a> {
    /// The API client.
    pub client: &'a Client,
    /// Kinds to API resources.
    pub resolver: &'a Resolver,
    /// The reflectors (told about checked hand edits).
    pub observer: &'a Observer,
    /// `<namespace>.<name>` of the channel.
    pub channel: &'a str,
    /// Namespaces the release itself creates.
    pub declared_namespaces: &'a [String],
    /// Now.
    pub now: Timestamp,
}

struct Resolved<'p> {
    action: &'p Action,
    resource: Option<ApiResource>,
    /// A drift that the dry run showed to be no change: skipped.
    skip: bool,
}

impl Executor<'_> {
    /// Carries out `plan`'s actions; returns what they changed.
    pub async fn run(&self, plan: &Plan) -> Result<ChangeSet, Error> {
        let mut resolved = Vec::with_capacity(plan.actions.len());
        for action in &plan.actions {
            resolved.push(Resolved {
                action,
                resource: self.resource(action).await?,
                skip: false,
            });
        }
        self.dry_run(&mut resolved).await?;
        let mut done = ChangeSet::default();
        let mut i = 0;
        while i < resolved.len() {
            // Consecutive actions of one kind (and apply stage) go together;
            // prunes one by one, in their order.
            let group = batch_group(resolved[i].action);
            let mut j = i + 1;
            if group.is_some() {
                while j < resolved.len() && batch_group(resolved[j].action) == group {
                    j += 1;
                }
            }
            let stage = apply_stage(resolved[i].action);
            self.resolve_missing(&mut resolved[i..j]).await?;
            self.batch(&mut resolved[i..j], &mut done).await?;
            if stage == Some(0) {
                self.wait_for_crds(&resolved[i..j]).await?;
            }
            i = j;
        }
        Ok(done)
    }

    async fn resource(&self, action: &Action) -> Result<Option<ApiResource>, Error> {
        let (group, version, kind) = match action {
            Action::Apply { entry, .. }
            | Action::Switch { entry, .. }
            | Action::RunHook { entry, .. } => (
                entry.group.as_str(),
                entry.version.as_str(),
                entry.kind.as_str(),
            ),
            Action::ApplyRevision { .. } => ("apps", "v1", "ReplicaSet"),
            _ => return Ok(None),
        };
        Ok(self
            .resolver
            .resolve(group, version, kind)
            .await?
            .map(|(ar, _)| ar))
    }

    /// Dry-runs every apply of the pass. A rejection fails the pass before anything is written.
    async fn dry_run(&self, resolved: &mut [Resolved<'_>]) -> Result<(), Error> {
        let checks = resolved
            .iter()
            .enumerate()
            .filter(|(_, r)| r.action.is_apply() && r.resource.is_some())
            .map(|(index, r)| async move { self.check(r).await.map(|skip| (index, skip)) })
            .collect::<Vec<_>>();
        let results: Vec<(usize, bool)> = stream::iter(checks)
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        for (index, skip) in results {
            resolved[index].skip = skip;
        }
        Ok(())
    }

    /// Dry-runs one apply; returns whether it can be skipped (a drift check that found no change).
    async fn check(&self, r: &Resolved<'_>) -> Result<bool, Error> {
        let ar = r.resource.as_ref().expect("filtered on resolved kinds");
        let (entry, manifest, file) = target(r.action);
        let target = Target {
            resource: ar,
            object: &entry,
            file,
            manifest,
            declared_namespaces: self.declared_namespaces,
        };
        let drift = matches!(
            r.action,
            Action::Apply {
                reason: ApplyReason::Drift { .. },
                ..
            }
        );
        let mut result = changes::dry_run_apply(self.client, target, drift).await;
        if let (Err(ClusterError::Rejected { .. }), Action::Apply { foreign, id, .. }) =
            (&result, r.action)
        {
            // A foreign entry can make the merged object invalid: take it back and check again.
            if !foreign.is_empty() {
                let namespace = id.namespace.as_deref();
                let taken = cluster::take_ownership(self.client, ar, namespace, &id.name, foreign)
                    .await
                    .map_err(|source| {
                        write_error("taking ownership of", &id.to_string(), source)
                    })?;
                if taken {
                    tracing::info!(object = %id, managers = ?foreign, "took ownership back");
                    result = changes::dry_run_apply(self.client, target, drift).await;
                }
            }
        }
        let run = result?;
        let unchanged = run.verdict == Some(ChangeAction::Unchanged);
        if let (true, Action::Apply { id, .. }) = (unchanged, r.action) {
            if let Some(rv) = run.live.and_then(|l| l.metadata.resource_version) {
                self.observer.verified(id.clone(), rv);
            }
        }
        Ok(unchanged)
    }

    async fn batch(&self, batch: &mut [Resolved<'_>], done: &mut ChangeSet) -> Result<(), Error> {
        for skipped in batch.iter().filter(|r| r.skip) {
            if let Action::Apply {
                entry,
                file,
                reason,
                ..
            } = skipped.action
            {
                done.push(
                    Change::new(
                        entry.clone(),
                        ChangeAction::Unchanged,
                        change_reason(reason),
                    )
                    .in_file(file),
                );
            }
        }
        let writes = batch
            .iter()
            .filter(|r| !r.skip)
            .map(|r| self.one(r))
            .collect::<Vec<_>>();
        let made: Vec<Option<Change>> = stream::iter(writes)
            .buffered(CONCURRENCY)
            .try_collect()
            .await?;
        done.entries.extend(made.into_iter().flatten());
        Ok(())
    }

    /// Carries out one action; returns its change (`None`: bookkeeping only).
    async fn one(&self, r: &Resolved<'_>) -> Result<Option<Change>, Error> {
        let client = self.client;
        let change = match r.action {
            Action::Apply {
                id,
                entry,
                file,
                manifest,
                reason,
                ..
            } => {
                let ar = self.resolved(r, id)?;
                cluster::apply_object(client, ar, id.namespace.as_deref(), manifest)
                    .await
                    .map_err(|source| write_error("applying", &id.to_string(), source))?;
                let action = match reason {
                    ApplyReason::Create => ChangeAction::Created,
                    ApplyReason::Update | ApplyReason::Drift { .. } => ChangeAction::Configured,
                };
                Some(Change::new(entry.clone(), action, change_reason(reason)).in_file(file))
            }
            Action::Switch {
                id,
                entry,
                file,
                manifest,
                to,
                ..
            } => {
                let ar = self.resolved(r, id)?;
                cluster::apply_object(client, ar, id.namespace.as_deref(), manifest)
                    .await
                    .map_err(|source| write_error("switching", &id.to_string(), source))?;
                let reason = ChangeReason::Switch { to: to.clone() };
                Some(Change::new(entry.clone(), ChangeAction::Configured, reason).in_file(file))
            }
            Action::ApplyRevision {
                namespace,
                name,
                file,
                manifest,
                reason,
                ..
            } => {
                let ar = r
                    .resource
                    .as_ref()
                    .expect("ReplicaSets are always resolvable");
                let entry = revision_entry(namespace, name);
                cluster::apply_object(client, ar, Some(namespace), manifest)
                    .await
                    .map_err(|source| write_error("applying", &entry.to_string(), source))?;
                let action = match reason {
                    RevisionReason::Create => ChangeAction::Created,
                    RevisionReason::Scale | RevisionReason::Repair => ChangeAction::Configured,
                };
                Some(Change::new(entry, action, ChangeReason::Revision).in_file(file))
            }
            Action::MarkPromoted { namespace, name } => {
                cluster::mark_promoted(client, namespace, name, self.now).await?;
                None
            }
            Action::MarkFailed {
                namespace,
                name,
                release,
                retry,
                ready,
                hook,
            } => {
                // A live Service still selecting it (a stale watch): not now.
                if self.still_selected(namespace, name).await? {
                    return Ok(None);
                }
                cluster::mark_failed(
                    client,
                    namespace,
                    name,
                    release,
                    retry,
                    ready,
                    hook.as_deref(),
                )
                .await?;
                Some(Change::new(
                    revision_entry(namespace, name),
                    ChangeAction::ScaledDown,
                    ChangeReason::FailedRelease,
                ))
            }
            Action::Drain {
                namespace,
                name,
                served,
            } => {
                if self.still_selected(namespace, name).await? {
                    return Ok(None);
                }
                cluster::scale_to_zero(client, namespace, name, *served, self.now).await?;
                Some(Change::new(
                    revision_entry(namespace, name),
                    ChangeAction::ScaledDown,
                    ChangeReason::Drain,
                ))
            }
            Action::DeleteRevision { namespace, name } => {
                cluster::delete_revision(client, namespace, name).await?;
                Some(Change::new(
                    revision_entry(namespace, name),
                    ChangeAction::Deleted,
                    ChangeReason::Retired,
                ))
            }
            Action::DeleteCopy {
                kind,
                namespace,
                name,
            } => {
                cluster::delete_config_copy(client, kind, namespace, name).await?;
                Some(Change::new(
                    copy_entry(kind, namespace, name),
                    ChangeAction::Deleted,
                    ChangeReason::UnusedCopy,
                ))
            }
            Action::RunHook {
                id,
                entry,
                file,
                manifest,
            } => {
                let ar = self.resolved(r, id)?;
                cluster::apply_object(client, ar, id.namespace.as_deref(), manifest)
                    .await
                    .map_err(|source| write_error("starting", &id.to_string(), source))?;
                Some(
                    Change::new(entry.clone(), ChangeAction::Created, ChangeReason::Test)
                        .in_file(file),
                )
            }
            Action::DeleteHook { namespace, name } => {
                cluster::delete_job(client, namespace, name).await?;
                Some(Change::new(
                    job_entry(namespace, name),
                    ChangeAction::Deleted,
                    ChangeReason::FinishedTest,
                ))
            }
            Action::Prune { entry } => {
                match cluster::prune_one(client, self.resolver, entry, self.channel, false).await? {
                    PruneDecision::Delete => Some(Change::new(
                        entry.clone(),
                        ChangeAction::Deleted,
                        ChangeReason::Pruned,
                    )),
                    // Protected, or another owner's now: left in place, not counted.
                    kept => {
                        tracing::info!(object = %entry, decision = ?kept, "not pruned");
                        None
                    }
                }
            }
        };
        failpoint(r.action.kind());
        Ok(change)
    }

    /// Whether a live Service of the channel still selects revision
    /// `namespace/name` (a watch lagging behind): then it is not scaled down.
    async fn still_selected(&self, namespace: &str, name: &str) -> Result<bool, Error> {
        let candidates = self.observer.services_of(self.channel, namespace);
        Ok(cluster::services::is_selected(self.client, namespace, name, &candidates).await?)
    }

    fn resolved<'r>(&self, r: &'r Resolved<'_>, id: &ObjectId) -> Result<&'r ApiResource, Error> {
        r.resource.as_ref().ok_or_else(|| {
            ClusterError::NotEstablished {
                object: format!("kind of {id}"),
                seconds: 60,
            }
            .into()
        })
    }

    /// Waits until the CRDs this batch applied are established.
    async fn wait_for_crds(&self, stage0: &[Resolved<'_>]) -> Result<(), Error> {
        for r in stage0 {
            if let Action::Apply { id, .. } = r.action {
                if id.kind == "CustomResourceDefinition" && !r.skip {
                    cluster::wait_for_crd(self.client, &id.name).await?;
                }
            }
        }
        Ok(())
    }

    /// Kinds defined by CRDs of the release are served once those are established.
    async fn resolve_missing(&self, batch: &mut [Resolved<'_>]) -> Result<(), Error> {
        if !batch
            .iter()
            .any(|r| r.action.is_apply() && r.resource.is_none())
        {
            return Ok(());
        }
        self.resolver.forget_unknown();
        for r in batch.iter_mut().filter(|r| r.resource.is_none()) {
            r.resource = self.resource(r.action).await?;
        }
        Ok(())
    }
}

/// Which actions may run side by side: the same kind (applies: of the same
/// stage). Prunes keep their reverse apply order.
fn batch_group(action: &Action) -> Option<(&'static str, u8)> {
    match action {
        Action::Prune { .. } => None,
        other => Some((other.kind(), apply_stage(other).unwrap_or(1))),
    }
}

/// The stage of an apply of a declared object (CRDs and Namespaces: 0), `None` for other actions.
fn apply_stage(action: &Action) -> Option<u8> {
    match action {
        Action::Apply { id, .. } => Some(crate::rollout::stage_of(&id.group, &id.kind)),
        _ => None,
    }
}

/// The entry, manifest and file of an apply action.
fn target(action: &Action) -> (InventoryEntry, &serde_json::Value, &str) {
    match action {
        Action::Apply {
            entry,
            manifest,
            file,
            ..
        }
        | Action::Switch {
            entry,
            manifest,
            file,
            ..
        }
        | Action::RunHook {
            entry,
            manifest,
            file,
            ..
        } => (entry.clone(), manifest, file),
        Action::ApplyRevision {
            namespace,
            name,
            manifest,
            file,
            ..
        } => (revision_entry(namespace, name), manifest, file),
        _ => unreachable!("only applies are dry-run"),
    }
}

/// Why an apply of a declared object is made, as the change set says it.
fn change_reason(reason: &ApplyReason) -> ChangeReason {
    match reason {
        ApplyReason::Drift { manager } => ChangeReason::Drift {
            manager: manager.clone(),
        },
        ApplyReason::Create | ApplyReason::Update => ChangeReason::Declared,
    }
}

fn write_error(action: &'static str, object: &str, source: kube::Error) -> Error {
    ClusterError::Write {
        action,
        object: object.to_string(),
        source,
    }
    .into()
}

/// Exits the process if the failpoint names this action kind and its count is reached.
pub fn failpoint(kind: &str) {
    static POINT: OnceLock<Option<(String, usize)>> = OnceLock::new();
    static COUNTS: Mutex<Option<HashMap<String, usize>>> = Mutex::new(None);
    let point = POINT.get_or_init(|| {
        let text = std::env::var(FAILPOINT_ENV).ok()?;
        let (kind, n) = text.split_once(':')?;
        Some((kind.to_string(), n.parse().ok()?))
    });
    let Some((at, n)) = point else {
        return;
    };
    if at != kind {
        return;
    }
    let mut counts = COUNTS.lock().unwrap_or_else(|p| p.into_inner());
    let count = counts
        .get_or_insert_with(HashMap::new)
        .entry(kind.to_string())
        .or_default();
    *count += 1;
    if *count == *n {
        eprintln!("failpoint {kind}:{n} reached; exiting");
        tracing::warn!("failpoint {kind}:{n} reached; exiting");
        std::process::exit(86);
    }
}
