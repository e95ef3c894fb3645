//! The arrival window's draw (issue 23): entries, commit–reveal, the fallback seed, and
//! the published order recomputed outside the engine.

mod common;

use common::*;
use engine::draw::{self, DrawSeedSource, DrawSpec};
use engine::*;
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

const OPEN_MS: u64 = T0 + 60_000;
const WINDOW_MS: u64 = 30_000;
const SEED: [u8; 32] = [7; 32];

fn create_with_draw(h: &mut Harness, spec: EventSpec, seed: &[u8; 32]) -> Outcome {
    h.run(Command::CreateEventWithDraw {
        tenant: "t1".into(),
        spec: Box::new(spec),
        draw: Box::new(DrawSpec {
            arrival_window_ms: WINDOW_MS,
            commitment: draw::commitment_of(seed),
        }),
    })
}

fn flash_sale(capacity: u32) -> EventSpec {
    EventSpec {
        sales_open_at_ms: Some(OPEN_MS),
        ..festival(capacity)
    }
}

fn reveal(seed: [u8; 32]) -> Command {
    Command::RevealDrawSeed {
        tenant: "t1".into(),
        event: EventId(0),
        seed: Box::new(seed),
    }
}

fn made(outcome: &Outcome) -> (DrawSeedSource, [u8; 32], Vec<WaiterId>) {
    outcome
        .effects
        .iter()
        .find_map(|effect| match effect {
            Effect::DrawMade {
                source,
                seed,
                order,
                ..
            } => Some((*source, *seed, order.clone())),
            _ => None,
        })
        .expect("the draw was made")
}

/// The whole life of a draw, as a transcript: before the window, entries (one per user,
/// limits apply), a wrong and a right reveal, the draw at the first record at opening
/// (serving the entries in draw order), later arrivals behind them, a late reveal.
#[test]
fn a_draw_from_window_to_offers() {
    let mut h = Harness::new();
    let created = create_with_draw(
        &mut h,
        EventSpec {
            seats_per_user_max: Some(2),
            ..flash_sale(3)
        },
        &SEED,
    );
    assert_eq!(
        render(&h.engine, &created).split(" | ").nth(1),
        Some("draw of ev_0 opens +00:00:30 draws +00:01:00")
    );
    let ev = EventId(0);
    // Before the window: sales are not open, as without one.
    check(
        &mut h,
        join("ann", ev, 1, false),
        "rejected SalesClosed { reason: NotOpenYet }",
    );
    h.now_ms = OPEN_MS - WINDOW_MS;
    check(&mut h, best_or_wait("ann", ev, 2, false), "entered w_1");
    check(&mut h, join("bob", ev, 1, false), "entered w_2");
    check(&mut h, join("cat", ev, 1, false), "entered w_3");
    check(&mut h, best_or_wait("dan", ev, 1, false), "entered w_4");
    // One entry per user per event, and the per-user limit applies.
    check(
        &mut h,
        join("ann", ev, 1, false),
        "rejected LimitExceeded { limit: WaitersPerUser, max: 1 }",
    );
    check(
        &mut h,
        join("eve", ev, 3, false),
        "rejected LimitExceeded { limit: SeatsPerUser, max: 2 }",
    );
    // Only waiting requests enter: a plain hold is still too early.
    check(
        &mut h,
        best("eve", ev, 1, false),
        "rejected SalesClosed { reason: NotOpenYet }",
    );
    // Dan leaves before the draw: his entry is gone.
    check(&mut h, leave("dan", 4), "left w_4");
    check(
        &mut h,
        reveal([8; 32]),
        "rejected Invalid { reason: \"the seed does not match the draw's commitment\" }",
    );
    check(
        &mut h,
        reveal(SEED),
        &format!(
            "{:?}",
            Reply::<engine::UserName>::DrawSeedRevealed {
                event: ev,
                seed: SEED
            }
        ),
    );
    // The first record at opening makes the draw, then is applied itself (behind).
    h.now_ms = OPEN_MS;
    let outcome = check(
        &mut h,
        best_or_wait("fay", ev, 1, false),
        "waitlisted w_5 #2 | drew ev_0 Revealed: w_3,w_2,w_1 | offered w_3 h_1 [pool0 x1] | offered w_2 h_2 [pool0 x1]",
    );
    let (source, seed, order) = made(&outcome);
    assert_eq!((source, seed), (DrawSeedSource::Revealed, SEED));
    assert_eq!(
        order,
        draw::draw_order(&SEED, ev, &[WaiterId(1), WaiterId(2), WaiterId(3)])
    );
    check(
        &mut h,
        reveal(SEED),
        "rejected Conflict { reason: DrawMade }",
    );
    // Ann (third place, two seats) waits for two; Fay, who came at opening, waits behind
    // her: when Bob lets his seat go, Ann is served first.
    check(
        &mut h,
        release("bob", 2),
        "released h_2 [pool0 x1] | offered w_1 h_3 [pool0 x2]",
    );
}

/// Bad arrival windows are refused by the engine's one validation.
#[test]
fn an_arrival_window_needs_an_opening_in_the_future_and_a_bounded_length() {
    let mut h = Harness::new();
    let refused = |h: &mut Harness, spec: EventSpec, arrival_window_ms: u64| {
        h.run(Command::CreateEventWithDraw {
            tenant: "t1".into(),
            spec: Box::new(spec),
            draw: Box::new(DrawSpec {
                arrival_window_ms,
                commitment: [0; 32],
            }),
        })
        .result
        .unwrap_err()
    };
    let invalid = |reason: &str| Rejection::Invalid {
        reason: reason.into(),
    };
    assert_eq!(
        refused(&mut h, festival(3), WINDOW_MS),
        invalid("an arrival window needs sales_open_at")
    );
    assert_eq!(
        refused(&mut h, flash_sale(3), 0),
        invalid("the arrival window must be from 1 to 86400000 ms")
    );
    assert_eq!(
        refused(&mut h, flash_sale(3), draw::ARRIVAL_WINDOW_MS_MAX + 1),
        invalid("the arrival window must be from 1 to 86400000 ms")
    );
    h.now_ms = OPEN_MS;
    assert_eq!(
        refused(&mut h, flash_sale(3), WINDOW_MS),
        invalid("an arrival window's draw (sales_open_at) must be in the future")
    );
    // The event's own rules still apply first.
    assert!(matches!(
        refused(
            &mut h,
            EventSpec {
                name: String::new(),
                ..flash_sale(3)
            },
            WINDOW_MS
        ),
        Rejection::Invalid { .. }
    ));
    assert_eq!(
        h.engine.state().clone(),
        {
            let mut fresh = Harness::new();
            fresh.now_ms = OPEN_MS;
            for _ in 0..5 {
                fresh.run(Command::Tick);
            }
            fresh.engine.state().clone()
        },
        "refusals leave no trace"
    );
}

/// Moving the opening under a pending draw is refused; cancelling the event ends its
/// entries and the draw.
#[test]
fn a_pending_draw_fixes_the_opening_and_ends_with_its_event() {
    let mut h = Harness::new();
    create_with_draw(&mut h, flash_sale(3), &SEED);
    let ev = EventId(0);
    check(
        &mut h,
        Command::UpdateEvent {
            tenant: "t1".into(),
            event: ev,
            patch: Box::new(EventPatch {
                sales_open_at_ms: Some(Some(OPEN_MS + 1)),
                ..EventPatch::default()
            }),
        },
        "rejected Invalid { reason: \"sales_open_at cannot move while its arrival window's draw is pending\" }",
    );
    h.now_ms = OPEN_MS - 1;
    check(&mut h, join("ann", ev, 1, false), "entered w_1");
    check(
        &mut h,
        Command::CancelEvent {
            tenant: "t1".into(),
            event: ev,
        },
        "event canceled holds=[] bookings=[] waiters=[WaiterId(1)]",
    );
    h.now_ms = OPEN_MS + 10;
    let outcome = check(&mut h, Command::Tick, "tick");
    assert!(outcome.effects.is_empty(), "no draw for a canceled event");
}

/// Not revealed by opening: the seed is the chain of the window's last second's records,
/// which this test recomputes from the records themselves (outside the engine's state).
#[test]
fn an_unrevealed_seed_falls_back_to_the_last_second_of_records() {
    let mut h = Harness::new();
    let commitment = draw::commitment_of(&SEED);
    create_with_draw(&mut h, flash_sale(10), &SEED);
    let ev = EventId(0);
    let mut chained = Vec::new();
    for (user, at_ms) in [
        ("ann", OPEN_MS - 5_000),
        ("bob", OPEN_MS - 1_000),
        ("cat", OPEN_MS - 1),
    ] {
        h.now_ms = at_ms;
        let request = Request::new(join(user, ev, 1, false));
        if at_ms >= OPEN_MS - draw::FALLBACK_SPAN_MS {
            chained.push((h.offset, at_ms, wire::encode_request(&request)));
        }
        h.send(request);
    }
    h.now_ms = OPEN_MS;
    let outcome = h.run(Command::Tick);
    let (source, seed, order) = made(&outcome);
    assert_eq!(
        source,
        DrawSeedSource::Fallback {
            records: 2,
            from_ms: OPEN_MS - 1_000,
            to_ms: OPEN_MS - 1,
        }
    );
    // The chain, from its definition in `engine::draw`'s documentation.
    let mut chain: [u8; 32] = Sha256::new()
        .chain_update(b"boxoffice draw fallback")
        .chain_update(commitment)
        .finalize()
        .into();
    for (offset, time_ms, record) in &chained {
        chain = Sha256::new()
            .chain_update(chain)
            .chain_update(offset.to_le_bytes())
            .chain_update(time_ms.to_le_bytes())
            .chain_update(Sha256::digest(record))
            .finalize()
            .into();
    }
    assert_eq!(seed, chain);
    assert_eq!(
        order,
        recompute_order(&seed, "ev_0", &["w_1", "w_2", "w_3"])
    );
}

/// The published draw recomputed from its published parts only (seed, event id, entry
/// ids), with HMAC-SHA256 as the spec states it, not with the engine's function.
fn recompute_order(seed: &[u8; 32], event: &str, entries: &[&str]) -> Vec<WaiterId> {
    let mut keyed: Vec<(Vec<u8>, u64)> = entries
        .iter()
        .map(|entry| {
            let mut mac = Hmac::<Sha256>::new_from_slice(seed).unwrap();
            mac.update(format!("{event}/{entry}").as_bytes());
            let number: u64 = entry.strip_prefix("w_").unwrap().parse().unwrap();
            (mac.finalize().into_bytes().to_vec(), number)
        })
        .collect();
    keyed.sort();
    keyed
        .into_iter()
        .map(|(_, number)| WaiterId(number))
        .collect()
}

#[test]
fn a_revealed_draw_is_recomputed_from_its_published_parts() {
    let mut h = Harness::new();
    let seed: [u8; 32] = std::array::from_fn(|index| index as u8 ^ 0x5a);
    create_with_draw(&mut h, flash_sale(100), &seed);
    h.now_ms = OPEN_MS - WINDOW_MS + 1;
    let names: Vec<String> = (0..40).map(|index| format!("user{index}")).collect();
    for name in &names {
        h.run(join(name, EventId(0), 1, false));
    }
    h.run(reveal(seed));
    h.now_ms = OPEN_MS + 1;
    let (_, published_seed, order) = made(&h.run(Command::Tick));
    let entries: Vec<String> = (1..=40).map(|id| format!("w_{id}")).collect();
    let entries: Vec<&str> = entries.iter().map(String::as_str).collect();
    assert_eq!(order, recompute_order(&published_seed, "ev_0", &entries));
    assert_eq!(
        draw::commitment_of(&published_seed),
        draw::commitment_of(&seed)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The order is a permutation of the entries, whatever order the engine lists them
    /// in; and in the engine, who arrives when within the window (which users, in which
    /// order, at which times, among other records) changes nothing but which entry id
    /// each gets: the place of the k-th entry depends on the seed alone.
    #[test]
    fn the_draw_is_a_permutation_independent_of_arrival_order(
        seed in any::<[u8; 32]>(),
        entries in 1usize..30,
        shuffle in any::<u64>(),
        offsets_ms in proptest::collection::vec(0u64..WINDOW_MS, 30),
        ticks in proptest::collection::vec(any::<bool>(), 30),
    ) {
        let ids: Vec<WaiterId> = (1..=entries as u64).map(WaiterId).collect();
        let order = draw::draw_order(&seed, EventId(0), &ids);
        let mut sorted = order.clone();
        sorted.sort();
        prop_assert_eq!(&sorted, &ids);
        let mut shuffled = ids.clone();
        let mut state = shuffle | 1;
        for index in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(index, (state % (index as u64 + 1)) as usize);
        }
        prop_assert_eq!(&draw::draw_order(&seed, EventId(0), &shuffled), &order);

        // Two runs: users in order at the window's start, and shuffled users at random
        // times with ticks between them.
        let run = |users: &[usize], times: Option<&[u64]>| {
            let mut h = Harness::new();
            create_with_draw(&mut h, flash_sale(1_000), &seed);
            let mut times_ms: Vec<u64> = match times {
                Some(offsets) => offsets[..users.len()].iter().map(|offset| OPEN_MS - WINDOW_MS + offset).collect(),
                None => vec![OPEN_MS - WINDOW_MS; users.len()],
            };
            times_ms.sort();
            for ((user, at_ms), tick) in users.iter().zip(times_ms).zip(&ticks) {
                h.now_ms = at_ms;
                if *tick && times.is_some() {
                    h.run(Command::Tick);
                }
                let entered = h.run(join(&format!("user{user}"), EventId(0), 1, false));
                assert!(matches!(entered.result, Ok(Reply::Entered { .. })), "{entered:?}");
            }
            h.run(reveal(seed));
            h.now_ms = OPEN_MS;
            made(&h.run(Command::Tick)).2
        };
        let in_order: Vec<usize> = (0..entries).collect();
        let mut reordered = in_order.clone();
        reordered.reverse();
        reordered.rotate_left((shuffle % entries as u64) as usize);
        prop_assert_eq!(run(&in_order, None), order.clone());
        prop_assert_eq!(run(&reordered, Some(&offsets_ms)), order);
    }
}

/// A window opened on an existing event works as one given at creation; it is refused
/// twice, on an event without a future opening, and on another tenant's event. Waiters
/// from an earlier sales period stay ahead of the entries.
#[test]
fn a_window_can_be_opened_on_an_existing_event() {
    let mut h = Harness::new();
    let ev = h.create(festival(2));
    let open = |event: EventId, tenant: &str| Command::OpenArrivalWindow {
        tenant: tenant.into(),
        event,
        draw: Box::new(DrawSpec {
            arrival_window_ms: WINDOW_MS,
            commitment: draw::commitment_of(&SEED),
        }),
    };
    check(
        &mut h,
        open(ev, "t1"),
        "rejected Invalid { reason: \"an arrival window needs sales_open_at\" }",
    );
    // Sales were open: Ann holds both places and Bob waits; then the opening moves.
    check(&mut h, best("ann", ev, 2, false), "held h_1 [pool0 x2]");
    check(
        &mut h,
        best_or_wait("bob", ev, 1, false),
        "waitlisted w_1 #1",
    );
    let moved = h.run(Command::UpdateEvent {
        tenant: "t1".into(),
        event: ev,
        patch: Box::new(EventPatch {
            sales_open_at_ms: Some(Some(OPEN_MS)),
            ..EventPatch::default()
        }),
    });
    assert!(moved.result.is_ok(), "{moved:?}");
    check(&mut h, open(ev, "t2"), "rejected NotFound { what: Event }");
    let opened = check(
        &mut h,
        open(ev, "t1"),
        &format!(
            "{:?} | draw of ev_0 opens +00:00:30 draws +00:01:00",
            Reply::<engine::UserName>::ArrivalWindowOpened { event: ev }
        ),
    );
    assert_eq!(opened.effects.len(), 1);
    check(
        &mut h,
        open(ev, "t1"),
        "rejected Invalid { reason: \"the event already has an arrival window\" }",
    );
    h.now_ms = OPEN_MS - 1;
    check(&mut h, join("cat", ev, 1, false), "entered w_2");
    check(&mut h, join("dan", ev, 1, false), "entered w_3");
    h.now_ms = OPEN_MS;
    let drawn = h.run(Command::Tick);
    let (_, _, order) = made(&drawn);
    assert_eq!(
        order,
        draw::draw_order(&made(&drawn).1, ev, &[WaiterId(2), WaiterId(3)])
    );
    // Ann lets her places go: Bob (who waited before the window) is served first.
    let released = h.run(release("ann", 1));
    assert_eq!(
        render(&h.engine, &released),
        format!(
            "released h_1 [pool0 x2] | offered w_1 h_2 [pool0 x1] | offered {} h_3 [pool0 x1]",
            order[0]
        )
    );
}
