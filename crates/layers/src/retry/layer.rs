//! [`RetryLayer`] and the state its services share.

use std::sync::Arc;
use std::time::Duration;

use redis_resilience_core::{Error, Request};
use tower_layer::Layer;

use super::budget::Bucket;
use super::policy::{Jitter, RetryPolicy};
use super::service::Retry;

/// Wraps services in [`Retry`]: retries transient failures with backoff,
/// within a budget shared by every clone of the layer.
///
/// Every service the layer wraps, and every clone of the layer, shares one
/// retry budget and one random source, so a stack built per route still
/// bounds the retries of the whole application.
///
/// # Example
///
/// ```
/// use redis_resilience_layers::{RetryLayer, RetryPolicy};
///
/// let layer = RetryLayer::new(RetryPolicy::builder().max_attempts(2).build());
/// assert_eq!(layer.policy().max_attempts(), 2);
/// assert_eq!(layer.available_retries(), 10); // the budget starts full
/// ```
#[derive(Debug, Clone)]
pub struct RetryLayer {
    shared: Arc<Shared>,
}

impl RetryLayer {
    /// A layer with `policy`, and a budget of its own.
    #[must_use]
    pub fn new(policy: RetryPolicy) -> Self {
        Self {
            shared: Arc::new(Shared::new(policy)),
        }
    }

    /// The policy.
    #[must_use]
    pub fn policy(&self) -> &RetryPolicy {
        &self.shared.policy
    }

    /// Whole retries the shared budget allows now.
    #[must_use]
    pub fn available_retries(&self) -> u64 {
        self.shared.budget.available()
    }
}

impl Default for RetryLayer {
    /// A layer with the default [`RetryPolicy`].
    fn default() -> Self {
        Self::new(RetryPolicy::default())
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::from_shared(inner, Arc::clone(&self.shared))
    }
}

/// What every clone of a layer shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) policy: RetryPolicy,
    pub(crate) budget: Bucket,
    jitter: Jitter,
}

/// Why a request is not retried, or that it is; the `outcome` label of
/// `redis_retry_attempts_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Retried,
    BudgetExhausted,
    NotRetryable,
    Deadline,
    Exhausted,
    SuccessAfterRetry,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::Retried => "retried",
            Self::BudgetExhausted => "budget_exhausted",
            Self::NotRetryable => "not_retryable",
            Self::Deadline => "deadline",
            Self::Exhausted => "exhausted",
            Self::SuccessAfterRetry => "success_after_retry",
        }
    }

    pub(crate) fn record(self) {
        metrics::counter!("redis_retry_attempts_total", "outcome" => self.label()).increment(1);
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Send again after this backoff.
    Retry(Duration),
    /// Return the error.
    Stop(Outcome),
}

impl Shared {
    fn new(policy: RetryPolicy) -> Self {
        Self {
            budget: Bucket::new(policy.budget()),
            jitter: Jitter::new(policy.seed()),
            policy,
        }
    }

    /// Decides after attempt number `attempts` (1 for the first) of `request`
    /// failed with `error`. The budget is withdrawn from last, so that only a
    /// retry that will happen spends it.
    pub(crate) fn decide(&self, request: &Request, error: &Error, attempts: u32) -> Decision {
        if !self.policy.may_retry(request, error) {
            return Decision::Stop(Outcome::NotRetryable);
        }
        if attempts >= self.policy.max_attempts() {
            return Decision::Stop(Outcome::Exhausted);
        }
        let ceiling = self.policy.backoff_ceiling(attempts.saturating_sub(1));
        let delay = self.jitter.below(ceiling);
        if let Some(deadline) = request.deadline() {
            let now = tokio::time::Instant::now().into_std();
            // An attempt that starts at the deadline cannot finish before it.
            if now.checked_add(delay).is_none_or(|start| start >= deadline) {
                return Decision::Stop(Outcome::Deadline);
            }
        }
        if !self.budget.withdraw() {
            return Decision::Stop(Outcome::BudgetExhausted);
        }
        Decision::Retry(delay)
    }
}
