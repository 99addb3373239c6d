//! Who a channel acts as in the cluster, and where it may deliver.
//!
//! A channel that names a ServiceAccount (`spec.serviceAccountName`, or the
//! operator's `--default-service-account`) makes every read and write of its
//! objects (dry runs, applies, prunes, the watches its rollout waits on) as
//! that ServiceAccount of its own namespace, by impersonation, as Flux does.
//! The operator's own identity then only reads channels and the Secrets they
//! name, and writes their status and events.

use crate::cluster::throttle::Throttle;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt};
use tokio::sync::mpsc;

use super::observe::Observer;
pub use super::observe::Scope;
use crate::api::Channel;
use crate::rollout::DesiredRelease;

/// The operator's settings on tenancy (`kubemint run` flags).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenancyPolicy {
    /// `--default-service-account`: impersonated by channels that name none.
    pub default_service_account: Option<String>,
    /// `--no-cross-namespace-refs`: a channel delivers only into its own namespace.
    pub no_cross_namespace_refs: bool,
    /// `--allow-local-sources`: a channel may name a local path or `file://` URL.
    pub allow_local_sources: bool,
}

/// A client and the watches made with it, for one identity.
#[derive(Clone)]
pub struct Access {
    /// Reads and writes the channel's objects.
    pub client: Client,
    /// The reflectors of what `client` may see.
    pub observer: Arc<Observer>,
    /// `namespace/name` of the impersonated ServiceAccount; `None`: the operator itself.
    pub service_account: Option<String>,
}

/// The identities channels act as, each made once.
pub struct Tenancy {
    base: kube::Config,
    /// The rate limit impersonated clients share with the operator's own.
    throttle: Throttle,
    policy: TenancyPolicy,
    operator: Access,
    wake: mpsc::UnboundedSender<ObjectRef<Channel>>,
    tenants: Mutex<HashMap<(String, String), Tenant>>,
}

/// One impersonated identity and the channels (`namespace/name`) acting as it.
struct Tenant {
    access: Access,
    channels: BTreeSet<String>,
}

impl Tenancy {
    /// `base` is the operator's own config; `operator` its client and cluster-wide observer.
    pub fn new(
        base: kube::Config,
        throttle: Throttle,
        policy: TenancyPolicy,
        operator: Access,
        wake: mpsc::UnboundedSender<ObjectRef<Channel>>,
    ) -> Self {
        Tenancy {
            base,
            throttle,
            policy,
            operator,
            wake,
            tenants: Mutex::default(),
        }
    }

    /// The operator's settings on tenancy.
    pub fn policy(&self) -> &TenancyPolicy {
        &self.policy
    }

    /// The identity `channel` acts as.
    pub fn access(&self, channel: &Channel) -> Result<Access, kube::Error> {
        let namespace = channel.namespace().unwrap_or_default();
        let user = channel.key();
        let account = service_account(channel, &self.policy);
        let key = account.map(|a| (namespace.clone(), a.to_string()));
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        // A channel that changed its ServiceAccount no longer holds the old one.
        forget(&mut tenants, &user, key.as_ref());
        let (Some(account), Some(key)) = (account, key) else {
            return Ok(self.operator.clone());
        };
        // Nor the operator's own watches, if it acted as the operator before.
        self.operator.observer.release(&user);
        if let Some(tenant) = tenants.get_mut(&key) {
            tenant.channels.insert(user);
            return Ok(tenant.access.clone());
        }
        let mut config = self.base.clone();
        config.auth_info.impersonate = Some(impersonated_user(&namespace, account));
        // The API server adds the ServiceAccount's groups itself; naming none
        // keeps the operator from needing `impersonate` on groups.
        config.auth_info.impersonate_groups = None;
        let client = self.throttle.client(config)?;
        let access = Access {
            observer: Observer::scoped(client.clone(), self.wake.clone()),
            client,
            service_account: Some(format!("{namespace}/{account}")),
        };
        tenants.insert(
            key,
            Tenant {
                access: access.clone(),
                channels: BTreeSet::from([user]),
            },
        );
        Ok(access)
    }

    /// A deleted channel: the identity it acted as, and its watches, go once
    /// no other channel acts as it.
    pub fn release(&self, channel: &Channel) {
        let user = channel.key();
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        forget(&mut tenants, &user, None);
        self.operator.observer.release(&user);
    }

    /// How many impersonated identities are held.
    #[cfg(test)]
    fn tenants(&self) -> usize {
        self.tenants.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// Takes `user` off every identity but `keep`, and drops those left unused.
fn forget(
    tenants: &mut HashMap<(String, String), Tenant>,
    user: &str,
    keep: Option<&(String, String)>,
) {
    tenants.retain(|key, tenant| {
        if Some(key) != keep && tenant.channels.remove(user) {
            // The identity's watches that only this channel needed end now.
            tenant.access.observer.release(user);
        }
        !tenant.channels.is_empty() || Some(key) == keep
    });
}

/// The ServiceAccount `channel` impersonates, if any.
pub fn service_account<'c>(channel: &'c Channel, policy: &'c TenancyPolicy) -> Option<&'c str> {
    channel
        .spec
        .service_account_name
        .as_deref()
        .or(policy.default_service_account.as_deref())
        .filter(|name| !name.is_empty())
}

/// The user name of ServiceAccount `name` in `namespace`.
pub fn impersonated_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// Whether `url` names the operator's own filesystem: a path or a `file:` URL
/// (in any case, as a user may write it).
pub fn is_local_source(url: &str) -> bool {
    let url = url.trim_start();
    crate::source::local_path(url).is_some()
        || url
            .get(..5)
            .is_some_and(|s| s.eq_ignore_ascii_case("file:"))
}

/// The refusal of a local `spec.git.url` when the operator runs without
/// `--allow-local-sources`: otherwise any tenant could read any repository the
/// operator's filesystem holds (another tenant's volume, the cache itself).
pub fn local_source_refusal(url: &str, policy: &TenancyPolicy) -> Option<super::Error> {
    (!policy.allow_local_sources && is_local_source(url)).then(|| {
        super::Error::LocalSourceRefused {
            url: crate::source::redact_url(url),
        }
    })
}

/// Where a channel delivers something outside its own namespace, when
/// `--no-cross-namespace-refs` forbids it: the first such object, and where.
pub fn cross_namespace_violation(
    channel_namespace: &str,
    desired: &DesiredRelease,
) -> Option<(String, String, String)> {
    let outside = |ns: Option<&str>| ns != Some(channel_namespace);
    desired
        .objects
        .iter()
        .map(|o| (&o.file, o.id.to_string(), o.id.namespace.as_deref()))
        .chain(desired.revisions.iter().map(|r| {
            (
                &r.file,
                format!("ReplicaSet {}/{}", r.namespace, r.name),
                Some(r.namespace.as_str()),
            )
        }))
        .chain(
            desired
                .hooks
                .iter()
                .map(|h| (&h.file, h.id.to_string(), h.id.namespace.as_deref())),
        )
        .find(|(_, _, ns)| outside(*ns))
        .map(|(file, object, ns)| {
            let where_ = ns.map_or("cluster scope".to_string(), |n| format!("namespace {n}"));
            (file.clone(), object, where_)
        })
}

/// The refusal of a watch that the channel's ServiceAccount `account` may not
/// make, naming the first object of the release that needs it (one of its
/// kind and namespace, else one in its namespace: kubemint watches
/// ReplicaSets, Services and Jobs wherever a channel delivers).
pub fn watch_refusal(
    account: &str,
    refused: &super::observe::WatchFailure,
    desired: Option<&DesiredRelease>,
) -> super::Error {
    let t = &refused.target;
    let objects = desired
        .into_iter()
        .flat_map(|d| &d.objects)
        .map(|o| {
            let id = &o.id;
            (
                o.file.as_str(),
                id.group.as_str(),
                id.kind.as_str(),
                id.namespace.as_deref(),
                id.to_string(),
            )
        })
        .chain(desired.into_iter().flat_map(|d| &d.revisions).map(|r| {
            let object = format!("apps/ReplicaSet/{}/{}", r.namespace, r.name);
            (
                r.file.as_str(),
                "apps",
                "ReplicaSet",
                Some(r.namespace.as_str()),
                object,
            )
        }))
        .chain(desired.into_iter().flat_map(|d| &d.hooks).map(|h| {
            let id = &h.id;
            (
                h.file.as_str(),
                id.group.as_str(),
                id.kind.as_str(),
                id.namespace.as_deref(),
                id.to_string(),
            )
        }));
    let in_scope = |ns: Option<&str>| t.namespace.is_none() || ns == t.namespace.as_deref();
    let mut same_kind = None;
    let mut same_namespace = None;
    for (file, group, kind, ns, object) in objects {
        if !in_scope(ns) {
            continue;
        }
        if group == t.group && kind == t.kind {
            same_kind = Some((file.to_string(), object));
            break;
        }
        same_namespace.get_or_insert((file.to_string(), object));
    }
    let (file, object) = same_kind.or(same_namespace).unwrap_or_else(|| {
        let ns = t.namespace.as_deref().unwrap_or("the cluster");
        (
            "(inventory)".to_string(),
            format!("the objects delivered before in {ns}"),
        )
    });
    let resource = if t.group.is_empty() {
        t.plural.clone()
    } else {
        format!("{}.{}", t.plural, t.group)
    };
    super::Error::Forbidden(Box::new(super::error::RefusedWatch {
        file,
        object,
        account: account.to_string(),
        verb: "list and watch".into(),
        resource,
        location: t
            .namespace
            .as_ref()
            .map_or("cluster-wide".to_string(), |ns| {
                format!("in namespace {ns}")
            }),
        message: refused.message.clone(),
    }))
}

/// Where the channel's objects are, for a scoped observer: the namespaces of
/// the release and of the inventory, and the release's cluster-scoped kinds.
pub fn scope_of(desired: &DesiredRelease, inventory: &[crate::api::InventoryEntry]) -> Scope {
    let mut scope = Scope::default();
    for o in &desired.objects {
        match &o.id.namespace {
            Some(ns) => scope.namespaces.insert(ns.clone()),
            None => scope
                .cluster_kinds
                .insert((o.id.group.clone(), o.id.kind.clone())),
        };
    }
    for r in &desired.revisions {
        scope.namespaces.insert(r.namespace.clone());
    }
    for h in &desired.hooks {
        scope.namespaces.extend(h.id.namespace.clone());
    }
    for e in inventory {
        if let Some(ns) = e.namespace.as_ref().filter(|ns| !ns.is_empty()) {
            scope.namespaces.insert(ns.clone());
        }
    }
    scope
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::{ChannelSpec, ObjectId};
    use crate::rollout::DesiredObject;

    fn channel(account: Option<&str>) -> Channel {
        let mut spec: ChannelSpec =
            serde_json::from_value(json!({"git": {"url": "https://example.com/r.git"}})).unwrap();
        spec.service_account_name = account.map(str::to_string);
        let mut channel = Channel::new("web", spec);
        channel.metadata.namespace = Some("shop".into());
        channel
    }

    fn object(kind: &str, namespace: Option<&str>, file: &str) -> DesiredObject {
        DesiredObject {
            id: ObjectId {
                group: String::new(),
                kind: kind.into(),
                namespace: namespace.map(str::to_string),
                name: "x".into(),
            },
            api_version: "v1".into(),
            file: file.into(),
            manifest: json!({}),
            stage: 1,
            pinned_to: None,
            scales: None,
            copy: false,
            preview: false,
        }
    }

    fn release(objects: Vec<DesiredObject>) -> DesiredRelease {
        DesiredRelease {
            id: "r".into(),
            commit: "c".into(),
            channel: "shop.web".into(),
            objects,
            revisions: vec![],
            hooks: vec![],
        }
    }

    #[tokio::test]
    async fn an_identity_is_shared_by_its_channels_and_dropped_with_the_last() {
        let base = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let (wake, _woken) = mpsc::unbounded_channel();
        let client = Client::try_from(base.clone()).unwrap();
        let operator = Access {
            observer: Observer::start(client.clone(), wake.clone(), None),
            client,
            service_account: None,
        };
        let tenancy = Tenancy::new(
            base,
            Throttle::unlimited(),
            TenancyPolicy::default(),
            operator,
            wake,
        );
        let named = |name: &str, account: Option<&str>| {
            let mut c = channel(account);
            c.metadata.name = Some(name.into());
            c
        };
        let (web, api) = (
            named("web", Some("deployer")),
            named("api", Some("deployer")),
        );
        let shared = tenancy.access(&web).unwrap();
        assert_eq!(shared.service_account.as_deref(), Some("shop/deployer"));
        assert!(Arc::ptr_eq(
            &shared.observer,
            &tenancy.access(&api).unwrap().observer
        ));
        assert!(tenancy
            .access(&named("cron", None))
            .unwrap()
            .service_account
            .is_none());
        assert_eq!(tenancy.tenants(), 1);

        // `web` moves to another account: `deployer` stays for `api`.
        tenancy.access(&named("web", Some("web-deployer"))).unwrap();
        assert_eq!(tenancy.tenants(), 2);
        tenancy.release(&api);
        assert_eq!(tenancy.tenants(), 1, "deployer had no channel left");
        tenancy.release(&web);
        assert_eq!(tenancy.tenants(), 0);
    }

    #[test]
    fn the_channel_s_own_account_wins_over_the_default() {
        let policy = TenancyPolicy {
            default_service_account: Some("deployer".into()),
            ..TenancyPolicy::default()
        };
        assert_eq!(service_account(&channel(Some("ci")), &policy), Some("ci"));
        assert_eq!(service_account(&channel(None), &policy), Some("deployer"));
        assert_eq!(
            service_account(&channel(None), &TenancyPolicy::default()),
            None
        );
        assert_eq!(
            impersonated_user("shop", "ci"),
            "system:serviceaccount:shop:ci"
        );
    }

    #[test]
    fn local_sources_are_refused_unless_allowed() {
        let strict = TenancyPolicy::default();
        for url in [
            "file:///srv/git/deploy",
            "FILE:///srv/git/deploy",
            "/srv/git/deploy",
            "./deploy",
            "deploy",
            " file:///srv/git/deploy",
        ] {
            assert!(is_local_source(url), "{url}");
            let refused = local_source_refusal(url, &strict).expect(url);
            assert_eq!(refused.reason(), "LocalSourceRefused");
            assert!(refused.is_stalled());
            let message = refused.to_string();
            assert!(message.contains(url.trim()), "{message}");
            assert!(message.contains("--allow-local-sources"), "{message}");
        }
        for url in [
            "https://git.example.com/deploy.git",
            "ssh://git@host:22/deploy.git",
            "git@github.com:acme/deploy.git",
            "git://127.0.0.1:9418/deploy",
        ] {
            assert!(!is_local_source(url), "{url}");
            assert!(local_source_refusal(url, &strict).is_none(), "{url}");
        }
        let allowed = TenancyPolicy {
            allow_local_sources: true,
            ..TenancyPolicy::default()
        };
        assert!(local_source_refusal("file:///srv/git/deploy", &allowed).is_none());
    }

    #[test]
    fn only_objects_outside_the_channel_s_namespace_are_violations() {
        let home = release(vec![object("ConfigMap", Some("shop"), "a.yaml")]);
        assert_eq!(cross_namespace_violation("shop", &home), None);
        let away = release(vec![
            object("ConfigMap", Some("shop"), "a.yaml"),
            object("ConfigMap", Some("bank"), "b.yaml"),
        ]);
        let (file, object_, location) = cross_namespace_violation("shop", &away).unwrap();
        assert_eq!(
            (file.as_str(), location.as_str()),
            ("b.yaml", "namespace bank")
        );
        assert!(object_.contains("bank"), "{object_}");
        let wide = release(vec![object("Namespace", None, "ns.yaml")]);
        assert_eq!(
            cross_namespace_violation("shop", &wide).map(|v| v.2),
            Some("cluster scope".to_string())
        );
    }

    #[test]
    fn a_refused_watch_names_the_object_that_needs_it_the_verb_resource_and_account() {
        use crate::engine::observe::{WatchFailure, WatchTarget};
        let desired = release(vec![
            object("ConfigMap", Some("shop"), "web/config.yaml"),
            object("Secret", Some("shop"), "web/secret.yaml"),
        ]);
        let refused = |kind: &str, plural: &str, group: &str, ns: Option<&str>| {
            WatchFailure {
            target: WatchTarget {
                group: group.into(),
                kind: kind.into(),
                plural: plural.into(),
                namespace: ns.map(str::to_string),
            },
            message: format!("{plural} is forbidden: User \"system:serviceaccount:shop:deployer\" cannot list resource \"{plural}\""),
            forbidden: true,
        }
        };
        let err = watch_refusal(
            "shop/deployer",
            &refused("Secret", "secrets", "", Some("shop")),
            Some(&desired),
        );
        assert_eq!(err.reason(), "Forbidden");
        assert!(err.is_stalled());
        let message = err.to_string();
        assert!(message.starts_with("web/secret.yaml: Secret/shop/x: ServiceAccount shop/deployer may not list and watch secrets in namespace shop"), "{message}");
        assert!(
            message.contains("cannot list resource \"secrets\""),
            "{message}"
        );

        // ReplicaSets are watched wherever the channel delivers: an object there is named.
        let err = watch_refusal(
            "shop/deployer",
            &refused("ReplicaSet", "replicasets", "apps", Some("shop")),
            Some(&desired),
        );
        let message = err.to_string();
        assert!(
            message.starts_with("web/config.yaml: ConfigMap/shop/x:"),
            "{message}"
        );
        assert!(
            message.contains("replicasets.apps in namespace shop"),
            "{message}"
        );

        // Only the inventory is there (objects to prune).
        let err = watch_refusal(
            "shop/deployer",
            &refused("ConfigMap", "configmaps", "", Some("old")),
            Some(&desired),
        );
        assert!(
            err.to_string()
                .starts_with("(inventory): the objects delivered before in old:"),
            "{err}"
        );
    }

    #[test]
    fn the_scope_covers_the_release_and_the_inventory() {
        let desired = release(vec![
            object("ConfigMap", Some("shop"), "a.yaml"),
            object("Namespace", None, "ns.yaml"),
        ]);
        let inventory = vec![crate::api::InventoryEntry {
            group: String::new(),
            version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("old".into()),
            name: "x".into(),
        }];
        let scope = scope_of(&desired, &inventory);
        assert_eq!(scope.namespaces.iter().collect::<Vec<_>>(), ["old", "shop"]);
        assert!(scope
            .cluster_kinds
            .contains(&(String::new(), "Namespace".to_string())));
    }
}
