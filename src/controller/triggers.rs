//! Requests for an immediate sync of one channel, from webhooks and local-path
//! watches: the channel is queued at once, and its next pass fetches.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use futures::Stream;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::mpsc;

use crate::api::Channel;

/// A cloneable handle to ask for syncs.
#[derive(Clone)]
pub struct SyncRequests {
    pending: Arc<Mutex<HashSet<String>>>,
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
            .insert(format!("{namespace}/{name}"));
        let _ = self.wake.send(ObjectRef::new(name).within(namespace));
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
        assert_eq!(
            wake.next().await,
            Some(ObjectRef::new("web").within("shop"))
        );
        assert!(requests.take("shop/web"));
        assert!(!requests.take("shop/web"));
        assert!(!requests.take("shop/other"));
    }
}
