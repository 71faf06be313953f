//! A TCP proxy on loopback whose faults ("toxics") can be switched at run
//! time.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::error::{Error, Result};

/// The toxics in force. All off by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Toxics {
    /// Delay added before each chunk is forwarded, in both directions.
    pub latency: Option<Duration>,
    /// Read and drop everything in both directions, on existing and new
    /// connections: the peer sees silence, not an error.
    pub blackhole: bool,
    /// Reset a connection once this many bytes from the client have been
    /// forwarded upstream (counted per connection since the toxic was set).
    pub reset_after: Option<u64>,
    /// Close new connections at once, with a reset. Existing ones go on.
    pub refuse: bool,
    /// Forward in pieces of at most this many bytes, pausing between pieces.
    pub slice: Option<(usize, Duration)>,
}

#[derive(Debug)]
struct Shared {
    toxics: Mutex<(u64, Toxics)>,
    reset_epoch: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, (u64, Toxics)> {
        self.toxics.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn snapshot(&self) -> (u64, Toxics) {
        self.lock().clone()
    }
}

/// Switches the toxics of a [`ChaosProxy`]; cheap to clone, usable from any
/// task. Each call replaces one toxic and keeps the others.
#[derive(Debug, Clone)]
pub struct ToxicHandle {
    shared: Arc<Shared>,
}

impl ToxicHandle {
    fn update(&self, change: impl FnOnce(&mut Toxics)) {
        let mut guard = self.shared.lock();
        guard.0 += 1;
        change(&mut guard.1);
    }

    /// Adds `delay` before every chunk forwarded in either direction, so a
    /// request/response round trip takes at least `2 * delay` longer.
    pub fn latency(&self, delay: Duration) {
        self.update(|toxics| toxics.latency = Some(delay));
    }

    /// Drops all traffic in both directions, on existing and new connections.
    pub fn blackhole(&self) {
        self.update(|toxics| toxics.blackhole = true);
    }

    /// Resets each connection once `bytes` bytes from the client have been
    /// forwarded upstream (the first `bytes` bytes still get through).
    pub fn reset_after(&self, bytes: u64) {
        self.update(|toxics| toxics.reset_after = Some(bytes));
    }

    /// Closes every new connection at once with a reset.
    pub fn refuse(&self) {
        self.update(|toxics| toxics.refuse = true);
    }

    /// Forwards in pieces of at most `bytes` bytes with `pause` between them,
    /// to exercise partial-frame parsing.
    pub fn slice(&self, bytes: usize, pause: Duration) {
        self.update(|toxics| toxics.slice = Some((bytes.max(1), pause)));
    }

    /// Removes every toxic; traffic flows again.
    pub fn clear(&self) {
        self.update(|toxics| *toxics = Toxics::default());
    }

    /// Resets every open connection now; new connections are not affected.
    pub fn reset_connections(&self) {
        self.shared.reset_epoch.send_modify(|epoch| *epoch += 1);
    }

    /// The toxics in force.
    pub fn toxics(&self) -> Toxics {
        self.shared.snapshot().1
    }
}

/// A tokio TCP proxy on 127.0.0.1 in front of `upstream`, with toxics
/// switchable at run time (latency, blackhole, reset after N bytes, refuse,
/// slice).
///
/// It runs on the runtime it was started on; its tasks end, and its
/// connections close, when it drops.
///
/// # Example
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use redis_resilience_testkit::{ChaosProxy, Standalone};
///
/// let server = Standalone::start().await?;
/// let proxy = ChaosProxy::start(server.addr()).await?;
/// let mut conn = redis::Client::open(proxy.url())?
///     .get_multiplexed_async_connection()
///     .await?;
/// proxy.toxics().latency(Duration::from_millis(50)); // each round trip +100 ms
/// proxy.toxics().blackhole(); // requests on `conn` now time out
/// proxy.toxics().clear();
/// let _: String = redis::cmd("PING").query_async(&mut conn).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ChaosProxy {
    addr: SocketAddr,
    addr_string: String,
    upstream: String,
    handle: ToxicHandle,
    task: JoinHandle<()>,
}

impl ChaosProxy {
    /// Listens on 127.0.0.1 (a port chosen by the OS) and forwards every
    /// connection to `upstream` (`"host:port"`).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the listener cannot be bound.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub async fn start(upstream: impl Into<String>) -> Result<Self> {
        let upstream = upstream.into();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|err| Error::io(format!("binding a proxy for {upstream}"), err))?;
        let addr = listener
            .local_addr()
            .map_err(|err| Error::io(format!("binding a proxy for {upstream}"), err))?;
        let (reset_epoch, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            toxics: Mutex::new((0, Toxics::default())),
            reset_epoch,
        });
        let task = tokio::spawn(accept_loop(listener, upstream.clone(), Arc::clone(&shared)));
        Ok(Self {
            addr,
            addr_string: addr.to_string(),
            upstream,
            handle: ToxicHandle { shared },
            task,
        })
    }

    /// The proxy's address, `"127.0.0.1:<port>"`.
    pub fn addr(&self) -> &str {
        &self.addr_string
    }

    /// The proxy's address as a [`SocketAddr`].
    pub fn socket_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr_string)
    }

    /// Where connections are forwarded to.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// The handle that switches toxics (clone it to keep it after the proxy
    /// moves).
    pub fn toxics(&self) -> &ToxicHandle {
        &self.handle
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every
        // connection task and closes their sockets.
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, upstream: String, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    if shared.lock().1.refuse {
                        abort(&client);
                        drop(client);
                        continue;
                    }
                    connections.spawn(relay(client, upstream.clone(), Arc::clone(&shared)));
                }
                // E.g. EMFILE: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Makes the next close of `stream` send a RST instead of a FIN.
fn abort(stream: &TcpStream) {
    #[expect(
        deprecated,
        reason = "a zero linger never blocks; set_zero_linger needs a newer tokio than the workspace minimum"
    )]
    let _ = stream.set_linger(Some(Duration::ZERO));
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Upstream,
    Downstream,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Closed,
    Reset,
}

async fn relay(mut client: TcpStream, upstream: String, shared: Arc<Shared>) {
    let Ok(mut server) = TcpStream::connect(upstream.as_str()).await else {
        abort(&client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let mut resets = shared.reset_epoch.subscribe();
    let outcome = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let up = pump(client_read, server_write, Direction::Upstream, &shared);
        let down = pump(server_read, client_write, Direction::Downstream, &shared);
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            tokio::select! {
                outcome = &mut up, if !up_done => {
                    if outcome == Outcome::Reset { break Outcome::Reset; }
                    up_done = true;
                }
                outcome = &mut down, if !down_done => {
                    if outcome == Outcome::Reset { break Outcome::Reset; }
                    down_done = true;
                }
                changed = resets.changed() => {
                    if changed.is_ok() { break Outcome::Reset; }
                }
            }
            if up_done && down_done {
                break Outcome::Closed;
            }
        }
    };
    if outcome == Outcome::Reset {
        abort(&client);
        abort(&server);
    }
}

async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    direction: Direction,
    shared: &Shared,
) -> Outcome {
    let mut buf = vec![0_u8; 16 * 1024];
    let mut generation = None;
    let mut forwarded: u64 = 0;
    loop {
        let read = match from.read(&mut buf).await {
            Ok(0) => {
                let _ = to.shutdown().await;
                return Outcome::Closed;
            }
            Ok(read) => read,
            Err(_) => return Outcome::Reset,
        };
        let (current, toxics) = shared.snapshot();
        if generation != Some(current) {
            generation = Some(current);
            forwarded = 0;
        }
        if toxics.blackhole {
            continue;
        }
        if let Some(delay) = toxics.latency {
            tokio::time::sleep(delay).await;
        }
        let mut chunk = &buf[..read];
        let mut reset = false;
        if let (Direction::Upstream, Some(limit)) = (direction, toxics.reset_after) {
            let allowed = limit.saturating_sub(forwarded);
            let len = u64::try_from(chunk.len()).unwrap_or(u64::MAX);
            if len >= allowed {
                chunk = &chunk[..usize::try_from(allowed).unwrap_or(chunk.len())];
                reset = true;
            }
            forwarded += u64::try_from(chunk.len()).unwrap_or(u64::MAX);
        }
        if write(&mut to, chunk, toxics.slice).await.is_err() {
            return Outcome::Reset;
        }
        if reset {
            return Outcome::Reset;
        }
    }
}

async fn write(
    to: &mut (impl AsyncWrite + Unpin),
    chunk: &[u8],
    slice: Option<(usize, Duration)>,
) -> std::io::Result<()> {
    match slice {
        None => to.write_all(chunk).await,
        Some((size, pause)) => {
            for (index, piece) in chunk.chunks(size).enumerate() {
                if index > 0 {
                    tokio::time::sleep(pause).await;
                }
                to.write_all(piece).await?;
                to.flush().await?;
            }
            Ok(())
        }
    }
}
