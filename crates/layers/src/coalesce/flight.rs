//! Single flight: one computation in the air per key, its result handed to
//! every waiter. Shared by [`Coalesce`](super::Coalesce) and the secondary
//! store path of [`SecondaryStore`](crate::secondary::SecondaryStore).
//!
//! The computation runs on a task of its own (the caller spawns it and hands
//! it a [`Publisher`]), so a waiter that goes away never stops the others.
//! Waiters sleep until the result is published: each registers its waker in
//! the flight and is woken once. When the last waiter goes before the result
//! is published, the flight is abandoned: the task is aborted and the entry
//! removed. The entry is also removed when the result is published, and when
//! the publisher is dropped without publishing (the task panicked), in which
//! case the waiters get the publisher's fallback value.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use redis_resilience_core::{Command, Request};
use tokio::task::AbortHandle;

/// Locks, taking over a lock poisoned by a panic: every critical section
/// here leaves the state consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The bytes a request puts on the wire: identical requests pack identically.
pub(crate) fn packed(request: &Request) -> Vec<u8> {
    match request.command() {
        Command::Single(cmd) => cmd.get_packed_command(),
        Command::Pipeline(pipeline) => pipeline.get_packed_pipeline(),
    }
}

/// The flights in the air, by key.
pub(crate) struct Flights<K, T> {
    map: Mutex<HashMap<K, Arc<Flight<T>>>>,
}

impl<K, T> fmt::Debug for Flights<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flights")
            .field("in_flight", &lock(&self.map).len())
            .finish()
    }
}

/// What [`Flights::join`] made of the caller.
pub(crate) enum Joined<K: Hash + Eq, T> {
    /// A new flight: run it, then publish through `publisher`.
    Leader {
        waiter: Waiter<K, T>,
        publisher: Publisher<K, T>,
    },
    /// A flight was already in the air.
    Follower(Waiter<K, T>),
}

impl<K: Hash + Eq + Clone, T: Clone> Flights<K, T> {
    pub(crate) fn new() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Flights in the air.
    pub(crate) fn len(&self) -> usize {
        lock(&self.map).len()
    }

    /// Joins the flight for `key` if one is in the air and still wanted.
    #[cfg_attr(
        not(feature = "secondary"),
        expect(dead_code, reason = "only the secondary store joins without leading")
    )]
    pub(crate) fn follow(self: &Arc<Self>, key: &K) -> Option<Waiter<K, T>> {
        let map = lock(&self.map);
        let flight = map.get(key)?;
        let slot = lock(&flight.state).add_waiter()?;
        Some(Waiter {
            flights: Arc::clone(self),
            key: key.clone(),
            flight: Arc::clone(flight),
            slot,
            done: false,
        })
    }

    /// Joins the flight for `key`, or starts one (the caller must then run it
    /// and publish its result, or drop the publisher).
    pub(crate) fn join(self: &Arc<Self>, key: K, fallback: fn() -> T) -> Joined<K, T> {
        let mut map = lock(&self.map);
        if let Some(flight) = map.get(&key)
            && let Some(slot) = lock(&flight.state).add_waiter()
        {
            return Joined::Follower(Waiter {
                flights: Arc::clone(self),
                key,
                flight: Arc::clone(flight),
                slot,
                done: false,
            });
        }
        let flight = Arc::new(Flight::new());
        let slot = lock(&flight.state).add_waiter().unwrap_or_default();
        map.insert(key.clone(), Arc::clone(&flight));
        drop(map);
        Joined::Leader {
            waiter: Waiter {
                flights: Arc::clone(self),
                key: key.clone(),
                flight: Arc::clone(&flight),
                slot,
                done: false,
            },
            publisher: Publisher {
                flights: Arc::clone(self),
                key,
                flight,
                fallback,
                published: false,
            },
        }
    }
}

impl<K: Hash + Eq, T> Flights<K, T> {
    /// Removes `flight`'s entry, if it is still the one for `key`.
    fn remove(&self, key: &K, flight: &Arc<Flight<T>>) {
        let mut map = lock(&self.map);
        if map
            .get(key)
            .is_some_and(|current| Arc::ptr_eq(current, flight))
        {
            map.remove(key);
        }
    }
}

/// One computation in the air.
pub(crate) struct Flight<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    result: Option<T>,
    /// One slot per waiter; freed slots are reused.
    wakers: Vec<Option<Waker>>,
    free: Vec<usize>,
    waiters: usize,
    /// Every waiter went before the result: no one may join any more.
    abandoned: bool,
    abort: Option<AbortHandle>,
}

impl<T> Flight<T> {
    fn new() -> Self {
        Self {
            state: Mutex::new(State {
                result: None,
                wakers: Vec::new(),
                free: Vec::new(),
                waiters: 0,
                abandoned: false,
                abort: None,
            }),
        }
    }

    /// Gives the flight the handle of the task running it, so that it can be
    /// aborted when every waiter is gone.
    pub(crate) fn set_abort(&self, handle: AbortHandle) {
        let mut state = lock(&self.state);
        if state.abandoned {
            drop(state);
            handle.abort();
        } else if state.result.is_none() {
            state.abort = Some(handle);
        }
    }
}

impl<T> State<T> {
    /// A slot for one more waiter, unless the flight is over.
    fn add_waiter(&mut self) -> Option<usize> {
        if self.result.is_some() || self.abandoned {
            return None;
        }
        self.waiters += 1;
        Some(self.free.pop().unwrap_or_else(|| {
            self.wakers.push(None);
            self.wakers.len() - 1
        }))
    }
}

/// One caller waiting for a flight's result. Dropping it leaves the flight;
/// the last waiter to leave before the result abandons it.
pub(crate) struct Waiter<K: Hash + Eq, T> {
    flights: Arc<Flights<K, T>>,
    key: K,
    flight: Arc<Flight<T>>,
    slot: usize,
    done: bool,
}

impl<K: Hash + Eq, T: Clone> Waiter<K, T> {
    /// The flight's result, or `Pending` with this task's waker registered:
    /// the publisher wakes it exactly once.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<T> {
        let mut state = lock(&self.flight.state);
        if let Some(result) = &state.result {
            self.done = true;
            return Poll::Ready(result.clone());
        }
        if let Some(slot) = state.wakers.get_mut(self.slot) {
            match slot {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => *slot = Some(cx.waker().clone()),
            }
        }
        Poll::Pending
    }

    /// The flight this waiter waits for, for handing the task's abort handle.
    pub(crate) fn flight(&self) -> &Flight<T> {
        &self.flight
    }
}

impl<K: Hash + Eq, T> Drop for Waiter<K, T> {
    fn drop(&mut self) {
        let (abandoned, abort) = {
            let mut state = lock(&self.flight.state);
            state.waiters = state.waiters.saturating_sub(1);
            if let Some(slot) = state.wakers.get_mut(self.slot) {
                *slot = None;
            }
            state.free.push(self.slot);
            if !self.done && state.waiters == 0 && state.result.is_none() && !state.abandoned {
                state.abandoned = true;
                (true, state.abort.take())
            } else {
                (false, None)
            }
        };
        if abandoned {
            self.flights.remove(&self.key, &self.flight);
            if let Some(abort) = abort {
                abort.abort();
            }
        }
    }
}

impl<K: Hash + Eq, T> fmt::Debug for Waiter<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiter")
            .field("slot", &self.slot)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// Hands a flight's result to its waiters. Dropped without publishing (the
/// task running the flight panicked or was aborted), it publishes its
/// fallback value, so no waiter is left waiting.
pub(crate) struct Publisher<K: Hash + Eq, T> {
    flights: Arc<Flights<K, T>>,
    key: K,
    flight: Arc<Flight<T>>,
    fallback: fn() -> T,
    published: bool,
}

impl<K: Hash + Eq + Clone, T: Clone> Publisher<K, T> {
    /// Publishes `value`: removes the entry, then wakes every waiter.
    pub(crate) fn publish(mut self, value: T) {
        self.finish(value);
    }
}

impl<K: Hash + Eq, T> Publisher<K, T> {
    fn finish(&mut self, value: T) {
        self.published = true;
        self.flights.remove(&self.key, &self.flight);
        let wakers: Vec<Waker> = {
            let mut state = lock(&self.flight.state);
            state.result = Some(value);
            state.abort = None;
            state.wakers.iter_mut().filter_map(Option::take).collect()
        };
        for waker in wakers {
            waker.wake();
        }
    }
}

impl<K: Hash + Eq, T> Drop for Publisher<K, T> {
    fn drop(&mut self) {
        if !self.published {
            let value = (self.fallback)();
            self.finish(value);
        }
    }
}

impl<K: Hash + Eq, T> fmt::Debug for Publisher<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("published", &self.published)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::task::{Context, Poll, Waker};

    use super::{Flights, Joined};

    fn fallback() -> u32 {
        0
    }

    #[test]
    fn publish_reaches_every_waiter_and_empties_the_map() {
        let flights: Arc<Flights<u8, u32>> = Arc::new(Flights::new());
        let Joined::Leader {
            waiter: mut first,
            publisher,
        } = flights.join(1, fallback)
        else {
            panic!("the first caller leads");
        };
        let Joined::Follower(mut second) = flights.join(1, fallback) else {
            panic!("the second caller follows");
        };
        assert_eq!(flights.len(), 1);
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(first.poll(&mut cx), Poll::Pending);
        publisher.publish(7);
        assert_eq!(flights.len(), 0);
        assert_eq!(first.poll(&mut cx), Poll::Ready(7));
        assert_eq!(second.poll(&mut cx), Poll::Ready(7));
    }

    #[test]
    fn last_waiter_gone_abandons_and_a_dropped_publisher_publishes_its_fallback() {
        let flights: Arc<Flights<u8, u32>> = Arc::new(Flights::new());
        let Joined::Leader { waiter, publisher } = flights.join(1, fallback) else {
            panic!("the first caller leads");
        };
        drop(waiter);
        assert_eq!(flights.len(), 0, "abandoned flights leave the map");
        assert!(flights.follow(&1).is_none());
        drop(publisher);

        let Joined::Leader {
            waiter: mut only,
            publisher,
        } = flights.join(2, fallback)
        else {
            panic!("a new key leads");
        };
        drop(publisher);
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(only.poll(&mut cx), Poll::Ready(0));
        assert_eq!(flights.len(), 0);
    }
}
