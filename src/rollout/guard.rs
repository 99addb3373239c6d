//! The prune guard: whether a commit deletes so much of what a channel
//! delivered that a person should confirm it first (a path renamed by
//! mistake, a kustomization that lost its resources).

use crate::api::InventoryEntry;

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
