//! Prometheus metrics of the controller.

use crate::engine::{PassOutcome, PassResult};
use crate::rollout::Phase;
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

/// Labels of a deployment note push.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NoteLabels {
    /// `pushed`, or why it was not (`NotesPushRejected`, `NotesGitFailed`...).
    pub outcome: String,
}

/// Labels of a render decision.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RenderLabels {
    /// `rendered`, or `carried_over` (a new commit that changed nothing the
    /// channel reads: the release it had, with no render).
    pub outcome: String,
}

/// Labels of a git poll.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PollLabels {
    /// `true` when a channel took another channel's poll of the same ref.
    pub shared: String,
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
    /// Duration of git polls (a ref advertisement, plus a fetch when the ref moved).
    pub git_poll_duration: Histogram,
    /// Pack bytes received from git remotes.
    pub git_received_bytes: Counter,
    /// Deployment notes by outcome.
    pub notes: Family<NoteLabels, Counter>,
    /// Commits rendered, or carried over without a render.
    pub renders: Family<RenderLabels, Counter>,
    /// Git polls by whether they were shared.
    pub git_polls: Family<PollLabels, Counter>,
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
        let git_poll_duration = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "git_poll_duration_seconds",
            "Duration of git polls: one ref advertisement, plus a fetch when the ref moved",
            git_poll_duration.clone(),
        );
        let git_received_bytes = Counter::default();
        registry.register(
            "git_received_bytes",
            "Pack bytes received from git remotes",
            git_received_bytes.clone(),
        );
        let notes = Family::<NoteLabels, Counter>::default();
        registry.register(
            "git_notes",
            "Deployment notes pushed to git, by outcome",
            notes.clone(),
        );
        let renders = Family::<RenderLabels, Counter>::default();
        registry.register(
            "renders",
            "Commits rendered, or carried over without a render because they changed nothing the channel reads",
            renders.clone(),
        );
        let git_polls = Family::<PollLabels, Counter>::default();
        registry.register(
            "git_polls",
            "Git polls of channels, by whether another channel's poll of the same ref was taken",
            git_polls.clone(),
        );
        Metrics {
            registry,
            renders,
            git_polls,
            notes,
            webhook_requests,
            git_poll_duration,
            git_received_bytes,
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

    /// Counts one deployment note push.
    pub fn count_note(&self, outcome: &str) {
        self.notes
            .get_or_create(&NoteLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Records one git poll of a channel, and its cost when it was not shared.
    pub fn observe_fetch(&self, stats: &crate::source::TransferStats, shared: bool) {
        self.git_polls
            .get_or_create(&PollLabels {
                shared: shared.to_string(),
            })
            .inc();
        if !shared {
            self.git_poll_duration.observe(stats.elapsed.as_secs_f64());
            self.git_received_bytes.inc_by(stats.received_bytes as u64);
        }
    }

    /// Counts one render decision (`rendered` or `carried_over`).
    pub fn count_render(&self, outcome: &str) {
        self.renders
            .get_or_create(&RenderLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Records what a pass did: its duration, its poll and render, its
    /// result (`success` with the phase it left the release in, or `error`
    /// with the reason), and the objects it pruned.
    pub fn record_pass(&self, pass: &PassOutcome) {
        if !pass.elapsed.is_zero() {
            self.reconcile_duration.observe(pass.elapsed.as_secs_f64());
        }
        if let Some(poll) = &pass.poll {
            self.observe_fetch(&poll.fetched.stats, poll.fetched.shared);
        }
        if let Some(render) = pass.render {
            self.count_render(render.name());
        }
        match &pass.result {
            PassResult::Waited | PassResult::Suspended => {}
            PassResult::Failed { error, .. } => self.count("error", error.reason()),
            PassResult::Delivered(d) => {
                self.count("success", phase_reason(&d.plan.phase));
                self.pruned_objects
                    .inc_by(d.changes.pruned().count() as u64);
            }
        }
    }
}

/// The reason a successful pass is counted under: the phase it left the release in.
fn phase_reason(phase: &Phase) -> &'static str {
    match phase {
        Phase::Progressing { .. } => "Progressing",
        Phase::Testing { .. } => "Testing",
        Phase::Failed { .. } => "ReleaseFailed",
        Phase::Draining => "Draining",
        Phase::Active => "ReconciliationSucceeded",
    }
}
