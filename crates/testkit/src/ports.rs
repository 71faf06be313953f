//! Port reservation that never collides between parallel tests, even across
//! test processes.
//!
//! A port is reserved by holding an exclusive lock on
//! `<temp_dir>/redis-resilience-testkit-ports/<port>.lock` and checking that
//! `127.0.0.1:<port>` can be bound. Candidates lie in [`PORT_RANGE`], below
//! Linux's ephemeral range, so the kernel never hands them out to outgoing
//! connections. The lock is released when the [`PortReservation`] drops,
//! which topologies do only after their processes are dead.

use std::collections::hash_map::RandomState;
use std::fs::{File, OpenOptions, TryLockError};
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, TcpListener};
use std::ops::Range;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// The ports the testkit hands out: below Linux's default ephemeral range
/// (32768–60999) and above the usual fixed service ports.
pub const PORT_RANGE: Range<u16> = 20000..32000;

/// A port held for this process until the value drops.
///
/// # Example
///
/// ```
/// let reservation = redis_resilience_testkit::reserve_port()?;
/// let listener = std::net::TcpListener::bind(("127.0.0.1", reservation.port()))?;
/// # drop(listener);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct PortReservation {
    port: u16,
    _lock: File,
}

impl PortReservation {
    /// The reserved port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Reserves a free port on 127.0.0.1 that no other test (in this process or
/// another one using the testkit) holds.
///
/// The port is held through an exclusive lock on
/// `<temp_dir>/redis-resilience-testkit-ports/<port>.lock` and was bindable on
/// 127.0.0.1 when reserved. Candidates lie in [`PORT_RANGE`], below Linux's
/// ephemeral range, so the kernel never hands them out to outgoing
/// connections; the search starts at a random candidate.
///
/// # Errors
///
/// [`Error::Io`] when the lock directory cannot be created,
/// [`Error::NoFreePort`] when every candidate is taken.
pub fn reserve_port() -> Result<PortReservation> {
    let dir = lock_dir();
    std::fs::create_dir_all(&dir)
        .map_err(|err| Error::io(format!("creating {}", dir.display()), err))?;
    let span = usize::from(PORT_RANGE.end - PORT_RANGE.start);
    let start = random_below(span);
    for step in 0..span {
        let offset = (start + step) % span;
        let Ok(offset) = u16::try_from(offset) else {
            continue;
        };
        let port = PORT_RANGE.start + offset;
        if let Some(reservation) = try_reserve(&dir, port) {
            return Ok(reservation);
        }
    }
    Err(Error::NoFreePort { tried: span })
}

fn try_reserve(dir: &std::path::Path, port: u16) -> Option<PortReservation> {
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(dir.join(format!("{port}.lock")))
        .ok()?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock | TryLockError::Error(_)) => return None,
    }
    // Someone outside the testkit (or a server orphaned by a killed test
    // process) may be listening: only a port we can bind right now is free.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).ok()?;
    drop(listener);
    Some(PortReservation { port, _lock: file })
}

fn lock_dir() -> PathBuf {
    std::env::temp_dir().join("redis-resilience-testkit-ports")
}

fn random_below(bound: usize) -> usize {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let value = hasher.finish() % u64::try_from(bound.max(1)).unwrap_or(u64::MAX);
    usize::try_from(value).unwrap_or_default()
}
