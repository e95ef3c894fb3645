//! The ingress's one error type at the HTTP edge: every 4xx/5xx answer is
//! `{"error": {"code", "message", "details"?}}`. Internal failures are logged with their
//! details and answered with a generic sentence, so nothing internal leaks.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use engine::layout::Layout;
use engine::{Limit, NotFound, Rejection};
use serde::Serialize;
use serde_json::{json, Value};

/// An answer that is not a success. Built by the helpers below; rendered by `IntoResponse`.
#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    /// One of the contract's snake_case codes (`bad_request`, `not_found`, ...).
    pub code: &'static str,
    pub message: String,
    pub details: Option<Value>,
    /// Seconds, for `429` answers.
    pub retry_after_seconds: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    pub(crate) error: ErrorObject,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorObject {
    /// `bad_request`, `unauthorized`, `forbidden`, `not_found`, `seats_unavailable`, `sold_out`,
    /// `limit_exceeded`, `hold_expired`, `already_used`, `sales_closed`, `sla_unavailable`,
    /// `conflict`, `payload_too_large`, `rate_limited`, `idempotency_key_reused`, `unavailable`,
    /// `internal`.
    pub(crate) code: String,
    pub(crate) message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub(crate) details: Option<Value>,
}

impl AppError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> AppError {
        AppError {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after_seconds: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> AppError {
        self.details = Some(details);
        self
    }

    /// 400 naming the offending field in `details.field`.
    pub fn field(field: &str, message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::BAD_REQUEST, "bad_request", message)
            .with_details(json!({ "field": field }))
    }

    pub fn bad_request(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(what: &str) -> AppError {
        AppError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn conflict(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn limit_exceeded(limit: &str, max: u64) -> AppError {
        // The per-user caps count what a user already has, not what this request asks:
        // say so, or a client retrying with a smaller request is left guessing.
        let what = match limit {
            "waiters_per_user" => {
                format!("at most {max} waitlist entries per user for one event ({limit})")
            }
            "desk_tickets_per_user" => {
                format!("at most {max} open tickets per user at one desk ({limit})")
            }
            _ => format!("at most {max} ({limit})"),
        };
        AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit_exceeded",
            format!("over the limit: {what}"),
        )
        .with_details(json!({ "limit": limit, "max": max }))
    }

    pub fn payload_too_large(limit_bytes: usize) -> AppError {
        AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {limit_bytes} bytes"),
        )
        .with_details(json!({ "limit_bytes": limit_bytes }))
    }

    pub fn rate_limited(retry_after_seconds: u64) -> AppError {
        let mut error = AppError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests; retry in {retry_after_seconds} s"),
        );
        error.retry_after_seconds = Some(retry_after_seconds);
        error
    }

    /// 422: the Idempotency-Key already answered another request of this user and scope
    /// (the status of the IETF Idempotency-Key draft); nothing was applied.
    pub fn idempotency_key_reused() -> AppError {
        AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was already used for a different request; use a new key",
        )
        .with_details(json!({ "reason": "idempotency_key_reused" }))
    }

    /// 503: the log is not writable or the outcome did not come in time.
    pub fn unavailable(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500: a bug or an unexpected state. The detail is logged, never sent.
    pub fn internal(detail: impl std::fmt::Display) -> AppError {
        tracing::error!(%detail, "internal error");
        AppError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }

    /// Maps an engine rejection to its HTTP answer. Seat indices are turned into labels with
    /// the event's layout when there is one.
    pub fn from_rejection(rejection: &Rejection, layout: Option<&Layout>) -> AppError {
        match rejection {
            Rejection::NotFound {
                what: NotFound::Category,
            } => AppError::field("category", "no such category in this event"),
            Rejection::NotFound {
                what: NotFound::Level,
            } => AppError::field("level", "no such service level at this desk"),
            Rejection::NotFound { what } => AppError::not_found(not_found_noun(*what)),
            Rejection::UnknownSeats { seats } => AppError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no such seats: {}", seats.join(", ")),
            )
            .with_details(json!({ "seats": seats })),
            Rejection::SeatsUnavailable { seats } => {
                let labels: Vec<String> = match layout {
                    Some(layout) => seats
                        .iter()
                        .filter(|seat| **seat < layout.seat_count)
                        .map(|seat| layout.label_of(*seat))
                        .collect(),
                    None => seats.iter().map(|seat| seat.to_string()).collect(),
                };
                AppError::new(
                    StatusCode::CONFLICT,
                    "seats_unavailable",
                    format!("seats already held or booked: {}", labels.join(", ")),
                )
                .with_details(json!({ "seats": labels }))
            }
            Rejection::SoldOut => AppError::new(
                StatusCode::CONFLICT,
                "sold_out",
                "not enough seats are available",
            ),
            Rejection::LimitExceeded { limit, max } => {
                AppError::limit_exceeded(limit_name(*limit), u64::from(*max))
            }
            Rejection::SalesClosed => AppError::new(
                StatusCode::CONFLICT,
                "sales_closed",
                "sales are not open for this event",
            ),
            Rejection::HoldExpired => {
                AppError::new(StatusCode::CONFLICT, "hold_expired", "the hold has expired")
            }
            Rejection::AlreadyUsed => AppError::new(
                StatusCode::CONFLICT,
                "already_used",
                "the ticket was already checked in",
            ),
            Rejection::SlaUnavailable { earliest_start_ms } => AppError::new(
                StatusCode::CONFLICT,
                "sla_unavailable",
                "no slot meets this service level's deadline",
            )
            .with_details(json!({ "earliest_start": earliest_start_ms.map(crate::times::format) })),
            Rejection::Conflict { reason } => AppError::conflict(reason.clone()),
            Rejection::Invalid { reason } => AppError::bad_request(reason.clone()),
            Rejection::Undecodable { reason } => {
                AppError::bad_request(format!("the request could not be decoded: {reason}"))
            }
            Rejection::IdempotencyKeyReused => AppError::idempotency_key_reused(),
        }
    }
}

fn not_found_noun(what: NotFound) -> &'static str {
    match what {
        NotFound::Event => "event",
        NotFound::Hold => "hold",
        NotFound::Booking => "booking",
        NotFound::Waiter => "waitlist entry",
        NotFound::Ticket => "ticket",
        NotFound::Desk => "desk",
        NotFound::DeskTicket => "desk ticket",
        NotFound::Category => "category",
        NotFound::Level => "service level",
    }
}

pub(crate) fn limit_name(limit: Limit) -> &'static str {
    match limit {
        Limit::SeatsPerOrder => "seats_per_order",
        Limit::SeatsPerUser => "seats_per_user",
        Limit::WaitlistLength => "waitlist_length",
        Limit::Events => "events",
        Limit::Desks => "desks",
        Limit::WaitersPerUser => "waiters_per_user",
        Limit::DeskTicketsPerUser => "desk_tickets_per_user",
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorObject {
                code: self.code.to_string(),
                message: self.message,
                details: self.details,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after_seconds {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for AppError {}
