//! What asked for a pass, read from the channel: its generation and request
//! annotations, and when they last changed, as a time of this process.

use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::schedule::Trigger;
use crate::api::{Channel, APPROVE_PRUNE_ANNOTATION, RECONCILE_ANNOTATION, RETRY_ANNOTATION};

/// The trigger of a pass of `channel`: a sync request made at `requested`
/// (webhook, local watch), if one is pending.
pub fn trigger(channel: &Channel, requested: Option<Instant>) -> Trigger {
    Trigger {
        spec: trigger_of(channel),
        requested,
        changed_at: changed_at(channel, Instant::now(), Timestamp::now()),
    }
}

/// What makes a pass fetch at once: a spec change or a reconcile or retry request.
pub fn trigger_of(channel: &Channel) -> String {
    let annotation = |name: &str| channel.annotations().get(name).cloned().unwrap_or_default();
    format!(
        "{}|{}|{}|{}",
        channel.metadata.generation.unwrap_or_default(),
        annotation(RECONCILE_ANNOTATION),
        annotation(RETRY_ANNOTATION),
        annotation(APPROVE_PRUNE_ANNOTATION)
    )
}

/// When the channel's spec or annotations last changed, as a time of this
/// process: the newest of its managed-fields times outside its status, else
/// its creation. Those times have whole seconds, so a second is added: a poll
/// that started then surely started after the change. That may be a moment
/// ahead (a change made this very second): the pass then waits for it, and
/// the channels changed in the same second (created together) share the one
/// poll made then. `None` when the channel says nothing usable, or the clocks
/// disagree by more than [`CLOCK_SKEW`] (then a poll made now serves).
fn changed_at(channel: &Channel, now: Instant, wall: Timestamp) -> Option<Instant> {
    let meta = &channel.metadata;
    let written = meta
        .managed_fields
        .iter()
        .flatten()
        .filter(|f| f.subresource.as_deref() != Some("status"))
        .filter_map(|f| f.time.as_ref().map(|t| t.0))
        .max()
        .or_else(|| meta.creation_timestamp.as_ref().map(|t| t.0))?;
    let changed = written
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(1))
        .ok()?;
    let ago = wall.duration_since(changed);
    if ago.is_negative() {
        let ahead = ago.unsigned_abs();
        return (ahead <= CLOCK_SKEW).then(|| now + ahead);
    }
    Some(now.checked_sub(ago.unsigned_abs()).unwrap_or(now))
}

/// How far ahead of this process's clock a change may seem before the
/// clocks are taken to disagree.
const CLOCK_SKEW: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};
    use k8s_openapi::jiff::Timestamp;

    use super::changed_at;
    use crate::api::{Channel, ChannelSpec};

    fn at(s: &str) -> Time {
        Time(s.parse::<Timestamp>().unwrap())
    }

    fn channel(created: &str, writes: &[(&str, Option<&str>)]) -> Channel {
        let spec: ChannelSpec = serde_json::from_value(
            serde_json::json!({"git": {"url": "https://example.com/r.git"}}),
        )
        .unwrap();
        let mut c = Channel::new("web", spec);
        c.metadata.creation_timestamp = Some(at(created));
        c.metadata.managed_fields = Some(
            writes
                .iter()
                .map(|(time, sub)| ManagedFieldsEntry {
                    time: Some(at(time)),
                    subresource: sub.map(str::to_string),
                    ..ManagedFieldsEntry::default()
                })
                .collect(),
        );
        c
    }

    #[test]
    fn a_change_is_dated_from_the_newest_write_outside_the_status_plus_a_second() {
        let now = Instant::now() + Duration::from_secs(3600);
        let wall: Timestamp = "2026-12-04T12:00:10Z".parse().unwrap();
        let rows = [
            (
                "the spec was last written 6 s ago: a poll after 5 s ago",
                channel(
                    "2026-12-04T11:00:00Z",
                    &[
                        ("2026-12-04T12:00:04Z", None),
                        ("2026-12-04T12:00:09Z", Some("status")),
                    ],
                ),
                Some(now - Duration::from_secs(5)),
            ),
            (
                "no managed fields: the creation",
                channel("2026-12-04T12:00:00Z", &[]),
                Some(now - Duration::from_secs(9)),
            ),
            (
                "written this very second: a moment ahead, when the second is over",
                channel("2026-12-04T11:00:00Z", &[("2026-12-04T12:00:10Z", None)]),
                Some(now + Duration::from_secs(1)),
            ),
            (
                "a clock far ahead of ours: a poll made now",
                channel("2026-12-04T11:00:00Z", &[("2026-12-04T12:00:30Z", None)]),
                None,
            ),
        ];
        for (name, ch, want) in rows {
            assert_eq!(changed_at(&ch, now, wall), want, "{name}");
        }
        let mut unknown = channel("2026-12-04T11:00:00Z", &[]);
        unknown.metadata.creation_timestamp = None;
        assert_eq!(changed_at(&unknown, now, wall), None);
    }
}
