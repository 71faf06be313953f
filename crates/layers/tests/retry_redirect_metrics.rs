//! The counters RetryLayer and RedirectLayer record. One test in its own
//! binary: it installs the process-wide metrics recorder.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use redis_resilience_core::{Error, Request, Response, ServedBy};
use redis_resilience_layers::{RedirectLayer, RetryBudget, RetryLayer, RetryPolicy};
use tower::{ServiceBuilder, ServiceExt, service_fn};

/// Counts every counter by `name{label=value,…}`.
#[derive(Debug, Clone, Default)]
struct Counters(Arc<Mutex<BTreeMap<String, Arc<AtomicU64>>>>);

impl Counters {
    fn get(&self, key: &str) -> u64 {
        self.0
            .lock()
            .expect("counters lock")
            .get(key)
            .map_or(0, |count| count.load(Ordering::SeqCst))
    }
}

impl Recorder for Counters {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let labels: Vec<String> = key
            .labels()
            .map(|label| format!("{}={}", label.key(), label.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        let count = Arc::clone(
            self.0
                .lock()
                .expect("counters lock")
                .entry(name)
                .or_default(),
        );
        Counter::from_arc(count)
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

fn get() -> Request {
    Request::new(redis::cmd("GET").arg("user:42").clone())
}

#[tokio::test(start_paused = true)]
async fn retry_outcomes_and_redirect_kinds_are_counted() {
    let counters = Counters::default();
    metrics::set_global_recorder(counters.clone()).expect("the only recorder");

    // The mock answers from a script, then with success.
    let script: Arc<Mutex<VecDeque<Error>>> = Arc::default();
    let answers = Arc::clone(&script);
    let redis = service_fn(move |_request: Request| {
        let answer = answers.lock().expect("script lock").pop_front();
        async move {
            match answer {
                Some(error) => Err(error),
                None => Ok(Response::new(redis::Value::Okay, ServedBy::Primary(None))),
            }
        }
    });
    let budget = RetryBudget::builder()
        .ratio(0.0)
        .min_per_second(0)
        .burst(2)
        .build();
    let policy = RetryPolicy::builder()
        .max_attempts(2)
        .budget(budget)
        .seed(3)
        .build();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new(policy))
        .layer(RedirectLayer::new())
        .service(redis);
    let send = |errors: Vec<Error>, request: Request| {
        script.lock().expect("script lock").extend(errors);
        svc.clone().oneshot(request)
    };
    let refused = || Error::connect("connection refused");
    let outcome =
        |name: &str| counters.get(&format!("redis_retry_attempts_total{{outcome={name}}}"));

    assert!(send(vec![refused()], get()).await.is_ok());
    assert_eq!(outcome("retried"), 1);
    assert_eq!(outcome("success_after_retry"), 1);

    assert!(send(vec![refused(), refused()], get()).await.is_err());
    assert_eq!(outcome("retried"), 2);
    assert_eq!(outcome("exhausted"), 1);

    // The budget (2) is spent.
    assert!(send(vec![refused()], get()).await.is_err());
    assert_eq!(outcome("budget_exhausted"), 1);
    script.lock().expect("script lock").clear();

    let wrongtype = Error::from_server_reply(b"WRONGTYPE Operation against a key");
    assert!(send(vec![wrongtype], get()).await.is_err());
    assert_eq!(outcome("not_retryable"), 1);

    let now = tokio::time::Instant::now().into_std();
    let late = get().with_deadline(now + Duration::from_nanos(1));
    assert!(send(vec![refused()], late).await.is_err());
    assert_eq!(outcome("deadline"), 1);

    let redirects = vec![
        Error::from_server_reply(b"MOVED 1 127.0.0.1:7001"),
        Error::from_server_reply(b"ASK 1 127.0.0.1:7002"),
        Error::from_server_reply(b"MOVED 1 127.0.0.1:7003"),
    ];
    assert!(send(redirects, get()).await.is_ok());
    assert_eq!(counters.get("redis_redirects_total{kind=moved}"), 2);
    assert_eq!(counters.get("redis_redirects_total{kind=ask}"), 1);
    // Redirects are no retries.
    assert_eq!(outcome("retried"), 2);
    assert_eq!(outcome("success_after_retry"), 1);
}
