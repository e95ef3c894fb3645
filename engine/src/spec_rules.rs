//! The rules of an event's spec and of a patch to it, written once: the engine's
//! validation (`Rejection::Invalid`), the ingress's 400s (`details.field`) and loadgen's
//! conversions all call this table instead of keeping copies that drift apart.
//!
//! Each rule is a [`Rule`]; a refusal is a [`Violation`] that names the JSON field it
//! concerns as the HTTP API spells it (`categories[1].name`,
//! `seating.sections[0].rows[2].seats`), says why in a sentence, and gives the bound
//! when there is one. The engine maps a violation to `Invalid { reason }` (or, for a
//! category no `categories` entry names, `NotFound { Category }`, as it always did); the
//! ingress to its 400 naming `field`.
//!
//! The rules are checked in one order (the engine's, whose decisions and reason texts
//! are pinned by state hashes and outcome digests), so every caller names the same first
//! violation of a spec that breaks several.
//!
//! Two sets of bounds, one set of rules ([`SpecRules::engine`],
//! [`SpecRules::contract`]): the engine bounds text in UTF-8 bytes and a hold's TTL in
//! milliseconds by its configuration; the HTTP contract counts text in characters (as
//! JSON Schema does), at most a quarter of the engine's byte bound, and takes the TTL in
//! whole seconds from 1 to 7200 within the engine's range. So whatever the ingress
//! accepts, the engine accepts. What is purely about JSON (types, unknown fields, RFC 3339
//! strings, enumeration names) stays in the ingress.

use crate::command::{EventPatch, EventSpec, WaitlistPolicy, PRICE_CENTS_MAX};
use crate::config::{EngineConfig, DURATION_MS_MAX};
use std::collections::BTreeSet;

/// The contract's hold TTL range and default, in seconds (narrowed by the engine's
/// `hold_ttl_min_ms`/`hold_ttl_max_ms`: [`SpecRules::hold_ttl_seconds_range`]).
pub const HOLD_TTL_SECONDS_MIN: u64 = 1;
pub const HOLD_TTL_SECONDS_MAX: u64 = 7_200;
pub const HOLD_TTL_SECONDS_DEFAULT: u64 = 300;
/// The contract's `max_seats_per_order` when a create leaves it out (capped by the
/// engine's `seats_per_order_cap`: [`SpecRules::seats_per_order_default`]).
pub const SEATS_PER_ORDER_DEFAULT: u32 = 10;
/// Section indices are `u16` in a layout.
pub const SECTIONS_MAX: usize = u16::MAX as usize;

/// One rule about the values of an event spec or patch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    /// A required text is empty or only white space (`char::is_whitespace`).
    TextBlank,
    /// A text is longer than the bound (bytes for the engine, characters for the contract).
    TextTooLong,
    /// `hold_ttl_seconds` (the spec's `hold_ttl_ms`) is outside the TTL range.
    HoldTtlRange,
    /// `max_seats_per_order` is 0 or above `seats_per_order_cap`.
    SeatsPerOrderRange,
    /// `max_seats_per_user` is 0.
    SeatsPerUserZero,
    /// `ends_at` is before `starts_at`.
    EndsBeforeStart,
    /// `sales_close_at` is not after `sales_open_at`.
    SalesCloseNotAfterOpen,
    /// No category, or more than `event_categories_max`.
    CategoriesCount,
    /// A category's `price_cents` is above [`PRICE_CENTS_MAX`].
    PriceTooHigh,
    /// Two categories have one name.
    CategoryNamedTwice,
    /// Neither seating nor general admission.
    NoSeatingNorAdmission,
    /// More than [`SECTIONS_MAX`] sections.
    SectionsCount,
    /// A section name or row label has a `-` (seat ids are `<section>-<row>-<number>`).
    NameWithDash,
    /// Two sections of an event, or two rows of a section, have one name.
    NameUsedTwice,
    /// A section without rows.
    SectionWithoutRows,
    /// A row without seats.
    RowWithoutSeats,
    /// A row or pool names a category that `categories` does not have.
    UnknownCategory,
    /// More than `event_seats_max` seats or `event_rows_max` rows.
    SeatsOrRowsCount,
    /// Two general-admission pools of one category.
    PoolTwice,
    /// A pool's capacity is 0 or above `pool_capacity_max`.
    PoolCapacityRange,
    /// A category with both seats and a pool.
    SeatedAndAdmission,
}

impl Rule {
    /// Every rule, in no particular order (for tests that cover them all).
    pub const ALL: [Rule; 21] = [
        Rule::TextBlank,
        Rule::TextTooLong,
        Rule::HoldTtlRange,
        Rule::SeatsPerOrderRange,
        Rule::SeatsPerUserZero,
        Rule::EndsBeforeStart,
        Rule::SalesCloseNotAfterOpen,
        Rule::CategoriesCount,
        Rule::PriceTooHigh,
        Rule::CategoryNamedTwice,
        Rule::NoSeatingNorAdmission,
        Rule::SectionsCount,
        Rule::NameWithDash,
        Rule::NameUsedTwice,
        Rule::SectionWithoutRows,
        Rule::RowWithoutSeats,
        Rule::UnknownCategory,
        Rule::SeatsOrRowsCount,
        Rule::PoolTwice,
        Rule::PoolCapacityRange,
        Rule::SeatedAndAdmission,
    ];
}

/// A spec or patch that breaks a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The JSON field, as the HTTP API names it (`details.field` of the ingress's 400).
    pub field: String,
    pub rule: Rule,
    /// A human sentence; the engine's `Invalid { reason }` (texts pinned by tests and
    /// outcome digests: change them deliberately).
    pub reason: String,
    /// The bound the value broke, when the rule has one.
    pub limit: Option<u64>,
}

impl Violation {
    fn new(field: impl Into<String>, rule: Rule, reason: impl Into<String>) -> Violation {
        Violation {
            field: field.into(),
            rule,
            reason: reason.into(),
            limit: None,
        }
    }

    fn limit(mut self, limit: u64) -> Violation {
        self.limit = Some(limit);
        self
    }
}

/// Whose bounds: the engine's (what a log record may hold) or the HTTP contract's
/// (stricter, so what the ingress accepts always passes the engine).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bounds {
    Engine,
    Contract,
}

/// The rules with one set of bounds. Small and `Copy`: make one where needed.
#[derive(Clone, Copy, Debug)]
pub struct SpecRules {
    bounds: Bounds,
    /// Bytes (engine) or characters (contract).
    text_max: usize,
    hold_ttl_min_ms: u64,
    hold_ttl_max_ms: u64,
    seats_per_order_cap: u32,
    event_categories_max: u32,
    event_seats_max: u32,
    event_rows_max: u32,
    pool_capacity_max: u32,
}

/// The longest text field the contract accepts, in characters: a quarter of the engine's
/// `text_bytes_max`, since a character takes at most four bytes in UTF-8.
pub fn text_chars_max(config: &EngineConfig) -> usize {
    config.text_bytes_max / 4
}

/// A section name or row label: no `-` (seat ids are `<section>-<row>-<number>`) and
/// not one `seen` already has; `said` gives the field and the reason of a refusal.
fn named_once<'a>(
    name: &'a str,
    seen: &mut BTreeSet<&'a str>,
    said: impl FnOnce() -> (String, String),
) -> Result<(), Violation> {
    let rule = if name.contains('-') {
        Rule::NameWithDash
    } else if !seen.insert(name) {
        Rule::NameUsedTwice
    } else {
        return Ok(());
    };
    let (field, reason) = said();
    Err(Violation::new(field, rule, reason))
}

impl SpecRules {
    /// The engine's rules under `config`.
    #[inline]
    pub fn engine(config: &EngineConfig) -> SpecRules {
        SpecRules {
            bounds: Bounds::Engine,
            text_max: config.text_bytes_max,
            hold_ttl_min_ms: config.hold_ttl_min_ms,
            hold_ttl_max_ms: config.hold_ttl_max_ms,
            seats_per_order_cap: config.seats_per_order_cap,
            event_categories_max: config.event_categories_max,
            event_seats_max: config.event_seats_max,
            event_rows_max: config.event_rows_max,
            pool_capacity_max: config.pool_capacity_max,
        }
    }

    /// The HTTP contract's rules for an engine with `config`: text in characters (at most
    /// [`text_chars_max`]) and the contract's TTL range within the engine's.
    pub fn contract(config: &EngineConfig) -> SpecRules {
        SpecRules {
            bounds: Bounds::Contract,
            text_max: text_chars_max(config),
            hold_ttl_min_ms: config.hold_ttl_min_ms.max(HOLD_TTL_SECONDS_MIN * 1000),
            hold_ttl_max_ms: config.hold_ttl_max_ms.min(HOLD_TTL_SECONDS_MAX * 1000),
            ..SpecRules::engine(config)
        }
    }

    /// The engine's rules with the widest bounds any valid configuration allows: a spec
    /// these refuse, no engine accepts (for tools that do not know the deployment's
    /// configuration, like loadgen).
    pub fn widest() -> SpecRules {
        SpecRules {
            bounds: Bounds::Engine,
            text_max: usize::MAX,
            hold_ttl_min_ms: 0,
            hold_ttl_max_ms: DURATION_MS_MAX,
            seats_per_order_cap: u32::MAX,
            event_categories_max: u32::MAX,
            event_seats_max: crate::engine::EVENT_SEATS_LIMIT,
            event_rows_max: u32::MAX,
            pool_capacity_max: u32::MAX,
        }
    }

    /// The hold TTLs these rules accept, in whole seconds (the contract's range, as the
    /// OpenAPI document states it).
    pub fn hold_ttl_seconds_range(&self) -> (u64, u64) {
        (
            self.hold_ttl_min_ms.div_ceil(1000),
            self.hold_ttl_max_ms / 1000,
        )
    }

    /// `max_seats_per_order` when a create leaves it out.
    pub fn seats_per_order_default(&self) -> u32 {
        SEATS_PER_ORDER_DEFAULT.min(self.seats_per_order_cap)
    }

    /// A text field: not blank when `required`, and at most the bound. `field` is the
    /// JSON field; `noun` the engine's name for it in a reason ("category name"), which
    /// the contract's reasons replace by the field itself.
    #[inline]
    pub fn text(
        &self,
        field: &str,
        noun: &str,
        text: &str,
        required: bool,
    ) -> Result<(), Violation> {
        // The violation is built only on a refusal: the engine checks every request's
        // user name here.
        let noun = match self.bounds {
            Bounds::Engine => noun,
            Bounds::Contract => field,
        };
        // Perf: `all` stops at the first character that is not white space, where
        // `trim` walks in from both ends; the same rule (Unicode White_Space).
        if required && text.chars().all(char::is_whitespace) {
            return Err(Violation::new(
                field,
                Rule::TextBlank,
                format!("{noun} must not be empty"),
            ));
        }
        let (length, unit) = match self.bounds {
            Bounds::Engine => (text.len(), "bytes"),
            Bounds::Contract => (text.chars().count(), "characters"),
        };
        if length > self.text_max {
            return Err(Violation::new(
                field,
                Rule::TextTooLong,
                format!("{noun} is longer than {} {unit}", self.text_max),
            )
            .limit(self.text_max as u64));
        }
        Ok(())
    }

    /// Whether the engine's text rule plainly accepts `text` under a bound of
    /// `text_bytes_max`: it starts with a visible ASCII character (so it is not blank) and
    /// is within the bound. Never true where [`SpecRules::text`] refuses (tested); false
    /// says nothing (ask `text`). Perf: the engine checks every new user's name and every
    /// payment reference, nearly all plain ASCII: decided inline, without building the
    /// rules or a call.
    #[inline]
    pub fn text_plainly_accepted(text: &str, text_bytes_max: usize) -> bool {
        text.len() <= text_bytes_max
            && text
                .as_bytes()
                .first()
                .is_some_and(|first| first.is_ascii_graphic())
    }

    /// A hold's TTL (an event's, or a desk's in the contract).
    pub fn hold_ttl(&self, hold_ttl_ms: u64) -> Result<(), Violation> {
        if (self.hold_ttl_min_ms..=self.hold_ttl_max_ms).contains(&hold_ttl_ms) {
            return Ok(());
        }
        let reason = match self.bounds {
            Bounds::Engine => format!(
                "hold TTL must be from {} to {} ms",
                self.hold_ttl_min_ms, self.hold_ttl_max_ms
            ),
            Bounds::Contract => {
                let (minimum, maximum) = self.hold_ttl_seconds_range();
                format!("hold_ttl_seconds must be from {minimum} to {maximum}")
            }
        };
        Err(
            Violation::new("hold_ttl_seconds", Rule::HoldTtlRange, reason)
                .limit(self.hold_ttl_max_ms),
        )
    }

    /// The per-order and per-user limits, and the TTL.
    pub fn limits(
        &self,
        hold_ttl_ms: u64,
        seats_per_order_max: u32,
        seats_per_user_max: Option<u32>,
    ) -> Result<(), Violation> {
        self.hold_ttl(hold_ttl_ms)?;
        if seats_per_order_max == 0 || seats_per_order_max > self.seats_per_order_cap {
            return Err(Violation::new(
                "max_seats_per_order",
                Rule::SeatsPerOrderRange,
                format!(
                    "seats per order must be from 1 to {}",
                    self.seats_per_order_cap
                ),
            )
            .limit(u64::from(self.seats_per_order_cap)));
        }
        if seats_per_user_max == Some(0) {
            return Err(Violation::new(
                "max_seats_per_user",
                Rule::SeatsPerUserZero,
                "seats per user must be at least 1",
            ));
        }
        Ok(())
    }

    /// The order of an event's times.
    pub fn times(
        &self,
        starts_at_ms: u64,
        ends_at_ms: Option<u64>,
        sales_open_at_ms: Option<u64>,
        sales_close_at_ms: Option<u64>,
    ) -> Result<(), Violation> {
        if ends_at_ms.is_some_and(|ends| ends < starts_at_ms) {
            return Err(Violation::new(
                "ends_at",
                Rule::EndsBeforeStart,
                "ends_at is before starts_at",
            ));
        }
        if let (Some(open), Some(close)) = (sales_open_at_ms, sales_close_at_ms) {
            if close <= open {
                return Err(Violation::new(
                    "sales_close_at",
                    Rule::SalesCloseNotAfterOpen,
                    "sales_close_at is not after sales_open_at",
                ));
            }
        }
        Ok(())
    }

    /// Every rule of a new event's spec, in the engine's order.
    /// The limits and times of a whole spec (a created one, or one a patch made).
    fn limits_and_times(&self, spec: &EventSpec) -> Result<(), Violation> {
        self.limits(
            spec.hold_ttl_ms,
            spec.seats_per_order_max,
            spec.seats_per_user_max,
        )?;
        self.times(
            spec.starts_at_ms,
            spec.ends_at_ms,
            spec.sales_open_at_ms,
            spec.sales_close_at_ms,
        )
    }

    pub fn check_event(&self, spec: &EventSpec) -> Result<(), Violation> {
        for (field, text, required) in [
            ("name", &spec.name, true),
            ("description", &spec.description, false),
            ("city", &spec.city, true),
            ("country", &spec.country, true),
            ("venue", &spec.venue, true),
        ] {
            self.text(field, field, text, required)?;
        }
        self.limits_and_times(spec)?;
        let names = self.categories(spec)?;
        self.seating(spec, &names)?;
        self.general_admission(spec, &names)
    }

    /// The categories; their names.
    fn categories<'a>(&self, spec: &'a EventSpec) -> Result<BTreeSet<&'a str>, Violation> {
        if spec.categories.is_empty() || spec.categories.len() > self.event_categories_max as usize
        {
            return Err(Violation::new(
                "categories",
                Rule::CategoriesCount,
                format!(
                    "an event needs from 1 to {} categories",
                    self.event_categories_max
                ),
            )
            .limit(u64::from(self.event_categories_max)));
        }
        let mut names = BTreeSet::new();
        for (index, category) in spec.categories.iter().enumerate() {
            let field = |part: &str| format!("categories[{index}].{part}");
            self.text(&field("name"), "category name", &category.name, true)?;
            if category.price_cents > PRICE_CENTS_MAX {
                return Err(Violation::new(
                    field("price_cents"),
                    Rule::PriceTooHigh,
                    format!(
                        "category {:?} costs more than {PRICE_CENTS_MAX} cents",
                        category.name
                    ),
                )
                .limit(PRICE_CENTS_MAX));
            }
            if !names.insert(category.name.as_str()) {
                return Err(Violation::new(
                    field("name"),
                    Rule::CategoryNamedTwice,
                    format!("category {:?} is named twice", category.name),
                ));
            }
        }
        Ok(names)
    }

    /// The seat map: sections, rows, their names and sizes.
    fn seating(&self, spec: &EventSpec, names: &BTreeSet<&str>) -> Result<(), Violation> {
        if spec.sections.is_empty() && spec.general_admission.is_empty() {
            return Err(Violation::new(
                "seating",
                Rule::NoSeatingNorAdmission,
                "an event needs seating, general admission, or both",
            ));
        }
        // Fix: section indices are u16 in the layout, and the section count was never
        // checked (70,000 empty sections panicked in `Layout::build`).
        if spec.sections.len() > SECTIONS_MAX {
            return Err(Violation::new(
                "seating.sections",
                Rule::SectionsCount,
                format!("an event has at most {SECTIONS_MAX} sections"),
            )
            .limit(SECTIONS_MAX as u64));
        }
        let (mut seats, mut rows) = (0u64, 0u64);
        let mut section_names = BTreeSet::new();
        for (section_index, section) in spec.sections.iter().enumerate() {
            let field = |part: &str| format!("seating.sections[{section_index}].{part}");
            self.text(&field("name"), "section name", &section.name, true)?;
            named_once(&section.name, &mut section_names, || {
                (
                    field("name"),
                    format!(
                        "section name {:?} contains '-' or is used twice",
                        section.name
                    ),
                )
            })?;
            // Fix: empty sections let an event with no seats and no pools through the
            // "needs seating" rule above.
            if section.rows.is_empty() {
                return Err(Violation::new(
                    field("rows"),
                    Rule::SectionWithoutRows,
                    format!("section {:?} has no rows", section.name),
                ));
            }
            let mut labels = BTreeSet::new();
            for (row_index, row) in section.rows.iter().enumerate() {
                let field = |part: &str| field(&format!("rows[{row_index}].{part}"));
                self.text(&field("label"), "row label", &row.label, true)?;
                named_once(&row.label, &mut labels, || {
                    (
                        field("label"),
                        format!(
                            "row label {:?} in section {:?} contains '-' or is used twice",
                            row.label, section.name
                        ),
                    )
                })?;
                if row.seats == 0 {
                    return Err(Violation::new(
                        field("seats"),
                        Rule::RowWithoutSeats,
                        format!(
                            "row {:?} in section {:?} has no seats",
                            row.label, section.name
                        ),
                    ));
                }
                if !names.contains(row.category.as_str()) {
                    return Err(unknown_category(field("category"), &row.category));
                }
                seats += u64::from(row.seats);
                rows += 1;
            }
        }
        if seats > u64::from(self.event_seats_max) || rows > u64::from(self.event_rows_max) {
            return Err(Violation::new(
                "seating",
                Rule::SeatsOrRowsCount,
                format!(
                    "an event has at most {} seats in {} rows",
                    self.event_seats_max, self.event_rows_max
                ),
            )
            .limit(if seats > u64::from(self.event_seats_max) {
                u64::from(self.event_seats_max)
            } else {
                u64::from(self.event_rows_max)
            }));
        }
        Ok(())
    }

    /// The general-admission pools.
    fn general_admission(&self, spec: &EventSpec, names: &BTreeSet<&str>) -> Result<(), Violation> {
        let mut pooled = BTreeSet::new();
        for (index, pool) in spec.general_admission.iter().enumerate() {
            let field = |part: &str| format!("general_admission[{index}].{part}");
            if !names.contains(pool.category.as_str()) {
                return Err(unknown_category(field("category"), &pool.category));
            }
            if !pooled.insert(pool.category.as_str()) {
                return Err(Violation::new(
                    field("category"),
                    Rule::PoolTwice,
                    format!(
                        "category {:?} has two general-admission pools",
                        pool.category
                    ),
                ));
            }
            if pool.capacity == 0 || pool.capacity > self.pool_capacity_max {
                return Err(Violation::new(
                    field("capacity"),
                    Rule::PoolCapacityRange,
                    format!(
                        "a pool's capacity must be from 1 to {}",
                        self.pool_capacity_max
                    ),
                )
                .limit(u64::from(self.pool_capacity_max)));
            }
            if spec
                .sections
                .iter()
                .flat_map(|section| &section.rows)
                .any(|row| row.category == pool.category)
            {
                return Err(Violation::new(
                    field("category"),
                    Rule::SeatedAndAdmission,
                    format!(
                        "category {:?} is both seated and general admission",
                        pool.category
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A patch to an event whose spec is `current`: the fields it sets, then the limits
    /// and times of the spec it makes, which is returned. (Seat maps never change.)
    pub fn check_patch(
        &self,
        current: &EventSpec,
        patch: &EventPatch,
    ) -> Result<EventSpec, Violation> {
        if let Some(name) = &patch.name {
            self.text("name", "name", name, true)?;
        }
        if let Some(description) = &patch.description {
            self.text("description", "description", description, false)?;
        }
        let mut spec = current.clone();
        patch.apply_to(&mut spec);
        self.limits_and_times(&spec)?;
        Ok(spec)
    }
}

fn unknown_category(field: String, category: &str) -> Violation {
    Violation::new(
        field,
        Rule::UnknownCategory,
        format!("category {category:?} is not in categories"),
    )
}

/// A waitlist policy's name in the API (`strict`, `skip_ahead`).
pub fn waitlist_policy_name(policy: WaitlistPolicy) -> &'static str {
    match policy {
        WaitlistPolicy::Strict => "strict",
        WaitlistPolicy::SkipAhead => "skip_ahead",
    }
}

/// The policy an API name stands for; `None` for an unknown name.
pub fn waitlist_policy_named(name: &str) -> Option<WaitlistPolicy> {
    [WaitlistPolicy::Strict, WaitlistPolicy::SkipAhead]
        .into_iter()
        .find(|policy| waitlist_policy_name(*policy) == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever the contract accepts, the engine accepts: its bounds lie inside the
    /// engine's, and the widest inside none.
    #[test]
    fn the_contract_is_inside_the_engine_and_the_engine_inside_the_widest() {
        let wide_ttl = EngineConfig {
            hold_ttl_min_ms: 500,
            hold_ttl_max_ms: 86_400_000,
            ..EngineConfig::default()
        };
        let narrow_ttl = EngineConfig {
            hold_ttl_min_ms: 1_500,
            hold_ttl_max_ms: 60_000,
            text_bytes_max: 10,
            ..EngineConfig::default()
        };
        for config in [EngineConfig::default(), wide_ttl, narrow_ttl] {
            let engine = SpecRules::engine(&config);
            let contract = SpecRules::contract(&config);
            let widest = SpecRules::widest();
            for (inner, outer) in [(contract, engine), (engine, widest)] {
                assert!(inner.hold_ttl_min_ms >= outer.hold_ttl_min_ms);
                assert!(inner.hold_ttl_max_ms <= outer.hold_ttl_max_ms);
                assert!(inner.seats_per_order_cap <= outer.seats_per_order_cap);
                assert!(inner.event_seats_max <= outer.event_seats_max);
                assert!(inner.event_rows_max <= outer.event_rows_max);
                assert!(inner.pool_capacity_max <= outer.pool_capacity_max);
                assert!(inner.event_categories_max <= outer.event_categories_max);
            }
            // Characters at most four bytes each.
            assert!(contract.text_max * 4 <= engine.text_max);
        }
        let (minimum, maximum) =
            SpecRules::contract(&EngineConfig::default()).hold_ttl_seconds_range();
        assert_eq!(
            (minimum, maximum),
            (HOLD_TTL_SECONDS_MIN, HOLD_TTL_SECONDS_MAX)
        );
        let (minimum, maximum) = SpecRules::contract(&EngineConfig {
            hold_ttl_min_ms: 1_500,
            hold_ttl_max_ms: 60_000,
            ..EngineConfig::default()
        })
        .hold_ttl_seconds_range();
        assert_eq!((minimum, maximum), (2, 60));
    }

    /// One text rule, two measures: the engine counts bytes and names its own nouns, the
    /// contract counts characters and names the field.
    #[test]
    fn texts_are_measured_in_bytes_by_the_engine_and_in_characters_by_the_contract() {
        let config = EngineConfig {
            text_bytes_max: 8,
            ..EngineConfig::default()
        };
        let engine = SpecRules::engine(&config);
        let contract = SpecRules::contract(&config);
        let field = "categories[0].name";
        assert_eq!(engine.text(field, "category name", "ééé", true), Ok(()));
        let refused = contract
            .text(field, "category name", "ééé", true)
            .unwrap_err();
        assert_eq!(
            (refused.rule, refused.reason.as_str(), refused.limit),
            (
                Rule::TextTooLong,
                "categories[0].name is longer than 2 characters",
                Some(2)
            )
        );
        let refused = engine
            .text(field, "category name", "ééééé", true)
            .unwrap_err();
        assert_eq!(
            (refused.field.as_str(), refused.reason.as_str()),
            (field, "category name is longer than 8 bytes")
        );
        let blank = engine
            .text(field, "category name", " \u{3000}", true)
            .unwrap_err();
        assert_eq!(
            (blank.rule, blank.reason.as_str()),
            (Rule::TextBlank, "category name must not be empty")
        );
        assert_eq!(engine.text(field, "category name", "", false), Ok(()));
    }

    /// The engine's quick accept never contradicts its text rule.
    #[test]
    fn a_plainly_accepted_text_is_accepted_by_the_engine_rule() {
        let texts = [
            "",
            " ",
            "a",
            " a",
            "a ",
            "\u{b}x",
            "\t",
            "~",
            "!x",
            "\u{7f}",
            "é",
            "\u{3000}",
            "alice",
            "user-00042",
            "pay_1234567",
            "12345678",
            "123456789",
        ];
        for text_bytes_max in [0, 1, 8, 9, 1_024] {
            let rules = SpecRules::engine(&EngineConfig {
                text_bytes_max,
                ..EngineConfig::default()
            });
            for text in texts {
                if SpecRules::text_plainly_accepted(text, text_bytes_max) {
                    for required in [false, true] {
                        assert_eq!(rules.text("f", "f", text, required), Ok(()), "{text:?}");
                    }
                }
            }
        }
        assert!(SpecRules::text_plainly_accepted("alice", 5));
        assert!(!SpecRules::text_plainly_accepted("alice", 4));
        assert!(!SpecRules::text_plainly_accepted(" alice", 1_024));
    }

    #[test]
    fn waitlist_policies_have_one_name_each() {
        for policy in [WaitlistPolicy::Strict, WaitlistPolicy::SkipAhead] {
            assert_eq!(
                waitlist_policy_named(waitlist_policy_name(policy)),
                Some(policy)
            );
        }
        assert_eq!(waitlist_policy_named("lottery"), None);
    }
}
