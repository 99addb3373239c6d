//! One tenant's commit cannot exhaust the operator, and cannot delete most of
//! what a channel delivered by accident (issue 13): the limits of one commit
//! (`--max-file-size`, `--max-release-size`, `--max-objects`), the checks of a
//! Deployment that is never sent as declared, and the prune guard.

use crate::fixture;
use crate::support;

use fixture::manifests::config;
use fixture::release::workload;
use fixture::{
    apply_channel, channel_events, condition, install_crd, last_applied, wait_applied,
    wait_refused, GitRepo, Operator,
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::Client;
use serde_json::json;

/// Peak resident memory of a process, from /proc (printed as a figure, not asserted).
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The ConfigMaps of the channel in `ns`, by name.
async fn config_names(client: &Client, ns: &str) -> Vec<String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let ours = ListParams::default().labels("app.kubernetes.io/managed-by=kubemint");
    let mut names: Vec<String> = api
        .list(&ours)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .filter(|n| !n.contains("-config-")) // immutable copies
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn each_limit_rejects_a_commit_whole_naming_the_file_and_the_limit() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("limits").await;
    let op = Operator::start_with(
        cluster.kubeconfig(),
        &ns,
        "",
        &[
            "--max-file-size",
            "1Mi",
            "--max-release-size",
            "2Mi",
            "--max-objects",
            "20",
        ],
    );
    let repo = GitRepo::new();
    let files = workload("web", "nginx:1.0", "one");
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let good = repo.write(&refs).commit("web 1.0");
    apply_channel(&client, &ns, "web", &repo.url(), ".").await;
    wait_applied(&client, &ns, "web", &good, &op).await;
    let before = peak_rss_mib(op.pid());

    // One file of 40 MiB: refused without being read.
    let blob = format!("{}  blob: {}\n", config("big", "x"), "x".repeat(40 << 20));
    let big = repo
        .write(&[("big.yaml", blob.as_str())])
        .commit("a 40 MiB manifest");
    let message = wait_refused(&client, &ns, "web", "FileTooLarge", &op).await;
    assert!(
        message.starts_with(
            "big.yaml is 40.0 MiB, over the limit of 1.0 MiB for one file (--max-file-size)"
        ),
        "{message}"
    );
    let ch = fixture::channel(&client, &ns, "web").await;
    let status = ch.status.as_ref().unwrap();
    assert_eq!(status.last_attempted_commit.as_ref().unwrap().sha, big);
    assert_eq!(
        last_applied(&ch),
        Some(good.as_str()),
        "the previous release stays"
    );
    assert_eq!(condition(&ch, "Stalled").unwrap().0, "True");
    println!(
        "operator peak RSS: {before:.1} MiB after the first delivery, {:.1} MiB after refusing a 40 MiB manifest",
        peak_rss_mib(op.pid())
    );

    // Three files of 800 KiB: each under the file limit, together over the release's.
    let part = format!("{}  blob: {}\n", config("part", "x"), "y".repeat(800 << 10));
    let parts: Vec<(String, String)> = (0..3)
        .map(|i| {
            (
                format!("parts/{i}.yaml"),
                part.replace("part-config", &format!("part{i}-config")),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = parts
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    repo.write(&refs)
        .remove(&["big.yaml"])
        .commit("2.4 MiB of manifests");
    let message = wait_refused(&client, &ns, "web", "ReleaseTooLarge", &op).await;
    assert!(
        message.starts_with(
            "parts/2.yaml: the commit holds more than 2.0 MiB of manifests (--max-release-size)"
        ),
        "{message}"
    );

    // 25 objects in one List: over --max-objects 20.
    let items: Vec<serde_json::Value> = (0..25)
        .map(|i| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("many-{i}")}}))
        .collect();
    let list = serde_json::to_string(&json!({"apiVersion": "v1", "kind": "List", "items": items}))
        .unwrap();
    let removed: Vec<String> = (0..3).map(|i| format!("parts/{i}.yaml")).collect();
    let removed: Vec<&str> = removed.iter().map(String::as_str).collect();
    repo.write(&[("many.json", list.as_str())])
        .remove(&removed)
        .commit("25 objects");
    let message = wait_refused(&client, &ns, "web", "TooManyObjects", &op).await;
    assert!(
        message.starts_with("many.json: the release has more than 20 objects (--max-objects)"),
        "{message}"
    );

    // A Deployment without a selector: its minted ReplicaSet would pass, the
    // API server would refuse the Deployment; so does kubemint.
    let deployment = std::fs::read_to_string(repo.path().join("web/deployment.yaml")).unwrap();
    let no_selector: String = deployment
        .lines()
        .filter(|l| !l.contains("selector") && !l.contains("matchLabels"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(no_selector, deployment);
    repo.write(&[("web/deployment.yaml", no_selector.as_str())])
        .remove(&["many.json"])
        .commit("no selector");
    let message = wait_refused(&client, &ns, "web", "ValidationFailed", &op).await;
    assert!(
        message.contains("web/deployment.yaml")
            && message.contains("Deployment web: spec.selector is required"),
        "{message}"
    );

    // Nothing of the refused commits reached the cluster; a good commit goes through.
    assert_eq!(config_names(&client, &ns).await, ["web-config"]);
    let fixed = repo
        .write(&[("web/deployment.yaml", deployment.as_str())])
        .commit("selector back");
    wait_applied(&client, &ns, "web", &fixed, &op).await;
}

#[tokio::test]
async fn the_prune_guard_holds_a_large_prune_until_the_commit_is_approved() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("prune-guard").await;
    let op = Operator::start(cluster.kubeconfig(), &ns);
    let repo = GitRepo::new();
    let configs: Vec<(String, String)> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| (format!("{n}.yaml"), config(n, n)))
        .collect();
    let refs: Vec<(&str, &str)> = configs
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let first = repo.write(&refs).commit("four configs");
    apply_channel(&client, &ns, "cfg", &repo.url(), ".").await;
    wait_applied(&client, &ns, "cfg", &first, &op).await;
    let all = ["a-config", "b-config", "c-config", "d-config"];
    assert_eq!(config_names(&client, &ns).await, all);

    // One of four (25%) is within the default maxFraction of 0.5.
    let second = repo.remove(&["d.yaml"]).commit("drop d");
    wait_applied(&client, &ns, "cfg", &second, &op).await;
    assert_eq!(config_names(&client, &ns).await, all[..3]);

    // Two of the three left (67%) is held: nothing deleted, a condition and an event.
    let third = repo.remove(&["b.yaml", "c.yaml"]).commit("drop b and c");
    let message = wait_refused(&client, &ns, "cfg", "PruneHeld", &op).await;
    assert!(
        message.starts_with(&format!(
            "commit {} would prune 2 of 3 objects (67%), more than spec.pruneGuard.maxFraction (50%)",
            &third[..12]
        )),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "kubectl annotate channel cfg -n {ns} kubemint.io/approve-prune={third}"
        )),
        "{message}"
    );
    let ch = fixture::channel(&client, &ns, "cfg").await;
    assert_eq!(condition(&ch, "Stalled").unwrap().0, "True");
    assert_eq!(last_applied(&ch), Some(second.as_str()));
    let events = channel_events(&client, &ns, "cfg").await;
    assert!(
        events
            .iter()
            .any(|(t, r, m)| t == "Warning" && r == "PruneHeld" && m.contains("2 of 3")),
        "{events:?}"
    );
    // `kubemint diff` makes the same decision.
    let diff = fixture::kubemint(cluster.kubeconfig(), &["diff", "cfg", "-n", &ns], &[]);
    assert!(
        diff.stdout.contains(&format!(
            "Held     by the prune guard: it would prune 2 of 3 objects (67%), more than spec.pruneGuard.maxFraction (50%); approve with: kubectl annotate channel cfg -n {ns} kubemint.io/approve-prune={third}"
        )),
        "{}\n{}",
        diff.stdout,
        diff.stderr
    );
    tokio::time::sleep(std::time::Duration::from_secs(5)).await; // a few polls
    assert_eq!(
        config_names(&client, &ns).await,
        all[..3],
        "held: nothing pruned"
    );

    // An approval of another commit does not count; of this one, it goes ahead.
    let channels: Api<kubemint::controller::Channel> = Api::namespaced(client.clone(), &ns);
    let approve =
        |sha: &str| json!({"metadata": {"annotations": {"kubemint.io/approve-prune": sha}}});
    channels
        .patch(
            "cfg",
            &PatchParams::default(),
            &Patch::Merge(&approve(&second)),
        )
        .await
        .unwrap();
    wait_refused(&client, &ns, "cfg", "PruneHeld", &op).await;
    assert_eq!(config_names(&client, &ns).await, all[..3]);
    channels
        .patch(
            "cfg",
            &PatchParams::default(),
            &Patch::Merge(&approve(&third)),
        )
        .await
        .unwrap();
    wait_applied(&client, &ns, "cfg", &third, &op).await;
    assert_eq!(config_names(&client, &ns).await, ["a-config"]);
}
