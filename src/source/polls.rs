//! One poll of a remote ref for every channel that follows it.
//!
//! Channels that follow the same URL, ref and credentials (a monorepo's apps)
//! share the outcome of one poll, across namespaces: credentials are compared
//! by a digest of their content (see [`super::cache_key`]), so ten Secrets in
//! ten namespaces holding the same user and password make one poll, while a
//! tenant whose credentials differ in any field polls on its own and is never
//! handed another's outcome. The first channel whose poll is due asks the
//! remote, channels that come while that poll runs wait for it, and channels
//! that come later take its outcome as long as it is fresh enough for them.
//! So a thousand channels on one repository make one ref advertisement per
//! interval, not a thousand. Failures are not shared: each channel retries on
//! its own schedule.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::cache::{FetchOutcome, FetchRequest};
use super::cache_key::CredentialsIdentity;

/// What identifies one poll: the remote, the ref asked for, the digest of the
/// credentials' content (never the credentials), and whether the cache may be
/// shallow.
type PollKey = (String, String, CredentialsIdentity, bool);

/// The poll that `request` may share: equal keys fetch the same thing with
/// the same rights, into the same cache entry.
fn poll_key(request: &FetchRequest) -> PollKey {
    (
        request.url.clone(),
        request.reference.describe(),
        request.credentials.poll_identity().clone(),
        request.shallow,
    )
}

/// The last successful poll of one key, and when it started.
type LastPoll = Option<(Instant, FetchOutcome)>;

/// The outcomes of recent polls, one slot per key; a slot's lock is held while
/// its poll runs, so concurrent channels wait for that poll instead of
/// starting their own.
#[derive(Clone, Default)]
pub struct SharedPolls {
    slots: Arc<Mutex<HashMap<PollKey, Arc<tokio::sync::Mutex<LastPoll>>>>>,
}

/// The outcome of a poll, and whether this caller made it.
#[derive(Debug, Clone)]
pub struct Polled {
    /// What the remote said.
    pub outcome: FetchOutcome,
    /// When the poll started: the channel's next poll is due an interval after it.
    pub started: Instant,
    /// Whether the outcome was another channel's poll (no network used here).
    pub shared: bool,
}

/// Whether a poll that started at `started` is fresh enough for a caller that
/// needs a poll started at or after `not_before` (`None`: any poll will do).
pub fn fresh_enough(started: Instant, not_before: Option<Instant>) -> bool {
    not_before.is_none_or(|t| started >= t)
}

impl SharedPolls {
    /// The outcome of a poll of `request` that started at or after
    /// `not_before`: a recent one if there is one, else one made now with `poll`.
    pub async fn poll<F, Fut, E>(
        &self,
        request: &FetchRequest,
        not_before: Option<Instant>,
        poll: F,
    ) -> Result<Polled, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<FetchOutcome, E>>,
    {
        let slot = self.slot(request);
        let mut last = slot.lock().await;
        if let Some((started, outcome)) = last.as_ref() {
            if fresh_enough(*started, not_before) {
                return Ok(Polled {
                    outcome: outcome.clone(),
                    started: *started,
                    shared: true,
                });
            }
        }
        let started = Instant::now();
        let outcome = poll().await?;
        *last = Some((started, outcome.clone()));
        Ok(Polled {
            outcome,
            started,
            shared: false,
        })
    }

    fn slot(&self, request: &FetchRequest) -> Arc<tokio::sync::Mutex<LastPoll>> {
        let key = poll_key(request);
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(key).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::source::{CommitMeta, RefRequest, TransferStats};

    fn outcome(sha: &str) -> FetchOutcome {
        FetchOutcome {
            commit: CommitMeta {
                sha: sha.into(),
                author: "A <a@example.com>".into(),
                subject: "s".into(),
                time: "2026-01-01T00:00:00Z".into(),
            },
            reference: "refs/heads/main".into(),
            previous: None,
            rewritten_from: None,
            stats: TransferStats::default(),
        }
    }

    fn with_secret(ns: &str, pairs: &[(&str, &str)]) -> FetchRequest {
        let data = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
        FetchRequest {
            credentials: crate::source::GitCredentials::from_secret(ns, "git", &data).unwrap(),
            ..FetchRequest::new(
                "https://example.com/mono.git",
                RefRequest::Branch("main".into()),
            )
        }
    }

    const BOT: &[(&str, &str)] = &[("username", "bot"), ("password", "s3cret")];

    #[test]
    fn polls_are_keyed_by_url_ref_and_credential_content() {
        let base = with_secret("team-a", BOT);
        let rows: Vec<(&str, FetchRequest, bool)> = vec![
            ("the same Secret", with_secret("team-a", BOT), true),
            (
                "an equal Secret in another namespace",
                with_secret("team-b", BOT),
                true,
            ),
            (
                "another password",
                with_secret("team-b", &[("username", "bot"), ("password", "other")]),
                false,
            ),
            (
                "anonymous",
                FetchRequest::new(
                    "https://example.com/mono.git",
                    RefRequest::Branch("main".into()),
                ),
                false,
            ),
            (
                "another ref",
                FetchRequest {
                    reference: RefRequest::Branch("dev".into()),
                    ..with_secret("team-a", BOT)
                },
                false,
            ),
            (
                "another URL",
                FetchRequest {
                    url: "https://example.com/other.git".into(),
                    ..with_secret("team-a", BOT)
                },
                false,
            ),
            (
                "full history",
                FetchRequest {
                    shallow: false,
                    ..with_secret("team-a", BOT)
                },
                false,
            ),
        ];
        for (what, request, same) in rows {
            assert_eq!(poll_key(&base) == poll_key(&request), same, "{what}");
        }
        // The key holds a digest, never the secret.
        assert!(!format!("{:?}", poll_key(&base)).contains("s3cret"));
    }

    #[tokio::test]
    async fn equal_credentials_share_a_poll_across_namespaces_other_credentials_do_not() {
        let polls = SharedPolls::default();
        let calls = AtomicUsize::new(0);
        let remote = |sha: &'static str| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, ()>(outcome(sha)) }
        };
        let a = polls
            .poll(&with_secret("team-a", BOT), None, || remote("a"))
            .await
            .unwrap();
        assert!(!a.shared);
        let b = polls
            .poll(&with_secret("team-b", BOT), None, || remote("b"))
            .await
            .unwrap();
        assert!(b.shared, "the same credentials in another namespace");
        assert_eq!(b.outcome.commit.sha, "a");
        let tenant = with_secret("tenant", &[("username", "bot"), ("password", "guess")]);
        let c = polls.poll(&tenant, None, || remote("c")).await.unwrap();
        assert!(!c.shared, "other credentials get nothing from the poll");
        assert_eq!(c.outcome.commit.sha, "c");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn freshness_is_measured_from_the_start_of_the_poll() {
        let t = Instant::now();
        let later = t + Duration::from_secs(5);
        assert!(fresh_enough(t, None));
        assert!(fresh_enough(t, Some(t)));
        assert!(fresh_enough(later, Some(t)));
        assert!(!fresh_enough(t, Some(later)));
    }

    #[tokio::test]
    async fn channels_of_one_repository_share_a_poll_until_they_need_a_newer_one() {
        let polls = SharedPolls::default();
        let calls = AtomicUsize::new(0);
        let request = FetchRequest::new(
            "https://example.com/mono.git",
            RefRequest::Branch("main".into()),
        );
        let remote = |sha: &'static str| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok::<_, ()>(outcome(sha)) }
        };
        let first = polls.poll(&request, None, || remote("a")).await.unwrap();
        assert!(!first.shared);
        // Any poll since `first` started will do: shared, no call.
        let second = polls
            .poll(&request, Some(first.started), || remote("b"))
            .await
            .unwrap();
        assert!(second.shared);
        assert_eq!(second.outcome.commit.sha, "a");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // A request made after it needs a newer poll.
        let asked = Instant::now() + Duration::from_millis(1);
        tokio::time::sleep(Duration::from_millis(2)).await;
        let third = polls
            .poll(&request, Some(asked), || remote("b"))
            .await
            .unwrap();
        assert!(!third.shared);
        assert_eq!(third.outcome.commit.sha, "b");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Another ref of the same repository is a poll of its own.
        let other = FetchRequest::new(
            "https://example.com/mono.git",
            RefRequest::Branch("dev".into()),
        );
        let dev = polls.poll(&other, None, || remote("c")).await.unwrap();
        assert!(!dev.shared);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_failed_poll_is_not_shared() {
        let polls = SharedPolls::default();
        let request = FetchRequest::new(
            "https://example.com/r.git",
            RefRequest::Branch("main".into()),
        );
        let failed = polls
            .poll(&request, None, || async {
                Err::<FetchOutcome, _>("unreachable")
            })
            .await;
        assert_eq!(failed.unwrap_err(), "unreachable");
        let next = polls
            .poll(&request, None, || async { Ok::<_, &str>(outcome("a")) })
            .await
            .unwrap();
        assert!(!next.shared, "the failure left nothing to share");
    }

    #[tokio::test]
    async fn concurrent_channels_wait_for_the_poll_in_flight() {
        let polls = SharedPolls::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let request = FetchRequest::new(
            "https://example.com/mono.git",
            RefRequest::Branch("main".into()),
        );
        let asked = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (polls, calls, request) = (polls.clone(), calls.clone(), request.clone());
            tasks.push(tokio::spawn(async move {
                polls
                    .poll(&request, Some(asked), || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok::<_, ()>(outcome("a"))
                    })
                    .await
                    .unwrap()
            }));
        }
        let mut shared = 0;
        for task in tasks {
            shared += usize::from(task.await.unwrap().shared);
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "one poll for twenty channels"
        );
        assert_eq!(shared, 19);
    }
}
