//! Replay, snapshot and restart figures on a generated log (see BENCHMARKS.md).
//!
//! ```text
//! cargo run --release -p runtime --example workload_bench -- fill <dir> <events> <seats per event> <records> <ticks|mixed> [--keys]
//!     appends a workload to <dir>/requests (then: boxoffice replay --data-dir <dir>)
//! cargo run --release -p runtime --example workload_bench -- snapshot <dir> <events> <seats per event> <holds> [--keys] [--keyed=N] [--waiters=N]
//!     fills <dir> with events and holds (every other one confirmed), runs the runtime until
//!     it has written one snapshot of the whole state, and prints the engine's pause, the
//!     encode and write times and the size; then restarts from it and prints the times.
//!     `--keyed=N` appends N keyed requests that change nothing but the idempotency window
//!     (releases of a hold that does not exist, each refused and its answer kept): with
//!     N = 2,000,000 the window is full (`idempotency_entries_max`) at the snapshot;
//!     `--waiters=N` adds N users waiting for sold-out events of 10,000 seats (as many
//!     events as `waitlist_length_max` asks)
//! ```

use engine::{
    CategorySpec, Command, EngineConfig, EventId, EventSpec, HoldId, Request, RowSpec, SectionSpec,
    Selection, WaitlistPolicy,
};
use requestlog::{EmbeddedLog, EmbeddedOptions, LogWriter};
use runtime::{Logs, OpenLog, Runtime, RuntimeOptions};
use snapshotter::{RocksStore, RocksStoreOptions};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SEATS_PER_ROW: u32 = 1_000;
const ROWS_PER_SECTION: u32 = 10;

/// `seats` (a multiple of 10,000) in sections of 10 rows of 1,000 seats. (Long rows: the
/// 256 KiB decode limit of a record (`engine::wire`) counts about 70 bytes per row of a
/// `CreateEvent`, so an event has at most about 3,600 rows.)
fn event_spec(seats: u32) -> EventSpec {
    let sections = seats / (SEATS_PER_ROW * ROWS_PER_SECTION);
    EventSpec {
        name: "Stadium".into(),
        description: String::new(),
        city: "Lyon".into(),
        country: "FR".into(),
        venue: "Stadium".into(),
        starts_at_ms: u64::MAX / 2,
        ends_at_ms: None,
        sales_open_at_ms: None,
        sales_close_at_ms: None,
        hold_ttl_ms: 3_600_000,
        seats_per_order_max: 10,
        seats_per_user_max: None,
        waitlist_policy: WaitlistPolicy::Strict,
        categories: vec![
            CategorySpec {
                name: "Gold".into(),
                price_cents: 9_000,
            },
            CategorySpec {
                name: "Standard".into(),
                price_cents: 5_000,
            },
        ],
        sections: (0..sections)
            .map(|section| SectionSpec {
                name: format!("S{section}"),
                rows: (0..ROWS_PER_SECTION)
                    .map(|row| RowSpec {
                        label: row.to_string(),
                        seats: SEATS_PER_ROW,
                        category: if section < sections / 5 {
                            "Gold".into()
                        } else {
                            "Standard".into()
                        },
                    })
                    .collect(),
            })
            .collect(),
        general_admission: vec![],
    }
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

fn request(command: Command, keys: bool, index: u64) -> Vec<u8> {
    let request = if keys {
        Request::with_key(command, format!("key-{index}"))
    } else {
        Request::new(command)
    };
    engine::wire::encode_request(&request)
}

fn append_all(writer: &dyn LogWriter, records: impl Iterator<Item = Vec<u8>>) -> u64 {
    let mut batch = Vec::new();
    let mut count = 0;
    for record in records {
        batch.push(record);
        if batch.len() == 4_096 {
            count += batch.len() as u64;
            writer.append(std::mem::take(&mut batch)).unwrap();
        }
    }
    count += batch.len() as u64;
    writer.append(batch).unwrap();
    count
}

fn open(dir: &Path, name: &str) -> Arc<EmbeddedLog> {
    Arc::new(EmbeddedLog::open(dir.join(name), EmbeddedOptions::default()).unwrap())
}

fn create_events(events: u32, seats: u32, keys: bool) -> impl Iterator<Item = Vec<u8>> {
    (0..events).map(move |event| {
        request(
            Command::CreateEvent {
                tenant: "demo".into(),
                spec: Box::new(event_spec(seats)),
            },
            keys,
            u64::from(event),
        )
    })
}

/// `dir` may be `kafka://HOST:PORT/TOPIC`: the records go to that topic instead (replay
/// it with `BOXOFFICE_LOG_KIND=kafka BOXOFFICE_KAFKA_REQUESTS_TOPIC=TOPIC boxoffice replay`).
fn fill(dir: &Path, events: u32, seats: u32, records: u64, mixed: bool, keys: bool) {
    let writer: Arc<dyn LogWriter> = match dir.to_str().and_then(|dir| dir.strip_prefix("kafka://"))
    {
        Some(target) => {
            let (brokers, topic) = target.split_once('/').expect("kafka://HOST:PORT/TOPIC");
            let mut options = requestlog::KafkaOptions::new(brokers, topic);
            options.append_records_max = 8192;
            Arc::new(
                requestlog::KafkaLog::open(options)
                    .unwrap()
                    .writer()
                    .unwrap(),
            )
        }
        None => Arc::new(open(dir, "requests").writer()),
    };
    let started = Instant::now();
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut placed = 0u64;
    let workload = (0..records).map(move |index| {
        let command = if !mixed {
            Command::Tick
        } else {
            let user = format!("user{}", rng.below(100_000));
            let event = EventId(rng.below(u64::from(events)) as u32);
            match rng.below(20) {
                0..=11 => {
                    placed += 1;
                    Command::PlaceHold {
                        user: user.into(),
                        event,
                        selection: Selection::Best {
                            quantity: 1 + rng.below(4) as u32,
                            category: None,
                            together: true,
                        },
                        wait: false,
                    }
                }
                12..=16 => Command::ConfirmHold {
                    user: user.into(),
                    hold: HoldId(placed.saturating_sub(rng.below(1_000)).max(1)),
                    payment_ref: "pay".into(),
                },
                17..=18 => Command::ReleaseHold {
                    user: user.into(),
                    hold: HoldId(placed.saturating_sub(rng.below(1_000)).max(1)),
                },
                _ => Command::Tick,
            }
        };
        request(command, keys, 1_000 + index)
    });
    let count = append_all(
        writer.as_ref(),
        create_events(events, seats, keys).chain(workload),
    );
    println!(
        "appended {count} records in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn options(records: u64) -> RuntimeOptions {
    RuntimeOptions {
        snapshot_every_records: records,
        snapshot_every_ms: 3_600_000,
        idle_hash_every_ms: 3_600_000,
        ..RuntimeOptions::new(EngineConfig::default())
    }
}

fn snapshot(dir: &Path, events: u32, seats: u32, holds: u64, keys: bool, keyed: u64, waiters: u64) {
    let (requests, outcomes) = (open(dir, "requests"), open(dir, "outcomes"));
    let writer = requests.writer();
    let started = Instant::now();
    let workload = (1..=holds).flat_map(move |hold| {
        let user = format!("user{}", hold % 100_000);
        let place = request(
            Command::PlaceHold {
                user: engine::UserRef::Name(user.clone()),
                event: EventId((hold % u64::from(events)) as u32),
                selection: Selection::Best {
                    quantity: 4,
                    category: None,
                    together: true,
                },
                wait: false,
            },
            keys,
            2 * hold,
        );
        let confirm = (hold % 2 == 0).then(|| {
            request(
                Command::ConfirmHold {
                    user: user.into(),
                    hold: HoldId(hold),
                    payment_ref: "pay".into(),
                },
                keys,
                2 * hold + 1,
            )
        });
        std::iter::once(place).chain(confirm)
    });
    let refused = (0..keyed).map(|index| {
        request(
            Command::ReleaseHold {
                user: format!("user{}", index % 100_000).into(),
                hold: HoldId(1 << 40),
            },
            true,
            1_000_000_000 + index,
        )
    });
    // A crowd: events sold out by 2,500 holds of 4 each, then `waiters` users waiting,
    // `waitlist_length_max` per event.
    let per_event = u64::from(EngineConfig::default().waitlist_length_max);
    let crowd_events = waiters.div_ceil(per_event);
    let crowd_event = move |index: u64| EventId(events + index as u32);
    let crowd = (0..crowd_events)
        .flat_map(move |event| {
            let create = request(
                Command::CreateEvent {
                    tenant: "demo".into(),
                    spec: Box::new(event_spec(10_000)),
                },
                keys,
                3_000_000_000 + event,
            );
            let fill = (0..2_500).map(move |index| {
                request(
                    Command::PlaceHold {
                        user: format!("filler{event}-{index}").into(),
                        event: crowd_event(event),
                        selection: Selection::Best {
                            quantity: 4,
                            category: None,
                            together: false,
                        },
                        wait: false,
                    },
                    keys,
                    3_100_000_000 + event * 10_000 + index,
                )
            });
            std::iter::once(create).chain(fill)
        })
        .chain((0..waiters).map(move |index| {
            request(
                Command::JoinWaitlist {
                    user: format!("waiter{index}").into(),
                    event: crowd_event(index / per_event),
                    quantity: 2,
                    category: None,
                    together: false,
                },
                keys,
                4_000_000_000 + index,
            )
        }));
    let count = append_all(
        &writer,
        create_events(events, seats, keys)
            .chain(workload)
            .chain(refused)
            .chain(crowd),
    );
    println!(
        "appended {count} records in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let end = writer.end_offset().unwrap();

    let store =
        || Box::new(RocksStore::open(dir.join("snapshots"), RocksStoreOptions::default()).unwrap());
    let logs = || Logs {
        requests: Arc::clone(&requests) as Arc<dyn OpenLog>,
        outcomes: Arc::clone(&outcomes) as Arc<dyn OpenLog>,
    };
    let started = Instant::now();
    let runtime = Runtime::start(options(end), logs(), store()).unwrap();
    let (status, done) = runtime
        .handle()
        .wait_for(Duration::from_secs(3_600), |status| {
            status.caught_up() && status.log_end_offset >= end
        });
    assert!(done, "{status:?}");
    let applied_s = started.elapsed().as_secs_f64();
    let (status, written) = runtime
        .handle()
        .wait_for(Duration::from_secs(3_600), |status| {
            status
                .last_snapshot
                .as_ref()
                .is_some_and(|snapshot| snapshot.offset + 1 == end)
        });
    assert!(written, "{status:?}");
    runtime.shutdown().unwrap();
    let snapshot = status.last_snapshot.unwrap();
    println!("applied {end} records from scratch in {applied_s:.2} s ({:.0} records/s, publishing included)", end as f64 / applied_s);
    println!(
        "snapshot of {} seats: engine pause {} us, encode+hash {} ms, write {} ms, {:.1} MB",
        u64::from(events) * u64::from(seats),
        snapshot.pause_us,
        snapshot.encode_ms,
        snapshot.write_ms,
        snapshot.state_bytes as f64 / 1e6
    );

    // Restart: load (read, checksum, decode, rebuild, hash check), then nothing to replay.
    let started = Instant::now();
    let current_log = snapshotter::CurrentLog {
        log_id: requests.log_id().to_string(),
        end_offset: requests.end_offset(),
    };
    let recovery =
        snapshotter::load_newest(store().as_ref(), &EngineConfig::default(), &current_log).unwrap();
    let load_s = started.elapsed().as_secs_f64();
    let engine = recovery.loaded.unwrap().engine;
    let mut clones = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let copy = engine.state().clone();
        clones.push(started.elapsed().as_micros());
        drop(copy);
    }
    clones.sort_unstable();
    drop(engine);
    println!("load_newest {load_s:.2} s; State::clone us (5 runs, sorted) {clones:?}");
    let started = Instant::now();
    let runtime = Runtime::start(options(u64::MAX), logs(), store()).unwrap();
    let started_s = started.elapsed().as_secs_f64();
    let (status, done) = runtime
        .handle()
        .wait_for(Duration::from_secs(3_600), |status| {
            status.caught_up() && status.published_all()
        });
    assert!(done, "{status:?}");
    println!(
        "restart: Runtime::start {started_s:.2} s, caught up and published after {:.2} s",
        started.elapsed().as_secs_f64()
    );
    runtime.shutdown().unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let keys = args.iter().any(|arg| arg == "--keys");
    let keyed: u64 = args
        .iter()
        .find_map(|arg| arg.strip_prefix("--keyed="))
        .map_or(0, |count| count.parse().unwrap());
    let waiters: u64 = args
        .iter()
        .find_map(|arg| arg.strip_prefix("--waiters="))
        .map_or(0, |count| count.parse().unwrap());
    let args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|arg| {
            *arg != "--keys" && !arg.starts_with("--keyed=") && !arg.starts_with("--waiters=")
        })
        .collect();
    match args.as_slice() {
        [_, "fill", dir, events, seats, records, mix] => fill(
            Path::new(dir),
            events.parse().unwrap(),
            seats.parse().unwrap(),
            records.parse().unwrap(),
            *mix == "mixed",
            keys,
        ),
        [_, "snapshot", dir, events, seats, holds] => snapshot(
            Path::new(dir),
            events.parse().unwrap(),
            seats.parse().unwrap(),
            holds.parse().unwrap(),
            keys,
            keyed,
            waiters,
        ),
        _ => {
            eprintln!("usage: see the top of runtime/examples/workload_bench.rs");
            std::process::exit(2);
        }
    }
}
