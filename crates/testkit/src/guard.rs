//! Serialising failover scenarios across tests and test processes.

use std::fs::{File, OpenOptions};

use tokio::sync::{Mutex, MutexGuard};

use crate::error::{Error, Result};

static IN_PROCESS: Mutex<()> = Mutex::const_new(());

/// Held by a test while it runs a failover scenario; the next one starts when
/// it drops.
///
/// On 2 cores, 1 s failure-detection timeouts sit close to scheduler stalls,
/// so failover tests run one at a time: within a process through a static
/// tokio mutex (which cannot be poisoned, so a failed test never blocks the
/// next), across processes (e.g. `cargo nextest`) through an exclusive lock
/// on `<temp_dir>/redis-resilience-testkit-failover.lock`, which the OS
/// releases even if the holder crashes.
#[derive(Debug)]
#[must_use = "the guard serialises only while it is held"]
pub struct FailoverGuard {
    _file: File,
    _local: MutexGuard<'static, ()>,
}

/// Waits for the right to run a failover scenario and returns a guard to hold
/// for the rest of the test.
///
/// # Example
///
/// ```no_run
/// # async fn demo() -> redis_resilience_testkit::Result<()> {
/// let _serial = redis_resilience_testkit::failover_guard().await?;
/// // start a topology, kill its master, assert on the outcome
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// [`Error::Io`] when the lock file cannot be opened or locked.
pub async fn failover_guard() -> Result<FailoverGuard> {
    let local = IN_PROCESS.lock().await;
    let path = std::env::temp_dir().join("redis-resilience-testkit-failover.lock");
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(&path)
        .map_err(|err| Error::io(format!("opening {}", path.display()), err))?;
    let context = format!("locking {}", path.display());
    let file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .map_err(|err| Error::io(context.clone(), std::io::Error::other(err)))?
        .map_err(|err| Error::io(context, err))?;
    Ok(FailoverGuard {
        _file: file,
        _local: local,
    })
}
