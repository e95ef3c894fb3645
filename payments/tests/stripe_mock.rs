//! The Stripe client against stripe-mock (Stripe's official mock, `scripts/stripe-mock.sh`):
//! every call the adapter makes is accepted (stripe-mock validates paths, parameters and
//! auth against Stripe's OpenAPI specification) and its answer parsed. stripe-mock answers
//! from fixtures, so the values are not checked here: the flows are the fake's
//! (`tests/fake_gateway.rs`).

use payments::stripe::{StripeClient, StripeConfig};
use payments::{
    test_stripe_mock_url, GatewayError, ListQuery, NewPayment, NewRefund, PaymentGateway, SecretKey,
};
use std::time::Duration;

fn client(url: &str) -> StripeClient {
    StripeClient::new(StripeConfig {
        api_base: url.to_string(),
        secret_key: SecretKey::new("sk_test_123"),
        timeout: Duration::from_secs(10),
    })
    .unwrap()
}

#[tokio::test]
async fn every_call_is_accepted_and_parsed_by_stripe_mock() {
    let Some(url) = test_stripe_mock_url("the Stripe client's stripe-mock test") else {
        return;
    };
    let stripe = client(&url);
    let payment = stripe
        .create_payment(&NewPayment {
            amount_cents: 5000,
            currency: "EUR".into(),
            hold_id: "h_42".into(),
            idempotency_key: "hold_h_42".into(),
        })
        .await
        .unwrap();
    assert!(payment.id.starts_with("pi_"), "{payment:?}");
    assert!(payment.client_secret.is_some(), "{payment:?}");
    // stripe-mock reflects the amount and currency it was sent.
    assert_eq!(
        (payment.amount_cents, payment.currency.as_str()),
        (5000, "EUR")
    );

    let retrieved = stripe.retrieve_payment(&payment.id).await.unwrap();
    assert!(retrieved.id.starts_with("pi_"), "{retrieved:?}");

    let refund = stripe
        .refund(&NewRefund {
            payment_id: payment.id.clone(),
            reason: "hold_expired".into(),
            idempotency_key: "refund_0_17".into(),
        })
        .await
        .unwrap();
    assert!(refund.id.starts_with("re_"), "{refund:?}");

    let period = ListQuery {
        from_s: 1_700_000_000,
        to_s: 1_800_000_000,
        starting_after: Some("pi_123".into()),
        limit: 100,
    };
    let payments = stripe.list_payments(&period).await.unwrap();
    assert!(payments
        .items
        .iter()
        .all(|payment| payment.id.starts_with("pi_")));
    let refunds = stripe.list_refunds(&period).await.unwrap();
    assert!(refunds
        .items
        .iter()
        .all(|refund| refund.id.starts_with("re_")));
}

#[tokio::test]
async fn stripe_mock_s_refusals_are_typed_errors() {
    let Some(url) = test_stripe_mock_url("the Stripe client's stripe-mock test") else {
        return;
    };
    // No key: stripe-mock refuses like Stripe (401), and the error never holds the key.
    let stripe = StripeClient::new(StripeConfig {
        api_base: url.clone(),
        secret_key: SecretKey::new(""),
        timeout: Duration::from_secs(10),
    })
    .unwrap();
    match stripe.retrieve_payment("pi_123").await {
        Err(GatewayError::Api { status: 401, .. }) => {}
        other => panic!("expected a 401, got {other:?}"),
    }
    // A path that is not a payment id is refused before any request.
    match client(&url).retrieve_payment("pi_1/../../v1/charges").await {
        Err(error) => assert!(error.is_not_found(), "{error}"),
        Ok(payment) => panic!("accepted {payment:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_gateway_is_a_transport_error() {
    // A port nothing listens on (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stripe = client(&format!("http://127.0.0.1:{port}"));
    match stripe.retrieve_payment("pi_1").await {
        Err(GatewayError::Transport(text)) => assert!(!text.contains("sk_test"), "{text}"),
        other => panic!("expected a transport error, got {other:?}"),
    }
}
