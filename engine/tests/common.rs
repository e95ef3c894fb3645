//! Shared test helpers: a harness that feeds commands with increasing offsets and a
//! controllable log clock, and small builders for events.
#![allow(dead_code, unreachable_pub)]

use engine::*;

pub struct Harness {
    pub engine: Engine,
    pub offset: u64,
    pub now_ms: u64,
}

pub const T0: u64 = 1_800_000_000_000;

impl Default for Harness {
    fn default() -> Harness {
        Harness::new()
    }
}

impl Harness {
    pub fn new() -> Harness {
        Harness {
            engine: Engine::new(EngineConfig::default()),
            offset: 0,
            now_ms: T0,
        }
    }

    pub fn with_config(config: EngineConfig) -> Harness {
        Harness {
            engine: Engine::new(config),
            offset: 0,
            now_ms: T0,
        }
    }

    pub fn run(&mut self, command: Command) -> Outcome {
        self.send(Request::new(command))
    }

    pub fn send(&mut self, request: Request) -> Outcome {
        let outcome = self.engine.apply(self.offset, self.now_ms, &request);
        self.offset += 1;
        self.engine.check_invariants();
        self.engine.named(outcome)
    }

    pub fn advance(&mut self, ms: u64) -> Outcome {
        self.now_ms += ms;
        self.run(Command::Tick)
    }

    pub fn create(&mut self, spec: EventSpec) -> EventId {
        match self
            .run(Command::CreateEvent {
                tenant: "t1".into(),
                spec: Box::new(spec),
            })
            .result
        {
            Ok(Reply::EventCreated { event, .. }) => event,
            other => panic!("create failed: {other:?}"),
        }
    }

    pub fn hold_seats(
        &mut self,
        user: &str,
        event: EventId,
        seats: &[&str],
    ) -> Result<Reply, Rejection> {
        self.run(Command::PlaceHold {
            user: user.into(),
            event,
            selection: Selection::Seats(seats.iter().map(|s| s.to_string()).collect()),
            wait: false,
        })
        .result
    }

    pub fn hold_best(
        &mut self,
        user: &str,
        event: EventId,
        quantity: u32,
        category: Option<&str>,
        together: bool,
    ) -> Outcome {
        self.run(Command::PlaceHold {
            user: user.into(),
            event,
            selection: Selection::Best {
                quantity,
                category: category.map(String::from),
                together,
            },
            wait: false,
        })
    }

    pub fn seat_labels(&self, event: EventId, items: &Items) -> Vec<String> {
        match items {
            Items::Seats(seats) => seats
                .iter()
                .map(|&seat| self.engine.seat_label(event, seat).unwrap())
                .collect(),
            Items::Pool { quantity, .. } => vec![format!("GA x{quantity}")],
        }
    }
}

pub fn hold_id(result: &Result<Reply, Rejection>) -> HoldId {
    match result {
        Ok(Reply::HoldPlaced(view)) => view.hold,
        other => panic!("expected a hold, got {other:?}"),
    }
}

pub fn booking_id(result: &Result<Reply, Rejection>) -> BookingId {
    match result {
        Ok(Reply::HoldConfirmed(view)) => view.booking,
        other => panic!("expected a booking, got {other:?}"),
    }
}

/// A reserved-seating event: `rows` rows of `seats` seats in section A, all "Standard".
pub fn theatre(rows: u32, seats: u32) -> EventSpec {
    EventSpec {
        name: "Show".into(),
        description: String::new(),
        city: "Lyon".into(),
        country: "FR".into(),
        venue: "Opera".into(),
        starts_at_ms: T0 + 86_400_000,
        ends_at_ms: None,
        sales_open_at_ms: None,
        sales_close_at_ms: None,
        hold_ttl_ms: 300_000,
        seats_per_order_max: 10,
        seats_per_user_max: None,
        waitlist_policy: WaitlistPolicy::Strict,
        categories: vec![CategorySpec {
            name: "Standard".into(),
            price_cents: 5_000,
        }],
        sections: vec![SectionSpec {
            name: "A".into(),
            rows: (1..=rows)
                .map(|row| RowSpec {
                    label: row.to_string(),
                    seats,
                    category: "Standard".into(),
                })
                .collect(),
        }],
        general_admission: vec![],
    }
}

/// A general-admission event with one pool.
pub fn festival(capacity: u32) -> EventSpec {
    EventSpec {
        sections: vec![],
        general_admission: vec![PoolSpec {
            category: "Standard".into(),
            capacity,
        }],
        ..theatre(0, 0)
    }
}

/// One line per outcome, with seat labels, so table tests read like a transcript.
pub fn render(engine: &Engine, outcome: &Outcome) -> String {
    let items = |event: EventId, items: &Items| match items {
        Items::Seats(seats) => format!(
            "[{}]",
            seats
                .iter()
                .map(|&seat| engine.seat_label(event, seat).unwrap())
                .collect::<Vec<_>>()
                .join(",")
        ),
        Items::Pool { category, quantity } => format!("[pool{category} x{quantity}]"),
    };
    let mut line = match &outcome.result {
        Ok(Reply::HoldPlaced(view)) => {
            format!("held {} {}", view.hold, items(view.event, &view.items))
        }
        Ok(Reply::HoldConfirmed(view)) => format!(
            "booked {} {} {}c",
            view.booking,
            items(view.event, &view.items),
            view.total_cents
        ),
        Ok(Reply::HoldReleased {
            hold,
            event,
            items: held,
            ..
        }) => format!("released {hold} {}", items(*event, held)),
        Ok(Reply::BookingCanceled {
            booking,
            event,
            items: booked,
            ..
        }) => format!("canceled {booking} {}", items(*event, booked)),
        Ok(Reply::Waitlisted {
            waiter, position, ..
        }) => format!("waitlisted {waiter} #{position}"),
        Ok(Reply::WaitlistJoined {
            waiter, position, ..
        }) => format!("joined {waiter} #{position}"),
        Ok(Reply::WaitlistLeft { waiter, .. }) => format!("left {waiter}"),
        Ok(Reply::Entered { waiter, .. }) => format!("entered {waiter}"),
        Ok(Reply::Ticked) => "tick".to_string(),
        Ok(Reply::EventCanceled {
            released_holds,
            canceled_bookings,
            ended_waiters,
            ..
        }) => {
            format!("event canceled holds={released_holds:?} bookings={canceled_bookings:?} waiters={ended_waiters:?}")
        }
        Ok(Reply::CheckedIn { ticket, .. }) => format!("checked in {ticket}"),
        Ok(Reply::DeskCreated { desk, tenant, .. }) => format!("desk {desk} of {tenant}"),
        Ok(Reply::DeskTicketCreated(view)) => format!("ticket {}", desk_ticket(view)),
        Ok(Reply::DeskTicketConfirmed(view)) => format!("confirmed {}", desk_ticket(view)),
        Ok(Reply::DeskTicketCanceled { ticket, .. }) => format!("canceled {ticket}"),
        Ok(other) => format!("{other:?}"),
        Err(Rejection::SlaUnavailable {
            earliest_start_ms: Some(earliest),
        }) => format!("rejected sla_unavailable earliest {}", clock(*earliest)),
        Err(Rejection::SeatsUnavailable { seats }) => {
            format!(
                "rejected seats_unavailable [{}]",
                seats
                    .iter()
                    .map(|&seat| engine.seat_label(EventId(0), seat).unwrap())
                    .collect::<Vec<_>>()
                    .join(",")
            )
        }
        Err(rejection) => format!("rejected {rejection:?}"),
    };
    if outcome.replayed {
        line.push_str(" (replayed)");
    }
    for effect in &outcome.effects {
        line.push_str(" | ");
        line.push_str(&match effect {
            Effect::HoldExpired {
                hold,
                event,
                items: held,
                ..
            } => format!("expired {hold} {}", items(*event, held)),
            Effect::WaitlistOffered { waiter, hold } => format!(
                "offered {waiter} {} {}",
                hold.hold,
                items(hold.event, &hold.items)
            ),
            Effect::WaitlistEnded { waiter, reason, .. } => format!("ended {waiter} {reason:?}"),
            Effect::DeskHoldExpired { ticket, .. } => format!("desk hold expired {ticket}"),
            Effect::DrawOpened {
                event,
                opens_at_ms,
                draws_at_ms,
                ..
            } => format!(
                "draw of {event} opens {} draws {}",
                clock(*opens_at_ms),
                clock(*draws_at_ms)
            ),
            Effect::DrawMade {
                event,
                source,
                order,
                ..
            } => format!(
                "drew {event} {source:?}: {}",
                order
                    .iter()
                    .map(|waiter| waiter.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Effect::EventTermsSet { event, terms } => format!(
                "terms of {event}: {} cancel {} refund {}",
                terms.currency,
                terms
                    .cancellation
                    .until_hours_before_start
                    .map_or("any time".to_string(), |hours| format!(
                        "until {hours}h before"
                    )),
                terms.cancellation.refund.as_str()
            ),
        });
    }
    line
}

/// Log time as an offset from `T0`: `+HH:MM:SS`, with `.mmm` when not a whole second.
pub fn clock(time_ms: u64) -> String {
    let offset_ms = time_ms - T0;
    let seconds = offset_ms / 1_000;
    let mut text = format!(
        "+{:02}:{:02}:{:02}",
        seconds / 3_600,
        seconds / 60 % 60,
        seconds % 60
    );
    if !offset_ms.is_multiple_of(1_000) {
        text.push_str(&format!(".{:03}", offset_ms % 1_000));
    }
    text
}

/// `dt_1 agent 0 +00:00:00..+00:30:00 by +02:00:00`, plus `held to ...` while validated.
pub fn desk_ticket(view: &DeskTicketView) -> String {
    let mut text = format!(
        "{} agent {} {}..{} by {}",
        view.ticket,
        view.agent,
        clock(view.slot_start_ms),
        clock(view.slot_end_ms),
        clock(view.resolve_by_ms)
    );
    if let Some(expires) = view.hold_expires_at_ms {
        text.push_str(&format!(" held to {}", clock(expires)));
    }
    text
}

/// A desk of `tenant` with the default levels (gold 2 h, silver 4 h, bronze 8 h), an
/// 8 h horizon and a 5-minute hold TTL.
pub fn desk_spec(agents: u32, slot_minutes: u64) -> DeskSpec {
    let level = |name: &str, hours: u64| LevelSpec {
        name: name.into(),
        deadline_ms: hours * 3_600_000,
    };
    DeskSpec {
        name: "Support".into(),
        agents,
        slot_ms: slot_minutes * 60_000,
        horizon_ms: 8 * 3_600_000,
        levels: vec![level("gold", 2), level("silver", 4), level("bronze", 8)],
        hold_ttl_ms: 300_000,
    }
}

pub fn create_desk(tenant: &str, spec: DeskSpec) -> Command {
    Command::CreateDesk {
        tenant: tenant.into(),
        spec: Box::new(spec),
    }
}

pub fn desk_ticket_of(user: &str, desk: u32, level: &str) -> Command {
    Command::CreateDeskTicket {
        user: user.into(),
        desk: DeskId(desk),
        level: level.into(),
        hold_only: false,
    }
}

pub fn validate_desk_ticket(user: &str, desk: u32, level: &str) -> Command {
    Command::CreateDeskTicket {
        user: user.into(),
        desk: DeskId(desk),
        level: level.into(),
        hold_only: true,
    }
}

pub fn allocate_desk_ticket(user: &str, desk: u32, ticket: u64) -> Command {
    Command::ConfirmDeskTicket {
        user: user.into(),
        desk: DeskId(desk),
        ticket: DeskTicketId(ticket),
    }
}

pub fn cancel_desk_ticket(user: &str, desk: u32, ticket: u64) -> Command {
    Command::CancelDeskTicket {
        user: user.into(),
        desk: DeskId(desk),
        ticket: DeskTicketId(ticket),
    }
}

/// Applies `command` and compares the rendered outcome with `expected`.
#[track_caller]
pub fn check(harness: &mut Harness, command: Command, expected: &str) -> Outcome {
    let outcome = harness.run(command);
    assert_eq!(render(&harness.engine, &outcome), expected);
    outcome
}

pub fn hold(user: &str, event: EventId, seats: &[&str]) -> Command {
    Command::PlaceHold {
        user: user.into(),
        event,
        selection: Selection::Seats(seats.iter().map(|s| s.to_string()).collect()),
        wait: false,
    }
}

pub fn best(user: &str, event: EventId, quantity: u32, together: bool) -> Command {
    Command::PlaceHold {
        user: user.into(),
        event,
        selection: Selection::Best {
            quantity,
            category: None,
            together,
        },
        wait: false,
    }
}

pub fn best_or_wait(user: &str, event: EventId, quantity: u32, together: bool) -> Command {
    Command::PlaceHold {
        user: user.into(),
        event,
        selection: Selection::Best {
            quantity,
            category: None,
            together,
        },
        wait: true,
    }
}

pub fn confirm(user: &str, hold: u64) -> Command {
    Command::ConfirmHold {
        user: user.into(),
        hold: HoldId(hold),
        payment_ref: "pay-1".into(),
    }
}

pub fn release(user: &str, hold: u64) -> Command {
    Command::ReleaseHold {
        user: user.into(),
        hold: HoldId(hold),
    }
}

pub fn join(user: &str, event: EventId, quantity: u32, together: bool) -> Command {
    Command::JoinWaitlist {
        user: user.into(),
        event,
        quantity,
        category: None,
        together,
    }
}

/// `theatre(rows, seats)` ("Standard" seats) plus a "Floor" standing pool of `floor`
/// places: category 0 is seated, category 1 (`pool1` in transcripts) general admission.
pub fn arena(rows: u32, seats: u32, floor: u32) -> EventSpec {
    let mut spec = theatre(rows, seats);
    spec.categories.push(CategorySpec {
        name: "Floor".into(),
        price_cents: 2_000,
    });
    spec.general_admission.push(PoolSpec {
        category: "Floor".into(),
        capacity: floor,
    });
    spec
}

/// Best available of a named category (or any), failing instead of waiting.
pub fn best_of(
    user: &str,
    event: EventId,
    quantity: u32,
    category: Option<&str>,
    together: bool,
) -> Command {
    Command::PlaceHold {
        user: user.into(),
        event,
        selection: Selection::Best {
            quantity,
            category: category.map(String::from),
            together,
        },
        wait: false,
    }
}

pub fn join_of(
    user: &str,
    event: EventId,
    quantity: u32,
    category: Option<&str>,
    together: bool,
) -> Command {
    Command::JoinWaitlist {
        user: user.into(),
        event,
        quantity,
        category: category.map(String::from),
        together,
    }
}

pub fn leave(user: &str, waiter: u64) -> Command {
    Command::LeaveWaitlist {
        user: user.into(),
        waiter: WaiterId(waiter),
    }
}

/// A command with every id in it rewritten by `id` (applied to the number inside the
/// id; u32 ids that no longer fit become `u32::MAX`, which names nothing). A check-in
/// code is re-derived for its rewritten ticket when it is genuine (under `secret`) and
/// keeps its forged MAC otherwise.
pub fn map_command_ids(
    command: &Command,
    secret: &[u8],
    id: &mut dyn FnMut(u64) -> u64,
) -> Command {
    let mut command = command.clone();
    match &mut command {
        Command::UpdateEvent { event, .. }
        | Command::CancelEvent { event, .. }
        | Command::PlaceHold { event, .. }
        | Command::RevealDrawSeed { event, .. }
        | Command::OpenArrivalWindow { event, .. }
        | Command::JoinWaitlist { event, .. }
        | Command::JoinWaitlistIndexed { event, .. } => *event = map_event(*event, id),
        Command::CheckIn { event, code, .. } => {
            *event = map_event(*event, id);
            *code = match tickets::verify(secret, code) {
                Some(ticket) => tickets::code(secret, map_ticket(ticket, id)),
                None => match code.split_once('.') {
                    Some((ticket, mac)) => match TicketId::parse(ticket) {
                        Some(ticket) => format!("{}.{mac}", map_ticket(ticket, id)),
                        None => code.clone(),
                    },
                    None => code.clone(),
                },
            };
        }
        Command::CheckInTicket { event, ticket, .. } => {
            *event = map_event(*event, id);
            *ticket = map_ticket(*ticket, id);
        }
        Command::ConfirmHold { hold, .. } | Command::ReleaseHold { hold, .. } => {
            hold.0 = id(hold.0)
        }
        Command::CancelBooking { booking, .. } => booking.0 = id(booking.0),
        Command::LeaveWaitlist { waiter, .. } => waiter.0 = id(waiter.0),
        Command::CreateDeskTicket { desk, .. } => *desk = map_desk(*desk, id),
        Command::ConfirmDeskTicket { desk, ticket, .. }
        | Command::CancelDeskTicket { desk, ticket, .. } => {
            *desk = map_desk(*desk, id);
            ticket.0 = id(ticket.0);
        }
        Command::CreateEvent { .. }
        | Command::CreateEventWithDraw { .. }
        | Command::CreateEventWithTerms { .. }
        | Command::CreateDesk { .. }
        | Command::Tick
        | Command::Promote { .. }
        | Command::Configure { .. } => {}
    }
    command
}

/// An outcome with every id in its reply and effects rewritten by `id` (see
/// [`map_command_ids`]); its idempotency stamp is left as it is.
pub fn map_outcome_ids(outcome: &Outcome, id: &mut dyn FnMut(u64) -> u64) -> Outcome {
    let mut outcome = outcome.clone();
    if let Ok(reply) = &mut outcome.result {
        match reply {
            Reply::EventCreated { event, .. }
            | Reply::EventUpdated { event, .. }
            | Reply::WaitlistJoined { event, .. }
            | Reply::Waitlisted { event, .. }
            | Reply::WaitlistLeft { event, .. }
            | Reply::HoldReleased { event, .. }
            | Reply::BookingCanceled { event, .. }
            | Reply::CheckedIn { event, .. }
            | Reply::Entered { event, .. }
            | Reply::DrawSeedRevealed { event, .. }
            | Reply::ArrivalWindowOpened { event }
            | Reply::EventCanceled { event, .. } => *event = map_event(*event, id),
            Reply::HoldPlaced(_)
            | Reply::HoldConfirmed(_)
            | Reply::DeskCreated { .. }
            | Reply::DeskTicketCreated(_)
            | Reply::DeskTicketConfirmed(_)
            | Reply::DeskTicketCanceled { .. }
            | Reply::Ticked
            | Reply::Promoted { .. }
            | Reply::Configured => {}
        }
        match reply {
            Reply::EventCanceled {
                released_holds,
                canceled_bookings,
                ended_waiters,
                ..
            } => {
                released_holds
                    .iter_mut()
                    .for_each(|hold| hold.0 = id(hold.0));
                canceled_bookings
                    .iter_mut()
                    .for_each(|booking| booking.0 = id(booking.0));
                ended_waiters
                    .iter_mut()
                    .for_each(|waiter| waiter.0 = id(waiter.0));
            }
            Reply::CheckedIn { ticket, .. } => *ticket = map_ticket(*ticket, id),
            Reply::HoldPlaced(view) => map_hold_view(view, id),
            Reply::HoldConfirmed(view) => {
                view.booking.0 = id(view.booking.0);
                view.hold.0 = id(view.hold.0);
                view.event = map_event(view.event, id);
            }
            Reply::Waitlisted { waiter, .. }
            | Reply::Entered { waiter, .. }
            | Reply::WaitlistJoined { waiter, .. }
            | Reply::WaitlistLeft { waiter, .. } => waiter.0 = id(waiter.0),
            Reply::HoldReleased { hold, .. } => hold.0 = id(hold.0),
            Reply::BookingCanceled { booking, .. } => booking.0 = id(booking.0),
            Reply::DeskCreated { desk, .. } => *desk = map_desk(*desk, id),
            Reply::DeskTicketCreated(view) | Reply::DeskTicketConfirmed(view) => {
                view.desk = map_desk(view.desk, id);
                view.ticket.0 = id(view.ticket.0);
            }
            Reply::DeskTicketCanceled { desk, ticket, .. } => {
                *desk = map_desk(*desk, id);
                ticket.0 = id(ticket.0);
            }
            _ => {}
        }
    }
    for effect in &mut outcome.effects {
        match effect {
            Effect::HoldExpired {
                hold,
                event,
                waiter,
                ..
            } => {
                hold.0 = id(hold.0);
                *event = map_event(*event, id);
                if let Some(waiter) = waiter {
                    waiter.0 = id(waiter.0);
                }
            }
            Effect::WaitlistOffered { waiter, hold } => {
                waiter.0 = id(waiter.0);
                map_hold_view(hold, id);
            }
            Effect::WaitlistEnded { waiter, event, .. } => {
                waiter.0 = id(waiter.0);
                *event = map_event(*event, id);
            }
            Effect::DeskHoldExpired { desk, ticket, .. } => {
                *desk = map_desk(*desk, id);
                ticket.0 = id(ticket.0);
            }
            Effect::DrawOpened { event, .. } | Effect::EventTermsSet { event, .. } => {
                *event = map_event(*event, id)
            }
            Effect::DrawMade { event, order, .. } => {
                *event = map_event(*event, id);
                order.iter_mut().for_each(|waiter| waiter.0 = id(waiter.0));
            }
        }
    }
    outcome
}

fn map_hold_view(view: &mut HoldView, id: &mut dyn FnMut(u64) -> u64) {
    view.hold.0 = id(view.hold.0);
    view.event = map_event(view.event, id);
    if let Some(waiter) = &mut view.waiter {
        waiter.0 = id(waiter.0);
    }
}

fn map_event(event: EventId, id: &mut dyn FnMut(u64) -> u64) -> EventId {
    EventId(u32::try_from(id(u64::from(event.0))).unwrap_or(u32::MAX))
}

fn map_desk(desk: DeskId, id: &mut dyn FnMut(u64) -> u64) -> DeskId {
    DeskId(u32::try_from(id(u64::from(desk.0))).unwrap_or(u32::MAX))
}

fn map_ticket(ticket: TicketId, id: &mut dyn FnMut(u64) -> u64) -> TicketId {
    TicketId {
        booking: BookingId(id(ticket.booking.0)),
        index: ticket.index,
    }
}

/// Shard `index` of `count` as the tests restate it: the `local`-th object of a kind
/// (table row, or sequence number from 1 for holds, bookings, waiters, desk tickets)
/// has id `local * count + index`; numbers past a u64 saturate (they name nothing).
pub fn shard_id(index: u32, count: u32) -> impl FnMut(u64) -> u64 {
    move |local| {
        local
            .checked_mul(u64::from(count))
            .and_then(|id| id.checked_add(u64::from(index)))
            .unwrap_or(u64::MAX)
    }
}

/// Where the shard tests run a workload: the one shard, and shards of three and four.
pub const SHARD_PLACES: [(u32, u32); 4] = [(0, 1), (0, 3), (2, 3), (1, 4)];

/// Applies a log (offset, log time, request) to a single-shard engine and, for each place
/// in [`SHARD_PLACES`], to an engine of that shard with every id in every request
/// translated into the shard's ([`shard_id`]). Each outcome of the shard must be the
/// single-shard engine's with its ids translated the same way (the same decisions: the
/// same seats, refusals and effects, in the same order); every id in it must be the
/// shard's own; `check_invariants` must hold after every request; and at the end every
/// event has the same seats and counts as its single-shard twin, and every desk slot the
/// same busy agents.
pub fn assert_shards_decide_alike(config: &EngineConfig, log: &[(u64, u64, Request)]) {
    for (index, count) in SHARD_PLACES {
        let mut single = Engine::new(config.clone());
        let mut shard = Engine::new(EngineConfig {
            shard: ShardPlace { index, count },
            ..config.clone()
        });
        for (offset, time_ms, request) in log {
            let expected = single.apply(*offset, *time_ms, request);
            let expected = single.named(expected);
            let translated = Request {
                idempotency_key: request.idempotency_key.clone(),
                command: map_command_ids(
                    &request.command,
                    &config.ticket_secret,
                    &mut shard_id(index, count),
                ),
            };
            let outcome = shard.apply(*offset, *time_ms, &translated);
            let outcome = shard.named(outcome);
            map_outcome_ids(&outcome, &mut |id| {
                assert_eq!(
                    id % u64::from(count),
                    u64::from(index),
                    "shard {index} of {count} gave out id {id} at offset {offset}: {outcome:?}"
                );
                id
            });
            let mut expected = map_outcome_ids(&expected, &mut shard_id(index, count));
            expected.idempotency = expected.idempotency.and(
                translated
                    .idempotency_key
                    .as_deref()
                    .and_then(|key| IdempotencyStamp::of(&translated.command, key)),
            );
            assert_eq!(
                outcome, expected,
                "shard {index} of {count} at offset {offset}: {translated:?}"
            );
            shard.check_invariants();
        }
        assert_eq!(shard.event_count(), single.event_count());
        for (local, (event, twin)) in single.event_ids().zip(shard.event_ids()).enumerate() {
            assert_eq!(u64::from(twin.0), shard_id(index, count)(local as u64));
            assert_eq!(shard.availability(twin), single.availability(event));
            for seat in 0..single.seat_count(event).unwrap() {
                assert_eq!(
                    shard.seat_status(twin, seat),
                    single.seat_status(event, seat)
                );
            }
        }
        for local in 0..4u32 {
            let desk = DeskId(local);
            let twin = DeskId(shard_id(index, count)(u64::from(local)) as u32);
            assert_eq!(shard.desk_tenant(twin), single.desk_tenant(desk));
            let slot_ms = 1_000;
            let now_ms = single.now_ms() / slot_ms * slot_ms;
            for slot_start_ms in (0..64).map(|slot| now_ms + slot * slot_ms) {
                assert_eq!(
                    shard.desk_busy_agents(twin, slot_start_ms),
                    single.desk_busy_agents(desk, slot_start_ms)
                );
            }
        }
        assert_eq!(shard.live_hold_count(), single.live_hold_count());
        assert_eq!(shard.booking_count(), single.booking_count());
        assert_eq!(shard.waiting_count(), single.waiting_count());
        assert_eq!(shard.next_due_ms(), single.next_due_ms());
        assert_eq!(shard.now_ms(), single.now_ms());
    }
}
