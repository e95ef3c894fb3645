//! Identifiers. Inside the engine everything is a dense integer; the string forms
//! (`ev_12`, `h_7`, ...) exist only at the edges and are parsed/printed here so every
//! crate agrees on them.
//!
//! Ids say their shard. An engine running shard `k` of `n` ([`ShardPlace`]) gives out
//! only ids congruent to `k` modulo `n`: the `i`-th object of a kind (its table index,
//! or its sequence number from 1) gets id `i * n + k`. So any crate routes an id without
//! asking anyone ([`shard_of`], `EventId::shard`, ...), ids are unique across shards,
//! and with one shard (`k = 0`, `n = 1`) every id is what it always was.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $inner:ty, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub $inner);

        impl $name {
            /// The prefix of the string form.
            pub const PREFIX: &'static str = $prefix;

            /// Parses the string form (`<prefix><number>`); `None` for anything else.
            pub fn parse(text: &str) -> Option<Self> {
                let digits = text.strip_prefix($prefix)?;
                if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                // A leading zero would give two spellings of one id.
                if digits.len() > 1 && digits.starts_with('0') {
                    return None;
                }
                digits.parse::<$inner>().ok().map($name)
            }
        }

        impl From<$name> for u64 {
            fn from(id: $name) -> u64 {
                u64::from(id.0)
            }
        }

        impl $name {
            /// The shard (of `count`) that gave out this id: see [`shard_of`].
            pub fn shard(self, count: u32) -> u32 {
                shard_of(u64::from(self.0), count)
            }
        }

        impl $name {
            /// The string form (`<prefix><number>`), on the stack.
            pub fn text(self) -> IdText {
                let mut text = IdText::default();
                text.push($prefix);
                text.push_number(u64::from(self.0));
                text
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.text())
            }
        }

        impl From<$name> for IdText {
            fn from(id: $name) -> IdText {
                id.text()
            }
        }
    };
}

id_type!(
    /// An event: its row in its shard's event table, as a global id (see [`ShardPlace`]).
    EventId, u32, "ev_"
);
id_type!(
    /// A hold; ids are never reused.
    HoldId, u64, "h_"
);
id_type!(
    /// A booking (a confirmed hold); ids are never reused.
    BookingId, u64, "b_"
);
id_type!(
    /// A waitlist entry; ids are never reused and their order is the FCFS order.
    WaiterId, u64, "w_"
);
id_type!(
    /// A service desk: its row in its shard's desk table, as a global id.
    DeskId, u32, "desk_"
);
id_type!(
    /// A service-desk ticket; ids are never reused.
    DeskTicketId, u64, "dt_"
);

/// A ticket inside a booking: `t_<booking>_<index>`, index from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TicketId {
    pub booking: BookingId,
    pub index: u32,
}

impl TicketId {
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix("t_")?;
        let (booking, index) = rest.split_once('_')?;
        let booking = BookingId::parse(&format!("b_{booking}"))?;
        let index = u32::try_from(BookingId::parse(&format!("b_{index}"))?.0).ok()?;
        if index == 0 {
            return None;
        }
        Some(TicketId { booking, index })
    }
}

impl TicketId {
    /// The shard (of `count`) of the booking the ticket is part of.
    pub fn shard(self, count: u32) -> u32 {
        self.booking.shard(count)
    }
}

impl TicketId {
    /// `t_<booking>_<index>`, on the stack.
    pub fn text(self) -> IdText {
        let mut text = IdText::default();
        text.push("t_");
        text.push_number(self.booking.0);
        text.push("_");
        text.push_number(u64::from(self.index));
        text
    }
}

impl fmt::Display for TicketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

impl From<TicketId> for IdText {
    fn from(id: TicketId) -> IdText {
        id.text()
    }
}

/// An id's string form written on the stack (`h_7`, `t_3_1`, a ticket code): what its
/// `Display` shows, made without `core::fmt`. Perf: a booking's answer shows half a dozen
/// ids and a code a ticket, and each went through `fmt::write` (serde's `collect_str`,
/// and a `write!` nested in a code's), about 2.5% of the HTTP thread under hold +
/// confirm (BENCHMARKS.md, "Session 61"); answers and message bodies now write
/// [`IdText`]s with one `serialize_str` each.
#[derive(Clone, Copy)]
pub struct IdText {
    len: u8,
    bytes: [u8; IdText::CAPACITY],
}

impl IdText {
    /// The longest text: a ticket code, `t_` + a `u64`'s 20 digits + `_` + a `u32`'s 10
    /// + `.` + 16 hex digits = 50.
    pub const CAPACITY: usize = 56;

    /// Appends ASCII `text`. Panics past [`IdText::CAPACITY`]: every id's longest text
    /// fits, so that would be a bug.
    pub(crate) fn push(&mut self, text: &str) {
        assert!(text.is_ascii());
        let start = usize::from(self.len);
        let end = start + text.len();
        self.bytes[start..end].copy_from_slice(text.as_bytes());
        self.len = u8::try_from(end).expect("CAPACITY < 256");
    }

    pub(crate) fn push_number(&mut self, number: u64) {
        self.push(itoa::Buffer::new().format(number));
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).expect("pushed as ASCII")
    }
}

impl Default for IdText {
    fn default() -> IdText {
        IdText {
            len: 0,
            bytes: [0; IdText::CAPACITY],
        }
    }
}

impl std::ops::Deref for IdText {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for IdText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The most shards a deployment may have (`shards` in the configuration).
pub const SHARDS_MAX: u32 = 256;

/// The shard of `count` whose engine gave out the id `raw_id` (the number inside any
/// id): `raw_id mod count`. The one routing rule every crate uses.
pub fn shard_of(raw_id: u64, count: u32) -> u32 {
    assert!(count >= 1, "a deployment has at least one shard");
    (raw_id % u64::from(count)) as u32
}

/// Which shard an engine runs: `index` of `count`. It decides the ids the engine gives
/// out (`local * count + index`) and which ids it knows: an id of another shard is
/// "not found", like any unknown id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShardPlace {
    pub index: u32,
    pub count: u32,
}

impl Default for ShardPlace {
    fn default() -> Self {
        ShardPlace { index: 0, count: 1 }
    }
}

impl ShardPlace {
    /// The id of this shard's `local`-th object of a kind (a table index, or a sequence
    /// number). Ids past `u64` would take longer than the universe has to be given out:
    /// reaching one is a bug.
    #[inline]
    pub fn global(self, local: u64) -> u64 {
        // Perf: the single-shard path is the identity, with no multiplication.
        if self.count == 1 {
            return local;
        }
        local
            .checked_mul(u64::from(self.count))
            .and_then(|id| id.checked_add(u64::from(self.index)))
            .expect("ids fit a u64")
    }

    /// The local number of `id` (its table index or sequence number), or `None` when the
    /// id is another shard's.
    #[inline]
    pub fn local(self, id: u64) -> Option<u64> {
        // Perf: the single-shard path is the identity, with no division.
        if self.count == 1 {
            return Some(id);
        }
        let count = u64::from(self.count);
        (id % count == u64::from(self.index)).then_some(id / count)
    }

    /// Whether this shard gave out (or would give out) `id`.
    pub fn owns(self, id: u64) -> bool {
        shard_of(id, self.count) == self.index
    }

    /// Events and desks are table rows: the `index`-th row's id.
    pub(crate) fn event_id(self, index: usize) -> EventId {
        EventId(u32::try_from(self.global(index as u64)).expect("events_max * shards fits a u32"))
    }

    /// The row of this shard's event `id` in the event table (it may be past the
    /// table's end: the caller's `get` says "not found" then).
    #[inline]
    pub(crate) fn event_index(self, id: EventId) -> Option<usize> {
        self.local(u64::from(id.0)).map(|index| index as usize)
    }

    pub(crate) fn desk_id(self, index: usize) -> DeskId {
        DeskId(u32::try_from(self.global(index as u64)).expect("desks_max * shards fits a u32"))
    }

    #[inline]
    pub(crate) fn desk_index(self, id: DeskId) -> Option<usize> {
        self.local(u64::from(id.0)).map(|index| index as usize)
    }

    /// Bookings are table rows numbered from 1: the `index`-th row's id.
    pub(crate) fn booking_id(self, index: usize) -> BookingId {
        BookingId(self.global(index as u64 + 1))
    }

    /// The row of this shard's booking `id` (booking numbers start at 1, so number 0
    /// names no row).
    #[inline]
    pub(crate) fn booking_index(self, id: BookingId) -> Option<usize> {
        self.local(id.0)?.checked_sub(1).map(|index| index as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_garbage() {
        assert_eq!(EventId::parse("ev_12"), Some(EventId(12)));
        assert_eq!(EventId(12).to_string(), "ev_12");
        for bad in [
            "",
            "ev_",
            "ev_x",
            "ev_012",
            "h_1",
            "ev_99999999999",
            "ev_-1",
            "ev_1 ",
        ] {
            assert_eq!(EventId::parse(bad), None, "{bad:?}");
        }
        let ticket = TicketId {
            booking: BookingId(5),
            index: 2,
        };
        assert_eq!(ticket.to_string(), "t_5_2");
        assert_eq!(TicketId::parse("t_5_2"), Some(ticket));
        assert_eq!(TicketId::parse("t_5_0"), None);
        assert_eq!(TicketId::parse("t_5"), None);
    }

    /// The text written on the stack is the text `format!` writes, up to the longest.
    #[test]
    fn ids_written_on_the_stack_read_as_formatted() {
        for number in [0, 1, 9, 10, 42, u64::from(u32::MAX), u64::MAX] {
            let narrow = u32::try_from(number).unwrap_or(u32::MAX);
            for (text, expected) in [
                (HoldId(number).text(), format!("h_{number}")),
                (BookingId(number).text(), format!("b_{number}")),
                (WaiterId(number).text(), format!("w_{number}")),
                (DeskTicketId(number).text(), format!("dt_{number}")),
                (EventId(narrow).text(), format!("ev_{narrow}")),
                (DeskId(narrow).text(), format!("desk_{narrow}")),
                (
                    TicketId {
                        booking: BookingId(number),
                        index: narrow,
                    }
                    .text(),
                    format!("t_{number}_{narrow}"),
                ),
            ] {
                assert_eq!(text.as_str(), expected);
                assert_eq!(&*text, expected.as_str());
            }
        }
        assert_eq!(HoldId(7).to_string(), "h_7");
        assert_eq!(format!("{:?}", HoldId(7).text()), "\"h_7\"");
    }

    #[test]
    fn ids_say_their_shard() {
        let single = ShardPlace::default();
        for local in [0, 1, 7, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(single.global(local), local, "one shard: ids are unchanged");
            assert_eq!(single.local(local), Some(local));
        }
        let place = ShardPlace { index: 2, count: 3 };
        assert_eq!(
            (0..4).map(|local| place.global(local)).collect::<Vec<_>>(),
            [2, 5, 8, 11]
        );
        for local in 0..100 {
            let id = place.global(local);
            assert_eq!(place.local(id), Some(local));
            assert_eq!(shard_of(id, 3), 2);
            assert!(place.owns(id));
            for other in [id + 1, id + 2] {
                assert_eq!(place.local(other), None, "{other} is another shard's");
                assert!(!place.owns(other));
            }
        }
        assert_eq!(place.event_id(4), EventId(14));
        assert_eq!(place.event_index(EventId(14)), Some(4));
        assert_eq!(place.event_index(EventId(13)), None);
        assert_eq!(place.desk_id(0), DeskId(2));
        assert_eq!(place.desk_index(DeskId(3)), None);
        // Bookings count from 1: the first row is b_5 on shard 2 of 3, and b_2 (number 0)
        // names no row.
        assert_eq!(place.booking_id(0), BookingId(5));
        assert_eq!(place.booking_index(BookingId(5)), Some(0));
        assert_eq!(place.booking_index(BookingId(2)), None);
        assert_eq!(single.booking_index(BookingId(0)), None);
        assert_eq!(EventId(14).shard(3), 2);
        assert_eq!(HoldId(9).shard(4), 1);
        assert_eq!(BookingId(9).shard(1), 0);
        assert_eq!(WaiterId(10).shard(4), 2);
        assert_eq!(DeskId(3).shard(2), 1);
        assert_eq!(DeskTicketId(255).shard(256), 255);
        let ticket = TicketId {
            booking: BookingId(11),
            index: 2,
        };
        assert_eq!(ticket.shard(3), 2, "a ticket lives where its booking does");
    }
}
