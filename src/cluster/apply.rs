//! Server-side apply of a whole release: resolve kinds, dry-run everything,
//! then apply CRDs and Namespaces, wait for them, and apply the rest.

use std::time::Duration;

use futures::{stream, StreamExt, TryStreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use kube::runtime::wait::{await_condition, conditions};
use kube::Client;
use serde_json::Value;

use super::{api_message, ClusterError, Resolver, FIELD_MANAGER};
use crate::controller::crd::InventoryEntry;
use crate::render::Object;
use crate::rollout::{stage_of, stamp, Stamp};

/// How many writes are in flight at once: enough to hide latency, few enough to be polite.
const CONCURRENCY: usize = 8;
/// How long a CRD may take to be established.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// What to apply and how to stamp it.
pub struct ApplyRequest<'a> {
    /// The objects, in apply order (CRDs and Namespaces are moved first regardless).
    pub objects: &'a [Object],
    /// Namespace for namespaced objects that do not name one.
    pub target_namespace: &'a str,
    /// Labels and annotations for every object.
    pub stamp: Stamp<'a>,
}

/// The outcome of a successful apply.
#[derive(Debug, Clone)]
pub struct AppliedRelease {
    /// Every object of the release, sorted: the channel's new inventory.
    pub inventory: Vec<InventoryEntry>,
}

/// One object, ready to send.
struct Planned<'a> {
    object: &'a Object,
    resource: Option<ApiResource>,
    namespace: Option<String>,
    manifest: Value,
    stage: u8,
}

impl Planned<'_> {
    fn entry(&self) -> InventoryEntry {
        InventoryEntry {
            group: self.object.group().to_string(),
            version: self.object.version().to_string(),
            kind: self.object.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.object.name.clone(),
        }
    }

    fn describe(&self) -> String {
        self.entry().to_string()
    }
}

/// Applies `req.release` with server-side apply. Nothing is written unless every
/// object's kind is known (to the cluster or to a CRD in the release) and the
/// dry run accepts it.
pub async fn apply_release(
    client: &Client,
    req: &ApplyRequest<'_>,
) -> Result<AppliedRelease, ClusterError> {
    let mut resolver = Resolver::new(client.clone());
    let mut planned = plan(&mut resolver, req).await?;

    dry_run(client, req.objects, &planned).await?;

    for stage in [0u8, 1] {
        if stage == 1 {
            resolve_deferred(&mut resolver, &mut planned).await?;
        }
        let batch: Vec<&Planned<'_>> = planned.iter().filter(|p| p.stage == stage).collect();
        // Futures are built before streaming them: a closure inside the stream
        // would make this future's type higher-ranked and not provably Send.
        let writes: Vec<_> = batch.iter().map(|p| apply_one(client, p, false)).collect();
        stream::iter(writes)
            .buffer_unordered(CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await?;
        if stage == 0 {
            wait_for_crds(client, &batch).await?;
        }
    }

    let mut inventory: Vec<InventoryEntry> = planned.iter().map(Planned::entry).collect();
    inventory.sort();
    Ok(AppliedRelease { inventory })
}

/// What applying one object would do, for `kubemint diff`.
#[derive(Debug, Clone)]
pub struct Preview {
    /// The object.
    pub entry: InventoryEntry,
    /// The file it came from.
    pub file: String,
    /// The object as it is in the cluster now, if it exists.
    pub live: Option<Value>,
    /// The object as the API server would store it (a server-side apply dry run);
    /// `None` when its kind comes from a CRD the release has not installed yet.
    pub predicted: Option<Value>,
}

/// Dry-runs every object of `req` and reads its live state; writes nothing.
pub async fn preview_release(
    client: &Client,
    req: &ApplyRequest<'_>,
) -> Result<Vec<Preview>, ClusterError> {
    let mut resolver = Resolver::new(client.clone());
    let planned = plan(&mut resolver, req).await?;
    let declared = declared_namespaces(req.objects);
    let declared = &declared;
    let previews = planned.iter().map(|p| async move {
        let Some(ar) = &p.resource else {
            return Ok(Preview {
                entry: p.entry(),
                file: p.object.file.clone(),
                live: None,
                predicted: None,
            });
        };
        let api: Api<DynamicObject> = match &p.namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
            None => Api::all_with(client.clone(), ar),
        };
        let live = api
            .get_opt(&p.object.name)
            .await
            .map_err(|e| ClusterError::Apply {
                file: p.object.file.clone(),
                object: p.describe(),
                message: api_message(&e),
            })?;
        let predicted = match apply_one(client, p, true).await {
            Ok(o) => Some(o),
            Err(e) if in_missing_declared_namespace(&e, p, declared) => None,
            Err(ClusterError::Apply {
                file,
                object,
                message,
            }) => {
                return Err(ClusterError::Rejected {
                    file,
                    object,
                    message,
                })
            }
            Err(other) => return Err(other),
        };
        let to_value = |o: DynamicObject| serde_json::to_value(o).unwrap_or(Value::Null);
        Ok(Preview {
            entry: p.entry(),
            file: p.object.file.clone(),
            live: live.map(to_value),
            predicted: predicted.map(to_value),
        })
    });
    stream::iter(previews.collect::<Vec<_>>())
        .buffered(CONCURRENCY)
        .try_collect()
        .await
}

/// Resolves every object's kind and namespace. Kinds defined by a CRD in the
/// release are deferred until that CRD is established.
async fn plan<'a>(
    resolver: &mut Resolver,
    req: &ApplyRequest<'a>,
) -> Result<Vec<Planned<'a>>, ClusterError> {
    let mut planned = Vec::with_capacity(req.objects.len());
    for object in req.objects {
        let (resource, namespaced) = match resolver
            .resolve(object.group(), object.version(), &object.kind)
            .await?
        {
            Some((ar, namespaced)) => (Some(ar), namespaced),
            None => match crd_scope_in_release(req.objects, object.group(), &object.kind) {
                Some(namespaced) => (None, namespaced),
                None => {
                    return Err(ClusterError::UnknownKind {
                        file: object.file.clone(),
                        object: object.key().to_string(),
                        api_version: object.api_version.clone(),
                        kind: object.kind.clone(),
                    })
                }
            },
        };
        let namespace = namespaced.then(|| {
            object
                .namespace
                .clone()
                .unwrap_or_else(|| req.target_namespace.to_string())
        });
        let manifest = stamp(&object.manifest, namespace.as_deref(), &req.stamp);
        planned.push(Planned {
            object,
            resource,
            namespace,
            manifest,
            stage: stage_of(object.group(), &object.kind),
        });
    }
    Ok(planned)
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

/// Sends every resolvable object as a server-side dry run. An object in a
/// namespace that the release itself creates cannot be checked yet and is let through.
async fn dry_run(
    client: &Client,
    objects: &[Object],
    planned: &[Planned<'_>],
) -> Result<(), ClusterError> {
    let declared = declared_namespaces(objects);
    let checks = planned
        .iter()
        .filter(|p| p.resource.is_some())
        .map(|p| async {
            match apply_one(client, p, true).await {
                Err(e) if in_missing_declared_namespace(&e, p, &declared) => Ok(()),
                Err(ClusterError::Apply {
                    file,
                    object,
                    message,
                }) => Err(ClusterError::Rejected {
                    file,
                    object,
                    message,
                }),
                other => other.map(|_| ()),
            }
        })
        .collect::<Vec<_>>();
    stream::iter(checks)
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// Namespaces the release itself creates.
fn declared_namespaces(objects: &[Object]) -> Vec<&str> {
    objects
        .iter()
        .filter(|o| o.kind == "Namespace" && o.group().is_empty())
        .map(|o| o.name.as_str())
        .collect()
}

/// Whether a dry run failed only because the object's namespace does not exist
/// yet and the release creates it: such an object cannot be checked before.
fn in_missing_declared_namespace(err: &ClusterError, p: &Planned<'_>, declared: &[&str]) -> bool {
    matches!(err, ClusterError::Apply { message, .. } if message.contains("not found"))
        && p.namespace
            .as_deref()
            .is_some_and(|ns| declared.contains(&ns))
}

async fn resolve_deferred(
    resolver: &mut Resolver,
    planned: &mut [Planned<'_>],
) -> Result<(), ClusterError> {
    if planned.iter().all(|p| p.resource.is_some()) {
        return Ok(());
    }
    resolver.forget_unknown();
    for p in planned.iter_mut().filter(|p| p.resource.is_none()) {
        let found = resolver
            .resolve(p.object.group(), p.object.version(), &p.object.kind)
            .await?;
        match found {
            Some((ar, _)) => p.resource = Some(ar),
            None => {
                return Err(ClusterError::NotEstablished {
                    object: format!("kind {}/{}", p.object.api_version, p.object.kind),
                    seconds: ESTABLISH_TIMEOUT.as_secs(),
                })
            }
        }
    }
    Ok(())
}

async fn apply_one(
    client: &Client,
    p: &Planned<'_>,
    dry_run: bool,
) -> Result<DynamicObject, ClusterError> {
    let ar = p
        .resource
        .as_ref()
        .expect("apply_one is called only for resolved kinds");
    let api: Api<DynamicObject> = match &p.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    };
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    if dry_run {
        params = params.dry_run();
    }
    api.patch(&p.object.name, &params, &Patch::Apply(&p.manifest))
        .await
        .map_err(|e| ClusterError::Apply {
            file: p.object.file.clone(),
            object: p.describe(),
            message: api_message(&e),
        })
}

/// Waits until every CRD of the batch is established (Namespaces are usable at once).
async fn wait_for_crds(client: &Client, batch: &[&Planned<'_>]) -> Result<(), ClusterError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for p in batch
        .iter()
        .filter(|p| p.object.kind == "CustomResourceDefinition")
    {
        let wait = await_condition(
            crds.clone(),
            &p.object.name,
            conditions::is_crd_established(),
        );
        let established = matches!(
            tokio::time::timeout(ESTABLISH_TIMEOUT, wait).await,
            Ok(Ok(Some(_)))
        );
        if !established {
            return Err(ClusterError::NotEstablished {
                object: p.describe(),
                seconds: ESTABLISH_TIMEOUT.as_secs(),
            });
        }
    }
    Ok(())
}
