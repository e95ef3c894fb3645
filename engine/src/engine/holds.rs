//! Holds: per-user usage, placing a hold (exact seats, best available, general
//! admission) and taking it back.

use super::*;

impl Engine {
    // ---- holds ----------------------------------------------------------------------

    #[inline]
    pub(super) fn user_usage_of(&self, event: EventId, user: UserId) -> u32 {
        self.state.usage.get(event, user)
    }

    /// Perf: always inlined, like the move it makes (`Usage::add`).
    #[inline(always)]
    pub(super) fn add_usage(&mut self, event: EventId, user: UserId, delta: i64) {
        self.state.usage.add(event, user, delta);
    }

    /// Checks a request's size against the per-order and per-user limits of `event` (of
    /// id `event_id`). `user` is the requester's id when it has one (a user never seen has
    /// no usage). Perf: the caller's event, not looked up again by id.
    pub(super) fn check_quantity(
        &self,
        event: &Event,
        event_id: EventId,
        user: Option<UserId>,
        quantity: u32,
    ) -> Result<(), Rejection> {
        if quantity == 0 {
            return Err(invalid("quantity must be at least 1"));
        }
        if quantity > event.spec.seats_per_order_max {
            return Err(Rejection::LimitExceeded {
                limit: Limit::SeatsPerOrder,
                max: event.spec.seats_per_order_max,
            });
        }
        if let Some(max) = event.spec.seats_per_user_max {
            let usage = user.map_or(0, |user| self.user_usage_of(event_id, user));
            if u64::from(usage) + u64::from(quantity) > u64::from(max) {
                return Err(Rejection::LimitExceeded {
                    limit: Limit::SeatsPerUser,
                    max,
                });
            }
        }
        Ok(())
    }

    pub(super) fn open_event(&self, event_id: EventId) -> Result<&Event, Rejection> {
        let event = self.event(event_id)?;
        if event.canceled {
            return Err(conflict(ConflictReason::EventCanceled));
        }
        if let Some(reason) = event.sales_closed(self.state.now_ms) {
            return Err(Rejection::SalesClosed { reason });
        }
        Ok(event)
    }

    pub(super) fn place_hold(
        &mut self,
        user: Who<'_>,
        event_id: EventId,
        selection: &Selection,
        wait: bool,
    ) -> Answer {
        // Perf: one look-up of the user (none by id); a known name passed this check
        // when interned. A new name's hash is kept for interning it below.
        let found = self.who_found(user);
        if found.is_err() {
            self.check_who(user)?;
        }
        let known = found.ok();
        if let (true, Some((quantity, category, together))) = (wait, selection.best()) {
            if self.in_arrival_window(event_id) {
                return self.enter_draw(user, event_id, quantity, category, together, true);
            }
        }
        // Perf: the event is looked up once for every check and the search.
        let event = self.open_event(event_id)?;
        let items = match selection {
            Selection::Seats(labels) => self.pick_labels(event, event_id, known, labels)?,
            Selection::SeatIndices(seats) => self.pick_exact(event, event_id, known, seats)?,
            Selection::Best { .. } | Selection::BestIndexed { .. } => {
                let (quantity, category, together) = selection.best().expect("best available");
                let category = Self::resolve_category(event, category)?;
                self.check_quantity(event, event_id, known, quantity)?;
                let allowed = Self::allowed_for_newcomers(event);
                let found = crate::allocate::find(event, quantity, category, together, &allowed);
                match found {
                    Some(items) => items,
                    None if wait => {
                        return self
                            .enqueue(user, event_id, quantity, category, together)
                            .map(|reply| match reply {
                                Reply::WaitlistJoined {
                                    waiter,
                                    event,
                                    user,
                                    quantity,
                                    category,
                                    position,
                                } => Reply::Waitlisted {
                                    waiter,
                                    event,
                                    user,
                                    quantity,
                                    category,
                                    position,
                                },
                                other => other,
                            })
                    }
                    None => return Err(event.sold_out(category)),
                }
            }
        };
        let user = match found {
            Ok(id) => id,
            // Perf: looked up above (nothing since has interned anyone).
            Err(hash) => match user {
                Who::Name(name) => self.intern_new_user(name, hash),
                Who::Id(_) => unreachable!("an assigned id has an entry"),
            },
        };
        // Perf: the reply is made where the view is, so that the view is written once,
        // in place. Made on its own and then moved into the reply, it was read back
        // before its stores had landed (a load the store buffer cannot answer waits
        // for every store before it, a missed line's included): the standard mix +2%
        // in one process (BENCHMARKS.md, session 45).
        Ok(self.create_hold(event_id, user, items, None, Reply::HoldPlaced))
    }

    /// The categories a new quantity request may take from. Under the strict policy
    /// nobody passes a waiter: every category some waiter could ever use is kept for the
    /// waiters; the rest (what no waiter could use) is open to newcomers. A category's
    /// queue keeps its category; the any-category queue keeps what its smallest request
    /// of each kind could use (a larger request could use no more).
    #[inline]
    pub(super) fn allowed_for_newcomers(event: &Event) -> std::borrow::Cow<'static, [bool]> {
        /// Perf: no allocation when nothing is kept (no waiter, or `skip_ahead`).
        const EVERY: [bool; 64] = [true; 64];
        let categories = event.ledger.categories.len();
        let kept =
            event.spec.waitlist_policy == WaitlistPolicy::Strict && event.waitlist.waiting > 0;
        if !kept && categories <= EVERY.len() {
            return std::borrow::Cow::Borrowed(&EVERY[..categories]);
        }
        Self::allowed_when_kept(event, kept)
    }

    /// [`Engine::allowed_for_newcomers`] past its common case (nobody waits, or nothing
    /// is kept, with few categories). Perf: out of line, so that the common case inlines
    /// (a call that set up this frame was about 1% of every hold).
    #[inline(never)]
    fn allowed_when_kept(event: &Event, kept: bool) -> std::borrow::Cow<'static, [bool]> {
        let categories = event.ledger.categories.len();
        let mut allowed = vec![true; categories];
        if !kept {
            return allowed.into();
        }
        for queue in event.waitlist.queues.keys() {
            match queue {
                Some(category) => allowed[*category as usize] = false,
                None => {
                    for together in [false, true] {
                        if let Some(smallest) = event.smallest_need(None, together) {
                            crate::allocate::usable_categories(
                                event,
                                smallest,
                                None,
                                together,
                                |category| allowed[category as usize] = false,
                            );
                        }
                    }
                }
            }
        }
        allowed.into()
    }

    /// A command's category as the event's index: by name or checked by index, the same
    /// answer for the same category, and `NotFound::Category` for one the event lacks.
    pub(super) fn resolve_category(
        event: &Event,
        category: Option<CategoryRef<'_>>,
    ) -> Result<Option<u16>, Rejection> {
        let index = match category {
            None => return Ok(None),
            Some(CategoryRef::Name(name)) => event.category_index(name),
            Some(CategoryRef::Index(index)) => {
                (usize::from(index) < event.ledger.categories.len()).then_some(index)
            }
        };
        index.map(Some).ok_or_else(|| not_found(NotFound::Category))
    }

    /// Exact seats by label: resolved to indices, then [`Engine::pick_exact`].
    pub(super) fn pick_labels(
        &self,
        event: &Event,
        event_id: EventId,
        user: Option<UserId>,
        labels: &[String],
    ) -> Result<Items, Rejection> {
        self.check_order_size(event, labels.len())?;
        let mut seats = Vec::with_capacity(labels.len());
        let mut unknown = Vec::new();
        for label in labels {
            match event.layout.seat_of(label) {
                Some(seat) => seats.push(seat),
                None => unknown.push(label.clone()),
            }
        }
        if !unknown.is_empty() {
            return Err(Rejection::UnknownSeats { seats: unknown });
        }
        self.pick_exact(event, event_id, user, &seats)
    }

    /// The order-size cap, checked before anything is done per seat.
    fn check_order_size(&self, event: &Event, seats: usize) -> Result<(), Rejection> {
        if seats > self.config.seats_per_order_cap as usize {
            return Err(Rejection::LimitExceeded {
                limit: Limit::SeatsPerOrder,
                max: event.spec.seats_per_order_max,
            });
        }
        Ok(())
    }

    /// Exact seats by index of `event` (of id `event_id`): every seat known, none twice,
    /// within the limits, all free.
    pub(super) fn pick_exact(
        &self,
        event: &Event,
        event_id: EventId,
        user: Option<UserId>,
        seats: &[u32],
    ) -> Result<Items, Rejection> {
        self.check_order_size(event, seats.len())?;
        let seat_count = event.layout.seat_count;
        if seats.iter().any(|&seat| seat >= seat_count) {
            return Err(Rejection::UnknownSeats {
                seats: seats
                    .iter()
                    .filter(|&&seat| seat >= seat_count)
                    .map(|seat| format!("#{seat}"))
                    .collect(),
            });
        }
        // Perf: a short order (nearly all) is checked pairwise, without allocating; a
        // long one through a sorted copy.
        let repeated = if seats.len() <= 16 {
            (1..seats.len()).any(|index| seats[..index].contains(&seats[index]))
        } else {
            let mut sorted = seats.to_vec();
            sorted.sort_unstable();
            sorted.windows(2).any(|pair| pair[0] == pair[1])
        };
        if repeated {
            return Err(invalid("a seat is requested twice"));
        }
        self.check_quantity(event, event_id, user, seats.len() as u32)?;
        // Perf: a bit per seat (`seat_bits`), not a seat word through its chunk; the
        // taken seats are listed only for a refusal.
        let bits = &event.ledger.bits;
        if !seats.iter().all(|&seat| bits.is_free(seat)) {
            let taken: Vec<u32> = seats
                .iter()
                .copied()
                .filter(|&seat| !bits.is_free(seat))
                .collect();
            return Err(Rejection::SeatsUnavailable { seats: taken });
        }
        Ok(Items::Seats(seats.into()))
    }

    /// Marks the items held and files the hold; the caller has checked availability.
    /// Returns what `made` makes of the hold's view (the reply or effect that carries it,
    /// made in place: see `place_hold`).
    pub(super) fn create_hold<R>(
        &mut self,
        event_id: EventId,
        user: UserId,
        items: Items,
        waiter: Option<WaiterId>,
        made: impl FnOnce(HoldView<UserNumber>) -> R,
    ) -> R {
        let hold_id = HoldId(self.sequence_id(self.state.next_hold));
        self.state.next_hold += 1;
        let now_ms = self.state.now_ms;
        let event_index = self.known_event_index(event_id);
        let event = &mut self.state.events[event_index];
        let expires_at_ms = now_ms + event.spec.hold_ttl_ms;
        let slot = event
            .ledger
            .hold(&event.layout, hold_id, &items)
            .unwrap_or_else(|refused| panic!("the caller checked availability: {refused}"));
        self.add_usage(event_id, user, i64::from(items.quantity()));
        let due_ms = expires_at_ms + self.config.confirm_grace_ms;
        self.state
            .timers
            .insert((due_ms, TimerKind::HoldExpiry, hold_id.0));
        let hold = Hold {
            event: event_id,
            user,
            items,
            created_at_ms: now_ms,
            expires_at_ms,
            due_ms,
            waiter,
            slot,
        };
        let made = made(HoldView {
            hold: hold_id,
            event: event_id,
            user: user.number(),
            // Perf: up to five seats copied inline, a longer list shared (no allocation).
            items: hold.items.clone(),
            created_at_ms: now_ms,
            expires_at_ms,
            waiter,
        });
        self.state.holds.insert(hold_id, hold);
        made
    }

    /// Removes a live hold, returning its seats to free, and remembers how it ended.
    pub(super) fn take_hold(&mut self, hold_id: HoldId, end: HoldEnd) -> Hold {
        let hold = self.state.holds.remove(&hold_id).expect("the hold is live");
        // An expiring hold's timer was popped already; the others end with the hold
        // (the hold table says which hold timers are live) and may leave stale fronts.
        if end != HoldEnd::Expired {
            let timer = (hold.due_ms, TimerKind::HoldExpiry, hold_id.0);
            let holds = &self.state.holds;
            self.state
                .timers
                .cancel_hold(&timer, |due, id| hold_timer_live(holds, due, id));
        }
        let event_index = self.known_event_index(hold.event);
        let event = &mut self.state.events[event_index];
        // A confirmed hold's seats stay held: the caller books them next (`SeatLedger::book`).
        if end != HoldEnd::Confirmed {
            event
                .ledger
                .release(&event.layout, hold_id, hold.slot, &hold.items)
                .unwrap_or_else(|refused| panic!("the hold owns its seats: {refused}"));
            let quantity = hold.items.quantity();
            self.add_usage(hold.event, hold.user, -i64::from(quantity));
        }
        if self.state.ended_holds.len() >= self.config.ended_holds_max {
            if let Some((_, oldest)) = self.state.ended_hold_queue.take_front() {
                self.state.ended_holds.remove(oldest);
            }
        }
        self.state.ended_holds.insert(
            hold_id,
            EndedHold {
                user: hold.user,
                end,
            },
        );
        self.state
            .ended_hold_queue
            .push_back((self.state.now_ms, hold_id));
        hold
    }

    /// A live hold owned by `user`, or the reason it cannot be used. Perf: inlined, the
    /// reason out of line (every confirm and release finds its hold).
    #[inline]
    pub(super) fn owned_hold(&self, user: Who<'_>, hold_id: HoldId) -> Result<&Hold, Rejection> {
        if let Some(hold) = self
            .state
            .holds
            .get(&hold_id)
            .filter(|hold| self.is_who(hold.user, user))
        {
            return Ok(hold);
        }
        Err(self.unowned_hold(user, hold_id))
    }

    /// Why `hold_id` is no live hold of `user`'s.
    #[cold]
    #[inline(never)]
    fn unowned_hold(&self, user: Who<'_>, hold_id: HoldId) -> Rejection {
        match self
            .state
            .ended_holds
            .get(hold_id)
            .filter(|ended| self.is_who(ended.user, user))
        {
            Some(EndedHold {
                end: HoldEnd::Expired,
                ..
            }) => Rejection::HoldExpired,
            Some(EndedHold {
                end: HoldEnd::Released,
                ..
            }) => conflict(ConflictReason::HoldReleased),
            Some(EndedHold {
                end: HoldEnd::Confirmed,
                ..
            }) => conflict(ConflictReason::HoldAlreadyConfirmed),
            None => not_found(NotFound::Hold),
        }
    }
}
