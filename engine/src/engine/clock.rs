//! Time: log time only moves forward, through `advance_clock`, which fires due timers
//! in (due time, kind, id) order before the command itself runs.

use super::*;

impl Engine {
    // ---- time -------------------------------------------------------------------

    /// Log time never goes backwards: a record stamped earlier than the clock is
    /// applied at the clock's time. A record stamped past `TIME_MS_MAX` is applied at
    /// `TIME_MS_MAX` (fix: clock arithmetic used to overflow near `u64::MAX`).
    pub(super) fn advance_clock(&mut self, time_ms: u64) {
        self.state.now_ms = self
            .state
            .now_ms
            .max(time_ms.min(crate::config::TIME_MS_MAX));
        let now_ms = self.state.now_ms;
        while let Some((_, kind, id)) = self.state.timers.pop_due_before(now_ms, |due, id| {
            hold_timer_live(&self.state.holds, due, id)
        }) {
            match kind {
                TimerKind::HoldExpiry => self.expire_hold(HoldId(id)),
                TimerKind::WaiterExpiry => self.end_waiter(WaiterId(id), WaitEnd::TimedOut),
                TimerKind::DeskHoldExpiry => self.expire_desk_hold(DeskTicketId(id)),
                TimerKind::Draw => self.make_draw(EventId(
                    u32::try_from(id).expect("a draw timer's id is an event id"),
                )),
            }
        }
        // Past its short window a key is the ingress index's to answer (`idempotency`).
        // Perf: the window's size first (a field); most logs carry no keys at all.
        let horizon = now_ms.saturating_sub(self.config.idempotency_engine_window_ms);
        while !self.state.idempotency.is_empty()
            && self
                .state
                .idempotency
                .oldest_stored_ms()
                .is_some_and(|stored| stored < horizon)
        {
            self.state.idempotency.forget_oldest();
        }
        let horizon = now_ms.saturating_sub(self.config.ended_hold_retention_ms);
        while self.state.ended_hold_queue.first_ended_ms() < horizon {
            let (_, hold) = self.state.ended_hold_queue.take_front().expect("checked");
            self.state.ended_holds.remove(hold);
        }
    }

    pub(super) fn expire_hold(&mut self, hold_id: HoldId) {
        let hold = self.take_hold(hold_id, HoldEnd::Expired);
        let event = hold.event;
        self.effects.push(Effect::HoldExpired {
            hold: hold_id,
            event,
            user: hold.user.number(),
            items: hold.items,
            waiter: hold.waiter,
        });
        self.serve_waitlist(event);
    }
}
