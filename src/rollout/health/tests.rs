//! Table tests of every rule: live objects captured from the local control plane
//! (testdata/, `kubectl get -o json` with `managedFields` dropped), and hand-edited
//! variants of them for the cases the control plane cannot be made to show.

use serde_json::{json, Value};

use super::{has_built_in_rule, health, Rule, Verdict};

/// The captured objects, by file name.
fn live(name: &str) -> Value {
    let text = match name {
        "apiservice-local" => include_str!("testdata/apiservice-local.json"),
        "apiservice-unavailable" => include_str!("testdata/apiservice-unavailable.json"),
        "configmap" => include_str!("testdata/configmap.json"),
        "crd-established" => include_str!("testdata/crd-established.json"),
        "cronjob" => include_str!("testdata/cronjob.json"),
        "custom-ready-false" => include_str!("testdata/custom-ready-false.json"),
        "daemonset-ready" => include_str!("testdata/daemonset-ready.json"),
        "deployment-available" => include_str!("testdata/deployment-available.json"),
        "deployment-deadline-exceeded" => {
            include_str!("testdata/deployment-deadline-exceeded.json")
        }
        "hpa-no-metrics" => include_str!("testdata/hpa-no-metrics.json"),
        "hpa-v1-no-metrics" => include_str!("testdata/hpa-v1-no-metrics.json"),
        "ingress-no-address" => include_str!("testdata/ingress-no-address.json"),
        "job-complete" => include_str!("testdata/job-complete.json"),
        "job-failed" => include_str!("testdata/job-failed.json"),
        "namespace-active" => include_str!("testdata/namespace-active.json"),
        "pdb-met" => include_str!("testdata/pdb-met.json"),
        "pdb-not-met" => include_str!("testdata/pdb-not-met.json"),
        "pod-failed" => include_str!("testdata/pod-failed.json"),
        "pod-ready" => include_str!("testdata/pod-ready.json"),
        "pod-unready" => include_str!("testdata/pod-unready.json"),
        "pod-unschedulable" => include_str!("testdata/pod-unschedulable.json"),
        "pvc-bound" => include_str!("testdata/pvc-bound.json"),
        "pvc-pending" => include_str!("testdata/pvc-pending.json"),
        "replicaset-available" => include_str!("testdata/replicaset-available.json"),
        "service-clusterip" => include_str!("testdata/service-clusterip.json"),
        "service-loadbalancer-pending" => {
            include_str!("testdata/service-loadbalancer-pending.json")
        }
        "statefulset-partitioned" => include_str!("testdata/statefulset-partitioned.json"),
        "statefulset-ready" => include_str!("testdata/statefulset-ready.json"),
        "statefulset-rolling-unready" => {
            include_str!("testdata/statefulset-rolling-unready.json")
        }
        "statefulset-unready" => include_str!("testdata/statefulset-unready.json"),
        other => panic!("no fixture testdata/{other}.json"),
    };
    serde_json::from_str(text).unwrap_or_else(|e| panic!("testdata/{name}.json: {e}"))
}

/// An edit of a captured object.
enum Edit {
    /// Set the value at a JSON pointer, creating the objects on the way.
    Set(&'static str, Value),
    /// Remove the value at a JSON pointer.
    Remove(&'static str),
    /// Set (or add) the condition of a type: status, reason.
    Condition(&'static str, &'static str, &'static str),
}
use Edit::{Condition, Remove, Set};

fn apply(object: &mut Value, edit: &Edit) {
    match edit {
        Set(pointer, value) => {
            let mut at = &mut *object;
            for key in pointer.split('/').skip(1) {
                if let Ok(i) = key.parse::<usize>() {
                    at = &mut at[i];
                } else {
                    if at.get(key).is_none() {
                        at[key] = json!({});
                    }
                    at = &mut at[key];
                }
            }
            *at = value.clone();
        }
        Remove(pointer) => {
            let (parent, key) = pointer.rsplit_once('/').expect("a pointer");
            match object.pointer_mut(parent) {
                Some(Value::Object(map)) => {
                    map.remove(key);
                }
                Some(Value::Array(list)) => {
                    list.remove(key.parse::<usize>().expect("an index"));
                }
                _ => {}
            }
        }
        Condition(kind, status, reason) => {
            let fresh =
                json!({"type": kind, "status": status, "reason": reason, "message": "edited"});
            if object.pointer("/status/conditions").is_none() {
                apply(object, &Set("/status/conditions", json!([])));
            }
            let list = object
                .pointer_mut("/status/conditions")
                .and_then(Value::as_array_mut)
                .expect("conditions");
            match list.iter_mut().find(|c| c["type"] == *kind) {
                Some(c) => *c = fresh,
                None => list.push(fresh),
            }
        }
    }
}

use Verdict::{Current, Failed, InProgress};

/// One case: a fixture, the edits made to it, and what the rule must say.
struct Case {
    fixture: &'static str,
    edits: Vec<Edit>,
    verdict: Verdict,
    rule: Rule,
    reason: &'static str,
}

fn case(
    fixture: &'static str,
    edits: Vec<Edit>,
    verdict: Verdict,
    rule: Rule,
    reason: &'static str,
) -> Case {
    Case {
        fixture,
        edits,
        verdict,
        rule,
        reason,
    }
}

fn check(cases: Vec<Case>) {
    let mut wrong = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let mut object = live(c.fixture);
        for edit in &c.edits {
            apply(&mut object, edit);
        }
        let got = health(&object);
        if got.verdict != c.verdict || got.rule != c.rule || !got.reason.contains(c.reason) {
            wrong.push(format!(
                "case {i} ({}): got {:?}, want {} by {} with a reason containing {:?}",
                c.fixture, got, c.verdict, c.rule, c.reason
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

const STS: Rule = Rule::BuiltIn("StatefulSet");

#[test]
fn statefulset() {
    check(vec![
        case(
            "statefulset-ready",
            vec![],
            Current,
            STS,
            "2 replicas ready",
        ),
        // kwok keeps the first pod unready, so the second is never created.
        case(
            "statefulset-unready",
            vec![],
            InProgress,
            STS,
            "replicas: 1/2",
        ),
        case(
            "statefulset-ready",
            vec![Set("/status/readyReplicas", json!(1))],
            InProgress,
            STS,
            "ready: 1/2",
        ),
        case(
            "statefulset-ready",
            vec![
                Set("/status/replicas", json!(3)),
                Set("/status/readyReplicas", json!(3)),
            ],
            InProgress,
            STS,
            "pending termination: 1",
        ),
        // A new revision whose first pod kwok keeps unready: the roll-out stops there.
        case(
            "statefulset-rolling-unready",
            vec![],
            InProgress,
            STS,
            "ready: 1/2",
        ),
        // The API server defaults `partition` to 0, which holds nothing back: a
        // partition-0 StatefulSet with every pod updated still waits for the revision.
        case(
            "statefulset-rolling-unready",
            vec![
                Set("/status/readyReplicas", json!(2)),
                Set("/status/updatedReplicas", json!(2)),
            ],
            InProgress,
            STS,
            "current: 1/2",
        ),
        // Captured mid-way: partition 1, the pod above it updated.
        case(
            "statefulset-partitioned",
            vec![],
            Current,
            STS,
            "partition 1",
        ),
        case(
            "statefulset-partitioned",
            vec![Set("/status/updatedReplicas", json!(0))],
            InProgress,
            STS,
            "updated: 0/1 (partition 1)",
        ),
        // A partition above the replicas holds every pod back: nothing to wait for.
        case(
            "statefulset-partitioned",
            vec![
                Set("/spec/updateStrategy/rollingUpdate/partition", json!(5)),
                Set("/status/updatedReplicas", json!(0)),
            ],
            Current,
            STS,
            "0 updated",
        ),
        case(
            "statefulset-ready",
            vec![
                Set("/status/updateRevision", json!("cache-new")),
                Set("/status/currentReplicas", json!(1)),
            ],
            InProgress,
            STS,
            "current: 1/2",
        ),
        case(
            "statefulset-ready",
            vec![Set("/status/updateRevision", json!("cache-new"))],
            InProgress,
            STS,
            "waiting for revision cache-new",
        ),
        case(
            "statefulset-unready",
            vec![Set("/spec/updateStrategy", json!({"type": "OnDelete"}))],
            Current,
            STS,
            "OnDelete",
        ),
        case(
            "statefulset-ready",
            vec![Set("/metadata/generation", json!(2))],
            InProgress,
            STS,
            "generation 2 not yet observed (observed 1)",
        ),
        case(
            "statefulset-ready",
            vec![Set(
                "/metadata/deletionTimestamp",
                json!("2026-12-08T00:00:00Z"),
            )],
            InProgress,
            STS,
            "being deleted",
        ),
    ]);
}

const DS: Rule = Rule::BuiltIn("DaemonSet");

#[test]
fn daemonset() {
    check(vec![
        case(
            "daemonset-ready",
            vec![],
            Current,
            DS,
            "1/1 scheduled pods ready",
        ),
        case(
            "daemonset-ready",
            vec![Remove("/status/desiredNumberScheduled")],
            InProgress,
            DS,
            "not yet observed",
        ),
        case(
            "daemonset-ready",
            vec![Set("/status/desiredNumberScheduled", json!(3))],
            InProgress,
            DS,
            "scheduled: 1/3",
        ),
        case(
            "daemonset-ready",
            vec![Set("/status/updatedNumberScheduled", json!(0))],
            InProgress,
            DS,
            "updated: 0/1",
        ),
        case(
            "daemonset-ready",
            vec![
                Set("/status/updatedNumberScheduled", json!(0)),
                Set("/spec/updateStrategy", json!({"type": "OnDelete"})),
            ],
            Current,
            DS,
            "ready",
        ),
        case(
            "daemonset-ready",
            vec![Set("/status/numberAvailable", json!(0))],
            InProgress,
            DS,
            "available: 0/1",
        ),
        case(
            "daemonset-ready",
            vec![Set("/status/numberReady", json!(0))],
            InProgress,
            DS,
            "ready: 0/1",
        ),
    ]);
}

const DEPLOY: Rule = Rule::BuiltIn("Deployment");

#[test]
fn deployment() {
    check(vec![
        case(
            "deployment-available",
            vec![],
            Current,
            DEPLOY,
            "2 replicas available",
        ),
        // progressDeadlineSeconds 5 and a pod kwok keeps unready.
        case(
            "deployment-deadline-exceeded",
            vec![],
            Failed,
            DEPLOY,
            "ProgressDeadlineExceeded",
        ),
        case(
            "deployment-available",
            vec![Set("/status/replicas", json!(1))],
            InProgress,
            DEPLOY,
            "replicas: 1/2",
        ),
        case(
            "deployment-available",
            vec![Set("/status/updatedReplicas", json!(1))],
            InProgress,
            DEPLOY,
            "updated: 1/2",
        ),
        case(
            "deployment-available",
            vec![Set("/status/replicas", json!(3))],
            InProgress,
            DEPLOY,
            "pending termination: 1",
        ),
        case(
            "deployment-available",
            vec![Set("/status/availableReplicas", json!(1))],
            InProgress,
            DEPLOY,
            "available: 1/2",
        ),
        case(
            "deployment-available",
            vec![Set("/status/readyReplicas", json!(1))],
            InProgress,
            DEPLOY,
            "ready: 1/2",
        ),
        case(
            "deployment-available",
            vec![Condition("Progressing", "True", "ReplicaSetUpdated")],
            InProgress,
            DEPLOY,
            "new ReplicaSet not yet available",
        ),
        // Without a deadline the controller never says NewReplicaSetAvailable.
        case(
            "deployment-available",
            vec![
                Condition("Progressing", "True", "ReplicaSetUpdated"),
                Remove("/spec/progressDeadlineSeconds"),
            ],
            Current,
            DEPLOY,
            "available",
        ),
        case(
            "deployment-available",
            vec![Condition(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
            )],
            InProgress,
            DEPLOY,
            "not available",
        ),
        case(
            "deployment-available",
            vec![Condition("Stalled", "True", "Stuck")],
            Failed,
            DEPLOY,
            "Stalled=True (Stuck): edited",
        ),
        case(
            "deployment-available",
            vec![Condition("Reconciling", "True", "Moving")],
            InProgress,
            DEPLOY,
            "Reconciling=True (Moving)",
        ),
    ]);
}

const RS: Rule = Rule::BuiltIn("ReplicaSet");

#[test]
fn replicaset() {
    check(vec![
        case(
            "replicaset-available",
            vec![],
            Current,
            RS,
            "2 replicas available",
        ),
        case(
            "replicaset-available",
            vec![Condition("ReplicaFailure", "True", "FailedCreate")],
            InProgress,
            RS,
            "ReplicaFailure=True (FailedCreate)",
        ),
        case(
            "replicaset-available",
            vec![Set("/status/fullyLabeledReplicas", json!(1))],
            InProgress,
            RS,
            "labelled: 1/2",
        ),
        case(
            "replicaset-available",
            vec![Set("/status/availableReplicas", json!(0))],
            InProgress,
            RS,
            "available: 0/2",
        ),
        case(
            "replicaset-available",
            vec![Set("/status/readyReplicas", json!(1))],
            InProgress,
            RS,
            "ready: 1/2",
        ),
        case(
            "replicaset-available",
            vec![Set("/status/replicas", json!(3))],
            InProgress,
            RS,
            "pending termination: 1",
        ),
    ]);
}

const POD: Rule = Rule::BuiltIn("Pod");

#[test]
fn pod() {
    check(vec![
        case("pod-ready", vec![], Current, POD, "running and ready"),
        case("pod-unready", vec![], InProgress, POD, "running, not ready"),
        // The pod of a Job kwok fails.
        case("pod-failed", vec![], Failed, POD, "failed"),
        case(
            "pod-unschedulable",
            vec![],
            InProgress,
            POD,
            "Unschedulable",
        ),
        case(
            "pod-ready",
            vec![Set("/status/phase", json!("Succeeded"))],
            Current,
            POD,
            "completed",
        ),
        case(
            "pod-unready",
            vec![Set(
                "/status/containerStatuses/0/state",
                json!({"waiting": {"reason": "CrashLoopBackOff"}}),
            )],
            Failed,
            POD,
            "container c: CrashLoopBackOff",
        ),
        case(
            "pod-unschedulable",
            vec![
                Condition("PodScheduled", "True", ""),
                Set(
                    "/status/containerStatuses",
                    json!([{"name": "c", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]),
                ),
            ],
            Failed,
            POD,
            "container c: ImagePullBackOff",
        ),
        case(
            "pod-unschedulable",
            vec![Condition("PodScheduled", "True", "")],
            InProgress,
            POD,
            "pending",
        ),
        case(
            "pod-ready",
            vec![Remove("/status/phase")],
            InProgress,
            POD,
            "no phase",
        ),
    ]);
}

const JOB: Rule = Rule::BuiltIn("Job");

#[test]
fn job() {
    check(vec![
        case(
            "job-complete",
            vec![],
            Current,
            JOB,
            "complete: 1 succeeded",
        ),
        // backoffLimit 0 and a pod kwok fails.
        case("job-failed", vec![], Failed, JOB, "1 failed pods"),
        case(
            "job-failed",
            vec![Remove("/status/conditions/1")],
            Failed,
            JOB,
            "FailureTarget=True",
        ),
        case(
            "job-complete",
            vec![
                Remove("/status/conditions"),
                Set("/status/succeeded", json!(0)),
                Set("/status/active", json!(1)),
            ],
            InProgress,
            JOB,
            "running: 0 succeeded, 1 active, 0 failed",
        ),
        case(
            "job-complete",
            vec![Remove("/status/conditions"), Remove("/status/startTime")],
            InProgress,
            JOB,
            "not started",
        ),
        case(
            "job-complete",
            vec![
                Remove("/status/conditions"),
                Set("/spec/suspend", json!(true)),
            ],
            Current,
            JOB,
            "suspended",
        ),
    ]);
}

#[test]
fn job_failed_by_array_index_edit_is_well_formed() {
    // The edit above removes the `Failed` condition by index: make sure it is that one.
    assert_eq!(
        live("job-failed")["status"]["conditions"][1]["type"],
        "Failed"
    );
}

#[test]
fn cronjob_pvc_service_ingress() {
    let cj = Rule::BuiltIn("CronJob");
    let pvc = Rule::BuiltIn("PersistentVolumeClaim");
    let svc = Rule::BuiltIn("Service");
    let ing = Rule::BuiltIn("Ingress");
    check(vec![
        case("cronjob", vec![], Current, cj, "scheduled"),
        case(
            "cronjob",
            vec![Set(
                "/metadata/deletionTimestamp",
                json!("2026-12-08T00:00:00Z"),
            )],
            InProgress,
            cj,
            "being deleted",
        ),
        // No provisioner on the local control plane: it stays Pending.
        case(
            "pvc-pending",
            vec![],
            InProgress,
            pvc,
            "not bound (Pending)",
        ),
        // Bound by hand to a PersistentVolume.
        case("pvc-bound", vec![], Current, pvc, "bound to pv-bound"),
        case(
            "pvc-bound",
            vec![Set("/status/phase", json!("Lost"))],
            Failed,
            pvc,
            "lost",
        ),
        case("service-clusterip", vec![], Current, svc, "type ClusterIP"),
        // No load-balancer controller: no address.
        case(
            "service-loadbalancer-pending",
            vec![],
            InProgress,
            svc,
            "no load balancer address",
        ),
        case(
            "service-loadbalancer-pending",
            vec![Set(
                "/status/loadBalancer/ingress",
                json!([{"ip": "203.0.113.7"}]),
            )],
            Current,
            svc,
            "203.0.113.7",
        ),
        case(
            "service-loadbalancer-pending",
            vec![Set(
                "/status/loadBalancer/ingress",
                json!([{"hostname": "lb.example.com"}]),
            )],
            Current,
            svc,
            "lb.example.com",
        ),
        case(
            "service-loadbalancer-pending",
            vec![Remove("/spec/clusterIP")],
            InProgress,
            svc,
            "no cluster IP",
        ),
        // No ingress controller: no address.
        case("ingress-no-address", vec![], InProgress, ing, "no address"),
        case(
            "ingress-no-address",
            vec![Set(
                "/status/loadBalancer/ingress",
                json!([{"ip": "203.0.113.8"}]),
            )],
            Current,
            ing,
            "203.0.113.8",
        ),
    ]);
}

#[test]
fn pdb_hpa() {
    let pdb = Rule::BuiltIn("PodDisruptionBudget");
    let hpa = Rule::BuiltIn("HorizontalPodAutoscaler");
    check(vec![
        case(
            "pdb-met",
            vec![],
            Current,
            pdb,
            "budget met: 2 healthy, 1 needed",
        ),
        // It selects no pod.
        case(
            "pdb-not-met",
            vec![],
            InProgress,
            pdb,
            "budget not met: 0 healthy, 1 needed",
        ),
        case(
            "pdb-met",
            vec![Remove("/status/observedGeneration")],
            InProgress,
            pdb,
            "not yet observed",
        ),
        // No metrics server on the local control plane.
        case(
            "hpa-no-metrics",
            vec![],
            InProgress,
            hpa,
            "ScalingActive=False (FailedGetResourceMetric)",
        ),
        // The same object read as autoscaling/v1: its conditions are in an annotation.
        case(
            "hpa-v1-no-metrics",
            vec![],
            InProgress,
            hpa,
            "ScalingActive=False (FailedGetResourceMetric)",
        ),
        case(
            "hpa-v1-no-metrics",
            vec![Remove("/metadata/annotations")],
            InProgress,
            hpa,
            "not yet observed",
        ),
        case(
            "hpa-no-metrics",
            vec![Condition("ScalingActive", "True", "ValidMetricFound")],
            Current,
            hpa,
            "scaling",
        ),
        case(
            "hpa-no-metrics",
            vec![Condition("ScalingActive", "False", "ScalingDisabled")],
            Current,
            hpa,
            "ScalingDisabled",
        ),
        case(
            "hpa-no-metrics",
            vec![Condition("AbleToScale", "False", "FailedGetScale")],
            Failed,
            hpa,
            "AbleToScale=False (FailedGetScale)",
        ),
        case(
            "hpa-no-metrics",
            vec![Remove("/status/conditions")],
            InProgress,
            hpa,
            "not yet observed",
        ),
    ]);
}

#[test]
fn crd_apiservice_namespace() {
    let crd = Rule::BuiltIn("CustomResourceDefinition");
    let api = Rule::BuiltIn("APIService");
    let ns = Rule::BuiltIn("Namespace");
    check(vec![
        case("crd-established", vec![], Current, crd, "established"),
        case(
            "crd-established",
            vec![Condition("NamesAccepted", "False", "NameConflict")],
            Failed,
            crd,
            "NamesAccepted=False (NameConflict)",
        ),
        case(
            "crd-established",
            vec![Condition("Established", "False", "Installing")],
            InProgress,
            crd,
            "Established=False (Installing)",
        ),
        case(
            "crd-established",
            vec![Remove("/status/conditions")],
            InProgress,
            crd,
            "not yet established",
        ),
        // v1.apps, served by the API server itself.
        case(
            "apiservice-local",
            vec![],
            Current,
            api,
            "Available=True (Local)",
        ),
        // Backed by a Service that does not exist.
        case(
            "apiservice-unavailable",
            vec![],
            InProgress,
            api,
            "Available=False (ServiceNotFound)",
        ),
        case("namespace-active", vec![], Current, ns, "active"),
        case(
            "namespace-active",
            vec![Set("/status/phase", json!("Terminating"))],
            InProgress,
            ns,
            "Terminating",
        ),
    ]);
}

const CONV: Rule = Rule::Conventions;

#[test]
fn conventions() {
    check(vec![
        // A Widget of the test's own CRD, its status patched to Ready=False.
        case(
            "custom-ready-false",
            vec![],
            InProgress,
            CONV,
            "Ready=False (IssuerNotReady): issuer h/ca is not ready",
        ),
        case(
            "custom-ready-false",
            vec![Condition("Ready", "True", "Issued")],
            Current,
            CONV,
            "Ready=True (Issued)",
        ),
        case(
            "custom-ready-false",
            vec![Condition("Ready", "Unknown", "Pending")],
            InProgress,
            CONV,
            "Ready=Unknown",
        ),
        case(
            "custom-ready-false",
            vec![Condition("Stalled", "True", "InvalidSpec")],
            Failed,
            CONV,
            "Stalled=True (InvalidSpec)",
        ),
        case(
            "custom-ready-false",
            vec![Condition("Reconciling", "True", "Progressing")],
            InProgress,
            CONV,
            "Reconciling=True (Progressing)",
        ),
        case(
            "custom-ready-false",
            vec![Set("/metadata/generation", json!(2))],
            InProgress,
            CONV,
            "generation 2 not yet observed (observed 1)",
        ),
        // Ready=True written for an older generation than the one observed.
        case(
            "custom-ready-false",
            vec![
                Set("/status/conditions/0/status", json!("True")),
                Set("/metadata/generation", json!(2)),
                Set("/status/observedGeneration", json!(2)),
            ],
            InProgress,
            CONV,
            "Ready=True is for generation 1, not 2",
        ),
        case(
            "custom-ready-false",
            vec![Remove("/status/conditions")],
            Current,
            CONV,
            "generation observed",
        ),
        case(
            "custom-ready-false",
            vec![Remove("/status")],
            Current,
            Rule::NotChecked,
            "not checked",
        ),
        case(
            "custom-ready-false",
            vec![
                Remove("/status"),
                Set("/metadata/deletionTimestamp", json!("2026-12-08T00:00:00Z")),
            ],
            InProgress,
            CONV,
            "being deleted",
        ),
        case(
            "configmap",
            vec![],
            Current,
            Rule::NotChecked,
            "not checked",
        ),
        // A kind of a group with no rule is judged by the conventions, not by its name.
        case(
            "deployment-available",
            vec![Set("/apiVersion", json!("example.com/v1"))],
            Current,
            CONV,
            "generation observed",
        ),
    ]);
}

#[test]
fn the_built_in_kinds_are_those_documented() {
    let kinds = [
        ("apps", "StatefulSet"),
        ("apps", "DaemonSet"),
        ("apps", "Deployment"),
        ("apps", "ReplicaSet"),
        ("", "Pod"),
        ("batch", "Job"),
        ("batch", "CronJob"),
        ("", "PersistentVolumeClaim"),
        ("", "Service"),
        ("networking.k8s.io", "Ingress"),
        ("policy", "PodDisruptionBudget"),
        ("autoscaling", "HorizontalPodAutoscaler"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("apiregistration.k8s.io", "APIService"),
        ("", "Namespace"),
    ];
    let doc = include_str!("../../../docs/health.md");
    for (group, kind) in kinds {
        assert!(has_built_in_rule(group, kind), "{group}/{kind}");
        assert!(
            doc.contains(&format!("`{kind}`")),
            "docs/health.md lacks {kind}"
        );
    }
    assert!(!has_built_in_rule("", "ConfigMap"));
    assert!(!has_built_in_rule("cert-manager.io", "Certificate"));
}
