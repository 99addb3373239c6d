//! When a channel's pass polls git, renders, waits or backs off: pure
//! functions of what the scheduler remembers of the channel ([`Schedule`]),
//! what asked for the pass ([`Trigger`]), the time and the spec's intervals.
//! The controller keeps a [`Schedule`] per channel in memory (losing it, on a
//! restart, costs one fetch and one render, nothing else).

use std::time::{Duration, Instant};

/// The shortest wait between two passes of one channel.
pub const MIN_PASS_INTERVAL: Duration = Duration::from_millis(200);

/// What the scheduler remembers of a channel between passes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schedule {
    /// Generation and request annotations last seen: a change forces a fetch.
    pub trigger: String,
    /// When git was last polled.
    pub polled_at: Option<Instant>,
    /// The newest commit the ref pointed to at the last poll.
    pub head: Option<String>,
    /// The commit rendered and being delivered, if any.
    pub rendered: Option<RenderedCommit>,
    /// A commit rejected for good (render, gates or dry run), with the trigger
    /// it was rejected under: not tried again until either changes.
    pub rejected: Option<(String, String)>,
    /// Consecutive transient failures.
    pub failures: u32,
    /// No retry before this, unless a new commit or a request comes.
    pub retry_at: Option<Instant>,
}

/// What the scheduler needs to know of the rendered commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedCommit {
    /// Its sha.
    pub sha: String,
    /// Whether some of its kinds were not served yet when it was rendered
    /// (CRDs of the release itself): rendered again at the next poll.
    pub unresolved: bool,
}

/// What asked for this pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    /// The channel's generation and request annotations (see the controller's `trigger_of`).
    pub spec: String,
    /// When a pending sync request (webhook, local watch) was made, if one is.
    pub requested: Option<Instant>,
    /// When `spec` last changed (the channel's creation, a spec edit, a
    /// request annotation), if known: a poll for it must start after that.
    pub changed_at: Option<Instant>,
}

/// How a pass starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// Nothing to do before this long (backing off after a failure).
    Wait(Duration),
    /// Poll git for the ref's commit.
    Poll,
    /// Plan again with the commit already rendered.
    UseRendered,
}

/// What the commit a poll found means for this pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// The ref moved to a commit this process had not seen at its head.
    pub new_commit: bool,
    /// What to do with it.
    pub next: Next,
}

/// The step after a poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Stop this pass and look again after this long (backing off, or the
    /// head is a rejected commit with nothing rendered to fall back on).
    Wait(Duration),
    /// Keep delivering the commit already rendered (the ref did not move, or
    /// its head was rejected for good: the previous release stays as declared).
    UseRendered,
    /// The ref moved under the same trigger: carry the rendered release over
    /// to the fetched commit if it changed nothing the release was rendered
    /// from, and render it otherwise.
    RenderIfChanged,
    /// Render the fetched commit.
    Render,
}

/// Whether someone asked for this pass (a sync request, a spec change or a
/// request annotation): what was refused may be allowed now, so refused
/// watches try again at once.
pub fn asked(s: &Schedule, trigger: &Trigger) -> bool {
    trigger.requested.is_some() || s.trigger != trigger.spec
}

/// Decides how a pass starts.
pub fn start(s: &Schedule, trigger: &Trigger, now: Instant, interval: Duration) -> Start {
    let same_trigger = s.trigger == trigger.spec;
    let poll_due = trigger.requested.is_some()
        || !same_trigger
        || s.rendered.is_none()
        || s.polled_at
            .is_none_or(|t| now.saturating_duration_since(t) >= interval);
    if poll_due {
        return Start::Poll;
    }
    match backing_off(s, trigger, now) {
        Some(at) => Start::Wait(
            at.saturating_duration_since(now)
                .min(until_poll(s, now, interval)),
        ),
        None => Start::UseRendered,
    }
}

/// How fresh a poll must be for this pass, as the earliest time it may have
/// started (`None`: any poll will do). Channels that follow the same ref
/// share polls (see [`crate::source::polls`]); a poll serves a channel only if
/// it started after whatever the channel waits for was asked:
/// - a sync request: a poll made after it (a webhook for a repository wakes
///   all its channels, and they share the one poll made after it);
/// - a changed trigger (a new channel, a spec change, a reconcile request): a
///   poll made after the change, so that a commit pushed before it is seen,
///   while channels created together share the polls made after them;
/// - a new channel (none of its polls remembered): a poll made at most
///   `join_window` before its creation, so that a fleet created over a few
///   seconds joins its group's recent poll instead of each polling again;
/// - a poll due by the interval: one made within the interval. Since
///   [`fetched`] dates the channel's poll from the shared poll's start, every
///   channel of a repository comes due at the same time, and one of them polls.
pub fn poll_not_before(
    s: &Schedule,
    trigger: &Trigger,
    now: Instant,
    interval: Duration,
    join_window: Duration,
) -> Option<Instant> {
    if let Some(at) = trigger.requested {
        return Some(at);
    }
    if s.trigger != trigger.spec {
        // A change this very second asks for a poll a moment ahead.
        let changed = trigger.changed_at.unwrap_or(now);
        if s.polled_at.is_none() {
            return Some(changed.checked_sub(join_window).unwrap_or(changed));
        }
        return Some(changed);
    }
    now.checked_sub(interval)
}

/// Records a poll that found `sha` at the ref, and decides what it means:
/// a commit that did not move is not rendered again (unless the trigger
/// changed or some kinds were unresolved), a commit rejected under the same
/// trigger is not tried again, and a transient failure waits out its backoff
/// unless the ref moved.
/// The poll is dated from `polled_at`, when it started (another channel's
/// poll, when shared), so the next is due an interval after it.
pub fn fetched(
    s: &mut Schedule,
    trigger: &Trigger,
    sha: &str,
    (polled_at, now): (Instant, Instant),
    interval: Duration,
) -> Fetched {
    let same_trigger = s.trigger == trigger.spec;
    let backing_off = backing_off(s, trigger, now);
    s.polled_at = Some(polled_at.min(now));
    s.trigger = trigger.spec.clone();
    // Nothing rendered yet (the first render failed): the head fetched last time counts.
    let moved = match &s.rendered {
        Some(r) => r.sha != sha,
        None => s.head.as_deref() != Some(sha),
    };
    if let Some(at) = backing_off {
        if !moved {
            // A transient failure is retried after its backoff; a new commit at once.
            return Fetched {
                new_commit: false,
                next: Next::Wait(at.saturating_duration_since(now)),
            };
        }
    }
    let new_commit = s.head.as_deref() != Some(sha);
    s.head = Some(sha.to_string());
    let head_rejected = s.rejected.as_ref() == Some(&(sha.to_string(), trigger.spec.clone()));
    let next = match &s.rendered {
        Some(_) if head_rejected => Next::UseRendered,
        None if head_rejected => Next::Wait(interval),
        Some(r) if same_trigger && !r.unresolved => match moved {
            false => Next::UseRendered,
            true => Next::RenderIfChanged,
        },
        _ => Next::Render,
    };
    Fetched { new_commit, next }
}

/// Records the commit rendered for delivery.
pub fn rendered(s: &mut Schedule, sha: &str, unresolved: bool) {
    s.rendered = Some(RenderedCommit {
        sha: sha.to_string(),
        unresolved,
    });
}

/// Whether the ref's newest commit is the one rejected under `trigger`: the
/// status keeps reporting the rejection rather than the release still delivered.
pub fn head_rejected(s: &Schedule, trigger: &str) -> bool {
    match (&s.head, &s.rejected) {
        (Some(head), Some((sha, t))) => head == sha && t == trigger,
        _ => false,
    }
}

/// When the next pass comes after a pass that went through: at the next poll,
/// every `drift` interval, and at the plan's own deadline (`requeue`), never
/// sooner than [`MIN_PASS_INTERVAL`]. Clears the backoff.
pub fn succeeded(
    s: &mut Schedule,
    now: Instant,
    interval: Duration,
    drift: Duration,
    requeue: Option<Duration>,
) -> Duration {
    s.failures = 0;
    s.retry_at = None;
    let mut after = until_poll(s, now, interval).min(drift);
    if let Some(due) = requeue {
        after = after.min(due.max(MIN_PASS_INTERVAL));
    }
    after.max(MIN_PASS_INTERVAL)
}

/// When the next pass comes after a pass that failed. A refusal (`stalled`)
/// waits for a new commit or spec change, polled for at the interval, and
/// remembers the commit refused; a transient failure backs off.
pub fn failed(
    s: &mut Schedule,
    trigger: &str,
    stalled: bool,
    commit: Option<&str>,
    now: Instant,
    interval: Duration,
) -> Duration {
    if stalled {
        s.failures = 0;
        s.retry_at = None;
        if let Some(sha) = commit {
            s.rejected = Some((sha.to_string(), trigger.to_string()));
        }
        return interval;
    }
    s.failures += 1;
    let retry = backoff(s.failures);
    s.retry_at = Some(now + retry);
    retry.min(interval)
}

/// Backoff after `failures` consecutive transient failures: 1 s, doubling, at most 5 minutes.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(9)).min(Duration::from_secs(300))
}

/// The end of a backoff still running, unless a request or a spec change cuts it short.
fn backing_off(s: &Schedule, trigger: &Trigger, now: Instant) -> Option<Instant> {
    s.retry_at
        .filter(|t| *t > now && s.trigger == trigger.spec && trigger.requested.is_none())
}

/// How long until the next poll is due.
fn until_poll(s: &Schedule, now: Instant, interval: Duration) -> Duration {
    interval.saturating_sub(
        s.polled_at
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t)),
    )
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
