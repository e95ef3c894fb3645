//! Open-loop scheduling without coordinated omission.
//!
//! Every request has an *intended* send time fixed in advance by the target rate
//! (`i / rate`, or a seeded Poisson process). Latency is measured from that time, not
//! from when the request actually left: if the load generator or the server stalls, the
//! requests that should have gone out meanwhile are sent late and their lateness is
//! charged to their latency, as a real crowd (which does not wait for the server) would
//! experience it.
//!
//! [`Pacer`] is the sans-io core: given "now" it returns the requests that are due. The
//! async [`drive_open_loop`] runs a pacer on tokio's clock (so tests can use a paused,
//! virtual clock) with a bound on requests in flight.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::scenario::Arrivals;

/// One request slot: its number in the run and its intended send time, as an offset
/// from the run's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub index: u64,
    pub intended: Duration,
}

/// Computes intended send times and says which are due.
#[derive(Debug)]
pub struct Pacer {
    rate_per_second: f64,
    arrivals: Arrivals,
    rng: StdRng,
    requests_max: u64,
    duration: Duration,
    next_index: u64,
    /// Intended time of `next_index` (Poisson: accumulated gaps).
    next_intended: Duration,
}

impl Pacer {
    pub fn new(
        rate_per_second: f64,
        arrivals: Arrivals,
        seed: u64,
        requests_max: u64,
        duration: Duration,
    ) -> Pacer {
        assert!(
            rate_per_second.is_finite() && rate_per_second > 0.0,
            "rate must be positive"
        );
        let mut pacer = Pacer {
            rate_per_second,
            arrivals,
            rng: StdRng::seed_from_u64(seed),
            requests_max,
            duration,
            next_index: 0,
            next_intended: Duration::ZERO,
        };
        if arrivals == Arrivals::Poisson {
            pacer.next_intended = pacer.poisson_gap();
        }
        pacer
    }

    /// The intended time of request `index` under uniform arrivals, computed from the
    /// index (not by adding gaps), so rounding never drifts.
    pub fn uniform_intended(rate_per_second: f64, index: u64) -> Duration {
        Duration::from_nanos((index as f64 * 1e9 / rate_per_second).round() as u64)
    }

    fn poisson_gap(&mut self) -> Duration {
        // Inverse transform: -ln(U) / rate, U in (0, 1].
        let uniform: f64 = 1.0 - self.rng.random::<f64>();
        Duration::from_secs_f64(-uniform.ln() / self.rate_per_second)
    }

    /// The next slot regardless of the clock, or `None` when the run's budget (count or
    /// duration) is spent.
    pub fn next_slot(&mut self) -> Option<Slot> {
        if self.next_index >= self.requests_max || self.next_intended >= self.duration {
            return None;
        }
        let slot = Slot {
            index: self.next_index,
            intended: self.next_intended,
        };
        self.next_index += 1;
        self.next_intended = match self.arrivals {
            Arrivals::Uniform => Pacer::uniform_intended(self.rate_per_second, self.next_index),
            Arrivals::Poisson => self.next_intended + self.poisson_gap(),
        };
        Some(slot)
    }

    /// Every slot due at `elapsed` (intended time at or before it), in order. After a
    /// stall this is a burst: each keeps its own intended time.
    pub fn due(&mut self, elapsed: Duration) -> Vec<Slot> {
        let mut due = Vec::new();
        while self.next_index < self.requests_max
            && self.next_intended < self.duration
            && self.next_intended <= elapsed
        {
            due.extend(self.next_slot());
        }
        due
    }

    /// When the next slot is due; `None` when the budget is spent.
    pub fn next_due(&self) -> Option<Duration> {
        (self.next_index < self.requests_max && self.next_intended < self.duration)
            .then_some(self.next_intended)
    }

    pub fn issued(&self) -> u64 {
        self.next_index
    }
}

/// The latency charged to a request: from its intended send time to its completion.
/// A request that completes before its intended time (impossible unless the clock is
/// wrong) is charged zero.
pub fn charged_latency(start: Instant, slot: Slot, completed: Instant) -> Duration {
    completed.saturating_duration_since(start + slot.intended)
}

/// What the driver did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DriveSummary {
    /// Slots the pacer issued.
    pub slots: u64,
    /// Slots turned into requests.
    pub sent: u64,
    /// Slots the workload had nothing for (they are not requests and are not measured).
    pub skipped: u64,
    /// How far behind its intended time the latest request was handed to a task
    /// (scheduler lag: a large value means the load generator itself could not keep up).
    pub dispatch_lag_max: Duration,
}

/// Runs `pacer` on tokio's clock from `start`. For each due slot `plan(slot)` returns the
/// request to send (or `None` to skip the slot, or stops the run with `Err(())`), which is
/// spawned once one of `in_flight_max` permits is free; `complete(slot, output, latency)`
/// receives its result with the latency charged from the intended time.
pub async fn drive_open_loop<P, F, T, C>(
    mut pacer: Pacer,
    start: Instant,
    in_flight_max: usize,
    mut plan: P,
    complete: C,
) -> DriveSummary
where
    P: FnMut(Slot) -> Result<Option<F>, ()>,
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
    C: Fn(Slot, T, Duration) + Send + Sync + 'static,
{
    assert!(in_flight_max > 0);
    let permits = Arc::new(Semaphore::new(in_flight_max));
    let complete = Arc::new(complete);
    let mut summary = DriveSummary::default();
    let mut tasks = tokio::task::JoinSet::new();
    'run: while let Some(next) = pacer.next_due() {
        tokio::time::sleep_until(start + next).await;
        for slot in pacer.due(Instant::now() - start) {
            summary.slots += 1;
            let request = match plan(slot) {
                Ok(Some(request)) => request,
                Ok(None) => {
                    summary.skipped += 1;
                    continue;
                }
                Err(()) => break 'run,
            };
            // Waiting for a permit delays the send, never the intended time.
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            summary.dispatch_lag_max =
                summary
                    .dispatch_lag_max
                    .max(charged_latency(start, slot, Instant::now()));
            summary.sent += 1;
            let complete = complete.clone();
            tasks.spawn(async move {
                let output = request.await;
                let latency = charged_latency(start, slot, Instant::now());
                drop(permit);
                complete(slot, output, latency);
            });
            // Reap finished tasks so the set stays as small as the requests in flight.
            while tasks.try_join_next().is_some() {}
        }
    }
    while tasks.join_next().await.is_some() {}
    summary
}
