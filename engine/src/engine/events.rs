//! Events: create (checked by `spec_rules`), update, cancel, and check-in at the door.

use super::*;
use crate::draw::DrawSpec;
use crate::spec_rules::{Rule, SpecRules, Violation};
use crate::terms::EventTerms;
use std::sync::Arc;

/// A spec rule's violation as the engine answers it: a row or pool of a category the
/// event does not have is "not found", as it always was; every other rule is `Invalid`
/// with the table's reason.
fn rejection_of(violation: Violation) -> Rejection {
    match violation.rule {
        Rule::UnknownCategory => not_found(NotFound::Category),
        _ => invalid(violation.reason),
    }
}

impl Engine {
    // ---- events ---------------------------------------------------------------------

    /// A text field of any command (user names, payment references, an event's
    /// tenant): the spec rules' text rule, with the engine's bounds.
    #[inline]
    pub(super) fn check_text(
        &self,
        field: &str,
        text: &str,
        required: bool,
    ) -> Result<(), Rejection> {
        // Perf: a plain name or reference is accepted inline (about 100 instructions a
        // check through the rules: building them, a call, the walk over characters).
        if SpecRules::text_plainly_accepted(text, self.config.text_bytes_max) {
            return Ok(());
        }
        self.check_text_by_rules(field, text, required)
    }

    /// [`Engine::check_text`] for a text that is not plainly accepted.
    fn check_text_by_rules(
        &self,
        field: &str,
        text: &str,
        required: bool,
    ) -> Result<(), Rejection> {
        SpecRules::engine(&self.config)
            .text(field, field, text, required)
            .map_err(rejection_of)
    }

    /// A new event's spec: every rule is in `spec_rules`, the one table the ingress and
    /// loadgen check too.
    pub(super) fn validate_event(&self, spec: &EventSpec) -> Result<(), Rejection> {
        SpecRules::engine(&self.config)
            .check_event(spec)
            .map_err(rejection_of)
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
        let ledger = SeatLedger::new(&layout, spec);
        let event_id = self.event_id_at(self.state.events.len());
        self.state.events.push(Event {
            tenant: tenant.to_string(),
            spec: EventSpec {
                sections: Vec::new(),
                ..spec.clone()
            },
            canceled: false,
            ledger,
            layout,
            waitlist: WaitQueues::default(),
            waiter_needs: BTreeMap::new(),
            bookings: CowVec::new(),
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
        let spec = SpecRules::engine(&self.config)
            .check_patch(&event.spec, patch)
            .map_err(rejection_of)?;
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
        let mut waiter_ids: Vec<WaiterId> = event.waitlist.waiters().collect();
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
