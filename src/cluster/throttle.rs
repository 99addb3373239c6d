//! A client-side rate limit on the operator's API requests
//! (`--kube-api-qps`, `--kube-api-burst`), shared by every client it makes:
//! its own and each impersonated ServiceAccount's. A token bucket: up to
//! `burst` requests at once, then `qps` a second. Each request reserves its
//! slot when it is made and waits for it, so waiting requests go in the order
//! they came, and one channel's thousand writes cannot starve another
//! channel's few beyond the writes already queued.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use kube::client::ClientBuilder;
use kube::Client;
use tower::buffer::BufferLayer;
use tower::{Layer, Service};

/// The default of `--kube-api-qps`.
pub const DEFAULT_QPS: f32 = 500.0;
/// The default of `--kube-api-burst`.
pub const DEFAULT_BURST: u32 = 1000;

/// Requests queued in front of the limit before a caller waits to enqueue.
const QUEUE: usize = 4096;

/// The state of a token bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// Tokens left; below zero, requests are waiting for that many.
    pub tokens: f64,
    /// When `tokens` was last brought up to date.
    pub at: Instant,
}

/// Reserves one request in `bucket` at `now`, with `qps` and `burst`: how long
/// the request waits for its slot.
pub fn reserve(bucket: &mut Bucket, now: Instant, qps: f64, burst: f64) -> Duration {
    let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * qps;
    bucket.tokens = (bucket.tokens + refill).min(burst);
    bucket.at = now.max(bucket.at);
    bucket.tokens -= 1.0;
    if bucket.tokens >= 0.0 {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(-bucket.tokens / qps)
    }
}

/// A rate limit shared by clients; [`Throttle::unlimited`] for none.
#[derive(Clone)]
pub struct Throttle {
    limit: Option<Arc<Limit>>,
}

struct Limit {
    qps: f64,
    burst: f64,
    bucket: Mutex<Bucket>,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.limit {
            Some(l) => write!(f, "Throttle({} qps, burst {})", l.qps, l.burst),
            None => f.write_str("Throttle(unlimited)"),
        }
    }
}

impl Throttle {
    /// At most `qps` requests a second after a burst of `burst`; `qps <= 0`: no limit.
    pub fn new(qps: f32, burst: u32) -> Self {
        if qps <= 0.0 {
            return Self::unlimited();
        }
        let burst = f64::from(burst.max(1));
        Throttle {
            limit: Some(Arc::new(Limit {
                qps: f64::from(qps),
                burst,
                bucket: Mutex::new(Bucket {
                    tokens: burst,
                    at: Instant::now(),
                }),
            })),
        }
    }

    /// No limit (the CLI: one user's requests).
    pub fn unlimited() -> Self {
        Throttle { limit: None }
    }

    /// A client made from `config` whose requests go through this limit.
    pub fn client(&self, config: kube::Config) -> Result<Client, kube::Error> {
        let Some(limit) = &self.limit else {
            return Client::try_from(config);
        };
        let builder = ClientBuilder::try_from(config)?;
        Ok(builder
            .with_layer(&BufferLayer::new(QUEUE))
            .with_layer(&ThrottleLayer(limit.clone()))
            .build())
    }
}

impl Limit {
    fn delay(&self) -> Duration {
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        reserve(&mut bucket, Instant::now(), self.qps, self.burst)
    }
}

struct ThrottleLayer(Arc<Limit>);

impl<S> Layer<S> for ThrottleLayer {
    type Service = Throttled<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Throttled {
            inner,
            limit: self.0.clone(),
        }
    }
}

/// A service whose requests wait for their slot in the limit.
#[derive(Clone)]
struct Throttled<S> {
    inner: S,
    limit: Arc<Limit>,
}

impl<S, R> Service<R> for Throttled<S>
where
    S: Service<R> + Clone + Send + 'static,
    S::Future: Send + 'static,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        // The ready clone is the one to call (tower's rule for Clone services).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let delay = self.limit.delay();
        Box::pin(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            inner.call(request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_goes_at_once_and_the_rest_at_the_rate() {
        let t0 = Instant::now();
        let mut bucket = Bucket {
            tokens: 3.0,
            at: t0,
        };
        let waits: Vec<Duration> = (0..6)
            .map(|_| reserve(&mut bucket, t0, 10.0, 3.0))
            .collect();
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(
            ms,
            [0, 0, 0, 100, 200, 300],
            "the burst, then one per 100 ms in order"
        );
    }

    #[test]
    fn idle_time_refills_up_to_the_burst_only() {
        let t0 = Instant::now();
        let mut bucket = Bucket {
            tokens: 0.0,
            at: t0,
        };
        let later = t0 + Duration::from_secs(60);
        let waits: Vec<u128> = (0..4)
            .map(|_| reserve(&mut bucket, later, 10.0, 2.0).as_millis())
            .collect();
        assert_eq!(
            waits,
            [0, 0, 100, 200],
            "a minute idle gives back 2 tokens, not 600"
        );
    }

    #[test]
    fn waiting_requests_keep_their_slots_as_time_passes() {
        let t0 = Instant::now();
        let mut bucket = Bucket {
            tokens: 0.0,
            at: t0,
        };
        assert_eq!(
            reserve(&mut bucket, t0, 4.0, 1.0),
            Duration::from_millis(250)
        );
        assert_eq!(
            reserve(&mut bucket, t0, 4.0, 1.0),
            Duration::from_millis(500)
        );
        // 250 ms on, the first has gone: the next waits behind the second only.
        let t1 = t0 + Duration::from_millis(250);
        assert_eq!(
            reserve(&mut bucket, t1, 4.0, 1.0),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn no_rate_is_no_limit() {
        assert!(Throttle::new(0.0, 10).limit.is_none());
        assert!(Throttle::new(5.0, 0).limit.is_some());
    }
}
