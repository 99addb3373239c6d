//! A continuous check that traffic never goes nowhere: every change to the
//! Services and Pods of a namespace is recorded from the start of a test, and
//! [`ServingChecker::finish`] replays them in `resourceVersion` order (one
//! etcd, so the versions of all objects are one sequence of integers) and
//! fails if a *pinned* Service (its selector has `kubemint.io/revision`) that
//! has served at least one ready pod ever selects no ready pod.
//!
//! A ready pod matches the selector, has the condition Ready=True and no
//! `deletionTimestamp`. A deleted Service is no longer tracked; a Service that
//! was never served yet (pinned before its pods are up) is not an outage.
//!
//! The replay ([`replay`]) is a pure function over [`Observed`] events; its
//! own tests are in `tests/offline/checker.rs`.
//!
//! ```ignore
//! let checker = ServingChecker::start(client.clone(), &ns).await;
//! // ... deliver commits ...
//! let report = checker.finish().await; // panics with the outages found
//! assert!(report.served.contains("web"));
//! ```

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::{Client, Resource};
use serde_json::json;

/// The label that pins a Service to one revision.
pub const REVISION_LABEL: &str = "kubemint.io/revision";

/// A pod as far as serving goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodState {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Condition Ready=True.
    pub ready: bool,
    /// Has a `deletionTimestamp`.
    pub deleting: bool,
}

impl PodState {
    pub fn of(pod: &Pod) -> PodState {
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        PodState {
            name: pod.metadata.name.clone().unwrap_or_default(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            ready,
            deleting: pod.metadata.deletion_timestamp.is_some(),
        }
    }

    /// Whether `selector` selects this pod.
    pub fn matches(&self, selector: &BTreeMap<String, String>) -> bool {
        !selector.is_empty() && selector.iter().all(|(k, v)| self.labels.get(k) == Some(v))
    }

    /// Whether it takes traffic.
    pub fn serving(&self) -> bool {
        self.ready && !self.deleting
    }

    fn state(&self) -> &'static str {
        match (self.deleting, self.ready) {
            (true, _) => "terminating",
            (false, true) => "ready",
            (false, false) => "unready",
        }
    }
}

/// One change the watches saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A Service was created or changed; its selector (`None`: none).
    Service {
        name: String,
        selector: Option<BTreeMap<String, String>>,
    },
    ServiceGone {
        name: String,
    },
    Pod(PodState),
    PodGone {
        name: String,
    },
}

impl Change {
    /// A Service's change. Preview Services (`kubemint.io/preview`) select the
    /// newest revision before it is ready, by design: they are not checked.
    pub fn service(svc: &Service) -> Change {
        let preview = svc
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.get("kubemint.io/preview").map(String::as_str) == Some("true"));
        Change::Service {
            name: svc.metadata.name.clone().unwrap_or_default(),
            selector: svc
                .spec
                .as_ref()
                .and_then(|s| s.selector.clone())
                .filter(|_| !preview),
        }
    }
}

/// A change, with the `resourceVersion` it happened at and when it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub rv: u64,
    pub at: Timestamp,
    pub change: Change,
}

/// A pinned Service that had served and then selected no ready pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    pub service: String,
    pub selector: BTreeMap<String, String>,
    /// Where it started: the change that left the Service with no ready pod.
    pub rv: u64,
    pub at: Timestamp,
    /// The pods the selector matched then, with their state.
    pub pods: Vec<String>,
    /// Ready pods of the namespace the Service did not select then, with their revision.
    pub ready_elsewhere: Vec<String>,
    /// When it ended (`None`: still empty at the end of the test, or the
    /// Service was deleted while empty).
    pub until: Option<(u64, Timestamp)>,
}

impl Outage {
    pub fn revision(&self) -> &str {
        self.selector
            .get(REVISION_LABEL)
            .map_or("?", String::as_str)
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

impl fmt::Display for Outage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let selector: Vec<String> = self
            .selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        write!(
            f,
            "{} (rv {}): Service {} selects revision {} ({}) and no ready pod; its pods: {}; ready pods it does not select: {}; ",
            self.at,
            self.rv,
            self.service,
            self.revision(),
            selector.join(","),
            list(&self.pods),
            list(&self.ready_elsewhere),
        )?;
        match &self.until {
            Some((rv, at)) => write!(f, "until {at} (rv {rv})"),
            None => write!(f, "until the end"),
        }
    }
}

#[derive(Default)]
struct Tracked {
    selector: Option<BTreeMap<String, String>>,
    served: bool,
    /// Index into the outages while one is open.
    open: Option<usize>,
}

/// What a replay found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Replay {
    pub outages: Vec<Outage>,
    /// Pinned Services that served a ready pod at some point.
    pub served: BTreeSet<String>,
}

/// Replays `events` in `resourceVersion` order (the order they arrived in
/// does not matter; equal versions keep their arrival order) and returns every
/// outage of a pinned Service, and which pinned Services ever served.
pub fn replay(events: &[Observed]) -> Replay {
    let mut ordered: Vec<&Observed> = events.iter().collect();
    ordered.sort_by_key(|e| e.rv);
    let mut pods: BTreeMap<String, PodState> = BTreeMap::new();
    let mut services: BTreeMap<String, Tracked> = BTreeMap::new();
    let mut result = Replay::default();
    for event in ordered {
        match &event.change {
            Change::Service { name, selector } => {
                services.entry(name.clone()).or_default().selector = selector.clone();
            }
            Change::ServiceGone { name } => {
                services.remove(name);
            }
            Change::Pod(pod) => {
                pods.insert(pod.name.clone(), pod.clone());
            }
            Change::PodGone { name } => {
                pods.remove(name);
            }
        }
        for (name, tracked) in services.iter_mut() {
            let pinned = tracked
                .selector
                .as_ref()
                .filter(|s| s.contains_key(REVISION_LABEL));
            let Some(selector) = pinned else {
                // Not pinned (any more): not checked.
                close(&mut result.outages, tracked, event);
                continue;
            };
            let serving = pods.values().any(|p| p.matches(selector) && p.serving());
            if serving {
                tracked.served = true;
                result.served.insert(name.clone());
                close(&mut result.outages, tracked, event);
            } else if tracked.served && tracked.open.is_none() {
                tracked.open = Some(result.outages.len());
                result.outages.push(Outage {
                    service: name.clone(),
                    selector: selector.clone(),
                    rv: event.rv,
                    at: event.at,
                    pods: pods
                        .values()
                        .filter(|p| p.matches(selector))
                        .map(|p| format!("{} ({})", p.name, p.state()))
                        .collect(),
                    ready_elsewhere: pods
                        .values()
                        .filter(|p| p.serving() && !p.matches(selector))
                        .map(|p| {
                            let revision = p.labels.get(REVISION_LABEL).map_or("-", String::as_str);
                            format!("{} (revision {revision})", p.name)
                        })
                        .collect(),
                    until: None,
                });
            }
        }
    }
    result
}

fn close(outages: &mut [Outage], tracked: &mut Tracked, event: &Observed) {
    if let Some(i) = tracked.open.take() {
        outages[i].until = Some((event.rv, event.at));
    }
}

/// What a finished checker saw.
#[derive(Debug, Clone)]
pub struct Report {
    /// Events replayed.
    pub events: usize,
    /// Pinned Services that served ready pods at some point.
    pub served: BTreeSet<String>,
}

type Log = Arc<Mutex<Vec<Observed>>>;

/// Watches the Services and Pods of one namespace until [`finish`](Self::finish).
pub struct ServingChecker {
    client: Client,
    namespace: String,
    events: Log,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    finished: bool,
}

impl ServingChecker {
    /// Starts both watches and returns once each has listed the namespace (so
    /// nothing after this call is missed). The namespace need not exist yet.
    pub async fn start(client: Client, namespace: &str) -> ServingChecker {
        let events: Log = Arc::default();
        let (svc_ready, svc_listed) = tokio::sync::oneshot::channel();
        let (pod_ready, pod_listed) = tokio::sync::oneshot::channel();
        let tasks = vec![
            tokio::spawn(record(
                Api::<Service>::namespaced(client.clone(), namespace),
                events.clone(),
                Change::service,
                |name| Change::ServiceGone { name },
                svc_ready,
            )),
            tokio::spawn(record(
                Api::<Pod>::namespaced(client.clone(), namespace),
                events.clone(),
                |pod| Change::Pod(PodState::of(pod)),
                |name| Change::PodGone { name },
                pod_ready,
            )),
        ];
        for listed in [svc_listed, pod_listed] {
            tokio::time::timeout(Duration::from_secs(60), listed)
                .await
                .unwrap_or_else(|_| {
                    panic!("checker: the watches of {namespace} did not list within 60s")
                })
                .expect("checker: a watch ended before listing");
        }
        ServingChecker {
            client,
            namespace: namespace.to_string(),
            events,
            tasks,
            finished: false,
        }
    }

    /// Stops watching and replays everything seen; panics with a readable
    /// list of the outages if there were any.
    ///
    /// To know that both watches have delivered everything up to now, it
    /// writes one barrier object to each (a selector-less Service and a pod
    /// bound to no real node, both ignored by the replay, deleted afterwards)
    /// and waits until both came back; events after the older barrier are
    /// left out, since the other watch may not have caught up with them.
    pub async fn finish(mut self) -> Report {
        self.finished = true;
        let cut = self.barrier().await;
        for task in &self.tasks {
            task.abort();
        }
        let events: Vec<Observed> = {
            let all = self.events.lock().unwrap();
            all.iter().filter(|e| e.rv <= cut).cloned().collect()
        };
        let result = replay(&events);
        if !result.outages.is_empty() {
            let lines: Vec<String> = result.outages.iter().map(|o| format!("  {o}")).collect();
            panic!(
                "checker: a pinned Service in {} selected no ready pod ({} outage(s) in {} events):\n{}",
                self.namespace,
                result.outages.len(),
                events.len(),
                lines.join("\n")
            );
        }
        Report {
            events: events.len(),
            served: result.served,
        }
    }

    async fn barrier(&self) -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let name = format!(
            "kubemint-checker-barrier-{}",
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let services: Api<Service> = Api::namespaced(self.client.clone(), &self.namespace);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.namespace);
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"clusterIP": "None", "ports": [{"port": 1, "protocol": "TCP"}]},
        }))
        .unwrap();
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                // Bound to a node that does not exist: neither the scheduler
                // nor kwok (which plays only kubemint-sim-node) touches it.
                "nodeName": "kubemint-checker-nowhere",
                "automountServiceAccountToken": false,
                "containers": [{"name": "barrier", "image": "none"}],
            },
        }))
        .unwrap();
        let post = PostParams::default();
        let rv = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            parse_rv(meta.resource_version.as_deref()).expect("a resourceVersion")
        };
        let svc_rv = rv(services
            .create(&post, &svc)
            .await
            .expect("checker: creating the barrier Service")
            .meta());
        let pod_rv = rv(pods
            .create(&post, &pod)
            .await
            .expect("checker: creating the barrier pod")
            .meta());
        for what in ["Service", "Pod"] {
            let seen = || async {
                let events = self.events.lock().unwrap();
                events
                    .iter()
                    .any(|e| match &e.change {
                        Change::Service { name: n, .. } => what == "Service" && *n == name,
                        Change::Pod(p) => what == "Pod" && p.name == name,
                        _ => false,
                    })
                    .then_some(())
            };
            super::wait_for(Duration::from_secs(60), seen).await;
        }
        let _ = services.delete(&name, &DeleteParams::default()).await;
        let _ = pods
            .delete(
                &name,
                &DeleteParams {
                    grace_period_seconds: Some(0),
                    ..DeleteParams::default()
                },
            )
            .await;
        svc_rv.min(pod_rv)
    }
}

impl Drop for ServingChecker {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        if self.finished {
            return;
        }
        if !std::thread::panicking() {
            panic!(
                "checker of {} dropped without finish(): its events were never checked",
                self.namespace
            );
        }
        // The test failed before finish(): what the watches saw so far may
        // explain why (without the barrier, the last events may be missing).
        let Ok(events) = self.events.lock() else {
            return;
        };
        let outages = replay(&events).outages;
        if !outages.is_empty() {
            use std::io::Write;
            let mut text = format!(
                "[kubemint-checker] {} (test failed before finish; events so far): {} outage(s):\n",
                self.namespace,
                outages.len()
            );
            for outage in &outages {
                text.push_str(&format!("  {outage}\n"));
            }
            let _ = std::io::stderr().write_all(text.as_bytes());
        }
    }
}

fn parse_rv(rv: Option<&str>) -> Option<u64> {
    rv?.parse().ok()
}

/// Records the watch of `api` into `log` until aborted. After a re-list
/// (the watch was lost, e.g. while the API server restarted), objects that
/// are no longer listed are recorded as gone, at the highest version seen so
/// far: the deletion happened at some version before the list, which the
/// watcher does not report.
async fn record<K>(
    api: Api<K>,
    log: Log,
    applied: fn(&K) -> Change,
    gone: fn(String) -> Change,
    listed: tokio::sync::oneshot::Sender<()>,
) where
    K: Resource + Clone + fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    let mut listed = Some(listed);
    let mut live: HashSet<String> = HashSet::new();
    let mut relisted: HashSet<String> = HashSet::new();
    let mut highest = 0u64;
    // Said once per run of failures: an outage retries every 500 ms.
    let mut failing = false;
    let push = |log: &Log, rv: u64, change: Change| {
        log.lock().unwrap().push(Observed {
            rv,
            at: Timestamp::now(),
            change,
        });
    };
    // After a failure the watch starts over with a new list: a watch resumed
    // from its resourceVersion across an API server restart can miss changes.
    'watch: loop {
        // A streaming list: the control plane of the tests serves it.
        let mut events = watcher(api.clone(), watcher::Config::default().streaming_lists())
            .default_backoff()
            .boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(Event::Init) => relisted.clear(),
                Ok(Event::InitApply(obj)) | Ok(Event::Apply(obj)) => {
                    let name = obj.meta().name.clone().unwrap_or_default();
                    let Some(rv) = parse_rv(obj.meta().resource_version.as_deref()) else {
                        continue;
                    };
                    highest = highest.max(rv);
                    relisted.insert(name.clone());
                    live.insert(name);
                    push(&log, rv, applied(&obj));
                }
                Ok(Event::Delete(obj)) => {
                    let name = obj.meta().name.clone().unwrap_or_default();
                    let rv = parse_rv(obj.meta().resource_version.as_deref()).unwrap_or(highest);
                    highest = highest.max(rv);
                    live.remove(&name);
                    push(&log, rv, gone(name));
                }
                Ok(Event::InitDone) => {
                    failing = false;
                    for name in live.difference(&relisted).cloned().collect::<Vec<_>>() {
                        live.remove(&name);
                        push(&log, highest, gone(name));
                    }
                    if let Some(tx) = listed.take() {
                        let _ = tx.send(());
                    }
                }
                Err(e) => {
                    use std::io::Write;
                    if !std::mem::replace(&mut failing, true) {
                        let _ = writeln!(
                            std::io::stderr(),
                            "[kubemint-checker] watch error (listing again until it lists): {e}"
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue 'watch;
                }
            }
        }
    }
}
