//! Setup: turns a scenario's event templates into `POST /v1/admin/events` calls, and
//! keeps each created event's layout so users can name exact seats and the verifier can
//! check counts per category.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::client::{Auth, Call};
use crate::scenario::{EventTemplate, Scenario};

/// One row of a created event, with the layout index of its first seat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowLayout {
    pub section: String,
    pub label: String,
    pub seats: u32,
    pub first_seat: u32,
    pub category: String,
}

/// An event the run created (or will create).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventLayout {
    /// The server's id (`ev_12`) once created; empty before.
    pub event_id: String,
    pub template: usize,
    pub copy: u64,
    pub rows: Vec<RowLayout>,
    pub seats: u32,
    /// Category names of general-admission pools.
    pub pools: Vec<String>,
    /// (category, capacity), every category of the event.
    pub capacity: Vec<(String, u64)>,
    pub max_seats_per_order: u32,
    /// Wall-clock time the sales window opens, if it is in the future at setup.
    pub sales_open_at_ms: Option<u64>,
    /// The arrival window's length before `sales_open_at_ms`, if the event has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival_window_ms: Option<u64>,
    /// `rows`' indices by `<section>-<row>`, built on first use (every granted hold's
    /// seats are read back from their labels: a scan of the rows per seat was a tenth of
    /// the load generator's own CPU on a 100-row arena).
    #[serde(skip)]
    row_by_label: RowIndex,
}

/// A derived index: not compared, not encoded.
#[derive(Clone, Debug, Default)]
struct RowIndex(std::sync::OnceLock<std::collections::HashMap<String, usize>>);

impl PartialEq for RowIndex {
    fn eq(&self, _: &RowIndex) -> bool {
        true
    }
}

impl EventLayout {
    pub fn from_template(
        template_index: usize,
        copy: u64,
        template: &EventTemplate,
    ) -> EventLayout {
        let mut rows = Vec::new();
        let mut next_seat = 0u32;
        for section in &template.sections {
            for row in 1..=section.rows {
                rows.push(RowLayout {
                    section: section.name.clone(),
                    label: row.to_string(),
                    seats: section.seats_per_row,
                    first_seat: next_seat,
                    category: section.category.clone(),
                });
                next_seat += section.seats_per_row;
            }
        }
        EventLayout {
            event_id: String::new(),
            template: template_index,
            copy,
            rows,
            seats: next_seat,
            pools: template
                .general_admission
                .iter()
                .map(|pool| pool.category.clone())
                .collect(),
            capacity: template.capacity_by_category(),
            max_seats_per_order: template.max_seats_per_order.unwrap_or(10),
            sales_open_at_ms: None,
            arrival_window_ms: template
                .arrival_window_seconds
                .map(|seconds| seconds * 1_000),
            row_by_label: RowIndex::default(),
        }
    }

    /// `<section>-<row>-<number>` of a seat index.
    pub fn seat_label(&self, seat: u32) -> String {
        let row = self.row_of(seat);
        format!(
            "{}-{}-{}",
            row.section,
            row.label,
            seat - row.first_seat + 1
        )
    }

    fn row_of(&self, seat: u32) -> &RowLayout {
        let position = self.rows.partition_point(|row| row.first_seat <= seat);
        &self.rows[position - 1]
    }

    /// The seat index of a label, if it is on this map.
    pub fn seat_index(&self, label: &str) -> Option<u32> {
        let (section_and_row, number) = label.rsplit_once('-')?;
        let number: u32 = number.parse().ok()?;
        let rows = self.row_by_label.0.get_or_init(|| {
            (self.rows.iter().enumerate())
                .map(|(index, row)| (format!("{}-{}", row.section, row.label), index))
                .collect()
        });
        let row = &self.rows[*rows.get(section_and_row)?];
        (number >= 1 && number <= row.seats).then(|| row.first_seat + number - 1)
    }

    pub fn category_of_seat(&self, seat: u32) -> &str {
        &self.row_of(seat).category
    }

    pub fn categories(&self) -> impl Iterator<Item = &str> {
        self.capacity.iter().map(|(name, _)| name.as_str())
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// RFC 3339 in UTC with milliseconds.
pub fn rfc3339(ms: u64) -> String {
    let time = time::OffsetDateTime::UNIX_EPOCH + Duration::from_millis(ms);
    time.format(&time::format_description::well_known::Rfc3339)
        .expect("a valid timestamp formats")
}

pub fn parse_rfc3339_ms(text: &str) -> Option<u64> {
    let time =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(time.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The body of `POST /v1/admin/events` for one copy of a template, times relative to `now_ms`.
pub fn create_event_body(template: &EventTemplate, copy: u64, now_ms: u64) -> Value {
    let text = |value: &str| value.replace("{n}", &copy.to_string());
    let day_ms = 86_400_000;
    let starts_at_ms = now_ms + template.starts_in_days.max(1) * day_ms;
    let mut body = json!({
        "name": text(&template.name),
        "description": format!("loadgen event {copy}"),
        "city": text(&template.city),
        "country": text(&template.country),
        "venue": text(&template.venue),
        "starts_at": rfc3339(starts_at_ms),
        "categories": template.categories.iter().map(|category| json!({"name": category.name, "price_cents": category.price_cents})).collect::<Vec<_>>(),
    });
    let object = body.as_object_mut().expect("an object");
    if let Some(seconds) = template.sales_open_in_seconds {
        object.insert(
            "sales_open_at".into(),
            json!(rfc3339(now_ms + seconds * 1_000)),
        );
    }
    if let Some(seconds) = template.arrival_window_seconds {
        // A seed nobody will reveal (the draw falls back to the log's last second): a
        // rehearsal needs the window, not the organiser's part.
        let mut seed = [0u8; engine::draw::DRAW_BYTES];
        seed[..8].copy_from_slice(&copy.to_le_bytes());
        seed[8..16].copy_from_slice(&now_ms.to_le_bytes());
        object.insert("arrival_window_seconds".into(), json!(seconds));
        object.insert(
            "draw_commitment".into(),
            json!(engine::draw::to_hex(&engine::draw::commitment_of(&seed))),
        );
    }
    if let Some(seconds) = template.sales_close_in_seconds {
        object.insert(
            "sales_close_at".into(),
            json!(rfc3339(now_ms + seconds * 1_000)),
        );
    }
    if let Some(seconds) = template.hold_ttl_seconds {
        object.insert("hold_ttl_seconds".into(), json!(seconds));
    }
    if let Some(max) = template.max_seats_per_order {
        object.insert("max_seats_per_order".into(), json!(max));
    }
    if let Some(max) = template.max_seats_per_user {
        object.insert("max_seats_per_user".into(), json!(max));
    }
    if let Some(policy) = &template.waitlist_policy {
        object.insert("waitlist_policy".into(), json!(policy));
    }
    if !template.sections.is_empty() {
        let sections: Vec<Value> = template
            .sections
            .iter()
            .map(|section| {
                let rows: Vec<Value> = (1..=section.rows).map(|row| json!({"label": row.to_string(), "seats": section.seats_per_row, "category": section.category})).collect();
                json!({"name": section.name, "rows": rows})
            })
            .collect();
        object.insert("seating".into(), json!({ "sections": sections }));
    }
    if !template.general_admission.is_empty() {
        let pools: Vec<Value> = template
            .general_admission
            .iter()
            .map(|pool| json!({"category": pool.category, "capacity": pool.capacity}))
            .collect();
        object.insert("general_admission".into(), Value::Array(pools));
    }
    body
}

/// The setup calls of a scenario, in creation order, with the layouts they create.
pub fn setup_calls(scenario: &Scenario, tenant: &str, now_ms: u64) -> Vec<(Call, EventLayout)> {
    scenario
        .event_instances()
        .into_iter()
        .map(|(template_index, copy)| {
            let template = &scenario.events[template_index];
            let mut layout = EventLayout::from_template(template_index, copy, template);
            layout.sales_open_at_ms = template
                .sales_open_in_seconds
                .map(|seconds| now_ms + seconds * 1_000);
            let call = Call::post(
                "/v1/admin/events",
                Auth::Admin(tenant.to_string()),
                create_event_body(template, copy, now_ms),
            );
            (call, layout)
        })
        .collect()
}
