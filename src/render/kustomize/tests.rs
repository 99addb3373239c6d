//! [`render`] of trees holding kustomizations: which directories kustomize
//! builds, what it is refused, and how its output and errors come out.
//!
//! These run the real kustomize (`kustomize`, else `kubectl kustomize`).

use serde_json::json;

use crate::render::{
    render, EntryKind, KustomizeCommand, KustomizeFailure, Release, RenderError, RenderOptions,
    RepoTree, TreeEntry,
};

fn tree(entries: &[(&str, &str)]) -> RepoTree {
    RepoTree {
        entries: entries
            .iter()
            .map(|(path, content)| TreeEntry {
                path: path.to_string(),
                kind: EntryKind::File(content.as_bytes().to_vec()),
            })
            .collect(),
    }
}

fn render_at(tree: &RepoTree, path: &str) -> Result<Release, RenderError> {
    render(
        tree,
        &RenderOptions {
            path: path.into(),
            ..Default::default()
        },
    )
}

/// A command that must never run: proves a refusal comes before kustomize.
fn never_run() -> RenderOptions {
    RenderOptions {
        kustomize: Some(KustomizeCommand::parse("/nonexistent/kustomize").unwrap()),
        ..Default::default()
    }
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: ghcr.io/acme/web:1.0.0
          env:
            - {name: LOG_LEVEL, value: info}
          envFrom:
            - configMapRef: {name: web-config}
";

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
    - port: 80
";

const BASE: &str = "resources: [deployment.yaml, service.yaml]
configMapGenerator:
  - name: web-config
    literals: [GREETING=hello]
";

fn overlay(tag: &str, greeting: &str) -> String {
    format!(
        "namespace: dev
resources: [../../base]
images:
  - name: ghcr.io/acme/web
    newTag: \"{tag}\"
replicas:
  - name: web
    count: 1
patches:
  - path: env.yaml
configMapGenerator:
  - name: web-config
    behavior: merge
    literals: [GREETING={greeting}]
"
    )
}

const ENV_PATCH: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      containers:
        - name: web
          env:
            - {name: LOG_LEVEL, value: debug}
";

pub(super) fn repo(tag: &str, greeting: &str) -> RepoTree {
    let overlay = overlay(tag, greeting);
    tree(&[
        ("base/kustomization.yaml", BASE),
        ("base/deployment.yaml", DEPLOYMENT),
        ("base/service.yaml", SERVICE),
        ("overlays/dev/kustomization.yaml", &overlay),
        ("overlays/dev/env.yaml", ENV_PATCH),
    ])
}

#[test]
fn an_overlay_is_built_with_kustomize_and_delivered_like_manifests() {
    let release = render_at(&repo("1.5.0", "hi"), "overlays/dev").unwrap();
    let build = release.kustomize.as_ref().expect("built with kustomize");
    assert_eq!(build.kustomizations, ["overlays/dev/kustomization.yaml"]);
    assert!(
        build.version.as_deref().is_some_and(|v| v.starts_with('v')),
        "{build:?}"
    );
    assert!(build.describe().starts_with("kustomize v"), "{build:?}");
    let kinds: Vec<(&str, &str)> = release
        .objects
        .iter()
        .map(|o| (o.kind.as_str(), o.name.as_str()))
        .collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    for o in &release.objects {
        assert_eq!(o.file, "overlays/dev/kustomization.yaml");
        assert_eq!(o.namespace.as_deref(), Some("dev"));
    }
    let deploy = release
        .objects
        .iter()
        .find(|o| o.kind == "Deployment")
        .unwrap();
    assert_eq!(deploy.manifest["spec"]["replicas"], json!(1));
    let container = &deploy.manifest["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], json!("ghcr.io/acme/web:1.5.0"));
    assert_eq!(container["env"][0]["value"], json!("debug"));
    // kustomize's generated name, and the pods pointed at it.
    let config = release
        .objects
        .iter()
        .find(|o| o.kind == "ConfigMap")
        .unwrap();
    assert!(config.name.starts_with("web-config-"), "{}", config.name);
    assert_eq!(
        container["envFrom"][0]["configMapRef"]["name"],
        json!(config.name)
    );
    // The same pipeline as plain manifests: defaults, workloads, config references.
    let service = release
        .objects
        .iter()
        .find(|o| o.kind == "Service")
        .unwrap();
    assert_eq!(
        service.manifest["spec"]["ports"][0]["protocol"],
        json!("TCP")
    );
    let web = &release.workloads[0];
    assert_eq!(web.containers[0].image, "ghcr.io/acme/web:1.5.0");
    assert_eq!(web.config_refs.len(), 1);
}

#[test]
fn generator_and_image_changes_change_the_revision_and_a_revert_restores_it() {
    let hash = |tag: &str, greeting: &str| {
        render_at(&repo(tag, greeting), "overlays/dev")
            .unwrap()
            .workloads[0]
            .hash
            .clone()
    };
    let first = hash("1.5.0", "hi");
    assert_ne!(
        hash("1.5.0", "bye"),
        first,
        "a generator literal is pod content"
    );
    assert_ne!(
        hash("1.6.0", "hi"),
        first,
        "an image bump is a new revision"
    );
    assert_eq!(
        hash("1.5.0", "hi"),
        first,
        "the same content, the same revision"
    );
}

#[test]
fn plain_directories_read_files_and_build_kustomization_subdirectories_as_units() {
    let t = tree(&[
        ("deploy/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain}\n"),
        ("deploy/app/kustomization.yaml", "resources: [service.yaml]\npatches:\n  - path: patch.yaml\n    target: {kind: Service}\n"),
        ("deploy/app/service.yaml", SERVICE),
        // A JSON 6902 patch is no manifest: read as one, it would be a problem.
        ("deploy/app/patch.yaml", "- op: replace\n  path: /spec/ports/0/port\n  value: 8080\n"),
    ]);
    let release = render_at(&t, "deploy").unwrap();
    let files: Vec<(&str, &str)> = release
        .objects
        .iter()
        .map(|o| (o.name.as_str(), o.file.as_str()))
        .collect();
    assert_eq!(
        files,
        [
            ("web", "deploy/app/kustomization.yaml"),
            ("plain", "deploy/cm.yaml")
        ]
    );
    assert_eq!(
        release.objects[0].manifest["spec"]["ports"][0]["port"],
        json!(8080)
    );
    assert_eq!(
        release.kustomize.unwrap().kustomizations,
        ["deploy/app/kustomization.yaml"]
    );

    // Without a kustomization, nothing runs kustomize: a command that cannot run is never asked.
    let plain = tree(&[(
        "deploy/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain}\n",
    )]);
    let release = render(
        &plain,
        &RenderOptions {
            path: "deploy".into(),
            ..never_run()
        },
    )
    .unwrap();
    assert_eq!(release.kustomize, None);
}

#[test]
fn every_kustomization_file_name_is_recognised() {
    for name in ["kustomization.yaml", "kustomization.yml", "Kustomization"] {
        let t = tree(&[
            (&format!("d/{name}") as &str, "resources: [svc.yaml]\n"),
            ("d/svc.yaml", SERVICE),
        ]);
        let release = render_at(&t, "d").unwrap();
        assert_eq!(release.objects[0].file, format!("d/{name}"));
    }
}

#[test]
fn images_yaml_applies_on_top_of_the_build() {
    let mut t = repo("1.5.0", "hi");
    t.entries.push(TreeEntry {
        path: "overlays/dev/images.yaml".into(),
        kind: EntryKind::File(
            b"images:\n  - name: ghcr.io/acme/web\n    newTag: \"2.0.0\"\n".to_vec(),
        ),
    });
    let release = render_at(&t, "overlays/dev").unwrap();
    assert_eq!(
        release.workloads[0].containers[0].image,
        "ghcr.io/acme/web:2.0.0"
    );
}

#[test]
fn symlinked_overlays_are_built_inside_the_tree() {
    let mut t = repo("1.5.0", "hi");
    t.entries.push(TreeEntry {
        path: "deploy".into(),
        kind: EntryKind::Symlink("overlays/dev".into()),
    });
    let release = render_at(&t, "deploy").unwrap();
    assert_eq!(release.objects[0].file, "deploy/kustomization.yaml");
    assert_eq!(release.objects[0].namespace.as_deref(), Some("dev"));
}

fn kustomize_error(err: RenderError) -> (String, KustomizeFailure, String) {
    match err {
        RenderError::Kustomize {
            file,
            failure,
            message,
        } => (file, failure, message),
        other => panic!("expected a kustomize error, got {other:?}"),
    }
}

#[test]
fn remote_bases_and_paths_out_of_the_repository_are_refused_before_kustomize_runs() {
    for (kustomization, expected) in [
        (
            "resources: [\"github.com/acme/deploy//base?ref=v1\"]",
            "is remote",
        ),
        ("resources: [\"https://example.com/all.yaml\"]", "is remote"),
        (
            "resources: [\"../../../../etc/kubernetes\"]",
            "leaves the repository",
        ),
        ("resources: [\"/etc/kubernetes\"]", "absolute path"),
    ] {
        let t = tree(&[("overlays/dev/kustomization.yaml", kustomization)]);
        let opts = RenderOptions {
            path: "overlays/dev".into(),
            ..never_run()
        };
        let err = render(&t, &opts).unwrap_err();
        assert_eq!(err.reason(), "KustomizeRefused");
        let (file, failure, message) = kustomize_error(err);
        assert_eq!(file, "overlays/dev/kustomization.yaml");
        assert_eq!(failure, KustomizeFailure::Refused);
        assert!(message.contains(expected), "{kustomization}: {message}");
    }
    // In a base the overlay reaches, the base is named.
    let t = tree(&[
        ("overlays/dev/kustomization.yaml", "resources: [../../base]"),
        (
            "base/kustomization.yaml",
            "resources: [\"git@github.com:acme/x.git\"]",
        ),
    ]);
    let opts = RenderOptions {
        path: "overlays/dev".into(),
        ..never_run()
    };
    let err = render(&t, &opts).unwrap_err();
    assert!(
        err.to_string().starts_with(
            "base/kustomization.yaml: resources: \"git@github.com:acme/x.git\" is remote"
        ),
        "{err}"
    );
}

#[test]
fn a_kustomize_error_names_the_kustomization_with_kustomizes_own_message() {
    let t = tree(&[
        (
            "dev/kustomization.yaml",
            "resources: [svc.yaml]\npatches:\n  - path: patch.yaml\nsecretGenerator:\n  - name: db\n    literals: [password=hunter2-hunter2]\n",
        ),
        ("dev/svc.yaml", SERVICE),
        ("dev/patch.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: missing}\n"),
    ]);
    let err = render_at(&t, "dev").unwrap_err();
    assert_eq!(err.reason(), "KustomizeFailed");
    let text = err.to_string();
    assert!(
        text.starts_with("dev/kustomization.yaml: kustomize build failed: "),
        "{text}"
    );
    // kustomize's own words, without the work directory or kubectl's log prefix.
    assert!(text.contains("missing"), "{text}");
    assert!(
        !text.contains("kubemint-kustomize-") && !text.contains("run.go"),
        "{text}"
    );
    assert!(!text.contains("hunter2-hunter2"), "{text}");
}

#[test]
fn a_missing_kustomize_is_its_own_reason() {
    let opts = RenderOptions {
        path: "overlays/dev".into(),
        ..never_run()
    };
    let err = render(&repo("1.5.0", "hi"), &opts).unwrap_err();
    assert_eq!(err.reason(), "KustomizeUnavailable");
    assert!(err.to_string().contains("/nonexistent/kustomize"), "{err}");
}
