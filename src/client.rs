//! [`Client`]: any stack as a redis-rs connection, so `redis::AsyncCommands`,
//! pipelines and scripts work over it.

use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{Cmd, FromRedisValue, Pipeline, RedisError, RedisFuture, Value};
use redis_resilience_core::{Error, ErrorKind, Request, Response, Sent};
use tower::ServiceExt;
use tower_service::Service;

/// A redis-rs [`ConnectionLike`] over any service that speaks the
/// redis-resilience contract: a bare `RedisService` or a whole layer stack.
///
/// Each command becomes a [`Request`] with the client's default timeout as its
/// deadline (unless the request already has an earlier one). Clones share the
/// service (clone it cheaply into tasks).
///
/// # Example
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use redis::AsyncCommands;
/// use redis_resilience::{Client, RedisService, Request};
///
/// let redis = RedisService::standalone("redis://127.0.0.1:6379").await?;
/// let mut client = Client::new(redis).with_default_timeout(Duration::from_millis(250));
/// let () = client.set("user:42:name", "Ada").await?;
/// let name: Option<String> = client.get("user:42:name").await?;
///
/// // Typed queries with our own errors, and per-request options:
/// let hits: i64 = client.query(redis::cmd("INCR").arg("hits")).await?;
/// let response = client
///     .send(Request::new(redis::cmd("GET").arg("user:42:name").clone()).authoritative())
///     .await?;
/// println!("{name:?} {hits} served by {:?}", response.served_by);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client<S> {
    service: S,
    default_timeout: Option<Duration>,
}

impl<S> Client<S>
where
    S: Service<Request, Response = Response, Error = Error> + Clone + Send + 'static,
    S::Future: Send,
{
    /// A client over `service`, without a default timeout (the service's own
    /// response timeout still applies to every attempt).
    pub fn new(service: S) -> Self {
        Self {
            service,
            default_timeout: None,
        }
    }

    /// Every request gets a deadline this far in the future, unless it carries an earlier one.
    #[must_use]
    pub fn with_default_timeout(mut self, timeout: Duration) -> Self {
        self.default_timeout = Some(timeout);
        self
    }

    /// The service.
    pub fn get_ref(&self) -> &S {
        &self.service
    }

    /// Sends a request through the stack, waiting for the service to be ready first.
    ///
    /// # Errors
    ///
    /// Whatever the stack returns.
    pub async fn send(&mut self, request: Request) -> Result<Response, Error> {
        let request = match self.default_timeout {
            Some(timeout) => {
                let deadline = tokio_now() + timeout;
                request.with_deadline(deadline)
            }
            None => request,
        };
        self.service.ready().await?.call(request).await
    }

    /// Runs one command and converts its reply.
    ///
    /// # Errors
    ///
    /// Whatever the stack returns; `Protocol` when the reply does not convert to `T`.
    pub async fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> Result<T, Error> {
        let response = self.send(Request::new(cmd.clone())).await?;
        T::from_redis_value(response.value).map_err(|err| {
            Error::new(
                ErrorKind::Protocol,
                Sent::Yes,
                format!("unexpected reply type: {err}"),
            )
        })
    }
}

/// Now, from tokio's clock (so tests with paused time see deadlines pass).
fn tokio_now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

impl<S> ConnectionLike for Client<S>
where
    S: Service<Request, Response = Response, Error = Error> + Clone + Send + 'static,
    S::Future: Send,
{
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            self.send(Request::new(cmd.clone()))
                .await
                .map(|response| response.value)
                .map_err(|err| into_redis_error(&err))
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            // The service answers what redis-rs's `Pipeline::query_async` asks for:
            // every reply, or for a transaction the `EXEC` reply alone.
            let expected = if pipeline.is_transaction() {
                (pipeline.len() + 1, 1)
            } else {
                (0, pipeline.len())
            };
            if (offset, count) != expected {
                return Err(RedisError::from((
                    redis::ErrorKind::Client,
                    "unsupported pipeline window",
                    format!("offset {offset} and count {count}; expected {expected:?}"),
                )));
            }
            let response = self
                .send(Request::pipeline(pipeline.clone()))
                .await
                .map_err(|err| into_redis_error(&err))?;
            match response.value {
                Value::Array(values) => Ok(values),
                other => Ok(vec![other]),
            }
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

/// Our error as a redis-rs error, keeping what redis-rs users test for:
/// server error codes (`err.code()`), timeouts (`is_timeout()`), refused
/// connections (`is_connection_refusal()`) and dropped connections.
fn into_redis_error(err: &Error) -> RedisError {
    use std::io::ErrorKind as Io;
    let io = |kind: Io| RedisError::from(std::io::Error::new(kind, err.to_string()));
    match err.kind() {
        ErrorKind::Timeout => io(Io::TimedOut),
        ErrorKind::Connect => io(Io::ConnectionRefused),
        ErrorKind::Io => io(Io::ConnectionReset),
        _ if err.sent() == Sent::Yes => {
            let (code, detail) = match err.message().split_once(' ') {
                Some((code, detail)) => (code.to_owned(), Some(detail.to_owned())),
                None => (err.message().to_owned(), None),
            };
            redis::make_extension_error(code, detail)
        }
        _ => RedisError::from((
            redis::ErrorKind::Client,
            "redis-resilience",
            err.to_string(),
        )),
    }
}
