//! Table tests of the view models and the HTML they become.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::git::{DiffState, GitFacts};
use super::html;
use super::model::{self, Forge, Health, Reverts, Snapshot};
use crate::api::{
    AutoRevertStatus, Channel, ChannelStatus, CommitInfo, ReleasePhase, ReleaseRecord, TestOutcome,
    TestResult, WorkloadRevision,
};
use crate::render::diff::{Difference, ObjectDiff};
use crate::source::notes::{DeploymentNote, NoteRecord, NoteTimes};

fn channel(url: &str, status: ChannelStatus) -> Channel {
    let mut ch: Channel = serde_json::from_value(json!({
        "apiVersion": "kubemint.io/v1alpha1", "kind": "Channel",
        "metadata": {"name": "shop", "namespace": "prod"},
        "spec": {"git": {"url": url, "path": "deploy"}}
    }))
    .unwrap();
    ch.status = Some(status);
    ch
}

fn condition(type_: &str, status: &str, reason: &str, message: &str) -> serde_json::Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
           "lastTransitionTime": "2026-11-22T10:00:00Z"})
}

fn with_conditions(mut ch: Channel, conditions: Vec<serde_json::Value>) -> Channel {
    ch.status.as_mut().unwrap().conditions = serde_json::from_value(json!(conditions)).unwrap();
    ch
}

fn record(id: &str, sha: char, subject: &str, phase: ReleasePhase, web: &str) -> ReleaseRecord {
    ReleaseRecord {
        id: id.into(),
        commit: CommitInfo {
            sha: sha.to_string().repeat(40),
            author: "Ada <ada@example.com>".into(),
            subject: subject.into(),
            time: "2026-11-22T10:00:00Z".into(),
            reference: None,
        },
        applied_at: Some(format!("2026-11-22T1{}:00:00Z", sha.to_digit(16).unwrap() % 10)),
        promoted_at: (phase != ReleasePhase::Failed && phase != ReleasePhase::Progressing)
            .then(|| "2026-11-22T10:02:00Z".into()),
        failed_at: (phase == ReleasePhase::Failed).then(|| "2026-11-22T11:20:00Z".into()),
        phase,
        message: (phase == ReleasePhase::Failed)
            .then(|| format!("release {id} failed: not ready within 5s: web has 0/2 pods ready; traffic stays on the previous release")),
        revisions: vec![WorkloadRevision {
            namespace: None,
            workload: "web".into(),
            revision: web.into(),
        }],
        test: None,
    }
}

fn replica_set(name: &str, image: &str, replicas: i32, ready: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "prod",
                     "annotations": {"kubemint.io/drained-at": "2026-11-22T10:05:00Z"}},
        "spec": {"replicas": replicas, "selector": {},
                 "template": {"spec": {"containers": [{"name": "web", "image": image}]}}},
        "status": {"replicas": replicas, "readyReplicas": ready}
    }))
    .unwrap()
}

fn event(reason: &str, type_: &str, message: &str, time: &str) -> Event {
    serde_json::from_value(json!({
        "metadata": {"name": format!("e-{reason}"), "namespace": "prod"},
        "involvedObject": {"kind": "Channel", "name": "shop", "namespace": "prod"},
        "reason": reason, "type": type_, "message": message, "lastTimestamp": time, "count": 1
    }))
    .unwrap()
}

/// An event that also names the object it is about (`kind`, `name`), as the
/// controller's Minted, Promoted, TestPassed and ReleaseFailed events do.
fn related_event(
    reason: &str,
    type_: &str,
    message: &str,
    time: &str,
    (kind, name): (&str, &str),
) -> Event {
    let mut e = event(reason, type_, message, time);
    e.related = Some(k8s_openapi::api::core::v1::ObjectReference {
        kind: Some(kind.into()),
        name: Some(name.into()),
        namespace: Some("prod".into()),
        ..Default::default()
    });
    e
}

fn now() -> Option<Timestamp> {
    Some("2026-11-22T12:00:00Z".parse().unwrap())
}

#[test]
fn forges_are_recognised_without_credentials() {
    let cases = [
        (
            "https://github.com/acme/deploy.git",
            Some("https://github.com/acme/deploy/commit/abc1"),
        ),
        (
            "https://bot:s3cret@github.com/acme/deploy",
            Some("https://github.com/acme/deploy/commit/abc1"),
        ),
        (
            "git@github.com:acme/deploy.git",
            Some("https://github.com/acme/deploy/commit/abc1"),
        ),
        (
            "ssh://git@gitlab.com/group/sub/deploy.git",
            Some("https://gitlab.com/group/sub/deploy/-/commit/abc1"),
        ),
        (
            "https://gitlab.example.com/g/r",
            Some("https://gitlab.example.com/g/r/-/commit/abc1"),
        ),
        ("https://git.example.com/acme/deploy.git", None),
        ("file:///tmp/repo", None),
        ("https://github.com/acme/de\"ploy", None),
    ];
    for (url, want) in cases {
        let got = Forge::of(url).and_then(|f| f.commit_url("abc1"));
        assert_eq!(got.as_deref(), want, "{url}");
    }
    let github = Forge::of("https://github.com/a/b").unwrap();
    assert_eq!(github.commit_url("not-hex\"><x"), None);
}

#[test]
fn revert_subjects_say_what_they_revert() {
    let cases = [
        (
            "Revert \"web 1.5.0\"",
            Some(Reverts::Subject("web 1.5.0".into())),
        ),
        (
            "Revert release 3f2a9c (commit 1a2b3c4d5e6f \"web 1.5.0\")",
            Some(Reverts::Release("3f2a9c".into())),
        ),
        (
            "Revert failed release 3f2a9c (commit 1a2b3c4d5e6f): web 0/2 ready after 5s",
            Some(Reverts::Release("3f2a9c".into())),
        ),
        ("Revert commit 1a2b3c4d5e6f", None),
        ("web 1.5.0", None),
    ];
    for (subject, want) in cases {
        assert_eq!(model::reverts(subject), want, "{subject}");
    }
}

#[test]
fn health_marks_failed_held_stalled_progressing_and_ready() {
    let url = "https://github.com/acme/deploy";
    let ready = condition("Ready", "True", "ReconciliationSucceeded", "ok");
    let cases = [
        (
            vec![record("r1", 'a', "web 1", ReleasePhase::Active, "h1")],
            vec![ready.clone()],
            Health::Ready,
        ),
        (
            vec![
                record("r2", 'b', "web 2", ReleasePhase::Failed, "h2"),
                record("r1", 'a', "web 1", ReleasePhase::Active, "h1"),
            ],
            vec![
                condition("Ready", "False", "ReleaseFailed", "release r2 failed"),
                condition("Stalled", "True", "ReleaseFailed", "release r2 failed"),
            ],
            Health::Failed,
        ),
        (
            vec![record("r1", 'a', "web 1", ReleasePhase::Active, "h1")],
            vec![
                condition("Ready", "False", "PruneHeld", "would prune 3 of 4"),
                condition("Stalled", "True", "PruneHeld", "would prune 3 of 4"),
            ],
            Health::Held,
        ),
        (
            vec![record("r1", 'a', "web 1", ReleasePhase::Active, "h1")],
            vec![
                condition("Ready", "False", "SignatureVerificationFailed", "unsigned"),
                condition("Stalled", "True", "SignatureVerificationFailed", "unsigned"),
            ],
            Health::Held,
        ),
        (
            vec![record("r1", 'a', "web 1", ReleasePhase::Active, "h1")],
            vec![
                condition("Ready", "False", "InvalidManifest", "web.yaml: bad"),
                condition("Stalled", "True", "InvalidManifest", "web.yaml: bad"),
            ],
            Health::Stalled,
        ),
        (
            vec![
                record("r2", 'b', "web 2", ReleasePhase::Progressing, "h2"),
                record("r1", 'a', "web 1", ReleasePhase::Active, "h1"),
            ],
            vec![condition("Ready", "False", "Progressing", "waiting")],
            Health::Progressing,
        ),
        (vec![], vec![], Health::Unknown),
    ];
    for (releases, conditions, want) in cases {
        let ch = with_conditions(
            channel(
                url,
                ChannelStatus {
                    releases,
                    ..Default::default()
                },
            ),
            conditions,
        );
        assert_eq!(model::health(&ch).0, want, "{:?}", ch.status);
    }
    let mut suspended = channel(url, ChannelStatus::default());
    suspended.spec.suspend = true;
    assert_eq!(model::health(&suspended).0, Health::Suspended);
}

/// A failed release reverted automatically, the revert serving, and a drift
/// correction while it serves.
fn reverted_channel() -> (Channel, Vec<ReplicaSet>, Vec<Event>) {
    let mut revert = record(
        "r1",
        'c',
        "Revert failed release r2 (commit bbbbbbbbbbbb): web 0/2 ready after 5s",
        ReleasePhase::Active,
        "h1",
    );
    revert.applied_at = Some("2026-11-22T11:30:00Z".into());
    let status = ChannelStatus {
        active_release: Some("r1".into()),
        releases: vec![
            revert,
            record("r2", 'b', "web 1.1", ReleasePhase::Failed, "h2"),
            record("r1", 'a', "web 1.0", ReleasePhase::Superseded, "h1"),
        ],
        auto_revert: Some(AutoRevertStatus {
            release: "r2".into(),
            commit: "b".repeat(40),
            outcome: crate::api::RevertOutcome::Pushed,
            revert_commit: Some("c".repeat(40)),
            message: "pushed the revert".into(),
            time: "2026-11-22T11:30:00Z".into(),
        }),
        ..Default::default()
    };
    let ch = with_conditions(
        channel("https://github.com/acme/deploy.git", status),
        vec![condition("Ready", "True", "ReconciliationSucceeded", "ok")],
    );
    let rs = vec![
        replica_set("web-h1", "web:1.0", 2, 2),
        replica_set("web-h2", "web:1.1", 0, 0),
    ];
    let events = vec![
        related_event(
            "ReleaseFailed",
            "Warning",
            "release r2 failed: not ready within 5s",
            "2026-11-22T11:20:00Z",
            ("ReplicaSet", "web-h2"),
        ),
        event(
            "DriftCorrected",
            "Normal",
            "Deployment/x was changed by kubectl; put back as declared",
            "2026-11-22T11:59:00Z",
        ),
        event(
            "Minted",
            "Normal",
            "Minted web-h2 for release r2",
            "2026-11-22T11:00:00Z",
        ),
        // r1 twice: the commit decides.
        related_event(
            "Promoted",
            "Normal",
            "Promoted release r1 from commit aaaaaaaaaaaa: Services now select web-h1",
            "2026-11-22T10:02:00Z",
            ("ReplicaSet", "web-h1"),
        ),
    ];
    (ch, rs, events)
}

/// The timeline of `ch` with `rs` and `events` cached.
fn timeline_of(ch: &Channel, rs: &[ReplicaSet], events: &[Event]) -> model::Timeline {
    let snapshot = Snapshot {
        channels: vec![ch],
        replica_sets: rs.iter().collect(),
        events: events.iter().collect(),
        now: now(),
    };
    model::timeline(ch, &snapshot)
}

#[test]
fn timeline_links_failure_automatic_revert_and_events() {
    let (ch, rs, events) = reverted_channel();
    let t = timeline_of(&ch, &rs, &events);
    assert_eq!(t.entries.len(), 3);
    let (revert, failed, first) = (&t.entries[0], &t.entries[1], &t.entries[2]);
    // The failed release changed web from h1 to h2, images read from the kept ReplicaSets.
    assert_eq!(failed.changes.len(), 1);
    assert_eq!(failed.changes[0].from.as_deref(), Some("h1"));
    assert_eq!(failed.changes[0].images_from, vec!["web:1.0"]);
    assert_eq!(failed.changes[0].images_to, vec!["web:1.1"]);
    assert_eq!(failed.failed_at.as_deref(), Some("2026-11-22T11:20:00Z"));
    assert!(failed
        .failure
        .as_deref()
        .unwrap()
        .contains("0/2 pods ready"));
    let auto = failed.auto_revert.as_ref().expect("the automatic revert");
    assert_eq!(
        (auto.outcome.to_string().as_str(), auto.commit.as_deref()),
        ("Pushed", Some("cccccccccccc"))
    );
    // The revert compares with the release before it that served (not the failed one).
    assert!(revert.changes.is_empty(), "{:?}", revert.changes);
    assert_eq!(revert.reverts.as_ref().unwrap().short, "bbbbbbbbbbbb");
    assert_eq!(failed.reverted_by.as_ref().unwrap().short, "cccccccccccc");
    assert!(first.reverted_by.is_none());
    let reasons = |e: &model::Entry| {
        e.events
            .iter()
            .map(|e| e.reason.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(reasons(first), ["Promoted"]);
    // Events: the failure on its release, drift on the newest release applied before it, Minted left out.
    assert_eq!(
        failed
            .events
            .iter()
            .map(|e| e.reason.as_str())
            .collect::<Vec<_>>(),
        ["ReleaseFailed"]
    );
    assert_eq!(
        revert
            .events
            .iter()
            .map(|e| e.reason.as_str())
            .collect::<Vec<_>>(),
        ["DriftCorrected"]
    );
    assert!(t.earlier_events.is_empty());
    assert_eq!(
        revert.commit.url.as_deref(),
        Some("https://github.com/acme/deploy/commit/cccccccccccccccccccccccccccccccccccccccc")
    );
    assert_eq!(first.drained_at.as_deref(), Some("2026-11-22T10:05:00Z"));
}

#[test]
fn overview_groups_by_namespace_and_counts_rollout_pods() {
    let status = ChannelStatus {
        active_release: Some("r1".into()),
        releases: vec![
            record("r2", 'b', "web 1.1", ReleasePhase::Progressing, "h2"),
            record("r1", 'a', "web 1.0", ReleasePhase::Active, "h1"),
        ],
        ..Default::default()
    };
    let ch = channel("file:///repo", status);
    let mut other = ch.clone();
    other.metadata.namespace = Some("dev".into());
    let rs = [
        replica_set("web-h1", "web:1.0", 2, 2),
        replica_set("web-h2", "web:1.1", 3, 1),
    ];
    let snapshot = Snapshot {
        channels: vec![&ch, &other],
        replica_sets: rs.iter().collect(),
        events: vec![],
        now: now(),
    };
    let overview = model::overview(&snapshot);
    assert_eq!(
        overview
            .iter()
            .map(|(ns, _)| ns.as_str())
            .collect::<Vec<_>>(),
        ["dev", "prod"]
    );
    let prod = &overview[1].1[0];
    assert_eq!(prod.health, Health::Progressing);
    assert_eq!(
        prod.rollout,
        Some(model::Pods {
            ready: 1,
            wanted: 3
        })
    );
    let (id, commit, since) = prod.serving.as_ref().unwrap();
    assert_eq!(
        (id.as_str(), commit.subject.as_str(), since.as_str()),
        ("r1", "web 1.0", "1h ago")
    );
    // dev's ReplicaSets are not prod's: nothing counted there.
    assert_eq!(overview[0].1[0].rollout, Some(model::Pods::default()));
    let page = html::overview(&overview, now());
    assert!(page.contains("1/3 pods ready"), "{page}");
}

#[test]
fn ages_are_whole_units() {
    let cases = [
        ("2026-11-22T11:59:30Z", "just now"),
        ("2026-11-22T11:00:00Z", "1h ago"),
        ("2026-11-20T12:00:00Z", "2d ago"),
        ("2026-11-22T12:05:00Z", "just now"),
        ("garbage", ""),
    ];
    for (time, want) in cases {
        assert_eq!(model::age(time, now()), want, "{time}");
    }
}

#[test]
fn hostile_strings_are_text_on_every_page() {
    let subject = "<script>alert(1)</script>";
    let file = "\"><img src=x onerror=alert(2)>";
    let (mut ch, rs, mut events) = reverted_channel();
    let status = ch.status.as_mut().unwrap();
    status.releases[0].commit.subject = subject.into();
    status.releases[0].commit.author = file.into();
    status.releases[1].message = Some(format!("{file}: invalid"));
    events.push(event(
        "DriftCorrected",
        "Warning",
        file,
        "2026-11-22T11:59:30Z",
    ));
    ch.metadata.name = Some("shop".into());
    let t = timeline_of(&ch, &rs, &events);
    let snapshot = Snapshot {
        channels: vec![&ch],
        replica_sets: rs.iter().collect(),
        events: events.iter().collect(),
        now: now(),
    };
    let hostile_git = GitFacts {
        diff: DiffState::Ready(std::sync::Arc::new(vec![ObjectDiff {
            difference: Difference::Changed,
            object: format!("ConfigMap shop/{file}"),
            file: format!("web/{file}.yaml"),
            diff: format!("--- before\n+++ this release\n@@ -1 +1 @@\n-a: {subject}\n+a: {file}\n"),
        }])),
        ran: Some(vec![model::RanView {
            cluster: file.into(),
            channel: subject.into(),
            phase: file.into(),
            time: file.into(),
            message: Some(subject.into()),
            revert_commit: Some(file.into()),
        }]),
        notes_error: None,
    };
    let unavailable = GitFacts {
        diff: DiffState::Unavailable(subject.into()),
        ran: None,
        notes_error: Some(file.into()),
    };
    let pages = [
        html::timeline(&t, now()),
        html::release(&t, &t.entries[0], &hostile_git, now()),
        html::release(&t, &t.entries[1], &unavailable, now()),
        html::overview(&model::overview(&snapshot), now()),
        html::page(&html::Chrome::new(subject, None).crumb("/ui/", file), ""),
        html::confirm(
            &t.summary,
            super::actions::Action::Revert,
            Some(&t.entries[0]),
            file,
        ),
        html::message(subject, file),
    ];
    for page in pages {
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
                || page.contains("&quot;&gt;&lt;img"),
            "{page}"
        );
    }
}

fn note_record(cluster: &str, channel: &str, commit: &str, phase: &str, at: &str) -> NoteRecord {
    NoteRecord {
        cluster_ref: cluster.into(),
        commit: commit.into(),
        note: DeploymentNote {
            cluster: cluster.into(),
            channel: channel.into(),
            release: "r1".into(),
            phase: phase.into(),
            commit: commit.into(),
            times: NoteTimes {
                applied: Some(at.into()),
                ..NoteTimes::default()
            },
            message: (phase == "Failed")
                .then(|| "release r1 failed: the pre-promotion test Job t failed".into()),
            revert_commit: (phase == "Failed").then(|| "d".repeat(40)),
            ..DeploymentNote::default()
        },
    }
}

#[test]
fn where_it_ran_takes_each_cluster_s_latest_note_and_leaves_out_this_channel_here() {
    let notes = vec![
        note_record(
            "staging",
            "shop/web",
            "c1",
            "Active",
            "2026-11-22T10:00:00Z",
        ),
        note_record(
            "staging",
            "shop/web",
            "c1",
            "Superseded",
            "2026-11-22T11:00:00Z",
        ),
        note_record(
            "prod-eu",
            "shop/web",
            "c1",
            "Failed",
            "2026-11-22T12:00:00Z",
        ),
        note_record(
            "prod-us",
            "shop/web",
            "c1",
            "Active",
            "2026-11-22T12:00:00Z",
        ),
        note_record(
            "prod-us",
            "shop/web",
            "c2",
            "Active",
            "2026-11-22T13:00:00Z",
        ),
        note_record(
            "staging",
            "shop/other",
            "c1",
            "Active",
            "2026-11-22T09:00:00Z",
        ),
    ];
    type Row<'a> = (&'a str, &'a str, &'a str);
    let table: [(Option<&str>, Vec<Row>); 2] = [
        (
            Some("staging"),
            vec![
                ("prod-eu", "shop/web", "Failed"),
                ("prod-us", "shop/web", "Active"),
                ("staging", "shop/other", "Active"),
            ],
        ),
        (
            None,
            vec![
                ("prod-eu", "shop/web", "Failed"),
                ("prod-us", "shop/web", "Active"),
                ("staging", "shop/other", "Active"),
                ("staging", "shop/web", "Superseded"),
            ],
        ),
    ];
    for (own, want) in table {
        let ran = model::where_it_ran(&notes, "c1", (own, "shop/web"));
        let got: Vec<Row> = ran
            .iter()
            .map(|r| (r.cluster.as_str(), r.channel.as_str(), r.phase.as_str()))
            .collect();
        assert_eq!(got, want, "{own:?}");
        let failed = &ran[0];
        assert_eq!(
            failed.message.as_deref(),
            Some("release r1 failed: the pre-promotion test Job t failed"),
            "the log lines stay in the note"
        );
        assert_eq!(failed.revert_commit.as_deref(), Some("dddddddddddd"));
        assert_eq!(failed.time, "2026-11-22T12:00:00Z");
    }
    assert!(model::where_it_ran(&notes, "c9", (None, "shop/web")).is_empty());
}

fn tested(outcome: TestOutcome, logs: Option<&str>) -> Option<TestResult> {
    Some(TestResult {
        job: "smoke-r1".into(),
        namespace: None,
        outcome,
        logs: logs.map(str::to_string),
    })
}

#[test]
fn a_test_s_outcome_and_its_log_lines_come_from_the_release_record() {
    let of = |phase, message: &str, test| {
        let mut r = record("r1", 'a', "web 1.5.0", phase, "h1");
        r.message = Some(message.into());
        r.test = test;
        model::TestView::of(&r)
    };
    let failure = "release r1 failed: the pre-promotion test Job smoke-r1 failed or did not finish within 5m; traffic stays on the previous release";
    let table: [(Option<model::TestView>, Option<model::TestView>); 4] = [
        (
            of(
                ReleasePhase::Failed,
                failure,
                tested(TestOutcome::Failed, Some("connection refused\nexit 7")),
            ),
            Some(model::TestView {
                job: "smoke-r1".into(),
                passed: false,
                logs: Some("connection refused\nexit 7".into()),
            }),
        ),
        (
            of(
                ReleasePhase::Failed,
                "release r1 failed: not ready within 5s: web has 0/2 pods ready",
                None,
            ),
            None,
        ),
        (
            of(
                ReleasePhase::Active,
                "promoted",
                tested(TestOutcome::Passed, Some("ok 200")),
            ),
            Some(model::TestView {
                job: "smoke-r1".into(),
                passed: true,
                logs: Some("ok 200".into()),
            }),
        ),
        (of(ReleasePhase::Active, "promoted", None), None),
    ];
    for (i, (got, want)) in table.into_iter().enumerate() {
        assert_eq!(got, want, "case {i}");
    }
}

#[test]
fn the_failure_shows_without_the_log_lines_and_a_passed_test_from_its_record() {
    let (mut ch, rs, mut events) = reverted_channel();
    let status = ch.status.as_mut().unwrap();
    let id = status.releases[1].id.clone();
    status.releases[1].message = Some(format!(
        "release {id} failed: the pre-promotion test Job smoke-{id} failed; traffic stays on the previous release"
    ));
    status.releases[1].test = tested(TestOutcome::Failed, Some("boom"));
    let first = status.releases[2].id.clone();
    status.releases[2].test = tested(TestOutcome::Passed, Some("all good"));
    events.push(event(
        "TestPassed",
        "Normal",
        &format!("Pre-promotion test Job smoke-{first} of release {first} passed"),
        "2026-11-22T10:01:30Z",
    ));
    let t = timeline_of(&ch, &rs, &events);
    let failed = &t.entries[1];
    assert!(!failed.failure.as_deref().unwrap().contains("boom"));
    assert_eq!(failed.test.as_ref().unwrap().logs.as_deref(), Some("boom"));
    let passed = t.entries[2].test.as_ref().expect("the passed test");
    assert!(passed.passed);
    assert_eq!(passed.logs.as_deref(), Some("all good"));
    assert_eq!(
        t.entries[1].before.as_deref(),
        Some(t.entries[2].commit.sha.as_str())
    );
    let page = html::timeline(&t, now());
    assert!(
        page.contains("Pre-promotion test: <strong>Passed</strong>"),
        "{page}"
    );
    assert!(page.contains("all good") && page.contains("boom"), "{page}");
}
