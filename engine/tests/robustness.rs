//! Robustness: whatever the log holds, the engine answers and stays consistent.
//!
//! Arbitrary commands, nonsensical ones included (ids that name nothing, huge and
//! zero quantities, other users' holds, empty and oversized strings, garbage labels
//! and codes, invalid event and desk specs, records stamped far in the past or
//! future) and random or corrupted record bytes fed through `wire::decode_request`
//! never panic. After every record:
//! - the invariants hold (`check_invariants`);
//! - the outcome answers this offset at the clock's time, which never goes back;
//! - where the command is plainly invalid, the rejection and its reason are exactly
//!   the expected ones;
//! - a rejected command changes nothing: the state equals that of a twin engine that
//!   was given a `Tick` at the same offset and time instead.
//! - the prefetch hints (`Request::prefetch`, `Engine::prefetch`) run before every
//!   command and never panic.

mod common;

use common::T0;
use engine::config::{DURATION_MS_MAX, TIME_MS_MAX};
use engine::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

// ---- generators ------------------------------------------------------------------------

/// A user by name (any text) or by id (assigned or not: ids below 8 are the first users
/// the run gives state, larger ones never assigned).
fn user_ref() -> impl Strategy<Value = UserRef> {
    prop_oneof![
        4 => text().prop_map(UserRef::Name),
        1 => (0u32..8).prop_map(UserRef::Id),
        1 => any::<u32>().prop_map(UserRef::Id),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => Just(String::new()),
        1 => Just(" \t\n".to_string()),
        6 => "[a-c]{1,2}",
        3 => any::<String>(),
        3 => proptest::sample::select(vec!["A-1-1", "A-1-2", "B-1-3", "A-1-0", "A--1", "-", "💺", "\0", "t_1_1.0000000000000000", "ev_0", "Gold", "Floor"]).prop_map(String::from),
        1 => (1_020usize..1_030).prop_map(|length| "x".repeat(length)),
    ]
}

/// A name drawn from a small set, so specs sometimes refer to what they define.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => proptest::sample::select(vec!["Gold", "Silver", "A", "B", "1", "2"]).prop_map(String::from),
        1 => proptest::sample::select(vec!["", " ", "x-y", "Nope"]).prop_map(String::from),
        1 => text(),
    ]
}

fn small_u32() -> impl Strategy<Value = u32> {
    prop_oneof![6 => 0..6u32, 1 => Just(u32::MAX), 1 => any::<u32>()]
}

fn small_u64() -> impl Strategy<Value = u64> {
    prop_oneof![6 => 0..8u64, 1 => Just(u64::MAX), 1 => any::<u64>()]
}

fn time_field() -> impl Strategy<Value = u64> {
    prop_oneof![4 => (0..10_000_000u64).prop_map(|ms| T0 + ms), 1 => Just(0u64), 1 => Just(u64::MAX), 1 => any::<u64>()]
}

fn event_spec() -> impl Strategy<Value = EventSpec> {
    let row = (
        name(),
        prop_oneof![8 => 0..6u32, 1 => Just(u32::MAX), 1 => Just(2_000_000u32)],
        name(),
    )
        .prop_map(|(label, seats, category)| RowSpec {
            label,
            seats,
            category,
        });
    let section = (name(), proptest::collection::vec(row, 0..3))
        .prop_map(|(name, rows)| SectionSpec { name, rows });
    let pool = (name(), prop_oneof![8 => 0..6u32, 1 => Just(u32::MAX)])
        .prop_map(|(category, capacity)| PoolSpec { category, capacity });
    let categories = proptest::collection::vec(
        (name(), small_u64()).prop_map(|(name, price_cents)| CategorySpec { name, price_cents }),
        0..4,
    );
    let texts = (text(), text(), text(), text(), text());
    let times = (
        time_field(),
        proptest::option::of(time_field()),
        proptest::option::of(time_field()),
        proptest::option::of(time_field()),
    );
    let limits = (
        prop_oneof![4 => Just(60_000u64), 1 => small_u64()],
        small_u32(),
        proptest::option::of(small_u32()),
        any::<bool>(),
    );
    (
        texts,
        times,
        limits,
        categories,
        proptest::collection::vec(section, 0..3),
        proptest::collection::vec(pool, 0..3),
    )
        .prop_map(
            |(
                (name, description, city, country, venue),
                (starts_at_ms, ends_at_ms, sales_open_at_ms, sales_close_at_ms),
                (hold_ttl_ms, seats_per_order_max, seats_per_user_max, skip),
                categories,
                sections,
                general_admission,
            )| EventSpec {
                name,
                description,
                city,
                country,
                venue,
                starts_at_ms,
                ends_at_ms,
                sales_open_at_ms,
                sales_close_at_ms,
                hold_ttl_ms,
                seats_per_order_max,
                seats_per_user_max,
                waitlist_policy: if skip {
                    WaitlistPolicy::SkipAhead
                } else {
                    WaitlistPolicy::Strict
                },
                categories,
                sections,
                general_admission,
            },
        )
}

fn patch() -> impl Strategy<Value = EventPatch> {
    (
        proptest::option::of(text()),
        proptest::option::of(time_field()),
        proptest::option::of(proptest::option::of(time_field())),
        proptest::option::of(small_u64()),
        proptest::option::of(small_u32()),
        proptest::option::of(proptest::option::of(small_u32())),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(
            |(
                name,
                starts_at_ms,
                sales_close_at_ms,
                hold_ttl_ms,
                seats_per_order_max,
                seats_per_user_max,
                skip,
            )| EventPatch {
                name,
                starts_at_ms,
                sales_close_at_ms,
                hold_ttl_ms,
                seats_per_order_max,
                seats_per_user_max,
                waitlist_policy: skip.map(|skip| {
                    if skip {
                        WaitlistPolicy::SkipAhead
                    } else {
                        WaitlistPolicy::Strict
                    }
                }),
                ..EventPatch::default()
            },
        )
}

fn desk_spec() -> impl Strategy<Value = DeskSpec> {
    let level = (
        name(),
        prop_oneof![4 => Just(3_600_000u64), 1 => small_u64()],
    )
        .prop_map(|(name, deadline_ms)| LevelSpec { name, deadline_ms });
    (
        name(),
        small_u32(),
        prop_oneof![4 => Just(60_000u64), 1 => small_u64()],
        prop_oneof![4 => Just(86_400_000u64), 1 => small_u64()],
        proptest::collection::vec(level, 0..3),
        prop_oneof![4 => Just(60_000u64), 1 => small_u64()],
    )
        .prop_map(
            |(name, agents, slot_ms, horizon_ms, levels, hold_ttl_ms)| DeskSpec {
                name,
                agents,
                slot_ms,
                horizon_ms,
                levels,
                hold_ttl_ms,
            },
        )
}

fn event_id() -> impl Strategy<Value = EventId> {
    prop_oneof![8 => 0..4u32, 1 => Just(u32::MAX)].prop_map(EventId)
}

fn selection() -> impl Strategy<Value = Selection> {
    prop_oneof![
        4 => (proptest::collection::vec(text(), 0..4)).prop_map(Selection::Seats),
        1 => (101usize..103).prop_map(|count| Selection::Seats((1..=count).map(|seat| format!("A-1-{seat}")).collect())),
        4 => (small_u32(), proptest::option::of(name()), any::<bool>()).prop_map(|(quantity, category, together)| Selection::Best { quantity, category, together }),
        2 => (small_u32(), proptest::option::of(category_index()), any::<bool>()).prop_map(|(quantity, category, together)| Selection::BestIndexed { quantity, category, together }),
    ]
}

/// A category by index: mostly one an event may have, sometimes far past any.
fn category_index() -> impl Strategy<Value = u16> {
    prop_oneof![8 => 0..4u16, 1 => Just(u16::MAX)]
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        1 => (text(), event_spec()).prop_map(|(tenant, spec)| Command::CreateEvent { tenant, spec: Box::new(spec) }),
        1 => (text(), event_id(), patch()).prop_map(|(tenant, event, patch)| Command::UpdateEvent { tenant, event, patch: Box::new(patch) }),
        1 => (text(), event_id()).prop_map(|(tenant, event)| Command::CancelEvent { tenant, event }),
        1 => (text(), event_id(), text()).prop_map(|(tenant, event, code)| Command::CheckIn { tenant, event, code }),
        1 => (text(), event_id(), any::<u64>(), any::<u32>()).prop_map(|(tenant, event, booking, index)| Command::CheckInTicket { tenant, event, ticket: TicketId { booking: BookingId(booking), index } }),
        6 => (user_ref(), event_id(), selection(), any::<bool>()).prop_map(|(user, event, selection, wait)| Command::PlaceHold { user, event, selection, wait }),
        3 => (user_ref(), small_u64(), text()).prop_map(|(user, hold, payment_ref)| Command::ConfirmHold { user, hold: HoldId(hold), payment_ref }),
        2 => (user_ref(), small_u64()).prop_map(|(user, hold)| Command::ReleaseHold { user, hold: HoldId(hold) }),
        2 => (user_ref(), small_u64()).prop_map(|(user, booking)| Command::CancelBooking { user, booking: BookingId(booking) }),
        2 => (text(), event_id(), small_u32(), proptest::option::of(name()), any::<bool>())
            .prop_map(|(user, event, quantity, category, together)| Command::JoinWaitlist { user: user.into(), event, quantity, category, together }),
        1 => (text(), event_id(), small_u32(), proptest::option::of(category_index()), any::<bool>())
            .prop_map(|(user, event, quantity, category, together)| Command::JoinWaitlistIndexed { user: user.into(), event, quantity, category, together }),
        1 => (text(), small_u64()).prop_map(|(user, waiter)| Command::LeaveWaitlist { user: user.into(), waiter: WaiterId(waiter) }),
        1 => (text(), desk_spec()).prop_map(|(tenant, spec)| Command::CreateDesk { tenant, spec: Box::new(spec) }),
        2 => (text(), small_u32(), name(), any::<bool>()).prop_map(|(user, desk, level, hold_only)| Command::CreateDeskTicket { user: user.into(), desk: DeskId(desk), level, hold_only }),
        1 => (text(), small_u32(), small_u64()).prop_map(|(user, desk, ticket)| Command::ConfirmDeskTicket { user: user.into(), desk: DeskId(desk), ticket: DeskTicketId(ticket) }),
        1 => (text(), small_u32(), small_u64()).prop_map(|(user, desk, ticket)| Command::CancelDeskTicket { user: user.into(), desk: DeskId(desk), ticket: DeskTicketId(ticket) }),
        1 => Just(Command::Tick),
        1 => text().prop_map(|node| Command::Promote { node }),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    (proptest::option::weighted(0.2, text()), command()).prop_map(|(idempotency_key, command)| {
        Request {
            idempotency_key,
            command,
        }
    })
}

/// When a record is stamped, relative to the log clock.
#[derive(Clone, Debug)]
enum Stamp {
    Forward(u64),
    /// Far in the past (the engine keeps its clock).
    At(u64),
}

fn stamp() -> impl Strategy<Value = Stamp> {
    prop_oneof![
        6 => Just(Stamp::Forward(0)),
        6 => (0..120_000u64).prop_map(Stamp::Forward),
        1 => (3_600_000..90_000_000u64).prop_map(Stamp::Forward),
        1 => Just(Stamp::At(0)),
        1 => any::<u64>().prop_map(Stamp::At),
        1 => Just(Stamp::At(u64::MAX)),
    ]
}

/// One log record: a request, random bytes, or a request's bytes corrupted.
#[derive(Clone, Debug)]
enum Record {
    Request(Request),
    Bytes(Vec<u8>),
    Corrupted {
        request: Request,
        flips: Vec<(usize, u8)>,
        keep: usize,
    },
}

fn record() -> impl Strategy<Value = Record> {
    prop_oneof![
        12 => request().prop_map(Record::Request),
        1 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(Record::Bytes),
        1 => proptest::collection::vec(any::<u8>(), 0..16).prop_map(|mut bytes| {
            bytes.insert(0, wire::VERSION);
            Record::Bytes(bytes)
        }),
        2 => (request(), proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4), any::<usize>()).prop_map(|(request, flips, keep)| Record::Corrupted { request, flips, keep }),
    ]
}

// ---- the harness ---------------------------------------------------------------------------

/// What the test has seen so far, for the expected-rejection oracle.
#[derive(Default)]
struct Seen {
    hold_max: u64,
    waiter_max: u64,
    desk_ticket_max: u64,
    tenants: BTreeMap<EventId, String>,
}

impl Seen {
    fn observe(&mut self, outcome: &Outcome) {
        let mut hold = |view: &HoldView| self.hold_max = self.hold_max.max(view.hold.0);
        match &outcome.result {
            Ok(Reply::HoldPlaced(view)) => hold(view),
            Ok(Reply::Waitlisted { waiter, .. } | Reply::WaitlistJoined { waiter, .. }) => {
                self.waiter_max = self.waiter_max.max(waiter.0)
            }
            Ok(Reply::DeskTicketCreated(view)) => {
                self.desk_ticket_max = self.desk_ticket_max.max(view.ticket.0)
            }
            Ok(Reply::EventCreated { event, tenant, .. }) => {
                self.tenants.insert(*event, tenant.clone());
            }
            _ => {}
        }
        for effect in &outcome.effects {
            if let Effect::WaitlistOffered { hold, .. } = effect {
                self.hold_max = self.hold_max.max(hold.hold.0);
            }
        }
    }
}

fn text_rejection(field: &str, text: &str) -> Option<Rejection> {
    if text.trim().is_empty() {
        return Some(Rejection::Invalid {
            reason: format!("{field} must not be empty"),
        });
    }
    (text.len() > 1_024).then(|| Rejection::Invalid {
        reason: format!("{field} is longer than 1024 bytes"),
    })
}

/// The rejection a plainly invalid command must get, judged only from what the test
/// has seen; `None` when the command may be fine.
fn expected_rejection(engine: &Engine, seen: &Seen, command: &Command) -> Option<Rejection> {
    let no_event = |event: &EventId| event.0 >= engine.event_count();
    let not_found = |what| Some(Rejection::NotFound { what });
    // An id the engine never gave a user names nobody: refused first, whatever else.
    if let Some(UserRef::Id(id)) = command.user() {
        if engine.user_name_of(*id).is_none() {
            let reason = format!("user id {id} was never assigned");
            return Some(Rejection::Invalid { reason });
        }
    }
    match command {
        Command::CreateEvent { tenant, .. } => text_rejection("tenant", tenant),
        Command::Promote { node } => text_rejection("node", node),
        Command::UpdateEvent { event, .. } | Command::CancelEvent { event, .. }
            if no_event(event) =>
        {
            not_found(NotFound::Event)
        }
        Command::CheckIn { event, .. } | Command::CheckInTicket { event, .. }
            if no_event(event) =>
        {
            not_found(NotFound::Event)
        }
        // A ticket id that names no ticket of a booking of the event.
        Command::CheckInTicket {
            tenant,
            event,
            ticket,
        } if seen.tenants.get(event) == Some(tenant)
            && (ticket.index == 0
                || ticket.booking.0 == 0
                || ticket.booking.0 > engine.booking_count() as u64) =>
        {
            not_found(NotFound::Ticket)
        }
        // Nobody can forge a ticket code, so a code of an owned event is never found.
        Command::CheckIn { tenant, event, .. } if seen.tenants.get(event) == Some(tenant) => {
            not_found(NotFound::Ticket)
        }
        Command::PlaceHold { user, event, .. }
        | Command::JoinWaitlist { user, event, .. }
        | Command::JoinWaitlistIndexed { user, event, .. } => user
            .name()
            .and_then(|name| text_rejection("user", name))
            .or_else(|| {
                if no_event(event) {
                    not_found(NotFound::Event)
                } else {
                    None
                }
            }),
        Command::ConfirmHold {
            hold, payment_ref, ..
        } => text_rejection("payment_ref", payment_ref).or_else(|| {
            if hold.0 == 0 || hold.0 > seen.hold_max {
                not_found(NotFound::Hold)
            } else {
                None
            }
        }),
        Command::ReleaseHold { hold, .. } if hold.0 == 0 || hold.0 > seen.hold_max => {
            not_found(NotFound::Hold)
        }
        Command::CancelBooking { booking, .. }
            if booking.0 == 0 || booking.0 > engine.booking_count() as u64 =>
        {
            not_found(NotFound::Booking)
        }
        Command::LeaveWaitlist { waiter, .. } if waiter.0 == 0 || waiter.0 > seen.waiter_max => {
            not_found(NotFound::Waiter)
        }
        Command::CreateDeskTicket { desk, .. } if engine.desk_tenant(*desk).is_none() => {
            not_found(NotFound::Desk)
        }
        Command::ConfirmDeskTicket { ticket, .. } | Command::CancelDeskTicket { ticket, .. }
            if ticket.0 == 0 || ticket.0 > seen.desk_ticket_max =>
        {
            not_found(NotFound::DeskTicket)
        }
        _ => None,
    }
}

struct Harness {
    engine: Engine,
    seen: Seen,
    offset: u64,
    clock_ms: u64,
}

impl Harness {
    fn new() -> Harness {
        let mut harness = Harness {
            engine: Engine::new(EngineConfig::default()),
            seen: Seen::default(),
            offset: 0,
            clock_ms: T0,
        };
        // Something real to aim at: a theatre, a festival and a desk.
        for (tenant, spec) in [("a", common::theatre(2, 4)), ("b", common::festival(5))] {
            let outcome = harness.apply(
                T0,
                &Request::new(Command::CreateEvent {
                    tenant: tenant.into(),
                    spec: Box::new(spec),
                }),
            );
            assert!(outcome.result.is_ok(), "{outcome:?}");
        }
        let desk = DeskSpec {
            name: "Help".into(),
            agents: 2,
            slot_ms: 60_000,
            horizon_ms: 3_600_000,
            levels: vec![LevelSpec {
                name: "Gold".into(),
                deadline_ms: 600_000,
            }],
            hold_ttl_ms: 60_000,
        };
        assert!(harness
            .apply(
                T0,
                &Request::new(Command::CreateDesk {
                    tenant: "a".into(),
                    spec: Box::new(desk)
                })
            )
            .result
            .is_ok());
        harness
    }

    fn time_of(&mut self, stamp: &Stamp) -> u64 {
        match stamp {
            Stamp::Forward(ms) => {
                self.clock_ms = self.clock_ms.saturating_add(*ms);
                self.clock_ms
            }
            Stamp::At(ms) => *ms,
        }
    }

    /// Applies a request and checks everything that holds for any request.
    fn apply(&mut self, time_ms: u64, request: &Request) -> Outcome {
        let before_ms = self.engine.now_ms();
        let expected = expected_rejection(&self.engine, &self.seen, &request.command);
        let mut twin =
            Engine::from_state(self.engine.config().clone(), self.engine.state().clone());
        // The prefetch hints run ahead of every command a shell applies, whatever it
        // holds (an unknown hold, booking or user id, any name): they must never panic.
        request.prefetch();
        self.engine.prefetch(request);
        let outcome = self.engine.apply(self.offset, time_ms, request);
        let outcome = self.engine.named(outcome);
        let twin_outcome = twin.apply(self.offset, time_ms, &Request::new(Command::Tick));
        let twin_outcome = twin.named(twin_outcome);
        self.offset += 1;
        self.engine.check_invariants();
        assert_eq!(outcome.offset, self.offset - 1);
        assert_eq!(
            outcome.time_ms,
            before_ms.max(time_ms.min(TIME_MS_MAX)),
            "the clock only moves forward, and not past the end of time"
        );
        assert_eq!(outcome.time_ms, self.engine.now_ms());
        // A repeated key answers first (with the first answer, or a refusal of its reuse).
        let repeated_key =
            outcome.replayed || outcome.result == Err(Rejection::IdempotencyKeyReused);
        if let Some(expected) = expected.filter(|_| !repeated_key) {
            assert_eq!(outcome.result, Err(expected), "{request:?}");
        }
        if let Err(Rejection::Invalid { reason }) = &outcome.result {
            assert!(!reason.is_empty());
        }
        // A rejection changes nothing but the clock (and what time itself causes). Desk
        // tickets prune past slots before they look for a free one, so they are left out.
        let prunes = matches!(request.command, Command::CreateDeskTicket { .. });
        if outcome.result.is_err()
            && !outcome.replayed
            && request.idempotency_key.is_none()
            && !prunes
        {
            assert_eq!(outcome.effects, twin_outcome.effects);
            assert_eq!(
                self.engine.state_hash(),
                twin.state_hash(),
                "a rejected command changed the state: {request:?} -> {:?}",
                outcome.result
            );
        }
        self.seen.observe(&outcome);
        outcome
    }

    fn feed(&mut self, stamp: &Stamp, record: &Record) -> Outcome {
        let time_ms = self.time_of(stamp);
        let bytes = match record {
            Record::Request(request) => {
                let bytes = wire::encode_request(request);
                assert_eq!(
                    wire::decode_request(&bytes).as_ref(),
                    Ok(request),
                    "the wire format round-trips"
                );
                bytes
            }
            Record::Bytes(bytes) => bytes.clone(),
            Record::Corrupted {
                request,
                flips,
                keep,
            } => {
                let mut bytes = wire::encode_request(request);
                for (position, byte) in flips {
                    let length = bytes.len();
                    bytes[position % length] ^= byte;
                }
                bytes.truncate(keep % (bytes.len() + 1));
                bytes
            }
        };
        match wire::decode_request(&bytes) {
            Ok(request) => self.apply(time_ms, &request),
            Err(reason) => {
                assert!(!reason.is_empty());
                // An undecodable record is a tick with a rejection: same effects, same state.
                let mut twin =
                    Engine::from_state(self.engine.config().clone(), self.engine.state().clone());
                let outcome = self.engine.apply_undecodable(self.offset, time_ms, &reason);
                let outcome = self.engine.named(outcome);
                let twin_outcome = twin.apply(self.offset, time_ms, &Request::new(Command::Tick));
                let twin_outcome = twin.named(twin_outcome);
                self.offset += 1;
                self.engine.check_invariants();
                assert_eq!(outcome.result, Err(Rejection::Undecodable { reason }));
                assert!(!outcome.replayed);
                assert_eq!(
                    (outcome.time_ms, &outcome.effects),
                    (twin_outcome.time_ms, &twin_outcome.effects)
                );
                assert_eq!(self.engine.state_hash(), twin.state_hash());
                self.seen.observe(&outcome);
                outcome
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, max_shrink_iters: 4_000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_records_never_panic_and_keep_the_invariants(records in proptest::collection::vec((stamp(), record()), 1..60)) {
        let mut harness = Harness::new();
        for (stamp, record) in &records {
            harness.feed(stamp, record);
        }
    }

    #[test]
    fn random_bytes_decode_to_an_error_or_to_a_request_that_encodes_back(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut with_version = vec![wire::VERSION];
        with_version.extend_from_slice(&bytes);
        for record in [&bytes, &with_version] {
            match wire::decode_request(record) {
                Ok(request) => prop_assert_eq!(&wire::encode_request(&request), record),
                Err(reason) => prop_assert!(!reason.is_empty()),
            }
        }
    }
}

// ---- named nonsense, as a table ----------------------------------------------------------

fn hold_in_theatre(user: &str, selection: Selection) -> Command {
    Command::PlaceHold {
        user: user.into(),
        event: EventId(0),
        selection,
        wait: false,
    }
}

#[test]
fn nonsensical_commands_get_precise_rejections() {
    let mut harness = Harness::new();
    let placed = harness.apply(
        T0,
        &Request::new(hold_in_theatre(
            "ann",
            Selection::Seats(vec!["A-1-1".into()]),
        )),
    );
    let hold = common::hold_id(&placed.result);
    let not_found = |what| Err(Rejection::NotFound { what });
    let invalid = |reason: &str| {
        Err(Rejection::Invalid {
            reason: reason.into(),
        })
    };
    let best = |quantity| Selection::Best {
        quantity,
        category: None,
        together: false,
    };
    let priced = |price_cents| {
        let mut spec = common::theatre(1, 1);
        spec.categories[0].price_cents = price_cents;
        spec
    };
    let cases: Vec<(Command, Result<Reply, Rejection>)> = vec![
        (
            hold_in_theatre("", best(1)),
            invalid("user must not be empty"),
        ),
        (
            hold_in_theatre(&"u".repeat(1_025), best(1)),
            invalid("user is longer than 1024 bytes"),
        ),
        (
            hold_in_theatre("bob", best(0)),
            invalid("quantity must be at least 1"),
        ),
        (
            hold_in_theatre("bob", best(u32::MAX)),
            Err(Rejection::LimitExceeded {
                limit: Limit::SeatsPerOrder,
                max: 10,
            }),
        ),
        (
            hold_in_theatre("bob", Selection::Seats(vec![])),
            invalid("quantity must be at least 1"),
        ),
        (
            hold_in_theatre(
                "bob",
                Selection::Seats(vec!["".into(), "💺".into(), "A-1-1-1".into()]),
            ),
            Err(Rejection::UnknownSeats {
                seats: vec!["".into(), "💺".into(), "A-1-1-1".into()],
            }),
        ),
        (
            hold_in_theatre(
                "bob",
                Selection::Seats((1..=101).map(|seat| format!("A-1-{seat}")).collect()),
            ),
            Err(Rejection::LimitExceeded {
                limit: Limit::SeatsPerOrder,
                max: 10,
            }),
        ),
        (
            hold_in_theatre(
                "bob",
                Selection::Best {
                    quantity: 1,
                    category: Some("Nope".into()),
                    together: true,
                },
            ),
            not_found(NotFound::Category),
        ),
        (
            Command::PlaceHold {
                user: "bob".into(),
                event: EventId(u32::MAX),
                selection: best(1),
                wait: true,
            },
            not_found(NotFound::Event),
        ),
        (
            Command::ConfirmHold {
                user: "bob".into(),
                hold,
                payment_ref: "p".into(),
            },
            not_found(NotFound::Hold),
        ),
        (
            Command::ConfirmHold {
                user: "ann".into(),
                hold,
                payment_ref: "  ".into(),
            },
            invalid("payment_ref must not be empty"),
        ),
        (
            Command::ConfirmHold {
                user: "ann".into(),
                hold: HoldId(u64::MAX),
                payment_ref: "p".into(),
            },
            not_found(NotFound::Hold),
        ),
        (
            Command::ReleaseHold {
                user: "ann".into(),
                hold: HoldId(0),
            },
            not_found(NotFound::Hold),
        ),
        (
            Command::CancelBooking {
                user: "ann".into(),
                booking: BookingId(0),
            },
            not_found(NotFound::Booking),
        ),
        (
            Command::CancelBooking {
                user: "ann".into(),
                booking: BookingId(u64::MAX),
            },
            not_found(NotFound::Booking),
        ),
        (
            Command::JoinWaitlist {
                user: "bob".into(),
                event: EventId(0),
                quantity: 0,
                category: None,
                together: false,
            },
            invalid("quantity must be at least 1"),
        ),
        (
            Command::JoinWaitlist {
                user: "bob".into(),
                event: EventId(1),
                quantity: 6,
                category: None,
                together: false,
            },
            Err(Rejection::SoldOut {
                category: None,
                free: 5,
            }),
        ),
        (
            Command::LeaveWaitlist {
                user: "bob".into(),
                waiter: WaiterId(7),
            },
            not_found(NotFound::Waiter),
        ),
        (
            Command::CheckIn {
                tenant: "a".into(),
                event: EventId(0),
                code: "t_1_1.0123456789abcdef".into(),
            },
            not_found(NotFound::Ticket),
        ),
        (
            Command::CheckIn {
                tenant: "a".into(),
                event: EventId(0),
                code: "".into(),
            },
            not_found(NotFound::Ticket),
        ),
        (
            Command::CheckIn {
                tenant: "b".into(),
                event: EventId(0),
                code: "".into(),
            },
            not_found(NotFound::Event),
        ),
        (
            Command::CancelEvent {
                tenant: "b".into(),
                event: EventId(0),
            },
            not_found(NotFound::Event),
        ),
        (
            Command::UpdateEvent {
                tenant: "a".into(),
                event: EventId(0),
                patch: Box::new(EventPatch {
                    seats_per_user_max: Some(Some(0)),
                    ..EventPatch::default()
                }),
            },
            invalid("seats per user must be at least 1"),
        ),
        (
            Command::UpdateEvent {
                tenant: "a".into(),
                event: EventId(0),
                patch: Box::new(EventPatch {
                    sales_open_at_ms: Some(Some(5)),
                    sales_close_at_ms: Some(Some(5)),
                    ..EventPatch::default()
                }),
            },
            invalid("sales_close_at is not after sales_open_at"),
        ),
        (
            Command::CreateDeskTicket {
                user: "ann".into(),
                desk: DeskId(9),
                level: "Gold".into(),
                hold_only: false,
            },
            not_found(NotFound::Desk),
        ),
        (
            Command::CreateDeskTicket {
                user: "ann".into(),
                desk: DeskId(0),
                level: "Nope".into(),
                hold_only: false,
            },
            not_found(NotFound::Level),
        ),
        (
            Command::ConfirmDeskTicket {
                user: "ann".into(),
                desk: DeskId(0),
                ticket: DeskTicketId(0),
            },
            not_found(NotFound::DeskTicket),
        ),
        (
            Command::CancelDeskTicket {
                user: "ann".into(),
                desk: DeskId(u32::MAX),
                ticket: DeskTicketId(u64::MAX),
            },
            not_found(NotFound::DeskTicket),
        ),
        (
            Command::CreateEvent {
                tenant: " ".into(),
                spec: Box::new(common::theatre(1, 1)),
            },
            invalid("tenant must not be empty"),
        ),
        (
            Command::CreateEvent {
                tenant: "a".into(),
                spec: Box::new(EventSpec {
                    hold_ttl_ms: u64::MAX,
                    ..common::theatre(1, 1)
                }),
            },
            invalid("hold TTL must be from 1000 to 7200000 ms"),
        ),
        (
            Command::CreateEvent {
                tenant: "a".into(),
                spec: Box::new(EventSpec {
                    seats_per_order_max: u32::MAX,
                    ..common::theatre(1, 1)
                }),
            },
            invalid("seats per order must be from 1 to 100"),
        ),
        (
            Command::CreateEvent {
                tenant: "a".into(),
                spec: Box::new(common::festival(u32::MAX)),
            },
            invalid("a pool's capacity must be from 1 to 10000000"),
        ),
        (
            Command::CreateEvent {
                tenant: "a".into(),
                spec: Box::new(common::theatre(1, u32::MAX)),
            },
            invalid("an event has at most 1000000 seats in 100000 rows"),
        ),
        (
            Command::CreateEvent {
                tenant: "a".into(),
                spec: Box::new(common::theatre(1, 0)),
            },
            invalid(r#"row "1" in section "A" has no seats"#),
        ),
        (
            Command::CreateEvent {
                tenant: "a".into(),
                spec: Box::new(priced(PRICE_CENTS_MAX + 1)),
            },
            invalid(r#"category "Standard" costs more than 1000000000 cents"#),
        ),
        (
            Command::CreateEvent {
                tenant: "a".into(),
                spec: Box::new(priced(1 << 63)),
            },
            invalid(r#"category "Standard" costs more than 1000000000 cents"#),
        ),
        (
            Command::CreateEvent {
                tenant: "a".into(),
                spec: Box::new(priced(u64::MAX)),
            },
            invalid(r#"category "Standard" costs more than 1000000000 cents"#),
        ),
    ];
    for (command, expected) in cases {
        let outcome = harness.apply(T0, &Request::new(command.clone()));
        assert_eq!(outcome.result, expected, "{command:?}");
    }
    // The one live hold is untouched by all of that.
    assert_eq!(harness.engine.live_hold_count(), 1);
    assert_eq!(harness.engine.event_count(), 2);
}

#[test]
fn records_stamped_at_the_ends_of_time_are_applied() {
    let mut harness = Harness::new();
    let placed = harness.apply(
        T0,
        &Request::new(hold_in_theatre(
            "ann",
            Selection::Seats(vec!["A-1-1".into()]),
        )),
    );
    assert!(placed.result.is_ok());
    // Far in the past: applied at the clock's time, nothing expires.
    let outcome = harness.apply(0, &Request::new(Command::Tick));
    assert_eq!((outcome.time_ms, outcome.effects.len()), (T0, 0));
    // The end of time: everything due expires, and the engine still takes commands.
    let outcome = harness.apply(u64::MAX, &Request::new(Command::Tick));
    assert_eq!(outcome.time_ms, TIME_MS_MAX);
    assert!(matches!(outcome.effects[..], [Effect::HoldExpired { .. }]));
    let placed = harness.apply(
        u64::MAX,
        &Request::new(hold_in_theatre(
            "bob",
            Selection::Best {
                quantity: 2,
                category: None,
                together: true,
            },
        )),
    );
    assert!(
        matches!(&placed.result, Ok(Reply::HoldPlaced(view)) if view.items == Items::Seats(vec![0, 1].into())),
        "{placed:?}"
    );
    let joined = harness.apply(
        u64::MAX,
        &Request::new(Command::JoinWaitlist {
            user: "cat".into(),
            event: EventId(1),
            quantity: 1,
            category: None,
            together: false,
        }),
    );
    assert!(joined.result.is_ok(), "{joined:?}");
    let ticket = harness.apply(
        u64::MAX,
        &Request::new(Command::CreateDeskTicket {
            user: "dan".into(),
            desk: DeskId(0),
            level: "Gold".into(),
            hold_only: true,
        }),
    );
    assert!(
        matches!(ticket.result, Ok(_) | Err(Rejection::SlaUnavailable { .. })),
        "{ticket:?}"
    );
    let confirmed = harness.apply(
        u64::MAX,
        &Request::new(Command::ConfirmHold {
            user: "bob".into(),
            hold: common::hold_id(&placed.result),
            payment_ref: "p".into(),
        }),
    );
    assert!(
        matches!(confirmed.result, Ok(Reply::HoldConfirmed(_))),
        "{confirmed:?}"
    );
    // Held seats still expire at the end of time: the clock is clamped, not stuck.
    let joined = harness.apply(
        u64::MAX,
        &Request::new(Command::JoinWaitlist {
            user: "eve".into(),
            event: EventId(0),
            quantity: 1,
            category: None,
            together: false,
        }),
    );
    assert!(joined.result.is_ok(), "{joined:?}");
}

#[test]
fn desk_specs_with_extreme_durations_are_refused_and_bounded_ones_never_overflow() {
    let mut harness = Harness::new();
    let spec = |slot_ms, horizon_ms, deadline_ms| DeskSpec {
        name: "Edge".into(),
        agents: 1,
        slot_ms,
        horizon_ms,
        levels: vec![LevelSpec {
            name: "L".into(),
            deadline_ms,
        }],
        hold_ttl_ms: 60_000,
    };
    let too_long = Err(Rejection::Invalid {
        reason: "a desk's horizon and deadlines must be at most DURATION_MS_MAX".into(),
    });
    for (slot_ms, horizon_ms, deadline_ms) in [
        (u64::MAX, u64::MAX, u64::MAX),
        (1_000, 1_000, u64::MAX),
        (u64::MAX / 2, u64::MAX / 2, u64::MAX / 2),
    ] {
        let created = harness.apply(
            T0,
            &Request::new(Command::CreateDesk {
                tenant: "a".into(),
                spec: Box::new(spec(slot_ms, horizon_ms, deadline_ms)),
            }),
        );
        assert_eq!(created.result, too_long);
    }
    let longest = DURATION_MS_MAX;
    let created = harness.apply(
        T0,
        &Request::new(Command::CreateDesk {
            tenant: "a".into(),
            spec: Box::new(spec(longest / 4, longest, longest)),
        }),
    );
    let Ok(Reply::DeskCreated { desk, .. }) = created.result else {
        panic!("{created:?}")
    };
    for time_ms in [T0, T0, TIME_MS_MAX - 1, u64::MAX, u64::MAX] {
        let ticket = harness.apply(
            time_ms,
            &Request::new(Command::CreateDeskTicket {
                user: "ann".into(),
                desk,
                level: "L".into(),
                hold_only: true,
            }),
        );
        assert!(
            matches!(
                ticket.result,
                Ok(Reply::DeskTicketCreated(_)) | Err(Rejection::SlaUnavailable { .. })
            ),
            "{ticket:?}"
        );
    }
}

#[test]
fn an_event_with_more_sections_than_a_section_index_holds_is_refused() {
    let mut harness = Harness::new();
    let mut spec = common::theatre(1, 1);
    spec.sections.extend((0..70_000).map(|index| SectionSpec {
        name: format!("s{index}"),
        rows: vec![common::theatre(1, 1).sections[0].rows[0].clone()],
    }));
    let outcome = harness.apply(
        T0,
        &Request::new(Command::CreateEvent {
            tenant: "a".into(),
            spec: Box::new(spec),
        }),
    );
    assert_eq!(
        outcome.result,
        Err(Rejection::Invalid {
            reason: "an event has at most 65535 sections".into()
        })
    );
    // Empty sections are no seating: an event of nothing but those is refused too.
    let mut spec = common::festival(1);
    spec.general_admission.clear();
    spec.sections = vec![SectionSpec {
        name: "A".into(),
        rows: vec![],
    }];
    let outcome = harness.apply(
        T0,
        &Request::new(Command::CreateEvent {
            tenant: "a".into(),
            spec: Box::new(spec),
        }),
    );
    assert_eq!(
        outcome.result,
        Err(Rejection::Invalid {
            reason: r#"section "A" has no rows"#.into()
        })
    );
}
