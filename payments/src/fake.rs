//! A stateful fake of the gateway for the flows' tests: an axum server speaking the same
//! endpoints as [`crate::stripe::StripeClient`] calls, with real amounts, statuses,
//! idempotency (a key replays its first answer; a key reused with other parameters is
//! refused, as Stripe does) and signed events. stripe-mock proves the client speaks
//! Stripe's API; this proves what Boxoffice does with the answers.
//!
//! Tests drive the payer's side through [`FakeGateway`]: [`FakeGateway::succeed`] marks a
//! payment paid and returns the `payment_intent.succeeded` event signed as Stripe signs
//! it, for the test to post to Boxoffice's webhook.

use crate::signature::sign;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// A signed webhook delivery: what Stripe would POST.
#[derive(Clone, Debug)]
pub struct SignedEvent {
    pub payload: Vec<u8>,
    /// The `Stripe-Signature` header.
    pub signature: String,
}

#[derive(Clone, Debug)]
struct FakePayment {
    id: String,
    amount: u64,
    amount_received: u64,
    currency: String,
    status: &'static str,
    hold_id: Option<String>,
    created: u64,
    amount_refunded: u64,
}

#[derive(Clone, Debug)]
struct FakeRefund {
    id: String,
    payment_intent: String,
    amount: u64,
    currency: String,
    reason: String,
    created: u64,
}

/// A request's sorted parameters, the status and body of its first answer.
type FirstAnswer = (Vec<(String, String)>, u16, Value);

#[derive(Default)]
struct FakeState {
    sequence: u64,
    payments: BTreeMap<String, FakePayment>,
    refunds: BTreeMap<String, FakeRefund>,
    /// (path, Idempotency-Key) → (the parameters, the first answer).
    idempotency: BTreeMap<(String, String), FirstAnswer>,
    clock_s: u64,
}

impl FakeState {
    fn next_id(&mut self, prefix: &str) -> String {
        self.sequence += 1;
        format!("{prefix}_fake{:08}", self.sequence)
    }
}

struct Inner {
    state: Mutex<FakeState>,
    secret_key: String,
    webhook_secret: String,
    /// While true, a refund is made but its answer waits until this turns false (a crash
    /// test kills the caller in between: [`FakeGateway::hold_refund_answers`]).
    refund_answers_held: tokio::sync::watch::Sender<bool>,
    /// Refund answers held so far (the test's sign that the window is open).
    refund_answers_withheld: tokio::sync::watch::Sender<usize>,
    /// The Idempotency-Key of every refund request, in arrival order (retries included).
    refund_keys: Mutex<Vec<String>>,
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running fake gateway on 127.0.0.1; stops when dropped.
pub struct FakeGateway {
    address: SocketAddr,
    inner: Arc<Inner>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGateway {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A refund the fake made, for assertions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRefund {
    pub id: String,
    pub payment_id: String,
    pub amount_cents: u64,
    pub reason: String,
}

impl FakeGateway {
    /// Starts on an ephemeral port. `secret_key` is the API key it accepts, `webhook_secret`
    /// the one its events are signed with; its clock starts at `clock_s`.
    pub async fn start(secret_key: &str, webhook_secret: &str, clock_s: u64) -> FakeGateway {
        let inner = Arc::new(Inner {
            state: Mutex::new(FakeState {
                clock_s,
                ..FakeState::default()
            }),
            secret_key: secret_key.to_string(),
            webhook_secret: webhook_secret.to_string(),
            refund_answers_held: tokio::sync::watch::Sender::new(false),
            refund_answers_withheld: tokio::sync::watch::Sender::new(0),
            refund_keys: Mutex::new(Vec::new()),
        });
        let router = Router::new()
            .route(
                "/v1/payment_intents",
                post(create_payment).get(list_payments),
            )
            .route("/v1/payment_intents/{id}", get(retrieve_payment))
            .route("/v1/refunds", post(create_refund).get(list_refunds))
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake gateway");
        let address = listener.local_addr().expect("its address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakeGateway {
            address,
            inner,
            server,
        }
    }

    /// `http://127.0.0.1:<port>`: the client's `api_base`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn set_clock_s(&self, clock_s: u64) {
        self.inner.state().clock_s = clock_s;
    }

    /// A payment made outside Boxoffice (another client of the same account, a tampered
    /// frontend): for a wrong amount or another hold.
    pub fn insert_payment(
        &self,
        amount_cents: u64,
        currency: &str,
        hold_id: Option<&str>,
    ) -> String {
        let mut state = self.inner.state();
        let id = state.next_id("pi");
        let created = state.clock_s;
        state.payments.insert(
            id.clone(),
            FakePayment {
                id: id.clone(),
                amount: amount_cents,
                amount_received: 0,
                currency: currency.to_ascii_lowercase(),
                status: "requires_payment_method",
                hold_id: hold_id.map(str::to_string),
                created,
                amount_refunded: 0,
            },
        );
        id
    }

    /// The payer paid: the payment succeeds with its whole amount; returns the
    /// `payment_intent.succeeded` event, signed at the fake's clock.
    pub fn succeed(&self, payment_id: &str) -> SignedEvent {
        {
            let mut state = self.inner.state();
            let payment = state
                .payments
                .get_mut(payment_id)
                .expect("succeed: an existing payment");
            payment.status = "succeeded";
            payment.amount_received = payment.amount;
        }
        self.event(payment_id, "payment_intent.succeeded")
    }

    /// Event `kind` about the payment as it is now, signed at the fake's clock.
    pub fn event(&self, payment_id: &str, kind: &str) -> SignedEvent {
        let state = self.inner.state();
        let payment = state.payments.get(payment_id).expect("an existing payment");
        let payload = json!({
            "id": format!("evt_{payment_id}_{kind}"),
            "object": "event",
            "type": kind,
            "created": state.clock_s,
            "data": {"object": payment_json(payment)},
        })
        .to_string()
        .into_bytes();
        SignedEvent {
            signature: sign(&self.inner.webhook_secret, state.clock_s, &payload),
            payload,
        }
    }

    /// Every refund made, oldest first.
    pub fn refunds(&self) -> Vec<RecordedRefund> {
        let state = self.inner.state();
        let mut refunds: Vec<&FakeRefund> = state.refunds.values().collect();
        refunds.sort_by(|a, b| a.id.cmp(&b.id));
        refunds
            .into_iter()
            .map(|refund| RecordedRefund {
                id: refund.id.clone(),
                payment_id: refund.payment_intent.clone(),
                amount_cents: refund.amount,
                reason: refund.reason.clone(),
            })
            .collect()
    }

    /// While `held`, every refund request is carried out (the refund exists) but its answer
    /// waits until `hold_refund_answers(false)`: the window between a gateway's refund and
    /// the caller's record of it, for a crash test to kill the caller in.
    pub fn hold_refund_answers(&self, held: bool) {
        self.inner.refund_answers_held.send_replace(held);
    }

    /// Waits until at least `count` refund answers were held (see
    /// [`FakeGateway::hold_refund_answers`]).
    pub async fn refund_answers_withheld(&self, count: usize) {
        let mut withheld = self.inner.refund_answers_withheld.subscribe();
        let _ = withheld.wait_for(|withheld| *withheld >= count).await;
    }

    /// The Idempotency-Key of every refund request so far, retries included.
    pub fn refund_keys(&self) -> Vec<String> {
        self.inner
            .refund_keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// How many payments exist (idempotent retries create none).
    pub fn payment_count(&self) -> usize {
        self.inner.state().payments.len()
    }
}

fn payment_json(payment: &FakePayment) -> Value {
    json!({
        "id": payment.id,
        "object": "payment_intent",
        "amount": payment.amount,
        "amount_received": payment.amount_received,
        "currency": payment.currency,
        "status": payment.status,
        "client_secret": format!("{}_secret_fake", payment.id),
        "metadata": match &payment.hold_id {
            Some(hold) => json!({"hold_id": hold}),
            None => json!({}),
        },
        "created": payment.created,
    })
}

fn refund_json(refund: &FakeRefund) -> Value {
    json!({
        "id": refund.id,
        "object": "refund",
        "amount": refund.amount,
        "currency": refund.currency,
        "payment_intent": refund.payment_intent,
        "status": "succeeded",
        "metadata": {"reason": refund.reason},
        "created": refund.created,
    })
}

fn stripe_error(status: StatusCode, kind: &str, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"type": kind, "code": code, "message": message}})),
    )
        .into_response()
}

fn authorized(inner: &Inner, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let expected = format!("Bearer {}", inner.secret_key);
    match headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
    {
        Some(value) if value == expected => Ok(()),
        _ => Err(Box::new(stripe_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "",
            "Invalid API Key provided",
        ))),
    }
}

fn parameter<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// Runs `create` once per Idempotency-Key: a retry with the same parameters gets the first
/// answer; other parameters under the same key are refused.
fn idempotent(
    inner: &Inner,
    path: &str,
    headers: &HeaderMap,
    mut form: Vec<(String, String)>,
    create: impl FnOnce(&mut FakeState, &[(String, String)]) -> (u16, Value),
) -> Response {
    form.sort();
    let key = headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let mut state = inner.state();
    if let Some(key) = &key {
        if let Some((parameters, status, body)) =
            state.idempotency.get(&(path.to_string(), key.clone()))
        {
            if *parameters != form {
                return stripe_error(
                    StatusCode::BAD_REQUEST,
                    "idempotency_error",
                    "",
                    "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                );
            }
            let mut response = (
                StatusCode::from_u16(*status).expect("a status"),
                Json(body.clone()),
            )
                .into_response();
            response
                .headers_mut()
                .insert("idempotent-replayed", "true".parse().expect("a header"));
            return response;
        }
    }
    let (status, body) = create(&mut state, &form);
    if let Some(key) = key {
        state
            .idempotency
            .insert((path.to_string(), key), (form, status, body.clone()));
    }
    (StatusCode::from_u16(status).expect("a status"), Json(body)).into_response()
}

fn error_body(kind: &str, code: &str, message: &str) -> Value {
    json!({"error": {"type": kind, "code": code, "message": message}})
}

async fn create_payment(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(response) = authorized(&inner, &headers) {
        return *response;
    }
    idempotent(
        &inner,
        "/v1/payment_intents",
        &headers,
        form,
        |state, form| {
            let amount = parameter(form, "amount").and_then(|amount| amount.parse::<u64>().ok());
            let currency = parameter(form, "currency");
            let (Some(amount), Some(currency)) = (amount, currency) else {
                return (
                    400,
                    error_body(
                        "invalid_request_error",
                        "parameter_missing",
                        "amount and currency are required",
                    ),
                );
            };
            if amount == 0 {
                return (
                    400,
                    error_body(
                        "invalid_request_error",
                        "amount_too_small",
                        "Amount must be at least 1",
                    ),
                );
            }
            let id = state.next_id("pi");
            let payment = FakePayment {
                id: id.clone(),
                amount,
                amount_received: 0,
                currency: currency.to_string(),
                status: "requires_payment_method",
                hold_id: parameter(form, "metadata[hold_id]").map(str::to_string),
                created: state.clock_s,
                amount_refunded: 0,
            };
            let body = payment_json(&payment);
            state.payments.insert(id, payment);
            (200, body)
        },
    )
}

async fn retrieve_payment(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(response) = authorized(&inner, &headers) {
        return *response;
    }
    match inner.state().payments.get(&id) {
        Some(payment) => Json(payment_json(payment)).into_response(),
        None => stripe_error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "resource_missing",
            &format!("No such payment_intent: '{id}'"),
        ),
    }
}

async fn create_refund(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Err(response) = authorized(&inner, &headers) {
        return *response;
    }
    inner
        .refund_keys
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .push(
            headers
                .get("idempotency-key")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_string(),
        );
    let response = refund(&inner, &headers, form);
    let mut held = inner.refund_answers_held.subscribe();
    if *held.borrow_and_update() {
        inner
            .refund_answers_withheld
            .send_modify(|withheld| *withheld += 1);
        // A caller killed meanwhile drops the connection; the refund stays made.
        let _ = held.wait_for(|held| !*held).await;
    }
    response
}

fn refund(inner: &Inner, headers: &HeaderMap, form: Vec<(String, String)>) -> Response {
    idempotent(inner, "/v1/refunds", headers, form, |state, form| {
        let Some(payment_id) = parameter(form, "payment_intent") else {
            return (
                400,
                error_body(
                    "invalid_request_error",
                    "parameter_missing",
                    "payment_intent is required",
                ),
            );
        };
        let clock_s = state.clock_s;
        let Some(payment) = state.payments.get_mut(payment_id) else {
            return (
                400,
                error_body(
                    "invalid_request_error",
                    "resource_missing",
                    "No such payment_intent",
                ),
            );
        };
        if payment.status != "succeeded" {
            return (
                400,
                error_body(
                    "invalid_request_error",
                    "payment_intent_unexpected_state",
                    "This PaymentIntent has not succeeded",
                ),
            );
        }
        let amount = payment.amount_received - payment.amount_refunded;
        if amount == 0 {
            return (
                400,
                error_body(
                    "invalid_request_error",
                    "charge_already_refunded",
                    "This charge has already been refunded",
                ),
            );
        }
        payment.amount_refunded += amount;
        let currency = payment.currency.clone();
        let id = state.next_id("re");
        let refund = FakeRefund {
            id: id.clone(),
            payment_intent: payment_id.to_string(),
            amount,
            currency,
            reason: parameter(form, "metadata[reason]")
                .unwrap_or_default()
                .to_string(),
            created: clock_s,
        };
        let body = refund_json(&refund);
        state.refunds.insert(id, refund);
        (200, body)
    })
}

/// Stripe's list: newest first, `created[gte]`/`created[lt]`, `limit`, `starting_after`.
fn list<T>(
    items: Vec<(u64, String, T)>,
    query: &[(String, String)],
    json_of: impl Fn(&T) -> Value,
) -> Response {
    let number = |name: &str| parameter(query, name).and_then(|value| value.parse::<u64>().ok());
    let from = number("created[gte]").unwrap_or(0);
    let to = number("created[lt]").unwrap_or(u64::MAX);
    let limit = number("limit").unwrap_or(10).clamp(1, 100) as usize;
    let mut items: Vec<(u64, String, T)> = items
        .into_iter()
        .filter(|(created, _, _)| (from..to).contains(created))
        .collect();
    items.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
    let start = match parameter(query, "starting_after") {
        Some(after) => items
            .iter()
            .position(|(_, id, _)| id == after)
            .map_or(items.len(), |index| index + 1),
        None => 0,
    };
    let page: Vec<Value> = items[start..]
        .iter()
        .take(limit)
        .map(|(_, _, item)| json_of(item))
        .collect();
    let has_more = items.len() > start + page.len();
    Json(json!({"object": "list", "data": page, "has_more": has_more, "url": "/v1/…"}))
        .into_response()
}

async fn list_payments(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    if let Err(response) = authorized(&inner, &headers) {
        return *response;
    }
    let payments = inner
        .state()
        .payments
        .values()
        .map(|payment| (payment.created, payment.id.clone(), payment.clone()))
        .collect();
    list(payments, &query, payment_json)
}

async fn list_refunds(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    if let Err(response) = authorized(&inner, &headers) {
        return *response;
    }
    let refunds = inner
        .state()
        .refunds
        .values()
        .map(|refund| (refund.created, refund.id.clone(), refund.clone()))
        .collect();
    list(refunds, &query, refund_json)
}
