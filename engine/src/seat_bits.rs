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
//! the rows with enough free seats are found 64 rows per word. A longer row is read a
//! word at a time as its maximal runs ([`SeatBits::each_free_run`]); a request above
//! [`ROWS_WITH_MAX`] scans the rows' free counts. Both give the seat-by-seat answers
//! (`allocate`'s tests compare them).
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

use crate::ledger::{SeatState, SEAT_FREE, TAG_BOOKED, TAG_HELD};
use crate::snapshot::Chunk;

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
    /// `s` is booked. A seat neither free nor booked is held; none is both, and no bit
    /// past the last seat is set.
    masks: Masks,
    /// How many seats the masks have (the rest of the last word is no seat).
    seat_count: u32,
    /// `ROWS_WITH_MAX` sets of rows, `row_words` words each: bit `r % 64` of word
    /// `(k - 1) * row_words + r / 64` says row `r` has at least `k` free seats.
    rows_with: Vec<u64>,
    row_words: usize,
}

/// A seat's state as its two bits say it: `(free, booked)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SeatKind {
    Free,
    Held,
    Booked,
}

impl SeatKind {
    /// The kind's bits: `(free, booked)`.
    #[inline(always)]
    fn bits(self) -> (u64, u64) {
        match self {
            SeatKind::Free => (1, 0),
            SeatKind::Held => (0, 0),
            SeatKind::Booked => (0, 1),
        }
    }

    /// The seat word of the kind, as a snapshot encodes a free or booked seat (a held
    /// seat's word also names its hold's slot: see `SeatLedger`'s encoding) and as the
    /// seat-by-seat paths of `allocate` read a long row.
    #[inline]
    pub(crate) fn state(self) -> SeatState {
        match self {
            SeatKind::Free => SEAT_FREE,
            SeatKind::Held => TAG_HELD,
            SeatKind::Booked => TAG_BOOKED,
        }
    }
}

impl Default for SeatBits {
    fn default() -> SeatBits {
        SeatBits {
            masks: Masks::from(Vec::new()),
            seat_count: 0,
            rows_with: Vec::new(),
            row_words: 0,
        }
    }
}

impl SeatBits {
    /// The bits of `seat_count` seats of the kinds `kinds` gives in seat order, whose rows
    /// have `row_free` free seats each.
    pub(crate) fn of(
        seat_count: u32,
        kinds: impl IntoIterator<Item = SeatKind>,
        row_free: &[u32],
    ) -> SeatBits {
        let words = (seat_count as usize).div_ceil(64);
        let mut masks = vec![0u64; 2 * words];
        let mut counted = 0u32;
        for (seat, kind) in kinds.into_iter().enumerate() {
            let (word, shift) = (free_word(seat as u32), seat % 64);
            let (free, booked) = kind.bits();
            masks[word] |= free << shift;
            masks[word + 1] |= booked << shift;
            counted += 1;
        }
        assert_eq!(counted, seat_count, "a kind per seat");
        SeatBits::of_masks(seat_count, Masks::from(masks), row_free)
    }

    /// Bits of these masks (interleaved, as [`SeatBits::masks`] keeps them), whose rows
    /// have `row_free` free seats each. The masks must be well formed ([`SeatBits::check_masks`]).
    fn of_masks(seat_count: u32, masks: Masks, row_free: &[u32]) -> SeatBits {
        let row_words = row_free.len().div_ceil(64);
        let mut bits = SeatBits {
            masks,
            seat_count,
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

    /// Why `masks` cannot be the masks of `seat_count` seats: the wrong length, a seat
    /// both free and booked, or a bit past the last seat.
    pub(crate) fn check_masks(seat_count: u32, masks: &[u64]) -> Result<(), &'static str> {
        if masks.len() != 2 * (seat_count as usize).div_ceil(64) {
            return Err("the seat masks' length is not the seats'");
        }
        for (pair, words) in masks.chunks_exact(2).enumerate() {
            if words[0] & words[1] != 0 {
                return Err("a seat is both free and booked");
            }
            let first_seat = pair as u64 * 64;
            let past = u64::from(seat_count).saturating_sub(first_seat).min(64);
            let outside = if past == 64 { 0 } else { u64::MAX << past };
            if (words[0] | words[1]) & outside != 0 {
                return Err("a seat mask has a bit past the last seat");
            }
        }
        Ok(())
    }

    /// The interleaved masks (for an encoding of the ledger alone).
    pub(crate) fn masks(&self) -> &[u64] {
        &self.masks
    }

    /// [`SeatBits::of_masks`] from decoded words, checked first.
    pub(crate) fn of_decoded_masks(
        seat_count: u32,
        masks: Vec<u64>,
        row_free: &[u32],
    ) -> Result<SeatBits, &'static str> {
        SeatBits::check_masks(seat_count, &masks)?;
        Ok(SeatBits::of_masks(seat_count, Masks::from(masks), row_free))
    }

    pub(crate) fn seat_count(&self) -> u32 {
        self.seat_count
    }

    /// The bytes the masks and the rows' sets take.
    pub(crate) fn bytes(&self) -> usize {
        (self.masks.len() + self.rows_with.len()) * std::mem::size_of::<u64>()
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

    /// Seat `seat`'s kind (it must be one of the ledger's seats).
    #[inline]
    pub(crate) fn kind(&self, seat: u32) -> SeatKind {
        assert!(seat < self.seat_count, "seat {seat} is one of the seats");
        let (index, shift) = (free_word(seat), seat % 64);
        match (
            self.masks[index] >> shift & 1,
            self.masks[index + 1] >> shift & 1,
        ) {
            (1, _) => SeatKind::Free,
            (_, 1) => SeatKind::Booked,
            _ => SeatKind::Held,
        }
    }

    /// Every seat's kind, in seat order.
    pub(crate) fn kinds(&self) -> impl Iterator<Item = SeatKind> + '_ {
        (0..self.seat_count).map(|seat| self.kind(seat))
    }

    /// The seat words of the `count` seats from `first` (see [`SeatKind::state`]), for
    /// checks against the seat-by-seat references (debug builds and tests only: it
    /// allocates).
    pub(crate) fn states(&self, first: u32, count: u32) -> Vec<SeatState> {
        (first..first + count)
            .map(|seat| self.kind(seat).state())
            .collect()
    }

    /// Moves every seat of `seats` from kind `from` to kind `to`, when each is one of the
    /// seats and of kind `from`. At the first that is not (a seat listed twice is not, the
    /// second time), the seats moved so far are moved back and it is returned, so a
    /// refused move changes nothing. The rows' sets are the caller's ([`SeatBits::row_taken`],
    /// [`SeatBits::row_freed`]). Perf: a seat's two bits share a cache line (the masks are
    /// interleaved), and one copy-on-write check covers the whole list; the 4-byte seat
    /// word each transition read and wrote was a cache miss on nearly every seat (12% of
    /// the standard mix, session 38). Always inlined: each caller's kinds are constants,
    /// so a seat is a test of its pair of words against one value and two writes.
    #[inline(always)]
    pub(crate) fn try_move_each(
        &mut self,
        seats: &[u32],
        from: SeatKind,
        to: SeatKind,
    ) -> Result<(), u32> {
        let seat_count = self.seat_count;
        let (from_free, from_booked) = from.bits();
        let (to_free, to_booked) = to.bits();
        let masks = self.masks_mut();
        for (done, &seat) in seats.iter().enumerate() {
            let index = free_word(seat);
            // One bounds check for the pair (a seat past the masks is no seat either).
            let pair = match masks.get_mut(index..index + 2) {
                Some(pair) if seat < seat_count => pair,
                _ => return Err(SeatBits::undo_moves(masks, &seats[..done], from, seat)),
            };
            let shift = seat % 64;
            let bit = 1u64 << shift;
            let (free, booked) = (pair[0] & bit, pair[1] & bit);
            if (free, booked) != (from_free << shift, from_booked << shift) {
                return Err(SeatBits::undo_moves(masks, &seats[..done], from, seat));
            }
            pair[0] = pair[0] & !bit | to_free << shift;
            pair[1] = pair[1] & !bit | to_booked << shift;
        }
        Ok(())
    }

    /// Moves `done` back to kind `from` (a refused [`SeatBits::try_move_each`]), returning
    /// `refused`.
    #[cold]
    #[inline(never)]
    fn undo_moves(masks: &mut [u64], done: &[u32], from: SeatKind, refused: u32) -> u32 {
        let (free, booked) = from.bits();
        for &seat in done {
            let (index, shift) = (free_word(seat), seat % 64);
            let bit = 1u64 << shift;
            masks[index] = masks[index] & !bit | free << shift;
            masks[index + 1] = masks[index + 1] & !bit | booked << shift;
        }
        refused
    }

    /// A seat of `row` was taken (held): the row has `free` free seats now.
    #[inline]
    pub(crate) fn row_taken(&mut self, row: usize, free: u32) {
        if free < ROWS_WITH_MAX {
            self.set_row_with(free + 1, row, false);
        }
    }

    /// A seat of `row` came free: the row has `free` free seats now.
    #[inline]
    pub(crate) fn row_freed(&mut self, row: usize, free: u32) {
        if free <= ROWS_WITH_MAX {
            self.set_row_with(free, row, true);
        }
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

    /// The longest run of seats not booked among the `count` seats from `first` (a row of
    /// any length). Perf: the booked mask alone, a word at a time, and a word with no
    /// booked seat (a long row's open stretch) is one test and one add: a row of a
    /// million seats was recounted through [`SeatBits::each_free_run`] at about 3 ns a word
    /// (both masks read, a bit scan), 50 us a booking.
    pub(crate) fn longest_open_run(&self, first: u32, count: u32) -> u32 {
        // (the longest run so far, the run going on at the last seat fed)
        let mut runs = (0u32, 0u32);
        let end = first + count;
        let mut seat = first;
        // The head, up to the first word boundary.
        if !seat.is_multiple_of(64) && seat < end {
            let width = (64 - seat % 64).min(end - seat);
            feed_open(&mut runs, self.row_open(seat, width), width);
            seat += width;
        }
        // Whole words: the booked word of each.
        while seat + 64 <= end {
            let booked = self.masks[free_word(seat) + 1];
            if booked == 0 {
                runs.1 += 64;
            } else {
                feed_open(&mut runs, !booked, 64);
            }
            seat += 64;
        }
        if seat < end {
            let width = end - seat;
            feed_open(&mut runs, self.row_open(seat, width), width);
        }
        runs.0.max(runs.1)
    }

    /// Calls `visit(offset, length)` for each maximal run of free seats of the row of
    /// `count` seats from `first` (of any length), in seat order (`offset` from the row's
    /// first seat), until it breaks (the runs not booked are counted by
    /// [`SeatBits::longest_open_run`]). Perf: a word of 64 seats at a time, a bit scan a
    /// run; a run across words is one run. For rows longer than [`ROW_BITS_MAX`] (which
    /// once built a vector of the row's seat words per call: a row of a million seats, 4
    /// MB per booking).
    pub(crate) fn each_free_run(
        &self,
        first: u32,
        count: u32,
        mut visit: impl FnMut(u32, u32) -> std::ops::ControlFlow<()>,
    ) {
        // A run reaching the end of the previous word: it may go on in this one.
        let mut pending: Option<(u32, u32)> = None;
        let mut offset = 0;
        while offset < count {
            let width = (count - offset).min(ROW_BITS_MAX);
            let word = self.row_free(first + offset, width);
            // Perf: a word all of whose seats are in the run (a free stretch of a long
            // row) extends it whole, without a bit scan (a row of a million seats was 5 ns
            // a word through the scan).
            if width == ROW_BITS_MAX && word == u64::MAX && offset + width < count {
                pending = Some(match pending {
                    Some((from, so_far)) => (from, so_far + width),
                    None => (offset, width),
                });
                offset += width;
                continue;
            }
            let mut rest = word;
            while rest != 0 {
                let start = rest.trailing_zeros();
                let length = (!(rest >> start)).trailing_zeros().min(width - start);
                // Adding the run's lowest bit carries through it: the run clears.
                rest &= rest.wrapping_add(1 << start);
                let run = match pending.take() {
                    Some((from, so_far)) if start == 0 => (from, so_far + length),
                    Some(ended) => {
                        if visit(ended.0, ended.1).is_break() {
                            return;
                        }
                        (offset + start, length)
                    }
                    None => (offset + start, length),
                };
                if start + length == width && offset + width < count {
                    pending = Some(run);
                } else if visit(run.0, run.1).is_break() {
                    return;
                }
            }
            if word == 0 {
                // No run in this word to continue the pending one (or to end it above).
                if let Some(ended) = pending.take() {
                    if visit(ended.0, ended.1).is_break() {
                        return;
                    }
                }
            }
            offset += width;
        }
        if let Some(ended) = pending {
            let _ = visit(ended.0, ended.1);
        }
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

/// Feeds the next `width` seats' open bits (bit `i`: seat `i` of them) to `runs`: (the
/// longest run so far, the run going on at the last seat fed).
#[inline]
fn feed_open(runs: &mut (u32, u32), open: u64, width: u32) {
    let (longest, current) = runs;
    if open == u64::MAX >> (64 - width) {
        *current += width;
        return;
    }
    *longest = (*longest)
        .max(*current + open.trailing_ones())
        .max(longest_run(open));
    // The open seats at the word's end start the next run.
    *current = (open << (64 - width)).leading_ones();
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
        let seat_count = 3 * 4096;
        let row_free = vec![64; 3 * 4096 / 64];
        let all_free = || std::iter::repeat_n(SeatKind::Free, seat_count as usize);
        let mut bits = SeatBits::of(seat_count, all_free(), &row_free);
        let copy = bits.clone();
        assert!(!bits.masks.is_unique(), "shared by the copy");
        assert_eq!(
            bits.try_move_each(&[5_000], SeatKind::Free, SeatKind::Held),
            Ok(())
        );
        bits.row_taken(5_000 / 64, 63);
        assert_eq!(
            bits.try_move_each(&[5_000], SeatKind::Held, SeatKind::Booked),
            Ok(())
        );
        assert!(bits.masks.is_unique(), "copied at the first write");
        assert!(!bits.is_free(5_000) && copy.is_free(5_000));
        assert_eq!(bits.kind(5_000), SeatKind::Booked);
        assert_eq!(copy, SeatBits::of(seat_count, all_free(), &row_free));
        assert_ne!(bits, copy);
    }

    /// A move changes each listed seat from its kind to the next, or, at the first seat
    /// that is not of the kind (or is no seat, or is listed again), nothing at all.
    #[test]
    fn a_refused_move_changes_nothing() {
        use SeatKind::{Booked, Free, Held};
        let kinds = [Free, Free, Held, Booked, Free, Held, Free];
        let mut bits = SeatBits::of(7, kinds, &[4, 3]);
        let before = bits.clone();
        for (seats, from, to, refused) in [
            (&[0, 1, 2][..], Free, Held, 2),
            (&[0, 4, 0][..], Free, Held, 0),
            (&[6, 7][..], Free, Held, 7),
            (&[2, 5, 3][..], Held, Free, 3),
            (&[3, 3][..], Booked, Free, 3),
            (&[2, 64][..], Held, Booked, 64),
        ] {
            assert_eq!(bits.try_move_each(seats, from, to), Err(refused));
            assert_eq!(bits, before, "{seats:?} refused at {refused}");
        }
        assert_eq!(bits.try_move_each(&[5, 2], Held, Booked), Ok(()));
        assert_eq!(bits.try_move_each(&[3], Booked, Free), Ok(()));
        let after: Vec<SeatKind> = bits.kinds().collect();
        assert_eq!(after, [Free, Free, Booked, Free, Free, Booked, Free]);
        assert_eq!(SeatBits::check_masks(7, bits.masks()), Ok(()));
        assert!(SeatBits::check_masks(7, &[0b1000_0000, 0]).is_err());
        assert!(SeatBits::check_masks(7, &[1, 1]).is_err());
        assert!(SeatBits::check_masks(65, &[0, 0]).is_err());
    }
}
