//! The test control plane itself (`tests/support`): real kube-apiserver,
//! controller-manager and scheduler, with kwok simulating the node that runs pods.

use crate::support;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use serde_json::json;
use support::{wait_for, NODE_NAME, UNREADY_ANNOTATION};

const TIMEOUT: Duration = Duration::from_secs(60);

fn deployment(name: &str, replicas: i32, unready: bool) -> Deployment {
    let annotations = if unready {
        json!({UNREADY_ANNOTATION: "true"})
    } else {
        json!({})
    };
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": {"containers": [{"name": "app", "image": format!("example.com/{name}:1")}]},
            },
        },
    }))
    .unwrap()
}

fn ready_replicas(d: &Deployment) -> i32 {
    d.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

fn pod_ready(pod: &Pod) -> Option<&str> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
}

#[tokio::test]
async fn control_plane_runs_deployments() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    let ns = cluster.namespace("deploy").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let (deployments, pods) = (&deployments, &pods);

    deployments
        .create(&PostParams::default(), &deployment("web", 2, false))
        .await
        .unwrap();
    wait_for(TIMEOUT, || async move {
        let d = deployments.get("web").await.ok()?;
        (ready_replicas(&d) == 2).then_some(())
    })
    .await;

    let running = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items;
    assert_eq!(running.len(), 2);
    let mut ips = Vec::new();
    for pod in &running {
        let status = pod.status.as_ref().unwrap();
        assert_eq!(
            pod.spec.as_ref().unwrap().node_name.as_deref(),
            Some(NODE_NAME)
        );
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(pod_ready(pod), Some("True"));
        assert_eq!(
            status.container_statuses.as_ref().unwrap()[0].image,
            "example.com/web:1"
        );
        ips.push(status.pod_ip.clone().unwrap());
    }
    assert_ne!(ips[0], ips[1], "pod IPs must be unique");

    // Scaled to 0, the pods really go: the simulator finishes their deletion.
    let scale = json!({"spec": {"replicas": 0}});
    deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(&scale))
        .await
        .unwrap();
    wait_for(TIMEOUT, || async move {
        let left = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?;
        left.items.is_empty().then_some(())
    })
    .await;
    // The Deployment controller reports it a moment after the pods are gone.
    wait_for(TIMEOUT, || async move {
        let d = deployments.get("web").await.ok()?;
        (ready_replicas(&d) == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn unready_annotation_keeps_pod_unready() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    let ns = cluster.namespace("unready").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let (deployments, pods) = (&deployments, &pods);

    deployments
        .create(&PostParams::default(), &deployment("slow", 2, true))
        .await
        .unwrap();
    deployments
        .create(&PostParams::default(), &deployment("fast", 1, false))
        .await
        .unwrap();
    wait_for(TIMEOUT, || async move {
        let d = deployments.get("fast").await.ok()?;
        (ready_replicas(&d) == 1).then_some(())
    })
    .await;
    // The annotated pods run, but are not ready...
    wait_for(TIMEOUT, || async move {
        let list = pods
            .list(&ListParams::default().labels("app=slow"))
            .await
            .ok()?;
        let running = list.items.iter().filter(|p| {
            p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                && pod_ready(p) == Some("False")
        });
        (running.count() == 2).then_some(())
    })
    .await;
    // ...and stay so.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let d = deployments.get("slow").await.unwrap();
        assert_eq!(ready_replicas(&d), 0, "annotated pods must stay unready");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Without the annotation (or with "false"), a pod becomes ready.
    let slow = pods
        .list(&ListParams::default().labels("app=slow"))
        .await
        .unwrap()
        .items;
    let remove = json!({"metadata": {"annotations": {UNREADY_ANNOTATION: null}}});
    let unset = json!({"metadata": {"annotations": {UNREADY_ANNOTATION: "false"}}});
    for (pod, patch) in slow.iter().zip([remove, unset]) {
        let name = pod.metadata.name.as_deref().unwrap();
        pods.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
    wait_for(TIMEOUT, || async move {
        let d = deployments.get("slow").await.ok()?;
        (ready_replicas(&d) == 2).then_some(())
    })
    .await;
}

#[tokio::test]
async fn custom_resources_work() {
    // Custom resources with a status subresource, server-side apply and
    // owner references: what the Channel CRD relies on.
    let cluster = support::cluster();
    let client = cluster.client().await;
    let ns = cluster.namespace("crd").await;

    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.e2e.kubemint.io"},
        "spec": {
            "group": "e2e.kubemint.io",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {"type": "object", "properties": {
                            "size": {"type": "integer"},
                            "color": {"type": "string"},
                        }},
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    },
                }},
            }],
        },
    }))
    .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let apply = PatchParams::apply("kubemint-e2e").force();
    crds.patch("widgets.e2e.kubemint.io", &apply, &Patch::Apply(&crd))
        .await
        .unwrap();
    let crds = &crds;
    wait_for(TIMEOUT, || async move {
        let crd = crds.get("widgets.e2e.kubemint.io").await.ok()?;
        let conditions = crd.status?.conditions?;
        conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
            .then_some(())
    })
    .await;

    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("e2e.kubemint.io", "v1", "Widget"));
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource);
    let widget = json!({
        "apiVersion": "e2e.kubemint.io/v1",
        "kind": "Widget",
        "metadata": {"name": "w1"},
        "spec": {"size": 3, "color": "red"},
    });
    let (widgets, apply, widget) = (&widgets, &apply, &widget);
    // Established can precede the moment the new resource is served.
    let applied = wait_for(TIMEOUT, || async move {
        widgets.patch("w1", apply, &Patch::Apply(widget)).await.ok()
    })
    .await;
    assert_eq!(applied.data["spec"]["size"], 3);

    // Apply again with a change, patch the status, read it all back.
    let changed = json!({
        "apiVersion": "e2e.kubemint.io/v1",
        "kind": "Widget",
        "metadata": {"name": "w1"},
        "spec": {"size": 5},
    });
    widgets
        .patch("w1", apply, &Patch::Apply(&changed))
        .await
        .unwrap();
    let status = json!({"status": {"phase": "Ready"}});
    widgets
        .patch_status("w1", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let got = widgets.get("w1").await.unwrap();
    assert_eq!(got.data["spec"]["size"], 5);
    assert!(
        got.data["spec"].get("color").is_none(),
        "apply drops fields no longer applied"
    );
    assert_eq!(got.data["status"]["phase"], "Ready");
    let managers: Vec<_> = got
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(managers.iter().any(|m| m == "kubemint-e2e"), "{managers:?}");
    assert_eq!(
        widgets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    // The API server survived the custom resource requests.
    client.apiserver_version().await.unwrap();
}

/// The pods of a Deployment `name` whose template carries `revision` (the
/// label `hold_revision` selects on), an init container and a native sidecar.
fn revision_deployment(name: &str, revision: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, "kubemint.io/revision": revision}},
                "spec": {
                    "initContainers": [
                        {"name": "setup", "image": "example.com/setup:1"},
                        {"name": "proxy", "image": "example.com/proxy:1", "restartPolicy": "Always"},
                    ],
                    "containers": [{"name": "app", "image": format!("example.com/{name}:1")}],
                },
            },
        },
    }))
    .unwrap()
}

/// Waits until the Deployment `name` has `n` ready replicas.
async fn wait_ready_replicas(deployments: &Api<Deployment>, name: &str, n: i32) {
    wait_for(TIMEOUT, || async move {
        let d = deployments.get(name).await.ok()?;
        (ready_replicas(&d) == n).then_some(())
    })
    .await;
}

/// (init container name, running, ready) of a pod.
fn init_states(pod: &Pod) -> Vec<(String, bool, bool)> {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.init_container_statuses.as_ref());
    statuses
        .into_iter()
        .flatten()
        .map(|c| {
            let running = c.state.as_ref().is_some_and(|s| s.running.is_some());
            (c.name.clone(), running, c.ready)
        })
        .collect()
}

#[tokio::test]
async fn the_node_is_kwoks_and_reports_the_servers_version() {
    use k8s_openapi::api::core::v1::Node;
    let cluster = support::cluster();
    let client = cluster.client().await;
    let node = Api::<Node>::all(client.clone())
        .get(NODE_NAME)
        .await
        .unwrap();
    let status = node.status.unwrap();
    let info = status.node_info.unwrap();
    let server = client.apiserver_version().await.unwrap().git_version;
    assert_eq!(info.kubelet_version, server);
    assert!(
        info.container_runtime_version.starts_with("kwok://"),
        "{info:?}"
    );
    let ready = status.conditions.unwrap_or_default();
    assert!(
        ready
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
        "{ready:?}"
    );
    assert!(
        node.spec.unwrap().taints.unwrap_or_default().is_empty(),
        "no not-ready taint"
    );
}

#[tokio::test]
async fn a_held_revision_stays_unready_until_released() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    let ns = cluster.namespace("held").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let (deployments, pods) = (&deployments, &pods);

    // Held before its pods exist; another revision is not held.
    support::hold_revision(&ns, "r1").await;
    for (name, revision) in [("held", "r1"), ("free", "r2")] {
        deployments
            .create(&PostParams::default(), &revision_deployment(name, revision))
            .await
            .unwrap();
    }
    wait_ready_replicas(deployments, "free", 2).await;
    // A native sidecar runs and is ready with its pod; a plain init container ran.
    let free = pods
        .list(&ListParams::default().labels("app=free"))
        .await
        .unwrap()
        .items;
    for pod in &free {
        assert_eq!(
            init_states(pod),
            [("setup".into(), false, true), ("proxy".into(), true, true)],
            "{:?}",
            pod.status
        );
    }
    // The held pods run, unready, sidecar included; and stay so.
    wait_for(TIMEOUT, || async move {
        let list = pods
            .list(&ListParams::default().labels("app=held"))
            .await
            .ok()?;
        let running = list.items.iter().filter(|p| {
            p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                && pod_ready(p) == Some("False")
                && init_states(p).contains(&("proxy".into(), true, false))
        });
        (running.count() == 2).then_some(())
    })
    .await;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let d = deployments.get("held").await.unwrap();
        assert_eq!(ready_replicas(&d), 0, "held pods must stay unready");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Released: the pods become ready, and so do new ones.
    support::release_revision(&client, &ns, "r1").await;
    let scale = json!({"spec": {"replicas": 3}});
    deployments
        .patch("held", &PatchParams::default(), &Patch::Merge(&scale))
        .await
        .unwrap();
    wait_ready_replicas(deployments, "held", 3).await;
}

#[tokio::test]
async fn job_pods_complete_or_fail_on_request() {
    use k8s_openapi::api::batch::v1::Job;
    let cluster = support::cluster();
    let client = cluster.client().await;
    let ns = cluster.namespace("jobs").await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let (jobs, pods) = (&jobs, &pods);
    let job = |name: &str, fail: Option<&str>| -> Job {
        let annotations = fail.map_or(json!({}), |f| json!({support::FAIL_ANNOTATION: f}));
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "metadata": {"annotations": annotations},
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "run", "image": "example.com/job:1"}],
                    },
                },
            },
        }))
        .unwrap()
    };
    // The Job's condition Complete or Failed, once it has one.
    let finished = |name: &'static str| async move {
        let job = jobs.get(name).await.ok()?;
        let conditions = job.status?.conditions?;
        conditions
            .iter()
            .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
            .map(|c| c.type_.clone())
    };
    // The exit code of the Job's pod.
    let exit_code = |name: &'static str| async move {
        let list = pods
            .list(&ListParams::default().labels(&format!("job-name={name}")))
            .await
            .unwrap();
        let status = list.items[0].status.clone().unwrap();
        let container = &status.container_statuses.unwrap()[0];
        container
            .state
            .clone()
            .unwrap()
            .terminated
            .unwrap()
            .exit_code
    };

    jobs.create(&PostParams::default(), &job("ok", None))
        .await
        .unwrap();
    jobs.create(&PostParams::default(), &job("annotated", Some("true")))
        .await
        .unwrap();
    assert_eq!(wait_for(TIMEOUT, || finished("ok")).await, "Complete");
    assert_eq!(exit_code("ok").await, 0);
    assert_eq!(wait_for(TIMEOUT, || finished("annotated")).await, "Failed");
    assert_eq!(exit_code("annotated").await, 1);

    // Failing on request; a pod's own annotation still wins.
    support::fail_jobs(&ns, true).await;
    jobs.create(&PostParams::default(), &job("failing", None))
        .await
        .unwrap();
    jobs.create(&PostParams::default(), &job("exempt", Some("false")))
        .await
        .unwrap();
    assert_eq!(wait_for(TIMEOUT, || finished("failing")).await, "Failed");
    assert_eq!(exit_code("failing").await, 1);
    assert_eq!(wait_for(TIMEOUT, || finished("exempt")).await, "Complete");

    support::fail_jobs(&ns, false).await;
    jobs.create(&PostParams::default(), &job("again", None))
        .await
        .unwrap();
    assert_eq!(wait_for(TIMEOUT, || finished("again")).await, "Complete");
}
