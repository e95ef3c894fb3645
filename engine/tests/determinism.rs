//! Determinism across processes: the same log applied in two separate processes gives
//! identical outcomes and an identical `state_hash`, equal to the in-process run.
//!
//! The test re-executes its own binary (`std::env::current_exe()`) with
//! `BOXOFFICE_DETERMINISM_CHILD` set, selecting `child_replays_the_log`, which prints
//! one report line (a digest of every encoded outcome plus the final state hash) to
//! stdout. The second child also sets `BOXOFFICE_DETERMINISM_PERTURB`, which scatters
//! the heap and applies the log on a spawned thread, so nothing that depends on
//! addresses, allocation order or the thread can go unnoticed.
//!
//! The log is generated open-loop from a seed (no feedback from outcomes) and fed as
//! wire bytes, like the runtime does: events of every kind, exact and best-available
//! holds (with `wait`), confirms, releases, cancels, waitlist joins and leaves,
//! check-ins with genuine codes, event updates and cancels, desk tickets, ticks,
//! idempotent repeats, records stamped in the past, and undecodable garbage.

mod common;

use common::{festival, theatre, T0};
use engine::*;
use std::process::Command as Process;

const CHILD: &str = "BOXOFFICE_DETERMINISM_CHILD";
const PERTURB: &str = "BOXOFFICE_DETERMINISM_PERTURB";
const SEEDS: [u64; 3] = [1, 0x5eed, 0xdead_beef];
const RECORDS: usize = 4_000;
const USERS: [&str; 4] = ["ann", "bob", "cat", "dan"];

/// splitmix64: small, fast and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn mixed_event() -> EventSpec {
    let mut spec = theatre(4, 6);
    spec.categories = vec![
        CategorySpec {
            name: "Gold".into(),
            price_cents: 9_000,
        },
        CategorySpec {
            name: "Floor".into(),
            price_cents: 2_000,
        },
    ];
    for row in &mut spec.sections[0].rows {
        row.category = "Gold".into();
    }
    spec.general_admission = vec![PoolSpec {
        category: "Floor".into(),
        capacity: 20,
    }];
    spec.seats_per_user_max = Some(8);
    spec
}

/// The log: (time stamp, record bytes).
fn generate(seed: u64, count: usize) -> Vec<(u64, Vec<u8>)> {
    let mut rng = Rng(seed);
    let mut log = Vec::with_capacity(count);
    let mut clock_ms = T0;
    let events: [(&str, EventSpec, u32, u32); 4] = [
        (
            "t1",
            EventSpec {
                hold_ttl_ms: 60_000,
                ..theatre(10, 12)
            },
            10,
            12,
        ),
        (
            "t1",
            EventSpec {
                hold_ttl_ms: 30_000,
                ..festival(40)
            },
            0,
            0,
        ),
        ("t2", mixed_event(), 4, 6),
        (
            "t2",
            EventSpec {
                waitlist_policy: WaitlistPolicy::SkipAhead,
                hold_ttl_ms: 20_000,
                ..theatre(2, 3)
            },
            2,
            3,
        ),
    ];
    for (tenant, spec, _, _) in &events {
        log.push((
            clock_ms,
            wire::encode_request(&Request::new(Command::CreateEvent {
                tenant: (*tenant).into(),
                spec: Box::new(spec.clone()),
            })),
        ));
    }
    let desk = DeskSpec {
        name: "Help".into(),
        agents: 2,
        slot_ms: 60_000,
        horizon_ms: 7_200_000,
        levels: vec![
            LevelSpec {
                name: "Gold".into(),
                deadline_ms: 900_000,
            },
            LevelSpec {
                name: "Std".into(),
                deadline_ms: 3_600_000,
            },
        ],
        hold_ttl_ms: 30_000,
    };
    log.push((
        clock_ms,
        wire::encode_request(&Request::new(Command::CreateDesk {
            tenant: "t1".into(),
            spec: Box::new(desk),
        })),
    ));
    let (mut holds_issued, mut confirms_issued, mut waiters_issued, mut desk_tickets_issued) =
        (0u64, 0u64, 0u64, 0u64);
    let mut keyed: Vec<Request> = Vec::new();
    while log.len() < count {
        clock_ms += match rng.below(100) {
            0..=59 => rng.below(300),
            60..=94 => rng.below(3_000),
            _ => 25_000 + rng.below(50_000),
        };
        let stamp_ms = if rng.chance(2) {
            clock_ms - rng.below(100_000)
        } else {
            clock_ms
        };
        let user = rng.pick(&USERS).to_string();
        let event_index = rng.below(events.len() as u64 + 1) as u32;
        let (tenant, _, rows, seats) =
            events
                .get(event_index as usize)
                .cloned()
                .unwrap_or(("t1", theatre(1, 1), 1, 1));
        let category = match event_index {
            2 => (*rng.pick(&[None, Some("Gold"), Some("Floor")])).map(String::from),
            _ => None,
        };
        let command = match rng.below(100) {
            0..=19 => {
                let labels = (0..1 + rng.below(3))
                    .map(|_| {
                        format!(
                            "A-{}-{}",
                            1 + rng.below(u64::from(rows) + 1),
                            1 + rng.below(u64::from(seats) + 1)
                        )
                    })
                    .collect();
                holds_issued += 1;
                Command::PlaceHold {
                    user: user.into(),
                    event: EventId(event_index),
                    selection: Selection::Seats(labels),
                    wait: false,
                }
            }
            20..=37 => {
                holds_issued += 1;
                let selection = Selection::Best {
                    quantity: 1 + rng.below(4) as u32,
                    category,
                    together: rng.chance(50),
                };
                Command::PlaceHold {
                    user: user.into(),
                    event: EventId(event_index),
                    selection,
                    wait: rng.chance(20),
                }
            }
            38..=52 => {
                confirms_issued += 1;
                Command::ConfirmHold {
                    user: user.into(),
                    hold: HoldId(1 + rng.below(holds_issued + 2)),
                    payment_ref: format!("pay-{}", rng.below(1_000)),
                }
            }
            53..=58 => Command::ReleaseHold {
                user: user.into(),
                hold: HoldId(1 + rng.below(holds_issued + 2)),
            },
            59..=62 => Command::CancelBooking {
                user: user.into(),
                booking: BookingId(1 + rng.below(confirms_issued / 3 + 1)),
            },
            63..=67 => {
                waiters_issued += 1;
                Command::JoinWaitlist {
                    user: user.into(),
                    event: EventId(event_index),
                    quantity: 1 + rng.below(3) as u32,
                    category,
                    together: rng.chance(30),
                }
            }
            68..=69 => Command::LeaveWaitlist {
                user: user.into(),
                waiter: WaiterId(1 + rng.below(waiters_issued + 1)),
            },
            70..=72 => {
                let ticket = TicketId {
                    booking: BookingId(1 + rng.below(confirms_issued / 3 + 1)),
                    index: 1 + rng.below(3) as u32,
                };
                Command::CheckIn {
                    tenant: tenant.into(),
                    event: EventId(event_index),
                    code: tickets::code(b"demo-ticket-secret", ticket),
                }
            }
            73 => {
                let patch = EventPatch {
                    waitlist_policy: Some(
                        *rng.pick(&[WaitlistPolicy::Strict, WaitlistPolicy::SkipAhead]),
                    ),
                    seats_per_user_max: rng
                        .chance(50)
                        .then(|| rng.pick(&[None, Some(4), Some(0)]).to_owned()),
                    ..EventPatch::default()
                };
                Command::UpdateEvent {
                    tenant: tenant.into(),
                    event: EventId(event_index),
                    patch: Box::new(patch),
                }
            }
            74 if rng.chance(10) => Command::CancelEvent {
                tenant: tenant.into(),
                event: EventId(event_index),
            },
            75..=77 => {
                desk_tickets_issued += 1;
                Command::CreateDeskTicket {
                    user: user.into(),
                    desk: DeskId(rng.below(2) as u32),
                    level: rng.pick(&["Gold", "Std", "Nope"]).to_string(),
                    hold_only: rng.chance(50),
                }
            }
            78 => Command::ConfirmDeskTicket {
                user: user.into(),
                desk: DeskId(0),
                ticket: DeskTicketId(1 + rng.below(desk_tickets_issued + 1)),
            },
            79 => Command::CancelDeskTicket {
                user: user.into(),
                desk: DeskId(0),
                ticket: DeskTicketId(1 + rng.below(desk_tickets_issued + 1)),
            },
            80..=83 if !keyed.is_empty() => {
                let repeat = rng.pick(&keyed).clone();
                log.push((stamp_ms, wire::encode_request(&repeat)));
                continue;
            }
            84..=85 => {
                let mut garbage: Vec<u8> = (0..rng.below(40)).map(|_| rng.next() as u8).collect();
                if rng.chance(50) {
                    garbage.insert(0, wire::VERSION);
                }
                log.push((stamp_ms, garbage));
                continue;
            }
            _ => Command::Tick,
        };
        let request = if rng.chance(15) {
            Request::with_key(command, format!("k{}", rng.below(50)))
        } else {
            Request::new(command)
        };
        if request.idempotency_key.is_some() {
            keyed.push(request.clone());
        }
        log.push((stamp_ms, wire::encode_request(&request)));
    }
    log
}

/// What one run of the log gives: a digest of every encoded outcome, the final state
/// hash, and counts that show the log exercised the engine.
#[derive(Debug, PartialEq, Eq)]
struct Report {
    outcomes: String,
    state: String,
    accepted: usize,
    rejected: usize,
}

impl Report {
    fn line(&self, seed: u64) -> String {
        format!(
            "determinism-report seed={seed} outcomes={} state={} accepted={} rejected={}",
            self.outcomes, self.state, self.accepted, self.rejected
        )
    }

    fn parse(stdout: &str, seed: u64) -> Report {
        let prefix = format!("determinism-report seed={seed} ");
        // The test harness may print "test ... " on the same line before ours.
        let line = stdout
            .lines()
            .find_map(|line| {
                line.find(&prefix)
                    .map(|start| &line[start + prefix.len()..])
            })
            .unwrap_or_else(|| {
                panic!("no report for seed {seed} in the child's output:\n{stdout}")
            });
        let field = |name: &str| {
            line.split(' ')
                .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name} in {line}"))
                .to_string()
        };
        Report {
            outcomes: field("outcomes"),
            state: field("state"),
            accepted: field("accepted").parse().unwrap(),
            rejected: field("rejected").parse().unwrap(),
        }
    }
}

fn replay(log: &[(u64, Vec<u8>)]) -> Report {
    let mut engine = Engine::new(EngineConfig::default());
    let mut digest = blake3::Hasher::new();
    let (mut accepted, mut rejected) = (0, 0);
    for (offset, (time_ms, bytes)) in log.iter().enumerate() {
        let outcome = match wire::decode_request(bytes) {
            Ok(request) => engine.apply(offset as u64, *time_ms, &request),
            Err(reason) => engine.apply_undecodable(offset as u64, *time_ms, &reason),
        };
        if outcome.result.is_ok() {
            accepted += 1;
        } else {
            rejected += 1;
        }
        digest.update(&wire::encode_outcome_body(&engine.named(outcome)));
    }
    engine.check_invariants();
    Report {
        outcomes: digest.finalize().to_hex().to_string(),
        state: engine.state_hash_hex(),
        accepted,
        rejected,
    }
}

/// Allocates and frees blocks of scattered sizes and keeps some, so the child's heap
/// looks nothing like the other process's.
fn perturb_heap() -> Vec<Vec<u8>> {
    let mut rng = Rng(std::process::id().into());
    let mut kept = Vec::new();
    for round in 0..2_000 {
        let block = vec![round as u8; 1 + rng.below(4_096) as usize];
        if rng.chance(30) {
            kept.push(block);
        }
    }
    kept
}

/// The child's side. Run directly (without the environment variable) it replays the
/// logs in this process and checks that they exercised the engine both ways.
#[test]
fn child_replays_the_log() {
    let child = std::env::var_os(CHILD).is_some();
    let perturb = std::env::var_os(PERTURB).is_some();
    let _kept = perturb.then(perturb_heap);
    for seed in SEEDS {
        let log = generate(seed, RECORDS);
        let report = if perturb {
            std::thread::Builder::new()
                .stack_size(8 << 20)
                .spawn(move || replay(&log))
                .unwrap()
                .join()
                .unwrap()
        } else {
            replay(&log)
        };
        if child {
            println!("{}", report.line(seed));
        }
        assert_eq!(report.accepted + report.rejected, RECORDS);
        assert!(
            report.accepted > RECORDS / 5 && report.rejected > RECORDS / 10,
            "the log should exercise both paths: {report:?}"
        );
    }
}

fn run_child(perturb: bool) -> String {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let mut process = Process::new(exe);
    process
        .args([
            "child_replays_the_log",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1");
    if perturb {
        process.env(PERTURB, "1");
    } else {
        process.env_remove(PERTURB);
    }
    let output = process.output().expect("the test binary runs");
    let stdout = String::from_utf8(output.stdout).expect("utf-8 output");
    assert!(
        output.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn two_processes_give_identical_outcomes_and_state_hash() {
    if std::env::var_os(CHILD).is_some() {
        return; // a child runs only `child_replays_the_log`; never recurse
    }
    let first = run_child(false);
    let second = run_child(true);
    for seed in SEEDS {
        let in_process = replay(&generate(seed, RECORDS));
        let (first, second) = (Report::parse(&first, seed), Report::parse(&second, seed));
        assert_eq!(first, second, "seed {seed}: two processes disagree");
        assert_eq!(
            first, in_process,
            "seed {seed}: a child disagrees with the in-process run"
        );
    }
    // Different logs give different digests: the comparison above is not vacuous.
    assert_ne!(
        Report::parse(&first, SEEDS[0]).outcomes,
        Report::parse(&first, SEEDS[1]).outcomes
    );
}

#[test]
fn the_log_generator_is_itself_deterministic_and_seed_sensitive() {
    assert_eq!(generate(7, 500), generate(7, 500));
    assert_ne!(generate(7, 500), generate(8, 500));
}

/// The state's canonical encoding is part of the snapshot format and of every replica's
/// state hash: a change of representation (such as the persistent maps the state uses so a
/// snapshot copy costs O(1)) must not change a single byte. Pinned from the `BTreeMap`
/// representation; changing it on purpose is a snapshot format change. Re-pinned (state
/// version 2) when the state gained the configuration stamp, holds their due time,
/// waiters kept only what they could use (per-row open runs, waiter counts per need and
/// per user, open desk tickets per user), and idempotency entries were keyed by their
/// stamp's digest with the request's fingerprint (outcomes carry the stamp). Re-pinned
/// (state version 3) when users were interned to dense ids: the outcomes digest did not
/// move (the same decisions, record for record), only the state's encoding. The outcomes
/// digest was re-pinned (outcome version 3) when confirmations stopped carrying their
/// ticket list and codes (both follow from the booking; the read side derives them); the state hash did not move, nor did any decision
/// (`boxoffice_benches::decided`, old engine against new). Re-pinned (state version 4)
/// for 4-byte seat words naming hold slots: the outcomes digest did not move. Re-pinned
/// (state version 5) for arrival windows: every event encodes its (absent) draw, every
/// waiter its place in its queue, the state its pending draws; the log has no draw, and
/// the outcomes digest did not move. Re-pinned (state version 6) for events' terms of
/// sale: every event encodes its (absent) terms; the outcomes digest did not move.
/// Re-pinned (state version 7) when the engine's outcomes, and the answers its idempotency
/// window stores, named users by number: the digest of the outcomes, named as the
/// publisher names them, did not move (the same bytes on the outcomes log). The outcomes
/// digest re-pinned (outcome version 4) when every outcome came to encode how many of its
/// effects came before its reply; the state hash did not move (seat accounting moved into
/// `ledger`, its fields encoded where they were), and `engine_equivalence`, which renders
/// outcomes without that count, printed the same decisions.
#[test]
fn the_state_hash_of_a_fixed_log_is_pinned() {
    let report = replay(&generate(SEEDS[1], RECORDS));
    assert_eq!(
        (report.state.as_str(), report.outcomes.as_str()),
        (
            "e45f5c959c014a256bd59a946cee86e07b89fe1617edf5c77cd6a20c976b052f",
            "a9c78a6e1d0b9be7edc3a06c047fc7f6fd61550601ee1339bb7c1e22e6a1aa74"
        )
    );
}

/// A log that keeps the idempotency window and the waitlist queues wide: every request is
/// keyed (about 3,000 keys live at once, the oldest forgotten by time, a few repeated), and
/// thousands of waiters queue in three queues of one sold-out event (joining, leaving,
/// served as holds are released or expire). Generated closed-loop (it learns waiter and
/// hold ids from the engine's answers) so that leaves and releases hit.
fn wide_log(count: usize) -> Vec<(u64, Vec<u8>)> {
    let mut rng = Rng(0x91de);
    let mut engine = Engine::new(EngineConfig::default());
    let mut log: Vec<(u64, Vec<u8>)> = Vec::with_capacity(count);
    let mut clock_ms = T0;
    let mut keyed: Vec<Request> = Vec::new();
    let mut waiters: Vec<(WaiterId, String)> = Vec::new();
    let mut holds: Vec<(HoldId, String)> = Vec::new();
    let mut users_of_waiters = std::collections::BTreeMap::new();
    let (mut longest_queue, mut replayed) = (0, 0);
    let mut spec = mixed_event();
    spec.seats_per_user_max = None;
    let create = Request::with_key(
        Command::CreateEvent {
            tenant: "t1".into(),
            spec: Box::new(spec),
        },
        "create",
    );
    while log.len() < count {
        let index = log.len();
        clock_ms += 100;
        let user = format!("u{}", rng.below(3_000));
        let category = (*rng.pick(&[None, Some("Gold"), Some("Floor")])).map(String::from);
        let request = if index == 0 {
            create.clone()
        } else if rng.chance(4) && !keyed.is_empty() {
            // A repeat: the same request (answered from the window while its key is
            // there), or another one under its key.
            let mut repeat = rng.pick(&keyed).clone();
            if rng.chance(30) {
                repeat.command = Command::Tick;
            }
            repeat
        } else {
            let command = match rng.below(100) {
                0..=14 => Command::PlaceHold {
                    user: user.into(),
                    event: EventId(0),
                    selection: Selection::Best {
                        quantity: 1 + rng.below(2) as u32,
                        category,
                        together: false,
                    },
                    wait: rng.chance(20),
                },
                15..=69 => Command::JoinWaitlist {
                    user: user.into(),
                    event: EventId(0),
                    quantity: 1 + rng.below(2) as u32,
                    category,
                    together: rng.chance(20),
                },
                70..=79 if !waiters.is_empty() => {
                    let (waiter, user) =
                        waiters.swap_remove(rng.below(waiters.len() as u64) as usize);
                    Command::LeaveWaitlist {
                        user: user.into(),
                        waiter,
                    }
                }
                80..=89 if !holds.is_empty() => {
                    let (hold, user) = holds.swap_remove(rng.below(holds.len() as u64) as usize);
                    Command::ReleaseHold {
                        user: user.into(),
                        hold,
                    }
                }
                _ => Command::Tick,
            };
            Request::with_key(command, format!("w{index}"))
        };
        if index > 0 && request.idempotency_key.as_deref() == Some(&format!("w{index}")) {
            keyed.push(request.clone());
        }
        let bytes = wire::encode_request(&request);
        let outcome = engine.apply(index as u64, clock_ms, &request);
        let outcome = engine.named(outcome);
        replayed += usize::from(outcome.replayed);
        if !outcome.replayed {
            match &outcome.result {
                Ok(Reply::HoldPlaced(view)) => holds.push((view.hold, view.user.to_string())),
                Ok(Reply::WaitlistJoined {
                    waiter,
                    user,
                    position,
                    ..
                })
                | Ok(Reply::Waitlisted {
                    waiter,
                    user,
                    position,
                    ..
                }) => {
                    longest_queue = longest_queue.max(*position);
                    waiters.push((*waiter, user.to_string()));
                    users_of_waiters.insert(*waiter, user.to_string());
                }
                _ => {}
            }
        }
        for effect in &outcome.effects {
            if let Effect::WaitlistOffered { waiter, hold } = effect {
                holds.push((hold.hold, users_of_waiters[waiter].clone()));
            }
        }
        log.push((clock_ms, bytes));
    }
    engine.check_invariants();
    // Queues past a chunk of waiters (512), repeats answered from the window.
    assert!(
        longest_queue > 1_000 && replayed > 50,
        "{longest_queue} {replayed}"
    );
    log
}

/// The idempotency window and the waitlist queues left `imbl`'s persistent maps for
/// copy-on-write chunks (`engine::chunked`); their encoding must not move by a byte. The
/// state hash of `wide_log` was pinned with the `imbl` engine (commit ca6d41d): about
/// 3,000 keys in the window (several chunks of it and of its index), queues of
/// hundreds of waiters (several chunks each). Re-pinned (state version 7) when the
/// window's stored answers named users by number; the outcomes digest did not move.
/// The outcomes digest re-pinned for outcome version 4 (`effects_before_reply`); the state
/// hashes did not move.
#[test]
fn the_state_hash_of_a_wide_window_and_long_queues_is_pinned() {
    let log = wide_log(12_000);
    let report = replay(&log);
    // The hash along the way, and each state through a snapshot's encoding and back.
    let mut engine = Engine::new(EngineConfig::default());
    let mut hashes = Vec::new();
    for (offset, (time_ms, bytes)) in log.iter().enumerate() {
        engine.apply(
            offset as u64,
            *time_ms,
            &wire::decode_request(bytes).unwrap(),
        );
        if (offset + 1) % 3_000 == 0 {
            let encoded = snapshot::encode_state(engine.state());
            let decoded = snapshot::decode_state(&encoded).unwrap();
            assert_eq!(&decoded, engine.state());
            assert_eq!(snapshot::encode_state(&decoded), encoded);
            hashes.push(engine.state_hash_hex()[..16].to_string());
        }
    }
    assert_eq!(
        (report.state.as_str(), report.outcomes.as_str(), hashes),
        (
            "62a15c8171a5f63185dff56d051caa59a8cd00e9773d5548a38e340f3c068554",
            "7f3e6480382cf027d1996fe93071571cd9b476fd56be70c99647ab5980394e9a",
            vec![
                "183d0c8a93d0a54c".to_string(),
                "6aa3f1c11e2e412b".into(),
                "ec6780d30dfac59e".into(),
                "62a15c8171a5f631".into(),
            ]
        )
    );
}
