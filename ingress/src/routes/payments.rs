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
    status: HoldStatus,
    booking_payment_ref: Option<String>,
}

fn hold_price(state: &AppState, hold: HoldId) -> Option<HoldPrice> {
    let model = state.model_of(hold);
    let record = model.hold(hold)?;
    let total_cents = model
        .event(record.view.event)
        .map_or(0, |event| event.price_of(&record.view.items));
    let booking_payment_ref = match record.status {
        HoldStatus::Confirmed(booking) => model
            .booking(booking)
            .map(|booking| booking.view.payment_ref.clone()),
        _ => None,
    };
    Some(HoldPrice {
        user: record.view.user.to_string(),
        total_cents,
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
    description = "Creates the gateway payment for exactly the hold's total and the deployment's currency, once per hold \
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
            currency: payments.currency.clone(),
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
    let payments = configured(&state)?;
    let signature = headers
        .get("stripe-signature")
        .and_then(|value| value.to_str().ok());
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
    if payment.currency != payments.currency {
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
            user: price.user,
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
    let total_cents = hold_price(state, hold).map_or(0, |price| price.total_cents);
    if payment.currency != payments.currency {
        return Err(AppError::conflict(
            Reason::PaymentCurrencyMismatch,
            format!(
                "the payment is in {}, the hold's event in {}",
                payment.currency, payments.currency
            ),
        ));
    }
    if payment.amount_received_cents != total_cents {
        return Err(AppError::conflict(
            Reason::PaymentAmountMismatch,
            format!(
                "the payment is {} {}, the hold costs {total_cents} {}",
                payment.amount_received_cents, payment.currency, payments.currency
            ),
        ));
    }
    Ok(())
}
