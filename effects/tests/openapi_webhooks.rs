//! The OpenAPI document's `webhooks` section against what the worker sends: one outcome of
//! every kind that makes a message, through `effects::messages`, each body checked against
//! its event type's schema (types, required and no other fields, enums, id patterns,
//! RFC 3339 times); every event type has its entry and every entry is an event type.
//!
//! The checker covers the JSON Schema keywords the section uses, no more: a keyword it
//! does not know fails the test, so a schema cannot grow past what is checked.

use effects::messages::messages_of;
use engine::webhook::WebhookEventType;
use engine::{
    BookingId, BookingView, DeskId, DeskTicketId, DeskTicketView, Effect, EventId, HoldId,
    HoldView, Items, Outcome, Reply, TicketId, WaitEnd, WaiterId,
};
use serde_json::Value;
use std::collections::BTreeSet;

fn check(schema: &Value, value: &Value, at: &str) {
    let schema = schema.as_object().expect("a schema is an object");
    for (keyword, rule) in schema {
        match keyword.as_str() {
            "description" => {}
            "type" => {
                let allowed: Vec<&str> = match rule {
                    Value::String(one) => vec![one.as_str()],
                    Value::Array(many) => many.iter().map(|one| one.as_str().unwrap()).collect(),
                    other => panic!("{at}: type {other}"),
                };
                let actual = match value {
                    Value::Null => "null",
                    Value::Bool(_) => "boolean",
                    Value::Number(number) if number.is_u64() || number.is_i64() => "integer",
                    Value::Number(_) => "number",
                    Value::String(_) => "string",
                    Value::Array(_) => "array",
                    Value::Object(_) => "object",
                };
                assert!(allowed.contains(&actual), "{at}: {value} is not {rule}");
            }
            "enum" => assert!(
                rule.as_array().unwrap().contains(value),
                "{at}: {value} not in {rule}"
            ),
            "pattern" => {
                if let Value::String(text) = value {
                    let pattern = regex::Regex::new(rule.as_str().unwrap()).unwrap();
                    assert!(pattern.is_match(text), "{at}: {text} does not match {rule}");
                }
            }
            "format" => {
                assert_eq!(rule, "date-time", "{at}: an unchecked format");
                let text = value.as_str().unwrap();
                time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                    .unwrap_or_else(|error| panic!("{at}: {text}: {error}"));
            }
            "minimum" => assert!(
                value.as_f64().unwrap() >= rule.as_f64().unwrap(),
                "{at}: {value} < {rule}"
            ),
            "required" => {
                for field in rule.as_array().unwrap() {
                    let field = field.as_str().unwrap();
                    assert!(value.get(field).is_some(), "{at}: no {field} in {value}");
                }
            }
            "additionalProperties" => {
                assert_eq!(rule, &Value::Bool(false), "{at}");
                let known = schema["properties"].as_object().unwrap();
                for field in value.as_object().unwrap().keys() {
                    assert!(
                        known.contains_key(field),
                        "{at}: {field} is not in the schema"
                    );
                }
            }
            "properties" => {
                for (field, property) in rule.as_object().unwrap() {
                    if let Some(inner) = value.get(field) {
                        check(property, inner, &format!("{at}.{field}"));
                    }
                }
            }
            "items" => {
                for (index, item) in value.as_array().unwrap().iter().enumerate() {
                    check(rule, item, &format!("{at}[{index}]"));
                }
            }
            other => panic!("{at}: the checker does not know `{other}`"),
        }
    }
}

fn outcome(offset: u64, result: Result<Reply, engine::Rejection>, effects: Vec<Effect>) -> Outcome {
    Outcome {
        offset,
        time_ms: 1_700_000_000_123,
        replayed: false,
        result,
        effects,
        effects_before_reply: 0,
        idempotency: None,
    }
}

fn pool(quantity: u32) -> Items {
    Items::Pool {
        category: 0,
        quantity,
    }
}

/// Outcomes that, together, make a message of every event type (hold.expired twice: with
/// and without a waiter).
fn outcomes() -> Vec<Outcome> {
    let event = EventId(3);
    vec![
        outcome(
            1,
            Ok(Reply::HoldConfirmed(BookingView {
                booking: BookingId(4),
                hold: HoldId(5),
                event,
                user: "ana".into(),
                items: Items::Seats(vec![1, 2].into()),
                total_cents: 4000,
                payment_ref: "pay_1".into(),
                booked_at_ms: 1_700_000_000_123,
            })),
            vec![
                Effect::HoldExpired {
                    hold: HoldId(6),
                    event,
                    user: "bo".into(),
                    items: pool(2),
                    waiter: None,
                },
                Effect::HoldExpired {
                    hold: HoldId(7),
                    event,
                    user: "cy".into(),
                    items: pool(1),
                    waiter: Some(WaiterId(8)),
                },
                Effect::WaitlistOffered {
                    waiter: WaiterId(9),
                    hold: HoldView {
                        hold: HoldId(10),
                        event,
                        user: "di".into(),
                        items: pool(2),
                        created_at_ms: 1_700_000_000_123,
                        expires_at_ms: 1_700_000_060_123,
                        waiter: Some(WaiterId(9)),
                    },
                },
                Effect::WaitlistEnded {
                    waiter: WaiterId(11),
                    event,
                    user: "ed".into(),
                    reason: WaitEnd::NoRowLongEnough,
                },
            ],
        ),
        outcome(
            2,
            Ok(Reply::BookingCanceled {
                booking: BookingId(4),
                event,
                user: "ana".into(),
                items: pool(2),
            }),
            vec![],
        ),
        outcome(
            3,
            Ok(Reply::CheckedIn {
                event,
                ticket: TicketId {
                    booking: BookingId(12),
                    index: 1,
                },
            }),
            vec![],
        ),
        outcome(
            4,
            Ok(Reply::EventCanceled {
                event,
                released_holds: vec![HoldId(13)],
                canceled_bookings: vec![BookingId(12), BookingId(14)],
                ended_waiters: vec![],
            }),
            vec![],
        ),
        outcome(
            5,
            Ok(Reply::DeskTicketCreated(DeskTicketView {
                desk: DeskId(1),
                ticket: DeskTicketId(15),
                user: "fa".into(),
                level: 0,
                agent: 2,
                slot_start_ms: 1_700_000_100_000,
                slot_end_ms: 1_700_000_400_000,
                resolve_by_ms: 1_700_000_500_000,
                hold_expires_at_ms: None,
            })),
            vec![],
        ),
    ]
}

#[test]
fn every_message_the_worker_sends_matches_its_webhook_schema() {
    let document = serde_json::to_value(ingress::openapi_document()).unwrap();
    let section = document["webhooks"]
        .as_object()
        .expect("a webhooks section");
    let documented: BTreeSet<&str> = section.keys().map(String::as_str).collect();
    let types: BTreeSet<&str> = WebhookEventType::ALL
        .iter()
        .map(|kind| kind.as_str())
        .collect();
    assert_eq!(documented, types, "one entry per event type");
    let mut sent = BTreeSet::new();
    for outcome in outcomes() {
        for message in messages_of(0, &outcome) {
            let body: Value = serde_json::from_slice(&message.body).unwrap();
            let kind = message.kind.as_str();
            let schema =
                &section[kind]["post"]["requestBody"]["content"]["application/json"]["schema"];
            check(schema, &body, kind);
            sent.insert(kind);
        }
    }
    assert_eq!(sent, types, "every event type was checked");
}

/// The checker refuses what the schemas forbid (so the test above can fail).
#[test]
#[should_panic(expected = "is not in the schema")]
fn an_unknown_field_fails_the_check() {
    let document = serde_json::to_value(ingress::openapi_document()).unwrap();
    let schema = &document["webhooks"]["checkin.used"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"];
    let body = serde_json::json!({"type": "checkin.used", "timestamp": "2030-01-01T00:00:00Z",
        "data": {"event_id": "ev_1", "ticket_id": "t_1_1", "booking_id": "b_1", "seat": "A-1-1"}});
    check(schema, &body, "checkin.used");
}
