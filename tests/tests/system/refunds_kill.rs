//! The effects worker as a real process (`boxoffice effects`, Kafka mode) killed with
//! SIGKILL between the gateway's refund and its record in the control log (issue
//! "Payments through a real gateway"). The gateway is the stateful fake
//! (`payments::fake`) in this test, told to make a refund and hold its answer: the test
//! kills the worker there, so the refund exists at the gateway and nowhere in the log.
//! Restarted on the same data directory, the worker finds the payment still due (it reads
//! the whole control log first), asks again with the same idempotency key, gets the same
//! refund back and records it: one refund per payment at the gateway, none lost, and the
//! booking shows it. A booking canceled after the restart is refunded too.

use crate::http_suite::{event_body, token, Service, ADMIN, DEADLINE};
use payments::fake::FakeGateway;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SECRET_KEY: &str = "sk_test_refund_kill";
const WEBHOOK_SECRET: &str = "whsec_refund_kill";

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Holds seat `seat`, pays it at the fake gateway and confirms it by the gateway's signed
/// webhook; returns (booking, payment).
async fn paid_booking(
    service: &Service,
    fake: &FakeGateway,
    event: &str,
    seat: &str,
) -> (String, String) {
    let ana = token("ana");
    let held = service
        .send(
            Method::POST,
            &format!("/v1/events/{event}/holds"),
            Some(&ana),
            Some(json!({"seats": [seat]})),
        )
        .await;
    assert_eq!(held.status, StatusCode::CREATED, "{}", held.text);
    let hold = held.body["hold_id"].as_str().unwrap();
    let paid = service
        .send(
            Method::POST,
            &format!("/v1/holds/{hold}/payment"),
            Some(&ana),
            None,
        )
        .await;
    assert_eq!(paid.status, StatusCode::CREATED, "{}", paid.text);
    let payment = paid.body["payment_id"].as_str().unwrap().to_string();
    let event = fake.succeed(&payment);
    let confirmed = service
        .send_with(
            Method::POST,
            "/v1/payments/webhook",
            None,
            &[("stripe-signature", event.signature.as_str())],
            Some(String::from_utf8(event.payload).unwrap()),
        )
        .await;
    assert_eq!(confirmed.body["result"], "confirmed", "{}", confirmed.text);
    (
        confirmed.body["booking_id"].as_str().unwrap().to_string(),
        payment,
    )
}

async fn cancel(service: &Service, booking: &str) {
    let canceled = service
        .send(
            Method::DELETE,
            &format!("/v1/bookings/{booking}"),
            Some(&token("ana")),
            None,
        )
        .await;
    assert_eq!(canceled.status, StatusCode::OK, "{}", canceled.text);
}

/// Waits (bounded) until the booking shows its refund; returns the refund id.
async fn refund_shown(service: &Service, booking: &str) -> String {
    let began = std::time::Instant::now();
    loop {
        let shown = service
            .send(
                Method::GET,
                &format!("/v1/bookings/{booking}"),
                Some(&token("ana")),
                None,
            )
            .await;
        if let Some(refund) = shown.body["refund_id"].as_str() {
            return refund.to_string();
        }
        assert!(
            began.elapsed() < DEADLINE,
            "{booking} never refunded: {}",
            shown.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_between_the_refund_and_its_record_refunds_once() {
    let fake = FakeGateway::start(SECRET_KEY, WEBHOOK_SECRET, now_s()).await;
    let payments_env = vec![
        ("BOXOFFICE_PAYMENTS_GATEWAY", "stripe".to_string()),
        ("BOXOFFICE_PAYMENTS_STRIPE_API_BASE", fake.url()),
        (
            "BOXOFFICE_PAYMENTS_STRIPE_SECRET_KEY",
            SECRET_KEY.to_string(),
        ),
        (
            "BOXOFFICE_PAYMENTS_WEBHOOK_SECRET",
            WEBHOOK_SECRET.to_string(),
        ),
    ];
    let Some(service) = Service::kafka_with_env("refund-kill", payments_env).await else {
        return;
    };
    service.start_effects();
    let event = service.create_event(event_body("Refunded", 3, 300)).await;
    let (first_booking, first_payment) = paid_booking(&service, &fake, &event, "A-1-1").await;

    // The refund is made at the gateway, its answer held: the worker is killed there.
    fake.hold_refund_answers(true);
    cancel(&service, &first_booking).await;
    tokio::time::timeout(DEADLINE, fake.refund_answers_withheld(1))
        .await
        .expect("the worker asks the gateway for the refund");
    service.kill_effects();
    fake.hold_refund_answers(false);
    let made = fake.refunds();
    assert_eq!(made.len(), 1, "{made:?}");

    // Restarted on the same store: asked again with the same key, the same refund recorded.
    service.start_effects();
    let shown = refund_shown(&service, &first_booking).await;
    assert_eq!(shown, made[0].id);
    let key = format!("refund_{first_payment}");
    let keys = fake.refund_keys();
    assert!(
        keys.len() >= 2 && keys.iter().all(|asked| *asked == key),
        "asked again, with the payment's key only: {keys:?}"
    );
    assert_eq!(fake.refunds(), made, "no second refund at the gateway");

    // Nothing is lost after the restart either.
    let (second_booking, second_payment) = paid_booking(&service, &fake, &event, "A-1-2").await;
    cancel(&service, &second_booking).await;
    let second_refund = refund_shown(&service, &second_booking).await;
    let refunds = fake.refunds();
    assert_eq!(refunds.len(), 2, "{refunds:?}");
    let second = refunds
        .iter()
        .find(|refund| refund.payment_id == second_payment)
        .unwrap();
    assert_eq!(
        (second.id.as_str(), second.amount_cents),
        (second_refund.as_str(), 5000)
    );
    let _ = ADMIN;
}
