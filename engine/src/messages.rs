//! What an outcome tells the outside world: the webhook messages it makes, each with its
//! stable id `msg_<shard>_<log offset>_<index>` (index: its place among the outcome's
//! messages, the reply's first, then its effects' in order), so a retry or a re-send
//! carries the same id and receivers deduplicate by it. Pure: the same outcome gives the
//! same messages and the same bytes on every worker.
//!
//! One implementation for both readers of outcomes that tell someone what happened: the
//! effects worker sends [`messages_of`] to a tenant's webhook endpoints, and the ingress's
//! read model keeps [`user_messages_of`] for `GET /v1/me/notifications`, the same types,
//! bodies and ids, each given to the user it is about.

use crate::ids::IdText;
use crate::webhook::WebhookEventType;
use crate::{
    BookingId, DeskId, Effect, EventId, HoldId, Outcome, Reply, UserName, WaitEnd, WaiterId,
};
use serde::{Serialize, Serializer};
use serde_json::{json, Value};

/// Whose a message is: the event or desk it is about (its tenant's endpoints get it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Owner {
    Event(EventId),
    Desk(DeskId),
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

/// A message of an outcome as one user is told it (`user_messages_of`).
#[derive(Clone, Debug, PartialEq)]
pub struct UserMessage {
    pub user: UserName,
    /// Its place among the outcome's messages: its id is [`message_id`] of it.
    pub index: u32,
    pub kind: WebhookEventType,
    /// `{"type", "timestamp", "data"}`: the webhook's body, except that an
    /// `event.canceled` lists only this user's holds, bookings and waitlist entries.
    pub body: Vec<u8>,
}

/// A message of an outcome as a user-side store keeps it ([`user_notes_of`]): its body
/// only when it is this user's alone (an event cancel's, which lists only their holds,
/// bookings and waitlist entries); otherwise `None`, and the body is the outcome's
/// message as everyone is told it, [`message_body`] of the outcome and its source, rendered
/// when it is read (most messages are never read: rendering each on the read model's
/// follower cost a tenth of that thread).
#[derive(Clone, Debug, PartialEq)]
pub struct UserNote {
    pub user: UserName,
    /// Its place among the outcome's messages: its id is [`message_id`] of it.
    pub index: u32,
    /// What made it: its body is [`message_body`] of the outcome and this.
    pub source: MessageSource,
    pub kind: WebhookEventType,
    pub body: Option<Vec<u8>>,
}

/// What a user-side reader is asked about: whose hold, booking or waitlist entry an id
/// is (the outcome names the user of most messages; an event cancel and a check-in name
/// only ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    Hold(HoldId),
    Booking(BookingId),
    Waiter(WaiterId),
}

/// The id of message `index` of the outcome at `offset` of shard `shard`.
pub fn message_id(shard: u32, offset: u64, index: u32) -> String {
    format!("msg_{shard}_{offset}_{index}")
}

/// Who a message is about, for [`user_messages_of`].
enum About<'a> {
    User(&'a UserName),
    /// A check-in: the booking's user.
    Booking(BookingId),
    /// An event cancel: the user of each of these.
    Canceled {
        event: EventId,
        holds: &'a [HoldId],
        bookings: &'a [BookingId],
        waiters: &'a [WaiterId],
    },
}

struct Made<'a> {
    owner: Owner,
    kind: WebhookEventType,
    data: Data<'a>,
    about: About<'a>,
}

/// A message's `data`: a JSON value, or, for the messages of every confirmation, expiry
/// and offer (the hot ones: one per sale), a struct serialized straight to bytes. A
/// struct's fields are declared in name order, so its bytes are the value's (a JSON
/// object's keys serialize sorted): a test compares the two.
enum Data<'a> {
    Value(Value),
    BookingCreated(BookingCreated<'a>),
    HoldExpired(HoldExpiredData<'a>),
    WaitlistOffered(WaitlistOfferedData<'a>),
}

impl Serialize for Data<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Data::Value(value) => value.serialize(serializer),
            Data::BookingCreated(data) => data.serialize(serializer),
            Data::HoldExpired(data) => data.serialize(serializer),
            Data::WaitlistOffered(data) => data.serialize(serializer),
        }
    }
}

/// An id as its display form (`b_3`), written on the stack (`IdText`), not a `String`.
fn display<T: Copy + Into<IdText>, S: Serializer>(
    id: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&(*id).into())
}

fn display_some<T: Copy + Into<IdText>, S: Serializer>(
    id: &Option<T>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match id {
        Some(id) => display(id, serializer),
        None => serializer.serialize_none(),
    }
}

/// A time (ms since the epoch) that serializes as [`rfc3339`]: formatted only when a
/// body is written, not when a message is made (the follower makes one for every
/// confirmation to learn whom it tells, and keeps the outcome rather than the body).
#[derive(Clone, Copy)]
struct Rfc3339Ms(u64);

impl Serialize for Rfc3339Ms {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&rfc3339(self.0))
    }
}

/// Fields in name order (see [`Data`]).
#[derive(Serialize)]
struct BookingCreated<'a> {
    booked_at: Rfc3339Ms,
    #[serde(serialize_with = "display")]
    booking_id: BookingId,
    #[serde(serialize_with = "display")]
    event_id: EventId,
    #[serde(serialize_with = "display")]
    hold_id: HoldId,
    payment_ref: &'a str,
    quantity: u32,
    total_cents: u64,
    user_id: &'a str,
}

/// Fields in name order (see [`Data`]).
#[derive(Serialize)]
struct HoldExpiredData<'a> {
    #[serde(serialize_with = "display")]
    event_id: EventId,
    #[serde(serialize_with = "display")]
    hold_id: HoldId,
    quantity: u32,
    user_id: &'a str,
    #[serde(serialize_with = "display_some")]
    waitlist_id: Option<WaiterId>,
}

/// Fields in name order (see [`Data`]).
#[derive(Serialize)]
struct WaitlistOfferedData<'a> {
    #[serde(serialize_with = "display")]
    event_id: EventId,
    expires_at: Rfc3339Ms,
    #[serde(serialize_with = "display")]
    hold_id: HoldId,
    quantity: u32,
    user_id: &'a str,
    #[serde(serialize_with = "display")]
    waitlist_id: WaiterId,
}

/// A message's body; fields in name order, as `json!` would order them.
#[derive(Serialize)]
struct Body<'a> {
    data: &'a Data<'a>,
    timestamp: Rfc3339Ms,
    #[serde(rename = "type")]
    kind: &'static str,
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

/// What part of an outcome made a message: its reply, or one of its effects (by index).
/// Each makes at most one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageSource {
    Reply,
    Effect(u32),
}

/// An outcome's messages, in order: its reply's, then its effects', each with its source.
/// A replayed outcome (an idempotent repeat) answers what was decided before: its reply
/// makes none, but its effects are new (its clock ran: an expiry at the repeat's time).
/// Perf: an iterator, not a list (the follower makes an outcome's user notes on its path,
/// mostly of one message).
fn made_of(outcome: &Outcome) -> impl Iterator<Item = (MessageSource, Made<'_>)> {
    let reply = match outcome.replayed {
        true => None,
        false => outcome.result.as_ref().ok().and_then(reply_message),
    }
    .map(|made| (MessageSource::Reply, made));
    let effects = outcome
        .effects
        .iter()
        .enumerate()
        .filter_map(|(index, effect)| {
            effect_message(effect).map(|made| (MessageSource::Effect(index_of(index)), made))
        });
    // In the order it happened (an event cancel after the expiries and offers its
    // outcome's clock made: `Outcome::effects_first`).
    let (before, after) = match outcome.effects_first() {
        true => (None, reply),
        false => (reply, None),
    };
    before.into_iter().chain(effects).chain(after)
}

/// The message `source` made of `outcome`, alone (an outcome may have millions).
fn made_by(outcome: &Outcome, source: MessageSource) -> Option<Made<'_>> {
    match source {
        MessageSource::Reply if outcome.replayed => None,
        MessageSource::Reply => reply_message(outcome.result.as_ref().ok()?),
        MessageSource::Effect(index) => effect_message(outcome.effects.get(index as usize)?),
    }
}

fn body_of(outcome: &Outcome, kind: WebhookEventType, data: &Data<'_>) -> Vec<u8> {
    body_at(outcome.time_ms, kind, data)
}

fn body_at(time_ms: u64, kind: WebhookEventType, data: &Data<'_>) -> Vec<u8> {
    serde_json::to_vec(&Body {
        data,
        timestamp: Rfc3339Ms(time_ms),
        kind: kind.as_str(),
    })
    .expect("message bodies serialize")
}

fn index_of(index: usize) -> u32 {
    u32::try_from(index).expect("an outcome has at most u32::MAX messages")
}

/// The messages of one outcome of shard `shard`. A replayed outcome (an idempotent repeat)
/// has its effects' alone.
pub fn messages_of(shard: u32, outcome: &Outcome) -> Vec<Message> {
    made_of(outcome)
        .enumerate()
        .map(|(index, (_, made))| Message {
            id: message_id(shard, outcome.offset, index_of(index)),
            owner: made.owner,
            kind: made.kind,
            time_ms: outcome.time_ms,
            body: body_of(outcome, made.kind, &made.data),
        })
        .collect()
}

/// The messages of one outcome that are about a user, each with that user: every message
/// naming its user, a check-in for its booking's user, and an event cancel once for each
/// user it touched, listing only that user's holds, bookings and waitlist entries (in the
/// order the cancel lists them; users in name order). `whose` says whose a subject is
/// (the read model, before it applies the outcome); a subject it does not know is left
/// out. Same indices, so same ids, as [`messages_of`].
pub fn user_messages_of(
    outcome: &Outcome,
    whose: &dyn Fn(Subject) -> Option<UserName>,
) -> Vec<UserMessage> {
    user_notes_of(outcome, whose)
        .into_iter()
        .map(|note| UserMessage {
            body: note.body.unwrap_or_else(|| {
                message_body(outcome, note.source).expect("a note without a body is a message")
            }),
            user: note.user,
            index: note.index,
            kind: note.kind,
        })
        .collect()
}

/// [`user_messages_of`], with the bodies that are not the user's alone left to
/// [`message_body`] (see [`UserNote`]).
pub fn user_notes_of(
    outcome: &Outcome,
    whose: &dyn Fn(Subject) -> Option<UserName>,
) -> Vec<UserNote> {
    let mut told = Vec::new();
    for (index, (source, made)) in made_of(outcome).enumerate() {
        let index = index_of(index);
        let note = |user: UserName, body: Option<Vec<u8>>| UserNote {
            user,
            index,
            source,
            kind: made.kind,
            body,
        };
        match made.about {
            About::User(user) => told.push(note(user.clone(), None)),
            About::Booking(booking) => {
                if let Some(user) = whose(Subject::Booking(booking)) {
                    told.push(note(user, None));
                }
            }
            About::Canceled {
                event,
                holds,
                bookings,
                waiters,
            } => {
                type Touched = (Vec<HoldId>, Vec<BookingId>, Vec<WaiterId>);
                let mut by_user: std::collections::BTreeMap<UserName, Touched> =
                    std::collections::BTreeMap::new();
                for hold in holds {
                    if let Some(user) = whose(Subject::Hold(*hold)) {
                        by_user.entry(user).or_default().0.push(*hold);
                    }
                }
                for booking in bookings {
                    if let Some(user) = whose(Subject::Booking(*booking)) {
                        by_user.entry(user).or_default().1.push(*booking);
                    }
                }
                for waiter in waiters {
                    if let Some(user) = whose(Subject::Waiter(*waiter)) {
                        by_user.entry(user).or_default().2.push(*waiter);
                    }
                }
                for (user, (holds, bookings, waiters)) in by_user {
                    let data = event_canceled_data(event, &holds, &bookings, &waiters);
                    let body = body_of(outcome, made.kind, &Data::Value(data));
                    told.push(note(user, Some(body)));
                }
            }
        }
    }
    told
}

/// The body of the message `source` made of `outcome`, as everyone is told it (a
/// webhook's body, byte for byte); `None` when it made none.
pub fn message_body(outcome: &Outcome, source: MessageSource) -> Option<Vec<u8>> {
    let made = made_by(outcome, source)?;
    Some(body_of(outcome, made.kind, &made.data))
}

/// One message of an outcome, kept apart from it to be rendered later: the reply or the
/// effect that made it, and the outcome's time. Its body ([`KeptMessage::body`]) is
/// [`message_body`] of the outcome and source it was taken from, byte for byte.
///
/// Why not the outcome itself: a user-side store (the ingress's notifications) keeps a
/// message as long as its user is among the recent ones, thousands of outcomes later.
/// Keeping the shared outcome kept all of it alive that long, and freed it then on the
/// store's thread, cold, though another thread made it (in `serve`, the engine's
/// publisher, whose allocator then handed out cold blocks): a copy of the one part is
/// the store's own, made and freed on its thread.
#[derive(Clone, Debug, PartialEq)]
pub struct KeptMessage {
    time_ms: u64,
    part: KeptPart,
}

#[derive(Clone, Debug, PartialEq)]
enum KeptPart {
    Reply(Reply),
    Effect(Effect),
}

impl KeptMessage {
    /// The part of `outcome` that made message `source`; `None` when it made none.
    pub fn of(outcome: &Outcome, source: MessageSource) -> Option<KeptMessage> {
        made_by(outcome, source)?;
        let part = match source {
            MessageSource::Reply => KeptPart::Reply(outcome.result.as_ref().ok()?.clone()),
            MessageSource::Effect(index) => {
                KeptPart::Effect(outcome.effects.get(index as usize)?.clone())
            }
        };
        Some(KeptMessage {
            time_ms: outcome.time_ms,
            part,
        })
    }

    /// `{"type", "timestamp", "data"}`, as [`message_body`] renders it.
    pub fn body(&self) -> Vec<u8> {
        let made = match &self.part {
            KeptPart::Reply(reply) => reply_message(reply),
            KeptPart::Effect(effect) => effect_message(effect),
        }
        .expect("a kept part made a message");
        body_at(self.time_ms, made.kind, &made.data)
    }
}

fn event_canceled_data(
    event: EventId,
    holds: &[HoldId],
    bookings: &[BookingId],
    waiters: &[WaiterId],
) -> Value {
    json!({
        "event_id": event.to_string(),
        "released_hold_ids": holds.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "canceled_booking_ids": bookings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "ended_waitlist_ids": waiters.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
}

fn reply_message(reply: &Reply) -> Option<Made<'_>> {
    Some(match reply {
        Reply::HoldConfirmed(booking) => Made {
            owner: Owner::Event(booking.event),
            kind: WebhookEventType::BookingCreated,
            data: Data::BookingCreated(BookingCreated {
                booked_at: Rfc3339Ms(booking.booked_at_ms),
                booking_id: booking.booking,
                event_id: booking.event,
                hold_id: booking.hold,
                payment_ref: &booking.payment_ref,
                quantity: booking.items.quantity(),
                total_cents: booking.total_cents,
                user_id: &booking.user,
            }),
            about: About::User(&booking.user),
        },
        Reply::BookingCanceled {
            booking,
            event,
            user,
            items,
        } => Made {
            owner: Owner::Event(*event),
            kind: WebhookEventType::BookingCanceled,
            data: Data::Value(json!({
                "booking_id": booking.to_string(),
                "event_id": event.to_string(),
                "user_id": &**user,
                "quantity": items.quantity(),
            })),
            about: About::User(user),
        },
        Reply::EventCanceled {
            event,
            released_holds,
            canceled_bookings,
            ended_waiters,
        } => Made {
            owner: Owner::Event(*event),
            kind: WebhookEventType::EventCanceled,
            data: Data::Value(event_canceled_data(
                *event,
                released_holds,
                canceled_bookings,
                ended_waiters,
            )),
            about: About::Canceled {
                event: *event,
                holds: released_holds,
                bookings: canceled_bookings,
                waiters: ended_waiters,
            },
        },
        Reply::CheckedIn { event, ticket } => Made {
            owner: Owner::Event(*event),
            kind: WebhookEventType::CheckinUsed,
            data: Data::Value(json!({
                "event_id": event.to_string(),
                "ticket_id": ticket.to_string(),
                "booking_id": ticket.booking.to_string(),
            })),
            about: About::Booking(ticket.booking),
        },
        // A ticket made without a hold has its slot at once; a held one when confirmed.
        Reply::DeskTicketCreated(ticket) | Reply::DeskTicketConfirmed(ticket)
            if ticket.hold_expires_at_ms.is_none() =>
        {
            Made {
                owner: Owner::Desk(ticket.desk),
                kind: WebhookEventType::DeskTicketAllocated,
                data: Data::Value(json!({
                    "desk_id": ticket.desk.to_string(),
                    "desk_ticket_id": ticket.ticket.to_string(),
                    "user_id": &*ticket.user,
                    "agent": ticket.agent,
                    "slot_start": rfc3339(ticket.slot_start_ms),
                    "slot_end": rfc3339(ticket.slot_end_ms),
                })),
                about: About::User(&ticket.user),
            }
        }
        _ => return None,
    })
}

fn effect_message(effect: &Effect) -> Option<Made<'_>> {
    Some(match effect {
        Effect::HoldExpired {
            hold,
            event,
            user,
            items,
            waiter,
        } => Made {
            owner: Owner::Event(*event),
            kind: WebhookEventType::HoldExpired,
            data: Data::HoldExpired(HoldExpiredData {
                event_id: *event,
                hold_id: *hold,
                quantity: items.quantity(),
                user_id: user,
                waitlist_id: *waiter,
            }),
            about: About::User(user),
        },
        Effect::WaitlistOffered { waiter, hold } => Made {
            owner: Owner::Event(hold.event),
            kind: WebhookEventType::WaitlistOffered,
            data: Data::WaitlistOffered(WaitlistOfferedData {
                event_id: hold.event,
                expires_at: Rfc3339Ms(hold.expires_at_ms),
                hold_id: hold.hold,
                quantity: hold.items.quantity(),
                user_id: &hold.user,
                waitlist_id: *waiter,
            }),
            about: About::User(&hold.user),
        },
        Effect::WaitlistEnded {
            waiter,
            event,
            user,
            reason,
        } => Made {
            owner: Owner::Event(*event),
            kind: WebhookEventType::WaitlistEnded,
            data: Data::Value(json!({
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
            })),
            about: About::User(user),
        },
        // Not webhook types (yet): a draw's entries learn their places by reading them.
        Effect::DeskHoldExpired { .. }
        | Effect::DrawOpened { .. }
        | Effect::DrawMade { .. }
        | Effect::EventTermsSet { .. } => return None,
    })
}

/// Milliseconds since the epoch as RFC 3339 (UTC, milliseconds).
pub fn rfc3339(time_ms: u64) -> String {
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
    use crate::{BookingView, DeskTicketId, HoldView, Items, Rejection};

    fn outcome(offset: u64, result: Result<Reply, Rejection>, effects: Vec<Effect>) -> Outcome {
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

    fn body(message: &Message) -> Value {
        serde_json::from_slice(&message.body).unwrap()
    }

    /// The hot messages' data, serialized from structs, are byte for byte the JSON values
    /// they replaced (keys sorted, ids in display form, `null` for a missing waiter).
    #[test]
    fn typed_data_has_the_bytes_of_the_json_values_it_replaced() {
        let booking = BookingView {
            booking: BookingId(3),
            hold: HoldId(9),
            event: EventId(2),
            user: "ana \"the\" \u{e9}".into(),
            items: Items::Seats(vec![4, 5].into()),
            total_cents: 5000,
            payment_ref: "pay_\n1".into(),
            booked_at_ms: 1_700_000_000_123,
        };
        let held = HoldView {
            hold: HoldId(11),
            event: EventId(2),
            user: "bo".into(),
            items: Items::Pool {
                category: 0,
                quantity: 3,
            },
            created_at_ms: 1_700_000_000_000,
            expires_at_ms: 1_700_000_300_000,
            waiter: Some(WaiterId(5)),
        };
        let cases: Vec<(Outcome, Vec<Value>)> = vec![
            (
                outcome(1, Ok(Reply::HoldConfirmed(booking.clone())), vec![]),
                vec![json!({
                    "booking_id": booking.booking.to_string(),
                    "hold_id": booking.hold.to_string(),
                    "event_id": booking.event.to_string(),
                    "user_id": &*booking.user,
                    "quantity": booking.items.quantity(),
                    "total_cents": booking.total_cents,
                    "payment_ref": booking.payment_ref,
                    "booked_at": rfc3339(booking.booked_at_ms),
                })],
            ),
            (
                outcome(
                    2,
                    Ok(Reply::Ticked),
                    vec![
                        Effect::HoldExpired {
                            hold: HoldId(7),
                            event: EventId(2),
                            user: "cy".into(),
                            items: Items::Seats(vec![1].into()),
                            waiter: None,
                        },
                        Effect::HoldExpired {
                            hold: HoldId(8),
                            event: EventId(2),
                            user: "di".into(),
                            items: Items::Seats(vec![2, 3].into()),
                            waiter: Some(WaiterId(4)),
                        },
                        Effect::WaitlistOffered {
                            waiter: WaiterId(5),
                            hold: held.clone(),
                        },
                    ],
                ),
                vec![
                    json!({"hold_id": HoldId(7).to_string(), "event_id": EventId(2).to_string(), "user_id": "cy",
                           "quantity": 1, "waitlist_id": Option::<String>::None}),
                    json!({"hold_id": HoldId(8).to_string(), "event_id": EventId(2).to_string(),
                           "user_id": "di", "quantity": 2,
                           "waitlist_id": Some(WaiterId(4).to_string())}),
                    json!({
                        "waitlist_id": WaiterId(5).to_string(),
                        "hold_id": held.hold.to_string(),
                        "event_id": held.event.to_string(),
                        "user_id": &*held.user,
                        "quantity": held.items.quantity(),
                        "expires_at": rfc3339(held.expires_at_ms),
                    }),
                ],
            ),
        ];
        for (outcome, data) in cases {
            let messages = messages_of(0, &outcome);
            assert_eq!(messages.len(), data.len());
            for (message, data) in messages.iter().zip(data) {
                let expected = serde_json::to_vec(&json!({
                    "type": message.kind.as_str(),
                    "timestamp": rfc3339(outcome.time_ms),
                    "data": data,
                }))
                .unwrap();
                assert_eq!(
                    String::from_utf8(message.body.clone()).unwrap(),
                    String::from_utf8(expected).unwrap()
                );
            }
        }
    }

    /// A confirm's outcome at offset 41 whose reply and first two effects make messages
    /// (booking.created, hold.expired, waitlist.offered) and whose third makes none.
    fn confirmed_with_effects() -> Outcome {
        let user: UserName = "ana".into();
        outcome(
            41,
            Ok(Reply::HoldConfirmed(BookingView {
                booking: BookingId(3),
                hold: HoldId(9),
                event: EventId(2),
                user: user.clone(),
                items: Items::Seats(vec![4, 5].into()),
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
                    ticket: DeskTicketId(1),
                    user,
                },
            ],
        )
    }

    #[test]
    fn an_outcome_makes_its_reply_s_message_then_its_effects_with_stable_ids() {
        let confirmed = confirmed_with_effects();
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
        // A replayed answer makes no message of its own; its effects (its clock's, in a
        // real repeat) make theirs.
        let replayed = Outcome {
            replayed: true,
            ..confirmed
        };
        let kinds = |messages: &[Message]| messages.iter().map(|m| m.kind).collect::<Vec<_>>();
        assert_eq!(kinds(&messages_of(2, &replayed)), kinds(&messages[1..]));
    }

    /// Every message an outcome makes, kept apart from it, renders the outcome's bytes;
    /// a source that made none keeps nothing.
    #[test]
    fn a_kept_message_renders_its_outcome_s_bytes() {
        let confirmed = confirmed_with_effects();
        let sources = made_of(&confirmed)
            .map(|(source, _)| source)
            .collect::<Vec<_>>();
        assert_eq!(sources.len(), 3);
        for source in sources {
            let kept = KeptMessage::of(&confirmed, source).expect("it made a message");
            assert_eq!(Some(kept.body()), message_body(&confirmed, source));
        }
        let replayed = Outcome {
            replayed: true,
            ..confirmed.clone()
        };
        assert_eq!(KeptMessage::of(&replayed, MessageSource::Reply), None);
        assert_eq!(KeptMessage::of(&confirmed, MessageSource::Effect(2)), None);
        assert_eq!(KeptMessage::of(&confirmed, MessageSource::Effect(3)), None);
        let ticked = outcome(42, Ok(Reply::Ticked), Vec::new());
        assert_eq!(KeptMessage::of(&ticked, MessageSource::Reply), None);
    }

    #[test]
    fn a_rejection_still_carries_its_effects() {
        let refused = outcome(
            5,
            Err(Rejection::HoldExpired),
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

    /// An idempotent repeat answers the first decision again (no message of its reply),
    /// but its log time ran the clock: the expiry that made is told like any other.
    #[test]
    fn a_replayed_outcome_tells_its_clock_s_effects_alone() {
        let repeat = Outcome {
            replayed: true,
            effects_before_reply: 1,
            ..outcome(
                9,
                Ok(Reply::HoldReleased {
                    hold: HoldId(4),
                    event: EventId(0),
                    user: "ana".into(),
                    items: Items::Seats(vec![2].into()),
                }),
                vec![Effect::HoldExpired {
                    hold: HoldId(1),
                    event: EventId(0),
                    user: "bo".into(),
                    items: Items::Seats(vec![1].into()),
                    waiter: None,
                }],
            )
        };
        let messages = messages_of(0, &repeat);
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].kind, WebhookEventType::HoldExpired);
        assert_eq!(body(&messages[0])["data"]["hold_id"], "h_1");
        let told = user_messages_of(&repeat, &|_| None);
        assert_eq!(
            told.iter()
                .map(|message| message.user.to_string())
                .collect::<Vec<_>>(),
            ["bo"]
        );
    }

    #[test]
    fn each_user_is_told_their_own_messages_with_the_webhook_s_ids() {
        let ana: UserName = "ana".into();
        let offered = outcome(
            7,
            Ok(Reply::Ticked),
            vec![
                Effect::HoldExpired {
                    hold: HoldId(1),
                    event: EventId(0),
                    user: ana.clone(),
                    items: Items::Seats(vec![1].into()),
                    waiter: None,
                },
                Effect::WaitlistOffered {
                    waiter: WaiterId(2),
                    hold: HoldView {
                        hold: HoldId(3),
                        event: EventId(0),
                        user: "bo".into(),
                        items: Items::Seats(vec![1].into()),
                        created_at_ms: 1,
                        expires_at_ms: 2,
                        waiter: Some(WaiterId(2)),
                    },
                },
            ],
        );
        let nobody = |_: Subject| -> Option<UserName> { None };
        let told = user_messages_of(&offered, &nobody);
        let webhooks = messages_of(0, &offered);
        let pairs: Vec<(&str, String, &[u8])> = told
            .iter()
            .map(|message| {
                (
                    &*message.user,
                    message_id(0, 7, message.index),
                    &message.body[..],
                )
            })
            .collect();
        assert_eq!(
            pairs,
            [
                ("ana", webhooks[0].id.clone(), &webhooks[0].body[..]),
                ("bo", webhooks[1].id.clone(), &webhooks[1].body[..]),
            ]
        );
    }

    #[test]
    fn an_event_cancel_tells_each_user_only_their_own_holds_bookings_and_entries() {
        let canceled = outcome(
            9,
            Ok(Reply::EventCanceled {
                event: EventId(4),
                released_holds: vec![HoldId(1), HoldId(2)],
                canceled_bookings: vec![BookingId(3), BookingId(5)],
                ended_waiters: vec![WaiterId(6)],
            }),
            Vec::new(),
        );
        let whose = |subject: Subject| -> Option<UserName> {
            match subject {
                Subject::Hold(HoldId(1)) | Subject::Booking(BookingId(5)) => Some("ana".into()),
                Subject::Hold(HoldId(2)) | Subject::Waiter(WaiterId(6)) => Some("bo".into()),
                // Forgotten by the reader: left out.
                _ => None,
            }
        };
        let told = user_messages_of(&canceled, &whose);
        let bodies: Vec<(&str, u32, Value)> = told
            .iter()
            .map(|message| {
                (
                    &*message.user,
                    message.index,
                    serde_json::from_slice(&message.body).unwrap(),
                )
            })
            .collect();
        let expected = |holds: &[&str], bookings: &[&str], waiters: &[&str]| {
            json!({"type": "event.canceled", "timestamp": "2023-11-14T22:13:20.123Z", "data": {
                "event_id": "ev_4", "released_hold_ids": holds,
                "canceled_booking_ids": bookings, "ended_waitlist_ids": waiters}})
        };
        assert_eq!(
            bodies,
            [
                ("ana", 0, expected(&["h_1"], &["b_5"], &[])),
                ("bo", 0, expected(&["h_2"], &[], &["w_6"])),
            ]
        );
        // A check-in goes to its booking's user; one the reader does not know, to nobody.
        let checked_in = outcome(
            10,
            Ok(Reply::CheckedIn {
                event: EventId(4),
                ticket: engine_ticket(BookingId(5)),
            }),
            Vec::new(),
        );
        let told = user_messages_of(&checked_in, &whose);
        assert_eq!(told.len(), 1);
        assert_eq!(&*told[0].user, "ana");
        let unknown = outcome(
            11,
            Ok(Reply::CheckedIn {
                event: EventId(4),
                ticket: engine_ticket(BookingId(3)),
            }),
            Vec::new(),
        );
        assert!(user_messages_of(&unknown, &whose).is_empty());
    }

    fn engine_ticket(booking: BookingId) -> crate::TicketId {
        crate::TicketId { booking, index: 1 }
    }
}
