//! [`Retry`]: the service [`RetryLayer`](super::RetryLayer) wraps around another.

use std::sync::Arc;
use std::task::{Context, Poll};

use redis_resilience_core::{Error, Request, Response};
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::{RetryLayer, Shared};
use super::policy::RetryPolicy;

/// Retries the failed requests of `inner` that [`RetryPolicy`] allows, after
/// a backoff, within the deadline and a shared budget.
///
/// Built by [`RetryLayer`]; every `Retry` made by one layer (and their clones)
/// shares its budget.
///
/// # Example
///
/// ```
/// use redis_resilience_core::{Error, Request, Response, ServedBy};
/// use redis_resilience_layers::{Retry, RetryPolicy};
/// use tower::service_fn;
///
/// let redis = service_fn(|_request: Request| async {
///     Ok::<_, Error>(Response::new(redis::Value::Nil, ServedBy::Primary(None)))
/// });
/// let mut retry = Retry::new(redis, RetryPolicy::default());
/// let _inner = retry.get_mut();
/// let _redis = retry.into_inner();
/// ```
#[derive(Debug, Clone)]
pub struct Retry<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Retry<S> {
    /// Wraps `inner`, with a budget of its own (use [`RetryLayer`] to share one).
    pub fn new(inner: S, policy: RetryPolicy) -> Self {
        tower_layer::Layer::layer(&RetryLayer::new(policy), inner)
    }

    pub(crate) fn from_shared(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    /// The policy.
    #[must_use]
    pub fn policy(&self) -> &RetryPolicy {
        &self.shared.policy
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

impl<S> Service<Request> for Retry<S>
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
        self.shared.budget.deposit();
        // The service driven to readiness is the one called; the future keeps
        // it to send retries, and `self` goes on with a fresh clone.
        let clone = self.inner.clone();
        let mut service = std::mem::replace(&mut self.inner, clone);
        let future = service.call(request.clone());
        ResponseFuture::new(future, service, request, Arc::clone(&self.shared))
    }
}
