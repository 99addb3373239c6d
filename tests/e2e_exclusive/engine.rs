//! End-to-end acceptance tests of the delivery engine (issue 9): re-delivery
//! of an earlier commit, drift put back from a watch, a Secret that is both
//! read by minted pods and referenced by other objects, a change of the
//! target namespace, `drainSeconds: 0`, and an API server restart in the
//! middle of a rollout. Every test runs the serving checker
//! (`support::checker`) from its start: no pinned Service may ever select
//! a revision without ready pods.

use crate::fixture;
use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::CONTROL_PLANE;
use fixture::manifests::{config, deployment};
use fixture::release::{available, replicas, revisions, workload, Env};
use fixture::{condition, inventory_uids};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::Client;
use serde_json::json;
use support::{eventually, hold_revision, release_revision, wait_for, ServingChecker};

/// Replicas, ready pods and the Service's pinned revision, for messages.
async fn serving_state(env: &Env, workload: &str, revisions: &[&str]) -> String {
    let mut parts = vec![format!(
        "Service {workload} selects {:?}",
        env.service_revision(workload).await
    )];
    for revision in revisions {
        let rs = env.rs(&format!("{workload}-{revision}")).await;
        parts.push(match rs {
            Some(rs) => format!(
                "{workload}-{revision}: {} replicas, {} available",
                replicas(&rs),
                available(&rs)
            ),
            None => format!("{workload}-{revision}: absent"),
        });
    }
    parts.join("; ")
}

/// Waits until Service `web` selects `revision`, whose ReplicaSet has
/// `pods` available and `others` are scaled to zero.
async fn wait_web_on(env: &Env, revision: &str, pods: i32, others: &[&str]) {
    let mut all = vec![revision];
    all.extend_from_slice(others);
    eventually(
        Duration::from_secs(90),
        &format!("Service web on revision {revision} with {pods} ready pods, {others:?} drained"),
        || async {
            let on = env.service_revision("web").await.as_deref() == Some(revision);
            let serving = env
                .rs(&format!("web-{revision}"))
                .await
                .is_some_and(|rs| available(&rs) >= pods && replicas(&rs) == pods);
            let mut drained = true;
            for other in others {
                if let Some(rs) = env.rs(&format!("web-{other}")).await {
                    drained &= replicas(&rs) == 0;
                }
            }
            if on && serving && drained {
                Ok(())
            } else {
                Err(serving_state(env, "web", &all).await)
            }
        },
    )
    .await;
}

/// Delivers A (web 1.0), then B (web 2.0), each promoted and settled;
/// returns (sha A, revision A, sha B, revision B).
async fn promote_a_then_b(env: &Env) -> (String, String, String, String) {
    let sha_a = env
        .repo
        .write(&workload("web", "web:1.0", "a"))
        .commit("A: web 1.0");
    let ha = revisions(&env.repo)["web"].clone();
    env.wait_settled(&sha_a).await;
    wait_web_on(env, &ha, 2, &[]).await;
    let sha_b = env
        .repo
        .write(&[("web/deployment.yaml", deployment("web", "web:2.0", 2))])
        .commit("B: web 2.0");
    let hb = revisions(&env.repo)["web"].clone();
    assert_ne!(ha, hb);
    env.wait_settled(&sha_b).await;
    wait_web_on(env, &hb, 2, &[&ha]).await;
    (sha_a, ha, sha_b, hb)
}

/// After a re-delivery of A: A serves, B is drained, the checker saw no gap.
async fn assert_back_on_a(mut env: Env, sha_a: &str, ha: &str, hb: &str) {
    let ch = env.wait_settled(sha_a).await;
    wait_web_on(&env, ha, 2, &[hb]).await;
    let status = ch.status.as_ref().unwrap();
    assert_eq!(
        status.releases[0].revisions[0].revision, ha,
        "the release history names A's revision as the active one"
    );
    assert_ne!(
        condition(&ch, "Stalled").map(|c| c.0).as_deref(),
        Some("True")
    );
    let seen = env.finish().await.unwrap();
    assert!(seen.served.contains("web"), "{seen:?}");
}

/// Issue 9, item 1: promote A, promote B, force-push the branch back to A.
#[tokio::test]
async fn a_force_push_back_to_an_earlier_commit_serves_it_again() {
    let _shared = CONTROL_PLANE.read().await;
    let env = Env::start("repush", json!({"drainSeconds": 1, "keepReleases": 2})).await;
    let (sha_a, ha, _sha_b, hb) = promote_a_then_b(&env).await;
    env.repo.git(&["reset", "--hard", &sha_a]);
    assert_back_on_a(env, &sha_a, &ha, &hb).await;
}

/// Issue 9, item 1, the other way to go back: `ref.commit` pinned to A.
#[tokio::test]
async fn pinning_the_ref_to_an_earlier_commit_serves_it_again() {
    let _shared = CONTROL_PLANE.read().await;
    let env = Env::start("pinref", json!({"drainSeconds": 1, "keepReleases": 2})).await;
    let (sha_a, ha, _sha_b, hb) = promote_a_then_b(&env).await;
    env.apply_channel(json!({
        "git": {"url": env.repo.url(), "ref": {"commit": sha_a}, "path": ".", "interval": "2s"},
        "rollout": {"drainSeconds": 1, "keepReleases": 2},
    }))
    .await;
    assert_back_on_a(env, &sha_a, &ha, &hb).await;
}

/// Issue 9, item 2: a hand edit (a JSON patch, as `kubectl patch --type json`
/// makes it) of a managed Service's port is put back from the watch, within
/// seconds and not at the drift interval, and reported; the channel goes on.
#[tokio::test]
async fn a_hand_patched_service_port_is_put_back_from_the_watch_and_reported() {
    let _shared = CONTROL_PLANE.read().await;
    // driftInterval 1h: only a watch can put it back in time.
    let mut env = Env::start_spec(
        "handpatch",
        json!({"driftInterval": "1h", "rollout": {"drainSeconds": 1}}),
    )
    .await;
    let sha1 = env
        .repo
        .write(&workload("web", "web:1.0", "a"))
        .commit("web 1.0");
    env.wait_settled(&sha1).await;
    let services = env.services();
    let patch: Patch<()> = Patch::Json(
        serde_json::from_value(json!([
            {"op": "replace", "path": "/spec/ports/0/port", "value": 81}
        ]))
        .unwrap(),
    );
    let by_hand = PatchParams {
        field_manager: Some("kubectl-patch".into()),
        ..PatchParams::default()
    };
    let patched = services.patch("web", &by_hand, &patch).await.unwrap();
    let ports = |svc: &Service| -> Vec<i32> {
        svc.spec
            .iter()
            .flat_map(|s| s.ports.iter().flatten())
            .map(|p| p.port)
            .collect()
    };
    assert_eq!(ports(&patched), [81], "the hand edit took");

    eventually(
        Duration::from_secs(10),
        "Service web back on port 80 alone",
        || async {
            let svc = services.get("web").await.map_err(|e| e.to_string())?;
            let now = ports(&svc);
            (now == [80]).then_some(()).ok_or(format!("ports {now:?}"))
        },
    )
    .await;

    let events: Api<Event> = Api::namespaced(env.client.clone(), &env.ns);
    eventually(
        Duration::from_secs(10),
        "a DriftCorrected event naming Service web and the manager kubectl-patch",
        || async {
            let list = events
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            let texts: Vec<String> = list
                .items
                .iter()
                .filter(|e| e.reason.as_deref() == Some("DriftCorrected"))
                .map(|e| {
                    let regarding = e.regarding.as_ref();
                    format!(
                        "{} {} {}",
                        regarding.and_then(|r| r.kind.clone()).unwrap_or_default(),
                        regarding.and_then(|r| r.name.clone()).unwrap_or_default(),
                        e.note.clone().unwrap_or_default()
                    )
                })
                .collect();
            let named = texts
                .iter()
                .any(|t| t.contains("Service") && t.contains("web") && t.contains("kubectl-patch"));
            let reasons: Vec<_> = list.items.iter().filter_map(|e| e.reason.clone()).collect();
            named.then_some(()).ok_or(format!(
                "DriftCorrected events: {texts:?}; all reasons: {reasons:?}"
            ))
        },
    )
    .await;

    let ch = env.channel().await;
    assert_ne!(
        condition(&ch, "Stalled").map(|c| c.0).as_deref(),
        Some("True"),
        "stalled after a hand edit: {:?}",
        ch.status
    );
    assert_eq!(
        condition(&ch, "Ready").map(|c| c.0).as_deref(),
        Some("True")
    );

    // The channel still delivers.
    let sha2 = env
        .repo
        .write(&[("web/config.yaml", config("web", "b"))])
        .commit("value b");
    let h2 = revisions(&env.repo)["web"].clone();
    env.wait_settled(&sha2).await;
    wait_web_on(&env, &h2, 2, &[]).await;
    let svc = services.get("web").await.unwrap();
    assert_eq!(ports(&svc), [80]);
    let seen = env.finish().await.unwrap();
    assert!(seen.served.contains("web"), "{seen:?}");
}

const SECRET_TOKEN: &str = "c2VjcmV0LXRva2VuLXZhbHVl"; // base64, never printed

fn secret_release(image: &str) -> Vec<(String, String)> {
    let deployment = format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: web
          image: {image}
          envFrom:
            - secretRef: {{name: creds}}
"
    );
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\ntype: Opaque\ndata:\n  token: {SECRET_TOKEN}\n"
    );
    let ingress = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
spec:
  tls:
    - hosts: [shop.example.com]
      secretName: creds
  rules:
    - host: shop.example.com
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: web
                port: {number: 80}
";
    let account = "apiVersion: v1
kind: ServiceAccount
metadata:
  name: web
imagePullSecrets:
  - name: creds
";
    vec![
        ("web/deployment.yaml".into(), deployment),
        ("web/secret.yaml".into(), secret),
        ("web/ingress.yaml".into(), ingress.into()),
        ("web/serviceaccount.yaml".into(), account.into()),
        (
            "web/service.yaml".into(),
            fixture::manifests::service("web"),
        ),
    ]
}

/// Whether `secret` holds exactly the declared data (compared without
/// printing it).
fn holds_declared_data(secret: &Secret) -> bool {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD
        .decode(SECRET_TOKEN)
        .unwrap();
    let data = secret.data.clone().unwrap_or_default();
    data.len() == 1 && data.get("token").map(|b| &b.0) == Some(&token)
}

/// Issue 9, item 4: a Secret that minted pods read (envFrom) and that an
/// Ingress (tls secretName) and a ServiceAccount (imagePullSecrets) name
/// is delivered as declared, under its own name, and as the immutable copy
/// the pods read; a next commit does not prune it.
#[tokio::test]
async fn a_secret_read_by_pods_and_named_by_other_objects_is_delivered_as_declared_too() {
    let _shared = CONTROL_PLANE.read().await;
    let mut env = Env::start("secret", json!({"drainSeconds": 1})).await;
    let sha1 = env
        .repo
        .write(&secret_release("web:1.0"))
        .commit("web with creds");
    let h1 = revisions(&env.repo)["web"].clone();
    env.wait_settled(&sha1).await;
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &env.ns);

    let check_declared = |when: &'static str| {
        let secrets = secrets.clone();
        async move {
            let declared = secrets.get_opt("creds").await.unwrap();
            let declared = declared
                .unwrap_or_else(|| panic!("{when}: the declared Secret creds does not exist"));
            assert!(
                holds_declared_data(&declared),
                "{when}: Secret creds does not hold the declared data (values not shown)"
            );
            assert_ne!(
                declared.immutable,
                Some(true),
                "{when}: creds is applied as declared"
            );
            let labels = declared.metadata.labels.clone().unwrap_or_default();
            assert_eq!(
                labels
                    .get("app.kubernetes.io/managed-by")
                    .map(String::as_str),
                Some("kubemint"),
                "{when}: creds is a managed object"
            );
        }
    };
    check_declared("after the first commit").await;

    // The pods read an immutable copy holding the same data.
    let rs: ReplicaSet = env.rs(&format!("web-{h1}")).await.expect("revision minted");
    let pod_spec = rs.spec.unwrap().template.unwrap().spec.unwrap();
    let copy_name = pod_spec.containers[0].env_from.as_ref().unwrap()[0]
        .secret_ref
        .as_ref()
        .unwrap()
        .name
        .clone();
    assert!(
        copy_name.starts_with("creds-"),
        "the pods read a copy, not {copy_name}"
    );
    let copy = secrets.get(&copy_name).await.expect("the immutable copy");
    assert_eq!(copy.immutable, Some(true));
    assert!(
        holds_declared_data(&copy),
        "the copy holds the declared data (values not shown)"
    );

    // The other objects still name the declared Secret, which exists.
    let ingress = Api::<Ingress>::namespaced(env.client.clone(), &env.ns)
        .get("web")
        .await
        .unwrap();
    let tls = ingress.spec.unwrap().tls.unwrap();
    assert_eq!(tls[0].secret_name.as_deref(), Some("creds"));
    let account = Api::<ServiceAccount>::namespaced(env.client.clone(), &env.ns)
        .get("web")
        .await
        .unwrap();
    let pull: Vec<String> = account
        .image_pull_secrets
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(pull, ["creds"]);

    // A next commit (an image bump) keeps the declared Secret.
    let sha2 = env.repo.write(&secret_release("web:1.1")).commit("web 1.1");
    let h2 = revisions(&env.repo)["web"].clone();
    env.wait_settled(&sha2).await;
    wait_web_on(&env, &h2, 2, &[&h1]).await;
    check_declared("after the next commit").await;
    let inventory: Vec<String> = env
        .channel()
        .await
        .status
        .unwrap()
        .inventory_entries()
        .iter()
        .map(|e| e.to_string())
        .collect();
    assert!(
        inventory.contains(&format!("Secret/{}/creds", env.ns)),
        "creds in the inventory: {inventory:?}"
    );
    let seen = env.finish().await.unwrap();
    assert!(seen.served.contains("web"), "{seen:?}");
}

/// Objects of `ns` that carry the channel's label, by kind.
async fn managed_in(
    client: &Client,
    ns: &str,
    channel_ns: &str,
) -> BTreeMap<&'static str, Vec<String>> {
    let labels = ListParams::default().labels(&format!("kubemint.io/channel={channel_ns}.shop"));
    let names = |items: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>| {
        items.into_iter().filter_map(|m| m.name).collect::<Vec<_>>()
    };
    let mut found = BTreeMap::new();
    let svc = Api::<Service>::namespaced(client.clone(), ns)
        .list(&labels)
        .await
        .unwrap();
    found.insert(
        "Service",
        names(svc.items.into_iter().map(|o| o.metadata).collect()),
    );
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .list(&labels)
        .await
        .unwrap();
    found.insert(
        "ConfigMap",
        names(cm.items.into_iter().map(|o| o.metadata).collect()),
    );
    let rs = Api::<ReplicaSet>::namespaced(client.clone(), ns)
        .list(&labels)
        .await
        .unwrap();
    found.insert(
        "ReplicaSet",
        names(rs.items.into_iter().map(|o| o.metadata).collect()),
    );
    found.retain(|_, v| !v.is_empty());
    found
}

/// A channel whose `targetNamespace` changes moves its objects: the new
/// namespace serves ready pods, the old one's objects are pruned.
#[tokio::test]
async fn changing_the_target_namespace_moves_the_release_and_prunes_the_old_namespace() {
    let _shared = CONTROL_PLANE.read().await;
    let cluster = support::cluster();
    let rollout = json!({"drainSeconds": 1});
    let mut env = Env::start("retarget", rollout.clone()).await;
    let sha1 = env
        .repo
        .write(&workload("web", "web:1.0", "a"))
        .commit("web 1.0");
    let h1 = revisions(&env.repo)["web"].clone();
    env.wait_settled(&sha1).await;
    wait_web_on(&env, &h1, 2, &[]).await;
    assert!(!managed_in(&env.client, &env.ns, &env.ns).await.is_empty());

    let target = cluster.namespace("retarget-to").await;
    let target_checker = ServingChecker::start(env.client.clone(), &target).await;
    env.apply_channel(json!({"targetNamespace": target, "rollout": rollout}))
        .await;

    let moved = Api::<Service>::namespaced(env.client.clone(), &target);
    let moved_rs = Api::<ReplicaSet>::namespaced(env.client.clone(), &target);
    eventually(
        Duration::from_secs(90),
        "Service web in the new namespace selects ready pods of the release",
        || async {
            let svc = moved.get_opt("web").await.map_err(|e| e.to_string())?;
            let revision = svc
                .and_then(|s| s.spec?.selector?.get("kubemint.io/revision").cloned())
                .ok_or("no pinned Service web yet")?;
            let rs = moved_rs
                .get_opt(&format!("web-{revision}"))
                .await
                .map_err(|e| e.to_string())?
                .ok_or(format!("no ReplicaSet web-{revision}"))?;
            (available(&rs) == 2)
                .then_some(())
                .ok_or(format!("web-{revision}: {} available", available(&rs)))
        },
    )
    .await;
    eventually(
        Duration::from_secs(90),
        "the old namespace's objects pruned",
        || async {
            let left = managed_in(&env.client, &env.ns, &env.ns).await;
            left.is_empty()
                .then_some(())
                .ok_or(format!("left: {left:?}"))
        },
    )
    .await;
    let ch = wait_for(Duration::from_secs(60), || async {
        let ch = env.channel().await;
        (condition(&ch, "Ready")?.0 == "True" && condition(&ch, "Reconciling")?.0 == "False")
            .then_some(ch)
    })
    .await;
    let inventory = ch.inventory_entries();
    assert!(
        inventory
            .iter()
            .all(|e| e.namespace.as_deref() == Some(target.as_str())),
        "inventory in the new namespace: {:?}",
        inventory.iter().map(|e| e.to_string()).collect::<Vec<_>>()
    );
    let live = inventory_uids(&env.client, &ch).await;
    assert!(
        live.values().all(Option::is_some),
        "every inventory object exists: {live:?}"
    );
    let seen = target_checker.finish().await;
    assert!(seen.served.contains("web"), "{seen:?}");
    env.finish().await;
}

/// `drainSeconds: 0`: promotion and drain in one go, and still no moment
/// without ready pods behind the Service.
#[tokio::test]
async fn drain_seconds_zero_promotes_and_drains_in_one_go() {
    let _shared = CONTROL_PLANE.read().await;
    let mut env = Env::start("nodrain", json!({"drainSeconds": 0, "keepReleases": 1})).await;
    let sha1 = env
        .repo
        .write(&workload("web", "web:1.0", "a"))
        .commit("web 1.0");
    let h1 = revisions(&env.repo)["web"].clone();
    env.wait_settled(&sha1).await;
    for (i, image) in ["web:1.1", "web:1.2"].into_iter().enumerate() {
        let sha = env
            .repo
            .write(&[("web/deployment.yaml", deployment("web", image, 2))])
            .commit(image);
        let h = revisions(&env.repo)["web"].clone();
        env.wait_settled(&sha).await;
        wait_web_on(&env, &h, 2, &[]).await;
        let names = env.rs_names().await;
        assert!(names.contains(&format!("web-{h}")), "{names:?}");
        if i == 0 {
            let old = env
                .rs(&format!("web-{h1}"))
                .await
                .expect("kept (keepReleases 1)");
            assert_eq!(replicas(&old), 0, "drained at once");
        } else {
            assert!(
                !names.contains(&format!("web-{h1}")),
                "past keepReleases: deleted ({names:?})"
            );
        }
    }
    let seen = env.finish().await.unwrap();
    assert!(seen.served.contains("web"), "{seen:?}");
}

/// An API server restart while a new revision waits to be ready: the same
/// operator process (not restarted) promotes it once it is ready, prunes
/// nothing of the release, and the channel does not end Stalled.
#[tokio::test]
async fn an_api_server_restart_mid_rollout_is_survived_without_restarting_the_operator() {
    let _alone = CONTROL_PLANE.write().await;
    let cluster = support::cluster();
    let mut env = Env::start("apirestart", json!({"drainSeconds": 1, "keepReleases": 2})).await;
    let sha1 = env
        .repo
        .write(&workload("web", "web:1.0", "a"))
        .commit("web 1.0");
    let h1 = revisions(&env.repo)["web"].clone();
    let ch = env.wait_settled(&sha1).await;
    // What the release consists of, by uid: after the restart every one of
    // them must still be the same object (not pruned, not recreated).
    let before = inventory_uids(&env.client, &ch).await;
    assert!(before.values().all(Option::is_some), "{before:?}");
    assert!(
        before.keys().any(|k| k.starts_with("Service/")),
        "{before:?}"
    );

    std::fs::write(
        env.repo.path().join("web/deployment.yaml"),
        deployment("web", "web:2.0", 2),
    )
    .unwrap();
    let h2 = revisions(&env.repo)["web"].clone();
    hold_revision(&env.ns, &h2).await;
    let sha2 = env.repo.commit("web 2.0");
    let rs2 = format!("web-{h2}");
    wait_for(Duration::from_secs(60), || async {
        env.rs(&rs2).await.filter(|rs| replicas(rs) == 2)
    })
    .await;

    cluster.restart_apiserver().await;
    assert_eq!(
        env.op.wait_exit(Duration::ZERO).await,
        None,
        "the operator survived the restart:\n{}",
        env.op.log_text()
    );
    // The first requests after the restart may still fail; release until ready.
    eventually(
        Duration::from_secs(60),
        "the held revision released",
        || async {
            release_revision(&env.client, &env.ns, &h2).await;
            let rs = env.rs(&rs2).await.ok_or("no ReplicaSet")?;
            (available(&rs) == 2)
                .then_some(())
                .ok_or(format!("{} available", available(&rs)))
        },
    )
    .await;

    let ch = env.wait_settled(&sha2).await;
    wait_web_on(&env, &h2, 2, &[&h1]).await;
    assert_ne!(
        condition(&ch, "Stalled").map(|c| c.0).as_deref(),
        Some("True")
    );
    let after = inventory_uids(&env.client, &ch).await;
    for (object, uid) in &before {
        assert_eq!(
            after.get(object),
            Some(uid),
            "{object} kept as the same object: {after:?}"
        );
    }
    assert!(
        env.rs(&format!("web-{h1}")).await.is_some(),
        "the previous revision is kept"
    );
    let events: Api<Event> = Api::namespaced(env.client.clone(), &env.ns);
    let pruned: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("Pruned"))
        .filter_map(|e| e.note)
        .collect();
    assert!(pruned.is_empty(), "nothing pruned, yet: {pruned:?}");
    assert_eq!(
        env.op.wait_exit(Duration::ZERO).await,
        None,
        "same operator process"
    );
    let seen = env.finish().await.unwrap();
    assert!(seen.served.contains("web"), "{seen:?}");
}
