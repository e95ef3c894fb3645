//! Rate limits keyed by user or client address: `governor`'s keyed GCRA limiter (a token
//! bucket of `burst` tokens refilled at `per_second`, lock-free per key in a sharded
//! `DashMap`), plus the housekeeping that bounds its memory.
//!
//! A key's state is dropped once it is indistinguishable from a fresh one (its bucket is
//! full again: `retain_recent`). That runs every [`PRUNE_EVERY_CHECKS`] checks once more
//! than `keys_max` keys are held, and every [`SHRINK_EVERY_CHECKS`] checks regardless, so
//! the map shrinks after a burst of many clients. What remains after pruning are keys
//! that made a request within the last `burst / per_second` seconds.

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::Quota;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How often (in checks) the number of keys is compared with `keys_max`.
const PRUNE_EVERY_CHECKS: u64 = 256;
/// How often (in checks) idle keys are dropped whatever their number.
const SHRINK_EVERY_CHECKS: u64 = 65_536;
const _: () = assert!(SHRINK_EVERY_CHECKS.is_multiple_of(PRUNE_EVERY_CHECKS));

type Keyed<K, C> =
    governor::RateLimiter<K, DefaultKeyedStateStore<K>, C, NoOpMiddleware<<C as Clock>::Instant>>;

pub(crate) struct RateLimiter<K: Hash + Eq + Clone, C: Clock = DefaultClock> {
    limiter: Keyed<K, C>,
    keys_max: usize,
    checks: AtomicU64,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    pub(crate) fn new(per_second: u32, burst: u32, keys_max: usize) -> RateLimiter<K> {
        RateLimiter::with_clock(per_second, burst, keys_max, DefaultClock::default())
    }
}

impl<K: Hash + Eq + Clone, C: Clock> RateLimiter<K, C> {
    pub(crate) fn with_clock(
        per_second: u32,
        burst: u32,
        keys_max: usize,
        clock: C,
    ) -> RateLimiter<K, C> {
        let positive = |value: u32| NonZeroU32::new(value.max(1)).expect("at least 1");
        let quota = Quota::per_second(positive(per_second)).allow_burst(positive(burst));
        RateLimiter {
            limiter: governor::RateLimiter::dashmap_with_clock(quota, clock),
            keys_max: keys_max.max(1),
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one token for `key`; when there is none, how long until there is.
    pub(crate) fn check(&self, key: &K) -> Result<(), Duration> {
        let checks = self.checks.fetch_add(1, Ordering::Relaxed) + 1;
        if checks.is_multiple_of(SHRINK_EVERY_CHECKS)
            || (checks.is_multiple_of(PRUNE_EVERY_CHECKS) && self.limiter.len() > self.keys_max)
        {
            self.prune();
        }
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }

    /// Drops every key whose bucket is full again, and returns the memory.
    fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    #[cfg(test)]
    fn keys(&self) -> usize {
        self.limiter.len()
    }
}

/// Seconds for `Retry-After`: at least 1, rounded up.
pub(crate) fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0).max(u64::from(wait.is_zero()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    #[test]
    fn burst_then_refill_per_key() {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::with_clock(2, 3, 100, clock.clone());
        for _ in 0..3 {
            assert!(limiter.check(&"a").is_ok());
        }
        let wait = limiter.check(&"a").unwrap_err();
        assert!(wait <= Duration::from_millis(500) && wait > Duration::ZERO);
        assert_eq!(retry_after_seconds(wait), 1);
        assert!(limiter.check(&"b").is_ok(), "keys are independent");
        clock.advance(Duration::from_millis(500));
        assert!(limiter.check(&"a").is_ok());
        assert!(limiter.check(&"a").is_err());
    }

    #[test]
    fn idle_keys_are_dropped_once_there_are_too_many() {
        let clock = FakeRelativeClock::default();
        let keys_max = 16;
        // Each key's bucket is full again 10 ms after its one request.
        let limiter = RateLimiter::with_clock(100, 1, keys_max, clock.clone());
        for index in 0..10 * PRUNE_EVERY_CHECKS {
            assert!(limiter.check(&index).is_ok());
            clock.advance(Duration::from_millis(10));
            assert!(
                limiter.keys() <= keys_max + PRUNE_EVERY_CHECKS as usize,
                "{} keys after {index}",
                limiter.keys()
            );
        }
    }

    #[test]
    fn active_keys_are_kept_when_pruning() {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::with_clock(1, 1, 1, clock.clone());
        assert!(limiter.check(&u64::MAX).is_ok());
        // Enough new keys to prune several times, within the active key's refill time.
        for index in 0..4 * PRUNE_EVERY_CHECKS {
            let _ = limiter.check(&index);
        }
        assert!(limiter.check(&u64::MAX).is_err(), "still limited");
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_seconds(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
    }
}
