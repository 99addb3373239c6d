//! A simulated node in place of a kubelet: the scheduler binds pods to it, and
//! it writes their status as if their containers ran, and finishes their
//! deletion. Nothing is actually run.

use std::collections::HashMap;
use std::io::Write;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::Client;
use serde_json::{json, Value};

/// The simulated node's name.
pub const NODE_NAME: &str = "kubemint-sim-node";

/// With value `"true"` on a pod, the simulator keeps it unready (phase
/// Running, Ready=False); removing it or setting `"false"` makes it ready.
pub const UNREADY_ANNOTATION: &str = "sim.kubemint.io/unready";

fn log(msg: &str) {
    let _ = writeln!(std::io::stderr(), "[kubemint-sim] {msg}");
}

/// A timestamp as the API writes it (RFC 3339, whole seconds).
fn timestamp(t: &Time) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

fn now() -> Value {
    timestamp(&Time(k8s_openapi::jiff::Timestamp::now()))
}

/// Creates the node (if needed), marks it Ready with plenty of capacity, and
/// removes the `node.kubernetes.io/not-ready` taint it is born with.
pub async fn register_node(client: &Client) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "metadata": {
            "name": NODE_NAME,
            "labels": {
                "kubernetes.io/hostname": NODE_NAME,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
            },
        },
    }))?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    // The node reports the control plane's own version, as a kubelet of the
    // same release would.
    let version = client
        .apiserver_version()
        .await
        .map(|v| v.git_version)
        .unwrap_or_else(|_| "v0.0.0".into());
    let now = now();
    let resources =
        json!({"cpu": "64", "memory": "256Gi", "pods": "500", "ephemeral-storage": "1Ti"});
    let status = json!({"status": {
        "capacity": resources,
        "allocatable": resources,
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "simulated by the kubemint tests",
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        }],
        "addresses": [
            {"type": "InternalIP", "address": "127.0.0.1"},
            {"type": "Hostname", "address": NODE_NAME},
        ],
        "nodeInfo": {
            "machineID": "kubemint-sim", "systemUUID": "kubemint-sim", "bootID": "kubemint-sim",
            "kernelVersion": "sim", "osImage": "sim", "containerRuntimeVersion": "sim://1",
            "kubeletVersion": version, "kubeProxyVersion": version,
            "operatingSystem": "linux", "architecture": "amd64",
        },
    }});
    nodes
        .patch_status(NODE_NAME, &PatchParams::default(), &Patch::Merge(status))
        .await?;
    // Only the not-ready taint is ever put there (the node lifecycle
    // controller, which would manage taints, is off), so clear them all.
    nodes
        .patch(
            NODE_NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": null}})),
        )
        .await?;
    Ok(())
}

/// Watches the pods bound to the node forever and plays the kubelet for them.
pub async fn run_pods(client: Client) {
    let pods: Api<Pod> = Api::all(client.clone());
    // A streaming list: the control plane of the tests serves it.
    let config = watcher::Config::default()
        .fields(&format!("spec.nodeName={NODE_NAME}"))
        .streaming_lists();
    let mut events = watcher(pods, config).default_backoff().boxed();
    let mut ips = PodIps::default();
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Apply(pod) | Event::InitApply(pod)) => {
                if let Err(e) = handle(&client, &pod, &mut ips).await {
                    let name = pod.metadata.name.as_deref().unwrap_or("?");
                    let ns = pod.metadata.namespace.as_deref().unwrap_or("?");
                    log(&format!("pod {ns}/{name}: {e}"));
                }
            }
            Ok(Event::Delete(pod)) => ips.release(&pod),
            Ok(Event::Init | Event::InitDone) => {}
            Err(e) => log(&format!("watching pods: {e}")),
        }
    }
    log("the pod watch ended; pods are no longer simulated");
}

/// Unique pod IPs from 10.244.0.0/16, reused after their pods are gone.
#[derive(Default)]
struct PodIps {
    by_uid: HashMap<String, String>,
    free: Vec<String>,
    next: u32,
}

impl PodIps {
    fn get(&mut self, pod: &Pod) -> String {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if let Some(ip) = pod.status.as_ref().and_then(|s| s.pod_ip.clone()) {
            self.by_uid.entry(uid).or_insert_with(|| ip.clone());
            return ip;
        }
        if let Some(ip) = self.by_uid.get(&uid) {
            return ip.clone();
        }
        let ip = self.free.pop().unwrap_or_else(|| {
            let n = self.next;
            self.next += 1;
            // 10.244.<b>.<c> with c in 1..=250.
            format!("10.244.{}.{}", (n / 250) % 256, n % 250 + 1)
        });
        self.by_uid.insert(uid, ip.clone());
        ip
    }

    fn release(&mut self, pod: &Pod) {
        if let Some(ip) = pod
            .metadata
            .uid
            .as_ref()
            .and_then(|uid| self.by_uid.remove(uid))
        {
            self.free.insert(0, ip);
        }
    }
}

/// Revisions (`(namespace, kubemint.io/revision)`) whose new pods are kept unready.
static HELD: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());

/// Keeps pods of `revision` in `namespace` unready from now on (pods already
/// ready stay ready). An explicit `UNREADY_ANNOTATION: "false"` overrides it.
pub fn hold_revision(namespace: &str, revision: &str) {
    HELD.lock()
        .unwrap()
        .push((namespace.to_string(), revision.to_string()));
}

/// Stops holding `revision` and marks its pods ready (through the annotation,
/// so that the watch sees a change).
pub async fn release_revision(client: &Client, namespace: &str, revision: &str) {
    HELD.lock()
        .unwrap()
        .retain(|(ns, r)| !(ns == namespace && r == revision));
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params =
        kube::api::ListParams::default().labels(&format!("kubemint.io/revision={revision}"));
    for pod in pods
        .list(&params)
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        let name = pod.metadata.name.unwrap_or_default();
        let patch = json!({"metadata": {"annotations": {UNREADY_ANNOTATION: "false"}}});
        let _ = pods
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
    }
}

fn wants_ready(pod: &Pod) -> bool {
    let annotations = pod.metadata.annotations.as_ref();
    match annotations
        .and_then(|a| a.get(UNREADY_ANNOTATION))
        .map(String::as_str)
    {
        Some("true") => return false,
        Some("false") => return true,
        _ => {}
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let revision = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("kubemint.io/revision"));
    !HELD
        .lock()
        .unwrap()
        .iter()
        .any(|(n, r)| n == ns && Some(r) == revision)
}

/// Whether the pod's status already is what the simulator would write (its
/// own writes come back through the watch).
fn up_to_date(pod: &Pod, ready: bool) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    let want = if ready { "True" } else { "False" };
    let containers = pod.spec.as_ref().map_or(0, |s| s.containers.len());
    let statuses = status.container_statuses.as_deref().unwrap_or_default();
    status.phase.as_deref() == Some("Running")
        && status.pod_ip.is_some()
        && status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == want)
        && statuses.len() == containers
        && statuses.iter().all(|c| c.ready == ready)
}

async fn handle(client: &Client, pod: &Pod, ips: &mut PodIps) -> kube::Result<()> {
    let (Some(name), Some(ns)) = (
        pod.metadata.name.as_deref(),
        pod.metadata.namespace.as_deref(),
    ) else {
        return Ok(());
    };
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let ignore_gone = |result: kube::Result<()>| match result {
        // Deleted meanwhile (404), or replaced by a pod of the same name (409).
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => Ok(()),
        other => other,
    };

    if pod.metadata.deletion_timestamp.is_some() {
        // No containers to stop: finish the graceful deletion at once.
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        return ignore_gone(api.delete(name, &params).await.map(|_| ()));
    }

    if owned_by_job(pod) {
        return finish_job_pod(&api, name, pod, ips)
            .await
            .or_else(|e| ignore_gone(Err(e)));
    }
    let ready = wants_ready(pod);
    if up_to_date(pod, ready) {
        return Ok(());
    }
    let status = pod_status(pod, &ips.get(pod), ready);
    ignore_gone(
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
            .await
            .map(|_| ()),
    )
}

/// With value `"true"` on a Job's pod (its template), the simulator lets it fail (exit code 1).
pub const FAIL_ANNOTATION: &str = "sim.kubemint.io/fail";

/// Namespaces whose Job pods fail from now on (see [`fail_jobs`]).
static FAILING_JOBS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Makes Job pods started in `namespace` from now on fail (`true`) or succeed (`false`).
pub fn fail_jobs(namespace: &str, fail: bool) {
    let mut failing = FAILING_JOBS.lock().unwrap();
    failing.retain(|n| n != namespace);
    if fail {
        failing.push(namespace.to_string());
    }
}

fn owned_by_job(pod: &Pod) -> bool {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "Job")
}

/// A Job's pod runs to completion at once: succeeded, or failed when annotated.
async fn finish_job_pod(
    api: &Api<Pod>,
    name: &str,
    pod: &Pod,
    ips: &mut PodIps,
) -> kube::Result<()> {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return Ok(());
    }
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let fail = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(FAIL_ANNOTATION))
        .map(String::as_str)
        == Some("true")
        || FAILING_JOBS.lock().unwrap().contains(&namespace);
    let now = now();
    let code = i32::from(fail);
    let containers: Vec<Value> = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .map(|c| {
            let image = c.image.clone().unwrap_or_default();
            json!({
                "name": c.name, "image": image, "imageID": format!("sim://{image}"),
                "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": code, "reason": if fail { "Error" } else { "Completed" }, "startedAt": now, "finishedAt": now}},
            })
        })
        .collect();
    let status = json!({"status": {
        "phase": if fail { "Failed" } else { "Succeeded" },
        "podIP": ips.get(pod),
        "startTime": now,
        "conditions": [
            {"type": "PodReadyToStartContainers", "status": "False", "lastTransitionTime": now},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": "False", "lastTransitionTime": now, "reason": "PodCompleted"},
            {"type": "Ready", "status": "False", "lastTransitionTime": now, "reason": "PodCompleted"},
        ],
        "containerStatuses": containers,
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .map(|_| ())
}

/// The status of a pod whose containers all run (ready or not).
fn pod_status(pod: &Pod, ip: &str, ready: bool) -> Value {
    let now = now();
    let old = pod.status.as_ref();
    let started = old
        .and_then(|s| s.start_time.as_ref())
        .map_or(now.clone(), timestamp);
    let spec = pod.spec.as_ref();
    let uid = pod.metadata.uid.as_deref().unwrap_or("pod");
    let running = |c: &k8s_openapi::api::core::v1::Container, ready: bool| {
        let image = c.image.clone().unwrap_or_default();
        json!({
            "name": c.name,
            "image": image,
            "imageID": format!("sim://{image}"),
            "containerID": format!("sim://{uid}/{}", c.name),
            "ready": ready,
            "started": true,
            "restartCount": 0,
            "state": {"running": {"startedAt": started}},
        })
    };
    let containers: Vec<Value> = spec
        .iter()
        .flat_map(|s| &s.containers)
        .map(|c| running(c, ready))
        .collect();
    // Init containers ran to completion, except native sidecars (init
    // containers with `restartPolicy: Always`), which keep running beside the
    // app containers and count towards the pod's readiness like them.
    let init_containers: Vec<Value> = spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .map(|c| {
            if c.restart_policy.as_deref() == Some("Always") {
                return running(c, ready);
            }
            let image = c.image.clone().unwrap_or_default();
            json!({
                "name": c.name,
                "image": image,
                "imageID": format!("sim://{image}"),
                "containerID": format!("sim://{uid}/{}", c.name),
                "ready": true,
                "started": false,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": started}},
            })
        })
        .collect();
    // Keep transition times of conditions whose status does not change.
    let since = |type_: &str, status: &str| {
        old.and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == type_ && c.status == status))
            .and_then(|c| c.last_transition_time.as_ref())
            .map_or(now.clone(), timestamp)
    };
    let ready_status = if ready { "True" } else { "False" };
    let condition = |type_: &str, status: &str| {
        let mut c = json!({"type": type_, "status": status, "lastProbeTime": null, "lastTransitionTime": since(type_, status)});
        if status == "False" {
            c["reason"] = json!("ContainersNotReady");
            c["message"] = json!(format!("{UNREADY_ANNOTATION}=true"));
        }
        c
    };
    let mut status = json!({
        "phase": "Running",
        "hostIP": "127.0.0.1",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": started,
        "conditions": [
            condition("PodReadyToStartContainers", "True"),
            condition("Initialized", "True"),
            condition("Ready", ready_status),
            condition("ContainersReady", ready_status),
            condition("PodScheduled", "True"),
        ],
        "containerStatuses": containers,
    });
    if !init_containers.is_empty() {
        status["initContainerStatuses"] = json!(init_containers);
    }
    json!({"status": status})
}
