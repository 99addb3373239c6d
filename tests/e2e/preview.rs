//! End-to-end: preview Services and the pre-promotion test of a whole
//! release. `<name>-preview` selects the newest revision as soon as it
//! exists; a Job annotated `kubemint.io/hook: pre-promotion` runs once every
//! new revision is ready, and only its success lets the Services switch. The
//! simulated node completes Job pods (failing them on request).

use crate::fixture;
use crate::support;

use std::time::Duration;

use fixture::manifests::deployment;
use fixture::release::{revisions, workload, Env, SMOKE_TEST};
use fixture::{condition, request};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use kubemint::controller::crd::ReleasePhase;
use serde_json::json;
use support::{eventually, fail_jobs, hold_revision, release_revision};

async fn preview_revision(env: &Env) -> Option<String> {
    env.service_revision("web-preview").await
}

async fn wait_preview_on(env: &Env, revision: &str) {
    eventually(
        Duration::from_secs(60),
        &format!("web-preview on {revision}"),
        || async {
            match preview_revision(env).await {
                Some(r) if r == revision => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
}

#[tokio::test]
async fn a_preview_service_selects_the_newest_revision_before_the_switch() {
    let mut env = Env::start("preview", json!({"drainSeconds": 1, "preview": true})).await;
    let sha_a = env
        .repo
        .write(&workload("web", "web:1.0", "a"))
        .commit("web 1.0");
    let ha = revisions(&env.repo)["web"].clone();
    env.wait_settled(&sha_a).await;
    wait_preview_on(&env, &ha).await;

    // The new revision is held unready: the preview selects it, the Service does not.
    let files = [(
        "web/deployment.yaml".to_string(),
        deployment("web", "web:2.0", 2),
    )];
    std::fs::write(env.repo.path().join(&files[0].0), &files[0].1).unwrap();
    let hb = revisions(&env.repo)["web"].clone();
    hold_revision(&env.ns, &hb).await;
    let sha_b = env.repo.write(&files).commit("web 2.0");
    wait_preview_on(&env, &hb).await;
    assert_eq!(env.service_revision("web").await, Some(ha.clone()));

    release_revision(&env.client, &env.ns, &hb).await;
    env.wait_settled(&sha_b).await;
    env.wait_serving("web", "web", &hb, 2).await;
    assert_eq!(preview_revision(&env).await, Some(hb.clone()));

    // Preview off: the preview Service is pruned with the rest of what the release dropped.
    env.apply_channel(json!({"rollout": {"drainSeconds": 1, "preview": false}}))
        .await;
    eventually(Duration::from_secs(60), "web-preview pruned", || async {
        match env.services().get_opt("web-preview").await {
            Ok(None) => Ok(()),
            other => Err(format!("{:?}", other.map(|s| s.is_some()))),
        }
    })
    .await;
    let seen = env.finish().await.unwrap();
    assert!(seen.served.contains("web"), "{seen:?}");
}

/// The release's test Jobs, by name.
async fn jobs(env: &Env) -> Vec<Job> {
    Api::<Job>::namespaced(env.client.clone(), &env.ns)
        .list(&ListParams::default().labels("kubemint.io/channel"))
        .await
        .unwrap()
        .items
}

fn job_done(job: &Job, type_: &str) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

#[tokio::test]
async fn the_pre_promotion_test_gates_the_switch_and_a_retry_runs_it_again() {
    let mut env = Env::start("hook", json!({"drainSeconds": 1, "testTimeout": "2m"})).await;
    let mut files = workload("web", "web:1.0", "a");
    files.push(("tests/smoke.yaml".to_string(), SMOKE_TEST.to_string()));
    let sha_a = env.repo.write(&files).commit("web 1.0 with a smoke test");
    let ha = revisions(&env.repo)["web"].clone();
    let ch = env.wait_settled(&sha_a).await;
    let release_a = ch.status.unwrap().active_release.unwrap();

    // The test ran once, as a Job named for the release, with the preview's address.
    let ran = jobs(&env).await;
    let job = ran
        .iter()
        .find(|j| j.metadata.name.as_deref() == Some(&format!("smoke-{release_a}")))
        .expect("the release's test Job");
    assert!(job_done(job, "Complete"));
    let env_vars = job
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .env
        .clone()
        .unwrap_or_default();
    assert!(
        env_vars.iter().any(|v| v.name == "KUBEMINT_PREVIEW_WEB"
            && v.value.as_deref() == Some(&format!("web-preview.{}.svc", env.ns))),
        "{env_vars:?}"
    );
    env.wait_serving("web", "web", &ha, 2).await;

    // Release B's test fails: traffic stays on A, B is scaled down, the release Failed.
    fail_jobs(&env.ns, true).await;
    let b = [(
        "web/deployment.yaml".to_string(),
        deployment("web", "web:2.0", 2),
    )];
    std::fs::write(env.repo.path().join(&b[0].0), &b[0].1).unwrap();
    let hb = revisions(&env.repo)["web"].clone();
    let sha_b = env.repo.write(&b).commit("web 2.0");
    let ch = eventually(Duration::from_secs(90), "release B failed", || async {
        let ch = env.channel().await;
        let failed = ch.status.as_ref().and_then(|s| {
            s.releases
                .iter()
                .find(|r| r.commit.sha == sha_b && r.phase == ReleasePhase::Failed)
                .cloned()
        });
        match failed {
            Some(_) => Ok(ch),
            None => Err(format!("{:?}", condition(&ch, "Ready"))),
        }
    })
    .await;
    let status = ch.status.as_ref().unwrap();
    let record = status
        .releases
        .iter()
        .find(|r| r.commit.sha == sha_b)
        .unwrap();
    let release_b = record.id.clone();
    let message = record.message.clone().unwrap();
    assert!(
        message.contains(&format!("smoke-{release_b}")),
        "the status names the Job: {message}"
    );
    assert!(
        message.contains("log"),
        "and says what its logs showed: {message}"
    );
    assert_eq!(env.service_revision("web").await, Some(ha.clone()));
    eventually(Duration::from_secs(30), "B scaled to zero", || async {
        match env.rs(&format!("web-{hb}")).await {
            Some(rs) if fixture::release::replicas(&rs) == 0 => Ok(()),
            other => Err(format!(
                "{:?}",
                other.map(|r| fixture::release::replicas(&r))
            )),
        }
    })
    .await;
    let events: Api<Event> = Api::namespaced(env.client.clone(), &env.ns);
    let warned = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .any(|e| {
            e.reason.as_deref() == Some("ReleaseFailed")
                && e.message.unwrap_or_default().contains("smoke-")
        });
    assert!(warned, "a ReleaseFailed event names the Job");

    // Fixed the flaky dependency; a retry runs the test again and promotes B.
    fail_jobs(&env.ns, false).await;
    request(&env.client, &env.ns, "shop", "kubemint.io/retry").await;
    env.wait_settled(&sha_b).await;
    env.wait_serving("web", "web", &hb, 2).await;
    let job = jobs(&env)
        .await
        .into_iter()
        .find(|j| j.metadata.name.as_deref() == Some(&format!("smoke-{release_b}")))
        .expect("the test Job of B, run again");
    assert!(job_done(&job, "Complete"), "the rerun passed");
    let seen = env.finish().await.unwrap();
    assert!(seen.served.contains("web"), "{seen:?}");
}
