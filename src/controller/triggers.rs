//! Requests for an immediate sync of one channel, from webhooks and local-path
//! watches: the channel is queued at once, and its next pass fetches.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::Stream;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::mpsc;

use crate::api::Channel;

/// A cloneable handle to ask for syncs.
#[derive(Clone)]
pub struct SyncRequests {
    /// Channels asked for, with when the first pending request came.
    pending: Arc<Mutex<HashMap<String, Instant>>>,
    wake: mpsc::UnboundedSender<ObjectRef<Channel>>,
}

impl SyncRequests {
    /// A handle, and the stream that wakes the controller.
    pub fn new() -> (
        Self,
        impl Stream<Item = ObjectRef<Channel>> + Send + 'static,
    ) {
        let (wake, rx) = mpsc::unbounded_channel();
        let requests = SyncRequests {
            pending: Arc::default(),
            wake,
        };
        let stream =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
        (requests, stream)
    }

    /// Asks for an immediate sync of channel `namespace/name`.
    pub fn request(&self, namespace: &str, name: &str) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(crate::api::channel_key(namespace, name))
            .or_insert_with(Instant::now);
        let _ = self.wake.send(ObjectRef::new(name).within(namespace));
    }

    /// When a sync of `key` (`namespace/name`) was requested, if it was;
    /// clears the request. Its pass needs a poll made after that time.
    pub fn take(&self, key: &str) -> Option<Instant> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key)
    }
}

/// Watch events of the objects of each channel, folded: the first event of a
/// channel schedules one wake-up `window` later, and the events until then
/// ride along. Unlike a debounce that restarts its timer on every event, a
/// steady stream of events (a controller updating hundreds of objects at its
/// rate limit) cannot postpone the channel's pass indefinitely.
pub fn coalesced(
    mut events: mpsc::UnboundedReceiver<ObjectRef<Channel>>,
    window: std::time::Duration,
) -> impl Stream<Item = ObjectRef<Channel>> + Send + 'static {
    let (out, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let pending: Arc<Mutex<HashSet<ObjectRef<Channel>>>> = Arc::default();
        while let Some(channel) = events.recv().await {
            let first = pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(channel.clone());
            if !first {
                continue;
            }
            let (pending, out) = (pending.clone(), out.clone());
            tokio::spawn(async move {
                tokio::time::sleep(window).await;
                pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&channel);
                let _ = out.send(channel);
            });
        }
    });
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn a_request_wakes_and_is_taken_once() {
        let (requests, wake) = SyncRequests::new();
        let mut wake = std::pin::pin!(wake);
        requests.request("shop", "web");
        assert_eq!(
            wake.next().await,
            Some(ObjectRef::new("web").within("shop"))
        );
        assert!(requests.take("shop/web").is_some());
        assert!(requests.take("shop/web").is_none());
        assert!(requests.take("shop/other").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_stream_of_events_wakes_a_channel_once_per_window() {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut woken = Box::pin(coalesced(rx, std::time::Duration::from_millis(300)));
        let web = ObjectRef::<Channel>::new("web").within("shop");
        let started = tokio::time::Instant::now();
        // An event every 50 ms for 1 s: a restarting debounce would never fire.
        let feeder = tokio::spawn(async move {
            for _ in 0..20 {
                tx.send(ObjectRef::new("web").within("shop")).unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        });
        let first = woken.next().await.unwrap();
        assert_eq!(first, web);
        assert_eq!(started.elapsed(), std::time::Duration::from_millis(300));
        let second = woken.next().await.unwrap();
        assert_eq!(second, web);
        assert!(started.elapsed() <= std::time::Duration::from_millis(650));
        feeder.await.unwrap();
    }
}
