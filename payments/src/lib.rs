//! `payments`: Boxoffice's payment gateway (issue "Payments through a real gateway").
//!
//! Layout:
//! - [`PaymentGateway`] (here): the few calls Boxoffice makes of a gateway, as a trait, so
//!   the ingress and the effects worker never name a vendor: create a payment for a hold,
//!   retrieve one, refund one, list payments and refunds of a period (reconciliation).
//! - [`stripe`]: the real implementation, a thin typed client of Stripe's HTTP API over
//!   `reqwest` (form-encoded requests, `Idempotency-Key` headers, JSON answers).
//! - [`signature`]: Stripe's webhook signatures (`Stripe-Signature: t=…,v1=…`) and the
//!   events they carry.
//! - [`instant`]: the development gateway (`payments.gateway = "test"`, `--dev` only): in
//!   memory, every payment succeeds at once; it takes no money.
//! - `fake` (feature `fake`): a stateful fake gateway, an axum server speaking the same
//!   endpoints with real amounts, statuses, idempotency and signed events, for tests.
//!
//! Money is integer minor units, as everywhere in Boxoffice; currencies are ISO 4217 codes,
//! upper case here (Stripe's lower case is converted at its edge).

pub mod instant;
pub mod signature;
pub mod stripe;

#[cfg(feature = "fake")]
pub mod fake;

use std::future::Future;
use std::pin::Pin;

/// What every gateway call returns.
pub type GatewayFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, GatewayError>> + Send + 'a>>;

/// A payment gateway. Every creating call carries an idempotency key: a retry with the
/// same key and the same parameters gets the first answer and creates nothing.
pub trait PaymentGateway: Send + Sync {
    fn create_payment<'a>(&'a self, request: &'a NewPayment) -> GatewayFuture<'a, Payment>;
    fn retrieve_payment<'a>(&'a self, payment_id: &'a str) -> GatewayFuture<'a, Payment>;
    fn refund<'a>(&'a self, request: &'a NewRefund) -> GatewayFuture<'a, Refund>;
    /// Payments created in `[from_s, to_s)`, a page at a time (oldest first is not
    /// promised: Stripe lists newest first).
    fn list_payments<'a>(&'a self, query: &'a ListQuery) -> GatewayFuture<'a, Page<Payment>>;
    fn list_refunds<'a>(&'a self, query: &'a ListQuery) -> GatewayFuture<'a, Page<Refund>>;
}

/// A payment to create: exactly a hold's total.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPayment {
    pub amount_cents: u64,
    /// ISO 4217, upper case.
    pub currency: String,
    /// Recorded on the payment (metadata `hold_id`): the one hold it can confirm.
    pub hold_id: String,
    pub idempotency_key: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentStatus {
    /// Created, not paid yet (Stripe: `requires_payment_method`, `requires_confirmation`,
    /// `requires_action`, `processing`, `requires_capture`).
    Pending,
    Succeeded,
    Canceled,
}

impl PaymentStatus {
    pub fn name(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Canceled => "canceled",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    /// The gateway's id (`pi_…`): a booking's `payment_ref`.
    pub id: String,
    pub amount_cents: u64,
    /// What was actually received (0 until it succeeds).
    pub amount_received_cents: u64,
    /// ISO 4217, upper case.
    pub currency: String,
    pub status: PaymentStatus,
    /// What a frontend needs to pay (Stripe.js `confirmPayment`); a secret of the payer's.
    pub client_secret: Option<String>,
    /// The hold it was created for (metadata `hold_id`), if any.
    pub hold_id: Option<String>,
    /// Seconds since the Unix epoch.
    pub created_s: u64,
}

/// A full refund of a payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRefund {
    pub payment_id: String,
    /// Recorded on the refund (metadata `reason`): why Boxoffice refunded.
    pub reason: String,
    pub idempotency_key: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefundStatus {
    Pending,
    Succeeded,
    Failed,
    Canceled,
}

impl RefundStatus {
    pub fn name(self) -> &'static str {
        match self {
            RefundStatus::Pending => "pending",
            RefundStatus::Succeeded => "succeeded",
            RefundStatus::Failed => "failed",
            RefundStatus::Canceled => "canceled",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refund {
    /// The gateway's id (`re_…`).
    pub id: String,
    pub payment_id: Option<String>,
    pub amount_cents: u64,
    pub currency: String,
    pub status: RefundStatus,
    pub created_s: u64,
}

/// A page of a period's payments or refunds: created in `[from_s, to_s)`, after the
/// object `starting_after` (the last id of the previous page).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub from_s: u64,
    pub to_s: u64,
    pub starting_after: Option<String>,
    /// At most 100 (Stripe's cap).
    pub limit: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_more: bool,
}

/// Why a gateway call failed. The secret key is never in it.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No answer (connection, timeout): the call may or may not have been applied; retry
    /// with the same idempotency key.
    #[error("payment gateway unreachable: {0}")]
    Transport(String),
    /// The gateway refused the call (4xx) or failed (5xx).
    #[error("payment gateway answered {status}: {kind} {code}: {message}")]
    Api {
        status: u16,
        /// Stripe's `error.type` (`invalid_request_error`, `idempotency_error`, …).
        kind: String,
        /// Stripe's `error.code` (`resource_missing`, `charge_already_refunded`, …), or "".
        code: String,
        message: String,
    },
    /// An answer that is not what the API documents.
    #[error("payment gateway answer not understood: {0}")]
    Decode(String),
}

impl GatewayError {
    /// The gateway does not know the object asked for.
    pub fn is_not_found(&self) -> bool {
        matches!(self, GatewayError::Api { status: 404, .. })
    }
}

/// A secret API key: never printed, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(String);

impl SecretKey {
    pub fn new(key: impl Into<String>) -> Self {
        SecretKey(key.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("SecretKey(<redacted>)")
    }
}

/// The stripe-mock server a test runs against: `STRIPE_MOCK_URL`, the rule every crate's
/// stripe-mock tests follow (that of `requestlog::test_kafka_bootstrap`). Unset on a
/// developer's machine, the test is skipped with a note naming `what`; under `CI=true` an
/// unset `STRIPE_MOCK_URL` fails it instead, so CI never passes without having run them
/// (`scripts/test.sh` starts stripe-mock).
pub fn test_stripe_mock_url(what: &str) -> Option<String> {
    match std::env::var("STRIPE_MOCK_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "STRIPE_MOCK_URL is not set: CI must run {what} against stripe-mock (scripts/stripe-mock.sh start)"
        ),
        _ => {
            eprintln!("note: STRIPE_MOCK_URL is not set; {what} not run (scripts/stripe-mock.sh start)");
            None
        }
    }
}
// Currencies are validated in one place, `engine::terms::currency_valid` (ISO 4217).

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_key_is_never_printed() {
        let key = SecretKey::new("sk_test_very_secret");
        assert_eq!(format!("{key:?}"), "SecretKey(<redacted>)");
        assert!(!format!("{:?}", Some(&key)).contains("very_secret"));
    }
}
