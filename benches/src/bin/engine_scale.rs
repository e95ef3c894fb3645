//! Engine figures that criterion does not give: commands per second of on-CPU time
//! (steadier than wall time on a shared machine), and the 20-million-seat setup (400
//! stadiums of 50,000 seats in one engine): bytes of per-seat state per seat, process
//! memory (VmRSS/VmHWM from /proc), and the standard mix's throughput on that state
//! (traffic spread evenly over the events).
//!
//! Run in release: `cargo run --release -p boxoffice-benches --bin engine_scale [commands]`

use boxoffice_benches::{
    median, memory_kib, record, record_on, replay, thread_cpu_ns, Record, Venues,
};
use engine::Engine;
use std::time::Instant;

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Replays `log` on `engine`: (commands accepted, commands/s of wall time, commands/s
/// of this thread's on-CPU time).
fn timed_replay(engine: &mut Engine, log: &[Record]) -> (u64, f64, f64) {
    let cpu_started = thread_cpu_ns().unwrap_or(0);
    let started = Instant::now();
    let accepted = replay(engine, log);
    let wall_s = started.elapsed().as_secs_f64();
    let cpu_s = thread_cpu_ns().unwrap_or(0).saturating_sub(cpu_started) as f64 / 1e9;
    (
        accepted,
        log.len() as f64 / wall_s,
        log.len() as f64 / cpu_s,
    )
}

fn standard_mix(rounds: usize) {
    let venues = Venues::standard();
    let log = record(&venues, 42, 200_000);
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    let mut accepted = 0;
    for _ in 0..rounds {
        let mut engine = venues.build();
        let (ok, wall_rate, cpu_rate) = timed_replay(&mut engine, &log);
        accepted = ok;
        wall.push(wall_rate);
        cpu.push(cpu_rate);
    }
    println!(
        "standard mix, standard venues: {} commands ({accepted} accepted), median of {rounds}: {:.0} commands/s wall, {:.0} commands/s on-CPU",
        log.len(),
        median(&mut wall),
        median(&mut cpu)
    );
}

fn scale(commands: usize) {
    let venues = Venues::scale();
    let (_, rss_before_kib) = memory_kib().unwrap_or_default();
    let started = Instant::now();
    let engine = venues.build();
    let build_s = started.elapsed().as_secs_f64();
    let (hwm_built_kib, rss_built_kib) = memory_kib().unwrap_or_default();
    let seats = engine.total_seats();
    let seat_bytes = engine.seat_state_bytes();
    println!(
        "20M setup: {} events, {seats} seats, built in {build_s:.2} s",
        engine.event_count()
    );
    println!(
        "per-seat state: {seat_bytes} bytes = {:.2} bytes/seat",
        seat_bytes as f64 / seats as f64
    );
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
    let (accepted, wall_rate, cpu_rate) = timed_replay(&mut engine, &log);
    assert_eq!(
        engine.state_hash(),
        expected_hash,
        "the replay reached the recorded state"
    );
    let (hwm_kib, rss_kib) = memory_kib().unwrap_or_default();
    println!("standard mix on 20M seats: {} commands ({accepted} accepted), {wall_rate:.0} commands/s wall, {cpu_rate:.0} commands/s on-CPU", log.len());
    println!(
        "after the run: {} live holds, {} bookings, VmRSS {:.0} MiB, VmHWM {:.0} MiB (the peak includes the recorded log)",
        engine.live_hold_count(),
        engine.booking_count(),
        mib(rss_kib),
        mib(hwm_kib)
    );
    println!("per kind (accepted, rejected): {:?}", tally.counts);
}

fn main() {
    let commands: usize = std::env::args().nth(1).map_or(1_000_000, |text| {
        text.parse().expect("commands is a number")
    });
    standard_mix(5);
    scale(commands);
}
