//! Events: spec validation, create, update, cancel, and check-in at the door.

use super::*;
use crate::draw::DrawSpec;
use crate::terms::EventTerms;
use std::sync::Arc;

impl Engine {
    // ---- events ---------------------------------------------------------------------

    pub(super) fn check_text(
        &self,
        field: &str,
        text: &str,
        required: bool,
    ) -> Result<(), Rejection> {
        // Perf: `all` stops at the first character that is not white space, where
        // `trim` walks in from both ends; the same rule (Unicode White_Space).
        if required && text.chars().all(char::is_whitespace) {
            return Err(invalid(format!("{field} must not be empty")));
        }
        if text.len() > self.config.text_bytes_max {
            return Err(invalid(format!(
                "{field} is longer than {} bytes",
                self.config.text_bytes_max
            )));
        }
        Ok(())
    }

    pub(super) fn check_limits(
        &self,
        spec_ttl: u64,
        per_order: u32,
        per_user: Option<u32>,
    ) -> Result<(), Rejection> {
        if !(self.config.hold_ttl_min_ms..=self.config.hold_ttl_max_ms).contains(&spec_ttl) {
            return Err(invalid(format!(
                "hold TTL must be from {} to {} ms",
                self.config.hold_ttl_min_ms, self.config.hold_ttl_max_ms
            )));
        }
        if per_order == 0 || per_order > self.config.seats_per_order_cap {
            return Err(invalid(format!(
                "seats per order must be from 1 to {}",
                self.config.seats_per_order_cap
            )));
        }
        if per_user == Some(0) {
            return Err(invalid("seats per user must be at least 1"));
        }
        Ok(())
    }

    pub(super) fn check_times(
        starts_at_ms: u64,
        ends_at_ms: Option<u64>,
        open: Option<u64>,
        close: Option<u64>,
    ) -> Result<(), Rejection> {
        if ends_at_ms.is_some_and(|ends| ends < starts_at_ms) {
            return Err(invalid("ends_at is before starts_at"));
        }
        if let (Some(open), Some(close)) = (open, close) {
            if close <= open {
                return Err(invalid("sales_close_at is not after sales_open_at"));
            }
        }
        Ok(())
    }

    pub(super) fn validate_event(&self, spec: &EventSpec) -> Result<(), Rejection> {
        for (field, text, required) in [
            ("name", &spec.name, true),
            ("description", &spec.description, false),
            ("city", &spec.city, true),
            ("country", &spec.country, true),
            ("venue", &spec.venue, true),
        ] {
            self.check_text(field, text, required)?;
        }
        self.check_limits(
            spec.hold_ttl_ms,
            spec.seats_per_order_max,
            spec.seats_per_user_max,
        )?;
        Self::check_times(
            spec.starts_at_ms,
            spec.ends_at_ms,
            spec.sales_open_at_ms,
            spec.sales_close_at_ms,
        )?;
        if spec.categories.is_empty()
            || spec.categories.len() > self.config.event_categories_max as usize
        {
            return Err(invalid(format!(
                "an event needs from 1 to {} categories",
                self.config.event_categories_max
            )));
        }
        let mut names = BTreeSet::new();
        for category in &spec.categories {
            self.check_text("category name", &category.name, true)?;
            if category.price_cents > PRICE_CENTS_MAX {
                return Err(invalid(format!(
                    "category {:?} costs more than {PRICE_CENTS_MAX} cents",
                    category.name
                )));
            }
            if !names.insert(category.name.as_str()) {
                return Err(invalid(format!(
                    "category {:?} is named twice",
                    category.name
                )));
            }
        }
        if spec.sections.is_empty() && spec.general_admission.is_empty() {
            return Err(invalid(
                "an event needs seating, general admission, or both",
            ));
        }
        // Fix: section indices are u16 in the layout, and the section count was never
        // checked (70,000 empty sections panicked in `Layout::build`).
        if spec.sections.len() > usize::from(u16::MAX) {
            return Err(invalid(format!(
                "an event has at most {} sections",
                u16::MAX
            )));
        }
        let (mut seats, mut rows) = (0u64, 0u64);
        let mut section_names = BTreeSet::new();
        for section in &spec.sections {
            self.check_text("section name", &section.name, true)?;
            if section.name.contains('-') || !section_names.insert(section.name.as_str()) {
                return Err(invalid(format!(
                    "section name {:?} contains '-' or is used twice",
                    section.name
                )));
            }
            // Fix: empty sections let an event with no seats and no pools through the
            // "needs seating" rule above (the ingress already refuses them).
            if section.rows.is_empty() {
                return Err(invalid(format!("section {:?} has no rows", section.name)));
            }
            let mut labels = BTreeSet::new();
            for row in &section.rows {
                self.check_text("row label", &row.label, true)?;
                if row.label.contains('-') || !labels.insert(row.label.as_str()) {
                    return Err(invalid(format!(
                        "row label {:?} in section {:?} contains '-' or is used twice",
                        row.label, section.name
                    )));
                }
                if row.seats == 0 {
                    return Err(invalid(format!(
                        "row {:?} in section {:?} has no seats",
                        row.label, section.name
                    )));
                }
                if !names.contains(row.category.as_str()) {
                    return Err(not_found(NotFound::Category));
                }
                seats += u64::from(row.seats);
                rows += 1;
            }
        }
        if seats > u64::from(self.config.event_seats_max)
            || rows > u64::from(self.config.event_rows_max)
        {
            return Err(invalid(format!(
                "an event has at most {} seats in {} rows",
                self.config.event_seats_max, self.config.event_rows_max
            )));
        }
        let mut pooled = BTreeSet::new();
        for pool in &spec.general_admission {
            if !names.contains(pool.category.as_str()) {
                return Err(not_found(NotFound::Category));
            }
            if !pooled.insert(pool.category.as_str()) {
                return Err(invalid(format!(
                    "category {:?} has two general-admission pools",
                    pool.category
                )));
            }
            if pool.capacity == 0 || pool.capacity > self.config.pool_capacity_max {
                return Err(invalid(format!(
                    "a pool's capacity must be from 1 to {}",
                    self.config.pool_capacity_max
                )));
            }
            if spec
                .sections
                .iter()
                .flat_map(|section| &section.rows)
                .any(|row| row.category == pool.category)
            {
                return Err(invalid(format!(
                    "category {:?} is both seated and general admission",
                    pool.category
                )));
            }
        }
        Ok(())
    }

    /// `CreateEventWithDraw` and `CreateEventWithTerms`: an event with an arrival window,
    /// terms of sale, or both; everything is checked before anything changes.
    pub(super) fn create_event_with(
        &mut self,
        tenant: &str,
        spec: &EventSpec,
        draw: Option<&DrawSpec>,
        terms: Option<&EventTerms>,
    ) -> Answer {
        self.check_text("tenant", tenant, true)?;
        self.validate_event(spec)?;
        if let Some(terms) = terms {
            terms
                .check()
                .map_err(|error| invalid(format!("{}: {}", error.field, error.reason)))?;
        }
        let draws_at_ms = draw
            .map(|draw| self.validate_draw(spec, draw))
            .transpose()?;
        let reply = self.create_event(tenant, spec)?;
        let Reply::EventCreated {
            event: event_id, ..
        } = &reply
        else {
            unreachable!("a created event is answered EventCreated");
        };
        if let Some(terms) = terms {
            let event_index = self.known_event_index(*event_id);
            self.state.events[event_index].terms = Some(Box::new(terms.clone()));
            self.effects.push(Effect::EventTermsSet {
                event: *event_id,
                terms: terms.clone(),
            });
        }
        if let (Some(draw), Some(draws_at_ms)) = (draw, draws_at_ms) {
            self.set_draw(*event_id, draws_at_ms, draw);
        }
        Ok(reply)
    }

    pub(super) fn create_event(&mut self, tenant: &str, spec: &EventSpec) -> Answer {
        self.check_text("tenant", tenant, true)?;
        self.validate_event(spec)?;
        if self.state.events.len() >= self.config.events_max as usize {
            return Err(Rejection::LimitExceeded {
                limit: Limit::Events,
                max: self.config.events_max,
            });
        }
        let category_of = |name: &str| {
            spec.categories
                .iter()
                .position(|category| category.name == name)
                .expect("validated") as u16
        };
        let layout = self
            .layouts
            .share(Arc::new(Layout::build(&spec.sections, category_of)));
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
        let pools: Vec<Pool> = spec
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
        let event_id = self.event_id_at(self.state.events.len());
        self.state.events.push(Event {
            tenant: tenant.to_string(),
            spec: EventSpec {
                sections: Vec::new(),
                ..spec.clone()
            },
            canceled: false,
            categories,
            seats: CowVec::from_elem(SEAT_FREE, layout.seat_count as usize),
            row_free: layout.rows.iter().map(|row| row.seat_count).collect(),
            row_open_run: layout.rows.iter().map(|row| row.seat_count).collect(),
            layout,
            pools,
            queues: BTreeMap::new(),
            waiter_needs: BTreeMap::new(),
            waiting: 0,
            bookings: CowVec::new(),
            hold_slots: Vec::new(),
            free_hold_slots: Vec::new(),
            draw: None,
            terms: None,
        });
        Ok(Reply::EventCreated {
            event: event_id,
            tenant: tenant.to_string(),
            spec: Box::new(spec.clone()),
        })
    }

    /// The event if it exists and belongs to the tenant; another tenant's event is
    /// "not found".
    pub(super) fn tenant_event(&self, tenant: &str, event: EventId) -> Result<&Event, Rejection> {
        self.event_index(event)
            .map(|index| &self.state.events[index])
            .filter(|found| found.tenant == tenant)
            .ok_or_else(|| not_found(NotFound::Event))
    }

    pub(super) fn event(&self, event: EventId) -> Result<&Event, Rejection> {
        self.event_index(event)
            .map(|index| &self.state.events[index])
            .ok_or_else(|| not_found(NotFound::Event))
    }

    pub(super) fn update_event(
        &mut self,
        tenant: &str,
        event_id: EventId,
        patch: &EventPatch,
    ) -> Answer {
        let event = self.tenant_event(tenant, event_id)?;
        if event.canceled {
            return Err(conflict(ConflictReason::EventCanceled));
        }
        let draw_pending = event.draw.as_ref().is_some_and(|draw| !draw.made);
        if draw_pending
            && patch
                .sales_open_at_ms
                .is_some_and(|open| open != event.spec.sales_open_at_ms)
        {
            return Err(invalid(
                "sales_open_at cannot move while its arrival window's draw is pending",
            ));
        }
        let mut spec = event.spec.clone();
        if let Some(name) = &patch.name {
            self.check_text("name", name, true)?;
            spec.name = name.clone();
        }
        if let Some(description) = &patch.description {
            self.check_text("description", description, false)?;
            spec.description = description.clone();
        }
        spec.starts_at_ms = patch.starts_at_ms.unwrap_or(spec.starts_at_ms);
        spec.ends_at_ms = patch.ends_at_ms.unwrap_or(spec.ends_at_ms);
        spec.sales_open_at_ms = patch.sales_open_at_ms.unwrap_or(spec.sales_open_at_ms);
        spec.sales_close_at_ms = patch.sales_close_at_ms.unwrap_or(spec.sales_close_at_ms);
        spec.hold_ttl_ms = patch.hold_ttl_ms.unwrap_or(spec.hold_ttl_ms);
        spec.seats_per_order_max = patch
            .seats_per_order_max
            .unwrap_or(spec.seats_per_order_max);
        spec.seats_per_user_max = patch.seats_per_user_max.unwrap_or(spec.seats_per_user_max);
        spec.waitlist_policy = patch.waitlist_policy.unwrap_or(spec.waitlist_policy);
        self.check_limits(
            spec.hold_ttl_ms,
            spec.seats_per_order_max,
            spec.seats_per_user_max,
        )?;
        Self::check_times(
            spec.starts_at_ms,
            spec.ends_at_ms,
            spec.sales_open_at_ms,
            spec.sales_close_at_ms,
        )?;
        let event_index = self.known_event_index(event_id);
        let policy_changed =
            spec.waitlist_policy != self.state.events[event_index].spec.waitlist_policy;
        self.state.events[event_index].spec = spec;
        if policy_changed {
            self.serve_waitlist(event_id);
        }
        Ok(Reply::EventUpdated {
            event: event_id,
            patch: Box::new(patch.clone()),
        })
    }

    pub(super) fn cancel_event(&mut self, tenant: &str, event_id: EventId) -> Answer {
        let event = self.tenant_event(tenant, event_id)?;
        if event.canceled {
            return Err(conflict(ConflictReason::EventCanceled));
        }
        let booking_ids = event.bookings.clone();
        let mut waiter_ids: Vec<WaiterId> = event
            .queues
            .values()
            .flat_map(|queue| queue.values())
            .copied()
            .collect();
        // A pending draw's entries end with the event, and so does the draw.
        let pending_draw = event.draw.as_ref().filter(|draw| !draw.made).map(|draw| {
            waiter_ids.extend(draw.entries.iter().copied());
            draw.draws_at_ms
        });
        if let Some(draws_at_ms) = pending_draw {
            self.cancel_draw(event_id, draws_at_ms);
        }
        // In id order (the live holds iterate in it).
        let hold_ids: Vec<HoldId> = self
            .state
            .holds
            .iter()
            .filter(|(_, hold)| hold.event == event_id)
            .map(|(id, _)| id)
            .collect();
        for &hold in &hold_ids {
            self.take_hold(hold, HoldEnd::Released);
        }
        let mut canceled_bookings = Vec::new();
        for &booking in &booking_ids {
            if !self.booking(booking).canceled {
                self.free_booking(booking);
                canceled_bookings.push(booking);
            }
        }
        let mut ended_waiters = waiter_ids.clone();
        ended_waiters.sort();
        for &waiter in &ended_waiters {
            self.remove_waiter(waiter);
        }
        let event_index = self.known_event_index(event_id);
        self.state.events[event_index].canceled = true;
        Ok(Reply::EventCanceled {
            event: event_id,
            released_holds: hold_ids,
            canceled_bookings,
            ended_waiters,
        })
    }

    /// A check-in by code (the format before `CheckInTicket`): the code is verified here.
    pub(super) fn check_in_code(&mut self, tenant: &str, event_id: EventId, code: &str) -> Answer {
        self.tenant_event(tenant, event_id)?;
        let ticket = crate::tickets::verify(&self.config.ticket_secret, code)
            .ok_or_else(|| not_found(NotFound::Ticket))?;
        self.check_in(tenant, event_id, ticket)
    }

    pub(super) fn check_in(&mut self, tenant: &str, event_id: EventId, ticket: TicketId) -> Answer {
        self.tenant_event(tenant, event_id)?;
        let booking = self
            .booking_index(ticket.booking)
            .and_then(|index| self.state.bookings.get_mut(index))
            .filter(|booking| booking.event == event_id)
            .ok_or_else(|| not_found(NotFound::Ticket))?;
        let index = (ticket.index as usize).wrapping_sub(1);
        let used = booking
            .tickets_used
            .get(index)
            .ok_or_else(|| not_found(NotFound::Ticket))?;
        if booking.canceled {
            return Err(conflict(ConflictReason::BookingCanceled));
        }
        if used {
            return Err(Rejection::AlreadyUsed);
        }
        booking.tickets_used.set_used(index);
        Ok(Reply::CheckedIn {
            event: event_id,
            ticket,
        })
    }
}
