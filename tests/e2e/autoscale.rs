//! End-to-end: a HorizontalPodAutoscaler next to a minted Deployment. It is
//! retargeted to the serving ReplicaSet (and the real HPA controller can
//! scale it), moves with the Services at promotion, a new revision starts at
//! the serving size, kubemint never resets what the autoscaler set, and a
//! rollback keeps the size. There is no metrics server: the tests scale the
//! serving ReplicaSet through its scale subresource, as the HPA controller would.

use crate::fixture;
use crate::support;

use std::time::Duration;

use fixture::release::{replicas, revisions, workload, Env};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use serde_json::json;
use support::{eventually, wait_for};

fn hpa(min: i32, max: i32) -> (String, String) {
    (
        "web/hpa.yaml".to_string(),
        format!(
            "apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: web
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}
  minReplicas: {min}
  maxReplicas: {max}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target: {{type: Utilization, averageUtilization: 80}}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 300
      policies:
        - {{type: Percent, value: 50, periodSeconds: 60}}
    scaleUp:
      policies:
        - {{type: Pods, value: 4, periodSeconds: 15}}
      selectPolicy: Max
"
        ),
    )
}

/// The HPA as autoscaling/v2 shows it (with conditions).
fn hpas(env: &Env) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("autoscaling", "v2", "HorizontalPodAutoscaler");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "horizontalpodautoscalers");
    Api::namespaced_with(env.client.clone(), &env.ns, &ar)
}

async fn hpa_target(env: &Env) -> Option<String> {
    let hpa = hpas(env).get_opt("web").await.ok()??;
    let target = &hpa.data["spec"]["scaleTargetRef"];
    (target["kind"] == "ReplicaSet")
        .then(|| target["name"].as_str().unwrap_or_default().to_string())
}

/// Scales a ReplicaSet through its scale subresource, as the HPA controller does.
async fn autoscale(env: &Env, rs: &str, to: i32) {
    env.replica_sets()
        .patch_scale(
            rs,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": to}})),
        )
        .await
        .expect("scaling through the scale subresource");
}

async fn wait_replicas(env: &Env, rs: &str, want: i32) {
    eventually(
        Duration::from_secs(60),
        &format!("{rs} at {want} replicas"),
        || async {
            match env.rs(rs).await {
                Some(r) if replicas(&r) == want => Ok(()),
                other => Err(format!("{:?}", other.map(|r| replicas(&r)))),
            }
        },
    )
    .await;
}

#[tokio::test]
async fn an_autoscaler_follows_the_serving_revision_and_keeps_its_size() {
    let mut env = Env::start("hpa", json!({"drainSeconds": 1, "keepReleases": 2})).await;
    let mut files = workload("web", "web:1.0", "a");
    files.push(hpa(2, 6));
    files.push((
        "web/pdb.yaml".to_string(),
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: web}\nspec:\n  minAvailable: 1\n  selector: {matchLabels: {app: web}}\n".to_string(),
    ));
    let sha_a = env.repo.write(&files).commit("web 1.0 with an autoscaler");
    let ha = revisions(&env.repo)["web"].clone();
    let rs_a = format!("web-{ha}");
    env.wait_settled(&sha_a).await;
    assert_eq!(hpa_target(&env).await.as_deref(), Some(rs_a.as_str()));
    // A PodDisruptionBudget is applied as declared: its selector spans every revision.
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(env.client.clone(), &env.ns);
    let pdb = pdbs.get("web").await.expect("the PodDisruptionBudget");
    let selector = pdb.spec.unwrap().selector.unwrap().match_labels.unwrap();
    assert_eq!(selector, [("app".to_string(), "web".to_string())].into());

    // The real HPA controller can work with the retargeted autoscaler.
    eventually(
        Duration::from_secs(90),
        "the HPA controller reports AbleToScale=True",
        || async {
            let hpa = hpas(&env).get("web").await.map_err(|e| e.to_string())?;
            let able = hpa.data["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "AbleToScale" && c["status"] == "True");
            if able {
                Ok(())
            } else {
                Err(hpa.data["status"].to_string())
            }
        },
    )
    .await;

    // Load: the autoscaler scales the serving revision to 4. No fight, even
    // across several drift intervals (2 s in the tests).
    autoscale(&env, &rs_a, 4).await;
    wait_replicas(&env, &rs_a, 4).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        replicas(&env.rs(&rs_a).await.unwrap()),
        4,
        "kubemint left the size alone"
    );

    // A release starts at the serving size, and the autoscaler moves with the switch.
    let sha_b = env
        .repo
        .write(&[(
            "web/deployment.yaml",
            fixture::manifests::deployment("web", "web:2.0", 2),
        )])
        .commit("web 2.0");
    let hb = revisions(&env.repo)["web"].clone();
    let rs_b = format!("web-{hb}");
    let started = wait_for(Duration::from_secs(60), || async {
        env.rs(&rs_b).await.map(|r| replicas(&r))
    })
    .await;
    assert_eq!(
        started, 4,
        "the new revision starts at the serving size, not 2"
    );
    env.wait_settled(&sha_b).await;
    env.wait_serving("web", "web", &hb, 4).await;
    assert_eq!(hpa_target(&env).await.as_deref(), Some(rs_b.as_str()));
    wait_replicas(&env, &rs_a, 0).await;

    // The autoscaler scales the new revision; a rollback to A starts there.
    autoscale(&env, &rs_b, 5).await;
    wait_replicas(&env, &rs_b, 5).await;
    env.repo.git(&["revert", "--no-edit", "HEAD"]);
    let sha_revert = env.repo.git(&["rev-parse", "HEAD"]);
    env.wait_settled(&sha_revert).await;
    env.wait_serving("web", "web", &ha, 5).await;
    assert_eq!(hpa_target(&env).await.as_deref(), Some(rs_a.as_str()));

    // Without the autoscaler the workload returns to the Deployment's replicas.
    let sha_c = env
        .repo
        .remove(&["web/hpa.yaml"])
        .commit("drop the autoscaler");
    env.wait_settled(&sha_c).await;
    wait_replicas(&env, &rs_a, 2).await;
    assert!(hpas(&env).get_opt("web").await.unwrap().is_none(), "pruned");

    let seen = env.finish().await.unwrap();
    assert!(seen.served.contains("web"), "{seen:?}");
}
