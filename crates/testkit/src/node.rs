//! One `redis-server` process (a data node or a Sentinel) and the faults that
//! can be injected into it.

use std::fmt;
use std::fs::OpenOptions;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use nix::sys::signal::{Signal, kill as send_signal};
use nix::unistd::Pid;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, FromRedisValue, IntoConnectionInfo};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::error::{Error, Result};
use crate::ports::{PortReservation, reserve_port};
use crate::wait::{Check, START_TIMEOUT, poll};

/// How long an admin connection waits for a TCP connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long an admin command waits for its reply.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How many log lines a panicking test prints per node.
const PANIC_LOG_LINES: usize = 40;

/// What a node runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// A data node (`redis-server <conf>`), standalone, replicated or in a cluster.
    Server,
    /// A Sentinel (`redis-server <conf> --sentinel`).
    Sentinel,
}

/// Whether a node's process runs, is stopped by `SIGSTOP`, or is dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessState {
    /// The process runs.
    Running,
    /// The process is stopped with `SIGSTOP` ([`Node::pause`]): connects still
    /// complete, nothing is answered.
    Paused,
    /// The process was killed ([`Node::kill`]) or exited, and was reaped.
    Killed,
}

#[derive(Debug)]
struct Process {
    child: Option<Child>,
    state: ProcessState,
}

/// How to spawn a node; the topologies fill this in.
#[derive(Debug)]
pub(crate) struct NodeSpec<'a> {
    pub(crate) binary: &'a Path,
    pub(crate) parent: &'a Path,
    pub(crate) name: String,
    pub(crate) kind: NodeKind,
    pub(crate) cluster: bool,
    pub(crate) extra: Vec<String>,
    pub(crate) password: Option<String>,
}

/// A handle on one `redis-server` process bound to 127.0.0.1 on a reserved port.
///
/// Topologies own their nodes and hand out `&Node`. All faults take `&self`,
/// so a test can kill one node while it holds references to others. The
/// process is killed and reaped when the node drops, also while a test
/// panics, and then the last lines of its log go to stderr.
pub struct Node {
    name: String,
    kind: NodeKind,
    binary: PathBuf,
    addr: String,
    socket_addr: SocketAddr,
    bus_port: Option<u16>,
    dir: PathBuf,
    conf: PathBuf,
    log: PathBuf,
    password: Option<String>,
    cluster_id: OnceLock<String>,
    process: Mutex<Process>,
    _reservations: Vec<PortReservation>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .field("kind", &self.kind)
            .field("state", &self.state())
            .field("pid", &self.pid())
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.addr)
    }
}

impl Node {
    /// Reserves ports, writes the config and spawns the process. Does not wait.
    pub(crate) fn spawn(spec: NodeSpec<'_>) -> Result<Self> {
        let port = reserve_port()?;
        let bus = spec.cluster.then(reserve_port).transpose()?;
        let dir = spec.parent.join(&spec.name);
        std::fs::create_dir_all(&dir)
            .map_err(|err| Error::io(format!("creating {}", dir.display()), err))?;
        let conf = dir.join(match spec.kind {
            NodeKind::Server => "redis.conf",
            NodeKind::Sentinel => "sentinel.conf",
        });
        let socket_addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port.port()));
        let config = config_text(
            &spec,
            &dir,
            port.port(),
            bus.as_ref().map(PortReservation::port),
        );
        std::fs::write(&conf, config)
            .map_err(|err| Error::io(format!("writing {}", conf.display()), err))?;
        let node = Self {
            addr: socket_addr.to_string(),
            name: spec.name,
            kind: spec.kind,
            binary: spec.binary.to_owned(),
            socket_addr,
            bus_port: bus.as_ref().map(PortReservation::port),
            log: dir.join("server.log"),
            dir,
            conf,
            password: spec.password,
            cluster_id: OnceLock::new(),
            process: Mutex::new(Process {
                child: None,
                state: ProcessState::Killed,
            }),
            _reservations: [Some(port), bus].into_iter().flatten().collect(),
        };
        node.launch()?;
        Ok(node)
    }

    fn launch(&self) -> Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|err| Error::io(format!("opening {}", self.log.display()), err))?;
        let log_err = log
            .try_clone()
            .map_err(|err| Error::io(format!("opening {}", self.log.display()), err))?;
        let mut command = Command::new(&self.binary);
        command.arg(&self.conf);
        if self.kind == NodeKind::Sentinel {
            command.arg("--sentinel");
        }
        let child = command
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|err| {
                Error::io(
                    format!("spawning {} for {self}", self.binary.display()),
                    err,
                )
            })?;
        let mut process = self.lock();
        process.child = Some(child);
        process.state = ProcessState::Running;
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Process> {
        self.process.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until the node answers `PING`, failing at once if it exits.
    pub(crate) async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        poll(format!("{self} to answer PING"), timeout, async || {
            self.check_alive()?;
            Ok(match self.query::<String>(&["PING"]).await {
                Ok(_) => Check::Ready(()),
                Err(err) => Check::Pending(err.to_string()),
            })
        })
        .await
    }

    /// Fails with [`Error::Exited`] if the process has exited on its own.
    fn check_alive(&self) -> Result<()> {
        let mut process = self.lock();
        let Some(child) = process.child.as_mut() else {
            return Ok(());
        };
        match child.try_wait() {
            Ok(Some(status)) => {
                process.child = None;
                process.state = ProcessState::Killed;
                drop(process);
                Err(Error::Exited {
                    node: self.to_string(),
                    status: status.to_string(),
                    log_tail: self.log_tail(8).join(" | "),
                })
            }
            Ok(None) => Ok(()),
            Err(err) => Err(Error::io(format!("checking {self}"), err)),
        }
    }

    /// The node's name within its topology, e.g. `primary-0` or `sentinel-2`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this is a data node or a Sentinel.
    pub fn kind(&self) -> NodeKind {
        self.kind
    }

    /// The address as `"127.0.0.1:<port>"`, the form Redis uses in
    /// `MOVED`/`ASK` replies and `CLUSTER SLOTS`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The address as a [`SocketAddr`].
    pub fn socket_addr(&self) -> SocketAddr {
        self.socket_addr
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.socket_addr.port()
    }

    /// The cluster bus port (`cluster-port`), for cluster nodes.
    pub fn bus_port(&self) -> Option<u16> {
        self.bus_port
    }

    /// `redis://127.0.0.1:<port>`, without credentials.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// The password set with `requirepass`, if any.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The node's cluster node id, for cluster nodes.
    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.get().map(String::as_str)
    }

    pub(crate) fn set_cluster_id(&self, id: String) {
        // A node's id never changes: a restart keeps its nodes.conf.
        let _ = self.cluster_id.set(id);
    }

    /// The node's working directory (config, log, nodes.conf).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The config file the process was started with. Sentinels and
    /// `CONFIG REWRITE` may have rewritten it since.
    pub fn config_path(&self) -> &Path {
        &self.conf
    }

    /// The path of the node's log (stdout and stderr of every run).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The whole log of this node, across restarts.
    pub fn log(&self) -> String {
        std::fs::read(&self.log)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> Vec<String> {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..]
            .iter()
            .map(|line| (*line).to_owned())
            .collect()
    }

    /// The OS process id while the process exists (running or paused).
    pub fn pid(&self) -> Option<u32> {
        self.lock().child.as_ref().map(Child::id)
    }

    /// Whether the process runs, is paused, or is dead (killed, or exited on
    /// its own: an exited process is reaped here).
    pub fn state(&self) -> ProcessState {
        let mut process = self.lock();
        if let Some(child) = process.child.as_mut()
            && matches!(child.try_wait(), Ok(Some(_)))
        {
            process.child = None;
            process.state = ProcessState::Killed;
        }
        process.state
    }

    /// A redis-rs client for this node, with the password if one is set.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] if redis-rs rejects the connection info.
    pub fn client(&self) -> Result<redis::Client> {
        let mut info = ("127.0.0.1", self.port())
            .into_connection_info()
            .map_err(|err| Error::redis(format!("connection info for {self}"), err))?;
        if let Some(password) = &self.password {
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        redis::Client::open(info).map_err(|err| Error::redis(format!("client for {self}"), err))
    }

    /// A new multiplexed connection, with a 1 s connect timeout and a 5 s
    /// response timeout.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] when the node does not accept the connection.
    pub async fn connection(&self) -> Result<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        self.client()?
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|err| Error::redis(format!("connecting to {self}"), err))
    }

    /// Runs one command on a fresh connection, e.g.
    /// `node.query::<String>(&["INFO", "replication"])`.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] on a connection failure, a timeout or an error reply.
    pub async fn query<T: FromRedisValue>(&self, args: &[&str]) -> Result<T> {
        let mut cmd = redis::cmd(args.first().copied().unwrap_or("PING"));
        for arg in args.iter().skip(1) {
            cmd.arg(*arg);
        }
        self.query_cmd(&cmd).await
    }

    /// Runs a prepared [`redis::Cmd`] on a fresh connection (for binary
    /// arguments).
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] on a connection failure, a timeout or an error reply.
    pub async fn query_cmd<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
        let mut connection = self.connection().await?;
        cmd.query_async(&mut connection)
            .await
            .map_err(|err| Error::redis(format!("{} on {self}", describe(cmd)), err))
    }

    /// Sends one command over a plain TCP connection and returns the first
    /// line of the reply exactly as the server wrote it, without the CRLF:
    /// `-ASK 12182 127.0.0.1:20007`, `+OK`, `$5`, `:1`.
    ///
    /// Useful to assert the exact text of redirections and errors. AUTH is
    /// sent first when the node has a password.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] on a connection failure or when no reply line arrives in 5 s.
    pub async fn raw(&self, args: &[&str]) -> Result<String> {
        let context = || format!("raw `{}` on {self}", args.join(" "));
        let exchange = async {
            let stream = tokio::net::TcpStream::connect(self.socket_addr).await?;
            let mut stream = BufReader::new(stream);
            let mut line = String::new();
            if let Some(password) = &self.password {
                stream.write_all(&encode(&["AUTH", password])).await?;
                stream.read_line(&mut line).await?;
                line.clear();
            }
            stream.write_all(&encode(args)).await?;
            stream.read_line(&mut line).await?;
            Ok::<_, std::io::Error>(line)
        };
        let line = tokio::time::timeout(RESPONSE_TIMEOUT, exchange)
            .await
            .map_err(|_| Error::io(context(), std::io::ErrorKind::TimedOut.into()))?
            .map_err(|err| Error::io(context(), err))?;
        if line.is_empty() {
            return Err(Error::io(
                context(),
                std::io::ErrorKind::UnexpectedEof.into(),
            ));
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }

    /// Kills the process with `SIGKILL` and reaps it. Does nothing if it is
    /// already dead. A paused process is killed too.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the signal cannot be sent or the process not reaped.
    pub fn kill(&self) -> Result<()> {
        let mut process = self.lock();
        process.state = ProcessState::Killed;
        let Some(mut child) = process.child.take() else {
            return Ok(());
        };
        drop(process);
        child
            .kill()
            .map_err(|err| Error::io(format!("killing {self}"), err))?;
        child
            .wait()
            .map_err(|err| Error::io(format!("reaping {self}"), err))?;
        Ok(())
    }

    /// Stops the process with `SIGSTOP`: it keeps its sockets, so TCP connects
    /// still complete, but it answers nothing and sends no heartbeats until
    /// [`resume`](Self::resume).
    ///
    /// # Errors
    ///
    /// [`Error::Topology`] if the node was killed, [`Error::Io`] if the
    /// signal cannot be sent.
    pub fn pause(&self) -> Result<()> {
        self.signal(Signal::SIGSTOP, ProcessState::Paused)
    }

    /// Continues a paused process with `SIGCONT`. Does nothing to a running one.
    ///
    /// # Errors
    ///
    /// [`Error::Topology`] if the node was killed, [`Error::Io`] if the
    /// signal cannot be sent.
    pub fn resume(&self) -> Result<()> {
        self.signal(Signal::SIGCONT, ProcessState::Running)
    }

    fn signal(&self, signal: Signal, next: ProcessState) -> Result<()> {
        let mut process = self.lock();
        let Some(child) = process.child.as_ref() else {
            return Err(Error::Topology(format!(
                "cannot send {signal} to {self}: it was killed"
            )));
        };
        let pid = i32::try_from(child.id())
            .map_err(|_| Error::Topology(format!("pid of {self} does not fit in an i32")))?;
        send_signal(Pid::from_raw(pid), signal)
            .map_err(|errno| Error::io(format!("sending {signal} to {self}"), errno.into()))?;
        process.state = next;
        Ok(())
    }

    /// Kills the process (if it runs), clears its data (`dump.rdb`,
    /// append-only files) and starts it again on the same port with the same
    /// config file, then waits until it answers `PING`.
    ///
    /// A cluster node keeps its `nodes.conf`, so it rejoins with the same node
    /// id, as a real node restarting after a crash would; a Sentinel keeps the
    /// state it wrote into its config.
    ///
    /// # Errors
    ///
    /// [`Error::Exited`] if the new process dies, [`Error::Timeout`] if it does
    /// not answer within 30 s, [`Error::Io`] on spawn failures.
    pub async fn restart(&self) -> Result<()> {
        self.kill()?;
        for stale in ["dump.rdb", "appendonly.aof", "appendonlydir"] {
            let path = self.dir.join(stale);
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match removed {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io(format!("removing {}", path.display()), err));
                }
                Ok(()) | Err(_) => {}
            }
        }
        self.launch()?;
        self.wait_ready(START_TIMEOUT).await
    }

    /// One `INFO` section as text.
    pub(crate) async fn info(&self, section: &str) -> Result<String> {
        self.query::<String>(&["INFO", section]).await
    }

    /// Whether the node is running (not paused, not killed).
    pub(crate) fn is_running(&self) -> bool {
        self.state() == ProcessState::Running
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- last {PANIC_LOG_LINES} log lines of {self} ({}) ----",
                self.log.display()
            );
            for line in self.log_tail(PANIC_LOG_LINES) {
                eprintln!("{line}");
            }
        }
    }
}

/// A command's name (and subcommand) for error messages.
fn describe(cmd: &redis::Cmd) -> String {
    let words: Vec<String> = cmd
        .args_iter()
        .take(2)
        .filter_map(|arg| match arg {
            redis::Arg::Simple(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        })
        .collect();
    let name = words.first().map(String::as_str).unwrap_or_default();
    let is_container = ["CLUSTER", "SENTINEL", "CONFIG", "CLIENT"]
        .iter()
        .any(|container| name.eq_ignore_ascii_case(container));
    if is_container {
        format!("`{}`", words.join(" "))
    } else {
        format!("`{name}`")
    }
}

/// Encodes a command as a RESP array of bulk strings.
fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Quotes a value for redis.conf.
pub(crate) fn quote(value: &str) -> String {
    let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

fn config_text(spec: &NodeSpec<'_>, dir: &Path, port: u16, bus: Option<u16>) -> String {
    let mut lines = vec![
        "bind 127.0.0.1".to_owned(),
        format!("port {port}"),
        format!("dir {}", quote(&dir.to_string_lossy())),
        "daemonize no".to_owned(),
        "logfile \"\"".to_owned(),
    ];
    if spec.kind == NodeKind::Server {
        lines.extend(
            [
                "save \"\"",
                "appendonly no",
                "repl-diskless-sync yes",
                "repl-diskless-sync-delay 0",
                "enable-debug-command local",
            ]
            .map(str::to_owned),
        );
        if let Some(password) = &spec.password {
            lines.push(format!("requirepass {}", quote(password)));
            lines.push(format!("masterauth {}", quote(password)));
        }
    }
    if let Some(bus) = bus {
        lines.extend([
            "cluster-enabled yes".to_owned(),
            "cluster-config-file nodes.conf".to_owned(),
            "cluster-node-timeout 1000".to_owned(),
            format!("cluster-port {bus}"),
        ]);
    }
    lines.extend(spec.extra.iter().cloned());
    let mut text = lines.join("\n");
    text.push('\n');
    text
}
