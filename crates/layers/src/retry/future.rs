//! [`ResponseFuture`]: one request through [`Retry`](super::Retry), every
//! attempt and backoff included.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use redis_resilience_core::{Error, Request, Response};
use tokio::time::Sleep;
use tower_service::Service;

use super::layer::{Decision, Outcome, Shared};

pin_project! {
    /// The future of [`Retry`](super::Retry): the current attempt, or the
    /// backoff before the next one.
    ///
    /// A state machine without allocation: an attempt's future, a
    /// [`Sleep`], or the wait for the inner service's readiness. Dropping it
    /// cancels the request between any two states; a retry token already
    /// withdrawn from the budget stays spent.
    pub struct ResponseFuture<S>
    where
        S: Service<Request, Response = Response, Error = Error>,
    {
        #[pin]
        state: State<S::Future>,
        // The service that retries are sent through (it was called once and
        // is driven to readiness again before each retry).
        service: S,
        // Kept to send again: a clone is O(1).
        request: Request,
        shared: Arc<Shared>,
        // Attempts started so far.
        attempts: u32,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        // An attempt is in flight.
        Called {
            #[pin]
            future: F,
        },
        // Waiting out the backoff after `error`.
        Backoff {
            #[pin]
            sleep: Sleep,
            error: Error,
        },
        // Waiting for the inner service to be ready for the retry.
        Ready {
            error: Error,
        },
    }
}

impl<S> ResponseFuture<S>
where
    S: Service<Request, Response = Response, Error = Error>,
{
    pub(crate) fn new(
        future: S::Future,
        service: S,
        request: Request,
        shared: Arc<Shared>,
    ) -> Self {
        Self {
            state: State::Called { future },
            service,
            request,
            shared,
            attempts: 1,
        }
    }
}

impl<S> Future for ResponseFuture<S>
where
    S: Service<Request, Response = Response, Error = Error>,
{
    type Output = Result<Response, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Called { future } => {
                    let error = match ready!(future.poll(cx)) {
                        Ok(response) => {
                            if *this.attempts > 1 {
                                Outcome::SuccessAfterRetry.record();
                            }
                            return Poll::Ready(Ok(response));
                        }
                        Err(error) => error,
                    };
                    match this.shared.decide(this.request, &error, *this.attempts) {
                        Decision::Stop(outcome) => {
                            outcome.record();
                            tracing::debug!(
                                command = this.request.info().name(),
                                attempts = *this.attempts,
                                outcome = ?outcome,
                                error = %error,
                                "not retrying"
                            );
                            return Poll::Ready(Err(error));
                        }
                        Decision::Retry(delay) => {
                            Outcome::Retried.record();
                            tracing::debug!(
                                command = this.request.info().name(),
                                attempts = *this.attempts,
                                ?delay,
                                error = %error,
                                "retrying after backoff"
                            );
                            if delay.is_zero() {
                                this.state.set(State::Ready { error });
                            } else {
                                let sleep = tokio::time::sleep(delay);
                                this.state.set(State::Backoff { sleep, error });
                            }
                        }
                    }
                }
                StateProj::Backoff { sleep, error } => {
                    ready!(sleep.poll(cx));
                    let error = error.clone();
                    this.state.set(State::Ready { error });
                }
                StateProj::Ready { error } => {
                    ready!(this.service.poll_ready(cx))?;
                    // Waiting for readiness may have taken the request past
                    // its deadline: then the retry could not finish in time.
                    if let Some(deadline) = this.request.deadline()
                        && tokio::time::Instant::now().into_std() >= deadline
                    {
                        Outcome::Deadline.record();
                        return Poll::Ready(Err(error.clone()));
                    }
                    *this.attempts += 1;
                    let future = this.service.call(this.request.clone());
                    this.state.set(State::Called { future });
                }
            }
        }
    }
}

impl<S> fmt::Debug for ResponseFuture<S>
where
    S: Service<Request, Response = Response, Error = Error>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Called { .. } => "called",
            State::Backoff { .. } => "backoff",
            State::Ready { .. } => "ready",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("command", &self.request.info().name())
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}
