//! [`ResponseFuture`]: the primary attempt and, if it failed in a way a
//! replica can make up for, one replica attempt.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use redis_resilience_core::{Error, ErrorKind, ReadFrom, Request, Response, Route};
use tower_service::Service;

use super::layer::falls_back_on;

pin_project! {
    /// The future of [`ReplicaFallback`](super::ReplicaFallback): a state
    /// machine without allocation beyond the cloned `Request`.
    pub struct ResponseFuture<S>
    where
        S: Service<Request, Response = Response, Error = Error>,
    {
        #[pin]
        state: State<S::Future>,
        service: Option<S>,
        request: Option<Request>,
        read_from: ReadFrom,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        // A request a replica may not answer, passed through.
        Passthrough { #[pin] future: F },
        Primary { #[pin] future: F },
        // Waiting for the service to be ready for the replica attempt.
        Ready { error: Error },
        Replica { #[pin] future: F, error: Error },
    }
}

impl<S> ResponseFuture<S>
where
    S: Service<Request, Response = Response, Error = Error>,
{
    pub(crate) fn passthrough(future: S::Future) -> Self {
        Self {
            state: State::Passthrough { future },
            service: None,
            request: None,
            read_from: ReadFrom::default(),
        }
    }

    /// `service` was driven to ready by the caller; it is called now, and
    /// driven to ready again before a replica attempt.
    pub(crate) fn primary(mut service: S, request: Request, read_from: ReadFrom) -> Self {
        let future = service.call(request.clone());
        Self {
            state: State::Primary { future },
            service: Some(service),
            request: Some(request),
            read_from,
        }
    }
}

fn record(outcome: &'static str) {
    metrics::counter!("redis_replica_fallbacks_total", "outcome" => outcome).increment(1);
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
                StateProj::Passthrough { future } => return future.poll(cx),
                StateProj::Primary { future } => match ready!(future.poll(cx)) {
                    Ok(response) => return Poll::Ready(Ok(response)),
                    Err(error) if falls_back_on(&error) => {
                        this.state.set(State::Ready { error });
                    }
                    Err(error) => return Poll::Ready(Err(error)),
                },
                StateProj::Ready { error } => {
                    let error = error.clone();
                    let Some(service) = this.service.as_mut() else {
                        return Poll::Ready(Err(error));
                    };
                    // Readiness first: the request is taken only once the
                    // service can take it, so a Pending here loses nothing.
                    if let Err(not_ready) = ready!(service.poll_ready(cx)) {
                        tracing::debug!(error = %not_ready, "no replica fallback: service not ready");
                        return Poll::Ready(Err(error));
                    }
                    let Some(request) = this.request.take() else {
                        return Poll::Ready(Err(error));
                    };
                    let replica = request.with_route(Route::Replica(*this.read_from));
                    let future = service.call(replica);
                    this.state.set(State::Replica { future, error });
                }
                StateProj::Replica { future, error } => {
                    return Poll::Ready(match ready!(future.poll(cx)) {
                        Ok(response) => {
                            record("served");
                            Ok(response)
                        }
                        Err(replica_error) => {
                            let outcome = if replica_error.kind() == &ErrorKind::NoReplicaAvailable
                            {
                                "no_replica"
                            } else {
                                "failed"
                            };
                            record(outcome);
                            tracing::debug!(error = %replica_error, outcome, "replica fallback failed");
                            // The primary's kind and `Sent` still describe the
                            // request; the message tells what the replica said.
                            Err(Error::new(
                                error.kind().clone(),
                                error.sent(),
                                format!("{error} (replica fallback: {replica_error})"),
                            ))
                        }
                    });
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
            State::Passthrough { .. } => "passthrough",
            State::Primary { .. } => "primary",
            State::Ready { .. } => "ready",
            State::Replica { .. } => "replica",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
