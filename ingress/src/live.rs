//! Live availability: which events an outcome changed, and a notification per event that
//! the seat-map streams (`GET /v1/events/{id}/stream`) wait on.
//!
//! One `tokio::sync::watch` channel per event that somebody is watching, holding the input
//! offset of the last outcome that changed it. A watch keeps only the latest value, so a
//! slow reader never queues anything: it wakes once and reads the current seat map from the
//! read model. The number of open streams is capped; channels nobody watches are dropped.
//!
//! Architecture invariant: an event's channel is notified only after the read model applied
//! the outcome that changed it, so a stream woken by it reads the new state.

use engine::{Effect, EventId, Outcome, Reply};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Events whose availability, status or waitlist an applied outcome changed (repeats
/// possible; the caller deduplicates).
pub(crate) fn touched_events(outcome: &Outcome, events: &mut Vec<EventId>) {
    if let Ok(reply) = &outcome.result {
        match reply {
            Reply::EventCreated { event, .. }
            | Reply::EventUpdated { event, .. }
            | Reply::EventCanceled { event, .. }
            | Reply::Waitlisted { event, .. }
            | Reply::HoldReleased { event, .. }
            | Reply::BookingCanceled { event, .. }
            | Reply::WaitlistJoined { event, .. }
            | Reply::Entered { event, .. }
            | Reply::ArrivalWindowOpened { event }
            | Reply::WaitlistLeft { event, .. } => events.push(*event),
            Reply::HoldPlaced(view) => events.push(view.event),
            Reply::HoldConfirmed(view) => events.push(view.event),
            // A check-in changes no availability; desks and ticks are not events.
            Reply::CheckedIn { .. }
            | Reply::DeskCreated { .. }
            | Reply::DeskTicketCreated(_)
            | Reply::DeskTicketConfirmed(_)
            | Reply::DeskTicketCanceled { .. }
            | Reply::Ticked
            | Reply::Promoted { .. }
            | Reply::DrawSeedRevealed { .. }
            | Reply::Configured => {}
        }
    }
    for effect in &outcome.effects {
        match effect {
            Effect::HoldExpired { event, .. } | Effect::WaitlistEnded { event, .. } => {
                events.push(*event)
            }
            Effect::WaitlistOffered { hold, .. } => events.push(hold.event),
            Effect::DrawMade { event, .. } => events.push(*event),
            Effect::DeskHoldExpired { .. }
            | Effect::DrawOpened { .. }
            | Effect::EventTermsSet { .. } => {}
        }
    }
}

/// The per-event channels and the count of open streams.
pub(crate) struct EventFeeds {
    senders: Mutex<HashMap<EventId, watch::Sender<u64>>>,
    streams: AtomicUsize,
    streams_max: usize,
}

/// One open stream's subscription: the receiver and its place under the cap. Dropping it
/// frees the place and the event's channel when it was the last one.
pub(crate) struct Subscription {
    pub(crate) changes: watch::Receiver<u64>,
    feeds: Arc<EventFeeds>,
    event: EventId,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.feeds.streams.fetch_sub(1, Ordering::AcqRel);
        let mut senders = self.feeds.lock();
        // This subscription's receiver is still alive here, hence `<= 1`.
        if senders
            .get(&self.event)
            .is_some_and(|sender| sender.receiver_count() <= 1)
        {
            senders.remove(&self.event);
        }
    }
}

impl EventFeeds {
    pub(crate) fn new(streams_max: usize) -> EventFeeds {
        assert!(streams_max > 0);
        EventFeeds {
            senders: Mutex::new(HashMap::new()),
            streams: AtomicUsize::new(0),
            streams_max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<EventId, watch::Sender<u64>>> {
        self.senders
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A subscription to `event`'s changes, or `None` when `streams_max` streams are open.
    pub(crate) fn subscribe(self: &Arc<Self>, event: EventId) -> Option<Subscription> {
        let taken = self.streams.fetch_add(1, Ordering::AcqRel);
        if taken >= self.streams_max {
            self.streams.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        let changes = self
            .lock()
            .entry(event)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        Some(Subscription {
            changes,
            feeds: Arc::clone(self),
            event,
        })
    }

    /// Wakes the streams of these events (the read model already shows `offset`).
    pub(crate) fn notify(&self, events: &mut Vec<EventId>, offset: u64) {
        if events.is_empty() {
            return;
        }
        events.sort_unstable();
        events.dedup();
        let senders = self.lock();
        if senders.is_empty() {
            return;
        }
        for event in events.iter() {
            if let Some(sender) = senders.get(event) {
                sender.send_replace(offset);
            }
        }
    }

    /// Streams open now.
    pub(crate) fn streams(&self) -> usize {
        self.streams.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_are_capped_and_channels_dropped_with_the_last_one() {
        let feeds = Arc::new(EventFeeds::new(2));
        let first = feeds.subscribe(EventId(1)).unwrap();
        let mut second = feeds.subscribe(EventId(1)).unwrap();
        assert!(feeds.subscribe(EventId(2)).is_none(), "over the cap");
        assert_eq!(feeds.streams(), 2);

        feeds.notify(&mut vec![EventId(1), EventId(1), EventId(3)], 7);
        assert!(second.changes.has_changed().unwrap());
        assert_eq!(*second.changes.borrow_and_update(), 7);

        drop(first);
        assert_eq!(feeds.lock().len(), 1);
        drop(second);
        assert_eq!((feeds.lock().len(), feeds.streams()), (0, 0));
        assert!(feeds.subscribe(EventId(2)).is_some());
    }
}
