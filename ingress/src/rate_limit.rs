//! Token-bucket rate limits keyed by user or client address. Buckets live in a few
//! mutex-guarded shards; their number is bounded, and idle (full) buckets are dropped
//! first when the bound is reached — a full bucket is the same as no bucket.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SHARDS: usize = 16;

struct Bucket {
    tokens: f64,
    updated: Instant,
}

pub(crate) struct RateLimiter {
    per_second: f64,
    burst: f64,
    keys_max_per_shard: usize,
    shards: Vec<Mutex<HashMap<String, Bucket>>>,
}

impl RateLimiter {
    pub(crate) fn new(per_second: u32, burst: u32, keys_max: usize) -> RateLimiter {
        RateLimiter {
            per_second: f64::from(per_second.max(1)),
            burst: f64::from(burst.max(1)),
            keys_max_per_shard: (keys_max / SHARDS).max(1),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Takes one token for `key`; when there is none, how long until there is.
    pub(crate) fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let shard = &self.shards[hasher.finish() as usize % SHARDS];
        let mut buckets = shard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !buckets.contains_key(key) && buckets.len() >= self.keys_max_per_shard {
            let (per_second, burst) = (self.per_second, self.burst);
            buckets.retain(|_, bucket| {
                bucket.tokens
                    + now.saturating_duration_since(bucket.updated).as_secs_f64() * per_second
                    < burst
            });
            if buckets.len() >= self.keys_max_per_shard {
                // Every tracked key is active: forget one (it starts over with a full bucket).
                if let Some(victim) = buckets.keys().next().cloned() {
                    buckets.remove(&victim);
                }
            }
        }
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) / self.per_second,
            ))
        }
    }
}

/// Seconds for `Retry-After`: at least 1, rounded up.
pub(crate) fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0).max(u64::from(wait.is_zero()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill_per_key() {
        let limiter = RateLimiter::new(2, 3, 100);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check("a", start).is_ok());
        }
        let wait = limiter.check("a", start).unwrap_err();
        assert!(wait <= Duration::from_millis(500) && wait > Duration::ZERO);
        assert_eq!(retry_after_seconds(wait), 1);
        assert!(limiter.check("b", start).is_ok(), "keys are independent");
        assert!(limiter
            .check("a", start + Duration::from_millis(500))
            .is_ok());
        assert!(limiter
            .check("a", start + Duration::from_millis(500))
            .is_err());
    }

    #[test]
    fn the_number_of_buckets_is_bounded() {
        let limiter = RateLimiter::new(1, 1, SHARDS);
        let now = Instant::now();
        for index in 0..1000 {
            let _ = limiter.check(&format!("k{index}"), now);
        }
        let total: usize = limiter
            .shards
            .iter()
            .map(|shard| shard.lock().unwrap().len())
            .sum();
        assert!(total <= SHARDS, "{total}");
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_seconds(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
    }
}
