//! Deleting what a commit no longer declares, and nothing else.

use kube::api::{Api, DeleteParams, DynamicObject};
use kube::Client;

use super::{api_message, ClusterError, Resolver};
use crate::controller::crd::InventoryEntry;
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
    entries: &[InventoryEntry],
    channel: &str,
    dry_run: bool,
) -> Result<PruneOutcome, ClusterError> {
    let params = DeleteParams {
        dry_run,
        ..DeleteParams::background()
    };
    let mut resolver = Resolver::new(client.clone());
    let mut outcome = PruneOutcome::default();
    for entry in entries {
        let Some((ar, _)) = resolver
            .resolve(&entry.group, &entry.version, &entry.kind)
            .await?
        else {
            // The kind itself is gone (its CRD was deleted), and its objects with it.
            outcome.deleted.push(entry.clone());
            continue;
        };
        let api: Api<DynamicObject> = match &entry.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        let prune_err = |e: kube::Error| ClusterError::Prune {
            object: entry.to_string(),
            message: api_message(&e),
        };
        let Some(live) = api.get_opt(&entry.name).await.map_err(prune_err)? else {
            outcome.deleted.push(entry.clone());
            continue;
        };
        let labels = live.metadata.labels.clone().unwrap_or_default();
        let annotations = live.metadata.annotations.clone().unwrap_or_default();
        match prune_decision(&labels, &annotations, channel) {
            PruneDecision::Delete => {
                match api.delete(&entry.name, &params).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(prune_err(e)),
                }
                outcome.deleted.push(entry.clone());
            }
            other => outcome.kept.push((entry.clone(), other)),
        }
    }
    Ok(outcome)
}
