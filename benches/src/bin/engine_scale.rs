//! The 20-million-seat report: 400 stadiums of 50,000 seats in one engine. Prints
//! bytes of per-seat state per seat, process memory (VmRSS/VmHWM from /proc), and the
//! standard mix's throughput on that state (traffic spread evenly over the events).
//!
//! Run in release: `cargo run --release -p boxoffice-benches --bin engine_scale [commands]`

use boxoffice_benches::{memory_kib, record_on, replay, Venues};
use std::time::Instant;

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() {
    let commands: usize = std::env::args().nth(1).map_or(1_000_000, |text| text.parse().expect("commands is a number"));
    let venues = Venues::scale();
    let (_, rss_before_kib) = memory_kib().unwrap_or_default();

    let started = Instant::now();
    let engine = venues.build();
    let build_s = started.elapsed().as_secs_f64();
    let (hwm_built_kib, rss_built_kib) = memory_kib().unwrap_or_default();
    let seats = engine.total_seats();
    let seat_bytes = engine.seat_state_bytes();
    println!("events: {}, seats: {seats}, built in {build_s:.2} s", engine.event_count());
    println!("per-seat state: {seat_bytes} bytes = {:.2} bytes/seat", seat_bytes as f64 / seats as f64);
    println!(
        "process after build: VmRSS {:.0} MiB ({:.2} bytes/seat over the empty process), VmHWM {:.0} MiB",
        mib(rss_built_kib),
        (rss_built_kib.saturating_sub(rss_before_kib) * 1024) as f64 / seats as f64,
        mib(hwm_built_kib)
    );
    drop(engine);

    // Record the mix against one engine, then time its replay on a fresh one.
    let mut scratch = venues.build();
    let (log, tally) = record_on(&mut scratch, &venues, 42, commands);
    let expected_hash = scratch.state_hash();
    drop(scratch);
    let mut engine = venues.build();
    let started = Instant::now();
    let accepted = replay(&mut engine, &log);
    let replay_s = started.elapsed().as_secs_f64();
    assert_eq!(engine.state_hash(), expected_hash, "the replay reached the recorded state");
    let (hwm_kib, rss_kib) = memory_kib().unwrap_or_default();
    println!("standard mix: {} commands ({accepted} accepted), {:.0} commands/s", log.len(), log.len() as f64 / replay_s);
    println!("after the run: {} live holds, {} bookings, VmRSS {:.0} MiB, VmHWM {:.0} MiB (peak includes the recorded log and the scratch engine)", engine.live_hold_count(), engine.booking_count(), mib(rss_kib), mib(hwm_kib));
    println!("per kind (accepted, rejected): {:?}", tally.counts);
}
