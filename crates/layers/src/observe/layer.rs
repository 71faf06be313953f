//! [`ObserveLayer`] and [`Observe`].

use std::task::{Context, Poll};

use redis_resilience_core::{Error, Request, Response, ServedBy};
use tower_layer::Layer;
use tower_service::Service;

use super::future::ResponseFuture;

/// Wraps services in [`Observe`].
///
/// # Example
///
/// ```
/// use redis_resilience_layers::ObserveLayer;
///
/// // Raw keys in spans only when you decide they are not personal data.
/// let layer = ObserveLayer::new().record_keys(true);
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ObserveLayer {
    record_keys: bool,
}

impl ObserveLayer {
    /// Spans and metrics, without raw keys.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the first key of each request in its span (`db.redis.key`).
    #[must_use]
    pub fn record_keys(mut self, record: bool) -> Self {
        self.record_keys = record;
        self
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            record_keys: self.record_keys,
        }
    }
}

/// Traces and measures every request of `inner`.
#[derive(Debug, Clone)]
pub struct Observe<S> {
    inner: S,
    record_keys: bool,
}

impl<S> Observe<S> {
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

/// How a request was answered, as the routing metrics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoutingStatus {
    /// The primary answered.
    PrimaryHit,
    /// A replica, or a kept (stale) value, answered instead of the primary.
    PrimaryFailover,
    /// The secondary store answered.
    SecondaryFallback,
    /// Nobody answered.
    Error,
}

impl RoutingStatus {
    /// From an outcome.
    #[must_use]
    pub fn of(result: &Result<Response, Error>) -> Self {
        match result {
            Ok(response) => match response.served_by {
                ServedBy::Primary(_) => Self::PrimaryHit,
                ServedBy::Secondary => Self::SecondaryFallback,
                _ => Self::PrimaryFailover,
            },
            Err(_) => Self::Error,
        }
    }

    /// The `status` label.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::PrimaryHit => "primary_hit",
            Self::PrimaryFailover => "primary_failover",
            Self::SecondaryFallback => "secondary_fallback",
            Self::Error => "error",
        }
    }
}

impl<S> Service<Request> for Observe<S>
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
        let span = tracing::info_span!(
            "redis",
            db.system = "redis",
            db.operation = request.info().name(),
            db.redis.key = tracing::field::Empty,
            redis.node_role = tracing::field::Empty,
            fallback.path = tracing::field::Empty,
        );
        if self.record_keys
            && !span.is_disabled()
            && let Some(key) = request.keys().next()
        {
            span.record("db.redis.key", String::from_utf8_lossy(key).as_ref());
        }
        let future = span.in_scope(|| self.inner.call(request));
        ResponseFuture::new(future, span)
    }
}
