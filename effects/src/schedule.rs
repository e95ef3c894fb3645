//! The delivery state machine, sans-io (like the engine and the runtime's role machine):
//! which endpoint sends its oldest waiting message when. Time and randomness are inputs
//! (`now_ms`, a seeded generator), so tests run days of retries on virtual time.
//!
//! Rules:
//! - Per endpoint, one message at a time, oldest first: a message is sent only after every
//!   earlier one of that endpoint was delivered (per-endpoint order by log offset).
//! - A failed attempt retries the same message after `first_retry_ms`, doubling up to
//!   `retry_max_ms`, each delay jittered to between half and all of it (many endpoints
//!   failing together do not retry together).
//! - An endpoint whose oldest waiting message has failed for `disable_after_ms` is disabled
//!   ([`Verdict::Disable`]: the shell records it in the control log); nothing is sent to a
//!   disabled endpoint until its admin enables it, which starts its retries afresh.
//! - One endpoint never holds up another: each has its own lane; a cap on attempts in
//!   flight at once is shared, served round-robin.

use rand::{Rng, RngExt};
use std::collections::BTreeMap;
use std::ops::Bound;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub first_retry_ms: u64,
    pub retry_max_ms: u64,
    pub disable_after_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first_retry_ms: 5_000,
            retry_max_ms: 3_600_000,
            disable_after_ms: 86_400_000,
        }
    }
}

impl RetryPolicy {
    /// The delay before retry `failures` (from 1), before jitter.
    pub fn backoff_ms(&self, failures: u32) -> u64 {
        let doublings = failures.saturating_sub(1).min(40);
        self.first_retry_ms
            .saturating_mul(1u64 << doublings)
            .min(self.retry_max_ms)
    }
}

/// What the scheduler decided after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Delivered: the next message of the endpoint may go.
    Delivered,
    /// Failed: the same message again at `at_ms`.
    Retry { at_ms: u64 },
    /// Failed for `disable_after_ms`: the endpoint is disabled.
    Disable { failing_for_ms: u64 },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Lane {
    waiting: u64,
    enabled: bool,
    in_flight: bool,
    failures: u32,
    failing_since_ms: Option<u64>,
    next_attempt_ms: u64,
}

#[derive(Clone, Debug)]
pub struct Scheduler {
    policy: RetryPolicy,
    lanes: BTreeMap<String, Lane>,
    /// Where the last round-robin pick ended.
    cursor: Option<String>,
}

impl Scheduler {
    pub fn new(policy: RetryPolicy) -> Scheduler {
        assert!(policy.first_retry_ms > 0 && policy.first_retry_ms <= policy.retry_max_ms);
        Scheduler {
            policy,
            lanes: BTreeMap::new(),
            cursor: None,
        }
    }

    /// An endpoint exists, enabled or not. Enabling a disabled one sends at once and
    /// starts its retries afresh.
    pub fn set_endpoint(&mut self, endpoint: &str, enabled: bool) {
        let lane = self.lanes.entry(endpoint.to_string()).or_default();
        if enabled && !lane.enabled {
            lane.failures = 0;
            lane.failing_since_ms = None;
            lane.next_attempt_ms = 0;
        }
        lane.enabled = enabled;
    }

    pub fn remove_endpoint(&mut self, endpoint: &str) {
        self.lanes.remove(endpoint);
    }

    pub fn endpoints(&self) -> impl Iterator<Item = &str> {
        self.lanes.keys().map(String::as_str)
    }

    /// `count` more messages wait for `endpoint` (one that does not exist yet is made,
    /// disabled until [`Scheduler::set_endpoint`] says otherwise).
    pub fn enqueued(&mut self, endpoint: &str, count: u64) {
        self.lanes.entry(endpoint.to_string()).or_default().waiting += count;
    }

    pub fn waiting(&self, endpoint: &str) -> u64 {
        self.lanes.get(endpoint).map_or(0, |lane| lane.waiting)
    }

    /// Attempts in flight now.
    pub fn in_flight(&self) -> usize {
        self.lanes.values().filter(|lane| lane.in_flight).count()
    }

    /// The endpoints whose oldest message goes now, at most `max` more than are already in
    /// flight, round-robin; each is in flight until [`Scheduler::finished`].
    pub fn due(&mut self, now_ms: u64, in_flight_max: usize) -> Vec<String> {
        let mut room = in_flight_max.saturating_sub(self.in_flight());
        let mut picked = Vec::new();
        if room == 0 {
            return picked;
        }
        let after = match &self.cursor {
            Some(cursor) => Bound::Excluded(cursor.clone()),
            None => Bound::Unbounded,
        };
        let order: Vec<String> = self
            .lanes
            .range::<String, _>((after, Bound::Unbounded))
            .chain(self.lanes.range::<String, _>(..))
            .map(|(endpoint, _)| endpoint.clone())
            .take(self.lanes.len())
            .collect();
        for endpoint in order {
            if room == 0 {
                break;
            }
            let lane = self.lanes.get_mut(&endpoint).expect("listed");
            if lane.enabled && !lane.in_flight && lane.waiting > 0 && lane.next_attempt_ms <= now_ms
            {
                lane.in_flight = true;
                room -= 1;
                self.cursor = Some(endpoint.clone());
                picked.push(endpoint);
            }
        }
        picked
    }

    /// An attempt of `endpoint`'s oldest message ended at `now_ms`.
    pub fn finished(
        &mut self,
        endpoint: &str,
        now_ms: u64,
        delivered: bool,
        rng: &mut impl Rng,
    ) -> Verdict {
        let policy = self.policy;
        let Some(lane) = self.lanes.get_mut(endpoint) else {
            // Deleted while in flight.
            return Verdict::Delivered;
        };
        assert!(
            lane.in_flight,
            "{endpoint}: an attempt finished that was not started"
        );
        lane.in_flight = false;
        if delivered {
            assert!(
                lane.waiting > 0,
                "{endpoint}: delivered with nothing waiting"
            );
            lane.waiting -= 1;
            lane.failures = 0;
            lane.failing_since_ms = None;
            lane.next_attempt_ms = now_ms;
            return Verdict::Delivered;
        }
        lane.failures = lane.failures.saturating_add(1);
        let since = *lane.failing_since_ms.get_or_insert(now_ms);
        let failing_for_ms = now_ms.saturating_sub(since);
        if failing_for_ms >= policy.disable_after_ms {
            lane.enabled = false;
            return Verdict::Disable { failing_for_ms };
        }
        let backoff = policy.backoff_ms(lane.failures);
        let jittered = backoff / 2 + rng.random_range(0..=backoff - backoff / 2);
        lane.next_attempt_ms = now_ms.saturating_add(jittered);
        Verdict::Retry {
            at_ms: lane.next_attempt_ms,
        }
    }

    /// A message was dropped from `endpoint`'s backlog without an attempt (its endpoint
    /// store lost it, or a re-send replaced it): one fewer waits.
    pub fn forgot(&mut self, endpoint: &str) {
        if let Some(lane) = self.lanes.get_mut(endpoint) {
            lane.waiting = lane.waiting.saturating_sub(1);
        }
    }

    /// The earliest time a waiting, enabled, idle endpoint is due; `None` when none is.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.lanes
            .values()
            .filter(|lane| lane.enabled && !lane.in_flight && lane.waiting > 0)
            .map(|lane| lane.next_attempt_ms)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const HOUR_MS: u64 = 3_600_000;

    #[test]
    fn backoff_doubles_up_to_its_cap_with_jitter_in_the_upper_half() {
        let policy = RetryPolicy::default();
        let delays: Vec<u64> = (1..=12)
            .map(|failures| policy.backoff_ms(failures))
            .collect();
        assert_eq!(
            delays,
            [
                5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 640_000, 1_280_000,
                2_560_000, HOUR_MS, HOUR_MS
            ]
        );
        let mut scheduler = Scheduler::new(policy);
        scheduler.set_endpoint("wh_a", true);
        scheduler.enqueued("wh_a", 1);
        let mut rng = StdRng::seed_from_u64(7);
        let mut now = 0;
        for failures in 1..=12 {
            assert_eq!(scheduler.due(now, 8), ["wh_a"]);
            let Verdict::Retry { at_ms } = scheduler.finished("wh_a", now, false, &mut rng) else {
                panic!("retries before a day has passed");
            };
            let delay = at_ms - now;
            let backoff = policy.backoff_ms(failures);
            assert!(
                (backoff / 2..=backoff).contains(&delay),
                "{failures}: {delay}"
            );
            assert_eq!(
                scheduler.due(at_ms - 1, 8),
                Vec::<String>::new(),
                "not before its time"
            );
            assert_eq!(scheduler.next_due_ms(), Some(at_ms));
            now = at_ms;
        }
    }

    /// An endpoint that fails for a day is disabled, its message still waiting; enabling it
    /// sends that message at once and the next ones in order.
    #[test]
    fn sustained_failure_disables_and_enabling_resumes_in_order() {
        let mut scheduler = Scheduler::new(RetryPolicy::default());
        let mut rng = StdRng::seed_from_u64(1);
        scheduler.set_endpoint("wh_a", true);
        scheduler.enqueued("wh_a", 3);
        let mut now = 1_000;
        let start = now;
        let verdict = loop {
            assert_eq!(scheduler.due(now, 8), ["wh_a"]);
            match scheduler.finished("wh_a", now, false, &mut rng) {
                Verdict::Retry { at_ms } => now = at_ms,
                other => break other,
            }
        };
        assert_eq!(
            verdict,
            Verdict::Disable {
                failing_for_ms: now - start
            }
        );
        assert!(
            now - start >= 24 * HOUR_MS && now - start < 26 * HOUR_MS,
            "{}",
            now - start
        );
        assert_eq!(scheduler.due(now + 10 * HOUR_MS, 8), Vec::<String>::new());
        assert_eq!(scheduler.next_due_ms(), None);
        assert_eq!(scheduler.waiting("wh_a"), 3, "nothing is dropped");
        scheduler.set_endpoint("wh_a", true);
        for left in (0..3).rev() {
            assert_eq!(scheduler.due(now, 8), ["wh_a"]);
            assert_eq!(
                scheduler.finished("wh_a", now, true, &mut rng),
                Verdict::Delivered
            );
            assert_eq!(scheduler.waiting("wh_a"), left);
        }
        assert_eq!(scheduler.due(now, 8), Vec::<String>::new());
    }

    /// One endpoint at a time per lane; a dead endpoint never holds up another; the cap on
    /// attempts in flight is shared round-robin.
    #[test]
    fn lanes_are_independent_and_share_the_in_flight_cap_fairly() {
        let mut scheduler = Scheduler::new(RetryPolicy::default());
        let mut rng = StdRng::seed_from_u64(3);
        for endpoint in ["wh_a", "wh_b", "wh_c"] {
            scheduler.set_endpoint(endpoint, true);
            scheduler.enqueued(endpoint, 2);
        }
        assert_eq!(scheduler.due(0, 2), ["wh_a", "wh_b"]);
        assert_eq!(scheduler.due(0, 2), Vec::<String>::new(), "the cap is full");
        assert!(matches!(
            scheduler.finished("wh_a", 0, false, &mut rng),
            Verdict::Retry { .. }
        ));
        assert_eq!(
            scheduler.due(0, 2),
            ["wh_c"],
            "wh_a waits for its retry; wh_c is next"
        );
        assert_eq!(
            scheduler.finished("wh_b", 1, true, &mut rng),
            Verdict::Delivered
        );
        assert_eq!(
            scheduler.finished("wh_c", 1, true, &mut rng),
            Verdict::Delivered
        );
        assert_eq!(scheduler.due(1, 2), ["wh_b", "wh_c"]);
        // A disabled endpoint's messages wait without being sent; a deleted one is gone.
        scheduler.set_endpoint("wh_b", false);
        assert_eq!(
            scheduler.finished("wh_b", 2, true, &mut rng),
            Verdict::Delivered
        );
        scheduler.remove_endpoint("wh_c");
        assert_eq!(
            scheduler.finished("wh_c", 2, true, &mut rng),
            Verdict::Delivered
        );
        assert_eq!(scheduler.due(2, 2), Vec::<String>::new());
        assert_eq!(scheduler.endpoints().collect::<Vec<_>>(), ["wh_a", "wh_b"]);
    }
}
