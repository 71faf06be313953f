//! StalenessLayer against a scripted service with paused time: which
//! failures serve a kept value, the budget and per-request limits, what is
//! never kept or served, invalidation (direct, streamed, and racing a fetch)
//! and the memory bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis_resilience_core::{Error, ErrorKind, NodeAddr, Request, Response, Route, Sent, ServedBy};
use redis_resilience_layers::staleness::Invalidation;
use redis_resilience_layers::{StalenessConfig, StalenessLayer};
use tokio::sync::Semaphore;
use tower::{Layer, Service, ServiceExt};

/// What the scripted Redis answers now; `gate`, when set, holds every call
/// until a permit is added.
#[derive(Clone)]
struct Script {
    answer: Arc<Mutex<Result<Response, Error>>>,
    gate: Arc<Mutex<Option<Arc<Semaphore>>>>,
    calls: Arc<AtomicUsize>,
}

impl Script {
    fn new() -> Self {
        Self {
            answer: Arc::new(Mutex::new(Ok(int(0)))),
            gate: Arc::new(Mutex::new(None)),
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn answer(&self, answer: Result<Response, Error>) {
        *self.answer.lock().expect("script") = answer;
    }

    fn hold(&self) -> Arc<Semaphore> {
        let gate = Arc::new(Semaphore::new(0));
        *self.gate.lock().expect("gate") = Some(Arc::clone(&gate));
        gate
    }

    fn service(
        &self,
    ) -> impl Service<Request, Response = Response, Error = Error, Future: Send> + Clone + Send + 'static
    {
        let script = self.clone();
        tower::service_fn(move |_request: Request| {
            // The answer is read when the call is made: a held call answers
            // what Redis had when it was sent.
            let answer = script.answer.lock().expect("script").clone();
            let gate = script.gate.lock().expect("gate").clone();
            script.calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if let Some(gate) = gate {
                    let _permit = gate.acquire().await.expect("gate");
                }
                answer
            }
        })
    }
}

fn int(n: i64) -> Response {
    Response::new(redis::Value::Int(n), ServedBy::Primary(None))
}

fn get(key: &str) -> Request {
    Request::new(redis::cmd("GET").arg(key).clone())
}

fn stale_age(response: &Response) -> Duration {
    match response.served_by {
        ServedBy::Stale { age } => age,
        ref other => panic!("expected a stale answer, got {other:?}"),
    }
}

async fn send<S>(svc: &S, request: Request) -> Result<Response, Error>
where
    S: Service<Request, Response = Response, Error = Error> + Clone,
{
    svc.clone().oneshot(request).await
}

#[tokio::test(start_paused = true)]
async fn availability_failures_serve_the_kept_value_with_its_age_within_the_budget() {
    let script = Script::new();
    let layer = StalenessLayer::new(Duration::from_secs(10));
    let svc = layer.layer(script.service());
    script.answer(Ok(int(42)));
    assert_eq!(send(&svc, get("k")).await.expect("fresh"), int(42));

    let failures = [
        Error::timeout(Sent::Maybe),
        Error::io(Sent::Maybe, "connection reset"),
        Error::connect("connection refused"),
        Error::circuit_open(Duration::from_secs(1)),
        Error::from_server_reply(b"CLUSTERDOWN The cluster is down"),
        Error::from_server_reply(b"MASTERDOWN Link with MASTER is down"),
        Error::from_server_reply(b"LOADING Redis is loading the dataset in memory"),
    ];
    tokio::time::advance(Duration::from_secs(3)).await;
    for failure in failures {
        let kind = failure.kind().clone();
        script.answer(Err(failure));
        let response = send(&svc, get("k"))
            .await
            .unwrap_or_else(|err| panic!("{kind:?}: {err}"));
        assert_eq!(response.value, redis::Value::Int(42), "{kind:?}");
        assert_eq!(stale_age(&response), Duration::from_secs(3), "{kind:?}");
    }

    // Past the budget: the original error.
    tokio::time::advance(Duration::from_millis(7001)).await;
    script.answer(Err(Error::timeout(Sent::Maybe)));
    let err = send(&svc, get("k")).await.expect_err("too old");
    assert_eq!(err.kind(), &ErrorKind::Timeout);
}

#[tokio::test(start_paused = true)]
async fn a_request_can_only_lower_the_budget() {
    let script = Script::new();
    let layer = StalenessLayer::new(Duration::from_secs(10));
    let svc = layer.layer(script.service());
    script.answer(Ok(int(1)));
    send(&svc, get("k")).await.expect("fresh");
    script.answer(Err(Error::timeout(Sent::Maybe)));

    tokio::time::advance(Duration::from_secs(3)).await;
    let strict = get("k").with_max_staleness(Duration::from_secs(2));
    assert!(send(&svc, strict).await.is_err(), "2 s asked, 3 s old");
    let lenient = get("k").with_max_staleness(Duration::from_secs(60));
    assert_eq!(
        stale_age(&send(&svc, lenient).await.expect("3 s old")),
        Duration::from_secs(3)
    );

    tokio::time::advance(Duration::from_secs(8)).await;
    let lenient = get("k").with_max_staleness(Duration::from_secs(60));
    assert!(
        send(&svc, lenient).await.is_err(),
        "the layer's 10 s still bound it"
    );
}

#[tokio::test(start_paused = true)]
async fn semantic_errors_misses_writes_and_authoritative_reads_are_never_served_stale() {
    let script = Script::new();
    let layer = StalenessLayer::new(Duration::from_secs(10));
    let svc = layer.layer(script.service());
    script.answer(Ok(int(5)));
    send(&svc, get("k")).await.expect("fresh");
    send(&svc, Request::new(redis::cmd("INCR").arg("n").clone()))
        .await
        .expect("write");
    assert_eq!(layer.kept_values(), 1, "only the read is kept");

    script.answer(Err(Error::from_server_reply(
        b"WRONGTYPE Operation against a key holding the wrong kind of value",
    )));
    let err = send(&svc, get("k")).await.expect_err("semantic error");
    assert_eq!(err.kind(), &ErrorKind::WrongType);

    script.answer(Err(Error::timeout(Sent::Maybe)));
    assert!(send(&svc, get("never-read")).await.is_err(), "a plain miss");
    assert!(
        send(&svc, Request::new(redis::cmd("INCR").arg("n").clone()))
            .await
            .is_err(),
        "writes are never answered from the store"
    );
    assert!(
        send(&svc, get("k").authoritative()).await.is_err(),
        "authoritative reads are never served stale"
    );
    assert!(
        send(&svc, get("k")).await.is_ok(),
        "the value is still kept"
    );

    // A request routed to one node is kept apart from the same command elsewhere.
    let info = || Request::new(redis::cmd("GET").arg("k").clone());
    let node = info().with_route(Route::Node(NodeAddr::new("127.0.0.1", 7001)));
    assert!(
        send(&svc, node).await.is_err(),
        "nothing kept for that node"
    );
}

#[tokio::test(start_paused = true)]
async fn an_invalidated_key_is_authoritative_only_until_the_next_good_read() {
    let script = Script::new();
    let layer = StalenessLayer::new(Duration::from_secs(10));
    let svc = layer.layer(script.service());
    script.answer(Ok(int(1)));
    send(&svc, get("k")).await.expect("fresh");
    send(
        &svc,
        Request::new(redis::cmd("HGET").arg("k").arg("f").clone()),
    )
    .await
    .expect("fresh");
    send(&svc, get("other")).await.expect("fresh");

    layer.invalidate("k");
    script.answer(Err(Error::connect("connection refused")));
    assert!(send(&svc, get("k")).await.is_err(), "GET k invalidated");
    assert!(
        send(
            &svc,
            Request::new(redis::cmd("HGET").arg("k").arg("f").clone())
        )
        .await
        .is_err(),
        "every request reading k is invalidated"
    );
    assert!(send(&svc, get("other")).await.is_ok(), "other keys are not");

    script.answer(Ok(int(2)));
    send(&svc, get("k")).await.expect("fresh again");
    script.answer(Err(Error::connect("connection refused")));
    let response = send(&svc, get("k")).await.expect("kept again");
    assert_eq!(response.value, redis::Value::Int(2));

    layer.invalidate_all();
    assert!(send(&svc, get("k")).await.is_err());
    assert!(send(&svc, get("other")).await.is_err());
    assert_eq!(layer.kept_values(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_fetch_that_started_before_an_invalidation_never_writes_its_value_back() {
    let script = Script::new();
    let layer = StalenessLayer::new(Duration::from_secs(10));
    let svc = layer.layer(script.service());
    script.answer(Ok(int(1)));
    send(&svc, get("k")).await.expect("fresh");

    // A read is sent while Redis still has the old value...
    let gate = script.hold();
    let calls = script.calls.load(Ordering::SeqCst);
    let racing = tokio::spawn(svc.clone().oneshot(get("k")));
    for round in 0.. {
        if script.calls.load(Ordering::SeqCst) > calls {
            break;
        }
        assert!(round < 100_000, "the racing read never reached Redis");
        tokio::task::yield_now().await;
    }
    // ...the application writes a new value and invalidates...
    layer.invalidate("k");
    // ...and the old value arrives afterwards.
    gate.add_permits(1);
    assert_eq!(racing.await.expect("task").expect("old value"), int(1));
    *script.gate.lock().expect("gate") = None;

    script.answer(Err(Error::timeout(Sent::Maybe)));
    let err = send(&svc, get("k"))
        .await
        .expect_err("the old value was not kept");
    assert_eq!(err.kind(), &ErrorKind::Timeout);

    // Pruned invalidation records (older than the budget) do not bring it back.
    tokio::time::advance(Duration::from_secs(11)).await;
    assert!(send(&svc, get("k")).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn invalidations_from_a_stream_are_applied() {
    let script = Script::new();
    let layer = StalenessLayer::new(Duration::from_secs(10));
    let svc = layer.layer(script.service());
    script.answer(Ok(int(1)));
    send(&svc, get("a")).await.expect("fresh");
    send(&svc, get("b")).await.expect("fresh");

    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Invalidation>(4);
    let stream = futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    let listener = layer.listen(stream);
    sender
        .send(Invalidation::from("a"))
        .await
        .expect("listener alive");
    drop(sender);
    listener.await.expect("the listener ends with its stream");

    script.answer(Err(Error::timeout(Sent::Maybe)));
    assert!(send(&svc, get("a")).await.is_err());
    assert!(send(&svc, get("b")).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn kept_values_stay_within_the_byte_bound() {
    let script = Script::new();
    let config = StalenessConfig::builder().max_bytes(64 * 1024).build();
    let layer = StalenessLayer::with_config(config);
    let svc = layer.layer(script.service());
    let big = Response::new(
        redis::Value::BulkString(vec![b'x'; 1000]),
        ServedBy::Primary(None),
    );
    script.answer(Ok(big));
    for i in 0..1000 {
        send(&svc, get(&format!("key:{i}"))).await.expect("fresh");
    }
    assert!(layer.kept_values() > 10, "some values are kept");
    assert!(layer.kept_values() < 1000, "not all of them");
    assert!(
        layer.kept_bytes() <= 64 * 1024,
        "{} bytes kept",
        layer.kept_bytes()
    );
}

#[tokio::test(start_paused = true)]
async fn clones_and_routes_built_from_one_layer_share_the_store() {
    let script = Script::new();
    let layer = StalenessLayer::default();
    let route_a = layer.layer(script.service());
    let route_b = layer.clone().layer(script.service());
    script.answer(Ok(int(7)));
    send(&route_a, get("k")).await.expect("fresh");
    script.answer(Err(Error::timeout(Sent::Maybe)));
    let response = send(&route_b, get("k"))
        .await
        .expect("kept by the other route");
    assert_eq!(response.value, redis::Value::Int(7));

    // A stale answer from further in is served but never kept as fresh.
    let inner = StalenessLayer::default();
    let nested = layer.layer(inner.layer(script.service()));
    script.answer(Ok(int(8)));
    send(&nested, get("n")).await.expect("fresh");
    script.answer(Err(Error::timeout(Sent::Maybe)));
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(
        stale_age(&send(&nested, get("n")).await.expect("stale")),
        Duration::from_secs(2)
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(
        stale_age(&send(&nested, get("n")).await.expect("stale")),
        Duration::from_secs(4)
    );
}

#[tokio::test(start_paused = true)]
async fn a_coalesced_answer_is_as_old_as_its_earliest_waiter() {
    let calls = Arc::new(AtomicUsize::new(0));
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let inner = {
        let (calls, failing) = (Arc::clone(&calls), Arc::clone(&failing));
        tower::service_fn(move |_request: Request| {
            calls.fetch_add(1, Ordering::SeqCst);
            let failing = failing.load(Ordering::SeqCst);
            async move {
                if failing {
                    return Err(Error::timeout(Sent::Maybe));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(int(3))
            }
        })
    };
    let svc = tower::ServiceBuilder::new()
        .layer(StalenessLayer::new(Duration::from_secs(10)))
        .layer(redis_resilience_layers::CoalesceLayer::new())
        .service(inner);

    let start = tokio::time::Instant::now();
    let leader = tokio::spawn(svc.clone().oneshot(get("k")));
    tokio::time::sleep(Duration::from_millis(60)).await;
    // Joins the leader's flight, whose answer Redis may have given already.
    let follower = tokio::spawn(svc.clone().oneshot(get("k")));
    assert_eq!(leader.await.expect("task").expect("fresh"), int(3));
    assert_eq!(follower.await.expect("task").expect("fresh"), int(3));
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    failing.store(true, Ordering::SeqCst);
    tokio::time::sleep_until(start + Duration::from_secs(1)).await;
    let age = stale_age(&send(&svc, get("k")).await.expect("stale"));
    assert_eq!(age, Duration::from_secs(1), "aged from the leader's start");
}
