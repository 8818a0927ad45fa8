//! Coalescing (debounce): a job that gathers the enqueues of its key until it starts.

use std::time::Duration;

use super::StoreError;

/// The longest `coalesce_ms`: a day.
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
/// The longest `coalesce_max_ms`: a week.
pub const MAX_CAP: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// How a [`NewJob`] coalesces with the waiting job of its key.
///
/// While a job of the same tenant and key has not started (it is `scheduled` or
/// `available`, never claimed), an enqueue with the key does not add a job: the waiting
/// job takes the enqueue's module, queue, priority, input, attempts and limits (latest
/// wins) and runs `window` from now, but never later than `max` after the enqueue that
/// made it. Once it has started, the next enqueue makes a new job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coalesce {
    /// 1–255 bytes, per tenant.
    pub key: String,
    /// The job runs this long after the latest enqueue of its key (0 < window ≤
    /// [`MAX_WINDOW`]).
    pub window: Duration,
    /// But never later than this long after the enqueue that made it (window ≤ max ≤
    /// [`MAX_CAP`]); set by that first enqueue.
    pub max: Option<Duration>,
}

impl Coalesce {
    /// Refuses a key, window or cap out of bounds, naming the API's field.
    pub fn check(&self) -> Result<(), StoreError> {
        if self.key.is_empty() || self.key.len() > 255 {
            return Err(StoreError::Invalid(
                "`coalesce_key` must be 1–255 bytes".into(),
            ));
        }
        if self.window.is_zero() || self.window > MAX_WINDOW {
            return Err(StoreError::Invalid(format!(
                "`coalesce_ms` must be between 1 and {}",
                MAX_WINDOW.as_millis()
            )));
        }
        match self.max {
            Some(max) if max < self.window || max > MAX_CAP => Err(StoreError::Invalid(format!(
                "`coalesce_max_ms` must be between `coalesce_ms` ({}) and {}",
                self.window.as_millis(),
                MAX_CAP.as_millis()
            ))),
            _ => Ok(()),
        }
    }
}
