//! The FCFS waitlist: joining, leaving, ending hopeless waiters and serving offers.

use super::*;

impl Engine {
    /// Files a new waiter: counted for its user, its expiry timer set, kept by id (both
    /// a queued waitlist entry and a draw's entry are filed so).
    pub(super) fn file_waiter(&mut self, waiter_id: WaiterId, waiter: Waiter) {
        let key = EventUser::new(waiter.event, waiter.user);
        let count = self.state.waiters_by_user.get(&key).copied().unwrap_or(0);
        self.state.waiters_by_user.insert(key, count + 1);
        self.state
            .timers
            .insert((waiter.expires_at_ms, TimerKind::WaiterExpiry, waiter_id.0));
        self.state.waiters.insert(waiter_id, waiter);
    }

    // ---- waitlist ---------------------------------------------------------------------

    pub(super) fn join_waitlist(
        &mut self,
        user: Who<'_>,
        event_id: EventId,
        quantity: u32,
        category: Option<CategoryRef<'_>>,
        together: bool,
    ) -> Answer {
        self.check_who(user)?;
        if self.in_arrival_window(event_id) {
            return self.enter_draw(user, event_id, quantity, category, together, false);
        }
        let event = self.open_event(event_id)?;
        let category = Self::resolve_category(event, category)?;
        self.check_quantity(event, event_id, self.who_id(user), quantity)?;
        if event.waitlist.waiting == 0 {
            // Nobody waits ahead: the new waiter is the first `serve_waitlist` looks at,
            // with every category allowed. Perf: when seats are free for it, it is offered
            // them at once, without being filed (queue, needs, timer, waiter) and taken
            // out again: the same answer, effects and state.
            let allowed = Self::allowed_for_newcomers(event);
            if let Some(items) =
                crate::allocate::find(event, quantity, category, together, &allowed)
            {
                return self
                    .join_served_at_once(user, event_id, quantity, category, together, items);
            }
        }
        let reply = self.enqueue(user, event_id, quantity, category, together)?;
        // Seats may be free right now (nobody waits ahead): offer at once.
        self.serve_waitlist(event_id);
        Ok(reply)
    }

    /// A join that nobody waits ahead of and that `items` (free now) serve: the join's
    /// checks, its waiter id, then the offer `serve_waitlist` would make it, in the same
    /// order as filing the waiter and serving it would.
    fn join_served_at_once(
        &mut self,
        user: Who<'_>,
        event_id: EventId,
        quantity: u32,
        category: Option<u16>,
        together: bool,
        items: Items,
    ) -> Answer {
        assert_eq!(
            self.known_event(event_id).waitlist.waiting,
            0,
            "nobody waits ahead"
        );
        let (user_id, waiter_id) =
            self.admit_waiter(user, event_id, quantity, category, together)?;
        // `serve_waitlist` would end it over the per-user limit instead; `check_quantity`
        // refused that already, and nothing has changed the user's usage since.
        let event = self.known_event(event_id);
        assert!(
            event.spec.seats_per_user_max.is_none_or(|max| {
                u64::from(self.user_usage_of(event_id, user_id)) + u64::from(quantity)
                    <= u64::from(max)
            }),
            "a join within the per-user limit is served within it"
        );
        let hold = self.create_hold(event_id, user_id, items, Some(waiter_id), |view| view);
        self.effects.push(Effect::WaitlistOffered {
            waiter: waiter_id,
            hold,
        });
        Ok(Reply::WaitlistJoined {
            waiter: waiter_id,
            event: event_id,
            user: user_id.number(),
            quantity,
            category,
            // First in an empty waitlist.
            position: 1,
        })
    }

    /// A waitlist entry's checks, then its user (interned only now that the entry is
    /// made: a refusal leaves no trace) and its new waiter id.
    fn admit_waiter(
        &mut self,
        user: Who<'_>,
        event_id: EventId,
        quantity: u32,
        category: Option<u16>,
        together: bool,
    ) -> Result<(UserId, WaiterId), Rejection> {
        self.check_join(user, event_id, quantity, category, together)?;
        let user_id = self.intern_who(user);
        let waiter_id = WaiterId(self.sequence_id(self.state.next_waiter));
        self.state.next_waiter += 1;
        Ok((user_id, waiter_id))
    }

    /// The refusals of a waitlist entry, in order.
    fn check_join(
        &self,
        user: Who<'_>,
        event_id: EventId,
        quantity: u32,
        category: Option<u16>,
        together: bool,
    ) -> Result<(), Rejection> {
        let event = self.known_event(event_id);
        // A request that could never be served would only keep others waiting.
        if !crate::allocate::servable_ever(event, quantity, category, together) {
            return Err(event.sold_out(category));
        }
        if self.user_waiters(event_id, user) >= self.config.waiters_per_user_max {
            return Err(Rejection::LimitExceeded {
                limit: Limit::WaitersPerUser,
                max: self.config.waiters_per_user_max,
            });
        }
        if event.waitlist.waiting >= self.config.waitlist_length_max {
            return Err(Rejection::LimitExceeded {
                limit: Limit::WaitlistLength,
                max: self.config.waitlist_length_max,
            });
        }
        Ok(())
    }

    pub(super) fn enqueue(
        &mut self,
        user: Who<'_>,
        event_id: EventId,
        quantity: u32,
        category: Option<u16>,
        together: bool,
    ) -> Answer {
        let (user_id, waiter_id) =
            self.admit_waiter(user, event_id, quantity, category, together)?;
        let expires_at_ms = self.state.now_ms + self.config.waitlist_wait_max_ms;
        let event_index = self.known_event_index(event_id);
        let event = &mut self.state.events[event_index];
        // A new waiter's place is its id, past every place: last in its queue.
        let position = event
            .waitlist
            .join(category, waiter_id.0, waiter_id)
            .unwrap_or_else(|refused| panic!("a new waiter's place is new: {refused:?}"));
        event.count_need((category, together, quantity), true);
        self.file_waiter(
            waiter_id,
            Waiter {
                event: event_id,
                user: user_id,
                quantity,
                category,
                together,
                expires_at_ms,
                place: Some(waiter_id.0),
            },
        );
        Ok(Reply::WaitlistJoined {
            waiter: waiter_id,
            event: event_id,
            user: user_id.number(),
            quantity,
            category,
            position,
        })
    }

    pub(super) fn remove_waiter(&mut self, waiter_id: WaiterId) -> Waiter {
        let waiter = self
            .state
            .waiters
            .remove(&waiter_id)
            .expect("the waiter is live");
        let event_index = self.known_event_index(waiter.event);
        let event = &mut self.state.events[event_index];
        match waiter.place {
            Some(place) => {
                event
                    .waitlist
                    .leave(waiter.category, place, waiter_id)
                    .unwrap_or_else(|refused| {
                        panic!("every waiter is in its queue at its place: {refused:?}")
                    });
                event.count_need((waiter.category, waiter.together, waiter.quantity), false);
            }
            None => {
                // An entry of a draw not made yet: in no queue.
                let draw = event.draw.as_mut().expect("an unplaced waiter is an entry");
                let at = draw
                    .entries
                    .iter()
                    .position(|entry| *entry == waiter_id)
                    .expect("every entry is listed in its draw");
                draw.entries.remove(at);
            }
        }
        let key = EventUser::new(waiter.event, waiter.user);
        let count = *self
            .state
            .waiters_by_user
            .get(&key)
            .expect("every waiter is counted for its user");
        if count == 1 {
            self.state.waiters_by_user.remove(&key);
        } else {
            self.state.waiters_by_user.insert(key, count - 1);
        }
        // A timed-out waiter's timer was popped already.
        self.state.timers.remove(
            &(waiter.expires_at_ms, TimerKind::WaiterExpiry, waiter_id.0),
            |due, id| hold_timer_live(&self.state.holds, due, id),
        );
        waiter
    }

    pub(super) fn end_waiter(&mut self, waiter_id: WaiterId, reason: WaitEnd) {
        let waiter = self.remove_waiter(waiter_id);
        self.effects.push(Effect::WaitlistEnded {
            waiter: waiter_id,
            event: waiter.event,
            user: waiter.user.number(),
            reason,
        });
    }

    pub(super) fn leave_waitlist(&mut self, user: Who<'_>, waiter_id: WaiterId) -> Answer {
        let waiter = self
            .state
            .waiters
            .get(&waiter_id)
            .filter(|waiter| self.is_who(waiter.user, user))
            .ok_or_else(|| not_found(NotFound::Waiter))?;
        let (event, user) = (waiter.event, waiter.user);
        self.remove_waiter(waiter_id);
        // The head may have been the one blocking a strict queue.
        self.serve_waitlist(event);
        Ok(Reply::WaitlistLeft {
            waiter: waiter_id,
            event,
            user: user.number(),
        })
    }

    pub(super) fn user_waiters(&self, event: EventId, user: Who<'_>) -> u32 {
        self.who_id(user).map_or(0, |user| {
            self.state
                .waiters_by_user
                .get(&EventUser::new(event, user))
                .copied()
                .unwrap_or(0)
        })
    }

    /// Ends, in arrival order, every waiter of the event that could never be served (a
    /// booking took for good what it was waiting for): `NoRowLongEnough` for a `together`
    /// request that enough seats could still serve, scattered, `SoldOut` otherwise. Each
    /// (queue, together) class is checked by its largest request first, so no queue is
    /// walked unless one of its waiters is hopeless.
    pub(super) fn end_hopeless_waiters(&mut self, event_id: EventId) {
        let event = self.known_event(event_id);
        let mut largest: BTreeMap<(Option<u16>, bool), u32> = BTreeMap::new();
        for &(queue, together, quantity) in event.waiter_needs.keys() {
            largest.insert((queue, together), quantity);
        }
        let mut hopeless = Vec::new();
        for ((queue, together), quantity) in largest {
            if crate::allocate::servable_ever(event, quantity, queue, together) {
                continue;
            }
            let most = crate::allocate::most_servable(event, queue, together);
            let before = hopeless.len();
            for (place, waiter_id) in &event.waitlist.queues[&queue] {
                let waiter = &self.state.waiters[waiter_id];
                if waiter.together == together && u64::from(waiter.quantity) > most {
                    let scattered =
                        crate::allocate::servable_ever(event, waiter.quantity, queue, false);
                    let reason = if together && scattered {
                        WaitEnd::NoRowLongEnough
                    } else {
                        WaitEnd::SoldOut
                    };
                    hopeless.push((*place, *waiter_id, reason));
                }
            }
            assert!(hopeless.len() > before, "the largest request is hopeless");
        }
        hopeless.sort_unstable_by_key(|(place, _, _)| *place);
        for (_, waiter_id, reason) in hopeless {
            self.end_waiter(waiter_id, reason);
        }
    }

    /// Ends the waiters that can never be served, then offers free seats to the others
    /// in order of place (arrival order, a draw's entries in draw order), across queues. Under the strict policy a waiter that cannot be
    /// served yet keeps every category it could ever use for itself: nobody after it
    /// takes from those (so a category's queue stops at its head), but a later waiter may
    /// still take from a category it could never use.
    ///
    /// Perf: the check for nobody waiting (nearly every confirm, release and expiry)
    /// inlines; the serving is out of line.
    #[inline]
    pub(super) fn serve_waitlist(&mut self, event_id: EventId) {
        let event = self.known_event(event_id);
        if event.waitlist.waiting == 0 || event.canceled {
            return;
        }
        self.serve_waiters(event_id);
    }

    /// [`Engine::serve_waitlist`] for an event with waiters.
    #[inline(never)]
    fn serve_waiters(&mut self, event_id: EventId) {
        self.end_hopeless_waiters(event_id);
        let event = self.known_event(event_id);
        let strict = event.spec.waitlist_policy == WaitlistPolicy::Strict;
        let mut allowed = vec![true; event.ledger.categories.len()];
        // Per live queue, the first place not yet looked at.
        let mut cursors: Vec<(Option<u16>, u64)> = event
            .waitlist
            .queues
            .keys()
            .map(|queue| (*queue, 0))
            .collect();
        loop {
            let event = self.known_event(event_id);
            let anything_to_give = event
                .ledger
                .categories
                .iter()
                .zip(&allowed)
                .any(|(category, allowed)| *allowed && category.free() > 0);
            if !anything_to_give {
                break;
            }
            let next = cursors
                .iter()
                .enumerate()
                .filter_map(|(index, (queue, cursor))| {
                    let queue = event.waitlist.queues.get(queue)?;
                    queue
                        .first_from(cursor)
                        .map(|(place, id)| (*place, *id, index))
                })
                .min();
            let Some((place, waiter_id, index)) = next else {
                break;
            };
            cursors[index].1 = place + 1;
            let waiter = &self.state.waiters[&waiter_id];
            debug_assert!(
                crate::allocate::servable_ever(
                    event,
                    waiter.quantity,
                    waiter.category,
                    waiter.together
                ),
                "hopeless waiters were ended"
            );
            let Some(items) = crate::allocate::find(
                event,
                waiter.quantity,
                waiter.category,
                waiter.together,
                &allowed,
            ) else {
                if strict {
                    crate::allocate::usable_categories(
                        event,
                        waiter.quantity,
                        waiter.category,
                        waiter.together,
                        |category| allowed[category as usize] = false,
                    );
                    if waiter.category.is_some() {
                        // Its category is kept for it now: nobody behind it can pass.
                        cursors.swap_remove(index);
                    }
                }
                continue;
            };
            let over_limit = event.spec.seats_per_user_max.is_some_and(|max| {
                u64::from(self.user_usage_of(event_id, waiter.user)) + u64::from(waiter.quantity)
                    > u64::from(max)
            });
            if over_limit {
                self.end_waiter(waiter_id, WaitEnd::LimitExceeded);
                continue;
            }
            let waiter = self.remove_waiter(waiter_id);
            let hold = self.create_hold(event_id, waiter.user, items, Some(waiter_id), |view| view);
            self.effects.push(Effect::WaitlistOffered {
                waiter: waiter_id,
                hold,
            });
        }
    }
}
