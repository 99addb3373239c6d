//! The `kubemint` command as a user runs it: `plan` and `crd`, no cluster.

use std::path::Path;
use std::process::{Command, Output};

fn kubemint(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubemint"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running kubemint")
}

/// Runs git in `dir` (its own HOME); fails the test if git fails.
fn git_in(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .status()
        .unwrap()
        .success();
    assert!(ok, "git {args:?}");
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn crd_in_manifests_matches_the_rust_types() {
    let out = kubemint(&["crd"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let committed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/crds/channel.yaml"),
    )
    .expect("manifests/crds/channel.yaml exists");
    assert_eq!(
        text(&out.stdout),
        committed,
        "manifests/crds/channel.yaml is stale: run `cargo run -- crd > manifests/crds/channel.yaml`"
    );
    let helm = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/kubemint/crds/channel.yaml"),
    )
    .expect("charts/kubemint/crds/channel.yaml exists");
    assert_eq!(
        helm, committed,
        "the chart's CRD differs from manifests/crds/channel.yaml"
    );
    assert!(committed.contains("group: kubemint.io"));
    assert!(committed.contains("scope: Namespaced"));
    assert!(committed.contains("name: v1alpha1"));
}

#[test]
fn plan_prints_the_example_release() {
    let out = kubemint(&["plan", "examples/shop"]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "stderr: {}\nstdout: {stdout}",
        text(&out.stderr)
    );
    assert!(stdout.starts_with("Release "), "{stdout}");
    for expected in [
        "Deployment",
        "Service",
        "ConfigMap",
        "web-config",
        "revision ",
    ] {
        assert!(stdout.contains(expected), "missing {expected}:\n{stdout}");
    }
    // images.yaml bumps the tags written in the manifests.
    let images = std::fs::read_to_string("examples/shop/images.yaml").unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&images).unwrap();
    for entry in doc["images"].as_sequence().unwrap() {
        let name = entry["name"].as_str().unwrap();
        let tag = entry["newTag"].as_str().unwrap();
        assert!(
            stdout.contains(&format!("{name}:{tag}")),
            "{name}:{tag} not in:\n{stdout}"
        );
    }
}

#[test]
fn plan_of_a_broken_repository_names_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [x\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.yaml"),
        "apiVersion: v1\nmetadata:\n  name: nokind\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("c.yaml"), b"\xff\xfe not utf-8").unwrap();
    let out = kubemint(&["plan", dir.path().to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("a.yaml:5:1: invalid YAML"), "{stderr}");
    assert!(
        stderr.contains("b.yaml") && stderr.contains("kind"),
        "{stderr}"
    );
    assert!(
        stderr.contains("c.yaml") && stderr.contains("UTF-8"),
        "{stderr}"
    );
}

#[test]
fn plan_renders_a_commit_of_a_git_repository() {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| git_in(dir.path(), args);
    git(&["init", "-q", "-b", "main"]);
    std::fs::create_dir(dir.path().join("deploy")).unwrap();
    std::fs::write(
        dir.path().join("deploy/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-git\n",
    )
    .unwrap();
    git(&["add", "-A"]);
    git(&[
        "-c",
        "user.name=T",
        "-c",
        "user.email=t@e",
        "commit",
        "-q",
        "-m",
        "add config",
    ]);
    // An uncommitted change is not part of the commit.
    std::fs::write(
        dir.path().join("deploy/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: on-disk\n",
    )
    .unwrap();
    let out = kubemint(&[
        "plan",
        dir.path().to_str().unwrap(),
        "--ref",
        "main",
        "--path",
        "deploy",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("from-git") && !stdout.contains("on-disk"),
        "{stdout}"
    );
    assert!(stdout.contains("add config"), "{stdout}");

    // The same repository as a file:// URL; a network URL is refused, redacted.
    let url = format!("file://{}", dir.path().display());
    let out = kubemint(&["plan", &url, "--ref", "main", "--path", "deploy"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("from-git"));
    let out = kubemint(&["plan", "https://bot:s3cret@git.example.com/deploy.git"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("clone it first") && !stderr.contains("s3cret"),
        "{stderr}"
    );
}

#[test]
fn plan_says_when_a_revision_ran_before() {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(["-c", "user.name=T", "-c", "user.email=t@e"])
            .args(args)
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    };
    let deployment = |image: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: [{{name: web, image: \"{image}\"}}]\n"
        )
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(dir.path().join("web.yaml"), deployment("web:1")).unwrap();
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "web 1"]);
    let first = git(&["rev-parse", "HEAD"]);
    std::fs::write(dir.path().join("web.yaml"), deployment("web:2")).unwrap();
    git(&["commit", "-q", "-am", "web 2"]);
    let target = dir.path().to_str().unwrap();

    let out = kubemint(&["plan", target, "--ref", "HEAD"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!stdout.contains("ran before"), "web 2 is new:\n{stdout}");

    git(&["revert", "--no-edit", "HEAD"]);
    let out = kubemint(&["plan", target, "--ref", "HEAD"]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("(ran before: {} web 1)", &first[..12])),
        "the revert brings back web 1's revision:\n{stdout}"
    );
}

#[test]
fn plan_builds_the_kustomize_example_overlays() {
    let production = kubemint(&["plan", "examples/kustomize/overlays/production"]);
    let stdout = text(&production.stdout);
    assert!(production.status.success(), "{}", text(&production.stderr));
    assert!(
        stdout.contains("Built   with kustomize v") && stdout.contains("from kustomization.yaml"),
        "plan says it built with kustomize, and which version:\n{stdout}"
    );
    for expected in [
        "shop-production",
        "ghcr.io/acme/shop-web:1.4.2",
        "ReplicaSet web-",
        "(3 replicas)",
        "(2 replicas)",
        "web-config-",
    ] {
        assert!(stdout.contains(expected), "missing {expected}:\n{stdout}");
    }
    let dev = kubemint(&["plan", "examples/kustomize/overlays/dev"]);
    let dev_out = text(&dev.stdout);
    assert!(dev.status.success(), "{}", text(&dev.stderr));
    for expected in ["shop-dev", "ghcr.io/acme/shop-web:1.5.0", "(1 replica)"] {
        assert!(dev_out.contains(expected), "missing {expected}:\n{dev_out}");
    }
    // The patched env value differs between the overlays.
    let objects = |overlay: &str| {
        let out = kubemint(&["plan", overlay, "--objects"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    assert!(objects("examples/kustomize/overlays/dev").contains("value: debug"));
    assert!(objects("examples/kustomize/overlays/production").contains("value: warn"));
    // The same from the repository root with --path.
    let out = kubemint(&["plan", "examples/kustomize", "--path", "overlays/dev"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("overlays/dev/kustomization.yaml"));
}

#[test]
fn plan_of_a_bad_kustomization_names_it_and_shows_kustomizes_message() {
    let dir = tempfile::tempdir().unwrap();
    let dev = dir.path().join("dev");
    std::fs::create_dir(&dev).unwrap();
    std::fs::write(
        dev.join("svc.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n",
    )
    .unwrap();
    let plan = |kustomization: &str, extra: &[&str]| {
        std::fs::write(dev.join("kustomization.yaml"), kustomization).unwrap();
        let mut args = vec!["plan", dir.path().to_str().unwrap(), "--path", "dev"];
        args.extend(extra);
        let out = kubemint(&args);
        assert!(!out.status.success(), "{kustomization} must fail");
        text(&out.stderr)
    };

    let stderr = plan("resources: [svc.yaml, missing.yaml]\n", &[]);
    assert!(
        stderr.contains("dev/kustomization.yaml: kustomize build failed: ")
            && stderr.contains("missing.yaml"),
        "{stderr}"
    );
    let stderr = plan(
        "resources:\n  - github.com/kubernetes-sigs/kustomize/examples/helloWorld?ref=v3.3.1\n",
        &[],
    );
    assert!(
        stderr.contains("dev/kustomization.yaml: resources: \"github.com/")
            && stderr.contains("is remote"),
        "{stderr}"
    );
    let stderr = plan("resources: [../../outside]\n", &[]);
    assert!(stderr.contains("leaves the repository"), "{stderr}");

    // --kustomize names the command; one that is not installed is said plainly.
    let stderr = plan(
        "resources: [svc.yaml]\n",
        &["--kustomize", "/opt/none/kustomize"],
    );
    assert!(
        stderr.contains("kustomize command `/opt/none/kustomize` not found"),
        "{stderr}"
    );
    let ok = kubemint(&[
        "plan",
        dir.path().to_str().unwrap(),
        "--path",
        "dev",
        "--kustomize",
        "kubectl kustomize",
    ]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(
        text(&ok.stdout).contains("(kubectl kustomize) from dev/kustomization.yaml"),
        "{}",
        text(&ok.stdout)
    );
}

#[test]
fn plan_shows_autoscaler_retargets_and_the_pre_promotion_test() {
    let dir = tempfile::tempdir().unwrap();
    let copy = Command::new("cp")
        .args(["-r", "examples/shop/.", dir.path().to_str().unwrap()])
        .status()
        .unwrap();
    assert!(copy.success());
    std::fs::write(
        dir.path().join("web/hpa.yaml"),
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: web}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  minReplicas: 2\n  maxReplicas: 10\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("smoke.yaml"),
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: smoke\n  annotations: {kubemint.io/hook: pre-promotion}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: smoke, image: curl}]\n",
    )
    .unwrap();
    let out = kubemint(&["plan", dir.path().to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("HorizontalPodAutoscaler web targets ReplicaSet web-"),
        "{stdout}"
    );
    assert!(stdout.contains("(min 2, max 10"), "{stdout}");
    assert!(
        stdout.contains("Job smoke-") && stdout.contains("runs before the switch"),
        "{stdout}"
    );
}

#[test]
fn plan_refuses_a_commit_over_the_limits_naming_the_file_and_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let config = |name: &str, data: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  blob: {data}\n"
        )
    };
    std::fs::write(root.join("a.yaml"), config("a", "small")).unwrap();
    std::fs::write(
        root.join("big.yaml"),
        config("big", &"x".repeat(200 * 1024)),
    )
    .unwrap();
    let target = root.to_str().unwrap();

    // Default limits: 200 KiB is fine.
    let out = kubemint(&["plan", target]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let refused = |args: &[&str], expected: &str| {
        let out = kubemint(args);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    };
    refused(
        &["plan", target, "--max-file-size", "64Ki"],
        "big.yaml is 200.1 KiB, over the limit of 64.0 KiB for one file (--max-file-size)",
    );
    refused(
        &["plan", target, "--max-release-size", "100Ki"],
        "big.yaml: the commit holds more than 100.0 KiB of manifests (--max-release-size)",
    );
    refused(
        &["plan", target, "--max-objects", "1"],
        "big.yaml: the release has more than 1 objects (--max-objects)",
    );

    // A commit of a git repository: the blob is never inflated, only its header read.
    let git = |args: &[&str]| git_in(root, args);
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "-A"]);
    git(&[
        "-c",
        "user.name=T",
        "-c",
        "user.email=t@e",
        "commit",
        "-q",
        "-m",
        "big",
    ]);
    refused(
        &["plan", target, "--ref", "main", "--max-file-size", "64Ki"],
        "big.yaml is 200.1 KiB",
    );
    refused(
        &["plan", target, "--max-file-size", "lots"],
        "is not a size",
    );
}
