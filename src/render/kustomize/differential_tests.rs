//! Differential tests of the render worker: every kustomization of the
//! corpus builds byte-identical through `kubemint-render-worker` and through
//! the kustomize executable (`kustomize build`, else `kubectl kustomize`) of
//! the same kustomize release, and fails in both when it fails in one.
//!
//! The corpus: `examples/kustomize`, `tests/kustomize-corpus` (overlays shaped
//! like podinfo's and sock-shop's: generators, patches of both kinds,
//! components, `replacements`, `sortOptions`) and the trees of
//! [`super::tests`]. Both need to be on `PATH`: tests/run.sh puts kubectl
//! 1.37.2 (kustomize v5.8.1) and the worker there.

use std::path::{Path, PathBuf};

use super::command::{find_program, KustomizeCommand};
use super::process::{self, Limits as RunLimits};
use super::worker::{self, WorkerError, WORKER_PROGRAM};
use super::{BUILD_TIMEOUT, MAX_OUTPUT};
use crate::render::{render, EntryKind, Release, RenderOptions, RepoTree};

/// The executable the worker is compared with.
fn reference() -> KustomizeCommand {
    KustomizeCommand::executable()
}

fn worker_program() -> PathBuf {
    find_program(WORKER_PROGRAM).unwrap_or_else(|| {
        panic!("{WORKER_PROGRAM} is not on PATH: install it with tools/render-worker/install.sh")
    })
}

/// Every directory under `root` holding a kustomization, sorted.
fn kustomizations(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                pending.push(path);
            } else if path.file_name().is_some_and(|n| {
                ["kustomization.yaml", "kustomization.yml", "Kustomization"]
                    .contains(&n.to_str().unwrap_or(""))
            }) {
                found.push(dir.clone());
            }
        }
    }
    found.sort();
    found
}

/// Writes the files of `tree` under `dest`.
fn write_tree(tree: &RepoTree, dest: &Path) {
    for entry in &tree.entries {
        if let EntryKind::File(bytes) = &entry.kind {
            let path = dest.join(&entry.path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    }
}

/// What one build gave: the YAML stream, or that it failed.
fn through_worker(dir: &Path, root: &Path) -> Result<String, String> {
    match worker::build(&worker_program(), dir, root, MAX_OUTPUT, BUILD_TIMEOUT) {
        Ok(yaml) => Ok(yaml),
        Err(WorkerError::Failed(message)) => Err(message),
        Err(other) => panic!("{}: the worker could not build: {other:?}", dir.display()),
    }
}

fn through_executable(dir: &Path) -> Result<String, String> {
    let command = reference();
    let home = tempfile::tempdir().unwrap();
    let limits = RunLimits {
        timeout: BUILD_TIMEOUT,
        max_output: MAX_OUTPUT,
    };
    let program = command.program().unwrap();
    match process::run(&program, &command.build_args(dir), home.path(), &limits) {
        Ok(out) => Ok(String::from_utf8(out).unwrap()),
        Err(e) => Err(format!("{e:?}")),
    }
}

/// The corpus on disk: (root, kustomization directories), the repository's
/// own files and the trees of the kustomize tests written out.
fn corpus() -> (Vec<(PathBuf, PathBuf)>, tempfile::TempDir) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = Vec::new();
    for root in ["examples/kustomize", "tests/kustomize-corpus"] {
        let root = repo.join(root);
        for dir in kustomizations(&root) {
            dirs.push((root.clone(), dir));
        }
    }
    let written = tempfile::tempdir().unwrap();
    for (name, tree) in [
        ("tests-1.5.0", super::tests::repo("1.5.0", "hi")),
        ("tests-1.6.0", super::tests::repo("1.6.0", "hello there")),
    ] {
        let root = written.path().join(name);
        write_tree(&tree, &root);
        for dir in kustomizations(&root) {
            dirs.push((root.clone(), dir));
        }
    }
    (dirs, written)
}

#[test]
fn every_kustomization_of_the_corpus_builds_byte_identical_through_the_worker() {
    let version = reference().version();
    let worker_version = KustomizeCommand::parse(WORKER_PROGRAM).unwrap().version();
    assert!(worker_version.is_some(), "the worker says its version");
    assert_eq!(
        version,
        worker_version,
        "`{}` is another kustomize release than the worker's: put kubectl 1.37.2 first on PATH \
         (tests/run.sh does)",
        reference()
    );
    let (dirs, _written) = corpus();
    assert!(dirs.len() >= 15, "{dirs:?}");
    let mut built = 0;
    for (root, dir) in &dirs {
        let shown = dir.strip_prefix(root.parent().unwrap()).unwrap().display();
        let (worker, executable) = (through_worker(dir, root), through_executable(dir));
        match (&worker, &executable) {
            (Ok(a), Ok(b)) => {
                assert!(
                    a == b,
                    "{shown}: the worker's output differs:\n{a}\n---\n{b}"
                );
                built += 1;
            }
            (Err(_), Err(_)) => {}
            _ => panic!("{shown}: worker {worker:?}, executable {executable:?}"),
        }
    }
    // Components build only through an overlay; every other one builds.
    assert!(built >= dirs.len() - 2, "built {built} of {}", dirs.len());
}

fn render_with(tree: &RepoTree, path: &str, command: KustomizeCommand) -> Release {
    render(
        tree,
        &RenderOptions {
            path: path.into(),
            kustomize: Some(command),
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn a_release_renders_the_same_through_the_worker_and_the_executable() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let worker = KustomizeCommand::parse(&worker_program().display().to_string()).unwrap();
    for (root, path) in [
        ("examples", "kustomize/overlays/production"),
        ("examples", "kustomize/overlays/dev"),
        ("tests/kustomize-corpus", "podinfo/overlays/staging"),
        ("tests/kustomize-corpus", "sock-shop/overlays/prod-eu"),
    ] {
        let tree = RepoTree::from_dir(&repo.join(root), &Default::default()).unwrap();
        let through_worker = render_with(&tree, path, worker.clone());
        let through_executable = render_with(&tree, path, reference());
        assert_eq!(through_worker.id, through_executable.id, "{path}");
        assert_eq!(
            through_worker.objects.len(),
            through_executable.objects.len(),
            "{path}"
        );
        let build = through_worker.kustomize.unwrap();
        assert!(build.command.ends_with(WORKER_PROGRAM), "{build:?}");
        assert_eq!(build.version, reference().version());
    }
}

#[test]
fn the_worker_refuses_helm_charts_as_the_executable_does_without_enable_helm() {
    // render refuses `helmCharts` before anything runs (see inspect); the
    // worker, asked directly, does not inflate them either.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        "helmCharts:\n  - name: podinfo\n    repo: https://stefanprodan.github.io/podinfo\n    version: 6.7.1\n",
    )
    .unwrap();
    let worker = through_worker(dir.path(), dir.path());
    let executable = through_executable(dir.path());
    assert!(
        worker.is_err() && executable.is_err(),
        "{worker:?} {executable:?}"
    );
    assert!(worker.unwrap_err().contains("helm"));
}
