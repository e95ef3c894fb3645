//! Input validation that turns request bodies into engine commands. It refuses everything
//! the engine would refuse as `Invalid`, with a 400 naming the field, so nothing invalid
//! reaches the log. What a body says is parsed here (types, RFC 3339 times, names of
//! enumerations, defaults); whether the values of an event's spec or patch are allowed is
//! decided by `engine::spec_rules`, the engine's own table, with the contract's bounds
//! (`SpecRules::contract`: text in characters, the TTL in whole seconds), so a 400 and the
//! engine's `Invalid` come from one rule.

use crate::api::{CreateDeskBody, CreateEventBody, HoldBody, PatchEventBody};
use crate::error::{AppError, Reason};
use crate::times;
use engine::spec_rules::{self, SpecRules, Violation, HOLD_TTL_SECONDS_DEFAULT};
use engine::{
    CategorySpec, DeskSpec, EngineConfig, EventPatch, EventSpec, LevelSpec, Limit, PoolSpec,
    RowSpec, SectionSpec, Selection, WaitlistPolicy,
};
use std::collections::BTreeSet;
use std::time::Duration;

/// A desk's limits (the OpenAPI document states them from these).
pub(crate) const DESK_AGENTS_MAX: u32 = 10_000;
pub(crate) const SLOT_MINUTES_MAX: u64 = 24 * 60;
pub(crate) const HORIZON_HOURS_MAX: u64 = 24 * 365;
pub(crate) const DESK_LEVELS_MAX: usize = 16;
pub(crate) const DEADLINE_MINUTES_MAX: u64 = 24 * 60 * 365;

/// The longest text field, in characters (the spec rules' contract bound: a quarter of
/// `engine.text_bytes_max`, so the engine never refuses what the ingress accepted).
pub(crate) use engine::spec_rules::text_chars_max;

/// The longest seat id (`<section>-<row>-<number>`), in characters: the longest section
/// name and row label, two dashes and a `u32` seat number, so every seat of every event
/// can be named.
pub(crate) fn seat_id_chars_max(limits: &EngineConfig) -> usize {
    2 * text_chars_max(limits) + 2 + u32::MAX.to_string().len()
}

/// A spec rule's violation as the contract answers it: 400 naming the field.
pub(crate) fn refusal(violation: Violation) -> AppError {
    AppError::field(&violation.field, violation.reason)
}

/// A text field: blank (only whitespace, `char::is_whitespace`) refused when required,
/// and at most [`text_chars_max`] characters (the spec rules' text rule).
pub(crate) fn text(
    field: &str,
    value: &str,
    required: bool,
    limits: &EngineConfig,
) -> Result<String, AppError> {
    SpecRules::contract(limits)
        .text(field, field, value, required)
        .map_err(refusal)?;
    Ok(value.to_string())
}

/// `hold_ttl_seconds` in milliseconds, in the contract's range (the spec rules' TTL rule).
fn hold_ttl_ms(seconds: u64, limits: &EngineConfig) -> Result<u64, AppError> {
    // Saturating: a huge number of seconds is out of range, not an overflow.
    let millis = seconds.saturating_mul(1000);
    SpecRules::contract(limits)
        .hold_ttl(millis)
        .map_err(refusal)?;
    Ok(millis)
}

fn policy(value: &str) -> Result<WaitlistPolicy, AppError> {
    spec_rules::waitlist_policy_named(value).ok_or_else(|| {
        AppError::field(
            "waitlist_policy",
            "waitlist_policy must be strict or skip_ahead",
        )
    })
}

fn optional_time(field: &str, value: Option<&str>) -> Result<Option<u64>, AppError> {
    value.map(|value| times::parse(field, value)).transpose()
}

/// The arrival window of a create, if it asks for one: both fields or neither, a window
/// from 1 s to a day, a commitment of 64 hex digits, and a `sales_open_at` (the engine
/// also checks that it is in the future, by its clock).
pub(crate) fn draw_spec(
    body: &CreateEventBody,
) -> Result<Option<engine::draw::DrawSpec>, AppError> {
    draw_fields(
        body.arrival_window_seconds,
        body.draw_commitment.as_deref(),
        body.sales_open_at.is_some(),
    )
}

/// The arrival window's fields, wherever they come from (a create, or opening a window on
/// an event whose `sales_open_at` is `has_sales_open`).
pub(crate) fn draw_fields(
    arrival_window_seconds: Option<u64>,
    draw_commitment: Option<&str>,
    has_sales_open: bool,
) -> Result<Option<engine::draw::DrawSpec>, AppError> {
    let (seconds, commitment) = match (arrival_window_seconds, draw_commitment) {
        (None, None) => return Ok(None),
        (Some(seconds), Some(commitment)) => (seconds, commitment),
        (Some(_), None) => {
            return Err(AppError::field(
                "draw_commitment",
                "an arrival window needs draw_commitment",
            ))
        }
        (None, Some(_)) => {
            return Err(AppError::field(
                "arrival_window_seconds",
                "draw_commitment needs arrival_window_seconds",
            ))
        }
    };
    let seconds_max = engine::draw::ARRIVAL_WINDOW_MS_MAX / 1000;
    if !(1..=seconds_max).contains(&seconds) {
        return Err(AppError::field(
            "arrival_window_seconds",
            format!("arrival_window_seconds must be from 1 to {seconds_max}"),
        ));
    }
    if !has_sales_open {
        return Err(AppError::field(
            "sales_open_at",
            "an arrival window needs sales_open_at",
        ));
    }
    let commitment = engine::draw::parse_hex32(commitment).ok_or_else(|| {
        AppError::field(
            "draw_commitment",
            "draw_commitment must be 64 hex digits (SHA-256 of the seed)",
        )
    })?;
    Ok(Some(engine::draw::DrawSpec {
        arrival_window_ms: seconds * 1000,
        commitment,
    }))
}

/// The terms of a create, if it gives any (`currency`, `cancellation`): what it leaves
/// out is the default (`currency_default`; cancel at any time, refunded in full). Checked
/// by `EventTerms::check`, the engine's own rule, so a 400 names the field.
pub(crate) fn event_terms(
    body: &CreateEventBody,
    currency_default: &str,
) -> Result<Option<engine::EventTerms>, AppError> {
    if body.currency.is_none() && body.cancellation.is_none() {
        return Ok(None);
    }
    let cancellation = match &body.cancellation {
        None => engine::CancellationPolicy::ANY_TIME_FULL_REFUND,
        Some(cancellation) => engine::CancellationPolicy {
            until_hours_before_start: cancellation.until_hours_before_start,
            refund: engine::CancellationRefund::parse(&cancellation.refund).ok_or_else(|| {
                AppError::field(
                    "cancellation.refund",
                    "cancellation.refund must be \"full\" or \"none\"",
                )
            })?,
        },
    };
    let terms = engine::EventTerms {
        currency: body
            .currency
            .clone()
            .unwrap_or_else(|| currency_default.to_string()),
        cancellation,
    };
    terms.check().map_err(|error| {
        AppError::field(error.field, format!("{}: {}", error.field, error.reason))
    })?;
    Ok(Some(terms))
}

/// A revealed seed: 64 hex digits whose SHA-256 is `commitment`.
pub(crate) fn draw_seed(
    seed: &str,
    commitment: &[u8; engine::draw::DRAW_BYTES],
) -> Result<[u8; engine::draw::DRAW_BYTES], AppError> {
    let seed = engine::draw::parse_hex32(seed)
        .ok_or_else(|| AppError::field("seed", "seed must be 64 hex digits"))?;
    if engine::draw::commitment_of(&seed) != *commitment {
        return Err(AppError::field(
            "seed",
            "the seed's SHA-256 is not the event's draw_commitment",
        ));
    }
    Ok(seed)
}

/// A create's spec: the body parsed (times, the policy's name, defaults), then checked by
/// the spec rules.
pub(crate) fn event_spec(
    body: CreateEventBody,
    limits: &EngineConfig,
) -> Result<EventSpec, AppError> {
    let rules = SpecRules::contract(limits);
    let starts_at_ms = times::parse("starts_at", &body.starts_at)?;
    let ends_at_ms = optional_time("ends_at", body.ends_at.as_deref())?;
    let sales_open_at_ms = optional_time("sales_open_at", body.sales_open_at.as_deref())?;
    let sales_close_at_ms = optional_time("sales_close_at", body.sales_close_at.as_deref())?;
    let waitlist_policy = body
        .waitlist_policy
        .as_deref()
        .map(policy)
        .transpose()?
        .unwrap_or_default();
    let spec = EventSpec {
        name: body.name,
        description: body.description.unwrap_or_default(),
        city: body.city,
        country: body.country,
        venue: body.venue,
        starts_at_ms,
        ends_at_ms,
        sales_open_at_ms,
        sales_close_at_ms,
        // Saturating: a huge number of seconds is out of range, not an overflow.
        hold_ttl_ms: body
            .hold_ttl_seconds
            .unwrap_or(HOLD_TTL_SECONDS_DEFAULT)
            .saturating_mul(1000),
        seats_per_order_max: body
            .max_seats_per_order
            .unwrap_or_else(|| rules.seats_per_order_default()),
        seats_per_user_max: body.max_seats_per_user,
        waitlist_policy,
        categories: body
            .categories
            .into_iter()
            .map(|category| CategorySpec {
                name: category.name,
                price_cents: category.price_cents,
            })
            .collect(),
        sections: body
            .seating
            .map(|seating| seating.sections)
            .unwrap_or_default()
            .into_iter()
            .map(|section| SectionSpec {
                name: section.name,
                rows: section
                    .rows
                    .into_iter()
                    .map(|row| RowSpec {
                        label: row.label,
                        seats: row.seats,
                        category: row.category,
                    })
                    .collect(),
            })
            .collect(),
        general_admission: body
            .general_admission
            .unwrap_or_default()
            .into_iter()
            .map(|pool| PoolSpec {
                category: pool.category,
                capacity: pool.capacity,
            })
            .collect(),
    };
    rules.check_event(&spec).map_err(refusal)?;
    Ok(spec)
}

/// A patch, checked by the spec rules against the event as it is now (the engine checks
/// again, by the same rules).
pub(crate) fn event_patch(
    body: PatchEventBody,
    current: &EventSpec,
    limits: &EngineConfig,
) -> Result<EventPatch, AppError> {
    let mut patch = EventPatch {
        name: body.name,
        description: body.description,
        hold_ttl_ms: body
            .hold_ttl_seconds
            .map(|seconds| seconds.saturating_mul(1000)),
        seats_per_order_max: body.max_seats_per_order,
        seats_per_user_max: body.max_seats_per_user,
        ..EventPatch::default()
    };
    if let Some(starts_at) = &body.starts_at {
        patch.starts_at_ms = Some(times::parse("starts_at", starts_at)?);
    }
    if let Some(ends_at) = &body.ends_at {
        patch.ends_at_ms = Some(optional_time("ends_at", ends_at.as_deref())?);
    }
    if let Some(open) = &body.sales_open_at {
        patch.sales_open_at_ms = Some(optional_time("sales_open_at", open.as_deref())?);
    }
    if let Some(close) = &body.sales_close_at {
        patch.sales_close_at_ms = Some(optional_time("sales_close_at", close.as_deref())?);
    }
    if let Some(value) = &body.waitlist_policy {
        patch.waitlist_policy = Some(policy(value)?);
    }
    if patch == EventPatch::default() {
        return Err(AppError::bad_request(
            Reason::EmptyPatch,
            "the patch changes nothing: give at least one field",
        ));
    }
    SpecRules::contract(limits)
        .check_patch(current, &patch)
        .map_err(refusal)?;
    Ok(patch)
}

/// The selection of a hold request, with the seats-per-order cap applied.
pub(crate) fn selection(
    body: &HoldBody,
    limits: &EngineConfig,
) -> Result<(Selection, bool), AppError> {
    let wait = body.wait.unwrap_or(false);
    match (&body.seats, body.quantity) {
        (Some(_), Some(_)) => Err(AppError::field(
            "quantity",
            "give either seats or quantity, not both",
        )),
        (None, None) => Err(AppError::field(
            "seats",
            "give either seats (exact seats) or quantity (best available)",
        )),
        (Some(seats), None) => {
            if body.category.is_some() || body.together.is_some() {
                return Err(AppError::field(
                    if body.category.is_some() {
                        "category"
                    } else {
                        "together"
                    },
                    "category and together apply to quantity requests",
                ));
            }
            if wait {
                return Err(AppError::field(
                    "wait",
                    "wait applies to quantity requests (the waitlist is for quantities)",
                ));
            }
            if seats.is_empty() {
                return Err(AppError::field(
                    "seats",
                    "seats must name at least one seat",
                ));
            }
            if seats.len() > limits.seats_per_order_cap as usize {
                return Err(AppError::limit_exceeded(
                    Limit::SeatsPerOrder,
                    u64::from(limits.seats_per_order_cap),
                ));
            }
            let mut distinct = BTreeSet::new();
            for (index, seat) in seats.iter().enumerate() {
                if seat.is_empty() || seat.chars().count() > seat_id_chars_max(limits) {
                    return Err(AppError::field(
                        &format!("seats[{index}]"),
                        "a seat id is <section>-<row>-<number>",
                    ));
                }
                if !distinct.insert(seat.as_str()) {
                    return Err(AppError::field(
                        &format!("seats[{index}]"),
                        format!("seat {seat} is requested twice"),
                    ));
                }
            }
            Ok((Selection::Seats(seats.clone()), false))
        }
        (None, Some(quantity)) => {
            if quantity == 0 {
                return Err(AppError::field("quantity", "quantity must be at least 1"));
            }
            if quantity > limits.seats_per_order_cap {
                return Err(AppError::limit_exceeded(
                    Limit::SeatsPerOrder,
                    u64::from(limits.seats_per_order_cap),
                ));
            }
            if let Some(category) = &body.category {
                text("category", category, true, limits)?;
            }
            Ok((
                Selection::Best {
                    quantity,
                    category: body.category.clone(),
                    together: body.together.unwrap_or(false),
                },
                wait,
            ))
        }
    }
}

/// Required free text from users (payment references, check-in codes, level names).
pub(crate) fn required_text(
    field: &str,
    value: &str,
    limits: &EngineConfig,
) -> Result<String, AppError> {
    text(field, value, true, limits)
}

/// The default service levels: gold 2 h, silver 4 h, bronze 8 h.
pub(crate) fn default_levels() -> Vec<LevelSpec> {
    [("gold", 120), ("silver", 240), ("bronze", 480)]
        .into_iter()
        .map(|(name, minutes)| LevelSpec {
            name: name.into(),
            deadline_ms: minutes * 60_000,
        })
        .collect()
}

pub(crate) fn desk_spec(
    body: CreateDeskBody,
    limits: &EngineConfig,
    default_hold_ttl: Duration,
) -> Result<DeskSpec, AppError> {
    let name = text("name", &body.name, true, limits)?;
    if body.agents == 0 || body.agents > DESK_AGENTS_MAX {
        return Err(AppError::field(
            "agents",
            format!("agents must be from 1 to {DESK_AGENTS_MAX}"),
        ));
    }
    let slot_minutes = body.slot_minutes.unwrap_or(1);
    if slot_minutes == 0 || slot_minutes > SLOT_MINUTES_MAX {
        return Err(AppError::field(
            "slot_minutes",
            format!("slot_minutes must be from 1 to {SLOT_MINUTES_MAX}"),
        ));
    }
    let slot_ms = slot_minutes * 60_000;
    let horizon_hours = body.horizon_hours.unwrap_or(8);
    if horizon_hours == 0 || horizon_hours > HORIZON_HOURS_MAX {
        return Err(AppError::field(
            "horizon_hours",
            format!("horizon_hours must be from 1 to {HORIZON_HOURS_MAX}"),
        ));
    }
    let horizon_ms = horizon_hours * 3_600_000;
    if horizon_ms < slot_ms || horizon_ms / slot_ms > limits.desk_slots_max {
        return Err(AppError::field(
            "horizon_hours",
            format!(
                "the horizon must hold from 1 to {} slots",
                limits.desk_slots_max
            ),
        ));
    }
    let levels = match body.levels {
        None => default_levels(),
        Some(levels) => {
            if levels.is_empty() || levels.len() > DESK_LEVELS_MAX {
                return Err(AppError::field(
                    "levels",
                    format!("a desk has from 1 to {DESK_LEVELS_MAX} service levels"),
                ));
            }
            let mut names = BTreeSet::new();
            let mut specs = Vec::with_capacity(levels.len());
            for (index, level) in levels.iter().enumerate() {
                let field = format!("levels[{index}]");
                let name = text(&format!("{field}.name"), &level.name, true, limits)?;
                if !names.insert(name.clone()) {
                    return Err(AppError::field(
                        &format!("{field}.name"),
                        format!("level {name:?} is named twice"),
                    ));
                }
                let deadline_ms = level.deadline_minutes.saturating_mul(60_000);
                if deadline_ms < slot_ms || level.deadline_minutes > DEADLINE_MINUTES_MAX {
                    return Err(AppError::field(
                        &format!("{field}.deadline_minutes"),
                        "deadline_minutes must be at least one slot and at most a year",
                    ));
                }
                specs.push(LevelSpec { name, deadline_ms });
            }
            specs
        }
    };
    if levels.iter().any(|level| level.deadline_ms < slot_ms) {
        return Err(AppError::field(
            "slot_minutes",
            "every level's deadline must be at least one slot",
        ));
    }
    let hold_ttl_ms = match body.hold_ttl_seconds {
        Some(seconds) => hold_ttl_ms(seconds, limits)?,
        None => default_hold_ttl.as_millis() as u64,
    };
    Ok(DeskSpec {
        name,
        agents: body.agents,
        slot_ms,
        horizon_ms,
        levels,
        hold_ttl_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::parse_json;
    use engine::spec_rules::Rule;

    fn field_of(body: serde_json::Value) -> String {
        let body: CreateEventBody = parse_json(body.to_string().as_bytes()).unwrap();
        let error = event_spec(body, &EngineConfig::default()).unwrap_err();
        assert_eq!(error.code, "bad_request");
        error.details.expect("a field")["field"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "name": "Concert", "city": "Lyon", "country": "FR", "venue": "Halle", "starts_at": "2030-05-01T20:00:00Z",
            "categories": [{"name": "Gold", "price_cents": 5000}, {"name": "Floor", "price_cents": 2000}],
            "seating": {"sections": [{"name": "A", "rows": [{"label": "1", "seats": 10, "category": "Gold"}]}]},
            "general_admission": [{"category": "Floor", "capacity": 100}]
        })
    }

    fn with(
        mut value: serde_json::Value,
        path: &[&str],
        new: serde_json::Value,
    ) -> serde_json::Value {
        let mut target = &mut value;
        for (index, key) in path.iter().enumerate() {
            if index + 1 == path.len() {
                break;
            }
            target = match key.parse::<usize>() {
                Ok(position) => &mut target[position],
                Err(_) => &mut target[*key],
            };
        }
        target[path[path.len() - 1]] = new;
        value
    }

    #[test]
    fn a_valid_event_becomes_a_spec_the_engine_accepts() {
        let body: CreateEventBody = parse_json(base().to_string().as_bytes()).unwrap();
        let spec = event_spec(body, &EngineConfig::default()).unwrap();
        assert_eq!((spec.hold_ttl_ms, spec.seats_per_order_max), (300_000, 10));
        let mut engine = engine::Engine::new(EngineConfig::default());
        let outcome = engine.apply(
            0,
            0,
            &engine::Request::new(engine::Command::CreateEvent {
                tenant: "demo".into(),
                spec: Box::new(spec),
            }),
        );
        assert!(outcome.result.is_ok(), "{outcome:?}");
    }

    #[test]
    fn every_invalid_event_names_its_field() {
        use serde_json::json;
        let cases: Vec<(serde_json::Value, &str)> = vec![
            (with(base(), &["name"], json!("  ")), "name"),
            (with(base(), &["starts_at"], json!("tomorrow")), "starts_at"),
            (
                with(base(), &["ends_at"], json!("2030-04-01T20:00:00Z")),
                "ends_at",
            ),
            (
                with(
                    with(base(), &["sales_open_at"], json!("2030-04-02T00:00:00Z")),
                    &["sales_close_at"],
                    json!("2030-04-01T00:00:00Z"),
                ),
                "sales_close_at",
            ),
            (
                with(base(), &["hold_ttl_seconds"], json!(0)),
                "hold_ttl_seconds",
            ),
            (
                with(base(), &["hold_ttl_seconds"], json!(7201)),
                "hold_ttl_seconds",
            ),
            (
                with(base(), &["max_seats_per_order"], json!(0)),
                "max_seats_per_order",
            ),
            (
                with(base(), &["max_seats_per_order"], json!(101)),
                "max_seats_per_order",
            ),
            (
                with(base(), &["max_seats_per_user"], json!(0)),
                "max_seats_per_user",
            ),
            (
                with(base(), &["waitlist_policy"], json!("lottery")),
                "waitlist_policy",
            ),
            (with(base(), &["categories"], json!([])), "categories"),
            (
                with(
                    base(),
                    &["categories"],
                    json!([{"name": "Gold", "price_cents": 1}, {"name": "Gold", "price_cents": 2}]),
                ),
                "categories[1].name",
            ),
            (
                with(
                    with(base(), &["seating"], json!(null)),
                    &["general_admission"],
                    json!([]),
                ),
                "seating",
            ),
            (
                with(
                    base(),
                    &["seating", "sections"],
                    json!([{"name": "A-B", "rows": [{"label": "1", "seats": 1, "category": "Gold"}]}]),
                ),
                "seating.sections[0].name",
            ),
            (
                with(
                    base(),
                    &["seating", "sections"],
                    json!([{"name": "A", "rows": []}]),
                ),
                "seating.sections[0].rows",
            ),
            (
                with(
                    base(),
                    &["seating", "sections"],
                    json!([{"name": "A", "rows": [{"label": "1", "seats": 0, "category": "Gold"}]}]),
                ),
                "seating.sections[0].rows[0].seats",
            ),
            (
                with(
                    base(),
                    &["seating", "sections"],
                    json!([{"name": "A", "rows": [{"label": "1", "seats": 1, "category": "Nope"}]}]),
                ),
                "seating.sections[0].rows[0].category",
            ),
            (
                with(
                    base(),
                    &["seating", "sections"],
                    json!([{"name": "A", "rows": [{"label": "1", "seats": 1, "category": "Gold"}, {"label": "1", "seats": 1, "category": "Gold"}]}]),
                ),
                "seating.sections[0].rows[1].label",
            ),
            (
                with(
                    base(),
                    &["seating", "sections"],
                    json!([{"name": "A", "rows": [{"label": "1", "seats": 1000001, "category": "Gold"}]}]),
                ),
                "seating",
            ),
            (
                with(
                    base(),
                    &["general_admission"],
                    json!([{"category": "Gold", "capacity": 5}]),
                ),
                "general_admission[0].category",
            ),
            (
                with(
                    base(),
                    &["general_admission"],
                    json!([{"category": "Floor", "capacity": 0}]),
                ),
                "general_admission[0].capacity",
            ),
            (
                with(
                    base(),
                    &["general_admission"],
                    json!([{"category": "X", "capacity": 1}]),
                ),
                "general_admission[0].category",
            ),
            (
                with(base(), &["description"], json!("x".repeat(1025))),
                "description",
            ),
        ];
        for (body, field) in cases {
            assert_eq!(field_of(body.clone()), field, "{body}");
        }
    }

    /// The body a client would send for `spec` (the contract's fields and units).
    fn body_of(spec: &EventSpec) -> serde_json::Value {
        use serde_json::json;
        let mut body = json!({
            "name": spec.name, "description": spec.description, "city": spec.city,
            "country": spec.country, "venue": spec.venue,
            "starts_at": times::format(spec.starts_at_ms),
            "hold_ttl_seconds": spec.hold_ttl_ms / 1000,
            "max_seats_per_order": spec.seats_per_order_max,
            "max_seats_per_user": spec.seats_per_user_max,
            "waitlist_policy": spec_rules::waitlist_policy_name(spec.waitlist_policy),
            "categories": spec.categories.iter().map(|category| json!({"name": category.name, "price_cents": category.price_cents})).collect::<Vec<_>>(),
            "seating": {"sections": spec.sections.iter().map(|section| json!({"name": section.name, "rows": section.rows.iter().map(|row| json!({"label": row.label, "seats": row.seats, "category": row.category})).collect::<Vec<_>>()})).collect::<Vec<_>>()},
            "general_admission": spec.general_admission.iter().map(|pool| json!({"category": pool.category, "capacity": pool.capacity})).collect::<Vec<_>>(),
        });
        for (field, value) in [
            ("ends_at", spec.ends_at_ms),
            ("sales_open_at", spec.sales_open_at_ms),
            ("sales_close_at", spec.sales_close_at_ms),
        ] {
            if let Some(millis) = value {
                body[field] = json!(times::format(millis));
            }
        }
        body
    }

    fn valid_spec() -> EventSpec {
        let body: CreateEventBody = parse_json(base().to_string().as_bytes()).unwrap();
        event_spec(body, &EngineConfig::default()).unwrap()
    }

    fn create(spec: &EventSpec) -> engine::Outcome<engine::UserNumber> {
        engine::Engine::new(EngineConfig::default()).apply(
            0,
            0,
            &engine::Request::new(engine::Command::CreateEvent {
                tenant: "demo".into(),
                spec: Box::new(spec.clone()),
            }),
        )
    }

    /// What the engine answers a violation with: `Invalid` with the table's reason, but
    /// "not found" for a category `categories` does not have (as it always was).
    fn engine_rejection(violation: &Violation) -> engine::Rejection {
        match violation.rule {
            Rule::UnknownCategory => engine::Rejection::NotFound {
                what: engine::NotFound::Category,
            },
            _ => engine::Rejection::Invalid {
                reason: violation.reason.clone(),
            },
        }
    }

    /// One rule, three callers: `spec` (a valid spec changed to break exactly `rule`) is
    /// refused by the table (engine and contract bounds) naming `field`, by the engine
    /// with that violation, and by the ingress with a 400 naming the same field.
    fn check(rule: Rule, field: &str, change: impl FnOnce(&mut EventSpec)) {
        let limits = EngineConfig::default();
        let mut spec = valid_spec();
        change(&mut spec);
        let violation = SpecRules::engine(&limits).check_event(&spec).unwrap_err();
        assert_eq!((violation.rule, violation.field.as_str()), (rule, field));
        let contract = SpecRules::contract(&limits).check_event(&spec).unwrap_err();
        assert_eq!((contract.rule, contract.field.as_str()), (rule, field));
        assert_eq!(
            create(&spec).result,
            Err(engine_rejection(&violation)),
            "{rule:?}"
        );
        let body: CreateEventBody = parse_json(body_of(&spec).to_string().as_bytes()).unwrap();
        let error = event_spec(body, &limits).unwrap_err();
        assert_eq!(
            (
                error.status.as_u16(),
                error.code,
                error.details.unwrap()["field"].clone()
            ),
            (400, "bad_request", serde_json::json!(field)),
            "{rule:?}"
        );
    }

    #[test]
    fn a_valid_spec_passes_the_table_the_engine_and_the_ingress() {
        let limits = EngineConfig::default();
        let spec = valid_spec();
        assert_eq!(SpecRules::engine(&limits).check_event(&spec), Ok(()));
        assert_eq!(SpecRules::contract(&limits).check_event(&spec), Ok(()));
        assert_eq!(SpecRules::widest().check_event(&spec), Ok(()));
        assert!(create(&spec).result.is_ok());
        let body: CreateEventBody = parse_json(body_of(&spec).to_string().as_bytes()).unwrap();
        assert_eq!(event_spec(body, &limits).unwrap(), spec);
    }

    #[test]
    fn every_spec_rule_refuses_alike_in_the_table_the_engine_and_the_ingress() {
        use engine::{PoolSpec, SectionSpec, PRICE_CENTS_MAX};
        let row = |label: &str, seats: u32, category: &str| RowSpec {
            label: label.into(),
            seats,
            category: category.into(),
        };
        let section = |name: &str, rows: Vec<RowSpec>| SectionSpec {
            name: name.into(),
            rows,
        };
        let mut covered = BTreeSet::new();
        let mut case = |rule: Rule, field: &str, change: &dyn Fn(&mut EventSpec)| {
            covered.insert(rule);
            check(rule, field, change);
        };
        case(Rule::TextBlank, "name", &|spec| spec.name = " \t".into());
        case(
            Rule::TextBlank,
            "seating.sections[0].rows[0].label",
            &|spec| spec.sections[0].rows[0].label = "".into(),
        );
        case(Rule::TextTooLong, "description", &|spec| {
            spec.description = "x".repeat(1025)
        });
        case(Rule::TextTooLong, "seating.sections[0].name", &|spec| {
            spec.sections[0].name = "A".repeat(1025)
        });
        case(Rule::HoldTtlRange, "hold_ttl_seconds", &|spec| {
            spec.hold_ttl_ms = 0
        });
        case(Rule::HoldTtlRange, "hold_ttl_seconds", &|spec| {
            spec.hold_ttl_ms = 7_201_000
        });
        case(Rule::SeatsPerOrderRange, "max_seats_per_order", &|spec| {
            spec.seats_per_order_max = 0
        });
        case(Rule::SeatsPerOrderRange, "max_seats_per_order", &|spec| {
            spec.seats_per_order_max = 101
        });
        case(Rule::SeatsPerUserZero, "max_seats_per_user", &|spec| {
            spec.seats_per_user_max = Some(0)
        });
        case(Rule::EndsBeforeStart, "ends_at", &|spec| {
            spec.ends_at_ms = Some(spec.starts_at_ms - 3_600_000)
        });
        case(Rule::SalesCloseNotAfterOpen, "sales_close_at", &|spec| {
            spec.sales_open_at_ms = Some(spec.starts_at_ms - 7_200_000);
            spec.sales_close_at_ms = spec.sales_open_at_ms;
        });
        case(Rule::CategoriesCount, "categories", &|spec| {
            spec.categories.clear()
        });
        case(Rule::CategoriesCount, "categories", &|spec| {
            for index in 0..63 {
                spec.categories.push(CategorySpec {
                    name: format!("Extra {index}"),
                    price_cents: 1,
                });
            }
        });
        case(Rule::PriceTooHigh, "categories[1].price_cents", &|spec| {
            spec.categories[1].price_cents = PRICE_CENTS_MAX + 1
        });
        case(Rule::CategoryNamedTwice, "categories[2].name", &|spec| {
            spec.categories.push(spec.categories[0].clone())
        });
        case(Rule::NoSeatingNorAdmission, "seating", &|spec| {
            spec.sections.clear();
            spec.general_admission.clear();
        });
        case(Rule::SectionsCount, "seating.sections", &|spec| {
            spec.sections = (0..=u16::MAX as usize)
                .map(|index| section(&format!("S{index}"), vec![row("1", 1, "Gold")]))
                .collect();
        });
        case(Rule::NameWithDash, "seating.sections[0].name", &|spec| {
            spec.sections[0].name = "A-B".into()
        });
        case(
            Rule::NameWithDash,
            "seating.sections[0].rows[0].label",
            &|spec| spec.sections[0].rows[0].label = "1-2".into(),
        );
        case(Rule::NameUsedTwice, "seating.sections[1].name", &|spec| {
            spec.sections.push(section("A", vec![row("2", 1, "Gold")]))
        });
        case(
            Rule::NameUsedTwice,
            "seating.sections[0].rows[1].label",
            &|spec| spec.sections[0].rows.push(row("1", 1, "Gold")),
        );
        case(
            Rule::SectionWithoutRows,
            "seating.sections[0].rows",
            &|spec| spec.sections[0].rows.clear(),
        );
        case(
            Rule::RowWithoutSeats,
            "seating.sections[0].rows[0].seats",
            &|spec| spec.sections[0].rows[0].seats = 0,
        );
        case(
            Rule::UnknownCategory,
            "seating.sections[0].rows[0].category",
            &|spec| spec.sections[0].rows[0].category = "Nope".into(),
        );
        case(
            Rule::UnknownCategory,
            "general_admission[0].category",
            &|spec| spec.general_admission[0].category = "Nope".into(),
        );
        case(Rule::SeatsOrRowsCount, "seating", &|spec| {
            spec.sections[0].rows[0].seats = 1_000_001
        });
        case(Rule::PoolTwice, "general_admission[1].category", &|spec| {
            spec.general_admission.push(PoolSpec {
                category: "Floor".into(),
                capacity: 1,
            })
        });
        case(
            Rule::PoolCapacityRange,
            "general_admission[0].capacity",
            &|spec| spec.general_admission[0].capacity = 0,
        );
        case(
            Rule::PoolCapacityRange,
            "general_admission[0].capacity",
            &|spec| spec.general_admission[0].capacity = 10_000_001,
        );
        case(
            Rule::SeatedAndAdmission,
            "general_admission[0].category",
            &|spec| spec.general_admission[0].category = "Gold".into(),
        );
        assert_eq!(
            covered,
            Rule::ALL.into_iter().collect(),
            "a case for every rule"
        );
    }

    /// The patch's rules, the same way: refused by the table, by the engine's
    /// `UpdateEvent` and by the ingress, naming one field.
    #[test]
    fn every_patch_rule_refuses_alike_in_the_table_the_engine_and_the_ingress() {
        use serde_json::json;
        let limits = EngineConfig::default();
        let spec = valid_spec();
        let starts_at_ms = spec.starts_at_ms;
        let cases: Vec<(Rule, &str, EventPatch, serde_json::Value)> = vec![
            (
                Rule::TextBlank,
                "name",
                EventPatch {
                    name: Some(" ".into()),
                    ..EventPatch::default()
                },
                json!({"name": " "}),
            ),
            (
                Rule::TextTooLong,
                "description",
                EventPatch {
                    description: Some("x".repeat(1025)),
                    ..EventPatch::default()
                },
                json!({"description": "x".repeat(1025)}),
            ),
            (
                Rule::HoldTtlRange,
                "hold_ttl_seconds",
                EventPatch {
                    hold_ttl_ms: Some(7_201_000),
                    ..EventPatch::default()
                },
                json!({"hold_ttl_seconds": 7201}),
            ),
            (
                Rule::SeatsPerOrderRange,
                "max_seats_per_order",
                EventPatch {
                    seats_per_order_max: Some(0),
                    ..EventPatch::default()
                },
                json!({"max_seats_per_order": 0}),
            ),
            (
                Rule::SeatsPerUserZero,
                "max_seats_per_user",
                EventPatch {
                    seats_per_user_max: Some(Some(0)),
                    ..EventPatch::default()
                },
                json!({"max_seats_per_user": 0}),
            ),
            (
                Rule::EndsBeforeStart,
                "ends_at",
                EventPatch {
                    ends_at_ms: Some(Some(starts_at_ms - 1_000)),
                    ..EventPatch::default()
                },
                json!({"ends_at": times::format(starts_at_ms - 1_000)}),
            ),
            (
                Rule::SalesCloseNotAfterOpen,
                "sales_close_at",
                EventPatch {
                    sales_open_at_ms: Some(Some(starts_at_ms)),
                    sales_close_at_ms: Some(Some(starts_at_ms)),
                    ..EventPatch::default()
                },
                json!({"sales_open_at": times::format(starts_at_ms), "sales_close_at": times::format(starts_at_ms)}),
            ),
        ];
        for (rule, field, patch, body) in cases {
            let violation = SpecRules::engine(&limits)
                .check_patch(&spec, &patch)
                .unwrap_err();
            assert_eq!((violation.rule, violation.field.as_str()), (rule, field));
            let mut engine = engine::Engine::new(limits.clone());
            let created = engine.apply(
                0,
                0,
                &engine::Request::new(engine::Command::CreateEvent {
                    tenant: "demo".into(),
                    spec: Box::new(spec.clone()),
                }),
            );
            let Ok(engine::Reply::EventCreated { event, .. }) = created.result else {
                panic!("{created:?}");
            };
            let updated = engine.apply(
                1,
                0,
                &engine::Request::new(engine::Command::UpdateEvent {
                    tenant: "demo".into(),
                    event,
                    patch: Box::new(patch.clone()),
                }),
            );
            assert_eq!(
                updated.result,
                Err(engine_rejection(&violation)),
                "{rule:?}"
            );
            let error = event_patch(
                parse_json(body.to_string().as_bytes()).unwrap(),
                &spec,
                &limits,
            )
            .unwrap_err();
            assert_eq!(error.details.unwrap()["field"], field, "{rule:?}");
        }
    }

    #[test]
    fn hold_selections() {
        let limits = EngineConfig::default();
        let parse =
            |text: &str| selection(&parse_json::<HoldBody>(text.as_bytes()).unwrap(), &limits);
        assert!(matches!(
            parse(r#"{"seats": ["A-1-1"]}"#),
            Ok((Selection::Seats(_), false))
        ));
        assert!(matches!(
            parse(r#"{"quantity": 2, "wait": true}"#),
            Ok((Selection::Best { quantity: 2, .. }, true))
        ));
        for (body, field) in [
            (r#"{}"#, "seats"),
            (r#"{"seats": ["A-1-1"], "quantity": 1}"#, "quantity"),
            (r#"{"seats": []}"#, "seats"),
            (r#"{"seats": ["A-1-1", "A-1-1"]}"#, "seats[1]"),
            (r#"{"seats": ["A-1-1"], "wait": true}"#, "wait"),
            (r#"{"quantity": 0}"#, "quantity"),
        ] {
            let error = parse(body).unwrap_err();
            assert_eq!(error.details.unwrap()["field"], field, "{body}");
        }
        assert_eq!(
            parse(r#"{"quantity": 101}"#).unwrap_err().code,
            "limit_exceeded"
        );
    }

    #[test]
    fn patches_need_a_field_and_consistent_times() {
        let body: CreateEventBody = parse_json(base().to_string().as_bytes()).unwrap();
        let current = event_spec(body, &EngineConfig::default()).unwrap();
        let patch = |text: &str| {
            event_patch(
                parse_json(text.as_bytes()).unwrap(),
                &current,
                &EngineConfig::default(),
            )
        };
        assert!(patch("{}").is_err());
        assert_eq!(
            patch(r#"{"ends_at": null}"#).unwrap().ends_at_ms,
            Some(None)
        );
        assert_eq!(
            patch(r#"{"ends_at": "2030-04-01T00:00:00Z"}"#)
                .unwrap_err()
                .details
                .unwrap()["field"],
            "ends_at"
        );
        assert_eq!(
            patch(r#"{"max_seats_per_user": null}"#)
                .unwrap()
                .seats_per_user_max,
            Some(None)
        );
        assert_eq!(
            patch(r#"{"name": "New"}"#).unwrap().name.as_deref(),
            Some("New")
        );
    }

    #[test]
    fn desks_default_and_validate() {
        let limits = EngineConfig::default();
        let body: CreateDeskBody = parse_json(br#"{"name": "Help", "agents": 2}"#).unwrap();
        let spec = desk_spec(body, &limits, Duration::from_secs(300)).unwrap();
        assert_eq!(
            (spec.slot_ms, spec.horizon_ms, spec.levels.len()),
            (60_000, 8 * 3_600_000, 3)
        );
        for (text, field) in [
            (r#"{"name": "Help", "agents": 0}"#, "agents"),
            (r#"{"name": "", "agents": 1}"#, "name"),
            (r#"{"name": "Help", "agents": 1, "levels": []}"#, "levels"),
            (
                r#"{"name": "Help", "agents": 1, "slot_minutes": 30, "levels": [{"name": "fast", "deadline_minutes": 10}]}"#,
                "levels[0].deadline_minutes",
            ),
        ] {
            let error = desk_spec(
                parse_json(text.as_bytes()).unwrap(),
                &limits,
                Duration::from_secs(300),
            )
            .unwrap_err();
            assert_eq!(error.details.unwrap()["field"], field, "{text}");
        }
    }
}
