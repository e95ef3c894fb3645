//! Scenarios: what a load test creates and what its users do, as TOML files in
//! `config/scenarios/`. A scenario is plain data: it parses, validates, scales and
//! serializes back (`toml::to_string`) to an equal value.
//!
//! ```toml
//! name = "flash-sale"
//! seed = 7
//! [load]      rate_per_second, duration_seconds, requests_max, arrivals, in_flight_max
//! [users]     count, prefix, one_attempt_each
//! [[events]]  count copies of one event: categories, sections (rows × seats), general_admission
//! [skew]      zipf_exponent over events (0 = uniform)
//! [mix]       relative weights of the request kinds
//! [holds]     seats per hold, together / wait / any-category probabilities
//! [think]     delays between a user's dependent requests
//! ```

use engine::spec_rules::SpecRules;
use engine::EngineConfig;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Most users a scenario may name (user tokens are minted and cached per user).
pub const USERS_MAX: u64 = 10_000_000;
/// Most events a scenario may create.
pub const EVENTS_MAX: u64 = 100_000;
/// Longest a run may last, whatever a scenario or flag asks.
pub const DURATION_MAX_SECONDS: f64 = 3_600.0;
/// `--scale` below 1 shortens a run, never below this many seconds (a dry run's length).
pub const SCALED_DURATION_MIN_SECONDS: f64 = 20.0;
/// Most requests one run may send.
pub const REQUESTS_MAX: u64 = 100_000_000;

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Seeds every random choice of the run (users, events, seats, kinds, arrivals).
    #[serde(default = "default_seed")]
    pub seed: u64,
    pub load: LoadSpec,
    pub users: UsersSpec,
    pub events: Vec<EventTemplate>,
    #[serde(default)]
    pub skew: SkewSpec,
    pub mix: MixSpec,
    #[serde(default)]
    pub holds: HoldsSpec,
    #[serde(default)]
    pub think: ThinkSpec,
}

fn default_seed() -> u64 {
    1
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrivals {
    /// Evenly spaced: request `i` is due at `i / rate`.
    #[default]
    Uniform,
    /// A Poisson process: exponential gaps with mean `1 / rate` (seeded).
    Poisson,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    /// Open-loop target rate (requests per second).
    pub rate_per_second: f64,
    /// The run stops after this long...
    pub duration_seconds: f64,
    /// ...or after this many requests, whichever comes first.
    pub requests_max: u64,
    #[serde(default)]
    pub arrivals: Arrivals,
    /// Requests in flight at once; a request due while this many are waiting waits too,
    /// and that wait counts in its latency.
    #[serde(default = "default_in_flight_max")]
    pub in_flight_max: usize,
    /// Wait for the latest future `sales_open_in_seconds` of the events before the first
    /// request (an on-sale starts the moment the window opens).
    #[serde(default)]
    pub start_at_sales_open: bool,
}

fn default_in_flight_max() -> usize {
    512
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersSpec {
    pub count: u64,
    /// User ids are `<prefix><n>`, n from 1.
    #[serde(default = "default_user_prefix")]
    pub prefix: String,
    /// Each user starts at most one purchase (a hold or a waitlist join), in order: an
    /// on-sale crowd. Once every user has tried and nothing is left to follow up, the run
    /// ends early.
    #[serde(default)]
    pub one_attempt_each: bool,
}

impl UsersSpec {
    /// User `number`'s id (`<prefix><number>`, numbers from 1).
    pub fn name(&self, number: u64) -> String {
        format!("{}{number}", self.prefix)
    }
}

fn default_user_prefix() -> String {
    "user-".into()
}

/// `count` events with the same shape. `{n}` in the texts becomes the copy's number.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventTemplate {
    #[serde(default = "one")]
    pub count: u64,
    pub name: String,
    pub city: String,
    pub country: String,
    pub venue: String,
    #[serde(default = "default_starts_in_days")]
    pub starts_in_days: u64,
    /// Sales open this long after setup (absent: open at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sales_open_in_seconds: Option<u64>,
    /// An arrival window this long before the opening (needs `sales_open_in_seconds`,
    /// 1 to 86400): waiting holds and waitlist joins in it are entered into a draw made
    /// at opening (issue 23). The load generator commits to a seed and never reveals it,
    /// so the draw uses the fallback seed; with `load.start_at_sales_open` the load starts
    /// when the window opens. The report shows the spread of places by arrival time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival_window_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sales_close_in_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_ttl_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_seats_per_order: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_seats_per_user: Option<u32>,
    /// `strict` (default) or `skip_ahead`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waitlist_policy: Option<String>,
    pub categories: Vec<CategoryTemplate>,
    #[serde(default)]
    pub sections: Vec<SectionTemplate>,
    #[serde(default)]
    pub general_admission: Vec<PoolTemplate>,
}

fn one() -> u64 {
    1
}

fn default_starts_in_days() -> u64 {
    30
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryTemplate {
    pub name: String,
    pub price_cents: u64,
}

/// `rows` rows labelled `1..=rows`, each of `seats_per_row` seats of `category`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SectionTemplate {
    pub name: String,
    pub rows: u32,
    pub seats_per_row: u32,
    pub category: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolTemplate {
    pub category: String,
    pub capacity: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkewSpec {
    /// Events are ranked in creation order; rank k is chosen with weight `1 / k^s`.
    /// 0 is uniform; about 1 is the classic "a few shows are hot" curve.
    #[serde(default)]
    pub zipf_exponent: f64,
}

/// Relative weights; they need not add up to anything. A dependent kind (confirm,
/// release, cancel, waitlist read) with nothing to act on yet places a best-available
/// hold instead, so the mix is a target that the supply of holds bounds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixSpec {
    #[serde(default)]
    pub hold_exact: f64,
    #[serde(default)]
    pub hold_best: f64,
    #[serde(default)]
    pub confirm: f64,
    #[serde(default)]
    pub release: f64,
    #[serde(default)]
    pub cancel: f64,
    #[serde(default)]
    pub waitlist_join: f64,
    #[serde(default)]
    pub waitlist_read: f64,
    #[serde(default)]
    pub read_event: f64,
    #[serde(default)]
    pub read_seats: f64,
    /// `GET /healthz`: the HTTP stack's own cost (routing, middleware, the answer), as the
    /// no-op baseline the write paths are measured against.
    #[serde(default)]
    pub noop: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldsSpec {
    #[serde(default = "one_u32")]
    pub quantity_min: u32,
    #[serde(default = "two_u32")]
    pub quantity_max: u32,
    /// Best-available holds ask for adjacent seats this often.
    #[serde(default = "one_f64")]
    pub together_probability: f64,
    /// Best-available holds carry `"wait": true` this often (join the waitlist when short).
    #[serde(default)]
    pub wait_probability: f64,
    /// Best-available holds name no category this often (any category will do).
    #[serde(default)]
    pub any_category_probability: f64,
    /// Pay each hold through the payment flow before its confirm: `POST
    /// /v1/holds/{id}/payment`, then the confirm with the payment's id as `payment_ref`
    /// (checked against the gateway). Needs a gateway whose payments succeed at once: the
    /// development gateway (`payments.gateway = "test"`, `--dev`). Reported under
    /// `confirm`. Off: confirms carry references of their own (no gateway needed).
    #[serde(default)]
    pub pay: bool,
}

fn one_u32() -> u32 {
    1
}

fn two_u32() -> u32 {
    2
}

fn one_f64() -> f64 {
    1.0
}

impl Default for HoldsSpec {
    fn default() -> Self {
        HoldsSpec {
            quantity_min: 1,
            quantity_max: 2,
            together_probability: 1.0,
            wait_probability: 0.0,
            any_category_probability: 0.0,
            pay: false,
        }
    }
}

/// Uniform in `[min_ms, max_ms]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelayRange {
    pub min_ms: u64,
    pub max_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThinkSpec {
    /// From a hold being granted (or offered) to its confirm or release being due.
    #[serde(default = "default_hold_think")]
    pub hold_ms: DelayRange,
    /// From a booking to its cancel being due.
    #[serde(default = "default_booking_think")]
    pub booking_ms: DelayRange,
    /// From joining a waitlist to polling it.
    #[serde(default = "default_waitlist_think")]
    pub waitlist_ms: DelayRange,
    /// Closed loop only: a virtual user's pause between two requests.
    #[serde(default = "default_closed_think")]
    pub closed_loop_ms: DelayRange,
}

fn default_hold_think() -> DelayRange {
    DelayRange {
        min_ms: 200,
        max_ms: 2_000,
    }
}

fn default_booking_think() -> DelayRange {
    DelayRange {
        min_ms: 1_000,
        max_ms: 5_000,
    }
}

fn default_waitlist_think() -> DelayRange {
    DelayRange {
        min_ms: 500,
        max_ms: 2_000,
    }
}

fn default_closed_think() -> DelayRange {
    DelayRange {
        min_ms: 0,
        max_ms: 0,
    }
}

impl Default for ThinkSpec {
    fn default() -> Self {
        ThinkSpec {
            hold_ms: default_hold_think(),
            booking_ms: default_booking_think(),
            waitlist_ms: default_waitlist_think(),
            closed_loop_ms: default_closed_think(),
        }
    }
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: shown.clone(),
            source,
        })?;
        Scenario::parse(&text, &shown)
    }

    pub fn parse(text: &str, path: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = toml::from_str(text).map_err(|source| ScenarioError::Parse {
            path: path.to_string(),
            source,
        })?;
        scenario
            .validate()
            .map_err(|message| ScenarioError::Invalid {
                path: path.to_string(),
                message,
            })?;
        Ok(scenario)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a scenario always serializes")
    }

    /// Checks every relationship a run relies on; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        let load = &self.load;
        if !(load.rate_per_second.is_finite() && load.rate_per_second > 0.0) {
            return Err("load.rate_per_second must be positive".into());
        }
        if !(load.duration_seconds.is_finite()
            && load.duration_seconds > 0.0
            && load.duration_seconds <= DURATION_MAX_SECONDS)
        {
            return Err(format!(
                "load.duration_seconds must be in (0, {DURATION_MAX_SECONDS}]"
            ));
        }
        if load.requests_max == 0 || load.requests_max > REQUESTS_MAX {
            return Err(format!("load.requests_max must be in [1, {REQUESTS_MAX}]"));
        }
        if load.in_flight_max == 0 || load.in_flight_max > 65_536 {
            return Err("load.in_flight_max must be in [1, 65536]".into());
        }
        if self.users.count == 0 || self.users.count > USERS_MAX {
            return Err(format!("users.count must be in [1, {USERS_MAX}]"));
        }
        if self.users.prefix.is_empty() || self.users.prefix.len() > 64 {
            return Err("users.prefix must be 1 to 64 bytes".into());
        }
        if self.events.is_empty() {
            return Err("at least one [[events]] is needed".into());
        }
        let events: u64 = self.events.iter().map(|event| event.count).sum();
        if events == 0 || events > EVENTS_MAX {
            return Err(format!(
                "the events add up to {events}; it must be in [1, {EVENTS_MAX}]"
            ));
        }
        for (index, event) in self.events.iter().enumerate() {
            event
                .validate()
                .map_err(|message| format!("events[{index}]: {message}"))?;
        }
        if !(self.skew.zipf_exponent.is_finite()
            && self.skew.zipf_exponent >= 0.0
            && self.skew.zipf_exponent <= 10.0)
        {
            return Err("skew.zipf_exponent must be in [0, 10]".into());
        }
        let weights = self.mix.weights();
        if weights
            .iter()
            .any(|(_, weight)| !(weight.is_finite() && *weight >= 0.0))
        {
            return Err("mix weights must be finite and not negative".into());
        }
        if weights.iter().map(|(_, weight)| weight).sum::<f64>() <= 0.0 {
            return Err("mix: at least one weight must be positive".into());
        }
        let holds = &self.holds;
        if holds.quantity_min == 0
            || holds.quantity_min > holds.quantity_max
            || holds.quantity_max > 100
        {
            return Err("holds: need 1 <= quantity_min <= quantity_max <= 100".into());
        }
        for (name, probability) in [
            ("together_probability", holds.together_probability),
            ("wait_probability", holds.wait_probability),
            ("any_category_probability", holds.any_category_probability),
        ] {
            if !(0.0..=1.0).contains(&probability) {
                return Err(format!("holds.{name} must be in [0, 1]"));
            }
        }
        for (name, range) in [
            ("hold_ms", self.think.hold_ms),
            ("booking_ms", self.think.booking_ms),
            ("waitlist_ms", self.think.waitlist_ms),
            ("closed_loop_ms", self.think.closed_loop_ms),
        ] {
            if range.min_ms > range.max_ms || range.max_ms > 3_600_000 {
                return Err(format!("think.{name}: need min_ms <= max_ms <= 3600000"));
            }
        }
        Ok(())
    }

    /// A smaller (or larger) copy for dry runs, tests and CI: the inventory (event copies,
    /// rows, pools), the users, the request budget and the rate are multiplied by `factor`
    /// (each kept at least 1); the run's duration too, but never below
    /// [`SCALED_DURATION_MIN_SECONDS`] nor above the scenario's, so a dry run ends within
    /// that time. Seats per row, the mix, think times, sales windows and the in-flight bound
    /// stay, so the shape of the load stays.
    pub fn scaled(&self, factor: f64) -> Scenario {
        assert!(
            factor.is_finite() && factor > 0.0,
            "the scale factor must be positive"
        );
        let scale = |value: u64| ((value as f64 * factor).round() as u64).max(1);
        let mut scaled = self.clone();
        scaled.users.count = scale(self.users.count).min(USERS_MAX);
        scaled.load.requests_max = scale(self.load.requests_max).min(REQUESTS_MAX);
        scaled.load.rate_per_second = (self.load.rate_per_second * factor).max(1.0);
        scaled.load.duration_seconds = self
            .load
            .duration_seconds
            .min((self.load.duration_seconds * factor).max(SCALED_DURATION_MIN_SECONDS));
        for event in &mut scaled.events {
            event.count = scale(event.count);
            for section in &mut event.sections {
                section.rows = scale(u64::from(section.rows)) as u32;
            }
            for pool in &mut event.general_admission {
                pool.capacity = scale(u64::from(pool.capacity)) as u32;
            }
        }
        scaled
    }

    /// Event copies in creation order: (template index, copy number from 1).
    pub fn event_instances(&self) -> Vec<(usize, u64)> {
        self.events
            .iter()
            .enumerate()
            .flat_map(|(template, event)| (1..=event.count).map(move |copy| (template, copy)))
            .collect()
    }

    pub fn seats_total(&self) -> u64 {
        self.events
            .iter()
            .map(|event| event.count * event.capacity())
            .sum()
    }
}

impl EventTemplate {
    fn validate(&self) -> Result<(), String> {
        if self.count == 0 {
            return Err("count must be at least 1".into());
        }
        // The spec's rules are the engine's, in one table (`engine::spec_rules`): checked
        // on the body this template makes, with the bounds of a default deployment's
        // ingress, so a scenario that passes here is one its ingress accepts (the sales
        // window is relative to the setup's time: any time gives the same order).
        let body = crate::setup::create_event_body(self, 0, 0);
        let spec = crate::convert::event_spec(&body)
            .ok_or("the event it makes is not one the API takes (an unknown waitlist_policy?)")?;
        SpecRules::contract(&EngineConfig::default())
            .check_event(&spec)
            .map_err(|violation| format!("{}: {}", violation.field, violation.reason))?;
        if let Some(window) = self.arrival_window_seconds {
            let window_max = engine::draw::ARRIVAL_WINDOW_MS_MAX / 1000;
            if !(1..=window_max).contains(&window) {
                return Err(format!(
                    "arrival_window_seconds must be from 1 to {window_max}"
                ));
            }
            // The draw's time must be after setup: the engine refuses one in its past.
            if self.sales_open_in_seconds.unwrap_or(0) == 0 {
                return Err(
                    "arrival_window_seconds needs sales_open_in_seconds of at least 1".into(),
                );
            }
        }
        Ok(())
    }

    pub fn capacity(&self) -> u64 {
        let seated: u64 = self
            .sections
            .iter()
            .map(|section| u64::from(section.rows) * u64::from(section.seats_per_row))
            .sum();
        let pools: u64 = self
            .general_admission
            .iter()
            .map(|pool| u64::from(pool.capacity))
            .sum();
        seated + pools
    }

    /// Capacity per category name, in the template's category order.
    pub fn capacity_by_category(&self) -> Vec<(String, u64)> {
        self.categories
            .iter()
            .map(|category| {
                let seated: u64 = self
                    .sections
                    .iter()
                    .filter(|section| section.category == category.name)
                    .map(|section| u64::from(section.rows) * u64::from(section.seats_per_row))
                    .sum();
                let pools: u64 = self
                    .general_admission
                    .iter()
                    .filter(|pool| pool.category == category.name)
                    .map(|pool| u64::from(pool.capacity))
                    .sum();
                (category.name.clone(), seated + pools)
            })
            .collect()
    }

    pub fn is_general_admission(&self, category: &str) -> bool {
        self.general_admission
            .iter()
            .any(|pool| pool.category == category)
    }

    pub fn price_cents(&self, category: &str) -> u64 {
        self.categories
            .iter()
            .find(|entry| entry.name == category)
            .map_or(0, |entry| entry.price_cents)
    }
}

/// The request kinds a run sends, in report order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    CreateEvent,
    HoldExact,
    HoldBest,
    Confirm,
    Release,
    Cancel,
    WaitlistJoin,
    WaitlistRead,
    ReadEvent,
    ReadSeats,
    Noop,
    /// A replayed record that is none of the above.
    Other,
}

impl Kind {
    pub const ALL: [Kind; 12] = [
        Kind::CreateEvent,
        Kind::HoldExact,
        Kind::HoldBest,
        Kind::Confirm,
        Kind::Release,
        Kind::Cancel,
        Kind::WaitlistJoin,
        Kind::WaitlistRead,
        Kind::ReadEvent,
        Kind::ReadSeats,
        Kind::Noop,
        Kind::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::CreateEvent => "create_event",
            Kind::HoldExact => "hold_exact",
            Kind::HoldBest => "hold_best",
            Kind::Confirm => "confirm",
            Kind::Release => "release",
            Kind::Cancel => "cancel",
            Kind::WaitlistJoin => "waitlist_join",
            Kind::WaitlistRead => "waitlist_read",
            Kind::ReadEvent => "read_event",
            Kind::ReadSeats => "read_seats",
            Kind::Noop => "noop",
            Kind::Other => "other",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

impl MixSpec {
    pub fn weights(&self) -> [(Kind, f64); 10] {
        [
            (Kind::HoldExact, self.hold_exact),
            (Kind::HoldBest, self.hold_best),
            (Kind::Confirm, self.confirm),
            (Kind::Release, self.release),
            (Kind::Cancel, self.cancel),
            (Kind::WaitlistJoin, self.waitlist_join),
            (Kind::WaitlistRead, self.waitlist_read),
            (Kind::ReadEvent, self.read_event),
            (Kind::ReadSeats, self.read_seats),
            (Kind::Noop, self.noop),
        ]
    }
}
