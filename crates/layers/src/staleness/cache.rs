//! The kept values and the per-key generations that invalidation bumps.
//!
//! Every value is kept with the generation (`epoch`) read just before its
//! fetch started. An invalidation bumps the epoch and records the new value
//! for its key. A kept value is current while none of its keys was
//! invalidated after its fetch started; a fetch that started before an
//! invalidation can therefore never write its (possibly old) value back in a
//! way that is served, and an invalidated key stays authoritative-only until
//! a read that started after the invalidation succeeds.
//!
//! Invalidation records older than the budget are dropped: any value they
//! could reject was fetched before them, so it is too old to serve anyway.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quick_cache::Weighter;
use quick_cache::sync::Cache;
use redis::Value;
use redis_resilience_core::{Command, Request, Response, Route, ServedBy};
use tokio::time::Instant;

use super::config::StalenessConfig;
use crate::coalesce::flight::{lock, packed};

/// One kept value.
#[derive(Debug)]
pub(crate) struct Entry {
    value: Value,
    fetched_at: Instant,
    /// When it was kept: a fetch that started before then overlapped this one.
    kept_at: Instant,
    start_epoch: u64,
    weight: u64,
}

#[derive(Debug, Clone, Copy)]
struct EntryWeight;

impl Weighter<Box<[u8]>, Arc<Entry>> for EntryWeight {
    fn weight(&self, key: &Box<[u8]>, entry: &Arc<Entry>) -> u64 {
        (key.len() as u64).saturating_add(entry.weight)
    }
}

/// Recent invalidations.
#[derive(Debug, Default)]
struct Generations {
    by_key: HashMap<Arc<[u8]>, u64>,
    order: VecDeque<(Instant, u64, Arc<[u8]>)>,
    /// Every value whose fetch started before this epoch is invalid.
    floor: u64,
}

impl Generations {
    fn prune(&mut self, now: Instant, budget: Duration) {
        while let Some((at, epoch, _)) = self.order.front() {
            if now.saturating_duration_since(*at) <= budget {
                break;
            }
            let epoch = *epoch;
            if let Some((_, _, key)) = self.order.pop_front()
                && self.by_key.get(&key) == Some(&epoch)
            {
                self.by_key.remove(&key);
            }
        }
    }
}

/// What every clone of a [`StalenessLayer`](super::StalenessLayer) shares.
pub(crate) struct Shared {
    pub(crate) config: StalenessConfig,
    cache: Cache<Box<[u8]>, Arc<Entry>, EntryWeight>,
    epoch: AtomicU64,
    generations: Mutex<Generations>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .field("entries", &self.cache.len())
            .field("bytes", &self.cache.weight())
            .finish_non_exhaustive()
    }
}

/// Where a fetch started: what its value is checked against when it is kept.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Start {
    fetched_at: Instant,
    epoch: u64,
}

/// Whether a request's values are kept: read-only, non-blocking, with known keys.
pub(crate) fn cacheable(request: &Request) -> bool {
    let info = request.info();
    if !info.is_readonly() || info.is_blocking() {
        return false;
    }
    let unknown = |info: &redis_resilience_core::CommandInfo| {
        matches!(
            info.key_positions(),
            redis_resilience_core::command::KeyPositions::Unknown
        )
    };
    match request.command() {
        Command::Single(_) => !unknown(info),
        Command::Pipeline(_) => !request.pipeline_parts().iter().any(unknown),
    }
}

/// The cache key of a request: its packed bytes, and the node when it names one
/// (a keyless command like `INFO` answers differently per node).
pub(crate) fn cache_key(request: &Request) -> Box<[u8]> {
    let command = packed(request);
    match request.route() {
        Route::Node(addr) => {
            let mut key = Vec::with_capacity(command.len() + addr.as_str().len() + 2);
            key.push(1);
            key.extend_from_slice(addr.as_str().as_bytes());
            key.push(0);
            key.extend_from_slice(&command);
            key.into_boxed_slice()
        }
        _ => {
            let mut key = Vec::with_capacity(command.len() + 1);
            key.push(0);
            key.extend_from_slice(&command);
            key.into_boxed_slice()
        }
    }
}

/// An estimate of the memory a value takes.
fn weight(value: &Value) -> u64 {
    let own = size_of::<Value>() as u64;
    let nested = match value {
        Value::BulkString(bytes) => bytes.len() as u64,
        Value::SimpleString(text) => text.len() as u64,
        Value::VerbatimString { text, .. } => text.len() as u64,
        Value::Array(items) | Value::Set(items) => items.iter().map(weight).sum(),
        Value::Map(pairs) => pairs.iter().map(|(k, v)| weight(k) + weight(v)).sum(),
        Value::Attribute { data, attributes } => {
            weight(data)
                + attributes
                    .iter()
                    .map(|(k, v)| weight(k) + weight(v))
                    .sum::<u64>()
        }
        Value::Push { data, .. } => data.iter().map(weight).sum(),
        _ => 32,
    };
    own.saturating_add(nested)
}

impl Shared {
    pub(crate) fn new(config: StalenessConfig) -> Self {
        // Sizes quick_cache's shards for values of about 512 bytes.
        let items = usize::try_from(config.max_bytes() / 512)
            .unwrap_or(usize::MAX)
            .clamp(16, 1 << 20);
        Self {
            cache: Cache::with_weighter(items, config.max_bytes(), EntryWeight),
            config,
            epoch: AtomicU64::new(0),
            generations: Mutex::new(Generations::default()),
        }
    }

    /// Marks the start of a fetch. The clock is read before the epoch, so the
    /// value's age is never understated.
    pub(crate) fn start(&self) -> Start {
        let fetched_at = Instant::now();
        Start {
            fetched_at,
            epoch: self.epoch.load(Ordering::SeqCst),
        }
    }

    /// Whether no key of `request` was invalidated after a fetch that started at `epoch`.
    fn is_current(&self, request: &Request, epoch: u64) -> bool {
        if self.epoch.load(Ordering::SeqCst) == epoch {
            return true;
        }
        let mut generations = lock(&self.generations);
        generations.prune(Instant::now(), self.config.budget());
        if generations.floor > epoch {
            return false;
        }
        request.keys().all(|key| {
            generations
                .by_key
                .get(key)
                .is_none_or(|&invalidated| invalidated <= epoch)
        })
    }

    /// Keeps a good value of `request`, unless a key was invalidated since
    /// the fetch started or a newer value is kept.
    pub(crate) fn keep(
        &self,
        key: Box<[u8]>,
        request: &Request,
        response: &Response,
        start: Start,
    ) {
        if matches!(response.served_by, ServedBy::Stale { .. })
            || matches!(response.value, Value::ServerError(_))
        {
            return;
        }
        if start.fetched_at.elapsed() > self.config.budget() {
            return;
        }
        if !self.is_current(request, start.epoch) {
            // What is kept is older still, and invalid too.
            self.cache.remove(&key);
            return;
        }
        if let Some(kept) = self.cache.get(&key) {
            if kept.kept_at >= start.fetched_at && kept.value == response.value {
                // Overlapping fetches with the same answer, typically the
                // waiters of one coalesced flight: the answer may have been
                // read when the earliest of them started, so that time stays.
                if kept.fetched_at <= start.fetched_at {
                    return;
                }
            } else if kept.fetched_at > start.fetched_at {
                // A fetch that started later was kept: its value is newer.
                return;
            }
        }
        let entry = Entry {
            weight: weight(&response.value),
            value: response.value.clone(),
            fetched_at: start.fetched_at,
            kept_at: Instant::now(),
            start_epoch: start.epoch,
        };
        self.cache.insert(key, Arc::new(entry));
    }

    /// The kept value of `request`, if it is current and no older than `budget`.
    pub(crate) fn stale(
        &self,
        key: &[u8],
        request: &Request,
        budget: Duration,
    ) -> Option<Response> {
        let entry = self.cache.get(key)?;
        let age = entry.fetched_at.elapsed();
        if age > self.config.budget() {
            self.cache.remove(key);
            return None;
        }
        if age > budget {
            return None;
        }
        if !self.is_current(request, entry.start_epoch) {
            self.cache.remove(key);
            return None;
        }
        Some(Response::new(entry.value.clone(), ServedBy::Stale { age }))
    }

    /// Forgets `key`'s values, and stops fetches in flight from keeping theirs.
    pub(crate) fn invalidate(&self, key: &[u8]) {
        let mut generations = lock(&self.generations);
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        let now = Instant::now();
        generations.prune(now, self.config.budget());
        if generations.by_key.len() >= self.config.max_invalidated_keys() {
            drop(generations);
            self.invalidate_all();
            return;
        }
        let key: Arc<[u8]> = Arc::from(key);
        generations.by_key.insert(Arc::clone(&key), epoch);
        generations.order.push_back((now, epoch, key));
    }

    /// Forgets every value, and stops every fetch in flight from keeping its own.
    pub(crate) fn invalidate_all(&self) {
        let mut generations = lock(&self.generations);
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        generations.floor = epoch;
        generations.by_key.clear();
        generations.order.clear();
        drop(generations);
        self.cache.clear();
    }

    pub(crate) fn invalidations(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    pub(crate) fn entries(&self) -> usize {
        self.cache.len()
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.cache.weight()
    }
}
