//! ReplicaFallbackLayer against a scripted service: which failures send a
//! read to a replica, what never goes there, and an open primary circuit
//! sending reads to a replica without calling the primary.

use std::sync::{Arc, Mutex};

use redis_resilience_core::{
    Error, ErrorKind, NodeAddr, NodeHealth, ReadFrom, Request, Response, Route, Sent, ServedBy,
    Topology,
};
use redis_resilience_layers::{CircuitBreakerConfig, CircuitBreakerLayer, ReplicaFallbackLayer};
use tower::{Layer, ServiceBuilder, ServiceExt};

/// Records every route it is called with; the primary answers `primary`,
/// replicas answer `replica`.
#[derive(Clone)]
struct Nodes {
    routes: Arc<Mutex<Vec<Route>>>,
    primary: Result<Response, Error>,
    replica: Result<Response, Error>,
}

impl Nodes {
    fn new(primary: Result<Response, Error>) -> Self {
        Self {
            routes: Arc::new(Mutex::new(Vec::new())),
            primary,
            replica: Ok(Response::new(redis::Value::Int(1), ServedBy::Replica(None))),
        }
    }

    fn routes(&self) -> Vec<Route> {
        self.routes.lock().expect("routes").clone()
    }

    fn service(
        &self,
    ) -> impl tower::Service<Request, Response = Response, Error = Error, Future: Send>
    + Clone
    + Send
    + 'static {
        let nodes = self.clone();
        tower::service_fn(move |request: Request| {
            nodes
                .routes
                .lock()
                .expect("routes")
                .push(request.route().clone());
            let answer = match request.route() {
                Route::Replica(_) => nodes.replica.clone(),
                _ => nodes.primary.clone(),
            };
            async move { answer }
        })
    }
}

fn get() -> Request {
    Request::new(redis::cmd("GET").arg("k").clone())
}

fn replica_route() -> Route {
    Route::Replica(ReadFrom::LowestLag)
}

#[tokio::test]
async fn availability_failures_of_reads_go_to_a_replica_once() {
    for error in [
        Error::connect("refused"),
        Error::timeout(Sent::Maybe),
        Error::io(Sent::Maybe, "reset"),
        Error::circuit_open(std::time::Duration::from_secs(1)),
        Error::from_server_reply(b"MASTERDOWN Link with MASTER is down"),
    ] {
        let nodes = Nodes::new(Err(error.clone()));
        let svc = ReplicaFallbackLayer::new().layer(nodes.service());
        let response = svc.oneshot(get()).await.expect("served by a replica");
        assert!(
            matches!(response.served_by, ServedBy::Replica(_)),
            "{error}"
        );
        assert_eq!(
            nodes.routes(),
            vec![Route::Auto, replica_route()],
            "{error}"
        );
    }
}

#[tokio::test]
async fn writes_authoritative_reads_and_semantic_errors_never_go_to_a_replica() {
    let refused = Error::connect("refused");
    let cases = [
        Request::new(redis::cmd("SET").arg("k").arg("v").clone()),
        Request::new(redis::cmd("INCR").arg("k").clone()),
        get().authoritative(),
        get().with_route(Route::Node(NodeAddr::new("10.0.0.1", 7000))),
    ];
    for request in cases {
        let nodes = Nodes::new(Err(refused.clone()));
        let svc = ReplicaFallbackLayer::new().layer(nodes.service());
        let err = svc
            .oneshot(request.clone())
            .await
            .expect_err("not re-routed");
        assert_eq!(err.kind(), &ErrorKind::Connect);
        assert_eq!(nodes.routes().len(), 1, "{:?}", request.info().name());
    }
    for reply in [
        "WRONGTYPE Operation against a key holding the wrong kind of value",
        "MOVED 1 127.0.0.1:7000",
        "LOADING Redis is loading the dataset in memory",
    ] {
        let nodes = Nodes::new(Err(Error::from_server_reply(reply.as_bytes())));
        let svc = ReplicaFallbackLayer::new().layer(nodes.service());
        svc.oneshot(get()).await.expect_err("not a fallback case");
        assert_eq!(nodes.routes(), vec![Route::Auto], "{reply}");
    }
}

#[tokio::test]
async fn when_the_replica_fails_too_the_primary_error_is_returned() {
    let mut nodes = Nodes::new(Err(Error::timeout(Sent::Maybe)));
    nodes.replica = Err(Error::new(ErrorKind::NoReplicaAvailable, Sent::No, "none"));
    let svc = ReplicaFallbackLayer::new().layer(nodes.service());
    let err = svc.oneshot(get()).await.expect_err("nobody answers");
    assert_eq!(err.kind(), &ErrorKind::Timeout);
    assert_eq!(nodes.routes().len(), 2);

    // Success on the primary: nothing else happens.
    let nodes = Nodes::new(Ok(Response::new(
        redis::Value::Nil,
        ServedBy::Primary(None),
    )));
    let svc = ReplicaFallbackLayer::new()
        .read_from(ReadFrom::AnyHealthy)
        .layer(nodes.service());
    let response = svc.oneshot(get()).await.expect("primary answers");
    assert!(response.served_by.is_primary());
    assert_eq!(nodes.routes(), vec![Route::Auto]);
}

/// The primary is node P, replicas are node R.
#[derive(Debug, Clone)]
struct PrimaryAndReplica;

impl PrimaryAndReplica {
    fn primary() -> NodeAddr {
        NodeAddr::new("10.0.0.1", 6379)
    }
}

impl Topology for PrimaryAndReplica {
    fn node_for(&self, request: &Request) -> Option<NodeAddr> {
        Some(match request.route() {
            Route::Replica(_) => NodeAddr::new("10.0.0.2", 6379),
            _ => Self::primary(),
        })
    }
    fn replicas_of(&self, _node: &NodeAddr) -> Vec<NodeAddr> {
        vec![NodeAddr::new("10.0.0.2", 6379)]
    }
    fn health(&self, _node: &NodeAddr) -> NodeHealth {
        NodeHealth::Unknown
    }
    fn generation(&self) -> u64 {
        0
    }
}

#[tokio::test]
async fn an_open_primary_circuit_sends_reads_to_a_replica_without_calling_the_primary() {
    let nodes = Nodes::new(Ok(Response::new(
        redis::Value::Nil,
        ServedBy::Primary(None),
    )));
    let breaker = CircuitBreakerLayer::per_node(PrimaryAndReplica, CircuitBreakerConfig::default());
    breaker
        .handle()
        .force_open(Some(&PrimaryAndReplica::primary()));
    let svc = ServiceBuilder::new()
        .layer(ReplicaFallbackLayer::new())
        .layer(breaker)
        .service(nodes.service());
    let response = svc.oneshot(get()).await.expect("replica answers");
    assert!(matches!(response.served_by, ServedBy::Replica(_)));
    // The primary was never called: its breaker failed the call in `call`.
    assert_eq!(nodes.routes(), vec![replica_route()]);
}

/// The mock's errors turned back into core errors.
fn to_core(error: tower::BoxError) -> Error {
    match error.downcast::<Error>() {
        Ok(error) => *error,
        Err(other) => Error::io(Sent::No, other.to_string()),
    }
}

#[tokio::test]
async fn the_fallback_waits_for_the_service_to_be_ready_again() {
    let (mock, mut handle) = tower_test::mock::pair::<Request, Response>();
    let svc =
        ReplicaFallbackLayer::new().layer(mock.map_err(to_core as fn(tower::BoxError) -> Error));
    // Room for the primary attempt only.
    handle.allow(1);
    let call = tokio::spawn(svc.oneshot(get()));
    let (primary, reply) = handle.next_request().await.expect("primary attempt");
    assert_eq!(primary.route(), &Route::Auto);
    reply.send_error(Error::connect("refused"));
    // The fallback is pending on readiness now; let it through.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(
        !call.is_finished(),
        "gave up while the service was not ready"
    );
    handle.allow(1);
    let (replica, reply) = handle.next_request().await.expect("replica attempt");
    assert_eq!(replica.route(), &replica_route());
    reply.send_response(Response::new(redis::Value::Int(7), ServedBy::Replica(None)));
    let response = call.await.expect("join").expect("served by the replica");
    assert_eq!(response.value, redis::Value::Int(7));
}
