//! [`CircuitBreakerConfig`]: when a breaker trips, how long it stays open,
//! how it probes.

use std::time::Duration;

/// When a breaker opens and how it recovers.
///
/// Defaults (DESIGN §5): a 10 s window of 1 s buckets; at least 20 calls in the
/// window before it judges; opens at 50 % failures, or at 50 % slow calls when
/// a latency SLO is set (none by default); open 5 s, doubling on consecutive
/// re-opens up to 60 s, ±20 % jitter; 3 half-open probes; a probe that has not
/// finished after 2 s (2× the service's default 1 s attempt timeout) frees its
/// permit.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use redis_resilience_layers::CircuitBreakerConfig;
///
/// let config = CircuitBreakerConfig::builder()
///     .minimum_calls(10)
///     .slow_call(Duration::from_millis(50), 0.5)
///     .open_duration(Duration::from_secs(2), Duration::from_secs(30))
///     .build()
///     .expect("a sane configuration");
/// assert_eq!(config.minimum_calls(), 10);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CircuitBreakerConfig {
    pub(crate) window: Duration,
    pub(crate) buckets: u32,
    pub(crate) minimum_calls: u32,
    pub(crate) failure_rate: f64,
    pub(crate) slow_call_duration: Option<Duration>,
    pub(crate) slow_call_rate: f64,
    pub(crate) open_duration: Duration,
    pub(crate) max_open_duration: Duration,
    pub(crate) jitter: f64,
    pub(crate) half_open_probes: u32,
    pub(crate) probe_timeout: Duration,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(10),
            buckets: 10,
            minimum_calls: 20,
            failure_rate: 0.5,
            slow_call_duration: None,
            slow_call_rate: 0.5,
            open_duration: Duration::from_secs(5),
            max_open_duration: Duration::from_secs(60),
            jitter: 0.2,
            half_open_probes: 3,
            probe_timeout: Duration::from_secs(2),
        }
    }
}

impl CircuitBreakerConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> CircuitBreakerConfigBuilder {
        CircuitBreakerConfigBuilder {
            config: Self::default(),
        }
    }

    /// Calls needed in the window before the breaker judges.
    #[must_use]
    pub fn minimum_calls(&self) -> u32 {
        self.minimum_calls
    }

    /// The first open duration.
    #[must_use]
    pub fn open_duration(&self) -> Duration {
        self.open_duration
    }

    /// The number of half-open probes.
    #[must_use]
    pub fn half_open_probes(&self) -> u32 {
        self.half_open_probes
    }

    pub(crate) fn bucket_width(&self) -> Duration {
        self.window / self.buckets
    }
}

/// Builds a [`CircuitBreakerConfig`]; [`build`](Self::build) refuses absurd values.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until built"]
pub struct CircuitBreakerConfigBuilder {
    config: CircuitBreakerConfig,
}

impl CircuitBreakerConfigBuilder {
    /// The sliding window and how many buckets it is counted in (default 10 s, 10).
    pub fn window(mut self, window: Duration, buckets: u32) -> Self {
        self.config.window = window;
        self.config.buckets = buckets;
        self
    }

    /// Calls needed in the window before the breaker judges (default 20).
    pub fn minimum_calls(mut self, calls: u32) -> Self {
        self.config.minimum_calls = calls;
        self
    }

    /// The failure share that opens the breaker (default 0.5).
    pub fn failure_rate(mut self, rate: f64) -> Self {
        self.config.failure_rate = rate;
        self
    }

    /// A latency SLO: calls slower than `duration` are slow, and a share of
    /// `rate` slow calls opens the breaker (off by default).
    pub fn slow_call(mut self, duration: Duration, rate: f64) -> Self {
        self.config.slow_call_duration = Some(duration);
        self.config.slow_call_rate = rate;
        self
    }

    /// How long the breaker stays open the first time, and at most after
    /// doubling on consecutive re-opens (default 5 s, 60 s).
    pub fn open_duration(mut self, first: Duration, max: Duration) -> Self {
        self.config.open_duration = first;
        self.config.max_open_duration = max;
        self
    }

    /// Random spread of open durations, as a share (default 0.2: ±20 %).
    pub fn jitter(mut self, share: f64) -> Self {
        self.config.jitter = share;
        self
    }

    /// Probes admitted while half-open, all of which must succeed to close (default 3).
    pub fn half_open_probes(mut self, probes: u32) -> Self {
        self.config.half_open_probes = probes;
        self
    }

    /// After this long an unfinished probe frees its permit (default 2 s:
    /// twice the service's attempt timeout; set it to twice yours).
    pub fn probe_timeout(mut self, timeout: Duration) -> Self {
        self.config.probe_timeout = timeout;
        self
    }

    /// The configuration.
    ///
    /// # Errors
    ///
    /// A message naming the setting when a value cannot work: rates outside
    /// (0, 1], zero durations or counts, a window not divisible into buckets
    /// of at least 1 ms, a maximum open duration below the first.
    pub fn build(self) -> Result<CircuitBreakerConfig, String> {
        let c = self.config;
        let rate_ok = |rate: f64| rate > 0.0 && rate <= 1.0;
        if !rate_ok(c.failure_rate) {
            return Err(format!("failure_rate {} is not in (0, 1]", c.failure_rate));
        }
        if !rate_ok(c.slow_call_rate) {
            return Err(format!(
                "slow_call_rate {} is not in (0, 1]",
                c.slow_call_rate
            ));
        }
        if !(0.0..1.0).contains(&c.jitter) {
            return Err(format!("jitter {} is not in [0, 1)", c.jitter));
        }
        if c.buckets == 0
            || c.window.is_zero()
            || c.window / c.buckets.max(1) < Duration::from_millis(1)
        {
            return Err("window must split into buckets of at least 1 ms".to_owned());
        }
        if c.minimum_calls == 0 || c.half_open_probes == 0 {
            return Err("minimum_calls and half_open_probes must be at least 1".to_owned());
        }
        if c.open_duration.is_zero() || c.max_open_duration < c.open_duration {
            return Err(
                "open durations must be positive, the maximum not below the first".to_owned(),
            );
        }
        if c.max_open_duration > Duration::from_secs(24 * 3600) {
            return Err("max open duration above a day is absurd".to_owned());
        }
        if c.probe_timeout.is_zero() {
            return Err("probe_timeout must be positive".to_owned());
        }
        if c.slow_call_duration.is_some_and(|d| d.is_zero()) {
            return Err("the slow-call duration must be positive".to_owned());
        }
        Ok(c)
    }
}
