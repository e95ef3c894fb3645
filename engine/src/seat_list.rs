//! [`SeatList`]: a hold's or booking's seat indices, inline up to [`SEATS_INLINE`].
//!
//! Perf: nearly every order is a few seats (the standard mix's are 1-4). Inline, a list
//! is copied, not shared: placing a hold makes no allocation for its seats, and the hold,
//! its booking and every outcome that names them copy 24 bytes instead of touching a
//! reference count. A reference count is a locked instruction on the engine thread, which
//! waits for the stores before it (new hold slots, seat tags: often cache misses), and
//! the outcome's copy is dropped on another thread (the publisher's), so the count's line
//! moved between cores twice per hold. A longer list (a large order) is shared, as every
//! list was before.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::Arc;

/// How many seats a list keeps inline: as many as fit beside the length in the 24 bytes
/// a shared list takes anyway.
pub const SEATS_INLINE: usize = 5;

/// A hold's or booking's seat indices: inline when few, shared (a reference count, not a
/// copy per outcome) when more. Encodes exactly like a `Vec<u32>` (a length, then the
/// indices), whichever it is.
#[derive(Clone)]
pub struct SeatList(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, seats: [u32; SEATS_INLINE] },
    Shared(Arc<[u32]>),
}

impl SeatList {
    /// The seats, in the list's order.
    #[inline]
    pub fn as_slice(&self) -> &[u32] {
        match &self.0 {
            Repr::Inline { len, seats } => &seats[..usize::from(*len)],
            Repr::Shared(seats) => seats,
        }
    }
}

impl std::ops::Deref for SeatList {
    type Target = [u32];
    #[inline]
    fn deref(&self) -> &[u32] {
        self.as_slice()
    }
}

impl SeatList {
    /// The `quantity` seats from `start` on (a run in a row, as best available grants
    /// it). Perf: a short run is written inline at once, not collected seat by seat.
    #[inline]
    pub fn run(start: u32, quantity: u32) -> SeatList {
        if quantity as usize > SEATS_INLINE {
            let end = start
                .checked_add(quantity)
                .expect("a run's seats are seat indices");
            // Collected straight into the shared list (one allocation, the length known).
            return (start..end).collect();
        }
        // Branch-free (the places past the run are 0), so the compiler writes the five
        // places at once.
        let seats = std::array::from_fn(|offset| {
            let offset = offset as u32;
            start.wrapping_add(offset) & 0u32.wrapping_sub(u32::from(offset < quantity))
        });
        SeatList(Repr::Inline {
            len: quantity as u8,
            seats,
        })
    }
}

impl From<&[u32]> for SeatList {
    #[inline]
    fn from(seats: &[u32]) -> SeatList {
        if seats.len() <= SEATS_INLINE {
            let mut inline = [0; SEATS_INLINE];
            inline[..seats.len()].copy_from_slice(seats);
            SeatList(Repr::Inline {
                len: seats.len() as u8,
                seats: inline,
            })
        } else {
            SeatList(Repr::Shared(Arc::from(seats)))
        }
    }
}

impl From<Vec<u32>> for SeatList {
    #[inline]
    fn from(seats: Vec<u32>) -> SeatList {
        if seats.len() <= SEATS_INLINE {
            SeatList::from(seats.as_slice())
        } else {
            SeatList(Repr::Shared(Arc::from(seats)))
        }
    }
}

impl FromIterator<u32> for SeatList {
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> SeatList {
        let mut iter = iter.into_iter();
        let mut inline = [0; SEATS_INLINE];
        let mut len = 0;
        for seat in iter.by_ref() {
            if len == SEATS_INLINE {
                // More than fit: the rest goes to a shared list.
                let mut seats = Vec::with_capacity(SEATS_INLINE + 1 + iter.size_hint().0);
                seats.extend_from_slice(&inline);
                seats.push(seat);
                seats.extend(iter);
                return SeatList(Repr::Shared(Arc::from(seats)));
            }
            inline[len] = seat;
            len += 1;
        }
        SeatList(Repr::Inline {
            len: len as u8,
            seats: inline,
        })
    }
}

impl PartialEq for SeatList {
    fn eq(&self, other: &SeatList) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for SeatList {}

impl std::hash::Hash for SeatList {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl std::fmt::Debug for SeatList {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_slice().fmt(formatter)
    }
}

impl Serialize for SeatList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.as_slice().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SeatList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<SeatList, D::Error> {
        Vec::<u32>::deserialize(deserializer).map(SeatList::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length from empty to past the inline places: the same seats, the same
    /// bytes as a `Vec<u32>` (the wire and the snapshots did not change), and back.
    #[test]
    fn a_list_holds_its_seats_and_encodes_like_a_vec_inline_or_shared() {
        for len in 0..=(SEATS_INLINE as u32 + 3) {
            let seats: Vec<u32> = (0..len).map(|seat| seat * 7 + 1).collect();
            let lists = [
                SeatList::from(seats.clone()),
                SeatList::from(seats.as_slice()),
                seats.iter().copied().collect::<SeatList>(),
            ];
            for list in &lists {
                assert_eq!(list.as_slice(), seats.as_slice());
                assert_eq!(
                    matches!(list.0, Repr::Inline { .. }),
                    len as usize <= SEATS_INLINE
                );
                let config = bincode::config::standard();
                let bytes = bincode::serde::encode_to_vec(list, config).expect("encodes");
                assert_eq!(
                    bytes,
                    bincode::serde::encode_to_vec(&seats, config).expect("encodes")
                );
                let (back, _): (SeatList, usize) =
                    bincode::serde::decode_from_slice(&bytes, config).expect("decodes");
                assert_eq!(&back, list);
                assert_eq!(
                    serde_json::to_string(list).expect("encodes"),
                    serde_json::to_string(&seats).expect("encodes")
                );
            }
            assert!(lists.iter().all(|list| *list == lists[0]));
            for start in [0, 7, 1 << 29, u32::MAX - len] {
                let run = SeatList::run(start, len);
                assert_eq!(run.as_slice(), (start..start + len).collect::<Vec<_>>());
                assert_eq!(
                    matches!(run.0, Repr::Inline { .. }),
                    len as usize <= SEATS_INLINE
                );
            }
        }
    }

    #[test]
    fn a_list_takes_no_more_room_than_a_shared_one() {
        assert_eq!(std::mem::size_of::<SeatList>(), 24);
        assert_eq!(
            std::mem::size_of::<crate::Items>(),
            std::mem::size_of::<SeatList>()
        );
    }
}
