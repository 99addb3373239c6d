//! Which watches a channel needs: its kinds, where its objects live, and
//! whether the observer watches cluster-wide or namespace by namespace. Pure.

use std::collections::{BTreeSet, HashMap, HashSet};

use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;

/// A metadata watch: a kind in a namespace (`None`: all namespaces, or cluster-scoped).
pub(super) type WatchKey = (GroupVersionKind, Option<String>);

/// The watches one channel needs.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Needs {
    /// Namespaces of the typed watches (`None`: all).
    pub(super) typed: HashSet<Option<String>>,
    /// The metadata watches.
    pub(super) kinds: HashSet<WatchKey>,
}

/// Where a channel's objects live: what a scoped observer must watch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// Namespaces the channel delivers into (or delivered into, for pruning).
    pub namespaces: BTreeSet<String>,
    /// `(group, kind)` of the cluster-scoped kinds it delivers.
    pub cluster_kinds: BTreeSet<(String, String)>,
}

impl Scope {
    pub(super) fn namespaced(&self, ar: &ApiResource) -> bool {
        !self
            .cluster_kinds
            .contains(&(ar.group.clone(), ar.kind.clone()))
    }
}

/// ReplicaSets and Services have typed reflectors of their own.
pub(super) fn is_typed(ar: &ApiResource) -> bool {
    matches!(
        (ar.group.as_str(), ar.kind.as_str()),
        ("apps", "ReplicaSet") | ("", "Service")
    )
}

/// The namespaces of the watches: cluster-wide (`scoped` false), every kind
/// is one watch; scoped, one per namespace of `scope`.
pub(super) fn namespaces(scoped: bool, scope: &Scope) -> Vec<Option<&str>> {
    if scoped {
        scope.namespaces.iter().map(|n| Some(n.as_str())).collect()
    } else {
        vec![None]
    }
}

/// Where the metadata watch of `ar` runs, given the watches' `namespaces`:
/// a cluster-scoped kind of a scoped observer is watched once, cluster-wide.
pub(super) fn wheres<'a>(
    scoped: bool,
    scope: &Scope,
    ar: &ApiResource,
    namespaces: &[Option<&'a str>],
) -> Vec<Option<&'a str>> {
    if scoped && !scope.namespaced(ar) {
        vec![None]
    } else {
        namespaces.to_vec()
    }
}

/// The watches of kinds `ars` in `scope`.
pub(super) fn needs_of(scoped: bool, ars: &[ApiResource], scope: &Scope) -> Needs {
    let namespaces = namespaces(scoped, scope);
    let mut needs = Needs {
        typed: namespaces.iter().map(|ns| ns.map(str::to_string)).collect(),
        kinds: HashSet::new(),
    };
    for ar in ars.iter().filter(|ar| !is_typed(ar)) {
        let gvk = GroupVersionKind::gvk(&ar.group, &ar.version, &ar.kind);
        needs.kinds.extend(
            wheres(scoped, scope, ar, &namespaces)
                .into_iter()
                .map(|ns| (gvk.clone(), ns.map(str::to_string))),
        );
    }
    needs
}

/// The watches some channel of `all` needs: the rest can end.
pub(super) fn needed(
    all: &HashMap<String, Needs>,
) -> (HashSet<&Option<String>>, HashSet<&WatchKey>) {
    let typed = all.values().flat_map(|n| &n.typed).collect();
    let kinds = all.values().flat_map(|n| &n.kinds).collect();
    (typed, kinds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ar(group: &str, kind: &str) -> ApiResource {
        ApiResource::from_gvk(&GroupVersionKind::gvk(group, "v1", kind))
    }

    #[test]
    fn the_watches_of_a_channel_follow_its_scope() {
        let scope = Scope {
            namespaces: ["old".to_string(), "shop".to_string()].into(),
            cluster_kinds: [(String::new(), "Namespace".to_string())].into(),
        };
        let ars = [
            ar("apps", "ReplicaSet"),
            ar("", "Service"),
            ar("", "ConfigMap"),
            ar("", "Namespace"),
        ];
        let key = |kind: &str, ns: Option<&str>| {
            (
                GroupVersionKind::gvk("", "v1", kind),
                ns.map(str::to_string),
            )
        };
        // (scoped, typed namespaces, metadata watches)
        type Case<'a> = (bool, Vec<Option<&'a str>>, Vec<WatchKey>);
        let cases: [Case; 2] = [
            (
                false,
                vec![None],
                vec![key("ConfigMap", None), key("Namespace", None)],
            ),
            (
                true,
                vec![Some("old"), Some("shop")],
                vec![
                    key("ConfigMap", Some("old")),
                    key("ConfigMap", Some("shop")),
                    key("Namespace", None),
                ],
            ),
        ];
        for (scoped, typed, kinds) in cases {
            let needs = needs_of(scoped, &ars, &scope);
            let want = Needs {
                typed: typed.into_iter().map(|n| n.map(str::to_string)).collect(),
                kinds: kinds.into_iter().collect(),
            };
            assert_eq!(needs, want, "scoped: {scoped}");
        }
    }
}
