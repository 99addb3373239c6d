//! End-to-end: immutable releases. Every commit mints ReplicaSets per workload
//! revision; Services switch only when all new revisions are ready; previous
//! revisions drain, are kept, then deleted; git revert reuses a kept revision.

use crate::fixture;
use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use fixture::manifests::{config, deployment, service};
use fixture::release::{available, replicas, revisions, workload, Env};
use fixture::{channel, condition, request, wait_applied, Operator};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kubemint::controller::crd::ReleasePhase;
use serde_json::json;
use support::{hold_revision, release_revision, wait_for};

// Every test runs the serving checker (support::checker) from its start and
// finishes it at its end (`env.finish()`), except where noted.

#[tokio::test]
async fn image_bump_mints_promotes_after_ready_drains_and_keeps_revisions() {
    let mut env = Env::start(
        "bump",
        json!({"drainSeconds": 3, "keepReleases": 1, "readyTimeout": "2m"}),
    )
    .await;
    let sha1 = env
        .repo
        .write(&workload("web", "web:1.0", "a"))
        .commit("web 1.0");
    let h1 = revisions(&env.repo)["web"].clone();
    let ch = env.wait_settled(&sha1).await;
    let rs1 = env
        .rs(&format!("web-{h1}"))
        .await
        .expect("revision 1 minted");
    assert_eq!((replicas(&rs1), available(&rs1)), (2, 2));
    assert_eq!(
        env.service_revision("web").await.as_deref(),
        Some(h1.as_str())
    );
    let record = &ch.status.as_ref().unwrap().releases[0];
    assert_eq!(record.phase, ReleasePhase::Active);
    assert_eq!(record.revisions[0].revision, h1);
    assert!(record.promoted_at.is_some() && record.applied_at.is_some());
    // The pods read an immutable copy of the config, not the original.
    let template = rs1.spec.unwrap().template.unwrap().spec.unwrap();
    let copy_name = template.containers[0].env_from.as_ref().unwrap()[0]
        .config_map_ref
        .as_ref()
        .unwrap()
        .name
        .clone();
    assert_ne!(copy_name, "web-config");
    let copy = Api::<ConfigMap>::namespaced(env.client.clone(), &env.ns)
        .get(&copy_name)
        .await
        .unwrap();
    assert_eq!(copy.immutable, Some(true));

    // Bump the image; hold the new pods unready to watch the Service wait.
    std::fs::write(
        env.repo.path().join("web/deployment.yaml"),
        deployment("web", "web:1.1", 2),
    )
    .unwrap();
    let h2 = revisions(&env.repo)["web"].clone();
    assert_ne!(h1, h2);
    hold_revision(&env.ns, &h2).await;
    let sha2 = env.repo.commit("web 1.1");
    let rs2_name = format!("web-{h2}");
    wait_for(Duration::from_secs(30), || async {
        env.rs(&rs2_name).await.filter(|rs| replicas(rs) == 2)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        env.service_revision("web").await.as_deref(),
        Some(h1.as_str()),
        "no switch before ready"
    );
    assert_eq!(
        replicas(&env.rs(&format!("web-{h1}")).await.unwrap()),
        2,
        "old revision keeps serving"
    );
    let ch = env.channel().await;
    assert_eq!(condition(&ch, "Ready").unwrap().1, "Progressing");
    assert_eq!(
        ch.status.as_ref().unwrap().releases[0].phase,
        ReleasePhase::Progressing
    );

    release_revision(&env.client, &env.ns, &h2).await;
    wait_for(Duration::from_secs(30), || async {
        (env.service_revision("web").await.as_deref() == Some(h2.as_str())).then_some(())
    })
    .await;
    // At the switch every new pod was available.
    assert_eq!(available(&env.rs(&rs2_name).await.unwrap()), 2);
    let ch = env.wait_settled(&sha2).await;
    let releases = &ch.status.as_ref().unwrap().releases;
    assert_eq!(releases[0].phase, ReleasePhase::Active);
    assert_eq!(releases[1].phase, ReleasePhase::Superseded);
    let promoted: k8s_openapi::jiff::Timestamp =
        releases[0].promoted_at.as_ref().unwrap().parse().unwrap();
    let rs1 = env
        .rs(&format!("web-{h1}"))
        .await
        .expect("kept as a record");
    assert_eq!(replicas(&rs1), 0, "drained");
    let drained_at: k8s_openapi::jiff::Timestamp = rs1.metadata.annotations.unwrap()
        [kubemint::rollout::DRAINED_ANNOTATION]
        .parse()
        .unwrap();
    assert!(
        drained_at.duration_since(promoted).as_secs_f64() >= 2.9,
        "drained only after drainSeconds"
    );

    // A third release: revision 1 falls past keepReleases = 1 and is deleted.
    let sha3 = env
        .repo
        .write(&[("web/deployment.yaml", deployment("web", "web:1.2", 2))])
        .commit("web 1.2");
    let h3 = revisions(&env.repo)["web"].clone();
    env.wait_settled(&sha3).await;
    assert_eq!(
        env.rs_names().await,
        vec![format!("web-{h2}"), format!("web-{h3}")]
    );
    assert_eq!(replicas(&env.rs(&format!("web-{h2}")).await.unwrap()), 0);

    // Rolling back to revision 1, which is no longer kept: it is minted again.
    let sha4 = env
        .repo
        .write(&[("web/deployment.yaml", deployment("web", "web:1.0", 2))])
        .commit("back to web 1.0");
    assert_eq!(
        revisions(&env.repo)["web"],
        h1,
        "same content, same revision"
    );
    env.wait_settled(&sha4).await;
    assert_eq!(
        env.service_revision("web").await.as_deref(),
        Some(h1.as_str())
    );
    let again = env
        .rs(&format!("web-{h1}"))
        .await
        .expect("revision 1 minted again");
    assert_eq!((replicas(&again), available(&again)), (2, 2));
    assert_eq!(
        env.rs_names().await,
        vec![format!("web-{h1}"), format!("web-{h3}")]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>(),
        "revision 2 fell past keepReleases"
    );

    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(env.client.clone(), &env.ns);
    let reasons: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    for reason in ["Minted", "Promoted", "Drained", "Pruned"] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "no {reason} event in {reasons:?}"
        );
    }
    let seen = env.finish().await.unwrap();
    assert!(seen.served.contains("web"), "{seen:?}");
}

#[tokio::test]
async fn a_config_only_change_mints_new_pods_and_revert_reuses_the_kept_revision() {
    let mut env = Env::start("config", json!({"drainSeconds": 1, "keepReleases": 2})).await;
    let sha1 = env
        .repo
        .write(&workload("web", "web:1.0", "a"))
        .commit("value a");
    let h1 = revisions(&env.repo)["web"].clone();
    env.wait_settled(&sha1).await;
    let rs1_uid = env.rs(&format!("web-{h1}")).await.unwrap().metadata.uid;

    let sha2 = env
        .repo
        .write(&[("web/config.yaml", config("web", "b"))])
        .commit("value b");
    let h2 = revisions(&env.repo)["web"].clone();
    assert_ne!(h1, h2, "the config is part of the revision");
    env.wait_settled(&sha2).await;
    assert_eq!(
        env.service_revision("web").await.as_deref(),
        Some(h2.as_str())
    );
    assert_eq!(replicas(&env.rs(&format!("web-{h1}")).await.unwrap()), 0);

    // Roll back with git revert: the same revision as before, on the kept ReplicaSet.
    env.repo.git(&["revert", "--no-edit", "HEAD"]);
    let sha3 = env.repo.git(&["rev-parse", "HEAD"]);
    assert_eq!(revisions(&env.repo)["web"], h1);
    let ch = env.wait_settled(&sha3).await;
    let rs1 = env.rs(&format!("web-{h1}")).await.unwrap();
    assert_eq!(
        rs1.metadata.uid, rs1_uid,
        "the kept ReplicaSet is reused, not recreated"
    );
    assert_eq!((replicas(&rs1), available(&rs1)), (2, 2));
    assert_eq!(
        env.service_revision("web").await.as_deref(),
        Some(h1.as_str())
    );
    // The pods read the old config again, from the kept immutable copy.
    let copy_name = rs1.spec.unwrap().template.unwrap().spec.unwrap().containers[0]
        .env_from
        .as_ref()
        .unwrap()[0]
        .config_map_ref
        .as_ref()
        .unwrap()
        .name
        .clone();
    let copy = Api::<ConfigMap>::namespaced(env.client.clone(), &env.ns)
        .get(&copy_name)
        .await
        .unwrap();
    assert_eq!(copy.data.unwrap()["VALUE"], "a");
    let releases = &ch.status.unwrap().releases;
    assert_eq!(releases.len(), 3);
    assert_eq!(
        releases[0].revisions[0].revision,
        releases[2].revisions[0].revision
    );
    let seen = env.finish().await.unwrap();
    assert!(seen.served.contains("web"), "{seen:?}");
}

#[tokio::test]
async fn an_unready_release_fails_keeps_traffic_and_is_retried_on_request() {
    // No serving checker: the test points the Service by hand at the failed
    // revision (scaled to zero), an outage on purpose, to see it put back.
    let env = Env::start_unchecked("fail", json!({"drainSeconds": 1, "readyTimeout": "6s"})).await;
    let sha1 = env
        .repo
        .write(&workload("web", "web:1.0", "a"))
        .commit("web 1.0");
    let h1 = revisions(&env.repo)["web"].clone();
    env.wait_settled(&sha1).await;

    std::fs::write(
        env.repo.path().join("web/deployment.yaml"),
        deployment("web", "web:broken", 2),
    )
    .unwrap();
    let h2 = revisions(&env.repo)["web"].clone();
    hold_revision(&env.ns, &h2).await;
    let sha2 = env.repo.commit("broken image");
    let ch = wait_for(Duration::from_secs(40), || async {
        let ch = env.channel().await;
        let failed = ch.status.as_ref()?.releases.first()?.phase == ReleasePhase::Failed;
        failed.then_some(ch)
    })
    .await;
    let status = ch.status.as_ref().unwrap();
    assert_eq!(status.releases[0].commit.sha, sha2);
    let (ready, reason, message) = condition(&ch, "Ready").unwrap();
    assert_eq!(
        (ready.as_str(), reason.as_str()),
        ("False", "ReleaseFailed")
    );
    assert!(message.contains("web has 0/2 pods ready"), "{message}");
    assert_eq!(condition(&ch, "Stalled").unwrap().0, "True");
    assert_eq!(
        status.last_applied_commit.as_ref().unwrap().sha,
        sha1,
        "the old release stays applied"
    );
    assert_eq!(
        env.service_revision("web").await.as_deref(),
        Some(h1.as_str()),
        "traffic never moved"
    );
    let rs2 = format!("web-{h2}");
    wait_for(Duration::from_secs(10), || async {
        (replicas(&env.rs(&rs2).await?) == 0).then_some(())
    })
    .await;
    assert_eq!(replicas(&env.rs(&format!("web-{h1}")).await.unwrap()), 2);
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(env.client.clone(), &env.ns);
    let failed = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .find(|e| e.reason.as_deref() == Some("ReleaseFailed"));
    let failed = failed.expect("a ReleaseFailed event");
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    assert!(failed.note.unwrap().contains("web has 0/2"));

    // Not retried by itself: several polls later it is still scaled down.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(replicas(&env.rs(&rs2).await.unwrap()), 0);

    // Held, but not left alone: a Service pointed by hand at the failed pods is put back.
    Api::<Service>::namespaced(env.client.clone(), &env.ns)
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"selector": {"kubemint.io/revision": h2}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        env.service_revision("web").await.as_deref(),
        Some(h2.as_str())
    );
    wait_for(Duration::from_secs(20), || async {
        (env.service_revision("web").await? == h1).then_some(())
    })
    .await;
    assert_eq!(
        replicas(&env.rs(&rs2).await.unwrap()),
        0,
        "held pods stay down"
    );

    // Fix the pods and ask for a retry: the same commit now goes through.
    release_revision(&env.client, &env.ns, &h2).await;
    request(&env.client, &env.ns, "shop", "kubemint.io/retry").await;
    // The pods were scaled away; new ones come up under the released hold.
    env.wait_settled(&sha2).await;
    assert_eq!(
        env.service_revision("web").await.as_deref(),
        Some(h2.as_str())
    );
}

#[tokio::test]
async fn an_adopted_service_serves_the_old_pods_until_the_new_revision_is_ready() {
    let mut env = Env::start("adopt", json!({"drainSeconds": 1})).await;
    // What ran before kubemint: a Deployment and its Service, applied by hand.
    let manual = |yaml: &str| {
        let mut value: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
        value["metadata"]["namespace"] = json!(env.ns);
        value
    };
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(env.client.clone(), &env.ns);
    let post = kube::api::PostParams::default();
    deployments
        .create(
            &post,
            &serde_json::from_value(manual(&deployment("web", "web:0.9", 1))).unwrap(),
        )
        .await
        .unwrap();
    Api::<Service>::namespaced(env.client.clone(), &env.ns)
        .create(
            &post,
            &serde_json::from_value(manual(&service("web"))).unwrap(),
        )
        .await
        .unwrap();
    wait_for(Duration::from_secs(60), || async {
        let d = deployments.get("web").await.ok()?;
        (d.status?.ready_replicas == Some(1)).then_some(())
    })
    .await;
    // The documented hand-over: the Deployment goes, its pods stay (orphaned)
    // and keep serving. A Deployment left in place would adopt the minted
    // ReplicaSets its selector matches, and fight kubemint over their size.
    deployments
        .delete("web", &kube::api::DeleteParams::orphan())
        .await
        .unwrap();

    // The channel takes the workload over; its first revision is held unready.
    for (path, content) in workload("web", "web:1.0", "a") {
        let full = env.repo.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }
    let h1 = revisions(&env.repo)["web"].clone();
    hold_revision(&env.ns, &h1).await;
    let sha1 = env.repo.commit("kubemint takes over web");
    wait_for(Duration::from_secs(60), || async {
        env.rs(&format!("web-{h1}"))
            .await
            .filter(|rs| replicas(rs) == 2)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let selector = |svc: Service| svc.spec.unwrap().selector.unwrap();
    let live = Api::<Service>::namespaced(env.client.clone(), &env.ns)
        .get("web")
        .await
        .unwrap();
    assert_eq!(
        selector(live),
        BTreeMap::from([("app".to_string(), "web".to_string())]),
        "the Service keeps serving the pods it served until the new ones are ready"
    );

    release_revision(&env.client, &env.ns, &h1).await;
    env.wait_settled(&sha1).await;
    assert_eq!(
        env.service_revision("web").await.as_deref(),
        Some(h1.as_str())
    );
    let seen = env.finish().await.unwrap();
    assert!(seen.served.contains("web"), "{seen:?}");
}

#[tokio::test]
async fn workloads_of_one_commit_are_promoted_together() {
    let mut env = Env::start("together", json!({"drainSeconds": 1})).await;
    let mut files = workload("web", "web:1.0", "a");
    files.extend(workload("api", "api:1.0", "a"));
    let sha1 = env.repo.write(&files).commit("web and api 1.0");
    let old = revisions(&env.repo);
    env.wait_settled(&sha1).await;

    std::fs::write(
        env.repo.path().join("web/deployment.yaml"),
        deployment("web", "web:2.0", 2),
    )
    .unwrap();
    std::fs::write(
        env.repo.path().join("api/deployment.yaml"),
        deployment("api", "api:2.0", 2),
    )
    .unwrap();
    let new = revisions(&env.repo);
    hold_revision(&env.ns, &new["api"]).await;
    let sha2 = env.repo.commit("web and api 2.0");
    // web's new revision becomes ready; api's does not.
    let web_rs = format!("web-{}", new["web"]);
    wait_for(Duration::from_secs(30), || async {
        (available(&env.rs(&web_rs).await?) == 2).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        env.service_revision("web").await,
        Some(old["web"].clone()),
        "web waits for api"
    );
    assert_eq!(env.service_revision("api").await, Some(old["api"].clone()));

    release_revision(&env.client, &env.ns, &new["api"]).await;
    env.wait_applied(&sha2).await;
    assert_eq!(env.service_revision("web").await, Some(new["web"].clone()));
    assert_eq!(env.service_revision("api").await, Some(new["api"].clone()));
    let seen = env.finish().await.unwrap();
    assert!(
        seen.served.contains("web") && seen.served.contains("api"),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_killed_operator_resumes_every_step_of_a_rollout() {
    let cluster = support::cluster();
    let env = Env::start("crash", json!({"drainSeconds": 4, "keepReleases": 1})).await;
    let sha1 = env
        .repo
        .write(&workload("web", "web:1.0", "a"))
        .commit("web 1.0");
    let h1 = revisions(&env.repo)["web"].clone();
    env.wait_settled(&sha1).await;
    let Env {
        client,
        ns,
        repo,
        op,
        checker,
    } = env;
    let mut op = Some(op);
    let restart = |op: &mut Option<Operator>| {
        // SIGKILL: no chance to clean up or finish a write.
        op.take().unwrap().kill();
        *op = Some(Operator::start(cluster.kubeconfig(), &ns));
    };

    // Step 1: killed while the new revision is created and not yet ready.
    std::fs::write(
        repo.path().join("web/deployment.yaml"),
        deployment("web", "web:2.0", 2),
    )
    .unwrap();
    let h2 = revisions(&repo)["web"].clone();
    hold_revision(&ns, &h2).await;
    let sha2 = repo.commit("web 2.0");
    let rss: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    let rs2 = format!("web-{h2}");
    wait_for(Duration::from_secs(30), || async {
        rss.get_opt(&rs2).await.ok()?
    })
    .await;
    restart(&mut op);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let svc: Api<Service> = Api::namespaced(client.clone(), &ns);
    let pinned = |s: Service| s.spec.unwrap().selector.unwrap()["kubemint.io/revision"].clone();
    assert_eq!(
        pinned(svc.get("web").await.unwrap()),
        h1,
        "never pointed at an unready revision"
    );

    // Step 2: killed right after the Services switched, before the drain.
    release_revision(&client, &ns, &h2).await;
    wait_for(Duration::from_secs(30), || async {
        (pinned(svc.get("web").await.ok()?) == h2).then_some(())
    })
    .await;
    restart(&mut op);
    assert_eq!(
        rss.get(&format!("web-{h1}"))
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(2),
        "still draining"
    );

    // Step 3: killed during the drain; the drain still completes.
    tokio::time::sleep(Duration::from_secs(1)).await;
    restart(&mut op);
    let op_ref = op.as_ref().unwrap();
    wait_applied(&client, &ns, "shop", &sha2, op_ref).await;
    wait_for(Duration::from_secs(30), || async {
        (rss.get(&format!("web-{h1}")).await.ok()?.spec?.replicas == Some(0)).then_some(())
    })
    .await;

    // Step 4: killed between the drain and the cleanup of a third release.
    let sha3 = repo
        .write(&[("web/deployment.yaml", deployment("web", "web:3.0", 2))])
        .commit("web 3.0");
    let h3 = revisions(&repo)["web"].clone();
    wait_for(Duration::from_secs(30), || async {
        (pinned(svc.get("web").await.ok()?) == h3).then_some(())
    })
    .await;
    restart(&mut op);
    let ch = wait_for(Duration::from_secs(60), || async {
        let ch = channel(&client, &ns, "shop").await;
        let done = condition(&ch, "Reconciling")?.0 == "False"
            && ch.status.as_ref()?.last_applied_commit.as_ref()?.sha == sha3;
        done.then_some(ch)
    })
    .await;
    // Converged: one ReplicaSet per revision, the serving one at full size, one kept.
    let mut names: Vec<String> = rss
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|r| r.metadata.name)
        .collect();
    names.sort();
    let mut expected = vec![format!("web-{h2}"), format!("web-{h3}")];
    expected.sort();
    assert_eq!(names, expected);
    assert_eq!(ch.status.unwrap().releases[0].phase, ReleasePhase::Active);
    let seen = checker.unwrap().finish().await;
    assert!(seen.served.contains("web"), "{seen:?}");
}
