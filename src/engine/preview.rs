//! A pass in preview mode, for `kubemint diff` (and any other preview): the
//! same fetch, render, prepare, gates and observe as a delivery, the plan
//! carried to promotion on the rollout's [`Simulator`], and every write it
//! would make dry-run against the cluster as the channel's identity, through
//! the same comparison as the executor's ([`changes::dry_run_apply`]).
//! Prunes are dry-run deletions. Nothing is written.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use super::pass::Delivery;
use super::pipeline::{commit_info, Engine, Mode};
use super::{Error, Rendered};
use crate::api::{Channel, CommitInfo, InventoryEntry};
use crate::cluster;
use crate::cluster::changes::{
    self, revision_entry, Change, ChangeAction, ChangeReason, ChangeSet, Target,
};
use crate::rollout::{Action, Plan, Simulator};
use crate::source::{LocalTree, SourceError};

/// What a preview compares the cluster with.
#[derive(Debug, Clone)]
pub enum PreviewSource {
    /// The commit the channel's `spec.git.ref` points to now, fetched like the operator does.
    Channel,
    /// The files in this directory, as if they were the channel's `spec.git.path`.
    Local(PathBuf),
}

/// A previewed pass.
pub struct Preview {
    /// The commit it previews (`sha` is `local` for files on disk).
    pub commit: CommitInfo,
    /// The release, planned to promotion, and what it would change.
    pub delivery: Delivery,
}

impl Engine {
    /// Previews delivering `source` to `channel`: the release as it will
    /// stand once promoted, and every change on the way. A commit the prune
    /// guard holds is still previewed (what it would prune is the point),
    /// with the refusal in [`Delivery::held`].
    ///
    /// # Errors
    ///
    /// Any other refusal of the gates, with the controller's reason and
    /// message; a failed fetch, render or dry run.
    pub async fn preview(
        &self,
        channel: &Channel,
        source: &PreviewSource,
    ) -> Result<Preview, Error> {
        let (release, commit) = match source {
            PreviewSource::Channel => {
                let fetched = self.fetch(channel, Some(std::time::Instant::now())).await?;
                let release = self.render_release(channel, &fetched).await?;
                let commit = CommitInfo {
                    reference: Some(fetched.reference.clone()),
                    ..commit_info(&fetched.commit)
                };
                (release, commit)
            }
            PreviewSource::Local(dir) => {
                let options = crate::render::RenderOptions {
                    path: ".".into(),
                    namespace: Some(channel.target_namespace()),
                    kustomize: self.kustomize().cloned(),
                    limits: *self.limits(),
                };
                let (dir, limits) = (dir.clone(), *self.limits());
                // With the rest of the checkout, so an overlay reaches its base.
                let release = tokio::task::spawn_blocking(move || {
                    LocalTree::read(&dir, &limits)?.render_release(&options)
                })
                .await
                .map_err(|e| Error::Source(SourceError::Task(e.to_string())))??;
                let commit = CommitInfo {
                    sha: "local".into(),
                    ..CommitInfo::default()
                };
                (release, commit)
            }
        };
        let rendered = self.prepare(channel, &release, commit.clone()).await?;
        let held = match self.gates(channel, &rendered) {
            Ok(()) => None,
            Err(e @ Error::PruneHeld { .. }) => Some(e),
            Err(e) => return Err(e),
        };
        let seen = self.observe(channel, &rendered, Mode::Preview).await?;
        let (now, client) = (seen.now, seen.access.client.clone());
        let mut simulator = Simulator::new(seen.observed, seen.inventory, seen.now);
        let mut plans = simulator.converge(&rendered.desired, &seen.settings);
        let changes = self
            .previewed_changes(&client, channel, &rendered, &plans)
            .await?;
        let plan = plans.pop().expect("a preview plans at least one pass");
        Ok(Preview {
            commit,
            delivery: Delivery {
                rendered: Arc::new(rendered),
                plan,
                changes,
                promoted_now: false,
                test: None,
                head_rejected: false,
                now,
                retry: String::new(),
                held,
            },
        })
    }

    /// The changes of `plans` (one per pass, to promotion), dry-run: every
    /// object of the release (applied, or unchanged), then drains, retired
    /// revisions and prunes.
    async fn previewed_changes(
        &self,
        client: &kube::Client,
        channel: &Channel,
        rendered: &Rendered,
        plans: &[Plan],
    ) -> Result<ChangeSet, Error> {
        let promotion = promotion(plans);
        let mut set = ChangeSet::default();
        for (entry, file, manifest) in &promotion.writes {
            set.push(
                self.dry_run(client, rendered, entry, file, manifest)
                    .await?,
            );
        }
        for object in rendered.desired.objects.iter().filter(|o| !o.copy) {
            let entry = object.entry();
            if !set.entries.iter().any(|c| c.object == entry) {
                set.push(
                    Change::new(entry, ChangeAction::Unchanged, ChangeReason::Declared)
                        .in_file(&object.file),
                );
            }
        }
        set.entries.extend(promotion.retired);
        let label = channel.label_value();
        let outcome =
            cluster::prune(client, self.resolver(), &promotion.pruned, &label, true).await?;
        set.entries.extend(
            outcome
                .deleted
                .into_iter()
                .map(|e| Change::new(e, ChangeAction::Deleted, ChangeReason::Pruned)),
        );
        Ok(set)
    }

    /// One object's write, dry-run and compared with its live state.
    async fn dry_run(
        &self,
        client: &kube::Client,
        rendered: &Rendered,
        entry: &InventoryEntry,
        file: &str,
        manifest: &Value,
    ) -> Result<Change, Error> {
        let reason = if entry.kind == "ReplicaSet" && entry.group == "apps" {
            ChangeReason::Revision
        } else {
            ChangeReason::Declared
        };
        let Some((resource, _)) = self
            .resolver()
            .resolve(&entry.group, &entry.version, &entry.kind)
            .await?
        else {
            // Its kind comes with this release: the API server cannot check it yet.
            let live = None::<kube::api::DynamicObject>;
            let action = changes::verdict(live.as_ref(), None);
            return Ok(Change::new(entry.clone(), action, reason).in_file(file));
        };
        let target = Target {
            resource: &resource,
            object: entry,
            file,
            manifest,
            declared_namespaces: &rendered.namespaces,
        };
        let run = changes::dry_run_apply(client, target, true).await?;
        let mut change = Change::new(
            entry.clone(),
            run.verdict.unwrap_or(ChangeAction::Configured),
            reason,
        )
        .in_file(file);
        change.diff = changes::diff_of(entry, &run);
        Ok(change)
    }
}

/// What the plans of a preview, from now to promotion, do to the cluster.
#[derive(Debug, Default)]
pub struct Promotion<'p> {
    /// Every object applied on the way, revisions first, each with the file
    /// and the manifest it is applied as last.
    pub writes: Vec<(InventoryEntry, String, &'p Value)>,
    /// Revisions scaled to zero or deleted, by object; a revision drained and
    /// then deleted counts as deleted.
    pub retired: Vec<Change>,
    /// Objects pruned.
    pub pruned: Vec<InventoryEntry>,
}

/// Folds the actions of `plans` (one per pass) into what they do in the end.
pub fn promotion(plans: &[Plan]) -> Promotion<'_> {
    let mut writes: BTreeMap<InventoryEntry, (usize, String, &Value)> = BTreeMap::new();
    let mut retired: Vec<Change> = Vec::new();
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
                retire(
                    &mut retired,
                    Change::new(
                        revision_entry(namespace, name),
                        ChangeAction::ScaledDown,
                        ChangeReason::Drain,
                    ),
                );
                continue;
            }
            Action::DeleteRevision { namespace, name } => {
                retire(
                    &mut retired,
                    Change::new(
                        revision_entry(namespace, name),
                        ChangeAction::Deleted,
                        ChangeReason::Retired,
                    ),
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
fn retire(retired: &mut Vec<Change>, change: Change) {
    match retired.iter_mut().find(|c| c.object == change.object) {
        Some(seen) if change.action == ChangeAction::Deleted => *seen = change,
        Some(_) => {}
        None => retired.push(change),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::cluster::changes::ChangeAction;
    use crate::rollout::{DesiredRelease, Observed, Settings};

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
        crate::rollout::testing::desired_of(files, "shop", commit, "shop.shop").0
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
        let retired: Vec<(ChangeAction, String)> = promotion
            .retired
            .iter()
            .map(|c| (c.action, c.object.to_string()))
            .collect();
        assert_eq!(
            retired,
            [
                (
                    ChangeAction::ScaledDown,
                    format!("apps/ReplicaSet/shop/{}", old_web.name)
                ),
                (
                    ChangeAction::Deleted,
                    format!("apps/ReplicaSet/shop/{}", old_worker.name)
                ),
            ],
            "the serving revision drained; the dropped workload's deleted after the drain"
        );
        let pruned: Vec<String> = promotion.pruned.iter().map(|e| e.to_string()).collect();
        assert_eq!(pruned, ["Service/shop/worker"]);
    }
}
