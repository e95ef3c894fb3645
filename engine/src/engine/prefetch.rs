//! Prefetch hints: what a command reads first, asked of the cache while the engine
//! applies the commands before it. A hint changes nothing (it takes `&self`, and a
//! prefetch has no visible effect), so a log applied with or without hints gives the
//! same outcomes and state.
//!
//! Perf: most of the standard mix's stalls were a few loads that missed at the start of
//! a command, each at an address the command itself names: a returning user's counters,
//! a hold's slot, a booking, and the command's own data on the heap (a name, a payment
//! reference, a seat list). A command takes a few hundred cycles, about a memory round
//! trip, so the hints run ahead of the command being applied:
//!
//! - [`Request::prefetch`], two commands ahead (the earlier, the surer): the command's
//!   own heap data;
//! - [`Engine::prefetch`], one command ahead: the engine state the command reads first
//!   (found through tables the engine keeps hot: the live holds' id window, the
//!   bookings' and the counters' chunk pointers);
//! - the record itself, four commands ahead (the batch's array, read two commands ahead
//!   by the first hint);
//! - and, outside this module, the next places of a queue filled at its back
//!   (`chunked::ChunkedDeque::push_back`: the hold timers' lane), two cache lines ahead
//!   of its writes.
//!
//! A new user's probe of the name index is not hinted: hashbrown's table has no address
//! to ask for, and a table of our own that had one lost more without hints than the hint
//! gave back (BENCHMARKS.md, session 44). A shell applying a batch calls both as it goes
//! ([`Engine::prefetch_ahead`]).

use super::*;

/// Asks for the cache line that holds `value`.
#[inline(always)]
pub(crate) fn hint<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    safe_arch::prefetch_t0(value);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// Asks for the first element of `values` (a command's own text or list, on the heap).
#[inline(always)]
fn hint_first<T>(values: &[T]) {
    if let Some(first) = values.first() {
        hint(first);
    }
}

impl Request {
    /// Asks the cache for this command's own data on the heap (its user's name, a
    /// payment reference, a list of seats); see the module's doc.
    #[inline]
    pub fn prefetch(&self) {
        let user = match &self.command {
            Command::PlaceHold {
                user, selection, ..
            } => {
                if let Selection::SeatIndices(seats) = selection {
                    hint_first(seats);
                }
                user
            }
            Command::ConfirmHold {
                user, payment_ref, ..
            } => {
                hint_first(payment_ref.as_bytes());
                user
            }
            Command::ReleaseHold { user, .. }
            | Command::CancelBooking { user, .. }
            | Command::JoinWaitlist { user, .. } => user,
            _ => return,
        };
        if let UserRef::Name(name) = user {
            hint_first(name.as_bytes());
        }
    }
}

impl Engine {
    /// Asks the cache for the state `request` reads first, for the command applied after
    /// the current one; see the module's doc.
    #[inline]
    pub fn prefetch(&self, request: &Request) {
        let user = match &request.command {
            Command::PlaceHold { user, .. } | Command::JoinWaitlist { user, .. } => user,
            Command::ConfirmHold { user, hold, .. } | Command::ReleaseHold { user, hold } => {
                self.state.holds.prefetch(*hold);
                user
            }
            Command::CancelBooking { user, booking } => {
                if let Some(booking) = self
                    .booking_index(*booking)
                    .and_then(|index| self.state.bookings.get(index))
                {
                    hint(booking);
                }
                user
            }
            _ => return,
        };
        match user {
            UserRef::Id(id) => self.state.usage.prefetch(UserId(*id)),
            // A new name's probe of the user index (hashbrown's table) has no address to
            // ask for; its bytes were asked for a command earlier (`Request::prefetch`).
            UserRef::Name(_) => {}
        }
    }

    /// The hints for the command at `index` of a batch about to be applied: the state of
    /// the next one, the heap data of the one after it (`request_at` gives a batch's
    /// command by index, `None` past its end or for a record that did not decode).
    #[inline]
    pub fn prefetch_ahead<'a>(
        &self,
        index: usize,
        request_at: impl Fn(usize) -> Option<&'a Request>,
    ) {
        if let Some(next) = request_at(index + 1) {
            self.prefetch(next);
        }
        if let Some(after) = request_at(index + 2) {
            after.prefetch();
        }
        // The record itself, two commands before its heap data is asked for: reading it
        // then (its command's kind, its user) missed when the hardware's stream
        // prefetcher had not reached it. Measured at 1.009 and 1.011 in one process
        // (session 45), within that comparison's noise (session 46: the same engine
        // against itself gave 0.993-1.020); kept, as a hint changes nothing.
        if let Some(later) = request_at(index + 4) {
            hint(later);
        }
    }
}
