//! CircuitBreakerLayer's state machine against a scripted service, with
//! paused time: thresholds, minimum calls, slow calls, jittered and doubling
//! open durations, half-open permits across clones, hung and cancelled
//! probes, per-node scope, and the handle.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis_resilience_core::{
    Error, ErrorKind, NodeAddr, NodeHealth, Request, Response, Route, Sent, ServedBy, Topology,
};
use redis_resilience_layers::{CircuitBreakerConfig, CircuitBreakerLayer, CircuitState};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

/// What the scripted service does with the next calls.
#[derive(Debug, Clone)]
enum Behaviour {
    Ok,
    Fail(Error),
    /// Answers after this long.
    Slow(Duration),
    /// Never answers.
    Hang,
}

#[derive(Clone)]
struct Script {
    behaviour: Arc<Mutex<Behaviour>>,
    calls: Arc<AtomicUsize>,
}

impl Script {
    fn new() -> Self {
        Self {
            behaviour: Arc::new(Mutex::new(Behaviour::Ok)),
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().expect("script lock") = behaviour;
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn service(
        &self,
    ) -> impl Service<Request, Response = Response, Error = Error, Future: Send> + Clone + Send + 'static
    {
        let script = self.clone();
        tower::service_fn(move |_request: Request| {
            script.calls.fetch_add(1, Ordering::SeqCst);
            let behaviour = script.behaviour.lock().expect("script lock").clone();
            async move {
                match behaviour {
                    Behaviour::Ok => Ok(Response::new(redis::Value::Okay, ServedBy::Primary(None))),
                    Behaviour::Fail(error) => Err(error),
                    Behaviour::Slow(delay) => {
                        tokio::time::sleep(delay).await;
                        Ok(Response::new(redis::Value::Okay, ServedBy::Primary(None)))
                    }
                    Behaviour::Hang => std::future::pending().await,
                }
            }
        })
    }
}

fn get(key: &str) -> Request {
    Request::new(redis::cmd("GET").arg(key).clone())
}

fn timeout() -> Error {
    Error::timeout(Sent::Maybe)
}

fn config() -> CircuitBreakerConfig {
    CircuitBreakerConfig::default()
}

async fn send<S>(svc: &mut S, request: Request) -> Result<Response, Error>
where
    S: Service<Request, Response = Response, Error = Error>,
{
    svc.ready().await?.call(request).await
}

fn is_open(result: &Result<Response, Error>) -> bool {
    matches!(result, Err(err) if matches!(err.kind(), ErrorKind::CircuitOpen { .. }) && err.sent() == Sent::No)
}

#[tokio::test(start_paused = true)]
async fn opens_at_the_failure_rate_once_the_window_has_the_minimum_calls() {
    let script = Script::new();
    let layer = CircuitBreakerLayer::new(config());
    let mut svc = layer.layer(script.service());
    script.set(Behaviour::Fail(timeout()));
    for _ in 0..19 {
        assert!(!is_open(&send(&mut svc, get("k")).await));
    }
    assert_eq!(
        layer.handle().state(None),
        Some(CircuitState::Closed),
        "19 < minimum 20"
    );
    send(&mut svc, get("k")).await.expect_err("20th failure");
    assert_eq!(layer.handle().state(None), Some(CircuitState::Open));

    let before = script.calls();
    let rejected = send(&mut svc, get("k")).await;
    assert!(is_open(&rejected), "{rejected:?}");
    let Err(err) = rejected else { unreachable!() };
    let ErrorKind::CircuitOpen { retry_after } = err.kind() else {
        unreachable!()
    };
    assert!(*retry_after >= Duration::from_secs(4) && *retry_after <= Duration::from_secs(6));
    assert_eq!(
        script.calls(),
        before,
        "an open circuit does not call the service"
    );
}

#[tokio::test(start_paused = true)]
async fn stays_closed_below_the_rate_and_forgets_old_buckets() {
    let script = Script::new();
    let layer = CircuitBreakerLayer::new(config());
    let mut svc = layer.layer(script.service());
    // 9 failures in 20 calls: 45 % < 50 %.
    for i in 0..20 {
        script.set(if i < 9 {
            Behaviour::Fail(timeout())
        } else {
            Behaviour::Ok
        });
        let _ = send(&mut svc, get("k")).await;
    }
    assert_eq!(layer.handle().state(None), Some(CircuitState::Closed));

    // 15 failures, then the window (10 s) moves on; 10 more failures are
    // fewer than the minimum in the window.
    let layer = CircuitBreakerLayer::new(config());
    let mut svc = layer.layer(script.service());
    script.set(Behaviour::Fail(timeout()));
    for _ in 0..15 {
        let _ = send(&mut svc, get("k")).await;
    }
    tokio::time::advance(Duration::from_secs(11)).await;
    for _ in 0..10 {
        let _ = send(&mut svc, get("k")).await;
    }
    assert_eq!(layer.handle().state(None), Some(CircuitState::Closed));
}

#[tokio::test(start_paused = true)]
async fn only_availability_failures_count() {
    let script = Script::new();
    let layer = CircuitBreakerLayer::new(config());
    let mut svc = layer.layer(script.service());
    for reply in [
        "WRONGTYPE Operation against a key holding the wrong kind of value",
        "MOVED 12182 127.0.0.1:7002",
        "ASK 12182 127.0.0.1:7002",
        "NOSCRIPT No matching script.",
        "READONLY You can't write against a read only replica.",
    ] {
        script.set(Behaviour::Fail(Error::from_server_reply(reply.as_bytes())));
        for _ in 0..30 {
            let _ = send(&mut svc, get("k")).await;
        }
    }
    assert_eq!(layer.handle().state(None), Some(CircuitState::Closed));
    for error in [
        Error::connect("refused"),
        Error::io(Sent::Maybe, "reset"),
        Error::from_server_reply(b"LOADING Redis is loading the dataset in memory"),
        Error::from_server_reply(b"CLUSTERDOWN The cluster is down"),
        Error::from_server_reply(b"MASTERDOWN Link with MASTER is down"),
    ] {
        let layer = CircuitBreakerLayer::new(config());
        let mut svc = layer.layer(script.service());
        script.set(Behaviour::Fail(error.clone()));
        for _ in 0..20 {
            let _ = send(&mut svc, get("k")).await;
        }
        assert_eq!(
            layer.handle().state(None),
            Some(CircuitState::Open),
            "{error}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn slow_calls_trip_the_latency_slo() {
    let script = Script::new();
    let slo = CircuitBreakerConfig::builder()
        .slow_call(Duration::from_millis(50), 0.5)
        .build()
        .expect("config");
    let layer = CircuitBreakerLayer::new(slo);
    let mut svc = layer.layer(script.service());
    script.set(Behaviour::Slow(Duration::from_millis(40)));
    for _ in 0..30 {
        send(&mut svc, get("k")).await.expect("fast enough");
    }
    assert_eq!(layer.handle().state(None), Some(CircuitState::Closed));
    script.set(Behaviour::Slow(Duration::from_millis(60)));
    for _ in 0..30 {
        let _ = send(&mut svc, get("k")).await;
    }
    assert_eq!(layer.handle().state(None), Some(CircuitState::Open));
}

/// Opens the breaker of `layer` with 20 timeouts.
async fn trip<S>(svc: &mut S, script: &Script)
where
    S: Service<Request, Response = Response, Error = Error>,
{
    script.set(Behaviour::Fail(timeout()));
    for _ in 0..20 {
        let _ = send(svc, get("k")).await;
    }
}

/// Time until the breaker admits a call again.
async fn time_until_admitted<S>(svc: &mut S, script: &Script) -> Duration
where
    S: Service<Request, Response = Response, Error = Error>,
{
    let started = Instant::now();
    script.set(Behaviour::Fail(timeout()));
    loop {
        let calls = script.calls();
        let _ = send(svc, get("k")).await;
        if script.calls() > calls {
            return started.elapsed();
        }
        tokio::time::advance(Duration::from_millis(10)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn open_durations_are_jittered_and_double_on_consecutive_reopens() {
    let mut firsts = Vec::new();
    for seed_round in 0..8 {
        let script = Script::new();
        let layer = CircuitBreakerLayer::new(config());
        let mut svc = layer.layer(script.service());
        // Different breakers draw different jitter: vary the start time too.
        tokio::time::advance(Duration::from_millis(seed_round * 7)).await;
        trip(&mut svc, &script).await;
        // The probe fails (Behaviour::Fail), so the breaker re-opens, doubled.
        let first = time_until_admitted(&mut svc, &script).await;
        let second = time_until_admitted(&mut svc, &script).await;
        let third = time_until_admitted(&mut svc, &script).await;
        assert!(
            first >= Duration::from_secs(4) && first <= Duration::from_millis(6010),
            "{first:?}"
        );
        assert!(
            second >= Duration::from_secs(8) && second <= Duration::from_millis(12010),
            "{second:?}"
        );
        assert!(
            third >= Duration::from_secs(16) && third <= Duration::from_millis(24010),
            "{third:?}"
        );
        firsts.push(first);
    }
    let min = firsts.iter().min().copied().unwrap_or_default();
    let max = firsts.iter().max().copied().unwrap_or_default();
    assert!(
        max - min >= Duration::from_millis(100),
        "no jitter: {firsts:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn half_open_admits_three_probes_across_clones_then_closes() {
    let script = Script::new();
    let layer = CircuitBreakerLayer::new(config());
    let mut svc = layer.layer(script.service());
    trip(&mut svc, &script).await;
    tokio::time::advance(Duration::from_secs(7)).await;
    assert_eq!(layer.handle().state(None), Some(CircuitState::HalfOpen));

    // Three slow probes through three clones (and a second service from the layer).
    script.set(Behaviour::Slow(Duration::from_millis(100)));
    let probes: Vec<_> = (0..3)
        .map(|i| {
            let svc = if i == 2 {
                layer.layer(script.service())
            } else {
                svc.clone()
            };
            tokio::spawn(svc.oneshot(get("k")))
        })
        .collect();
    tokio::task::yield_now().await;
    let calls = script.calls();
    assert!(
        is_open(&send(&mut svc.clone(), get("k")).await),
        "a fourth probe must wait"
    );
    assert_eq!(script.calls(), calls);
    for probe in probes {
        probe.await.expect("join").expect("probe succeeds");
    }
    assert_eq!(layer.handle().state(None), Some(CircuitState::Closed));
    send(&mut svc, get("k")).await.expect("closed again");
}

#[tokio::test(start_paused = true)]
async fn a_hung_probe_frees_its_permit_and_a_cancelled_one_at_once() {
    let script = Script::new();
    let layer = CircuitBreakerLayer::new(config());
    let mut svc = layer.layer(script.service());
    trip(&mut svc, &script).await;
    tokio::time::advance(Duration::from_secs(7)).await;

    script.set(Behaviour::Hang);
    let hung: Vec<_> = (0..3)
        .map(|_| tokio::spawn(svc.clone().oneshot(get("k"))))
        .collect();
    tokio::task::yield_now().await;
    assert!(
        is_open(&send(&mut svc, get("k")).await),
        "all permits taken"
    );
    // 2× the attempt timeout later, the hung probes no longer hold permits.
    tokio::time::advance(Duration::from_secs(2)).await;
    script.set(Behaviour::Ok);
    send(&mut svc, get("k")).await.expect("a fresh probe");
    for probe in hung {
        probe.abort();
    }

    // A probe whose caller goes away frees its permit at once.
    let script = Script::new();
    let layer = CircuitBreakerLayer::new(config());
    let mut svc = layer.layer(script.service());
    trip(&mut svc, &script).await;
    tokio::time::advance(Duration::from_secs(7)).await;
    script.set(Behaviour::Hang);
    for _ in 0..3 {
        let probe = svc.ready().await.expect("ready").call(get("k"));
        drop(probe);
    }
    script.set(Behaviour::Ok);
    for _ in 0..3 {
        send(&mut svc, get("k")).await.expect("permits were freed");
    }
    assert_eq!(layer.handle().state(None), Some(CircuitState::Closed));
}

/// Keys starting with `a` go to node A, others to node B; replica routes to R.
#[derive(Debug, Clone)]
struct TwoNodes;

impl TwoNodes {
    fn a() -> NodeAddr {
        NodeAddr::new("10.0.0.1", 7000)
    }
    fn b() -> NodeAddr {
        NodeAddr::new("10.0.0.2", 7000)
    }
}

impl Topology for TwoNodes {
    fn node_for(&self, request: &Request) -> Option<NodeAddr> {
        match request.route() {
            Route::Replica(_) => Some(NodeAddr::new("10.0.0.9", 7000)),
            _ => Some(if request.keys().next()?.starts_with(b"a") {
                Self::a()
            } else {
                Self::b()
            }),
        }
    }
    fn replicas_of(&self, _node: &NodeAddr) -> Vec<NodeAddr> {
        Vec::new()
    }
    fn health(&self, _node: &NodeAddr) -> NodeHealth {
        NodeHealth::Unknown
    }
    fn generation(&self) -> u64 {
        0
    }
}

#[tokio::test(start_paused = true)]
async fn per_node_breakers_keep_one_sick_node_from_stopping_the_others() {
    let script = Script::new();
    let layer = CircuitBreakerLayer::per_node(TwoNodes, config());
    let mut svc = layer.layer(script.service());
    script.set(Behaviour::Fail(timeout()));
    for _ in 0..20 {
        let _ = send(&mut svc, get("a:key")).await;
    }
    let handle = layer.handle();
    assert_eq!(handle.state(Some(&TwoNodes::a())), Some(CircuitState::Open));
    assert_eq!(
        handle.state(Some(&TwoNodes::b())),
        Some(CircuitState::Closed)
    );
    assert!(is_open(&send(&mut svc, get("a:key")).await));
    script.set(Behaviour::Ok);
    send(&mut svc, get("b:key"))
        .await
        .expect("node B is healthy");
    assert_eq!(handle.state(None), None, "a per-node breaker needs a node");

    // The handle forces and resets.
    handle.force_open(Some(&TwoNodes::b()));
    assert!(is_open(&send(&mut svc, get("b:key")).await));
    handle.force_closed(Some(&TwoNodes::a()));
    send(&mut svc, get("a:key")).await.expect("forced closed");
    handle.reset(Some(&TwoNodes::b()));
    send(&mut svc, get("b:key")).await.expect("reset");
    assert_eq!(
        handle.state(Some(&TwoNodes::b())),
        Some(CircuitState::Closed)
    );
}

#[test]
fn absurd_configuration_is_refused() {
    let bad: Vec<Result<CircuitBreakerConfig, String>> = vec![
        CircuitBreakerConfig::builder().failure_rate(0.0).build(),
        CircuitBreakerConfig::builder().failure_rate(1.5).build(),
        CircuitBreakerConfig::builder().minimum_calls(0).build(),
        CircuitBreakerConfig::builder().half_open_probes(0).build(),
        CircuitBreakerConfig::builder()
            .window(Duration::ZERO, 10)
            .build(),
        CircuitBreakerConfig::builder()
            .window(Duration::from_secs(1), 0)
            .build(),
        CircuitBreakerConfig::builder()
            .open_duration(Duration::from_secs(10), Duration::from_secs(1))
            .build(),
        CircuitBreakerConfig::builder().jitter(1.0).build(),
        CircuitBreakerConfig::builder()
            .slow_call(Duration::ZERO, 0.5)
            .build(),
    ];
    for result in bad {
        assert!(result.is_err(), "{result:?}");
    }
}
