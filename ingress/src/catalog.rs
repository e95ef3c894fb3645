//! The tenants' catalogs as this ingress sees them (`engine::catalog`): venues with their
//! halls' versioned seat charts, titles, and each event's listing, built from the control
//! log's `VenueSaved`, `TitleSaved` and `EventListed` records in log order, so every
//! ingress holds the same catalog (and the same chart versions) at the same offset.
//!
//! Everything is keyed by tenant first: one tenant's admin never reads or changes
//! another's venues or titles (another tenant's id is simply not found).

use engine::catalog::{Chart, Listing, TitleRecord, VenueRecord};
use engine::EventId;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Venues one tenant may have (a limit on everything).
pub(crate) const VENUES_PER_TENANT_MAX: usize = 10_000;
/// Titles one tenant may have.
pub(crate) const TITLES_PER_TENANT_MAX: usize = 100_000;
/// Halls one venue may have.
pub(crate) const HALLS_PER_VENUE_MAX: usize = 50;
/// Sections one chart may have.
pub(crate) const CHART_SECTIONS_MAX: usize = 200;
/// Rows one chart may have (over all its sections): a chart travels in one control record.
pub(crate) const CHART_ROWS_MAX: usize = 2_000;
/// Chart versions kept per hall: past it the oldest are forgotten (events made from them
/// keep their seating; only `GET` no longer shows that version).
pub(crate) const CHART_VERSIONS_KEPT_MAX: usize = 100;

/// A venue and its halls' chart versions (oldest first; the last is current).
#[derive(Clone, Debug)]
pub(crate) struct Venue {
    pub(crate) record: VenueRecord,
    /// Hall name → (version, chart) of every version kept.
    pub(crate) charts: BTreeMap<String, Vec<(u32, Chart)>>,
    /// The postal code as searches compare it ([`postal_key`]).
    pub(crate) postal_key: String,
}

/// Postal codes compare without spaces and case.
pub(crate) fn postal_key(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_uppercase)
        .collect()
}

impl Venue {
    /// The hall's current chart and its version.
    pub(crate) fn current_chart(&self, hall: &str) -> Option<(u32, &Chart)> {
        self.charts
            .get(hall)
            .and_then(|versions| versions.last())
            .map(|(version, chart)| (*version, chart))
    }
}

#[derive(Default)]
pub(crate) struct Catalog {
    /// Tenant → venue id → venue (nested, so a look-up by `&str` allocates nothing: a
    /// search looks up the venue of every event it considers).
    venues: BTreeMap<String, BTreeMap<String, Venue>>,
    /// Tenant → title id → title.
    titles: BTreeMap<String, BTreeMap<String, TitleRecord>>,
    /// Title id → its tenant (ids are random, so unique), for the public reads.
    title_owners: HashMap<String, String>,
    listings: HashMap<EventId, (String, Listing)>,
    /// (tenant, title) → its listed events.
    shows: BTreeMap<(String, String), BTreeSet<EventId>>,
    /// (tenant, venue) → the events listed there: a search by place looks at the venues
    /// first, then only at their events.
    at_venue: HashMap<(String, String), BTreeSet<EventId>>,
}

/// Why a catalog record was skipped (identically on every ingress).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Skipped {
    TooManyVenues,
    TooManyTitles,
    TitleOfAnotherTenant,
}

fn key(tenant: &str, id: &str) -> (String, String) {
    (tenant.to_string(), id.to_string())
}

impl Catalog {
    pub(crate) fn venue(&self, tenant: &str, venue: &str) -> Option<&Venue> {
        self.venues.get(tenant)?.get(venue)
    }

    pub(crate) fn venues_of<'a>(
        &'a self,
        tenant: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Venue)> + 'a {
        self.venues
            .get(tenant)
            .into_iter()
            .flatten()
            .map(|(id, venue)| (id.as_str(), venue))
    }

    pub(crate) fn title(&self, tenant: &str, title: &str) -> Option<&TitleRecord> {
        self.titles.get(tenant)?.get(title)
    }

    pub(crate) fn titles_of<'a>(
        &'a self,
        tenant: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a TitleRecord)> + 'a {
        self.titles
            .get(tenant)
            .into_iter()
            .flatten()
            .map(|(id, title)| (id.as_str(), title))
    }

    /// A title by id alone (the public reads): its tenant and record.
    pub(crate) fn title_by_id(&self, title: &str) -> Option<(&str, &TitleRecord)> {
        let tenant = self.title_owners.get(title)?;
        Some((tenant.as_str(), self.title(tenant, title)?))
    }

    /// Every tenant's titles: (tenant, id, title).
    pub(crate) fn all_titles(&self) -> impl Iterator<Item = (&str, &str, &TitleRecord)> {
        self.titles.iter().flat_map(|(tenant, titles)| {
            titles
                .iter()
                .map(move |(id, title)| (tenant.as_str(), id.as_str(), title))
        })
    }

    /// The event's listing and its tenant.
    pub(crate) fn listing(&self, event: EventId) -> Option<(&str, &Listing)> {
        self.listings
            .get(&event)
            .map(|(tenant, listing)| (tenant.as_str(), listing))
    }

    /// The events listed under the title.
    pub(crate) fn shows(&self, tenant: &str, title: &str) -> impl Iterator<Item = EventId> + '_ {
        self.shows
            .get(&key(tenant, title))
            .into_iter()
            .flat_map(|events| events.iter().copied())
    }

    /// Every tenant's venues: (tenant, id, venue).
    pub(crate) fn all_venues(&self) -> impl Iterator<Item = (&str, &str, &Venue)> {
        self.venues.iter().flat_map(|(tenant, venues)| {
            venues
                .iter()
                .map(move |(id, venue)| (tenant.as_str(), id.as_str(), venue))
        })
    }

    /// The events listed at the venue.
    pub(crate) fn events_at(
        &self,
        tenant: &str,
        venue: &str,
    ) -> impl Iterator<Item = EventId> + '_ {
        self.at_venue
            .get(&key(tenant, venue))
            .into_iter()
            .flat_map(|events| events.iter().copied())
    }

    /// How many events are listed at the venue.
    pub(crate) fn event_count_at(&self, tenant: &str, venue: &str) -> usize {
        self.at_venue
            .get(&key(tenant, venue))
            .map_or(0, BTreeSet::len)
    }

    /// How many events are listed under the title.
    pub(crate) fn show_count(&self, tenant: &str, title: &str) -> usize {
        self.shows.get(&key(tenant, title)).map_or(0, BTreeSet::len)
    }

    /// The venue an event is listed at.
    pub(crate) fn venue_of(&self, event: EventId) -> Option<&Venue> {
        let (tenant, listing) = self.listing(event)?;
        self.venue(tenant, &listing.venue)
    }

    pub(crate) fn venue_count(&self, tenant: &str) -> usize {
        self.venues.get(tenant).map_or(0, BTreeMap::len)
    }

    pub(crate) fn title_count(&self, tenant: &str) -> usize {
        self.titles.get(tenant).map_or(0, BTreeMap::len)
    }

    /// A venue made or changed: halls whose chart differs from their current one get the
    /// next version.
    pub(crate) fn save_venue(
        &mut self,
        tenant: &str,
        venue: &str,
        record: VenueRecord,
    ) -> Result<(), Skipped> {
        let existing = self.venue(tenant, venue).is_some();
        if !existing && self.venue_count(tenant) >= VENUES_PER_TENANT_MAX {
            return Err(Skipped::TooManyVenues);
        }
        let entry = self
            .venues
            .entry(tenant.to_string())
            .or_default()
            .entry(venue.to_string())
            .or_insert_with(|| Venue {
                record: record.clone(),
                charts: BTreeMap::new(),
                postal_key: String::new(),
            });
        for hall in &record.halls {
            let versions = entry.charts.entry(hall.name.clone()).or_default();
            let last = versions.last().map(|(version, chart)| (*version, chart));
            match last {
                Some((_, chart)) if *chart == hall.chart => {}
                _ => {
                    let next = last.map_or(1, |(version, _)| version + 1);
                    versions.push((next, hall.chart.clone()));
                    if versions.len() > CHART_VERSIONS_KEPT_MAX {
                        versions.remove(0);
                    }
                }
            }
        }
        entry.postal_key = postal_key(&record.postal_code);
        entry.record = record;
        Ok(())
    }

    pub(crate) fn save_title(
        &mut self,
        tenant: &str,
        title: &str,
        record: TitleRecord,
    ) -> Result<(), Skipped> {
        let existing = self.title(tenant, title).is_some();
        if !existing && self.title_count(tenant) >= TITLES_PER_TENANT_MAX {
            return Err(Skipped::TooManyTitles);
        }
        if let Some(owner) = self.title_owners.get(title) {
            if owner != tenant {
                // Another tenant's id: ids are random, so only a forged record does this.
                return Err(Skipped::TitleOfAnotherTenant);
            }
        }
        self.title_owners
            .insert(title.to_string(), tenant.to_string());
        self.titles
            .entry(tenant.to_string())
            .or_default()
            .insert(title.to_string(), record);
        Ok(())
    }

    /// Lists (or re-lists) an event; the previous listing's title loses it.
    pub(crate) fn list(&mut self, tenant: &str, listing: Listing) {
        let event = listing.event;
        if let Some((old_tenant, old)) = self.listings.remove(&event) {
            if let Some(title) = &old.title {
                if let Some(events) = self.shows.get_mut(&key(&old_tenant, title)) {
                    events.remove(&event);
                }
            }
            if let Some(events) = self.at_venue.get_mut(&key(&old_tenant, &old.venue)) {
                events.remove(&event);
            }
        }
        self.at_venue
            .entry(key(tenant, &listing.venue))
            .or_default()
            .insert(event);
        if let Some(title) = &listing.title {
            self.shows
                .entry(key(tenant, title))
                .or_default()
                .insert(event);
        }
        self.listings.insert(event, (tenant.to_string(), listing));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::catalog::{ChartRow, ChartSection, HallRecord};

    fn chart(seats: u32) -> Chart {
        Chart {
            sections: vec![ChartSection {
                name: "A".into(),
                rows: vec![ChartRow {
                    label: "1".into(),
                    seats,
                    category: "Std".into(),
                }],
            }],
        }
    }

    fn venue(halls: &[(&str, u32)]) -> VenueRecord {
        VenueRecord {
            name: "Olympia".into(),
            address: String::new(),
            city: "Paris".into(),
            country: "FR".into(),
            postal_code: "75009".into(),
            lat_microdeg: 0,
            lng_microdeg: 0,
            halls: halls
                .iter()
                .map(|(name, seats)| HallRecord {
                    name: (*name).into(),
                    chart: chart(*seats),
                })
                .collect(),
        }
    }

    #[test]
    fn a_changed_chart_gets_the_next_version_and_tenants_are_apart() {
        let mut catalog = Catalog::default();
        catalog
            .save_venue("acme", "vn_1", venue(&[("Main", 10), ("Studio", 5)]))
            .unwrap();
        catalog
            .save_venue("acme", "vn_1", venue(&[("Main", 12), ("Studio", 5)]))
            .unwrap();
        let saved = catalog.venue("acme", "vn_1").unwrap();
        assert_eq!(saved.current_chart("Main").unwrap().0, 2);
        assert_eq!(saved.current_chart("Studio").unwrap().0, 1);
        assert_eq!(saved.charts["Main"][0].1, chart(10));
        assert!(catalog.venue("other", "vn_1").is_none());
        assert_eq!(catalog.venues_of("other").count(), 0);
    }

    #[test]
    fn relisting_moves_an_event_between_titles() {
        let mut catalog = Catalog::default();
        let listing = |title: &str| Listing {
            event: EventId(4),
            title: Some(title.into()),
            venue: "vn_1".into(),
            hall: "Main".into(),
            chart_version: 1,
        };
        catalog.list("acme", listing("tt_1"));
        catalog.list("acme", listing("tt_2"));
        assert_eq!(catalog.shows("acme", "tt_1").count(), 0);
        assert_eq!(
            catalog.events_at("acme", "vn_1").collect::<Vec<_>>(),
            [EventId(4)]
        );
        assert_eq!(
            catalog.shows("acme", "tt_2").collect::<Vec<_>>(),
            [EventId(4)]
        );
    }
}
