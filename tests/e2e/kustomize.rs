//! End-to-end: a kustomize base and overlay delivered by a channel through the
//! same immutable blue/green rollout as plain manifests. kustomize is the real
//! one (`kustomize`, else `kubectl kustomize`).

use crate::fixture;
use crate::support;

use std::time::Duration;

use fixture::manifests::{bare_deployment, service};
use fixture::release::{available, replicas, Env};
use fixture::{condition, kubemint};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::Api;
use kubemint::controller::Channel;
use kubemint::render::{render, RenderOptions, RepoTree};
use serde_json::json;
use support::{hold_revision, release_revision, wait_for};

/// The channel's path.
const OVERLAY: &str = "overlays/dev";

const BASE: &str = "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [web.yaml, service.yaml, worker.yaml]
labels:
  - pairs: {app.kubernetes.io/part-of: shop}
configMapGenerator:
  - name: web-config
    literals: [GREETING=hello]
";

const WEB: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: registry.example.com/web:0.1
          env:
            - {name: LOG_LEVEL, value: info}
          envFrom:
            - configMapRef: {name: web-config}
";

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

/// The dev overlay: the channel's namespace, a web tag, two web pods, debug
/// logs and a greeting of its own. `extra` is appended (to break it).
fn overlay(ns: &str, tag: &str, greeting: &str, extra: &str) -> String {
    format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: {ns}
resources: [../../base]
images:
  - name: registry.example.com/web
    newTag: \"{tag}\"
replicas:
  - name: web
    count: 2
patches:
  - path: env.yaml
configMapGenerator:
  - name: web-config
    behavior: merge
    literals: [GREETING={greeting}]
{extra}"
    )
}

/// A namespace, an operator, and a channel on the dev overlay of a new
/// repository (no serving checker: these tests check serving themselves).
async fn start_overlay(prefix: &str) -> Env {
    let env = Env::prepare(prefix, false).await;
    let spec = json!({"rollout": {"drainSeconds": 1, "keepReleases": 3, "readyTimeout": "2m"}});
    env.apply_channel_at(OVERLAY, spec).await;
    env
}

/// What the kustomize tests do beyond the shared [`Env`]: commit the base and
/// the overlay, render the overlay's revisions, wait for a stalled commit.
trait Overlay {
    /// Commits the base and the overlay.
    fn commit(&self, tag: &str, greeting: &str, extra: &str, message: &str) -> String;
    /// The revision of `workload` in the working tree, as kubemint computes it.
    fn revision(&self, workload: &str) -> String;
    /// Waits until the channel is Stalled on commit `sha`.
    async fn wait_stalled(&self, sha: &str) -> Channel;
}

impl Overlay for Env {
    fn commit(&self, tag: &str, greeting: &str, extra: &str, message: &str) -> String {
        let overlay = overlay(&self.ns, tag, greeting, extra);
        let worker = bare_deployment("worker", "registry.example.com/worker:0.1", 1);
        self.repo
            .write(&[
                ("base/kustomization.yaml", BASE),
                ("base/web.yaml", WEB),
                ("base/service.yaml", service("web").as_str()),
                ("base/worker.yaml", worker.as_str()),
                ("overlays/dev/kustomization.yaml", overlay.as_str()),
                ("overlays/dev/env.yaml", ENV_PATCH),
            ])
            .commit(message)
    }

    fn revision(&self, workload: &str) -> String {
        let tree = RepoTree::from_dir(self.repo.path(), &Default::default()).unwrap();
        let options = RenderOptions {
            path: OVERLAY.into(),
            namespace: Some(self.ns.clone()),
            ..Default::default()
        };
        let release = render(&tree, &options).unwrap();
        release
            .workloads
            .into_iter()
            .find(|w| w.name == workload)
            .unwrap()
            .hash
    }

    async fn wait_stalled(&self, sha: &str) -> Channel {
        wait_for(Duration::from_secs(60), || async {
            let ch = self.channel().await;
            let status = ch.status.as_ref()?;
            let attempted = status.last_attempted_commit.as_ref()?.sha == sha;
            (attempted && condition(&ch, "Stalled")?.0 == "True").then_some(ch)
        })
        .await
    }
}

/// The web container of a ReplicaSet: (image, LOG_LEVEL, the ConfigMap its envFrom reads).
fn web_container(rs: &ReplicaSet) -> (String, String, String) {
    let spec = rs.spec.clone().unwrap().template.unwrap().spec.unwrap();
    let web = &spec.containers[0];
    let log_level = web
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "LOG_LEVEL")
        .and_then(|e| e.value.clone())
        .unwrap_or_default();
    let config = web.env_from.as_ref().unwrap()[0]
        .config_map_ref
        .as_ref()
        .unwrap()
        .name
        .clone();
    (web.image.clone().unwrap(), log_level, config)
}

#[tokio::test]
async fn an_overlay_is_delivered_and_an_image_bump_promotes_blue_green() {
    let env = start_overlay("kust-bump").await;
    let started = std::time::Instant::now();
    let sha1 = env.commit("1.0", "hi", "", "web 1.0 in dev");
    let h1 = env.revision("web");
    let ch = env.wait_settled(&sha1).await;
    println!("overlay commit -> settled: {:?}", started.elapsed());
    assert_eq!(condition(&ch, "Ready").unwrap().0, "True");

    // The overlay as kustomize built it: tag, replicas, patched env, generated config.
    let rs1 = env.rs(&format!("web-{h1}")).await.expect("web minted");
    assert_eq!((replicas(&rs1), available(&rs1)), (2, 2));
    let (image, log_level, config) = web_container(&rs1);
    assert_eq!(image, "registry.example.com/web:1.0");
    assert_eq!(log_level, "debug");
    let configs: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
    let copy = configs.get(&config).await.unwrap();
    assert_eq!(copy.immutable, Some(true), "pods read an immutable copy");
    assert_eq!(copy.data.as_ref().unwrap()["GREETING"], "hi");
    assert!(
        config.starts_with("web-config-"),
        "kustomize's generated name, then kubemint's copy: {config}"
    );
    let worker = env.revision("worker");
    assert!(env.rs(&format!("worker-{worker}")).await.is_some());
    assert_eq!(
        env.service_revision("web").await.as_deref(),
        Some(h1.as_str())
    );
    let service = Api::<Service>::namespaced(env.client.clone(), &env.ns)
        .get("web")
        .await
        .unwrap();
    let labels = service.metadata.labels.unwrap();
    assert_eq!(labels["app.kubernetes.io/part-of"], "shop", "base labels");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "kubemint");

    // An image bump in the overlay: new pods next to the old, traffic waits for them.
    std::fs::write(
        env.repo.path().join("overlays/dev/kustomization.yaml"),
        overlay(&env.ns, "1.1", "hi", ""),
    )
    .unwrap();
    let h2 = env.revision("web");
    assert_ne!(h1, h2);
    assert_eq!(env.revision("worker"), worker, "the worker is unchanged");

    // diff works on kustomize paths: the applied commit is what runs, the
    // edited overlay on disk would mint the new revision.
    let kubeconfig = support::cluster().kubeconfig();
    let same = kubemint(kubeconfig, &["diff", "shop", "-n", &env.ns], &[]);
    assert_eq!(same.code, 0, "{}\n{}", same.stdout, same.stderr);
    let local = env.repo.path().join(OVERLAY);
    let local = local.to_str().unwrap();
    let changes = kubemint(
        kubeconfig,
        &["diff", "shop", "-n", &env.ns, "--local", local],
        &[],
    );
    assert_eq!(changes.code, 1, "{}\n{}", changes.stdout, changes.stderr);
    let minted = format!("+ apps/ReplicaSet/{}/web-{h2} (kustomization.yaml)", env.ns);
    assert!(
        changes.stdout.contains(&minted),
        "{minted} in:\n{}",
        changes.stdout
    );

    hold_revision(&env.ns, &h2).await;
    let sha2 = env.repo.commit("web 1.1 in dev");
    let rs2_name = format!("web-{h2}");
    let rs2 = wait_for(Duration::from_secs(30), || async {
        env.rs(&rs2_name).await.filter(|rs| replicas(rs) == 2)
    })
    .await;
    assert_eq!(web_container(&rs2).0, "registry.example.com/web:1.1");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        env.service_revision("web").await.as_deref(),
        Some(h1.as_str()),
        "no switch before the new pods are ready"
    );
    let old = env.rs(&format!("web-{h1}")).await.unwrap();
    assert_eq!((replicas(&old), available(&old)), (2, 2), "old pods serve");

    release_revision(&env.client, &env.ns, &h2).await;
    wait_for(Duration::from_secs(30), || async {
        (env.service_revision("web").await.as_deref() == Some(h2.as_str())).then_some(())
    })
    .await;
    assert_eq!(available(&env.rs(&rs2_name).await.unwrap()), 2);
    env.wait_settled(&sha2).await;
    assert_eq!(
        replicas(&env.rs(&format!("web-{h1}")).await.unwrap()),
        0,
        "the previous revision is drained and kept"
    );
    assert!(
        env.rs(&format!("worker-{worker}")).await.is_some(),
        "an unchanged workload keeps its revision"
    );
}

#[tokio::test]
async fn a_config_map_generator_change_mints_new_pods_and_a_revert_brings_the_old_ones_back() {
    let env = start_overlay("kust-config").await;
    let sha1 = env.commit("1.0", "hi", "", "greeting hi");
    let h1 = env.revision("web");
    env.wait_settled(&sha1).await;
    let rs1 = env.rs(&format!("web-{h1}")).await.unwrap();
    let config1 = web_container(&rs1).2;

    let sha2 = env.commit("1.0", "bye", "", "greeting bye");
    let h2 = env.revision("web");
    assert_ne!(h1, h2, "a generator literal is part of the pods");
    env.wait_settled(&sha2).await;
    assert_eq!(
        env.service_revision("web").await.as_deref(),
        Some(h2.as_str())
    );
    let rs2 = env.rs(&format!("web-{h2}")).await.unwrap();
    let config2 = web_container(&rs2).2;
    assert_ne!(config1, config2);
    let configs: Api<ConfigMap> = Api::namespaced(env.client.clone(), &env.ns);
    assert_eq!(
        configs.get(&config2).await.unwrap().data.unwrap()["GREETING"],
        "bye"
    );
    assert_eq!(replicas(&env.rs(&format!("web-{h1}")).await.unwrap()), 0);

    // git revert: the same content, so the same revision, on the kept ReplicaSet.
    env.repo.git(&["revert", "--no-edit", "HEAD"]);
    let sha3 = env.repo.git(&["rev-parse", "HEAD"]);
    assert_eq!(env.revision("web"), h1);
    env.wait_settled(&sha3).await;
    let back = env.rs(&format!("web-{h1}")).await.unwrap();
    assert_eq!(
        back.metadata.uid, rs1.metadata.uid,
        "the old pods' ReplicaSet is scaled back up, not recreated"
    );
    assert_eq!((replicas(&back), available(&back)), (2, 2));
    assert_eq!(
        env.service_revision("web").await.as_deref(),
        Some(h1.as_str())
    );
    assert_eq!(web_container(&back).2, config1);
    assert_eq!(
        configs.get(&config1).await.unwrap().data.unwrap()["GREETING"],
        "hi",
        "the old pods read the old config"
    );
}

#[tokio::test]
async fn a_broken_kustomization_is_rejected_whole_while_the_previous_release_keeps_serving() {
    let env = start_overlay("kust-broken").await;
    let sha1 = env.commit("1.0", "hi", "", "good");
    let h1 = env.revision("web");
    env.wait_settled(&sha1).await;
    let before = env.rs_names().await;

    // A valid change (a new greeting and tag) beside a broken reference: nothing applies.
    let secret = "secretGenerator:\n  - name: db\n    literals: [password=correct-horse-battery]\n";
    let broken = format!("{secret}crds: [missing-crd.yaml]\n");
    let bad = env.commit("2.0", "changed", &broken, "broken overlay");
    let ch = env.wait_stalled(&bad).await;
    let (ready, reason, message) = condition(&ch, "Ready").unwrap();
    println!("Ready False {reason}: {message}");
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "KustomizeFailed")
    );
    assert!(
        message.contains("overlays/dev/kustomization.yaml: kustomize build failed"),
        "the kustomization is named: {message}"
    );
    assert!(
        message.contains("missing-crd.yaml"),
        "kustomize's own message: {message}"
    );
    assert!(!message.contains("correct-horse-battery"), "{message}");
    let status = ch.status.as_ref().unwrap();
    assert_eq!(status.last_applied_commit.as_ref().unwrap().sha, sha1);
    assert_eq!(
        env.service_revision("web").await.as_deref(),
        Some(h1.as_str())
    );
    let serving = env.rs(&format!("web-{h1}")).await.unwrap();
    assert_eq!((replicas(&serving), available(&serving)), (2, 2));
    assert_eq!(env.rs_names().await, before, "nothing was minted");

    // A remote base is refused before kustomize runs, naming the kustomization.
    let remote = "components: [\"github.com/acme/deploy//components/tls?ref=v1\"]\n";
    let refused = env.commit("2.0", "changed", remote, "remote component");
    let ch = env.wait_stalled(&refused).await;
    let (_, reason, message) = condition(&ch, "Ready").unwrap();
    println!("Ready False {reason}: {message}");
    assert_eq!(reason, "KustomizeRefused");
    assert!(
        message.contains("overlays/dev/kustomization.yaml: components: \"github.com/acme/deploy"),
        "{message}"
    );
    assert_eq!(
        env.service_revision("web").await.as_deref(),
        Some(h1.as_str())
    );

    // The fix is a new commit, delivered as usual.
    let fixed = env.commit("2.0", "changed", "", "fixed");
    let h2 = env.revision("web");
    env.wait_settled(&fixed).await;
    assert_eq!(
        env.service_revision("web").await.as_deref(),
        Some(h2.as_str())
    );
    let rs2 = env.rs(&format!("web-{h2}")).await.unwrap();
    assert_eq!(web_container(&rs2).0, "registry.example.com/web:2.0");
}
