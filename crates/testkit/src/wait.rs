//! Polling for a condition with an overall deadline.

use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Result};

/// How often conditions are re-checked.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// The default deadline for a topology to come up.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The outcome of one check.
pub(crate) enum Check<T> {
    /// The condition holds.
    Ready(T),
    /// Not yet; the text says what was observed.
    Pending(String),
}

/// Re-runs `check` every [`POLL_INTERVAL`] until it is ready or `timeout`
/// passes. An `Err` from `check` stops polling at once.
pub(crate) async fn poll<T>(
    what: impl Into<String>,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> Result<Check<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await? {
            Check::Ready(value) => return Ok(value),
            Check::Pending(last) => last,
        };
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: what.into(),
                after: timeout,
                last,
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The value of `field` in an `INFO` reply.
pub(crate) fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key == field).then(|| value.trim())
    })
}
