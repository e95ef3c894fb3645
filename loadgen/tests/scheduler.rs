//! The open-loop scheduler: intended send times are fixed by the rate, a stall of the
//! sender or of the server is charged to the latency of every request that should have
//! gone out meanwhile (no coordinated omission). The fake clock is tokio's paused clock:
//! virtual time advances only when every task is waiting, so these tests are exact and
//! take no real time.

use loadgen::scenario::Arrivals;
use loadgen::schedule::{charged_latency, drive_open_loop, Pacer, Slot};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

const MS: Duration = Duration::from_millis(1);

#[test]
fn uniform_intended_times_follow_the_rate_without_drift() {
    let mut pacer = Pacer::new(
        3.0,
        Arrivals::Uniform,
        1,
        1_000_000,
        Duration::from_secs(3_600),
    );
    let slots: Vec<Slot> = (0..4).map(|_| pacer.next_slot().unwrap()).collect();
    let nanos: Vec<u128> = slots.iter().map(|slot| slot.intended.as_nanos()).collect();
    assert_eq!(nanos, [0, 333_333_333, 666_666_667, 1_000_000_000]);
    // Computed from the index: the millionth slot lands exactly where it should.
    assert_eq!(
        Pacer::uniform_intended(3.0, 3_000_000),
        Duration::from_secs(1_000_000)
    );
}

#[test]
fn the_budget_ends_the_schedule_by_count_or_by_time() {
    let mut by_count = Pacer::new(1_000.0, Arrivals::Uniform, 1, 5, Duration::from_secs(60));
    assert_eq!(std::iter::from_fn(|| by_count.next_slot()).count(), 5);
    assert_eq!(by_count.next_due(), None);
    let mut by_time = Pacer::new(
        100.0,
        Arrivals::Uniform,
        1,
        u64::MAX,
        Duration::from_secs(2),
    );
    let slots: Vec<Slot> = std::iter::from_fn(|| by_time.next_slot()).collect();
    assert_eq!(slots.len(), 200);
    assert!(slots.last().unwrap().intended < Duration::from_secs(2));
}

#[test]
fn after_a_stall_due_slots_keep_their_own_intended_times() {
    let mut pacer = Pacer::new(100.0, Arrivals::Uniform, 1, 1_000, Duration::from_secs(60));
    assert_eq!(
        pacer.due(Duration::ZERO),
        vec![Slot {
            index: 0,
            intended: Duration::ZERO
        }]
    );
    assert_eq!(pacer.next_due(), Some(10 * MS));
    assert!(pacer.due(9 * MS).is_empty());
    // The sender was stalled until 55 ms: five slots are due at once, each at its time.
    let burst = pacer.due(55 * MS);
    assert_eq!(
        burst.iter().map(|slot| slot.index).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(
        burst.iter().map(|slot| slot.intended).collect::<Vec<_>>(),
        [10 * MS, 20 * MS, 30 * MS, 40 * MS, 50 * MS]
    );
    // Each is charged from its intended time: the first waited 45 ms before even leaving.
    let start = Instant::now();
    let completed = start + 55 * MS + 2 * MS;
    let charged: Vec<Duration> = burst
        .iter()
        .map(|&slot| charged_latency(start, slot, completed))
        .collect();
    assert_eq!(charged, [47 * MS, 37 * MS, 27 * MS, 17 * MS, 7 * MS]);
}

#[test]
fn poisson_arrivals_are_seeded_and_average_the_rate() {
    let times = |seed| {
        let mut pacer = Pacer::new(
            1_000.0,
            Arrivals::Poisson,
            seed,
            20_000,
            Duration::from_secs(3_600),
        );
        std::iter::from_fn(move || pacer.next_slot())
            .map(|slot| slot.intended)
            .collect::<Vec<_>>()
    };
    let first = times(7);
    assert_eq!(first, times(7), "same seed, same arrivals");
    assert_ne!(first, times(8));
    assert!(first.windows(2).all(|pair| pair[0] <= pair[1]));
    let mean_gap = first.last().unwrap().as_secs_f64() / (first.len() - 1) as f64;
    assert!((mean_gap - 0.001).abs() < 0.0001, "mean gap {mean_gap}");
}

/// A server with one worker: each request takes `service`, and the worker is frozen
/// during `[stall_from, stall_from + stall)`.
struct FakeServer {
    start: Instant,
    busy_until: Mutex<Instant>,
    service: Duration,
    stall_from: Duration,
    stall: Duration,
}

impl FakeServer {
    /// When a request arriving now completes (FIFO single worker).
    fn admit(&self) -> Instant {
        let mut busy_until = self.busy_until.lock().unwrap();
        let mut begin = (*busy_until).max(Instant::now());
        let (stall_start, stall_end) = (
            self.start + self.stall_from,
            self.start + self.stall_from + self.stall,
        );
        if begin >= stall_start && begin < stall_end {
            begin = stall_end;
        }
        let mut end = begin + self.service;
        if begin < stall_start && end > stall_start {
            end += self.stall;
        }
        *busy_until = end;
        end
    }
}

async fn run_open_loop(server: Arc<FakeServer>, rate: f64, seconds: u64) -> Vec<(Slot, Duration)> {
    let pacer = Pacer::new(
        rate,
        Arrivals::Uniform,
        1,
        u64::MAX,
        Duration::from_secs(seconds),
    );
    let samples = Arc::new(Mutex::new(Vec::new()));
    let sink = samples.clone();
    let summary = drive_open_loop(
        pacer,
        server.start,
        10_000,
        move |_slot| {
            let server = server.clone();
            Ok(Some(async move {
                let done = server.admit();
                tokio::time::sleep_until(done).await;
            }))
        },
        move |slot, (), latency| sink.lock().unwrap().push((slot, latency)),
    )
    .await;
    assert_eq!(summary.sent, rate as u64 * seconds);
    let mut samples = std::mem::take(&mut *samples.lock().unwrap());
    samples.sort_by_key(|(slot, _)| slot.index);
    samples
}

#[tokio::test(start_paused = true)]
async fn a_server_stall_is_charged_to_every_request_it_delayed() {
    let start = Instant::now();
    let server = Arc::new(FakeServer {
        start,
        busy_until: Mutex::new(start),
        service: MS,
        stall_from: Duration::from_secs(1),
        stall: Duration::from_millis(500),
    });
    let samples = run_open_loop(server, 100.0, 3).await;
    assert_eq!(samples.len(), 300);
    // Before the stall: the service time alone.
    assert!(
        samples[..100].iter().all(|(_, latency)| *latency == MS),
        "{:?}",
        &samples[..3]
    );
    // The request due at 1.000 s waits out the whole stall. The fifty due during the stall
    // queue behind it (1 ms each), and every one is charged from its intended time, not
    // from when the server let it in: a closed-loop tester would have sent only one.
    let at = |ms: u64| {
        samples
            .iter()
            .find(|(slot, _)| slot.intended == Duration::from_millis(ms))
            .unwrap()
            .1
    };
    assert_eq!(at(1_000), 501 * MS);
    assert_eq!(at(1_010), 492 * MS);
    assert_eq!(at(1_250), 276 * MS);
    assert_eq!(at(1_490), 60 * MS);
    // The backlog drains within 60 ms of the stall's end.
    assert_eq!(at(1_500), 51 * MS);
    assert_eq!(at(1_560), MS);
    let slow = samples
        .iter()
        .filter(|(_, latency)| *latency > 10 * MS)
        .count();
    assert_eq!(
        slow, 55,
        "the 50 requests due during the stall and the 5 queued behind them"
    );
    assert!(
        samples[200..].iter().all(|(_, latency)| *latency < 10 * MS),
        "recovered after the stall"
    );
}

#[tokio::test(start_paused = true)]
async fn a_late_sender_is_charged_too() {
    // The "server" answers at once, but the sender cannot dispatch before 200 ms (as if the
    // load generator itself were descheduled): every request due meanwhile is charged.
    let start = Instant::now();
    let pacer = Pacer::new(50.0, Arrivals::Uniform, 1, 20, Duration::from_secs(60));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let sink = samples.clone();
    tokio::time::sleep(200 * MS).await;
    let summary = drive_open_loop(
        pacer,
        start,
        1,
        |_slot| Ok(Some(async {})),
        move |slot, (), latency| sink.lock().unwrap().push((slot, latency)),
    )
    .await;
    assert_eq!(summary.sent, 20);
    assert_eq!(summary.dispatch_lag_max, 200 * MS);
    let mut samples = samples.lock().unwrap().clone();
    samples.sort_by_key(|(slot, _)| slot.index);
    let charged: Vec<u128> = samples
        .iter()
        .take(11)
        .map(|(_, latency)| latency.as_millis())
        .collect();
    assert_eq!(charged, [200, 180, 160, 140, 120, 100, 80, 60, 40, 20, 0]);
}

#[tokio::test(start_paused = true)]
async fn skipped_slots_and_an_exhausted_plan_end_the_run() {
    let start = Instant::now();
    let pacer = Pacer::new(1_000.0, Arrivals::Uniform, 1, 100, Duration::from_secs(60));
    let summary = drive_open_loop(
        pacer,
        start,
        8,
        move |slot: Slot| match slot.index {
            0..=4 => Ok(Some(async {})),
            5..=6 => Ok(None),
            _ => Err(()),
        },
        |_, (), _| {},
    )
    .await;
    assert_eq!((summary.sent, summary.skipped, summary.slots), (5, 2, 8));
}
