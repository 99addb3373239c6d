//! Table tests of how a pass's outcome is reported: its events, the status
//! written from it, and its metrics, each rendered from one change set.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;

use super::events::of_delivery;
use super::status;
use super::Metrics;
use crate::api::{
    Channel, ChannelSpec, ChannelStatus, CommitInfo, InventoryEntry, ReleasePhase, TestOutcome,
    TestResult,
};
use crate::cluster::changes::{revision_entry, Change, ChangeAction, ChangeReason, ChangeSet};
use crate::engine::{Delivery, PassOutcome, PassResult, RenderStep, Rendered};
use crate::rollout::{Phase, Plan};

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: web, image: \"web:2\"}]\n";
const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n";
const TEST_JOB: &str = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: smoke\n  annotations: {kubemint.io/hook: pre-promotion}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: smoke, image: curl}]\n";

fn rendered(with_test: bool) -> Rendered {
    let mut files = vec![("web/deploy.yaml", DEPLOYMENT), ("web/svc.yaml", SERVICE)];
    if with_test {
        files.push(("web/smoke.yaml", TEST_JOB));
    }
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(p, c)| (p.to_string(), c.to_string()))
        .collect();
    let (desired, minted) = crate::rollout::testing::desired_of(&files, "shop", "c2", "shop.web");
    Rendered {
        commit: CommitInfo {
            sha: "c".repeat(40),
            subject: "web 2".into(),
            ..CommitInfo::default()
        },
        summaries: minted
            .revisions
            .iter()
            .map(|r| (r.replica_set.name.clone(), r.summary()))
            .collect(),
        desired,
        kinds: Vec::new(),
        unresolved: false,
        namespaces: Vec::new(),
        unlabelled: Default::default(),
        inputs: Vec::new(),
    }
}

fn channel(active: Option<&str>) -> Channel {
    let spec: ChannelSpec =
        serde_json::from_value(serde_json::json!({"git": {"url": "https://example.com/r.git"}}))
            .unwrap();
    let mut c = Channel::new("web", spec);
    c.metadata.namespace = Some("shop".into());
    c.status = active.map(|id| ChannelStatus {
        active_release: Some(id.into()),
        ..ChannelStatus::default()
    });
    c
}

fn plan(phase: Phase) -> Plan {
    Plan {
        actions: Vec::new(),
        phase,
        inventory: Vec::new(),
        requeue: None,
        retrying: false,
        promoted_at: None,
    }
}

fn entry(kind: &str, name: &str) -> InventoryEntry {
    InventoryEntry {
        group: String::new(),
        version: "v1".into(),
        kind: kind.into(),
        namespace: Some("shop".into()),
        name: name.into(),
    }
}

fn delivery(rendered: Rendered, plan: Plan, changes: ChangeSet) -> Delivery {
    Delivery {
        rendered: Arc::new(rendered),
        plan,
        changes,
        promoted_now: false,
        test: None,
        head_rejected: false,
        now: Timestamp::from_second(1_700_000_000).unwrap(),
        retry: String::new(),
        held: None,
    }
}

#[test]
fn each_kind_of_change_is_told_once_with_its_object() {
    let r = rendered(false);
    let revision = r.desired.revisions[0].name.clone();
    let changes = ChangeSet {
        entries: vec![
            Change::new(
                revision_entry("shop", &revision),
                ChangeAction::Created,
                ChangeReason::Revision,
            ),
            Change::new(
                entry("Service", "web"),
                ChangeAction::Configured,
                ChangeReason::Switch { to: "b".into() },
            ),
            Change::new(
                revision_entry("shop", "web-old"),
                ChangeAction::ScaledDown,
                ChangeReason::Drain,
            ),
            Change::new(
                revision_entry("shop", "web-older"),
                ChangeAction::Deleted,
                ChangeReason::Retired,
            ),
            Change::new(
                entry("ConfigMap", "gone"),
                ChangeAction::Deleted,
                ChangeReason::Pruned,
            ),
            Change::new(
                entry("ConfigMap", "tuned"),
                ChangeAction::Unchanged,
                ChangeReason::Drift {
                    manager: "kubectl".into(),
                },
            ),
            Change::new(
                entry("ConfigMap", "edited"),
                ChangeAction::Configured,
                ChangeReason::Drift {
                    manager: "kubectl-edit".into(),
                },
            ),
            Change::new(
                entry("Job", "smoke-old"),
                ChangeAction::Deleted,
                ChangeReason::FinishedTest,
            ),
        ],
    };
    let mut d = delivery(r, plan(Phase::Draining), changes);
    d.promoted_now = true;
    let told = of_delivery(&channel(Some("old")), &d);
    let reasons: Vec<&str> = told.iter().map(|t| t.reason).collect();
    assert_eq!(
        reasons,
        ["Minted", "Promoted", "Drained", "Pruned", "DriftCorrected"]
    );
    let note = |reason: &str| {
        told.iter()
            .find(|t| t.reason == reason)
            .unwrap()
            .note
            .clone()
    };
    assert!(
        note("Minted").starts_with(&format!("Minted {revision} ")),
        "{}",
        note("Minted")
    );
    assert_eq!(note("Drained"), "Scaled web-old to zero");
    assert_eq!(
        note("Pruned"),
        "Deleted ReplicaSet web-older, ConfigMap/shop/gone",
        "retired revisions by kind and name, pruned objects whole; test Jobs not at all"
    );
    assert_eq!(
        note("DriftCorrected"),
        "ConfigMap/shop/edited was changed by kubectl-edit; put back as declared",
        "a drift check that found no change is not told"
    );
    let promoted = told.iter().find(|t| t.reason == "Promoted").unwrap();
    assert_eq!(
        promoted.related.as_ref().and_then(|r| r.name.clone()),
        Some(revision),
        "the promotion names its ReplicaSet"
    );
    assert!(told.iter().all(|t| t.type_ == EventType::Normal));
}

#[test]
fn a_test_is_told_and_recorded_as_typed_fields() {
    let logs = "connection refused\nexit 7";
    let failed = TestResult {
        job: "smoke".into(),
        namespace: Some("shop".into()),
        outcome: TestOutcome::Failed,
        logs: Some(logs.into()),
    };
    let rows = [
        (
            "failed now",
            Phase::Failed {
                pending: Vec::new(),
                now: true,
                hook: Some("smoke".into()),
            },
            false,
            failed.clone(),
            Some("ReleaseFailed"),
            ReleasePhase::Failed,
        ),
        (
            "passed at promotion",
            Phase::Active,
            true,
            TestResult {
                outcome: TestOutcome::Passed,
                ..failed.clone()
            },
            Some("TestPassed"),
            ReleasePhase::Active,
        ),
    ];
    for (name, phase, promoted_now, test, told_as, recorded) in rows {
        let r = rendered(true);
        let job = r.desired.hooks[0].id.name.clone();
        let phase = match phase {
            Phase::Failed { pending, now, .. } => Phase::Failed {
                pending,
                now,
                hook: Some(job.clone()),
            },
            other => other,
        };
        let test = TestResult { job, ..test };
        let mut d = delivery(r, plan(phase), ChangeSet::default());
        d.promoted_now = promoted_now;
        d.test = Some(test.clone());
        let ch = channel(None);
        let told = of_delivery(&ch, &d);
        let event = told.iter().find(|t| Some(t.reason) == told_as).unwrap();
        assert!(
            event.note.contains("exit 7"),
            "{name}: the event tells the logs: {}",
            event.note
        );
        assert_eq!(
            event
                .related
                .as_ref()
                .and_then(|r| r.kind.clone())
                .as_deref(),
            Some("Job"),
            "{name}: the event names the Job"
        );
        let status = status::report(&ch, &d);
        let record = &status.releases[0];
        assert_eq!(record.phase, recorded, "{name}");
        assert_eq!(
            record.test.as_ref(),
            Some(&test),
            "{name}: the test is a field of its release"
        );
    }
}

#[test]
fn a_pass_s_metrics_come_from_its_outcome() {
    let metrics = Metrics::default();
    let changes = ChangeSet {
        entries: vec![
            Change::new(
                entry("ConfigMap", "gone"),
                ChangeAction::Deleted,
                ChangeReason::Pruned,
            ),
            Change::new(
                revision_entry("shop", "web-old"),
                ChangeAction::Deleted,
                ChangeReason::Retired,
            ),
            Change::new(
                entry("ConfigMap", "web-abc"),
                ChangeAction::Deleted,
                ChangeReason::UnusedCopy,
            ),
        ],
    };
    let delivered = PassOutcome {
        requeue: Some(Duration::from_secs(60)),
        poll: None,
        render: Some(RenderStep::CarriedOver),
        result: PassResult::Delivered(Box::new(delivery(
            rendered(false),
            plan(Phase::Active),
            changes,
        ))),
        elapsed: Duration::from_millis(20),
    };
    metrics.record_pass(&delivered);
    let failed = PassOutcome {
        requeue: None,
        poll: None,
        render: None,
        result: PassResult::Failed {
            error: Box::new(crate::engine::Error::InvalidSpec("x".into())),
            commit: None,
        },
        elapsed: Duration::ZERO,
    };
    metrics.record_pass(&failed);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &metrics.registry).unwrap();
    let rows = [
        (
            "only pruned objects count as pruned",
            "kubemint_pruned_objects_total 1\n",
        ),
        (
            "a delivered pass by its phase",
            "kubemint_reconciles_total{result=\"success\",reason=\"ReconciliationSucceeded\"} 1\n",
        ),
        (
            "a failed pass by its reason",
            "kubemint_reconciles_total{result=\"error\",reason=\"InvalidSpec\"} 1\n",
        ),
        (
            "the render step",
            "kubemint_renders_total{outcome=\"carried_over\"} 1\n",
        ),
        (
            "one timed pass",
            "kubemint_reconcile_duration_seconds_count 1\n",
        ),
    ];
    for (name, line) in rows {
        assert!(text.contains(line), "{name}: {line:?} not in\n{text}");
    }
}
