//! [`ResponseFuture`]: one request through [`Redirect`](super::Redirect),
//! every hop included.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use redis_resilience_core::{Error, NodeAddr, Request, Response, Route};
use tower_service::Service;

use super::policy::{RedirectPolicy, deadline_passed};

pin_project! {
    /// The future of [`Redirect`](super::Redirect): the current hop, or the
    /// wait for the inner service's readiness before the next one.
    ///
    /// No allocation until a `MOVED` is followed (the nodes it visited are
    /// kept for loop detection); no backoff between hops. Dropping it cancels
    /// the request between any two states.
    pub struct ResponseFuture<S>
    where
        S: Service<Request, Response = Response, Error = Error>,
    {
        #[pin]
        state: State<S::Future>,
        // The service that redirected requests are sent through.
        service: S,
        // The request, routed where the last redirect said.
        request: Request,
        policy: Arc<RedirectPolicy>,
        // Redirects followed so far.
        hops: u32,
        // Nodes the request was sent to by a `MOVED`.
        moved_to: Vec<NodeAddr>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        // A hop is in flight.
        Called {
            #[pin]
            future: F,
        },
        // Waiting for the inner service to be ready for the next hop.
        Ready,
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
        policy: Arc<RedirectPolicy>,
    ) -> Self {
        Self {
            state: State::Called { future },
            service,
            request,
            policy,
            hops: 0,
            moved_to: Vec::new(),
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
                        Ok(response) => return Poll::Ready(Ok(response)),
                        Err(error) if error.kind().is_redirect() => error,
                        Err(error) => return Poll::Ready(Err(error)),
                    };
                    let route = match this.policy.next_route(
                        this.request,
                        &error,
                        *this.hops,
                        this.moved_to,
                    ) {
                        Ok(route) => route,
                        Err(give_up) => {
                            tracing::debug!(
                                command = this.request.info().name(),
                                hops = *this.hops,
                                error = %give_up,
                                "not following redirect"
                            );
                            return Poll::Ready(Err(give_up));
                        }
                    };
                    if let Some(deadline) = this.request.deadline()
                        && tokio::time::Instant::now().into_std() >= deadline
                    {
                        return Poll::Ready(Err(deadline_passed(&error)));
                    }
                    let kind = match route {
                        Route::Asking(_) => "ask",
                        _ => "moved",
                    };
                    metrics::counter!("redis_redirects_total", "kind" => kind).increment(1);
                    tracing::debug!(
                        command = this.request.info().name(),
                        hops = *this.hops,
                        from = %error,
                        to = ?route,
                        "following redirect"
                    );
                    *this.hops += 1;
                    this.request.set_route(route);
                    this.state.set(State::Ready);
                }
                StateProj::Ready => {
                    ready!(this.service.poll_ready(cx))?;
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
            State::Ready => "ready",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("command", &self.request.info().name())
            .field("route", self.request.route())
            .field("hops", &self.hops)
            .finish_non_exhaustive()
    }
}
