//! Repository tree -> validated release. No cluster, no I/O beyond reading a directory.
//!
//! The pipeline, one file per step: [`tree`] (the input), `walk` (files under
//! the path, symlinks resolved inside the tree), `parse` (YAML/JSON documents),
//! `manifest` (required fields), `images` (`images.yaml` overrides), `defaults`
//! (list-map keys server-side apply needs), `release` and `hash` (ids and
//! revision hashes). Every problem is collected so one failed sync reports all.
//! A directory holding a kustomization is built by `kustomize` (confined to the
//! tree: `kustomize/`) and its output goes through the same steps.
//! [`diff`] compares objects and releases for people, Secret values masked
//! (`kubemint diff` and the UI's release page).

mod defaults;
pub mod diff;
mod error;
mod hash;
mod images;
mod kustomize;
mod limits;
mod manifest;
mod object;
mod parse;
mod pods;
mod release;
mod selector;
mod tree;
mod walk;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use crate::api::ObjectId;

pub use error::{KustomizeFailure, Problem, RenderError};
pub use kustomize::{KustomizeBuild, KustomizeCommand, BUILD_TIMEOUT, MAX_OUTPUT};
pub use limits::{
    parse_size, Budget, Limits, DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_OBJECTS,
    DEFAULT_MAX_RELEASE_BYTES,
};
pub use object::{apply_stage, is_cluster_scoped_builtin, Object};
pub use pods::{pod_spec, pod_spec_mut};
pub use release::{
    config_hash, referenced_configs, visit_config_refs, ContainerImage, Release, Workload,
};
pub use tree::{EntryKind, RepoTree, TreeEntry};

/// What to render.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderOptions {
    /// `spec.git.path`: `deploy`, `./deploy`, `""` or `.` for the repository root.
    pub path: String,
    /// The namespace objects without one are delivered to (a channel's
    /// `targetNamespace`), when known: workloads, Services and the config they
    /// read are then paired whether or not they spell it out. `None` (`plan`):
    /// pairs only by the namespace as written.
    pub namespace: Option<String>,
    /// The kustomize command for directories holding a kustomization; `None`:
    /// [`KustomizeCommand::default_command`].
    pub kustomize: Option<KustomizeCommand>,
    /// What one commit may make render hold.
    pub limits: Limits,
}

/// One input of a release, in path order: a manifest file or a kustomization.
enum Input<'t, 'a> {
    File(&'t walk::SourceFile<'a>),
    Kustomization(&'t walk::KustomizationDir),
}

impl Input<'_, '_> {
    fn path(&self) -> &str {
        match self {
            Input::File(f) => &f.path,
            Input::Kustomization(k) => &k.file,
        }
    }
}

/// Renders the tree at `opts.path` and validates it.
///
/// Returns every problem found, not just the first, as [`RenderError::Invalid`].
/// A path that renders no objects is [`RenderError::Empty`], never an empty
/// release, so a bad commit can never prune everything.
pub fn render(tree: &RepoTree, opts: &RenderOptions) -> Result<Release, RenderError> {
    let path = walk::normalize(opts.path.trim())
        .ok_or_else(|| RenderError::PathNotFound(opts.path.clone()))?;
    let collected = walk::collect(tree, &path)?;
    let limits = &opts.limits;
    // A file needed but left unread (over a limit) rejects the commit before anything is parsed.
    if let Some((file, size)) = collected.unread.first() {
        return Err(limits.unread(file, *size));
    }
    let mut problems = collected.problems;
    let index = walk::Index::new(tree);
    let command = opts
        .kustomize
        .clone()
        .unwrap_or_else(KustomizeCommand::default_command);

    let (overrides, images_file) = match &collected.images {
        Some(file) => match parse::decode(&file.path, file.bytes) {
            Ok(text) => {
                let (overrides, found) = images::parse_images(&file.path, text);
                problems.extend(found);
                (overrides, Some(file.path.clone()))
            }
            Err(p) => {
                problems.push(p);
                (Vec::new(), Some(file.path.clone()))
            }
        },
        None => (Vec::new(), None),
    };
    let mut used = vec![false; overrides.len()];
    // Kustomization directories the builds reached, for the release's inputs.
    let mut reached: Vec<String> = Vec::new();

    let mut inputs: Vec<Input> = collected.manifests.iter().map(Input::File).collect();
    inputs.extend(collected.kustomizations.iter().map(Input::Kustomization));
    inputs.sort_by(|a, b| a.path().cmp(b.path()));

    let mut objects: Vec<Object> = Vec::new();
    let mut seen: HashMap<ObjectId, (String, Option<usize>)> = HashMap::new();
    // Bytes parsed so far: manifest files and kustomize output.
    let mut rendered: u64 = 0;
    for input in &inputs {
        let (file, documents) = match input {
            Input::File(file) => {
                rendered += file.bytes.len() as u64;
                if rendered > limits.max_release_bytes {
                    return Err(RenderError::ReleaseTooLarge {
                        file: file.path.clone(),
                        limit: limits.max_release_bytes,
                    });
                }
                (
                    &file.path,
                    parse::decode(&file.path, file.bytes)
                        .and_then(|text| parse::parse(&file.path, text)),
                )
            }
            Input::Kustomization(unit) => {
                // A kustomize failure rejects the commit whole, like any invalid file.
                let budget = limits.max_release_bytes.saturating_sub(rendered);
                let stream =
                    kustomize::build(&index, unit, &command, limits, budget, &mut reached)?;
                rendered += stream.len() as u64;
                // Lines of kustomize's output mean nothing in the repository.
                let docs = parse::parse(&unit.file, &stream).map(|docs| {
                    docs.into_iter()
                        .map(|d| parse::Document { line: None, ..d })
                        .collect()
                });
                (&unit.file, docs)
            }
        };
        let documents = match documents {
            Ok(docs) => docs,
            Err(p) => {
                problems.push(p);
                continue;
            }
        };
        for doc in documents {
            let items = match manifest::expand_list(file, doc.line, doc.value) {
                Ok(items) => items,
                Err(p) => {
                    problems.push(p);
                    continue;
                }
            };
            for item in items {
                let mut obj = match manifest::to_object(file, doc.line, item) {
                    Ok(obj) => obj,
                    Err(p) => {
                        problems.push(p);
                        continue;
                    }
                };
                problems.extend(selector::check(file, doc.line, &obj));
                if let Some(target) = &opts.namespace {
                    obj.settle_namespace(target);
                }
                let key = obj.key();
                if let Some((first_file, first_line)) = seen.get(&key) {
                    let at = first_line.map(|l| format!(":{l}")).unwrap_or_default();
                    problems.push(Problem::at(
                        file,
                        doc.line,
                        None,
                        format!("duplicate object {key}: already defined in {first_file}{at}; declare each object once"),
                    ));
                    continue;
                }
                seen.insert(key, (file.clone(), doc.line));
                if seen.len() > limits.max_objects {
                    return Err(RenderError::TooManyObjects {
                        file: file.clone(),
                        limit: limits.max_objects,
                    });
                }
                images::apply_images(&mut obj, &overrides, &mut used);
                defaults::apply_defaults(&mut obj);
                objects.push(obj);
            }
        }
    }

    // With no objects at all every override is "unused"; the emptiness is the news.
    if let (Some(file), false) = (&images_file, objects.is_empty()) {
        problems.extend(images::unused_problems(file, &overrides, &used));
    }
    if !problems.is_empty() {
        // Stable: problems of one file stay in the order they were found.
        problems.sort_by(|a, b| a.file.cmp(&b.file));
        return Err(RenderError::Invalid(problems));
    }
    if objects.is_empty() {
        let shown = if path.is_empty() { "." } else { path.as_str() };
        return Err(RenderError::Empty(shown.to_string()));
    }

    // Already in (file, document) order; a stable sort keeps that within a stage.
    objects.sort_by_key(apply_stage);
    let kustomize = (!collected.kustomizations.is_empty()).then(|| KustomizeBuild {
        command: command.to_string(),
        version: command.version(),
        kustomizations: collected
            .kustomizations
            .iter()
            .map(|k| k.file.clone())
            .collect(),
    });
    Ok(Release {
        id: release::release_id(&objects),
        workloads: release::workloads(&objects),
        objects,
        kustomize,
        inputs: index.inputs(&path, &reached),
    })
}
