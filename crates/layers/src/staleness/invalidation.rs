//! Invalidations from outside: [`Invalidation`], and streams of them from a
//! pub/sub channel ([`pubsub_invalidations`]) or RESP3 client tracking
//! ([`tracking_invalidations`]).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use redis::{AsyncConnectionConfig, PushInfo, PushKind, Value};
use redis_resilience_core::{Error, Sent};
use tokio::sync::mpsc;

/// One invalidation: a key whose kept values must never be served again, or all of them.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invalidation {
    /// The values of every request reading this key.
    Key(Vec<u8>),
    /// Every kept value.
    All,
}

impl fmt::Debug for Invalidation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key itself: keys can be personal data.
        match self {
            Self::Key(key) => write!(f, "Key(<{} bytes>)", key.len()),
            Self::All => f.write_str("All"),
        }
    }
}

impl From<Vec<u8>> for Invalidation {
    fn from(key: Vec<u8>) -> Self {
        Self::Key(key)
    }
}

impl From<&[u8]> for Invalidation {
    fn from(key: &[u8]) -> Self {
        Self::Key(key.to_vec())
    }
}

impl From<String> for Invalidation {
    fn from(key: String) -> Self {
        Self::Key(key.into_bytes())
    }
}

impl From<&str> for Invalidation {
    fn from(key: &str) -> Self {
        Self::Key(key.as_bytes().to_vec())
    }
}

/// A stream of invalidations read from Redis by a task of its own; the task
/// ends when the stream is dropped. Hand it to
/// [`StalenessLayer::listen`](super::StalenessLayer::listen).
///
/// The task reconnects on its own when the connection drops (backoff from
/// 100 ms doubling to 5 s). Invalidations sent while it was disconnected are
/// lost, so after reconnecting it yields [`Invalidation::All`]: nothing kept
/// before the gap is served again.
pub struct Invalidations {
    receiver: mpsc::Receiver<Invalidation>,
}

impl fmt::Debug for Invalidations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invalidations").finish_non_exhaustive()
    }
}

impl Stream for Invalidations {
    type Item = Invalidation;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Invalidation>> {
        self.receiver.poll_recv(cx)
    }
}

const CHANNEL_CAPACITY: usize = 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

fn redis_error(err: redis::RedisError) -> Error {
    Error::from_redis(err, Sent::No)
}

async fn bounded<T>(connect: impl Future<Output = redis::RedisResult<T>>) -> Result<T, Error> {
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(result) => result.map_err(redis_error),
        Err(_elapsed) => Err(Error::connect(format!(
            "no answer from redis within {CONNECT_TIMEOUT:?} while subscribing to invalidations"
        ))),
    }
}

/// Subscribes to `channel` on the server `client` names, and yields one
/// [`Invalidation::Key`] per message: the application publishes the key it
/// changed as the message payload (`PUBLISH <channel> <key>`), after the
/// write succeeded.
///
/// Returns once the subscription is active, so a key published afterwards is
/// seen. Needs a tokio runtime.
///
/// # Example
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use redis_resilience_layers::StalenessLayer;
/// use redis_resilience_layers::staleness::pubsub_invalidations;
///
/// let layer = StalenessLayer::new(Duration::from_secs(30));
/// let client = redis::Client::open("redis://127.0.0.1:6379")?;
/// layer.listen(pubsub_invalidations(&client, "cache:invalidate").await?);
/// // Elsewhere, after changing a user's name:
/// // PUBLISH cache:invalidate user:42:name
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// When the first connection or the subscription fails (`Connect`, `Io`,
/// `Timeout` after 2 s, `Auth`, …). Later failures are retried in the background.
pub async fn pubsub_invalidations(
    client: &redis::Client,
    channel: &str,
) -> Result<Invalidations, Error> {
    let pubsub = subscribe(client, channel).await?;
    let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
    tokio::spawn(run_pubsub(
        client.clone(),
        channel.to_owned(),
        pubsub,
        sender,
    ));
    Ok(Invalidations { receiver })
}

async fn subscribe(client: &redis::Client, channel: &str) -> Result<redis::aio::PubSub, Error> {
    bounded(async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok(pubsub)
    })
    .await
}

async fn run_pubsub(
    client: redis::Client,
    channel: String,
    mut pubsub: redis::aio::PubSub,
    sender: mpsc::Sender<Invalidation>,
) {
    loop {
        {
            let mut messages = pubsub.on_message();
            loop {
                let message = tokio::select! {
                    () = sender.closed() => return,
                    message = messages.next() => message,
                };
                let Some(message) = message else { break };
                let key = message.get_payload_bytes().to_vec();
                if sender.send(Invalidation::Key(key)).await.is_err() {
                    return;
                }
            }
        }
        tracing::debug!("invalidation subscription lost, reconnecting");
        let mut backoff = BACKOFF_START;
        pubsub = loop {
            tokio::select! {
                () = sender.closed() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            match subscribe(&client, &channel).await {
                Ok(pubsub) => break pubsub,
                Err(error) => {
                    tracing::debug!(%error, "cannot resubscribe to invalidations");
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        };
        if sender.send(Invalidation::All).await.is_err() {
            return;
        }
    }
}

/// Turns on RESP3 client tracking in broadcast mode (`CLIENT TRACKING ON
/// BCAST`, for keys starting with one of `prefixes`, or every key when there
/// is none) on a connection of its own to the server `client` names, and
/// yields the keys the server says were changed. Catches every write, also
/// those of applications that do not publish invalidations.
///
/// `client` must speak RESP3 (`redis://host:port/?protocol=resp3`); Redis 6
/// or later. A flush (`FLUSHALL`, `FLUSHDB`) yields [`Invalidation::All`].
/// Returns once tracking is on. Needs a tokio runtime.
///
/// # Example
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use redis_resilience_layers::StalenessLayer;
/// use redis_resilience_layers::staleness::tracking_invalidations;
///
/// let layer = StalenessLayer::new(Duration::from_secs(30));
/// let client = redis::Client::open("redis://127.0.0.1:6379/?protocol=resp3")?;
/// layer.listen(tracking_invalidations(&client, &["user:"]).await?);
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// When the first connection fails, the client is not configured for RESP3,
/// or the server refuses `CLIENT TRACKING`. Later failures are retried in
/// the background.
pub async fn tracking_invalidations(
    client: &redis::Client,
    prefixes: &[&str],
) -> Result<Invalidations, Error> {
    let prefixes: Vec<String> = prefixes.iter().map(|&prefix| prefix.to_owned()).collect();
    let (pushes, push_receiver) = mpsc::unbounded_channel();
    let connection = track(client, &prefixes, &pushes).await?;
    let (sender, receiver) = mpsc::channel(CHANNEL_CAPACITY);
    tokio::spawn(run_tracking(
        client.clone(),
        prefixes,
        connection,
        pushes,
        push_receiver,
        sender,
    ));
    Ok(Invalidations { receiver })
}

async fn track(
    client: &redis::Client,
    prefixes: &[String],
    pushes: &mpsc::UnboundedSender<PushInfo>,
) -> Result<redis::aio::MultiplexedConnection, Error> {
    bounded(async {
        let config = AsyncConnectionConfig::new().set_push_sender(pushes.clone());
        let mut connection = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let mut command = redis::cmd("CLIENT");
        command.arg("TRACKING").arg("ON").arg("BCAST");
        for prefix in prefixes {
            command.arg("PREFIX").arg(prefix);
        }
        command.query_async::<()>(&mut connection).await?;
        Ok(connection)
    })
    .await
}

/// The invalidations one push carries: its keys, or `All` for a flush.
fn invalidations_of(push: PushInfo) -> Vec<Invalidation> {
    let mut out = Vec::new();
    for value in push.data {
        match value {
            Value::Array(keys) | Value::Set(keys) => {
                out.extend(keys.into_iter().filter_map(|key| match key {
                    Value::BulkString(key) => Some(Invalidation::Key(key)),
                    Value::SimpleString(key) => Some(Invalidation::Key(key.into_bytes())),
                    _ => None,
                }));
            }
            Value::BulkString(key) => out.push(Invalidation::Key(key)),
            Value::Nil => out.push(Invalidation::All),
            _ => {}
        }
    }
    out
}

async fn run_tracking(
    client: redis::Client,
    prefixes: Vec<String>,
    connection: redis::aio::MultiplexedConnection,
    pushes: mpsc::UnboundedSender<PushInfo>,
    mut push_receiver: mpsc::UnboundedReceiver<PushInfo>,
    sender: mpsc::Sender<Invalidation>,
) {
    // Kept so the connection (and its tracking) lives as long as the stream.
    let mut _connection = connection;
    loop {
        let push = tokio::select! {
            () = sender.closed() => return,
            push = push_receiver.recv() => push,
        };
        let Some(push) = push else { return };
        match push.kind {
            PushKind::Invalidate => {
                for invalidation in invalidations_of(push) {
                    if sender.send(invalidation).await.is_err() {
                        return;
                    }
                }
            }
            PushKind::Disconnection => {
                tracing::debug!("client tracking connection lost, reconnecting");
                let mut backoff = BACKOFF_START;
                _connection = loop {
                    tokio::select! {
                        () = sender.closed() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    match track(&client, &prefixes, &pushes).await {
                        Ok(connection) => break connection,
                        Err(error) => {
                            tracing::debug!(%error, "cannot turn client tracking on again");
                            backoff = (backoff * 2).min(BACKOFF_MAX);
                        }
                    }
                };
                if sender.send(Invalidation::All).await.is_err() {
                    return;
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use redis::{PushInfo, PushKind, Value};

    use super::{Invalidation, invalidations_of};

    #[test]
    fn invalidate_pushes_become_keys_and_flushes_become_all() {
        let keys = PushInfo {
            kind: PushKind::Invalidate,
            data: vec![Value::Array(vec![
                Value::BulkString(b"a".to_vec()),
                Value::BulkString(b"b".to_vec()),
            ])],
        };
        assert_eq!(
            invalidations_of(keys),
            vec![
                Invalidation::Key(b"a".to_vec()),
                Invalidation::Key(b"b".to_vec())
            ]
        );
        let flush = PushInfo {
            kind: PushKind::Invalidate,
            data: vec![Value::Nil],
        };
        assert_eq!(invalidations_of(flush), vec![Invalidation::All]);
        assert_eq!(
            format!("{:?}", Invalidation::from("secret")),
            "Key(<6 bytes>)"
        );
    }
}
