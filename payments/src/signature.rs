//! Stripe's webhook signatures and the events they carry. A webhook's `Stripe-Signature`
//! header is `t=<unix seconds>,v1=<hex>[,v1=<hex>…]`: each `v1` is HMAC-SHA256, keyed with
//! the endpoint's signing secret (`whsec_…`, used as it is written), over
//! `<t>.<raw body>`. A payload is accepted when one `v1` matches (compared in constant
//! time) and `t` is within the tolerance of now, either side: a captured payload cannot be
//! replayed later.

use crate::stripe::PaymentIntent;
use crate::{GatewayError, Payment};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// Stripe's own libraries' default tolerance.
pub const TOLERANCE_S_DEFAULT: u64 = 300;

/// Why a webhook's signature is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Stripe-Signature header")]
    Missing,
    #[error("the Stripe-Signature header has no timestamp (t=) or no v1 signature")]
    Malformed,
    #[error("no v1 signature matches the payload")]
    Mismatch,
    #[error(
        "the signature's timestamp is {age_s} s from now, outside the {tolerance_s} s tolerance"
    )]
    OutsideTolerance { age_s: u64, tolerance_s: u64 },
}

fn mac_of(secret: &str, timestamp_s: u64, payload: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

/// The `Stripe-Signature` header Stripe sends for `payload` at `timestamp_s`.
pub fn sign(secret: &str, timestamp_s: u64, payload: &[u8]) -> String {
    let digest = mac_of(secret, timestamp_s, payload).finalize().into_bytes();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("t={timestamp_s},v1={hex}")
}

/// Checks `header` (None: absent) for `payload` at `now_s`.
pub fn verify(
    secret: &str,
    header: Option<&str>,
    payload: &[u8],
    now_s: u64,
    tolerance_s: u64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp_s = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp_s = value.parse::<u64>().ok(),
            Some(("v1", value)) => signatures.push(value),
            _ => {} // v0 (test mode's legacy scheme) and future schemes are ignored
        }
    }
    let timestamp_s = timestamp_s.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let matches = signatures.iter().any(|signature| {
        hex_decode(signature).is_some_and(|bytes| {
            mac_of(secret, timestamp_s, payload)
                .verify_slice(&bytes)
                .is_ok()
        })
    });
    if !matches {
        return Err(SignatureError::Mismatch);
    }
    let age_s = now_s.abs_diff(timestamp_s);
    if age_s > tolerance_s {
        return Err(SignatureError::OutsideTolerance { age_s, tolerance_s });
    }
    Ok(())
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(text.get(index..index + 2)?, 16).ok())
        .collect()
}

/// A webhook event, as far as Boxoffice reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEvent {
    /// `evt_…`: the same on every retry of one event.
    pub id: String,
    /// `payment_intent.succeeded`, …
    pub kind: String,
    /// The payment, for `payment_intent.*` events.
    pub payment: Option<Payment>,
}

#[derive(Deserialize)]
struct EventBody {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: EventData,
}

#[derive(Deserialize)]
struct EventData {
    object: serde_json::Value,
}

/// Parses a verified payload.
pub fn parse_event(payload: &[u8]) -> Result<WebhookEvent, GatewayError> {
    let body: EventBody =
        serde_json::from_slice(payload).map_err(|error| GatewayError::Decode(error.to_string()))?;
    let payment = if body.kind.starts_with("payment_intent.") {
        let intent: PaymentIntent = serde_json::from_value(body.data.object)
            .map_err(|error| GatewayError::Decode(error.to_string()))?;
        Some(intent.into_payment()?)
    } else {
        None
    };
    Ok(WebhookEvent {
        id: body.id,
        kind: body.kind,
        payment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const PAYLOAD: &[u8] = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;

    /// Stripe's documented scheme, computed independently: HMAC-SHA256 over "t.payload".
    #[test]
    fn a_known_vector_signs_alike() {
        // printf %s '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec_test_secret
        assert_eq!(
            sign(SECRET, 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=aecbc681fe3d2604c08ff8e880a0988d997a12367fcf9545e6a3b90c1dfc04b7"
        );
    }

    #[test]
    fn signatures_are_checked() {
        let now = 1_700_000_000;
        let good = sign(SECRET, now, PAYLOAD);
        let check = |header: Option<&str>, payload: &[u8], at: u64| {
            verify(SECRET, header, payload, at, TOLERANCE_S_DEFAULT)
        };
        assert_eq!(check(Some(&good), PAYLOAD, now), Ok(()));
        assert_eq!(check(Some(&good), PAYLOAD, now + 300), Ok(()));
        // Several v1 (a secret being rolled): one match is enough.
        let rolled = format!("{},v1=00ff,v0=abc", good);
        assert_eq!(check(Some(&rolled), PAYLOAD, now), Ok(()));
        assert_eq!(check(None, PAYLOAD, now), Err(SignatureError::Missing));
        assert_eq!(
            check(Some("v1=abcd"), PAYLOAD, now),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            check(Some(&format!("t={now}")), PAYLOAD, now),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            check(Some(&good), b"{}", now),
            Err(SignatureError::Mismatch)
        );
        let forged = sign("whsec_other", now, PAYLOAD);
        assert_eq!(
            check(Some(&forged), PAYLOAD, now),
            Err(SignatureError::Mismatch)
        );
        // The timestamp is signed: moving it breaks the signature.
        let moved = good.replace(&format!("t={now}"), &format!("t={}", now + 1));
        assert_eq!(
            check(Some(&moved), PAYLOAD, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check(Some(&good), PAYLOAD, now + 301),
            Err(SignatureError::OutsideTolerance {
                age_s: 301,
                tolerance_s: 300
            })
        );
        assert_eq!(
            check(Some(&good), PAYLOAD, now - 301),
            Err(SignatureError::OutsideTolerance {
                age_s: 301,
                tolerance_s: 300
            })
        );
    }

    #[test]
    fn payment_events_carry_their_payment() {
        let payload = br#"{"id": "evt_1", "object": "event", "type": "payment_intent.succeeded",
            "data": {"object": {"id": "pi_1", "object": "payment_intent", "amount": 5000,
            "amount_received": 5000, "currency": "eur", "status": "succeeded",
            "client_secret": "pi_1_secret_x", "metadata": {"hold_id": "h_7"}, "created": 1700000000}}}"#;
        let event = parse_event(payload).unwrap();
        assert_eq!(event.kind, "payment_intent.succeeded");
        let payment = event.payment.unwrap();
        assert_eq!(
            (
                payment.id.as_str(),
                payment.amount_received_cents,
                payment.currency.as_str()
            ),
            ("pi_1", 5000, "EUR")
        );
        assert_eq!(payment.hold_id.as_deref(), Some("h_7"));
        let other =
            parse_event(br#"{"id": "evt_2", "type": "charge.refunded", "data": {"object": {}}}"#)
                .unwrap();
        assert_eq!(other.payment, None);
        assert!(parse_event(b"not json").is_err());
    }
}
