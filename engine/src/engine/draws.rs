//! The arrival window's draw (`crate::draw` has the pure rules): giving an event one
//! (at creation: `events`), entering it, the organiser's reveal, chaining the last second's records for the
//! fallback seed, and making the draw at opening.

use super::*;
use crate::draw::{self, DrawSeedSource, DrawSpec, DRAW_BYTES};

impl Engine {
    pub(super) fn open_arrival_window(
        &mut self,
        tenant: &str,
        event_id: EventId,
        draw: &DrawSpec,
    ) -> Answer {
        let event = self.tenant_event(tenant, event_id)?;
        if event.canceled {
            return Err(conflict(ConflictReason::EventCanceled));
        }
        if event.draw.is_some() {
            return Err(invalid("the event already has an arrival window"));
        }
        let draws_at_ms = self.validate_draw(&event.spec, draw)?;
        self.set_draw(event_id, draws_at_ms, draw);
        Ok(Reply::ArrivalWindowOpened { event: event_id })
    }

    /// Gives a validated event its draw, due at `draws_at_ms`.
    pub(super) fn set_draw(&mut self, event_id: EventId, draws_at_ms: u64, draw: &DrawSpec) {
        let opens_at_ms = draws_at_ms.saturating_sub(draw.arrival_window_ms);
        let event_index = self.known_event_index(event_id);
        self.state.events[event_index].draw = Some(Box::new(Draw {
            opens_at_ms,
            draws_at_ms,
            commitment: draw.commitment,
            seed: None,
            entries: Vec::new(),
            chain: draw::fallback_start(&draw.commitment),
            chain_records: 0,
            chain_from_ms: 0,
            chain_to_ms: 0,
            made: false,
        }));
        // Fires once a record's time reaches `draws_at_ms` (timers fire past their due).
        self.state
            .timers
            .insert((draws_at_ms - 1, TimerKind::Draw, u64::from(event_id.0)));
        self.state.draws_pending.insert((draws_at_ms, event_id));
        self.effects.push(Effect::DrawOpened {
            event: event_id,
            opens_at_ms,
            draws_at_ms,
            commitment: draw.commitment,
        });
    }

    /// The draw's part of the event's validation; its time (`sales_open_at`).
    pub(super) fn validate_draw(
        &self,
        spec: &EventSpec,
        draw: &DrawSpec,
    ) -> Result<u64, Rejection> {
        let Some(draws_at_ms) = spec.sales_open_at_ms else {
            return Err(invalid("an arrival window needs sales_open_at"));
        };
        if !(1..=draw::ARRIVAL_WINDOW_MS_MAX).contains(&draw.arrival_window_ms) {
            return Err(invalid(format!(
                "the arrival window must be from 1 to {} ms",
                draw::ARRIVAL_WINDOW_MS_MAX
            )));
        }
        if draws_at_ms <= self.state.now_ms {
            return Err(invalid(
                "an arrival window's draw (sales_open_at) must be in the future",
            ));
        }
        Ok(draws_at_ms)
    }

    /// Whether a waiting request for the event now is an entry into its draw.
    pub(super) fn in_arrival_window(&self, event_id: EventId) -> bool {
        let now_ms = self.state.now_ms;
        self.event_index(event_id)
            .map(|index| &self.state.events[index])
            .is_some_and(|event| {
                !event.canceled && event.draw.as_ref().is_some_and(|draw| draw.is_open(now_ms))
            })
    }

    /// An entry: a waiter with its id but no place until the draw. One per user per
    /// event; the order and per-user limits apply as to a join.
    pub(super) fn enter_draw(
        &mut self,
        user: Who<'_>,
        event_id: EventId,
        quantity: u32,
        category: Option<CategoryRef<'_>>,
        together: bool,
        hold_requested: bool,
    ) -> Answer {
        self.check_who(user)?;
        let event = self.known_event(event_id);
        let category = Self::resolve_category(event, category)?;
        self.check_quantity(event, event_id, self.who_id(user), quantity)?;
        if !crate::allocate::servable_ever(event, quantity, category, together) {
            return Err(event.sold_out(category));
        }
        if self.user_waiters(event_id, user) >= 1 {
            return Err(Rejection::LimitExceeded {
                limit: Limit::WaitersPerUser,
                max: 1,
            });
        }
        let draw = event.draw.as_ref().expect("in the window");
        let entries = u32::try_from(draw.entries.len()).expect("entries are bounded");
        if event.waitlist.waiting + entries >= self.config.waitlist_length_max {
            return Err(Rejection::LimitExceeded {
                limit: Limit::WaitlistLength,
                max: self.config.waitlist_length_max,
            });
        }
        // The wait is counted from the draw: nobody times out before having a place.
        let expires_at_ms = draw.draws_at_ms + self.config.waitlist_wait_max_ms;
        let user_id = self.intern_who(user);
        let waiter_id = WaiterId(self.sequence_id(self.state.next_waiter));
        self.state.next_waiter += 1;
        let event_index = self.known_event_index(event_id);
        self.state.events[event_index]
            .draw
            .as_mut()
            .expect("in the window")
            .entries
            .push(waiter_id);
        self.file_waiter(
            waiter_id,
            Waiter {
                event: event_id,
                user: user_id,
                quantity,
                category,
                together,
                expires_at_ms,
                place: None,
            },
        );
        Ok(Reply::Entered {
            waiter: waiter_id,
            event: event_id,
            user: user_id.number(),
            quantity,
            category,
            hold_requested,
        })
    }

    pub(super) fn reveal_draw_seed(
        &mut self,
        tenant: &str,
        event_id: EventId,
        seed: &[u8; DRAW_BYTES],
    ) -> Answer {
        let event = self.tenant_event(tenant, event_id)?;
        if event.canceled {
            return Err(conflict(ConflictReason::EventCanceled));
        }
        let Some(draw) = event.draw.as_ref() else {
            return Err(invalid("the event has no arrival window"));
        };
        if draw.made {
            return Err(conflict(ConflictReason::DrawMade));
        }
        if draw::commitment_of(seed) != draw.commitment {
            return Err(invalid("the seed does not match the draw's commitment"));
        }
        let event_index = self.known_event_index(event_id);
        let draw = self.state.events[event_index]
            .draw
            .as_mut()
            .expect("checked");
        // A second reveal of the same seed changes nothing.
        draw.seed = Some(*seed);
        Ok(Reply::DrawSeedRevealed {
            event: event_id,
            seed: *seed,
        })
    }

    /// Chains this record into every pending draw whose last second it falls in.
    pub(super) fn chain_draw_records(&mut self, offset: u64, request: &Request) {
        let now_ms = self.state.now_ms;
        let due: Vec<EventId> = self
            .state
            .draws_pending
            .range((now_ms + 1, EventId(0))..=(now_ms + draw::FALLBACK_SPAN_MS, EventId(u32::MAX)))
            .map(|(_, event)| *event)
            .collect();
        if due.is_empty() {
            return;
        }
        let record = crate::wire::encode_request(request);
        for event_id in due {
            let event_index = self.known_event_index(event_id);
            let draw = self.state.events[event_index]
                .draw
                .as_mut()
                .expect("a pending draw's event has one");
            draw.chain = draw::fallback_link(&draw.chain, offset, now_ms, &record);
            if draw.chain_records == 0 {
                draw.chain_from_ms = now_ms;
            }
            draw.chain_records += 1;
            draw.chain_to_ms = now_ms;
        }
    }

    /// Forgets a pending draw (its event was canceled; its entries end with it).
    pub(super) fn cancel_draw(&mut self, event_id: EventId, draws_at_ms: u64) {
        self.state.timers.remove(
            &(draws_at_ms - 1, TimerKind::Draw, u64::from(event_id.0)),
            |due, id| hold_timer_live(&self.state.holds, due, id),
        );
        self.state.draws_pending.remove(&(draws_at_ms, event_id));
    }

    /// The draw at opening: the entries, ordered by the seed, become the event's waitlist
    /// (their places are their own ids in draw order, so everyone who joins later queues
    /// behind them), then the waitlist is served.
    pub(super) fn make_draw(&mut self, event_id: EventId) {
        let event_index = self.known_event_index(event_id);
        let draw = self.state.events[event_index]
            .draw
            .as_mut()
            .expect("a draw timer's event has a draw");
        assert!(!draw.made, "a draw is made once");
        draw.made = true;
        let (seed, source) = match draw.seed {
            Some(seed) => (seed, DrawSeedSource::Revealed),
            None => (
                draw::fallback_seed(&draw.chain),
                DrawSeedSource::Fallback {
                    records: draw.chain_records,
                    from_ms: draw.chain_from_ms,
                    to_ms: draw.chain_to_ms,
                },
            ),
        };
        let draws_at_ms = draw.draws_at_ms;
        let entries = std::mem::take(&mut draw.entries);
        self.state.draws_pending.remove(&(draws_at_ms, event_id));
        let order = draw::draw_order(&seed, event_id, &entries);
        let mut places: Vec<u64> = entries.iter().map(|entry| entry.0).collect();
        places.sort_unstable();
        for (&waiter_id, place) in order.iter().zip(places) {
            let waiter = self
                .state
                .waiters
                .get_mut(&waiter_id)
                .expect("every entry is a live waiter");
            assert!(
                waiter.place.is_none(),
                "an entry has no place before the draw"
            );
            waiter.place = Some(place);
            let need = (waiter.category, waiter.together, waiter.quantity);
            let event = &mut self.state.events[event_index];
            event
                .waitlist
                .join(need.0, place, waiter_id)
                .unwrap_or_else(|refused| panic!("draw places are new: {refused:?}"));
            event.count_need(need, true);
        }
        self.effects.push(Effect::DrawMade {
            event: event_id,
            seed,
            source,
            order,
        });
        self.serve_waitlist(event_id);
    }
}
