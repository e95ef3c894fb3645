//! Deterministic workloads for measuring the engine, shared by the criterion benches
//! (`benches/engine.rs`), the scale report (`src/bin/engine_scale.rs`) and, later, the
//! load generator.
//!
//! - [`Venues`]: the events a run sells: the standard on-sale (one 50,000-seat stadium
//!   with a 10,000-place standing pool, and 200 shows of 2,000 seats) or the 20-million-
//!   seat scale setup (400 stadiums).
//! - [`Generator`]: the standard mix, a seeded state machine that turns a slot into a
//!   [`Request`] ([`Generator::next_record`]) and learns hold and booking ids from the engine's
//!   answers ([`Generator::observe`]). The same seed and the same answers give the same
//!   requests; since the engine is deterministic, the same seed gives the same log.
//! - [`record`] runs the generator against a scratch engine and keeps the log, so a
//!   benchmark can replay it on a fresh engine and time nothing but `Engine::apply`.
//!
//! The standard mix, in percent of commands ([`STANDARD_MIX`]): exact-seat holds 24,
//! best-available together 12, best-available not together 8, general-admission holds 8,
//! confirms 20, releases 8, booking cancels 4, waitlist joins 4, ticks 12. Traffic goes
//! 30% to the stadium and 70% spread over the shows. Log time moves 0–3 ms per command
//! and 50–500 ms per tick; holds live 2 minutes (plus the 5 s grace), so a long log also
//! exercises expiry. Users are drawn from 100,000.

/// The allocator of the `boxoffice` binary, so the benches (every binary linking this
/// library) measure the engine as it runs there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use engine::{
    BookingId, Command, Effect, Engine, EngineConfig, EventId, EventSpec, HoldId, Outcome,
    PoolSpec, Reply, Request, RowSpec, SectionSpec, Selection, UserRef, WaitlistPolicy,
};
use std::collections::VecDeque;

/// Log time of the first record: 2027-01-15.
pub const START_MS: u64 = 1_800_000_000_000;
/// How long a hold lives before its grace starts.
pub const HOLD_TTL_MS: u64 = 120_000;
pub const USERS: u64 = 100_000;

/// The kinds of command in a mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    HoldExact,
    HoldBestTogether,
    HoldBestAny,
    HoldGeneralAdmission,
    Confirm,
    Release,
    CancelBooking,
    JoinWaitlist,
    Tick,
}

/// The standard mix: (kind, percent of commands).
pub const STANDARD_MIX: [(Kind, u32); 9] = [
    (Kind::HoldExact, 24),
    (Kind::HoldBestTogether, 12),
    (Kind::HoldBestAny, 8),
    (Kind::HoldGeneralAdmission, 8),
    (Kind::Confirm, 20),
    (Kind::Release, 8),
    (Kind::CancelBooking, 4),
    (Kind::JoinWaitlist, 4),
    (Kind::Tick, 12),
];

const _: () = {
    let mut total = 0;
    let mut index = 0;
    while index < STANDARD_MIX.len() {
        total += STANDARD_MIX[index].1;
        index += 1;
    }
    assert!(total == 100, "the mix is in percent");
};

/// The next of a bench binary's positional arguments, parsed, or `default` when it is
/// not given; a malformed one stops the binary, naming the argument (`name`).
pub fn next_arg<T>(args: &mut impl Iterator<Item = String>, default: T, name: &str) -> T
where
    T: std::str::FromStr,
    T::Err: std::fmt::Debug,
{
    args.next().map_or(default, |arg| {
        arg.parse()
            .unwrap_or_else(|error| panic!("{name} {arg:?}: {error:?}"))
    })
}

/// The median of `values` (the upper one of an even count), for the bench binaries'
/// repeated rounds.
pub fn median(values: &mut [f64]) -> f64 {
    assert!(!values.is_empty(), "a median of something");
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// splitmix64: small, fast, and the same on every machine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (bound > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0);
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A venue's shape: `sections × rows × seats`, row categories by section, an optional
/// standing pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    pub sections: u32,
    pub rows_per_section: u32,
    pub seats_per_row: u32,
    /// Sections before this index are the first category, the rest the second.
    pub premium_sections: u32,
    pub standing: u32,
}

impl Shape {
    /// 50 sections × 40 rows × 25 seats = 50,000 seats, plus 10,000 standing.
    pub const STADIUM: Shape = Shape {
        sections: 50,
        rows_per_section: 40,
        seats_per_row: 25,
        premium_sections: 10,
        standing: 10_000,
    };
    /// 2 sections × 20 rows × 50 seats = 2,000 seats.
    pub const SHOW: Shape = Shape {
        sections: 2,
        rows_per_section: 20,
        seats_per_row: 50,
        premium_sections: 1,
        standing: 0,
    };

    pub fn seats(&self) -> u32 {
        self.sections * self.rows_per_section * self.seats_per_row
    }

    /// The category names: premium, standard, and standing when there is a pool.
    pub fn categories(&self) -> Vec<&'static str> {
        let mut names = vec!["Premium", "Standard"];
        if self.standing > 0 {
            names.push("Standing");
        }
        names
    }

    pub fn spec(&self, name: &str) -> EventSpec {
        let category = |section: u32| {
            if section < self.premium_sections {
                "Premium"
            } else {
                "Standard"
            }
        };
        EventSpec {
            name: name.into(),
            description: String::new(),
            city: "Lyon".into(),
            country: "FR".into(),
            venue: name.into(),
            starts_at_ms: START_MS + 30 * 86_400_000,
            ends_at_ms: None,
            sales_open_at_ms: None,
            sales_close_at_ms: None,
            hold_ttl_ms: HOLD_TTL_MS,
            seats_per_order_max: 8,
            seats_per_user_max: Some(8),
            waitlist_policy: WaitlistPolicy::Strict,
            categories: self
                .categories()
                .into_iter()
                .enumerate()
                .map(|(index, name)| engine::CategorySpec {
                    name: name.into(),
                    price_cents: 2_000 * (3 - index as u64),
                })
                .collect(),
            sections: (0..self.sections)
                .map(|section| SectionSpec {
                    name: format!("S{}", section + 1),
                    rows: (0..self.rows_per_section)
                        .map(|row| RowSpec {
                            label: (row + 1).to_string(),
                            seats: self.seats_per_row,
                            category: category(section).into(),
                        })
                        .collect(),
                })
                .collect(),
            general_admission: if self.standing > 0 {
                vec![PoolSpec {
                    category: "Standing".into(),
                    capacity: self.standing,
                }]
            } else {
                vec![]
            },
        }
    }

    /// The label of a seat given by (section, row, number), all from 0.
    pub fn label(section: u32, row: u32, number: u32) -> String {
        format!("S{}-{}-{}", section + 1, row + 1, number + 1)
    }

    /// The seat index of [`Shape::label`]'s seat (sections, rows and seats in rank order).
    pub fn seat_index(&self, section: u32, row: u32, number: u32) -> u32 {
        (section * self.rows_per_section + row) * self.seats_per_row + number
    }
}

/// The events of a run: `shapes[i]` is event `i`.
#[derive(Clone, Debug)]
pub struct Venues {
    pub shapes: Vec<Shape>,
    /// Percent of traffic that goes to event 0; the rest is spread evenly.
    pub hot_percent: u64,
}

impl Venues {
    /// One 50,000-seat stadium (with 10,000 standing) and 200 shows of 2,000 seats.
    pub fn standard() -> Venues {
        let mut shapes = vec![Shape::STADIUM];
        shapes.extend(std::iter::repeat_n(Shape::SHOW, 200));
        Venues {
            shapes,
            hot_percent: 30,
        }
    }

    /// One stadium alone.
    pub fn stadium() -> Venues {
        Venues {
            shapes: vec![Shape::STADIUM],
            hot_percent: 100,
        }
    }

    /// 400 stadiums: 20,000,000 reserved seats.
    pub fn scale() -> Venues {
        Venues {
            shapes: vec![Shape::STADIUM; 400],
            hot_percent: 0,
        }
    }

    pub fn total_seats(&self) -> u64 {
        self.shapes
            .iter()
            .map(|shape| u64::from(shape.seats()))
            .sum()
    }

    /// The `CreateEvent` requests, in event order.
    pub fn setup(&self) -> Vec<Request> {
        self.shapes
            .iter()
            .enumerate()
            .map(|(index, shape)| {
                Request::new(Command::CreateEvent {
                    tenant: "bench".into(),
                    spec: Box::new(shape.spec(&format!("Event {index}"))),
                })
            })
            .collect()
    }

    /// A fresh engine with every event created at `START_MS` (offsets from 0).
    pub fn build(&self) -> Engine {
        let mut engine = Engine::new(EngineConfig::default());
        for (offset, request) in self.setup().iter().enumerate() {
            let outcome = engine.apply(offset as u64, START_MS, request);
            assert!(
                matches!(outcome.result, Ok(Reply::EventCreated { .. })),
                "{:?}",
                outcome.result
            );
        }
        engine
    }
}

/// A fresh copy of an engine (its state cloned), for runs that must start alike. The
/// copy shares seat chunks copy-on-write, so its first writes copy them.
pub fn fresh(engine: &Engine) -> Engine {
    Engine::from_state(engine.config().clone(), engine.state().clone())
}

/// One record of a generated log.
#[derive(Clone, Debug)]
pub struct Record {
    pub time_ms: u64,
    pub kind: Kind,
    pub request: Request,
}

/// Holds the generator may confirm or release, newest last.
const RECENT_HOLDS: usize = 256;
const REMEMBERED_HOLDS_MAX: usize = 100_000;

/// The standard mix as a state machine. See the crate docs for what it sends.
#[derive(Clone, Debug)]
pub struct Generator {
    rng: Rng,
    venues: Venues,
    mix: Vec<(Kind, u32)>,
    clock_ms: u64,
    /// Live (or recently live) holds and their users, newest last.
    holds: VecDeque<(HoldId, String)>,
    bookings: Vec<(BookingId, String)>,
}

impl Generator {
    pub fn new(venues: &Venues, seed: u64) -> Generator {
        Generator::with_mix(venues, seed, &STANDARD_MIX)
    }

    pub fn with_mix(venues: &Venues, seed: u64, mix: &[(Kind, u32)]) -> Generator {
        assert!(!venues.shapes.is_empty() && mix.iter().map(|(_, weight)| weight).sum::<u32>() > 0);
        Generator {
            rng: Rng::new(seed),
            venues: venues.clone(),
            mix: mix.to_vec(),
            clock_ms: START_MS,
            holds: VecDeque::new(),
            bookings: Vec::new(),
        }
    }

    fn user(&mut self) -> String {
        format!("u{}", self.rng.below(USERS))
    }

    fn event(&mut self) -> u32 {
        let count = self.venues.shapes.len() as u64;
        if count == 1 || self.rng.chance(self.venues.hot_percent) {
            0
        } else {
            1 + self.rng.below(count - 1) as u32
        }
    }

    fn kind(&mut self) -> Kind {
        let total: u32 = self.mix.iter().map(|(_, weight)| weight).sum();
        let mut point = self.rng.below(u64::from(total)) as u32;
        for &(kind, weight) in &self.mix {
            if point < weight {
                return kind;
            }
            point -= weight;
        }
        unreachable!("the point is below the total")
    }

    /// A recent hold, taken out of the list (it is about to be confirmed or released).
    fn take_recent_hold(&mut self) -> Option<(HoldId, String)> {
        if self.holds.is_empty() {
            return None;
        }
        let recent = self.holds.len().min(RECENT_HOLDS) as u64;
        let index = self.holds.len() - 1 - self.rng.below(recent) as usize;
        self.holds.swap_remove_back(index)
    }

    fn hold(&mut self, event: u32, selection: Selection, wait: bool) -> Command {
        Command::PlaceHold {
            user: self.user().into(),
            event: EventId(event),
            selection,
            wait,
        }
    }

    /// The next record. A confirm, release or cancel with nothing to act on places a
    /// best-available hold instead.
    pub fn next_record(&mut self) -> Record {
        let kind = self.kind();
        self.clock_ms += self.rng.below(4);
        let event = self.event();
        let shape = self.venues.shapes[event as usize].clone();
        let quantity = 1 + self.rng.below(4) as u32;
        let command = match kind {
            Kind::HoldExact => {
                let (section, row) = (
                    self.rng.below(u64::from(shape.sections)) as u32,
                    self.rng.below(u64::from(shape.rows_per_section)) as u32,
                );
                let first = self
                    .rng
                    .below(u64::from(shape.seats_per_row - quantity + 1))
                    as u32;
                // By index, as the ingress appends them (it resolves the labels).
                let seats = (first..first + quantity)
                    .map(|number| shape.seat_index(section, row, number))
                    .collect();
                self.hold(event, Selection::SeatIndices(seats), false)
            }
            Kind::HoldBestTogether | Kind::HoldBestAny => {
                // Premium or Standard by index (`Shape::categories`' order), as the
                // ingress appends them (it resolves the names).
                let category = self.rng.chance(50).then(|| self.rng.below(2) as u16);
                self.hold(
                    event,
                    Selection::BestIndexed {
                        quantity,
                        category,
                        together: kind == Kind::HoldBestTogether,
                    },
                    false,
                )
            }
            Kind::HoldGeneralAdmission => {
                // Shows have no standing pool; the stadium (event 0) has.
                let event = if shape.standing > 0 { event } else { 0 };
                // Standing is the third category (`Shape::categories`).
                let category = (self.venues.shapes[event as usize].standing > 0).then_some(2);
                self.hold(
                    event,
                    Selection::BestIndexed {
                        quantity,
                        category,
                        together: false,
                    },
                    false,
                )
            }
            Kind::Confirm | Kind::Release => match self.take_recent_hold() {
                Some((hold, user)) if kind == Kind::Confirm => Command::ConfirmHold {
                    user: user.into(),
                    hold,
                    payment_ref: format!("pay-{}", hold.0),
                },
                Some((hold, user)) => Command::ReleaseHold {
                    user: user.into(),
                    hold,
                },
                None => self.hold(
                    event,
                    Selection::BestIndexed {
                        quantity,
                        category: None,
                        together: false,
                    },
                    false,
                ),
            },
            Kind::CancelBooking if !self.bookings.is_empty() => {
                let index = self.rng.below(self.bookings.len() as u64) as usize;
                let (booking, user) = self.bookings.swap_remove(index);
                Command::CancelBooking {
                    user: user.into(),
                    booking,
                }
            }
            Kind::CancelBooking => self.hold(
                event,
                Selection::BestIndexed {
                    quantity,
                    category: None,
                    together: false,
                },
                false,
            ),
            Kind::JoinWaitlist => Command::JoinWaitlistIndexed {
                user: self.user().into(),
                event: EventId(event),
                quantity: quantity.min(2),
                category: None,
                together: false,
            },
            Kind::Tick => {
                self.clock_ms += 50 + self.rng.below(451);
                Command::Tick
            }
        };
        Record {
            time_ms: self.clock_ms,
            kind,
            request: Request::new(command),
        }
    }

    /// Learns the ids an answer grants.
    pub fn observe(&mut self, outcome: &Outcome) {
        match &outcome.result {
            Ok(Reply::HoldPlaced(view)) => self.holds.push_back((view.hold, view.user.to_string())),
            Ok(Reply::HoldConfirmed(view)) => {
                self.bookings.push((view.booking, view.user.to_string()))
            }
            _ => {}
        }
        for effect in &outcome.effects {
            if let Effect::WaitlistOffered { hold, .. } = effect {
                self.holds.push_back((hold.hold, hold.user.to_string()));
            }
        }
        while self.holds.len() > REMEMBERED_HOLDS_MAX {
            self.holds.pop_front();
        }
    }
}

/// Accepted and rejected commands per kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub counts: std::collections::BTreeMap<Kind, (u64, u64)>,
}

impl Tally {
    pub fn add(&mut self, kind: Kind, outcome: &Outcome) {
        let entry = self.counts.entry(kind).or_default();
        if outcome.result.is_ok() {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }

    pub fn total(&self) -> (u64, u64) {
        self.counts
            .values()
            .fold((0, 0), |(accepted, rejected), (ok, err)| {
                (accepted + ok, rejected + err)
            })
    }
}

/// Runs `count` generated commands against `engine` (from offset `first_offset`),
/// returning the log and what happened.
pub fn record_on(
    engine: &mut Engine,
    venues: &Venues,
    seed: u64,
    count: usize,
) -> (Vec<Record>, Tally) {
    record_on_in(engine, venues, seed, count, UserForm::ById)
}

/// [`record_on`] with the users in `form`.
pub fn record_on_in(
    engine: &mut Engine,
    venues: &Venues,
    seed: u64,
    count: usize,
    form: UserForm,
) -> (Vec<Record>, Tally) {
    let mut generator = Generator::new(venues, seed);
    let first_offset = engine.applied_offset().map_or(0, |applied| applied + 1);
    let mut log = Vec::with_capacity(count);
    let mut tally = Tally::default();
    for offset in (first_offset..).take(count) {
        let mut record = generator.next_record();
        record.request = form.apply(engine, record.request);
        let outcome = engine.apply(offset, record.time_ms, &record.request);
        let outcome = engine.named(outcome);
        generator.observe(&outcome);
        tally.add(record.kind, &outcome);
        log.push(record);
    }
    (log, tally)
}

/// What a run of the standard mix decided, independent of how the engine stores its
/// state: a digest of every encoded outcome, the engine's [`Engine::seat_digest`] at the
/// end, and the count of accepted commands. Two engines that agree here took the same
/// decisions record for record and ended with the same seats (the old-versus-new check of
/// an engine rewrite; `engine_equivalence` runs it over millions of records).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decisions {
    pub outcomes: String,
    pub seats: String,
    pub accepted: u64,
}

/// An outcome as decided, in a rendering that does not depend on its wire format: its
/// `Debug` form without ticket lists (outcomes of version 2 carried one per booking, with
/// a code per ticket; since version 3 both follow from the booking's id and items and are
/// derived where they are shown) and without `effects_before_reply` (version 4 added
/// it: it says in which order the effects happened, not what was decided), so the same
/// decisions give the same text before and after those changes.
pub fn decided(outcome: &engine::Outcome) -> String {
    let text = format!("{outcome:?}");
    let marker = format!(", effects_before_reply: {}", outcome.effects_before_reply);
    let text = text.replacen(&marker, "", 1);
    let mut decided = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(start) = rest.find(", tickets: [") {
        decided.push_str(&rest[..start]);
        let after = &rest[start..];
        // A ticket's `Debug` form has no brackets: the list ends at the first `]`.
        let end = after.find(']').expect("a ticket list is closed");
        rest = &after[end + 1..];
    }
    decided.push_str(rest);
    decided
}

pub fn decisions(venues: &Venues, seed: u64, count: usize) -> Decisions {
    decisions_in(venues, seed, count, UserForm::ByName)
}

/// [`decisions`] of the log with its users in `form`: the same whichever the form.
pub fn decisions_in(venues: &Venues, seed: u64, count: usize, form: UserForm) -> Decisions {
    let mut engine = venues.build();
    let mut generator = Generator::new(venues, seed);
    let first_offset = engine.applied_offset().map_or(0, |applied| applied + 1);
    let mut digest = blake3::Hasher::new();
    let mut accepted = 0;
    for offset in (first_offset..).take(count) {
        let mut record = generator.next_record();
        record.request = form.apply(&engine, record.request);
        let outcome = engine.apply(offset, record.time_ms, &record.request);
        let outcome = engine.named(outcome);
        digest.update(decided(&outcome).as_bytes());
        accepted += u64::from(outcome.result.is_ok());
        generator.observe(&outcome);
    }
    Decisions {
        outcomes: digest.finalize().to_hex().to_string(),
        seats: blake3::Hash::from(engine.seat_digest())
            .to_hex()
            .to_string(),
        accepted,
    }
}

/// How a log names its users.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserForm {
    /// Every user by name, as every log before ids (and the ingress today).
    ByName,
    /// A user by the id the engine gave it once it has one, as a writer that learns ids
    /// sends them (the generator draws names; known ones are sent by id).
    ById,
}

impl UserForm {
    /// `request` with its user in this form, for `engine` (which has applied the log so far).
    pub fn apply(self, engine: &Engine, request: Request) -> Request {
        match self {
            UserForm::ByName => request,
            UserForm::ById => Request {
                idempotency_key: request.idempotency_key,
                command: request.command.map_user(|user| match user {
                    UserRef::Name(name) => engine
                        .user_number(&name)
                        .map_or(UserRef::Name(name), UserRef::Id),
                    by_id => by_id,
                }),
            },
        }
    }
}

/// The standard mix's log for `venues`: what a run from a fresh `venues.build()` sends,
/// users by id once the engine has given them one ([`UserForm::ById`]).
pub fn record(venues: &Venues, seed: u64, count: usize) -> Vec<Record> {
    record_in(venues, seed, count, UserForm::ById)
}

/// [`record`] with the users in `form`.
pub fn record_in(venues: &Venues, seed: u64, count: usize, form: UserForm) -> Vec<Record> {
    record_on_in(&mut venues.build(), venues, seed, count, form).0
}

/// Applies a recorded log to `engine` (which must be where the log was recorded from),
/// with the prefetch hints the runtime's engine thread gives as it applies a batch
/// (`Engine::prefetch_ahead`). Returns how many commands were accepted.
pub fn replay(engine: &mut Engine, log: &[Record]) -> u64 {
    replay_hinted(engine, log, true)
}

/// [`replay`], with the prefetch hints or without (`engine_hints` compares the two).
#[inline]
pub fn replay_hinted(engine: &mut Engine, log: &[Record], hints: bool) -> u64 {
    let first_offset = engine.applied_offset().map_or(0, |applied| applied + 1);
    let mut accepted = 0;
    for (offset, (index, record)) in (first_offset..).zip(log.iter().enumerate()) {
        if hints {
            engine.prefetch_ahead(index, |index| log.get(index).map(|record| &record.request));
        }
        accepted += u64::from(
            engine
                .apply(offset, record.time_ms, &record.request)
                .result
                .is_ok(),
        );
    }
    accepted
}

/// Books all but about `free_per_mille`‰ of the stadium's seats (the free ones
/// scattered by `seed`), and every standing place (so that a request without a category,
/// which takes pool places when no seats fit, still measures the seat search),
/// confirming every hold. Returns the offset to continue from.
pub fn fill_stadium(engine: &mut Engine, event: EventId, free_per_mille: u64, seed: u64) -> u64 {
    fill_stadium_with_runs(engine, event, free_per_mille, seed, 0)
}

/// [`fill_stadium`], but `runs_of_4` rows (drawn by `seed`) also keep their first four
/// seats free, so a request for 4 seats together can be granted on a nearly full stadium.
pub fn fill_stadium_with_runs(
    engine: &mut Engine,
    event: EventId,
    free_per_mille: u64,
    seed: u64,
    runs_of_4: u32,
) -> u64 {
    let shape = Shape::STADIUM;
    let mut rng = Rng::new(seed);
    let rows_total = shape.sections * shape.rows_per_section;
    // Drawn from a second generator, so `runs_of_4 = 0` fills exactly like before.
    let mut run_rng = Rng::new(seed.wrapping_add(0x9e37_79b9_7f4a_7c15));
    let run_rows: std::collections::BTreeSet<u32> = (0..runs_of_4)
        .map(|_| run_rng.below(u64::from(rows_total)) as u32)
        .collect();
    let mut offset = engine.applied_offset().map_or(0, |applied| applied + 1);
    let mut filler = 0u64;
    let mut apply = |engine: &mut Engine, command: Command| {
        let outcome = engine.apply(offset, START_MS, &Request::new(command));
        offset += 1;
        outcome
    };
    for section in 0..shape.sections {
        for row in 0..shape.rows_per_section {
            let keep_run = run_rows.contains(&(section * shape.rows_per_section + row));
            let taken: Vec<u32> = (0..shape.seats_per_row)
                .filter(|_| rng.below(1_000) >= free_per_mille)
                .filter(|&number| !keep_run || number >= 4)
                .collect();
            for chunk in taken.chunks(8) {
                filler += 1;
                let user = format!("filler{filler}");
                let labels = chunk
                    .iter()
                    .map(|&number| Shape::label(section, row, number))
                    .collect();
                let placed = apply(
                    engine,
                    Command::PlaceHold {
                        user: engine::UserRef::Name(user.clone()),
                        event,
                        selection: Selection::Seats(labels),
                        wait: false,
                    },
                );
                let Ok(Reply::HoldPlaced(view)) = placed.result else {
                    panic!("filling failed: {:?}", placed.result)
                };
                let confirmed = apply(
                    engine,
                    Command::ConfirmHold {
                        user: user.into(),
                        hold: view.hold,
                        payment_ref: "fill".into(),
                    },
                );
                assert!(confirmed.result.is_ok(), "{:?}", confirmed.result);
            }
        }
    }
    for order in 0..shape.standing.div_ceil(8) {
        let user = format!("standing{order}");
        let quantity = 8.min(shape.standing - order * 8);
        let placed = apply(
            engine,
            Command::PlaceHold {
                user: engine::UserRef::Name(user.clone()),
                event,
                selection: Selection::Best {
                    quantity,
                    category: Some("Standing".into()),
                    together: false,
                },
                wait: false,
            },
        );
        let Ok(Reply::HoldPlaced(view)) = placed.result else {
            panic!("filling the standing pool failed: {:?}", placed.result)
        };
        let confirmed = apply(
            engine,
            Command::ConfirmHold {
                user: user.into(),
                hold: view.hold,
                payment_ref: "fill".into(),
            },
        );
        assert!(confirmed.result.is_ok(), "{:?}", confirmed.result);
    }
    offset
}

/// Nanoseconds this thread has spent on a CPU (Linux `/proc/thread-self/schedstat`).
/// Unlike wall time, it does not count time the thread waited for a CPU, so on a
/// shared, busy machine it gives the steadier rate.
pub fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Peak and current resident set size of this process in KiB (Linux `VmHWM`, `VmRSS`).
pub fn memory_kib() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_is_deterministic_and_exercises_every_kind() {
        let venues = Venues {
            shapes: vec![Shape::STADIUM, Shape::SHOW, Shape::SHOW],
            hot_percent: 30,
        };
        let mut engine = venues.build();
        let (log, tally) = record_on(&mut engine, &venues, 7, 20_000);
        engine.check_invariants();
        let again = record(&venues, 7, 20_000);
        assert_eq!(
            log.iter().map(|record| &record.request).collect::<Vec<_>>(),
            again
                .iter()
                .map(|record| &record.request)
                .collect::<Vec<_>>()
        );
        for (kind, _) in STANDARD_MIX {
            let (accepted, _) = tally.counts.get(&kind).copied().unwrap_or_default();
            assert!(accepted > 0, "{kind:?} never succeeded: {tally:?}");
        }
        // Replaying the log on a fresh engine reaches the same state.
        let mut replayed = venues.build();
        replay(&mut replayed, &log);
        assert_eq!(replayed.state_hash(), engine.state_hash());
    }

    /// Pinned from the engine before its dense rewrite (issue "The engine at exchange
    /// speed", commit 94bc082, with `decided`'s rendering): a representation change must
    /// not change a single decision. `seats` is in terms of the public model and should
    /// never move; `outcomes` moves only with what an outcome says, on purpose (say why).
    /// `engine_equivalence` checks millions of records the same way.
    #[test]
    fn the_standard_mix_decides_as_pinned() {
        let found = decisions(&Venues::standard(), 42, 100_000);
        assert_eq!(
            (
                found.outcomes.as_str(),
                found.seats.as_str(),
                found.accepted
            ),
            (
                "04a40bc6ab4ee4978f68eddc14039f016541bc64d14b7749ea7c77d259eb4218",
                "7c6854023205830f38d1acb60494152b01e69c2f61bbc549b493187c37aca849",
                98_188
            )
        );
        // The same log with every known user by id decides exactly the same.
        assert_eq!(
            decisions_in(&Venues::standard(), 42, 100_000, UserForm::ById),
            found
        );
    }

    /// The recorded log (users by id) names known users by id (a third of 20,000 commands:
    /// most of 100,000 users are new so early), and replays to the state
    /// of the same log by name.
    #[test]
    fn a_log_by_id_replays_as_the_same_log_by_name() {
        let venues = Venues::standard();
        let by_id = record_in(&venues, 3, 20_000, UserForm::ById);
        let by_name = record_in(&venues, 3, 20_000, UserForm::ByName);
        let ids = by_id
            .iter()
            .filter(|record| matches!(record.request.command.user(), Some(UserRef::Id(_))))
            .count();
        assert!(ids > 5_000, "{ids} of 20,000 by id");
        let (mut first, mut second) = (venues.build(), venues.build());
        replay(&mut first, &by_id);
        replay(&mut second, &by_name);
        assert_eq!(first.state_hash(), second.state_hash());
    }

    #[test]
    fn seat_indices_name_the_labelled_seats() {
        let venues = Venues::stadium();
        let engine = venues.build();
        let shape = &venues.shapes[0];
        for (section, row, number) in [(0, 0, 0), (0, 0, 24), (0, 1, 0), (7, 13, 5), (49, 39, 24)] {
            assert_eq!(
                engine.seat_label(EventId(0), shape.seat_index(section, row, number)),
                Some(Shape::label(section, row, number))
            );
        }
    }

    #[test]
    fn venues_have_the_advertised_sizes() {
        assert_eq!(Shape::STADIUM.seats(), 50_000);
        assert_eq!(Shape::SHOW.seats(), 2_000);
        assert_eq!(Venues::standard().total_seats(), 450_000);
        assert_eq!(Venues::scale().total_seats(), 20_000_000);
    }

    #[test]
    fn a_filled_stadium_keeps_about_the_asked_share_free() {
        let venues = Venues::stadium();
        let mut engine = venues.build();
        fill_stadium(&mut engine, EventId(0), 10, 1);
        let free: u64 = engine
            .availability(EventId(0))
            .unwrap()
            .iter()
            .filter(|category| category.category != "Standing")
            .map(|category| category.free)
            .sum();
        assert!((300..=700).contains(&free), "{free} seats free");
        let standing = engine.availability(EventId(0)).unwrap();
        let standing = standing
            .iter()
            .find(|category| category.category == "Standing")
            .unwrap();
        assert_eq!((standing.free, standing.held), (0, 0));
    }
}
