//! End-to-end: a repository in today's shapes, `examples/boutique`, delivered
//! unmodified by a channel: `autoscaling/v2` HPAs with `behavior`, `policy/v1`
//! PDBs, gRPC probes, a native sidecar, a `batch/v1` CronJob with a time zone
//! and an Ingress with TLS. Then a release (a one-line commit to
//! `images.yaml`) moves traffic and both autoscalers to the new revisions, and
//! the serving checker sees no Service without ready pods on the way. The
//! operator's reflectors use streaming lists, which this server serves.

use crate::fixture;
use crate::support;

use std::path::{Path, PathBuf};

use fixture::release::{revisions, Env};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use serde_json::json;
use support::audit;

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/boutique")
}

/// Every file of `dir`, as (path relative to `dir`, content), read as it is.
fn files_of(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Where the HPA `name` points: the ReplicaSet it scales.
async fn hpa_target(hpas: &Api<HorizontalPodAutoscaler>, name: &str) -> (String, String) {
    let hpa = hpas.get(name).await.unwrap();
    let target = hpa.spec.unwrap().scale_target_ref;
    (target.kind, target.name)
}

#[tokio::test]
async fn todays_shapes_are_delivered_unmodified() {
    // It counts every kubemint request in the audit log.
    let _alone = crate::CONTROL_PLANE.write().await;
    let started = Timestamp::now();
    let mut env = Env::prepare("shapes", true).await;
    let files = files_of(&example_dir());
    assert!(files.len() >= 10, "examples/boutique: {files:?}");
    let sha = env
        .repo
        .write(&files)
        .commit("boutique as it is in examples/");
    let revs = revisions(&env.repo);
    env.apply_channel(json!({})).await;
    env.wait_settled(&sha).await;

    // Both workloads serve from their minted revisions, all pods ready.
    for name in ["checkout", "frontend"] {
        env.wait_serving(name, name, &revs[name], 2).await;
    }

    // The native sidecar and the gRPC probes are in the minted pods as written.
    let rs = env
        .rs(&format!("checkout-{}", revs["checkout"]))
        .await
        .unwrap();
    let pod_spec = rs.spec.unwrap().template.unwrap().spec.unwrap();
    let sidecar = &pod_spec.init_containers.as_ref().unwrap()[0];
    assert_eq!(sidecar.name, "log-shipper");
    assert_eq!(sidecar.restart_policy.as_deref(), Some("Always"));
    let server = &pod_spec.containers[0];
    let readiness = server.readiness_probe.as_ref().unwrap();
    assert_eq!(readiness.grpc.as_ref().unwrap().port, 5050);
    let startup = server
        .startup_probe
        .as_ref()
        .unwrap()
        .grpc
        .as_ref()
        .unwrap();
    assert_eq!(startup.service.as_deref(), Some("readiness"));
    // The sidecar's config is an immutable copy, like the app's.
    let copies: Vec<String> = pod_spec
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.config_map.as_ref().map(|c| c.name.clone()))
        .collect();
    assert!(
        copies.iter().all(|c| c.starts_with("checkout-config-")),
        "{copies:?}"
    );

    // The pods report the sidecar running beside the server, and are Ready.
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let selector = format!("kubemint.io/revision={}", revs["checkout"]);
    let listed = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2);
    for pod in listed.items {
        let status = pod.status.unwrap();
        let init = status.init_container_statuses.unwrap();
        assert!(
            init[0].state.as_ref().unwrap().running.is_some(),
            "{init:?}"
        );
    }

    // The autoscalers are autoscaling/v2 with their behavior, retargeted to
    // the serving ReplicaSets.
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(env.client.clone(), &env.ns);
    let checkout = hpas.get("checkout").await.unwrap().spec.unwrap();
    let behavior = checkout.behavior.unwrap();
    assert_eq!(
        behavior.scale_down.unwrap().stabilization_window_seconds,
        Some(300)
    );
    assert_eq!(
        behavior.scale_up.unwrap().select_policy.as_deref(),
        Some("Max")
    );
    assert_eq!(checkout.metrics.unwrap().len(), 2);
    for name in ["checkout", "frontend"] {
        let want = ("ReplicaSet".to_string(), format!("{name}-{}", revs[name]));
        assert_eq!(hpa_target(&hpas, name).await, want);
    }

    // The rest is applied as declared.
    let pdb = Api::<PodDisruptionBudget>::namespaced(env.client.clone(), &env.ns)
        .get("checkout")
        .await
        .unwrap();
    let pdb = pdb.spec.unwrap();
    assert_eq!(
        pdb.unhealthy_pod_eviction_policy.as_deref(),
        Some("AlwaysAllow")
    );
    let cron = Api::<CronJob>::namespaced(env.client.clone(), &env.ns)
        .get("cart-cleanup")
        .await
        .unwrap();
    assert_eq!(
        cron.spec.unwrap().time_zone.as_deref(),
        Some("Europe/Berlin")
    );
    let ingress = Api::<Ingress>::namespaced(env.client.clone(), &env.ns)
        .get("frontend")
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(ingress.ingress_class_name.as_deref(), Some("nginx"));
    assert_eq!(
        ingress.tls.unwrap()[0].secret_name.as_deref(),
        Some("frontend-tls")
    );

    // A release: one line of images.yaml. Both workloads get new revisions,
    // and traffic and autoscalers move to them together.
    let images = std::fs::read_to_string(example_dir().join("images.yaml")).unwrap();
    let bumped = images.replace("\"2.3.0\"", "\"2.4.0\"");
    assert_ne!(bumped, images);
    let next = env
        .repo
        .write(&[("images.yaml", bumped)])
        .commit("release 2.4.0");
    let next_revs = revisions(&env.repo);
    env.wait_settled(&next).await;
    for name in ["checkout", "frontend"] {
        assert_ne!(next_revs[name], revs[name]);
        env.wait_serving(name, name, &next_revs[name], 2).await;
        let want = (
            "ReplicaSet".to_string(),
            format!("{name}-{}", next_revs[name]),
        );
        assert_eq!(hpa_target(&hpas, name).await, want);
    }
    let checkout = hpas.get("checkout").await.unwrap().spec.unwrap();
    assert_eq!(
        checkout
            .behavior
            .unwrap()
            .scale_down
            .unwrap()
            .stabilization_window_seconds,
        Some(300),
        "the retarget keeps the declared behavior"
    );

    let report = env.finish().await.unwrap();
    assert!(report.served.len() >= 2, "{:?}", report.served);

    // The operator's reflectors filled their caches with streaming lists
    // (this server serves them): watches with initial events, no
    // label-selected LIST.
    let log = support::cluster().audit_log();
    let ours = audit::requests(
        &log,
        kubemint::cluster::USER_AGENT,
        started,
        Timestamp::now(),
    );
    for resource in ["replicasets", "services", "jobs"] {
        let of = |verb: &str| {
            ours.iter()
                .filter(|r| r.resource == resource && r.verb == verb)
                .collect::<Vec<_>>()
        };
        assert!(
            of("watch")
                .iter()
                .any(|r| r.request_uri.contains("sendInitialEvents=true")),
            "{resource}: no streaming list among {:?}",
            of("watch")
        );
        // (A commit's reads of the Services it pins, looking for hand-made
        // ones to adopt, are no reflector's.)
        let reflector_lists: Vec<_> = of("list")
            .into_iter()
            .filter(|r| r.request_uri.contains("labelSelector="))
            .collect();
        assert!(
            reflector_lists.is_empty(),
            "{resource}: {reflector_lists:?}"
        );
    }
}
