//! Payments through a gateway (issue "Payments through a real gateway") on the stateful fake
//! gateway (`payments::fake`): a hold's payment, the confirm on the gateway's signed word,
//! refusals that change nothing, and payments given back (the effects worker refunds what
//! the control log says is due, once, and every ingress shows the hold `refunded`).

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use effects::refunds::RefundGateway;
use effects::{RetryPolicy, Worker, WorkerConfig, WorkerLogs};
use engine::control::{decode_control, ControlRecord};
use ingress::{ControlLogs, Ingress, PaymentsConfig, ShardLogs};
use payments::fake::{FakeGateway, SignedEvent};
use payments::signature::sign;
use payments::stripe::{StripeClient, StripeConfig};
use payments::{PaymentGateway, SecretKey};
use requestlog::{EmbeddedLog, EmbeddedOptions, LogReader, LogWriter};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const KEY: &str = "sk_test_fake";
const WEBHOOK_SECRET: &str = "whsec_test";
/// Every wait ends here at the latest (a failure, not a timing assertion).
const PATIENCE: Duration = Duration::from_secs(60);

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

struct Setup {
    ingress: Option<Ingress>,
    engine: Option<runtime::Runtime>,
    worker: Option<Worker>,
    requests: Arc<EmbeddedLog>,
    outcomes: Arc<EmbeddedLog>,
    control: Arc<EmbeddedLog>,
    fake: FakeGateway,
    gateway: Arc<dyn PaymentGateway>,
    dir: tempfile::TempDir,
}

impl Drop for Setup {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            worker.stop();
        }
        if let Some(ingress) = self.ingress.take() {
            ingress.stop();
        }
        if let Some(engine) = self.engine.take() {
            let _ = engine.shutdown();
        }
    }
}

impl Setup {
    async fn start(with_gateway: bool) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let open = |name: &str| {
            Arc::new(EmbeddedLog::open(dir.path().join(name), EmbeddedOptions::default()).unwrap())
        };
        let (requests, outcomes, control) = (open("requests"), open("outcomes"), open("control"));
        let engine = start_runtime(requests.clone(), outcomes.clone(), engine_config());
        let ingress = Ingress::start_shards(
            config(),
            vec![ShardLogs {
                writer: Arc::new(requests.writer()),
                outcomes: Box::new(outcomes.reader()),
                outcomes_log_id: None,
                engine: None,
            }],
            Some(ControlLogs {
                writer: Arc::new(control.writer()),
                reader: Box::new(control.reader()),
            }),
        )
        .unwrap();
        let fake = FakeGateway::start(KEY, WEBHOOK_SECRET, now_s()).await;
        let gateway: Arc<dyn PaymentGateway> = Arc::new(
            StripeClient::new(StripeConfig {
                api_base: fake.url(),
                secret_key: SecretKey::new(KEY),
                timeout: Duration::from_secs(10),
            })
            .unwrap(),
        );
        let setup = Setup {
            ingress: Some(ingress),
            engine: Some(engine),
            worker: None,
            requests,
            outcomes,
            control,
            fake,
            gateway,
            dir,
        };
        if with_gateway {
            setup.enable_payments();
        }
        setup
    }

    fn enable_payments(&self) {
        self.ingress.as_ref().unwrap().set_payments(PaymentsConfig {
            gateway: self.gateway.clone(),
            webhook_secret: WEBHOOK_SECRET.into(),
            webhook_tolerance_s: 300,
        });
    }

    fn router(&self) -> axum::Router {
        self.ingress.as_ref().unwrap().router()
    }

    /// The effects worker, refunding through the fake gateway.
    fn start_worker(&mut self) {
        self.worker = Some(
            Worker::start_with_gateway(
                WorkerConfig {
                    state_dir: self.dir.path().join("effects"),
                    policy: RetryPolicy {
                        first_retry_ms: 10,
                        retry_max_ms: 40,
                        disable_after_ms: 60_000,
                    },
                    attempt_timeout: Duration::from_secs(5),
                    backlog_per_endpoint_max: 1_000,
                    deliveries_in_flight_max: 8,
                    private_addresses_allowed: true,
                    seed: 1,
                },
                WorkerLogs {
                    outcomes: vec![Box::new(self.outcomes.reader())],
                    control_reader: Box::new(self.control.reader()),
                    control_writer: Arc::new(self.control.writer()),
                    recent_outcomes: Vec::new(),
                },
                Some(RefundGateway {
                    gateway: self.gateway.clone(),
                    currency: "EUR".into(),
                }),
            )
            .unwrap(),
        );
    }

    /// (requests log end, control log end): what a refused request must leave unchanged.
    fn log_ends(&self) -> (u64, u64) {
        (
            self.requests.writer().end_offset().unwrap(),
            self.control.writer().end_offset().unwrap(),
        )
    }

    fn control_records(&self) -> Vec<ControlRecord> {
        let mut reader = self.control.reader();
        let end = reader.end_offset().unwrap();
        let mut records = Vec::new();
        while reader.position() < end {
            for record in reader.poll(64, Duration::from_millis(100)).unwrap() {
                records.push(decode_control(&record.payload).unwrap());
            }
        }
        records
    }

    async fn event(&self, hold_ttl_seconds: u64) -> String {
        create_event(
            &self.router(),
            event_body("Paid show", 10, hold_ttl_seconds),
        )
        .await
    }

    /// A hold of `seats` Gold seats (50.00 each) for `user`.
    async fn hold(&self, event: &str, user: &str, seats: &[&str]) -> String {
        let answer = call(
            &self.router(),
            Method::POST,
            &format!("/v1/events/{event}/holds"),
            Some(&token(user)),
            Some(json!({ "seats": seats })),
        )
        .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
        answer.body["hold_id"].as_str().unwrap().to_string()
    }

    async fn pay(&self, hold: &str, user: &str) -> Answer {
        call(
            &self.router(),
            Method::POST,
            &format!("/v1/holds/{hold}/payment"),
            Some(&token(user)),
            None,
        )
        .await
    }

    async fn get_hold(&self, hold: &str, user: &str) -> Value {
        let answer = call(
            &self.router(),
            Method::GET,
            &format!("/v1/holds/{hold}"),
            Some(&token(user)),
            None,
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        answer.body
    }

    async fn webhook(&self, event: &SignedEvent) -> Answer {
        self.webhook_signed(&event.payload, Some(&event.signature))
            .await
    }

    async fn webhook_signed(&self, payload: &[u8], signature: Option<&str>) -> Answer {
        let mut headers = vec![("content-type", "application/json")];
        if let Some(signature) = signature {
            headers.push(("stripe-signature", signature));
        }
        call_with(
            &self.router(),
            Method::POST,
            "/v1/payments/webhook",
            None,
            &headers,
            Some(String::from_utf8(payload.to_vec()).unwrap()),
        )
        .await
    }

    /// Waits until the hold shows `status`.
    async fn wait_hold_status(&self, hold: &str, user: &str, status: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let body = self.get_hold(hold, user).await;
            if body["status"] == status {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "hold {hold} never {status}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_hold_is_confirmed_by_the_gateway_s_signed_word() {
    let setup = Setup::start(true).await;
    let event = setup.event(300).await;
    let hold = setup.hold(&event, "ana", &["A-1-1", "A-1-2"]).await;

    let created = setup.pay(&hold, "ana").await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(
        created.body["amount_cents"], 10_000,
        "exactly the hold's total"
    );
    assert_eq!(created.body["currency"], "EUR");
    assert_eq!(created.body["hold_id"], hold);
    assert!(created.body["client_secret"]
        .as_str()
        .unwrap()
        .contains("_secret_"));
    let payment = created.body["payment_id"].as_str().unwrap().to_string();
    // Asked again: the same payment (the hold id is the gateway's idempotency key).
    let again = setup.pay(&hold, "ana").await;
    assert_eq!(again.body["payment_id"], payment.as_str());
    assert_eq!(setup.fake.payment_count(), 1);
    // Another user's hold is not found.
    assert_eq!(setup.pay(&hold, "bo").await.status, StatusCode::NOT_FOUND);

    let paid = setup.fake.succeed(&payment);
    let confirmed = setup.webhook(&paid).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.text);
    assert_eq!(confirmed.body["result"], "confirmed");
    let booking = confirmed.body["booking_id"].as_str().unwrap().to_string();
    let shown = setup.get_hold(&hold, "ana").await;
    assert_eq!(
        (shown["status"].as_str(), shown["booking_id"].as_str()),
        (Some("confirmed"), Some(booking.as_str()))
    );
    let booked = call(
        &setup.router(),
        Method::GET,
        &format!("/v1/bookings/{booking}"),
        Some(&token("ana")),
        None,
    )
    .await;
    assert_eq!(booked.body["payment_ref"], payment.as_str());
    assert_eq!(booked.body["total_cents"], 10_000);

    // The gateway retries its event: the same answer, nothing more.
    let ends = setup.log_ends();
    let retried = setup.webhook(&paid).await;
    assert_eq!(
        (retried.status, retried.body["booking_id"].as_str()),
        (StatusCode::OK, Some(booking.as_str()))
    );
    assert_eq!(setup.log_ends(), ends);
    assert!(setup.fake.refunds().is_empty());
    // A paid, confirmed hold takes no second payment.
    let refused = setup.pay(&hold, "ana").await;
    assert_eq!(
        (refused.status, refused.reason()),
        (StatusCode::CONFLICT, "hold_already_confirmed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stale_and_unsigned_webhooks_are_refused_and_change_nothing() {
    let setup = Setup::start(true).await;
    let event = setup.event(300).await;
    let hold = setup.hold(&event, "ana", &["A-1-1"]).await;
    let payment = setup.pay(&hold, "ana").await.body["payment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let paid = setup.fake.succeed(&payment);
    let ends = setup.log_ends();

    let forged = sign("whsec_someone_else", now_s(), &paid.payload);
    let stale = sign(WEBHOOK_SECRET, now_s() - 301, &paid.payload);
    let mut tampered = paid.payload.clone();
    let at = tampered
        .windows(5)
        .position(|window| window == b"5000,")
        .unwrap();
    tampered[at] = b'1'; // "1000," where 5000 was: the signature no longer matches
    for (payload, signature, reason) in [
        (&paid.payload, Some(forged.as_str()), "invalid_signature"),
        (&paid.payload, Some(stale.as_str()), "stale_signature"),
        (&paid.payload, None, "invalid_signature"),
        (&paid.payload, Some("t=1,v1=zz"), "invalid_signature"),
        (
            &tampered,
            Some(paid.signature.as_str()),
            "invalid_signature",
        ),
    ] {
        let answer = setup.webhook_signed(payload, signature).await;
        assert_eq!(
            (answer.status, answer.code(), answer.reason()),
            (StatusCode::UNAUTHORIZED, "unauthorized", reason),
            "{}",
            answer.text
        );
    }
    assert_eq!(setup.log_ends(), ends, "nothing appended");
    assert_eq!(setup.get_hold(&hold, "ana").await["status"], "held");

    // A signed event that is not one: 400, nothing applied.
    let garbage = b"{\"not\": \"an event\"}";
    let answer = setup
        .webhook_signed(garbage, Some(&sign(WEBHOOK_SECRET, now_s(), garbage)))
        .await;
    assert_eq!(
        (answer.status, answer.reason()),
        (StatusCode::BAD_REQUEST, "invalid_body")
    );
    // Events Boxoffice does not act on are acknowledged.
    let other = setup.fake.event(&payment, "payment_intent.created");
    let answer = setup.webhook(&other).await;
    assert_eq!(
        (answer.status, answer.body["result"].as_str()),
        (StatusCode::OK, Some("ignored"))
    );
    assert_eq!(setup.log_ends(), ends, "nothing appended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_for_an_unknown_hold_is_refused_and_changes_nothing() {
    let setup = Setup::start(true).await;
    setup.event(300).await;
    let ends = setup.log_ends();
    for hold in [Some("h_99999"), Some("not-a-hold"), None] {
        let payment = setup.fake.insert_payment(5000, "EUR", hold);
        let answer = setup.webhook(&setup.fake.succeed(&payment)).await;
        assert_eq!(
            (answer.status, answer.reason()),
            (StatusCode::NOT_FOUND, "hold_not_found"),
            "{hold:?}: {}",
            answer.text
        );
    }
    assert_eq!(setup.log_ends(), ends);
    assert!(setup.fake.refunds().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_amount_is_refused_and_refunded() {
    let mut setup = Setup::start(true).await;
    setup.start_worker();
    let event = setup.event(300).await;
    let hold = setup.hold(&event, "ana", &["A-1-1"]).await;
    // A payment made outside Boxoffice's flow, for the hold but of 1 cent.
    let payment = setup.fake.insert_payment(1, "EUR", Some(&hold));
    let answer = setup.webhook(&setup.fake.succeed(&payment)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(
        (
            answer.body["result"].as_str(),
            answer.body["reason"].as_str()
        ),
        (Some("refund_due"), Some("payment_amount_mismatch"))
    );
    // Another currency, the right amount: refused too.
    let foreign = setup.fake.insert_payment(5000, "USD", Some(&hold));
    let answer = setup.webhook(&setup.fake.succeed(&foreign)).await;
    assert_eq!(answer.body["reason"], "payment_currency_mismatch");
    let shown = setup.wait_hold_status(&hold, "ana", "refunded").await;
    // Both given back, once each; the hold was never confirmed.
    let deadline = Instant::now() + PATIENCE;
    while setup.fake.refunds().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "refunds: {:?}",
            setup.fake.refunds()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refunds = setup.fake.refunds();
    assert_eq!(
        refunds
            .iter()
            .map(|refund| (refund.payment_id.as_str(), refund.amount_cents))
            .collect::<Vec<_>>(),
        [(payment.as_str(), 1), (foreign.as_str(), 5000)]
    );
    assert_eq!(shown["refund_id"], refunds[0].id.as_str());
    assert!(shown.get("booking_id").is_none(), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_payment_is_refunded_exactly_once_and_shown() {
    let mut setup = Setup::start(true).await;
    let event = setup.event(1).await;
    let hold = setup.hold(&event, "ana", &["A-1-1"]).await;
    let payment = setup.pay(&hold, "ana").await.body["payment_id"]
        .as_str()
        .unwrap()
        .to_string();
    setup.wait_hold_status(&hold, "ana", "expired").await;

    let paid = setup.fake.succeed(&payment);
    let late = setup.webhook(&paid).await;
    assert_eq!(late.status, StatusCode::OK, "{}", late.text);
    assert_eq!(
        (late.body["result"].as_str(), late.body["reason"].as_str()),
        (Some("refund_due"), Some("hold_expired"))
    );
    // The gateway retries: due again, refunded once all the same.
    let retried = setup.webhook(&paid).await;
    assert_eq!(retried.body["result"], "refund_due");
    let due = setup
        .control_records()
        .into_iter()
        .filter(|record| matches!(record, ControlRecord::PaymentRefundDue { .. }))
        .count();
    assert_eq!(due, 2);
    assert_eq!(
        setup.get_hold(&hold, "ana").await["status"],
        "expired",
        "not refunded yet"
    );

    setup.start_worker();
    let shown = setup.wait_hold_status(&hold, "ana", "refunded").await;
    let refunds = setup.fake.refunds();
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(
        (
            refunds[0].payment_id.as_str(),
            refunds[0].amount_cents,
            refunds[0].reason.as_str()
        ),
        (payment.as_str(), 5000, "hold_expired")
    );
    assert_eq!(shown["refund_id"], refunds[0].id.as_str());
    let recorded = setup
        .control_records()
        .into_iter()
        .filter(|record| matches!(record, ControlRecord::PaymentRefunded { .. }))
        .count();
    assert_eq!(recorded, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_s_payment_ref_is_checked_against_the_gateway() {
    let setup = Setup::start(true).await;
    let event = setup.event(300).await;
    let first = setup.hold(&event, "ana", &["A-1-1"]).await;
    let second = setup.hold(&event, "ana", &["A-1-2", "A-1-3"]).await;
    let payment = setup.pay(&first, "ana").await.body["payment_id"]
        .as_str()
        .unwrap()
        .to_string();
    let confirm = |hold: String, payment_ref: String| {
        let router = setup.router();
        async move {
            call(
                &router,
                Method::POST,
                &format!("/v1/holds/{hold}/confirm"),
                Some(&token("ana")),
                Some(json!({ "payment_ref": payment_ref })),
            )
            .await
        }
    };
    let ends = setup.log_ends();
    let unpaid = confirm(first.clone(), payment.clone()).await;
    assert_eq!(
        (unpaid.status, unpaid.reason()),
        (StatusCode::CONFLICT, "payment_not_succeeded")
    );
    let paid = setup.fake.succeed(&payment);
    let other_hold = confirm(second.clone(), payment.clone()).await;
    assert_eq!(
        (other_hold.status, other_hold.reason()),
        (StatusCode::CONFLICT, "payment_for_another_hold")
    );
    let unknown = confirm(first.clone(), "pi_unknown".into()).await;
    assert_eq!(
        (unknown.status, unknown.reason()),
        (StatusCode::CONFLICT, "payment_not_found")
    );
    let short = setup.fake.insert_payment(100, "EUR", Some(&second));
    setup.fake.succeed(&short);
    let wrong_amount = confirm(second.clone(), short).await;
    assert_eq!(
        (wrong_amount.status, wrong_amount.reason()),
        (StatusCode::CONFLICT, "payment_amount_mismatch")
    );
    let foreign = setup.fake.insert_payment(5000, "USD", Some(&first));
    setup.fake.succeed(&foreign);
    let wrong_currency = confirm(first.clone(), foreign).await;
    assert_eq!(
        (wrong_currency.status, wrong_currency.reason()),
        (StatusCode::CONFLICT, "payment_currency_mismatch")
    );
    assert_eq!(setup.log_ends(), ends, "nothing appended");

    let booked = confirm(first.clone(), payment.clone()).await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.text);
    assert_eq!(booked.body["payment_ref"], payment.as_str());
    // The gateway's word comes after: the same booking, no refund.
    let answer = setup.webhook(&paid).await;
    assert_eq!(
        (
            answer.body["result"].as_str(),
            answer.body["booking_id"].as_str()
        ),
        (Some("confirmed"), booked.body["booking_id"].as_str())
    );
    assert!(setup.fake.refunds().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_gateway_payments_are_not_configured() {
    let setup = Setup::start(false).await;
    let event = setup.event(300).await;
    let hold = setup.hold(&event, "ana", &["A-1-1"]).await;
    let answer = setup.pay(&hold, "ana").await;
    assert_eq!(
        (answer.status, answer.reason()),
        (StatusCode::CONFLICT, "payments_not_configured")
    );
    let payload = br#"{"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {}}}"#;
    let answer = setup
        .webhook_signed(payload, Some(&sign(WEBHOOK_SECRET, now_s(), payload)))
        .await;
    assert_eq!(
        (answer.status, answer.reason()),
        (StatusCode::CONFLICT, "payments_not_configured")
    );
    // A confirm's payment_ref is taken as given, as before.
    let booked = call(
        &setup.router(),
        Method::POST,
        &format!("/v1/holds/{hold}/confirm"),
        Some(&token("ana")),
        Some(json!({"payment_ref": "cash"})),
    )
    .await;
    assert_eq!(booked.status, StatusCode::CREATED, "{}", booked.text);
}

async fn confirm(setup: &Setup, hold: &str, payment_ref: &str) -> Answer {
    call(
        &setup.router(),
        Method::POST,
        &format!("/v1/holds/{hold}/confirm"),
        Some(&token("ana")),
        Some(json!({ "payment_ref": payment_ref })),
    )
    .await
}

fn rfc3339(seconds: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(seconds as i64)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_matches_the_log_against_the_gateway() {
    let mut setup = Setup::start(false).await;
    let event = setup.event(300).await;
    let short = setup.event(1).await;
    // Booked before the gateway was configured: one with no payment at all, one with a
    // payment of another amount.
    let cash = setup.hold(&event, "ana", &["A-1-1"]).await;
    assert_eq!(
        confirm(&setup, &cash, "cash").await.status,
        StatusCode::CREATED
    );
    let mismatched = setup.hold(&event, "ana", &["A-1-2", "A-1-3"]).await;
    let half = setup.fake.insert_payment(5000, "EUR", Some(&mismatched));
    setup.fake.succeed(&half);
    assert_eq!(
        confirm(&setup, &mismatched, &half).await.status,
        StatusCode::CREATED
    );
    setup.enable_payments();
    setup.start_worker();
    // Paid and booked through the webhook.
    let booked = setup.hold(&event, "ana", &["A-1-4"]).await;
    let booked_payment = setup.pay(&booked, "ana").await.body["payment_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        setup
            .webhook(&setup.fake.succeed(&booked_payment))
            .await
            .body["result"],
        "confirmed"
    );
    // Paid, but the gateway's word never came: needs action.
    let unheard = setup.hold(&event, "ana", &["A-1-5"]).await;
    let unheard_payment = setup.pay(&unheard, "ana").await.body["payment_id"]
        .as_str()
        .unwrap()
        .to_string();
    setup.fake.succeed(&unheard_payment);
    // Paid too late: refunded.
    let late = setup.hold(&short, "ana", &["A-1-1"]).await;
    let late_payment = setup.pay(&late, "ana").await.body["payment_id"]
        .as_str()
        .unwrap()
        .to_string();
    setup.wait_hold_status(&late, "ana", "expired").await;
    assert_eq!(
        setup.webhook(&setup.fake.succeed(&late_payment)).await.body["result"],
        "refund_due"
    );
    setup.wait_hold_status(&late, "ana", "refunded").await;

    let period = format!(
        "from={}&to={}",
        rfc3339(now_s() - 3600),
        rfc3339(now_s() + 3600)
    )
    .replace('+', "%2B");
    let report = call(
        &setup.router(),
        Method::GET,
        &format!("/v1/admin/reports/reconciliation?{period}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text);
    let mut rows: Vec<(String, String, Option<String>, u64, u64, u64)> = report.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["category"].as_str().unwrap().to_string(),
                row["hold_id"].as_str().unwrap().to_string(),
                row["payment_id"].as_str().map(str::to_string),
                row["paid_cents"].as_u64().unwrap(),
                row["booked_cents"].as_u64().unwrap(),
                row["refunded_cents"].as_u64().unwrap(),
            )
        })
        .collect();
    rows.sort();
    let mut expected = vec![
        (
            "amount_mismatch".to_string(),
            mismatched.clone(),
            Some(half.clone()),
            5000,
            10_000,
            0,
        ),
        (
            "booked_without_payment".to_string(),
            cash.clone(),
            None,
            0,
            5000,
            0,
        ),
        (
            "paid_and_booked".to_string(),
            booked.clone(),
            Some(booked_payment.clone()),
            5000,
            5000,
            0,
        ),
        (
            "paid_and_refunded".to_string(),
            late.clone(),
            Some(late_payment.clone()),
            5000,
            0,
            5000,
        ),
        (
            "paid_not_booked".to_string(),
            unheard.clone(),
            Some(unheard_payment.clone()),
            5000,
            0,
            0,
        ),
    ];
    expected.sort();
    assert_eq!(rows, expected, "{}", report.text);
    // Totals per event, currency and category.
    let totals = report.body["totals"].as_array().unwrap();
    let of = |event: &str, category: &str| {
        totals
            .iter()
            .find(|total| total["event_id"] == event && total["category"] == category)
            .map(|total| {
                (
                    total["count"].as_u64().unwrap(),
                    total["paid_cents"].as_u64().unwrap(),
                    total["currency"].as_str().unwrap().to_string(),
                )
            })
    };
    assert_eq!(of(&event, "paid_and_booked"), Some((1, 5000, "EUR".into())));
    assert_eq!(
        of(&short, "paid_and_refunded"),
        Some((1, 5000, "EUR".into()))
    );
    assert_eq!(totals.len(), 5);

    let csv = call_with(
        &setup.router(),
        Method::GET,
        &format!("/v1/admin/reports/reconciliation?{period}"),
        Some(ADMIN),
        &[("accept", "text/csv")],
        None,
    )
    .await;
    assert_eq!(csv.status, StatusCode::OK);
    let lines: Vec<&str> = csv.text.lines().collect();
    assert_eq!(lines[0], "category,event_id,hold_id,booking_id,payment_id,refund_id,paid_cents,booked_cents,refunded_cents,currency");
    assert_eq!(lines.len(), 6, "{}", csv.text);
    assert!(lines
        .iter()
        .any(|line| line.starts_with("paid_not_booked,") && line.contains(&unheard_payment)));

    // Another tenant sees none of it.
    let other = call(
        &setup.router(),
        Method::GET,
        &format!("/v1/admin/reports/reconciliation?{period}"),
        Some(OTHER_ADMIN),
        None,
    )
    .await;
    assert_eq!(other.body["rows"], json!([]));
    // Bad periods are named.
    for query in [
        format!("from={}&to={}", rfc3339(now_s()), rfc3339(now_s())),
        format!(
            "from={}&to={}",
            rfc3339(now_s() - 400 * 86_400),
            rfc3339(now_s())
        ),
        "from=yesterday&to=today".to_string(),
    ] {
        let refused = call(
            &setup.router(),
            Method::GET,
            &format!("/v1/admin/reports/reconciliation?{query}"),
            Some(ADMIN),
            None,
        )
        .await;
        assert_eq!(
            (refused.status, refused.code()),
            (StatusCode::BAD_REQUEST, "bad_request"),
            "{query}: {}",
            refused.text
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canceled_bookings_are_refunded_with_their_event_or_by_their_user() {
    let mut setup = Setup::start(true).await;
    setup.start_worker();
    let event = setup.event(300).await;
    let mut bookings = Vec::new();
    for seat in ["A-1-1", "A-1-2"] {
        let hold = setup.hold(&event, "ana", &[seat]).await;
        let payment = setup.pay(&hold, "ana").await.body["payment_id"]
            .as_str()
            .unwrap()
            .to_string();
        let confirmed = setup.webhook(&setup.fake.succeed(&payment)).await;
        bookings.push((
            confirmed.body["booking_id"].as_str().unwrap().to_string(),
            payment,
        ));
    }
    // The user cancels the first; the organiser cancels the event (and so the second).
    let canceled = call(
        &setup.router(),
        Method::DELETE,
        &format!("/v1/bookings/{}", bookings[0].0),
        Some(&token("ana")),
        None,
    )
    .await;
    assert_eq!(canceled.status, StatusCode::OK, "{}", canceled.text);
    let event_canceled = call(
        &setup.router(),
        Method::DELETE,
        &format!("/v1/admin/events/{event}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(
        event_canceled.status,
        StatusCode::OK,
        "{}",
        event_canceled.text
    );
    for (booking, payment) in &bookings {
        let deadline = Instant::now() + PATIENCE;
        let shown = loop {
            let shown = call(
                &setup.router(),
                Method::GET,
                &format!("/v1/bookings/{booking}"),
                Some(&token("ana")),
                None,
            )
            .await;
            if shown.body.get("refund_id").is_some() {
                break shown;
            }
            assert!(
                Instant::now() < deadline,
                "{booking} never refunded: {}",
                shown.text
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(shown.body["status"], "canceled");
        let refund = setup
            .fake
            .refunds()
            .into_iter()
            .find(|refund| &refund.payment_id == payment)
            .unwrap();
        assert_eq!(shown.body["refund_id"], refund.id.as_str());
        assert_eq!(refund.amount_cents, 5000);
    }
    let mut reasons: Vec<String> = setup
        .fake
        .refunds()
        .into_iter()
        .map(|refund| refund.reason)
        .collect();
    reasons.sort();
    assert_eq!(reasons, ["booking_canceled", "event_canceled"]);
}

/// Pays `hold` through the fake gateway and confirms it by webhook; (booking, payment).
async fn paid_booking(setup: &Setup, hold: &str, user: &str) -> (String, String) {
    let paid = setup.pay(hold, user).await;
    assert_eq!(paid.status, StatusCode::CREATED, "{}", paid.text);
    let payment = paid.body["payment_id"].as_str().unwrap().to_string();
    let confirmed = setup.webhook(&setup.fake.succeed(&payment)).await;
    assert_eq!(confirmed.body["result"], "confirmed", "{}", confirmed.text);
    (
        confirmed.body["booking_id"].as_str().unwrap().to_string(),
        payment,
    )
}

/// An event's terms (issue "Payments through a real gateway"): its currency is the
/// payment's and the refund's; a user's cancellation under `refund: none` gives nothing
/// back, the organiser's cancellation of the event refunds in full all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_s_terms_set_its_currency_and_what_a_cancellation_refunds() {
    let mut setup = Setup::start(true).await;
    setup.start_worker();
    let mut body = event_body("Yen show", 10, 300);
    body["currency"] = json!("JPY");
    body["cancellation"] = json!({"until_hours_before_start": 24, "refund": "none"});
    let event = create_event(&setup.router(), body).await;
    let shown = call(
        &setup.router(),
        Method::GET,
        &format!("/v1/events/{event}"),
        None,
        None,
    )
    .await;
    assert_eq!(
        (&shown.body["currency"], &shown.body["cancellation"]),
        (
            &json!("JPY"),
            &json!({"until_hours_before_start": 24, "refund": "none"})
        ),
        "{}",
        shown.text
    );
    let first_hold = setup.hold(&event, "ana", &["A-1-1"]).await;
    let paid = setup.pay(&first_hold, "ana").await;
    assert_eq!(paid.body["currency"], "JPY", "{}", paid.text);
    let (first_booking, first_payment) = paid_booking(&setup, &first_hold, "ana").await;
    let second_hold = setup.hold(&event, "ana", &["A-1-2"]).await;
    let (second_booking, second_payment) = paid_booking(&setup, &second_hold, "ana").await;
    // The user cancels the first (before the cut-off): no refund under `refund: none`.
    let canceled = call(
        &setup.router(),
        Method::DELETE,
        &format!("/v1/bookings/{first_booking}"),
        Some(&token("ana")),
        None,
    )
    .await;
    assert_eq!(canceled.status, StatusCode::OK, "{}", canceled.text);
    // The organiser cancels the event: the second is refunded in full, in yen.
    let event_canceled = call(
        &setup.router(),
        Method::DELETE,
        &format!("/v1/admin/events/{event}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(
        event_canceled.status,
        StatusCode::OK,
        "{}",
        event_canceled.text
    );
    let deadline = Instant::now() + PATIENCE;
    loop {
        let shown = call(
            &setup.router(),
            Method::GET,
            &format!("/v1/bookings/{second_booking}"),
            Some(&token("ana")),
            None,
        )
        .await;
        if shown.body.get("refund_id").is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "never refunded: {}", shown.text);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The worker follows outcomes in order: had the first cancellation been due back, its
    // record would be in the control log before the second's.
    let due: Vec<(String, String, String)> = setup
        .control_records()
        .into_iter()
        .filter_map(|record| match record {
            ControlRecord::PaymentRefundDue {
                payment_id,
                currency,
                reason,
                ..
            } => Some((payment_id, currency, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        due,
        [(
            second_payment.clone(),
            "JPY".to_string(),
            "event_canceled".to_string()
        )]
    );
    let refunds = setup.fake.refunds();
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    assert_eq!(
        (refunds[0].payment_id.as_str(), refunds[0].amount_cents),
        (second_payment.as_str(), 5000)
    );
    assert!(refunds
        .iter()
        .all(|refund| refund.payment_id != first_payment));
    // The organiser sees the refund on the attendees list (JSON and CSV).
    let attendees = call(
        &setup.router(),
        Method::GET,
        &format!("/v1/admin/events/{event}/attendees"),
        Some(ADMIN),
        None,
    )
    .await;
    let listed: Vec<(Value, Value, Value)> = attendees.body["attendees"]
        .as_array()
        .unwrap()
        .iter()
        .map(|attendee| {
            (
                attendee["booking_id"].clone(),
                attendee["payment_ref"].clone(),
                attendee.get("refund_id").cloned().unwrap_or(Value::Null),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (json!(first_booking), json!(first_payment), Value::Null),
            (
                json!(second_booking),
                json!(second_payment),
                json!(refunds[0].id)
            ),
        ],
        "{}",
        attendees.text
    );
    let csv = call_with(
        &setup.router(),
        Method::GET,
        &format!("/v1/admin/events/{event}/attendees"),
        Some(ADMIN),
        &[("accept", "text/csv")],
        None,
    )
    .await;
    assert!(
        csv.text
            .lines()
            .any(|line| line.ends_with(&format!(",{second_payment},{}", refunds[0].id))),
        "{}",
        csv.text
    );
}

/// Past the cut-off a user's cancel is refused with its reason and changes nothing; bad
/// terms are 400 naming the field, with nothing appended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellations_close_at_the_cutoff_and_bad_terms_are_refused() {
    let setup = Setup::start(true).await;
    // Starts in an hour; cancellations closed two hours before the start: already closed.
    let mut body = event_body("Soon", 10, 300);
    body["starts_at"] = json!(rfc3339(now_s() + 3_600));
    body["cancellation"] = json!({"until_hours_before_start": 2, "refund": "full"});
    let event = create_event(&setup.router(), body).await;
    let shown = call(
        &setup.router(),
        Method::GET,
        &format!("/v1/events/{event}"),
        None,
        None,
    )
    .await;
    assert_eq!(shown.body["currency"], "EUR", "the deployment's default");
    let hold = setup.hold(&event, "ana", &["A-1-1"]).await;
    let (booking, _) = paid_booking(&setup, &hold, "ana").await;
    let refused = call(
        &setup.router(),
        Method::DELETE,
        &format!("/v1/bookings/{booking}"),
        Some(&token("ana")),
        None,
    )
    .await;
    assert_eq!(
        (refused.status, refused.reason()),
        (StatusCode::CONFLICT, "cancellation_closed"),
        "{}",
        refused.text
    );
    let still = call(
        &setup.router(),
        Method::GET,
        &format!("/v1/bookings/{booking}"),
        Some(&token("ana")),
        None,
    )
    .await;
    assert_eq!(still.body["status"], "confirmed", "{}", still.text);

    let before = setup.log_ends();
    for (terms, field) in [
        (json!({"currency": "XYZ"}), "currency"),
        (json!({"currency": "eur"}), "currency"),
        (
            json!({"cancellation": {"until_hours_before_start": 8761, "refund": "full"}}),
            "cancellation.until_hours_before_start",
        ),
        (
            json!({"cancellation": {"until_hours_before_start": 1, "refund": "half"}}),
            "cancellation.refund",
        ),
    ] {
        let mut body = event_body("Bad terms", 10, 300);
        for (key, value) in terms.as_object().unwrap() {
            body[key] = value.clone();
        }
        let answer = call(
            &setup.router(),
            Method::POST,
            "/v1/admin/events",
            Some(ADMIN),
            Some(body),
        )
        .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
        assert_eq!(
            answer.body["error"]["details"]["field"], field,
            "{}",
            answer.text
        );
    }
    assert_eq!(setup.log_ends(), before, "nothing appended");
}
