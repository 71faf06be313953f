//! The retry budget: how many retries the requests of one [`RetryLayer`] may
//! spend, so that retries cannot multiply the load on a struggling server.
//!
//! [`RetryLayer`]: super::RetryLayer

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;

/// Units of one retry token: deposits of a fraction of a retry stay exact
/// enough in integers.
const UNIT: u64 = 1_000_000;

/// The most a ratio may be: a thousand retries per request is no budget at all.
const MAX_RATIO: f64 = 1000.0;

/// How many retries a [`RetryLayer`](super::RetryLayer) may spend, shared by
/// every clone of the layer and every service it wrapped.
///
/// A token bucket: every request deposits `ratio` of a retry, a floor adds
/// `min_per_second` retries per second, and every retry withdraws one. The
/// bucket holds at most `burst` retries (at least one), and starts full. Over
/// any interval the retries are thus at most `ratio` × requests +
/// `min_per_second` × seconds + `burst`.
///
/// When a retry finds the bucket empty, the request fails with the error of
/// its last attempt (outcome `budget_exhausted`).
///
/// # Defaults
///
/// `ratio` 0.1 (10 % of requests), `min_per_second` 10, `burst` equal to
/// `min_per_second` (one second of the floor).
///
/// # Example
///
/// ```
/// use redis_resilience_layers::{RetryBudget, RetryPolicy};
///
/// // At most 20 % of requests, plus 5 retries a second.
/// let budget = RetryBudget::builder().ratio(0.2).min_per_second(5).build();
/// assert_eq!(budget.burst(), 5);
/// let policy = RetryPolicy::builder().budget(budget).build();
/// assert_eq!(policy.budget().ratio(), 0.2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct RetryBudget {
    ratio: f64,
    min_per_second: u32,
    burst: u32,
}

impl RetryBudget {
    /// A builder, starting from the defaults.
    #[must_use]
    pub fn builder() -> RetryBudgetBuilder {
        RetryBudgetBuilder::default()
    }

    /// A budget that never runs out (for tests, or a stack whose retries are
    /// bounded elsewhere).
    #[must_use]
    pub fn unlimited() -> Self {
        Self {
            ratio: MAX_RATIO,
            min_per_second: u32::MAX,
            burst: u32::MAX,
        }
    }

    /// The share of requests that may be retried (0.1 is 10 %).
    #[must_use]
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// Retries allowed per second whatever the traffic.
    #[must_use]
    pub fn min_per_second(&self) -> u32 {
        self.min_per_second
    }

    /// The most retries the bucket holds, and holds at the start.
    #[must_use]
    pub fn burst(&self) -> u32 {
        self.burst
    }
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudgetBuilder::default().build()
    }
}

/// Builds a [`RetryBudget`].
#[derive(Debug, Clone, Default)]
pub struct RetryBudgetBuilder {
    ratio: Option<f64>,
    min_per_second: Option<u32>,
    burst: Option<u32>,
}

impl RetryBudgetBuilder {
    /// The share of requests that may be retried, from 0 (none but the floor)
    /// to 1000; a value out of range (or NaN) is clamped into it. Default 0.1.
    #[must_use]
    pub fn ratio(mut self, ratio: f64) -> Self {
        self.ratio = Some(ratio);
        self
    }

    /// Retries allowed per second whatever the traffic. Default 10.
    #[must_use]
    pub fn min_per_second(mut self, min_per_second: u32) -> Self {
        self.min_per_second = Some(min_per_second);
        self
    }

    /// The most retries the bucket holds, and holds at the start. Default:
    /// `min_per_second`.
    #[must_use]
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }

    /// The budget.
    #[must_use]
    pub fn build(self) -> RetryBudget {
        let ratio = match self.ratio {
            Some(ratio) if ratio.is_nan() => 0.0,
            Some(ratio) => ratio.clamp(0.0, MAX_RATIO),
            None => 0.1,
        };
        let min_per_second = self.min_per_second.unwrap_or(10);
        RetryBudget {
            ratio,
            min_per_second,
            burst: self.burst.unwrap_or(min_per_second),
        }
    }
}

/// The live bucket behind a [`RetryBudget`], shared by every clone of a layer.
///
/// Lock-free: deposits are one atomic add (one load when the bucket is full),
/// withdrawals first add the floor's refill since the last one.
#[derive(Debug)]
pub(crate) struct Bucket {
    /// Retry tokens, in [`UNIT`]s.
    balance: AtomicU64,
    /// Nanoseconds from `origin` to the last floor refill.
    refilled_at: AtomicU64,
    origin: Instant,
    deposit: u64,
    capacity: u64,
    min_per_second: u64,
}

impl Bucket {
    pub(crate) fn new(budget: &RetryBudget) -> Self {
        // The builder clamps the ratio to [0, 1000]: the product is a small,
        // non-negative integer.
        let deposit = (budget.ratio * UNIT as f64).round() as u64;
        let capacity = u64::from(budget.burst.max(1)).saturating_mul(UNIT);
        Self {
            balance: AtomicU64::new(u64::from(budget.burst).saturating_mul(UNIT)),
            refilled_at: AtomicU64::new(0),
            origin: Instant::now(),
            deposit,
            capacity,
            min_per_second: u64::from(budget.min_per_second),
        }
    }

    /// A request was made: it earns `ratio` of a retry.
    pub(crate) fn deposit(&self) {
        if self.deposit == 0 || self.balance.load(Ordering::Relaxed) >= self.capacity {
            return;
        }
        self.add(self.deposit);
    }

    /// Takes one retry; `false` when the bucket holds less than one.
    pub(crate) fn withdraw(&self) -> bool {
        self.refill();
        self.balance
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |balance| {
                balance.checked_sub(UNIT)
            })
            .is_ok()
    }

    /// Whole retries available now.
    pub(crate) fn available(&self) -> u64 {
        self.refill();
        self.balance.load(Ordering::Acquire) / UNIT
    }

    fn add(&self, amount: u64) {
        let capacity = self.capacity;
        // The closure always returns `Some`, so this cannot fail.
        let _ = self
            .balance
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |balance| {
                Some(balance.saturating_add(amount).min(capacity))
            });
    }

    /// Adds the floor's tokens for the time since the last refill.
    fn refill(&self) {
        if self.min_per_second == 0 {
            return;
        }
        let now = u64::try_from(
            Instant::now()
                .saturating_duration_since(self.origin)
                .as_nanos(),
        )
        .unwrap_or(u64::MAX);
        let last = self.refilled_at.load(Ordering::Acquire);
        let Some(elapsed) = now.checked_sub(last).filter(|&e| e > 0) else {
            return;
        };
        // Tokens per second × UNIT per token / 1e9 ns per second.
        let earned = u128::from(elapsed) * u128::from(self.min_per_second) * u128::from(UNIT)
            / 1_000_000_000;
        if earned == 0 {
            // Leave `refilled_at` alone so that short intervals add up.
            return;
        }
        let earned = u64::try_from(earned).unwrap_or(u64::MAX);
        // Only the thread that moves the clock forward adds the tokens.
        if self
            .refilled_at
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.add(earned);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn budget(ratio: f64, min_per_second: u32, burst: u32) -> Bucket {
        Bucket::new(
            &RetryBudget::builder()
                .ratio(ratio)
                .min_per_second(min_per_second)
                .burst(burst)
                .build(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn starts_full_and_empties() {
        let bucket = budget(0.0, 0, 2);
        assert!(bucket.withdraw());
        assert!(bucket.withdraw());
        assert!(!bucket.withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn deposits_earn_a_share_of_a_retry() {
        let bucket = budget(0.25, 0, 0);
        for _ in 0..3 {
            bucket.deposit();
        }
        assert!(!bucket.withdraw());
        bucket.deposit();
        assert!(bucket.withdraw());
        assert!(!bucket.withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn capacity_caps_deposits() {
        let bucket = budget(1.0, 0, 2);
        for _ in 0..100 {
            bucket.deposit();
        }
        assert_eq!(bucket.available(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn floor_refills_over_time() {
        let bucket = budget(0.0, 4, 1);
        assert!(bucket.withdraw());
        assert!(!bucket.withdraw());
        tokio::time::advance(Duration::from_millis(200)).await;
        assert!(!bucket.withdraw());
        tokio::time::advance(Duration::from_millis(50)).await;
        assert!(bucket.withdraw());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(bucket.available(), 1);
    }

    #[test]
    fn builder_clamps_the_ratio() {
        assert_eq!(RetryBudget::builder().ratio(f64::NAN).build().ratio(), 0.0);
        assert_eq!(RetryBudget::builder().ratio(-1.0).build().ratio(), 0.0);
        assert_eq!(RetryBudget::builder().ratio(1e9).build().ratio(), 1000.0);
        let default = RetryBudget::default();
        assert_eq!(
            (default.ratio(), default.min_per_second(), default.burst()),
            (0.1, 10, 10)
        );
    }
}
