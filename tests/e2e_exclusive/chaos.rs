//! Rollouts across long API server outages (issue 24, "a bug found under
//! chaos"): a channel of one Deployment (2 replicas, drainSeconds 2) behind a
//! Service goes through three image bumps, and a few seconds into each the
//! API server is stopped and kept down for tens of seconds. A sampler reads
//! the Service and its pods every 0.2 s throughout, and the serving checker
//! replays every change: the Service must never select a revision without a
//! ready pod, and every rollout must end promoted with the previous revision
//! drained.
//!
//! The operator is the same process throughout: after the outage its watches
//! resume, and a pass that planned on a watch not re-listed since it broke
//! took the revision that served for a superseded one and drained it.

use crate::fixture;
use crate::support;

use std::time::{Duration, Instant};

use crate::CONTROL_PLANE;
use fixture::manifests::deployment;
use fixture::release::{available, replicas, revisions, workload, Env};
use kube::Api;
use kubemint::controller::Channel;
use serde_json::json;
use support::{eventually, hold_revision, release_revision, wait_for, Sampler};

/// Waits until Service `web` selects `revision` with 2 available pods, the
/// channel's newest release (of `sha`) is Active on it, and `previous` is
/// scaled to zero.
async fn wait_promoted(env: &Env, sha: &str, revision: &str, previous: &str) {
    eventually(
        Duration::from_secs(120),
        &format!("release of {sha} promoted on revision {revision}, {previous} drained"),
        || async {
            let on = env.service_revision("web").await;
            let rs = env.rs(&format!("web-{revision}")).await;
            let old = env.rs(&format!("web-{previous}")).await;
            // Read without panicking: the first requests after a restart may fail.
            let ch = Api::<Channel>::namespaced(env.client.clone(), &env.ns)
                .get(fixture::release::CHANNEL)
                .await
                .map_err(|e| format!("reading the channel: {e}"))?;
            let newest = ch.status.as_ref().and_then(|s| s.releases.first()).map(|r| {
                (
                    r.commit.sha.clone(),
                    format!("{:?}", r.phase),
                    r.revisions.first().map(|w| w.revision.clone()),
                )
            });
            let state = format!(
                "Service on {on:?}; new: {:?} replicas, {:?} available; previous: {:?} replicas; newest release: {newest:?}",
                rs.as_ref().map(replicas),
                rs.as_ref().map(available),
                old.as_ref().map(replicas),
            );
            let promoted = on.as_deref() == Some(revision)
                && rs.as_ref().is_some_and(|rs| available(rs) >= 2 && replicas(rs) == 2)
                && old.as_ref().is_none_or(|rs| replicas(rs) == 0)
                && newest
                    == Some((
                        sha.to_string(),
                        "Active".to_string(),
                        Some(revision.to_string()),
                    ));
            if promoted {
                Ok(())
            } else {
                Err(state)
            }
        },
    )
    .await;
}

/// Three rollouts, each with the API server stopped a few seconds in (as
/// the new pods turn ready) and kept down 20 to 30 s: no sample, and no change the checker replays, of a
/// Service selecting a revision without ready pods; each release promoted.
#[tokio::test]
async fn rollouts_across_long_api_server_outages_never_leave_the_service_without_ready_pods() {
    let _alone = CONTROL_PLANE.write().await;
    let cluster = support::cluster();
    let started = Instant::now();
    let mut env = Env::start("chaos", json!({"drainSeconds": 2, "keepReleases": 2})).await;
    let sampler = Sampler::start(
        env.client.clone(),
        &env.ns,
        "web",
        Duration::from_millis(200),
    );
    let body = async {
        let sha = env
            .repo
            .write(&workload("web", "web:1.0", "a"))
            .commit("web 1.0");
        let mut previous = revisions(&env.repo)["web"].clone();
        env.wait_settled(&sha).await;
        env.wait_serving("web", "web", &previous, 2).await;
        // (image, ms between the new pods' readiness and the stop, seconds down):
        // the switch races the API server's shutdown, as in the issue.
        let rollouts = [
            ("web:1.1", 0, 20),
            ("web:1.2", 400, 30),
            ("web:1.3", 800, 25),
        ];
        for (image, lag, down) in rollouts {
            std::fs::write(
                env.repo.path().join("web/deployment.yaml"),
                deployment("web", image, 2),
            )
            .unwrap();
            let revision = revisions(&env.repo)["web"].clone();
            hold_revision(&env.ns, &revision).await;
            let sha = env.repo.commit(image);
            let rs = format!("web-{revision}");
            let commit = Instant::now();
            wait_for(Duration::from_secs(60), || async {
                env.rs(&rs).await.filter(|rs| replicas(rs) == 2)
            })
            .await;
            // A few seconds in: the new pods turn ready, and the API server goes.
            tokio::time::sleep(Duration::from_secs(2)).await;
            release_revision(&env.client, &env.ns, &revision).await;
            tokio::time::sleep(Duration::from_millis(lag)).await;
            let outage = Instant::now();
            let into = (outage - commit).as_secs_f64();
            cluster
                .restart_apiserver_after(Duration::from_secs(down))
                .await;
            eprintln!(
                "[chaos] {image}: API server stopped {into:.1}s in, back after {:.1}s",
                outage.elapsed().as_secs_f64()
            );
            wait_promoted(&env, &sha, &revision, &previous).await;
            eprintln!(
                "[chaos] {image}: promoted {:.1}s after the outage began",
                outage.elapsed().as_secs_f64()
            );
            previous = revision;
        }
    };
    tokio::time::timeout(Duration::from_secs(600), body)
        .await
        .unwrap_or_else(|_| panic!("the rollouts did not end within 10 minutes"));
    assert_eq!(
        env.op.wait_exit(Duration::ZERO).await,
        None,
        "the operator survived the outages:\n{}",
        env.op.log_text()
    );
    let sampled = sampler.finish().await;
    eprintln!(
        "[chaos] {sampled}; {:.0}s in all",
        started.elapsed().as_secs_f64()
    );
    assert!(sampled.answered > 0, "{sampled}");
    assert!(sampled.unanswered > 0, "the outages were seen: {sampled}");
    assert!(sampled.violations.is_empty(), "{sampled}");
    let seen = env.finish().await.expect("a checked Env");
    assert!(seen.served.contains("web"), "{seen:?}");
}
