//! Refunds (issue "Payments through a real gateway"): the control log says which
//! succeeded payments must be given back (`ControlRecord::PaymentRefundDue`, appended by
//! the ingress that received the gateway's word) and which were (`PaymentRefunded`,
//! appended here). A thread refunds what is due and not yet refunded, then records it.
//!
//! Cancellations: with a gateway, the worker's outcome followers remember every booking's
//! payment (`Store::remember_booking_payments`) and, for a booking canceled by its user or
//! with its event, append `PaymentRefundDue` to the control log ([`observe`]) before the
//! shard's position moves past the outcome, so a crash between the two appends it again
//! (and a payment is refunded once all the same). An event's cancellation refunds in
//! full; a user's, as the event's terms say (`refund: none`: nothing), which the worker
//! keeps from the event's `EventTermsSet` (`Store::remember_event_terms`, with or without
//! a gateway), in the event's currency. A canceled booking's payment is then forgotten, so
//! the store keeps only the payments of bookings that may still be canceled.
//!
//! Exactly once: the gateway's idempotency key is `refund_<payment id>`, so a payment is
//! refunded at most once whatever happens: a due record appended twice (the gateway
//! retried its webhook), or a worker killed between the gateway's answer and its record
//! (after a restart the record is missing, the refund is asked again with the same key,
//! and the gateway answers with the refund it made). Nothing is lost: what is due stays
//! due (the worker reads the whole control log at start) until its record is in the log.

use crate::store::{BookingPayment, Store, StoreError};
use engine::control::{encode_control, ControlRecord};
use engine::{CancellationRefund, Effect, EventId, EventTerms, HoldId, Outcome, Reply};
use payments::{GatewayError, NewRefund, PaymentGateway};
use requestlog::LogWriter;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The first retry of a failed refund; each further one doubles, up to `RETRY_MAX`.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(600);
/// The longest the thread waits without looking (stop).
const IDLE_WAIT: Duration = Duration::from_millis(500);

/// The gateway's idempotency key for refunding `payment_id`: one refund per payment.
pub fn refund_key(payment_id: &str) -> String {
    format!("refund_{payment_id}")
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Due {
    hold: HoldId,
    amount_cents: u64,
    currency: String,
    reason: String,
    /// The earliest the next try may go (after a failure).
    not_before: Option<Instant>,
    failures: u32,
}

/// What the control log says about refunds, and what this worker did since.
#[derive(Default)]
pub(crate) struct Refunds {
    due: BTreeMap<String, Due>,
    /// Payments refunded (recorded in the log, or by this worker and about to be).
    refunded: BTreeSet<String>,
}

/// Counters for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct RefundMetrics {
    /// Refunds the gateway confirmed and this worker recorded.
    pub refunded: AtomicU64,
    pub failed_attempts: AtomicU64,
    /// Payments due back that the gateway does not know (never refunded: logged).
    pub unknown: AtomicU64,
}

pub(crate) struct RefundsShared {
    state: Mutex<Refunds>,
    wake: Condvar,
    pub(crate) metrics: RefundMetrics,
}

impl Default for RefundsShared {
    fn default() -> Self {
        RefundsShared {
            state: Mutex::new(Refunds::default()),
            wake: Condvar::new(),
            metrics: RefundMetrics::default(),
        }
    }
}

impl RefundsShared {
    fn state(&self) -> std::sync::MutexGuard<'_, Refunds> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies a control record (records of other kinds change nothing).
    pub(crate) fn apply(&self, record: &ControlRecord) {
        let mut state = self.state();
        match record {
            ControlRecord::PaymentRefundDue {
                hold,
                payment_id,
                amount_cents,
                currency,
                reason,
            } if !state.refunded.contains(payment_id) => {
                state.due.entry(payment_id.clone()).or_insert(Due {
                    hold: *hold,
                    amount_cents: *amount_cents,
                    currency: currency.clone(),
                    reason: reason.clone(),
                    not_before: None,
                    failures: 0,
                });
                self.wake.notify_all();
            }
            ControlRecord::PaymentRefunded { payment_id, .. } => {
                state.due.remove(payment_id);
                state.refunded.insert(payment_id.clone());
            }
            _ => {}
        }
    }

    /// Payments due whose time has come, and the wait until the next one.
    fn ready(&self, now: Instant) -> (Vec<(String, Due)>, Option<Duration>) {
        let state = self.state();
        let mut ready = Vec::new();
        let mut next_wait: Option<Duration> = None;
        for (payment, due) in &state.due {
            match due.not_before {
                Some(at) if at > now => {
                    let wait = at - now;
                    next_wait = Some(next_wait.map_or(wait, |next| next.min(wait)));
                }
                _ => ready.push((payment.clone(), due.clone())),
            }
        }
        (ready, next_wait)
    }

    fn failed(&self, payment: &str, now: Instant) {
        let mut state = self.state();
        if let Some(due) = state.due.get_mut(payment) {
            due.failures = due.failures.saturating_add(1);
            let backoff = RETRY_FIRST
                .saturating_mul(1u32 << due.failures.min(16).saturating_sub(1))
                .min(RETRY_MAX);
            due.not_before = Some(now + backoff);
        }
    }

    fn done(&self, payment: &str) {
        let mut state = self.state();
        state.due.remove(payment);
        state.refunded.insert(payment.to_string());
    }

    /// Payments due and not refunded yet.
    pub(crate) fn due_count(&self) -> usize {
        self.state().due.len()
    }

    pub(crate) fn notify(&self) {
        self.wake.notify_all();
    }

    fn wait(&self, timeout: Duration) {
        let state = self.state();
        let _ = self.wake.wait_timeout(state, timeout);
    }
}

/// The gateway the worker refunds through, and the deployment's currency (ISO 4217): the
/// currency of events created without terms.
#[derive(Clone)]
pub struct RefundGateway {
    pub gateway: Arc<dyn PaymentGateway>,
    pub currency: String,
}

/// Whether [`observe`] needs this outcome: a confirmation (its payment) or a
/// cancellation.
pub(crate) fn relevant(outcome: &Outcome) -> bool {
    !outcome.replayed
        && matches!(
            outcome.result,
            Ok(Reply::HoldConfirmed(_)
                | Reply::BookingCanceled { .. }
                | Reply::EventCanceled { .. })
        )
}

/// The terms of sale an outcome gives an event (`Effect::EventTermsSet`): the worker keeps
/// them (`Store::remember_event_terms`) before it routes the outcome, gateway or not.
pub(crate) fn terms_set(outcome: &Outcome) -> Vec<(EventId, EventTerms)> {
    outcome
        .effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::EventTermsSet { event, terms } => Some((*event, terms.clone())),
            _ => None,
        })
        .collect()
}

/// Remembers the bookings' payments of `outcomes` and appends a `PaymentRefundDue` for
/// every paid booking they cancel: in full when its event is canceled, as the event's
/// cancellation policy says (its terms, kept by the follower first) when its user cancels
/// it (nothing for `refund: none`). A canceled booking's payment is then forgotten: no refund can be
/// due for it again. Idempotent: called again for the same outcomes (after a crash) it
/// writes the same values and appends records the refunds skip (or, once the payment is
/// forgotten, none: the first call appended them before forgetting).
pub(crate) fn observe(
    store: &Store,
    control_writer: &dyn LogWriter,
    currency_default: &str,
    outcomes: &[impl std::borrow::Borrow<Outcome>],
) -> Result<(), String> {
    let error_text = |error: StoreError| error.to_string();
    let confirmed: Vec<(u64, BookingPayment)> = outcomes
        .iter()
        .map(std::borrow::Borrow::borrow)
        .filter_map(|outcome: &Outcome| match &outcome.result {
            Ok(Reply::HoldConfirmed(view)) if !view.payment_ref.is_empty() => Some((
                view.booking.into(),
                BookingPayment {
                    hold: view.hold.into(),
                    payment_id: view.payment_ref.to_string(),
                    amount_cents: view.total_cents,
                },
            )),
            _ => None,
        })
        .collect();
    if !confirmed.is_empty() {
        store
            .remember_booking_payments(&confirmed)
            .map_err(error_text)?;
    }
    let mut due = Vec::new();
    let mut forgotten = Vec::new();
    for outcome in outcomes.iter().map(std::borrow::Borrow::borrow) {
        let outcome: &Outcome = outcome;
        let (event, canceled, reason): (EventId, Vec<u64>, &str) = match &outcome.result {
            Ok(Reply::BookingCanceled { booking, event, .. }) => {
                (*event, vec![(*booking).into()], "booking_canceled")
            }
            Ok(Reply::EventCanceled {
                event,
                canceled_bookings,
                ..
            }) => (
                *event,
                canceled_bookings
                    .iter()
                    .map(|booking| (*booking).into())
                    .collect(),
                "event_canceled",
            ),
            _ => continue,
        };
        let terms = store
            .event_terms(event)
            .map_err(error_text)?
            .unwrap_or_else(|| EventTerms::without_terms(currency_default));
        // An organiser's cancellation always refunds in full; a user's, as the policy says.
        let refunded =
            reason == "event_canceled" || terms.cancellation.refund == CancellationRefund::Full;
        for booking in canceled {
            forgotten.push(booking);
            let Some(payment) = store.booking_payment(booking).map_err(error_text)? else {
                continue;
            };
            if !refunded {
                tracing::info!(booking, payment = payment.payment_id, %event, "a booking canceled under a no-refund policy: nothing is due back");
                continue;
            }
            due.push(encode_control(&ControlRecord::PaymentRefundDue {
                hold: HoldId(payment.hold),
                payment_id: payment.payment_id,
                amount_cents: payment.amount_cents,
                currency: terms.currency.clone(),
                reason: reason.to_string(),
            }));
        }
    }
    if !due.is_empty() {
        control_writer
            .append(due)
            .map_err(|error| error.to_string())?;
    }
    // After the append: a crash before this finds the payments again and appends again.
    if !forgotten.is_empty() {
        store
            .forget_booking_payments(&forgotten)
            .map_err(error_text)?;
    }
    Ok(())
}

/// A refund the gateway can never make (no such payment: a booking confirmed with a
/// reference of its own before the gateway was configured).
fn never_refundable(error: &GatewayError) -> bool {
    matches!(error, GatewayError::Api { status: 400 | 404, code, .. } if code == "resource_missing")
}

/// The refund thread: refunds what is due, records each refund in the control log.
pub(crate) fn run(
    shared: &RefundsShared,
    gateway: Arc<dyn PaymentGateway>,
    control_writer: Arc<dyn LogWriter>,
    stop: &AtomicBool,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "the effects worker cannot start its refund runtime");
            return;
        }
    };
    while !stop.load(Ordering::Acquire) {
        let (ready, next_wait) = shared.ready(Instant::now());
        for (payment_id, due) in ready {
            if stop.load(Ordering::Acquire) {
                return;
            }
            let request = NewRefund {
                payment_id: payment_id.clone(),
                reason: due.reason.clone(),
                idempotency_key: refund_key(&payment_id),
            };
            let refunded = runtime.block_on(gateway.refund(&request));
            let refund = match refunded {
                Ok(refund) => refund,
                Err(error) if never_refundable(&error) => {
                    tracing::error!(payment = payment_id, %error, hold = %due.hold, "a payment due back is unknown to the gateway: not refunded, see to it by hand");
                    shared.metrics.unknown.fetch_add(1, Ordering::Relaxed);
                    shared.done(&payment_id);
                    continue;
                }
                Err(error) => {
                    shared
                        .metrics
                        .failed_attempts
                        .fetch_add(1, Ordering::Relaxed);
                    log_failure(&payment_id, &error);
                    shared.failed(&payment_id, Instant::now());
                    continue;
                }
            };
            let record = encode_control(&ControlRecord::PaymentRefunded {
                hold: due.hold,
                payment_id: payment_id.clone(),
                refund_id: refund.id.clone(),
                amount_cents: refund.amount_cents,
                currency: refund.currency.clone(),
            });
            match control_writer.append(vec![record]) {
                Ok(_) => {
                    shared.metrics.refunded.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(payment = payment_id, refund = refund.id, hold = %due.hold, reason = due.reason, "payment refunded");
                    shared.done(&payment_id);
                }
                Err(error) => {
                    // Refunded but not recorded: asked again later with the same key, which
                    // the gateway answers with this same refund.
                    tracing::error!(%error, payment = payment_id, "cannot record a refund; it is asked again");
                    shared.failed(&payment_id, Instant::now());
                }
            }
        }
        shared.wait(next_wait.unwrap_or(IDLE_WAIT).min(IDLE_WAIT));
    }
}

fn log_failure(payment_id: &str, error: &GatewayError) {
    tracing::warn!(payment = payment_id, %error, "a refund failed; retrying later");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(payment: &str) -> ControlRecord {
        ControlRecord::PaymentRefundDue {
            hold: HoldId(1),
            payment_id: payment.into(),
            amount_cents: 100,
            currency: "EUR".into(),
            reason: "hold_expired".into(),
        }
    }

    fn refunded(payment: &str) -> ControlRecord {
        ControlRecord::PaymentRefunded {
            hold: HoldId(1),
            payment_id: payment.into(),
            refund_id: "re_1".into(),
            amount_cents: 100,
            currency: "EUR".into(),
        }
    }

    fn outcome(offset: u64, reply: Reply) -> Outcome {
        Outcome {
            offset,
            time_ms: offset,
            replayed: false,
            result: Ok(reply),
            effects: Vec::new(),
            effects_before_reply: 0,
            idempotency: None,
        }
    }

    /// A canceled booking's payment is forgotten once its refund is due (the store keeps
    /// live bookings' payments only); observing the same outcomes again (a crash before
    /// the position moved) appends nothing that was not already appended.
    #[test]
    fn a_canceled_booking_s_payment_is_forgotten_once_due() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let control = requestlog::MemoryLog::new("control", requestlog::FaultPlan::default(), 1);
        let items = engine::Items::Pool {
            category: 0,
            quantity: 1,
        };
        let confirmed = outcome(
            0,
            Reply::HoldConfirmed(engine::BookingView {
                booking: engine::BookingId(4),
                hold: HoldId(3),
                event: EventId(0),
                user: "ana".into(),
                items: items.clone(),
                total_cents: 500,
                payment_ref: "pi_1".into(),
                booked_at_ms: 0,
            }),
        );
        let canceled = outcome(
            1,
            Reply::BookingCanceled {
                booking: engine::BookingId(4),
                event: EventId(0),
                user: "ana".into(),
                items,
            },
        );
        observe(&store, &control.writer(), "EUR", &[confirmed]).unwrap();
        assert!(store.booking_payment(4).unwrap().is_some());
        observe(
            &store,
            &control.writer(),
            "EUR",
            std::slice::from_ref(&canceled),
        )
        .unwrap();
        assert_eq!(store.booking_payment(4).unwrap(), None);
        assert_eq!(control.writer().end_offset().unwrap(), 1, "one refund due");
        observe(&store, &control.writer(), "EUR", &[canceled]).unwrap();
        assert_eq!(control.writer().end_offset().unwrap(), 1, "nothing more");
    }

    #[test]
    fn a_payment_is_due_once_until_its_refund_is_recorded() {
        let shared = RefundsShared::default();
        let now = Instant::now();
        shared.apply(&due("pi_1"));
        shared.apply(&due("pi_1"));
        shared.apply(&due("pi_2"));
        let (ready, _) = shared.ready(now);
        assert_eq!(
            ready
                .iter()
                .map(|(payment, _)| payment.as_str())
                .collect::<Vec<_>>(),
            ["pi_1", "pi_2"]
        );
        shared.apply(&refunded("pi_1"));
        // Due again after its refund (a late retry of the webhook): never refunded twice.
        shared.apply(&due("pi_1"));
        assert_eq!(shared.due_count(), 1);
        // A failure waits before the next try.
        shared.failed("pi_2", now);
        let (ready, wait) = shared.ready(now);
        assert!(ready.is_empty());
        assert_eq!(wait, Some(RETRY_FIRST));
        assert_eq!(shared.ready(now + RETRY_FIRST).0.len(), 1);
    }
}
