//! The worker's own store (RocksDB, `<data_dir>/effects`): where it is in each shard's
//! outcomes log, which tenant owns each event and desk, every endpoint's backlog and its
//! delivery log. An outcome's messages, the owners it creates and the shard's new position
//! are written in one atomic batch, so a crash (kill -9) either routed an outcome wholly
//! or not at all, and a restart resumes after what was routed: nothing lost, nothing
//! routed twice. Deliveries are at least once: an attempt whose answer came but was not
//! recorded yet is sent again, with the same message id.
//!
//! Keys (one column family, by prefix): `p<shard>` position; `o<owner>` tenant;
//! `h<endpoint>` the oldest undelivered sequence number, `t<endpoint>` the next one;
//! `m<endpoint>\0<seq>` a message with its attempts. Messages before the head are the
//! delivery log, the newest [`HISTORY_KEPT`] kept. `b<booking>` a booking's payment
//! (`refunds`: what to give back when it is canceled; forgotten once it was canceled, when
//! no refund can be due for it any more). `e<event>` an event's terms of sale, for an event
//! created with them (`refunds`: its currency and cancellation refund).

use crate::messages::Owner;
use rocksdb::{Direction, IteratorMode, WriteBatch, DB};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

/// Delivered messages kept per endpoint for its delivery log and re-sends.
pub const HISTORY_KEPT: u64 = 1_000;
/// Attempts kept per message (the newest; the count is kept whole).
pub const ATTEMPTS_KEPT: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("effects store: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("effects store: undecodable {what}: {detail}")]
    Undecodable { what: &'static str, detail: String },
}

/// Where a shard's outcomes have been routed up to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The outcomes log record after the one that completed the last routed outcome.
    pub record: u64,
    /// The last routed outcome's request offset (a re-published outcome is not routed twice).
    pub offset: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// Wall-clock milliseconds since the epoch.
    pub at_ms: u64,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    pub id: String,
    pub kind: String,
    pub time_ms: u64,
    pub body: Vec<u8>,
    pub attempts: Vec<Attempt>,
    pub attempts_total: u32,
    pub delivered: bool,
}

/// A message to route to `endpoint`.
pub struct Routed<'a> {
    pub endpoint: &'a str,
    pub message: StoredMessage,
}

#[derive(Clone, Copy, Debug, Default)]
struct Lane {
    head: u64,
    tail: u64,
}

pub struct Store {
    db: DB,
    /// Every endpoint's head and tail: the only writer of tails is under this lock.
    lanes: Mutex<BTreeMap<String, Lane>>,
}

fn bincode_config() -> bincode::config::Configuration {
    bincode::config::standard()
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode_config()).expect("encoding into a Vec")
}

fn decode<T: for<'de> Deserialize<'de>>(what: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    bincode::serde::decode_from_slice(bytes, bincode_config())
        .map(|(value, _)| value)
        .map_err(|error| StoreError::Undecodable {
            what,
            detail: error.to_string(),
        })
}

/// A booking paid through the gateway (`refunds`): kept so a cancellation, which names
/// only the booking, can be refunded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingPayment {
    pub hold: u64,
    pub payment_id: String,
    pub amount_cents: u64,
}

fn booking_key(booking: u64) -> Vec<u8> {
    [&b"b"[..], &booking.to_be_bytes()].concat()
}

fn terms_key(event: engine::EventId) -> Vec<u8> {
    [&b"e"[..], &event.0.to_be_bytes()].concat()
}

fn position_key(shard: u32) -> Vec<u8> {
    [&b"p"[..], &shard.to_be_bytes()].concat()
}

/// `o`, the owner's kind (`e` event, `d` desk), its id big-endian.
fn owner_key(owner: Owner) -> Vec<u8> {
    let (tag, id) = match owner {
        Owner::Event(event) => (b'e', event.0),
        Owner::Desk(desk) => (b'd', desk.0),
    };
    [&[b'o', tag][..], &id.to_be_bytes()].concat()
}

fn lane_key(tag: u8, endpoint: &str) -> Vec<u8> {
    [&[tag][..], endpoint.as_bytes()].concat()
}

fn message_prefix(endpoint: &str) -> Vec<u8> {
    [&b"m"[..], endpoint.as_bytes(), &[0]].concat()
}

fn message_key(endpoint: &str, seq: u64) -> Vec<u8> {
    [message_prefix(endpoint), seq.to_be_bytes().to_vec()].concat()
}

fn u64_of(bytes: &[u8]) -> u64 {
    u64::from_be_bytes(bytes.try_into().unwrap_or([0; 8]))
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        let db = DB::open(&options, path)?;
        let mut lanes: BTreeMap<String, Lane> = BTreeMap::new();
        for tag in [b'h', b't'] {
            for item in db.iterator(IteratorMode::From(&[tag], Direction::Forward)) {
                let (key, value) = item?;
                if key.first() != Some(&tag) {
                    break;
                }
                let endpoint = String::from_utf8_lossy(&key[1..]).into_owned();
                let lane = lanes.entry(endpoint).or_default();
                match tag {
                    b'h' => lane.head = u64_of(&value),
                    _ => lane.tail = u64_of(&value),
                }
            }
        }
        Ok(Store {
            db,
            lanes: Mutex::new(lanes),
        })
    }

    fn lanes(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Lane>> {
        self.lanes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn position(&self, shard: u32) -> Result<Position, StoreError> {
        match self.db.get(position_key(shard))? {
            Some(bytes) => decode("position", &bytes),
            None => Ok(Position::default()),
        }
    }

    /// Records bookings' payments (idempotent: the same booking, the same value).
    pub fn remember_booking_payments(
        &self,
        payments: &[(u64, BookingPayment)],
    ) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for (booking, payment) in payments {
            batch.put(booking_key(*booking), encode(payment));
        }
        Ok(self.db.write(batch)?)
    }

    /// Forgets canceled bookings' payments (their refunds, if due, are in the control log).
    pub fn forget_booking_payments(&self, bookings: &[u64]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for booking in bookings {
            batch.delete(booking_key(*booking));
        }
        Ok(self.db.write(batch)?)
    }

    /// Records events' terms of sale (idempotent).
    pub fn remember_event_terms(
        &self,
        terms: &[(engine::EventId, engine::EventTerms)],
    ) -> Result<(), StoreError> {
        if terms.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        for (event, terms) in terms {
            batch.put(terms_key(*event), encode(terms));
        }
        Ok(self.db.write(batch)?)
    }

    /// An event's terms, if it was created with them.
    pub fn event_terms(
        &self,
        event: engine::EventId,
    ) -> Result<Option<engine::EventTerms>, StoreError> {
        self.db
            .get(terms_key(event))?
            .map(|bytes| decode("event terms", &bytes))
            .transpose()
    }

    pub fn booking_payment(&self, booking: u64) -> Result<Option<BookingPayment>, StoreError> {
        self.db
            .get(booking_key(booking))?
            .map(|bytes| decode("booking payment", &bytes))
            .transpose()
    }

    pub fn owner(&self, owner: Owner) -> Result<Option<String>, StoreError> {
        self.db
            .get(owner_key(owner))?
            .map(|bytes| decode("owner", &bytes))
            .transpose()
    }

    /// Every endpoint with messages waiting, and how many.
    pub fn waiting(&self) -> BTreeMap<String, u64> {
        self.lanes()
            .iter()
            .filter(|(_, lane)| lane.tail > lane.head)
            .map(|(endpoint, lane)| (endpoint.clone(), lane.tail - lane.head))
            .collect()
    }

    /// Routes one batch of outcomes of `shard` atomically: their owners, their messages
    /// (appended to each endpoint's backlog, unless it holds `backlog_max` already: those
    /// are dropped and counted in the answer), and the shard's new position. Answers the
    /// messages queued per endpoint and the number dropped.
    pub fn route(
        &self,
        shard: u32,
        position: Position,
        owners: &[(Owner, String)],
        routed: Vec<Routed<'_>>,
        backlog_max: u64,
    ) -> Result<(BTreeMap<String, u64>, u64), StoreError> {
        let mut lanes = self.lanes();
        let mut batch = WriteBatch::default();
        for (owner, tenant) in owners {
            batch.put(owner_key(*owner), encode(tenant));
        }
        let mut tails: BTreeMap<&str, Lane> = BTreeMap::new();
        let mut queued: BTreeMap<String, u64> = BTreeMap::new();
        let mut dropped = 0;
        for Routed { endpoint, message } in routed {
            let lane = tails
                .entry(endpoint)
                .or_insert_with(|| lanes.get(endpoint).copied().unwrap_or_default());
            if lane.tail - lane.head >= backlog_max {
                dropped += 1;
                continue;
            }
            batch.put(message_key(endpoint, lane.tail), encode(&message));
            lane.tail += 1;
            *queued.entry(endpoint.to_string()).or_default() += 1;
        }
        for (endpoint, lane) in &tails {
            batch.put(lane_key(b't', endpoint), lane.tail.to_be_bytes());
        }
        batch.put(position_key(shard), encode(&position));
        self.db.write(batch)?;
        for (endpoint, lane) in tails {
            lanes.insert(endpoint.to_string(), lane);
        }
        Ok((queued, dropped))
    }

    /// The endpoint's oldest undelivered message and its sequence number.
    pub fn head(&self, endpoint: &str) -> Result<Option<(u64, StoredMessage)>, StoreError> {
        let Some(lane) = self.lanes().get(endpoint).copied() else {
            return Ok(None);
        };
        if lane.head >= lane.tail {
            return Ok(None);
        }
        match self.db.get(message_key(endpoint, lane.head))? {
            Some(bytes) => Ok(Some((lane.head, decode("message", &bytes)?))),
            None => Ok(None),
        }
    }

    /// Records an attempt of message `seq` (the head); delivered, the head moves on and
    /// the oldest delivered message beyond [`HISTORY_KEPT`] is forgotten.
    pub fn record_attempt(
        &self,
        endpoint: &str,
        seq: u64,
        mut message: StoredMessage,
        attempt: Attempt,
        delivered: bool,
    ) -> Result<(), StoreError> {
        let mut lanes = self.lanes();
        let lane = lanes.entry(endpoint.to_string()).or_default();
        assert_eq!(
            lane.head, seq,
            "{endpoint}: an attempt of a message that is not the head"
        );
        message.attempts.push(attempt);
        if message.attempts.len() > ATTEMPTS_KEPT {
            message.attempts.remove(0);
        }
        message.attempts_total = message.attempts_total.saturating_add(1);
        message.delivered = delivered;
        let mut batch = WriteBatch::default();
        batch.put(message_key(endpoint, seq), encode(&message));
        if delivered {
            batch.put(lane_key(b'h', endpoint), (seq + 1).to_be_bytes());
            if let Some(forgotten) = (seq + 1).checked_sub(HISTORY_KEPT + 1) {
                batch.delete(message_key(endpoint, forgotten));
            }
        }
        self.db.write(batch)?;
        if delivered {
            lane.head = seq + 1;
        }
        Ok(())
    }

    /// The endpoint's newest messages (waiting and delivered), newest first.
    pub fn messages(&self, endpoint: &str, limit: usize) -> Result<Vec<StoredMessage>, StoreError> {
        let prefix = message_prefix(endpoint);
        let mut end = prefix.clone();
        end.extend_from_slice(&u64::MAX.to_be_bytes());
        let mut found = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(&end, Direction::Reverse))
        {
            let (key, value) = item?;
            if !key.starts_with(&prefix) || found.len() >= limit {
                break;
            }
            found.push(decode("message", &value)?);
        }
        Ok(found)
    }

    /// Queues message `message_id` of `endpoint` again, at the end of its backlog, with no
    /// attempts. False when the endpoint's kept messages do not hold it.
    pub fn resend(&self, endpoint: &str, message_id: &str) -> Result<bool, StoreError> {
        let Some(mut message) = self
            .messages(endpoint, (HISTORY_KEPT as usize).saturating_mul(2))?
            .into_iter()
            .find(|message| message.id == message_id)
        else {
            return Ok(false);
        };
        message.attempts.clear();
        message.attempts_total = 0;
        message.delivered = false;
        let mut lanes = self.lanes();
        let lane = lanes.entry(endpoint.to_string()).or_default();
        let mut batch = WriteBatch::default();
        batch.put(message_key(endpoint, lane.tail), encode(&message));
        batch.put(lane_key(b't', endpoint), (lane.tail + 1).to_be_bytes());
        self.db.write(batch)?;
        lane.tail += 1;
        Ok(true)
    }

    /// Forgets a deleted endpoint: its backlog and delivery log.
    pub fn remove_endpoint(&self, endpoint: &str) -> Result<(), StoreError> {
        let mut lanes = self.lanes();
        let prefix = message_prefix(endpoint);
        let mut end = prefix.clone();
        end.extend_from_slice(&[0xff; 9]);
        let mut batch = WriteBatch::default();
        batch.delete_range(prefix, end);
        batch.delete(lane_key(b'h', endpoint));
        batch.delete(lane_key(b't', endpoint));
        self.db.write(batch)?;
        lanes.remove(endpoint);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::EventId;

    fn message(id: &str) -> StoredMessage {
        StoredMessage {
            id: id.into(),
            kind: "hold.expired".into(),
            time_ms: 1,
            body: b"{}".to_vec(),
            attempts: Vec::new(),
            attempts_total: 0,
            delivered: false,
        }
    }

    fn attempt(status_code: u16) -> Attempt {
        Attempt {
            at_ms: 5,
            status_code: Some(status_code),
            error: None,
            latency_ms: 1,
        }
    }

    #[test]
    fn routing_is_durable_ordered_bounded_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            assert_eq!(store.position(0).unwrap(), Position::default());
            let owners = [(Owner::Event(EventId(1)), "acme".to_string())];
            let routed = ["msg_0_1_0", "msg_0_2_0", "msg_0_3_0"]
                .into_iter()
                .map(|id| Routed {
                    endpoint: "wh_a",
                    message: message(id),
                })
                .collect();
            let position = Position {
                record: 4,
                offset: Some(3),
            };
            let (queued, dropped) = store.route(0, position, &owners, routed, 2).unwrap();
            assert_eq!((queued["wh_a"], dropped), (2, 1), "the backlog holds 2");
            assert_eq!(store.position(0).unwrap(), position);
            assert_eq!(
                store.owner(Owner::Event(EventId(1))).unwrap().as_deref(),
                Some("acme")
            );
            let (seq, head) = store.head("wh_a").unwrap().unwrap();
            assert_eq!((seq, head.id.as_str()), (0, "msg_0_1_0"));
            store
                .record_attempt("wh_a", 0, head.clone(), attempt(500), false)
                .unwrap();
            let (seq, again) = store.head("wh_a").unwrap().unwrap();
            assert_eq!(
                (seq, again.attempts_total),
                (0, 1),
                "a failure keeps the head"
            );
            store
                .record_attempt("wh_a", 0, again, attempt(204), true)
                .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.waiting()["wh_a"], 1);
        let (seq, head) = store.head("wh_a").unwrap().unwrap();
        assert_eq!((seq, head.id.as_str()), (1, "msg_0_2_0"));
        let log = store.messages("wh_a", 10).unwrap();
        let ids: Vec<&str> = log.iter().map(|message| message.id.as_str()).collect();
        assert_eq!(ids, ["msg_0_2_0", "msg_0_1_0"]);
        assert_eq!(
            log[1]
                .attempts
                .iter()
                .map(|a| a.status_code)
                .collect::<Vec<_>>(),
            [Some(500), Some(204)]
        );
        assert!(store.resend("wh_a", "msg_0_1_0").unwrap());
        assert!(!store.resend("wh_a", "msg_9_9_9").unwrap());
        assert_eq!(store.waiting()["wh_a"], 2);
        store.remove_endpoint("wh_a").unwrap();
        assert!(store.messages("wh_a", 10).unwrap().is_empty());
        assert!(store.waiting().is_empty());
    }
}
