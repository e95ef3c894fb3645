//! The effects worker's refunds against the stateful fake gateway (`payments::fake`): what
//! the control log says is due is refunded once per payment and recorded in the control
//! log, also when a worker died between the gateway's answer and its record.

use effects::refunds::{refund_key, RefundGateway};
use effects::{RetryPolicy, Worker, WorkerConfig, WorkerLogs};
use engine::control::{decode_control, encode_control, ControlRecord};
use engine::HoldId;
use payments::fake::FakeGateway;
use payments::stripe::{StripeClient, StripeConfig};
use payments::{NewPayment, NewRefund, PaymentGateway, SecretKey};
use requestlog::{EmbeddedLog, EmbeddedOptions, LogReader, LogWriter};
use std::sync::Arc;
use std::time::Duration;

const KEY: &str = "sk_test_fake";
/// Every wait for the worker ends here at the latest (a failure, not a timing assertion).
const PATIENCE: Duration = Duration::from_secs(60);

struct Setup {
    dir: tempfile::TempDir,
    outcomes: Arc<EmbeddedLog>,
    control: Arc<EmbeddedLog>,
    fake: FakeGateway,
    gateway: Arc<StripeClient>,
}

impl Setup {
    async fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let open = |name: &str| {
            Arc::new(EmbeddedLog::open(dir.path().join(name), EmbeddedOptions::default()).unwrap())
        };
        let (outcomes, control) = (open("outcomes"), open("control"));
        let fake = FakeGateway::start(KEY, "whsec_fake", 1_800_000_000).await;
        let gateway = Arc::new(
            StripeClient::new(StripeConfig {
                api_base: fake.url(),
                secret_key: SecretKey::new(KEY),
                timeout: Duration::from_secs(10),
            })
            .unwrap(),
        );
        Setup {
            dir,
            outcomes,
            control,
            fake,
            gateway,
        }
    }

    /// A succeeded payment of `amount_cents` for hold `hold`.
    async fn paid(&self, hold: u64, amount_cents: u64) -> String {
        let payment = self
            .gateway
            .create_payment(&NewPayment {
                amount_cents,
                currency: "EUR".into(),
                hold_id: HoldId(hold).to_string(),
                idempotency_key: format!("hold_{hold}"),
            })
            .await
            .unwrap();
        self.fake.succeed(&payment.id);
        payment.id
    }

    fn due(&self, hold: u64, payment_id: &str, amount_cents: u64) {
        self.control
            .writer()
            .append(vec![encode_control(&ControlRecord::PaymentRefundDue {
                hold: HoldId(hold),
                payment_id: payment_id.into(),
                amount_cents,
                currency: "EUR".into(),
                reason: "hold_expired".into(),
            })])
            .unwrap();
    }

    fn worker(&self) -> Worker {
        self.worker_with(Some(RefundGateway {
            gateway: self.gateway.clone() as Arc<dyn PaymentGateway>,
            currency: "EUR".into(),
        }))
    }

    fn worker_with(&self, gateway: Option<RefundGateway>) -> Worker {
        Worker::start_with_gateway(
            WorkerConfig {
                state_dir: self.dir.path().join("effects"),
                policy: RetryPolicy {
                    first_retry_ms: 10,
                    retry_max_ms: 40,
                    disable_after_ms: 60_000,
                },
                attempt_timeout: Duration::from_secs(5),
                backlog_per_endpoint_max: 10_000,
                deliveries_in_flight_max: 8,
                private_addresses_allowed: true,
                seed: 7,
            },
            WorkerLogs {
                outcomes: vec![Box::new(self.outcomes.reader())],
                control_reader: Box::new(self.control.reader()),
                control_writer: Arc::new(self.control.writer()),
                recent_outcomes: Vec::new(),
            },
            gateway,
        )
        .unwrap()
    }

    /// Waits until the control log holds `count` `PaymentRefunded` records; returns them
    /// as (payment, refund id).
    async fn refunded_records(&self, count: usize) -> Vec<(String, String)> {
        let control = Arc::clone(&self.control);
        tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + PATIENCE;
            let mut reader = control.reader();
            let mut found = Vec::new();
            // `poll` waits for new records: the worker's appends wake it.
            while found.len() < count && std::time::Instant::now() < deadline {
                for record in reader.poll(64, Duration::from_millis(100)).unwrap() {
                    if let Ok(ControlRecord::PaymentRefunded {
                        payment_id,
                        refund_id,
                        ..
                    }) = decode_control(&record.payload)
                    {
                        found.push((payment_id, refund_id));
                    }
                }
            }
            // Anything appended by then (a second record for one payment would show).
            let end = reader.end_offset().unwrap();
            while reader.position() < end {
                for record in reader.poll(64, Duration::from_millis(100)).unwrap() {
                    if let Ok(ControlRecord::PaymentRefunded {
                        payment_id,
                        refund_id,
                        ..
                    }) = decode_control(&record.payload)
                    {
                        found.push((payment_id, refund_id));
                    }
                }
            }
            found
        })
        .await
        .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_payments_are_refunded_once_each_and_recorded() {
    let setup = Setup::new().await;
    let first = setup.paid(1, 5000).await;
    let second = setup.paid(2, 700).await;
    // The first is due twice (the gateway retried its webhook).
    setup.due(1, &first, 5000);
    setup.due(1, &first, 5000);
    setup.due(2, &second, 700);
    let worker = setup.worker();
    let records = setup.refunded_records(2).await;
    let refunds = setup.fake.refunds();
    assert_eq!(refunds.len(), 2, "{refunds:?}");
    for (payment, amount) in [(&first, 5000), (&second, 700)] {
        let refund = refunds
            .iter()
            .find(|refund| &refund.payment_id == payment)
            .unwrap();
        assert_eq!(
            (refund.amount_cents, refund.reason.as_str()),
            (amount, "hold_expired")
        );
        assert!(
            records.contains(&(payment.clone(), refund.id.clone())),
            "{records:?}"
        );
    }
    assert_eq!(records.len(), 2, "one record per payment: {records:?}");
    worker.stop();
    drop(worker);
    // A restart reads the records (the whole control log, before it returns): nothing is
    // due, nothing is asked again.
    let worker = setup.worker();
    assert_eq!(worker.refunds_due(), 0);
    worker.stop();
    assert_eq!(setup.fake.refunds().len(), 2);
}

/// A worker killed after the gateway refunded but before the record reached the log: the
/// refund is asked again after the restart with the same key, the gateway answers with
/// the refund it made, and that refund is recorded. No double refund, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_made_but_not_recorded_is_recorded_not_repeated() {
    let setup = Setup::new().await;
    let payment = setup.paid(3, 1200).await;
    setup.due(3, &payment, 1200);
    // What the killed worker did: the gateway call, with the worker's key.
    let made = setup
        .gateway
        .refund(&NewRefund {
            payment_id: payment.clone(),
            reason: "hold_expired".into(),
            idempotency_key: refund_key(&payment),
        })
        .await
        .unwrap();
    let worker = setup.worker();
    let records = setup.refunded_records(1).await;
    assert_eq!(records, [(payment.clone(), made.id.clone())]);
    assert_eq!(setup.fake.refunds().len(), 1, "{:?}", setup.fake.refunds());
    // Stopped (its threads joined) before its counters are read.
    worker.stop();
    assert_eq!(
        worker
            .refund_metrics()
            .refunded
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

fn outcome(offset: u64, reply: engine::Reply) -> engine::Outcome {
    engine::Outcome {
        offset,
        time_ms: 1_700_000_000_000 + offset,
        replayed: false,
        result: Ok(reply),
        effects: vec![],
        effects_before_reply: 0,
        idempotency: None,
    }
}

fn confirmed(offset: u64, booking: u64, hold: u64, payment_ref: &str) -> engine::Outcome {
    confirmed_of(offset, 0, booking, hold, payment_ref)
}

fn confirmed_of(
    offset: u64,
    event: u32,
    booking: u64,
    hold: u64,
    payment_ref: &str,
) -> engine::Outcome {
    outcome(
        offset,
        engine::Reply::HoldConfirmed(engine::BookingView {
            booking: engine::BookingId(booking),
            hold: HoldId(hold),
            event: engine::EventId(event),
            user: "ana".into(),
            items: engine::Items::Pool {
                category: 0,
                quantity: 1,
            },
            total_cents: 5000,
            payment_ref: payment_ref.into(),
            booked_at_ms: 1_700_000_000_000,
        }),
    )
}

impl Setup {
    fn publish(&self, outcomes: impl IntoIterator<Item = engine::Outcome>) {
        let writer = self.outcomes.writer();
        for outcome in outcomes {
            writer
                .append(engine::wire::encode_outcome_frames(&outcome))
                .unwrap();
        }
    }
}

/// A booking canceled by its user or with its event, paid through the gateway, is
/// refunded in full, once, also across a restart; one whose reference the gateway does not
/// know (confirmed before it was configured) is logged and never asked again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canceled_paid_bookings_are_refunded_once() {
    let setup = Setup::new().await;
    let (first, second) = (setup.paid(5, 5000).await, setup.paid(6, 5000).await);
    setup.publish([
        confirmed(0, 9, 5, &first),
        confirmed(1, 10, 6, &second),
        confirmed(2, 12, 7, "cash"),
        outcome(
            3,
            engine::Reply::BookingCanceled {
                booking: engine::BookingId(9),
                event: engine::EventId(0),
                user: "ana".into(),
                items: engine::Items::Pool {
                    category: 0,
                    quantity: 1,
                },
            },
        ),
        outcome(
            4,
            engine::Reply::EventCanceled {
                event: engine::EventId(0),
                released_holds: vec![],
                canceled_bookings: vec![
                    engine::BookingId(10),
                    engine::BookingId(11),
                    engine::BookingId(12),
                ],
                ended_waiters: vec![],
            },
        ),
    ]);
    let worker = setup.worker();
    let records = setup.refunded_records(2).await;
    assert_eq!(records.len(), 2, "{records:?}");
    let mut refunds: Vec<(String, u64, String)> = setup
        .fake
        .refunds()
        .into_iter()
        .map(|refund| (refund.payment_id, refund.amount_cents, refund.reason))
        .collect();
    refunds.sort();
    let mut expected = vec![
        (first.clone(), 5000, "booking_canceled".to_string()),
        (second.clone(), 5000, "event_canceled".to_string()),
    ];
    expected.sort();
    assert_eq!(refunds, expected);
    // The "cash" booking was due too: the gateway does not know it, so it is set aside.
    let due: Vec<String> = {
        let mut reader = setup.control.reader();
        let end = reader.end_offset().unwrap();
        let mut due = Vec::new();
        while reader.position() < end {
            for record in reader.poll(64, Duration::from_millis(100)).unwrap() {
                if let Ok(ControlRecord::PaymentRefundDue { payment_id, .. }) =
                    decode_control(&record.payload)
                {
                    due.push(payment_id);
                }
            }
        }
        due
    };
    assert_eq!(due.len(), 3, "{due:?}");
    assert!(due.contains(&"cash".to_string()));
    // The refund thread takes the due payments in turn: the two refunds recorded say
    // nothing of whether it has asked about "cash" yet, so wait (bounded) until it has.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let unknown = || {
        worker
            .refund_metrics()
            .unknown
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    while unknown() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the unknown reference was never asked about"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    worker.stop();
    assert_eq!(unknown(), 1);
    drop(worker);
    // A restart: the outcomes are behind its position, the refunds recorded.
    let worker = setup.worker();
    assert_eq!(
        worker.refunds_due(),
        1,
        "only the unknown one, tried once more"
    );
    worker.stop();
    assert_eq!(setup.fake.refunds().len(), 2);
}

fn created(offset: u64, event: u32, terms: Option<engine::EventTerms>) -> engine::Outcome {
    let mut created = outcome(
        offset,
        engine::Reply::EventCreated {
            event: engine::EventId(event),
            tenant: "acme".into(),
            spec: Box::new(engine::EventSpec {
                name: "Show".into(),
                description: String::new(),
                city: "Lyon".into(),
                country: "FR".into(),
                venue: "Opera".into(),
                starts_at_ms: 2_000_000_000_000,
                ends_at_ms: None,
                sales_open_at_ms: None,
                sales_close_at_ms: None,
                hold_ttl_ms: 60_000,
                seats_per_order_max: 4,
                seats_per_user_max: None,
                waitlist_policy: engine::WaitlistPolicy::Strict,
                categories: vec![],
                sections: vec![],
                general_admission: vec![],
            }),
        },
    );
    created.effects = terms
        .map(|terms| engine::Effect::EventTermsSet {
            event: engine::EventId(event),
            terms,
        })
        .into_iter()
        .collect();
    created
}

fn user_canceled(offset: u64, event: u32, booking: u64) -> engine::Outcome {
    outcome(
        offset,
        engine::Reply::BookingCanceled {
            booking: engine::BookingId(booking),
            event: engine::EventId(event),
            user: "ana".into(),
            items: engine::Items::Pool {
                category: 0,
                quantity: 1,
            },
        },
    )
}

/// A user's cancellation is refunded as its event's terms say (`refund: none`: nothing), an
/// organiser's in full, each in its event's currency (the deployment's for an event without
/// terms). The terms are kept by a worker without a gateway too, so one configured later
/// refunds by them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellations_are_refunded_as_their_event_s_terms_say() {
    let setup = Setup::new().await;
    let no_refund = engine::EventTerms {
        currency: "JPY".into(),
        cancellation: engine::CancellationPolicy {
            until_hours_before_start: Some(24),
            refund: engine::CancellationRefund::None,
        },
    };
    setup.publish([created(0, 0, Some(no_refund)), created(1, 1, None)]);
    let worker = setup.worker_with(None);
    let deadline = std::time::Instant::now() + PATIENCE;
    while worker
        .metrics()
        .outcomes_routed
        .load(std::sync::atomic::Ordering::Relaxed)
        < 2
    {
        assert!(std::time::Instant::now() < deadline, "never routed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    worker.stop();
    drop(worker);

    let (kept, event_canceled, refunded) = (
        setup.paid(20, 5000).await,
        setup.paid(21, 5000).await,
        setup.paid(22, 5000).await,
    );
    setup.publish([
        confirmed_of(2, 0, 30, 20, &kept),
        confirmed_of(3, 0, 31, 21, &event_canceled),
        confirmed_of(4, 1, 32, 22, &refunded),
        user_canceled(5, 0, 30),
        user_canceled(6, 1, 32),
        outcome(
            7,
            engine::Reply::EventCanceled {
                event: engine::EventId(0),
                released_holds: vec![],
                canceled_bookings: vec![engine::BookingId(31)],
                ended_waiters: vec![],
            },
        ),
    ]);
    let worker = setup.worker();
    let records = setup.refunded_records(2).await;
    worker.stop();
    assert_eq!(records.len(), 2, "{records:?}");
    let mut reader = setup.control.reader();
    let end = reader.end_offset().unwrap();
    let mut due = Vec::new();
    while reader.position() < end {
        for record in reader.poll(64, Duration::from_millis(100)).unwrap() {
            if let Ok(ControlRecord::PaymentRefundDue {
                payment_id,
                currency,
                reason,
                ..
            }) = decode_control(&record.payload)
            {
                due.push((payment_id, currency, reason));
            }
        }
    }
    assert_eq!(
        due,
        [
            (refunded.clone(), "EUR".into(), "booking_canceled".into()),
            (
                event_canceled.clone(),
                "JPY".into(),
                "event_canceled".into()
            ),
        ]
    );
    let mut paid_back: Vec<String> = setup
        .fake
        .refunds()
        .into_iter()
        .map(|refund| refund.payment_id)
        .collect();
    paid_back.sort();
    let mut expected = vec![event_canceled, refunded];
    expected.sort();
    assert_eq!(paid_back, expected, "{kept} is kept");
}
