//! Fixed-window rate limits (card-testing defence): at most `limit` events per key per minute.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);
const MAX_KEYS: usize = 100_000;

/// Whole seconds until the window that began at `start` ends (at least 1, for `Retry-After`).
fn seconds_left(start: Instant, now: Instant) -> u64 {
    WINDOW.saturating_sub(now.duration_since(start)).as_secs().max(1)
}

pub struct Limiter {
    limit: u32,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Limiter {
    pub fn new(limit: u32) -> Self {
        Limiter { limit, windows: Mutex::new(HashMap::new()) }
    }

    /// `Err(seconds)` when `key` already used up its window, without counting an event.
    pub fn peek(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        let Ok(w) = self.windows.lock() else { return Ok(()) };
        match w.get(key) {
            Some((start, n)) if now.duration_since(*start) < WINDOW && *n >= self.limit => {
                Err(seconds_left(*start, now))
            }
            _ => Ok(()),
        }
    }

    /// Counts one event for `key`; `Err(seconds)` to wait when the limit is reached.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        let now = Instant::now();
        let Ok(mut w) = self.windows.lock() else { return Ok(()) };
        if w.len() >= MAX_KEYS {
            w.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let entry = w.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        if entry.1 >= self.limit {
            return Err(seconds_left(entry.0, now));
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_applies_per_key() {
        let l = Limiter::new(3);
        for _ in 0..3 {
            assert!(l.check("a").is_ok());
        }
        let wait = l.check("a").unwrap_err();
        assert!((1..=60).contains(&wait));
        assert!(l.check("b").is_ok());
        assert!(l.peek("a").is_err());
        assert!(l.peek("b").is_ok(), "peeking counts nothing");
        assert!(l.peek("c").is_ok());
    }
}
