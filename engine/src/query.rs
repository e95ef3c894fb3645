//! Read-only views of the engine's state. The HTTP read side keeps its own model from
//! outcomes; these exist for tests, tools and invariant checks.

use crate::engine::Engine;
use crate::ids::{EventId, HoldId};
use crate::outcome::Items;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeatStatus {
    Free,
    Held,
    Booked,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryAvailability {
    pub category: String,
    pub price_cents: u64,
    pub capacity: u64,
    pub free: u64,
    pub held: u64,
    pub booked: u64,
}

impl Engine {
    pub fn event_count(&self) -> u32 {
        self.state.events.len() as u32
    }

    /// The ids of this engine's events, in creation order (with one shard, `ev_0`,
    /// `ev_1`, ...; with several, this shard's ids: see `ids`).
    pub fn event_ids(&self) -> impl Iterator<Item = EventId> + '_ {
        (0..self.state.events.len()).map(|index| self.event_id_at(index))
    }

    pub fn seat_count(&self, event: EventId) -> Option<u32> {
        self.event_index(event)
            .map(|index| self.state.events[index].layout.seat_count)
    }

    pub fn seat_status(&self, event: EventId, seat: u32) -> Option<SeatStatus> {
        let ledger = &self.state.events[self.event_index(event)?].ledger;
        if seat as usize >= ledger.seat_count() {
            return None;
        }
        Some(match ledger.kind(seat) {
            crate::ledger::SeatKind::Free => SeatStatus::Free,
            crate::ledger::SeatKind::Held => SeatStatus::Held,
            crate::ledger::SeatKind::Booked => SeatStatus::Booked,
        })
    }

    /// An event's seat accounting, as a read model that follows the outcomes keeps it too.
    pub fn seat_ledger(&self, event: EventId) -> Option<&crate::ledger::SeatLedger> {
        Some(&self.state.events[self.event_index(event)?].ledger)
    }

    /// An event's waitlist queues, as a read model that follows the outcomes keeps them too.
    pub fn wait_queues(&self, event: EventId) -> Option<&crate::ledger::WaitQueues> {
        Some(&self.state.events[self.event_index(event)?].waitlist)
    }

    pub fn seat_label(&self, event: EventId, seat: u32) -> Option<String> {
        let event = &self.state.events[self.event_index(event)?];
        (seat < event.layout.seat_count).then(|| event.layout.label_of(seat))
    }

    pub fn availability(&self, event: EventId) -> Option<Vec<CategoryAvailability>> {
        let event = &self.state.events[self.event_index(event)?];
        Some(
            event
                .ledger
                .categories
                .iter()
                .map(|category| CategoryAvailability {
                    category: category.name.clone(),
                    price_cents: category.price_cents,
                    capacity: category.capacity,
                    free: category.capacity - category.held - category.booked,
                    held: category.held,
                    booked: category.booked,
                })
                .collect(),
        )
    }

    pub fn hold_items(&self, hold: HoldId) -> Option<&Items> {
        self.state.holds.get(&hold).map(|hold| &hold.items)
    }

    pub fn live_hold_count(&self) -> usize {
        self.state.holds.len()
    }

    pub fn waiting_count(&self) -> usize {
        self.state.waiters.len()
    }

    pub fn booking_count(&self) -> usize {
        self.state.bookings.len()
    }

    /// Bytes of per-seat state across all events (the compact-layout budget).
    pub fn seat_state_bytes(&self) -> usize {
        self.state
            .events
            .iter()
            .map(|event| event.ledger.seat_state_bytes())
            .sum()
    }

    /// Who holds each seat (free, held by hold h, booked by booking b), every category's
    /// counters and every pool's, as one digest: the seat state in terms of the public
    /// model, independent of how the engine stores it. Two engines that took the same
    /// decisions have the same seat digest whatever their representation (the state hash,
    /// a digest of the encoding, changes with the representation).
    pub fn seat_digest(&self) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new();
        for event in &self.state.events {
            for holder in self.seat_holders(event) {
                let (tag, id) = match holder {
                    crate::engine::SeatHolder::Free => (0u8, 0u64),
                    crate::engine::SeatHolder::Held(hold) => (1, hold.0),
                    crate::engine::SeatHolder::Booked(booking) => (2, booking.0),
                };
                hasher.update(&[tag]);
                hasher.update(&id.to_le_bytes());
            }
            for category in &event.ledger.categories {
                for count in [category.capacity, category.held, category.booked] {
                    hasher.update(&count.to_le_bytes());
                }
            }
            for pool in &event.ledger.pools {
                for count in [pool.capacity, pool.held, pool.booked] {
                    hasher.update(&count.to_le_bytes());
                }
            }
        }
        hasher.update(&(self.live_hold_count() as u64).to_le_bytes());
        hasher.update(&(self.booking_count() as u64).to_le_bytes());
        hasher.update(&(self.waiting_count() as u64).to_le_bytes());
        *hasher.finalize().as_bytes()
    }

    pub fn total_seats(&self) -> u64 {
        self.state
            .events
            .iter()
            .map(|event| u64::from(event.layout.seat_count))
            .sum()
    }
}
