//! Webhook endpoints, per tenant (issue "Effects outside, exactly once"): made, listed,
//! deleted and enabled again by the tenant's admin, through the control log
//! (`crate::control`), so every ingress and effects worker holds the same endpoints. The
//! delivery log and re-sends are the effects worker's (`crate::effects_control`).
//!
//! An endpoint is refused whole, with nothing recorded: a URL that is not `http(s)://` with
//! a host, a host that does not resolve, a private or loopback address while the SSRF guard
//! is on (`engine::webhook::address_public`; off in `--dev` or with
//! `effects.private_addresses_allowed`), unknown event types, a tenant at its cap.

use crate::api::{CreateWebhookBody, Webhook as WebhookBody, WebhookDeliveries, WebhookResent};
use crate::control::{WebhookChange, WebhookError};
use crate::error::{AppError, ErrorBody, Reason};
use crate::extract::{ApiJson, ApiPath, TenantAdmin};
use crate::state::AppState;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::webhook::{
    address_public, Webhook, WebhookEventType, WEBHOOKS_PER_TENANT_MAX, WEBHOOK_URL_BYTES_MAX,
};
use std::net::IpAddr;
use std::time::Duration;

/// How long a URL's host may take to resolve before the endpoint is refused.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages the delivery log lists at most.
pub(crate) const DELIVERIES_LISTED_MAX: usize = 100;

fn body_of(webhook: &Webhook, secret: Option<String>) -> WebhookBody {
    WebhookBody {
        webhook_id: webhook.id.clone(),
        url: webhook.url.clone(),
        event_types: webhook
            .event_types
            .iter()
            .map(|kind| kind.as_str().to_string())
            .collect(),
        enabled: webhook.enabled,
        disabled_reason: webhook.disabled_reason.clone(),
        secret,
    }
}

fn control_error(error: WebhookError) -> AppError {
    match error {
        WebhookError::NoControlLog => AppError::unavailable(
            Reason::NoControlLog,
            "this ingress has no control log, so it cannot record webhook endpoints",
        ),
        WebhookError::NotFound => webhook_not_found(),
        WebhookError::TooMany => AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit_exceeded",
            Reason::WebhooksPerTenantMax,
            format!("a tenant may have at most {WEBHOOKS_PER_TENANT_MAX} webhook endpoints: delete one first"),
        )
        .with_details(serde_json::json!({"limit": "webhooks_per_tenant", "max": WEBHOOKS_PER_TENANT_MAX})),
        WebhookError::Log(error) => {
            AppError::unavailable(Reason::LogNotWritable, format!("the control log: {error}"))
        }
    }
}

fn webhook_not_found() -> AppError {
    AppError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        Reason::WebhookNotFound,
        "webhook endpoint not found",
    )
}

/// The event types asked for, or 400 naming the first unknown one.
fn event_types(words: &[String]) -> Result<Vec<WebhookEventType>, AppError> {
    if words.is_empty() {
        return Err(AppError::field(
            "event_types",
            "event_types: name at least one event type",
        ));
    }
    if words.len() > 4 * WebhookEventType::ALL.len() {
        return Err(AppError::field(
            "event_types",
            "event_types: too many entries",
        ));
    }
    words
        .iter()
        .map(|word| {
            WebhookEventType::parse(word).ok_or_else(|| {
                let known: Vec<&str> = WebhookEventType::ALL
                    .iter()
                    .map(|kind| kind.as_str())
                    .collect();
                AppError::field(
                    "event_types",
                    format!(
                        "event_types: unknown event type {word:?}; known: {}",
                        known.join(", ")
                    ),
                )
            })
        })
        .collect()
}

/// The URL's host and port, or 400 naming `url`.
fn host_and_port(url: &str) -> Result<(String, u16), AppError> {
    let invalid = |why: &str| AppError::field("url", format!("url: {why}"));
    if url.len() > WEBHOOK_URL_BYTES_MAX {
        return Err(invalid(&format!("at most {WEBHOOK_URL_BYTES_MAX} bytes")));
    }
    let uri: Uri = url
        .parse()
        .map_err(|_| invalid("not an absolute http:// or https:// URL"))?;
    let default_port = match uri.scheme_str() {
        Some("https") => 443,
        Some("http") => 80,
        _ => {
            return Err(invalid(
                "only http:// and https:// URLs can receive webhooks",
            ))
        }
    };
    let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
    if authority.as_str().contains('@') {
        return Err(invalid("credentials in the URL are not allowed"));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() {
        return Err(invalid("no host"));
    }
    Ok((
        host.to_string(),
        authority.port_u16().unwrap_or(default_port),
    ))
}

/// Resolves the URL's host; 400 when it does not resolve, or when the SSRF guard is on and
/// any address it resolves to is not public (a name with one private address could be
/// steered to it).
async fn check_reachable(url: &str, private_allowed: bool) -> Result<(), AppError> {
    let (host, port) = host_and_port(url)?;
    let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(address) => vec![address],
        Err(_) => {
            let resolved = tokio::time::timeout(
                RESOLVE_TIMEOUT,
                tokio::net::lookup_host((host.as_str(), port)),
            )
            .await;
            match resolved {
                Ok(Ok(addresses)) => addresses.map(|address| address.ip()).collect(),
                _ => Vec::new(),
            }
        }
    };
    if addresses.is_empty() {
        return Err(AppError::field(
            "url",
            format!("url: the host {host} does not resolve, so nothing could be delivered to it"),
        )
        .because(Reason::WebhookUrlUnreachable));
    }
    if !private_allowed {
        if let Some(private) = addresses.iter().find(|address| !address_public(**address)) {
            return Err(AppError::field(
                "url",
                format!("url: {host} is (or resolves to) {private}, a private, loopback or link-local address; webhooks go to public addresses only (development mode allows them)"),
            )
            .because(Reason::WebhookAddressPrivate));
        }
    }
    Ok(())
}

/// Create a webhook endpoint
///
/// Events of the listed types that happen from now on are sent to `url` as Standard
/// Webhooks: a JSON body `{"type", "timestamp", "data"}`, signed in the
/// `webhook-signature` header with the secret answered here (shown once). Recorded in
/// the control log, so every ingress and effects worker knows it.
#[utoipa::path(post, path = "/v1/admin/webhooks", tag = "webhooks", request_body = CreateWebhookBody,
    responses((status = 201, description = "Created; `secret` is shown only here", body = WebhookBody), (status = 400, description = "`details.field` is `url` or `event_types`", body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, description = "limit_exceeded: the tenant has its cap of endpoints", body = ErrorBody), (status = 503, description = "The control log cannot be written", body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn create_webhook(
    axum::extract::State(state): axum::extract::State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
    ApiJson(body): ApiJson<CreateWebhookBody>,
) -> Result<Response, AppError> {
    let kinds = event_types(&body.event_types)?;
    check_reachable(&body.url, state.config().webhook_private_addresses_allowed).await?;
    let made = state
        .shared
        .control
        .create_webhook(&tenant, body.url, kinds, state.config().outcome_timeout)
        .await
        .map_err(control_error)?;
    let secret = format!(
        "whsec_{}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &made.secret)
    );
    let response = (StatusCode::CREATED, Json(body_of(&made, Some(secret)))).into_response();
    Ok(super::with_location(
        response,
        &format!("/v1/admin/webhooks/{}", made.id),
    ))
}

/// The tenant's webhook endpoints
#[utoipa::path(get, path = "/v1/admin/webhooks", tag = "webhooks",
    responses((status = 200, description = "In order of creation; no secrets", body = Vec<WebhookBody>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn list_webhooks(
    axum::extract::State(state): axum::extract::State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
) -> Json<Vec<WebhookBody>> {
    Json(
        state
            .shared
            .control
            .webhooks_of(&tenant)
            .iter()
            .map(|webhook| body_of(webhook, None))
            .collect(),
    )
}

/// One webhook endpoint
#[utoipa::path(get, path = "/v1/admin/webhooks/{webhook_id}", tag = "webhooks", params(("webhook_id" = String, Path)),
    responses((status = 200, description = "The endpoint; no secret", body = WebhookBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, description = "Unknown or another tenant's", body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn get_webhook(
    axum::extract::State(state): axum::extract::State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
    ApiPath(webhook_id): ApiPath<String>,
) -> Result<Json<WebhookBody>, AppError> {
    let webhook = state
        .shared
        .control
        .webhook(&tenant, &webhook_id)
        .ok_or_else(webhook_not_found)?;
    Ok(Json(body_of(&webhook, None)))
}

/// Delete a webhook endpoint
///
/// Nothing more is sent to it, also what was waiting.
#[utoipa::path(delete, path = "/v1/admin/webhooks/{webhook_id}", tag = "webhooks", params(("webhook_id" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, description = "Unknown or another tenant's", body = ErrorBody), (status = 503, description = "The control log cannot be written", body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn delete_webhook(
    axum::extract::State(state): axum::extract::State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
    ApiPath(webhook_id): ApiPath<String>,
) -> Result<StatusCode, AppError> {
    state
        .shared
        .control
        .change_webhook(
            &tenant,
            &webhook_id,
            WebhookChange::Delete,
            state.config().outcome_timeout,
        )
        .await
        .map_err(control_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Enable a webhook endpoint again
///
/// After the effects worker disabled it (sustained failure, `disabled_reason`): what waits
/// for it is sent again, in order.
#[utoipa::path(post, path = "/v1/admin/webhooks/{webhook_id}/enable", tag = "webhooks", params(("webhook_id" = String, Path)),
    responses((status = 200, description = "Enabled", body = WebhookBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, description = "Unknown or another tenant's", body = ErrorBody), (status = 503, description = "The control log cannot be written", body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn enable_webhook(
    axum::extract::State(state): axum::extract::State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
    ApiPath(webhook_id): ApiPath<String>,
) -> Result<Json<WebhookBody>, AppError> {
    let webhook = state
        .shared
        .control
        .change_webhook(
            &tenant,
            &webhook_id,
            WebhookChange::Enable,
            state.config().outcome_timeout,
        )
        .await
        .map_err(control_error)?
        .ok_or_else(webhook_not_found)?;
    Ok(Json(body_of(&webhook, None)))
}

fn effects(state: &AppState) -> Result<&dyn crate::EffectsControl, AppError> {
    state.shared.effects.get().map(|effects| &**effects).ok_or_else(|| {
        AppError::unavailable(
            Reason::NoEffectsWorker,
            "no effects worker runs in this process: ask `boxoffice effects`'s listener (`effects.listen`), which serves the delivery log and re-sends at the same paths",
        )
    })
}

/// An endpoint's delivery log
///
/// Its newest messages (at most 100), newest first, with every attempt: when, the status
/// code or the error, the latency.
#[utoipa::path(get, path = "/v1/admin/webhooks/{webhook_id}/deliveries", tag = "webhooks", params(("webhook_id" = String, Path)),
    responses((status = 200, description = "The delivery log", body = WebhookDeliveries), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, description = "Unknown or another tenant's", body = ErrorBody), (status = 503, description = "No effects worker in this process, or its store cannot be read", body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn deliveries(
    axum::extract::State(state): axum::extract::State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
    ApiPath(webhook_id): ApiPath<String>,
) -> Result<Json<WebhookDeliveries>, AppError> {
    state
        .shared
        .control
        .webhook(&tenant, &webhook_id)
        .ok_or_else(webhook_not_found)?;
    list_deliveries(effects(&state)?, &webhook_id)
}

fn list_deliveries(
    effects: &dyn crate::EffectsControl,
    webhook_id: &str,
) -> Result<Json<WebhookDeliveries>, AppError> {
    let deliveries = effects
        .deliveries(webhook_id, DELIVERIES_LISTED_MAX)
        .map_err(|error| {
            AppError::unavailable(
                Reason::NoEffectsWorker,
                format!("the delivery log cannot be read: {error}"),
            )
        })?;
    Ok(Json(WebhookDeliveries { deliveries }))
}

/// Send a message again
///
/// Queues the message (same `webhook-id`, same body, a new signature) after what the
/// endpoint already waits for.
#[utoipa::path(post, path = "/v1/admin/webhooks/{webhook_id}/deliveries/{message_id}/resend", tag = "webhooks",
    params(("webhook_id" = String, Path), ("message_id" = String, Path)),
    responses((status = 202, description = "Queued", body = WebhookResent), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, description = "Unknown endpoint, or a message the worker no longer holds", body = ErrorBody), (status = 503, description = "No effects worker in this process, or its store cannot be written", body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn resend(
    axum::extract::State(state): axum::extract::State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
    ApiPath((webhook_id, message_id)): ApiPath<(String, String)>,
) -> Result<Response, AppError> {
    state
        .shared
        .control
        .webhook(&tenant, &webhook_id)
        .ok_or_else(webhook_not_found)?;
    resend_message(effects(&state)?, &webhook_id, message_id)
}

fn resend_message(
    effects: &dyn crate::EffectsControl,
    webhook_id: &str,
    message_id: String,
) -> Result<Response, AppError> {
    let queued = effects.resend(webhook_id, &message_id).map_err(|error| {
        AppError::unavailable(
            Reason::NoEffectsWorker,
            format!("the delivery log cannot be written: {error}"),
        )
    })?;
    if !queued {
        return Err(AppError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            Reason::WebhookMessageNotFound,
            "no such message for this endpoint (the delivery log keeps each endpoint's newest ones)",
        ));
    }
    Ok((StatusCode::ACCEPTED, Json(WebhookResent { message_id })).into_response())
}

/// The listener of an effects worker without an ingress in its process (`boxoffice
/// effects`, next to a Kafka deployment): the same delivery log and re-sends as an
/// ingress's, for the endpoint's tenant admin (the worker's own control follower says
/// whose an endpoint is), plus `/healthz` and the worker's `/metrics`.
pub fn effects_router(
    tenants: Vec<crate::Tenant>,
    operator_key: String,
    effects: std::sync::Arc<dyn crate::EffectsControl>,
) -> axum::Router {
    use axum::routing::{get, post};
    let state = WorkerState {
        auth: std::sync::Arc::new(crate::auth::Auth::new(tenants, operator_key, "")),
        effects,
    };
    axum::Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({ "status": "ok" })) }),
        )
        .route("/metrics", get(worker_metrics))
        .route(
            "/v1/admin/webhooks/{webhook_id}/deliveries",
            get(worker_deliveries),
        )
        .route(
            "/v1/admin/webhooks/{webhook_id}/deliveries/{message_id}/resend",
            post(worker_resend),
        )
        .with_state(state)
}

#[derive(Clone)]
struct WorkerState {
    auth: std::sync::Arc<crate::auth::Auth>,
    effects: std::sync::Arc<dyn crate::EffectsControl>,
}

/// The tenant whose admin key the request carries, owning endpoint `webhook_id` (an
/// unknown or another tenant's endpoint is 404, as on an ingress).
fn worker_tenant_admin(
    state: &WorkerState,
    headers: &axum::http::HeaderMap,
    webhook_id: &str,
) -> Result<(), AppError> {
    let token = crate::auth::Auth::bearer(headers)?;
    // The worker's listener knows the config-file tenants' admin keys only: API keys are
    // the ingresses' (`crate::accounts`), which serve the same paths.
    let accounts = crate::accounts::Accounts::default();
    match state.auth.admin_key(token, &accounts)? {
        crate::auth::AdminKey::Tenant { tenant, .. } => match state.effects.tenant_of(webhook_id) {
            Some(owner) if owner == tenant => Ok(()),
            _ => Err(webhook_not_found()),
        },
        crate::auth::AdminKey::Operator => Err(AppError::forbidden(
            Reason::TenantKeyRequired,
            "the operator key does not administer tenants' webhooks",
        )),
    }
}

async fn worker_metrics(
    axum::extract::State(state): axum::extract::State<WorkerState>,
) -> Response {
    let mut text = state.effects.metrics_text();
    text.push_str("# EOF\n");
    let mut response = text.into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    response
}

async fn worker_deliveries(
    axum::extract::State(state): axum::extract::State<WorkerState>,
    headers: axum::http::HeaderMap,
    axum::extract::Path(webhook_id): axum::extract::Path<String>,
) -> Result<Json<WebhookDeliveries>, AppError> {
    worker_tenant_admin(&state, &headers, &webhook_id)?;
    list_deliveries(&*state.effects, &webhook_id)
}

async fn worker_resend(
    axum::extract::State(state): axum::extract::State<WorkerState>,
    headers: axum::http::HeaderMap,
    axum::extract::Path((webhook_id, message_id)): axum::extract::Path<(String, String)>,
) -> Result<Response, AppError> {
    worker_tenant_admin(&state, &headers, &webhook_id)?;
    resend_message(&*state.effects, &webhook_id, message_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_http_or_https_with_a_host() {
        for (url, host, port) in [
            ("https://example.com/hook", "example.com", 443),
            ("http://127.0.0.1:8080/x?y=1", "127.0.0.1", 8080),
            ("http://[::1]:9/", "::1", 9),
        ] {
            assert_eq!(
                host_and_port(url).unwrap(),
                (host.to_string(), port),
                "{url}"
            );
        }
        for url in [
            "ftp://example.com/",
            "example.com/hook",
            "/relative",
            "https://user:pw@example.com/",
            "javascript:alert(1)",
            "",
        ] {
            let refused = host_and_port(url).unwrap_err();
            assert_eq!(refused.reason, Reason::InvalidField, "{url}");
        }
        let long = format!("https://example.com/{}", "a".repeat(WEBHOOK_URL_BYTES_MAX));
        assert!(host_and_port(&long).is_err());
    }
}
