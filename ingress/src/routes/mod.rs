//! Handlers, one module per audience (`webhooks`: the admins' webhook endpoints). Each write handler validates, builds one engine
//! command, submits it and answers from its outcome; reads answer from the read model.

pub(crate) mod accounts;
pub(crate) mod admin;
pub(crate) mod catalog;
pub(crate) mod ops;
pub(crate) mod payments;
pub(crate) mod public;
pub(crate) mod user;
pub(crate) mod web;
pub(crate) mod webhooks;

use crate::error::{AppError, Reason};
use crate::idempotency_index::Found;
use crate::state::AppState;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use engine::{Command, EventId, IdempotencyStamp, Outcome, Rejection, Reply, Request};
use std::sync::Arc;

/// Appends the command to its shard's requests log and waits for its outcome (applied to
/// that shard's read model). The shard is the one its ids name (`engine::shard_of`); a
/// new event or desk is placed by the control state ([`crate::control::Control::place`]).
/// A keyed request the shard's idempotency index already answered is not appended: the
/// same request gets its first answer (replayed), another request under the same key is
/// 422. A repeat the index has not seen yet (still in flight) is the engine's to
/// recognise. A shard whose engine is known not to answer gets 503 `shard_unavailable` at
/// once, with nothing appended: a shard that is down stops only its own events.
pub(crate) async fn submit(
    state: &AppState,
    idempotency_key: Option<String>,
    command: Command,
) -> Result<Arc<Outcome>, AppError> {
    let shard_index = shard_of_command(state, idempotency_key.as_deref(), &command);
    let shard = &state.shards()[shard_index as usize];
    if state.shard_count() > 1 {
        if let Some(why) = shard.down() {
            return Err(AppError::unavailable(
                Reason::ShardUnavailable,
                format!("shard {shard_index} is not answering ({why}); its events are unavailable for now, every other shard's still sell: retry later with the same Idempotency-Key"),
            ));
        }
    }
    let stamp = idempotency_key
        .as_deref()
        .and_then(|key| IdempotencyStamp::of(&command, key));
    if let Some(stamp) = &stamp {
        // A point look-up (bloom filters answer most new keys without reading a block).
        match shard.idempotency.look_up(stamp) {
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
    shard
        .writes
        .submit(&Request {
            idempotency_key,
            command,
        })
        .await
}

/// The shard a command goes to: the shard of the id it names, or, for a creation, the
/// control state's placement. Commands that name no id and create nothing (only the
/// engine's own records) go to shard 0.
fn shard_of_command(state: &AppState, idempotency_key: Option<&str>, command: &Command) -> u32 {
    let count = state.shard_count();
    if count == 1 {
        return 0;
    }
    let of = |id: u64| engine::shard_of(id, count);
    match command {
        Command::CreateEvent { tenant, .. }
        | Command::CreateEventWithDraw { tenant, .. }
        | Command::CreateEventWithTerms { tenant, .. }
        | Command::CreateDesk { tenant, .. } => {
            let request = engine::wire::encode_request(&Request::new(command.clone()));
            state
                .shared
                .control
                .place(tenant, idempotency_key, &request)
        }
        Command::UpdateEvent { event, .. }
        | Command::CancelEvent { event, .. }
        | Command::CheckIn { event, .. }
        | Command::CheckInTicket { event, .. }
        | Command::PlaceHold { event, .. }
        | Command::RevealDrawSeed { event, .. }
        | Command::OpenArrivalWindow { event, .. }
        | Command::JoinWaitlist { event, .. }
        | Command::JoinWaitlistIndexed { event, .. } => of((*event).into()),
        Command::ConfirmHold { hold, .. } | Command::ReleaseHold { hold, .. } => of((*hold).into()),
        Command::CancelBooking { booking, .. } => of((*booking).into()),
        Command::LeaveWaitlist { waiter, .. } => of((*waiter).into()),
        Command::CreateDeskTicket { desk, .. }
        | Command::ConfirmDeskTicket { desk, .. }
        | Command::CancelDeskTicket { desk, .. } => of((*desk).into()),
        Command::Tick | Command::Promote { .. } | Command::Configure { .. } => 0,
    }
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
    match event {
        Some(event) => {
            let model = state.model_of(event);
            AppError::from_rejection(rejection, model.event(event))
        }
        None => AppError::from_rejection(rejection, None),
    }
}

pub(crate) fn with_location(mut response: Response, location: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}
