//! A tower-test mock speaking the core contract, and request helpers.

use std::task::Poll;
use std::time::Duration;

use redis_resilience_core::{Error, Request, Response, Sent, ServedBy};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tower::util::MapErr;
use tower::{Service, ServiceExt};
use tower_test::mock;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The mock, with its errors turned back into core errors.
pub(crate) type MockService = MapErr<mock::Mock<Request, Response>, fn(BoxError) -> Error>;
pub(crate) type Handle = mock::Handle<Request, Response>;
pub(crate) type Reply = mock::SendResponse<Response>;

pub(crate) fn pair() -> (MockService, Handle) {
    let (mock, handle) = mock::pair::<Request, Response>();
    (mock.map_err(to_core as fn(BoxError) -> Error), handle)
}

fn to_core(error: BoxError) -> Error {
    match error.downcast::<Error>() {
        Ok(error) => *error,
        Err(other) => Error::io(Sent::No, other.to_string()),
    }
}

pub(crate) fn ok() -> Response {
    Response::new(redis::Value::Okay, ServedBy::Primary(None))
}

pub(crate) fn get() -> Request {
    Request::new(redis::cmd("GET").arg("user:42").clone())
}

pub(crate) fn incr() -> Request {
    Request::new(redis::cmd("INCR").arg("visits").clone())
}

pub(crate) fn set() -> Request {
    Request::new(redis::cmd("SET").arg("user:42").arg("x").clone())
}

pub(crate) fn server(reply: &str) -> Error {
    Error::from_server_reply(reply.as_bytes())
}

/// Sends `request` through `svc` on a task of its own.
pub(crate) fn spawn<S>(svc: S, request: Request) -> JoinHandle<Result<Response, Error>>
where
    S: Service<Request, Response = Response, Error = Error> + Send + 'static,
    S::Future: Send,
{
    tokio::spawn(svc.oneshot(request))
}

/// The next request the mock gets, and the time it waited for it.
pub(crate) async fn next(handle: &mut Handle) -> (Request, Reply, Duration) {
    let start = Instant::now();
    let (request, reply) = handle
        .next_request()
        .await
        .expect("the mock got no request");
    (request, reply, start.elapsed())
}

/// Asserts that the mock has no request waiting.
pub(crate) fn assert_no_request(handle: &mut Handle) {
    match handle.poll_request() {
        Poll::Pending | Poll::Ready(None) => {}
        Poll::Ready(Some((request, _))) => {
            panic!("unexpected request to {:?}", request.route())
        }
    }
}

/// The request's result. A request the mock gets meanwhile fails the test
/// (instead of leaving it waiting for an answer forever).
pub(crate) async fn join(
    handle: &mut Handle,
    mut task: JoinHandle<Result<Response, Error>>,
) -> Result<Response, Error> {
    tokio::select! {
        biased;
        result = &mut task => return result.expect("the request task panicked"),
        extra = handle.next_request() => {
            if let Some((request, _)) = extra {
                panic!("unexpected request to {:?}", request.route());
            }
        }
    }
    task.await.expect("the request task panicked")
}

/// Asserts that `actual` is `expected`, the very error (same kind, same text).
pub(crate) fn assert_same_error(actual: &Error, expected: &Error) {
    assert_eq!(actual.kind(), expected.kind());
    assert_eq!(actual.sent(), expected.sent());
    assert_eq!(actual.message(), expected.message());
}
