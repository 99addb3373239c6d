//! End-to-end tests of [`render`](super::render): tree in, release or problems out.

use std::os::unix::fs::symlink;
use std::path::Path;

use super::*;

fn file(path: &str, content: &str) -> TreeEntry {
    TreeEntry {
        path: path.into(),
        kind: EntryKind::File(content.as_bytes().to_vec()),
    }
}

fn link(path: &str, target: &str) -> TreeEntry {
    TreeEntry {
        path: path.into(),
        kind: EntryKind::Symlink(target.into()),
    }
}

fn render_at(entries: Vec<TreeEntry>, path: &str) -> Result<Release, RenderError> {
    render(
        &RepoTree { entries },
        &RenderOptions {
            path: path.into(),
            ..Default::default()
        },
    )
}

fn problems(err: RenderError) -> Vec<Problem> {
    match err {
        RenderError::Invalid(p) => p,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

const DEPLOY: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      initContainers:
        - name: migrate
          image: ghcr.io/acme/web:1.0.0
      containers:
        - name: web
          image: ghcr.io/acme/web:1.0.0
          ports:
            - containerPort: 8080
          envFrom:
            - configMapRef: {name: web-config}
        - name: proxy
          image: localhost:5000/proxy:2
";

const CONFIG: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  A: one
";

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports:
    - port: 80
";

#[test]
fn renders_objects_in_apply_order_with_workloads() {
    let release = render_at(
        vec![
            file("deploy/a/deploy.yaml", DEPLOY),
            file("deploy/a/svc.yaml", SERVICE),
            file("deploy/b/config.yaml", CONFIG),
            file(
                "deploy/z-ns.yaml",
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\n",
            ),
            file("README.md", "not a manifest"),
        ],
        "./deploy/",
    )
    .unwrap();
    let order: Vec<String> = release
        .objects
        .iter()
        .map(|o| format!("{} {}", o.file, o.key()))
        .collect();
    assert_eq!(
        order,
        [
            "deploy/z-ns.yaml Namespace/shop",
            "deploy/z-ns.yaml apiextensions.k8s.io/CustomResourceDefinition/widgets.example.com",
            "deploy/a/deploy.yaml apps/Deployment/web",
            "deploy/a/svc.yaml Service/web",
            "deploy/b/config.yaml ConfigMap/web-config",
        ]
    );
    assert_eq!(release.id.len(), 12);
    assert_eq!(release.workloads.len(), 1);
    let w = &release.workloads[0];
    assert_eq!(
        (w.kind.as_str(), w.name.as_str(), w.namespace.as_ref()),
        ("Deployment", "web", None)
    );
    let images: Vec<(&str, &str)> = w
        .containers
        .iter()
        .map(|c| (c.container.as_str(), c.image.as_str()))
        .collect();
    assert_eq!(
        images,
        [
            ("web", "ghcr.io/acme/web:1.0.0"),
            ("proxy", "localhost:5000/proxy:2"),
            ("migrate", "ghcr.io/acme/web:1.0.0")
        ]
    );
    assert_eq!(
        w.config_refs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["ConfigMap/web-config"]
    );
    // Defaults are applied to what gets delivered.
    let svc = release
        .objects
        .iter()
        .find(|o| o.kind == "Service")
        .unwrap();
    assert_eq!(svc.manifest["spec"]["ports"][0]["protocol"], "TCP");
    let deploy = release
        .objects
        .iter()
        .find(|o| o.kind == "Deployment")
        .unwrap();
    assert_eq!(
        deploy.manifest["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"],
        "TCP"
    );
}

#[test]
fn images_yaml_overrides_tag_digest_name_and_registry_port() {
    let images = "images:
  - name: ghcr.io/acme/web
    newTag: \"1.4.2\"
  - name: localhost:5000/proxy
    newName: registry.acme.io/proxy
    digest: sha256:0123456789abcdef
";
    let release = render_at(
        vec![file("d/images.yaml", images), file("d/deploy.yaml", DEPLOY)],
        "d",
    )
    .unwrap();
    // images.yaml is not a manifest.
    assert_eq!(release.objects.len(), 1);
    let w = &release.workloads[0];
    let images: Vec<&str> = w.containers.iter().map(|c| c.image.as_str()).collect();
    assert_eq!(
        images,
        [
            "ghcr.io/acme/web:1.4.2",
            "registry.acme.io/proxy@sha256:0123456789abcdef",
            "ghcr.io/acme/web:1.4.2"
        ]
    );
    let spec = &release.objects[0].manifest["spec"]["template"]["spec"];
    assert_eq!(spec["initContainers"][0]["image"], "ghcr.io/acme/web:1.4.2");

    // The new version is a new revision and a new release.
    let plain = render_at(vec![file("d/deploy.yaml", DEPLOY)], "d").unwrap();
    assert_ne!(plain.workloads[0].hash, w.hash);
    assert_ne!(plain.id, release.id);
}

#[test]
fn images_yaml_below_the_root_is_a_manifest_and_images_apply_to_cronjobs() {
    let cron = "apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: '0 3 * * *'
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{name: job, image: 'ghcr.io/acme/job:1'}]
";
    let release = render_at(
        vec![
            file(
                "images.yaml",
                "images:\n- name: ghcr.io/acme/job\n  newTag: '2'\n",
            ),
            file("cron.yaml", cron),
        ],
        "",
    )
    .unwrap();
    let image = release.objects[0]
        .manifest
        .pointer("/spec/jobTemplate/spec/template/spec/containers/0/image")
        .unwrap();
    assert_eq!(image, "ghcr.io/acme/job:2");
    // Not a Deployment/StatefulSet/DaemonSet: no workload.
    assert!(release.workloads.is_empty());
}

#[test]
fn unused_image_override_is_a_problem() {
    let images = "images:\n  - name: ghcr.io/acme/web\n    newTag: '2'\n  - name: ghcr.io/acme/typo\n    newTag: '2'\n";
    let p = problems(
        render_at(
            vec![file("d/images.yaml", images), file("d/deploy.yaml", DEPLOY)],
            "d",
        )
        .unwrap_err(),
    );
    assert_eq!(p.len(), 1);
    assert_eq!((p[0].file.as_str(), p[0].line), ("d/images.yaml", Some(4)));
    assert!(
        p[0].message
            .contains("`ghcr.io/acme/typo` matches no container image"),
        "{}",
        p[0]
    );
}

#[test]
fn yaml_syntax_error_names_file_line_and_column() {
    let p = problems(
        render_at(
            vec![file(
                "deploy/web/svc.yaml",
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n   x: [\n",
            )],
            "deploy",
        )
        .unwrap_err(),
    );
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].file, "deploy/web/svc.yaml");
    assert_eq!((p[0].line, p[0].column), (Some(5), Some(5)));
    assert!(
        p[0].to_string()
            .starts_with("deploy/web/svc.yaml:5:5: invalid YAML"),
        "{}",
        p[0]
    );
}

#[test]
fn all_problems_are_reported_together() {
    let err = render_at(
        vec![
            file("d/1-bad.yaml", "a: [\n"),
            file(
                "d/2-missing.yaml",
                "apiVersion: v1\nkind: ConfigMap\n---\nkind: Secret\nmetadata:\n  name: s\n",
            ),
            file("d/3-dup-a.yaml", CONFIG),
            file("d/4-dup-b.yml", &format!("# again\n{CONFIG}")),
            TreeEntry {
                path: "d/5-binary.yaml".into(),
                kind: EntryKind::File(vec![b'a', b':', b' ', 0xff]),
            },
            link("d/6-evil.yaml", "../../etc/passwd"),
            file(
                "d/7-ok.json",
                r#"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ok"}}"#,
            ),
            file(
                "d/images.yaml",
                "images:\n  - name: nothing/matches\n    newTag: '1'\n",
            ),
        ],
        "d",
    )
    .unwrap_err();
    assert_eq!(err.reason(), "ValidationFailed");
    let p = problems(err);
    let got: Vec<(String, Option<usize>)> = p.iter().map(|p| (p.file.clone(), p.line)).collect();
    assert_eq!(
        got,
        [
            ("d/1-bad.yaml".to_string(), Some(2)),
            ("d/2-missing.yaml".to_string(), Some(1)),
            ("d/2-missing.yaml".to_string(), Some(4)),
            ("d/4-dup-b.yml".to_string(), Some(2)),
            ("d/5-binary.yaml".to_string(), Some(1)),
            ("d/6-evil.yaml".to_string(), None),
            ("d/images.yaml".to_string(), Some(2)),
        ],
        "{p:#?}"
    );
    assert!(p[1].message.contains("missing metadata.name"), "{}", p[1]);
    assert!(p[2].message.contains("missing apiVersion"), "{}", p[2]);
    assert!(
        p[3].message.contains("ConfigMap/web-config") && p[3].message.contains("d/3-dup-a.yaml:1"),
        "{}",
        p[3]
    );
    assert!(p[4].message.contains("UTF-8"));
    assert!(p[5]
        .message
        .contains("outside the repository (-> ../../etc/passwd)"));
    assert!(p[6].message.contains("nothing/matches"));
}

#[test]
fn same_name_in_different_groups_kinds_or_namespaces_is_not_a_duplicate() {
    let cm = |ns: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: {ns}\n")
    };
    let release = render_at(
        vec![
            file("a.yaml", &cm("a")),
            file("b.yaml", &cm("b")),
            file(
                "c.yaml",
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n  namespace: a\n",
            ),
        ],
        ".",
    )
    .unwrap();
    assert_eq!(release.objects.len(), 3);
    // Different versions of the same group/kind are the same object.
    let err = render_at(
        vec![
            file(
                "a.yaml",
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n",
            ),
            file(
                "b.yaml",
                "apiVersion: apps/v1beta2\nkind: Deployment\nmetadata: {name: x}\n",
            ),
        ],
        "",
    )
    .unwrap_err();
    let duplicate: Vec<_> = problems(err)
        .into_iter()
        .filter(|p| p.message.starts_with("duplicate object"))
        .collect();
    assert_eq!(duplicate.len(), 1);
    assert_eq!(duplicate[0].file, "b.yaml");
}

#[test]
fn list_kind_expands_to_items() {
    let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: b}\n";
    let release = render_at(vec![file("list.yaml", list)], "").unwrap();
    let names: Vec<&str> = release.objects.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn path_not_found_and_empty() {
    let tree = || {
        vec![
            file("deploy/README.md", "hi"),
            file("deploy/empty.yaml", "# nothing yet\n---\n"),
        ]
    };
    let err = render_at(tree(), "nope").unwrap_err();
    assert!(
        matches!(&err, RenderError::PathNotFound(p) if p == "nope"),
        "{err:?}"
    );
    assert_eq!(err.reason(), "PathNotFound");
    assert!(matches!(
        render_at(tree(), "../x").unwrap_err(),
        RenderError::PathNotFound(_)
    ));
    let err = render_at(tree(), "deploy").unwrap_err();
    assert!(
        matches!(&err, RenderError::Empty(p) if p == "deploy"),
        "{err:?}"
    );
    assert_eq!(err.reason(), "EmptyRelease");
    assert!(matches!(
        render_at(Vec::new(), "").unwrap_err(),
        RenderError::Empty(_)
    ));
    // images.yaml alone is still empty, not a list of unused overrides.
    let err = render_at(
        vec![file("d/images.yaml", "images:\n- name: a\n  newTag: '1'\n")],
        "d",
    )
    .unwrap_err();
    assert!(matches!(err, RenderError::Empty(_)), "{err:?}");
}

#[test]
fn hashes_ignore_key_order_and_yaml_formatting() {
    let reformatted = r#"# same objects, written differently
kind: Deployment
apiVersion: "apps/v1"
metadata: {name: 'web'}
spec:
  template:
    spec:
      containers:
      - envFrom: [{configMapRef: {name: web-config}}]
        ports: [{containerPort: 8080}]
        image: ghcr.io/acme/web:1.0.0
        name: web
      - {name: proxy, image: "localhost:5000/proxy:2"}
      initContainers: [{image: ghcr.io/acme/web:1.0.0, name: migrate}]
    metadata:
      labels: {app: web}
  selector: {matchLabels: {app: web}}
"#;
    let config_json = r#"{"data": {"A": "one"}, "metadata": {"name": "web-config"}, "kind": "ConfigMap", "apiVersion": "v1"}"#;
    let a = render_at(
        vec![file("deploy.yaml", DEPLOY), file("config.yaml", CONFIG)],
        "",
    )
    .unwrap();
    let b = render_at(
        vec![
            file("x/other.yaml", reformatted),
            file("x/cfg.json", config_json),
        ],
        "x",
    )
    .unwrap();
    assert_eq!(a.workloads[0].hash, b.workloads[0].hash);
    assert_eq!(a.id, b.id);
    // And again: stable across runs.
    let again = render_at(
        vec![file("deploy.yaml", DEPLOY), file("config.yaml", CONFIG)],
        "",
    )
    .unwrap();
    assert_eq!(
        (again.id, &again.workloads[0].hash),
        (a.id.clone(), &a.workloads[0].hash)
    );

    // Any template change or referenced config change is a new revision.
    let changed_template = DEPLOY.replace("containerPort: 8080", "containerPort: 8081");
    let c = render_at(
        vec![
            file("deploy.yaml", &changed_template),
            file("config.yaml", CONFIG),
        ],
        "",
    )
    .unwrap();
    assert_ne!(c.workloads[0].hash, a.workloads[0].hash);
    assert_ne!(c.id, a.id);
    let changed_config = CONFIG.replace("A: one", "A: two");
    let d = render_at(
        vec![
            file("deploy.yaml", DEPLOY),
            file("config.yaml", &changed_config),
        ],
        "",
    )
    .unwrap();
    assert_ne!(d.workloads[0].hash, a.workloads[0].hash);
    assert_ne!(d.id, a.id);
    // A change outside the template (replicas) is not a new revision, but is a new release.
    let scaled = DEPLOY.replace("spec:\n  selector", "spec:\n  replicas: 5\n  selector");
    let e = render_at(
        vec![file("deploy.yaml", &scaled), file("config.yaml", CONFIG)],
        "",
    )
    .unwrap();
    assert_eq!(e.workloads[0].hash, a.workloads[0].hash);
    assert_ne!(e.id, a.id);
}

#[test]
fn synthetic_symlinks_inside_are_followed_outside_rejected() {
    let release = render_at(
        vec![
            file("base/config.yaml", CONFIG),
            file("base/svc/svc.yaml", SERVICE),
            link("deploy/config.yaml", "../base/config.yaml"),
            link("deploy/svc", "../base/svc"),
        ],
        "deploy",
    )
    .unwrap();
    let files: Vec<&str> = release.objects.iter().map(|o| o.file.as_str()).collect();
    assert_eq!(files, ["deploy/config.yaml", "deploy/svc/svc.yaml"]);

    let p = problems(
        render_at(
            vec![
                file("deploy/svc.yaml", SERVICE),
                link("deploy/x.yaml", "/etc/passwd"),
            ],
            "deploy",
        )
        .unwrap_err(),
    );
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].file, "deploy/x.yaml");
    assert!(p[0]
        .message
        .starts_with("symlink points outside the repository (-> /etc/passwd)"));
}

#[test]
fn from_dir_symlinks_inside_ok_outside_rejected_and_git_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::write(root.join(".git/broken.yaml"), "a: [").unwrap();
    std::fs::create_dir_all(root.join("shared")).unwrap();
    std::fs::write(root.join("shared/config.yaml"), CONFIG).unwrap();
    std::fs::create_dir_all(root.join("deploy")).unwrap();
    std::fs::write(root.join("deploy/deploy.yaml"), DEPLOY).unwrap();
    symlink("../shared/config.yaml", root.join("deploy/config.yaml")).unwrap();

    let tree = RepoTree::from_dir(root, &Limits::default()).unwrap();
    let release = render(
        &tree,
        &RenderOptions {
            path: "deploy".into(),
            namespace: None,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(release.objects.len(), 2);
    assert_eq!(release.workloads[0].config_refs.len(), 1);
    // Rendering the whole repository never sees .git.
    let whole = render(
        &tree,
        &RenderOptions {
            path: ".".into(),
            ..Default::default()
        },
    );
    assert!(
        matches!(whole, Err(RenderError::Invalid(ref p)) if p.iter().all(|p| !p.file.starts_with(".git")))
    );

    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.yaml"), CONFIG).unwrap();
    symlink(
        outside.path().join("secret.yaml"),
        root.join("deploy/secret.yaml"),
    )
    .unwrap();
    symlink("../../escape.yaml", root.join("deploy/escape.yaml")).unwrap();
    let tree = RepoTree::from_dir(root, &Limits::default()).unwrap();
    let p = problems(
        render(
            &tree,
            &RenderOptions {
                path: "deploy".into(),
                namespace: None,
                ..Default::default()
            },
        )
        .unwrap_err(),
    );
    let files: Vec<&str> = p.iter().map(|p| p.file.as_str()).collect();
    assert_eq!(files, ["deploy/escape.yaml", "deploy/secret.yaml"]);
    assert!(p.iter().all(|p| p
        .message
        .starts_with("symlink points outside the repository")));
}

#[test]
fn example_shop_renders_with_bumped_images() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/shop");
    let tree = RepoTree::from_dir(&root, &Limits::default()).unwrap();
    let release = render(
        &tree,
        &RenderOptions {
            path: ".".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let keys: Vec<String> = release
        .objects
        .iter()
        .map(|o| o.key().to_string())
        .collect();
    assert_eq!(
        keys,
        [
            "ConfigMap/web-config",
            "apps/Deployment/web",
            "Service/web",
            "apps/Deployment/worker",
            "Service/worker"
        ]
    );
    assert!(release.objects.iter().all(|o| o.namespace.is_none()));
    let images: Vec<(&str, &str)> = release
        .workloads
        .iter()
        .flat_map(|w| {
            w.containers
                .iter()
                .map(|c| (c.container.as_str(), c.image.as_str()))
        })
        .collect();
    assert_eq!(
        images,
        [
            ("web", "ghcr.io/acme/shop-web:1.4.2"),
            ("worker", "ghcr.io/acme/shop-worker:1.3.0")
        ]
    );
    assert_eq!(release.workloads[0].config_refs.len(), 1);
    for svc in release.objects.iter().filter(|o| o.kind == "Service") {
        assert_eq!(svc.manifest["spec"]["ports"][0]["protocol"], "TCP");
    }
}

#[test]
fn with_a_target_namespace_written_and_implicit_namespaces_pair_up() {
    // The Deployment names no namespace; its ConfigMap says `shop` explicitly.
    let config_in_shop = CONFIG.replace("name: web-config", "name: web-config\n  namespace: shop");
    assert_ne!(config_in_shop, CONFIG);
    let tree = |config: &str| RepoTree {
        entries: vec![file("d.yaml", DEPLOY), file("c.yaml", config)],
    };
    let in_shop = |config: &str| {
        render(
            &tree(config),
            &RenderOptions {
                path: ".".into(),
                namespace: Some("shop".into()),
                ..Default::default()
            },
        )
        .unwrap()
    };
    let release = in_shop(&config_in_shop);
    let web = &release.workloads[0];
    assert_eq!(web.namespace.as_deref(), Some("shop"));
    assert_eq!(web.config_refs.len(), 1, "{:?}", web.config_refs);
    // So the config's content is part of the revision.
    let changed = config_in_shop.replace("A: one", "A: two");
    assert_ne!(changed, config_in_shop);
    assert_ne!(in_shop(&changed).workloads[0].hash, web.hash);

    // Without a target (plan), only namespaces as written pair.
    let as_written = render(
        &tree(&config_in_shop),
        &RenderOptions {
            path: ".".into(),
            namespace: None,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(as_written.workloads[0].config_refs.is_empty());

    // The same object written both ways is a duplicate.
    let twice = render(
        &RepoTree {
            entries: vec![file("a.yaml", CONFIG), file("b.yaml", &config_in_shop)],
        },
        &RenderOptions {
            path: ".".into(),
            namespace: Some("shop".into()),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(problems(twice)[0].message.contains("duplicate object"));
}

#[test]
fn revisions_do_not_depend_on_how_the_namespace_is_known() {
    let written = |text: &str| text.replace("  name: web", "  name: web\n  namespace: shop");
    let explicit = [
        file("d.yaml", &written(DEPLOY)),
        file(
            "c.yaml",
            &CONFIG.replace("name: web-config", "name: web-config\n  namespace: shop"),
        ),
    ];
    let implicit = [file("d.yaml", DEPLOY), file("c.yaml", CONFIG)];
    let hash = |entries: &[TreeEntry], namespace: Option<&str>| {
        render(
            &RepoTree {
                entries: entries.to_vec(),
            },
            &RenderOptions {
                path: ".".into(),
                namespace: namespace.map(str::to_string),
                ..Default::default()
            },
        )
        .unwrap()
        .workloads[0]
            .hash
            .clone()
    };
    let plain = hash(&implicit, None);
    assert_eq!(hash(&implicit, Some("shop")), plain);
    assert_eq!(hash(&explicit, None), plain);
    assert_eq!(hash(&explicit, Some("shop")), plain);
}

fn render_limited(entries: Vec<TreeEntry>, limits: Limits) -> Result<Release, RenderError> {
    render(
        &RepoTree { entries },
        &RenderOptions {
            path: "deploy".into(),
            limits,
            ..Default::default()
        },
    )
}

const SMALL: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n";

#[test]
fn a_manifest_left_unread_rejects_the_commit_naming_file_and_limit() {
    let unread = TreeEntry {
        path: "deploy/big.yaml".into(),
        kind: EntryKind::Unread { size: 60 << 20 },
    };
    let err = render_limited(
        vec![file("deploy/a.yaml", SMALL), unread.clone()],
        Limits::default(),
    )
    .unwrap_err();
    assert_eq!(err.reason(), "FileTooLarge");
    let text = err.to_string();
    assert!(text.starts_with("deploy/big.yaml is 60.0 MiB"), "{text}");
    assert!(text.contains("8.0 MiB"), "{text}");

    // Outside the path (a monorepo's other assets) it is never needed.
    let elsewhere = TreeEntry {
        path: "docs/video.yaml".into(),
        ..unread
    };
    assert!(render_limited(
        vec![file("deploy/a.yaml", SMALL), elsewhere],
        Limits::default()
    )
    .is_ok());
}

#[test]
fn a_release_over_the_size_limit_is_rejected_at_the_file_that_passed_it() {
    let limits = Limits {
        max_release_bytes: (SMALL.len() * 2) as u64,
        ..Limits::default()
    };
    let entries = |n: usize| -> Vec<TreeEntry> {
        (0..n)
            .map(|i| {
                file(
                    &format!("deploy/{i}.yaml"),
                    &SMALL.replace("name: a", &format!("name: a{i}")),
                )
            })
            .collect()
    };
    assert!(render_limited(entries(1), limits).is_ok());
    let err = render_limited(entries(3), limits).unwrap_err();
    assert_eq!(err.reason(), "ReleaseTooLarge");
    assert!(err.to_string().starts_with("deploy/1.yaml: "), "{err}");
    assert!(err.to_string().contains("--max-release-size"));
}

#[test]
fn more_objects_than_the_limit_are_rejected() {
    let limits = Limits {
        max_objects: 2,
        ..Limits::default()
    };
    let list = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n";
    assert!(render_limited(vec![file("deploy/list.yaml", list)], limits).is_ok());
    let err = render_limited(
        vec![
            file("deploy/list.yaml", list),
            file("deploy/z.yaml", &SMALL.replace("name: a", "name: c")),
        ],
        limits,
    )
    .unwrap_err();
    assert_eq!(err.reason(), "TooManyObjects");
    assert!(
        err.to_string()
            .starts_with("deploy/z.yaml: the release has more than 2 objects"),
        "{err}"
    );
}

#[test]
fn a_deployment_without_a_selector_is_an_invalid_release() {
    let without = DEPLOY.replace("  selector:\n    matchLabels: {app: web}\n", "");
    assert!(!without.contains("selector"));
    let found = problems(render_at(vec![file("deploy/web.yaml", &without)], "deploy").unwrap_err());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].file, "deploy/web.yaml");
    assert!(
        found[0].message.contains("spec.selector is required"),
        "{found:?}"
    );
}
