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
use crate::cluster::{self, ClusterError, Resolver};
use crate::rollout::{Action, ApplyReason, ObjectId, Plan};

/// How many writes are in flight at once: enough to hide latency, few enough to be polite.
const CONCURRENCY: usize = 16;

/// Environment variable naming a failpoint: `<action kind>:<n>` makes the
/// operator exit (code 86) right after the n-th action of that kind succeeded.
/// For tests that crash the operator between any two steps of a rollout.
pub const FAILPOINT_ENV: &str = "KUBEMINT_FAILPOINT";

/// What a pass did, for events and metrics.
#[derive(Debug, Default)]
pub struct Executed {
    /// Objects created or changed.
    pub applied: Vec<String>,
    /// ReplicaSets created or scaled up.
    pub minted: Vec<String>,
    /// Services switched, as `Service name -> revision`.
    pub switched: Vec<String>,
    /// Revisions scaled to zero after serving.
    pub drained: Vec<String>,
    /// Revisions of the failed release scaled to zero.
    pub failed: Vec<String>,
    /// Revisions, config copies and pruned objects deleted.
    pub deleted: Vec<String>,
    /// Hand edits put back: object and the manager that made them.
    pub corrected: Vec<(String, String)>,
}

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
    /// Carries out `plan`'s actions.
    pub async fn run(&self, plan: &Plan) -> Result<Executed, Error> {
        let mut resolved = Vec::with_capacity(plan.actions.len());
        for action in &plan.actions {
            resolved.push(Resolved {
                action,
                resource: self.resource(action).await?,
                skip: false,
            });
        }
        self.dry_run(&mut resolved).await?;
        let mut done = Executed::default();
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
        let (namespace, manifest, file, object) = target(r.action);
        let namespace = namespace.as_deref();
        let mut result = cluster::dry_run_object(self.client, ar, namespace, manifest).await;
        if let (Err(e), Action::Apply { foreign, id, .. }) = (&result, r.action) {
            // A foreign entry can make the merged object invalid: take it back and check again.
            if !cluster::is_transient(e) && !foreign.is_empty() {
                let taken = cluster::take_ownership(self.client, ar, namespace, &id.name, foreign)
                    .await
                    .map_err(|source| write_error("taking ownership of", &object, source))?;
                if taken {
                    tracing::info!(object = %object, managers = ?foreign, "took ownership back");
                    result = cluster::dry_run_object(self.client, ar, namespace, manifest).await;
                }
            }
        }
        let predicted = match result {
            Ok(predicted) => predicted,
            Err(e) if cluster::is_missing_namespace(&e) && self.namespace_declared(namespace) => {
                return Ok(false)
            }
            Err(e) if cluster::is_transient(&e) => {
                return Err(write_error("dry-running", &object, e))
            }
            Err(source) => {
                return Err(ClusterError::Rejected {
                    file: file.to_string(),
                    object,
                    source,
                }
                .into())
            }
        };
        let Action::Apply {
            id,
            reason: ApplyReason::Drift { .. },
            ..
        } = r.action
        else {
            return Ok(false);
        };
        let live = cluster::live_object(self.client, ar, namespace, &id.name)
            .await
            .map_err(|source| ClusterError::Observe {
                what: object.clone(),
                source,
            })?;
        let Some(live) = live else {
            return Ok(false);
        };
        let unchanged =
            cluster::without_server_fields(&live) == cluster::without_server_fields(&predicted);
        if unchanged {
            if let Some(rv) = live.metadata.resource_version.clone() {
                self.observer.verified(id.clone(), rv);
            }
        }
        Ok(unchanged)
    }

    fn namespace_declared(&self, namespace: Option<&str>) -> bool {
        namespace.is_some_and(|ns| self.declared_namespaces.iter().any(|d| d == ns))
    }

    async fn batch(&self, batch: &mut [Resolved<'_>], done: &mut Executed) -> Result<(), Error> {
        let writes = batch
            .iter()
            .filter(|r| !r.skip)
            .map(|r| self.one(r))
            .collect::<Vec<_>>();
        let notes: Vec<Note> = stream::iter(writes)
            .buffered(CONCURRENCY)
            .try_collect()
            .await?;
        for note in notes {
            note.record(done);
        }
        Ok(())
    }

    /// Carries out one action.
    async fn one(&self, r: &Resolved<'_>) -> Result<Note, Error> {
        let client = self.client;
        let note = match r.action {
            Action::Apply {
                id,
                manifest,
                reason,
                ..
            } => {
                let ar = self.resolved(r, id)?;
                cluster::apply_object(client, ar, id.namespace.as_deref(), manifest)
                    .await
                    .map_err(|source| write_error("applying", &id.to_string(), source))?;
                match reason {
                    ApplyReason::Drift { manager } => {
                        Note::Corrected(id.to_string(), manager.clone())
                    }
                    _ => Note::Applied(id.to_string()),
                }
            }
            Action::Switch {
                id, manifest, to, ..
            } => {
                let ar = self.resolved(r, id)?;
                cluster::apply_object(client, ar, id.namespace.as_deref(), manifest)
                    .await
                    .map_err(|source| write_error("switching", &id.to_string(), source))?;
                Note::Switched(format!("{} {} -> {to}", id.kind, id.name))
            }
            Action::ApplyRevision {
                namespace,
                name,
                manifest,
                ..
            } => {
                let ar = r
                    .resource
                    .as_ref()
                    .expect("ReplicaSets are always resolvable");
                let object = format!("apps/ReplicaSet/{namespace}/{name}");
                cluster::apply_object(client, ar, Some(namespace), manifest)
                    .await
                    .map_err(|source| write_error("applying", &object, source))?;
                Note::Minted(name.clone())
            }
            Action::MarkPromoted { namespace, name } => {
                cluster::mark_promoted(client, namespace, name, self.now).await?;
                Note::None
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
                    return Ok(Note::None);
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
                Note::Failed(name.clone())
            }
            Action::Drain {
                namespace,
                name,
                served,
            } => {
                if self.still_selected(namespace, name).await? {
                    return Ok(Note::None);
                }
                cluster::scale_to_zero(client, namespace, name, *served, self.now).await?;
                Note::Drained(name.clone())
            }
            Action::DeleteRevision { namespace, name } => {
                cluster::delete_revision(client, namespace, name).await?;
                Note::Deleted(format!("ReplicaSet {name}"))
            }
            Action::DeleteCopy {
                kind,
                namespace,
                name,
            } => {
                cluster::delete_config_copy(client, kind, namespace, name).await?;
                Note::Deleted(format!("{kind} {name}"))
            }
            Action::RunHook { id, manifest, .. } => {
                let ar = self.resolved(r, id)?;
                cluster::apply_object(client, ar, id.namespace.as_deref(), manifest)
                    .await
                    .map_err(|source| write_error("starting", &id.to_string(), source))?;
                Note::Applied(id.to_string())
            }
            Action::DeleteHook { namespace, name } => {
                cluster::delete_job(client, namespace, name).await?;
                Note::None
            }
            Action::Prune { entry } => {
                cluster::prune_one(client, self.resolver, entry, self.channel, false).await?;
                Note::Deleted(entry.to_string())
            }
        };
        failpoint(r.action.kind());
        Ok(note)
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

/// Namespace, manifest, file and name of an apply action.
fn target(action: &Action) -> (Option<String>, &serde_json::Value, &str, String) {
    match action {
        Action::Apply {
            id, manifest, file, ..
        }
        | Action::Switch {
            id, manifest, file, ..
        }
        | Action::RunHook {
            id, manifest, file, ..
        } => (id.namespace.clone(), manifest, file, id.to_string()),
        Action::ApplyRevision {
            namespace,
            name,
            manifest,
            file,
            ..
        } => (
            Some(namespace.clone()),
            manifest,
            file,
            format!("apps/ReplicaSet/{namespace}/{name}"),
        ),
        _ => unreachable!("only applies are dry-run"),
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

enum Note {
    None,
    Applied(String),
    Minted(String),
    Switched(String),
    Drained(String),
    Failed(String),
    Deleted(String),
    Corrected(String, String),
}

impl Note {
    fn record(self, done: &mut Executed) {
        match self {
            Note::None => {}
            Note::Applied(o) => done.applied.push(o),
            Note::Minted(o) => done.minted.push(o),
            Note::Switched(o) => done.switched.push(o),
            Note::Drained(o) => done.drained.push(o),
            Note::Failed(o) => done.failed.push(o),
            Note::Deleted(o) => done.deleted.push(o),
            Note::Corrected(o, m) => done.corrected.push((o, m)),
        }
    }
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
