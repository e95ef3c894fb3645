//! Between the two forms of a request: an HTTP call of API v1 and the engine's
//! `Request`. The HTTP → engine direction follows the ingress's rules (defaults for
//! absent fields, RFC 3339 → milliseconds); it is what lets a recorded HTTP run be
//! replayed straight into the requests log. Reads have no engine form. The defaults, the
//! waitlist policies' names and whether a spec can be an event at all come from
//! `engine::spec_rules`, the table the ingress and the engine check, not from copies here.

use engine::spec_rules::{self, SpecRules, HOLD_TTL_SECONDS_DEFAULT, SEATS_PER_ORDER_DEFAULT};
use engine::{
    BookingId, CategoryRef, CategorySpec, Command, EventId, EventSpec, HoldId, PoolSpec, Request,
    RowSpec, SectionSpec, Selection, WaiterId, WaitlistPolicy,
};
use serde_json::{json, Value};

use crate::client::{Auth, Call};
use crate::setup::{parse_rfc3339_ms, rfc3339};

/// The engine request of an HTTP call; `None` for reads and calls with no engine form.
pub fn http_to_engine(call: &Call) -> Option<Request> {
    let path = call.path.split('?').next().unwrap_or("");
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let body = call.body.clone().unwrap_or(Value::Null);
    let user = || match &call.auth {
        Auth::User(user) => Some(user.clone()),
        _ => None,
    };
    let tenant = || match &call.auth {
        Auth::Admin(tenant) => Some(tenant.clone()),
        _ => None,
    };
    let text = |field: &str| body.get(field).and_then(Value::as_str).map(str::to_string);
    let number = |field: &str| body.get(field).and_then(Value::as_u64);
    let command = match (call.method.as_str(), segments.as_slice()) {
        ("POST", ["v1", "admin", "events"]) => Command::CreateEvent {
            tenant: tenant()?,
            spec: Box::new(event_spec(&body)?),
        },
        ("DELETE", ["v1", "admin", "events", event]) => Command::CancelEvent {
            tenant: tenant()?,
            event: EventId::parse(event)?,
        },
        ("POST", ["v1", "admin", "events", event, "checkin"]) => Command::CheckIn {
            tenant: tenant()?,
            event: EventId::parse(event)?,
            code: text("code")?,
        },
        ("POST", ["v1", "events", event, "holds"]) => {
            let selection = match body.get("seats").and_then(Value::as_array) {
                Some(seats) => Selection::Seats(
                    seats
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect(),
                ),
                None => Selection::Best {
                    quantity: u32::try_from(number("quantity")?).ok()?,
                    category: text("category"),
                    together: body
                        .get("together")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                },
            };
            let wait = body.get("wait").and_then(Value::as_bool).unwrap_or(false);
            Command::PlaceHold {
                user: engine::UserRef::Name(user()?),
                event: EventId::parse(event)?,
                selection,
                wait,
            }
        }
        ("POST", ["v1", "holds", hold, "confirm"]) => Command::ConfirmHold {
            user: engine::UserRef::Name(user()?),
            hold: HoldId::parse(hold)?,
            payment_ref: text("payment_ref")?,
        },
        ("DELETE", ["v1", "holds", hold]) => Command::ReleaseHold {
            user: engine::UserRef::Name(user()?),
            hold: HoldId::parse(hold)?,
        },
        ("DELETE", ["v1", "bookings", booking]) => Command::CancelBooking {
            user: engine::UserRef::Name(user()?),
            booking: BookingId::parse(booking)?,
        },
        ("POST", ["v1", "events", event, "waitlist"]) => Command::JoinWaitlist {
            user: engine::UserRef::Name(user()?),
            event: EventId::parse(event)?,
            quantity: u32::try_from(number("quantity")?).ok()?,
            category: text("category"),
            together: body
                .get("together")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        },
        ("DELETE", ["v1", "waitlist", waiter]) => Command::LeaveWaitlist {
            user: engine::UserRef::Name(user()?),
            waiter: WaiterId::parse(waiter)?,
        },
        _ => return None,
    };
    Some(Request {
        idempotency_key: call.idempotency_key.clone(),
        command,
    })
}

pub(crate) fn event_spec(body: &Value) -> Option<EventSpec> {
    let text = |field: &str| body.get(field).and_then(Value::as_str).map(str::to_string);
    let time = |field: &str| text(field).and_then(|value| parse_rfc3339_ms(&value));
    let categories = body
        .get("categories")?
        .as_array()?
        .iter()
        .map(|category| {
            Some(CategorySpec {
                name: category.get("name")?.as_str()?.to_string(),
                price_cents: category.get("price_cents")?.as_u64()?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let sections = match body.pointer("/seating/sections").and_then(Value::as_array) {
        Some(sections) => sections
            .iter()
            .map(|section| {
                let rows = section
                    .get("rows")?
                    .as_array()?
                    .iter()
                    .map(|row| {
                        Some(RowSpec {
                            label: row.get("label")?.as_str()?.to_string(),
                            seats: u32::try_from(row.get("seats")?.as_u64()?).ok()?,
                            category: row.get("category")?.as_str()?.to_string(),
                        })
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(SectionSpec {
                    name: section.get("name")?.as_str()?.to_string(),
                    rows,
                })
            })
            .collect::<Option<Vec<_>>>()?,
        None => Vec::new(),
    };
    let general_admission = match body.get("general_admission").and_then(Value::as_array) {
        Some(pools) => pools
            .iter()
            .map(|pool| {
                Some(PoolSpec {
                    category: pool.get("category")?.as_str()?.to_string(),
                    capacity: u32::try_from(pool.get("capacity")?.as_u64()?).ok()?,
                })
            })
            .collect::<Option<Vec<_>>>()?,
        None => Vec::new(),
    };
    Some(EventSpec {
        name: text("name")?,
        description: text("description").unwrap_or_default(),
        city: text("city")?,
        country: text("country")?,
        venue: text("venue")?,
        starts_at_ms: time("starts_at")?,
        ends_at_ms: time("ends_at"),
        sales_open_at_ms: time("sales_open_at"),
        sales_close_at_ms: time("sales_close_at"),
        hold_ttl_ms: body
            .get("hold_ttl_seconds")
            .and_then(Value::as_u64)
            .unwrap_or(HOLD_TTL_SECONDS_DEFAULT)
            .saturating_mul(1_000),
        seats_per_order_max: body
            .get("max_seats_per_order")
            .and_then(Value::as_u64)
            .and_then(|max| u32::try_from(max).ok())
            .unwrap_or(SEATS_PER_ORDER_DEFAULT),
        seats_per_user_max: body
            .get("max_seats_per_user")
            .and_then(Value::as_u64)
            .and_then(|max| u32::try_from(max).ok()),
        // An unknown name is a 400 at the ingress: no engine form.
        waitlist_policy: match text("waitlist_policy") {
            Some(name) => spec_rules::waitlist_policy_named(&name)?,
            None => WaitlistPolicy::default(),
        },
        categories,
        sections,
        general_admission,
    })
}

/// Seat labels and category names of the events an engine log creates, for the holds
/// and waitlist joins it appends by seat and category index (`Selection::SeatIndices`,
/// `Selection::BestIndexed`, `Command::JoinWaitlistIndexed`: what the ingress appends):
/// the k-th `CreateEvent` of the log is taken to be event k, as on the fresh server a
/// replay runs against (a replay of a log whose creations failed sends other ids anyway).
#[derive(Default)]
pub struct SeatLabels {
    layouts: Vec<Option<engine::layout::Layout>>,
    /// Per event, its categories' names in index order.
    categories: Vec<Vec<String>>,
}

impl SeatLabels {
    /// The layouts and category names of the events `requests` create, in order.
    pub fn of<'a>(requests: impl IntoIterator<Item = &'a Request>) -> SeatLabels {
        let (layouts, categories) = requests
            .into_iter()
            .filter_map(|request| match &request.command {
                Command::CreateEvent { spec, .. } => Some((
                    layout_of(spec),
                    spec.categories
                        .iter()
                        .map(|category| category.name.clone())
                        .collect(),
                )),
                _ => None,
            })
            .unzip();
        SeatLabels {
            layouts,
            categories,
        }
    }

    /// A command's category by name; one by index named from `event`'s categories, and
    /// for a category no created event has, a name none has (`#<index>`), so the replay
    /// is refused as unknown, as the index was.
    fn category_name(&self, event: EventId, category: Option<CategoryRef<'_>>) -> Option<String> {
        Some(match category? {
            CategoryRef::Name(name) => name.to_string(),
            CategoryRef::Index(index) => self
                .categories
                .get(event.0 as usize)
                .and_then(|names| names.get(usize::from(index)))
                .cloned()
                .unwrap_or_else(|| format!("#{index}")),
        })
    }

    fn label(&self, event: EventId, seat: u32) -> String {
        match self.layouts.get(event.0 as usize) {
            Some(Some(layout)) if seat < layout.seat_count => layout.label_of(seat),
            // A seat no layout knows: a label no event has, so the replay is refused
            // as unknown, as the index was.
            _ => format!("#{seat}"),
        }
    }
}

/// A best-available or waitlist body: quantity, together, and the category if any.
fn best_body(quantity: u32, category: Option<String>, together: bool) -> Value {
    let mut body = json!({ "quantity": quantity, "together": together });
    if let Some(category) = category {
        body["category"] = json!(category);
    }
    body
}

/// The layout of a spec, or `None` for one no engine would accept: refused by the spec
/// rules with the widest bounds any configuration allows (this log's configuration is
/// not known here), which also keeps `Layout::build`'s preconditions.
fn layout_of(spec: &EventSpec) -> Option<engine::layout::Layout> {
    SpecRules::widest()
        .check_event(spec)
        .ok()
        .map(|()| engine::layout::Layout::build(&spec.sections, |_| 0))
}

/// The HTTP call of an engine request (from `boxoffice log export`); `None` for ticks,
/// desks and updates, which a load replay leaves out, and for a request naming its user
/// by id: ids are the engine's (assigned as it grants), so only its user table names
/// them, and the ingress writes every user by name. `labels` names the seats of holds
/// appended by index.
pub fn engine_to_http(request: &Request, labels: &SeatLabels) -> Option<Call> {
    let user_auth = |user: &engine::UserRef| Some(Auth::User(user.name()?.to_string()));
    let mut call = match &request.command {
        Command::CreateEvent { tenant, spec } => Call::post(
            "/v1/admin/events",
            Auth::Admin(tenant.clone()),
            event_body(spec),
        ),
        Command::CancelEvent { tenant, event } => Call::delete(
            format!("/v1/admin/events/{event}"),
            Auth::Admin(tenant.clone()),
        ),
        Command::CheckIn {
            tenant,
            event,
            code,
        } => Call::post(
            format!("/v1/admin/events/{event}/checkin"),
            Auth::Admin(tenant.clone()),
            json!({ "code": code }),
        ),
        Command::PlaceHold {
            user,
            event,
            selection,
            wait,
        } => {
            let mut body = match selection {
                Selection::Seats(seats) => json!({ "seats": seats }),
                Selection::SeatIndices(seats) => json!({
                    "seats": seats
                        .iter()
                        .map(|seat| labels.label(*event, *seat))
                        .collect::<Vec<_>>()
                }),
                Selection::Best { .. } | Selection::BestIndexed { .. } => {
                    let (quantity, category, together) = selection.best().expect("best");
                    best_body(quantity, labels.category_name(*event, category), together)
                }
            };
            if *wait {
                body["wait"] = json!(true);
            }
            Call::post(format!("/v1/events/{event}/holds"), user_auth(user)?, body)
        }
        Command::ConfirmHold {
            user,
            hold,
            payment_ref,
        } => Call::post(
            format!("/v1/holds/{hold}/confirm"),
            user_auth(user)?,
            json!({ "payment_ref": payment_ref }),
        ),
        Command::ReleaseHold { user, hold } => {
            Call::delete(format!("/v1/holds/{hold}"), user_auth(user)?)
        }
        Command::CancelBooking { user, booking } => {
            Call::delete(format!("/v1/bookings/{booking}"), user_auth(user)?)
        }
        Command::JoinWaitlist { .. } | Command::JoinWaitlistIndexed { .. } => {
            let (user, event, quantity, category, together) =
                request.command.waitlist_join().expect("a waitlist join");
            Call::post(
                format!("/v1/events/{event}/waitlist"),
                user_auth(user)?,
                best_body(quantity, labels.category_name(event, category), together),
            )
        }
        Command::LeaveWaitlist { user, waiter } => {
            Call::delete(format!("/v1/waitlist/{waiter}"), user_auth(user)?)
        }
        _ => return None,
    };
    call.idempotency_key = request.idempotency_key.clone();
    Some(call)
}

fn event_body(spec: &EventSpec) -> Value {
    let mut body = json!({
        "name": spec.name,
        "description": spec.description,
        "city": spec.city,
        "country": spec.country,
        "venue": spec.venue,
        "starts_at": rfc3339(spec.starts_at_ms),
        "hold_ttl_seconds": spec.hold_ttl_ms / 1_000,
        "max_seats_per_order": spec.seats_per_order_max,
        "waitlist_policy": spec_rules::waitlist_policy_name(spec.waitlist_policy),
        "categories": spec.categories.iter().map(|category| json!({"name": category.name, "price_cents": category.price_cents})).collect::<Vec<_>>(),
    });
    for (field, value) in [
        ("ends_at", spec.ends_at_ms),
        ("sales_open_at", spec.sales_open_at_ms),
        ("sales_close_at", spec.sales_close_at_ms),
    ] {
        if let Some(ms) = value {
            body[field] = json!(rfc3339(ms));
        }
    }
    if let Some(max) = spec.seats_per_user_max {
        body["max_seats_per_user"] = json!(max);
    }
    if !spec.sections.is_empty() {
        let sections: Vec<Value> = spec
            .sections
            .iter()
            .map(|section| json!({"name": section.name, "rows": section.rows.iter().map(|row| json!({"label": row.label, "seats": row.seats, "category": row.category})).collect::<Vec<_>>()}))
            .collect();
        body["seating"] = json!({ "sections": sections });
    }
    if !spec.general_admission.is_empty() {
        body["general_admission"] = json!(spec
            .general_admission
            .iter()
            .map(|pool| json!({"category": pool.category, "capacity": pool.capacity}))
            .collect::<Vec<_>>());
    }
    body
}
