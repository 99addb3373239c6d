//! Deleting a channel with `prune: true`: everything it delivered goes, the
//! inventory in reverse apply order, then its minted revisions and config
//! copies (found by label, as its identity watches them).

use kube::discovery::ApiResource;

use super::pipeline::{unsynced_error, Engine};
use super::tenancy;
use super::Error;
use crate::api::Channel;
use crate::cluster;
use crate::cluster::changes::{
    copy_entry, revision_entry, Change, ChangeAction, ChangeReason, ChangeSet,
};
use crate::rollout::prune_set;

impl Engine {
    /// Deletes what `channel` delivered, as its identity; returns what was deleted.
    ///
    /// # Errors
    ///
    /// A watch its ServiceAccount may not make is a `Forbidden` refusal, like
    /// in a pass; a failed deletion is the cluster's error (the finalizer
    /// stays and the deletion is tried again).
    pub async fn delete_channel(&self, channel: &Channel) -> Result<ChangeSet, Error> {
        let entries = channel.inventory_entries();
        let label = channel.label_value();
        let access = self.access(channel)?;
        let gone = prune_set(&entries, &[]);
        let outcome = cluster::prune(&access.client, self.resolver(), &gone, &label, false).await?;
        let mut set = ChangeSet::default();
        set.entries.extend(
            outcome
                .deleted
                .into_iter()
                .map(|e| Change::new(e, ChangeAction::Deleted, ChangeReason::Pruned)),
        );
        let kinds = self.config_kinds().await?;
        let scope = tenancy::Scope {
            namespaces: entries
                .iter()
                .filter_map(|e| e.namespace.clone())
                .chain([channel.target_namespace()])
                .collect(),
            ..tenancy::Scope::default()
        };
        access
            .observer
            .watch(&channel.key(), &kinds, &scope)
            .await
            .map_err(|unsynced| unsynced_error(&access, unsynced, None))?;
        let observed = access.observer.snapshot(&label, &kinds);
        for r in &observed.revisions {
            cluster::delete_revision(&access.client, &r.namespace, &r.name).await?;
            set.push(Change::new(
                revision_entry(&r.namespace, &r.name),
                ChangeAction::Deleted,
                ChangeReason::Retired,
            ));
        }
        for c in &observed.copies {
            cluster::delete_config_copy(&access.client, &c.kind, &c.namespace, &c.name).await?;
            set.push(Change::new(
                copy_entry(&c.kind, &c.namespace, &c.name),
                ChangeAction::Deleted,
                ChangeReason::UnusedCopy,
            ));
        }
        Ok(set)
    }

    /// ConfigMaps and Secrets, whose copies a channel mints.
    async fn config_kinds(&self) -> Result<Vec<ApiResource>, Error> {
        let mut kinds = Vec::new();
        for kind in ["ConfigMap", "Secret"] {
            if let Some((ar, _)) = self.resolver().resolve("", "v1", kind).await? {
                kinds.push(ar);
            }
        }
        Ok(kinds)
    }
}
