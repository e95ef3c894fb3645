//! The ingress's one error type at the HTTP edge: every 4xx/5xx answer is
//! `{"error": {"code", "message", "details"}}`, and `details.reason` always names the rule
//! that refused the request ([`Reason`], a stable snake_case word; the OpenAPI document
//! lists them all as `ErrorReason`). Internal failures are logged with their details and
//! answered with a generic sentence, so nothing internal leaks.

use crate::read_model::EventRecord;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use engine::{ConflictReason, Limit, NotFound, Rejection, SalesClosedReason};
use serde::Serialize;
use serde_json::{json, Value};

/// Defines [`Reason`] from one list, so the words, `Reason::ALL` and the OpenAPI enum can
/// never disagree.
macro_rules! reasons {
    ($($(#[$doc:meta])* $variant:ident = $word:literal,)*) => {
        /// Which rule refused a request: `details.reason` of every error answer. Codes say
        /// what kind of refusal it is; reasons say which rule, so a frontend can act without
        /// parsing the message. Words never change meaning; new ones may be added.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Reason {
            $($(#[$doc])* $variant,)*
        }

        impl Reason {
            /// Every reason, in the order of the list.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];

            /// The word sent in `details.reason`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$variant => $word,)*
                }
            }
        }
    };
}

reasons! {
    // 400 bad_request
    /// A field is missing, of the wrong type or out of range; `details.field` names it.
    InvalidField = "invalid_field",
    MalformedJson = "malformed_json",
    /// The body is JSON of the wrong shape (not an object, ...).
    InvalidBody = "invalid_body",
    /// The body is not sent as `Content-Type: application/json`.
    NotJson = "not_json",
    UnreadableBody = "unreadable_body",
    MalformedQuery = "malformed_query",
    MalformedPath = "malformed_path",
    /// A PATCH that changes nothing.
    EmptyPatch = "empty_patch",
    /// The event has no category of that name (`details.field` is `category`).
    CategoryNotFound = "category_not_found",
    /// The desk has no service level of that name (`details.field` is `level`).
    LevelNotFound = "level_not_found",
    /// The engine found the command invalid (the ingress refuses these before the log).
    Invalid = "invalid",
    /// The log record could not be decoded.
    Undecodable = "undecodable",
    // 401 unauthorized
    MissingToken = "missing_token",
    /// The Authorization header is not `Bearer <token>`.
    MalformedAuthorization = "malformed_authorization",
    UnknownAdminKey = "unknown_admin_key",
    /// The user token is not valid (signature, expiry, subject).
    InvalidToken = "invalid_token",
    /// A payment gateway webhook whose `Stripe-Signature` is missing, malformed or forged.
    InvalidSignature = "invalid_signature",
    /// A payment gateway webhook signed outside the tolerance window (a replay).
    StaleSignature = "stale_signature",
    // 403 forbidden
    /// A tenant endpoint was called with the operator key.
    TenantKeyRequired = "tenant_key_required",
    /// An operator endpoint was called with a tenant's admin key.
    OperatorKeyRequired = "operator_key_required",
    /// The API key's role does not allow this (`checkin` keys only check tickets in,
    /// `reports` keys only read; `details.role`).
    KeyRoleForbidden = "key_role_forbidden",
    /// The operator suspended the tenant: its keys are refused until it is resumed.
    TenantSuspended = "tenant_suspended",
    /// A user token issued by one tenant (`iss`) used on another tenant's event or desk.
    UserTokenOfAnotherTenant = "user_token_of_another_tenant",
    /// The event's tenant registered its own user-token key: only its tokens act on it.
    TenantUserTokenRequired = "tenant_user_token_required",
    // 404 not_found
    EventNotFound = "event_not_found",
    HoldNotFound = "hold_not_found",
    BookingNotFound = "booking_not_found",
    WaitlistEntryNotFound = "waitlist_entry_not_found",
    TicketNotFound = "ticket_not_found",
    DeskNotFound = "desk_not_found",
    DeskTicketNotFound = "desk_ticket_not_found",
    WebhookNotFound = "webhook_not_found",
    /// The tenant has no API key of that id.
    KeyNotFound = "key_not_found",
    /// The tenant registered no user-token key.
    UserTokenKeyNotFound = "user_token_key_not_found",
    VenueNotFound = "venue_not_found",
    TitleNotFound = "title_not_found",
    /// The event has no arrival window, so no draw.
    DrawNotFound = "draw_not_found",
    /// The effects worker no longer holds that message for the endpoint.
    WebhookMessageNotFound = "webhook_message_not_found",
    /// No such seat labels in the event's map (`details.seats`).
    UnknownSeats = "unknown_seats",
    RouteNotFound = "route_not_found",
    // 405 method_not_allowed
    MethodNotAllowed = "method_not_allowed",
    // 409
    /// Some requested seats are held or booked (`details.seats`).
    SeatsUnavailable = "seats_unavailable",
    /// Not enough is free (`details.category`: the category asked for, null for any;
    /// `details.free`: what is free of it now).
    SoldOut = "sold_out",
    HoldExpired = "hold_expired",
    /// A ticket was already checked in.
    AlreadyUsed = "already_used",
    /// `sales_closed`: before the event's `sales_open_at`.
    NotOpenYet = "not_open_yet",
    /// `sales_closed`: at or after the event's `sales_close_at`.
    Closed = "closed",
    /// No desk slot meets the level's deadline (`details.earliest_start`).
    SlaUnavailable = "sla_unavailable",
    EventCanceled = "event_canceled",
    HoldReleased = "hold_released",
    HoldAlreadyConfirmed = "hold_already_confirmed",
    BookingCanceled = "booking_canceled",
    /// Only a held (validated) desk ticket can be confirmed.
    DeskTicketAllocated = "desk_ticket_allocated",
    /// The event's draw was made: its seed can no longer be revealed.
    DrawMade = "draw_made",
    /// The event's cancellation policy no longer lets the user cancel the booking.
    CancellationClosed = "cancellation_closed",
    /// The Idempotency-Key was used for a different request.
    IdempotencyKeyReused = "idempotency_key_reused",
    /// The operator's promotion was refused (already primary, ...).
    PromotionRefused = "promotion_refused",
    /// A tenant placement on a deployment without a control log (a single shard).
    NoControlLog = "no_control_log",
    /// The user's identity was erased too many times to be given another pseudonym (403),
    /// or is erased already (409 on an erasure).
    UserErased = "user_erased",
    /// An erasure's `pseudonym` is not of the form `u_` + 24 base32 characters
    /// (`details.field` is `pseudonym`).
    MalformedPseudonym = "malformed_pseudonym",
    /// An erasure names a user this ingress has never seen (404).
    UnknownUser = "unknown_user",
    /// Erasures one control log may hold (`control::ERASED_USERS_MAX`).
    ErasedUsersMax = "erased_users_max",
    /// The personal-data store cannot be read or written (503).
    PersonalDataUnavailable = "personal_data_unavailable",
    /// No tenant with this id is configured.
    TenantNotFound = "tenant_not_found",
    /// A tenant with this id already exists (409).
    TenantExists = "tenant_exists",
    /// Tenant placements one control log may hold (`control::PINS_MAX`).
    TenantPinsMax = "tenant_pins_max",
    /// A webhook URL whose host does not resolve (`details.field` is `url`).
    WebhookUrlUnreachable = "webhook_url_unreachable",
    /// A webhook URL that is, or resolves to, a private, loopback or link-local address
    /// while the SSRF guard is on (`details.field` is `url`).
    WebhookAddressPrivate = "webhook_address_private",
    /// No payment gateway is configured (`[payments]`).
    PaymentsNotConfigured = "payments_not_configured",
    /// The payment gateway knows no payment of that id.
    PaymentNotFound = "payment_not_found",
    /// The payment was made for another hold: a payment confirms its own hold only.
    PaymentForAnotherHold = "payment_for_another_hold",
    /// The payment has not succeeded (yet).
    PaymentNotSucceeded = "payment_not_succeeded",
    /// The payment's amount is not the hold's total.
    PaymentAmountMismatch = "payment_amount_mismatch",
    /// The payment's currency is not the event's.
    PaymentCurrencyMismatch = "payment_currency_mismatch",
    // 413 payload_too_large
    BodyTooLarge = "body_too_large",
    // 422 limit_exceeded (`details.limit` and `details.max`)
    SeatsPerOrderMax = "seats_per_order_max",
    SeatsPerUserMax = "seats_per_user_max",
    WaitlistLengthMax = "waitlist_length_max",
    EventsMax = "events_max",
    DesksMax = "desks_max",
    /// Waitlist entries one user holds for one event (`engine.waiters_per_user_max`).
    WaitersPerUserMax = "waiters_per_user_max",
    /// Open tickets one user holds at one desk (`engine.desk_tickets_per_user_max`).
    DeskTicketsPerUserMax = "desk_tickets_per_user_max",
    /// Webhook endpoints one tenant may have (`engine::webhook::WEBHOOKS_PER_TENANT_MAX`).
    WebhooksPerTenantMax = "webhooks_per_tenant_max",
    /// API keys one tenant may have (`accounts::KEYS_PER_TENANT_MAX`).
    KeysPerTenantMax = "keys_per_tenant_max",
    /// Tenants the control log may make (`accounts::TENANTS_MAX`).
    TenantsMax = "tenants_max",
    /// Venues one tenant may have (`catalog::VENUES_PER_TENANT_MAX`).
    VenuesPerTenantMax = "venues_per_tenant_max",
    /// Titles one tenant may have (`catalog::TITLES_PER_TENANT_MAX`).
    TitlesPerTenantMax = "titles_per_tenant_max",
    /// Gateway objects one reconciliation report reads
    /// (`routes::payments::RECONCILIATION_OBJECTS_MAX`): ask for a shorter period.
    ReconciliationObjectsMax = "reconciliation_objects_max",
    // 429 rate_limited (with `Retry-After`)
    UserRateLimit = "user_rate_limit",
    AddressRateLimit = "address_rate_limit",
    /// Waitlist long-polls one user may have waiting (`http.long_polls_per_user_max`;
    /// `details.limit` and `details.max`).
    LongPollsPerUserMax = "long_polls_per_user_max",
    /// Waitlist long-polls one client address may have waiting
    /// (`http.long_polls_per_address_max`).
    LongPollsPerAddressMax = "long_polls_per_address_max",
    /// Seat-map streams one client address may have open (`http.streams_per_address_max`).
    StreamsPerAddressMax = "streams_per_address_max",
    // 500 internal
    Internal = "internal",
    // 503 unavailable
    /// The outcome did not come in time: retry with the same Idempotency-Key.
    NotAnsweredInTime = "not_answered_in_time",
    /// The request was not answered within `http.request_timeout_ms`: retry with the same
    /// Idempotency-Key.
    RequestTimeout = "request_timeout",
    /// The outcome came before the request waited for it and was dropped: retry with the
    /// same Idempotency-Key.
    OutcomeMissed = "outcome_missed",
    ShuttingDown = "shutting_down",
    LogNotWritable = "log_not_writable",
    FollowerStopped = "follower_stopped",
    /// The read model is behind the outcomes log (`/readyz`).
    CatchingUp = "catching_up",
    OutcomesGap = "outcomes_gap",
    /// The outcomes log no longer holds the records the follower reads next (retention
    /// removed them): the read model is stale (`/readyz`).
    OutcomesTruncated = "outcomes_truncated",
    /// The engine runtime has stopped (`/readyz` in `serve`).
    EngineStopped = "engine_stopped",
    /// Requests wait for outcomes and none has come for the outcome timeout (`/readyz`).
    EngineNotAnswering = "engine_not_answering",
    /// The write's shard is not answering (its engine stopped, or its requests have gone
    /// unanswered for the outcome timeout): nothing was appended; the other shards sell.
    ShardUnavailable = "shard_unavailable",
    NoEngine = "no_engine",
    EngineStarting = "engine_starting",
    TooManyStreams = "too_many_streams",
    /// No effects worker runs next to this ingress (its delivery log lives there).
    NoEffectsWorker = "no_effects_worker",
    /// This ingress is further behind the control log than `http.control_lag_ms_max`:
    /// tenant keys are refused until it catches up (a revoked key must not work here).
    ControlLogBehind = "control_log_behind",
    /// The payment gateway did not answer, or not as its API says: retry.
    PaymentGatewayUnavailable = "payment_gateway_unavailable",
}

impl utoipa::PartialSchema for Reason {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(Reason::ALL.iter().map(|reason| reason.as_str())))
            .description(Some(
                "Which rule refused the request: a stable snake_case word (new ones may be added)",
            ))
            .into()
    }
}

impl utoipa::ToSchema for Reason {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("ErrorReason")
    }
}

/// The schema of `details`: always `reason`, plus what the code names (`field`, `seats`,
/// `limit` and `max`, `category` and `free`, `earliest_start`, `limit_bytes`).
pub(crate) struct ErrorDetails;

impl utoipa::PartialSchema for ErrorDetails {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Ref};
        ObjectBuilder::new()
            .property("reason", Ref::from_schema_name("ErrorReason"))
            .required("reason")
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .description(Some(
                "`reason` always; `field` (400), `seats` (404 unknown_seats, 409 seats_unavailable), \
                 `limit` and `max` (422, and 429 for the caps on open long-polls and streams), `category` and `free` (409 sold_out), `earliest_start` \
                 (409 sla_unavailable), `limit_bytes` (413)",
            ))
            .into()
    }
}

impl utoipa::ToSchema for ErrorDetails {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((
            <Reason as utoipa::ToSchema>::name().into(),
            <Reason as utoipa::PartialSchema>::schema(),
        ));
    }
}

/// An answer that is not a success. Built by the helpers below; rendered by `IntoResponse`.
#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    /// One of the contract's snake_case codes (`bad_request`, `not_found`, ...).
    pub code: &'static str,
    /// The rule that refused the request: `details.reason`.
    pub reason: Reason,
    pub message: String,
    /// More details by code; `reason` is added when the answer is rendered.
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
    /// `bad_request`, `unauthorized`, `forbidden`, `not_found`, `method_not_allowed`,
    /// `seats_unavailable`, `sold_out`, `limit_exceeded`, `hold_expired`, `already_used`,
    /// `sales_closed`, `sla_unavailable`, `conflict`, `payload_too_large`, `rate_limited`,
    /// `idempotency_key_reused`, `unavailable`, `internal`.
    pub(crate) code: String,
    pub(crate) message: String,
    #[schema(value_type = ErrorDetails)]
    pub(crate) details: Value,
}

impl AppError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        reason: Reason,
        message: impl Into<String>,
    ) -> AppError {
        AppError {
            status,
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after_seconds: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> AppError {
        self.details = Some(details);
        self
    }

    /// The same answer for a more precise rule.
    pub fn because(mut self, reason: Reason) -> AppError {
        self.reason = reason;
        self
    }

    /// 400 naming the offending field in `details.field`.
    pub fn field(field: &str, message: impl Into<String>) -> AppError {
        AppError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            Reason::InvalidField,
            message,
        )
        .with_details(json!({ "field": field }))
    }

    pub fn bad_request(reason: Reason, message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::BAD_REQUEST, "bad_request", reason, message)
    }

    pub fn unauthorized(reason: Reason, message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::UNAUTHORIZED, "unauthorized", reason, message)
    }

    pub fn forbidden(reason: Reason, message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::FORBIDDEN, "forbidden", reason, message)
    }

    /// 404 for something the engine names (another user's thing is "not found" too).
    pub fn not_found(what: NotFound) -> AppError {
        let (noun, reason) = match what {
            NotFound::Event => ("event", Reason::EventNotFound),
            NotFound::Hold => ("hold", Reason::HoldNotFound),
            NotFound::Booking => ("booking", Reason::BookingNotFound),
            NotFound::Waiter => ("waitlist entry", Reason::WaitlistEntryNotFound),
            NotFound::Ticket => ("ticket", Reason::TicketNotFound),
            NotFound::Desk => ("desk", Reason::DeskNotFound),
            NotFound::DeskTicket => ("desk ticket", Reason::DeskTicketNotFound),
            NotFound::Category => ("category", Reason::CategoryNotFound),
            NotFound::Level => ("service level", Reason::LevelNotFound),
        };
        AppError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            reason,
            format!("{noun} not found"),
        )
    }

    /// 404 for a path nothing answers.
    pub fn no_route() -> AppError {
        AppError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            Reason::RouteNotFound,
            "route not found",
        )
    }

    pub fn conflict(reason: Reason, message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::CONFLICT, "conflict", reason, message)
    }

    pub fn limit_exceeded(limit: Limit, max: u64) -> AppError {
        let (name, reason) = match limit {
            Limit::SeatsPerOrder => ("seats_per_order", Reason::SeatsPerOrderMax),
            Limit::SeatsPerUser => ("seats_per_user", Reason::SeatsPerUserMax),
            Limit::WaitlistLength => ("waitlist_length", Reason::WaitlistLengthMax),
            Limit::Events => ("events", Reason::EventsMax),
            Limit::Desks => ("desks", Reason::DesksMax),
            Limit::WaitersPerUser => ("waiters_per_user", Reason::WaitersPerUserMax),
            Limit::DeskTicketsPerUser => ("desk_tickets_per_user", Reason::DeskTicketsPerUserMax),
        };
        // The per-user caps count what a user already has, not what this request asks:
        // say so, or a client retrying with a smaller request is left guessing.
        let what = match limit {
            Limit::WaitersPerUser => {
                format!("at most {max} waitlist entries per user for one event ({name})")
            }
            Limit::DeskTicketsPerUser => {
                format!("at most {max} open tickets per user at one desk ({name})")
            }
            _ => format!("at most {max} ({name})"),
        };
        AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit_exceeded",
            reason,
            format!("over the limit: {what}"),
        )
        .with_details(json!({ "limit": name, "max": max }))
    }

    pub fn payload_too_large(limit_bytes: usize) -> AppError {
        AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            Reason::BodyTooLarge,
            format!("the request body is larger than {limit_bytes} bytes"),
        )
        .with_details(json!({ "limit_bytes": limit_bytes }))
    }

    pub fn rate_limited(reason: Reason, retry_after_seconds: u64) -> AppError {
        let mut error = AppError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            reason,
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
            Reason::IdempotencyKeyReused,
            "this Idempotency-Key was already used for a different request; use a new key",
        )
    }

    /// 429 for a request that would stay open (long-poll, stream) over a cap of open ones.
    pub(crate) fn too_many_open(reason: Reason, limit: &str, max: usize, what: &str) -> AppError {
        let mut error = AppError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            reason,
            format!("at most {max} {what} may be open at once ({limit}); retry once one has ended"),
        )
        .with_details(json!({ "limit": limit, "max": max }));
        error.retry_after_seconds = Some(1);
        error
    }

    /// 503 for a request that may have reached the log: whether it was applied is unknown
    /// here, and a retry with the same Idempotency-Key returns the real outcome without
    /// applying it twice. `what` says what happened.
    pub fn outcome_unknown(reason: Reason, what: &str) -> AppError {
        AppError::unavailable(
            reason,
            format!(
                "{what}; the request may or may not have been applied: retry with the same Idempotency-Key to learn its outcome"
            ),
        )
    }

    /// 503: the log is not writable or the outcome did not come in time.
    pub fn unavailable(reason: Reason, message: impl Into<String>) -> AppError {
        AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            reason,
            message,
        )
    }

    /// 500: a bug or an unexpected state. The detail is logged, never sent.
    pub fn internal(detail: impl std::fmt::Display) -> AppError {
        tracing::error!(%detail, "internal error");
        AppError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            Reason::Internal,
            "internal error",
        )
    }

    /// Maps an engine rejection to its HTTP answer: the one place where a rejection gets its
    /// code and reason. Seat indices become labels and category indices names with the
    /// event's read-model record when there is one.
    pub(crate) fn from_rejection(rejection: &Rejection, event: Option<&EventRecord>) -> AppError {
        match rejection {
            Rejection::NotFound {
                what: what @ NotFound::Category,
            } => AppError::field("category", "no such category in this event")
                .because(AppError::not_found(*what).reason),
            Rejection::NotFound {
                what: what @ NotFound::Level,
            } => AppError::field("level", "no such service level at this desk")
                .because(AppError::not_found(*what).reason),
            Rejection::NotFound { what } => AppError::not_found(*what),
            Rejection::UnknownSeats { seats } => AppError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                Reason::UnknownSeats,
                format!("no such seats: {}", seats.join(", ")),
            )
            .with_details(json!({ "seats": seats })),
            Rejection::SeatsUnavailable { seats } => {
                let labels: Vec<String> = match event.map(|event| &event.layout) {
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
                    Reason::SeatsUnavailable,
                    format!("seats already held or booked: {}", labels.join(", ")),
                )
                .with_details(json!({ "seats": labels }))
            }
            Rejection::SoldOut { category, free } => {
                let name = category.map(|index| match event {
                    Some(event) => event.category_name(index),
                    None => index.to_string(),
                });
                let message = match &name {
                    Some(name) => format!("not enough places are available: {free} left in {name}"),
                    None => format!("not enough places are available: {free} left"),
                };
                AppError::new(StatusCode::CONFLICT, "sold_out", Reason::SoldOut, message)
                    .with_details(json!({ "category": name, "free": free }))
            }
            Rejection::LimitExceeded { limit, max } => {
                AppError::limit_exceeded(*limit, u64::from(*max))
            }
            Rejection::SalesClosed { reason } => {
                let (reason, message) = match reason {
                    SalesClosedReason::NotOpenYet => {
                        (Reason::NotOpenYet, "sales for this event are not open yet")
                    }
                    SalesClosedReason::Closed => {
                        (Reason::Closed, "sales for this event are closed")
                    }
                };
                AppError::new(StatusCode::CONFLICT, "sales_closed", reason, message)
            }
            Rejection::HoldExpired => AppError::new(
                StatusCode::CONFLICT,
                "hold_expired",
                Reason::HoldExpired,
                "the hold has expired",
            ),
            Rejection::AlreadyUsed => AppError::new(
                StatusCode::CONFLICT,
                "already_used",
                Reason::AlreadyUsed,
                "a ticket was already checked in",
            ),
            Rejection::SlaUnavailable { earliest_start_ms } => AppError::new(
                StatusCode::CONFLICT,
                "sla_unavailable",
                Reason::SlaUnavailable,
                "no slot meets this service level's deadline",
            )
            .with_details(json!({ "earliest_start": earliest_start_ms.map(crate::times::format) })),
            Rejection::Conflict { reason } => {
                let (reason, message) = match reason {
                    ConflictReason::EventCanceled => {
                        (Reason::EventCanceled, "the event is canceled")
                    }
                    ConflictReason::HoldReleased => (Reason::HoldReleased, "the hold was released"),
                    ConflictReason::HoldAlreadyConfirmed => (
                        Reason::HoldAlreadyConfirmed,
                        "the hold is already confirmed",
                    ),
                    ConflictReason::BookingCanceled => {
                        (Reason::BookingCanceled, "the booking is canceled")
                    }
                    ConflictReason::DeskTicketAllocated => (
                        Reason::DeskTicketAllocated,
                        "the desk ticket already has its slot",
                    ),
                    ConflictReason::DrawMade => (
                        Reason::DrawMade,
                        "the event's draw was made: its seed can no longer be revealed",
                    ),
                    ConflictReason::CancellationClosed => (
                        Reason::CancellationClosed,
                        "the event's cancellation policy no longer allows cancelling this booking",
                    ),
                };
                AppError::conflict(reason, message)
            }
            Rejection::IdempotencyKeyReused => AppError::idempotency_key_reused(),
            Rejection::Invalid { reason } => AppError::bad_request(Reason::Invalid, reason.clone()),
            Rejection::Undecodable { reason } => AppError::bad_request(
                Reason::Undecodable,
                format!("the request could not be decoded: {reason}"),
            ),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut details = match self.details {
            Some(Value::Object(details)) => details,
            // Every caller passes an object; keep anything else rather than lose it.
            Some(other) => serde_json::Map::from_iter([("value".to_string(), other)]),
            None => serde_json::Map::new(),
        };
        details.insert("reason".into(), Value::from(self.reason.as_str()));
        let body = ErrorBody {
            error: ErrorObject {
                code: self.code.to_string(),
                message: self.message,
                details: Value::Object(details),
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
            "{} {} ({}): {}",
            self.status.as_u16(),
            self.code,
            self.reason.as_str(),
            self.message
        )
    }
}

impl std::error::Error for AppError {}
