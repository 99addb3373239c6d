//! A sampler of one Service: every period, what the API server says it
//! selects (its pinned `kubemint.io/revision`) and how many of the selected
//! pods are ready. Beside [`super::ServingChecker`], which replays every
//! change: when a watch of the checker re-lists after an API server outage,
//! what happened in between is only seen by reading the cluster as it is.
//!
//! A sample the API server does not answer (down, restarting) is counted
//! apart; a Service not yet served (pinned before its pods are up) is not a
//! violation, as in the checker.
//!
//! ```ignore
//! let sampler = Sampler::start(client.clone(), &ns, "web", Duration::from_millis(200));
//! // ... rollouts, outages ...
//! let seen = sampler.finish().await;
//! assert!(seen.violations.is_empty(), "{seen}");
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::Client;

use super::checker::{PodState, REVISION_LABEL};

/// A sample in which the Service selected a revision with no ready pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// When the sample was taken.
    pub at: Timestamp,
    /// The revision the Service selected.
    pub revision: String,
    /// The selected pods, with their state.
    pub pods: Vec<String>,
}

/// What a sampler saw.
#[derive(Debug, Clone, Default)]
pub struct Sampled {
    /// Samples answered by the API server.
    pub answered: usize,
    /// Samples it did not answer (down or restarting).
    pub unanswered: usize,
    /// Samples of a served Service that selected no ready pod.
    pub violations: Vec<Violation>,
    /// The revisions the Service was seen selecting, in order.
    pub revisions: Vec<String>,
}

impl fmt::Display for Sampled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} samples answered, {} unanswered, revisions {:?}, {} violation(s)",
            self.answered,
            self.unanswered,
            self.revisions,
            self.violations.len()
        )?;
        for v in &self.violations {
            write!(
                f,
                "\n  {}: revision {} has no ready pod; its pods: {:?}",
                v.at, v.revision, v.pods
            )?;
        }
        Ok(())
    }
}

/// Samples Service `service` of a namespace until [`finish`](Self::finish).
pub struct Sampler {
    seen: Arc<Mutex<Sampled>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    /// Starts sampling every `period`; each request is cut off after a
    /// second, so a hanging API server does not stop the sampling.
    pub fn start(client: Client, namespace: &str, service: &str, period: Duration) -> Sampler {
        let seen: Arc<Mutex<Sampled>> = Arc::default();
        let services: Api<Service> = Api::namespaced(client.clone(), namespace);
        let pods: Api<Pod> = Api::namespaced(client, namespace);
        let service = service.to_string();
        let log = seen.clone();
        let task = tokio::spawn(async move {
            let mut served = false;
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let sample = tokio::time::timeout(
                    Duration::from_secs(1),
                    sample(&services, &pods, &service),
                )
                .await;
                let mut seen = log.lock().unwrap();
                let Ok(Some(sample)) = sample else {
                    seen.unanswered += 1;
                    continue;
                };
                seen.answered += 1;
                let Some((revision, states)) = sample else {
                    continue; // not (yet) pinned
                };
                if seen.revisions.last() != Some(&revision) {
                    seen.revisions.push(revision.clone());
                }
                if states.iter().any(PodState::serving) {
                    served = true;
                } else if served {
                    seen.violations.push(Violation {
                        at: Timestamp::now(),
                        revision,
                        pods: states
                            .iter()
                            .map(|p| {
                                format!("{} (ready {}, deleting {})", p.name, p.ready, p.deleting)
                            })
                            .collect(),
                    });
                }
            }
        });
        Sampler { seen, task }
    }

    /// Stops sampling and returns what was seen.
    pub async fn finish(self) -> Sampled {
        self.task.abort();
        let _ = self.task.await;
        self.seen.lock().unwrap().clone()
    }
}

/// One sample: `None` when the API server did not answer; `Some(None)` when
/// the Service is absent or not pinned; else its revision and selected pods.
async fn sample(
    services: &Api<Service>,
    pods: &Api<Pod>,
    service: &str,
) -> Option<Option<(String, Vec<PodState>)>> {
    let svc = services.get_opt(service).await.ok()?;
    let Some(selector) = svc
        .and_then(|s| s.spec?.selector)
        .map(|s| s.into_iter().collect::<BTreeMap<String, String>>())
        .filter(|s| s.contains_key(REVISION_LABEL))
    else {
        return Some(None);
    };
    let revision = selector[REVISION_LABEL].clone();
    let labels: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let listed = pods
        .list(&ListParams::default().labels(&labels.join(",")))
        .await
        .ok()?;
    let states = listed.items.iter().map(PodState::of).collect();
    Some(Some((revision, states)))
}
