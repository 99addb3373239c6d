//! Requests for an immediate sync of one channel, from webhooks and local-path
//! watches. A request wakes the controller (all channels are re-queued, and
//! every channel but the requested one returns at once from its memo check).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use futures::Stream;
use tokio::sync::mpsc;

/// A cloneable handle to ask for syncs.
#[derive(Clone)]
pub struct SyncRequests {
    pending: Arc<Mutex<HashSet<String>>>,
    wake: mpsc::UnboundedSender<()>,
}

impl SyncRequests {
    /// A handle, and the stream that wakes the controller.
    pub fn new() -> (Self, impl Stream<Item = ()> + Send + 'static) {
        let (wake, rx) = mpsc::unbounded_channel();
        let requests = SyncRequests {
            pending: Arc::default(),
            wake,
        };
        let stream =
            futures::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|()| ((), rx)) },
            );
        (requests, stream)
    }

    /// Asks for an immediate sync of channel `namespace/name`.
    pub fn request(&self, namespace: &str, name: &str) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(format!("{namespace}/{name}"));
        let _ = self.wake.send(());
    }

    /// Whether a sync of `key` (`namespace/name`) was requested; clears the request.
    pub fn take(&self, key: &str) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key)
    }
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
        assert_eq!(wake.next().await, Some(()));
        assert!(requests.take("shop/web"));
        assert!(!requests.take("shop/web"));
        assert!(!requests.take("shop/other"));
    }
}
