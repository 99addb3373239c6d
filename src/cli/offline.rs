//! The offline render behind `kubemint plan`: a repository or directory
//! rendered without a cluster, and its release described.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use git2::Repository;

use crate::render::{
    self, is_cluster_scoped_builtin, KustomizeCommand, Limits, Release, RenderError, RenderOptions,
};
use crate::source::{commit_meta, tree_at, CommitMeta, LocalTree};

/// Why an offline render failed.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// The target is a URL: `plan` reads local directories and repositories only.
    #[error("{0}: plan reads local directories and repositories; clone it first (git clone URL DIR && kubemint plan DIR --ref BRANCH)")]
    NotLocal(String),
    /// The rendered objects could not be printed as YAML.
    #[error("printing the objects: {0}")]
    Print(#[from] serde_yaml::Error),
    /// The target directory does not exist.
    #[error("{0}: no such directory")]
    NotFound(PathBuf),
    /// `--ref` was given but the target is not in a git repository, or the ref is unknown.
    #[error("{target}: {message}")]
    Git {
        /// The target as given.
        target: String,
        /// What git said.
        message: String,
    },
    /// Rendering failed.
    #[error(transparent)]
    Render(#[from] RenderError),
}

/// What was rendered, from where.
pub struct OfflineRelease {
    /// The release.
    pub release: Release,
    /// The commit, when rendered from git.
    pub commit: Option<CommitMeta>,
    /// For each workload whose revision ran before: the most recent earlier commit with the same revision.
    pub seen_before: BTreeMap<String, CommitMeta>,
}

/// How many earlier commits are rendered to find revisions that ran before.
const HISTORY_DEPTH: usize = 50;
/// The same for a path built with kustomize: every earlier commit that changed
/// the kustomization is one more kustomize run (some 0.1 s each).
const KUSTOMIZE_HISTORY_DEPTH: usize = 20;

/// `kubemint plan`: renders `target` (a local path or `file://` URL) and
/// returns what it prints: a summary, or with `objects` the rendered objects as YAML.
pub fn output(
    target: &str,
    reference: Option<&str>,
    path: &str,
    objects: bool,
    kustomize: Option<&KustomizeCommand>,
    limits: &Limits,
) -> Result<String, OfflineError> {
    let Some(dir) = crate::source::local_path(target) else {
        return Err(OfflineError::NotLocal(crate::source::redact_url(target)));
    };
    let rendered = render_offline(&dir, reference, path, kustomize, limits)?;
    if !objects {
        return Ok(describe(&rendered));
    }
    let mut out = String::new();
    for o in &rendered.release.objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&o.manifest)?);
    }
    Ok(out)
}

/// Renders `target` (a directory, or with `reference` a git repository at that ref) at `path`.
/// Kustomizations are built with `kustomize` (default: [`KustomizeCommand::default_command`]).
pub fn render_offline(
    target: &Path,
    reference: Option<&str>,
    path: &str,
    kustomize: Option<&KustomizeCommand>,
    limits: &Limits,
) -> Result<OfflineRelease, OfflineError> {
    if !target.is_dir() {
        return Err(OfflineError::NotFound(target.to_path_buf()));
    }
    let repo = Repository::discover(target).ok();
    // A directory inside a work tree renders that directory of the commit.
    let prefix = repo
        .as_ref()
        .and_then(Repository::workdir)
        .and_then(|w| {
            let inside = target.canonicalize().ok()?;
            inside
                .strip_prefix(w.canonicalize().ok()?)
                .ok()
                .map(Path::to_path_buf)
        })
        .unwrap_or_default();
    let repo_path = prefix.join(path).to_string_lossy().into_owned();
    let options = |path: &str| RenderOptions {
        path: path.to_string(),
        namespace: None,
        kustomize: kustomize.cloned(),
        limits: *limits,
    };

    let Some(reference) = reference else {
        // The files on disk, with the rest of the checkout for kustomize bases.
        let release = LocalTree::read(target, limits)?.render_release(&options(path))?;
        // Files on disk are compared with every commit up to HEAD.
        let head = repo
            .as_ref()
            .and_then(|r| r.head().ok()?.peel_to_commit().ok());
        let seen_before = match (&repo, head) {
            (Some(repo), Some(head)) => {
                earlier_revisions(repo, head, true, &repo_path, &release, kustomize, limits)
            }
            _ => BTreeMap::new(),
        };
        return Ok(OfflineRelease {
            release,
            commit: None,
            seen_before,
        });
    };
    let git_err = |e: git2::Error| OfflineError::Git {
        target: target.display().to_string(),
        message: e.message().to_string(),
    };
    let repo = repo.ok_or_else(|| OfflineError::Git {
        target: target.display().to_string(),
        message: "not in a git repository; --ref needs one".to_string(),
    })?;
    let commit = repo
        .revparse_single(reference)
        .and_then(|o| o.peel_to_commit())
        .map_err(git_err)?;
    let tree = tree_at(&repo, commit.id(), limits, &repo_path).map_err(git_err)?;
    let release = render::render(&tree, &options(&repo_path))?;
    let seen_before = earlier_revisions(
        &repo,
        commit.clone(),
        false,
        &repo_path,
        &release,
        kustomize,
        limits,
    );
    Ok(OfflineRelease {
        release,
        commit: Some(commit_meta(&commit)),
        seen_before,
    })
}

/// For each workload of `release`, the most recent commit before `start` whose
/// render has the same revision. With `from_work_tree`, `start` is HEAD and the
/// files on disk are being planned: workloads unchanged since HEAD are not news.
fn earlier_revisions(
    repo: &Repository,
    start: git2::Commit<'_>,
    from_work_tree: bool,
    path: &str,
    release: &Release,
    kustomize: Option<&KustomizeCommand>,
    limits: &Limits,
) -> BTreeMap<String, CommitMeta> {
    let mut wanted: BTreeMap<&str, &str> = release
        .workloads
        .iter()
        .map(|w| (w.name.as_str(), w.hash.as_str()))
        .collect();
    let mut found = BTreeMap::new();
    let mut commit = if from_work_tree {
        Some(start)
    } else {
        start.parent(0).ok()
    };
    let mut at_head = from_work_tree;
    let depth = match release.kustomize {
        Some(_) => KUSTOMIZE_HISTORY_DEPTH,
        None => HISTORY_DEPTH,
    };
    for _ in 0..depth {
        let Some(current) = commit else { break };
        if wanted.is_empty() {
            break;
        }
        // Commits that do not render (broken, or before the path existed) are skipped.
        let earlier = tree_at(repo, current.id(), limits, path)
            .ok()
            .and_then(|tree| {
                let options = RenderOptions {
                    path: path.to_string(),
                    namespace: None,
                    kustomize: kustomize.cloned(),
                    limits: *limits,
                };
                render::render(&tree, &options).ok()
            });
        for w in earlier.iter().flat_map(|r| &r.workloads) {
            if wanted.get(w.name.as_str()) == Some(&w.hash.as_str()) {
                wanted.remove(w.name.as_str());
                if !at_head {
                    found.insert(w.name.clone(), commit_meta(&current));
                }
            }
        }
        at_head = false;
        commit = current.parent(0).ok();
    }
    found
}

/// Describes a plan for a terminal: the release, its objects, workloads and images.
pub fn describe(plan: &OfflineRelease) -> String {
    let release = &plan.release;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Release {} ({} objects)",
        release.id,
        release.objects.len()
    );
    if let Some(c) = &plan.commit {
        let _ = writeln!(
            out,
            "Commit  {} {} ({}, {})",
            &c.sha[..12.min(c.sha.len())],
            c.subject,
            c.author,
            c.time
        );
    }
    if let Some(build) = &release.kustomize {
        let _ = writeln!(
            out,
            "Built   with {} from {}",
            build.describe(),
            build.kustomizations.join(", ")
        );
    }
    let _ = writeln!(out, "\nObjects (in apply order):");
    let rows: Vec<[String; 4]> = release
        .objects
        .iter()
        .map(|o| {
            let ns = match &o.namespace {
                Some(ns) => ns.clone(),
                None if is_cluster_scoped_builtin(o.group(), &o.kind) => "-".to_string(),
                None => "(target)".to_string(),
            };
            [o.kind.clone(), ns, o.name.clone(), o.file.clone()]
        })
        .collect();
    write_table(&mut out, ["KIND", "NAMESPACE", "NAME", "FILE"], &rows);
    let minted = crate::rollout::mint(release, &|_| None);
    if !minted.revisions.is_empty() {
        let _ = writeln!(out, "\nMinted (immutable, one per revision):");
        for r in &minted.revisions {
            let _ = writeln!(out, "  ReplicaSet {}", r.summary());
        }
        for (_, kind, name) in &minted.config_copies {
            let _ = writeln!(out, "  {kind} {name} (immutable copy)");
        }
    }
    if !minted.autoscalers.is_empty() || !minted.hooks.is_empty() {
        let _ = writeln!(out, "\nRollout:");
        for (index, a) in &minted.autoscalers {
            let hpa = &minted.objects[*index];
            let target = minted
                .revisions
                .iter()
                .find(|r| r.key() == a.workload)
                .map_or("?", |r| r.replica_set.name.as_str());
            let _ = writeln!(
                out,
                "  HorizontalPodAutoscaler {} targets ReplicaSet {target} once it serves (min {}, max {}; a new revision starts at the serving size)",
                hpa.name, a.min, a.max
            );
        }
        for job in &minted.hooks {
            let _ = writeln!(
                out,
                "  Job {}-{} runs before the switch (pre-promotion test, {})",
                job.name, release.id, job.file
            );
        }
    }
    if !release.workloads.is_empty() {
        let _ = writeln!(out, "\nWorkloads:");
        for w in &release.workloads {
            let _ = write!(out, "  {} {}  revision {}", w.kind, w.name, w.hash);
            match plan.seen_before.get(&w.name) {
                Some(c) => {
                    let sha = &c.sha[..12.min(c.sha.len())];
                    let _ = writeln!(out, "  (ran before: {sha} {})", c.subject);
                }
                None => out.push('\n'),
            }
            for c in &w.containers {
                let _ = writeln!(out, "    {}: {}", c.container, c.image);
            }
            for r in &w.config_refs {
                let _ = writeln!(out, "    reads {r}");
            }
        }
    }
    out
}

pub(crate) fn write_table<const N: usize>(
    out: &mut String,
    header: [&str; N],
    rows: &[[String; N]],
) {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |out: &mut String, cells: [&str; N]| {
        let mut text = String::new();
        for (cell, w) in cells.iter().zip(widths) {
            let _ = write!(text, "  {cell:<w$}");
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(out, header);
    for row in rows {
        line(out, std::array::from_fn(|i| row[i].as_str()));
    }
}
