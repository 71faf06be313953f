//! [`ResponseFuture`] of [`Observe`](super::Observe).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use metrics::{Key, Label, Level, Metadata};
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
        record(status, elapsed);
        Poll::Ready(result)
    }
}

/// Keys built once: a label given at run time makes the `metrics` macros
/// allocate and hash a key on every request.
static LABELS: [[Label; 1]; 4] = [
    [Label::from_static_parts("status", "primary_hit")],
    [Label::from_static_parts("status", "primary_failover")],
    [Label::from_static_parts("status", "secondary_fallback")],
    [Label::from_static_parts("status", "error")],
];

macro_rules! status_keys {
    ($name:literal) => {
        [
            Key::from_static_parts($name, &LABELS[0]),
            Key::from_static_parts($name, &LABELS[1]),
            Key::from_static_parts($name, &LABELS[2]),
            Key::from_static_parts($name, &LABELS[3]),
        ]
    };
}

static ATTEMPTS: [Key; 4] = status_keys!("redis_fallback_routing_attempts_total");
static LATENCY: [Key; 4] = status_keys!("redis_fallback_routing_latency_seconds");
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

fn record(status: RoutingStatus, elapsed: f64) {
    let index = match status {
        RoutingStatus::PrimaryHit => 0,
        RoutingStatus::PrimaryFailover => 1,
        RoutingStatus::SecondaryFallback => 2,
        RoutingStatus::Error => 3,
    };
    metrics::with_recorder(|recorder| {
        recorder
            .register_counter(&ATTEMPTS[index], &METADATA)
            .increment(1);
        recorder
            .register_histogram(&LATENCY[index], &METADATA)
            .record(elapsed);
    });
}
