//! SecondaryStoreLayer over a real SQLite database (bundled) and a real
//! Redis: every read answered while Redis is down, with at most the
//! configured rate of calls reaching the database, and cache-aside filling
//! Redis from the database on a miss.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::Value;
use redis_resilience::layers::secondary::{
    BoxError, LoaderFn, Lookup, Quota, SecondaryStoreConfig,
};
use redis_resilience::layers::{SecondaryStoreLayer, StalenessLayer};
use redis_resilience::{RedisService, Request, ServedBy};
use redis_resilience_testkit::Standalone;
use rusqlite::OptionalExtension;
use tower::{ServiceBuilder, ServiceExt};

/// A SQLite table `kv(key, value)` that records when it is asked.
#[derive(Clone)]
struct Sqlite {
    connection: Arc<Mutex<rusqlite::Connection>>,
    calls: Arc<Mutex<Vec<Instant>>>,
}

impl Sqlite {
    fn with_rows(rows: &[(String, String)]) -> Self {
        let connection = rusqlite::Connection::open_in_memory().expect("sqlite");
        connection
            .execute_batch("CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            .expect("create table");
        for (key, value) in rows {
            connection
                .execute("INSERT INTO kv (key, value) VALUES (?1, ?2)", [key, value])
                .expect("insert");
        }
        Self {
            connection: Arc::new(Mutex::new(connection)),
            calls: Arc::default(),
        }
    }

    fn calls(&self) -> Vec<Instant> {
        self.calls.lock().expect("calls").clone()
    }

    async fn load(self, lookup: Lookup) -> Result<Option<Value>, BoxError> {
        self.calls.lock().expect("calls").push(Instant::now());
        // Bound as TEXT: SQLite never finds a TEXT key with a BLOB.
        let key = String::from_utf8_lossy(lookup.key()).into_owned();
        let value = tokio::task::spawn_blocking(move || {
            let connection = self.connection.lock().expect("connection");
            connection
                .query_row("SELECT value FROM kv WHERE key = ?1", [key], |row| {
                    row.get::<_, String>(0)
                })
                .optional()
        })
        .await??;
        Ok(value.map(|value| Value::BulkString(value.into_bytes())))
    }
}

fn get(key: &str) -> Request {
    Request::new(redis::cmd("GET").arg(key).clone())
}

async fn standalone() -> (Standalone, RedisService) {
    let server = Standalone::start()
        .await
        .unwrap_or_else(|err| panic!("cannot start redis-server: {err}"));
    let redis = RedisService::builder()
        .connect_timeout(Duration::from_millis(200))
        .response_timeout(Duration::from_millis(200))
        .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(100))
        .standalone(&server.url())
        .await
        .expect("connect");
    (server, redis)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_every_read_is_answered_and_sqlite_sees_at_most_its_rate() {
    let (server, redis) = standalone().await;
    let rows: Vec<(String, String)> = (0..8)
        .map(|i| (format!("product:{i}"), format!("price {i}")))
        .collect();
    let sqlite = Sqlite::with_rows(&rows);
    for (key, value) in &rows {
        let () = server
            .node()
            .query(&["SET", key, value])
            .await
            .expect("SET");
    }

    let rate = 10;
    let quota =
        Quota::per_second(NonZeroU32::new(rate).expect("non-zero")).allow_burst(NonZeroU32::MIN);
    let store = {
        let sqlite = sqlite.clone();
        SecondaryStoreLayer::with_config(
            LoaderFn::new(move |lookup| sqlite.clone().load(lookup)),
            SecondaryStoreConfig::builder()
                .rate_limit(quota)
                .timeout(Duration::from_millis(500))
                .build(),
        )
    };
    // Over the rate, the database is not asked and the staleness layer
    // outside answers with the last value it saw.
    let svc = ServiceBuilder::new()
        .layer(StalenessLayer::new(Duration::from_secs(30)))
        .layer(store)
        .service(redis);
    for (key, value) in &rows {
        let response = svc.clone().oneshot(get(key)).await.expect("warm-up");
        assert_eq!(
            response.value,
            Value::BulkString(value.clone().into_bytes())
        );
    }

    server.node().kill().expect("kill");
    let started = Instant::now();
    let run = Duration::from_secs(3);
    let readers: Vec<_> = (0..8)
        .map(|reader| {
            let (svc, rows) = (svc.clone(), rows.clone());
            tokio::spawn(async move {
                let (mut answers, mut by_store, mut errors) = (0, 0, Vec::new());
                let mut i = reader;
                while started.elapsed() < run {
                    let (key, value) = &rows[i % rows.len()];
                    i += 1;
                    match svc.clone().oneshot(get(key)).await {
                        Ok(response) => {
                            answers += 1;
                            by_store += usize::from(response.served_by == ServedBy::Secondary);
                            if response.value != Value::BulkString(value.clone().into_bytes())
                                || response.served_by.is_primary()
                            {
                                errors.push(format!("{key}: {response:?}"));
                            }
                        }
                        Err(err) => errors.push(format!("{key}: {err}")),
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (answers, by_store, errors)
            })
        })
        .collect();
    let (mut answers, mut by_store, mut errors) = (0, 0, Vec::new());
    for reader in readers {
        let (a, s, e) = reader.await.expect("reader task");
        answers += a;
        by_store += s;
        errors.extend(e);
    }
    let elapsed = started.elapsed();

    let calls = sqlite.calls();
    let calls_after_kill: Vec<Instant> = calls.into_iter().filter(|at| *at >= started).collect();
    let busiest_second = calls_after_kill
        .iter()
        .map(|from| {
            calls_after_kill
                .iter()
                .filter(|at| **at >= *from && at.duration_since(*from) < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0);
    eprintln!(
        "{answers} reads answered in {elapsed:?}: {by_store} by SQLite, the rest stale; \
         {} SQLite calls, at most {busiest_second} in one second",
        calls_after_kill.len()
    );
    assert!(
        errors.is_empty(),
        "{} bad answers: {errors:?}",
        errors.len()
    );
    assert!(answers > 200, "the readers kept reading");
    assert!(by_store > 0, "the database answered some reads");
    // Admissions are spaced 100 ms apart; recording a call happens a little
    // after its admission, so a one-second window may see one more.
    assert!(
        busiest_second <= rate as usize + 1,
        "{busiest_second} calls reached SQLite within one second"
    );
    let allowed = 1 + (elapsed.as_secs_f64() * f64::from(rate)).ceil() as usize;
    assert!(
        calls_after_kill.len() <= allowed,
        "{} calls, at most {allowed} allowed",
        calls_after_kill.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_aside_fills_redis_from_sqlite_on_a_miss() {
    let (server, redis) = standalone().await;
    let sqlite = Sqlite::with_rows(&[("user:42:name".to_owned(), "Ada".to_owned())]);
    let store = {
        let sqlite = sqlite.clone();
        SecondaryStoreLayer::from_fn(move |lookup| sqlite.clone().load(lookup))
            .on_miss(Duration::from_secs(60))
    };
    let svc = ServiceBuilder::new().layer(store).service(redis);

    let response = svc
        .clone()
        .oneshot(get("user:42:name"))
        .await
        .expect("read");
    assert_eq!(response.value, Value::BulkString(b"Ada".to_vec()));
    assert_eq!(response.served_by, ServedBy::Secondary);
    let cached: Option<String> = server
        .node()
        .query(&["GET", "user:42:name"])
        .await
        .expect("GET");
    assert_eq!(cached.as_deref(), Some("Ada"), "written back to Redis");
    let ttl: i64 = server
        .node()
        .query(&["PTTL", "user:42:name"])
        .await
        .expect("PTTL");
    assert!(ttl > 0 && ttl <= 60_000, "TTL {ttl} ms");

    let again = svc
        .clone()
        .oneshot(get("user:42:name"))
        .await
        .expect("read");
    assert!(again.served_by.is_primary(), "now a Redis hit");
    assert_eq!(sqlite.calls().len(), 1);

    let missing = svc.clone().oneshot(get("user:7:name")).await.expect("read");
    assert_eq!(missing.value, Value::Nil);
    assert!(missing.served_by.is_primary(), "Redis's own nil");
    assert_eq!(sqlite.calls().len(), 2);
}
