//! Service-desk ticket allocation on one thread, straight on `engine::Engine`.
//!
//! 1,000 desks (ten tenants), each with 10 agents, 1-minute slots, an 8 h horizon and
//! the default levels (gold 2 h, silver 4 h, bronze 8 h). Before timing, every desk's
//! first 30 minutes are booked and then every third of those tickets canceled, so the
//! free-slot index holds holes between runs of full slots.
//!
//! - `desks/allocate_1000_desks_8h`: one `CreateDeskTicket` per iteration, round-robin
//!   over the desks, levels in turn; log time moves 6 ms per request, so each desk gets
//!   one request per 6 s, exactly its capacity (10 agents per minute): the booked
//!   frontier stays the same distance ahead of now, past slots keep being pruned, and
//!   every request is granted (checked). Tickets are never removed from the engine, so
//!   every 200,000 requests the engine is replaced, untimed, by one built from a copy of
//!   the prepared state. Throughput is in allocations.
//! - `desks/refuse_full_gold_window`: a gold ticket on a desk whose gold window is full,
//!   refused with `sla_unavailable` (nothing changes, so every iteration is the same).
//!
//! Run: `cargo bench -p boxoffice-benches --bench desks -- --warm-up-time 1 --measurement-time 4`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use engine::{
    Command, DeskId, DeskSpec, DeskTicketId, Engine, EngineConfig, LevelSpec, Rejection, Reply,
    Request,
};
use std::hint::black_box;
use std::time::{Duration, Instant};

const DESKS: u32 = 1_000;
const AGENTS: u32 = 10;
const SLOT_MS: u64 = 60_000;
const HORIZON_MS: u64 = 8 * 3_600_000;
const PREBOOKED_MINUTES: u64 = 30;
const LEVELS: [&str; 3] = ["gold", "silver", "bronze"];
/// Log time per request: one request per desk per 6 s is one desk's capacity.
const STEP_MS: u64 = SLOT_MS / AGENTS as u64 / DESKS as u64;
const REQUESTS_PER_ENGINE: u64 = 200_000;
const T0: u64 = 1_800_000_000_000;

fn spec(index: u32) -> DeskSpec {
    let level = |name: &str, hours: u64| LevelSpec {
        name: name.into(),
        deadline_ms: hours * 3_600_000,
    };
    DeskSpec {
        name: format!("Desk {index}"),
        agents: AGENTS,
        slot_ms: SLOT_MS,
        horizon_ms: HORIZON_MS,
        levels: vec![level("gold", 2), level("silver", 4), level("bronze", 8)],
        hold_ttl_ms: 300_000,
    }
}

/// A desk engine at `T0`, prepared as described above; returns it and the next offset.
fn prepared() -> (Engine, u64) {
    let mut engine = Engine::new(EngineConfig::default());
    let mut offset = 0;
    let mut apply = |engine: &mut Engine, command: Command| {
        let outcome = engine.apply(offset, T0, &Request::new(command));
        offset += 1;
        outcome
    };
    for index in 0..DESKS {
        let outcome = apply(
            &mut engine,
            Command::CreateDesk {
                tenant: format!("tenant-{}", index % 10),
                spec: Box::new(spec(index)),
            },
        );
        assert!(matches!(outcome.result, Ok(Reply::DeskCreated { .. })));
    }
    let mut tickets = Vec::new();
    // One early user per round, so the per-user cap on open tickets never binds.
    for round in 0..PREBOOKED_MINUTES * u64::from(AGENTS) {
        let user = format!("early-{round}");
        for desk in 0..DESKS {
            let outcome = apply(
                &mut engine,
                Command::CreateDeskTicket {
                    user: engine::UserRef::Name(user.clone()),
                    desk: DeskId(desk),
                    level: "bronze".into(),
                    hold_only: false,
                },
            );
            match outcome.result {
                Ok(Reply::DeskTicketCreated(view)) => {
                    tickets.push((view.desk, view.ticket, user.clone()))
                }
                other => panic!("prebooking: {other:?}"),
            }
        }
    }
    for (desk, ticket, user) in tickets.into_iter().step_by(3) {
        let outcome = apply(
            &mut engine,
            Command::CancelDeskTicket {
                user: user.into(),
                desk,
                ticket,
            },
        );
        assert!(matches!(
            outcome.result,
            Ok(Reply::DeskTicketCanceled { .. })
        ));
    }
    (engine, offset)
}

/// One engine's requests, in the order they are sent: round-robin over the desks, levels
/// in turn, each from another user (a user at a desk every 6 s would soon hold more open
/// tickets than the per-user cap allows).
fn requests() -> Vec<Request> {
    (0..REQUESTS_PER_ENGINE)
        .map(|index| {
            Request::new(Command::CreateDeskTicket {
                user: format!("user-{index}").into(),
                desk: DeskId((index % u64::from(DESKS)) as u32),
                level: LEVELS[(index / u64::from(DESKS)) as usize % LEVELS.len()].into(),
                hold_only: false,
            })
        })
        .collect()
}

fn allocate(c: &mut Criterion) {
    const _: () = assert!(STEP_MS == 6, "one request per desk per 6 s");
    let (prepared, prepared_offset) = prepared();
    let requests = requests();
    let fresh = || Engine::from_state(EngineConfig::default(), prepared.state().clone());
    let mut engine = fresh();
    let mut offset = prepared_offset;
    let mut clock_ms = T0;
    let mut sent = 0u64;
    let mut group = c.benchmark_group("desks");
    group.throughput(Throughput::Elements(1));
    group.bench_function("allocate_1000_desks_8h", |bencher| {
        bencher.iter_custom(|iterations| {
            let mut timed = Duration::ZERO;
            let mut done = 0;
            while done < iterations {
                if sent == REQUESTS_PER_ENGINE {
                    engine = fresh();
                    (offset, clock_ms, sent) = (prepared_offset, T0, 0);
                }
                let batch = (iterations - done).min(REQUESTS_PER_ENGINE - sent);
                let mut refused = 0u64;
                let started = Instant::now();
                for _ in 0..batch {
                    clock_ms += STEP_MS;
                    let request = &requests[sent as usize];
                    let outcome = engine.apply(offset, clock_ms, request);
                    refused += u64::from(outcome.result.is_err());
                    black_box(outcome);
                    offset += 1;
                    sent += 1;
                }
                timed += started.elapsed();
                assert_eq!(refused, 0, "every request is granted");
                done += batch;
            }
            timed
        })
    });
    group.finish();
}

fn refuse(c: &mut Criterion) {
    let mut engine = Engine::new(EngineConfig::default());
    let mut offset = 0;
    engine.apply(
        offset,
        T0,
        &Request::new(Command::CreateDesk {
            tenant: "tenant-0".into(),
            spec: Box::new(spec(0)),
        }),
    );
    offset += 1;
    let gold = Request::new(Command::CreateDeskTicket {
        user: "user".into(),
        desk: DeskId(0),
        level: "gold".into(),
        hold_only: false,
    });
    let mut last = DeskTicketId(0);
    loop {
        // Other users fill the window: the per-user cap must not be what refuses.
        let filler = Request::new(Command::CreateDeskTicket {
            user: format!("filler-{}", last.0).into(),
            desk: DeskId(0),
            level: "gold".into(),
            hold_only: false,
        });
        let outcome = engine.apply(offset, T0, &filler);
        offset += 1;
        match outcome.result {
            Ok(Reply::DeskTicketCreated(view)) => last = view.ticket,
            Err(Rejection::SlaUnavailable { .. }) => break,
            other => panic!("filling: {other:?}"),
        }
    }
    assert_eq!(last.0, 120 * u64::from(AGENTS), "the gold window is full");
    let refused = engine.apply(offset, T0, &gold);
    offset += 1;
    assert!(
        matches!(refused.result, Err(Rejection::SlaUnavailable { .. })),
        "{refused:?}"
    );
    let mut group = c.benchmark_group("desks");
    group.throughput(Throughput::Elements(1));
    group.bench_function("refuse_full_gold_window", |bencher| {
        bencher.iter(|| {
            let outcome = engine.apply(offset, T0, &gold);
            offset += 1;
            assert!(outcome.result.is_err());
            black_box(outcome)
        })
    });
    group.finish();
}

criterion_group!(benches, allocate, refuse);
criterion_main!(benches);
