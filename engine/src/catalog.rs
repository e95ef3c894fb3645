//! A tenant's catalog, as the control log records it (`crate::control`): venues with
//! their halls' seat charts, titles (a film, a tour, a festival) that group events, and
//! each event's listing (which title, venue, hall and chart version it was made from).
//! The engine never reads these: an event made from a hall carries the chart expanded
//! into its own seating, so a later chart version never changes it. Every ingress builds
//! the same catalog from the log (`ingress::catalog`).

use crate::ids::EventId;
use serde::{Deserialize, Serialize};

/// A place. Coordinates are in millionths of a degree (about 11 cm): integers, so records
/// compare and hash exactly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VenueRecord {
    pub name: String,
    pub address: String,
    pub city: String,
    /// ISO 3166-1 alpha-2, as events say it.
    pub country: String,
    pub postal_code: String,
    pub lat_microdeg: i32,
    pub lng_microdeg: i32,
    pub halls: Vec<HallRecord>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HallRecord {
    pub name: String,
    pub chart: Chart,
}

/// A hall's seat chart: sections of rows of numbered seats, each row of one category.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chart {
    pub sections: Vec<ChartSection>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChartSection {
    pub name: String,
    pub rows: Vec<ChartRow>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChartRow {
    pub label: String,
    /// Seats numbered from 1.
    pub seats: u32,
    pub category: String,
}

impl Chart {
    /// Every category its rows name, in order of first use.
    pub fn categories(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for row in self.sections.iter().flat_map(|section| &section.rows) {
            if !names.contains(&row.category.as_str()) {
                names.push(&row.category);
            }
        }
        names
    }

    pub fn seat_count(&self) -> u64 {
        self.sections
            .iter()
            .flat_map(|section| &section.rows)
            .map(|row| u64::from(row.seats))
            .sum()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TitleRecord {
    pub name: String,
    /// A free word: `film`, `tour`, `festival`, …
    pub kind: String,
    pub description: String,
}

/// Where an event is listed: its title (if any), and the venue, hall and chart version it
/// was made from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    pub event: EventId,
    pub title: Option<String>,
    pub venue: String,
    pub hall: String,
    /// From 1: the hall's chart as it was when the event was made.
    pub chart_version: u32,
}
