//! Handlers, one module per audience. Each write handler validates, builds one engine
//! command, submits it and answers from its outcome; reads answer from the read model.

pub(crate) mod admin;
pub(crate) mod ops;
pub(crate) mod public;
pub(crate) mod user;
pub(crate) mod web;

use crate::error::AppError;
use crate::idempotency_index::Found;
use crate::state::AppState;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use engine::{Command, EventId, IdempotencyStamp, Outcome, Rejection, Reply, Request};
use std::sync::Arc;

/// Appends the command and waits for its outcome (applied to the read model). A keyed
/// request the idempotency index already answered is not appended: the same request gets
/// its first answer (replayed), another request under the same key is 422. A repeat the
/// index has not seen yet (still in flight) is the engine's to recognise.
pub(crate) async fn submit(
    state: &AppState,
    idempotency_key: Option<String>,
    command: Command,
) -> Result<Arc<Outcome>, AppError> {
    let stamp = idempotency_key
        .as_deref()
        .and_then(|key| IdempotencyStamp::of(&command, key));
    if let Some(stamp) = &stamp {
        // A point look-up (bloom filters answer most new keys without reading a block).
        match state.shared.idempotency.look_up(stamp) {
            Ok(Some(Found::Answer(answer))) => {
                state.shared.metrics.idempotency_index_answers.inc();
                return Ok(Arc::new(answer.into_outcome()));
            }
            Ok(Some(Found::Reused)) => {
                state.shared.metrics.idempotency_index_reused.inc();
                return Err(AppError::idempotency_key_reused());
            }
            Ok(None) => {}
            Err(error) => {
                state.shared.metrics.idempotency_index_errors.inc();
                // The engine still recognises repeats within its own window.
                tracing::error!(%error, "the idempotency index cannot be read");
            }
        }
    }
    state
        .shared
        .writes
        .submit(&Request {
            idempotency_key,
            command,
        })
        .await
}

/// The engine answered with another kind of reply than this command's: a bug (keys are
/// bound to their request, so even a replayed answer is of this command's kind).
pub(crate) fn unexpected(reply: &Reply) -> AppError {
    AppError::internal(format!("unexpected reply to this request: {reply:?}"))
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
