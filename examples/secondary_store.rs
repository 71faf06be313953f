//! A database as the secondary store: reads that Redis cannot answer are
//! answered by SQLite (bundled, in memory) and, when `DATABASE_URL` is set,
//! by PostgreSQL too, through `SecondaryStoreLayer`.
//!
//! ```text
//! cargo run --release --example secondary_store
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run --release --example secondary_store
//! ```
//!
//! For each database: a throwaway redis-server holds some of the products;
//! reads of the others miss and are filled from the database (cache-aside,
//! written back with a TTL); then redis-server is killed and every read is
//! answered by the database, at most 50 calls a second. Needs `redis-server`
//! on `PATH` (or `REDIS_SERVER_BIN`).

#![expect(clippy::print_stdout, reason = "an example shows its results")]

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::Value;
use redis_resilience::layers::secondary::{
    BoxError, LoaderFn, Lookup, Quota, SecondaryStoreConfig,
};
use redis_resilience::layers::{CoalesceLayer, SecondaryStoreLayer};
use redis_resilience::{Client, RedisService, Request};
use redis_resilience_testkit::Standalone;
use rusqlite::OptionalExtension;
use tower::ServiceBuilder;

const PRODUCTS: [(&str, &str); 5] = [
    ("product:1:name", "teapot"),
    ("product:2:name", "kettle"),
    ("product:3:name", "mug"),
    ("product:4:name", "saucer"),
    ("product:5:name", "spoon"),
];

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sqlite = Arc::new(Mutex::new(rusqlite::Connection::open_in_memory()?));
    {
        let db = sqlite.lock().map_err(|_| "sqlite lock poisoned")?;
        db.execute_batch("CREATE TABLE products (key TEXT PRIMARY KEY, name TEXT NOT NULL)")?;
        for (key, name) in PRODUCTS {
            db.execute(
                "INSERT INTO products (key, name) VALUES (?1, ?2)",
                [key, name],
            )?;
        }
    }
    demo("SQLite", move |lookup: Lookup| {
        let sqlite = Arc::clone(&sqlite);
        async move {
            let key = String::from_utf8_lossy(lookup.key()).into_owned();
            let name = tokio::task::spawn_blocking(move || {
                let db = sqlite.lock().map_err(|_| "sqlite lock poisoned")?;
                db.query_row("SELECT name FROM products WHERE key = ?1", [key], |row| {
                    row.get::<_, String>(0)
                })
                .optional()
                .map_err(BoxError::from)
            })
            .await??;
            Ok(name.map(|name| Value::BulkString(name.into_bytes())))
        }
    })
    .await?;

    match std::env::var("DATABASE_URL") {
        Ok(url) => {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            client
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS redis_resilience_products \
                     (key TEXT PRIMARY KEY, name TEXT NOT NULL)",
                )
                .await?;
            for (key, name) in PRODUCTS {
                client
                    .execute(
                        "INSERT INTO redis_resilience_products (key, name) VALUES ($1, $2) \
                         ON CONFLICT (key) DO UPDATE SET name = EXCLUDED.name",
                        &[&key, &name],
                    )
                    .await?;
            }
            let client = Arc::new(client);
            demo("PostgreSQL", move |lookup: Lookup| {
                let client = Arc::clone(&client);
                async move {
                    let key = String::from_utf8_lossy(lookup.key()).into_owned();
                    let row = client
                        .query_opt(
                            "SELECT name FROM redis_resilience_products WHERE key = $1",
                            &[&key],
                        )
                        .await?;
                    Ok::<_, BoxError>(
                        row.map(|row| Value::BulkString(row.get::<_, String>(0).into_bytes())),
                    )
                }
            })
            .await?;
        }
        Err(_) => println!("\n(set DATABASE_URL to run the same with PostgreSQL)"),
    }
    Ok(())
}

/// Runs the scenario with `load` as the secondary store.
async fn demo<F, Fut>(database: &str, load: F) -> Result<(), Box<dyn std::error::Error>>
where
    F: FnMut(Lookup) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Option<Value>, BoxError>> + Send + 'static,
{
    println!("\n== {database} as the secondary store ==");
    let server = Standalone::start().await?;
    let redis = RedisService::builder()
        .connect_timeout(Duration::from_millis(200))
        .response_timeout(Duration::from_millis(200))
        .standalone(&server.url())
        .await?;
    // Redis holds the first three products only.
    for (key, name) in &PRODUCTS[..3] {
        let () = server.node().query(&["SET", key, name]).await?;
    }

    let config = SecondaryStoreConfig::builder()
        .on_miss(Duration::from_secs(60))
        .rate_limit(Quota::per_second(NonZeroU32::new(50).ok_or("zero rate")?))
        .timeout(Duration::from_millis(500))
        .build();
    let svc = ServiceBuilder::new()
        .layer(SecondaryStoreLayer::with_config(
            LoaderFn::new(load),
            config,
        ))
        .layer(CoalesceLayer::new())
        .service(redis);
    let client = Client::new(svc).with_default_timeout(Duration::from_secs(1));

    println!("redis-server up on {}:", server.addr());
    read_all(&client).await;
    println!("again: the misses were written back with a 60 s TTL");
    read_all(&client).await;

    server.node().kill()?;
    println!("redis-server killed:");
    read_all(&client).await;
    Ok(())
}

async fn read_all<S>(client: &Client<S>)
where
    S: tower::Service<
            Request,
            Response = redis_resilience::Response,
            Error = redis_resilience::Error,
        > + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    for (key, _) in PRODUCTS {
        let request = Request::new(redis::cmd("GET").arg(key).clone());
        match client.clone().send(request).await {
            Ok(response) => {
                let name = match &response.value {
                    Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                    other => format!("{other:?}"),
                };
                println!(
                    "  GET {key:<16} -> {name:<8} served by {}",
                    response.served_by.label()
                );
            }
            Err(err) => println!("  GET {key:<16} -> error: {err}"),
        }
    }
}
