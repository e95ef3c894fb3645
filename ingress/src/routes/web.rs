//! The seat-map web page (a reference client frontends can read and copy), its live
//! availability stream, and the demo user switcher.
//!
//! - `GET /` and `GET /events/{id}`: one HTML page; its script and style sheet come from
//!   `GET /web/{asset}`. Everything is compiled into the binary from `ingress/web/`, with no
//!   build step.
//! - `GET /v1/events/{id}/stream`: server-sent events, one `availability` frame at once and
//!   one after each change of the event (see `live`).
//! - `POST /v1/demo/tokens`: mints a user token, routed only while the development
//!   user-token secret is in use (see [`crate::IngressConfig::demo_tokens_enabled`]).

use crate::api::*;
use crate::auth::mint_user_token;
use crate::error::{AppError, ErrorBody, Reason};
use crate::extract::{ApiJson, ApiPath, Client};
use crate::live::Subscription;
use crate::open_caps::OpenPlace;
use crate::state::AppState;
use crate::views;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::{EventId, NotFound};
use futures_util::Stream;
use std::convert::Infallible;
use std::net::IpAddr;
use std::time::Duration;
use tokio::sync::watch;

const INDEX_HTML: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const APP_CSS: &str = include_str!("../../web/app.css");

/// A stream sends at most one frame per interval: a burst of changes (an on-sale) becomes
/// one frame with the latest state instead of one frame per outcome.
pub(crate) const FRAME_INTERVAL_MIN: Duration = Duration::from_millis(250);
/// Comment lines keep idle streams open through proxies.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// How long a demo token is valid.
pub(crate) const DEMO_TOKEN_TTL_SECONDS: u64 = 12 * 3600;
pub(crate) const DEMO_USER_CHARS_MAX: usize = 64;
/// The page talks only to its own origin and runs only its own scripts.
// `blob:` images: ticket QR codes are fetched with the buyer's token and drawn from a blob.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data: blob:; \
     style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'";

fn asset_response(content_type: &'static str, body: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

/// The page: the search at `/`, an event at `/events/{id}` (the script reads the path).
pub(crate) async fn page() -> Response {
    asset_response("text/html; charset=utf-8", INDEX_HTML)
}

pub(crate) async fn asset(ApiPath(name): ApiPath<String>) -> Result<Response, AppError> {
    match name.as_str() {
        "app.js" => Ok(asset_response("text/javascript; charset=utf-8", APP_JS)),
        "app.css" => Ok(asset_response("text/css; charset=utf-8", APP_CSS)),
        _ => Err(AppError::no_route()),
    }
}

/// One open stream: what it follows and what it needs to build frames.
struct Feed {
    state: AppState,
    event: EventId,
    subscription: Subscription,
    /// The stream's place under its address's cap, freed when the stream ends.
    _place: Option<OpenPlace<IpAddr>>,
    shutdown: watch::Receiver<bool>,
    first: bool,
}

#[utoipa::path(get, path = "/v1/events/{event_id}/stream", tag = "public",
    params(("event_id" = String, Path, description = "ev_<n>")),
    responses(
        (status = 200, content_type = "text/event-stream", body = LiveFrame,
            description = "Server-sent events. An `availability` frame at once, then one after each change of the event \
            (holds, confirmations, releases, expiries, cancellations, waitlist), at most one every 250 ms, with the \
            latest state; `id` is the frame's log offset. Comment lines keep an idle stream open. The stream ends \
            when the server shuts down; EventSource reconnects by itself."),
        (status = 404, body = ErrorBody),
        (status = 429, description = "rate_limited: address_rate_limit, or streams_per_address_max (too many streams \
            open from this client address, `http.streams_per_address_max`); see Retry-After", body = ErrorBody),
        (status = 503, description = "Too many streams are open", body = ErrorBody)))]
pub(crate) async fn stream(
    State(state): State<AppState>,
    Client(client): Client,
    ApiPath(event_id): ApiPath<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    let event = EventId::parse(&event_id).ok_or_else(|| AppError::not_found(NotFound::Event))?;
    if state.model_of(event).event(event).is_none() {
        return Err(AppError::not_found(NotFound::Event));
    }
    let place = state.open_stream(client)?;
    let subscription = state.shared.feeds.subscribe(event).ok_or_else(|| {
        AppError::unavailable(
            Reason::TooManyStreams,
            "too many seat-map streams are open; retry in a moment",
        )
    })?;
    let feed = Feed {
        shutdown: state.shared.shutdown.subscribe(),
        state,
        event,
        subscription,
        _place: place,
        first: true,
    };
    let frames = futures_util::stream::unfold(feed, next_frame);
    Ok(Sse::new(frames).keep_alive(KeepAlive::new().interval(KEEP_ALIVE_INTERVAL)))
}

/// Waits for the next change (not before the first frame), then reads the current state.
async fn next_frame(mut feed: Feed) -> Option<(Result<Event, Infallible>, Feed)> {
    if *feed.shutdown.borrow() {
        return None;
    }
    if !feed.first {
        tokio::select! {
            biased;
            _ = feed.shutdown.wait_for(|stopping| *stopping) => return None,
            _ = tokio::time::sleep(FRAME_INTERVAL_MIN) => {}
        }
        tokio::select! {
            biased;
            _ = feed.shutdown.wait_for(|stopping| *stopping) => return None,
            changed = feed.subscription.changes.changed() => changed.ok()?,
        }
    }
    feed.first = false;
    // Seen before reading: a change applied after this wakes the stream again.
    feed.subscription.changes.borrow_and_update();
    let frame = {
        let model = feed.state.model_of(feed.event);
        let event = model.event(feed.event)?;
        LiveFrame {
            event_id: event.id.to_string(),
            log_offset: model.applied_offset,
            event: views::event_detail(event, model.time_ms, &feed.state.config().currency_default),
            seats: (!event.spec.sections.is_empty()).then(|| views::seat_map(event)),
        }
    };
    let data = match serde_json::to_string(&frame) {
        Ok(data) => data,
        Err(error) => {
            tracing::error!(%error, "a seat-map frame could not be serialized");
            return None;
        }
    };
    let mut message = Event::default().event("availability").data(data);
    if let Some(offset) = frame.log_offset {
        message = message.id(offset.to_string());
    }
    Some((Ok(message), feed))
}

fn valid_demo_user(user: &str) -> bool {
    (1..=DEMO_USER_CHARS_MAX).contains(&user.len())
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

#[utoipa::path(post, path = "/v1/demo/tokens", tag = "demo", request_body = DemoTokenBody,
    responses(
        (status = 201, description = "A user token for the demo user switcher", body = DemoTokenResponse),
        (status = 400, body = ErrorBody),
        (status = 404, description = "Not routed: the user-token secret is not the development default", body = ErrorBody)))]
pub(crate) async fn demo_token(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<DemoTokenBody>,
) -> Result<Response, AppError> {
    // The route exists only then; this guards against a router built another way.
    if !state.config().demo_tokens_enabled() {
        return Err(AppError::no_route());
    }
    if !valid_demo_user(&body.user) {
        return Err(AppError::field(
            "user",
            format!("user must be 1 to {DEMO_USER_CHARS_MAX} letters, digits, '.', '_' or '-'"),
        ));
    }
    let token = mint_user_token(
        &state.config().user_token_secret,
        &body.user,
        DEMO_TOKEN_TTL_SECONDS,
    );
    Ok((
        StatusCode::CREATED,
        Json(DemoTokenResponse {
            user: body.user,
            token,
            expires_in_seconds: DEMO_TOKEN_TTL_SECONDS,
        }),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_user_names() {
        for good in ["alice", "bob-2", "a.b_c", &"x".repeat(DEMO_USER_CHARS_MAX)] {
            assert!(valid_demo_user(good), "{good}");
        }
        for bad in [
            "",
            "al ice",
            "é",
            "a/b",
            &"x".repeat(DEMO_USER_CHARS_MAX + 1),
        ] {
            assert!(!valid_demo_user(bad), "{bad}");
        }
    }
}
