//! [`ReplicaFallback`]: the service [`ReplicaFallbackLayer`](super::ReplicaFallbackLayer) wraps around another.

use std::task::{Context, Poll};

use redis_resilience_core::{Error, ReadFrom, Request, Response};
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::eligible;

/// Re-sends a failed read once to a healthy replica.
///
/// # Example
///
/// ```
/// use redis_resilience_core::{Error, ReadFrom, Request, Response, ServedBy};
/// use redis_resilience_layers::ReplicaFallback;
/// use tower::service_fn;
///
/// let redis = service_fn(|_request: Request| async {
///     Ok::<_, Error>(Response::new(redis::Value::Nil, ServedBy::Primary(None)))
/// });
/// let fallback = ReplicaFallback::new(redis, ReadFrom::LowestLag);
/// let _redis = fallback.into_inner();
/// ```
#[derive(Debug, Clone)]
pub struct ReplicaFallback<S> {
    inner: S,
    read_from: ReadFrom,
}

impl<S> ReplicaFallback<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, read_from: ReadFrom) -> Self {
        Self { inner, read_from }
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

impl<S> Service<Request> for ReplicaFallback<S>
where
    S: Service<Request, Response = Response, Error = Error> + Clone,
{
    type Response = Response;
    type Error = Error;
    type Future = ResponseFuture<S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if !eligible(&request) {
            return ResponseFuture::passthrough(self.inner.call(request));
        }
        // The clone that was driven to ready serves this call; the fallback
        // goes through a fresh clone, driven to ready when needed.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::primary(ready, request, self.read_from)
    }
}
