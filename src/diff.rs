//! `kubemint diff`: what delivering a channel's next commit (or files on disk)
//! would change in the cluster. Every object is sent as a server-side apply dry
//! run and compared with its live state; prunes are dry-run deletions. Nothing
//! is written.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use kube::Client;
use serde_json::Value;
use similar::TextDiff;

use kube::ResourceExt;

use crate::api::{CommitInfo, InventoryEntry, APPROVE_PRUNE_ANNOTATION};
use crate::cluster::{self, ClusterError, Resolver};
use crate::controller::observe::Observer;
use crate::controller::{self, Channel};
use crate::render::{KustomizeCommand, Limits, Release, RenderError, RenderOptions};
use crate::rollout::{
    self, Action, LiveRevision, Observed, APPLIED_HASH_ANNOTATION, COMMIT_ANNOTATION,
    PROGRESSING_ANNOTATION, RELEASE_ANNOTATION,
};
use crate::source::{short_sha, GitCache, LocalTree, SourceError};

/// Where `kubectl apply` (client-side) keeps the object it last applied.
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

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
    /// Fetching, verifying or rendering the channel's commit failed.
    #[error(transparent)]
    Channel(#[from] controller::Error),
    /// The local directory does not render.
    #[error(transparent)]
    Local(#[from] RenderError),
    /// A dry run or a read of the cluster failed.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The temporary git cache could not be made.
    #[error("creating a temporary git cache: {0}")]
    Cache(#[source] std::io::Error),
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
}

impl Report {
    /// Whether delivering the source would change anything.
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.change != Change::Unchanged)
    }
}

/// Computes what delivering `source` to `channel` would change. Reads the
/// cluster and git; writes nothing. Kustomizations are built with `kustomize`
/// (`None`: the default command).
pub async fn diff(
    client: &Client,
    channel: &Channel,
    source: DiffSource,
    kustomize: Option<&KustomizeCommand>,
    limits: &Limits,
) -> Result<Report, DiffError> {
    let (release, commit, described) = match source {
        DiffSource::Channel => {
            let cache = tempfile::tempdir().map_err(DiffError::Cache)?;
            let git = GitCache::new(cache.path());
            let fetched = controller::source::fetch(&git, client, channel).await?;
            let release =
                controller::source::render(&git, channel, &fetched, kustomize, limits).await?;
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
            let options = RenderOptions {
                path: ".".into(),
                namespace: Some(channel.target_namespace()),
                kustomize: kustomize.cloned(),
                limits: *limits,
            };
            let limits = *limits;
            // With the rest of the checkout, so an overlay reaches its base.
            let release = tokio::task::spawn_blocking(move || {
                LocalTree::read(&dir, &limits)?.render(&options)
            })
            .await
            .map_err(|e| controller::Error::Source(SourceError::Task(e.to_string())))??;
            (release, "local".to_string(), described)
        }
    };
    let label = channel.label_value();
    let (changes, hold) = compare_with_cluster(client, channel, &release, &commit, &label).await?;
    let held = hold.map(|hold| {
        let approve = match commit.as_str() {
            "local" => "once committed, approve that commit".to_string(),
            sha => format!(
                "approve with: kubectl annotate channel {} -n {} {APPROVE_PRUNE_ANNOTATION}={sha}",
                channel.name_any(),
                channel.namespace().unwrap_or_default()
            ),
        };
        format!(
            "by the prune guard: it would prune {}, more than spec.pruneGuard.maxFraction ({:.0}%); {approve}",
            hold.describe(),
            hold.max_fraction * 100.0
        )
    });
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
        channel: label.replacen('.', "/", 1),
        source: described,
        release: release.id,
        applied,
        changes,
        held,
    })
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

/// The plan of the controller for this release as it will stand once promoted
/// (every new revision ready, the drain over), dry-run against the cluster.
async fn compare_with_cluster(
    client: &Client,
    channel: &Channel,
    release: &Release,
    commit: &str,
    label: &str,
) -> Result<(Vec<ObjectChange>, Option<rollout::PruneHold>), DiffError> {
    let resolver = Resolver::new(client.clone());
    let info = CommitInfo {
        sha: commit.to_string(),
        ..CommitInfo::default()
    };
    let rendered = controller::prepare(client, &resolver, channel, release, info).await?;
    // The controller's own view of the cluster: the same reflectors, listed once.
    let (wake, _ignored) = tokio::sync::mpsc::unbounded_channel();
    let observer = Observer::start(client.clone(), wake, None);
    observer
        .watch(&rendered.kinds, &controller::tenancy::Scope::default())
        .await
        .map_err(|u| controller::Error::Unsynced(u.errors))?;
    let observed = observer.snapshot(label, &rendered.kinds);
    let settings = rollout::Settings {
        ready_timeout: Duration::from_secs(u32::MAX.into()),
        test_timeout: Duration::from_secs(u32::MAX.into()),
        drain: Duration::ZERO,
        keep: channel.spec.rollout.keep_releases as usize,
        prune: channel.spec.prune,
        retry: String::new(),
    };
    let inventory = channel.inventory_entries();
    let now = Timestamp::now();
    let first = rollout::plan(&rendered.desired, &observed, &inventory, now, &settings);
    let promoted = rollout::plan(
        &rendered.desired,
        &ready(&observed, &rendered.desired),
        &inventory,
        now,
        &settings,
    );
    let mut previews = Vec::new();
    let mut touched = std::collections::BTreeSet::new();
    let creates = first
        .actions
        .iter()
        .filter(|a| matches!(a, Action::ApplyRevision { .. }));
    let applies = promoted
        .actions
        .iter()
        .filter(|a| matches!(a, Action::Apply { .. } | Action::Switch { .. }));
    for action in creates.chain(applies) {
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
            } => (
                InventoryEntry {
                    group: "apps".into(),
                    version: "v1".into(),
                    kind: "ReplicaSet".into(),
                    namespace: Some(namespace.clone()),
                    name: name.clone(),
                },
                file.clone(),
                manifest,
            ),
            _ => continue,
        };
        touched.insert(entry.clone());
        previews.push(preview(client, &resolver, &rendered, entry, file, manifest).await?);
    }
    let mut changes: Vec<ObjectChange> = previews.iter().map(compare).collect();
    for object in rendered.desired.objects.iter().filter(|o| !o.copy) {
        if !touched.contains(&object.entry()) {
            changes.push(ObjectChange {
                change: Change::Unchanged,
                object: object.entry().to_string(),
                file: Some(object.file.clone()),
                diff: String::new(),
            });
        }
    }
    let mut gone = Vec::new();
    for action in &promoted.actions {
        let (change, object) = match action {
            Action::Drain {
                namespace, name, ..
            } => (Change::Drain, format!("apps/ReplicaSet/{namespace}/{name}")),
            Action::DeleteRevision { namespace, name } => (
                Change::Retire,
                format!("apps/ReplicaSet/{namespace}/{name}"),
            ),
            Action::Prune { entry } => {
                gone.push(entry.clone());
                continue;
            }
            _ => continue,
        };
        changes.push(ObjectChange {
            change,
            object,
            file: None,
            diff: String::new(),
        });
    }
    let outcome = cluster::prune(client, &resolver, &gone, label, true).await?;
    changes.extend(outcome.deleted.iter().map(|e| ObjectChange {
        change: Change::Prune,
        object: e.to_string(),
        file: None,
        diff: String::new(),
    }));
    let hold = rollout::channel_prune_hold(channel, commit, &rendered.desired.inventory());
    Ok((changes, hold))
}

/// `observed` with every revision the release wants running and ready.
fn ready(observed: &Observed, desired: &rollout::DesiredRelease) -> Observed {
    let mut out = observed.clone();
    for w in &desired.revisions {
        let mut manifest = w.manifest.clone();
        manifest["spec"]["replicas"] = serde_json::json!(w.replicas);
        let hash = rollout::manifest_hash(&manifest);
        out.revisions
            .retain(|r| !(r.namespace == w.namespace && r.name == w.name));
        out.revisions.push(LiveRevision {
            namespace: w.namespace.clone(),
            name: w.name.clone(),
            workload: w.workload.1.clone(),
            hash: w.hash.clone(),
            replicas: w.replicas,
            available: w.replicas,
            ready: w.replicas,
            observed: true,
            created: Timestamp::now(),
            progressing_since: None,
            promoted_at: None,
            drained_at: None,
            failed: None,
            release: None,
            commit: None,
            reads: Vec::new(),
            meta: rollout::LiveObject {
                applied_hash: Some(hash),
                foreign_managers: Vec::new(),
                edited_by: None,
                edits: Vec::new(),
            },
        });
    }
    out
}

/// Dry-runs one object and reads its live state; writes nothing.
async fn preview(
    client: &Client,
    resolver: &Resolver,
    rendered: &controller::Rendered,
    entry: InventoryEntry,
    file: String,
    manifest: &Value,
) -> Result<Preview, DiffError> {
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
    let secret = preview.entry.group.is_empty() && preview.entry.kind == "Secret";
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
        mask_secret_data(before.as_mut(), &mut after);
    }
    let change = match &before {
        None => Change::Create,
        Some(b) if *b == after => Change::Unchanged,
        Some(_) => Change::Configure,
    };
    let diff = match change {
        Change::Unchanged => String::new(),
        _ => unified(before.as_ref(), &after),
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

/// Replaces a Secret's values so the diff says which keys change but never shows
/// a value: `***` when equal, `*** (before)` / `*** (after)` when not.
fn mask_secret_data(before: Option<&mut Value>, after: &mut Value) {
    let old = before
        .as_ref()
        .and_then(|b| b.get("data"))
        .cloned()
        .unwrap_or(Value::Null);
    let new = after.get("data").cloned().unwrap_or(Value::Null);
    let mask = |data: Option<&mut Value>, other: &Value, suffix: &str| {
        let Some(map) = data.and_then(Value::as_object_mut) else {
            return;
        };
        for (key, value) in map.iter_mut() {
            let same = other.get(key) == Some(value) || other.get(key).is_none();
            *value = Value::String(if same {
                "***".into()
            } else {
                format!("*** ({suffix})")
            });
        }
    };
    mask(after.get_mut("data"), &old, "after");
    if let Some(before) = before {
        mask(before.get_mut("data"), &new, "before");
    }
}

fn unified(before: Option<&Value>, after: &Value) -> String {
    let yaml = |v: &Value| serde_yaml::to_string(v).unwrap_or_default();
    let old = before.map(yaml).unwrap_or_default();
    let new = yaml(after);
    TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header("live", "after")
        .to_string()
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
