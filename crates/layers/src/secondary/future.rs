//! [`ResponseFuture`]: one request through [`SecondaryStore`](super::SecondaryStore).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use redis::Value;
use redis_resilience_core::{Command, Error, ErrorKind, Request, Response, Sent, ServedBy};
use tokio::time::Sleep;
use tower_service::Service;

use super::BoxError;
use super::layer::{Outcome, Shared};
use super::loader::Lookup;
use crate::coalesce::flight::{Joined, Publisher, Waiter, packed};

/// A caller waiting for a call to the store.
type SecondaryWaiter = Waiter<Arc<[u8]>, Outcome>;

/// What an eligible request needs if Redis cannot answer it.
pub(crate) struct Pending<S, L> {
    pub(crate) shared: Arc<Shared>,
    pub(crate) loader: L,
    pub(crate) lookup: Lookup,
    /// For cache-aside: the service to write a value found back through, and its TTL.
    pub(crate) write_back: Option<(S, Duration)>,
}

pin_project! {
    /// The future of [`SecondaryStore`](super::SecondaryStore): the call to
    /// Redis, then, if it could not answer, the wait for the secondary store
    /// (bounded by the request's deadline).
    pub struct ResponseFuture<S, L>
    where
        S: Service<Request, Response = Response, Error = Error>,
    {
        #[pin]
        state: State<S::Future>,
        pending: Option<Pending<S, L>>,
        // Redis's own answer on a miss, kept for when the store has nothing either.
        miss: Option<Response>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Redis {
            #[pin]
            future: F,
        },
        Secondary {
            waiter: SecondaryWaiter,
            #[pin]
            deadline: Option<Sleep>,
        },
        Done,
    }
}

impl<S, L> ResponseFuture<S, L>
where
    S: Service<Request, Response = Response, Error = Error>,
{
    pub(crate) fn new(future: S::Future, pending: Option<Pending<S, L>>) -> Self {
        Self {
            state: State::Redis { future },
            pending,
            miss: None,
        }
    }
}

fn record(outcome: &'static str) {
    metrics::counter!("redis_secondary_requests_total", "outcome" => outcome).increment(1);
}

impl<S, L> Future for ResponseFuture<S, L>
where
    S: Service<Request, Response = Response, Error = Error> + Send + 'static,
    S::Future: Send + 'static,
    L: Service<Lookup, Response = Option<Value>> + Clone + Send + 'static,
    L::Error: Into<BoxError>,
    L::Future: Send + 'static,
{
    type Output = Result<Response, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Redis { future } => {
                    let result = ready!(future.poll(cx));
                    let Some(pending) = this.pending.take() else {
                        this.state.set(State::Done);
                        return Poll::Ready(result);
                    };
                    let sent = match &result {
                        Err(error) if (pending.shared.config.fallback_on())(error.kind()) => {
                            error.sent()
                        }
                        Ok(response)
                            if pending.write_back.is_some()
                                && response.value == Value::Nil
                                && matches!(
                                    response.served_by,
                                    ServedBy::Primary(_) | ServedBy::Replica(_)
                                ) =>
                        {
                            *this.miss = Some(response.clone());
                            Sent::Yes
                        }
                        _ => {
                            this.state.set(State::Done);
                            return Poll::Ready(result);
                        }
                    };
                    match start(pending, sent) {
                        Ok((waiter, deadline)) => {
                            this.state.set(State::Secondary { waiter, deadline });
                        }
                        Err(error) => {
                            this.state.set(State::Done);
                            return Poll::Ready(Err(error));
                        }
                    }
                }
                StateProj::Secondary { waiter, deadline } => {
                    if let Poll::Ready((result, outcome)) = waiter.poll(cx) {
                        record(outcome);
                        this.state.set(State::Done);
                        if outcome == NOT_FOUND
                            && let Some(miss) = this.miss.take()
                        {
                            return Poll::Ready(Ok(miss));
                        }
                        return Poll::Ready(result);
                    }
                    if let Some(deadline) = deadline.as_pin_mut() {
                        ready!(deadline.poll(cx));
                        record("deadline");
                        this.state.set(State::Done);
                        return Poll::Ready(Err(Error::new(
                            ErrorKind::Timeout,
                            Sent::Maybe,
                            "deadline passed waiting for the secondary store",
                        )));
                    }
                    return Poll::Pending;
                }
                StateProj::Done => {
                    return Poll::Ready(Err(Error::config(
                        "secondary store future polled after completion",
                    )));
                }
            }
        }
    }
}

const NOT_FOUND: &str = "not_found";

/// Joins the call to the store for this lookup, or starts one if the rate
/// limit admits it.
fn start<S, L>(
    pending: Pending<S, L>,
    sent: Sent,
) -> Result<(SecondaryWaiter, Option<Sleep>), Error>
where
    S: Service<Request, Response = Response, Error = Error> + Send + 'static,
    S::Future: Send + 'static,
    L: Service<Lookup, Response = Option<Value>> + Clone + Send + 'static,
    L::Error: Into<BoxError>,
    L::Future: Send + 'static,
{
    let Pending {
        shared,
        loader,
        lookup,
        write_back,
    } = pending;
    let deadline = lookup
        .request()
        .deadline()
        .map(|deadline| tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)));
    let key: Arc<[u8]> = Arc::from(packed(lookup.request()));
    if let Some(waiter) = shared.flights.follow(&key) {
        return Ok((waiter, deadline));
    }
    if let Err(retry_after) = shared.admit() {
        record("rate_limited");
        return Err(Error::rate_limited(retry_after));
    }
    match shared.flights.join(key, panicked) {
        Joined::Follower(waiter) => Ok((waiter, deadline)),
        Joined::Leader { waiter, publisher } => {
            let task = tokio::spawn(load(
                loader,
                lookup,
                shared.config.timeout(),
                sent,
                write_back,
                publisher,
            ));
            waiter.flight().set_abort(task.abort_handle());
            Ok((waiter, deadline))
        }
    }
}

fn panicked() -> Outcome {
    (
        Err(Error::new(
            ErrorKind::Secondary,
            Sent::No,
            "the secondary store loader panicked",
        )),
        "error",
    )
}

/// The error of a loader, kept as the source of ours.
#[derive(Debug)]
struct StoreError(BoxError);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// One call to the store: readiness, the call under the timeout, the
/// write-back on a cache-aside hit, and the outcome to every waiter.
async fn load<S, L>(
    mut loader: L,
    lookup: Lookup,
    timeout: Duration,
    sent: Sent,
    write_back: Option<(S, Duration)>,
    publisher: Publisher<Arc<[u8]>, Outcome>,
) where
    S: Service<Request, Response = Response, Error = Error>,
    L: Service<Lookup, Response = Option<Value>>,
    L::Error: Into<BoxError>,
{
    let request = lookup.request().clone();
    let call = async {
        std::future::poll_fn(|cx| loader.poll_ready(cx)).await?;
        loader.call(lookup).await
    };
    let result = tokio::time::timeout(timeout, call)
        .await
        .map(|loaded| loaded.map_err(Into::<BoxError>::into));
    let outcome = match result {
        Ok(Ok(Some(value))) => {
            if let Some((service, ttl)) = write_back {
                write(service, &request, &value, ttl).await;
            }
            (Ok(Response::new(value, ServedBy::Secondary)), "found")
        }
        Ok(Ok(None)) => (
            Ok(Response::new(Value::Nil, ServedBy::Secondary)),
            NOT_FOUND,
        ),
        Ok(Err(error)) => {
            let error = StoreError(error);
            (
                Err(Error::new(
                    ErrorKind::Secondary,
                    sent,
                    format!("secondary store failed: {error}"),
                )
                .with_source(error)),
                "error",
            )
        }
        Err(_elapsed) => (
            Err(Error::new(
                ErrorKind::Secondary,
                sent,
                format!("secondary store timed out after {timeout:?}"),
            )),
            "timeout",
        ),
    };
    publisher.publish(outcome);
}

/// Cache-aside write-back of a `GET` hit: `SET key value PX ttl NX` (a value
/// the application wrote meanwhile wins). Failures are only logged: the
/// caller has its value.
async fn write<S>(mut service: S, request: &Request, value: &Value, ttl: Duration)
where
    S: Service<Request, Response = Response, Error = Error>,
{
    if !matches!(request.command(), Command::Single(_)) || request.info().name() != "get" {
        return;
    }
    let Some(key) = request.keys().next() else {
        return;
    };
    let bytes: Vec<u8> = match value {
        Value::BulkString(bytes) => bytes.clone(),
        Value::SimpleString(text) => text.clone().into_bytes(),
        Value::Int(n) => n.to_string().into_bytes(),
        _ => return,
    };
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
    let set = Request::new(
        redis::cmd("SET")
            .arg(key)
            .arg(bytes)
            .arg("PX")
            .arg(ttl_ms)
            .arg("NX")
            .clone(),
    );
    let result = match std::future::poll_fn(|cx| service.poll_ready(cx)).await {
        Ok(()) => service.call(set).await,
        Err(error) => Err(error),
    };
    if let Err(error) = result {
        tracing::debug!(%error, "cache-aside write-back failed");
    }
}

impl<S, L> fmt::Debug for ResponseFuture<S, L>
where
    S: Service<Request, Response = Response, Error = Error>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Redis { .. } => "redis",
            State::Secondary { .. } => "secondary",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
