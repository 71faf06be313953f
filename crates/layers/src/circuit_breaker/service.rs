//! [`CircuitBreaker`]: the service [`CircuitBreakerLayer`](super::CircuitBreakerLayer) wraps around another.

use std::sync::Arc;
use std::task::{Context, Poll};

use redis_resilience_core::{Error, Request, Response};
use tower_service::Service;

use super::config::CircuitBreakerConfig;
use super::future::ResponseFuture;
use super::layer::{CircuitBreakerLayer, Shared};

/// Fails calls at once with `CircuitOpen { retry_after }` while the breaker
/// for their node is open, and feeds every outcome to it.
///
/// `poll_ready` follows the inner service: the breaker decides in `call`, per
/// request, since the node depends on the request.
///
/// # Example
///
/// ```
/// use redis_resilience_core::{Error, Request, Response, ServedBy};
/// use redis_resilience_layers::{CircuitBreaker, CircuitBreakerConfig};
/// use tower::service_fn;
///
/// let redis = service_fn(|_request: Request| async {
///     Ok::<_, Error>(Response::new(redis::Value::Okay, ServedBy::Primary(None)))
/// });
/// let breaker = CircuitBreaker::new(redis, CircuitBreakerConfig::default());
/// let _redis = breaker.into_inner();
/// ```
#[derive(Debug, Clone)]
pub struct CircuitBreaker<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> CircuitBreaker<S> {
    /// Wraps `inner` with one breaker of its own (use [`CircuitBreakerLayer`] to share or scope per node).
    pub fn new(inner: S, config: CircuitBreakerConfig) -> Self {
        tower_layer::Layer::layer(&CircuitBreakerLayer::new(config), inner)
    }

    pub(crate) fn from_shared(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> Service<Request> for CircuitBreaker<S>
where
    S: Service<Request, Response = Response, Error = Error>,
{
    type Response = Response;
    type Error = Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let Some(breaker) = self.shared.breaker_for(&request) else {
            return ResponseFuture::unguarded(self.inner.call(request));
        };
        let now = tokio::time::Instant::now();
        match breaker.admit(now) {
            Ok(admission) => {
                ResponseFuture::guarded(self.inner.call(request), breaker, admission, now)
            }
            Err(retry_after) => ResponseFuture::rejected(Error::circuit_open(retry_after)),
        }
    }
}
