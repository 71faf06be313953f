//! [`Staleness`]: the service [`StalenessLayer`](super::StalenessLayer) wraps around another.

use std::sync::Arc;
use std::task::{Context, Poll};

use redis_resilience_core::{Error, Request, Response};
use tower_service::Service;

use super::cache::{Shared, cache_key, cacheable};
use super::config::StalenessConfig;
use super::future::{Pending, ResponseFuture};
use super::layer::StalenessLayer;

/// Keeps the last good value of `inner`'s reads, and serves it when `inner`
/// cannot answer.
///
/// Built by [`StalenessLayer`]; every `Staleness` made by one layer (and
/// their clones) shares one store. See the [module docs](super) for the rules.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use redis_resilience_core::{Error, Request, Response, ServedBy};
/// use redis_resilience_layers::Staleness;
/// use tower::service_fn;
///
/// let redis = service_fn(|_request: Request| async {
///     Ok::<_, Error>(Response::new(redis::Value::Nil, ServedBy::Primary(None)))
/// });
/// let mut staleness = Staleness::new(redis, Duration::from_secs(5));
/// let _inner = staleness.get_mut();
/// let _redis = staleness.into_inner();
/// ```
#[derive(Debug, Clone)]
pub struct Staleness<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Staleness<S> {
    /// Wraps `inner` with a store of its own serving values no older than
    /// `budget` (use [`StalenessLayer`] to share one and to invalidate).
    pub fn new(inner: S, budget: std::time::Duration) -> Self {
        tower_layer::Layer::layer(&StalenessLayer::new(budget), inner)
    }

    pub(crate) fn from_shared(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &StalenessConfig {
        &self.shared.config
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, consuming `self`.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S> Service<Request> for Staleness<S>
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
        if !cacheable(&request) {
            return ResponseFuture::new(self.inner.call(request), None);
        }
        let pending = Pending {
            key: cache_key(&request),
            start: self.shared.start(),
            shared: Arc::clone(&self.shared),
            request: request.clone(),
        };
        ResponseFuture::new(self.inner.call(request), Some(pending))
    }
}
