//! [`RedirectPolicy`]: how far a request follows `MOVED` and `ASK`, and where
//! each redirect sends it.

use redis_resilience_core::{Error, ErrorKind, NodeAddr, Request, Route, Sent};

/// How [`RedirectLayer`](super::RedirectLayer) follows redirects.
///
/// # Defaults
///
/// At most 5 hops per request; a transaction answered with `ASK` is sent
/// again to the importing node (preceded by `ASKING`).
///
/// # Example
///
/// ```
/// use redis_resilience_layers::RedirectPolicy;
///
/// let policy = RedirectPolicy::builder()
///     .max_hops(3)
///     .follow_ask_in_transactions(false)
///     .build();
/// assert_eq!(policy.max_hops(), 3);
/// assert!(!policy.follows_ask_in_transactions());
/// assert_eq!(RedirectPolicy::default().max_hops(), 5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedirectPolicy {
    max_hops: u32,
    follow_ask_in_transactions: bool,
}

impl RedirectPolicy {
    /// A builder, starting from the defaults.
    #[must_use]
    pub fn builder() -> RedirectPolicyBuilder {
        RedirectPolicyBuilder::default()
    }

    /// Redirects one request may follow; one more is an error.
    #[must_use]
    pub fn max_hops(&self) -> u32 {
        self.max_hops
    }

    /// Whether a `MULTI`/`EXEC` transaction answered with `ASK` is sent again,
    /// whole, to the importing node.
    #[must_use]
    pub fn follows_ask_in_transactions(&self) -> bool {
        self.follow_ask_in_transactions
    }

    /// Where to send `request` after it failed with `error`, a redirect:
    /// `Ok` with the new route, or `Err` with the error to return. `hops` is
    /// how many redirects the request followed already; `moved_to` the nodes
    /// it was sent to by a `MOVED` (the new target is added to it).
    pub(crate) fn next_route(
        &self,
        request: &Request,
        error: &Error,
        hops: u32,
        moved_to: &mut Vec<NodeAddr>,
    ) -> Result<Route, Error> {
        let (ask, slot, addr) = match error.kind() {
            ErrorKind::Moved { slot, addr } => (false, *slot, addr),
            ErrorKind::Ask { slot, addr } => (true, *slot, addr),
            _ => return Err(error.clone()),
        };
        let code = if ask { "ASK" } else { "MOVED" };
        if hops >= self.max_hops {
            return Err(give_up(
                error,
                format!("too many redirects: gave up after {hops} hops at {error}"),
            ));
        }
        if ask && !self.follow_ask_in_transactions && is_transaction(request) {
            return Err(give_up(
                error,
                format!(
                    "transaction not re-sent after ASK: slot {slot} is migrating to {addr}, and re-sending transactions on ASK is turned off"
                ),
            ));
        }
        // The replying node is the one the route named, when it named one.
        let replied = request.route().node();
        let target = if addr.host().is_empty() {
            let Some(replied) = replied else {
                return Err(give_up(
                    error,
                    format!(
                        "cannot follow {error}: it names the host of the node that replied, which the route does not say"
                    ),
                ));
            };
            NodeAddr::new(replied.host(), addr.port())
        } else {
            addr.clone()
        };
        if ask {
            return Ok(Route::Asking(target));
        }
        let again = matches!(request.route(), Route::Node(node) if *node == target)
            || moved_to.contains(&target);
        if again {
            return Err(give_up(
                error,
                format!("redirect loop: {code} to {target} again after {hops} hops at {error}"),
            ));
        }
        moved_to.push(target.clone());
        Ok(Route::Node(target))
    }
}

impl Default for RedirectPolicy {
    fn default() -> Self {
        RedirectPolicyBuilder::default().build()
    }
}

/// Builds a [`RedirectPolicy`].
#[derive(Debug, Clone, Default)]
pub struct RedirectPolicyBuilder {
    max_hops: Option<u32>,
    follow_ask_in_transactions: Option<bool>,
}

impl RedirectPolicyBuilder {
    /// Redirects one request may follow. Default 5; 0 follows none.
    #[must_use]
    pub fn max_hops(mut self, max_hops: u32) -> Self {
        self.max_hops = Some(max_hops);
        self
    }

    /// Whether a transaction answered with `ASK` is sent again, whole, to the
    /// importing node with `ASKING` (`true`, the default), or returned as an
    /// error (`false`).
    #[must_use]
    pub fn follow_ask_in_transactions(mut self, follow: bool) -> Self {
        self.follow_ask_in_transactions = Some(follow);
        self
    }

    /// The policy.
    #[must_use]
    pub fn build(self) -> RedirectPolicy {
        RedirectPolicy {
            max_hops: self.max_hops.unwrap_or(5),
            follow_ask_in_transactions: self.follow_ask_in_transactions.unwrap_or(true),
        }
    }
}

fn is_transaction(request: &Request) -> bool {
    request.info().name() == "transaction"
}

/// The error returned instead of following `error`: its kind (so callers
/// still see the redirect and its slot), whether it was sent, and `message`;
/// `error` is kept as the source.
fn give_up(error: &Error, message: String) -> Error {
    Error::new(error.kind().clone(), error.sent(), message).with_source(error.clone())
}

/// The error returned when the deadline passed before a redirect was followed:
/// the command did not run (a redirect is a refusal), and no answer came in time.
pub(crate) fn deadline_passed(error: &Error) -> Error {
    Error::new(
        ErrorKind::Timeout,
        Sent::No,
        format!("deadline passed before following {error}"),
    )
    .with_source(error.clone())
}
