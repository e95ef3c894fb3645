//! Best-available allocation. Rows are ranked by layout order (first section's first
//! row is best). Rows with too few free seats are skipped by their free count, so a
//! sold-out or nearly sold-out venue is not scanned seat by seat.

use crate::engine::{Event, FREE};
use crate::outcome::Items;

/// What `quantity` seats of `category` (any when `None`) would be granted now, or
/// `None` when the request cannot be met. Pure: nothing is changed.
pub(crate) fn find(
    event: &Event,
    quantity: u32,
    category: Option<u16>,
    together: bool,
) -> Option<Items> {
    if quantity == 0 {
        return None;
    }
    match category {
        Some(category) => {
            let entry = &event.categories[category as usize];
            if entry.free() < u64::from(quantity) {
                return None;
            }
            match entry.pool {
                Some(pool) => (event.pools[pool as usize].free() >= quantity)
                    .then_some(Items::Pool { category, quantity }),
                None => find_seats(event, quantity, Some(category), together),
            }
        }
        None if !event.layout.rows.is_empty() => find_seats(event, quantity, None, together),
        // General admission only, any category: the first pool (in category order) that fits.
        None => event
            .pools
            .iter()
            .find(|pool| pool.free() >= quantity)
            .map(|pool| Items::Pool {
                category: pool.category,
                quantity,
            }),
    }
}

fn rows_of(
    event: &Event,
    category: Option<u16>,
    minimum_free: u32,
) -> impl Iterator<Item = usize> + '_ {
    event
        .layout
        .rows
        .iter()
        .enumerate()
        .filter(move |(index, row)| {
            category.is_none_or(|category| row.category == category)
                && event.row_free[*index] >= minimum_free
        })
        .map(|(index, _)| index)
}

fn find_seats(
    event: &Event,
    quantity: u32,
    category: Option<u16>,
    together: bool,
) -> Option<Items> {
    if together {
        return find_together(event, quantity, category);
    }
    let mut seats = Vec::with_capacity(quantity as usize);
    for row in rows_of(event, category, 1) {
        let row = &event.layout.rows[row];
        for seat in row.first_seat..row.first_seat + row.seat_count {
            if event.seats[seat as usize] == FREE {
                seats.push(seat);
                if seats.len() == quantity as usize {
                    return Some(Items::Seats(seats));
                }
            }
        }
    }
    None
}

/// `quantity` adjacent seats in one row. A run that would leave exactly one seat
/// stranded is used only when no better run exists anywhere.
fn find_together(event: &Event, quantity: u32, category: Option<u16>) -> Option<Items> {
    let mut fallback = None;
    for row in rows_of(event, category, quantity) {
        let row = &event.layout.rows[row];
        let end = row.first_seat + row.seat_count;
        let mut seat = row.first_seat;
        while seat < end {
            if event.seats[seat as usize] != FREE {
                seat += 1;
                continue;
            }
            let start = seat;
            while seat < end && event.seats[seat as usize] == FREE {
                seat += 1;
            }
            let run = seat - start;
            if run == quantity || run >= quantity + 2 {
                return Some(Items::Seats((start..start + quantity).collect()));
            }
            if run == quantity + 1 && fallback.is_none() {
                fallback = Some(start);
            }
        }
    }
    fallback.map(|start| Items::Seats((start..start + quantity).collect()))
}
