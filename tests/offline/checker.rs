//! The serving checker's replay (`support::checker::replay`) on synthetic
//! event sequences: it must pass clean rollouts and catch every way a pinned
//! Service can end up selecting no ready pod. Also the audit log reader
//! (`support::audit`) on lines as kube-apiserver writes them. No
//! cluster needed.

use crate::support;

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use support::audit::{self, Class, Counts};
use support::checker::{replay, Change, Observed, PodState, REVISION_LABEL};

fn selector(revision: Option<&str>) -> BTreeMap<String, String> {
    let mut s = BTreeMap::from([("app".to_string(), "web".to_string())]);
    if let Some(r) = revision {
        s.insert(REVISION_LABEL.to_string(), r.to_string());
    }
    s
}

/// A sequence of events, each at the next resourceVersion unless given.
#[derive(Default)]
struct Events {
    rv: u64,
    events: Vec<Observed>,
}

impl Events {
    fn push(&mut self, change: Change) -> &mut Self {
        self.rv += 10;
        let rv = self.rv;
        self.at(rv, change)
    }

    fn at(&mut self, rv: u64, change: Change) -> &mut Self {
        self.events.push(Observed {
            rv,
            at: Timestamp::from_second(1_800_000_000 + rv as i64).unwrap(),
            change,
        });
        self
    }

    fn service(&mut self, name: &str, revision: Option<&str>) -> &mut Self {
        self.push(service(name, revision))
    }

    fn pod(&mut self, name: &str, revision: &str, ready: bool, deleting: bool) -> &mut Self {
        self.push(pod(name, revision, ready, deleting))
    }

    fn pod_gone(&mut self, name: &str) -> &mut Self {
        self.push(Change::PodGone { name: name.into() })
    }

    /// Service `web` on revision `a` with two ready pods: a served, pinned Service.
    fn serving_a() -> Events {
        let mut e = Events::default();
        e.pod("web-a-1", "a", true, false)
            .pod("web-a-2", "a", true, false)
            .service("web", Some("a"))
            .pod("web-b-1", "b", false, false)
            .pod("web-b-2", "b", false, false)
            .pod("web-b-1", "b", true, false)
            .pod("web-b-2", "b", true, false);
        e
    }

    /// The old revision's pods terminate and go.
    fn drain_a(&mut self) -> &mut Self {
        self.pod("web-a-1", "a", true, true)
            .pod("web-a-2", "a", true, true)
            .pod_gone("web-a-1")
            .pod_gone("web-a-2")
    }
}

fn service(name: &str, revision: Option<&str>) -> Change {
    Change::Service {
        name: name.into(),
        selector: Some(selector(revision)),
    }
}

fn pod(name: &str, revision: &str, ready: bool, deleting: bool) -> Change {
    let mut labels = selector(Some(revision));
    labels.insert("pod-template-hash".into(), "x".into());
    Change::Pod(PodState {
        name: name.into(),
        labels,
        ready,
        deleting,
    })
}

#[test]
fn a_switch_before_the_drain_passes() {
    let mut e = Events::serving_a();
    e.service("web", Some("b")).drain_a();
    let result = replay(&e.events);
    assert!(result.outages.is_empty(), "{:?}", result.outages);
    assert!(result.served.contains("web"));
}

#[test]
fn a_drain_before_the_switch_fails_and_says_where() {
    let mut e = Events::serving_a();
    e.drain_a().service("web", Some("b"));
    let result = replay(&e.events);
    assert_eq!(result.outages.len(), 1, "{:?}", result.outages);
    let outage = &result.outages[0];
    assert_eq!(outage.service, "web");
    assert_eq!(outage.revision(), "a");
    // It starts when the second pod of a began terminating, and ends at the switch.
    assert_eq!(outage.rv, 90);
    assert_eq!(outage.until.as_ref().map(|u| u.0), Some(120));
    assert_eq!(
        outage.pods,
        ["web-a-1 (terminating)", "web-a-2 (terminating)"]
    );
    let text = outage.to_string();
    for part in [
        "Service web",
        "revision a",
        "kubemint.io/revision=a",
        "web-a-1 (terminating)",
        "web-b-1 (revision b)",
        "until",
        "rv 90",
    ] {
        assert!(text.contains(part), "{part:?} not in {text}");
    }
}

#[test]
fn the_order_of_arrival_does_not_matter_only_resource_versions_do() {
    // The pod watch delivers the drain before the Service watch delivers the
    // switch, but the switch happened first (lower resourceVersion).
    let mut e = Events::serving_a();
    let switch = e.rv + 100;
    e.drain_a();
    e.at(switch - 95, service("web", Some("b")));
    let result = replay(&e.events);
    assert!(result.outages.is_empty(), "{:?}", result.outages);

    // And the other way round: the switch arrives first but happened last.
    let mut e = Events::serving_a();
    let late = e.rv + 100;
    e.at(late, service("web", Some("b"))).drain_a();
    let result = replay(&e.events);
    assert_eq!(result.outages.len(), 1, "{:?}", result.outages);
    assert_eq!(result.outages[0].until.as_ref().map(|u| u.0), Some(late));
}

#[test]
fn switching_to_a_revision_without_ready_pods_fails() {
    let mut e = Events::default();
    e.pod("web-a-1", "a", true, false)
        .service("web", Some("a"))
        .pod("web-b-1", "b", false, false)
        .service("web", Some("b"));
    let result = replay(&e.events);
    assert_eq!(result.outages.len(), 1);
    assert_eq!(result.outages[0].revision(), "b");
    assert_eq!(result.outages[0].pods, ["web-b-1 (unready)"]);
    assert_eq!(result.outages[0].ready_elsewhere, ["web-a-1 (revision a)"]);
    assert!(result.outages[0].until.is_none(), "empty until the end");
    assert!(result.outages[0].to_string().contains("until the end"));
}

#[test]
fn a_ready_pod_becoming_unready_counts() {
    let mut e = Events::default();
    e.pod("web-a-1", "a", true, false)
        .service("web", Some("a"))
        .pod("web-a-1", "a", false, false)
        .pod("web-a-1", "a", true, false);
    let result = replay(&e.events);
    assert_eq!(result.outages.len(), 1);
    assert_eq!(result.outages[0].until.as_ref().map(|u| u.0), Some(40));
}

#[test]
fn a_service_that_never_served_is_no_outage_until_it_has() {
    // Pinned before its pods are ready (a first delivery that pins early).
    let mut e = Events::default();
    e.service("web", Some("a"))
        .pod("web-a-1", "a", false, false)
        .pod("web-a-1", "a", true, false);
    assert!(replay(&e.events).outages.is_empty());
    // ...but once served, losing the pods is one.
    e.pod_gone("web-a-1");
    assert_eq!(replay(&e.events).outages.len(), 1);
}

#[test]
fn a_deleted_service_is_no_longer_tracked() {
    let mut e = Events::serving_a();
    e.push(Change::ServiceGone { name: "web".into() }).drain_a();
    assert!(replay(&e.events).outages.is_empty());
    // A Service deleted while empty: the outage stays reported.
    let mut e = Events::serving_a();
    e.drain_a().push(Change::ServiceGone { name: "web".into() });
    assert_eq!(replay(&e.events).outages.len(), 1);
}

#[test]
fn unpinned_services_and_other_revisions_are_not_checked() {
    let mut e = Events::default();
    e.pod("web-a-1", "a", true, false)
        .service("web", None)
        .service("other", Some("zzz"))
        .pod_gone("web-a-1");
    let result = replay(&e.events);
    assert!(result.outages.is_empty(), "{:?}", result.outages);
    assert!(result.served.is_empty());
}

#[test]
fn one_outage_per_gap_however_many_events_it_spans() {
    let mut e = Events::serving_a();
    e.drain_a()
        .pod("web-c-1", "c", false, false)
        .pod("web-c-1", "c", true, false)
        .service("web", Some("b"))
        .pod("web-b-1", "b", true, true)
        .pod("web-b-2", "b", true, true);
    let result = replay(&e.events);
    assert_eq!(result.outages.len(), 2, "{:?}", result.outages);
    assert_eq!(result.outages[1].revision(), "b");
}

#[test]
fn a_pod_of_another_app_does_not_serve_the_service() {
    let mut e = Events::default();
    e.pod("web-a-1", "a", true, false)
        .service("web", Some("a"))
        .push(Change::Pod(PodState {
            name: "api-a-1".into(),
            labels: BTreeMap::from([
                ("app".to_string(), "api".to_string()),
                (REVISION_LABEL.to_string(), "a".to_string()),
            ]),
            ready: true,
            deleting: false,
        }))
        .pod_gone("web-a-1");
    assert_eq!(replay(&e.events).outages.len(), 1);
}

fn audit_line(id: &str, stage: &str, agent: &str, verb: &str, uri: &str, at: &str) -> String {
    serde_json::json!({
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": id, "stage": stage, "requestURI": uri, "verb": verb,
        "user": {"username": "admin"}, "userAgent": agent,
        "objectRef": {"resource": "services", "namespace": "shop", "name": "web", "apiVersion": "v1"},
        "requestReceivedTimestamp": at, "stageTimestamp": at,
    })
    .to_string()
}

#[test]
fn the_audit_log_counts_each_request_once_by_kind_and_client() {
    let dir = tempfile::tempdir().unwrap();
    let km = "kubemint/0.1.0";
    let lines = [
        audit_line(
            "1",
            "ResponseComplete",
            km,
            "get",
            "/api/v1/namespaces/shop/services/web",
            "2026-12-01T10:00:01.000001Z",
        ),
        // A watch is logged when it starts and when it ends: one request.
        audit_line(
            "2",
            "ResponseStarted",
            km,
            "watch",
            "/api/v1/namespaces/shop/services?watch=true",
            "2026-12-01T10:00:02Z",
        ),
        audit_line(
            "2",
            "ResponseComplete",
            km,
            "watch",
            "/api/v1/namespaces/shop/services?watch=true",
            "2026-12-01T10:00:02Z",
        ),
        audit_line(
            "3",
            "ResponseComplete",
            km,
            "patch",
            "/api/v1/namespaces/shop/services/web?dryRun=All&fieldManager=kubemint",
            "2026-12-01T10:00:03Z",
        ),
        audit_line(
            "4",
            "ResponseComplete",
            km,
            "patch",
            "/api/v1/namespaces/shop/services/web?fieldManager=kubemint",
            "2026-12-01T10:00:04Z",
        ),
        audit_line(
            "5",
            "ResponseComplete",
            "kubectl/v1.32.4",
            "patch",
            "/api/v1/namespaces/shop/services/web",
            "2026-12-01T10:00:05Z",
        ),
        audit_line(
            "6",
            "ResponseComplete",
            km,
            "delete",
            "/api/v1/namespaces/shop/services/web",
            "2026-12-01T10:00:09Z",
        ),
        "{\"kind\":\"Event\",\"auditID\":\"7\",\"sta".to_string(), // cut off while written
    ];
    let path = dir.path().join("audit.log");
    std::fs::write(&path, lines.join("\n")).unwrap();
    let t = |s: &str| -> Timestamp { s.parse().unwrap() };
    let window = (t("2026-12-01T10:00:00Z"), t("2026-12-01T10:00:08Z"));
    let counts = audit::count(&path, "kubemint/", window.0, window.1);
    assert_eq!(
        counts,
        Counts {
            reads: 2,
            writes: 1,
            dry_runs: 1,
            other: 0
        }
    );
    assert_eq!(counts.to_string(), "2 reads / 1 writes / 1 dry-runs");
    let kubectl = audit::requests(&path, "kubectl/", window.0, window.1);
    assert_eq!(kubectl.len(), 1);
    assert_eq!(kubectl[0].class(), Class::Write);
    assert_eq!(kubectl[0].describe(), "patch services shop/web");
    // The delete is outside the window.
    let all = audit::count(&path, "kubemint/", window.0, t("2026-12-01T10:00:10Z"));
    assert_eq!(all.writes, 2);
}
