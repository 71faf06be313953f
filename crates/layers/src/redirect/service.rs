//! [`Redirect`]: the service [`RedirectLayer`](super::RedirectLayer) wraps around another.

use std::sync::Arc;
use std::task::{Context, Poll};

use redis_resilience_core::{Error, Request, Response};
use tower_service::Service;

use super::future::ResponseFuture;
use super::policy::RedirectPolicy;

/// Follows the `MOVED` and `ASK` redirects that `inner` answers with, as
/// [`RedirectPolicy`] allows.
///
/// # Example
///
/// ```
/// use redis_resilience_core::{Error, Request, Response, ServedBy};
/// use redis_resilience_layers::{Redirect, RedirectPolicy};
/// use tower::service_fn;
///
/// let redis = service_fn(|_request: Request| async {
///     Ok::<_, Error>(Response::new(redis::Value::Nil, ServedBy::Primary(None)))
/// });
/// let mut redirect = Redirect::new(redis, RedirectPolicy::default());
/// assert_eq!(redirect.policy().max_hops(), 5);
/// let _inner = redirect.get_mut();
/// let _redis = redirect.into_inner();
/// ```
#[derive(Debug, Clone)]
pub struct Redirect<S> {
    inner: S,
    policy: Arc<RedirectPolicy>,
}

impl<S> Redirect<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, policy: RedirectPolicy) -> Self {
        Self::from_policy(inner, Arc::new(policy))
    }

    pub(crate) fn from_policy(inner: S, policy: Arc<RedirectPolicy>) -> Self {
        Self { inner, policy }
    }

    /// The policy.
    #[must_use]
    pub fn policy(&self) -> &RedirectPolicy {
        &self.policy
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

impl<S> Service<Request> for Redirect<S>
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
        // The service driven to readiness is the one called; the future keeps
        // it to follow redirects, and `self` goes on with a fresh clone.
        let clone = self.inner.clone();
        let mut service = std::mem::replace(&mut self.inner, clone);
        let future = service.call(request.clone());
        ResponseFuture::new(future, service, request, Arc::clone(&self.policy))
    }
}
