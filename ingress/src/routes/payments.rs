//! Payments (`crate::payments`): a hold's payment, the gateway's webhook, and the check of
//! a client's `payment_ref` on confirm.

use super::submit;
use crate::api::{PaymentResponse, PaymentWebhookResponse};
use crate::error::{AppError, ErrorBody, Reason};
use crate::extract::{ApiPath, UserId};
use crate::payments::{confirm_key, payment_key, PaymentsConfig};
use crate::read_model::HoldStatus;
use crate::state::AppState;
use crate::views::answer;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use engine::control::ControlRecord;
use engine::{Command, HoldId, NotFound, Reply};
use payments::signature::{parse_event, verify, SignatureError};
use payments::{GatewayError, NewPayment, Payment, PaymentStatus};
use std::time::{SystemTime, UNIX_EPOCH};

fn configured(state: &AppState) -> Result<PaymentsConfig, AppError> {
    state.shared.payments.get().cloned().ok_or_else(|| {
        AppError::conflict(
            Reason::PaymentsNotConfigured,
            "this deployment takes no payments through a gateway ([payments] in the configuration)",
        )
    })
}

fn gateway_failed(error: &GatewayError) -> AppError {
    tracing::warn!(%error, "the payment gateway refused or failed a call");
    AppError::unavailable(
        Reason::PaymentGatewayUnavailable,
        "the payment gateway did not answer as expected; retry later",
    )
}

/// What a hold costs and in which currency, with its user and status, from its shard's
/// read model.
struct HoldPrice {
    user: String,
    total_cents: u64,
    /// The event's (ISO 4217).
    currency: String,
    status: HoldStatus,
    booking_payment_ref: Option<String>,
}

fn hold_price(state: &AppState, hold: HoldId) -> Option<HoldPrice> {
    let model = state.model_of(hold);
    let record = model.hold(hold)?;
    let event = model.event(record.view.event);
    let total_cents = event.map_or(0, |event| event.price_of(&record.view.items));
    let currency_default = &state.config().currency_default;
    let currency = event.map_or_else(
        || currency_default.clone(),
        |event| event.terms(currency_default).currency,
    );
    let booking_payment_ref = match record.status {
        HoldStatus::Confirmed(booking) => model
            .booking(booking)
            .map(|booking| booking.view.payment_ref.to_string()),
        _ => None,
    };
    Some(HoldPrice {
        user: record.view.user.to_string(),
        total_cents,
        currency,
        status: record.status,
        booking_payment_ref,
    })
}

/// How a hold that is not held refuses a payment.
fn not_held(status: HoldStatus) -> AppError {
    match status {
        HoldStatus::Held => unreachable!("a held hold takes a payment"),
        HoldStatus::Confirmed(_) => AppError::conflict(
            Reason::HoldAlreadyConfirmed,
            "the hold is already confirmed",
        ),
        HoldStatus::Released => AppError::conflict(Reason::HoldReleased, "the hold was released"),
        HoldStatus::Expired => AppError::new(
            StatusCode::CONFLICT,
            "hold_expired",
            Reason::HoldExpired,
            "the hold has expired",
        ),
    }
}

#[utoipa::path(post, path = "/v1/holds/{hold_id}/payment", tag = "holds", params(("hold_id" = String, Path)),
    description = "Creates the gateway payment for exactly the hold's total in its event's currency, once per hold \
        (the hold id is the gateway's idempotency key: a repeat answers the same payment). Pay it with the client secret \
        (Stripe.js); the gateway's webhook then confirms the hold.",
    responses((status = 201, description = "The hold's payment", body = PaymentResponse), (status = 404, body = ErrorBody),
        (status = 409, description = "hold_expired, or conflict (released, already confirmed, payments not configured)", body = ErrorBody),
        (status = 503, description = "The payment gateway did not answer: retry", body = ErrorBody)),
    security(("user_token" = [])))]
pub(crate) async fn create_payment(
    State(state): State<AppState>,
    UserId(user): UserId,
    ApiPath(hold_id): ApiPath<String>,
) -> Result<Response, AppError> {
    let hold = HoldId::parse(&hold_id).ok_or_else(|| AppError::not_found(NotFound::Hold))?;
    let price = hold_price(&state, hold)
        .filter(|price| price.user == user)
        .ok_or_else(|| AppError::not_found(NotFound::Hold))?;
    let payments = configured(&state)?;
    if price.status != HoldStatus::Held {
        return Err(not_held(price.status));
    }
    let payment = payments
        .gateway
        .create_payment(&NewPayment {
            amount_cents: price.total_cents,
            currency: price.currency.clone(),
            hold_id: hold.to_string(),
            idempotency_key: payment_key(hold),
        })
        .await
        .map_err(|error| gateway_failed(&error))?;
    let offset = state.model_of(hold).applied_offset;
    Ok(answer(
        StatusCode::CREATED,
        offset,
        Json(PaymentResponse {
            hold_id: hold.to_string(),
            payment_id: payment.id,
            client_secret: payment.client_secret.unwrap_or_default(),
            amount_cents: payment.amount_cents,
            currency: payment.currency,
        }),
    ))
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn webhook_answer(result: &str, reason: Option<&str>, booking_id: Option<String>) -> Response {
    answer(
        StatusCode::OK,
        None,
        Json(PaymentWebhookResponse {
            result: result.to_string(),
            reason: reason.map(str::to_string),
            booking_id,
        }),
    )
}

#[utoipa::path(post, path = "/v1/payments/webhook", tag = "payments",
    request_body(content = Object, description = "The gateway's event (Stripe: an Event object), as it was signed", content_type = "application/json"),
    params(("Stripe-Signature" = String, Header, description = "`t=<unix seconds>,v1=<hex HMAC-SHA256 of \"t.body\">`")),
    description = "The payment gateway's events, signed (`Stripe-Signature`, within the tolerance window). \
        `payment_intent.succeeded` confirms its hold when the hold is held and the amount and currency match; \
        otherwise the payment is recorded as due back and refunded. Other events are acknowledged and ignored.",
    responses((status = 200, description = "Applied, refund due, or ignored", body = PaymentWebhookResponse),
        (status = 400, body = ErrorBody), (status = 401, description = "A missing, forged or stale signature: nothing applied", body = ErrorBody),
        (status = 404, description = "The payment names no hold this deployment knows: nothing applied", body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    // What no gateway could have sent is refused first, configured or not.
    let signature = headers
        .get("stripe-signature")
        .and_then(|value| value.to_str().ok());
    if signature.is_none() {
        return Err(AppError::unauthorized(
            Reason::InvalidSignature,
            format!("webhook refused: {}", SignatureError::Missing),
        ));
    }
    if serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&body).is_err() {
        return Err(AppError::bad_request(
            Reason::InvalidBody,
            "a gateway event is a JSON object",
        ));
    }
    let payments = configured(&state)?;
    verify(
        &payments.webhook_secret,
        signature,
        &body,
        now_s(),
        payments.webhook_tolerance_s,
    )
    .map_err(|error| {
        let reason = match error {
            SignatureError::OutsideTolerance { .. } => Reason::StaleSignature,
            _ => Reason::InvalidSignature,
        };
        AppError::unauthorized(reason, format!("webhook refused: {error}"))
    })?;
    let event = parse_event(&body).map_err(|error| {
        AppError::bad_request(Reason::InvalidBody, format!("not a gateway event: {error}"))
    })?;
    let payment = match (event.kind.as_str(), event.payment) {
        ("payment_intent.succeeded", Some(payment)) => payment,
        _ => return Ok(webhook_answer("ignored", None, None)),
    };
    let hold = payment
        .hold_id
        .as_deref()
        .and_then(HoldId::parse)
        .ok_or_else(|| AppError::not_found(NotFound::Hold))?;
    let price = hold_price(&state, hold).ok_or_else(|| AppError::not_found(NotFound::Hold))?;
    if payment.currency != price.currency {
        return refund_due(&state, hold, &payment, Reason::PaymentCurrencyMismatch).await;
    }
    if payment.amount_received_cents != price.total_cents {
        return refund_due(&state, hold, &payment, Reason::PaymentAmountMismatch).await;
    }
    if let HoldStatus::Confirmed(booking) = price.status {
        return if price.booking_payment_ref.as_deref() == Some(payment.id.as_str()) {
            Ok(webhook_answer("confirmed", None, Some(booking.to_string())))
        } else {
            refund_due(&state, hold, &payment, Reason::HoldAlreadyConfirmed).await
        };
    }
    let outcome = submit(
        &state,
        Some(confirm_key(&payment.id)),
        Command::ConfirmHold {
            user: price.user.into(),
            hold,
            payment_ref: payment.id.clone(),
        },
    )
    .await?;
    match &outcome.result {
        Ok(Reply::HoldConfirmed(view)) => Ok(webhook_answer(
            "confirmed",
            None,
            Some(view.booking.to_string()),
        )),
        Ok(other) => Err(super::unexpected(other)),
        Err(rejection) => {
            // A confirm by the client with this same payment may have come first.
            if let Some(price) = hold_price(&state, hold) {
                if let (HoldStatus::Confirmed(booking), Some(reference)) =
                    (price.status, price.booking_payment_ref.as_deref())
                {
                    if reference == payment.id {
                        return Ok(webhook_answer("confirmed", None, Some(booking.to_string())));
                    }
                }
            }
            let reason = AppError::from_rejection(rejection, None).reason;
            refund_due(&state, hold, &payment, reason).await
        }
    }
}

/// Records the payment as due back (the effects worker refunds it) and answers so.
async fn refund_due(
    state: &AppState,
    hold: HoldId,
    payment: &Payment,
    reason: Reason,
) -> Result<Response, AppError> {
    let record = ControlRecord::PaymentRefundDue {
        hold,
        payment_id: payment.id.clone(),
        amount_cents: payment.amount_received_cents,
        currency: payment.currency.clone(),
        reason: reason.as_str().to_string(),
    };
    tracing::info!(payment = payment.id, %hold, reason = reason.as_str(), "a payment is due back");
    state
        .shared
        .control
        .refund_due(record, state.config().outcome_timeout)
        .await
        .map_err(|error| match error {
            crate::control::WebhookError::NoControlLog => AppError::unavailable(
                Reason::NoControlLog,
                "this ingress has no control log to record the refund in",
            ),
            other => AppError::unavailable(
                Reason::LogNotWritable,
                format!("the refund could not be recorded ({other:?}); the gateway retries"),
            ),
        })?;
    Ok(webhook_answer("refund_due", Some(reason.as_str()), None))
}

/// With a gateway, a client's `payment_ref` must be a succeeded payment of this hold, of
/// its amount and currency (a payment names its one hold: it confirms at most that one).
pub(crate) async fn check_payment_ref(
    state: &AppState,
    hold: HoldId,
    payment_ref: &str,
) -> Result<(), AppError> {
    let Some(payments) = state.shared.payments.get().cloned() else {
        return Ok(());
    };
    let payment = match payments.gateway.retrieve_payment(payment_ref).await {
        Ok(payment) => payment,
        Err(error) if error.is_not_found() => {
            return Err(AppError::conflict(
                Reason::PaymentNotFound,
                "the payment gateway knows no such payment",
            ))
        }
        Err(error) => return Err(gateway_failed(&error)),
    };
    if payment.hold_id.as_deref() != Some(hold.to_string().as_str()) {
        return Err(AppError::conflict(
            Reason::PaymentForAnotherHold,
            "this payment was made for another hold",
        ));
    }
    if payment.status != PaymentStatus::Succeeded {
        return Err(AppError::conflict(
            Reason::PaymentNotSucceeded,
            format!("the payment is {}, not succeeded", payment.status.name()),
        ));
    }
    let Some(price) = hold_price(state, hold) else {
        return Err(AppError::not_found(NotFound::Hold));
    };
    if payment.currency != price.currency {
        return Err(AppError::conflict(
            Reason::PaymentCurrencyMismatch,
            format!(
                "the payment is in {}, the hold's event in {}",
                payment.currency, price.currency
            ),
        ));
    }
    if payment.amount_received_cents != price.total_cents {
        return Err(AppError::conflict(
            Reason::PaymentAmountMismatch,
            format!(
                "the payment is {} {}, the hold costs {} {}",
                payment.amount_received_cents, payment.currency, price.total_cents, price.currency
            ),
        ));
    }
    Ok(())
}

/// The longest period one reconciliation report covers.
pub(crate) const RECONCILIATION_PERIOD_DAYS_MAX: u64 = 366;
/// Gateway objects (payments, refunds, each) one report reads at most: a limit on
/// everything. Over it the report is refused (422), never silently partial.
pub(crate) const RECONCILIATION_OBJECTS_MAX: usize = 10_000;
/// Payments one report looks up one by one (bookings of the period paid before it).
const RECONCILIATION_LOOKUPS_MAX: usize = 1_000;

/// A booking of the tenant as the log has it.
struct LoggedBooking {
    event: engine::EventId,
    hold: HoldId,
    booking: engine::BookingId,
    payment_ref: String,
    total_cents: u64,
    canceled: bool,
    booked_at_ms: u64,
    /// The event's (ISO 4217).
    currency: String,
}

fn tenant_bookings(state: &AppState, tenant: &str) -> Vec<LoggedBooking> {
    let mut bookings = Vec::new();
    for model in state.models() {
        for event in model.events().filter(|event| event.tenant == tenant) {
            let currency = event.terms(&state.config().currency_default).currency;
            for booking in event.bookings.iter().filter_map(|id| model.booking(*id)) {
                bookings.push(LoggedBooking {
                    event: event.id,
                    hold: booking.view.hold,
                    booking: booking.view.booking,
                    payment_ref: booking.view.payment_ref.to_string(),
                    total_cents: booking.view.total_cents,
                    canceled: booking.canceled,
                    booked_at_ms: booking.view.booked_at_ms,
                    currency: currency.clone(),
                });
            }
        }
    }
    bookings
}

/// The event of `hold` when it is one of the tenant's.
fn tenant_hold_event(state: &AppState, tenant: &str, hold: HoldId) -> Option<engine::EventId> {
    let model = state.model_of(hold);
    let event = model.hold(hold)?.view.event;
    (model.event(event)?.tenant == tenant).then_some(event)
}

fn objects_max_exceeded(what: &str) -> AppError {
    AppError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "limit_exceeded",
        Reason::ReconciliationObjectsMax,
        format!("the period holds more than {RECONCILIATION_OBJECTS_MAX} {what} at the gateway: ask for a shorter one"),
    )
    .with_details(serde_json::json!({"limit": "reconciliation_objects", "max": RECONCILIATION_OBJECTS_MAX}))
}

/// Every page of a period's payments or refunds.
async fn list_all<T>(
    gateway: &dyn payments::PaymentGateway,
    what: &str,
    (from_s, to_s): (u64, u64),
    id_of: fn(&T) -> String,
    list: for<'a> fn(
        &'a dyn payments::PaymentGateway,
        &'a payments::ListQuery,
    ) -> payments::GatewayFuture<'a, payments::Page<T>>,
) -> Result<Vec<T>, AppError> {
    let mut all = Vec::new();
    let mut query = payments::ListQuery {
        from_s,
        to_s,
        starting_after: None,
        limit: 100,
    };
    loop {
        let page = list(gateway, &query)
            .await
            .map_err(|error| gateway_failed(&error))?;
        let last = page.items.last().map(&id_of);
        all.extend(page.items);
        if all.len() > RECONCILIATION_OBJECTS_MAX {
            return Err(objects_max_exceeded(what));
        }
        match (page.has_more, last) {
            (true, Some(last)) => query.starting_after = Some(last),
            _ => return Ok(all),
        }
    }
}

fn category_of(payment: &Payment, refunded: bool, booking: Option<&LoggedBooking>) -> &'static str {
    match booking {
        _ if refunded => "paid_and_refunded",
        Some(booking)
            if !booking.canceled && booking.total_cents == payment.amount_received_cents =>
        {
            "paid_and_booked"
        }
        Some(booking) if !booking.canceled => "amount_mismatch",
        _ => "paid_not_booked",
    }
}

#[utoipa::path(get, path = "/v1/admin/reports/reconciliation", tag = "admin", params(crate::api::ReconciliationQuery),
    description = "Matches the tenant's bookings and refunds in the log against the payment gateway's records for a period \
        (payments created and bookings made in `[from, to)`): `paid_and_booked`, `paid_and_refunded`, `paid_not_booked` \
        (needs action), `booked_without_payment`, `amount_mismatch`; totals per event, currency and category. \
        `Accept: text/csv` gives the rows as CSV.",
    responses((status = 200, description = "The report", body = crate::api::ReconciliationReport), (status = 400, body = ErrorBody),
        (status = 409, description = "conflict (payments not configured)", body = ErrorBody),
        (status = 422, description = "limit_exceeded: more gateway objects than one report reads", body = ErrorBody),
        (status = 503, description = "The payment gateway did not answer: retry", body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn reconciliation(
    State(state): State<AppState>,
    crate::extract::TenantAdmin(tenant): crate::extract::TenantAdmin,
    headers: HeaderMap,
    crate::extract::ApiQuery(query): crate::extract::ApiQuery<crate::api::ReconciliationQuery>,
) -> Result<Response, AppError> {
    use crate::api::{ReconciliationReport, ReconciliationRow, ReconciliationTotal};
    let from_ms = crate::times::parse("from", &query.from)?;
    let to_ms = crate::times::parse("to", &query.to)?;
    if to_ms <= from_ms {
        return Err(AppError::field("to", "to must be after from"));
    }
    if to_ms - from_ms > RECONCILIATION_PERIOD_DAYS_MAX * 86_400_000 {
        return Err(AppError::field(
            "to",
            format!("a report covers at most {RECONCILIATION_PERIOD_DAYS_MAX} days"),
        ));
    }
    let payments = configured(&state)?;
    let bookings = tenant_bookings(&state, &tenant);
    let (from_s, to_s) = (from_ms / 1000, to_ms.div_ceil(1000));
    let gateway = payments.gateway.as_ref();
    let paid = list_all(
        gateway,
        "payments",
        (from_s, to_s),
        |payment: &Payment| payment.id.clone(),
        |gateway, query| gateway.list_payments(query),
    )
    .await?;
    // Refunds of the period's payments may come after it.
    let refunds = list_all(
        gateway,
        "refunds",
        (from_s, now_s().max(to_s) + 1),
        |refund: &payments::Refund| refund.id.clone(),
        |gateway, query| gateway.list_refunds(query),
    )
    .await?;
    let refund_of = |payment_id: &str| {
        refunds
            .iter()
            .find(|refund| refund.payment_id.as_deref() == Some(payment_id))
    };
    let booking_of = |payment_id: &str| {
        bookings
            .iter()
            .find(|booking| booking.payment_ref == payment_id)
    };
    let mut rows = Vec::new();
    let mut matched = std::collections::BTreeSet::new();
    let mut row = |category: &str,
                   event: engine::EventId,
                   hold: HoldId,
                   booking: Option<&LoggedBooking>,
                   payment: Option<&Payment>| {
        let refund = payment.and_then(|payment| refund_of(&payment.id));
        rows.push(ReconciliationRow {
            category: category.to_string(),
            event_id: event.to_string(),
            hold_id: hold.to_string(),
            booking_id: booking.map(|booking| booking.booking.to_string()),
            payment_id: payment.map(|payment| payment.id.clone()),
            refund_id: refund.map(|refund| refund.id.clone()),
            paid_cents: payment.map_or(0, |payment| payment.amount_received_cents),
            booked_cents: booking.map_or(0, |booking| booking.total_cents),
            refunded_cents: refund.map_or(0, |refund| refund.amount_cents),
            currency: payment
                .map(|payment| payment.currency.clone())
                .or_else(|| booking.map(|booking| booking.currency.clone()))
                .unwrap_or_else(|| state.config().currency_default.clone()),
        });
    };
    for payment in paid
        .iter()
        .filter(|payment| payment.status == PaymentStatus::Succeeded)
    {
        let Some(hold) = payment.hold_id.as_deref().and_then(HoldId::parse) else {
            continue; // not a hold's payment: not Boxoffice's
        };
        let Some(event) = tenant_hold_event(&state, &tenant, hold) else {
            continue; // another tenant's hold, or one this deployment does not know
        };
        let booking = booking_of(&payment.id);
        matched.insert(payment.id.clone());
        row(
            category_of(payment, refund_of(&payment.id).is_some(), booking),
            event,
            hold,
            booking,
            Some(payment),
        );
    }
    let mut lookups = 0;
    for booking in bookings.iter().filter(|booking| {
        !booking.canceled
            && (from_ms..to_ms).contains(&booking.booked_at_ms)
            && !matched.contains(&booking.payment_ref)
    }) {
        // Paid before the period, perhaps: asked one by one (bounded).
        let payment = if lookups < RECONCILIATION_LOOKUPS_MAX {
            lookups += 1;
            match gateway.retrieve_payment(&booking.payment_ref).await {
                Ok(payment) => Some(payment),
                Err(error) if error.is_not_found() => None,
                Err(error) => return Err(gateway_failed(&error)),
            }
        } else {
            return Err(objects_max_exceeded("bookings paid outside the period"));
        };
        match payment.filter(|payment| {
            payment.status == PaymentStatus::Succeeded
                && payment.hold_id.as_deref() == Some(booking.hold.to_string().as_str())
        }) {
            Some(payment) => row(
                category_of(&payment, refund_of(&payment.id).is_some(), Some(booking)),
                booking.event,
                booking.hold,
                Some(booking),
                Some(&payment),
            ),
            None => row(
                "booked_without_payment",
                booking.event,
                booking.hold,
                Some(booking),
                None,
            ),
        }
    }
    let mut totals: std::collections::BTreeMap<(String, String, String), ReconciliationTotal> =
        std::collections::BTreeMap::new();
    for line in &rows {
        let total = totals
            .entry((
                line.event_id.clone(),
                line.currency.clone(),
                line.category.clone(),
            ))
            .or_insert_with(|| ReconciliationTotal {
                event_id: line.event_id.clone(),
                currency: line.currency.clone(),
                category: line.category.clone(),
                count: 0,
                paid_cents: 0,
                booked_cents: 0,
                refunded_cents: 0,
            });
        total.count += 1;
        total.paid_cents += line.paid_cents;
        total.booked_cents += line.booked_cents;
        total.refunded_cents += line.refunded_cents;
    }
    let wants_csv = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.to_ascii_lowercase().contains("text/csv"));
    let offset = state.first_model().applied_offset;
    if wants_csv {
        let mut out = String::from("category,event_id,hold_id,booking_id,payment_id,refund_id,paid_cents,booked_cents,refunded_cents,currency\n");
        for line in &rows {
            let fields = [
                line.category.clone(),
                line.event_id.clone(),
                line.hold_id.clone(),
                line.booking_id.clone().unwrap_or_default(),
                crate::views::csv_field(line.payment_id.as_deref().unwrap_or_default()),
                crate::views::csv_field(line.refund_id.as_deref().unwrap_or_default()),
                line.paid_cents.to_string(),
                line.booked_cents.to_string(),
                line.refunded_cents.to_string(),
                line.currency.clone(),
            ];
            out.push_str(&fields.join(","));
            out.push('\n');
        }
        let mut response = answer(StatusCode::OK, offset, out);
        response.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        return Ok(response);
    }
    Ok(answer(
        StatusCode::OK,
        offset,
        Json(ReconciliationReport {
            from: crate::times::format(from_ms),
            to: crate::times::format(to_ms),
            rows,
            totals: totals.into_values().collect(),
        }),
    ))
}
