//! A rendered commit made ready to plan against the cluster: every object's
//! kind resolved and namespace settled, the kinds to watch, and the Services
//! being adopted.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Service;
use kube::discovery::ApiResource;
use kube::{Api, Client, ResourceExt};

use super::Error;
use crate::api::{Channel, CommitInfo};
use crate::cluster::{ClusterError, Resolver};
use crate::render::{Object, Release};
use crate::rollout::{mint, DesiredObject, DesiredRelease, CHANNEL_LABEL};

/// A rendered commit, ready to plan against the cluster.
#[derive(Clone)]
pub struct Rendered {
    /// The commit, with the ref it came from.
    pub commit: CommitInfo,
    /// The release as desired state.
    pub desired: DesiredRelease,
    /// The kinds it delivers (plus ConfigMaps and Secrets, for copies), to watch.
    pub kinds: Vec<ApiResource>,
    /// Whether some kinds come from CRDs in the release that are not served yet.
    pub unresolved: bool,
    /// Namespaces the release creates.
    pub namespaces: Vec<String>,
    /// Each revision's ReplicaSet name and its summary (`web-2b78ad82ce (2
    /// replicas)`), for the `Minted` event.
    pub summaries: Vec<(String, String)>,
    /// Selectors of declared Services that exist without kubemint's labels
    /// (made by hand, being adopted): they keep serving what they select until promotion.
    pub unlabelled: BTreeMap<(String, String), BTreeMap<String, String>>,
    /// The directories of the repository it was rendered from, with their git
    /// object ids at `commit` (`None`: absent): a later commit with the same
    /// ids renders to the same release (see [`carried_over`]).
    pub inputs: Vec<(String, Option<String>)>,
}

/// `previous` carried over to `commit` when `ids` (the ids of its input
/// directories at `commit`) are the ones it was rendered with: the new commit
/// changed nothing it reads, so rendering it would give the same release.
/// `None` when something changed (or nothing is known of the inputs).
pub fn carried_over(
    previous: &Rendered,
    commit: CommitInfo,
    ids: &[Option<String>],
) -> Option<Rendered> {
    let same = !previous.inputs.is_empty()
        && previous.inputs.len() == ids.len()
        && previous.inputs.iter().zip(ids).all(|((_, a), b)| a == b);
    same.then(|| Rendered {
        commit,
        ..previous.clone()
    })
}

/// Settles every object's kind and namespace: the release as desired state, and the kinds to watch.
pub(super) async fn prepare(
    client: &Client,
    resolver: &Resolver,
    channel: &Channel,
    release: &Release,
    commit: CommitInfo,
) -> Result<Rendered, Error> {
    let target = channel.target_namespace();
    let minted = mint(release, &|_| None);
    let mut kinds = Vec::new();
    let mut scopes = std::collections::HashMap::new();
    let mut unresolved = false;
    let all: Vec<&Object> = minted
        .objects
        .iter()
        .chain(minted.revisions.iter().map(|r| &r.replica_set))
        .collect();
    for object in &all {
        let gvk = (
            object.group().to_string(),
            object.version().to_string(),
            object.kind.clone(),
        );
        if scopes.contains_key(&gvk) {
            continue;
        }
        let namespaced = match resolver
            .resolve(object.group(), object.version(), &object.kind)
            .await?
        {
            Some((ar, namespaced)) => {
                kinds.push(ar);
                namespaced
            }
            None => match crd_scope_in_release(&release.objects, object.group(), &object.kind) {
                Some(namespaced) => {
                    unresolved = true;
                    namespaced
                }
                None => {
                    return Err(ClusterError::UnknownKind {
                        file: object.file.clone(),
                        object: object.key().to_string(),
                        api_version: object.api_version.clone(),
                        kind: object.kind.clone(),
                    }
                    .into())
                }
            },
        };
        scopes.insert(gvk, namespaced);
    }
    // Config copies are watched even when the release declares no ConfigMap or Secret.
    for kind in ["ConfigMap", "Secret"] {
        if let Some((ar, _)) = resolver.resolve("", "v1", kind).await? {
            if !kinds.iter().any(|k| k.kind == kind && k.group.is_empty()) {
                kinds.push(ar);
            }
        }
    }
    let namespace_of = |o: &Object| -> Option<String> {
        let key = (
            o.group().to_string(),
            o.version().to_string(),
            o.kind.clone(),
        );
        scopes
            .get(&key)
            .copied()
            .unwrap_or(true)
            .then(|| o.namespace.clone().unwrap_or_else(|| target.clone()))
    };
    let desired = DesiredRelease::with_previews(
        &release.id,
        &commit.sha,
        &channel.label_value(),
        &minted,
        &namespace_of,
        channel.spec.rollout.preview,
    );
    let unlabelled = unlabelled_services(client, &desired).await?;
    let namespaces = release
        .objects
        .iter()
        .filter(|o| o.kind == "Namespace" && o.group().is_empty())
        .map(|o| o.name.clone())
        .collect();
    Ok(Rendered {
        commit,
        desired,
        kinds,
        unresolved,
        namespaces,
        summaries: minted
            .revisions
            .iter()
            .map(|r| (r.replica_set.name.clone(), r.summary()))
            .collect(),
        unlabelled,
        inputs: Vec::new(),
    })
}

/// Declared, pinned Services that exist but are not labelled for the channel
/// (once per commit): a GET of each when a namespace has few of them, one
/// list when it has many. A list costs what the whole namespace holds, which
/// in a namespace of a thousand channels is a thousand Services per render.
async fn unlabelled_services(
    client: &Client,
    desired: &DesiredRelease,
) -> Result<BTreeMap<(String, String), BTreeMap<String, String>>, Error> {
    let pinned: BTreeSet<(String, String)> = desired
        .objects
        .iter()
        .filter(|o| o.pinned_to.is_some())
        .map(|o| {
            (
                o.id.namespace.clone().unwrap_or_default(),
                o.id.name.clone(),
            )
        })
        .collect();
    let namespaces: BTreeSet<&String> = pinned.iter().map(|(ns, _)| ns).collect();
    let mut found = BTreeMap::new();
    for ns in namespaces {
        let names: Vec<&String> = pinned
            .iter()
            .filter(|(n, _)| n == ns)
            .map(|(_, name)| name)
            .collect();
        let api = Api::<Service>::namespaced(client.clone(), ns);
        let refused = |source: kube::Error, what: String| match first_pinned(desired, ns) {
            // The identity may not read Services there: name what needs it.
            Some(o) if crate::cluster::is_forbidden(&source) => ClusterError::Rejected {
                file: o.file.clone(),
                object: o.id.to_string(),
                source,
            },
            _ => ClusterError::Observe { what, source },
        };
        let services: Vec<Service> = if names.len() <= GET_EACH_UP_TO {
            let mut services = Vec::new();
            for name in names {
                if let Some(svc) = api
                    .get_opt(name)
                    .await
                    .map_err(|e| refused(e, format!("Service {ns}/{name}")))?
                {
                    services.push(svc);
                }
            }
            services
        } else {
            api.list(&Default::default())
                .await
                .map_err(|e| refused(e, format!("Services in {ns}")))?
                .items
        };
        for svc in services {
            let key = (ns.clone(), svc.name_any());
            let ours = svc.labels().get(CHANNEL_LABEL) == Some(&desired.channel);
            if ours || !pinned.contains(&key) {
                continue;
            }
            let selector = svc.spec.and_then(|s| s.selector).unwrap_or_default();
            found.insert(key, selector.into_iter().collect());
        }
    }
    Ok(found)
}

/// Pinned Services of one namespace read one by one rather than listed.
const GET_EACH_UP_TO: usize = 8;

fn first_pinned<'d>(desired: &'d DesiredRelease, namespace: &str) -> Option<&'d DesiredObject> {
    desired
        .objects
        .iter()
        .find(|o| o.pinned_to.is_some() && o.id.namespace.as_deref() == Some(namespace))
}

/// `Some(namespaced)` when the release holds a CRD that defines `group`/`kind`.
fn crd_scope_in_release(objects: &[Object], group: &str, kind: &str) -> Option<bool> {
    objects
        .iter()
        .filter(|o| o.kind == "CustomResourceDefinition")
        .find(|o| {
            o.manifest["spec"]["group"] == group && o.manifest["spec"]["names"]["kind"] == kind
        })
        .map(|crd| crd.manifest["spec"]["scope"] != "Cluster")
}
