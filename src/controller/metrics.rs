//! Prometheus metrics of the controller.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of a finished reconcile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `success` or `error`.
    pub result: String,
    /// Condition reason (error reasons come from the error enums).
    pub reason: String,
}

/// Labels of a webhook request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// `Accepted`, or why no sync was requested (`BadSignature`, `Ignored`...).
    pub outcome: String,
}

/// The controller's metrics, registered in one registry.
pub struct Metrics {
    /// Registry served at `/metrics`.
    pub registry: Registry,
    /// Finished reconciles by result and reason.
    pub reconciles: Family<OutcomeLabels, Counter>,
    /// Duration of reconciles that did work (fetch, render, apply).
    pub reconcile_duration: Histogram,
    /// Objects deleted by prunes.
    pub pruned_objects: Counter,
    /// Webhook requests by outcome.
    pub webhook_requests: Family<WebhookLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("kubemint");
        let reconciles = Family::<OutcomeLabels, Counter>::default();
        let reconcile_duration = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        let pruned_objects = Counter::default();
        registry.register(
            "reconciles",
            "Channel reconciles by result and reason",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of channel reconciles that fetched, rendered and applied",
            reconcile_duration.clone(),
        );
        registry.register(
            "pruned_objects",
            "Objects deleted because a commit no longer declares them",
            pruned_objects.clone(),
        );
        let webhook_requests = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "webhook_requests",
            "Webhook requests by outcome",
            webhook_requests.clone(),
        );
        Metrics {
            registry,
            webhook_requests,
            reconciles,
            reconcile_duration,
            pruned_objects,
        }
    }
}

impl Metrics {
    /// Counts one finished reconcile.
    pub fn count(&self, result: &str, reason: &str) {
        self.reconciles
            .get_or_create(&OutcomeLabels {
                result: result.into(),
                reason: reason.into(),
            })
            .inc();
    }

    /// Counts one webhook request.
    pub fn count_webhook(&self, outcome: &str) {
        self.webhook_requests
            .get_or_create(&WebhookLabels {
                outcome: outcome.into(),
            })
            .inc();
    }
}
