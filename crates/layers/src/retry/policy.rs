//! [`RetryPolicy`]: which failures are retried, how often, and how long to
//! wait between attempts.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis_resilience_core::{Error, ErrorKind, Request, Sent};

use super::budget::RetryBudget;

/// What [`RetryLayer`](super::RetryLayer) retries, how many times and after
/// which pause.
///
/// # Which failures are retried
///
/// | failure | retried |
/// |---|---|
/// | `Connect`, `Io`, `Timeout`, `NoReplicaAvailable` with [`Sent::No`] | always |
/// | the same with [`Sent::Maybe`] (or `Sent::Yes`) | only idempotent commands ([`CommandInfo::is_idempotent`](redis_resilience_core::CommandInfo::is_idempotent)) |
/// | `TRYAGAIN`, `LOADING`, `CLUSTERDOWN`, `MASTERDOWN` ([`ErrorKind::is_transient_server_state`]) | always: the server refused to run the command |
/// | `READONLY` | always: see below |
/// | `MOVED`, `ASK` | never: redirects are [`RedirectLayer`](crate::RedirectLayer)'s job |
/// | `CircuitOpen`, `RateLimited` | never: they exist to shed load |
/// | semantic errors: `WRONGTYPE`, `NOSCRIPT`, `OOM`, `BUSY`, `NOREPLICAS`, `EXECABORT`, `CROSSSLOT`, `Auth`, `Server { .. }`, `Protocol`, `Config`, `Secondary`, and kinds added later | never |
/// | any failure of a request marked [`no_retry`](redis_resilience_core::Request::no_retry) | never |
///
/// `READONLY` is an answer ([`Sent::Yes`]) saying that the write was *not*
/// executed: it reached a replica, typically a demoted master the client still
/// pointed at during a failover. Sending it again is therefore safe for any
/// command, and useful: the service rediscovers the master when it sees
/// `READONLY`, so the retry, after its backoff, goes to the new master.
///
/// Every retry waits a backoff first, and none starts when the request's
/// deadline would pass before the backoff ends, or when the layer's
/// [`RetryBudget`] is spent.
///
/// # Backoff
///
/// Full jitter: before retry `n` (0 for the first), a delay drawn uniformly
/// from `[0, min(max_delay, base_delay × 2ⁿ)]`. The random source is seeded
/// from the process's random state, or from [`seed`](RetryPolicyBuilder::seed)
/// for reproducible tests.
///
/// # Defaults
///
/// 3 attempts in all (the first and two retries), `base_delay` 10 ms,
/// `max_delay` 250 ms, the default [`RetryBudget`] (10 % of requests plus 10
/// a second), random seed.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use redis_resilience_core::{Error, Request, Sent};
/// use redis_resilience_layers::RetryPolicy;
///
/// let policy = RetryPolicy::builder()
///     .max_attempts(4)
///     .base_delay(Duration::from_millis(5))
///     .max_delay(Duration::from_millis(100))
///     .seed(42)
///     .build();
/// assert_eq!(policy.backoff_ceiling(0), Duration::from_millis(5));
/// assert_eq!(policy.backoff_ceiling(2), Duration::from_millis(20));
/// assert_eq!(policy.backoff_ceiling(10), Duration::from_millis(100));
///
/// let incr = Request::new(redis::cmd("INCR").arg("hits").clone());
/// assert!(policy.may_retry(&incr, &Error::connect("connection refused")));
/// assert!(!policy.may_retry(&incr, &Error::timeout(Sent::Maybe)));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RetryPolicy {
    max_attempts: u32,
    base_delay: Duration,
    max_delay: Duration,
    budget: RetryBudget,
    seed: Option<u64>,
}

impl RetryPolicy {
    /// A builder, starting from the defaults.
    #[must_use]
    pub fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder::default()
    }

    /// Attempts in all, the first included (at least 1).
    #[must_use]
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The ceiling of the first retry's backoff, doubled for each further one.
    #[must_use]
    pub fn base_delay(&self) -> Duration {
        self.base_delay
    }

    /// The largest ceiling a backoff may have.
    #[must_use]
    pub fn max_delay(&self) -> Duration {
        self.max_delay
    }

    /// The retry budget a layer built from this policy shares among its clones.
    #[must_use]
    pub fn budget(&self) -> &RetryBudget {
        &self.budget
    }

    /// The seed of the backoff's random source, when one was set.
    #[must_use]
    pub fn seed(&self) -> Option<u64> {
        self.seed
    }

    /// The ceiling of the backoff before retry `retry` (0 for the first):
    /// `min(max_delay, base_delay × 2^retry)`.
    #[must_use]
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        let factor = 1_u32.checked_shl(retry).unwrap_or(u32::MAX);
        self.base_delay
            .checked_mul(factor)
            .unwrap_or(Duration::MAX)
            .min(self.max_delay)
    }

    /// Whether `error`, the outcome of an attempt of `request`, may be retried
    /// at all (see the table above). Attempts, deadline and budget are checked
    /// separately.
    #[must_use]
    pub fn may_retry(&self, request: &Request, error: &Error) -> bool {
        if request.options().no_retry {
            return false;
        }
        match error.kind() {
            kind if kind.is_transient_server_state() => true,
            ErrorKind::ReadOnly => true,
            ErrorKind::Connect
            | ErrorKind::Io
            | ErrorKind::Timeout
            | ErrorKind::NoReplicaAvailable => match error.sent() {
                Sent::No => true,
                Sent::Maybe | Sent::Yes => request.info().is_idempotent(),
            },
            _ => false,
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicyBuilder::default().build()
    }
}

/// Builds a [`RetryPolicy`].
#[derive(Debug, Clone, Default)]
pub struct RetryPolicyBuilder {
    max_attempts: Option<u32>,
    base_delay: Option<Duration>,
    max_delay: Option<Duration>,
    budget: Option<RetryBudget>,
    seed: Option<u64>,
}

impl RetryPolicyBuilder {
    /// Attempts in all, the first included; 0 counts as 1 (no retry).
    /// Default 3.
    #[must_use]
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = Some(max_attempts);
        self
    }

    /// The ceiling of the first retry's backoff. Default 10 ms.
    #[must_use]
    pub fn base_delay(mut self, base_delay: Duration) -> Self {
        self.base_delay = Some(base_delay);
        self
    }

    /// The largest ceiling a backoff may have. Default 250 ms.
    #[must_use]
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = Some(max_delay);
        self
    }

    /// The retry budget. Default [`RetryBudget::default`].
    #[must_use]
    pub fn budget(mut self, budget: RetryBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Seeds the backoff's random source, so that a test sees the same delays
    /// on every run. Default: a random seed per layer.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The policy.
    #[must_use]
    pub fn build(self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts.unwrap_or(3).max(1),
            base_delay: self.base_delay.unwrap_or(Duration::from_millis(10)),
            max_delay: self.max_delay.unwrap_or(Duration::from_millis(250)),
            budget: self.budget.unwrap_or_default(),
            seed: self.seed,
        }
    }
}

/// The random source of the backoff: SplitMix64 over one atomic, so that
/// every clone of a layer draws from it without a lock.
#[derive(Debug)]
pub(crate) struct Jitter {
    state: AtomicU64,
}

impl Jitter {
    const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

    pub(crate) fn new(seed: Option<u64>) -> Self {
        let seed = seed.unwrap_or_else(|| RandomState::new().hash_one(0_u8));
        Self {
            state: AtomicU64::new(seed),
        }
    }

    fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(Self::GAMMA, Ordering::Relaxed)
            .wrapping_add(Self::GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A delay drawn uniformly from `[0, ceiling]`, to the nanosecond.
    pub(crate) fn below(&self, ceiling: Duration) -> Duration {
        let ceiling = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        let span = u128::from(ceiling) + 1;
        // Multiply-shift: uniform enough, and no division.
        let nanos = (u128::from(self.next_u64()) * span) >> 64;
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(ceiling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let ceilings: Vec<u128> = (0..7)
            .map(|n| policy.backoff_ceiling(n).as_millis())
            .collect();
        assert_eq!(ceilings, [10, 20, 40, 80, 160, 250, 250]);
        assert_eq!(policy.backoff_ceiling(u32::MAX), Duration::from_millis(250));
        assert_eq!(policy.max_attempts(), 3);
    }

    #[test]
    fn jitter_stays_below_the_ceiling_and_spreads() {
        let jitter = Jitter::new(Some(7));
        let ceiling = Duration::from_millis(10);
        let draws: Vec<Duration> = (0..1000).map(|_| jitter.below(ceiling)).collect();
        assert!(draws.iter().all(|d| *d <= ceiling));
        assert!(draws.iter().any(|d| *d < Duration::from_millis(1)));
        assert!(draws.iter().any(|d| *d > Duration::from_millis(9)));
        assert_eq!(Jitter::new(Some(1)).below(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn the_same_seed_draws_the_same_delays() {
        let a = Jitter::new(Some(42));
        let b = Jitter::new(Some(42));
        for _ in 0..10 {
            assert_eq!(
                a.below(Duration::from_secs(1)),
                b.below(Duration::from_secs(1))
            );
        }
    }

    #[test]
    fn zero_attempts_means_one() {
        assert_eq!(
            RetryPolicy::builder()
                .max_attempts(0)
                .build()
                .max_attempts(),
            1
        );
    }
}
