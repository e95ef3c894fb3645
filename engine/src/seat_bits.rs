//! A ledger's seats as bits, for best available and the open runs: a free-seat bitmask
//! and a booked-seat bitmask (a bit per seat, by seat index), and, per `k` up to
//! [`ROWS_WITH_MAX`], the rows with at least `k` free seats (a bit per row).
//!
//! Derived data: a function of the ledger's seats and its rows' free counts, kept in step
//! by the ledger's own transitions (`SeatLedger::hold` and the three others, through
//! `SeatLedger::seat_taken` and `seat_freed`), never encoded (snapshots and the state
//! hash do not change), rebuilt from the seats when a state is decoded ([`SeatBits::of`]),
//! and compared with that rebuild by `SeatLedger::check`.
//!
//! Perf: best available looked at a row's seats one 4-byte word at a time to find a run
//! (the states of a busy row, seat by seat), skipped full rows by scanning every row's
//! free count from the first, and recounted a row's longest open run seat by seat after
//! each booking: together about 14% of the standard mix. A row of up to 64 seats is now
//! one word of each mask (a few shifts find a run, a few bit scans the open run), and
//! the rows with enough free seats are found 64 rows per word. A longer row (or a
//! request above [`ROWS_WITH_MAX`]) takes the seat-by-seat path, which gives the same
//! answers (`allocate`'s tests compare the two).
//!
//! Memory: 2 bits per seat and `ROWS_WITH_MAX` bits per row. The two seat masks are
//! interleaved word by word (a seat's free and booked bits in one cache line) in one
//! shared slice per ledger (`triomphe::Arc`, as the seats' chunks): a snapshot's copy of
//! the state shares it, and the ledger's first write after the copy copies it whole (12.5
//! KB for a 50,000-seat stadium, 250 KB at `event_seats_max`'s default of a million
//! seats), once per event that changes before the next snapshot. Owned vectors made the
//! snapshot's copy 5 MB at 20M seats, most of the engine's pause for its first snapshot
//! after a start (3.6-7.7 ms over eight runs, three over the 5 ms; session 37).
//! Not chunked like the seats: reading a word through a chunk's look-up cost best
//! available's row scan 6% more instructions (callgrind, session 37). The row sets stay
//! vectors (16 bits a row: 1 KB for a 50,000-seat stadium), copied with the state.

use crate::ledger::{SeatState, SEAT_CHUNK, SEAT_FREE, TAG_BOOKED, TAG_MASK};
use crate::snapshot::{Chunk, CowVec};

/// The largest `k` whose rows-with-`k`-free set is kept: requests for more seats
/// together (rare: orders are capped per event, 8 by default) scan the free counts.
pub(crate) const ROWS_WITH_MAX: u32 = 16;

/// The longest row kept as one word of each mask.
pub(crate) const ROW_BITS_MAX: u32 = 64;

/// The seat masks, interleaved (see [`free_word`]), shared until written.
type Masks = Chunk<[u64]>;

/// Where the masks' words of seat `seat` are: word `2 * (seat / 64)` is the free one,
/// the next the booked one.
#[inline]
fn free_word(seat: u32) -> usize {
    2 * (seat as usize / 64)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SeatBits {
    /// Bit `s % 64` of word `2 * (s / 64)`: seat `s` is free; of the word after it: seat
    /// `s` is booked.
    masks: Masks,
    /// `ROWS_WITH_MAX` sets of rows, `row_words` words each: bit `r % 64` of word
    /// `(k - 1) * row_words + r / 64` says row `r` has at least `k` free seats.
    rows_with: Vec<u64>,
    row_words: usize,
}

impl Default for SeatBits {
    fn default() -> SeatBits {
        SeatBits {
            masks: Masks::from(Vec::new()),
            rows_with: Vec::new(),
            row_words: 0,
        }
    }
}

impl SeatBits {
    /// The bits of `seats`, whose rows have `row_free` free seats each.
    pub(crate) fn of(seats: &CowVec<SeatState, SEAT_CHUNK>, row_free: &[u32]) -> SeatBits {
        let words = seats.len().div_ceil(64);
        let row_words = row_free.len().div_ceil(64);
        let mut masks = vec![0u64; 2 * words];
        for (seat, state) in seats.iter().enumerate() {
            let (word, bit) = (free_word(seat as u32), 1u64 << (seat % 64));
            if *state == SEAT_FREE {
                masks[word] |= bit;
            } else if *state & TAG_MASK == TAG_BOOKED {
                masks[word + 1] |= bit;
            }
        }
        let mut bits = SeatBits {
            masks: Masks::from(masks),
            rows_with: vec![0; row_words * ROWS_WITH_MAX as usize],
            row_words,
        };
        for (row, free) in row_free.iter().enumerate() {
            for k in 1..=(*free).min(ROWS_WITH_MAX) {
                bits.set_row_with(k, row, true);
            }
        }
        bits
    }

    #[inline]
    fn set_row_with(&mut self, k: u32, row: usize, on: bool) {
        debug_assert!((1..=ROWS_WITH_MAX).contains(&k));
        let word = &mut self.rows_with[(k as usize - 1) * self.row_words + row / 64];
        let bit = 1u64 << (row % 64);
        if on {
            *word |= bit;
        } else {
            *word &= !bit;
        }
    }

    /// The masks to write: copied first if a snapshot's copy of the state shares them.
    /// Perf: the check is a load of the count, inlined at every write; the copy is out of
    /// line.
    #[inline(always)]
    fn masks_mut(&mut self) -> &mut [u64] {
        if !self.masks.is_unique() {
            self.unshare_masks();
        }
        Chunk::get_mut(&mut self.masks).expect("the masks are unique once copied")
    }

    #[cold]
    #[inline(never)]
    fn unshare_masks(&mut self) {
        self.masks = self.masks.iter().copied().collect();
    }

    /// Whether seat `s` is free (it must be one of the ledger's seats).
    #[inline]
    pub(crate) fn is_free(&self, seat: u32) -> bool {
        self.masks[free_word(seat)] >> (seat % 64) & 1 == 1
    }

    /// A free seat of `row` was taken (held): the row has `free` free seats now.
    #[inline]
    pub(crate) fn taken(&mut self, seat: u32, row: usize, free: u32) {
        let word = &mut self.masks_mut()[free_word(seat)];
        let bit = 1u64 << (seat % 64);
        debug_assert!(*word & bit != 0, "seat {seat} was free");
        *word &= !bit;
        if free < ROWS_WITH_MAX {
            self.set_row_with(free + 1, row, false);
        }
    }

    /// A seat of `row` came free (released, or its booking canceled: `was_booked`): the
    /// row has `free` free seats now.
    #[inline]
    pub(crate) fn freed(&mut self, seat: u32, row: usize, free: u32, was_booked: bool) {
        let (index, bit) = (free_word(seat), 1u64 << (seat % 64));
        let masks = self.masks_mut();
        debug_assert!(masks[index] & bit == 0, "seat {seat} was taken");
        masks[index] |= bit;
        if was_booked {
            debug_assert!(masks[index + 1] & bit != 0, "seat {seat} was booked");
            masks[index + 1] &= !bit;
        }
        if free <= ROWS_WITH_MAX {
            self.set_row_with(free, row, true);
        }
    }

    /// A held seat was booked (it was not free, and stays so).
    #[inline]
    pub(crate) fn booked(&mut self, seat: u32) {
        let word = &mut self.masks_mut()[free_word(seat) + 1];
        let bit = 1u64 << (seat % 64);
        debug_assert!(*word & bit == 0, "seat {seat} was not booked");
        *word |= bit;
    }

    /// The `count` bits of one of `masks`' two masks (`booked`: 0 the free one, 1 the
    /// booked one) from seat `first` on (`count` at most 64), as one word.
    #[inline]
    fn span(masks: &[u64], booked: usize, first: u32, count: u32) -> u64 {
        debug_assert!((1..=ROW_BITS_MAX).contains(&count));
        let (index, shift) = (free_word(first) + booked, first % 64);
        let mut bits = masks[index] >> shift;
        if shift + count > 64 {
            // `shift` is not 0 here (`count` is at most 64).
            bits |= masks[index + 2] << (64 - shift);
        }
        bits & (u64::MAX >> (64 - count))
    }

    /// The free seats of the row of `count` seats (at most 64) from `first`: bit `i`
    /// is the row's `i`-th seat.
    #[inline]
    pub(crate) fn row_free(&self, first: u32, count: u32) -> u64 {
        SeatBits::span(&self.masks, 0, first, count)
    }

    /// The seats of the row of `count` seats (at most 64) from `first` that are not
    /// booked (free or held): bit `i` is the row's `i`-th seat.
    #[inline]
    pub(crate) fn row_open(&self, first: u32, count: u32) -> u64 {
        !SeatBits::span(&self.masks, 1, first, count) & (u64::MAX >> (64 - count))
    }

    /// Whether the rows with at least `enough` free seats are kept.
    #[inline]
    pub(crate) fn keeps(enough: u32) -> bool {
        (1..=ROWS_WITH_MAX).contains(&enough)
    }

    /// The first row of `from..end` with at least `enough` free seats (`enough` is kept:
    /// [`SeatBits::keeps`]).
    #[inline]
    pub(crate) fn next_row_with(&self, from: usize, end: usize, enough: u32) -> Option<usize> {
        assert!(SeatBits::keeps(enough), "rows with {enough} free are kept");
        if from >= end {
            return None;
        }
        let set = &self.rows_with[(enough as usize - 1) * self.row_words..][..self.row_words];
        let mut index = from / 64;
        let mut word = set[index] & (u64::MAX << (from % 64));
        loop {
            if word != 0 {
                let row = index * 64 + word.trailing_zeros() as usize;
                return (row < end).then_some(row);
            }
            index += 1;
            if index * 64 >= end {
                return None;
            }
            word = set[index];
        }
    }
}

/// The longest run of set bits in `bits`. Perf: one step per run (a bit scan, a shift
/// and a carry that clears the run), not per seat.
#[inline]
pub(crate) fn longest_run(bits: u64) -> u32 {
    let mut rest = bits;
    let mut longest = 0;
    while rest != 0 {
        let start = rest.trailing_zeros();
        let run = (!(rest >> start)).trailing_zeros();
        longest = longest.max(run);
        // Adding the run's lowest bit carries through it: the run clears.
        rest &= rest.wrapping_add(1 << start);
    }
    longest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_run_of_bits_is_counted_bit_by_bit_alike() {
        let by_bit = |bits: u64| {
            let (mut longest, mut current) = (0, 0);
            for bit in 0..64 {
                current = if bits >> bit & 1 == 1 { current + 1 } else { 0 };
                longest = longest.max(current);
            }
            longest
        };
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut cases = vec![0, u64::MAX, 1, 1 << 63, u64::MAX >> 1, u64::MAX << 1];
        cases.extend(0..4096);
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            cases.push(seed);
            cases.push(seed | seed >> 1 | seed >> 2);
        }
        for bits in cases {
            assert_eq!(longest_run(bits), by_bit(bits), "{bits:#x}");
        }
    }

    /// Across words, for either mask.
    #[test]
    fn a_span_of_bits_is_read_across_words() {
        let words = [0xf0f0_f0f0_f0f0_f0f0u64, 0x0123_4567_89ab_cdef, 0];
        // Free words as given, booked ones shifted by one word: the two masks differ.
        let mut masks = vec![0u64; 2 * words.len()];
        for (index, word) in words.iter().enumerate() {
            masks[2 * index] = *word;
            masks[2 * index + 1] = if index == 0 { 0 } else { words[index - 1] };
        }
        for first in 0..128 {
            for count in 1..=64 {
                for booked in [0, 1] {
                    let expected = (0..count).fold(0u64, |bits, offset| {
                        let seat = first + offset;
                        let word = match (booked, seat as usize / 64) {
                            (0, word) => words[word],
                            (_, 0) => 0,
                            (_, word) => words[word - 1],
                        };
                        bits | ((word >> (seat % 64)) & 1) << offset
                    });
                    assert_eq!(SeatBits::span(&masks, booked, first, count), expected);
                }
            }
        }
    }

    /// A copy (a snapshot's) keeps the bits it was made with while the original changes,
    /// and shares them until then.
    #[test]
    fn a_copy_keeps_its_bits() {
        let seats = CowVec::<SeatState, SEAT_CHUNK>::from_elem(SEAT_FREE, 3 * 4096);
        let row_free = vec![64; 3 * 4096 / 64];
        let mut bits = SeatBits::of(&seats, &row_free);
        let copy = bits.clone();
        assert!(!bits.masks.is_unique(), "shared by the copy");
        bits.taken(5_000, 5_000 / 64, 63);
        bits.booked(5_000);
        assert!(bits.masks.is_unique(), "copied at the first write");
        assert!(!bits.is_free(5_000) && copy.is_free(5_000));
        assert_eq!(copy, SeatBits::of(&seats, &row_free));
        assert_ne!(bits, copy);
    }
}
