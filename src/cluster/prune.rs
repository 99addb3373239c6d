//! Deleting what a commit no longer declares, and nothing else.

use kube::api::{Api, DeleteParams, DynamicObject};
use kube::Client;

use super::{ClusterError, Resolver};
use crate::api::InventoryEntry;
use crate::rollout::{prune_decision, PruneDecision};

/// What a prune did.
#[derive(Debug, Default, Clone)]
pub struct PruneOutcome {
    /// Objects deleted (or already gone).
    pub deleted: Vec<InventoryEntry>,
    /// Objects left in place, and why.
    pub kept: Vec<(InventoryEntry, PruneDecision)>,
}

/// Deletes `entries` in the given order, each only if its live labels say it
/// belongs to `channel` and it is not protected by `kubemint.io/prune: disabled`.
/// With `dry_run` the API server only checks the deletions (`kubemint diff`).
pub async fn prune(
    client: &Client,
    resolver: &Resolver,
    entries: &[InventoryEntry],
    channel: &str,
    dry_run: bool,
) -> Result<PruneOutcome, ClusterError> {
    let mut outcome = PruneOutcome::default();
    for entry in entries {
        match prune_one(client, resolver, entry, channel, dry_run).await? {
            PruneDecision::Delete => outcome.deleted.push(entry.clone()),
            other => outcome.kept.push((entry.clone(), other)),
        }
    }
    Ok(outcome)
}

/// Deletes one object if its live labels say it is the channel's and it is
/// not protected; an object already gone counts as deleted.
pub async fn prune_one(
    client: &Client,
    resolver: &Resolver,
    entry: &InventoryEntry,
    channel: &str,
    dry_run: bool,
) -> Result<PruneDecision, ClusterError> {
    let Some((ar, _)) = resolver
        .resolve(&entry.group, &entry.version, &entry.kind)
        .await?
    else {
        // The kind itself is gone (its CRD was deleted), and its objects with it.
        return Ok(PruneDecision::Delete);
    };
    let api: Api<DynamicObject> = match &entry.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    let prune_err = |source: kube::Error| ClusterError::Write {
        action: "pruning",
        object: entry.to_string(),
        source,
    };
    let Some(live) = api.get_opt(&entry.name).await.map_err(prune_err)? else {
        return Ok(PruneDecision::Delete);
    };
    let labels = live.metadata.labels.clone().unwrap_or_default();
    let annotations = live.metadata.annotations.clone().unwrap_or_default();
    let decision = prune_decision(&labels, &annotations, channel);
    if decision == PruneDecision::Delete {
        let params = DeleteParams {
            dry_run,
            ..DeleteParams::background()
        };
        match api.delete(&entry.name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(prune_err(e)),
        }
    }
    Ok(decision)
}
