//! How reflectors fill their caches: a streaming list (one watch whose first
//! events are the current objects, WatchList) where the API server serves it,
//! else a paginated list then a watch. A streaming list never holds a whole
//! list response in memory, in the client or in the API server.
//!
//! Kubernetes serves streaming lists by default from 1.34 (the gate was on in
//! 1.32, off again in 1.33, and an admin can turn it off), so it is asked,
//! not assumed. As client-go does, `KUBE_FEATURE_WatchListClient=false` (or
//! `true`) decides without asking.

use std::fmt::Debug;

use kube::api::{Api, WatchParams};
use kube::runtime::watcher;
use serde::de::DeserializeOwned;

/// The environment variable that decides without asking (client-go's name).
pub const WATCH_LIST_ENV: &str = "KUBE_FEATURE_WatchListClient";

/// What `KUBE_FEATURE_WatchListClient` says: `Some(true)`/`Some(false)`, or
/// `None` when unset or not a boolean (then the server is asked).
pub fn forced_by_env(value: Option<&str>) -> Option<bool> {
    match value?.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// Whether the API server streams the initial list of a watch on `api`
/// (with `labels`), asked with one watch request that is dropped at once:
/// `Some(false)` when the server refuses the parameters (400 or 422, a server
/// without WatchList), `None` when the question went unanswered (no
/// permission, no connection): list-then-watch this time, ask again later.
pub async fn serves_streaming_lists<K>(api: &Api<K>, labels: &str) -> Option<bool>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug,
{
    if let Some(forced) = forced_by_env(std::env::var(WATCH_LIST_ENV).ok().as_deref()) {
        return Some(forced);
    }
    let params = WatchParams::streaming_lists().labels(labels).timeout(1);
    match api.watch(&params, "0").await {
        Ok(_stream) => Some(true),
        Err(kube::Error::Api(status)) if status.code == 400 || status.code == 422 => {
            tracing::info!(reason = %status.message, "the API server does not stream lists; reflectors list then watch");
            Some(false)
        }
        Err(e) => {
            tracing::debug!(error = %e, "could not ask whether the API server streams lists");
            None
        }
    }
}

/// The watcher configuration for reflectors selecting `labels`.
pub fn watcher_config(labels: &str, streaming: bool) -> watcher::Config {
    let config = watcher::Config::default().labels(labels);
    if streaming {
        config.streaming_lists()
    } else {
        config
    }
}

/// Starts a reflector of `api` with `config` in the background, keeping each
/// object as `modify` leaves it (to drop fields nobody reads), and returns its
/// store. A failed watch is retried with backoff; `what` names the cache in
/// the warning, which says why it may be stale.
pub fn spawn_reflector<K>(
    api: Api<K>,
    config: watcher::Config,
    modify: impl FnMut(&mut K) + Send + 'static,
    what: &'static str,
) -> kube::runtime::reflector::Store<K>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    use futures::StreamExt;
    use kube::runtime::WatchStreamExt;
    let (reader, writer) = kube::runtime::reflector::store();
    let stream = watcher(api, config)
        .default_backoff()
        .modify(modify)
        .reflect(writer);
    tokio::spawn(async move {
        stream
            .for_each(|item| async move {
                if let Err(e) = item {
                    tracing::warn!(error = %e, cache = what, "watch failed; retrying");
                }
            })
            .await;
    });
    reader
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_decides_only_with_a_boolean() {
        for (value, want) in [
            (None, None),
            (Some("true"), Some(true)),
            (Some(" TRUE "), Some(true)),
            (Some("1"), Some(true)),
            (Some("false"), Some(false)),
            (Some("0"), Some(false)),
            (Some(""), None),
            (Some("auto"), None),
        ] {
            assert_eq!(forced_by_env(value), want, "{value:?}");
        }
    }

    #[test]
    fn streaming_configs_ask_for_initial_events() {
        use kube::runtime::watcher::InitialListStrategy;
        let on = watcher_config("a", true);
        assert!(matches!(
            on.initial_list_strategy,
            InitialListStrategy::StreamingList
        ));
        assert_eq!(on.label_selector.as_deref(), Some("a"));
        let off = watcher_config("a", false);
        assert!(matches!(
            off.initial_list_strategy,
            InitialListStrategy::ListWatch
        ));
    }
}
