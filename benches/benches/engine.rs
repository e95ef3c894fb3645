//! Engine core throughput, on one thread.
//!
//! - `engine/standard_mix`: the standard mix (see `boxoffice_benches`) on the standard
//!   venues (one 50,000-seat stadium, 200 shows of 2,000 seats). A 200,000-command log
//!   is recorded once; each iteration replays it on a freshly built engine, so only
//!   `Engine::apply` is timed. Throughput is in commands. Users are named by id once the
//!   engine has given them one, as a writer that learns ids sends them;
//!   `engine/standard_mix_by_name` is the same log with every user by name.
//! - `engine/standard_mix_warm`: the next 200,000 commands of the same mix, on an engine
//!   that has applied the first 200,000 (untimed, in the iteration's setup): its tables
//!   have grown and most of its users are known, where `standard_mix` also times every
//!   table growing from empty on fresh pages (about 12% of its samples in session 34's
//!   profile). A long-running engine is more like this one; `standard_mix` stays the
//!   figure the issues' bars are read from.
//! - `best_available_nearly_full/*`: a granted best-available hold (2 together, 4
//!   together, 4 anywhere) on the stadium with ~1% of its seats free, scattered, and four
//!   rows with a run of 4 free. Only the hold is timed (`iter_custom`, an `Instant` pair
//!   around `Engine::apply`); the release that follows it, untimed, gives every iteration
//!   the same venue.
//! - `long_row/hold_confirm_cancel/{100,1000,1000000}`: one row of that many seats; a
//!   best-available hold of 2, its confirm and the booking's cancel, per iteration.
//!
//! Run: `cargo bench -p boxoffice-benches -- --warm-up-time 1 --measurement-time 5`

use boxoffice_benches::{
    fill_stadium_with_runs, record_in, replay, Shape, UserForm, Venues, START_MS,
};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use engine::{Command, EventId, Reply, Request, Selection};
use std::hint::black_box;
use std::time::{Duration, Instant};

const MIX_COMMANDS: usize = 200_000;
const SEED: u64 = 42;

fn standard_mix(c: &mut Criterion) {
    let venues = Venues::standard();
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    for (name, form) in [
        ("standard_mix", UserForm::ById),
        ("standard_mix_by_name", UserForm::ByName),
    ] {
        let log = record_in(&venues, SEED, MIX_COMMANDS, form);
        group.throughput(Throughput::Elements(log.len() as u64));
        group.bench_function(name, |bencher| {
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
    }
    // The warm variant: one log of twice the length, recorded in one go (the generator's
    // holds and users carry on), split in two.
    let both = record_in(&venues, SEED, 2 * MIX_COMMANDS, UserForm::ById);
    let (warm_up, log) = both.split_at(MIX_COMMANDS);
    group.throughput(Throughput::Elements(log.len() as u64));
    group.bench_function("standard_mix_warm", |bencher| {
        bencher.iter_batched(
            || {
                let mut engine = venues.build();
                black_box(replay(&mut engine, warm_up));
                engine
            },
            |mut engine| {
                black_box(replay(&mut engine, log));
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
    // 1% of the seats free, scattered, plus four rows (of 2,000) whose first four seats
    // are free: a hold of 4 together is granted, not refused after a full scan.
    let mut offset = fill_stadium_with_runs(&mut engine, EventId(0), 10, 7, 4);
    let now_ms = engine.now_ms();
    let free: u64 = engine
        .availability(EventId(0))
        .expect("the stadium exists")
        .iter()
        .filter(|category| category.category != "Standing")
        .map(|category| category.free)
        .sum();
    let mut group = c.benchmark_group("best_available_nearly_full");
    group.throughput(Throughput::Elements(1));
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
        // Places the hold (the timed part) and releases it again (untimed), so every
        // iteration searches the same stadium.
        let hold_then_release = |engine: &mut engine::Engine, offset: &mut u64| {
            let started = Instant::now();
            let placed = engine.apply(*offset, now_ms, &hold);
            let elapsed = started.elapsed();
            *offset += 1;
            let Ok(Reply::HoldPlaced(view)) = &placed.result else {
                panic!(
                    "best_available_nearly_full/{name} must be granted: {:?}",
                    placed.result
                )
            };
            let release = Request::new(Command::ReleaseHold {
                user: "buyer".into(),
                hold: view.hold,
            });
            let released = engine.apply(*offset, now_ms, &release);
            assert!(released.result.is_ok(), "{:?}", released.result);
            *offset += 1;
            // The seats as they are (a reference count): formatting them here, every
            // iteration, cost more instructions than the hold and churned the allocator
            // between timed holds; the first iteration's are printed below.
            (elapsed, view.items.clone())
        };
        let (_, granted) = hold_then_release(&mut engine, &mut offset);
        eprintln!(
            "best_available_nearly_full/{name}: {free} of 50000 seats free; granted seats {granted:?}"
        );
        group.bench_function(name, |bencher| {
            bencher.iter_custom(|iterations| {
                (0..iterations)
                    .map(|_| black_box(hold_then_release(&mut engine, &mut offset)).0)
                    .sum::<Duration>()
            })
        });
    }
    group.finish();
}

/// One event of one row of `seats` seats: a best-available hold of 2 together, its confirm
/// and the booking's cancel, timed together (the confirm and the cancel each recount the
/// row's longest run of seats not booked; the hold looks for a run). Rows longer than 64
/// seats are read a word at a time (`SeatBits::each_run`); until session 39 each of those
/// steps built a vector of the row's seat words (4 MB for a row of a million seats).
fn long_row(c: &mut Criterion) {
    let mut group = c.benchmark_group("long_row");
    group.throughput(Throughput::Elements(1));
    for seats in [100u32, 1_000, 1_000_000] {
        let shape = Shape {
            sections: 1,
            rows_per_section: 1,
            seats_per_row: seats,
            premium_sections: 1,
            standing: 0,
        };
        let mut engine = engine::Engine::new(engine::EngineConfig::default());
        let created = engine.apply(
            0,
            START_MS,
            &Request::new(Command::CreateEvent {
                tenant: "bench".into(),
                spec: Box::new(shape.spec("Long row")),
            }),
        );
        let Ok(Reply::EventCreated { event, .. }) = created.result else {
            panic!("{:?}", created.result)
        };
        let mut offset = 1;
        let mut apply = |engine: &mut engine::Engine, command: Command| {
            let outcome = engine.apply(offset, START_MS, &Request::new(command));
            offset += 1;
            outcome.result.expect("granted")
        };
        group.bench_function(format!("hold_confirm_cancel/{seats}"), |bencher| {
            bencher.iter(|| {
                let Reply::HoldPlaced(hold) = apply(
                    &mut engine,
                    Command::PlaceHold {
                        user: "buyer".into(),
                        event,
                        selection: Selection::BestIndexed {
                            quantity: 2,
                            category: None,
                            together: true,
                        },
                        wait: false,
                    },
                ) else {
                    panic!("a hold")
                };
                let Reply::HoldConfirmed(booking) = apply(
                    &mut engine,
                    Command::ConfirmHold {
                        user: "buyer".into(),
                        hold: hold.hold,
                        payment_ref: "pay".into(),
                    },
                ) else {
                    panic!("a booking")
                };
                black_box(apply(
                    &mut engine,
                    Command::CancelBooking {
                        user: "buyer".into(),
                        booking: booking.booking,
                    },
                ))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, standard_mix, best_available_nearly_full, long_row);
criterion_main!(benches);
