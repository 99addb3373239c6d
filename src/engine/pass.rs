//! One pass of a channel, owned by the engine from start to end: admit,
//! schedule, poll, render (or carry over), prepare, gates, observe, plan,
//! execute, and the test's outcome. It returns one typed [`PassOutcome`]
//! that the controller turns into the status, events and metrics. `kubemint
//! diff` runs the same pipeline in preview mode ([`Engine::preview`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;

use super::pipeline::{self, commit_info, Engine, Mode, Observation, Timing};
use super::schedule::{self, Next, Schedule, Start, Trigger};
use super::{test_logs, Error, Fetched, Rendered};
use crate::api::{Channel, CommitInfo, ReleasePhase, TestResult};
use crate::cluster::changes::ChangeSet;
use crate::rollout::{Phase, Plan};

/// What the engine remembers of a channel between passes (losing it, on a
/// restart, costs one fetch and one render, nothing else).
#[derive(Default)]
pub struct Memo {
    /// When to poll, render, wait or back off.
    pub schedule: Schedule,
    /// The rendered commit being delivered ([`Schedule::rendered`] names it).
    pub rendered: Option<Arc<Rendered>>,
}

/// What one pass did, for the controller to report.
pub struct PassOutcome {
    /// When to come back; `None`: at the channel's next change only.
    pub requeue: Option<Duration>,
    /// The poll, when the pass polled git.
    pub poll: Option<Poll>,
    /// How the commit was made deliverable, when this pass did it.
    pub render: Option<RenderStep>,
    /// How the pass ended.
    pub result: PassResult,
    /// How long the pass took.
    pub elapsed: Duration,
}

/// A poll of git made by a pass.
pub struct Poll {
    /// What it fetched.
    pub fetched: Fetched,
    /// Whether the commit is new to this channel.
    pub new_commit: bool,
}

/// How a commit was made deliverable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderStep {
    /// Rendered from the commit.
    Rendered,
    /// The previous release carried over: the commit changed nothing the channel reads.
    CarriedOver,
}

impl RenderStep {
    /// Its name in metrics.
    pub fn name(self) -> &'static str {
        match self {
            RenderStep::Rendered => "rendered",
            RenderStep::CarriedOver => "carried_over",
        }
    }
}

/// How a pass ended.
pub enum PassResult {
    /// Nothing to do now (waiting for a poll, a deadline or a change).
    Waited,
    /// `spec.suspend` is true: nothing was read or written.
    Suspended,
    /// The plan was carried out.
    Delivered(Box<Delivery>),
    /// The pass failed or a gate refused the commit.
    Failed {
        /// Why.
        error: Box<Error>,
        /// The commit it was about, when it got that far.
        commit: Option<CommitInfo>,
    },
}

/// A plan carried out (or, in a preview, dry-run).
pub struct Delivery {
    /// The release delivered.
    pub rendered: Arc<Rendered>,
    /// The plan of the pass (in a preview, the last plan on the way to promotion).
    pub plan: Plan,
    /// What the pass changed (in a preview: would change, with diffs).
    pub changes: ChangeSet,
    /// Whether the release was promoted by this pass (or applied, without
    /// workloads) while another was serving before it.
    pub promoted_now: bool,
    /// The pre-promotion test, when this pass saw it pass or fail.
    pub test: Option<TestResult>,
    /// Whether the ref's head was rejected earlier (the status keeps saying so).
    pub head_rejected: bool,
    /// The time the plan was made at.
    pub now: Timestamp,
    /// The retry request the pass was made under (`kubemint.io/retry`).
    pub retry: String,
    /// A preview of a commit the prune guard holds: the refusal, shown with its plan.
    pub held: Option<Error>,
}

impl PassOutcome {
    fn new() -> Self {
        PassOutcome {
            requeue: None,
            poll: None,
            render: None,
            result: PassResult::Waited,
            elapsed: Duration::ZERO,
        }
    }
}

type Failure = (Error, Option<CommitInfo>);

impl Engine {
    /// One pass of `channel` for `trigger`: from the gates to the executed
    /// plan. Never fails: a failure is the outcome's [`PassResult::Failed`],
    /// with the backoff or stall already decided.
    pub async fn pass(&self, channel: &Channel, trigger: &Trigger) -> PassOutcome {
        let started = Instant::now();
        let mut out = PassOutcome::new();
        if let Err(refused) = self.admit(channel) {
            // Refused before anything reads the path: no fetch, no watch of it.
            out.result = PassResult::Failed {
                error: Box::new(refused),
                commit: None,
            };
            return out;
        }
        self.watch_local(channel);
        if channel.spec.suspend {
            out.result = PassResult::Suspended;
            return out;
        }
        let timing = match pipeline::timing(channel) {
            Ok(t) => t,
            Err(error) => {
                out.result = PassResult::Failed {
                    error: Box::new(error),
                    commit: None,
                };
                return out;
            }
        };
        match self.deliver(channel, trigger, &timing, &mut out).await {
            Ok(after) => out.requeue = Some(after),
            Err((error, commit)) => {
                let stalled = error.is_stalled();
                let sha = commit.as_ref().map(|c| c.sha.as_str());
                let retry = self.memo(&channel.key(), |m| {
                    schedule::failed(
                        &mut m.schedule,
                        &trigger.spec,
                        stalled,
                        sha,
                        Instant::now(),
                        timing.interval,
                    )
                });
                out.requeue = Some(retry);
                out.result = PassResult::Failed {
                    error: Box::new(error),
                    commit,
                };
            }
        }
        out.elapsed = started.elapsed();
        out
    }

    /// The delivery of a pass: schedule -> poll -> plan -> execute; returns when to look again.
    async fn deliver(
        &self,
        channel: &Channel,
        trigger: &Trigger,
        timing: &Timing,
        out: &mut PassOutcome,
    ) -> Result<Duration, Failure> {
        let key = channel.key();
        let (start, asked) = self.memo(&key, |m| {
            let start = schedule::start(&m.schedule, trigger, Instant::now(), timing.interval);
            (start, schedule::asked(&m.schedule, trigger))
        });
        if asked {
            self.retry_refused_watches(channel); // a RoleBinding may have been fixed
        }
        let rendered = match start {
            Start::Wait(after) => return Ok(after),
            Start::UseRendered => self.memo(&key, |m| m.rendered.clone()),
            Start::Poll => match self.poll(channel, trigger, timing, out).await? {
                Ok(rendered) => Some(rendered),
                Err(after) => return Ok(after),
            },
        }
        .expect("the schedule uses a rendered commit only when there is one");
        let head_rejected = self.memo(&key, |m| {
            schedule::head_rejected(&m.schedule, &trigger.spec)
        });
        let failed = |e: Error| (e, Some(rendered.commit.clone()));

        // Plan against what the reflectors show, then act, as the channel's identity.
        let seen = self
            .observe(channel, &rendered, Mode::Deliver)
            .await
            .map_err(failed)?;
        let plan = pipeline::plan(&rendered, &seen);
        let changes = self
            .execute(channel, &rendered, &seen, &plan)
            .await
            .map_err(failed)?;
        let promoted_now = promoted_now(channel, &rendered, &plan, &changes);
        let test = self
            .test_result(channel, &rendered, &plan, &seen, promoted_now)
            .await;
        let requeue = self.memo(&key, |m| {
            schedule::succeeded(
                &mut m.schedule,
                Instant::now(),
                timing.interval,
                timing.drift,
                plan.requeue,
            )
        });
        // Watch events wake the channel for readiness and edits; a pass comes at
        // least at the next poll, deadline or drain, and every driftInterval.
        out.result = PassResult::Delivered(Box::new(Delivery {
            rendered,
            changes,
            promoted_now,
            test,
            head_rejected,
            now: seen.now,
            retry: seen.settings.retry.clone(),
            held: None,
            plan,
        }));
        Ok(requeue)
    }

    /// Polls git and, if the schedule says so, renders the commit found: the
    /// commit to deliver, or how long to wait.
    async fn poll(
        &self,
        channel: &Channel,
        trigger: &Trigger,
        timing: &Timing,
        out: &mut PassOutcome,
    ) -> Result<Result<Arc<Rendered>, Duration>, Failure> {
        let key = channel.key();
        let now = Instant::now();
        let not_before = self.memo(&key, |m| {
            schedule::poll_not_before(
                &m.schedule,
                trigger,
                now,
                timing.interval,
                self.poll_join_window,
            )
        });
        if let Some(at) = not_before.filter(|at| *at > now) {
            // Changed this very second: poll when it is over, with the channels
            // changed in the same second, without holding a pass slot meanwhile.
            return Ok(Err(at - now));
        }
        let fetched = self
            .fetch(channel, not_before)
            .await
            .map_err(|e| (e, None))?;
        let sha = fetched.commit.sha.clone();
        let step = self.memo(&key, |m| {
            schedule::fetched(
                &mut m.schedule,
                trigger,
                &sha,
                (fetched.polled_at, Instant::now()),
                timing.interval,
            )
        });
        let info = CommitInfo {
            reference: Some(fetched.reference.clone()),
            ..commit_info(&fetched.commit)
        };
        let result = match step.next {
            Next::Wait(after) => Ok(Err(after)),
            Next::UseRendered => Ok(Ok(self
                .memo(&key, |m| m.rendered.clone())
                .expect("the schedule uses a rendered commit only when there is one"))),
            Next::Render | Next::RenderIfChanged => {
                let previous = match step.next {
                    Next::RenderIfChanged => self.memo(&key, |m| m.rendered.clone()),
                    _ => None,
                };
                match self.make_deliverable(channel, previous, &fetched).await {
                    Ok((rendered, render)) => {
                        out.render = Some(render);
                        let rendered = Arc::new(rendered);
                        self.memo(&key, |m| {
                            schedule::rendered(&mut m.schedule, &sha, rendered.unresolved);
                            m.rendered = Some(rendered.clone());
                        });
                        Ok(Ok(rendered))
                    }
                    Err(e) => Err((e, Some(info))),
                }
            }
        };
        out.poll = Some(Poll {
            fetched,
            new_commit: step.new_commit,
        });
        result
    }

    /// The fetched commit as a release to deliver: `previous` carried over
    /// when the commit changed nothing it was rendered from, else rendered.
    async fn make_deliverable(
        &self,
        channel: &Channel,
        previous: Option<Arc<Rendered>>,
        fetched: &Fetched,
    ) -> Result<(Rendered, RenderStep), Error> {
        if let Some(previous) = previous {
            if let Some(carried) = self.carried_over(channel, &previous, fetched).await? {
                return Ok((carried, RenderStep::CarriedOver));
            }
        }
        let rendered = self.deliverable(channel, fetched).await?;
        Ok((rendered, RenderStep::Rendered))
    }

    /// The pre-promotion test's outcome, when this pass saw it: a failure
    /// (told once: the logs are read when the release fails now, or when the
    /// pass that failed it could not report it), or a pass at promotion.
    async fn test_result(
        &self,
        channel: &Channel,
        rendered: &Rendered,
        plan: &Plan,
        seen: &Observation,
        promoted_now: bool,
    ) -> Option<TestResult> {
        let hooks = &rendered.desired.hooks;
        let reported = channel.status.as_ref().is_some_and(|s| {
            s.releases.iter().any(|r| {
                r.id == rendered.desired.id
                    && r.commit.sha == rendered.commit.sha
                    && r.phase == ReleasePhase::Failed
                    && r.message.is_some()
            })
        });
        let (hook, outcome) = match &plan.phase {
            Phase::Failed {
                now,
                hook: Some(job),
                ..
            } if *now || !reported => (
                hooks.iter().find(|h| &h.id.name == job)?,
                crate::api::TestOutcome::Failed,
            ),
            _ if promoted_now => (hooks.first()?, crate::api::TestOutcome::Passed),
            _ => return None,
        };
        let namespace = hook.id.namespace.clone().unwrap_or_default();
        let logs = test_logs::last_log_lines(&seen.access.client, &namespace, &hook.id.name).await;
        Some(TestResult {
            job: hook.id.name.clone(),
            namespace: hook.id.namespace.clone(),
            outcome,
            logs: Some(logs),
        })
    }

    /// Runs `f` on the memo of channel `key`.
    pub(super) fn memo<T>(&self, key: &str, f: impl FnOnce(&mut Memo) -> T) -> T {
        let mut memos = self.memos.lock().unwrap_or_else(|p| p.into_inner());
        f(memos.entry(key.to_string()).or_default())
    }

    /// The backoff after a failure outside a pass (the finalizer's own).
    pub fn backoff_after_error(&self, key: &str) -> Duration {
        let failures = self.memo(key, |m| {
            m.schedule.failures += 1;
            m.schedule.failures
        });
        schedule::backoff(failures)
    }

    /// Forgets channel `key`'s schedule and rendered release: its next pass
    /// starts afresh (one fetch and one render).
    pub fn forget(&self, key: &str) {
        self.memos
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// Lets go of everything held for channel `key` (deleted, or moved to
    /// another shard): its memo, its local-repository watch and, given the
    /// channel, the identity it acted as with that identity's watches.
    pub fn let_go(&self, key: &str, channel: Option<&Channel>) {
        self.forget(key);
        self.forget_local_watch(key);
        if let Some(channel) = channel {
            self.tenancy().release(channel);
        }
    }
}

/// Whether the pass promoted the release (or applied one without workloads)
/// that was not serving before it.
pub fn promoted_now(channel: &Channel, rendered: &Rendered, plan: &Plan, done: &ChangeSet) -> bool {
    // A commit that renders to the release already serving (one that changed
    // nothing the channel reads) promotes nothing: no event.
    let was_active = channel
        .status
        .as_ref()
        .and_then(|s| s.active_release.as_deref())
        == Some(rendered.desired.id.as_str());
    let promoted = matches!(plan.phase, Phase::Active | Phase::Draining);
    done.switched() || (promoted && !was_active)
}
