//! An axum service whose routes use different stacks over one shared
//! `RedisService`, with Prometheus metrics.
//!
//! ```text
//! cargo run --release --example axum_app                      # starts a local Sentinel deployment
//! REDIS_SENTINELS=10.0.0.1:26379,10.0.0.2:26379 cargo run --release --example axum_app
//! ```
//!
//! Routes (port 3000, or `PORT`):
//! - `GET /users/{id}`: a read through Staleness + Coalesce + Retry +
//!   ReplicaFallback + per-node CircuitBreaker (answered by the primary, a
//!   replica, or a kept value during a failover; the `x-served-by` header says which);
//! - `PUT /users/{id}` (body: the name): a write through idempotency-aware
//!   Retry + CircuitBreaker (`SET` is retried when its fate is unknown);
//! - `POST /visits`: `INCR`, never retried when its fate is unknown;
//! - `GET /metrics`: Prometheus text format.
//!
//! See README.md ("Driving the axum example under a failure") for a load
//! test while the master is killed.

#![expect(clippy::print_stdout, reason = "an example prints where it listens")]

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::{get, post};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use redis_resilience::layers::StalenessLayer;
use redis_resilience::presets::{CacheReads, CriticalWrites, Presets};
use redis_resilience::{Client, Error, ErrorKind, RedisService, Request, ServedBy};
use redis_resilience_testkit::Sentinel;

#[derive(Clone)]
struct AppState {
    reads: Client<CacheReads>,
    writes: Client<CriticalWrites>,
    metrics: PrometheusHandle,
}

fn served_by(served_by: &ServedBy) -> String {
    match served_by {
        ServedBy::Stale { age } => format!("stale; age={:.3}s", age.as_secs_f64()),
        other => other.label().to_owned(),
    }
}

/// Our errors as HTTP: 503 for "Redis cannot answer now", 500 otherwise.
fn error_response(err: &Error) -> HttpResponse {
    let status = match err.kind() {
        ErrorKind::Connect
        | ErrorKind::Io
        | ErrorKind::Timeout
        | ErrorKind::CircuitOpen { .. }
        | ErrorKind::ClusterDown
        | ErrorKind::MasterDown
        | ErrorKind::Loading
        | ErrorKind::ReadOnly
        | ErrorKind::RateLimited { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, format!("{}: {err}\n", err.kind().label())).into_response()
}

async fn get_user(State(mut state): State<AppState>, Path(id): Path<u64>) -> HttpResponse {
    let request = Request::new(redis::cmd("GET").arg(format!("user:{id}:name")).clone());
    match state.reads.send(request).await {
        Ok(response) => {
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_str(&served_by(&response.served_by)) {
                headers.insert("x-served-by", value);
            }
            match response.value {
                redis::Value::BulkString(name) => {
                    (headers, String::from_utf8_lossy(&name).into_owned()).into_response()
                }
                _ => (StatusCode::NOT_FOUND, headers, "no such user\n").into_response(),
            }
        }
        Err(err) => error_response(&err),
    }
}

async fn put_user(
    State(mut state): State<AppState>,
    Path(id): Path<u64>,
    name: String,
) -> HttpResponse {
    let request = Request::new(
        redis::cmd("SET")
            .arg(format!("user:{id}:name"))
            .arg(name)
            .clone(),
    );
    match state.writes.send(request).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => error_response(&err),
    }
}

async fn visit(State(mut state): State<AppState>) -> HttpResponse {
    match state
        .writes
        .query::<i64>(redis::cmd("INCR").arg("visits"))
        .await
    {
        Ok(count) => format!("{count}\n").into_response(),
        // Sent::Maybe: the INCR may have counted; it is not sent again.
        Err(err) => error_response(&err),
    }
}

async fn render_metrics(State(state): State<AppState>) -> String {
    state.metrics.render()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Histograms as buckets, so alerts can take quantiles over time
    // (docs/alerts.yml uses redis_fallback_routing_latency_seconds_bucket).
    let metrics = PrometheusBuilder::new()
        .set_buckets(&[
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
        ])?
        .install_recorder()?;

    // Either the deployment named in REDIS_SENTINELS, or a local one.
    let mut _local = None;
    let (sentinels, master_name) = match std::env::var("REDIS_SENTINELS") {
        Ok(list) => (
            list.split(',').map(str::to_owned).collect::<Vec<_>>(),
            std::env::var("REDIS_MASTER_NAME").unwrap_or_else(|_| "mymaster".to_owned()),
        ),
        Err(_) => {
            println!(
                "REDIS_SENTINELS not set: starting a local master, 2 replicas and 3 sentinels"
            );
            let topology = Sentinel::start(2, 3).await?;
            let master = topology.initial_master();
            println!(
                "master {} (pid {}); kill it with: kill -9 {}",
                master.addr(),
                master.pid().unwrap_or(0),
                master.pid().unwrap_or(0)
            );
            let found = (topology.sentinel_addrs(), topology.master_name().to_owned());
            _local = Some(topology);
            found
        }
    };
    let redis = RedisService::builder()
        .connect_timeout(Duration::from_millis(250))
        .response_timeout(Duration::from_millis(250))
        .sentinel(&sentinels, &master_name)
        .await?;

    // One set of layers: both routes share the breakers and the retry budget.
    let presets = Presets::new(&redis).with_staleness(StalenessLayer::new(Duration::from_secs(30)));
    let state = AppState {
        reads: Client::new(presets.cache_reads(redis.clone()))
            .with_default_timeout(Duration::from_secs(1)),
        writes: Client::new(presets.critical_writes(redis))
            .with_default_timeout(Duration::from_secs(1)),
        metrics,
    };
    let app = Router::new()
        .route("/users/{id}", get(get_user).put(put_user))
        .route("/visits", post(visit))
        .route("/metrics", get(render_metrics))
        .with_state(state);

    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
