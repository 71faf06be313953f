//! The variants `layer_overhead` times and `layer_allocations` counts: each
//! layer alone and the full recommended stack, over an in-memory service
//! that answers at once.
//!
//! Every variant sends GETs of 1 024 keys in turn (SETs for `*/set`) through
//! the same driver: one current-thread tokio runtime, `ready().await` then
//! `call(..).await` in a loop (the runtime is needed by `CoalesceLayer`, which
//! spawns its flights; every other layer answers on the first poll). The
//! inner service returns a 100-byte bulk string for a read (one allocation,
//! counted in `bare` too) and `OK` for a write. No tracing subscriber and no
//! metrics recorder are installed: Observe's span and the layers' counters
//! are the disabled kind an application without them pays for. The
//! per-node circuit breaker asks a one-node `Topology` for the node.

use std::future::Ready;
use std::hint::black_box;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use redis_resilience::layers::secondary::{LoaderFn, Lookup};
use redis_resilience::layers::{
    CircuitBreakerConfig, CircuitBreakerLayer, CoalesceLayer, ObserveLayer, RedirectLayer,
    ReplicaFallbackLayer, RetryLayer, RetryPolicy, SecondaryStoreLayer, StalenessLayer,
};
use redis_resilience::{Error, NodeAddr, NodeHealth, Request, Response, ServedBy, Topology};
use tower::{Service, ServiceBuilder, ServiceExt};

/// Keys the variants cycle through (a power of two).
const KEYS: usize = 1024;
/// The value a read returns.
const VALUE: [u8; 100] = [b'v'; 100];

/// The in-memory service: answers at once, with a ready future.
#[derive(Debug, Clone, Copy)]
struct Answer;

impl Service<Request> for Answer {
    type Response = Response;
    type Error = Error;
    type Future = Ready<Result<Response, Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let value = if request.info().is_readonly() {
            redis::Value::BulkString(VALUE.to_vec())
        } else {
            redis::Value::Okay
        };
        std::future::ready(Ok(Response::new(value, ServedBy::Primary(None))))
    }
}

/// One node for every request: what a per-node circuit breaker asks
/// `RedisService`'s topology on every call.
#[derive(Debug)]
struct OneNode(NodeAddr);

impl Topology for OneNode {
    fn node_for(&self, _request: &Request) -> Option<NodeAddr> {
        Some(self.0.clone())
    }

    fn replicas_of(&self, _node: &NodeAddr) -> Vec<NodeAddr> {
        Vec::new()
    }

    fn health(&self, _node: &NodeAddr) -> NodeHealth {
        NodeHealth::Healthy
    }

    fn generation(&self) -> u64 {
        0
    }
}

fn one_node() -> OneNode {
    OneNode(NodeAddr::new("127.0.0.1", 6379))
}

/// What the secondary store's loader answers.
type Loaded = Ready<Result<Option<redis::Value>, std::io::Error>>;
/// The secondary store's loader, an fn pointer.
type Loader = LoaderFn<fn(Lookup) -> Loaded>;

/// The secondary store's loader: never called on the success path.
fn secondary() -> SecondaryStoreLayer<Loader> {
    fn load(_lookup: Lookup) -> Loaded {
        std::future::ready(Ok(None))
    }
    SecondaryStoreLayer::from_fn(load as fn(Lookup) -> Loaded)
}

fn requests(write: bool) -> Vec<Request> {
    (0..KEYS)
        .map(|i| {
            let key = format!("bench:{i}");
            let cmd = if write {
                redis::cmd("SET").arg(key).arg(&VALUE[..]).clone()
            } else {
                redis::cmd("GET").arg(key).clone()
            };
            Request::new(cmd)
        })
        .collect()
}

/// Runs `n` requests through the variant and returns how long they took.
pub(crate) type Run = Box<dyn FnMut(u64) -> Duration>;

/// One service under test.
pub(crate) struct Variant {
    /// Its name, as criterion and the tables show it.
    pub(crate) name: &'static str,
    /// The variant whose cost is subtracted to get the overhead.
    pub(crate) baseline: &'static str,
    /// The per-layer targets of issue 9, in ns.
    pub(crate) target_ns: Option<f64>,
    /// The size of the variant's response future, in bytes.
    pub(crate) future_bytes: usize,
    /// Sends `n` requests.
    pub(crate) run: Run,
}

/// A variant: `service` driven by a current-thread runtime of its own.
fn variant<S>(
    name: &'static str,
    baseline: &'static str,
    target_ns: Option<f64>,
    write: bool,
    mut service: S,
) -> Variant
where
    S: Service<Request, Response = Response, Error = Error> + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime");
    let future_bytes = size_of::<S::Future>();
    let requests = requests(write);
    let run = move |n: u64| {
        runtime.block_on(async {
            let started = Instant::now();
            for i in 0..n {
                let request = requests[(i as usize) & (KEYS - 1)].clone();
                let service = service.ready().await.expect("always ready");
                let response = service.call(request).await.expect("answers");
                black_box(response);
            }
            started.elapsed()
        })
    };
    Variant {
        name,
        baseline,
        target_ns,
        future_bytes,
        run: Box::new(run),
    }
}

fn breaker_config() -> CircuitBreakerConfig {
    CircuitBreakerConfig::default()
}

/// Every variant, `bare` first.
pub(crate) fn variants() -> Vec<Variant> {
    let full = || {
        ServiceBuilder::new()
            .layer(ObserveLayer::new())
            .layer(secondary())
            .layer(StalenessLayer::new(Duration::from_secs(60)))
            .layer(CoalesceLayer::new())
            .layer(RetryLayer::new(RetryPolicy::default()))
            .layer(ReplicaFallbackLayer::new())
            .layer(CircuitBreakerLayer::per_node(one_node(), breaker_config()))
            .layer(RedirectLayer::new())
            .service(Answer)
    };
    vec![
        variant("bare", "bare", None, false, Answer),
        variant(
            "observe",
            "bare",
            Some(50.0),
            false,
            ObserveLayer::new().layer_on(Answer),
        ),
        variant(
            "retry",
            "bare",
            Some(50.0),
            false,
            RetryLayer::new(RetryPolicy::default()).layer_on(Answer),
        ),
        variant(
            "redirect",
            "bare",
            Some(50.0),
            false,
            RedirectLayer::new().layer_on(Answer),
        ),
        variant(
            "circuit_breaker/global",
            "bare",
            Some(50.0),
            false,
            CircuitBreakerLayer::new(breaker_config()).layer_on(Answer),
        ),
        variant(
            "circuit_breaker/per_node",
            "bare",
            Some(50.0),
            false,
            CircuitBreakerLayer::per_node(one_node(), breaker_config()).layer_on(Answer),
        ),
        variant(
            "replica_fallback",
            "bare",
            Some(50.0),
            false,
            ReplicaFallbackLayer::new().layer_on(Answer),
        ),
        variant(
            "coalesce",
            "bare",
            Some(250.0),
            false,
            CoalesceLayer::new().layer_on(Answer),
        ),
        variant(
            "staleness",
            "bare",
            Some(250.0),
            false,
            StalenessLayer::new(Duration::from_secs(60)).layer_on(Answer),
        ),
        variant(
            "secondary_store",
            "bare",
            None,
            false,
            secondary().layer_on(Answer),
        ),
        variant("full_stack", "bare", Some(600.0), false, full()),
        variant("bare/set", "bare/set", None, true, Answer),
        variant("full_stack/set", "bare/set", Some(600.0), true, full()),
    ]
}

/// `layer.layer(inner)`, reading outside-in.
trait LayerOn<S> {
    type Service;
    fn layer_on(&self, inner: S) -> Self::Service;
}

impl<L: tower::Layer<S>, S> LayerOn<S> for L {
    type Service = L::Service;
    fn layer_on(&self, inner: S) -> Self::Service {
        self.layer(inner)
    }
}
