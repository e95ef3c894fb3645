//! Bookings: confirming a hold into a booking, its view, releasing holds, cancelling
//! bookings.

use super::*;
use crate::terms::CancellationPolicy;

impl Engine {
    // ---- bookings ------------------------------------------------------------------

    pub(super) fn confirm_hold(
        &mut self,
        user: Who<'_>,
        hold_id: HoldId,
        payment_ref: &str,
    ) -> Answer {
        self.check_text("payment_ref", payment_ref, true)?;
        let hold = self.owned_hold(user, hold_id)?;
        // The timer fires only once time passes expires_at + grace, so a live hold is
        // still confirmable; this assert keeps the two rules tied together.
        assert!(self.state.now_ms <= hold.due_ms);
        let event_id = hold.event;
        let hold = self.take_hold(hold_id, HoldEnd::Confirmed);
        let booking_id = self.booking_id_at(self.state.bookings.len());
        let event_index = self.known_event_index(event_id);
        let event = &mut self.state.events[event_index];
        let total_cents = event
            .ledger
            .book(&event.layout, hold_id, hold.slot, &hold.items)
            .unwrap_or_else(|refused| panic!("the hold owns its seats: {refused}"));
        event.bookings.append(booking_id);
        let quantity = hold.items.quantity();
        let booking = Booking {
            hold: hold_id,
            event: event_id,
            user: hold.user,
            items: hold.items,
            total_cents,
            payment_ref: PaymentRef::from(payment_ref),
            booked_at_ms: self.state.now_ms,
            tickets_used: TicketsUsed::unused(quantity),
            canceled: false,
        };
        // Perf: the view from the booking at hand, not from a look-up of it by id once
        // filed (`booking_view`, which a debug build checks it against).
        let view = BookingView {
            booking: booking_id,
            hold: hold_id,
            event: event_id,
            user: booking.user.number(),
            items: booking.items.clone(),
            total_cents,
            payment_ref: booking.payment_ref.clone(),
            booked_at_ms: booking.booked_at_ms,
        };
        self.state.bookings.append(booking);
        debug_assert_eq!(view, self.booking_view(booking_id));
        // Held seats became booked: some waiters may now be impossible to serve.
        self.serve_waitlist(event_id);
        Ok(Reply::HoldConfirmed(view))
    }

    pub(crate) fn booking_view(&self, booking_id: BookingId) -> BookingView<UserNumber> {
        let booking = self.booking(booking_id);
        BookingView {
            booking: booking_id,
            hold: booking.hold,
            event: booking.event,
            user: booking.user.number(),
            items: booking.items.clone(),
            total_cents: booking.total_cents,
            payment_ref: booking.payment_ref.clone(),
            booked_at_ms: booking.booked_at_ms,
        }
    }

    pub(super) fn release_hold(&mut self, user: Who<'_>, hold_id: HoldId) -> Answer {
        self.owned_hold(user, hold_id)?;
        let hold = self.take_hold(hold_id, HoldEnd::Released);
        let event = hold.event;
        self.serve_waitlist(event);
        Ok(Reply::HoldReleased {
            hold: hold_id,
            event,
            user: hold.user.number(),
            items: hold.items,
        })
    }

    /// Returns a booking's seats to free and marks it canceled.
    pub(super) fn free_booking(&mut self, booking_id: BookingId) {
        let booking_index = self.known_booking_index(booking_id);
        let event_index = self.known_event_index(self.state.bookings[booking_index].event);
        let booking = &mut self.state.bookings[booking_index];
        assert!(!booking.canceled);
        booking.canceled = true;
        let event = &mut self.state.events[event_index];
        // Which booking a seat's is, `check_invariants` verifies for all.
        event
            .ledger
            .unbook(&event.layout, &booking.items)
            .unwrap_or_else(|refused| panic!("the booking's seats are booked: {refused}"));
        let (event_id, user, quantity) = (booking.event, booking.user, booking.items.quantity());
        self.add_usage(event_id, user, -i64::from(quantity));
    }

    pub(super) fn cancel_booking(&mut self, user: Who<'_>, booking_id: BookingId) -> Answer {
        let booking = self
            .booking_index(booking_id)
            .map(|index| &self.state.bookings[index])
            .filter(|booking| self.is_who(booking.user, user))
            .ok_or_else(|| not_found(NotFound::Booking))?;
        if booking.canceled {
            return Err(conflict(ConflictReason::BookingCanceled));
        }
        if booking.tickets_used.any() {
            return Err(Rejection::AlreadyUsed);
        }
        let (event, items, user) = (booking.event, booking.items.clone(), booking.user);
        let event_state = &self.state.events[self.known_event_index(event)];
        let policy = event_state
            .terms
            .as_ref()
            .map_or(CancellationPolicy::ANY_TIME_FULL_REFUND, |terms| {
                terms.cancellation
            });
        if !policy.user_may_cancel(self.state.now_ms, event_state.spec.starts_at_ms) {
            return Err(conflict(ConflictReason::CancellationClosed));
        }
        self.free_booking(booking_id);
        self.serve_waitlist(event);
        Ok(Reply::BookingCanceled {
            booking: booking_id,
            event,
            user: user.number(),
            items,
        })
    }
}
