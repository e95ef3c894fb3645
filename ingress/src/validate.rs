//! Input validation that turns request bodies into engine commands. It refuses everything
//! the engine would refuse as `Invalid`, with a 400 naming the field, so nothing invalid
//! reaches the log. The engine's limits come from the same `EngineConfig`.

use crate::api::{CreateDeskBody, CreateEventBody, HoldBody, PatchEventBody};
use crate::error::{AppError, Reason};
use crate::times;
use engine::{
    CategorySpec, DeskSpec, EngineConfig, EventPatch, EventSpec, LevelSpec, Limit, PoolSpec,
    RowSpec, SectionSpec, Selection, WaitlistPolicy, PRICE_CENTS_MAX,
};
use std::collections::BTreeSet;
use std::time::Duration;

/// The contract's hold TTL range, in seconds.
pub(crate) const HOLD_TTL_SECONDS_MIN: u64 = 1;
pub(crate) const HOLD_TTL_SECONDS_MAX: u64 = 7200;
pub(crate) const HOLD_TTL_SECONDS_DEFAULT: u64 = 300;
pub(crate) const SEATS_PER_ORDER_DEFAULT: u32 = 10;
/// A desk's limits (the OpenAPI document states them from these).
pub(crate) const DESK_AGENTS_MAX: u32 = 10_000;
pub(crate) const SLOT_MINUTES_MAX: u64 = 24 * 60;
pub(crate) const HORIZON_HOURS_MAX: u64 = 24 * 365;
pub(crate) const DESK_LEVELS_MAX: usize = 16;
pub(crate) const DEADLINE_MINUTES_MAX: u64 = 24 * 60 * 365;

/// The longest text field, in characters. The contract counts characters, as JSON
/// Schema's `maxLength` does; the engine bounds text in UTF-8 bytes
/// (`engine.text_bytes_max`), and a character takes at most four, so text of this many
/// characters always fits and the engine never refuses what the ingress accepted.
pub(crate) fn text_chars_max(limits: &EngineConfig) -> usize {
    limits.text_bytes_max / 4
}

/// The longest seat id (`<section>-<row>-<number>`), in characters: the longest section
/// name and row label, two dashes and a `u32` seat number, so every seat of every event
/// can be named.
pub(crate) fn seat_id_chars_max(limits: &EngineConfig) -> usize {
    2 * text_chars_max(limits) + 2 + u32::MAX.to_string().len()
}

/// A text field: blank (only whitespace, `char::is_whitespace`) refused when required,
/// and at most [`text_chars_max`] characters.
pub(crate) fn text(
    field: &str,
    value: &str,
    required: bool,
    limits: &EngineConfig,
) -> Result<String, AppError> {
    if required && value.trim().is_empty() {
        return Err(AppError::field(field, format!("{field} must not be empty")));
    }
    let chars_max = text_chars_max(limits);
    if value.chars().count() > chars_max {
        return Err(AppError::field(
            field,
            format!("{field} is longer than {chars_max} characters"),
        ));
    }
    Ok(value.to_string())
}

fn hold_ttl_ms(seconds: u64, limits: &EngineConfig) -> Result<u64, AppError> {
    let millis = seconds.saturating_mul(1000);
    if !(HOLD_TTL_SECONDS_MIN..=HOLD_TTL_SECONDS_MAX).contains(&seconds)
        || !(limits.hold_ttl_min_ms..=limits.hold_ttl_max_ms).contains(&millis)
    {
        return Err(AppError::field(
            "hold_ttl_seconds",
            format!(
                "hold_ttl_seconds must be from {HOLD_TTL_SECONDS_MIN} to {HOLD_TTL_SECONDS_MAX}"
            ),
        ));
    }
    Ok(millis)
}

fn seats_per_order(value: u32, limits: &EngineConfig) -> Result<u32, AppError> {
    if value == 0 || value > limits.seats_per_order_cap {
        return Err(AppError::field(
            "max_seats_per_order",
            format!(
                "max_seats_per_order must be from 1 to {}",
                limits.seats_per_order_cap
            ),
        ));
    }
    Ok(value)
}

fn seats_per_user(value: Option<u32>) -> Result<Option<u32>, AppError> {
    if value == Some(0) {
        return Err(AppError::field(
            "max_seats_per_user",
            "max_seats_per_user must be at least 1",
        ));
    }
    Ok(value)
}

fn policy(value: &str) -> Result<WaitlistPolicy, AppError> {
    match value {
        "strict" => Ok(WaitlistPolicy::Strict),
        "skip_ahead" => Ok(WaitlistPolicy::SkipAhead),
        _ => Err(AppError::field(
            "waitlist_policy",
            "waitlist_policy must be strict or skip_ahead",
        )),
    }
}

fn optional_time(field: &str, value: Option<&str>) -> Result<Option<u64>, AppError> {
    value.map(|value| times::parse(field, value)).transpose()
}

/// The time relationships the engine checks.
fn check_times(
    starts_at_ms: u64,
    ends_at_ms: Option<u64>,
    open: Option<u64>,
    close: Option<u64>,
) -> Result<(), AppError> {
    if ends_at_ms.is_some_and(|ends| ends < starts_at_ms) {
        return Err(AppError::field("ends_at", "ends_at is before starts_at"));
    }
    if let (Some(open), Some(close)) = (open, close) {
        if close <= open {
            return Err(AppError::field(
                "sales_close_at",
                "sales_close_at is not after sales_open_at",
            ));
        }
    }
    Ok(())
}

fn no_dash(field: &str, value: &str) -> Result<(), AppError> {
    if value.contains('-') {
        return Err(AppError::field(
            field,
            format!("{field} must not contain '-' (seat ids are <section>-<row>-<number>)"),
        ));
    }
    Ok(())
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

pub(crate) fn event_spec(
    body: CreateEventBody,
    limits: &EngineConfig,
) -> Result<EventSpec, AppError> {
    let name = text("name", &body.name, true, limits)?;
    let description = text(
        "description",
        body.description.as_deref().unwrap_or(""),
        false,
        limits,
    )?;
    let city = text("city", &body.city, true, limits)?;
    let country = text("country", &body.country, true, limits)?;
    let venue = text("venue", &body.venue, true, limits)?;
    let starts_at_ms = times::parse("starts_at", &body.starts_at)?;
    let ends_at_ms = optional_time("ends_at", body.ends_at.as_deref())?;
    let sales_open_at_ms = optional_time("sales_open_at", body.sales_open_at.as_deref())?;
    let sales_close_at_ms = optional_time("sales_close_at", body.sales_close_at.as_deref())?;
    check_times(
        starts_at_ms,
        ends_at_ms,
        sales_open_at_ms,
        sales_close_at_ms,
    )?;
    let hold_ttl_ms = hold_ttl_ms(
        body.hold_ttl_seconds.unwrap_or(HOLD_TTL_SECONDS_DEFAULT),
        limits,
    )?;
    let seats_per_order_max = seats_per_order(
        body.max_seats_per_order
            .unwrap_or(SEATS_PER_ORDER_DEFAULT.min(limits.seats_per_order_cap)),
        limits,
    )?;
    let seats_per_user_max = seats_per_user(body.max_seats_per_user)?;
    let waitlist_policy = body
        .waitlist_policy
        .as_deref()
        .map(policy)
        .transpose()?
        .unwrap_or_default();

    if body.categories.is_empty() || body.categories.len() > limits.event_categories_max as usize {
        return Err(AppError::field(
            "categories",
            format!(
                "an event needs from 1 to {} categories",
                limits.event_categories_max
            ),
        ));
    }
    let mut names = BTreeSet::new();
    let mut categories = Vec::with_capacity(body.categories.len());
    for (index, category) in body.categories.iter().enumerate() {
        let field = format!("categories[{index}].name");
        let name = text(&field, &category.name, true, limits)?;
        if !names.insert(name.clone()) {
            return Err(AppError::field(
                &field,
                format!("category {name:?} is named twice"),
            ));
        }
        if category.price_cents > PRICE_CENTS_MAX {
            return Err(AppError::field(
                &format!("categories[{index}].price_cents"),
                format!("price_cents must be from 0 to {PRICE_CENTS_MAX}"),
            ));
        }
        categories.push(CategorySpec {
            name,
            price_cents: category.price_cents,
        });
    }

    let sections_body = body
        .seating
        .map(|seating| seating.sections)
        .unwrap_or_default();
    let pools_body = body.general_admission.unwrap_or_default();
    if sections_body.is_empty() && pools_body.is_empty() {
        return Err(AppError::field(
            "seating",
            "an event needs seating (with at least one section), general_admission, or both",
        ));
    }
    let (mut seat_total, mut row_total) = (0u64, 0u64);
    let mut section_names = BTreeSet::new();
    let mut seated_categories = BTreeSet::new();
    let mut sections = Vec::with_capacity(sections_body.len());
    for (section_index, section) in sections_body.iter().enumerate() {
        let field = format!("seating.sections[{section_index}]");
        let section_name = text(&format!("{field}.name"), &section.name, true, limits)?;
        no_dash(&format!("{field}.name"), &section_name)?;
        if !section_names.insert(section_name.clone()) {
            return Err(AppError::field(
                &format!("{field}.name"),
                format!("section {section_name:?} is named twice"),
            ));
        }
        if section.rows.is_empty() {
            return Err(AppError::field(
                &format!("{field}.rows"),
                "a section needs at least one row",
            ));
        }
        let mut labels = BTreeSet::new();
        let mut rows = Vec::with_capacity(section.rows.len());
        for (row_index, row) in section.rows.iter().enumerate() {
            let field = format!("{field}.rows[{row_index}]");
            let label = text(&format!("{field}.label"), &row.label, true, limits)?;
            no_dash(&format!("{field}.label"), &label)?;
            if !labels.insert(label.clone()) {
                return Err(AppError::field(
                    &format!("{field}.label"),
                    format!("row {label:?} appears twice in section {section_name:?}"),
                ));
            }
            if row.seats == 0 {
                return Err(AppError::field(
                    &format!("{field}.seats"),
                    "a row needs at least one seat",
                ));
            }
            if !names.contains(&row.category) {
                return Err(AppError::field(
                    &format!("{field}.category"),
                    format!("category {:?} is not in categories", row.category),
                ));
            }
            seated_categories.insert(row.category.clone());
            seat_total += u64::from(row.seats);
            row_total += 1;
            if seat_total > u64::from(limits.event_seats_max)
                || row_total > u64::from(limits.event_rows_max)
            {
                return Err(AppError::field(
                    "seating",
                    format!(
                        "an event has at most {} seats in {} rows",
                        limits.event_seats_max, limits.event_rows_max
                    ),
                ));
            }
            rows.push(RowSpec {
                label,
                seats: row.seats,
                category: row.category.clone(),
            });
        }
        sections.push(SectionSpec {
            name: section_name,
            rows,
        });
    }
    let mut pooled = BTreeSet::new();
    let mut general_admission = Vec::with_capacity(pools_body.len());
    for (index, pool) in pools_body.iter().enumerate() {
        let field = format!("general_admission[{index}]");
        if !names.contains(&pool.category) {
            return Err(AppError::field(
                &format!("{field}.category"),
                format!("category {:?} is not in categories", pool.category),
            ));
        }
        if !pooled.insert(pool.category.clone()) {
            return Err(AppError::field(
                &format!("{field}.category"),
                format!(
                    "category {:?} has two general-admission pools",
                    pool.category
                ),
            ));
        }
        if seated_categories.contains(&pool.category) {
            return Err(AppError::field(
                &format!("{field}.category"),
                format!(
                    "category {:?} is both seated and general admission",
                    pool.category
                ),
            ));
        }
        if pool.capacity == 0 || pool.capacity > limits.pool_capacity_max {
            return Err(AppError::field(
                &format!("{field}.capacity"),
                format!("capacity must be from 1 to {}", limits.pool_capacity_max),
            ));
        }
        general_admission.push(PoolSpec {
            category: pool.category.clone(),
            capacity: pool.capacity,
        });
    }
    Ok(EventSpec {
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
        waitlist_policy,
        categories,
        sections,
        general_admission,
    })
}

/// A patch, checked against the event as it is now (the engine checks again).
pub(crate) fn event_patch(
    body: PatchEventBody,
    current: &EventSpec,
    limits: &EngineConfig,
) -> Result<EventPatch, AppError> {
    let mut patch = EventPatch::default();
    if let Some(name) = &body.name {
        patch.name = Some(text("name", name, true, limits)?);
    }
    if let Some(description) = &body.description {
        patch.description = Some(text("description", description, false, limits)?);
    }
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
    if let Some(seconds) = body.hold_ttl_seconds {
        patch.hold_ttl_ms = Some(hold_ttl_ms(seconds, limits)?);
    }
    if let Some(value) = body.max_seats_per_order {
        patch.seats_per_order_max = Some(seats_per_order(value, limits)?);
    }
    if let Some(value) = body.max_seats_per_user {
        patch.seats_per_user_max = Some(seats_per_user(value)?);
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
    check_times(
        patch.starts_at_ms.unwrap_or(current.starts_at_ms),
        patch.ends_at_ms.unwrap_or(current.ends_at_ms),
        patch.sales_open_at_ms.unwrap_or(current.sales_open_at_ms),
        patch.sales_close_at_ms.unwrap_or(current.sales_close_at_ms),
    )?;
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
                spec,
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
