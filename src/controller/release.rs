//! Carrying out the rollout of one release: mint, apply, wait, promote, drain,
//! prune. Decisions come from `rollout::decide`; this module observes the
//! cluster, acts, and records the outcome in the channel's status and events.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;
use kube::ResourceExt;

use super::crd::{
    Channel, CommitInfo, Inventory, ReleasePhase, ReleaseRecord, WorkloadRevision, RETRY_ANNOTATION,
};
use super::reconcile::{parse_duration, write_status, Context};
use super::status::{
    active_revisions, mark_promoted, push_release, remove_condition, set_condition,
    ConditionStatus, READY, RECONCILING, STALLED,
};
use super::Error;
use crate::cluster::{self, ApplyRequest};
use crate::controller::crd::RECONCILE_ANNOTATION;
use crate::render::{Object, Release};
use crate::rollout::{
    decide, mint, orphan_copies, prune_set, Minted, RolloutState, Stamp, Step, WantedRevision,
    WorkloadKey,
};
use crate::source::short_sha;

/// Where a release stands after one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Work is pending (readiness, drain): look again after this long, or on a ReplicaSet change.
    Pending(Duration),
    /// Promoted and cleaned up.
    Done,
    /// The release failed; it is not retried until a new commit or a retry request.
    Failed,
}

/// Applies `objects` stamped for this release.
async fn apply(
    ctx: &Context,
    objects: &[Object],
    target: &str,
    stamp: &Stamp<'_>,
) -> Result<cluster::AppliedRelease, Error> {
    let request = ApplyRequest {
        objects,
        target_namespace: target,
        stamp: stamp.clone(),
    };
    Ok(cluster::apply_release(ctx.client(), &request).await?)
}

/// Mints `release` with its Services pinned to the serving revisions. A Service
/// of a workload with no serving revision keeps the selector it has in the
/// cluster until promotion: it may be serving pods kubemint did not mint (a
/// workload being adopted, renamed, or opted in to minting).
async fn mint_serving(
    ctx: &Context,
    release: &Release,
    active: &BTreeMap<WorkloadKey, String>,
    resolve: &(dyn Fn(&WorkloadKey) -> WorkloadKey + Sync),
    target: &str,
) -> Result<Minted, Error> {
    let mut minted = mint(release, &|k| active.get(&resolve(k)).cloned());
    for index in minted.unpinned_services(&|k| active.contains_key(&resolve(k))) {
        let service = &minted.objects[index];
        let namespace = service.namespace.as_deref().unwrap_or(target);
        if let Some(live) = cluster::live_selector(ctx.client(), namespace, &service.name).await? {
            minted.hold(index, live);
        }
    }
    Ok(minted)
}

/// One pass of the rollout of `release` (rendered from `commit`).
///
/// `drift_due`: whether the cluster should be compared with the commit now
/// (every `spec.driftInterval`); a held failed release is re-applied only then.
pub async fn deliver(
    ctx: &Context,
    channel: &Channel,
    release: &Release,
    commit: &CommitInfo,
    drift_due: bool,
) -> Result<Outcome, Error> {
    let client = ctx.client();
    let label = channel.label_value();
    let target = channel.target_namespace();
    let resolve = |k: &WorkloadKey| -> WorkloadKey {
        (
            Some(k.0.clone().unwrap_or_else(|| target.clone())),
            k.1.clone(),
        )
    };
    let settings = &channel.spec.rollout;
    let ready_timeout = parse_duration("spec.rollout.readyTimeout", &settings.ready_timeout)?;
    let now = Timestamp::now();
    let mut status = channel.status.clone().unwrap_or_default();
    let retry = channel.annotations().get(RETRY_ANNOTATION).cloned();
    let generation = channel.metadata.generation;
    status.observed_generation = generation;
    status.last_attempted_commit = Some(commit.clone());
    status.last_handled_reconcile_at = channel.annotations().get(RECONCILE_ANNOTATION).cloned();

    let stamp = Stamp {
        channel: &label,
        commit: &commit.sha,
        release: &release.id,
    };
    let first_pins = mint(release, &|_| None);
    let revisions: Vec<WorkloadRevision> = first_pins
        .revisions
        .iter()
        .map(|r| {
            let (namespace, workload) = resolve(&r.key());
            WorkloadRevision {
                namespace,
                workload,
                revision: r.hash.clone(),
            }
        })
        .collect();

    // The record of this commit's release: found, retried, held, or new.
    let index = status
        .releases
        .iter()
        .position(|r| r.id == release.id && r.commit.sha == commit.sha);
    let index = match index {
        Some(i) if status.releases[i].phase == ReleasePhase::Failed => {
            if retry.is_none() || retry == status.last_handled_retry {
                // Held (the status already says why): no new pods, but the rest of
                // the commit stays as declared, so hand edits (a Service pointed at
                // the failed pods, say) are put back.
                if drift_due {
                    let active = active_revisions(&status.releases);
                    let minted = mint_serving(ctx, release, &active, &resolve, &target).await?;
                    apply(ctx, &minted.objects, &target, &stamp).await?;
                }
                return Ok(Outcome::Failed);
            }
            status.last_handled_retry = retry.clone();
            let record = &mut status.releases[i];
            record.phase = ReleasePhase::Progressing;
            record.applied_at = Some(now.to_string());
            record.message = None;
            ctx.publish(
                channel,
                EventType::Normal,
                "Retrying",
                format!("Retrying release {} on request", release.id),
            )
            .await;
            i
        }
        Some(i) => i,
        None => {
            let names: Vec<String> = first_pins.revisions.iter().map(|r| r.summary()).collect();
            push_release(
                &mut status.releases,
                ReleaseRecord {
                    id: release.id.clone(),
                    commit: commit.clone(),
                    applied_at: Some(now.to_string()),
                    promoted_at: None,
                    phase: ReleasePhase::Progressing,
                    message: None,
                    revisions: revisions.clone(),
                },
            );
            if !names.is_empty() {
                let note = format!(
                    "Minted {} for release {} from commit {}: {}",
                    names.join(", "),
                    release.id,
                    short_sha(&commit.sha),
                    commit.subject
                );
                ctx.publish(channel, EventType::Normal, "Minted", note)
                    .await;
            }
            0
        }
    };

    // Apply everything, Services still pinned to the serving revisions.
    let active = active_revisions(&status.releases);
    let minted = mint_serving(ctx, release, &active, &resolve, &target).await?;
    let applied = apply(ctx, &minted.to_apply(), &target, &stamp).await?;
    let inventory: Vec<_> = applied
        .inventory
        .into_iter()
        .filter(|e| !minted.made(&e.kind, &e.name))
        .collect();

    // Observe and decide.
    let observed = cluster::list_revisions(client, &label).await?;
    let live: Vec<_> = observed.iter().map(|o| o.revision.clone()).collect();
    let wanted: Vec<WantedRevision> = minted
        .revisions
        .iter()
        .map(|r| WantedRevision {
            workload: resolve(&r.key()),
            hash: r.hash.clone(),
            name: r.replica_set.name.clone(),
            replicas: r.replicas,
        })
        .collect();
    let record = &status.releases[index];
    let started_at = parse_time(record.applied_at.as_deref()).unwrap_or(now);
    let mut promoted_at = parse_time(record.promoted_at.as_deref());
    let wanted_active: BTreeMap<WorkloadKey, String> = wanted
        .iter()
        .map(|w| (w.workload.clone(), w.hash.clone()))
        .collect();
    let mut state = RolloutState {
        wanted: &wanted,
        live: &live,
        active: &active,
        started_at,
        promoted_at,
        now,
        ready_timeout,
        drain: Duration::from_secs(settings.drain_seconds.into()),
        keep: settings.keep_releases as usize,
    };
    let mut decision = decide(&state);

    if let Step::Fail { pending } = &decision.step {
        let detail: Vec<String> = pending
            .iter()
            .map(|p| format!("{} has {}/{} pods ready", p.workload, p.ready, p.wanted))
            .collect();
        let message = format!(
            "release {} failed: not ready within {}: {}; traffic stays on the previous release",
            release.id,
            settings.ready_timeout,
            detail.join(", ")
        );
        scale_down(ctx, &observed, &decision.scale_down, now).await?;
        let record = &mut status.releases[index];
        record.phase = ReleasePhase::Failed;
        record.message = Some(message.clone());
        status.last_handled_retry = retry;
        set_condition(
            &mut status.conditions,
            READY,
            false,
            "ReleaseFailed",
            &message,
            generation,
        );
        set_condition(
            &mut status.conditions,
            STALLED,
            true,
            "ReleaseFailed",
            &message,
            generation,
        );
        set_condition(
            &mut status.conditions,
            RECONCILING,
            false,
            "ReleaseFailed",
            "waiting for a new commit or the kubemint.io/retry annotation",
            generation,
        );
        write_status(ctx, channel, &status).await?;
        ctx.publish(channel, EventType::Warning, "ReleaseFailed", message)
            .await;
        return Ok(Outcome::Failed);
    }

    if decision.step == Step::Promote {
        // All new revisions are ready: switch every Service of the release at once.
        let services: Vec<Object> = first_pins
            .pinned_services
            .iter()
            .map(|(i, _)| first_pins.objects[*i].clone())
            .collect();
        if !services.is_empty() {
            cluster::apply_release(
                client,
                &ApplyRequest {
                    objects: &services,
                    target_namespace: &target,
                    stamp: stamp.clone(),
                },
            )
            .await?;
        }
        promoted_at = Some(now);
        mark_promoted(&mut status.releases, index, &now.to_string());
        // Recorded before anything else happens: should a later step of this pass
        // fail, the next pass must keep the Services on the new revisions rather
        // than point them back at the ones about to be drained.
        status.last_applied_commit = Some(commit.clone());
        status.active_release = Some(release.id.clone());
        write_status(ctx, channel, &status).await?;
        let names: Vec<&str> = wanted.iter().map(|w| w.name.as_str()).collect();
        // Without minted workloads there is nothing to switch: the commit is simply applied.
        let (reason, note) = if names.is_empty() {
            (
                "Applied",
                format!(
                    "Applied release {} from commit {}: {}",
                    release.id,
                    short_sha(&commit.sha),
                    commit.subject
                ),
            )
        } else {
            (
                "Promoted",
                format!(
                    "Promoted release {} from commit {}: Services now select {}",
                    release.id,
                    short_sha(&commit.sha),
                    names.join(", ")
                ),
            )
        };
        ctx.publish(channel, EventType::Normal, reason, note).await;
        state.promoted_at = promoted_at;
        state.active = &wanted_active;
        decision = decide(&state);
    }

    scale_down(ctx, &observed, &decision.scale_down, now).await?;
    if !decision.scale_down.is_empty() {
        ctx.publish(
            channel,
            EventType::Normal,
            "Drained",
            format!("Scaled {} to zero", decision.scale_down.join(", ")),
        )
        .await;
    }
    let mut deleted: Vec<String> = Vec::new();
    for name in &decision.delete {
        if let Some(o) = observed.iter().find(|o| &o.revision.name == name) {
            cluster::delete_revision(client, &o.namespace, name).await?;
            deleted.push(format!("ReplicaSet {name}"));
        }
    }
    if promoted_at.is_some() {
        let still_read: BTreeSet<String> = observed
            .iter()
            .filter(|o| !decision.delete.contains(&o.revision.name))
            .flat_map(|o| o.reads.iter().cloned())
            .chain(minted.config_copies.iter().map(|(_, _, name)| name.clone()))
            .collect();
        let copies = cluster::list_config_copies(client, &label).await?;
        let names: Vec<String> = copies.iter().map(|(_, _, n)| n.clone()).collect();
        for orphan in orphan_copies(&names, &still_read) {
            if let Some((kind, ns, name)) = copies.iter().find(|(_, _, n)| *n == orphan) {
                cluster::delete_config_copy(client, kind, ns, name).await?;
                deleted.push(format!("{kind} {name}"));
            }
        }
    }

    // Objects the commit no longer declares go once the release serves traffic.
    let previous = status.inventory_entries();
    if promoted_at.is_some() {
        if channel.spec.prune {
            let gone = prune_set(&previous, &inventory);
            if !gone.is_empty() {
                let outcome = cluster::prune(client, &gone, &label, false).await?;
                ctx.metrics()
                    .pruned_objects
                    .inc_by(outcome.deleted.len() as u64);
                deleted.extend(outcome.deleted.iter().map(|e| e.to_string()));
            }
        }
        status.inventory = Some(Inventory { entries: inventory });
    } else {
        // Until promotion both releases' objects are managed: record the union.
        let mut union = previous;
        union.extend(inventory);
        union.sort();
        union.dedup();
        status.inventory = Some(Inventory { entries: union });
    }
    if !deleted.is_empty() {
        ctx.publish(
            channel,
            EventType::Normal,
            "Pruned",
            format!("Deleted {}", deleted.join(", ")),
        )
        .await;
    }

    let outcome = match (&decision.step, decision.requeue) {
        (Step::Wait { pending }, requeue) => {
            let waiting: Vec<String> = pending
                .iter()
                .map(|p| format!("{} {}/{}", p.workload, p.ready, p.wanted))
                .collect();
            let message = format!(
                "Release {} progressing: waiting for ready pods: {}",
                release.id,
                waiting.join(", ")
            );
            set_condition(
                &mut status.conditions,
                READY,
                ConditionStatus::Unknown,
                "Progressing",
                &message,
                generation,
            );
            set_condition(
                &mut status.conditions,
                RECONCILING,
                true,
                "Progressing",
                &message,
                generation,
            );
            Outcome::Pending(requeue.unwrap_or(Duration::from_secs(30)))
        }
        (_, requeue) => {
            let message = format!(
                "Release {} is active (commit {}{})",
                release.id,
                short_sha(&commit.sha),
                commit
                    .reference
                    .as_deref()
                    .map(|r| format!(" from {r}"))
                    .unwrap_or_default()
            );
            set_condition(
                &mut status.conditions,
                READY,
                true,
                "ReleaseActive",
                &message,
                generation,
            );
            match requeue {
                Some(after) => {
                    set_condition(
                        &mut status.conditions,
                        RECONCILING,
                        true,
                        "Draining",
                        "draining the previous revisions",
                        generation,
                    );
                    status.last_applied_commit = Some(commit.clone());
                    status.active_release = Some(release.id.clone());
                    Outcome::Pending(after)
                }
                None => {
                    set_condition(
                        &mut status.conditions,
                        RECONCILING,
                        false,
                        "ReleaseActive",
                        &message,
                        generation,
                    );
                    status.last_applied_commit = Some(commit.clone());
                    status.active_release = Some(release.id.clone());
                    Outcome::Done
                }
            }
        }
    };
    remove_condition(&mut status.conditions, STALLED);
    write_status(ctx, channel, &status).await?;
    Ok(outcome)
}

async fn scale_down(
    ctx: &Context,
    observed: &[cluster::ObservedRevision],
    names: &[String],
    now: Timestamp,
) -> Result<(), Error> {
    for name in names {
        if let Some(o) = observed.iter().find(|o| &o.revision.name == name) {
            cluster::scale_down(ctx.client(), &o.namespace, name, now).await?;
        }
    }
    Ok(())
}

fn parse_time(text: Option<&str>) -> Option<Timestamp> {
    text?.parse().ok()
}
