//! [`ResponseFuture`] of [`Observe`](super::Observe).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use redis_resilience_core::{Error, Response, ServedBy};
use tokio::time::Instant;

use super::layer::RoutingStatus;

pin_project! {
    /// The inner call inside its span; records the outcome when it ends.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        span: tracing::Span,
        started: Instant,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, span: tracing::Span) -> Self {
        Self {
            inner,
            span,
            started: Instant::now(),
        }
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response, Error>>,
{
    type Output = Result<Response, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _entered = this.span.enter();
            ready!(this.inner.poll(cx))
        };
        let status = RoutingStatus::of(&result);
        let role = match &result {
            Ok(response) => match response.served_by {
                ServedBy::Primary(_) => "primary",
                ServedBy::Replica(_) => "replica",
                _ => "none",
            },
            Err(_) => "none",
        };
        let path = match &result {
            Ok(response) => response.served_by.label(),
            Err(err) => err.kind().label(),
        };
        this.span.record("redis.node_role", role);
        this.span.record("fallback.path", path);
        let elapsed = this.started.elapsed().as_secs_f64();
        metrics::counter!("redis_fallback_routing_attempts_total", "status" => status.label())
            .increment(1);
        metrics::histogram!("redis_fallback_routing_latency_seconds", "status" => status.label())
            .record(elapsed);
        Poll::Ready(result)
    }
}
