//! How many long-polls each key may hold open at once ([`LongPolls`]): a waiting poll
//! costs a task and a connection, so one key cannot hold the server's share of either.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::ApiError;

/// The long-polls waiting now, per key id.
#[derive(Debug)]
pub(super) struct LongPolls {
    max_per_key: usize,
    held: Mutex<HashMap<String, usize>>,
}

/// One waiting long-poll of a key; dropping it (the answer sent, or the client gone)
/// gives the place back.
pub(super) struct Permit {
    polls: Arc<LongPolls>,
    key_id: String,
}

impl LongPolls {
    pub(super) fn new(max_per_key: usize) -> Self {
        Self {
            max_per_key,
            held: Mutex::default(),
        }
    }

    /// A place for one more long-poll of `key_id`, or 429 when it holds the most.
    pub(super) fn acquire(self: &Arc<Self>, key_id: &str) -> Result<Permit, ApiError> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let count = held.entry(key_id.to_owned()).or_default();
        if *count >= self.max_per_key {
            return Err(ApiError::TooManyLongPolls(self.max_per_key));
        }
        *count += 1;
        Ok(Permit {
            polls: self.clone(),
            key_id: key_id.to_owned(),
        })
    }

    /// Long-polls waiting now, over every key.
    pub(super) fn waiting(&self) -> usize {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .sum()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut held = self
            .polls
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.key_id) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.key_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_holds_at_most_its_share_and_gets_it_back() {
        let polls = Arc::new(LongPolls::new(2));
        let a1 = polls.acquire("a").unwrap();
        let _a2 = polls.acquire("a").unwrap();
        assert!(matches!(
            polls.acquire("a"),
            Err(ApiError::TooManyLongPolls(2))
        ));
        let _b = polls
            .acquire("b")
            .expect("another key is not limited by a's polls");
        assert_eq!(polls.waiting(), 3);
        drop(a1);
        let _a3 = polls
            .acquire("a")
            .expect("a dropped poll gives its place back");
    }
}
