//! End-to-end: the executor against the real API server. Each plan it carries
//! out comes back as a change set that says what it did to each object:
//! created, put back after a hand edit (naming who edited), unchanged when a
//! drift check finds nothing to undo, pruned; and a plan with an object the
//! API server rejects writes nothing at all.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kubemint::api::InventoryEntry;
use kubemint::cluster::changes::{ChangeAction, ChangeReason, ChangeSet};
use kubemint::cluster::{ClusterError, Resolver};
use kubemint::engine::observe::Observer;
use kubemint::engine::{Error, Executor};
use kubemint::rollout::{Action, ApplyReason, ObjectId, Phase, Plan};
use serde_json::{json, Value};

use crate::support;

fn config_map(ns: &str, channel: &str, name: &str, data: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": {
            "app.kubernetes.io/managed-by": "kubemint", "kubemint.io/channel": channel}},
        "data": data,
    })
}

fn entry(ns: &str, name: &str) -> InventoryEntry {
    InventoryEntry {
        group: String::new(),
        version: "v1".into(),
        kind: "ConfigMap".into(),
        namespace: Some(ns.into()),
        name: name.into(),
    }
}

fn apply(ns: &str, name: &str, manifest: Value, reason: ApplyReason) -> Action {
    Action::Apply {
        id: ObjectId {
            group: String::new(),
            kind: "ConfigMap".into(),
            namespace: Some(ns.into()),
            name: name.into(),
        },
        entry: entry(ns, name),
        file: format!("config/{name}.yaml"),
        manifest,
        reason,
        foreign: Vec::new(),
    }
}

fn plan(actions: Vec<Action>) -> Plan {
    Plan {
        actions,
        phase: Phase::Active,
        inventory: Vec::new(),
        requeue: None,
        retrying: false,
        promoted_at: None,
    }
}

fn summary(set: &ChangeSet) -> Vec<(String, ChangeAction, ChangeReason)> {
    set.entries
        .iter()
        .map(|c| (c.object.name.clone(), c.action, c.reason.clone()))
        .collect()
}

#[tokio::test]
async fn the_executor_reports_what_it_did_to_each_object() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    let ns = cluster.namespace("executor").await;
    let channel = format!("{ns}.web");
    let resolver = Resolver::new(client.clone());
    let (wake, _woken) = tokio::sync::mpsc::unbounded_channel();
    let observer: Arc<Observer> = Observer::start(client.clone(), wake, Some(ns.clone()));
    let executor = Executor {
        client: &client,
        resolver: &resolver,
        observer: &observer,
        channel: &channel,
        declared_namespaces: &[],
        now: Timestamp::now(),
    };
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let declared = config_map(&ns, &channel, "web", json!({"GREETING": "hello"}));

    // A new object: created.
    let done = executor
        .run(&plan(vec![
            apply(&ns, "web", declared.clone(), ApplyReason::Create),
            apply(
                &ns,
                "old",
                config_map(&ns, &channel, "old", json!({})),
                ApplyReason::Create,
            ),
        ]))
        .await
        .unwrap();
    assert_eq!(
        summary(&done),
        [
            ("web".into(), ChangeAction::Created, ChangeReason::Declared),
            ("old".into(), ChangeAction::Created, ChangeReason::Declared)
        ]
    );
    assert_eq!(
        maps.get("web").await.unwrap().data.unwrap()["GREETING"],
        "hello"
    );

    // A drift check that finds the object as declared writes nothing.
    let before = maps.get("web").await.unwrap().metadata.resource_version;
    let drift = || ApplyReason::Drift {
        manager: "kubectl-edit".into(),
    };
    let done = executor
        .run(&plan(vec![apply(&ns, "web", declared.clone(), drift())]))
        .await
        .unwrap();
    assert_eq!(
        summary(&done),
        [("web".into(), ChangeAction::Unchanged, drift().into_reason())]
    );
    assert_eq!(done.corrected().count(), 0, "nothing was put back");
    assert_eq!(
        maps.get("web").await.unwrap().metadata.resource_version,
        before,
        "no write"
    );

    // A hand edit is put back, naming who made it.
    let edit = PatchParams::apply("kubectl-edit").force();
    maps.patch(
        "web",
        &edit,
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": "web"}, "data": {"GREETING": "edited"}})),
    )
    .await
    .unwrap();
    let done = executor
        .run(&plan(vec![apply(&ns, "web", declared.clone(), drift())]))
        .await
        .unwrap();
    let corrected: Vec<(String, &str)> =
        done.corrected().map(|(o, m)| (o.name.clone(), m)).collect();
    assert_eq!(corrected, [("web".to_string(), "kubectl-edit")]);
    assert_eq!(
        maps.get("web").await.unwrap().data.unwrap()["GREETING"],
        "hello",
        "put back as declared"
    );

    // A prune deletes the object and says so; one protected from pruning stays and is not counted.
    maps.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"kubemint.io/prune": "disabled"}}})),
    )
    .await
    .unwrap();
    let done = executor
        .run(&plan(vec![
            Action::Prune {
                entry: entry(&ns, "old"),
            },
            Action::Prune {
                entry: entry(&ns, "web"),
            },
        ]))
        .await
        .unwrap();
    assert_eq!(
        summary(&done),
        [("old".into(), ChangeAction::Deleted, ChangeReason::Pruned)]
    );
    assert_eq!(done.pruned().count(), 1);
    assert!(maps.get_opt("old").await.unwrap().is_none());
    assert!(maps.get_opt("web").await.unwrap().is_some(), "protected");

    // An object the API server rejects fails the whole plan, before any write.
    let invalid = config_map(&ns, &channel, "Bad_Name", json!({}));
    let err = executor
        .run(&plan(vec![
            apply(
                &ns,
                "next",
                config_map(&ns, &channel, "next", json!({})),
                ApplyReason::Create,
            ),
            apply(&ns, "Bad_Name", invalid, ApplyReason::Create),
        ]))
        .await
        .unwrap_err();
    match &err {
        Error::Cluster(ClusterError::Rejected { file, object, .. }) => {
            assert_eq!(file, "config/Bad_Name.yaml");
            assert!(object.contains("Bad_Name"), "{object}");
        }
        other => panic!("expected a rejection naming the file, got {other:?}"),
    }
    assert_eq!(err.reason(), "ValidationFailed", "{err}");
    assert!(
        err.is_stalled(),
        "a rejection waits for a new commit: {err}"
    );
    assert!(
        maps.get_opt("next").await.unwrap().is_none(),
        "nothing of a rejected plan is written"
    );
}

/// The change set's reason for a drift apply.
trait IntoReason {
    fn into_reason(self) -> ChangeReason;
}

impl IntoReason for ApplyReason {
    fn into_reason(self) -> ChangeReason {
        match self {
            ApplyReason::Drift { manager } => ChangeReason::Drift { manager },
            _ => ChangeReason::Declared,
        }
    }
}
