//! ObserveLayer: the routing metrics by status, and the span's fields, with
//! raw keys only when opted in. Its own binary: it sets a local recorder and
//! a default subscriber.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use redis_resilience_core::{Error, Request, Response, ServedBy};
use redis_resilience_layers::ObserveLayer;
use tower::{Layer, ServiceExt, service_fn};
use tracing_subscriber::fmt::format::FmtSpan;

/// Counts counters and histogram samples by `name{label=value}`.
#[derive(Debug, Clone, Default)]
struct Recorded(Arc<Mutex<BTreeMap<String, Arc<AtomicU64>>>>);

impl Recorded {
    fn slot(&self, key: &Key) -> Arc<AtomicU64> {
        let labels: Vec<String> = key
            .labels()
            .map(|label| format!("{}={}", label.key(), label.value()))
            .collect();
        let name = format!("{}{{{}}}", key.name(), labels.join(","));
        Arc::clone(self.0.lock().expect("lock").entry(name).or_default())
    }

    fn get(&self, name: &str) -> u64 {
        self.0
            .lock()
            .expect("lock")
            .get(name)
            .map_or(0, |n| n.load(Ordering::SeqCst))
    }
}

struct Samples(Arc<AtomicU64>);

impl metrics::HistogramFn for Samples {
    fn record(&self, _value: f64) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Recorder for Recorded {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.slot(key))
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(Samples(self.slot(key))))
    }
}

/// A writer the fmt subscriber prints into.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn run(layer: ObserveLayer, answers: Vec<Result<Response, Error>>) -> (Recorded, String) {
    let recorded = Recorded::default();
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    metrics::with_local_recorder(&recorded, || {
        tracing::subscriber::with_default(subscriber, || {
            runtime.block_on(async {
                for answer in answers {
                    let svc = layer.layer(service_fn(move |_request: Request| {
                        let answer = answer.clone();
                        async move { answer }
                    }));
                    let _ = svc
                        .oneshot(Request::new(redis::cmd("GET").arg("user:42:email").clone()))
                        .await;
                }
            });
        });
    });
    let text = String::from_utf8_lossy(&buffer.0.lock().expect("lock")).into_owned();
    (recorded, text)
}

#[test]
fn statuses_are_counted_from_who_answered() {
    let ok = |served_by| Ok(Response::new(redis::Value::Nil, served_by));
    let (recorded, _) = run(
        ObserveLayer::new(),
        vec![
            ok(ServedBy::Primary(None)),
            ok(ServedBy::Primary(None)),
            ok(ServedBy::Replica(None)),
            ok(ServedBy::Stale {
                age: std::time::Duration::from_secs(1),
            }),
            ok(ServedBy::Secondary),
            Err(Error::connect("refused")),
        ],
    );
    let count = |status: &str| {
        recorded.get(&format!(
            "redis_fallback_routing_attempts_total{{status={status}}}"
        ))
    };
    assert_eq!(count("primary_hit"), 2);
    assert_eq!(count("primary_failover"), 2);
    assert_eq!(count("secondary_fallback"), 1);
    assert_eq!(count("error"), 1);
    let latencies: u64 = [
        "primary_hit",
        "primary_failover",
        "secondary_fallback",
        "error",
    ]
    .iter()
    .map(|status| {
        recorded.get(&format!(
            "redis_fallback_routing_latency_seconds{{status={status}}}"
        ))
    })
    .sum();
    assert_eq!(latencies, 6, "one latency sample per request");
}

#[test]
fn spans_carry_the_operation_and_path_and_keys_only_when_opted_in() {
    let answer = || {
        vec![Ok(Response::new(
            redis::Value::Nil,
            ServedBy::Replica(None),
        ))]
    };
    let (_, text) = run(ObserveLayer::new(), answer());
    assert!(text.contains("db.system=\"redis\""), "{text}");
    assert!(text.contains("db.operation=\"get\""), "{text}");
    assert!(text.contains("redis.node_role=\"replica\""), "{text}");
    assert!(text.contains("fallback.path=\"replica\""), "{text}");
    assert!(
        !text.contains("user:42:email"),
        "a raw key was recorded without opt-in: {text}"
    );

    let (_, text) = run(ObserveLayer::new().record_keys(true), answer());
    assert!(
        text.contains("user:42:email"),
        "the opted-in key is missing: {text}"
    );
}
