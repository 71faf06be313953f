//! [`Request`]: a command or pipeline, what is known about it, where it goes and by when.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::command::{CommandInfo, KeyPositions, KeySlot};
use crate::route::Route;

/// The command a request carries.
#[derive(Debug, Clone)]
pub enum Command {
    /// One command.
    Single(redis::Cmd),
    /// A pipeline (atomic when it is a `MULTI`/`EXEC` transaction).
    Pipeline(redis::Pipeline),
}

/// Per-request options that layers honour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestOptions {
    /// The oldest value a staleness cache may serve for this request; it can only
    /// lower the layer's own budget.
    pub max_staleness: Option<Duration>,
    /// Only the primary may answer: no replica, no stale or secondary value.
    pub authoritative: bool,
    /// Never retried, whatever the error.
    pub no_retry: bool,
}

#[derive(Debug, Clone)]
struct Shared {
    command: Command,
    info: CommandInfo,
    /// For pipelines, the information of each command, in order.
    parts: Box<[CommandInfo]>,
}

/// One request to Redis, as every layer sees it.
///
/// Clones are O(1): the command and its [`CommandInfo`] are shared behind an
/// `Arc`; the route, deadline and options are small values a layer may change
/// per attempt (a redirect re-routes, a retry keeps the deadline).
///
/// Deadlines are [`std::time::Instant`]s. Layers read the clock through tokio
/// (`tokio::time::Instant::now().into_std()`), so tests with paused time see
/// deadlines pass as the mocked clock advances.
///
/// # Example
///
/// ```
/// use std::time::{Duration, Instant};
/// use redis_resilience_core::{Request, Route, ReadFrom};
///
/// let request = Request::new(redis::cmd("GET").arg("user:42:name").clone())
///     .with_route(Route::Replica(ReadFrom::LowestLag))
///     .with_deadline(Instant::now() + Duration::from_millis(200))
///     .with_max_staleness(Duration::from_secs(5));
/// assert!(request.info().is_readonly());
/// assert_eq!(request.keys().collect::<Vec<_>>(), vec![&b"user:42:name"[..]]);
///
/// let retry = request.clone(); // O(1)
/// assert_eq!(retry.route(), request.route());
/// ```
#[derive(Debug, Clone)]
pub struct Request {
    shared: Arc<Shared>,
    route: Route,
    deadline: Option<Instant>,
    options: RequestOptions,
}

impl Request {
    /// A request for one command, routed [`Route::Auto`], without deadline.
    #[must_use]
    pub fn new(cmd: redis::Cmd) -> Self {
        let info = CommandInfo::of(&cmd);
        Self::from_parts(Command::Single(cmd), info, Box::new([]))
    }

    /// A request for a pipeline. Its keys must share one slot to be sent to a
    /// cluster; a transaction is never treated as idempotent.
    #[must_use]
    pub fn pipeline(pipeline: redis::Pipeline) -> Self {
        let parts: Box<[CommandInfo]> = pipeline.cmd_iter().map(CommandInfo::of).collect();
        let info = CommandInfo::of_pipeline(&pipeline);
        Self::from_parts(Command::Pipeline(pipeline), info, parts)
    }

    fn from_parts(command: Command, info: CommandInfo, parts: Box<[CommandInfo]>) -> Self {
        Self {
            shared: Arc::new(Shared {
                command,
                info,
                parts,
            }),
            route: Route::Auto,
            deadline: None,
            options: RequestOptions::default(),
        }
    }

    /// The command.
    #[must_use]
    pub fn command(&self) -> &Command {
        &self.shared.command
    }

    /// What is known about the command (for a pipeline, about all of it).
    #[must_use]
    pub fn info(&self) -> &CommandInfo {
        &self.shared.info
    }

    /// For a pipeline, the information of each command; empty otherwise.
    #[must_use]
    pub fn pipeline_parts(&self) -> &[CommandInfo] {
        &self.shared.parts
    }

    /// The slot of the request's keys.
    #[must_use]
    pub fn slot(&self) -> KeySlot {
        self.shared.info.slot()
    }

    /// The keys, in argument order (for a pipeline, command after command).
    /// Empty when they are unknown.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        let (single, pipeline) = match &self.shared.command {
            Command::Single(cmd) => (Some((cmd, self.shared.info.key_positions())), None),
            Command::Pipeline(pipeline) => (
                None,
                Some(pipeline.cmd_iter().zip(self.shared.parts.iter())),
            ),
        };
        single
            .into_iter()
            .chain(
                pipeline
                    .into_iter()
                    .flatten()
                    .map(|(cmd, info)| (cmd, info.key_positions())),
            )
            .flat_map(|(cmd, positions)| keys_of(cmd, positions))
    }

    /// Where the request goes.
    #[must_use]
    pub fn route(&self) -> &Route {
        &self.route
    }

    /// Sends the request elsewhere (a redirect, a replica fallback).
    pub fn set_route(&mut self, route: Route) {
        self.route = route;
    }

    /// With a route.
    #[must_use]
    pub fn with_route(mut self, route: Route) -> Self {
        self.route = route;
        self
    }

    /// The instant after which no one waits for the answer.
    #[must_use]
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// With a deadline; an earlier existing deadline is kept.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(self.deadline.map_or(deadline, |d| d.min(deadline)));
        self
    }

    /// The per-request options.
    #[must_use]
    pub fn options(&self) -> &RequestOptions {
        &self.options
    }

    /// Only the primary may answer (no replica, stale or secondary value).
    #[must_use]
    pub fn authoritative(mut self) -> Self {
        self.options.authoritative = true;
        self
    }

    /// Never retried.
    #[must_use]
    pub fn no_retry(mut self) -> Self {
        self.options.no_retry = true;
        self
    }

    /// Lowers the staleness budget for this request (a larger value than an
    /// existing one is ignored: it can only lower).
    #[must_use]
    pub fn with_max_staleness(mut self, max: Duration) -> Self {
        self.options.max_staleness = Some(self.options.max_staleness.map_or(max, |m| m.min(max)));
        self
    }

    /// Overrides the idempotency classification (e.g. a script known to only read).
    #[must_use]
    pub fn assume_idempotent(mut self, idempotent: bool) -> Self {
        Arc::make_mut(&mut self.shared)
            .info
            .set_idempotent(idempotent);
        self
    }
}

impl From<redis::Cmd> for Request {
    fn from(cmd: redis::Cmd) -> Self {
        Self::new(cmd)
    }
}

impl From<redis::Pipeline> for Request {
    fn from(pipeline: redis::Pipeline) -> Self {
        Self::pipeline(pipeline)
    }
}

fn keys_of<'a>(cmd: &'a redis::Cmd, positions: &'a KeyPositions) -> impl Iterator<Item = &'a [u8]> {
    cmd.args_iter()
        .enumerate()
        .filter(move |(i, _)| u32::try_from(*i).is_ok_and(|i| positions.contains(i)))
        .filter_map(|(_, arg)| match arg {
            redis::Arg::Simple(bytes) => Some(bytes),
            _ => None,
        })
}
