//! [`Coalesce`]: the service [`CoalesceLayer`](super::CoalesceLayer) wraps around another.

use std::sync::Arc;
use std::task::{Context, Poll};

use redis_resilience_core::{Command, Error, ErrorKind, Request, Response, Sent};
use tower_service::Service;

use super::flight::{Joined, Publisher, packed};
use super::future::ResponseFuture;
use super::layer::{CoalesceLayer, FlightKey, Outcome, Shared};

/// Sends identical in-flight reads to `inner` once, and hands the answer to
/// every caller.
///
/// Built by [`CoalesceLayer`]; every `Coalesce` made by one layer (and their
/// clones) shares one in-flight map. See the [module docs](super) for the
/// rules.
///
/// # Example
///
/// ```
/// use redis_resilience_core::{Error, Request, Response, ServedBy};
/// use redis_resilience_layers::Coalesce;
/// use tower::service_fn;
///
/// let redis = service_fn(|_request: Request| async {
///     Ok::<_, Error>(Response::new(redis::Value::Nil, ServedBy::Primary(None)))
/// });
/// let mut coalesce = Coalesce::new(redis);
/// assert_eq!(coalesce.in_flight(), 0);
/// let _inner = coalesce.get_mut();
/// let _redis = coalesce.into_inner();
/// ```
#[derive(Debug, Clone)]
pub struct Coalesce<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Coalesce<S> {
    /// Wraps `inner`, with an in-flight map of its own (use
    /// [`CoalesceLayer`] to share one).
    pub fn new(inner: S) -> Self {
        tower_layer::Layer::layer(&CoalesceLayer::new(), inner)
    }

    pub(crate) fn from_shared(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    /// Flights in the air now.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.shared.len()
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

/// Whether a request may share an answer with identical ones.
pub(crate) fn coalescible(request: &Request) -> bool {
    let info = request.info();
    info.is_readonly() && !info.is_blocking() && !request.options().authoritative
}

impl<S> Service<Request> for Coalesce<S>
where
    S: Service<Request, Response = Response, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Error;
    type Future = ResponseFuture<S>;

    /// Always ready: nothing is reserved in the inner service, because a
    /// follower never calls it. Flights and pass-through requests drive
    /// their own clone of it to readiness.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if !coalescible(&request) {
            return ResponseFuture::pass_through(self.inner.clone(), request);
        }
        let key = Arc::new(FlightKey {
            route: request.route().clone(),
            no_retry: request.options().no_retry,
            command: packed(&request).into_boxed_slice(),
        });
        let deadline = request.deadline();
        match self.shared.join(key, panicked) {
            Joined::Follower(waiter) => {
                metrics::counter!("redis_coalesced_requests_total", "role" => "follower")
                    .increment(1);
                ResponseFuture::waiting(waiter, deadline)
            }
            Joined::Leader { waiter, publisher } => {
                metrics::counter!("redis_coalesced_requests_total", "role" => "leader")
                    .increment(1);
                let task =
                    tokio::spawn(fly(self.inner.clone(), flight_request(&request), publisher));
                waiter.flight().set_abort(task.abort_handle());
                ResponseFuture::waiting(waiter, deadline)
            }
        }
    }
}

/// What the waiters of a flight get when the inner service panicked.
fn panicked() -> Outcome {
    Err(Error::new(
        ErrorKind::Io,
        Sent::Maybe,
        "the inner service panicked while serving a coalesced request",
    ))
}

/// One flight: readiness, the call, and the result to every waiter.
async fn fly<S>(mut service: S, request: Request, publisher: Publisher<Arc<FlightKey>, Outcome>)
where
    S: Service<Request, Response = Response, Error = Error>,
{
    let result = match std::future::poll_fn(|cx| service.poll_ready(cx)).await {
        Ok(()) => service.call(request).await,
        Err(error) => Err(error),
    };
    publisher.publish(result);
}

/// The request a flight sends: the leader's, without its deadline (every
/// waiter has its own, and the flight lives as long as one of them waits).
fn flight_request(request: &Request) -> Request {
    if request.deadline().is_none() {
        return request.clone();
    }
    let mut fresh = match request.command() {
        Command::Single(cmd) => Request::new(cmd.clone()),
        Command::Pipeline(pipeline) => Request::pipeline(pipeline.clone()),
    }
    .with_route(request.route().clone());
    let options = request.options();
    if options.no_retry {
        fresh = fresh.no_retry();
    }
    if let Some(max) = options.max_staleness {
        fresh = fresh.with_max_staleness(max);
    }
    if fresh.info().is_idempotent() != request.info().is_idempotent() {
        fresh = fresh.assume_idempotent(request.info().is_idempotent());
    }
    fresh
}
