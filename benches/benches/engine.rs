//! Engine core throughput, on one thread.
//!
//! - `engine/standard_mix`: the standard mix (see `boxoffice_benches`) on the standard
//!   venues (one 50,000-seat stadium, 200 shows of 2,000 seats). A 200,000-command log
//!   is recorded once; each iteration replays it on a freshly built engine, so only
//!   `Engine::apply` is timed. Throughput is in commands.
//! - `best_available_nearly_full/*`: a best-available hold on the stadium with ~1% of
//!   its seats free, scattered, followed by the release of what it got (so every
//!   iteration sees the same venue). Throughput counts the hold and the release.
//!
//! Run: `cargo bench -p boxoffice-benches -- --warm-up-time 1 --measurement-time 5`

use boxoffice_benches::{fill_stadium, record, replay, Venues};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use engine::{Command, EventId, Reply, Request, Selection};
use std::hint::black_box;

const MIX_COMMANDS: usize = 200_000;
const SEED: u64 = 42;

fn standard_mix(c: &mut Criterion) {
    let venues = Venues::standard();
    let log = record(&venues, SEED, MIX_COMMANDS);
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(log.len() as u64));
    group.sample_size(10);
    group.bench_function("standard_mix", |bencher| {
        bencher.iter_batched(
            // A freshly built engine, not a clone: a clone shares its seat chunks
            // (copy-on-write, for snapshots), and the first writes would copy them.
            || venues.build(),
            |mut engine| {
                black_box(replay(&mut engine, &log));
                engine
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn best_available_nearly_full(c: &mut Criterion) {
    let venues = Venues::stadium();
    let mut engine = venues.build();
    let mut offset = fill_stadium(&mut engine, EventId(0), 10, 7);
    let now_ms = engine.now_ms();
    let free: u64 = engine
        .availability(EventId(0))
        .expect("the stadium exists")
        .iter()
        .filter(|category| category.category != "Standing")
        .map(|category| category.free)
        .sum();
    let mut group = c.benchmark_group("best_available_nearly_full");
    group.throughput(Throughput::Elements(2));
    for (name, quantity, together) in [
        ("together_2", 2, true),
        ("together_4", 4, true),
        ("any_4", 4, false),
    ] {
        let hold = Request::new(Command::PlaceHold {
            user: "buyer".into(),
            event: EventId(0),
            selection: Selection::Best {
                quantity,
                category: None,
                together,
            },
            wait: false,
        });
        let probe = engine.apply(offset, now_ms, &hold);
        offset += 1;
        let granted = match &probe.result {
            Ok(Reply::HoldPlaced(view)) => {
                let release = Request::new(Command::ReleaseHold {
                    user: "buyer".into(),
                    hold: view.hold,
                });
                engine.apply(offset, now_ms, &release);
                offset += 1;
                format!("granted seats {:?}", view.items)
            }
            other => format!("answered {other:?}"),
        };
        eprintln!("best_available_nearly_full/{name}: {free} of 50000 seats free; the request is {granted}");
        group.bench_function(name, |bencher| {
            bencher.iter(|| {
                let placed = engine.apply(offset, now_ms, &hold);
                offset += 1;
                let release = match &placed.result {
                    Ok(Reply::HoldPlaced(view)) => Request::new(Command::ReleaseHold {
                        user: "buyer".into(),
                        hold: view.hold,
                    }),
                    // Nothing fits (no run of that size is left): the full scan is what was measured.
                    _ => Request::new(Command::Tick),
                };
                black_box(engine.apply(offset, now_ms, &release));
                offset += 1;
                placed
            })
        });
    }
    group.finish();
}

criterion_group!(benches, standard_mix, best_available_nearly_full);
criterion_main!(benches);
