//! Payments through a gateway (issue "Payments through a real gateway"): what the ingress
//! needs to take a hold's payment and to hear the gateway's word. Set once by the binary
//! (`Ingress::set_payments`); without it the payment endpoints answer 409
//! `payments_not_configured` and a confirm's `payment_ref` is taken as the client says.
//!
//! - `POST /v1/holds/{id}/payment` creates the gateway payment for exactly the hold's total
//!   in its event's currency, with `hold_<id>` as the gateway's idempotency key (one
//!   payment per hold, whatever the retries), and answers its client secret.
//! - `POST /v1/payments/webhook` takes the gateway's signed events. A
//!   `payment_intent.succeeded` for a held hold, of its amount and currency, appends the
//!   confirm with the payment id as `payment_ref` (idempotency key `pay_<payment id>`, so
//!   a retried event is answered from the first outcome); one whose hold expired, was
//!   released or confirmed otherwise, whose event was canceled, or whose amount or currency
//!   differ is recorded as due back (`ControlRecord::PaymentRefundDue`) and the effects
//!   worker refunds it. A payment names its one hold (metadata `hold_id`), so it confirms
//!   at most that hold.
//! - `POST /v1/holds/{id}/confirm` with a gateway asks it about the `payment_ref`:
//!   succeeded, for this hold, of its amount and currency, or 409.

use payments::PaymentGateway;
use std::sync::Arc;

/// The ingress's payment settings.
#[derive(Clone)]
pub struct PaymentsConfig {
    pub gateway: Arc<dyn PaymentGateway>,
    /// The gateway's webhook signing secret (Stripe: `whsec_…`).
    pub webhook_secret: String,
    /// How far a webhook's signed timestamp may be from now, either side.
    pub webhook_tolerance_s: u64,
    // No currency: each event has its own (`EventRecord::terms`).
}

impl std::fmt::Debug for PaymentsConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PaymentsConfig")
            .field("webhook_secret", &"<redacted>")
            .field("webhook_tolerance_s", &self.webhook_tolerance_s)
            .finish_non_exhaustive()
    }
}

/// The gateway's idempotency key for a hold's payment.
pub(crate) fn payment_key(hold: engine::HoldId) -> String {
    format!("hold_{hold}")
}

/// The idempotency key of the confirm a payment appends (at most 64 characters: gateway
/// ids are short, and one that is not is cut to a prefix that still names it).
pub(crate) fn confirm_key(payment_id: &str) -> String {
    let mut key = format!("pay_{payment_id}");
    key.truncate(crate::extract::IDEMPOTENCY_KEY_CHARS_MAX);
    key
}
