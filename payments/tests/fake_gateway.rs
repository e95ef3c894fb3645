//! The Stripe client against the stateful fake gateway (`payments::fake`): amounts,
//! statuses, idempotency and signed events, what stripe-mock's fixtures cannot show.

use payments::fake::FakeGateway;
use payments::signature::{parse_event, verify, TOLERANCE_S_DEFAULT};
use payments::stripe::{StripeClient, StripeConfig};
use payments::{
    GatewayError, ListQuery, NewPayment, NewRefund, PaymentGateway, PaymentStatus, SecretKey,
};
use std::time::Duration;

const KEY: &str = "sk_test_fake";
const WEBHOOK_SECRET: &str = "whsec_fake";
const NOW_S: u64 = 1_800_000_000;

fn client(url: &str) -> StripeClient {
    StripeClient::new(StripeConfig {
        api_base: url.to_string(),
        secret_key: SecretKey::new(KEY),
        timeout: Duration::from_secs(10),
    })
    .unwrap()
}

fn new_payment(hold: &str, amount_cents: u64) -> NewPayment {
    NewPayment {
        amount_cents,
        currency: "EUR".into(),
        hold_id: hold.into(),
        idempotency_key: format!("hold_{hold}"),
    }
}

#[tokio::test]
async fn a_payment_is_created_once_paid_refunded_once_and_listed() {
    let fake = FakeGateway::start(KEY, WEBHOOK_SECRET, NOW_S).await;
    let stripe = client(&fake.url());
    let payment = stripe
        .create_payment(&new_payment("h_1", 5000))
        .await
        .unwrap();
    assert_eq!(payment.status, PaymentStatus::Pending);
    assert_eq!(
        (
            payment.amount_cents,
            payment.currency.as_str(),
            payment.hold_id.as_deref()
        ),
        (5000, "EUR", Some("h_1"))
    );
    // The same key again: the same payment, none created.
    let again = stripe
        .create_payment(&new_payment("h_1", 5000))
        .await
        .unwrap();
    assert_eq!(again, payment);
    assert_eq!(fake.payment_count(), 1);
    // The same key with another amount: refused.
    match stripe.create_payment(&new_payment("h_1", 6000)).await {
        Err(GatewayError::Api {
            status: 400, kind, ..
        }) => assert_eq!(kind, "idempotency_error"),
        other => panic!("{other:?}"),
    }

    // Not paid yet: nothing to refund.
    let refund = NewRefund {
        payment_id: payment.id.clone(),
        reason: "hold_expired".into(),
        idempotency_key: "refund_0_9".into(),
    };
    match stripe.refund(&refund).await {
        Err(GatewayError::Api { code, .. }) => assert_eq!(code, "payment_intent_unexpected_state"),
        other => panic!("{other:?}"),
    }

    let event = fake.succeed(&payment.id);
    verify(
        WEBHOOK_SECRET,
        Some(&event.signature),
        &event.payload,
        NOW_S,
        TOLERANCE_S_DEFAULT,
    )
    .unwrap();
    let event = parse_event(&event.payload).unwrap();
    assert_eq!(event.kind, "payment_intent.succeeded");
    let paid = event.payment.unwrap();
    assert_eq!(
        (paid.status, paid.amount_received_cents),
        (PaymentStatus::Succeeded, 5000)
    );
    assert_eq!(stripe.retrieve_payment(&payment.id).await.unwrap(), paid);

    let first = stripe
        .refund(&NewRefund {
            idempotency_key: "refund_0_10".into(),
            ..refund.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        (first.amount_cents, first.payment_id.as_deref()),
        (5000, Some(payment.id.as_str()))
    );
    // A retry with its key: the same refund. Another key: Stripe refuses a second refund.
    let retried = stripe
        .refund(&NewRefund {
            idempotency_key: "refund_0_10".into(),
            ..refund.clone()
        })
        .await
        .unwrap();
    assert_eq!(retried, first);
    match stripe
        .refund(&NewRefund {
            idempotency_key: "refund_0_11".into(),
            ..refund
        })
        .await
    {
        Err(GatewayError::Api { code, .. }) => assert_eq!(code, "charge_already_refunded"),
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.refunds().len(), 1);

    let period = ListQuery {
        from_s: NOW_S,
        to_s: NOW_S + 1,
        starting_after: None,
        limit: 100,
    };
    let payments = stripe.list_payments(&period).await.unwrap();
    assert_eq!(
        payments
            .items
            .iter()
            .map(|p| p.id.as_str())
            .collect::<Vec<_>>(),
        [payment.id.as_str()]
    );
    let refunds = stripe.list_refunds(&period).await.unwrap();
    assert_eq!(refunds.items, [first]);
    let later = ListQuery {
        from_s: NOW_S + 1,
        to_s: NOW_S + 2,
        ..period
    };
    assert!(stripe.list_payments(&later).await.unwrap().items.is_empty());
}

#[tokio::test]
async fn lists_page_with_starting_after() {
    let fake = FakeGateway::start(KEY, WEBHOOK_SECRET, NOW_S).await;
    let stripe = client(&fake.url());
    for hold in 0..5 {
        stripe
            .create_payment(&new_payment(&format!("h_{hold}"), 100))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut query = ListQuery {
        from_s: 0,
        to_s: u64::MAX,
        starting_after: None,
        limit: 2,
    };
    loop {
        let page = stripe.list_payments(&query).await.unwrap();
        seen.extend(page.items.iter().map(|payment| payment.id.clone()));
        if !page.has_more {
            break;
        }
        query.starting_after = page.items.last().map(|payment| payment.id.clone());
    }
    assert_eq!(seen.len(), 5);
    seen.dedup();
    assert_eq!(seen.len(), 5);
}

#[tokio::test]
async fn a_wrong_key_is_refused() {
    let fake = FakeGateway::start(KEY, WEBHOOK_SECRET, NOW_S).await;
    let stripe = StripeClient::new(StripeConfig {
        api_base: fake.url(),
        secret_key: SecretKey::new("sk_test_wrong"),
        timeout: Duration::from_secs(10),
    })
    .unwrap();
    match stripe.create_payment(&new_payment("h_1", 100)).await {
        Err(error @ GatewayError::Api { status: 401, .. }) => {
            assert!(!error.to_string().contains("sk_test_wrong"), "{error}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.payment_count(), 0);
}
