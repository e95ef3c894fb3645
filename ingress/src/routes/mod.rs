//! Handlers, one module per audience. Each write handler validates, builds one engine
//! command, submits it and answers from its outcome; reads answer from the read model.

pub(crate) mod admin;
pub(crate) mod ops;
pub(crate) mod public;
pub(crate) mod user;
pub(crate) mod web;

use crate::error::{AppError, Reason};
use crate::state::AppState;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use engine::{Command, EventId, Outcome, Rejection, Request};
use std::sync::Arc;

/// Appends the command and waits for its outcome (applied to the read model).
pub(crate) async fn submit(
    state: &AppState,
    idempotency_key: Option<String>,
    command: Command,
) -> Result<Arc<Outcome>, AppError> {
    state
        .shared
        .writes
        .submit(&Request {
            idempotency_key,
            command,
        })
        .await
}

/// The engine answered a repeated Idempotency-Key with the first request's result, which
/// is of another kind than this request.
pub(crate) fn mismatched() -> AppError {
    AppError::conflict(
        Reason::IdempotencyKeyReused,
        "this Idempotency-Key was already used for a different request",
    )
}

/// A rejection as an HTTP answer, with seat labels from the event's layout.
pub(crate) fn rejection(
    state: &AppState,
    event: Option<EventId>,
    rejection: &Rejection,
) -> AppError {
    let model = state.model();
    AppError::from_rejection(rejection, event.and_then(|event| model.event(event)))
}

pub(crate) fn with_location(mut response: Response, location: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}
