//! [`ResponseFuture`]: one request through [`Staleness`](super::Staleness).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use redis_resilience_core::{Error, Request, Response, ServedBy};

use super::cache::{Shared, Start};

/// What a cacheable request needs once the inner service answered.
pub(crate) struct Pending {
    pub(crate) shared: Arc<Shared>,
    pub(crate) key: Box<[u8]>,
    pub(crate) request: Request,
    pub(crate) start: Start,
}

pin_project! {
    /// The future of [`Staleness`](super::Staleness): the inner call; then
    /// the value is kept, or a kept one is served in place of an error.
    pub struct ResponseFuture<F> {
        #[pin]
        future: F,
        pending: Option<Pending>,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(future: F, pending: Option<Pending>) -> Self {
        Self { future, pending }
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response, Error>>,
{
    type Output = Result<Response, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.future.poll(cx));
        let Some(pending) = this.pending.take() else {
            return Poll::Ready(result);
        };
        let Pending {
            shared,
            key,
            request,
            start,
        } = pending;
        match result {
            Ok(response) => {
                shared.keep(key, &request, &response, start);
                Poll::Ready(Ok(response))
            }
            Err(error)
                if !request.options().authoritative && (shared.config.serve_on())(error.kind()) =>
            {
                let budget = request
                    .options()
                    .max_staleness
                    .map_or(shared.config.budget(), |max| {
                        max.min(shared.config.budget())
                    });
                match shared.stale(&key, &request, budget) {
                    Some(response) => {
                        if let ServedBy::Stale { age } = response.served_by {
                            metrics::counter!("redis_stale_served_total").increment(1);
                            metrics::histogram!("redis_stale_age_seconds")
                                .record(age.as_secs_f64());
                            tracing::debug!(
                                command = request.info().name(),
                                age_ms = age.as_millis(),
                                error = %error.kind().label(),
                                "served a stale value"
                            );
                        }
                        Poll::Ready(Ok(response))
                    }
                    None => Poll::Ready(Err(error)),
                }
            }
            Err(error) => Poll::Ready(Err(error)),
        }
    }
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key: keys can be personal data.
        f.debug_struct("Pending")
            .field("command", &self.request.info().name())
            .finish_non_exhaustive()
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}
