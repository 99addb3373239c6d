//! The prune guard: whether a commit deletes so much of what a channel
//! delivered that a person should confirm it first (a path renamed by
//! mistake, a kustomization that lost its resources).

use crate::api::{Channel, InventoryEntry, APPROVE_PRUNE_ANNOTATION};

use super::prune_set;

/// A commit held by the guard: what it would prune.
#[derive(Debug, Clone, PartialEq)]
pub struct PruneHold {
    /// Objects of the inventory the commit no longer declares.
    pub pruned: usize,
    /// Objects in the inventory.
    pub total: usize,
    /// The largest fraction allowed without approval.
    pub max_fraction: f64,
}

impl PruneHold {
    /// `3 of 4 objects (75%)`.
    pub fn describe(&self) -> String {
        format!(
            "{} of {} objects ({:.0}%)",
            self.pruned,
            self.total,
            100.0 * self.pruned as f64 / self.total as f64
        )
    }
}

/// Whether moving from inventory `previous` to `next` prunes more than
/// `max_fraction` of `previous`, unless `approved`. Nothing is held on a
/// first delivery (nothing to prune).
pub fn prune_hold(
    previous: &[InventoryEntry],
    next: &[InventoryEntry],
    max_fraction: f64,
    approved: bool,
) -> Option<PruneHold> {
    if approved || previous.is_empty() {
        return None;
    }
    let pruned = prune_set(previous, next).len();
    let total = previous.len();
    (pruned as f64 > max_fraction * total as f64).then_some(PruneHold {
        pruned,
        total,
        max_fraction,
    })
}

/// The guard's decision for `channel` delivering commit `sha`, whose release's
/// inventory is `next`: the same for a pass and for `kubemint diff`.
///
/// Only commits are held: a spec change that re-renders the applied commit (a
/// new `targetNamespace`, say) is the admin's own deliberate move. Approval is
/// `kubemint.io/approve-prune` naming the commit (in full, or 7 digits or more).
pub fn channel_prune_hold(
    channel: &Channel,
    sha: &str,
    next: &[InventoryEntry],
) -> Option<PruneHold> {
    let applied = channel
        .status
        .as_ref()
        .and_then(|s| s.last_applied_commit.as_ref())
        .map(|c| c.sha.as_str());
    if !channel.spec.prune || applied == Some(sha) {
        return None;
    }
    let approved = channel
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(APPROVE_PRUNE_ANNOTATION))
        .map(|a| a.trim())
        .is_some_and(|a| a.len() >= 7 && sha.starts_with(a));
    prune_hold(
        &channel.inventory_entries(),
        next,
        channel.spec.prune_guard.max_fraction,
        approved,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(names: &[&str]) -> Vec<InventoryEntry> {
        names
            .iter()
            .map(|n| InventoryEntry {
                group: String::new(),
                version: "v1".into(),
                kind: "ConfigMap".into(),
                namespace: Some("shop".into()),
                name: n.to_string(),
            })
            .collect()
    }

    #[test]
    fn more_than_the_fraction_is_held_until_approved() {
        let before = entries(&["a", "b", "c", "d"]);
        let after = entries(&["a"]);
        let hold = prune_hold(&before, &after, 0.5, false).expect("3 of 4 is held");
        assert_eq!((hold.pruned, hold.total), (3, 4));
        assert_eq!(hold.describe(), "3 of 4 objects (75%)");
        assert_eq!(prune_hold(&before, &after, 0.5, true), None);
    }

    fn channel(applied: &str, approval: Option<&str>) -> Channel {
        let mut ch = Channel::new(
            "cfg",
            serde_json::from_value(
                serde_json::json!({"git": {"url": "https://example.com/r.git"}}),
            )
            .unwrap(),
        );
        if let Some(a) = approval {
            ch.metadata.annotations =
                Some([(APPROVE_PRUNE_ANNOTATION.to_string(), a.to_string())].into());
        }
        ch.status = Some(crate::api::ChannelStatus {
            inventory: Some(crate::api::Inventory {
                entries: entries(&["a", "b", "c", "d"]),
            }),
            last_applied_commit: Some(crate::api::CommitInfo {
                sha: applied.into(),
                ..Default::default()
            }),
            ..Default::default()
        });
        ch
    }

    #[test]
    fn a_channel_holds_a_new_commit_until_its_sha_is_approved() {
        let next = entries(&["a"]);
        let sha = "1f0c2a9e4b7d5c3a1f0c2a9e4b7d5c3a1f0c2a9e";
        assert!(channel_prune_hold(&channel("0000", None), sha, &next).is_some());
        assert!(channel_prune_hold(&channel("0000", Some("1f0c2a9")), sha, &next).is_none());
        assert!(channel_prune_hold(&channel("0000", Some(sha)), sha, &next).is_none());
        assert!(
            channel_prune_hold(&channel("0000", Some("1f0c2a")), sha, &next).is_some(),
            "6 digits are too few"
        );
        assert!(
            channel_prune_hold(&channel("0000", Some("0000000")), sha, &next).is_some(),
            "another commit's approval"
        );
        assert!(
            channel_prune_hold(&channel(sha, None), sha, &next).is_none(),
            "the applied commit re-rendered (a spec change)"
        );
        let mut no_prune = channel("0000", None);
        no_prune.spec.prune = false;
        assert!(channel_prune_hold(&no_prune, sha, &next).is_none());
    }

    #[test]
    fn up_to_the_fraction_goes_ahead() {
        let before = entries(&["a", "b", "c", "d"]);
        assert_eq!(prune_hold(&before, &entries(&["a", "b"]), 0.5, false), None);
        assert_eq!(
            prune_hold(&before, &entries(&["a", "b", "c", "d", "e"]), 0.0, false),
            None
        );
        assert!(prune_hold(&before, &entries(&["a", "b", "c"]), 0.0, false).is_some());
        assert_eq!(prune_hold(&before, &[], 1.0, false), None, "1 turns it off");
        assert_eq!(
            prune_hold(&[], &entries(&["a"]), 0.0, false),
            None,
            "first delivery"
        );
    }
}
