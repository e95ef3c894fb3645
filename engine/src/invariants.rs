//! The full invariant walk behind `Engine::check_invariants`.

use crate::engine::{Engine, TimerKind, UserId, UserIndex};
use crate::ids::{EventId, HoldId};
use crate::ledger::SeatKind;
use crate::outcome::Items;
use std::collections::BTreeMap;

/// Every seat of `owner` (a live hold or booking of `event_id`) is of `kind` in the ledger,
/// and no other owner in `owned` (the live holds' or bookings' seats so far) has it: one
/// owner per seat.
fn one_owner(
    event: &crate::engine::Event,
    event_id: EventId,
    seats: &[u32],
    kind: SeatKind,
    owned: &mut std::collections::BTreeSet<(EventId, u32)>,
    owner: &str,
) {
    for &seat in seats {
        assert_eq!(
            event.ledger.kind(seat),
            kind,
            "{owner}'s seat {seat} is {kind:?}"
        );
        assert!(
            owned.insert((event_id, seat)),
            "seat {seat} of {event_id} is {kind:?} by two live owners, {owner} one of them"
        );
    }
}

pub(crate) fn check(engine: &Engine) {
    let state = &engine.state;
    let place = engine.config.shard;
    // Ids say their shard: every id the state holds is this shard's, and the tables'
    // rows and the sequences map onto them (see `ids`).
    let owned = |id: u64, what: &str| {
        assert!(
            place.owns(id),
            "{what} {id} is not of shard {} of {}",
            place.index,
            place.count
        );
    };
    let sequence = |id: u64, next: u64, what: &str| {
        owned(id, what);
        let number = place.local(id).expect("owned");
        assert!(
            (1..next).contains(&number),
            "{what} {id} is number {number}, not one given out (next {next})"
        );
    };
    // Users: each name interned once, and the engine's index agrees with the state's
    // table (the index is rebuilt from the table on restart, so they must match).
    let rebuilt = UserIndex::of(&state.users);
    assert_eq!(
        rebuilt.len(),
        engine.users.len(),
        "every user is interned once"
    );
    for (id, name) in state.users.iter().enumerate() {
        assert_eq!(
            engine.user_id(name),
            Some(UserId(id as u32)),
            "user {name:?}"
        );
    }
    let interned = |user: UserId| {
        assert!(
            (user.0 as usize) < state.users.len(),
            "user {user:?} is interned"
        );
    };
    // Ended holds: the window is canonical, every id one this shard gave out, none live,
    // and exactly those in the retention queue.
    state.ended_holds.check();
    for (hold_id, ended) in state.ended_holds.iter() {
        sequence(hold_id.0, state.next_hold, "ended hold");
        interned(ended.user);
        assert!(
            !state.holds.contains_key(&hold_id),
            "ended hold {hold_id} is not live"
        );
    }
    let queued: std::collections::BTreeSet<HoldId> = state
        .ended_hold_queue
        .iter()
        .map(|(_, hold_id)| *hold_id)
        .collect();
    assert_eq!(
        queued.len(),
        state.ended_hold_queue.len(),
        "an ended hold is queued once"
    );
    assert!(
        queued
            .iter()
            .copied()
            .eq(state.ended_holds.iter().map(|(hold_id, _)| hold_id)),
        "the kept ended holds are exactly the queued ones"
    );
    let mut usage: BTreeMap<(EventId, UserId), u32> = BTreeMap::new();
    // Every live hold owns exactly its seats and is in the expiry index: each of its seats
    // is held, and in no other live hold (the ledger keeps only that a seat is held; the
    // count per event below says no held seat is without a hold).
    let mut held_seats = std::collections::BTreeSet::new();
    state.holds.check();
    for (hold_id, hold) in state.holds.iter() {
        sequence(hold_id.0, state.next_hold, "hold");
        let event = engine.known_event(hold.event);
        assert!(!event.canceled, "a canceled event has no holds");
        match (&hold.items, hold.slot) {
            (Items::Seats(seats), Some(slot)) => {
                assert_eq!(
                    event.ledger.hold_slots.get(slot as usize),
                    Some(&hold_id.0),
                    "hold {hold_id} owns its slot {slot}"
                );
                one_owner(
                    event,
                    hold.event,
                    seats,
                    SeatKind::Held,
                    &mut held_seats,
                    &format!("hold {hold_id}"),
                );
            }
            (Items::Pool { .. }, None) => {}
            (_, slot) => panic!("hold {hold_id}: slot {slot:?} does not match its items"),
        }
        let due = hold.due_ms;
        assert!(
            state
                .timers
                .contains(&(due, TimerKind::HoldExpiry, hold_id.0), |due, id| {
                    crate::engine::hold_timer_live(&state.holds, due, id)
                }),
            "hold {hold_id} is in the expiry index"
        );
        interned(hold.user);
        *usage.entry((hold.event, hold.user)).or_default() += hold.items.quantity();
    }
    let mut booked_seats = std::collections::BTreeSet::new();
    for (index, booking) in state.bookings.iter().enumerate() {
        let booking_id = engine.booking_id_at(index);
        assert_eq!(engine.booking_index(booking_id), Some(index));
        assert_eq!(booking.tickets_used.len() as u32, booking.items.quantity());
        booking.tickets_used.check();
        sequence(booking.hold.0, state.next_hold, "booking's hold");
        let event = engine.known_event(booking.event);
        if booking.canceled {
            continue;
        }
        if let Items::Seats(seats) = &booking.items {
            one_owner(
                event,
                booking.event,
                seats,
                SeatKind::Booked,
                &mut booked_seats,
                &format!("booking {booking_id}"),
            );
        }
        interned(booking.user);
        *usage.entry((booking.event, booking.user)).or_default() += booking.items.quantity();
    }
    state.usage.check();
    assert_eq!(
        usage,
        state
            .usage
            .sorted()
            .into_iter()
            .map(|(key, count)| (key.pair(), count))
            .collect::<BTreeMap<_, _>>(),
        "per-user usage matches holds and bookings"
    );
    for (event_index, event) in state.events.iter().enumerate() {
        let event_id = engine.event_id_at(event_index);
        owned(u64::from(event_id.0), "event");
        assert_eq!(engine.event_index(event_id), Some(event_index));
        for booking_id in event.bookings.iter() {
            assert_eq!(
                engine.booking(*booking_id).event,
                event_id,
                "an event lists its own bookings"
            );
        }
        // The ledger's own rules (counts, rows, pools, slots), then that its seats are the
        // live holds' and bookings' and nobody else's: every held seat is one of a live
        // hold's (the holds' seats are held and distinct, above), every slot in use a live
        // hold's of this event.
        let held_here = event.ledger.check(&event.layout);
        assert_eq!(
            held_here,
            held_seats
                .range((event_id, 0)..=(event_id, u32::MAX))
                .count() as u64,
            "a held seat is in a live hold of its event"
        );
        for (slot, &hold_id) in event.ledger.hold_slots.iter().enumerate() {
            if hold_id != 0 {
                let hold = &state.holds[&HoldId(hold_id)];
                assert_eq!((hold.event, hold.slot), (event_id, Some(slot as u32)));
            }
        }
        let booked_here = event
            .ledger
            .bits
            .kinds()
            .filter(|kind| *kind == SeatKind::Booked)
            .count();
        assert_eq!(
            booked_here,
            booked_seats
                .range((event_id, 0)..=(event_id, u32::MAX))
                .count(),
            "a booked seat is in a live booking of its event"
        );
        let pool_held: BTreeMap<u16, u64> = state
            .holds
            .values()
            .filter(|hold| hold.event == event_id)
            .fold(BTreeMap::new(), |mut sums, hold| {
                if let Items::Pool { category, quantity } = hold.items {
                    *sums.entry(category).or_default() += u64::from(quantity);
                }
                sums
            });
        for (category_index, category) in event.ledger.categories.iter().enumerate() {
            assert!(
                category.price_cents <= crate::command::PRICE_CENTS_MAX,
                "prices are at most PRICE_CENTS_MAX, so every order's total fits"
            );
            if let Some(pool) = category.pool {
                assert_eq!(
                    u64::from(event.ledger.pools[pool as usize].held),
                    pool_held
                        .get(&(category_index as u16))
                        .copied()
                        .unwrap_or(0)
                );
            }
        }
        // The queues' own rules (no empty queue, a place in one queue, the count), then
        // that each waiter in them is live, in its own queue at its own place.
        event.waitlist.check();
        let mut needs: BTreeMap<(Option<u16>, bool, u32), u32> = BTreeMap::new();
        for (category, queue) in &event.waitlist.queues {
            for (queue_place, waiter_id) in queue {
                let waiter = &state.waiters[waiter_id];
                assert!(
                    waiter.event == event_id && waiter.category == *category,
                    "every waiter is in exactly its own queue"
                );
                assert_eq!(
                    waiter.place,
                    Some(*queue_place),
                    "a queued waiter is at its place"
                );
                assert!(
                    event.canceled
                        || crate::allocate::servable_ever(
                            event,
                            waiter.quantity,
                            waiter.category,
                            waiter.together
                        ),
                    "waiter {waiter_id} could never be served but still waits"
                );
                *needs
                    .entry((waiter.category, waiter.together, waiter.quantity))
                    .or_default() += 1;
            }
        }
        assert_eq!(needs, event.waiter_needs, "waiter needs count the queues");
    }
    let queued: u32 = state
        .events
        .iter()
        .map(|event| event.waitlist.waiting)
        .sum();
    let mut entered = 0usize;
    for event in &state.events {
        if let Some(terms) = &event.terms {
            assert_eq!(terms.check(), Ok(()), "an event's terms were checked");
        }
    }
    for (index, event) in state.events.iter().enumerate() {
        let Some(draw) = &event.draw else { continue };
        let event_id = engine.event_id_at(index);
        assert_eq!(
            state.draws_pending.contains(&(draw.draws_at_ms, event_id)),
            !draw.made && !event.canceled,
            "a draw is pending until it is made or its event canceled"
        );
        assert!(
            draw.seed
                .is_none_or(|seed| crate::draw::commitment_of(&seed) == draw.commitment),
            "a revealed seed matches its commitment"
        );
        for entry in &draw.entries {
            let waiter = &state.waiters[entry];
            assert!(
                waiter.event == event_id && waiter.place.is_none(),
                "an entry is its event's, with no place before the draw"
            );
        }
        assert!(
            !draw.made || draw.entries.is_empty(),
            "a made draw lists no entries"
        );
        entered += draw.entries.len();
    }
    assert_eq!(
        queued as usize + entered,
        state.waiters.len(),
        "every waiter is in exactly one queue, or entered in one draw"
    );
    let mut waiters_by_user: BTreeMap<(EventId, UserId), u32> = BTreeMap::new();
    for (waiter_id, waiter) in &state.waiters {
        sequence(waiter_id.0, state.next_waiter, "waiter");
        interned(waiter.user);
        *waiters_by_user
            .entry((waiter.event, waiter.user))
            .or_default() += 1;
    }
    assert_eq!(
        waiters_by_user,
        state
            .waiters_by_user
            .iter()
            .map(|(key, count)| (key.pair(), *count))
            .collect::<BTreeMap<_, _>>(),
        "per-user waiter counts match the waiters"
    );
    for (waiter_id, waiter) in &state.waiters {
        assert!(state.timers.contains(
            &(waiter.expires_at_ms, TimerKind::WaiterExpiry, waiter_id.0),
            |due, id| crate::engine::hold_timer_live(&state.holds, due, id)
        ));
    }
    let timers = state
        .timers
        .sorted_with(|due, id| crate::engine::hold_timer_live(&state.holds, due, id));
    for (due, kind, id) in timers {
        match kind {
            TimerKind::HoldExpiry => assert!(state
                .holds
                .get(&HoldId(id))
                .is_some_and(|hold| hold.due_ms == due)),
            TimerKind::WaiterExpiry => {
                assert!(state.waiters.contains_key(&crate::ids::WaiterId(id)))
            }
            TimerKind::Draw => {
                let event = u32::try_from(id)
                    .ok()
                    .and_then(|id| engine.event_index(crate::ids::EventId(id)))
                    .map(|index| &state.events[index]);
                assert!(
                    event
                        .and_then(|event| event.draw.as_ref())
                        .is_some_and(|draw| { !draw.made && draw.draws_at_ms == due + 1 }),
                    "a draw timer is its pending draw's"
                );
            }
            TimerKind::DeskHoldExpiry => assert!(state
                .desks
                .tickets
                .get(&crate::ids::DeskTicketId(id))
                .is_some_and(|ticket| ticket.hold_expires_at_ms == Some(due))),
        }
    }
    // One index entry per stored key, naming its own entry; stored in time order.
    state.idempotency.check();
    for desk in &state.desks.desks {
        for (slot, busy) in &desk.busy {
            let full = busy.len() as u32 == desk.spec.agents;
            assert_eq!(
                desk.earliest_open(*slot) != *slot,
                full,
                "full runs mirror full slots"
            );
        }
    }
    for ((desk, user), open) in &state.desks.open_by_user {
        assert!(!open.is_empty(), "empty open sets are removed");
        for ticket_id in open {
            let ticket = &state.desks.tickets[ticket_id];
            assert!(
                ticket.desk == *desk && ticket.user == *user,
                "desk ticket {ticket_id} is filed under its own desk and user"
            );
        }
    }
    for (ticket_id, ticket) in &state.desks.tickets {
        sequence(ticket_id.0, state.desks.next_ticket + 1, "desk ticket");
        if state.desks.is_open(ticket, state.now_ms, place) {
            assert!(
                state
                    .desks
                    .open_by_user
                    .get(&(ticket.desk, ticket.user.clone()))
                    .is_some_and(|open| open.contains(ticket_id)),
                "open desk ticket {ticket_id} is filed under its user"
            );
        }
        let desk = &state.desks.desks[engine.known_desk_index(ticket.desk)];
        if let Some(busy) = desk.busy.get(&ticket.slot) {
            assert!(
                busy.contains(&ticket.agent),
                "desk ticket {ticket_id} holds its agent"
            );
        }
    }
}
