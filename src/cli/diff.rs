//! `kubemint diff`: what delivering a channel's next commit (or files on disk)
//! would change in the cluster. It runs the controller's pipeline in preview
//! mode, as the channel's identity: the same gates refuse the same commits
//! with the same reason and message, and the plan is carried to promotion on
//! the rollout's cluster [`Simulator`]. Every object it would apply is sent as
//! a server-side apply dry run and compared with its live state; prunes are
//! dry-run deletions. Nothing is written.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client, ResourceExt};
use serde_json::Value;

use crate::api::{Channel, CommitInfo, InventoryEntry, APPROVE_PRUNE_ANNOTATION};
use crate::cluster::{self, ClusterError, Resolver};
use crate::engine::{self, tenancy, Engine, Mode, Rendered};
use crate::rollout::{
    Action, Simulator, APPLIED_HASH_ANNOTATION, COMMIT_ANNOTATION, PROGRESSING_ANNOTATION,
    RELEASE_ANNOTATION,
};
use crate::source::{short_sha, LocalTree, SourceError};

use crate::render::diff::{is_secret, mask_secrets, unified, LAST_APPLIED_ANNOTATION};

/// What to compare the cluster with.
#[derive(Debug, Clone)]
pub enum DiffSource {
    /// The commit the channel's `spec.git.ref` points to now, fetched like the operator does.
    Channel,
    /// The files in this directory, as if they were the channel's `spec.git.path`.
    Local(PathBuf),
}

/// Why a diff could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// The cluster or the channel could not be read.
    #[error(transparent)]
    Cli(#[from] super::CliError),
    /// A stage of the pipeline failed, or refused the commit as the controller would.
    #[error("{}", engine_message(.0))]
    Engine(#[from] engine::Error),
    /// The channel acts as a ServiceAccount the user may not impersonate: a
    /// diff as the user would show what the user may do, not what the channel may.
    #[error("channel {channel} acts as ServiceAccount {account}, which you may not impersonate: the diff would not show what the channel may do; ask for 'impersonate' on serviceaccounts/{name} in namespace {namespace}, or run the diff with credentials that have it")]
    MayNotImpersonate {
        /// `namespace/name` of the channel.
        channel: String,
        /// `namespace/name` of the ServiceAccount.
        account: String,
        /// Its name.
        name: String,
        /// Its namespace.
        namespace: String,
    },
    /// Asking the API server whether the user may impersonate failed.
    #[error("checking whether you may impersonate ServiceAccount {account}: {}", cluster::api_message(.source))]
    AccessReview {
        /// `namespace/name` of the ServiceAccount.
        account: String,
        /// The client error.
        source: kube::Error,
    },
}

impl DiffError {
    /// The controller's reason when it would refuse the same commit for the same cause.
    pub fn reason(&self) -> &'static str {
        match self {
            DiffError::Cli(_) => "ChannelUnreadable",
            DiffError::Engine(e) => e.reason(),
            DiffError::MayNotImpersonate { .. } => "ImpersonationForbidden",
            DiffError::AccessReview { .. } => "AccessReviewFailed",
        }
    }
}

/// An engine error as the diff prints it: a refusal names the controller's reason.
fn engine_message(e: &engine::Error) -> String {
    if e.is_stalled() {
        refusal(e.reason(), &e.to_string())
    } else {
        e.to_string()
    }
}

/// The words of a refusal, with the controller's reason and message.
pub fn refusal(reason: &str, message: &str) -> String {
    format!("the controller would refuse this commit ({reason}): {message}")
}

/// What delivering the release does to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// It does not exist yet.
    Create,
    /// It exists and some field changes.
    Configure,
    /// Applying it changes nothing.
    Unchanged,
    /// The release no longer declares it: it is deleted.
    Prune,
    /// A serving revision that the release replaces: scaled to zero after promotion.
    Drain,
    /// A revision deleted after the drain: past `keepReleases`, or its workload is gone.
    Retire,
}

impl Change {
    fn marker(self) -> char {
        match self {
            Change::Create => '+',
            Change::Configure => '~',
            Change::Unchanged => '=',
            Change::Prune | Change::Retire => '-',
            Change::Drain => 'v',
        }
    }
}

/// One object's change, with a unified diff of its fields where it has one.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectChange {
    /// What happens.
    pub change: Change,
    /// `group/Kind/namespace/name`.
    pub object: String,
    /// The file it comes from, for applied objects.
    pub file: Option<String>,
    /// Unified diff, live -> after; empty when there is nothing to show.
    pub diff: String,
}

/// The outcome of `kubemint diff`.
#[derive(Debug, Clone)]
pub struct Report {
    /// `namespace/name` of the channel.
    pub channel: String,
    /// What was compared: a commit and its ref, or a directory.
    pub source: String,
    /// The release the source renders to.
    pub release: String,
    /// What the channel has applied now, if anything.
    pub applied: Option<String>,
    /// Every object of the release, then drains and prunes.
    pub changes: Vec<ObjectChange>,
    /// Why the controller would hold this source (the prune guard), if it would.
    pub held: Option<String>,
    /// The controller's reason and message when it would refuse this source
    /// but the plan is still worth showing (the prune guard holds it).
    pub refused: Option<(&'static str, String)>,
}

impl Report {
    /// Whether delivering the source would change anything.
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.change != Change::Unchanged)
    }
}

/// What `kubemint diff` was asked, besides the channel.
pub struct DiffOptions {
    /// What to compare the cluster with.
    pub source: DiffSource,
    /// The kustomize command (`None`: the default).
    pub kustomize: Option<crate::render::KustomizeCommand>,
    /// The limits of one commit.
    pub limits: crate::render::Limits,
    /// The operator's tenancy settings.
    pub policy: tenancy::TenancyPolicy,
}

/// `kubemint diff`: reads channel `name` (in `namespace`, or the context's)
/// and computes its diff, with a git cache in `cache`.
pub async fn run(
    name: &str,
    namespace: Option<String>,
    options: DiffOptions,
    cache: &std::path::Path,
) -> Result<Report, DiffError> {
    let (config, client) = super::connect().await?;
    let channel = super::read_channel(&client, name, namespace).await?;
    let engine = preview_engine(
        config,
        client,
        options.policy,
        options.kustomize,
        options.limits,
        cache,
    );
    diff(&engine, &channel, options.source).await
}

/// The engine of a diff: the user's client (impersonating the channel's
/// ServiceAccount where it has one), a git cache in `cache`, and the
/// operator's tenancy settings as given on the command line. A local
/// `spec.git.url` is read by the user's own git here, not the operator's,
/// so it is not refused (the operator's `--allow-local-sources` is its own).
pub fn preview_engine(
    config: kube::Config,
    client: Client,
    policy: tenancy::TenancyPolicy,
    kustomize: Option<crate::render::KustomizeCommand>,
    limits: crate::render::Limits,
    cache: &std::path::Path,
) -> Engine {
    let policy = tenancy::TenancyPolicy {
        allow_local_sources: true,
        ..policy
    };
    // Nothing listens to the watches' wake-ups: a diff observes once.
    let (wake, _) = tokio::sync::mpsc::unbounded_channel();
    let user = tenancy::Access {
        observer: engine::observe::Observer::start(client.clone(), wake.clone(), None),
        client: client.clone(),
        service_account: None,
    };
    let tenancy = tenancy::Tenancy::new(
        config,
        crate::cluster::throttle::Throttle::unlimited(),
        policy,
        user,
        wake,
    );
    Engine::new(
        client,
        crate::source::GitCache::new(cache),
        tenancy,
        kustomize,
        limits,
    )
}

/// Computes what delivering `source` to `channel` would change, with the
/// pipeline of `engine` in preview mode. Reads the cluster and git; writes nothing.
pub async fn diff(
    engine: &Engine,
    channel: &Channel,
    source: DiffSource,
) -> Result<Report, DiffError> {
    may_impersonate(engine, channel).await?;
    let (release, commit, described) = match source {
        DiffSource::Channel => {
            let fetched = engine
                .fetch(channel, Some(std::time::Instant::now()))
                .await?;
            let release = engine.render_release(channel, &fetched).await?;
            let described = format!(
                "commit {} \"{}\" ({})",
                short_sha(&fetched.commit.sha),
                fetched.commit.subject,
                fetched.reference
            );
            (release, fetched.commit.sha, described)
        }
        DiffSource::Local(dir) => {
            let described = format!("files in {}", dir.display());
            let options = crate::render::RenderOptions {
                path: ".".into(),
                namespace: Some(channel.target_namespace()),
                kustomize: engine.kustomize().cloned(),
                limits: *engine.limits(),
            };
            let limits = *engine.limits();
            // With the rest of the checkout, so an overlay reaches its base.
            let release = tokio::task::spawn_blocking(move || {
                LocalTree::read(&dir, &limits)?.render_release(&options)
            })
            .await
            .map_err(|e| engine::Error::Source(SourceError::Task(e.to_string())))?
            .map_err(engine::Error::from)?;
            (release, "local".to_string(), described)
        }
    };
    let info = CommitInfo {
        sha: commit.clone(),
        ..CommitInfo::default()
    };
    let rendered = engine.prepare(channel, &release, info).await?;
    // A held commit is still shown (what it would prune is the point); any
    // other refusal ends the diff with the controller's reason and message.
    let refused = match engine.gates(channel, &rendered) {
        Ok(()) => None,
        Err(e @ engine::Error::PruneHeld { .. }) => Some((e.reason(), e.to_string())),
        Err(e) => return Err(e.into()),
    };
    let held = refused.as_ref().and_then(|_| {
        let hold = crate::rollout::channel_prune_hold(channel, &commit, &rendered.desired.inventory())?;
        let approve = match commit.as_str() {
            "local" => "once committed, approve that commit".to_string(),
            sha => format!(
                "approve with: kubectl annotate channel {} -n {} {APPROVE_PRUNE_ANNOTATION}={sha}",
                channel.name_any(),
                channel.namespace().unwrap_or_default()
            ),
        };
        Some(format!(
            "by the prune guard: it would prune {}, more than spec.pruneGuard.maxFraction ({:.0}%); {approve}",
            hold.describe(),
            hold.max_fraction * 100.0
        ))
    });
    let changes = compare_with_cluster(engine, channel, &rendered).await?;
    let status = channel.status.clone().unwrap_or_default();
    let applied = status.last_applied_commit.map(|c| {
        let release = status.active_release.unwrap_or_else(|| "none".into());
        format!(
            "commit {} \"{}\", release {release}",
            short_sha(&c.sha),
            c.subject
        )
    });
    Ok(Report {
        channel: channel.key(),
        source: described,
        release: release.id,
        applied,
        changes,
        held,
        refused,
    })
}

/// Gate of the CLI: a channel acting as a ServiceAccount is previewed as that
/// account, so the user must be allowed to impersonate it.
async fn may_impersonate(engine: &Engine, channel: &Channel) -> Result<(), DiffError> {
    let Some(name) = tenancy::service_account(channel, engine.tenancy().policy()) else {
        return Ok(());
    };
    let namespace = channel.namespace().unwrap_or_default();
    let account = format!("{namespace}/{name}");
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.clone()),
                verb: Some("impersonate".into()),
                resource: Some("serviceaccounts".into()),
                name: Some(name.to_string()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let answer = Api::<SelfSubjectAccessReview>::all(engine.client().clone())
        .create(&PostParams::default(), &review)
        .await
        .map_err(|source| DiffError::AccessReview {
            account: account.clone(),
            source,
        })?;
    if answer.status.is_some_and(|s| s.allowed) {
        return Ok(());
    }
    Err(DiffError::MayNotImpersonate {
        channel: channel.key(),
        account,
        name: name.to_string(),
        namespace,
    })
}

/// What the plans of a preview, from now to promotion, do to the cluster.
#[derive(Debug, Default)]
pub struct Promotion<'p> {
    /// Every object applied on the way, revisions first, each with the file
    /// and the manifest it is applied as last.
    pub writes: Vec<(InventoryEntry, String, &'p Value)>,
    /// Revisions scaled to zero or deleted (`Drain`, `Retire`), by object;
    /// a revision drained and then deleted is `Retire`.
    pub retired: Vec<(Change, String)>,
    /// Objects pruned.
    pub pruned: Vec<InventoryEntry>,
}

/// Folds the actions of `plans` (one per pass) into what they do in the end.
pub fn promotion(plans: &[crate::rollout::Plan]) -> Promotion<'_> {
    let mut writes: BTreeMap<InventoryEntry, (usize, String, &Value)> = BTreeMap::new();
    let mut retired: Vec<(Change, String)> = Vec::new();
    let mut pruned = Vec::new();
    for action in plans.iter().flat_map(|p| &p.actions) {
        let (entry, file, manifest) = match action {
            Action::Apply {
                entry,
                file,
                manifest,
                ..
            }
            | Action::Switch {
                entry,
                file,
                manifest,
                ..
            } => (entry.clone(), file.clone(), manifest),
            Action::ApplyRevision {
                namespace,
                name,
                file,
                manifest,
                ..
            } => (revision_entry(namespace, name), file.clone(), manifest),
            Action::Drain {
                namespace, name, ..
            } => {
                retire(&mut retired, Change::Drain, revision_entry(namespace, name));
                continue;
            }
            Action::DeleteRevision { namespace, name } => {
                retire(
                    &mut retired,
                    Change::Retire,
                    revision_entry(namespace, name),
                );
                continue;
            }
            Action::Prune { entry } => {
                pruned.push(entry.clone());
                continue;
            }
            _ => continue,
        };
        let order = writes.len();
        let first = writes.get(&entry).map_or(order, |(o, _, _)| *o);
        writes.insert(entry, (first, file, manifest));
    }
    // Revisions first, as they are created before anything is switched.
    let mut ordered: Vec<_> = writes.into_iter().collect();
    ordered.sort_by_key(|(entry, (order, _, _))| (entry.kind != "ReplicaSet", *order));
    Promotion {
        writes: ordered
            .into_iter()
            .map(|(entry, (_, file, manifest))| (entry, file, manifest))
            .collect(),
        retired,
        pruned,
    }
}

/// Records a revision drained or deleted; a later deletion wins over a drain.
fn retire(retired: &mut Vec<(Change, String)>, change: Change, entry: InventoryEntry) {
    let object = entry.to_string();
    match retired.iter_mut().find(|(_, o)| *o == object) {
        Some(seen) if change == Change::Retire => seen.0 = change,
        Some(_) => {}
        None => retired.push((change, object)),
    }
}

/// The plan of the controller for this release as it will stand once promoted
/// (every new revision ready, the drain over), carried out on the simulator
/// and dry-run against the cluster as the channel's identity.
async fn compare_with_cluster(
    engine: &Engine,
    channel: &Channel,
    rendered: &Rendered,
) -> Result<Vec<ObjectChange>, engine::Error> {
    let seen = engine.observe(channel, rendered, Mode::Preview).await?;
    let client = &seen.access.client;
    let mut simulator = Simulator::new(seen.observed, seen.inventory, seen.now);
    let plans = simulator.converge(&rendered.desired, &seen.settings);
    let promotion = promotion(&plans);
    let mut changes = Vec::new();
    for (entry, file, manifest) in promotion.writes {
        let preview = preview(client, engine.resolver(), rendered, entry, file, manifest).await?;
        changes.push(compare(&preview));
    }
    for object in rendered.desired.objects.iter().filter(|o| !o.copy) {
        let entry = object.entry().to_string();
        if !changes.iter().any(|c| c.object == entry) {
            changes.push(ObjectChange {
                change: Change::Unchanged,
                object: entry,
                file: Some(object.file.clone()),
                diff: String::new(),
            });
        }
    }
    changes.extend(
        promotion
            .retired
            .into_iter()
            .map(|(change, object)| ObjectChange {
                change,
                object,
                file: None,
                diff: String::new(),
            }),
    );
    let label = channel.label_value();
    let outcome =
        cluster::prune(client, engine.resolver(), &promotion.pruned, &label, true).await?;
    changes.extend(outcome.deleted.iter().map(|e| ObjectChange {
        change: Change::Prune,
        object: e.to_string(),
        file: None,
        diff: String::new(),
    }));
    Ok(changes)
}

/// The inventory entry of a minted ReplicaSet.
fn revision_entry(namespace: &str, name: &str) -> InventoryEntry {
    InventoryEntry {
        group: "apps".into(),
        version: "v1".into(),
        kind: "ReplicaSet".into(),
        namespace: Some(namespace.to_string()),
        name: name.to_string(),
    }
}

/// What applying one object would do.
#[derive(Debug, Clone)]
pub struct Preview {
    /// The object.
    pub entry: InventoryEntry,
    /// The file it came from.
    pub file: String,
    /// The object as it is in the cluster now, if it exists.
    pub live: Option<Value>,
    /// The object as the API server would store it (a server-side apply dry
    /// run); `None` when its kind comes from a CRD the release has not installed yet.
    pub predicted: Option<Value>,
}

/// Dry-runs one object and reads its live state; writes nothing.
async fn preview(
    client: &Client,
    resolver: &Resolver,
    rendered: &Rendered,
    entry: InventoryEntry,
    file: String,
    manifest: &Value,
) -> Result<Preview, engine::Error> {
    let Some((ar, _)) = resolver
        .resolve(&entry.group, &entry.version, &entry.kind)
        .await?
    else {
        return Ok(Preview {
            entry,
            file,
            live: None,
            predicted: None,
        });
    };
    let namespace = entry.namespace.as_deref();
    let live = cluster::live_object(client, &ar, namespace, &entry.name)
        .await
        .map_err(|source| ClusterError::Observe {
            what: entry.to_string(),
            source,
        })?;
    let predicted = match cluster::dry_run_object(client, &ar, namespace, manifest).await {
        Ok(o) => Some(o),
        Err(e)
            if cluster::is_missing_namespace(&e)
                && namespace.is_some_and(|ns| rendered.namespaces.iter().any(|d| d == ns)) =>
        {
            None
        }
        Err(source) => {
            return Err(ClusterError::Rejected {
                file,
                object: entry.to_string(),
                source,
            }
            .into())
        }
    };
    let to_value = |o: kube::api::DynamicObject| serde_json::to_value(o).unwrap_or(Value::Null);
    Ok(Preview {
        entry,
        file,
        live: live.map(to_value),
        predicted: predicted.map(to_value),
    })
}

/// Compares one object's live state with the API server's dry-run result.
pub fn compare(preview: &Preview) -> ObjectChange {
    let object = preview.entry.to_string();
    let file = Some(preview.file.clone());
    let secret = is_secret(&preview.entry.group, &preview.entry.kind);
    let Some(predicted) = &preview.predicted else {
        // Its kind comes with this release: the API server cannot check it yet.
        let change = if preview.live.is_some() {
            Change::Configure
        } else {
            Change::Create
        };
        return ObjectChange {
            change,
            object,
            file,
            diff: String::new(),
        };
    };
    let mut after = comparable(predicted);
    let mut before = preview.live.as_ref().map(comparable);
    if secret {
        mask_secrets(before.as_mut(), Some(&mut after));
    }
    let change = match &before {
        None => Change::Create,
        Some(b) if *b == after => Change::Unchanged,
        Some(_) => Change::Configure,
    };
    let diff = match change {
        Change::Unchanged => String::new(),
        _ => unified(before.as_ref(), Some(&after), ("live", "after")),
    };
    ObjectChange {
        change,
        object,
        file,
        diff,
    }
}

/// The object without what the server owns or what changes with every commit
/// anyway: status, bookkeeping metadata, and kubemint's commit and release stamps.
pub fn comparable(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in [
            "managedFields",
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "generation",
            "selfLink",
        ] {
            meta.remove(key);
        }
        if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            annotations.remove(COMMIT_ANNOTATION);
            annotations.remove(RELEASE_ANNOTATION);
            annotations.remove(APPLIED_HASH_ANNOTATION);
            annotations.remove(PROGRESSING_ANNOTATION);
            // kubectl's copy of what it last applied: never kubemint's to change,
            // and on a Secret it holds the values in clear.
            annotations.remove(LAST_APPLIED_ANNOTATION);
            if annotations.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    object
}

/// The report as `kubemint diff` prints it.
pub fn describe(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Channel  {}", report.channel);
    let _ = writeln!(
        out,
        "Source   {}, release {}",
        report.source, report.release
    );
    let _ = writeln!(
        out,
        "Applied  {}",
        report.applied.as_deref().unwrap_or("nothing yet")
    );
    if let Some(held) = &report.held {
        let _ = writeln!(out, "Held     {held}");
    }
    out.push('\n');
    for c in report
        .changes
        .iter()
        .filter(|c| c.change != Change::Unchanged)
    {
        let note = match (c.change, &c.file) {
            (Change::Prune, _) => " (pruned: no longer declared)".to_string(),
            (Change::Drain, _) => " (scaled to 0 after promotion)".to_string(),
            (Change::Retire, _) => {
                " (deleted after the drain: past keepReleases or no longer declared)".to_string()
            }
            (_, Some(file)) => format!(" ({file})"),
            (_, None) => String::new(),
        };
        let _ = writeln!(out, "{} {}{note}", c.change.marker(), c.object);
        for line in c.diff.lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
    let count = |kind: Change| report.changes.iter().filter(|c| c.change == kind).count();
    if report.has_changes() {
        out.push('\n');
    } else {
        out.push_str("No changes: the cluster already runs this release.\n\n");
    }
    let _ = writeln!(
        out,
        "{} to create, {} to change, {} to prune, {} to drain, {} unchanged",
        count(Change::Create),
        count(Change::Configure),
        count(Change::Prune) + count(Change::Retire),
        count(Change::Drain),
        count(Change::Unchanged)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    mod promotion {
        use std::time::Duration;

        use k8s_openapi::jiff::Timestamp;

        use super::super::*;
        use crate::render::{render, EntryKind, RenderOptions, RepoTree, TreeEntry};
        use crate::rollout::{mint, DesiredRelease, Observed, Settings};

        fn workload(name: &str, image: &str) -> Vec<(String, String)> {
            vec![
                (
                    format!("{name}/deploy.yaml"),
                    format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      containers: [{{name: {name}, image: \"{image}\"}}]\n"),
                ),
                (
                    format!("{name}/svc.yaml"),
                    format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  selector: {{app: {name}}}\n  ports: [{{port: 80}}]\n"),
                ),
            ]
        }

        fn desired(files: &[(String, String)], commit: &str) -> DesiredRelease {
            let tree = RepoTree {
                entries: files
                    .iter()
                    .map(|(p, c)| TreeEntry {
                        path: p.clone(),
                        kind: EntryKind::File(c.as_bytes().to_vec()),
                    })
                    .collect(),
            };
            let options = RenderOptions {
                path: ".".into(),
                namespace: Some("shop".into()),
                ..Default::default()
            };
            let release = render(&tree, &options).unwrap();
            let minted = mint(&release, &|_| None);
            DesiredRelease::new(&release.id, commit, "shop.shop", &minted, &|o| {
                Some(o.namespace.clone().unwrap_or_else(|| "shop".into()))
            })
        }

        /// The preview's settings (see `engine::pipeline::rollout_settings`).
        fn preview() -> Settings {
            Settings {
                ready_timeout: Duration::from_secs(u32::MAX.into()),
                test_timeout: Duration::from_secs(u32::MAX.into()),
                drain: Duration::ZERO,
                keep: 2,
                prune: true,
                retry: String::new(),
            }
        }

        #[test]
        fn an_image_bump_that_drops_a_workload_is_shown_as_it_stands_once_promoted() {
            let mut first = workload("web", "web:1");
            first.extend(workload("worker", "worker:1"));
            let a = desired(&first, "c1");
            let b = desired(&workload("web", "web:2"), "c2");
            let now = Timestamp::from_second(1_700_000_000).unwrap();
            let mut cluster = Simulator::new(Observed::default(), Vec::new(), now);
            assert!(Simulator::converged(&cluster.converge(&a, &preview())));
            let old_web = a.revisions.iter().find(|r| r.workload.1 == "web").unwrap();
            let old_worker = a
                .revisions
                .iter()
                .find(|r| r.workload.1 == "worker")
                .unwrap();
            let new_web = &b.revisions[0];

            let plans = cluster.converge(&b, &preview());
            assert!(Simulator::converged(&plans), "promoted in the preview");
            let promotion = promotion(&plans);
            let writes: Vec<String> = promotion
                .writes
                .iter()
                .map(|(e, _, _)| e.to_string())
                .collect();
            assert_eq!(
                writes,
                [
                    format!("apps/ReplicaSet/shop/{}", new_web.name),
                    "Service/shop/web".to_string()
                ],
                "the new revision, then the switch"
            );
            let (_, file, service) = &promotion.writes[1];
            assert_eq!(file, "web/svc.yaml");
            assert_eq!(
                service["spec"]["selector"]["kubemint.io/revision"],
                new_web.hash.as_str(),
                "the Service as it stands once promoted"
            );
            assert_eq!(
                promotion.retired,
                [
                    (
                        Change::Drain,
                        format!("apps/ReplicaSet/shop/{}", old_web.name)
                    ),
                    (
                        Change::Retire,
                        format!("apps/ReplicaSet/shop/{}", old_worker.name)
                    ),
                ],
                "the serving revision drained; the dropped workload's deleted after the drain"
            );
            let pruned: Vec<String> = promotion.pruned.iter().map(|e| e.to_string()).collect();
            assert_eq!(pruned, ["Service/shop/worker"]);
        }
    }

    fn entry(kind: &str, name: &str) -> InventoryEntry {
        InventoryEntry {
            group: String::new(),
            version: "v1".into(),
            kind: kind.into(),
            namespace: Some("shop".into()),
            name: name.into(),
        }
    }

    fn preview(kind: &str, live: Option<Value>, predicted: Option<Value>) -> Preview {
        Preview {
            entry: entry(kind, "web"),
            file: "web/config.yaml".into(),
            live,
            predicted,
        }
    }

    fn config_map(value: &str, commit: &str, resource_version: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {
                "name": "web", "namespace": "shop", "uid": "u-1",
                "resourceVersion": resource_version, "creationTimestamp": "2026-11-25T00:00:00Z",
                "managedFields": [{"manager": "kubemint"}],
                "labels": {"app.kubernetes.io/managed-by": "kubemint"},
                "annotations": {"kubemint.io/commit": commit, "kubemint.io/release": commit}
            },
            "data": {"GREETING": value}
        })
    }

    #[test]
    fn server_bookkeeping_and_commit_stamps_are_not_changes() {
        let live = config_map("hello", "aaaa", "10");
        let after = config_map("hello", "bbbb", "11");
        let c = compare(&preview("ConfigMap", Some(live), Some(after)));
        assert_eq!(c.change, Change::Unchanged);
        assert!(c.diff.is_empty());
    }

    #[test]
    fn a_changed_field_is_a_configure_with_its_lines() {
        let live = config_map("hello", "aaaa", "10");
        let after = config_map("bonjour", "bbbb", "11");
        let c = compare(&preview("ConfigMap", Some(live), Some(after)));
        assert_eq!(c.change, Change::Configure);
        assert!(c.diff.contains("-  GREETING: hello"), "{}", c.diff);
        assert!(c.diff.contains("+  GREETING: bonjour"), "{}", c.diff);
        assert!(!c.diff.contains("resourceVersion"), "{}", c.diff);
        assert!(!c.diff.contains("kubemint.io/commit"), "{}", c.diff);
    }

    #[test]
    fn a_missing_object_is_created_and_shown_whole() {
        let c = compare(&preview(
            "ConfigMap",
            None,
            Some(config_map("hello", "a", "1")),
        ));
        assert_eq!(c.change, Change::Create);
        assert!(c.diff.contains("+  GREETING: hello"), "{}", c.diff);
        assert!(c.diff.contains("+kind: ConfigMap"), "{}", c.diff);
    }

    #[test]
    fn a_kind_from_the_release_s_own_crd_is_created_unchecked() {
        let c = compare(&preview("Widget", None, None));
        assert_eq!(c.change, Change::Create);
        assert!(c.diff.is_empty());
    }

    #[test]
    fn secret_values_never_appear_but_changed_keys_do() {
        let secret = |token: &str, other: &str| {
            let applied = json!({"data": {"token": token}}).to_string();
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": "web", "labels": {"size": token.len().to_string()},
                                "annotations": {LAST_APPLIED_ANNOTATION: applied}},
                   "data": {"token": token, "other": other}})
        };
        let c = compare(&preview(
            "Secret",
            Some(secret("czNjcjN0", "c2FtZQ==")),
            Some(secret("bjN3czNjcmV0", "c2FtZQ==")),
        ));
        assert_eq!(c.change, Change::Configure);
        for value in ["czNjcjN0", "bjN3czNjcmV0", "c2FtZQ=="] {
            assert!(!c.diff.contains(value), "{value} leaked:\n{}", c.diff);
        }
        assert!(c.diff.contains("-  token: '*** (before)'"), "{}", c.diff);
        assert!(c.diff.contains("+  token: '*** (after)'"), "{}", c.diff);
        assert!(c.diff.contains("   other: '***'"), "{}", c.diff);

        let same = compare(&preview(
            "Secret",
            Some(secret("czNjcjN0", "c2FtZQ==")),
            Some(secret("czNjcjN0", "c2FtZQ==")),
        ));
        assert_eq!(same.change, Change::Unchanged);
    }

    #[test]
    fn describe_counts_every_kind_of_change_and_hides_unchanged_objects() {
        let change = |change, object: &str| ObjectChange {
            change,
            object: object.into(),
            file: Some("web/x.yaml".into()),
            diff: String::new(),
        };
        let report = Report {
            channel: "shop/shop".into(),
            source: "files in deploy".into(),
            release: "abc".into(),
            applied: None,
            changes: vec![
                change(Change::Create, "apps/ReplicaSet/shop/web-1"),
                change(Change::Unchanged, "ConfigMap/shop/quiet"),
                change(Change::Configure, "Service/shop/web"),
                change(Change::Drain, "apps/ReplicaSet/shop/web-0"),
                change(Change::Prune, "Service/shop/old"),
                change(Change::Retire, "apps/ReplicaSet/shop/worker-0"),
            ],
            held: None,
            refused: None,
        };
        let text = describe(&report);
        assert!(
            text.contains("+ apps/ReplicaSet/shop/web-1 (web/x.yaml)"),
            "{text}"
        );
        assert!(text.contains("~ Service/shop/web (web/x.yaml)"), "{text}");
        assert!(
            text.contains("v apps/ReplicaSet/shop/web-0 (scaled to 0"),
            "{text}"
        );
        assert!(text.contains("- Service/shop/old (pruned"), "{text}");
        assert!(
            text.contains("- apps/ReplicaSet/shop/worker-0 (deleted after the drain"),
            "{text}"
        );
        assert!(!text.contains("quiet"), "{text}");
        assert!(
            text.contains("1 to create, 1 to change, 2 to prune, 1 to drain, 1 unchanged"),
            "{text}"
        );
        assert!(report.has_changes());

        let quiet = Report {
            changes: vec![change(Change::Unchanged, "ConfigMap/shop/quiet")],
            ..report
        };
        assert!(!quiet.has_changes());
        assert!(describe(&quiet).contains("No changes"));
        assert!(!describe(&quiet).contains("Held"));
        let held = Report {
            held: Some("by the prune guard: it would prune 3 of 4 objects (75%)".into()),
            ..quiet
        };
        assert!(describe(&held).contains("\nHeld     by the prune guard: it would prune 3 of 4"));
    }
}
