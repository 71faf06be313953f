//! [`ResponseFuture`]: one request through [`Coalesce`](super::Coalesce).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use pin_project_lite::pin_project;
use redis_resilience_core::{Error, ErrorKind, Request, Response, Sent};
use tokio::time::Sleep;
use tower_service::Service;

use super::flight::Waiter;
use super::layer::{FlightKey, Outcome};

pin_project! {
    /// The future of [`Coalesce`](super::Coalesce): a wait for a flight's
    /// result (bounded by the request's deadline), or a request passed
    /// straight through.
    ///
    /// A state machine without allocation. Dropping it leaves the flight;
    /// the last waiter to leave abandons it.
    pub struct ResponseFuture<S>
    where
        S: Service<Request, Response = Response, Error = Error>,
    {
        #[pin]
        state: State<S, S::Future>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, F> {
        // Waiting for a flight's result.
        Waiting {
            waiter: Waiter<Arc<FlightKey>, Outcome>,
            #[pin]
            deadline: Option<Sleep>,
        },
        // A pass-through request waits for the inner service's readiness.
        Ready {
            service: S,
            request: Option<Request>,
        },
        // A pass-through request was sent.
        Called {
            #[pin]
            future: F,
        },
    }
}

impl<S> ResponseFuture<S>
where
    S: Service<Request, Response = Response, Error = Error>,
{
    pub(crate) fn waiting(
        waiter: Waiter<Arc<FlightKey>, Outcome>,
        deadline: Option<Instant>,
    ) -> Self {
        let deadline = deadline
            .map(|deadline| tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)));
        Self {
            state: State::Waiting { waiter, deadline },
        }
    }

    pub(crate) fn pass_through(service: S, request: Request) -> Self {
        Self {
            state: State::Ready {
                service,
                request: Some(request),
            },
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
                StateProj::Waiting { waiter, deadline } => {
                    if let Poll::Ready(result) = waiter.poll(cx) {
                        return Poll::Ready(result);
                    }
                    if let Some(deadline) = deadline.as_pin_mut() {
                        ready!(deadline.poll(cx));
                        return Poll::Ready(Err(Error::new(
                            ErrorKind::Timeout,
                            Sent::Maybe,
                            "deadline passed waiting for a coalesced request",
                        )));
                    }
                    return Poll::Pending;
                }
                StateProj::Ready { service, request } => {
                    ready!(service.poll_ready(cx))?;
                    let Some(request) = request.take() else {
                        return Poll::Ready(Err(Error::config(
                            "coalesce future polled after completion",
                        )));
                    };
                    let future = service.call(request);
                    this.state.set(State::Called { future });
                }
                StateProj::Called { future } => return future.poll(cx),
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
            State::Waiting { .. } => "waiting",
            State::Ready { .. } => "ready",
            State::Called { .. } => "called",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
