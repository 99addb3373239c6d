//! Table tests of the scheduler: each row is what the scheduler remembers,
//! what asked for the pass and when, and what the pass must do.

use std::time::{Duration, Instant};

use super::*;

const INTERVAL: Duration = Duration::from_secs(60);
const SPEC: &str = "3|||";

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A schedule of a channel that polled `polled_ago` before `now` and
/// delivers `rendered` (with `head` at the ref).
fn memo(
    now: Instant,
    polled_ago: Option<u64>,
    rendered: Option<&str>,
    head: Option<&str>,
) -> Schedule {
    Schedule {
        trigger: SPEC.into(),
        polled_at: polled_ago.map(|s| now - secs(s)),
        head: head.map(str::to_string),
        rendered: rendered.map(|sha| RenderedCommit {
            sha: sha.into(),
            unresolved: false,
        }),
        ..Schedule::default()
    }
}

fn trigger(spec: &str, requested: bool) -> Trigger {
    Trigger {
        spec: spec.into(),
        requested: requested.then(Instant::now),
        changed_at: None,
    }
}

#[test]
fn a_pass_polls_when_due_and_otherwise_plans_or_waits() {
    let now = Instant::now() + secs(3600);
    let backing_off = |s: Schedule| Schedule {
        failures: 2,
        retry_at: Some(now + secs(5)),
        ..s
    };
    let rows: Vec<(&str, Schedule, Trigger, Start)> = vec![
        (
            "nothing remembered: poll",
            Schedule::default(),
            trigger(SPEC, false),
            Start::Poll,
        ),
        (
            "polled recently: plan with the rendered commit",
            memo(now, Some(10), Some("a"), Some("a")),
            trigger(SPEC, false),
            Start::UseRendered,
        ),
        (
            "the interval is over: poll",
            memo(now, Some(60), Some("a"), Some("a")),
            trigger(SPEC, false),
            Start::Poll,
        ),
        (
            "nothing rendered yet: poll",
            memo(now, Some(10), None, Some("a")),
            trigger(SPEC, false),
            Start::Poll,
        ),
        (
            "a sync request: poll",
            memo(now, Some(10), Some("a"), Some("a")),
            trigger(SPEC, true),
            Start::Poll,
        ),
        (
            "a spec change or annotation: poll",
            memo(now, Some(10), Some("a"), Some("a")),
            trigger("4|||", false),
            Start::Poll,
        ),
        (
            "backing off: wait out the backoff",
            backing_off(memo(now, Some(10), Some("a"), Some("a"))),
            trigger(SPEC, false),
            Start::Wait(secs(5)),
        ),
        (
            "backing off past the next poll: wait until the poll",
            backing_off(memo(now, Some(58), Some("a"), Some("a"))),
            trigger(SPEC, false),
            Start::Wait(secs(2)),
        ),
        (
            "backing off, but a request comes: poll",
            backing_off(memo(now, Some(10), Some("a"), Some("a"))),
            trigger(SPEC, true),
            Start::Poll,
        ),
        (
            "a backoff that is over: plan",
            Schedule {
                retry_at: Some(now - secs(1)),
                ..memo(now, Some(10), Some("a"), Some("a"))
            },
            trigger(SPEC, false),
            Start::UseRendered,
        ),
    ];
    for (name, schedule, trigger, want) in rows {
        assert_eq!(start(&schedule, &trigger, now, INTERVAL), want, "{name}");
    }
}

#[test]
fn a_fetched_commit_is_rendered_once_and_a_rejected_one_not_again() {
    let now = Instant::now() + secs(3600);
    let rejected = |s: Schedule, sha: &str, spec: &str| Schedule {
        rejected: Some((sha.into(), spec.into())),
        ..s
    };
    let fetched_ = |new_commit, next| Fetched { new_commit, next };
    let rows: Vec<(&str, Schedule, Trigger, &str, Fetched)> = vec![
        (
            "the first poll: render",
            Schedule::default(),
            trigger(SPEC, false),
            "a",
            fetched_(true, Next::Render),
        ),
        (
            "the ref did not move: the rendered commit",
            memo(now, Some(60), Some("a"), Some("a")),
            trigger(SPEC, false),
            "a",
            fetched_(false, Next::UseRendered),
        ),
        (
            "the ref moved: render the new commit if it changed the channel's inputs",
            memo(now, Some(60), Some("a"), Some("a")),
            trigger(SPEC, false),
            "b",
            fetched_(true, Next::RenderIfChanged),
        ),
        (
            "the ref moved and the spec changed: render",
            memo(now, Some(60), Some("a"), Some("a")),
            trigger("4|||", false),
            "b",
            fetched_(true, Next::Render),
        ),
        (
            "the ref moved with kinds unresolved: render",
            Schedule {
                rendered: Some(RenderedCommit {
                    sha: "a".into(),
                    unresolved: true,
                }),
                ..memo(now, Some(60), None, Some("a"))
            },
            trigger(SPEC, false),
            "b",
            fetched_(true, Next::Render),
        ),
        (
            "a spec change renders the same commit again",
            memo(now, Some(60), Some("a"), Some("a")),
            trigger("4|||", false),
            "a",
            fetched_(false, Next::Render),
        ),
        (
            "kinds not served at the last render: render again",
            Schedule {
                rendered: Some(RenderedCommit {
                    sha: "a".into(),
                    unresolved: true,
                }),
                ..memo(now, Some(60), None, Some("a"))
            },
            trigger(SPEC, false),
            "a",
            fetched_(false, Next::Render),
        ),
        (
            "the head was rejected under this trigger: keep the previous release",
            rejected(memo(now, Some(60), Some("a"), Some("b")), "b", SPEC),
            trigger(SPEC, false),
            "b",
            fetched_(false, Next::UseRendered),
        ),
        (
            "the head was rejected and nothing was ever rendered: wait for the interval",
            rejected(memo(now, Some(60), None, Some("b")), "b", SPEC),
            trigger(SPEC, false),
            "b",
            fetched_(false, Next::Wait(INTERVAL)),
        ),
        (
            "a rejected head is tried again under a new trigger (a retry annotation)",
            rejected(memo(now, Some(60), Some("a"), Some("b")), "b", SPEC),
            trigger("3|r1||", false),
            "b",
            fetched_(false, Next::Render),
        ),
        (
            "a first render that failed: the same head is not new",
            memo(now, Some(60), None, Some("a")),
            trigger(SPEC, false),
            "a",
            fetched_(false, Next::Render),
        ),
        (
            "backing off and the ref did not move: wait out the backoff",
            Schedule {
                failures: 3,
                retry_at: Some(now + secs(4)),
                ..memo(now, Some(60), Some("a"), Some("a"))
            },
            trigger(SPEC, false),
            "a",
            fetched_(false, Next::Wait(secs(4))),
        ),
        (
            "backing off but the ref moved: take the new commit at once",
            Schedule {
                failures: 3,
                retry_at: Some(now + secs(4)),
                ..memo(now, Some(60), Some("a"), Some("a"))
            },
            trigger(SPEC, false),
            "b",
            fetched_(true, Next::RenderIfChanged),
        ),
    ];
    for (name, mut schedule, trigger, sha, want) in rows {
        let got = fetched(&mut schedule, &trigger, sha, (now, now), INTERVAL);
        assert_eq!(got, want, "{name}");
        assert_eq!(
            schedule.polled_at,
            Some(now),
            "{name}: the poll is recorded"
        );
        assert_eq!(
            schedule.trigger, trigger.spec,
            "{name}: the trigger is recorded"
        );
        if !matches!(want.next, Next::Wait(_)) || schedule.rejected.is_some() {
            assert_eq!(
                schedule.head.as_deref(),
                Some(sha),
                "{name}: the head is recorded"
            );
        }
    }
}

#[test]
fn a_refusal_waits_for_a_new_commit_and_a_transient_failure_backs_off() {
    let now = Instant::now();
    let mut s = memo(now, Some(0), Some("a"), Some("b"));

    // Transient failures: 1 s, 2 s, 4 s... never past the interval.
    let waits: Vec<Duration> = (0..8)
        .map(|_| failed(&mut s, SPEC, false, Some("b"), now, INTERVAL))
        .collect();
    assert_eq!(
        waits,
        [1, 2, 4, 8, 16, 32, 60, 60].map(secs),
        "doubling, capped by the interval"
    );
    assert_eq!(s.failures, 8);
    assert_eq!(s.retry_at, Some(now + secs(128)));
    assert_eq!(s.rejected, None, "a transient failure rejects nothing");

    // A refusal: no backoff, the commit is remembered under the trigger.
    let wait = failed(&mut s, SPEC, true, Some("b"), now, INTERVAL);
    assert_eq!(wait, INTERVAL);
    assert_eq!((s.failures, s.retry_at), (0, None));
    assert_eq!(s.rejected, Some(("b".into(), SPEC.into())));
    assert!(head_rejected(&s, SPEC));
    assert!(
        !head_rejected(&s, "4|||"),
        "a new trigger is not rejected yet"
    );

    // A refusal before any commit (an invalid spec) rejects nothing.
    let mut fresh = Schedule::default();
    assert_eq!(
        failed(&mut fresh, SPEC, true, None, now, INTERVAL),
        INTERVAL
    );
    assert_eq!(fresh.rejected, None);
}

#[test]
fn after_a_pass_the_next_comes_at_the_poll_the_drift_or_the_plan_s_deadline() {
    let now = Instant::now() + secs(3600);
    let drift = secs(30);
    let rows: Vec<(&str, u64, Option<Duration>, Duration)> = vec![
        ("polled just now: the drift check", 0, None, secs(30)),
        ("the poll comes first", 50, None, secs(10)),
        ("the plan's deadline comes first", 0, Some(secs(3)), secs(3)),
        (
            "never sooner than the minimum",
            0,
            Some(Duration::ZERO),
            MIN_PASS_INTERVAL,
        ),
        ("a poll overdue: the minimum", 90, None, MIN_PASS_INTERVAL),
    ];
    for (name, polled_ago, requeue, want) in rows {
        let mut s = Schedule {
            failures: 4,
            retry_at: Some(now + secs(8)),
            ..memo(now, Some(polled_ago), Some("a"), Some("a"))
        };
        assert_eq!(
            succeeded(&mut s, now, INTERVAL, drift, requeue),
            want,
            "{name}"
        );
        assert_eq!(
            (s.failures, s.retry_at),
            (0, None),
            "{name}: backoff cleared"
        );
    }
}

#[test]
fn a_request_or_a_new_trigger_is_asked_for_and_a_poll_is_not() {
    let now = Instant::now();
    let s = memo(now, Some(10), Some("a"), Some("a"));
    let rows = [
        ("a poll at the interval", trigger(SPEC, false), false),
        ("a sync request", trigger(SPEC, true), true),
        ("a spec change or annotation", trigger("4|||", false), true),
    ];
    for (name, trigger, want) in rows {
        assert_eq!(asked(&s, &trigger), want, "{name}");
    }
}

#[test]
fn backoff_doubles_up_to_five_minutes() {
    let secs: Vec<u64> = (1..=11).map(|n| backoff(n).as_secs()).collect();
    assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
}

#[test]
fn a_render_is_remembered_with_its_unresolved_kinds() {
    let mut s = Schedule::default();
    rendered(&mut s, "a", true);
    assert_eq!(
        s.rendered,
        Some(RenderedCommit {
            sha: "a".into(),
            unresolved: true
        })
    );
}

#[test]
fn a_pass_takes_a_shared_poll_as_fresh_as_what_asked_for_it() {
    let now = Instant::now() + secs(3600);
    let asked_at = now - secs(3);
    let polled = memo(now, Some(10), Some("a"), Some("a"));
    let rows: Vec<(&str, Schedule, Trigger, Option<Instant>)> = vec![
        (
            "due by the interval: any poll made within it",
            polled.clone(),
            trigger(SPEC, false),
            Some(now - INTERVAL),
        ),
        (
            "a sync request: a poll made after it",
            polled.clone(),
            Trigger {
                spec: SPEC.into(),
                requested: Some(asked_at),
                changed_at: None,
            },
            Some(asked_at),
        ),
        (
            "a new channel: a poll made after its creation",
            Schedule::default(),
            Trigger {
                changed_at: Some(now - secs(4)),
                ..trigger(SPEC, false)
            },
            Some(now - secs(4)),
        ),
        (
            "a changed annotation: a poll made after the change",
            polled.clone(),
            Trigger {
                changed_at: Some(now - secs(1)),
                ..trigger("4|||", false)
            },
            Some(now - secs(1)),
        ),
        (
            "a change this very second: a poll once the second is over",
            memo(now, Some(10), Some("a"), Some("a")),
            Trigger {
                changed_at: Some(now + secs(1)),
                ..trigger("4|||", false)
            },
            Some(now + secs(1)),
        ),
        (
            "a change of unknown time: a poll made now",
            polled,
            trigger("4|||", false),
            Some(now),
        ),
    ];
    for (name, s, trigger, want) in rows {
        let got = poll_not_before(&s, &trigger, now, INTERVAL, Duration::ZERO);
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn a_shared_poll_dates_the_channel_s_next_poll() {
    let now = Instant::now() + secs(3600);
    let mut s = memo(now, Some(70), Some("a"), Some("a"));
    // Another channel polled 50 s ago: this one is next due 10 s from now, with it.
    let got = fetched(
        &mut s,
        &trigger(SPEC, false),
        "a",
        (now - secs(50), now),
        INTERVAL,
    );
    assert_eq!(got.next, Next::UseRendered);
    assert_eq!(s.polled_at, Some(now - secs(50)));
    assert_eq!(
        start(&s, &trigger(SPEC, false), now + secs(9), INTERVAL),
        Start::UseRendered
    );
    assert_eq!(
        start(&s, &trigger(SPEC, false), now + secs(10), INTERVAL),
        Start::Poll
    );
}

#[test]
fn a_new_channel_joins_a_poll_of_the_join_window_before_it() {
    let now = Instant::now() + secs(3600);
    const WINDOW: Duration = Duration::from_secs(5);
    let polled = memo(now, Some(10), Some("a"), Some("a"));
    let created = |ago: u64| Trigger {
        changed_at: Some(now - secs(ago)),
        ..trigger(SPEC, false)
    };
    let rows: Vec<(&str, Schedule, Trigger, Option<Instant>)> = vec![
        (
            "a new channel: a poll made up to the window before its creation",
            Schedule::default(),
            created(2),
            Some(now - secs(7)),
        ),
        (
            "a new channel created this very second: no waiting for the second to end",
            Schedule::default(),
            Trigger {
                changed_at: Some(now + secs(1)),
                ..trigger(SPEC, false)
            },
            Some(now - secs(4)),
        ),
        (
            "a new channel created at an unknown time: a poll of the window before now",
            Schedule::default(),
            trigger(SPEC, false),
            Some(now - WINDOW),
        ),
        (
            "a new channel with a sync request: a poll made after the request",
            Schedule::default(),
            Trigger {
                requested: Some(now - secs(1)),
                ..created(2)
            },
            Some(now - secs(1)),
        ),
        (
            "a channel that polled before, changed: a poll made after the change",
            polled.clone(),
            Trigger {
                changed_at: Some(now - secs(1)),
                ..trigger("4|||", false)
            },
            Some(now - secs(1)),
        ),
        (
            "a sync request: a poll made after it",
            polled.clone(),
            Trigger {
                requested: Some(now - secs(3)),
                ..trigger(SPEC, false)
            },
            Some(now - secs(3)),
        ),
        (
            "due by the interval: the window does not widen it",
            polled,
            trigger(SPEC, false),
            Some(now - INTERVAL),
        ),
    ];
    for (name, s, trigger, want) in rows {
        assert_eq!(
            poll_not_before(&s, &trigger, now, INTERVAL, WINDOW),
            want,
            "{name}"
        );
    }
    // The window is measured from the creation: the poll it joins is fresh
    // enough, one made just before the window is not.
    let not_before = poll_not_before(&Schedule::default(), &created(2), now, INTERVAL, WINDOW);
    assert!(crate::source::polls::fresh_enough(
        now - secs(7),
        not_before
    ));
    assert!(!crate::source::polls::fresh_enough(
        now - secs(8),
        not_before
    ));
}
