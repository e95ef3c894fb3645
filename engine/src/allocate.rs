//! Best-available allocation, and what a request could ever be given.
//!
//! Rows are ranked by layout order (first section's first row is best). A request gets
//! adjacent seats in one row: the first run of free seats (in rank order) that fits exactly
//! or leaves at least two seats, else the first run that strands a single seat. Only when
//! no run fits anywhere does a request without `together` get scattered seats, the first
//! free ones in rank order. A request without a category tries seats first (every seated
//! category, as above), then the general-admission pools in category order. Rows with too
//! few free seats are skipped by their free count, so a sold-out or nearly sold-out venue
//! is not scanned seat by seat.
//!
//! Under the strict waitlist policy a request may take only from the categories that no
//! waiter before it could use: `allowed`, indexed by category. What a waiter could use is
//! what could ever come free for it ([`usable_categories`]): seats and places that are
//! free or held, never booked ones, and for `together` a run of seats in one row that are
//! not booked ([`open_run_in`], kept per row by the ledger). A waiter that could use nothing ([`servable_ever`] is false)
//! can never be served.

use crate::engine::{Category, Event, SeatState, FREE};
use std::ops::ControlFlow;

use crate::layout::{Layout, Row};
use crate::outcome::Items;
use crate::seat_bits::{SeatBits, ROW_BITS_MAX};

/// What `quantity` seats or places of `category` (any when `None`) would be granted now,
/// taking only from `allowed` categories, or `None` when the request cannot be met. Pure:
/// nothing is changed.
pub(crate) fn find(
    event: &Event,
    quantity: u32,
    category: Option<u16>,
    together: bool,
    allowed: &[bool],
) -> Option<Items> {
    assert_eq!(allowed.len(), event.ledger.categories.len());
    if quantity == 0 {
        return None;
    }
    let found = match category {
        Some(category) => {
            let entry = &event.ledger.categories[category as usize];
            if !allowed[category as usize] || entry.free() < u64::from(quantity) {
                return None;
            }
            match entry.pool {
                Some(pool) => (event.ledger.pools[pool as usize].free() >= quantity)
                    .then_some(Items::Pool { category, quantity }),
                None => {
                    let rows = event.layout.rows_of_category(category);
                    find_seats(event, quantity, rows, |row| row == category, together)
                }
            }
        }
        None => {
            let seats_free: u64 = event
                .ledger
                .categories
                .iter()
                .zip(allowed)
                .filter(|(entry, allowed)| entry.has_seats && **allowed)
                .map(|(entry, _)| entry.free())
                .sum();
            let seats = if seats_free >= u64::from(quantity) {
                let rows = 0..event.layout.rows.len();
                find_seats(event, quantity, rows, |row| allowed[row as usize], together)
            } else {
                None
            };
            seats.or_else(|| first_pool(event, quantity, allowed))
        }
    };
    debug_assert!(found
        .as_ref()
        .is_none_or(|items| items.quantity() == quantity));
    found
}

/// The first pool, in category order, that is allowed and has `quantity` places free.
fn first_pool(event: &Event, quantity: u32, allowed: &[bool]) -> Option<Items> {
    event
        .ledger
        .categories
        .iter()
        .enumerate()
        .find(|(index, entry)| {
            allowed[*index]
                && entry
                    .pool
                    .is_some_and(|pool| event.ledger.pools[pool as usize].free() >= quantity)
        })
        .map(|(index, _)| Items::Pool {
            category: index as u16,
            quantity,
        })
}

/// Adjacent seats first (see the module docs); scattered ones only without `together`
/// and only when no run fits. One pass over the rows: a row is skipped by its free count
/// unless it could hold a run, or scattered seats are still being gathered (perf: a
/// request that finds no run costs one pass, not one per kind of answer). Only `rows`
/// are looked at: every row `in_category` accepts must be among them.
fn find_seats(
    event: &Event,
    quantity: u32,
    rows: std::ops::Range<usize>,
    in_category: impl Fn(u16) -> bool,
    together: bool,
) -> Option<Items> {
    debug_assert!(event.layout.rows[..rows.start]
        .iter()
        .chain(&event.layout.rows[rows.end..])
        .all(|row| !in_category(row.category)));
    let row_free = &event.ledger.row_free[..rows.end];
    let bits = &event.ledger.bits;
    let mut stranding = None;
    // Perf: nothing to gather (nor to set up) for `together`.
    let mut scattered = (!together).then(|| Gathered::new(quantity as usize));
    let mut next = rows.start;
    loop {
        let gathering = scattered
            .as_ref()
            .is_some_and(|scattered| scattered.len() < quantity as usize);
        let enough = if gathering { 1 } else { quantity };
        let found = if SeatBits::keeps(enough) {
            bits.next_row_with(next, rows.end, enough)
        } else {
            next_row_with(row_free, next, enough)
        };
        let Some(index) = found else {
            break;
        };
        debug_assert_eq!(Some(index), next_row_with(row_free, next, enough));
        next = index + 1;
        let row = &event.layout.rows[index];
        if !in_category(row.category) {
            continue;
        }
        let free = event.ledger.row_free[index];
        if row.seat_count <= ROW_BITS_MAX {
            // Perf: the row's free seats as one word (see `seat_bits`).
            let free_bits = bits.row_free(row.first_seat, row.seat_count);
            debug_assert_eq!(
                free_bits,
                bits_of(&bits.states(row.first_seat, row.seat_count))
            );
            if free >= quantity {
                let run = find_run_in_bits(free_bits, quantity);
                if let Some(first) = clean_run(run, row.first_seat, &mut stranding) {
                    return Some(run_of(event, first, quantity));
                }
            }
            if gathering {
                let scattered = scattered.as_mut().expect("gathering");
                let mut rest = free_bits;
                while rest != 0 && scattered.len() < quantity as usize {
                    scattered.push(row.first_seat + rest.trailing_zeros());
                    rest &= rest - 1;
                }
            }
            continue;
        }
        let gathered = if gathering { scattered.as_mut() } else { None };
        if let Some(first) = search_long_row(bits, row, free, quantity, &mut stranding, gathered) {
            return Some(run_of(event, first, quantity));
        }
    }
    if let Some(start) = stranding {
        return Some(run_of(event, start, quantity));
    }
    scattered
        .filter(|scattered| scattered.len() == quantity as usize)
        .map(|scattered| Items::Seats(scattered.as_slice().into()))
}

/// The scattered seats gathered while looking for a run: on the stack for an order of up
/// to [`Gathered::INLINE`] seats. Perf: a request without `together` nearly always gets a
/// run, and the `Vec` it gathered into cost an allocation and a free every time.
struct Gathered {
    inline: [u32; Gathered::INLINE],
    /// Only for a larger order (its capacity the order's size); empty otherwise.
    spilled: Vec<u32>,
    len: usize,
}

impl Gathered {
    const INLINE: usize = 16;

    /// Room for `quantity` seats.
    fn new(quantity: usize) -> Gathered {
        Gathered {
            inline: [0; Gathered::INLINE],
            spilled: if quantity > Gathered::INLINE {
                Vec::with_capacity(quantity)
            } else {
                Vec::new()
            },
            len: 0,
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    /// Adds a seat; the caller never gathers more than the quantity it gave `new`.
    fn push(&mut self, seat: u32) {
        if self.spilled.capacity() == 0 {
            self.inline[self.len] = seat;
        } else {
            assert!(
                self.spilled.len() < self.spilled.capacity(),
                "within the order"
            );
            self.spilled.push(seat);
        }
        self.len += 1;
    }

    fn as_slice(&self) -> &[u32] {
        if self.spilled.capacity() == 0 {
            &self.inline[..self.len]
        } else {
            &self.spilled
        }
    }
}

/// The first row at or after `from` with at least `enough` free seats. Perf: the free
/// counts are tested a block at a time (a test the compiler vectorizes), so the rows a
/// busy venue has filled (the best ones, at the front) are skipped sixteen at a time.
fn next_row_with(row_free: &[u32], from: usize, enough: u32) -> Option<usize> {
    const BLOCK: usize = 16;
    let rest = &row_free[from..];
    let mut blocks = rest.chunks_exact(BLOCK);
    let mut base = from;
    for block in &mut blocks {
        if block
            .iter()
            .fold(false, |any, free| any | (*free >= enough))
        {
            break;
        }
        base += BLOCK;
    }
    let found = row_free[base..]
        .iter()
        .position(|free| *free >= enough)
        .map(|offset| base + offset);
    debug_assert_eq!(
        found,
        rest.iter()
            .position(|free| *free >= enough)
            .map(|offset| from + offset)
    );
    found
}

fn run_of(event: &Event, start: u32, quantity: u32) -> Items {
    let seats = crate::outcome::SeatList::run(start, quantity);
    debug_assert!(seats.iter().all(|&seat| event.ledger.bits.is_free(seat)));
    debug_assert_eq!(
        event.layout.row_of(start),
        event.layout.row_of(start + quantity - 1),
        "a run is in one row"
    );
    Items::Seats(seats)
}

/// The free seats of a row's `states` as bits (bit `i`: seat `i`), for checks.
fn bits_of(states: &[SeatState]) -> u64 {
    states
        .iter()
        .enumerate()
        .filter(|(_, state)| **state == FREE)
        .fold(0, |bits, (offset, _)| bits | 1 << offset)
}

/// [`find_run`] on a row of at most 64 seats given as its free bits (bit `i`: the row's
/// seat `i` is free). The same answer: the first maximal run of free seats of exactly
/// `quantity` or of at least `quantity + 2`, else the first of `quantity + 1`. Perf: a
/// few shifts and masks for the whole row, where the seat-by-seat scan stepped through
/// every run.
fn find_run_in_bits(free: u64, quantity: u32) -> Run {
    debug_assert!(quantity >= 1);
    // A seat past the row (or past 64) is not free.
    let shifted = |bits: u64, by: u32| bits.checked_shr(by).unwrap_or(0);
    // The seats that start a maximal run.
    let starts = free & !(free << 1);
    // Bit `s` of `at_least`: the `quantity` seats from `s` on are free.
    let mut at_least = free;
    for offset in 1..quantity {
        if at_least == 0 {
            return Run::None;
        }
        at_least &= shifted(free, offset);
    }
    let one_more = at_least & shifted(free, quantity);
    let two_more = one_more & shifted(free, quantity + 1);
    let clean = starts & ((at_least & !one_more) | two_more);
    if clean != 0 {
        return Run::Clean(clean.trailing_zeros());
    }
    let stranding = starts & one_more & !two_more;
    if stranding != 0 {
        return Run::Stranding(stranding.trailing_zeros());
    }
    Run::None
}

/// The best run of `quantity` free seats within one row's seats, by offset in the row.
#[derive(Debug, PartialEq, Eq)]
enum Run {
    /// The first that fits exactly or leaves at least two seats.
    Clean(u32),
    /// None does; this one would leave exactly one seat stranded.
    Stranding(u32),
    None,
}

/// A row's run as best available takes it: the first seat of a clean run, or `None`,
/// noting the first run that would strand a seat (taken when no row has a clean one).
#[inline(always)]
fn clean_run(run: Run, first_seat: u32, stranding: &mut Option<u32>) -> Option<u32> {
    match run {
        Run::Clean(offset) => Some(first_seat + offset),
        Run::Stranding(offset) => {
            stranding.get_or_insert(first_seat + offset);
            None
        }
        Run::None => None,
    }
}

/// [`find_seats`]' step for a row longer than a word: its clean run's first seat if it
/// has one for `quantity` (noting a stranding one), else, when `scattered` is given, its
/// free seats gathered into it (up to `quantity`). Perf: out of line, so that the loop
/// over rows of up to 64 seats (nearly every venue's) keeps its registers and layout: inlined,
/// it made a hold of 4 seats anywhere on a full stadium 173 -> 198 ns (session 39).
#[inline(never)]
fn search_long_row(
    bits: &SeatBits,
    row: &Row,
    free: u32,
    quantity: u32,
    stranding: &mut Option<u32>,
    scattered: Option<&mut Gathered>,
) -> Option<u32> {
    if free >= quantity {
        let run = find_run_in_long_row(bits, row, quantity);
        if let Some(first) = clean_run(run, row.first_seat, stranding) {
            return Some(first);
        }
    }
    // Perf: gathered after the row's run is looked for, so a row that answers with a
    // clean run (nearly every request) gathers nothing; the seats gathered, row after
    // row, are the same.
    if let Some(scattered) = scattered {
        bits.each_free_run(row.first_seat, row.seat_count, |offset, length| {
            for seat in offset..offset + length {
                if scattered.len() == quantity as usize {
                    return ControlFlow::Break(());
                }
                scattered.push(row.first_seat + seat);
            }
            ControlFlow::Continue(())
        });
    }
    None
}

/// [`find_run_in_bits`] for a row longer than a word: the same answer from the row's
/// maximal runs of free seats, read a word at a time.
fn find_run_in_long_row(bits: &SeatBits, row: &Row, quantity: u32) -> Run {
    let mut found = Run::None;
    bits.each_free_run(row.first_seat, row.seat_count, |offset, length| {
        if length == quantity || length >= quantity + 2 {
            found = Run::Clean(offset);
            return ControlFlow::Break(());
        }
        if length == quantity + 1 && found == Run::None {
            found = Run::Stranding(offset);
        }
        ControlFlow::Continue(())
    });
    found
}

/// Seats or places of a category that are free or held: what could still come free.
fn obtainable(entry: &Category) -> u64 {
    entry.capacity - entry.booked
}

/// The longest run of seats in a row that are not booked: the largest `together`
/// request the row could ever serve (the ledger keeps it per row, `row_open_run`).
/// Out of line: the ledger calls it for rows longer than a word only, and inlined into
/// a booking it changed how the compiler laid out the rows of up to 64 seats (the
/// standard mix 6% slower, session 39).
#[inline(never)]
pub(crate) fn open_run_in(layout: &Layout, bits: &SeatBits, row: usize) -> u32 {
    longest_open_run(bits, &layout.rows[row])
}

/// The longest run of a row's seats that are not booked, a word at a time.
fn longest_open_run(bits: &SeatBits, row: &Row) -> u32 {
    let longest = bits.longest_open_run(row.first_seat, row.seat_count);
    debug_assert!(longest <= row.seat_count);
    longest
}

/// The most seats of the categories `in_category` accepts that one request could ever be
/// served: the longest run of seats that are not booked for `together`, otherwise the
/// free plus held seats of those categories.
fn most_seats(event: &Event, in_category: &dyn Fn(u16) -> bool, together: bool) -> u64 {
    if together {
        event
            .layout
            .rows
            .iter()
            .zip(&event.ledger.row_open_run)
            .filter(|(row, _)| in_category(row.category))
            .map(|(_, run)| u64::from(*run))
            .max()
            .unwrap_or(0)
    } else {
        event
            .ledger
            .categories
            .iter()
            .enumerate()
            .filter(|(index, entry)| entry.has_seats && in_category(*index as u16))
            .map(|(_, entry)| obtainable(entry))
            .sum()
    }
}

/// Whether seats of the categories `in_category` accepts could ever serve `quantity`.
fn seats_servable_ever(
    event: &Event,
    quantity: u32,
    in_category: &dyn Fn(u16) -> bool,
    together: bool,
) -> bool {
    most_seats(event, in_category, together) >= u64::from(quantity)
}

/// Whether a request could ever be served, if every hold came free (bookings stay).
pub(crate) fn servable_ever(
    event: &Event,
    quantity: u32,
    category: Option<u16>,
    together: bool,
) -> bool {
    match category {
        Some(category) => {
            let entry = &event.ledger.categories[category as usize];
            if entry.pool.is_some() {
                obtainable(entry) >= u64::from(quantity)
            } else {
                seats_servable_ever(event, quantity, &|row| row == category, together)
            }
        }
        None => {
            seats_servable_ever(event, quantity, &|_| true, together)
                || event
                    .ledger
                    .categories
                    .iter()
                    .any(|entry| entry.pool.is_some() && obtainable(entry) >= u64::from(quantity))
        }
    }
}

/// The largest quantity a request of `category` (any when `None`), `together` or not,
/// could ever be served: `servable_ever(q)` is exactly `q <= most_servable()`. O(rows)
/// for `together`.
pub(crate) fn most_servable(event: &Event, category: Option<u16>, together: bool) -> u64 {
    let seats = |in_category: &dyn Fn(u16) -> bool| most_seats(event, in_category, together);
    match category {
        Some(category) => {
            let entry = &event.ledger.categories[category as usize];
            if entry.pool.is_some() {
                obtainable(entry)
            } else {
                seats(&|row| row == category)
            }
        }
        None => event
            .ledger
            .categories
            .iter()
            .filter(|entry| entry.pool.is_some())
            .map(obtainable)
            .fold(seats(&|_| true), u64::max),
    }
}

/// Calls `usable` with every category a request could ever be served from (each once,
/// in no particular order): under the strict policy a waiter keeps these for itself.
pub(crate) fn usable_categories(
    event: &Event,
    quantity: u32,
    category: Option<u16>,
    together: bool,
    mut usable: impl FnMut(u16),
) {
    match category {
        Some(category) => {
            if servable_ever(event, quantity, Some(category), together) {
                usable(category);
            }
        }
        None => {
            let mut seated = vec![false; event.ledger.categories.len()];
            if together {
                for (row, run) in event.layout.rows.iter().zip(&event.ledger.row_open_run) {
                    if *run >= quantity {
                        seated[row.category as usize] = true;
                    }
                }
            } else if seats_servable_ever(event, quantity, &|_| true, false) {
                // Scattered seats may mix categories: every seated category that could
                // still give a seat may be part of the answer.
                for (index, entry) in event.ledger.categories.iter().enumerate() {
                    seated[index] = entry.has_seats && obtainable(entry) > 0;
                }
            }
            for (index, entry) in event.ledger.categories.iter().enumerate() {
                let pooled = entry.pool.is_some() && obtainable(entry) >= u64::from(quantity);
                if seated[index] || pooled {
                    usable(index as u16);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{is_booked, SEAT_BOOKED, SEAT_HELD};

    /// The seat-by-seat search `find_run_in_bits` and `find_run_in_long_row` must agree
    /// with: the first maximal run of free seats of exactly `quantity` or of at least
    /// `quantity + 2`, else the first of `quantity + 1`.
    fn find_run(states: &[SeatState], quantity: u32) -> Run {
        let quantity = quantity as usize;
        // A run this long is clean whatever follows it. Perf: a run is counted only up to
        // here, not to its end (a mostly free row of 50 seats took 50 steps for a pair).
        let clean_from = quantity + 2;
        let mut stranding = None;
        let end = states.len();
        let mut seat = next_free(states, 0);
        while seat < end {
            debug_assert_eq!(states[seat], FREE);
            let start = seat;
            let counted_to = end.min(start + clean_from);
            while seat < counted_to && states[seat] == FREE {
                seat += 1;
            }
            let run = seat - start;
            debug_assert!(run <= clean_from);
            if run == quantity || run == clean_from {
                return Run::Clean(start as u32);
            }
            if run == quantity + 1 && stranding.is_none() {
                stranding = Some(start as u32);
            }
            seat = next_free(states, seat);
        }
        stranding.map_or(Run::None, Run::Stranding)
    }
    fn next_free(states: &[SeatState], from: usize) -> usize {
        const BLOCK: usize = 8;
        let mut seat = from;
        while let Some(block) = states.get(seat..seat + BLOCK) {
            if block
                .iter()
                .fold(false, |any, state| any | (*state == FREE))
            {
                break;
            }
            seat += BLOCK;
        }
        while seat < states.len() && states[seat] != FREE {
            seat += 1;
        }
        debug_assert_eq!(
            seat,
            states[from.min(states.len())..]
                .iter()
                .position(|state| *state == FREE)
                .map_or(states.len(), |offset| from + offset)
        );
        seat
    }

    /// The block-skipping count that rows longer than a word once took (kept as a second
    /// reference).
    /// The longest run of `states` that are not booked. Perf: a block of seats none of which
    /// is booked (a test the compiler vectorizes) extends the run whole; only a block with a
    /// booked seat is stepped through seat by seat (a row was about 6 instructions a seat).
    fn longest_open_run_by_blocks(states: &[SeatState]) -> u32 {
        const BLOCK: usize = 8;
        let (mut longest, mut current) = (0, 0);
        let mut blocks = states.chunks_exact(BLOCK);
        for block in &mut blocks {
            if !block
                .iter()
                .fold(false, |any, state| any | is_booked(*state))
            {
                current += BLOCK as u32;
                continue;
            }
            // The run so far may end at this block's first seat (and below, at the rest's).
            longest = longest.max(current);
            for &state in block {
                // Without a branch per seat: a booked seat resets the run.
                current = (current + 1) * u32::from(!is_booked(state));
                longest = longest.max(current);
            }
        }
        longest = longest.max(current);
        for &state in blocks.remainder() {
            current = (current + 1) * u32::from(!is_booked(state));
            longest = longest.max(current);
        }
        longest.max(current)
    }

    /// Seat by seat, as the ledger's rule says: the longest run of seats not booked.
    fn longest_open_run_by_seat(states: &[SeatState]) -> u32 {
        let (mut longest, mut current) = (0, 0);
        for &state in states {
            current = if is_booked(state) { 0 } else { current + 1 };
            longest = longest.max(current);
        }
        longest
    }

    /// Every row of up to 12 seats (each free or taken), and longer ones up to 64 seats
    /// from a fixed pseudo-random walk: the run found from the bits is the one found seat
    /// by seat, for every quantity.
    #[test]
    fn the_run_found_from_the_bits_is_the_seat_by_seat_one() {
        let check = |states: &[SeatState]| {
            let bits = bits_of(states);
            for quantity in 1..=states.len() as u32 + 3 {
                assert_eq!(
                    find_run_in_bits(bits, quantity),
                    find_run(states, quantity),
                    "{bits:#b} for {quantity}"
                );
            }
        };
        for length in 1..=12u32 {
            for pattern in 0..1u64 << length {
                let states: Vec<SeatState> = (0..length)
                    .map(|seat| {
                        if pattern >> seat & 1 == 1 {
                            FREE
                        } else {
                            SEAT_HELD
                        }
                    })
                    .collect();
                check(&states);
            }
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for length in [13, 25, 50, 63, 64] {
            for free_percent in [5, 30, 60, 80, 95, 100] {
                for _ in 0..200 {
                    check(&random_row(&mut seed, length, 100 - free_percent));
                }
            }
        }
    }

    /// A row of `length` seats from a xorshift walk on `seed`, each booked with
    /// `booked_percent` chances in a hundred, else free.
    fn random_row(seed: &mut u64, length: u32, booked_percent: u64) -> Vec<SeatState> {
        (0..length)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                if *seed % 100 < booked_percent {
                    SEAT_BOOKED
                } else {
                    FREE
                }
            })
            .collect()
    }

    #[test]
    fn the_longest_open_run_skipping_blocks_is_the_seat_by_seat_one() {
        // Every row of up to 12 seats whose seats are each free, held or booked by the
        // bits of a counter (base 3), and longer rows from a fixed pseudo-random walk.
        let kinds = [FREE, SEAT_HELD, SEAT_BOOKED];
        for length in 0..=12u32 {
            for pattern in 0..3u64.pow(length.min(9)) {
                let states: Vec<SeatState> = (0..length)
                    .map(|seat| kinds[(pattern / 3u64.pow(seat % 9) % 3) as usize])
                    .collect();
                assert_eq!(
                    longest_open_run_by_blocks(&states),
                    longest_open_run_by_seat(&states),
                    "{states:?}"
                );
            }
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for length in [25, 50, 63, 64, 65, 100] {
            for booked_percent in [0, 5, 20, 50, 90, 100] {
                let states = random_row(&mut seed, length, booked_percent);
                assert_eq!(
                    longest_open_run_by_blocks(&states),
                    longest_open_run_by_seat(&states),
                    "{states:?}"
                );
            }
        }
    }

    /// Rows longer than a word (across word boundaries, at an offset in the masks): the
    /// runs read a word at a time answer as the seat-by-seat search for every quantity,
    /// give the same longest open run and gather the same free seats.
    #[test]
    fn a_long_row_is_read_a_word_at_a_time_alike() {
        use crate::seat_bits::SeatKind;
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for length in [65, 100, 127, 128, 129, 191, 256, 300] {
            for first_seat in [0, 1, 37, 64] {
                for taken_percent in [0, 3, 30, 60, 95, 100] {
                    let kinds: Vec<SeatKind> = (0..first_seat + length + 5)
                        .map(|_| match next() % 100 {
                            r if r >= taken_percent => SeatKind::Free,
                            r if r % 2 == 0 => SeatKind::Held,
                            _ => SeatKind::Booked,
                        })
                        .collect();
                    let bits = SeatBits::of(kinds.len() as u32, kinds.iter().copied(), &[]);
                    let row = Row {
                        section: 0,
                        label: String::new(),
                        first_seat,
                        seat_count: length,
                        category: 0,
                    };
                    let states = bits.states(first_seat, length);
                    for quantity in 1..=length + 3 {
                        assert_eq!(
                            find_run_in_long_row(&bits, &row, quantity),
                            find_run(&states, quantity),
                            "{quantity} in {states:?}"
                        );
                    }
                    assert_eq!(
                        longest_open_run(&bits, &row),
                        longest_open_run_by_seat(&states)
                    );
                    assert_eq!(
                        longest_open_run_by_blocks(&states),
                        longest_open_run_by_seat(&states)
                    );
                    let mut gathered = Vec::new();
                    bits.each_free_run(first_seat, length, |offset, run| {
                        gathered.extend(offset..offset + run);
                        ControlFlow::Continue(())
                    });
                    let free: Vec<u32> = (0..length)
                        .filter(|offset| states[*offset as usize] == FREE)
                        .collect();
                    assert_eq!(gathered, free);
                }
            }
        }
    }
}
