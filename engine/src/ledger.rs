//! Seat accounting, in one place: which seats of an event are free, held or booked, which general-admission places are, and the counts per category, pool and
//! row that follow. The engine changes an event's seats only through a [`SeatLedger`]'s
//! four transitions ([`hold`](SeatLedger::hold), [`release`](SeatLedger::release),
//! [`book`](SeatLedger::book), [`unbook`](SeatLedger::unbook)) and asserts each; the
//! ingress's read model applies the engine's outcomes through the same transitions, in
//! the order the engine made them (`Outcome::effects_before_reply`), and counts a refused
//! one as an anomaly. So there is one implementation of the rules (a seat has one owner;
//! per category free + held + booked = capacity), and a read model that followed every
//! outcome holds a ledger equal to the engine's, hold slots included
//! (`the_read_model_agrees_with_the_engine_on_random_sequences` compares them).
//!
//! A transition checks before it changes anything: a refused one returns a
//! [`LedgerError`] and leaves the ledger as it was. It checks each seat's state (free,
//! held or booked) and that the hold's slot is the hold's; which hold holds a seat is
//! the hold's own record (its seats), which the ledger does not keep again: the engine
//! passes a hold's items from that record, and `Engine::check_invariants` checks, from
//! the live holds, that every held seat is exactly one live hold's.
//!
//! The seats themselves are two bits each (`seat_bits`: free, booked, or neither: held).
//! Perf: the 4-byte seat word per seat they replace (a held seat's word named its hold's
//! slot) was a cache miss on nearly every seat of every hold, release, confirm and
//! cancel (12% of the standard mix, session 38), and 4 of the 4.16 bytes of engine state
//! per seat. A snapshot still encodes the words (`Event`'s encoding derives a held
//! seat's from its hold's slot), so the state's encoding and hash did not change.
//!
//! An event's waitlist queues ([`WaitQueues`]) are kept the same way: the engine and the
//! read model change them only by [`join`](WaitQueues::join) and
//! [`leave`](WaitQueues::leave). (The engine's index of what its waiters need, by queue,
//! `together` and quantity, stays the engine's: the outcomes do not say `together`, and
//! only the engine's decisions read it.)

use crate::command::{order_total_cents, EventSpec};
use crate::ids::{HoldId, WaiterId};
use crate::layout::Layout;
use crate::outcome::Items;
pub(crate) use crate::seat_bits::SeatKind;
use crate::seat_bits::{longest_run, SeatBits, ROW_BITS_MAX};
use crate::snapshot::CowVec;
use serde::{Deserialize, Serialize};

/// A seat as a snapshot encodes it, in 4 bytes: 0 is free; the top two bits say held or
/// booked. A held seat's low 30 bits are its hold's slot in the ledger's `hold_slots`
/// (dense and reused, so they fit however many holds the log has made); a booked seat's
/// are zero (its booking is found from the bookings, which only queries and checks need).
/// The ledger keeps only the kind (`seat_bits`); the slot comes from the hold.
pub(crate) type SeatState = u32;
pub(crate) const SEAT_FREE: SeatState = 0;
pub(crate) const TAG_HELD: SeatState = 1 << 30;
pub(crate) const TAG_BOOKED: SeatState = 2 << 30;
pub(crate) const TAG_MASK: SeatState = 3 << 30;
pub(crate) const OWNER_MASK: SeatState = !TAG_MASK;
#[cfg(test)]
pub(crate) const SEAT_BOOKED: SeatState = TAG_BOOKED;
/// The most seats an event may have: every held seat's hold must have a slot.
pub(crate) const EVENT_SEATS_LIMIT: u32 = OWNER_MASK;

const _: () = assert!(TAG_HELD & OWNER_MASK == 0 && TAG_BOOKED & OWNER_MASK == 0);

/// Hold slots (and free slot numbers) per chunk of an event's slot table.
pub(crate) const HOLD_SLOT_CHUNK: usize = 4096;

/// A seat held by the hold in `slot` of its event's `hold_slots`.
#[inline]
pub(crate) fn held_in(slot: u32) -> SeatState {
    assert!(slot <= OWNER_MASK, "hold slots fit in 30 bits");
    TAG_HELD | slot
}

/// Whether a seat is booked (sold for good, unless the booking is canceled): the
/// seat-by-seat reference `allocate`'s tests compare the bits with.
#[cfg(test)]
pub(crate) fn is_booked(state: SeatState) -> bool {
    state & TAG_MASK == TAG_BOOKED
}

/// A held seat, as the seat-by-seat paths that look at kinds only see it (`SeatKind::state`).
#[cfg(test)]
pub(crate) const SEAT_HELD: SeatState = TAG_HELD;

/// A category's name, price and counts. Read-only outside the engine crate: the counts
/// change only with the ledger's transitions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    pub name: String,
    pub price_cents: u64,
    pub capacity: u64,
    pub held: u64,
    pub booked: u64,
    /// Index into the event's pools when the category is general admission.
    pub pool: Option<u16>,
    pub has_seats: bool,
}

impl Category {
    pub fn free(&self) -> u64 {
        self.capacity - self.held - self.booked
    }
}

/// A general-admission pool's counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    pub category: u16,
    pub capacity: u32,
    pub held: u32,
    pub booked: u32,
}

impl Pool {
    pub fn free(&self) -> u32 {
        self.capacity - self.held - self.booked
    }
}

/// A seat as the ledger has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeatStatus {
    Free,
    /// Held by a live hold (which one: the holds' seats say).
    Held,
    Booked,
}

/// Why a transition was refused (the ledger is unchanged). In the engine this is a bug
/// (asserted); in a read model, an outcome that does not fit the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LedgerError {
    /// A seat the event does not have, or not in the state the transition needs.
    Seat(u32),
    /// A category the event does not have, or one without a pool for places.
    Category(u16),
    /// A pool without that many places in the state the transition needs.
    Places(u16),
    /// A slot that is not the hold's.
    Slot(u32),
}

impl std::fmt::Display for LedgerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LedgerError::Seat(seat) => write!(f, "seat {seat} is not in the state needed"),
            LedgerError::Category(category) => write!(f, "no such category or pool: {category}"),
            LedgerError::Places(category) => {
                write!(f, "the pool of category {category} has too few places")
            }
            LedgerError::Slot(slot) => write!(f, "hold slot {slot} is not the hold's"),
        }
    }
}

/// An event's seat accounting (see the module's documentation). The engine's `Event`
/// encodes its fields (but the derived `bits`) among its own, where they always were.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeatLedger {
    pub(crate) categories: Vec<Category>,
    /// Per row, its free seats.
    pub(crate) row_free: Vec<u32>,
    /// Per row, the longest run of seats that are not booked (free or held): the largest
    /// `together` request the row could ever serve (see `allocate::open_run_in`).
    pub(crate) row_open_run: Vec<u32>,
    pub(crate) pools: Vec<Pool>,
    /// Slot → id of the live hold of seats in it (0: a free slot). An encoded held seat
    /// names its hold's slot, not its id (see `SeatState`). At most one slot per held seat.
    /// Copy-on-write chunks, like the free list, so a snapshot's copy of an event with
    /// a million live holds is a few hundred pointers. Encodes like a `Vec`.
    pub(crate) hold_slots: CowVec<u64, HOLD_SLOT_CHUNK>,
    /// Free slots of `hold_slots`, the last freed reused first (a deterministic order).
    pub(crate) free_hold_slots: CowVec<u32, HOLD_SLOT_CHUNK>,
    /// The seats, two bits each (free, held or booked: `seat_bits`), and per `k` the rows
    /// with `k` free seats (derived from `row_free`, rebuilt on decode).
    pub(crate) bits: SeatBits,
}

/// A ledger alone as it encodes (the ingress's read model keeps one per event): its
/// fields in order, the seats as their interleaved masks (`seat_bits`: two bits a seat).
/// A state encodes an event's ledger among the event's fields instead, the seats as
/// words (see `Event`'s encoding).
#[derive(Serialize)]
struct LedgerEncoding<'a> {
    categories: &'a Vec<Category>,
    seat_count: u32,
    seat_masks: &'a [u64],
    row_free: &'a Vec<u32>,
    row_open_run: &'a Vec<u32>,
    pools: &'a Vec<Pool>,
    hold_slots: &'a CowVec<u64, HOLD_SLOT_CHUNK>,
    free_hold_slots: &'a CowVec<u32, HOLD_SLOT_CHUNK>,
}

/// [`LedgerEncoding`], decoded.
#[derive(Deserialize)]
struct LedgerDecoding {
    categories: Vec<Category>,
    seat_count: u32,
    seat_masks: Vec<u64>,
    row_free: Vec<u32>,
    row_open_run: Vec<u32>,
    pools: Vec<Pool>,
    hold_slots: CowVec<u64, HOLD_SLOT_CHUNK>,
    free_hold_slots: CowVec<u32, HOLD_SLOT_CHUNK>,
}

impl Serialize for SeatLedger {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        LedgerEncoding {
            categories: &self.categories,
            seat_count: self.bits.seat_count(),
            seat_masks: self.bits.masks(),
            row_free: &self.row_free,
            row_open_run: &self.row_open_run,
            pools: &self.pools,
            hold_slots: &self.hold_slots,
            free_hold_slots: &self.free_hold_slots,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SeatLedger {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<SeatLedger, D::Error> {
        let decoded = LedgerDecoding::deserialize(deserializer)?;
        let bits =
            SeatBits::of_decoded_masks(decoded.seat_count, decoded.seat_masks, &decoded.row_free)
                .map_err(serde::de::Error::custom)?;
        Ok(SeatLedger {
            categories: decoded.categories,
            row_free: decoded.row_free,
            row_open_run: decoded.row_open_run,
            pools: decoded.pools,
            hold_slots: decoded.hold_slots,
            free_hold_slots: decoded.free_hold_slots,
            bits,
        })
    }
}

impl SeatLedger {
    /// Everything free: the capacities of `spec`'s categories from `layout` (built from
    /// its sections) and its general-admission pools. `spec` is valid (`spec_rules`).
    pub fn new(layout: &Layout, spec: &EventSpec) -> SeatLedger {
        let category_of = |name: &str| {
            spec.categories
                .iter()
                .position(|category| category.name == name)
                .expect("a valid spec's pools name its categories") as u16
        };
        let mut categories: Vec<Category> = spec
            .categories
            .iter()
            .map(|category| Category {
                name: category.name.clone(),
                price_cents: category.price_cents,
                capacity: 0,
                held: 0,
                booked: 0,
                pool: None,
                has_seats: false,
            })
            .collect();
        for row in &layout.rows {
            let category = &mut categories[row.category as usize];
            category.capacity += u64::from(row.seat_count);
            category.has_seats = true;
        }
        let pools = spec
            .general_admission
            .iter()
            .enumerate()
            .map(|(index, pool)| {
                let category = category_of(&pool.category);
                categories[category as usize].capacity += u64::from(pool.capacity);
                categories[category as usize].pool = Some(index as u16);
                Pool {
                    category,
                    capacity: pool.capacity,
                    held: 0,
                    booked: 0,
                }
            })
            .collect();
        SeatLedger::of_parts(
            categories,
            std::iter::repeat_n(SeatKind::Free, layout.seat_count as usize),
            layout.seat_count,
            layout.rows.iter().map(|row| row.seat_count).collect(),
            layout.rows.iter().map(|row| row.seat_count).collect(),
            pools,
            CowVec::new(),
            CowVec::new(),
        )
    }

    /// A ledger of these parts (a decoded state's: its seats' kinds in seat order), its
    /// bits built from them.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn of_parts(
        categories: Vec<Category>,
        seats: impl IntoIterator<Item = SeatKind>,
        seat_count: u32,
        row_free: Vec<u32>,
        row_open_run: Vec<u32>,
        pools: Vec<Pool>,
        hold_slots: CowVec<u64, HOLD_SLOT_CHUNK>,
        free_hold_slots: CowVec<u32, HOLD_SLOT_CHUNK>,
    ) -> SeatLedger {
        let bits = SeatBits::of(seat_count, seats, &row_free);
        SeatLedger {
            categories,
            row_free,
            row_open_run,
            pools,
            hold_slots,
            free_hold_slots,
            bits,
        }
    }

    /// A free seat of `row` was taken (held; its bits moved): its row's free count and
    /// sets follow.
    #[inline]
    fn seat_taken(&mut self, row: usize) {
        self.row_free[row] -= 1;
        self.bits.row_taken(row, self.row_free[row]);
    }

    /// A seat of `row` came free (released or unbooked; its bits moved): its row's free
    /// count and sets follow.
    #[inline]
    fn seat_freed(&mut self, row: usize) {
        self.row_free[row] += 1;
        self.bits.row_freed(row, self.row_free[row]);
    }

    /// The longest run of seats of `row` that are not booked (`row_open_run`'s value).
    /// Perf: a row of up to 64 seats from its bits, a longer one a word at a time.
    #[inline]
    fn open_run(&self, layout: &Layout, row: usize) -> u32 {
        let found = &layout.rows[row];
        if found.seat_count <= ROW_BITS_MAX {
            longest_run(self.bits.row_open(found.first_seat, found.seat_count))
        } else {
            crate::allocate::open_run_in(layout, &self.bits, row)
        }
    }

    pub fn categories(&self) -> &[Category] {
        &self.categories
    }

    pub fn pools(&self) -> &[Pool] {
        &self.pools
    }

    pub fn seat_count(&self) -> usize {
        self.bits.seat_count() as usize
    }

    /// A seat's state (`Free` for a seat the event does not have).
    pub fn seat(&self, seat: u32) -> SeatStatus {
        if seat >= self.bits.seat_count() {
            return SeatStatus::Free;
        }
        match self.bits.kind(seat) {
            SeatKind::Free => SeatStatus::Free,
            SeatKind::Held => SeatStatus::Held,
            SeatKind::Booked => SeatStatus::Booked,
        }
    }

    /// Bytes of the ledger's per-seat and per-row state: the seats' bits, the rows' sets
    /// and free counts.
    pub(crate) fn seat_state_bytes(&self) -> usize {
        self.bits.bytes() + self.row_free.len() * std::mem::size_of::<u32>()
    }

    /// A seat's kind (it must be one of the event's seats).
    pub(crate) fn kind(&self, seat: u32) -> SeatKind {
        self.bits.kind(seat)
    }

    /// Places `hold` on `items`, every seat of which is free (or that many places of a
    /// pool): the hold takes a slot, returned (`None` for places).
    #[inline]
    pub fn hold(
        &mut self,
        layout: &Layout,
        hold: HoldId,
        items: &Items,
    ) -> Result<Option<u32>, LedgerError> {
        match items {
            Items::Seats(seats) => {
                assert!(hold.0 != 0, "hold ids start at 1");
                self.bits
                    .try_move_each(seats, SeatKind::Free, SeatKind::Held)?;
                let slot = self.take_hold_slot(hold);
                for (row, category) in seat_rows_of(layout, seats) {
                    self.seat_taken(row);
                    self.categories[category].held += 1;
                }
                Ok(Some(slot))
            }
            Items::Pool { category, quantity } => {
                let (category, pool) = self.pool_of(*category)?;
                if self.pools[pool].free() < *quantity {
                    return Err(LedgerError::Places(category as u16));
                }
                self.pools[pool].held += quantity;
                self.categories[category].held += u64::from(*quantity);
                Ok(None)
            }
        }
    }

    /// Returns the items of `hold` (in `slot`, for seats) to free: the hold was released
    /// or expired.
    #[inline]
    pub fn release(
        &mut self,
        layout: &Layout,
        hold: HoldId,
        slot: Option<u32>,
        items: &Items,
    ) -> Result<(), LedgerError> {
        match items {
            Items::Seats(seats) => {
                let slot = self.hold_slot_of(hold, slot)?;
                self.bits
                    .try_move_each(seats, SeatKind::Held, SeatKind::Free)?;
                self.free_hold_slot(slot, hold);
                for (row, category) in seat_rows_of(layout, seats) {
                    self.seat_freed(row);
                    self.categories[category].held -= 1;
                }
            }
            Items::Pool { category, quantity } => {
                let (category, pool) = self.pool_of(*category)?;
                if self.pools[pool].held < *quantity {
                    return Err(LedgerError::Places(category as u16));
                }
                self.pools[pool].held -= quantity;
                self.categories[category].held -= u64::from(*quantity);
            }
        }
        Ok(())
    }

    /// Books the items `hold` holds (in `slot`, for seats): the hold was confirmed.
    /// Returns the order's total at the categories' prices.
    #[inline]
    pub fn book(
        &mut self,
        layout: &Layout,
        hold: HoldId,
        slot: Option<u32>,
        items: &Items,
    ) -> Result<u64, LedgerError> {
        match items {
            Items::Seats(seats) => {
                let slot = self.hold_slot_of(hold, slot)?;
                self.bits
                    .try_move_each(seats, SeatKind::Held, SeatKind::Booked)?;
                self.free_hold_slot(slot, hold);
                // Perf: one pass places each seat in its row: its category's price for
                // the total and its counts, and its row's open run, recomputed once per
                // run of seats in a row now that they are booked (the bits are).
                let mut last_row = None;
                let mut rows = seat_rows_of(layout, seats);
                Ok(order_total_cents(std::iter::from_fn(|| {
                    let (row, category) = rows.next()?;
                    if last_row != Some(row) {
                        self.row_open_run[row] = self.open_run(layout, row);
                        last_row = Some(row);
                    }
                    let entry = &mut self.categories[category];
                    entry.held -= 1;
                    entry.booked += 1;
                    Some((entry.price_cents, 1))
                })))
            }
            Items::Pool { category, quantity } => {
                let (category, pool) = self.pool_of(*category)?;
                if self.pools[pool].held < *quantity {
                    return Err(LedgerError::Places(category as u16));
                }
                self.pools[pool].held -= quantity;
                self.pools[pool].booked += quantity;
                let entry = &mut self.categories[category];
                entry.held -= u64::from(*quantity);
                entry.booked += u64::from(*quantity);
                Ok(order_total_cents([(entry.price_cents, *quantity)]))
            }
        }
    }

    /// Returns booked items to free: their booking was canceled.
    pub fn unbook(&mut self, layout: &Layout, items: &Items) -> Result<(), LedgerError> {
        match items {
            Items::Seats(seats) => {
                self.bits
                    .try_move_each(seats, SeatKind::Booked, SeatKind::Free)?;
                for (row, category) in seat_rows_of(layout, seats) {
                    self.seat_freed(row);
                    self.categories[category].booked -= 1;
                }
                // Each row once per run of seats in it (a row seen again is counted
                // again: same result), once its seats are all unbooked.
                let mut last_row = None;
                for (row, _) in seat_rows_of(layout, seats) {
                    if last_row != Some(row) {
                        self.row_open_run[row] = self.open_run(layout, row);
                        last_row = Some(row);
                    }
                }
            }
            Items::Pool { category, quantity } => {
                let (category, pool) = self.pool_of(*category)?;
                if self.pools[pool].booked < *quantity {
                    return Err(LedgerError::Places(category as u16));
                }
                self.pools[pool].booked -= quantity;
                self.categories[category].booked -= u64::from(*quantity);
            }
        }
        Ok(())
    }

    /// Seats free right now in a category (in every category for `None`).
    pub fn free(&self, category: Option<u16>) -> u64 {
        match category {
            Some(category) => self.categories[category as usize].free(),
            None => self.categories.iter().map(Category::free).sum(),
        }
    }

    /// The category's index and its pool's.
    fn pool_of(&self, category: u16) -> Result<(usize, usize), LedgerError> {
        self.categories
            .get(category as usize)
            .and_then(|entry| entry.pool)
            .map(|pool| (category as usize, pool as usize))
            .filter(|(_, pool)| *pool < self.pools.len())
            .ok_or(LedgerError::Category(category))
    }

    /// A slot for a new hold of seats.
    #[inline]
    fn take_hold_slot(&mut self, hold: HoldId) -> u32 {
        assert!(hold.0 != 0, "hold ids start at 1");
        match self.free_hold_slots.pop() {
            Some(slot) => {
                assert_eq!(self.hold_slots[slot as usize], 0, "a free slot is empty");
                self.hold_slots[slot as usize] = hold.0;
                slot
            }
            None => {
                let slot = u32::try_from(self.hold_slots.len()).expect("fewer slots than seats");
                assert!(slot <= OWNER_MASK, "hold slots fit in 30 bits");
                self.hold_slots.append(hold.0);
                slot
            }
        }
    }

    /// `slot`, when it is `hold`'s.
    #[inline]
    fn hold_slot_of(&self, hold: HoldId, slot: Option<u32>) -> Result<u32, LedgerError> {
        match slot {
            Some(slot) if self.hold_slots.get(slot as usize) == Some(&hold.0) => Ok(slot),
            _ => Err(LedgerError::Slot(slot.unwrap_or(u32::MAX))),
        }
    }

    /// Frees a hold's slot (the hold ended; `hold_slot_of` found the slot the hold's).
    #[inline]
    fn free_hold_slot(&mut self, slot: u32, hold: HoldId) {
        let owner = &mut self.hold_slots[slot as usize];
        debug_assert_eq!(*owner, hold.0, "the hold owns its slot");
        *owner = 0;
        self.free_hold_slots.push(slot);
    }

    /// The ledger's own invariants, recounted from its seats: per category free + held +
    /// booked = capacity and the seats' counts agree; per row its free seats and open run;
    /// per pool its counts fit its capacity and agree with its category; every free slot
    /// is empty and listed once. Which live hold holds each held seat is the holds'
    /// (`Engine::check_invariants` checks it). Returns how many seats are held.
    pub fn check(&self, layout: &Layout) -> u64 {
        assert_eq!(self.bits.seat_count(), layout.seat_count);
        assert_eq!(
            SeatBits::check_masks(self.bits.seat_count(), self.bits.masks()),
            Ok(()),
            "the seat masks are well formed"
        );
        assert_eq!(self.row_free.len(), layout.rows.len());
        let mut held = vec![0u64; self.categories.len()];
        let mut booked = vec![0u64; self.categories.len()];
        let mut held_seats = 0;
        for (index, row) in layout.rows.iter().enumerate() {
            let mut free = 0;
            // The longest run not booked, seat by seat: the reference the word-at-a-time
            // count (`allocate::open_run_in`) is checked against.
            let (mut open_run, mut longest_open_run) = (0, 0);
            for seat in row.first_seat..row.first_seat + row.seat_count {
                let kind = self.bits.kind(seat);
                match kind {
                    SeatKind::Free => free += 1,
                    SeatKind::Held => {
                        held[row.category as usize] += 1;
                        held_seats += 1;
                    }
                    SeatKind::Booked => booked[row.category as usize] += 1,
                }
                open_run = if kind == SeatKind::Booked {
                    0
                } else {
                    open_run + 1
                };
                longest_open_run = longest_open_run.max(open_run);
            }
            assert_eq!(self.row_free[index], free, "row {index}'s free seats");
            assert_eq!(
                self.row_open_run[index], longest_open_run,
                "row {index}'s open run"
            );
            assert_eq!(
                crate::allocate::open_run_in(layout, &self.bits, index),
                longest_open_run,
                "row {index}'s open run, counted a word at a time"
            );
            assert_eq!(
                self.open_run(layout, index),
                self.row_open_run[index],
                "row {index}'s open run from the bits"
            );
        }
        assert_eq!(
            self.bits,
            SeatBits::of(self.bits.seat_count(), self.bits.kinds(), &self.row_free),
            "the rows' sets are the free counts'"
        );
        for pool in &self.pools {
            assert!(
                pool.held + pool.booked <= pool.capacity,
                "a pool's counts fit"
            );
            held[pool.category as usize] += u64::from(pool.held);
            booked[pool.category as usize] += u64::from(pool.booked);
        }
        for (index, category) in self.categories.iter().enumerate() {
            assert!(
                category.held + category.booked <= category.capacity,
                "free + held + booked = capacity"
            );
            assert_eq!(category.held, held[index], "category {index}'s held seats");
            assert_eq!(
                category.booked, booked[index],
                "category {index}'s booked seats"
            );
        }
        let mut free_slots = std::collections::BTreeSet::new();
        for &slot in self.free_hold_slots.iter() {
            assert!(free_slots.insert(slot), "a free slot is listed once");
            assert_eq!(self.hold_slots[slot as usize], 0, "a free slot is empty");
        }
        let in_use = self.hold_slots.iter().filter(|id| **id != 0).count();
        assert_eq!(
            in_use + free_slots.len(),
            self.hold_slots.len(),
            "every slot is in use or free"
        );
        held_seats
    }
}

/// A waitlist queue: place → waiter, in place order. Sorted chunks shared by copies (see
/// `chunked`): a queue may hold `waitlist_length_max` (200,000 by default) waiters, and a
/// snapshot's copy copies a pointer per chunk of it.
pub(crate) type WaitQueue = crate::chunked::ChunkedMap<u64, WaiterId, WAIT_QUEUE_CHUNK>;
/// Waiters per chunk of a queue, at most (16 bytes each).
pub(crate) const WAIT_QUEUE_CHUNK: usize = 512;

/// An event's waitlist queues, in one place like its seats: by requested category (`None`:
/// any category), place → waiter, and how many wait. A waiter's place is its id (arrival
/// order), except a draw's entries, whose places are their ids in draw order. Places are
/// unique across the event's queues, which the engine serves merged by place. The engine
/// asserts each change; the read model applies the outcomes' joins, draws, offers and ends
/// through the same two (`join`, `leave`) and counts a refused one as an anomaly.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitQueues {
    pub(crate) queues: std::collections::BTreeMap<Option<u16>, WaitQueue>,
    pub(crate) waiting: u32,
}

/// Why a queue change was refused (the queues are unchanged).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// The place is taken (joining) or is not the waiter's (leaving).
    Place(u64),
}

impl WaitQueues {
    /// Queues `waiter` at `place` in the queue of `category`; returns its position there
    /// (from 1).
    pub fn join(
        &mut self,
        category: Option<u16>,
        place: u64,
        waiter: WaiterId,
    ) -> Result<u32, QueueError> {
        if self.queues.values().any(|queue| queue.contains_key(&place)) {
            return Err(QueueError::Place(place));
        }
        let queue = self.queues.entry(category).or_default();
        queue.insert(place, waiter);
        self.waiting += 1;
        Ok(queue.count_through(&place) as u32)
    }

    /// Takes `waiter` out of its place in the queue of `category` (an empty queue goes).
    pub fn leave(
        &mut self,
        category: Option<u16>,
        place: u64,
        waiter: WaiterId,
    ) -> Result<(), QueueError> {
        let Some(queue) = self.queues.get_mut(&category) else {
            return Err(QueueError::Place(place));
        };
        if queue.get(&place) != Some(&waiter) {
            return Err(QueueError::Place(place));
        }
        queue.remove(&place);
        if queue.is_empty() {
            self.queues.remove(&category);
        }
        self.waiting -= 1;
        Ok(())
    }

    /// How many wait, in every queue.
    pub fn waiting(&self) -> u32 {
        self.waiting
    }

    /// The live position (from 1) of the waiter at `place` in the queue of `category`.
    pub fn position(&self, category: Option<u16>, place: u64) -> Option<u32> {
        let queue = self.queues.get(&category)?;
        queue
            .contains_key(&place)
            .then(|| queue.count_through(&place) as u32)
    }

    /// Every waiting waiter, queue by queue, each in place order.
    pub fn waiters(&self) -> impl Iterator<Item = WaiterId> + '_ {
        self.queues
            .values()
            .flat_map(|queue| queue.values().copied())
    }

    /// The queues' own rules: no empty queue, every place in one queue, the count.
    pub fn check(&self) {
        let mut places = std::collections::BTreeSet::new();
        for queue in self.queues.values() {
            assert!(!queue.is_empty(), "empty queues are removed");
            queue.check();
            for (place, _) in queue {
                assert!(places.insert(*place), "a place is in one queue");
            }
        }
        assert_eq!(places.len(), self.waiting as usize, "waiting count");
    }
}

/// `(row index, category index)` of each seat of `seats`, in order. Perf: a hold's seats
/// are mostly in one row, so a seat in the row of the one before it is placed without
/// the binary search of `Layout::row_of`.
#[inline]
pub(crate) fn seat_rows_of<'a>(
    layout: &'a Layout,
    seats: &'a [u32],
) -> impl Iterator<Item = (usize, usize)> + 'a {
    let mut last: Option<(std::ops::Range<u32>, usize, usize)> = None;
    seats.iter().map(move |&seat| match &last {
        Some((range, row, category)) if range.contains(&seat) => (*row, *category),
        _ => {
            let row = layout.row_of(seat) as usize;
            let found = &layout.rows[row];
            let category = found.category as usize;
            last = Some((
                found.first_seat..found.first_seat + found.seat_count,
                row,
                category,
            ));
            (row, category)
        }
    })
}

impl From<u32> for LedgerError {
    /// A refused seat move (`SeatBits::try_move_each`) names the seat.
    fn from(seat: u32) -> LedgerError {
        LedgerError::Seat(seat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{CategorySpec, PoolSpec, RowSpec, SectionSpec, WaitlistPolicy};

    /// Two rows of three seats (Gold, Silver) and a pool of five places (Floor).
    fn event() -> (Layout, SeatLedger) {
        let category = |name: &str| CategorySpec {
            name: name.into(),
            price_cents: 100 * (name.len() as u64),
        };
        let row = |label: &str, category: &str| RowSpec {
            label: label.into(),
            seats: 3,
            category: category.into(),
        };
        let spec = EventSpec {
            name: "Show".into(),
            description: String::new(),
            city: "Lyon".into(),
            country: "FR".into(),
            venue: "Hall".into(),
            starts_at_ms: 1,
            ends_at_ms: None,
            sales_open_at_ms: None,
            sales_close_at_ms: None,
            hold_ttl_ms: 1_000,
            seats_per_order_max: 10,
            seats_per_user_max: None,
            waitlist_policy: WaitlistPolicy::Strict,
            categories: vec![category("Gold"), category("Silver"), category("Floor")],
            sections: vec![SectionSpec {
                name: "A".into(),
                rows: vec![row("1", "Gold"), row("2", "Silver")],
            }],
            general_admission: vec![PoolSpec {
                category: "Floor".into(),
                capacity: 5,
            }],
        };
        let names = ["Gold", "Silver", "Floor"];
        let layout = Layout::build(&spec.sections, |name| {
            names.iter().position(|known| *known == name).unwrap() as u16
        });
        let ledger = SeatLedger::new(&layout, &spec);
        (layout, ledger)
    }

    enum Step {
        Hold(u64, Items),
        Release(u64, Option<u32>, Items),
        Book(u64, Option<u32>, Items),
        Unbook(Items),
    }

    fn seats(seats: &[u32]) -> Items {
        Items::Seats(seats.into())
    }

    fn places(category: u16, quantity: u32) -> Items {
        Items::Pool { category, quantity }
    }

    /// Runs `steps` in order, each expected to answer as given: a granted step changes
    /// the ledger, a refused one leaves it exactly as it was; the ledger keeps its rules
    /// after every step. Returns the ledger.
    fn check(steps: Vec<(Step, Result<u64, LedgerError>)>) -> SeatLedger {
        let (layout, mut ledger) = event();
        for (index, (step, expected)) in steps.into_iter().enumerate() {
            let before = ledger.clone();
            let answer = match &step {
                Step::Hold(hold, items) => ledger
                    .hold(&layout, HoldId(*hold), items)
                    .map(|slot| u64::from(slot.unwrap_or(u32::MAX))),
                Step::Release(hold, slot, items) => ledger
                    .release(&layout, HoldId(*hold), *slot, items)
                    .map(|()| 0),
                Step::Book(hold, slot, items) => ledger.book(&layout, HoldId(*hold), *slot, items),
                Step::Unbook(items) => ledger.unbook(&layout, items).map(|()| 0),
            };
            assert_eq!(answer, expected, "step {index}");
            if answer.is_err() {
                assert_eq!(
                    ledger, before,
                    "step {index} was refused and changed nothing"
                );
            } else {
                assert_ne!(ledger, before, "step {index} changed the ledger");
            }
            ledger.check(&layout);
            // Decoded, the ledger is the same, its derived bits rebuilt from its seats.
            let config = bincode::config::standard();
            let bytes = bincode::serde::encode_to_vec(&ledger, config).expect("encodes");
            let (decoded, _): (SeatLedger, usize) =
                bincode::serde::decode_from_slice(&bytes, config).expect("decodes");
            assert_eq!(decoded, ledger, "step {index}: decoded alike");
        }
        ledger
    }

    /// Seats: a hold takes a slot (freed slots are reused), a release or a booking needs
    /// the hold's own slot and seats, a cancel needs booked seats; a refusal names the
    /// seat or slot and changes nothing (not even the seats before it in the list).
    #[test]
    fn seats_move_only_from_the_state_each_transition_needs() {
        let ledger = check(vec![
            (Step::Hold(1, seats(&[0, 1])), Ok(0)),
            // Seat 1 is held: refused, seat 2 left free.
            (Step::Hold(2, seats(&[2, 1])), Err(LedgerError::Seat(1))),
            (Step::Hold(2, seats(&[7])), Err(LedgerError::Seat(7))),
            (Step::Hold(2, seats(&[2, 2])), Err(LedgerError::Seat(2))),
            (Step::Hold(2, seats(&[2, 3])), Ok(1)),
            (
                Step::Release(1, Some(1), seats(&[0, 1])),
                Err(LedgerError::Slot(1)),
            ),
            (
                Step::Release(1, None, seats(&[0, 1])),
                Err(LedgerError::Slot(u32::MAX)),
            ),
            // Seat 5 is free (which hold holds a held seat is the holds' to say).
            (
                Step::Release(1, Some(0), seats(&[0, 5])),
                Err(LedgerError::Seat(5)),
            ),
            (Step::Release(1, Some(0), seats(&[0, 1])), Ok(0)),
            // Slot 0 is free again: the next hold takes it.
            (Step::Hold(3, seats(&[4])), Ok(0)),
            // Gold 400 cents a seat, Silver 600: seats 2 (Gold) and 3 (Silver).
            (Step::Book(2, Some(1), seats(&[2, 3])), Ok(1_000)),
            (
                Step::Book(2, Some(1), seats(&[2, 3])),
                Err(LedgerError::Slot(1)),
            ),
            (Step::Unbook(seats(&[2, 4])), Err(LedgerError::Seat(4))),
            (Step::Unbook(seats(&[2, 3])), Ok(0)),
            (Step::Unbook(seats(&[2])), Err(LedgerError::Seat(2))),
        ]);
        assert_eq!(ledger.seat(4), SeatStatus::Held);
        assert_eq!(ledger.seat(2), SeatStatus::Free);
        assert_eq!(ledger.free(None), 3 + 3 + 5 - 1);
    }

    /// Queues: a place is in one queue at most, a waiter leaves only its own place, an
    /// emptied queue goes, and a refusal changes nothing.
    #[test]
    fn waiters_join_free_places_and_leave_their_own() {
        let mut queues = WaitQueues::default();
        let waiter = WaiterId;
        assert_eq!(queues.join(Some(0), 5, waiter(5)), Ok(1));
        assert_eq!(queues.join(None, 3, waiter(3)), Ok(1));
        assert_eq!(queues.join(Some(0), 2, waiter(2)), Ok(1));
        assert_eq!(queues.join(Some(0), 9, waiter(9)), Ok(3));
        let before = queues.clone();
        for (category, place, id) in [(Some(0), 5, 6), (None, 5, 5), (Some(1), 5, 5)] {
            assert_eq!(
                queues.join(category, place, waiter(id)),
                Err(QueueError::Place(place))
            );
            assert_eq!(
                queues.leave(category, place, waiter(id)),
                Err(QueueError::Place(place))
            );
            assert_eq!(queues, before);
        }
        assert_eq!(queues.position(Some(0), 9), Some(3));
        assert_eq!(queues.position(Some(0), 3), None);
        assert_eq!(queues.leave(Some(0), 5, waiter(5)), Ok(()));
        assert_eq!(queues.position(Some(0), 9), Some(2));
        assert_eq!(queues.leave(None, 3, waiter(3)), Ok(()));
        assert!(!queues.queues.contains_key(&None), "an emptied queue goes");
        assert_eq!(queues.waiting(), 2);
        assert_eq!(queues.waiters().collect::<Vec<_>>(), [waiter(2), waiter(9)]);
        queues.check();
    }

    /// Places: counted per pool and category, never past what the pool has in the state
    /// the transition needs; a category without a pool (or none) is refused.
    #[test]
    fn places_move_only_within_what_the_pool_has() {
        let ledger = check(vec![
            (Step::Hold(1, places(2, 4)), Ok(u64::from(u32::MAX))),
            (Step::Hold(2, places(2, 2)), Err(LedgerError::Places(2))),
            (Step::Hold(2, places(0, 1)), Err(LedgerError::Category(0))),
            (Step::Hold(2, places(9, 1)), Err(LedgerError::Category(9))),
            (Step::Hold(2, places(2, 1)), Ok(u64::from(u32::MAX))),
            (Step::Release(2, None, places(2, 2)), Ok(0)),
            (
                Step::Release(2, None, places(2, 4)),
                Err(LedgerError::Places(2)),
            ),
            // Floor: 500 cents a place.
            (Step::Book(1, None, places(2, 3)), Ok(1_500)),
            (Step::Unbook(places(2, 4)), Err(LedgerError::Places(2))),
            (Step::Unbook(places(2, 3)), Ok(0)),
        ]);
        assert_eq!(ledger.pools()[0].free(), 5);
        assert_eq!(ledger.categories()[2].free(), 5);
    }
}
