//! The user population as one state machine: which request a slot becomes ([`Workload::plan`])
//! and what its answer teaches ([`Workload::observe`]). Seeded: the same scenario and the
//! same answers give the same requests.
//!
//! Users place holds; a granted hold becomes due for a confirm or a release after a think
//! time; a booking becomes due for a cancel; a waitlist entry becomes due for a poll. The
//! mix picks a kind per slot; a dependent kind with nothing due places a hold instead.
//! The workload also keeps what the run was granted (live holds and bookings) for the
//! verifier.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

use crate::client::{Answer, Auth, Call};
use crate::scenario::{DelayRange, Kind, Scenario};
use crate::setup::{parse_rfc3339_ms, EventLayout};

/// Picks event ranks with weight `1 / rank^s`.
#[derive(Clone, Debug)]
pub struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    pub fn new(count: usize, exponent: f64) -> Zipf {
        assert!(count > 0);
        let mut total = 0.0;
        let cumulative = (1..=count)
            .map(|rank| {
                total += 1.0 / (rank as f64).powf(exponent);
                total
            })
            .collect();
        Zipf { cumulative }
    }

    /// An index in `0..count`; 0 is the hottest.
    pub fn sample(&self, rng: &mut StdRng) -> usize {
        let total = *self.cumulative.last().expect("not empty");
        let point = rng.random::<f64>() * total;
        self.cumulative
            .partition_point(|&edge| edge <= point)
            .min(self.cumulative.len() - 1)
    }
}

/// What a slot asks, with what its answer needs to be understood.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    HoldExact {
        user: String,
        event: usize,
        seats: Vec<u32>,
    },
    HoldBest {
        user: String,
        event: usize,
        quantity: u32,
        category: Option<String>,
        together: bool,
        wait: bool,
    },
    Confirm {
        hold: String,
    },
    /// `holds.pay`: the hold's payment (`POST /v1/holds/{id}/payment`), before its confirm.
    Pay {
        hold: String,
    },
    Release {
        hold: String,
    },
    Cancel {
        booking: String,
    },
    WaitlistJoin {
        user: String,
        event: usize,
        quantity: u32,
        category: Option<String>,
    },
    WaitlistRead {
        waiter: String,
    },
    ReadEvent {
        event: usize,
    },
    ReadSeats {
        event: usize,
    },
    Noop,
}

impl Action {
    pub fn kind(&self) -> Kind {
        match self {
            Action::HoldExact { .. } => Kind::HoldExact,
            Action::HoldBest { .. } => Kind::HoldBest,
            // Paying is the first half of a confirm: reported with it.
            Action::Confirm { .. } | Action::Pay { .. } => Kind::Confirm,
            Action::Release { .. } => Kind::Release,
            Action::Cancel { .. } => Kind::Cancel,
            Action::WaitlistJoin { .. } => Kind::WaitlistJoin,
            Action::WaitlistRead { .. } => Kind::WaitlistRead,
            Action::ReadEvent { .. } => Kind::ReadEvent,
            Action::ReadSeats { .. } => Kind::ReadSeats,
            Action::Noop => Kind::Noop,
        }
    }
}

/// What a slot becomes.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    Send(Action, Call),
    /// Nothing to do now (follow-ups are pending).
    Skip,
    /// Every user has tried and nothing is left to follow up.
    Exhausted,
}

/// A hold the run was granted and has not seen end.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrackedHold {
    pub user: String,
    pub event: usize,
    pub seats: Vec<u32>,
    /// (category, quantity) for general admission.
    pub pool: Option<(String, u32)>,
    pub expires_at_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrackedBooking {
    pub user: String,
    pub event: usize,
    pub seats: Vec<u32>,
    pub pool: Option<(String, u32)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackedWaiter {
    pub user: String,
    pub event: usize,
}

/// An entry into an arrival window's draw: when its answer came (since the load's start).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackedEntry {
    pub waitlist_id: String,
    pub event: usize,
    pub answered_after_ms: u64,
}

/// What the run was granted, for the verifier.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Granted {
    /// Live holds by id (granted or offered, not yet confirmed, released or seen expired).
    pub holds: BTreeMap<String, TrackedHold>,
    /// Live bookings by id (not canceled).
    pub bookings: BTreeMap<String, TrackedBooking>,
    /// Waitlist entries still waiting, as far as the run knows.
    pub waiters: BTreeMap<String, TrackedWaiter>,
    pub holds_granted: u64,
    pub bookings_granted: u64,
    pub waitlisted: u64,
    /// Every entry into a draw, in the order their answers came.
    #[serde(default)]
    pub entries: Vec<TrackedEntry>,
    /// Writes that got no definite answer (no response, or a 5xx): the server may or may
    /// not have applied them, so the verifier's equalities become bounds.
    pub uncertain: u64,
}

/// Follow-ups due at a time; the sequence number breaks ties in order of scheduling.
type Due = BTreeMap<(Duration, u64), String>;

/// What the workload reads of a granted hold: the hold's answer, or the hold inside a
/// waitlist answer. Borrowed from the body where it can be (no JSON tree per answer).
/// The API gives these fields these types; a body that does not (a server's bug) tracks
/// no hold, and the run's verification then says what it could not account for.
#[derive(Debug, Default, Deserialize)]
struct HeldView<'a> {
    #[serde(borrow, default)]
    hold_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    seats: Option<Vec<Text<'a>>>,
    quantity: Option<u64>,
    #[serde(borrow, default)]
    categories: Option<Vec<Text<'a>>>,
    #[serde(borrow, default)]
    expires_at: Option<Text<'a>>,
}

/// What the workload reads of a confirm's answer.
#[derive(Debug, Default, Deserialize)]
struct BookedView<'a> {
    #[serde(borrow, default)]
    booking_id: Option<Text<'a>>,
}

/// A JSON string borrowed from the body when it has no escapes, copied when it has.
/// (`Cow<str>` borrows only as a struct's own field, not inside an `Option` or a `Vec`.)
#[derive(Debug)]
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = Text<'a>;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(text)))
            }
            fn visit_str<E>(self, text: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }
            fn visit_string<E>(self, text: String) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(text)))
            }
        }
        deserializer.deserialize_str(Visitor(std::marker::PhantomData))
    }
}

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

pub struct Workload {
    scenario: Scenario,
    events: Vec<EventLayout>,
    rng: StdRng,
    zipf: Zipf,
    mix_cumulative: Vec<(Kind, f64)>,
    /// Local knowledge of taken seats per event (ours, and those the server said were taken).
    taken: Vec<Vec<bool>>,
    next_user: u64,
    sequence: u64,
    payment_sequence: u64,
    /// `holds.pay`: each paid hold's gateway payment, its confirm's `payment_ref`.
    payments: BTreeMap<String, String>,
    holds_due: Due,
    bookings_due: Due,
    waiters_due: Due,
    in_flight: u64,
    pub granted: Granted,
}

impl Workload {
    pub fn new(scenario: Scenario, events: Vec<EventLayout>) -> Workload {
        assert!(!events.is_empty(), "a workload needs events");
        let mut total = 0.0;
        let mix_cumulative = scenario
            .mix
            .weights()
            .into_iter()
            .filter(|(_, weight)| *weight > 0.0)
            .map(|(kind, weight)| {
                total += weight;
                (kind, total)
            })
            .collect();
        let taken = events
            .iter()
            .map(|event| vec![false; event.seats as usize])
            .collect();
        Workload {
            rng: StdRng::seed_from_u64(scenario.seed),
            zipf: Zipf::new(events.len(), scenario.skew.zipf_exponent),
            mix_cumulative,
            taken,
            next_user: 1,
            sequence: 0,
            payment_sequence: 0,
            payments: BTreeMap::new(),
            holds_due: Due::new(),
            bookings_due: Due::new(),
            waiters_due: Due::new(),
            in_flight: 0,
            granted: Granted::default(),
            scenario,
            events,
        }
    }

    pub fn events(&self) -> &[EventLayout] {
        &self.events
    }

    fn population_exhausted(&self) -> bool {
        self.scenario.users.one_attempt_each && self.next_user > self.scenario.users.count
    }

    /// Bookings wait for a cancel only when the mix cancels: holds and waitlist entries are
    /// always followed up (see `any_due`), bookings are not, so a run without cancels can end
    /// once every user has tried.
    fn cancels(&self) -> bool {
        self.scenario.mix.cancel > 0.0
    }

    fn nothing_pending(&self) -> bool {
        self.in_flight == 0
            && self.holds_due.is_empty()
            && self.bookings_due.is_empty()
            && self.waiters_due.is_empty()
    }

    fn draw_kind(&mut self) -> Kind {
        let total = self
            .mix_cumulative
            .last()
            .expect("validated: a positive weight")
            .1;
        let point = self.rng.random::<f64>() * total;
        let position = self
            .mix_cumulative
            .partition_point(|(_, edge)| *edge <= point)
            .min(self.mix_cumulative.len() - 1);
        self.mix_cumulative[position].0
    }

    /// A user for a new purchase; `None` when everyone had their one attempt.
    fn draw_user(&mut self) -> Option<String> {
        let users = &self.scenario.users;
        let number = if users.one_attempt_each {
            if self.next_user > users.count {
                return None;
            }
            self.next_user += 1;
            self.next_user - 1
        } else {
            self.rng.random_range(1..=users.count)
        };
        Some(users.name(number))
    }

    fn think(&mut self, range: DelayRange) -> Duration {
        Duration::from_millis(if range.min_ms == range.max_ms {
            range.min_ms
        } else {
            self.rng.random_range(range.min_ms..=range.max_ms)
        })
    }

    fn schedule(due: &mut Due, sequence: &mut u64, at: Duration, id: String) {
        *sequence += 1;
        due.insert((at, *sequence), id);
    }

    fn take_due(due: &mut Due, now: Duration) -> Option<String> {
        let (&key, _) = due.first_key_value()?;
        if key.0 > now {
            return None;
        }
        due.remove(&key)
    }

    /// What the slot at `now` (time since the run's start) becomes.
    pub fn plan(&mut self, now: Duration) -> Plan {
        if self.population_exhausted() && self.nothing_pending() {
            return Plan::Exhausted;
        }
        let kind = self.draw_kind();
        let action = match kind {
            Kind::Confirm | Kind::Release => {
                Workload::take_due(&mut self.holds_due, now).map(|hold| {
                    if kind == Kind::Confirm {
                        self.confirm_or_pay(hold)
                    } else {
                        Action::Release { hold }
                    }
                })
            }
            Kind::Cancel => Workload::take_due(&mut self.bookings_due, now)
                .map(|booking| Action::Cancel { booking }),
            Kind::WaitlistRead => Workload::take_due(&mut self.waiters_due, now)
                .map(|waiter| Action::WaitlistRead { waiter }),
            Kind::ReadEvent | Kind::ReadSeats if self.population_exhausted() => None,
            Kind::ReadEvent => Some(Action::ReadEvent {
                event: self.zipf.sample(&mut self.rng),
            }),
            Kind::ReadSeats => {
                let event = self.zipf.sample(&mut self.rng);
                Some(if self.events[event].seats > 0 {
                    Action::ReadSeats { event }
                } else {
                    Action::ReadEvent { event }
                })
            }
            Kind::HoldExact => self.hold_exact(),
            Kind::WaitlistJoin => self.waitlist_join(),
            Kind::Noop => Some(Action::Noop),
            _ => None,
        };
        let action = match action {
            Some(action) => Some(action),
            // Nothing due for a dependent kind: a new purchase, or else the oldest due follow-up.
            None => self.hold_best().or_else(|| self.any_due(now)),
        };
        match action {
            Some(action) => {
                self.in_flight += 1;
                let call = self.call(&action);
                Plan::Send(action, call)
            }
            None if self.population_exhausted() && self.nothing_pending() => Plan::Exhausted,
            None => Plan::Skip,
        }
    }

    /// A due hold's confirm, or with `holds.pay` its payment first.
    fn confirm_or_pay(&self, hold: String) -> Action {
        if self.scenario.holds.pay && !self.payments.contains_key(&hold) {
            Action::Pay { hold }
        } else {
            Action::Confirm { hold }
        }
    }

    fn any_due(&mut self, now: Duration) -> Option<Action> {
        if let Some(hold) = Workload::take_due(&mut self.holds_due, now) {
            return Some(self.confirm_or_pay(hold));
        }
        if let Some(waiter) = Workload::take_due(&mut self.waiters_due, now) {
            return Some(Action::WaitlistRead { waiter });
        }
        None
    }

    fn quantity(&mut self, event: usize) -> u32 {
        let holds = &self.scenario.holds;
        let max = holds
            .quantity_max
            .min(self.events[event].max_seats_per_order)
            .max(1);
        let min = holds.quantity_min.min(max);
        self.rng.random_range(min..=max)
    }

    fn hold_exact(&mut self) -> Option<Action> {
        let event = self.zipf.sample(&mut self.rng);
        if self.events[event].rows.is_empty() {
            return self.hold_best_at(event);
        }
        let user = self.draw_user()?;
        let quantity = self.quantity(event);
        let layout = &self.events[event];
        let mut pick = Vec::new();
        // Like a person looking at the map: a few tries at a free run, then take a chance.
        for _ in 0..8 {
            let row = &layout.rows[self.rng.random_range(0..layout.rows.len())];
            let quantity = quantity.min(row.seats);
            let start = row.first_seat + self.rng.random_range(0..=row.seats - quantity);
            pick = (start..start + quantity).collect();
            if pick.iter().all(|&seat| !self.taken[event][seat as usize]) {
                break;
            }
        }
        Some(Action::HoldExact {
            user,
            event,
            seats: pick,
        })
    }

    fn hold_best(&mut self) -> Option<Action> {
        let event = self.zipf.sample(&mut self.rng);
        self.hold_best_at(event)
    }

    fn pick_category(&mut self, event: usize) -> Option<String> {
        if self.rng.random::<f64>() < self.scenario.holds.any_category_probability {
            return None;
        }
        let categories: Vec<&str> = self.events[event]
            .capacity
            .iter()
            .filter(|(_, capacity)| *capacity > 0)
            .map(|(name, _)| name.as_str())
            .collect();
        Some(categories[self.rng.random_range(0..categories.len())].to_string())
    }

    fn hold_best_at(&mut self, event: usize) -> Option<Action> {
        let user = self.draw_user()?;
        let quantity = self.quantity(event);
        let category = self.pick_category(event);
        let together = self.rng.random::<f64>() < self.scenario.holds.together_probability;
        let wait = self.rng.random::<f64>() < self.scenario.holds.wait_probability;
        Some(Action::HoldBest {
            user,
            event,
            quantity,
            category,
            together,
            wait,
        })
    }

    fn waitlist_join(&mut self) -> Option<Action> {
        let event = self.zipf.sample(&mut self.rng);
        let user = self.draw_user()?;
        let quantity = self.quantity(event);
        let category = self.pick_category(event);
        Some(Action::WaitlistJoin {
            user,
            event,
            quantity,
            category,
        })
    }

    fn event_id(&self, event: usize) -> &str {
        &self.events[event].event_id
    }

    /// The HTTP call of an action.
    pub fn call(&mut self, action: &Action) -> Call {
        let user_of_hold = |granted: &Granted, hold: &str| {
            granted
                .holds
                .get(hold)
                .map(|tracked| tracked.user.clone())
                .unwrap_or_default()
        };
        match action {
            Action::HoldExact { user, event, seats } => {
                let labels: Vec<String> = seats
                    .iter()
                    .map(|&seat| self.events[*event].seat_label(seat))
                    .collect();
                Call::post(
                    format!("/v1/events/{}/holds", self.event_id(*event)),
                    Auth::User(user.clone()),
                    json!({ "seats": labels }),
                )
            }
            Action::HoldBest {
                user,
                event,
                quantity,
                category,
                together,
                wait,
            } => {
                let mut body = json!({ "quantity": quantity });
                let object = body.as_object_mut().expect("an object");
                let general_admission = category
                    .as_ref()
                    .is_some_and(|category| self.events[*event].pools.contains(category));
                if let Some(category) = category {
                    object.insert("category".into(), json!(category));
                }
                if !general_admission {
                    object.insert("together".into(), json!(together));
                }
                if *wait {
                    object.insert("wait".into(), json!(true));
                }
                Call::post(
                    format!("/v1/events/{}/holds", self.event_id(*event)),
                    Auth::User(user.clone()),
                    body,
                )
            }
            Action::Confirm { hold } => {
                let user = user_of_hold(&self.granted, hold);
                let payment_ref = match self.payments.remove(hold) {
                    Some(payment) => payment,
                    None => {
                        self.payment_sequence += 1;
                        format!("loadgen-{}", self.payment_sequence)
                    }
                };
                Call::post(
                    format!("/v1/holds/{hold}/confirm"),
                    Auth::User(user),
                    json!({ "payment_ref": payment_ref }),
                )
            }
            Action::Pay { hold } => Call {
                method: "POST".into(),
                path: format!("/v1/holds/{hold}/payment"),
                auth: Auth::User(user_of_hold(&self.granted, hold)),
                idempotency_key: None,
                body: None,
            },
            Action::Release { hold } => Call::delete(
                format!("/v1/holds/{hold}"),
                Auth::User(user_of_hold(&self.granted, hold)),
            ),
            Action::Cancel { booking } => {
                let user = self
                    .granted
                    .bookings
                    .get(booking)
                    .map(|tracked| tracked.user.clone())
                    .unwrap_or_default();
                Call::delete(format!("/v1/bookings/{booking}"), Auth::User(user))
            }
            Action::WaitlistJoin {
                user,
                event,
                quantity,
                category,
            } => {
                let mut body = json!({ "quantity": quantity });
                if let Some(category) = category {
                    body.as_object_mut()
                        .expect("an object")
                        .insert("category".into(), json!(category));
                }
                Call::post(
                    format!("/v1/events/{}/waitlist", self.event_id(*event)),
                    Auth::User(user.clone()),
                    body,
                )
            }
            Action::WaitlistRead { waiter } => {
                let user = self
                    .granted
                    .waiters
                    .get(waiter)
                    .map(|tracked| tracked.user.clone())
                    .unwrap_or_default();
                Call::get(format!("/v1/waitlist/{waiter}"), Auth::User(user))
            }
            Action::ReadEvent { event } => {
                Call::get(format!("/v1/events/{}", self.event_id(*event)), Auth::None)
            }
            Action::ReadSeats { event } => Call::get(
                format!("/v1/events/{}/seats", self.event_id(*event)),
                Auth::None,
            ),
            Action::Noop => Call::get("/healthz".to_string(), Auth::None),
        }
    }

    /// Takes back a planned action that was never sent (the run's budget ran out): its
    /// follow-up is due again at `now`.
    pub fn abandon(&mut self, action: &Action, now: Duration) {
        self.in_flight = self.in_flight.saturating_sub(1);
        match action {
            Action::Confirm { hold } | Action::Pay { hold } | Action::Release { hold } => {
                Workload::schedule(&mut self.holds_due, &mut self.sequence, now, hold.clone())
            }
            Action::Cancel { booking } => Workload::schedule(
                &mut self.bookings_due,
                &mut self.sequence,
                now,
                booking.clone(),
            ),
            Action::WaitlistRead { waiter } => Workload::schedule(
                &mut self.waiters_due,
                &mut self.sequence,
                now,
                waiter.clone(),
            ),
            _ => {}
        }
    }

    /// Learns from an answer received at `now` (time since the run's start).
    pub fn observe(&mut self, action: &Action, answer: &Answer, now: Duration) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let write = !matches!(
            action,
            Action::WaitlistRead { .. }
                | Action::ReadEvent { .. }
                | Action::ReadSeats { .. }
                | Action::Noop
        );
        if write && (answer.status == 0 || answer.status >= 500) {
            self.granted.uncertain += 1;
        }
        match action {
            Action::HoldExact { user, event, .. } | Action::HoldBest { user, event, .. } => {
                if answer.status == 201 {
                    let held = answer.decode().unwrap_or_default();
                    self.track_hold(user, *event, &held, now);
                } else if answer.status == 202 {
                    self.track_waiter(user, *event, answer.body(), now);
                } else if answer.code == "seats_unavailable" {
                    self.learn_taken(*event, answer.body());
                }
            }
            Action::Confirm { hold } => {
                let tracked = self.granted.holds.remove(hold);
                if answer.status == 201 {
                    let booked = answer
                        .decode::<BookedView>()
                        .and_then(|view| view.booking_id);
                    if let (Some(tracked), Some(booking)) = (tracked, booked) {
                        self.granted.bookings_granted += 1;
                        let booking = booking.0.into_owned();
                        if self.cancels() {
                            let booking_think = self.scenario.think.booking_ms;
                            let at = now + self.think(booking_think);
                            Workload::schedule(
                                &mut self.bookings_due,
                                &mut self.sequence,
                                at,
                                booking.clone(),
                            );
                        }
                        self.granted.bookings.insert(
                            booking,
                            TrackedBooking {
                                user: tracked.user,
                                event: tracked.event,
                                seats: tracked.seats,
                                pool: tracked.pool,
                            },
                        );
                    }
                } else if let Some(tracked) = tracked {
                    self.free_seats(tracked.event, &tracked.seats);
                }
            }
            Action::Pay { hold } => {
                let payment = answer.text("/payment_id").map(str::to_string);
                match payment {
                    // Paid: its confirm is due at once (the gateway's word is in).
                    Some(payment) if answer.status == 201 => {
                        self.payments.insert(hold.clone(), payment);
                        Workload::schedule(
                            &mut self.holds_due,
                            &mut self.sequence,
                            now,
                            hold.clone(),
                        );
                    }
                    // Refused (expired, released) or unknown: the hold is over for the run.
                    _ => {
                        if let Some(tracked) = self.granted.holds.remove(hold) {
                            self.free_seats(tracked.event, &tracked.seats);
                        }
                    }
                }
            }
            Action::Release { hold } => {
                if let Some(tracked) = self.granted.holds.remove(hold) {
                    self.free_seats(tracked.event, &tracked.seats);
                }
            }
            Action::Cancel { booking } => {
                if let Some(tracked) = self.granted.bookings.remove(booking) {
                    if answer.is_success() {
                        self.free_seats(tracked.event, &tracked.seats);
                    } else if answer.status == 0 || answer.status >= 500 {
                        // Unknown outcome: keep it so the verifier stays exact about what it knows.
                        self.granted.bookings.insert(booking.clone(), tracked);
                    }
                }
            }
            Action::WaitlistJoin { user, event, .. } => {
                if answer.is_success() {
                    self.track_waiter(user, *event, answer.body(), now);
                }
            }
            Action::WaitlistRead { waiter } => {
                let Some(tracked) = self.granted.waiters.get(waiter).cloned() else {
                    return;
                };
                match answer.text("/status") {
                    Some("waiting" | "entered") => {
                        let waitlist_think = self.scenario.think.waitlist_ms;
                        let at = now + self.think(waitlist_think);
                        Workload::schedule(
                            &mut self.waiters_due,
                            &mut self.sequence,
                            at,
                            waiter.clone(),
                        );
                    }
                    Some("offered") => {
                        self.granted.waiters.remove(waiter);
                        if let Some(hold) = answer.body().get("hold") {
                            let held = HeldView::deserialize(hold).unwrap_or_default();
                            self.track_hold(&tracked.user, tracked.event, &held, now);
                        }
                    }
                    _ => {
                        self.granted.waiters.remove(waiter);
                    }
                }
            }
            Action::ReadEvent { .. } | Action::ReadSeats { .. } | Action::Noop => {}
        }
    }

    fn track_hold(&mut self, user: &str, event: usize, held: &HeldView, now: Duration) {
        let Some(hold) = held.hold_id.as_deref() else {
            return;
        };
        if self.granted.holds.contains_key(hold) {
            return;
        }
        let layout = &self.events[event];
        let seats: Vec<u32> = held
            .seats
            .iter()
            .flatten()
            .filter_map(|label| layout.seat_index(label))
            .collect();
        let quantity = held.quantity.unwrap_or(seats.len() as u64) as u32;
        let pool = if seats.is_empty() {
            let category = held
                .categories
                .iter()
                .flatten()
                .next()
                .map(|category| category.to_string())
                .or_else(|| layout.pools.first().cloned())
                .unwrap_or_default();
            Some((category, quantity))
        } else {
            None
        };
        let expires_at_ms = held
            .expires_at
            .as_deref()
            .and_then(parse_rfc3339_ms)
            .unwrap_or(0);
        for &seat in &seats {
            self.taken[event][seat as usize] = true;
        }
        self.granted.holds_granted += 1;
        self.granted.holds.insert(
            hold.to_string(),
            TrackedHold {
                user: user.to_string(),
                event,
                seats,
                pool,
                expires_at_ms,
            },
        );
        let hold_think = self.scenario.think.hold_ms;
        let at = now + self.think(hold_think);
        Workload::schedule(
            &mut self.holds_due,
            &mut self.sequence,
            at,
            hold.to_string(),
        );
    }

    fn track_waiter(&mut self, user: &str, event: usize, body: &Value, now: Duration) {
        let Some(waiter) = body.get("waitlist_id").and_then(Value::as_str) else {
            return;
        };
        self.granted.waitlisted += 1;
        if body.get("status").and_then(Value::as_str) == Some("entered") {
            self.granted.entries.push(TrackedEntry {
                waitlist_id: waiter.to_string(),
                event,
                answered_after_ms: now.as_millis() as u64,
            });
        }
        if let Some(hold) = body.get("hold").filter(|hold| hold.is_object()) {
            let held = HeldView::deserialize(hold).unwrap_or_default();
            self.track_hold(user, event, &held, now);
            return;
        }
        self.granted.waiters.insert(
            waiter.to_string(),
            TrackedWaiter {
                user: user.to_string(),
                event,
            },
        );
        let waitlist_think = self.scenario.think.waitlist_ms;
        let at = now + self.think(waitlist_think);
        Workload::schedule(
            &mut self.waiters_due,
            &mut self.sequence,
            at,
            waiter.to_string(),
        );
    }

    fn learn_taken(&mut self, event: usize, body: &Value) {
        let layout = &self.events[event];
        let seats: Vec<u32> = body
            .pointer("/error/details/seats")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter_map(|label| layout.seat_index(label))
            .collect();
        for seat in seats {
            self.taken[event][seat as usize] = true;
        }
    }

    fn free_seats(&mut self, event: usize, seats: &[u32]) {
        for &seat in seats {
            self.taken[event][seat as usize] = false;
        }
    }

    /// Follow-ups not yet sent (for the end-of-run summary).
    pub fn pending(&self) -> (usize, usize, usize) {
        (
            self.holds_due.len(),
            self.bookings_due.len(),
            self.waiters_due.len(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_is_read_from_its_answer_borrowed_or_with_escapes() {
        let raw = br#"{"hold_id":"h_1","seats":["A-1-1","B\"2"],"quantity":2,"expires_at":"2026-12-03T10:00:00Z","status":"held"}"#;
        let answer = Answer::from_bytes(201, bytes::Bytes::from_static(raw));
        let held = answer.decode::<HeldView>().expect("a hold");
        assert!(matches!(
            held.hold_id.as_ref().map(|id| &id.0),
            Some(Cow::Borrowed("h_1"))
        ));
        let seats: Vec<&str> = held.seats.iter().flatten().map(|seat| &**seat).collect();
        assert_eq!(seats, ["A-1-1", "B\"2"]);
        let escaped = &held.seats.as_ref().expect("seats")[1].0;
        assert!(
            matches!(escaped, Cow::Owned(_)),
            "an escaped string is copied"
        );
        assert_eq!(held.quantity, Some(2));
        assert_eq!(held.expires_at.as_deref(), Some("2026-12-03T10:00:00Z"));
        // A general-admission hold: no seats, its category; read from a parsed body too.
        let pooled = Answer::from_parts(
            201,
            json!({"hold_id": "h_2", "seats": null, "quantity": 3, "categories": ["Floor"]}),
        );
        let held = pooled.decode::<HeldView>().expect("a hold");
        assert!(held.seats.is_none());
        let category = held.categories.iter().flatten().next().map(|c| &**c);
        assert_eq!(category, Some("Floor"));
        let booked = Answer::from_bytes(201, bytes::Bytes::from_static(br#"{"booking_id":"b_9"}"#));
        let booking = booked
            .decode::<BookedView>()
            .and_then(|view| view.booking_id);
        assert_eq!(booking.as_deref(), Some("b_9"));
    }
}
