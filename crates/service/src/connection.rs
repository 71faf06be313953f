//! One managed connection to one node: a redis-rs `MultiplexedConnection`
//! that reconnects in the background with exponential backoff and full jitter.
//!
//! The state lives in a `tokio::sync::watch` channel: the request path only
//! borrows it for a moment to clone the connection handle (no lock is held
//! across I/O), and requests that arrive while a connection attempt is under
//! way wait for its outcome, bounded by their deadline. While the node is down
//! between attempts, requests fail at once with a `Connect` error
//! (`Sent::No`): nothing hangs and nothing is sent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use rand::Rng;
use redis::aio::MultiplexedConnection;
use redis_resilience_core::{Error, ErrorKind, NodeAddr, Request, Sent};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::request;

/// What a connection needs to (re)connect.
#[derive(Debug, Clone)]
pub(crate) struct ConnectSettings {
    pub(crate) connect_timeout: Duration,
    /// Send `READONLY` after connecting (cluster replicas serve reads only then).
    pub(crate) readonly: bool,
    pub(crate) reconnect_base: Duration,
    pub(crate) reconnect_cap: Duration,
}

#[derive(Clone)]
enum State {
    Connected {
        con: MultiplexedConnection,
        epoch: u64,
    },
    Connecting,
    Down(Error),
}

/// A connection to one node that heals itself.
pub(crate) struct NodeConnection {
    addr: NodeAddr,
    client: redis::Client,
    settings: ConnectSettings,
    state: watch::Sender<State>,
    epochs: AtomicU64,
}

impl std::fmt::Debug for NodeConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeConnection")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl NodeConnection {
    /// Connects now; fails with the connect error (`Connect`, `Auth`, …).
    pub(crate) async fn connect(
        addr: NodeAddr,
        client: redis::Client,
        settings: ConnectSettings,
    ) -> Result<Arc<Self>, Error> {
        let con = connect_once(&addr, &client, settings.connect_timeout, settings.readonly).await?;
        Ok(Arc::new(Self {
            addr,
            client,
            settings,
            state: watch::Sender::new(State::Connected { con, epoch: 0 }),
            epochs: AtomicU64::new(0),
        }))
    }

    /// Starts connecting in the background; requests wait for the first attempt.
    pub(crate) fn lazy(
        addr: NodeAddr,
        client: redis::Client,
        settings: ConnectSettings,
    ) -> Arc<Self> {
        let node = Arc::new(Self {
            addr,
            client,
            settings,
            state: watch::Sender::new(State::Connecting),
            epochs: AtomicU64::new(0),
        });
        tokio::spawn(reconnect(Arc::downgrade(&node)));
        node
    }

    pub(crate) fn addr(&self) -> &NodeAddr {
        &self.addr
    }

    /// Whether this connection is in `READONLY` mode (a cluster replica's).
    pub(crate) fn is_readonly(&self) -> bool {
        self.settings.readonly
    }

    /// Whether the connection is up right now.
    pub(crate) fn is_connected(&self) -> bool {
        matches!(&*self.state.borrow(), State::Connected { .. })
    }

    /// A handle to the live connection, waiting (until `deadline`) for an
    /// attempt under way; at once an error when the node is down.
    async fn handle(&self, deadline: Instant) -> Result<(MultiplexedConnection, u64), Error> {
        let mut rx = self.state.subscribe();
        loop {
            match &*rx.borrow_and_update() {
                State::Connected { con, epoch } => return Ok((con.clone(), *epoch)),
                State::Down(err) => return Err(err.clone()),
                State::Connecting => {}
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                // The sender lives as long as `self`: unreachable, but not worth a panic.
                Ok(Err(_)) => {
                    return Err(Error::connect(format!(
                        "connection to {} closed",
                        self.addr
                    )));
                }
                Err(_) => {
                    return Err(Error::new(
                        ErrorKind::Connect,
                        Sent::No,
                        format!("still connecting to {} at the deadline", self.addr),
                    ));
                }
            }
        }
    }

    /// Sends `request` (`ASKING` first when `asking`) and waits for the answer until `deadline`.
    pub(crate) async fn send(
        self: &Arc<Self>,
        request: &Request,
        asking: bool,
        deadline: Instant,
    ) -> Result<redis::Value, Error> {
        let (mut con, epoch) = self.handle(deadline).await?;
        match tokio::time::timeout_at(deadline, request::send(&mut con, request, asking)).await {
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                Sent::Maybe,
                format!("no answer from {} before the deadline", self.addr),
            )),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                // The command was handed to the connection: whether it left is unknown.
                let err = Error::from_redis(err, Sent::Maybe);
                if matches!(err.kind(), ErrorKind::Io | ErrorKind::Connect) {
                    self.report_broken(epoch);
                }
                Err(err)
            }
        }
    }

    /// Marks the connection of `epoch` broken and starts reconnecting, once.
    pub(crate) fn report_broken(self: &Arc<Self>, epoch: u64) {
        let started = self.state.send_if_modified(|state| match state {
            State::Connected { epoch: current, .. } if *current == epoch => {
                *state = State::Connecting;
                true
            }
            _ => false,
        });
        if started {
            tracing::debug!(node = %self.addr, "connection lost, reconnecting");
            tokio::spawn(reconnect(Arc::downgrade(self)));
        }
    }
}

/// Reconnects until it succeeds or the node is dropped.
async fn reconnect(node: Weak<NodeConnection>) {
    let mut attempt: u32 = 0;
    loop {
        let Some(strong) = node.upgrade() else {
            return;
        };
        match connect_once(
            &strong.addr,
            &strong.client,
            strong.settings.connect_timeout,
            strong.settings.readonly,
        )
        .await
        {
            Ok(con) => {
                let epoch = strong.epochs.fetch_add(1, Ordering::Relaxed) + 1;
                strong.state.send_replace(State::Connected { con, epoch });
                tracing::debug!(node = %strong.addr, "reconnected");
                return;
            }
            Err(err) => {
                strong.state.send_replace(State::Down(err));
            }
        }
        let delay = full_jitter(
            strong.settings.reconnect_base,
            strong.settings.reconnect_cap,
            attempt,
        );
        drop(strong);
        attempt = attempt.saturating_add(1);
        tokio::time::sleep(delay).await;
        let Some(strong) = node.upgrade() else {
            return;
        };
        strong.state.send_replace(State::Connecting);
    }
}

/// A delay drawn uniformly from `[0, min(cap, base · 2^attempt)]`.
pub(crate) fn full_jitter(base: Duration, cap: Duration, attempt: u32) -> Duration {
    let ceiling = base
        .checked_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
        .unwrap_or(cap)
        .min(cap);
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::rng().random_range(0..=nanos))
}

/// One connection attempt, bounded by `timeout`. Every failure is `Sent::No`:
/// no request of the caller's has been sent on it.
pub(crate) async fn connect_once(
    addr: &NodeAddr,
    client: &redis::Client,
    timeout: Duration,
    readonly: bool,
) -> Result<MultiplexedConnection, Error> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        // Deadlines are ours (per request); redis-rs's own default of 500 ms would cut them short.
        .set_response_timeout(None);
    let attempt = async {
        let mut con = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        // A server with `requirepass` accepts the connection without AUTH and
        // refuses the first command: find out now, not on the caller's request.
        redis::cmd("PING").query_async::<()>(&mut con).await?;
        if readonly {
            redis::cmd("READONLY").query_async::<()>(&mut con).await?;
        }
        Ok::<_, redis::RedisError>(con)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(con)) => Ok(con),
        Ok(Err(err)) => Err(connect_error(addr, err)),
        Err(_) => Err(Error::connect(format!(
            "connecting to {addr} timed out after {timeout:?}"
        ))),
    }
}

/// A failed connection attempt as our error: authentication failures stay
/// `Auth` (retrying will not fix a wrong password), everything else is `Connect`.
pub(crate) fn connect_error(addr: &NodeAddr, err: redis::RedisError) -> Error {
    let parsed = Error::from_redis(err.clone(), Sent::No);
    match parsed.kind() {
        ErrorKind::Auth => Error::new(
            ErrorKind::Auth,
            Sent::No,
            format!("authentication to {addr} failed: {}", parsed.message()),
        ),
        ErrorKind::Config => Error::new(
            ErrorKind::Config,
            Sent::No,
            format!("connecting to {addr}: {}", parsed.message()),
        ),
        // `NOPERM`, or e.g. `ERR AUTH <password> called without any password
        // configured`; other `ERR`s at connect (`max number of clients
        // reached`) are not about credentials and stay `Connect`.
        ErrorKind::Server { code }
            if code.as_ref() == "NOPERM"
                || (code.as_ref() == "ERR" && {
                    let message = parsed.message().to_ascii_lowercase();
                    message.contains("auth") || message.contains("password")
                }) =>
        {
            Error::new(
                ErrorKind::Auth,
                Sent::No,
                format!("authentication to {addr} failed: {}", parsed.message()),
            )
        }
        _ => Error::connect(format!("connecting to {addr}: {err}")).with_source(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_jitter_stays_within_its_ceiling() {
        let base = Duration::from_millis(20);
        let cap = Duration::from_secs(2);
        for attempt in 0..40 {
            let ceiling = (base * 2u32.saturating_pow(attempt.min(31))).min(cap);
            for _ in 0..50 {
                assert!(full_jitter(base, cap, attempt) <= ceiling);
            }
        }
    }
}
