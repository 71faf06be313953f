//! SecondaryStoreLayer against scripted services with paused time: which
//! failures reach the store, coalescing and the rate limit on the secondary
//! path, timeouts, deadlines, loader errors, and cache-aside with write-back.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::Value;
use redis_resilience_core::{Error, ErrorKind, Request, Response, Sent, ServedBy};
use redis_resilience_layers::SecondaryStoreLayer;
use redis_resilience_layers::secondary::{Lookup, Quota, SecondaryStoreConfig};
use tower::{Layer, Service, ServiceExt};

/// Redis: answers `answer` to every call and records the commands it got.
#[derive(Clone)]
struct Redis {
    answer: Arc<Mutex<Result<Response, Error>>>,
    commands: Arc<Mutex<Vec<Vec<String>>>>,
}

impl Redis {
    fn failing(error: Error) -> Self {
        Self {
            answer: Arc::new(Mutex::new(Err(error))),
            commands: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn answering(value: Value) -> Self {
        let redis = Self::failing(Error::connect("unused"));
        *redis.answer.lock().expect("answer") = Ok(Response::new(value, ServedBy::Primary(None)));
        redis
    }

    fn commands(&self) -> Vec<Vec<String>> {
        self.commands.lock().expect("commands").clone()
    }

    fn service(
        &self,
    ) -> impl Service<Request, Response = Response, Error = Error, Future: Send> + Clone + Send + 'static
    {
        let redis = self.clone();
        tower::service_fn(move |request: Request| {
            if let redis_resilience_core::Command::Single(cmd) = request.command() {
                let args = cmd
                    .args_iter()
                    .map(|arg| match arg {
                        redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                        _ => "cursor".to_owned(),
                    })
                    .collect();
                redis.commands.lock().expect("commands").push(args);
            }
            let answer = redis.answer.lock().expect("answer").clone();
            async move { answer }
        })
    }
}

/// The store: `key:<n>` holds `value:<n>`, `missing` holds nothing, after `delay`.
#[derive(Clone)]
struct Store {
    calls: Arc<AtomicUsize>,
    delay: Duration,
}

impl Store {
    fn new(delay: Duration) -> Self {
        Self {
            calls: Arc::new(AtomicUsize::new(0)),
            delay,
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn layer(
        &self,
        config: SecondaryStoreConfig,
    ) -> SecondaryStoreLayer<
        impl Service<Lookup, Response = Option<Value>, Error = std::io::Error, Future: Send + 'static>
        + Clone
        + Send
        + 'static,
    > {
        let store = self.clone();
        let loader = tower::service_fn(move |lookup: Lookup| {
            store.calls.fetch_add(1, Ordering::SeqCst);
            let delay = store.delay;
            async move {
                tokio::time::sleep(delay).await;
                match lookup.key_str() {
                    Some("broken") => Err(std::io::Error::other("database is down")),
                    Some("panics") => panic!("loader bug"),
                    Some(key) if key.starts_with("key:") => Ok(Some(Value::BulkString(
                        key.replacen("key:", "value:", 1).into_bytes(),
                    ))),
                    _ => Ok(None),
                }
            }
        });
        SecondaryStoreLayer::with_config(loader, config)
    }
}

fn get(key: &str) -> Request {
    Request::new(redis::cmd("GET").arg(key).clone())
}

fn bulk(text: &str) -> Value {
    Value::BulkString(text.as_bytes().to_vec())
}

fn unlimited() -> SecondaryStoreConfig {
    SecondaryStoreConfig::builder().unlimited().build()
}

#[tokio::test(start_paused = true)]
async fn when_redis_cannot_answer_the_store_does() {
    let store = Store::new(Duration::from_millis(5));
    let redis = Redis::failing(Error::connect("connection refused"));
    let svc = store.layer(unlimited()).layer(redis.service());

    let response = svc.clone().oneshot(get("key:1")).await.expect("answered");
    assert_eq!(response.value, bulk("value:1"));
    assert_eq!(response.served_by, ServedBy::Secondary);
    let missing = svc.clone().oneshot(get("missing")).await.expect("answered");
    assert_eq!(missing.value, Value::Nil);
    assert_eq!(missing.served_by, ServedBy::Secondary);
    assert_eq!(store.calls(), 2);

    for failure in [
        Error::timeout(Sent::Maybe),
        Error::circuit_open(Duration::from_secs(1)),
        Error::from_server_reply(b"CLUSTERDOWN The cluster is down"),
    ] {
        *redis.answer.lock().expect("answer") = Err(failure);
        let response = svc.clone().oneshot(get("key:2")).await.expect("answered");
        assert_eq!(response.served_by, ServedBy::Secondary);
    }
}

#[tokio::test(start_paused = true)]
async fn semantic_errors_writes_and_other_requests_never_reach_the_store() {
    let store = Store::new(Duration::ZERO);
    let redis = Redis::failing(Error::from_server_reply(
        b"WRONGTYPE Operation against a key holding the wrong kind of value",
    ));
    let svc = store.layer(unlimited()).layer(redis.service());
    let err = svc
        .clone()
        .oneshot(get("key:1"))
        .await
        .expect_err("semantic");
    assert_eq!(err.kind(), &ErrorKind::WrongType);

    *redis.answer.lock().expect("answer") = Err(Error::connect("connection refused"));
    let requests = [
        Request::new(redis::cmd("SET").arg("key:1").arg("v").clone()),
        get("key:1").authoritative(),
        Request::new(redis::cmd("HGET").arg("key:1").arg("f").clone()),
        Request::new(redis::cmd("MGET").arg("key:1").arg("key:2").clone()),
        Request::pipeline(redis::pipe().get("key:1").clone()),
    ];
    for request in requests {
        let err = svc
            .clone()
            .oneshot(request)
            .await
            .expect_err("not for the store");
        assert_eq!(err.kind(), &ErrorKind::Connect);
    }
    assert_eq!(store.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn identical_lookups_share_one_call_to_the_store() {
    let store = Store::new(Duration::from_millis(50));
    let redis = Redis::failing(Error::connect("connection refused"));
    let layer = store.layer(unlimited());
    let svc = layer.layer(redis.service());
    let callers: Vec<_> = (0..200)
        .map(|_| tokio::spawn(svc.clone().oneshot(get("key:7"))))
        .collect();
    for caller in callers {
        let response = caller.await.expect("task").expect("answered");
        assert_eq!(response.value, bulk("value:7"));
    }
    assert_eq!(store.calls(), 1);
    assert_eq!(layer.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_rate_limit_bounds_calls_to_the_store() {
    let store = Store::new(Duration::ZERO);
    let redis = Redis::failing(Error::connect("connection refused"));
    let quota = Quota::per_second(NonZeroU32::new(5).expect("non-zero"));
    let config = SecondaryStoreConfig::builder().rate_limit(quota).build();
    let svc = store.layer(config).layer(redis.service());

    let mut answered = 0;
    let mut limited = 0;
    for i in 0..20 {
        match svc.clone().oneshot(get(&format!("key:{i}"))).await {
            Ok(_) => answered += 1,
            Err(err) => {
                let ErrorKind::RateLimited { retry_after } = err.kind() else {
                    panic!("unexpected {err:?}");
                };
                assert!(
                    *retry_after > Duration::ZERO && *retry_after <= Duration::from_millis(200)
                );
                assert_eq!(err.sent(), Sent::No);
                limited += 1;
            }
        }
    }
    assert_eq!((answered, limited), (5, 15), "the burst, then refusals");
    assert_eq!(store.calls(), 5);

    // One more call every 200 ms.
    tokio::time::advance(Duration::from_millis(200)).await;
    assert!(svc.clone().oneshot(get("key:100")).await.is_ok());
    assert!(svc.clone().oneshot(get("key:101")).await.is_err());
    assert_eq!(store.calls(), 6);
}

#[tokio::test(start_paused = true)]
async fn store_timeouts_errors_and_panics_are_secondary_errors_and_deadlines_hold() {
    let redis = Redis::failing(Error::timeout(Sent::Maybe));

    let slow = Store::new(Duration::from_secs(5));
    let config = SecondaryStoreConfig::builder()
        .unlimited()
        .timeout(Duration::from_millis(100))
        .build();
    let svc = slow.layer(config).layer(redis.service());
    let start = tokio::time::Instant::now();
    let err = svc
        .clone()
        .oneshot(get("key:1"))
        .await
        .expect_err("timeout");
    assert_eq!(err.kind(), &ErrorKind::Secondary);
    assert!(err.to_string().contains("timed out"), "{err}");
    assert_eq!(start.elapsed(), Duration::from_millis(100));

    // The request's own deadline comes first.
    let start = tokio::time::Instant::now();
    let hasty = get("key:2").with_deadline((start + Duration::from_millis(30)).into_std());
    let err = svc.clone().oneshot(hasty).await.expect_err("deadline");
    assert_eq!(err.kind(), &ErrorKind::Timeout);
    assert_eq!(start.elapsed(), Duration::from_millis(30));

    let store = Store::new(Duration::ZERO);
    let layer = store.layer(unlimited());
    let svc = layer.layer(redis.service());
    let err = svc
        .clone()
        .oneshot(get("broken"))
        .await
        .expect_err("store error");
    assert_eq!(err.kind(), &ErrorKind::Secondary);
    assert!(
        std::error::Error::source(&err).is_some(),
        "the loader's error is kept"
    );
    let err = svc
        .clone()
        .oneshot(get("panics"))
        .await
        .expect_err("loader panic");
    assert_eq!(err.kind(), &ErrorKind::Secondary);
    assert_eq!(layer.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn cache_aside_asks_the_store_on_a_miss_and_writes_the_value_back() {
    let store = Store::new(Duration::ZERO);
    let redis = Redis::answering(Value::Nil);
    let config = SecondaryStoreConfig::builder()
        .unlimited()
        .on_miss(Duration::from_secs(60))
        .build();
    let svc = store.layer(config).layer(redis.service());

    let response = svc.clone().oneshot(get("key:3")).await.expect("answered");
    assert_eq!(response.value, bulk("value:3"));
    assert_eq!(response.served_by, ServedBy::Secondary);
    assert_eq!(
        redis.commands(),
        vec![
            vec!["GET".to_owned(), "key:3".to_owned()],
            ["SET", "key:3", "value:3", "PX", "60000", "NX"]
                .map(str::to_owned)
                .to_vec(),
        ]
    );

    // Nothing in the store either: Redis's own nil, and nothing written.
    let response = svc.clone().oneshot(get("missing")).await.expect("answered");
    assert_eq!(response.value, Value::Nil);
    assert_eq!(response.served_by, ServedBy::Primary(None));
    assert_eq!(redis.commands().len(), 3);

    // A hit in Redis never reaches the store.
    *redis.answer.lock().expect("answer") =
        Ok(Response::new(bulk("cached"), ServedBy::Primary(None)));
    let calls = store.calls();
    let response = svc.clone().oneshot(get("key:3")).await.expect("answered");
    assert_eq!(response.value, bulk("cached"));
    assert_eq!(store.calls(), calls);
}
