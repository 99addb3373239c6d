//! End-to-end: `kubemint diff` shows what delivering a channel's next commit (or
//! a local checkout) would change, from server-side dry runs against the real
//! API server, and writes nothing.

use crate::fixture;
use crate::support;

use std::path::Path;

use fixture::manifests::{bare_deployment, config_map, service};
use fixture::{
    apply_channel_with, channel, install_crd, kubemint, wait_applied, GitRepo, Operator, Run,
};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, ListParams};
use serde_json::json;

/// base64 of the Secret's token in the first and second commit: neither may be printed.
const TOKEN_ONE: &str = "dG9rZW4tb25l";
const TOKEN_TWO: &str = "dG9rZW4tdHdv";

fn files(image: &str, greeting: &str, token: &str, with_old: bool) -> Vec<(String, String)> {
    let mut files = vec![
        (
            "web/deployment.yaml".to_string(),
            bare_deployment("web", image, 1),
        ),
        ("web/service.yaml".to_string(), service("web")),
        (
            "config.yaml".to_string(),
            config_map("settings", &[("GREETING", greeting)]),
        ),
        (
            "secret.yaml".to_string(),
            format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\ndata:\n  token: {token}\n"
            ),
        ),
    ];
    if with_old {
        files.push((
            "worker.yaml".to_string(),
            bare_deployment("worker", "busybox:1.36", 1),
        ));
        files.push((
            "old.yaml".to_string(),
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: old\nspec:\n  selector: {app: old}\n  ports:\n    - port: 81\n".to_string(),
        ));
    }
    files
}

fn kubemint_diff(kubeconfig: &Path, ns: &str, extra: &[&str]) -> Run {
    let mut args = vec!["diff", "app", "-n", ns];
    args.extend_from_slice(extra);
    kubemint(
        kubeconfig,
        &args,
        &[TOKEN_ONE, TOKEN_TWO, "token-one", "token-two"],
    )
}

/// Whether `out` has a line starting with `marker` and holding `text`.
fn has_line(out: &str, marker: &str, text: &str) -> bool {
    out.lines()
        .any(|l| l.starts_with(marker) && l.contains(text))
}

#[tokio::test]
async fn diff_shows_what_the_next_commit_changes_and_writes_nothing() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("diff").await;
    let kubeconfig = cluster.kubeconfig();
    let repo = GitRepo::new();
    let write = |files: &[(String, String)], message: &str| {
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, c)| (p.as_str(), c.as_str()))
            .collect();
        repo.write(&refs).commit(message)
    };

    let first = write(
        &files("nginx:1.25", "one", TOKEN_ONE, true),
        "first release",
    );
    apply_channel_with(
        &client,
        &ns,
        "app",
        &repo.url(),
        ".",
        json!({"rollout": {"drainSeconds": 0}}),
    )
    .await;
    let op = Operator::start(kubeconfig, &ns);
    let applied = wait_applied(&client, &ns, "app", &first, &op).await;
    // The operator stops here, so nothing but `kubemint diff` looks at the next commits.
    op.kill();
    let revision_of = |workload: &str| {
        applied.status.as_ref().unwrap().releases[0]
            .revisions
            .iter()
            .find(|r| r.workload == workload)
            .unwrap()
            .revision
            .clone()
    };
    let old_revision = revision_of("web");
    let worker_revision = revision_of("worker");

    // The cluster runs the channel's commit: nothing to do.
    let same = kubemint_diff(kubeconfig, &ns, &[]);
    assert_eq!(same.code, 0, "{}\n{}", same.stdout, same.stderr);
    assert!(same.stdout.contains("No changes"), "{}", same.stdout);
    assert!(
        same.stdout
            .contains("0 to create, 0 to change, 0 to prune, 0 to drain"),
        "{}",
        same.stdout
    );

    // The next commit: new image, new greeting, new token, Service `old` removed.
    std::fs::remove_file(repo.path().join("old.yaml")).unwrap();
    std::fs::remove_file(repo.path().join("worker.yaml")).unwrap();
    let second = write(
        &files("nginx:1.26", "two", TOKEN_TWO, false),
        "web 1.26, greeting two",
    );
    let next = kubemint_diff(kubeconfig, &ns, &[]);
    let out = &next.stdout;
    assert_eq!(next.code, 1, "{out}\n{}", next.stderr);
    assert!(out.contains(&second[..12]), "names the commit:\n{out}");
    assert!(out.contains("web 1.26, greeting two"), "{out}");
    assert!(
        has_line(out, "~ ", &format!("ConfigMap/{ns}/settings")),
        "{out}"
    );
    assert!(
        out.contains("-  GREETING: one") && out.contains("+  GREETING: two"),
        "{out}"
    );
    assert!(has_line(out, "~ ", &format!("Secret/{ns}/creds")), "{out}");
    assert!(out.contains("+  token: '*** (after)'"), "{out}");
    assert!(has_line(out, "- ", &format!("Service/{ns}/old")), "{out}");
    assert!(
        has_line(out, "+ ", &format!("apps/ReplicaSet/{ns}/web-")),
        "{out}"
    );
    assert!(out.contains("+      - image: nginx:1.26"), "{out}");
    assert!(
        has_line(
            out,
            "v ",
            &format!("apps/ReplicaSet/{ns}/web-{old_revision}")
        ),
        "the serving revision is drained:\n{out}"
    );
    // The worker is gone from the commit: its revision goes after the drain.
    assert!(
        has_line(
            out,
            "- ",
            &format!("apps/ReplicaSet/{ns}/worker-{worker_revision} (deleted after the drain")
        ),
        "{out}"
    );
    // The Service moves to the new revision once it is promoted.
    assert!(has_line(out, "~ ", &format!("Service/{ns}/web")), "{out}");
    assert!(
        out.contains(&format!("-    kubemint.io/revision: {old_revision}")),
        "{out}"
    );
    assert!(
        out.contains("1 to create, 3 to change, 2 to prune, 1 to drain"),
        "{out}"
    );

    // Nothing was written.
    let config = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get("settings")
        .await
        .unwrap();
    assert_eq!(config.data.unwrap()["GREETING"], "one");
    assert!(Api::<Service>::namespaced(client.clone(), &ns)
        .get_opt("old")
        .await
        .unwrap()
        .is_some());
    let replica_sets = Api::<ReplicaSet>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(replica_sets.items.len(), 2, "no new ReplicaSet was created");
    let ch = channel(&client, &ns, "app").await;
    assert_eq!(
        ch.status.unwrap().last_applied_commit.unwrap().sha,
        first,
        "the channel is untouched"
    );

    // A local checkout (a pull request, say) is compared instead of the commit.
    let checkout = tempfile::tempdir().unwrap();
    for (path, content) in files("nginx:1.25", "three", TOKEN_ONE, true) {
        let full = checkout.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }
    let local = kubemint_diff(
        kubeconfig,
        &ns,
        &["--local", checkout.path().to_str().unwrap()],
    );
    let out = &local.stdout;
    assert_eq!(local.code, 1, "{out}\n{}", local.stderr);
    assert!(out.contains("files in"), "{out}");
    assert!(out.contains("+  GREETING: three"), "{out}");
    assert!(
        out.contains("0 to create, 1 to change, 0 to prune, 0 to drain"),
        "only the ConfigMap differs:\n{out}"
    );

    // A broken checkout is an error (exit 2) naming the file.
    std::fs::write(checkout.path().join("config.yaml"), "kind: [").unwrap();
    let broken = kubemint_diff(
        kubeconfig,
        &ns,
        &["--local", checkout.path().to_str().unwrap()],
    );
    assert_eq!(broken.code, 2, "{}\n{}", broken.stdout, broken.stderr);
    assert!(broken.stderr.contains("config.yaml"), "{}", broken.stderr);

    // An unknown channel is an error too.
    let unknown = kubemint(kubeconfig, &["diff", "nope", "-n", &ns], &[]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains(&format!("{ns}/nope")),
        "{}",
        unknown.stderr
    );
}
