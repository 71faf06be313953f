//! One breaker's state machine: Closed → Open → HalfOpen, fed with outcomes
//! and the current time (tokio's clock, so tests can pause it).

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::config::CircuitBreakerConfig;

/// What a breaker does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CircuitState {
    /// Calls pass; outcomes are counted.
    Closed,
    /// Calls fail at once with `CircuitOpen`.
    Open,
    /// A few probe calls pass; the rest fail at once.
    HalfOpen,
    /// Held open by hand ([`CircuitBreakerHandle::force_open`](super::CircuitBreakerHandle::force_open)).
    ForcedOpen,
    /// Held closed by hand: calls pass and nothing trips.
    ForcedClosed,
}

impl CircuitState {
    /// A stable label: `closed`, `open`, `half_open`, `forced_open`, `forced_closed`.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
            Self::ForcedOpen => "forced_open",
            Self::ForcedClosed => "forced_closed",
        }
    }

    /// The value of the `redis_circuit_state` gauge: 0 closed, 1 half-open, 2 open.
    fn gauge(self) -> f64 {
        match self {
            Self::Closed | Self::ForcedClosed => 0.0,
            Self::HalfOpen => 1.0,
            Self::Open | Self::ForcedOpen => 2.0,
        }
    }
}

/// What a call was let through as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// A normal call while closed.
    Normal,
    /// A half-open probe, with its id.
    Probe(u64),
}

/// How a call ended, as the breaker counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success(Duration),
    Failure,
    /// Not about the node's health (redirects, semantic errors).
    Ignored,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    index: u64,
    calls: u32,
    failures: u32,
    slow: u32,
}

#[derive(Debug)]
enum Mode {
    Closed,
    Open {
        until: Instant,
    },
    HalfOpen {
        probes: Vec<(u64, Instant)>,
        successes: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forced {
    Open,
    Closed,
}

#[derive(Debug)]
struct Inner {
    mode: Mode,
    forced: Option<Forced>,
    buckets: Vec<Bucket>,
    origin: Instant,
    consecutive_opens: u32,
    next_probe: u64,
    rng: u64,
}

/// One breaker (for one node, or for all).
#[derive(Debug)]
pub(crate) struct Breaker {
    label: String,
    config: CircuitBreakerConfig,
    inner: Mutex<Inner>,
}

impl Breaker {
    pub(crate) fn new(label: String, config: CircuitBreakerConfig, seed: u64) -> Self {
        let buckets = vec![Bucket::default(); config.buckets as usize];
        let breaker = Self {
            label,
            config,
            inner: Mutex::new(Inner {
                mode: Mode::Closed,
                forced: None,
                buckets,
                origin: Instant::now(),
                consecutive_opens: 0,
                next_probe: 0,
                // xorshift must not start at zero.
                rng: seed | 1,
            }),
        };
        metrics::gauge!("redis_circuit_state", "node" => breaker.label.clone()).set(0.0);
        breaker
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves counters, not broken invariants.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Lets a call through, or says how long until it could be.
    pub(crate) fn admit(&self, now: Instant) -> Result<Admission, Duration> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        match inner.forced {
            Some(Forced::Open) => return Err(self.config.max_open_duration),
            Some(Forced::Closed) => return Ok(Admission::Normal),
            None => {}
        }
        if let Mode::Open { until } = inner.mode {
            if now < until {
                return Err(until - now);
            }
            self.transition(
                inner,
                Mode::HalfOpen {
                    probes: Vec::new(),
                    successes: 0,
                },
            );
        }
        let probe_timeout = self.config.probe_timeout;
        match &mut inner.mode {
            Mode::Closed => Ok(Admission::Normal),
            Mode::HalfOpen { probes, successes } => {
                // A probe that hangs frees its permit.
                probes.retain(|(_, started)| now.duration_since(*started) < probe_timeout);
                let taken = u32::try_from(probes.len())
                    .unwrap_or(u32::MAX)
                    .saturating_add(*successes);
                if taken < self.config.half_open_probes {
                    let id = inner.next_probe;
                    inner.next_probe += 1;
                    probes.push((id, now));
                    Ok(Admission::Probe(id))
                } else {
                    Err(probe_timeout)
                }
            }
            Mode::Open { until } => Err(until.saturating_duration_since(now)),
        }
    }

    /// Counts how a call ended.
    pub(crate) fn record(&self, admission: Admission, outcome: Outcome, now: Instant) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        if inner.forced.is_some() {
            return;
        }
        let slow = matches!(outcome, Outcome::Success(elapsed)
            if self.config.slow_call_duration.is_some_and(|slo| elapsed > slo));
        match admission {
            Admission::Normal => {
                // A call admitted before a transition says nothing about now.
                if !matches!(inner.mode, Mode::Closed) || outcome == Outcome::Ignored {
                    return;
                }
                self.count(inner, now, outcome == Outcome::Failure, slow);
                if self.should_trip(inner, now) {
                    self.open(inner, now);
                }
            }
            Admission::Probe(id) => {
                let Mode::HalfOpen { probes, successes } = &mut inner.mode else {
                    return;
                };
                let Some(position) = probes.iter().position(|(probe, _)| *probe == id) else {
                    // Its permit was already reclaimed as hung.
                    return;
                };
                probes.remove(position);
                match outcome {
                    Outcome::Ignored => {}
                    Outcome::Failure => self.open(inner, now),
                    Outcome::Success(_) if slow => self.open(inner, now),
                    Outcome::Success(_) => {
                        *successes += 1;
                        if *successes >= self.config.half_open_probes {
                            self.close(inner, now);
                        }
                    }
                }
            }
        }
    }

    /// A call that ended without an outcome (the caller went away): frees a probe's permit.
    pub(crate) fn release(&self, admission: Admission) {
        if let Admission::Probe(id) = admission {
            let mut inner = self.lock();
            if let Mode::HalfOpen { probes, .. } = &mut inner.mode {
                probes.retain(|(probe, _)| *probe != id);
            }
        }
    }

    pub(crate) fn state(&self, now: Instant) -> CircuitState {
        let inner = self.lock();
        match (inner.forced, &inner.mode) {
            (Some(Forced::Open), _) => CircuitState::ForcedOpen,
            (Some(Forced::Closed), _) => CircuitState::ForcedClosed,
            (None, Mode::Closed) => CircuitState::Closed,
            // Open, but the next call would be a probe.
            (None, Mode::Open { until }) if now >= *until => CircuitState::HalfOpen,
            (None, Mode::Open { .. }) => CircuitState::Open,
            (None, Mode::HalfOpen { .. }) => CircuitState::HalfOpen,
        }
    }

    pub(crate) fn force(&self, open: bool) {
        let mut inner = self.lock();
        inner.forced = Some(if open { Forced::Open } else { Forced::Closed });
        let state = if open {
            CircuitState::ForcedOpen
        } else {
            CircuitState::ForcedClosed
        };
        self.publish(state);
    }

    pub(crate) fn reset(&self, now: Instant) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.forced = None;
        self.close(inner, now);
    }

    fn count(&self, inner: &mut Inner, now: Instant, failure: bool, slow: bool) {
        let index = self.bucket_index(inner, now);
        let slots = inner.buckets.len() as u64;
        let Some(bucket) = inner.buckets.get_mut((index % slots) as usize) else {
            return;
        };
        if bucket.index != index {
            *bucket = Bucket {
                index,
                ..Bucket::default()
            };
        }
        bucket.calls += 1;
        bucket.failures += u32::from(failure);
        bucket.slow += u32::from(slow);
    }

    fn bucket_index(&self, inner: &Inner, now: Instant) -> u64 {
        let width = self.config.bucket_width().as_nanos().max(1);
        u64::try_from(now.duration_since(inner.origin).as_nanos() / width).unwrap_or(u64::MAX)
    }

    fn should_trip(&self, inner: &Inner, now: Instant) -> bool {
        let current = self.bucket_index(inner, now);
        let slots = inner.buckets.len() as u64;
        let (mut calls, mut failures, mut slow) = (0u64, 0u64, 0u64);
        for bucket in &inner.buckets {
            if bucket.calls > 0 && current.saturating_sub(bucket.index) < slots {
                calls += u64::from(bucket.calls);
                failures += u64::from(bucket.failures);
                slow += u64::from(bucket.slow);
            }
        }
        if calls < u64::from(self.config.minimum_calls) {
            return false;
        }
        let share = |n: u64| n as f64 / calls as f64;
        share(failures) >= self.config.failure_rate
            || (self.config.slow_call_duration.is_some()
                && share(slow) >= self.config.slow_call_rate)
    }

    fn open(&self, inner: &mut Inner, now: Instant) {
        inner.consecutive_opens = inner.consecutive_opens.saturating_add(1);
        let doublings = inner.consecutive_opens.saturating_sub(1).min(16);
        let base = self
            .config
            .open_duration
            .saturating_mul(1 << doublings)
            .min(self.config.max_open_duration);
        let factor = 1.0 + self.config.jitter * (2.0 * next_unit(&mut inner.rng) - 1.0);
        let duration = base.mul_f64(factor);
        self.transition(
            inner,
            Mode::Open {
                until: now + duration,
            },
        );
        tracing::warn!(node = %self.label, open_for = ?duration, "circuit opened");
    }

    fn close(&self, inner: &mut Inner, now: Instant) {
        inner
            .buckets
            .iter_mut()
            .for_each(|b| *b = Bucket::default());
        inner.origin = now;
        inner.consecutive_opens = 0;
        self.transition(inner, Mode::Closed);
        tracing::info!(node = %self.label, "circuit closed");
    }

    fn transition(&self, inner: &mut Inner, mode: Mode) {
        inner.mode = mode;
        let state = match inner.mode {
            Mode::Closed => CircuitState::Closed,
            Mode::Open { .. } => CircuitState::Open,
            Mode::HalfOpen { .. } => CircuitState::HalfOpen,
        };
        metrics::counter!(
            "redis_circuit_transitions_total",
            "node" => self.label.clone(),
            "to" => state.label()
        )
        .increment(1);
        self.publish(state);
    }

    fn publish(&self, state: CircuitState) {
        metrics::gauge!("redis_circuit_state", "node" => self.label.clone()).set(state.gauge());
    }
}

/// xorshift64*: a uniform number in [0, 1).
fn next_unit(state: &mut u64) -> f64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
}
