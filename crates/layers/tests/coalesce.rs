//! CoalesceLayer against scripted services with paused time: one inner call
//! for many identical reads, a dropped leader, errors and panics reaching
//! every waiter, per-waiter deadlines, abandoned flights, pass-through
//! requests, readiness, and the number of polls per waiter.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use redis_resilience_core::{Error, ErrorKind, ReadFrom, Request, Response, Route, Sent, ServedBy};
use redis_resilience_layers::CoalesceLayer;
use tokio::sync::Semaphore;
use tower::{Layer, Service, ServiceExt};

type BoxService = tower::util::BoxCloneService<Request, Response, Error>;

fn get(key: &str) -> Request {
    Request::new(redis::cmd("GET").arg(key).clone())
}

fn value(n: i64) -> Response {
    Response::new(redis::Value::Int(n), ServedBy::Primary(None))
}

/// Counts inner calls; each answers `answer` after `delay`.
fn counting(
    calls: &Arc<AtomicUsize>,
    delay: Duration,
    answer: Result<Response, Error>,
) -> BoxService {
    let calls = Arc::clone(calls);
    BoxService::new(tower::service_fn(move |_request: Request| {
        calls.fetch_add(1, Ordering::SeqCst);
        let answer = answer.clone();
        async move {
            tokio::time::sleep(delay).await;
            answer
        }
    }))
}

/// A future that counts how often it is polled.
struct Counted<F> {
    inner: Pin<Box<F>>,
    polls: Arc<AtomicUsize>,
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        self.inner.as_mut().poll(cx)
    }
}

/// A spawned caller and its poll counter.
type Caller = (
    tokio::task::JoinHandle<Result<Response, Error>>,
    Arc<AtomicUsize>,
);

/// Spawns `n` callers of `request()` through `svc`, each with its poll counter.
fn spawn_callers<S>(svc: &S, n: usize, request: impl Fn() -> Request) -> Vec<Caller>
where
    S: Service<Request, Response = Response, Error = Error> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    (0..n)
        .map(|_| {
            let polls = Arc::new(AtomicUsize::new(0));
            let future = Counted {
                inner: Box::pin(svc.clone().oneshot(request())),
                polls: Arc::clone(&polls),
            };
            (tokio::spawn(future), polls)
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_thousand_identical_gets_make_one_inner_call_with_few_polls_each() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = CoalesceLayer::new();
    let svc = layer.layer(counting(&calls, Duration::from_millis(10), Ok(value(7))));

    let callers = spawn_callers(&svc, 1000, || get("user:42"));
    let mut max_polls = 0;
    for (handle, polls) in callers {
        let response = answer(handle).await.expect("every caller answered");
        assert_eq!(response, value(7));
        max_polls = max_polls.max(polls.load(Ordering::SeqCst));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "exactly one inner call");
    assert_eq!(
        layer.in_flight(),
        0,
        "the in-flight map is empty afterwards"
    );
    // Polled once to register, once when woken with the result.
    assert!(max_polls <= 2, "a waiter was polled {max_polls} times");
}

#[tokio::test(start_paused = true)]
async fn dropping_the_leader_mid_flight_still_answers_the_other_999() {
    let calls = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let inner = {
        let calls = Arc::clone(&calls);
        let gate = Arc::clone(&gate);
        tower::service_fn(move |_request: Request| {
            calls.fetch_add(1, Ordering::SeqCst);
            let gate = Arc::clone(&gate);
            async move {
                let _permit = gate.acquire().await.expect("gate open");
                Ok::<_, Error>(value(9))
            }
        })
    };
    let layer = CoalesceLayer::new();
    let mut svc = layer.layer(inner);

    // The leader starts the flight and is polled once, then dropped.
    let mut leader = Box::pin(svc.ready().await.expect("ready").call(get("k")));
    assert!(futures_poll_once(leader.as_mut()).await.is_pending());
    let callers = spawn_callers(&svc, 999, || get("k"));
    // Let every follower join and the flight reach the inner service.
    eventually("the flight reaches the inner service", || {
        calls.load(Ordering::SeqCst) == 1
    })
    .await;
    eventually("every follower joins", || {
        callers
            .iter()
            .all(|(_, polls)| polls.load(Ordering::SeqCst) >= 1)
    })
    .await;
    drop(leader);
    assert_eq!(layer.in_flight(), 1, "the flight survives its leader");
    gate.add_permits(1);

    let all = async {
        for (handle, _) in callers {
            let response = answer(handle).await.expect("answered");
            assert_eq!(response, value(9));
        }
    };
    tokio::time::timeout(Duration::from_secs(5), all)
        .await
        .expect("no caller hangs");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(layer.in_flight(), 0);
}

/// A caller's answer; with paused time a caller that would hang fails at once
/// (the clock jumps to the timeout when nothing else can run).
async fn answer(
    handle: tokio::task::JoinHandle<Result<Response, Error>>,
) -> Result<Response, Error> {
    tokio::time::timeout(Duration::from_secs(600), handle)
        .await
        .expect("the caller hangs")
        .expect("caller task")
}

/// Yields until `condition` holds; fails after many rounds instead of hanging.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    for _ in 0..100_000 {
        if condition() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("never happened: {what}");
}

/// Polls a future once.
async fn futures_poll_once<F: Future + Unpin>(mut future: F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut future).poll(cx))).await
}

#[tokio::test(start_paused = true)]
async fn an_error_reaches_every_waiter() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = CoalesceLayer::new();
    let error = Error::timeout(Sent::Maybe);
    let svc = layer.layer(counting(&calls, Duration::from_millis(5), Err(error)));

    for (handle, _) in spawn_callers(&svc, 100, || get("k")) {
        let err = answer(handle).await.expect_err("the error");
        assert_eq!(err.kind(), &ErrorKind::Timeout);
        assert_eq!(err.sent(), Sent::Maybe);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(layer.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_inner_service_fails_every_waiter_and_clears_the_entry() {
    let layer = CoalesceLayer::new();
    let svc = layer.layer(tower::service_fn(|_request: Request| async {
        tokio::time::sleep(Duration::from_millis(1)).await;
        panic!("inner service bug");
        #[expect(unreachable_code, reason = "the future's output type")]
        Ok::<Response, Error>(value(0))
    }));
    for (handle, _) in spawn_callers(&svc, 10, || get("k")) {
        let err = answer(handle).await.expect_err("panic");
        assert_eq!(err.kind(), &ErrorKind::Io);
    }
    assert_eq!(layer.in_flight(), 0);
}

/// Sets its flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn a_flight_every_waiter_left_is_abandoned() {
    let dropped = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicUsize::new(0));
    let inner = {
        let dropped = Arc::clone(&dropped);
        let started = Arc::clone(&started);
        tower::service_fn(move |_request: Request| {
            let flag = DropFlag(Arc::clone(&dropped));
            started.fetch_add(1, Ordering::SeqCst);
            async move {
                let _flag = flag;
                std::future::pending::<Result<Response, Error>>().await
            }
        })
    };
    let layer = CoalesceLayer::new();
    let svc = layer.layer(inner);
    let callers = spawn_callers(&svc, 10, || get("k"));
    eventually("the flight starts", || started.load(Ordering::SeqCst) == 1).await;
    for (handle, _) in &callers {
        handle.abort();
    }
    for (handle, _) in callers {
        assert!(handle.await.expect_err("aborted").is_cancelled());
    }
    assert_eq!(layer.in_flight(), 0, "abandoned flights leave the map");
    eventually("the inner call is dropped", || {
        dropped.load(Ordering::SeqCst)
    })
    .await;
    assert_eq!(started.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn each_waiter_honours_its_own_deadline() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = CoalesceLayer::new();
    let svc = layer.layer(counting(&calls, Duration::from_millis(100), Ok(value(1))));
    let start = tokio::time::Instant::now();
    let hasty = get("k").with_deadline((start + Duration::from_millis(10)).into_std());
    let (hasty, patient) = tokio::join!(svc.clone().oneshot(hasty), async {
        tokio::task::yield_now().await;
        svc.clone().oneshot(get("k")).await
    });
    let err = hasty.expect_err("deadline");
    assert_eq!(err.kind(), &ErrorKind::Timeout);
    assert_eq!(patient.expect("answered"), value(1));
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the hasty leader's flight served the other"
    );
    assert_eq!(layer.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn writes_blocking_commands_authoritative_reads_and_other_routes_are_not_shared() {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = CoalesceLayer::new();
    let svc = layer.layer(counting(&calls, Duration::from_millis(5), Ok(value(1))));

    let set = || Request::new(redis::cmd("SET").arg("k").arg("v").clone());
    for (handle, _) in spawn_callers(&svc, 10, set) {
        answer(handle).await.expect("SET");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        10,
        "writes are never coalesced"
    );

    calls.store(0, Ordering::SeqCst);
    let blpop = || Request::new(redis::cmd("BLPOP").arg("q").arg(1).clone());
    for (handle, _) in spawn_callers(&svc, 3, blpop) {
        answer(handle).await.expect("BLPOP");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "blocking commands pass through"
    );

    calls.store(0, Ordering::SeqCst);
    for (handle, _) in spawn_callers(&svc, 4, || get("k").authoritative()) {
        answer(handle).await.expect("GET");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "authoritative reads pass through"
    );

    calls.store(0, Ordering::SeqCst);
    let mut handles = spawn_callers(&svc, 5, || get("k"));
    handles.extend(spawn_callers(&svc, 5, || {
        get("k").with_route(Route::Replica(ReadFrom::LowestLag))
    }));
    handles.extend(spawn_callers(&svc, 5, || get("other")));
    for (handle, _) in handles {
        answer(handle).await.expect("GET");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "one flight per command and routing class"
    );
    assert_eq!(layer.in_flight(), 0);
}

/// A service whose `poll_ready` reserves one of a few permits, held by the
/// service until `call` (like tower's concurrency limit).
#[derive(Clone)]
struct Reserving {
    permits: Arc<Semaphore>,
    held: Option<Arc<tokio::sync::OwnedSemaphorePermit>>,
}

impl Service<Request> for Reserving {
    type Response = Response;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.held.is_none() {
            match Arc::clone(&self.permits).try_acquire_owned() {
                Ok(permit) => self.held = Some(Arc::new(permit)),
                // Not woken: the test only needs to see that nothing leaks.
                Err(_) => return Poll::Ready(Err(Error::connect("no permit left"))),
            }
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: Request) -> Self::Future {
        let permit = self.held.take();
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            drop(permit);
            Ok(value(3))
        })
    }
}

#[tokio::test(start_paused = true)]
async fn followers_reserve_nothing_in_the_inner_service() {
    let permits = Arc::new(Semaphore::new(2));
    let inner = Reserving {
        permits: Arc::clone(&permits),
        held: None,
    };
    let layer = CoalesceLayer::new();
    let svc = layer.layer(inner);
    for round in 0..3 {
        let mut handles = spawn_callers(&svc, 50, || get("a"));
        handles.extend(spawn_callers(&svc, 50, || get("b")));
        for (handle, _) in handles {
            let response = answer(handle).await.expect("answered");
            assert_eq!(response, value(3), "round {round}");
        }
        assert_eq!(permits.available_permits(), 2, "every reservation released");
    }
}
