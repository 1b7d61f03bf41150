//! Fixed-window rate limits (card-testing defence, brute-force lockout): at most `limit` events
//! per key per minute, windows aligned to the injectable clock's minutes.
//!
//! Memory and time are bounded whatever an attacker sends: keys are spread over shards, each
//! shard forgets its keys when its window turns over (one `clear`, amortised over the events of
//! the window), and a shard that is full counts new keys in one shared overflow bucket instead
//! of growing. No operation walks the keys.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use smartpay_domain::time::Clock;

const WINDOW_MS: i64 = 60_000;
const SHARDS: usize = 16;
/// Keys remembered per shard and window (16 × 8,192 ≈ 131k in all).
const KEYS_PER_SHARD: usize = 8_192;

struct Shard {
    window: i64,
    counts: HashMap<Box<str>, u32>,
    /// Events of keys that arrived when the shard was full.
    overflow: u32,
}

pub struct Limiter {
    limit: u32,
    clock: Arc<dyn Clock>,
    hasher: RandomState,
    shards: Vec<Mutex<Shard>>,
    keys_per_shard: usize,
}

impl Limiter {
    pub fn new(limit: u32, clock: Arc<dyn Clock>) -> Self {
        Self::with_capacity(limit, clock, KEYS_PER_SHARD)
    }

    fn with_capacity(limit: u32, clock: Arc<dyn Clock>, keys_per_shard: usize) -> Self {
        let shards =
            (0..SHARDS).map(|_| Mutex::new(Shard { window: i64::MIN, counts: HashMap::new(), overflow: 0 })).collect();
        Limiter { limit, clock, hasher: RandomState::new(), shards, keys_per_shard }
    }

    /// Looks at (and with `count`, adds one to) the key's events in the current window;
    /// `Err(seconds)` to wait when the limit is reached.
    fn with_count(&self, key: &str, count: bool) -> Result<(), u64> {
        let now = self.clock.now().0;
        let window = now.div_euclid(WINDOW_MS);
        let seconds_left = || {
            let end = (window + 1).saturating_mul(WINDOW_MS);
            u64::try_from((end - now + 999) / 1000).unwrap_or(1).max(1)
        };
        let index = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        let Some(shard) = self.shards.get(index) else { return Ok(()) };
        let Ok(mut s) = shard.lock() else { return Ok(()) };
        if s.window != window {
            s.window = window;
            s.counts.clear();
            s.overflow = 0;
        }
        let known = s.counts.contains_key(key);
        let full = s.counts.len() >= self.keys_per_shard;
        let shard = &mut *s;
        let n = if known {
            match shard.counts.get_mut(key) {
                Some(n) => n,
                None => return Ok(()),
            }
        } else if full {
            &mut shard.overflow
        } else if count {
            shard.counts.entry(key.into()).or_insert(0)
        } else {
            return Ok(());
        };
        if *n >= self.limit {
            return Err(seconds_left());
        }
        if count {
            *n += 1;
        }
        Ok(())
    }

    /// `Err(seconds)` when `key` already used up its window, without counting an event.
    pub fn peek(&self, key: &str) -> Result<(), u64> {
        self.with_count(key, false)
    }

    /// Counts one event for `key`; `Err(seconds)` to wait when the limit is reached.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        self.with_count(key, true)
    }
}

/// The brute-force defence: failed authentications counted per (client address, claimed
/// identity), so a client that guesses one merchant's secret is stopped without locking that
/// merchant out everywhere, and per client address, a coarser ceiling against guessing across
/// many identities. Credentials this server has already verified pass either way (the caller
/// checks [`crate::auth::Authenticator::is_known`]): a lockout stops guesses, not customers.
pub struct AuthLockout {
    per_identity: Limiter,
    per_address: Limiter,
}

impl AuthLockout {
    pub fn new(per_identity: u32, per_address: u32, clock: Arc<dyn Clock>) -> Self {
        AuthLockout {
            per_identity: Limiter::new(per_identity, clock.clone()),
            per_address: Limiter::new(per_address, clock),
        }
    }

    fn identity_key(ip: IpAddr, identity: &str) -> String {
        format!("{ip} {identity}")
    }

    /// `Err(seconds)` when credentials not verified before may not be tried now.
    pub fn check(&self, ip: IpAddr, identity: &str) -> Result<(), u64> {
        self.per_address.peek(&ip.to_string())?;
        self.per_identity.peek(&Self::identity_key(ip, identity))
    }

    /// Records a failed authentication.
    pub fn failed(&self, ip: IpAddr, identity: &str) {
        let _ = self.per_address.check(&ip.to_string());
        let _ = self.per_identity.check(&Self::identity_key(ip, identity));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smartpay_domain::Millis;
    use smartpay_domain::time::ManualClock;

    fn clock() -> Arc<ManualClock> {
        Arc::new(ManualClock::new(Millis(1_700_000_000_000)))
    }

    #[test]
    fn the_limit_applies_per_key() {
        let l = Limiter::new(3, clock());
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

    #[test]
    fn the_window_turns_over_with_the_clock_and_retry_after_counts_down() {
        let c = clock();
        c.set(Millis(60_000 * 1000 + 15_000));
        let l = Limiter::new(1, c.clone());
        assert!(l.check("a").is_ok());
        assert_eq!(l.check("a"), Err(45));
        c.advance_ms(44_500);
        assert_eq!(l.peek("a"), Err(1));
        c.advance_ms(500);
        assert_eq!(l.peek("a"), Ok(()), "a new minute forgets the old one");
        assert!(l.check("a").is_ok());
    }

    #[test]
    fn a_full_limiter_counts_new_keys_together_instead_of_growing() {
        let l = Limiter::with_capacity(2, clock(), 4);
        for i in 0..10_000 {
            let _ = l.check(&format!("k{i}"));
        }
        let kept: usize = l.shards.iter().map(|s| s.lock().map(|s| s.counts.len()).unwrap_or(0)).sum();
        assert!(kept <= SHARDS * 4, "kept {kept} keys");
        assert!(l.check("a-new-key").is_err(), "the overflow bucket is limited too");
    }

    #[test]
    fn a_lockout_is_per_address_and_identity_with_a_coarser_ceiling_per_address() {
        let l = AuthLockout::new(3, 5, clock());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            l.failed(a, "victim");
        }
        assert!(l.check(a, "victim").is_err());
        assert!(l.check(b, "victim").is_ok(), "another address is not locked out");
        assert!(l.check(a, "someone-else").is_ok(), "another identity is not locked out");
        l.failed(a, "x");
        l.failed(a, "y");
        assert!(l.check(a, "someone-else").is_err(), "the per-address ceiling applies to every identity");
        assert!(l.check(b, "someone-else").is_ok());
    }
}
