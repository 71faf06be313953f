//! [`ResponseFuture`]: a call through [`CircuitBreaker`](super::CircuitBreaker),
//! whose outcome is counted when it ends.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use redis_resilience_core::{Error, Response};
use tokio::time::Instant;

use super::state::{Admission, Breaker, Outcome};

pin_project! {
    /// The future of [`CircuitBreaker`](super::CircuitBreaker): the inner
    /// call and, when it ends, its outcome fed to the breaker. A caller that
    /// goes away is not counted, but frees a half-open probe's permit.
    pub struct ResponseFuture<F> {
        #[pin]
        kind: Kind<F>,
        guard: Option<Guard>,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(guard) = this.project().guard.take() {
                guard.breaker.release(guard.admission);
            }
        }
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Called { #[pin] future: F },
        Rejected { error: Option<Error> },
    }
}

struct Guard {
    breaker: Arc<Breaker>,
    admission: Admission,
    started: Instant,
}

impl<F> ResponseFuture<F> {
    pub(crate) fn guarded(
        future: F,
        breaker: Arc<Breaker>,
        admission: Admission,
        started: Instant,
    ) -> Self {
        Self {
            kind: Kind::Called { future },
            guard: Some(Guard {
                breaker,
                admission,
                started,
            }),
        }
    }

    pub(crate) fn unguarded(future: F) -> Self {
        Self {
            kind: Kind::Called { future },
            guard: None,
        }
    }

    pub(crate) fn rejected(error: Error) -> Self {
        Self {
            kind: Kind::Rejected { error: Some(error) },
            guard: None,
        }
    }
}

/// Only failures that say the node is unavailable count; redirects, semantic
/// errors and our own rejections do not.
fn outcome(result: &Result<Response, Error>, elapsed: std::time::Duration) -> Outcome {
    match result {
        Ok(_) => Outcome::Success(elapsed),
        Err(err) if err.kind().is_availability() => Outcome::Failure,
        Err(_) => Outcome::Ignored,
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response, Error>>,
{
    type Output = Result<Response, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match this.kind.project() {
            KindProj::Rejected { error } => Poll::Ready(Err(error
                .take()
                .unwrap_or_else(|| Error::circuit_open(std::time::Duration::ZERO)))),
            KindProj::Called { future } => {
                let result = ready!(future.poll(cx));
                if let Some(guard) = this.guard.take() {
                    let now = Instant::now();
                    let outcome = outcome(&result, now.duration_since(guard.started));
                    guard.breaker.record(guard.admission, outcome, now);
                }
                Poll::Ready(result)
            }
        }
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Called { .. } => "called",
            Kind::Rejected { .. } => "rejected",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
