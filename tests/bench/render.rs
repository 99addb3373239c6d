//! The render benchmark (issue 25): how long one kustomization takes to build
//! through the render worker (`kubemint-render-worker`, one long-lived
//! process) and through a fork of `kubectl kustomize` (one process per
//! build), on the same corpus, side by side; and the worker's memory.
//!
//! `cargo bench --bench render [-- N]` (default N = 100): the kustomizations
//! of tests/kustomize-corpus and examples/kustomize, and N overlays of one
//! shared base shaped like the monorepo (`resources: [../../base]`,
//! `namePrefix`, `labels`, a `configMapGenerator` and `images`). Each is
//! built once per way (the memo of rendered outputs is keyed by the
//! command, so neither way serves the other). Needs both on PATH (as
//! tests/run.sh sets it). Prints figures; asserts only that both ways agree.

#[path = "process.rs"]
mod process;

use std::path::Path;
use std::time::{Duration, Instant};

use kubemint::render::{render, EntryKind, KustomizeCommand, RenderOptions, RepoTree, TreeEntry};

const WORKER: &str = "kubemint-render-worker";

fn file(path: String, text: String) -> TreeEntry {
    TreeEntry {
        path,
        kind: EntryKind::File(text.into_bytes()),
    }
}

/// N overlays of one base, as a monorepo of apps keeps them.
fn monorepo(n: usize) -> RepoTree {
    let mut entries = vec![
        file(
            "base/kustomization.yaml".into(),
            "resources: [deployment.yaml, service.yaml]\nconfigMapGenerator:\n  - name: app-config\n    literals: [GREETING=hello, LEVEL=info]\n".into(),
        ),
        file(
            "base/deployment.yaml".into(),
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: app}}\n  template:\n    metadata: {labels: {app: app}}\n    spec:\n      containers:\n        - name: app\n          image: ghcr.io/acme/app:1.0.0\n          envFrom: [{configMapRef: {name: app-config}}]\n".into(),
        ),
        file(
            "base/service.yaml".into(),
            "apiVersion: v1\nkind: Service\nmetadata: {name: app}\nspec:\n  selector: {app: app}\n  ports: [{port: 80}]\n".into(),
        ),
    ];
    for i in 0..n {
        entries.push(file(
            format!("apps/app-{i:04}/kustomization.yaml"),
            format!("resources: [../../base]\nnamePrefix: app-{i:04}-\nlabels:\n  - pairs: {{team: t{}}}\n    includeSelectors: true\nimages:\n  - name: ghcr.io/acme/app\n    newTag: \"1.0.{i}\"\n", i % 10),
        ));
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    RepoTree { entries }
}

/// Renders `path` of `tree` with `command`; the wall time.
fn time(tree: &RepoTree, path: &str, command: &KustomizeCommand) -> (Duration, String) {
    let options = RenderOptions {
        path: path.into(),
        kustomize: Some(command.clone()),
        ..Default::default()
    };
    let started = Instant::now();
    let release = render(tree, &options).unwrap_or_else(|e| panic!("{path} with `{command}`: {e}"));
    (started.elapsed(), release.id)
}

/// The running workers started by this process.
fn workers() -> Vec<u32> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((comm, rest)) = stat.split_once(") ") else {
            continue;
        };
        let ppid = rest.split(' ').nth(1).unwrap_or("");
        if ppid == me && WORKER.starts_with(comm.rsplit_once('(').map_or("", |c| c.1)) {
            found.push(pid);
        }
    }
    found
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map_or(100, |a| a.parse().expect("N: a number of overlays"));
    let worker = KustomizeCommand::parse(WORKER).unwrap();
    let kubectl = KustomizeCommand::parse("kubectl kustomize").unwrap();
    println!(
        "render worker: {}; executable: {}",
        worker
            .version()
            .expect("kubemint-render-worker on PATH (tools/render-worker/install.sh)"),
        kubectl.version().unwrap_or_default()
    );
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut corpus: Vec<(RepoTree, Vec<String>)> = Vec::new();
    for (root, paths) in [
        (
            "examples",
            vec!["kustomize/overlays/dev", "kustomize/overlays/production"],
        ),
        (
            "tests/kustomize-corpus",
            vec![
                "podinfo/base",
                "podinfo/overlays/staging",
                "podinfo/overlays/production",
                "sock-shop/base",
                "sock-shop/overlays/dev",
                "sock-shop/overlays/prod",
                "sock-shop/overlays/prod-eu",
            ],
        ),
    ] {
        let tree = RepoTree::from_dir(&repo.join(root), &Default::default()).unwrap();
        corpus.push((tree, paths.into_iter().map(str::to_string).collect()));
    }
    corpus.push((
        monorepo(n),
        (0..n).map(|i| format!("apps/app-{i:04}")).collect(),
    ));

    println!("{:<40} {:>12} {:>12}", "kustomization", "worker", "kubectl");
    let (mut total_worker, mut total_kubectl, mut count) = (Duration::ZERO, Duration::ZERO, 0u32);
    let (mut first_worker, mut apps_worker, mut apps_kubectl) =
        (None, Duration::ZERO, Duration::ZERO);
    for (tree, paths) in &corpus {
        for path in paths {
            let (w, id_w) = time(tree, path, &worker);
            let (k, id_k) = time(tree, path, &kubectl);
            assert_eq!(
                id_w, id_k,
                "{path}: the worker and kubectl render other releases"
            );
            first_worker.get_or_insert(w);
            if path.starts_with("apps/") {
                apps_worker += w;
                apps_kubectl += k;
            } else {
                println!("{path:<40} {:>12} {:>12}", ms(w), ms(k));
            }
            total_worker += w;
            total_kubectl += k;
            count += 1;
        }
    }
    let per = |d: Duration, n: u32| d / n.max(1);
    println!(
        "{:<40} {:>12} {:>12}",
        format!("{n} monorepo overlays, each"),
        ms(per(apps_worker, n as u32)),
        ms(per(apps_kubectl, n as u32))
    );
    println!(
        "{:<40} {:>12} {:>12}",
        format!("all {count}, each"),
        ms(per(total_worker, count)),
        ms(per(total_kubectl, count))
    );
    println!(
        "{:<40} {:>12} {:>12}",
        format!("all {count}, total"),
        process::secs(total_worker),
        process::secs(total_kubectl)
    );
    println!(
        "the worker's first build (its start included): {}",
        ms(first_worker.unwrap_or_default())
    );
    for pid in workers() {
        println!(
            "worker pid {pid}: RSS {:.1} MiB, peak {:.1} MiB, CPU {:.2} s",
            process::memory_mib(pid, "VmRSS"),
            process::memory_mib(pid, "VmHWM"),
            process::cpu_seconds(pid)
        );
    }
    println!(
        "kubemint (this process): peak RSS {:.1} MiB",
        process::memory_mib(std::process::id(), "VmHWM")
    );
}
