//! A reserved-seating map: sections → rows → numbered seats, flattened into dense seat
//! indices in rank order (first section's first row first). The layout never changes
//! after an event is created, so the read side builds the same one from the
//! `EventCreated` outcome and both sides agree on every seat index.

use crate::command::SectionSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::Range;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    pub section: u16,
    pub label: String,
    pub first_seat: u32,
    pub seat_count: u32,
    pub category: u16,
}

/// A seat's label ([`Layout::label`]): its section's name, its row's label and its number
/// in the row, joined by `-` when shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeatLabel<'a> {
    pub section: &'a str,
    pub row: &'a str,
    pub number: u32,
}

impl SeatLabel<'_> {
    /// The number's decimal digits, written into `buffer`.
    fn digits<'b>(&self, buffer: &'b mut [u8; 10]) -> &'b str {
        let mut start = buffer.len();
        let mut rest = self.number;
        loop {
            start -= 1;
            buffer[start] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        std::str::from_utf8(&buffer[start..]).expect("ASCII digits")
    }
}

impl<'a> SeatLabel<'a> {
    /// The label as text in `buffer`, if it fits (`None` if not): written without
    /// `core::fmt`, for answers that show a label with one `serialize_str` (see
    /// `ids::IdText`).
    pub fn write_into<'b>(&self, buffer: &'b mut [u8]) -> Option<&'b str> {
        let mut digits = [0u8; 10];
        let digits = self.digits(&mut digits);
        let len = self.section.len() + 1 + self.row.len() + 1 + digits.len();
        let text = buffer.get_mut(..len)?;
        let (section, rest) = text.split_at_mut(self.section.len());
        section.copy_from_slice(self.section.as_bytes());
        rest[0] = b'-';
        let (row, rest) = rest[1..].split_at_mut(self.row.len());
        row.copy_from_slice(self.row.as_bytes());
        rest[0] = b'-';
        rest[1..].copy_from_slice(digits.as_bytes());
        Some(std::str::from_utf8(text).expect("UTF-8 parts joined by ASCII"))
    }
}

impl std::fmt::Display for SeatLabel<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut digits = [0u8; 10];
        formatter.write_str(self.section)?;
        formatter.write_str("-")?;
        formatter.write_str(self.row)?;
        formatter.write_str("-")?;
        formatter.write_str(self.digits(&mut digits))
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "EncodedLayout")]
pub struct Layout {
    pub section_names: Vec<String>,
    /// Rows in rank order; a row's seats are `first_seat .. first_seat + seat_count`.
    pub rows: Vec<Row>,
    /// (section, row label) → row index.
    row_index: BTreeMap<(u16, String), u32>,
    section_index: BTreeMap<String, u16>,
    pub seat_count: u32,
    /// Per category index, the rows from the category's first to past its last: every
    /// row of the category is in there. Derived from `rows` (not encoded: rebuilt on
    /// decode). Perf: a best-available search for one category scans only these rows;
    /// the stadium's premium request used to walk past all of its standard rows.
    #[serde(skip)]
    category_rows: Vec<Range<u32>>,
    /// Per block of [`ROW_BLOCK_SEATS`] seats, the row of the block's first seat. Derived
    /// from `rows` (not encoded: rebuilt on decode). Perf: [`Layout::row_of`] searches
    /// only the few rows a block spans instead of every row (a stadium has 2,000).
    #[serde(skip)]
    block_rows: Vec<u32>,
}

/// Seats per entry of `Layout::block_rows`: 0.25 bytes per seat of the layout (shared by
/// every event with the same seating).
const ROW_BLOCK_SEATS: u32 = 16;

/// What a [`Layout`] encodes: every field but the derived `category_rows`, in order.
#[derive(Deserialize)]
struct EncodedLayout {
    section_names: Vec<String>,
    rows: Vec<Row>,
    row_index: BTreeMap<(u16, String), u32>,
    section_index: BTreeMap<String, u16>,
    seat_count: u32,
}

impl From<EncodedLayout> for Layout {
    fn from(encoded: EncodedLayout) -> Layout {
        Layout {
            category_rows: category_rows(&encoded.rows),
            block_rows: block_rows(&encoded.rows, encoded.seat_count),
            section_names: encoded.section_names,
            rows: encoded.rows,
            row_index: encoded.row_index,
            section_index: encoded.section_index,
            seat_count: encoded.seat_count,
        }
    }
}

/// Per category index, the span of rows from its first row to past its last.
fn category_rows(rows: &[Row]) -> Vec<Range<u32>> {
    let mut spans: Vec<Range<u32>> = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        let category = row.category as usize;
        if spans.len() <= category {
            spans.resize(category + 1, 0..0);
        }
        let index = u32::try_from(index).expect("rows were validated");
        let span = &mut spans[category];
        if span.start == span.end {
            *span = index..index + 1;
        } else {
            span.end = index + 1;
        }
    }
    spans
}

/// Per block of `ROW_BLOCK_SEATS` seats, the row of the block's first seat (the row
/// `Layout::row_of` finds by searching all rows).
fn block_rows(rows: &[Row], seat_count: u32) -> Vec<u32> {
    let mut blocks = Vec::with_capacity(seat_count.div_ceil(ROW_BLOCK_SEATS) as usize);
    for (index, row) in rows.iter().enumerate() {
        let index = u32::try_from(index).expect("rows were validated");
        // The blocks whose first seat is in this row (none for a row without seats).
        while (blocks.len() as u32) * ROW_BLOCK_SEATS < row.first_seat + row.seat_count {
            assert!(blocks.len() as u32 * ROW_BLOCK_SEATS >= row.first_seat);
            blocks.push(index);
        }
    }
    assert_eq!(blocks.len(), seat_count.div_ceil(ROW_BLOCK_SEATS) as usize);
    blocks
}

impl Layout {
    /// Builds the layout; `category_of` maps a row's category name to its index.
    /// The caller has validated names (no '-', unique) and sizes.
    pub fn build(sections: &[SectionSpec], category_of: impl Fn(&str) -> u16) -> Layout {
        let mut layout = Layout::default();
        for (section_index, section) in sections.iter().enumerate() {
            let section_index = u16::try_from(section_index).expect("sections were validated");
            layout.section_names.push(section.name.clone());
            layout
                .section_index
                .insert(section.name.clone(), section_index);
            for row in &section.rows {
                let row_number = u32::try_from(layout.rows.len()).expect("rows were validated");
                layout
                    .row_index
                    .insert((section_index, row.label.clone()), row_number);
                layout.rows.push(Row {
                    section: section_index,
                    label: row.label.clone(),
                    first_seat: layout.seat_count,
                    seat_count: row.seats,
                    category: category_of(&row.category),
                });
                layout.seat_count += row.seats;
            }
        }
        layout.category_rows = category_rows(&layout.rows);
        layout.block_rows = block_rows(&layout.rows, layout.seat_count);
        layout
    }

    /// The rows a category's rows lie among (empty for a category without seats): every
    /// row of `category` is in this range, rows of other categories may be too.
    pub fn rows_of_category(&self, category: u16) -> Range<usize> {
        self.category_rows
            .get(category as usize)
            .map_or(0..0, |span| span.start as usize..span.end as usize)
    }

    /// `A-1-7` → seat index; `None` when no such seat exists.
    pub fn seat_of(&self, label: &str) -> Option<u32> {
        let (rest, number) = label.rsplit_once('-')?;
        let (section, row) = rest.split_once('-')?;
        if number.is_empty()
            || number.len() > 9
            || !number.bytes().all(|b| b.is_ascii_digit())
            || number.starts_with('0')
        {
            return None;
        }
        let number: u32 = number.parse().ok()?;
        let section = *self.section_index.get(section)?;
        let row = &self.rows[*self.row_index.get(&(section, row.to_string()))? as usize];
        (1..=row.seat_count)
            .contains(&number)
            .then(|| row.first_seat + number - 1)
    }

    /// The row that holds a seat: the row of its block's first seat when the seat is in it
    /// too (most often), or the next row, else a search over the rows' first seats, among
    /// the rows from that one to the one of the next block's first seat.
    pub fn row_of(&self, seat: u32) -> u32 {
        assert!(seat < self.seat_count, "seat index out of range");
        let block = (seat / ROW_BLOCK_SEATS) as usize;
        let low = self.block_rows[block] as usize;
        // Perf: most often the seat is in the row of its block's first seat (a row with
        // seats, starting at or before the seat), or else in the row after it: a
        // comparison or two, no search (a row of 25 seats leaves a third of its seats in
        // blocks that start in the row before).
        let first = &self.rows[low];
        if seat - first.first_seat < first.seat_count {
            return low as u32;
        }
        if let Some(next) = self.rows.get(low + 1) {
            if seat.wrapping_sub(next.first_seat) < next.seat_count {
                return low as u32 + 1;
            }
        }
        self.row_of_searched(seat, block, low)
    }

    /// [`Layout::row_of`] past its first two rows. Out of line: rows without seats, or
    /// blocks spanning more than two rows.
    #[inline(never)]
    fn row_of_searched(&self, seat: u32, block: usize, low: usize) -> u32 {
        let high = self
            .block_rows
            .get(block + 1)
            .map_or(self.rows.len(), |&next| next as usize + 1);
        // Every row before `low` starts at or before the seat, every row from `high` on
        // after it: the seat's row is the last of `low..high` that starts at or before it.
        // Perf: a block spans a few rows, stepped through; a binary search only past that
        // (rows without seats).
        let mut row = low;
        if high - low <= 8 {
            while row + 1 < high && self.rows[row + 1].first_seat <= seat {
                row += 1;
            }
        } else {
            row += self.rows[low..high].partition_point(|row| row.first_seat <= seat) - 1;
        }
        // Rows with zero seats share a first_seat with their successor; skip back over them.
        while self.rows[row].seat_count == 0 {
            row -= 1;
        }
        debug_assert!({
            let found = &self.rows[row];
            (found.first_seat..found.first_seat + found.seat_count).contains(&seat)
        });
        row as u32
    }

    /// A seat's label, `<section>-<row>-<number>` (the number from 1 in its row): shown
    /// where it is written (`Display`), with no `String` made for it.
    pub fn label(&self, seat: u32) -> SeatLabel<'_> {
        let row = &self.rows[self.row_of(seat) as usize];
        SeatLabel {
            section: &self.section_names[row.section as usize],
            row: &row.label,
            number: seat - row.first_seat + 1,
        }
    }

    /// [`Layout::label`] as a `String`.
    pub fn label_of(&self, seat: u32) -> String {
        let label = self.label(seat);
        // Perf: pieces pushed into one exact-size string, not `format!`.
        let mut digits = [0u8; 10];
        let digits = label.digits(&mut digits);
        let mut text =
            String::with_capacity(label.section.len() + label.row.len() + 2 + digits.len());
        text.push_str(label.section);
        text.push('-');
        text.push_str(label.row);
        text.push('-');
        text.push_str(digits);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::RowSpec;

    fn sections() -> Vec<SectionSpec> {
        let row = |label: &str, seats, category: &str| RowSpec {
            label: label.into(),
            seats,
            category: category.into(),
        };
        vec![
            SectionSpec {
                name: "A".into(),
                rows: vec![row("1", 3, "Gold"), row("2", 2, "Silver")],
            },
            SectionSpec {
                name: "Balcony".into(),
                rows: vec![row("AA", 4, "Silver")],
            },
        ]
    }

    #[test]
    fn labels_and_indices_round_trip() {
        let layout = Layout::build(&sections(), |name| if name == "Gold" { 0 } else { 1 });
        assert_eq!(layout.seat_count, 9);
        for seat in 0..layout.seat_count {
            assert_eq!(layout.seat_of(&layout.label_of(seat)), Some(seat));
            // Shown, the label is the same text; written into a buffer, too, when it fits.
            let label = layout.label(seat);
            assert_eq!(label.to_string(), layout.label_of(seat));
            let mut buffer = [0u8; 64];
            assert_eq!(label.write_into(&mut buffer), Some(&*layout.label_of(seat)));
            let len = layout.label_of(seat).len();
            assert_eq!(
                label.write_into(&mut buffer[..len]),
                Some(&*layout.label_of(seat))
            );
            assert_eq!(label.write_into(&mut buffer[..len - 1]), None);
        }
        assert_eq!(layout.seat_of("A-1-1"), Some(0));
        assert_eq!(layout.seat_of("A-2-2"), Some(4));
        assert_eq!(layout.seat_of("Balcony-AA-4"), Some(8));
        assert_eq!(layout.label_of(0), "A-1-1");
        assert_eq!(layout.label_of(8), "Balcony-AA-4");
        // Seat numbers of several digits, up to u32's ten.
        let wide = |seats| {
            Layout::build(
                &[SectionSpec {
                    name: "S".into(),
                    rows: vec![RowSpec {
                        label: "R".into(),
                        seats,
                        category: "Gold".into(),
                    }],
                }],
                |_| 0,
            )
        };
        assert_eq!(wide(1_234).label_of(1_233), "S-R-1234");
        assert_eq!(wide(1_234).label_of(9), "S-R-10");
        assert_eq!(wide(1_234).label(1_233).to_string(), "S-R-1234");
        assert_eq!(layout.rows[2].category, 1);
        assert_eq!(layout.rows_of_category(0), 0..1);
        assert_eq!(layout.rows_of_category(1), 1..3);
        assert_eq!(layout.rows_of_category(2), 0..0);
        for bad in [
            "A-1-0",
            "A-1-4",
            "A-3-1",
            "B-1-1",
            "A-1",
            "A-1-01",
            "",
            "A--1",
            "Balcony-AA-x",
        ] {
            assert_eq!(layout.seat_of(bad), None, "{bad:?}");
        }
    }

    /// `row_of` through the block index finds the row a search of every row finds, for
    /// every seat, with rows shorter and longer than a block and rows without seats.
    #[test]
    fn row_of_finds_every_seat_s_row() {
        let row = |label: usize, seats| RowSpec {
            label: label.to_string(),
            seats,
            category: "Gold".into(),
        };
        // Blocks of one to a dozen rows (the short ones are stepped through, the long
        // ones searched).
        let sizes = [
            0, 1, 0, 0, 3, 16, 15, 17, 0, 1, 1, 40, 2, 0, 33, 5, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1,
            1, 0, 0, 2, 7, 0,
        ];
        let sections = vec![SectionSpec {
            name: "A".into(),
            rows: sizes
                .iter()
                .enumerate()
                .map(|(label, seats)| row(label, *seats))
                .collect(),
        }];
        let layout = Layout::build(&sections, |_| 0);
        assert_eq!(layout.seat_count, sizes.iter().sum::<u32>());
        let spans = layout
            .block_rows
            .windows(2)
            .map(|pair| pair[1] - pair[0] + 1);
        assert!(spans.clone().any(|span| span > 8) && spans.clone().any(|span| span <= 8));
        for seat in 0..layout.seat_count {
            let expected = layout
                .rows
                .iter()
                .position(|row| (row.first_seat..row.first_seat + row.seat_count).contains(&seat))
                .unwrap();
            assert_eq!(layout.row_of(seat) as usize, expected, "seat {seat}");
        }
    }

    /// The derived row spans are not encoded (the bytes are the fields in order, as
    /// before they existed) and are rebuilt on decode.
    #[test]
    fn a_layout_encodes_its_fields_only_and_decodes_whole() {
        let layout = Layout::build(&sections(), |name| if name == "Gold" { 0 } else { 1 });
        let bytes = bincode::serde::encode_to_vec(&layout, bincode::config::standard()).unwrap();
        let fields = (
            &layout.section_names,
            &layout.rows,
            &layout.row_index,
            &layout.section_index,
            layout.seat_count,
        );
        let expected = bincode::serde::encode_to_vec(fields, bincode::config::standard()).unwrap();
        assert_eq!(bytes, expected);
        let (decoded, _): (Layout, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        assert_eq!(decoded, layout);
        assert_eq!(decoded.rows_of_category(1), 1..3);
    }
}
