//! What an outcome tells the outside world: the webhook messages it makes, each with its
//! stable id `msg_<shard>_<log offset>_<index>` (index: its place among the outcome's
//! messages, the reply's first, then its effects' in order), so a retry or a re-send
//! carries the same id and receivers deduplicate by it. Pure: the same outcome gives the
//! same messages and the same bytes on every worker.

use engine::webhook::WebhookEventType;
use engine::{DeskId, Effect, EventId, Outcome, Reply, WaitEnd};
use serde_json::{json, Value};

/// Whose a message is: the event or desk it is about (its tenant's endpoints get it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Owner {
    Event(EventId),
    Desk(DeskId),
}

impl Owner {
    /// The store's key of the owner.
    pub(crate) fn key(self) -> [u8; 5] {
        let (tag, id) = match self {
            Owner::Event(event) => (b'e', event.0),
            Owner::Desk(desk) => (b'd', desk.0),
        };
        let mut key = [tag, 0, 0, 0, 0];
        key[1..].copy_from_slice(&id.to_be_bytes());
        key
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub id: String,
    pub owner: Owner,
    pub kind: WebhookEventType,
    /// The engine's log time of the outcome.
    pub time_ms: u64,
    /// `{"type", "timestamp", "data"}`, as sent.
    pub body: Vec<u8>,
}

/// The events and desks an outcome creates, with their tenants: the worker records them
/// before it routes the outcome's messages.
pub fn owners_created(outcome: &Outcome) -> Vec<(Owner, String)> {
    match &outcome.result {
        Ok(Reply::EventCreated { event, tenant, .. }) if !outcome.replayed => {
            vec![(Owner::Event(*event), tenant.clone())]
        }
        Ok(Reply::DeskCreated { desk, tenant, .. }) if !outcome.replayed => {
            vec![(Owner::Desk(*desk), tenant.clone())]
        }
        _ => Vec::new(),
    }
}

/// The messages of one outcome of shard `shard`. A replayed outcome (an idempotent repeat)
/// made nothing happen: none.
pub fn messages_of(shard: u32, outcome: &Outcome) -> Vec<Message> {
    if outcome.replayed {
        return Vec::new();
    }
    let mut made: Vec<(Owner, WebhookEventType, Value)> = Vec::new();
    if let Ok(reply) = &outcome.result {
        made.extend(reply_message(reply));
    }
    for effect in &outcome.effects {
        made.extend(effect_message(effect));
    }
    let timestamp = rfc3339(outcome.time_ms);
    made.into_iter()
        .enumerate()
        .map(|(index, (owner, kind, data))| Message {
            id: format!("msg_{shard}_{}_{index}", outcome.offset),
            owner,
            kind,
            time_ms: outcome.time_ms,
            body: serde_json::to_vec(&json!({
                "type": kind.as_str(),
                "timestamp": timestamp,
                "data": data,
            }))
            .expect("JSON values serialize"),
        })
        .collect()
}

fn reply_message(reply: &Reply) -> Option<(Owner, WebhookEventType, Value)> {
    Some(match reply {
        Reply::HoldConfirmed(booking) => (
            Owner::Event(booking.event),
            WebhookEventType::BookingCreated,
            json!({
                "booking_id": booking.booking.to_string(),
                "hold_id": booking.hold.to_string(),
                "event_id": booking.event.to_string(),
                "user_id": &*booking.user,
                "quantity": booking.items.quantity(),
                "total_cents": booking.total_cents,
                "payment_ref": booking.payment_ref,
                "booked_at": rfc3339(booking.booked_at_ms),
            }),
        ),
        Reply::BookingCanceled {
            booking,
            event,
            user,
            items,
        } => (
            Owner::Event(*event),
            WebhookEventType::BookingCanceled,
            json!({
                "booking_id": booking.to_string(),
                "event_id": event.to_string(),
                "user_id": &**user,
                "quantity": items.quantity(),
            }),
        ),
        Reply::EventCanceled {
            event,
            released_holds,
            canceled_bookings,
            ended_waiters,
        } => (
            Owner::Event(*event),
            WebhookEventType::EventCanceled,
            json!({
                "event_id": event.to_string(),
                "released_hold_ids": released_holds.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "canceled_booking_ids": canceled_bookings.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "ended_waitlist_ids": ended_waiters.iter().map(ToString::to_string).collect::<Vec<_>>(),
            }),
        ),
        Reply::CheckedIn { event, ticket } => (
            Owner::Event(*event),
            WebhookEventType::CheckinUsed,
            json!({
                "event_id": event.to_string(),
                "ticket_id": ticket.to_string(),
                "booking_id": ticket.booking.to_string(),
            }),
        ),
        // A ticket made without a hold has its slot at once; a held one when confirmed.
        Reply::DeskTicketCreated(ticket) | Reply::DeskTicketConfirmed(ticket)
            if ticket.hold_expires_at_ms.is_none() =>
        {
            (
                Owner::Desk(ticket.desk),
                WebhookEventType::DeskTicketAllocated,
                json!({
                    "desk_id": ticket.desk.to_string(),
                    "desk_ticket_id": ticket.ticket.to_string(),
                    "user_id": &*ticket.user,
                    "agent": ticket.agent,
                    "slot_start": rfc3339(ticket.slot_start_ms),
                    "slot_end": rfc3339(ticket.slot_end_ms),
                }),
            )
        }
        _ => return None,
    })
}

fn effect_message(effect: &Effect) -> Option<(Owner, WebhookEventType, Value)> {
    Some(match effect {
        Effect::HoldExpired {
            hold,
            event,
            user,
            items,
            waiter,
        } => (
            Owner::Event(*event),
            WebhookEventType::HoldExpired,
            json!({
                "hold_id": hold.to_string(),
                "event_id": event.to_string(),
                "user_id": &**user,
                "quantity": items.quantity(),
                "waitlist_id": waiter.map(|waiter| waiter.to_string()),
            }),
        ),
        Effect::WaitlistOffered { waiter, hold } => (
            Owner::Event(hold.event),
            WebhookEventType::WaitlistOffered,
            json!({
                "waitlist_id": waiter.to_string(),
                "hold_id": hold.hold.to_string(),
                "event_id": hold.event.to_string(),
                "user_id": &*hold.user,
                "quantity": hold.items.quantity(),
                "expires_at": rfc3339(hold.expires_at_ms),
            }),
        ),
        Effect::WaitlistEnded {
            waiter,
            event,
            user,
            reason,
        } => (
            Owner::Event(*event),
            WebhookEventType::WaitlistEnded,
            json!({
                "waitlist_id": waiter.to_string(),
                "event_id": event.to_string(),
                "user_id": &**user,
                "reason": match reason {
                    WaitEnd::TimedOut => "timed_out",
                    WaitEnd::SoldOut => "sold_out",
                    WaitEnd::LimitExceeded => "limit_exceeded",
                    WaitEnd::EventCanceled => "event_canceled",
                    WaitEnd::NoRowLongEnough => "no_row_long_enough",
                },
            }),
        ),
        Effect::DeskHoldExpired { .. } => return None,
    })
}

/// Milliseconds since the epoch as RFC 3339 (UTC, milliseconds).
pub(crate) fn rfc3339(time_ms: u64) -> String {
    let nanos = i128::from(time_ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|time| {
            time.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::{BookingId, HoldId, HoldView, Items, WaiterId};

    fn outcome(
        offset: u64,
        result: Result<Reply, engine::Rejection>,
        effects: Vec<Effect>,
    ) -> Outcome {
        Outcome {
            offset,
            time_ms: 1_700_000_000_123,
            replayed: false,
            result,
            effects,
            idempotency: None,
        }
    }

    fn body(message: &Message) -> Value {
        serde_json::from_slice(&message.body).unwrap()
    }

    #[test]
    fn an_outcome_makes_its_reply_s_message_then_its_effects_with_stable_ids() {
        let user: engine::UserName = "ana".into();
        let confirmed = outcome(
            41,
            Ok(Reply::HoldConfirmed(engine::BookingView {
                booking: BookingId(3),
                hold: HoldId(9),
                event: EventId(2),
                user: user.clone(),
                items: Items::Seats(vec![4, 5]),
                total_cents: 5000,
                payment_ref: "pay_1".into(),
                booked_at_ms: 1_700_000_000_123,
            })),
            vec![
                Effect::HoldExpired {
                    hold: HoldId(7),
                    event: EventId(2),
                    user: user.clone(),
                    items: Items::Pool {
                        category: 0,
                        quantity: 3,
                    },
                    waiter: None,
                },
                Effect::WaitlistOffered {
                    waiter: WaiterId(5),
                    hold: HoldView {
                        hold: HoldId(10),
                        event: EventId(2),
                        user: "bo".into(),
                        items: Items::Pool {
                            category: 0,
                            quantity: 3,
                        },
                        created_at_ms: 1_700_000_000_123,
                        expires_at_ms: 1_700_000_060_123,
                        waiter: Some(WaiterId(5)),
                    },
                },
                Effect::DeskHoldExpired {
                    desk: DeskId(0),
                    ticket: engine::DeskTicketId(1),
                    user,
                },
            ],
        );
        let messages = messages_of(2, &confirmed);
        let ids: Vec<&str> = messages.iter().map(|message| message.id.as_str()).collect();
        assert_eq!(ids, ["msg_2_41_0", "msg_2_41_1", "msg_2_41_2"]);
        assert_eq!(
            body(&messages[0]),
            json!({"type": "booking.created", "timestamp": "2023-11-14T22:13:20.123Z", "data": {
                "booking_id": "b_3", "hold_id": "h_9", "event_id": "ev_2", "user_id": "ana",
                "quantity": 2, "total_cents": 5000, "payment_ref": "pay_1",
                "booked_at": "2023-11-14T22:13:20.123Z"}})
        );
        assert_eq!(body(&messages[1])["type"], "hold.expired");
        assert_eq!(body(&messages[1])["data"]["quantity"], 3);
        assert_eq!(body(&messages[2])["type"], "waitlist.offered");
        assert_eq!(
            body(&messages[2])["data"]["expires_at"],
            "2023-11-14T22:14:20.123Z"
        );
        assert!(messages
            .iter()
            .all(|message| message.owner == Owner::Event(EventId(2))));
        // The same outcome, the same bytes.
        assert_eq!(messages_of(2, &confirmed), messages);
        // A replayed answer made nothing happen.
        let replayed = Outcome {
            replayed: true,
            ..confirmed
        };
        assert!(messages_of(2, &replayed).is_empty());
    }

    #[test]
    fn a_rejection_still_carries_its_effects() {
        let refused = outcome(
            5,
            Err(engine::Rejection::HoldExpired),
            vec![Effect::WaitlistEnded {
                waiter: WaiterId(1),
                event: EventId(0),
                user: "ana".into(),
                reason: WaitEnd::SoldOut,
            }],
        );
        let messages = messages_of(0, &refused);
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].id, "msg_0_5_0");
        assert_eq!(body(&messages[0])["data"]["reason"], "sold_out");
    }
}
