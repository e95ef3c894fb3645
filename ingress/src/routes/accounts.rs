//! Organiser accounts by API (`crate::accounts`): the operator makes, lists, suspends and
//! resumes tenants; a tenant's admin makes, lists, rotates and revokes its API keys and
//! registers its own user-token key. Every change is a control-log record, answered once
//! this ingress applied it, so every ingress agrees at the record's offset.

use crate::accounts::{
    check_name, check_tenant_id, decoding_key, new_key_secret, KEYS_PER_TENANT_MAX, TENANTS_MAX,
};
use crate::api::{
    ApiKeyBody, CreateApiKeyBody, CreateTenantBody, SuspendTenantBody, TenantAccountBody,
    UserTokenKeyBody, UserTokenKeyShown,
};
use crate::control::WebhookError;
use crate::error::{AppError, ErrorBody, Reason};
use crate::extract::{ApiJson, ApiPath, Operator, TenantAdmin};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::control::{ApiKeyRole, ControlRecord, UserTokenAlgorithm};

fn log_error(error: WebhookError) -> AppError {
    match error {
        WebhookError::NoControlLog => AppError::unavailable(
            Reason::NoControlLog,
            "this ingress has no control log, so it cannot record accounts",
        ),
        WebhookError::Log(error) => {
            AppError::unavailable(Reason::LogNotWritable, format!("the control log: {error}"))
        }
        WebhookError::NotFound | WebhookError::TooMany => {
            AppError::internal(format!("unexpected control error {error:?}"))
        }
    }
}

async fn append(state: &AppState, records: Vec<ControlRecord>) -> Result<(), AppError> {
    state
        .shared
        .control
        .append_accounts(records, state.config().outcome_timeout)
        .await
        .map(|_| ())
        .map_err(log_error)
}

fn tenant_body(state: &AppState, tenant_id: &str) -> Option<TenantAccountBody> {
    let accounts = state.shared.control.accounts();
    if !accounts.exists(tenant_id) {
        return None;
    }
    let made = accounts.tenant(tenant_id);
    let suspended = accounts.suspension(tenant_id).map(str::to_string);
    Some(TenantAccountBody {
        tenant_id: tenant_id.to_string(),
        name: made.map(|made| made.name.clone()).unwrap_or_default(),
        source: if made.is_some() { "api" } else { "config" }.into(),
        status: if suspended.is_some() {
            "suspended"
        } else {
            "active"
        }
        .into(),
        suspended_reason: suspended,
        api_keys: accounts.keys_of(tenant_id).count() as u64,
        user_token_key: accounts.token_key(tenant_id).is_some(),
        admin_key: None,
    })
}

fn name_field(field: &str, name: &str) -> Result<(), AppError> {
    check_name(name).map_err(|why| AppError::field(field, format!("{field}: {why}")))
}

/// Make a tenant
///
/// An organiser account, recorded in the control log, with its first `admin` API key
/// (its secret is shown only in this answer).
#[utoipa::path(post, path = "/v1/operator/tenants", tag = "accounts", request_body = CreateTenantBody,
    responses((status = 201, description = "Made; `admin_key.secret` is shown only here", body = TenantAccountBody), (status = 400, description = "`details.field` is `tenant_id` or `name`", body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, description = "tenant_exists", body = ErrorBody), (status = 422, description = "tenants_max", body = ErrorBody), (status = 503, description = "The control log cannot be written", body = ErrorBody)),
    security(("operator_key" = [])))]
pub(crate) async fn create_tenant(
    State(state): State<AppState>,
    _operator: Operator,
    ApiJson(body): ApiJson<CreateTenantBody>,
) -> Result<Response, AppError> {
    check_tenant_id(&body.tenant_id)
        .map_err(|why| AppError::field("tenant_id", format!("tenant_id: {why}")))?;
    name_field("name", &body.name)?;
    {
        let accounts = state.shared.control.accounts();
        if accounts.exists(&body.tenant_id) {
            return Err(tenant_exists(&body.tenant_id));
        }
        if accounts.made_count() >= TENANTS_MAX {
            return Err(AppError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "limit_exceeded",
                Reason::TenantsMax,
                format!("at most {TENANTS_MAX} tenants can be made"),
            )
            .with_details(serde_json::json!({"limit": "tenants", "max": TENANTS_MAX})));
        }
    }
    let (key_id, secret, secret_sha256) = new_key_secret(None);
    let key_name = "initial admin key".to_string();
    append(
        &state,
        vec![
            ControlRecord::TenantCreated {
                tenant: body.tenant_id.clone(),
                name: body.name.clone(),
            },
            ControlRecord::ApiKeyIssued {
                tenant: body.tenant_id.clone(),
                key: key_id.clone(),
                name: key_name.clone(),
                role: ApiKeyRole::Admin,
                secret_sha256,
            },
        ],
    )
    .await?;
    // A creation racing this one made the tenant first: ours was skipped everywhere.
    let made_here = state
        .shared
        .control
        .accounts()
        .key(&body.tenant_id, &key_id)
        .is_some();
    if !made_here {
        return Err(tenant_exists(&body.tenant_id));
    }
    let mut answer = tenant_body(&state, &body.tenant_id)
        .ok_or_else(|| AppError::internal("a tenant just applied is missing"))?;
    answer.admin_key = Some(ApiKeyBody {
        key_id,
        name: key_name,
        role: ApiKeyRole::Admin.as_str().into(),
        rotated: false,
        secret: Some(secret),
    });
    let location = format!("/v1/operator/tenants/{}", body.tenant_id);
    Ok(super::with_location(
        (StatusCode::CREATED, Json(answer)).into_response(),
        &location,
    ))
}

fn tenant_exists(tenant_id: &str) -> AppError {
    AppError::conflict(
        Reason::TenantExists,
        format!("a tenant {tenant_id:?} already exists"),
    )
}

/// Every tenant
///
/// The configuration file's (bootstrap) and those made through this API, by id.
#[utoipa::path(get, path = "/v1/operator/tenants", tag = "accounts",
    responses((status = 200, description = "By id", body = Vec<TenantAccountBody>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("operator_key" = [])))]
pub(crate) async fn list_tenants(
    State(state): State<AppState>,
    _operator: Operator,
) -> Json<Vec<TenantAccountBody>> {
    let ids: Vec<String> = state
        .shared
        .control
        .accounts()
        .tenants()
        .keys()
        .map(|id| id.to_string())
        .collect();
    Json(
        ids.iter()
            .filter_map(|id| tenant_body(&state, id))
            .collect(),
    )
}

/// One tenant
#[utoipa::path(get, path = "/v1/operator/tenants/{tenant_id}", tag = "accounts", params(("tenant_id" = String, Path)),
    responses((status = 200, body = TenantAccountBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("operator_key" = [])))]
pub(crate) async fn get_tenant(
    State(state): State<AppState>,
    _operator: Operator,
    ApiPath(tenant_id): ApiPath<String>,
) -> Result<Json<TenantAccountBody>, AppError> {
    tenant_body(&state, &tenant_id)
        .map(Json)
        .ok_or_else(|| super::ops::tenant_not_found(&tenant_id))
}

/// Suspend a tenant
///
/// Its API keys (and its config-file admin key) are refused (403 `tenant_suspended`) on
/// every ingress from the record's offset until it is resumed. Its events keep selling.
#[utoipa::path(post, path = "/v1/operator/tenants/{tenant_id}/suspend", tag = "accounts", params(("tenant_id" = String, Path)), request_body = SuspendTenantBody,
    responses((status = 200, body = TenantAccountBody), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("operator_key" = [])))]
pub(crate) async fn suspend_tenant(
    State(state): State<AppState>,
    _operator: Operator,
    ApiPath(tenant_id): ApiPath<String>,
    ApiJson(body): ApiJson<SuspendTenantBody>,
) -> Result<Json<TenantAccountBody>, AppError> {
    name_field("reason", &body.reason)?;
    super::ops::configured_tenant(&state, &tenant_id)?;
    append(
        &state,
        vec![ControlRecord::TenantSuspended {
            tenant: tenant_id.clone(),
            reason: body.reason,
        }],
    )
    .await?;
    get_tenant(State(state), Operator, ApiPath(tenant_id)).await
}

/// Resume a suspended tenant
#[utoipa::path(post, path = "/v1/operator/tenants/{tenant_id}/resume", tag = "accounts", params(("tenant_id" = String, Path)),
    responses((status = 200, body = TenantAccountBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("operator_key" = [])))]
pub(crate) async fn resume_tenant(
    State(state): State<AppState>,
    _operator: Operator,
    ApiPath(tenant_id): ApiPath<String>,
) -> Result<Json<TenantAccountBody>, AppError> {
    super::ops::configured_tenant(&state, &tenant_id)?;
    append(
        &state,
        vec![ControlRecord::TenantResumed {
            tenant: tenant_id.clone(),
        }],
    )
    .await?;
    get_tenant(State(state), Operator, ApiPath(tenant_id)).await
}

/// Give a tenant a new admin key
///
/// For a tenant that lost (or revoked) its admin keys: a new `admin` key, its secret shown
/// only here. The tenant's other keys are untouched.
#[utoipa::path(post, path = "/v1/operator/tenants/{tenant_id}/keys", tag = "accounts", params(("tenant_id" = String, Path)),
    responses((status = 201, description = "Made; `secret` is shown only here", body = ApiKeyBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, description = "keys_per_tenant_max", body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("operator_key" = [])))]
pub(crate) async fn issue_admin_key(
    State(state): State<AppState>,
    _operator: Operator,
    ApiPath(tenant_id): ApiPath<String>,
) -> Result<Response, AppError> {
    super::ops::configured_tenant(&state, &tenant_id)?;
    issue_key(
        &state,
        &tenant_id,
        ApiKeyRole::Admin,
        "issued by the operator".into(),
    )
    .await
}

/// Issues a key of `role` to `tenant` (checked to exist): 201 with the secret.
async fn issue_key(
    state: &AppState,
    tenant: &str,
    role: ApiKeyRole,
    name: String,
) -> Result<Response, AppError> {
    if state.shared.control.accounts().keys_of(tenant).count() >= KEYS_PER_TENANT_MAX {
        return Err(too_many_keys());
    }
    let (key_id, secret, secret_sha256) = new_key_secret(None);
    append(
        state,
        vec![ControlRecord::ApiKeyIssued {
            tenant: tenant.to_string(),
            key: key_id.clone(),
            name,
            role,
            secret_sha256,
        }],
    )
    .await?;
    let made = state
        .shared
        .control
        .accounts()
        .key(tenant, &key_id)
        .map(|key| key_body(key, Some(secret)))
        // A creation racing this one took the last place.
        .ok_or_else(too_many_keys)?;
    let location = format!("/v1/admin/keys/{key_id}");
    Ok(super::with_location(
        (StatusCode::CREATED, Json(made)).into_response(),
        &location,
    ))
}

fn key_body(key: &crate::accounts::ApiKey, secret: Option<String>) -> ApiKeyBody {
    ApiKeyBody {
        key_id: key.id.clone(),
        name: key.name.clone(),
        role: key.role.as_str().into(),
        rotated: key.rotated_offset.is_some(),
        secret,
    }
}

fn key_not_found() -> AppError {
    AppError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        Reason::KeyNotFound,
        "API key not found",
    )
}

fn too_many_keys() -> AppError {
    AppError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "limit_exceeded",
        Reason::KeysPerTenantMax,
        format!("a tenant may have at most {KEYS_PER_TENANT_MAX} API keys: revoke one first"),
    )
    .with_details(serde_json::json!({"limit": "keys_per_tenant", "max": KEYS_PER_TENANT_MAX}))
}

/// Make an API key
///
/// A key of the tenant with a role: `admin`, `checkin` (a scanner: only
/// `POST /v1/admin/events/{id}/checkin`) or `reports` (reads only). Only its hash is
/// stored; the secret is in this answer only.
#[utoipa::path(post, path = "/v1/admin/keys", tag = "accounts", request_body = CreateApiKeyBody,
    responses((status = 201, description = "Made; `secret` is shown only here", body = ApiKeyBody), (status = 400, description = "`details.field` is `role` or `name`", body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, description = "keys_per_tenant_max", body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn create_key(
    State(state): State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
    ApiJson(body): ApiJson<CreateApiKeyBody>,
) -> Result<Response, AppError> {
    let role = ApiKeyRole::parse(&body.role).ok_or_else(|| {
        AppError::field(
            "role",
            format!(
                "role: {:?} is not one of admin, checkin, reports",
                body.role
            ),
        )
    })?;
    name_field("name", &body.name)?;
    issue_key(&state, &tenant, role, body.name).await
}

/// The tenant's API keys
///
/// No secrets. The configuration file's admin key is not listed.
#[utoipa::path(get, path = "/v1/admin/keys", tag = "accounts",
    responses((status = 200, description = "By key id", body = Vec<ApiKeyBody>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn list_keys(
    State(state): State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
) -> Json<Vec<ApiKeyBody>> {
    Json(
        state
            .shared
            .control
            .accounts()
            .keys_of(&tenant)
            .map(|key| key_body(key, None))
            .collect(),
    )
}

/// Rotate an API key
///
/// The same key id and role with a new secret (shown only here); the old secret is
/// refused on every ingress from the record's offset.
#[utoipa::path(post, path = "/v1/admin/keys/{key_id}/rotate", tag = "accounts", params(("key_id" = String, Path)),
    responses((status = 200, description = "Rotated; `secret` is shown only here", body = ApiKeyBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, description = "Unknown or another tenant's", body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn rotate_key(
    State(state): State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
    ApiPath(key_id): ApiPath<String>,
) -> Result<Json<ApiKeyBody>, AppError> {
    let (name, role) = state
        .shared
        .control
        .accounts()
        .key(&tenant, &key_id)
        .map(|key| (key.name.clone(), key.role))
        .ok_or_else(key_not_found)?;
    let (_, secret, secret_sha256) = new_key_secret(Some(&key_id));
    append(
        &state,
        vec![ControlRecord::ApiKeyIssued {
            tenant: tenant.clone(),
            key: key_id.clone(),
            name,
            role,
            secret_sha256,
        }],
    )
    .await?;
    state
        .shared
        .control
        .accounts()
        .key(&tenant, &key_id)
        .map(|key| Json(key_body(key, Some(secret))))
        // Revoked while rotating.
        .ok_or_else(key_not_found)
}

/// Revoke an API key
///
/// Refused on every ingress from the record's offset (an ingress further behind the
/// control log than `http.control_lag_ms_max` refuses every tenant key until it catches
/// up).
#[utoipa::path(delete, path = "/v1/admin/keys/{key_id}", tag = "accounts", params(("key_id" = String, Path)),
    responses((status = 204, description = "Revoked"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, description = "Unknown or another tenant's", body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
    ApiPath(key_id): ApiPath<String>,
) -> Result<StatusCode, AppError> {
    if state
        .shared
        .control
        .accounts()
        .key(&tenant, &key_id)
        .is_none()
    {
        return Err(key_not_found());
    }
    append(
        &state,
        vec![ControlRecord::ApiKeyRevoked {
            tenant,
            key: key_id,
        }],
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn token_key_shown(state: &AppState, tenant: &str) -> Option<UserTokenKeyShown> {
    state
        .shared
        .control
        .accounts()
        .token_key(tenant)
        .map(|key| UserTokenKeyShown {
            algorithm: key.algorithm.as_str().into(),
            fingerprint: key.fingerprint.clone(),
        })
}

fn token_key_not_found() -> AppError {
    AppError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        Reason::UserTokenKeyNotFound,
        "this tenant has no user-token key: its users sign in with the deployment's tokens",
    )
}

/// Register the tenant's user-token key
///
/// From the record's offset, user tokens whose `iss` is this tenant are verified with
/// this key (and only this algorithm), act only on this tenant's events and desks, and
/// this tenant's events take no token signed with the deployment's secret.
#[utoipa::path(put, path = "/v1/admin/user-token-key", tag = "accounts", request_body = UserTokenKeyBody,
    responses((status = 200, description = "Registered", body = UserTokenKeyShown), (status = 400, description = "`details.field` is `algorithm` or `key`", body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn put_user_token_key(
    State(state): State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
    ApiJson(body): ApiJson<UserTokenKeyBody>,
) -> Result<Json<UserTokenKeyShown>, AppError> {
    let algorithm = UserTokenAlgorithm::parse(&body.algorithm).ok_or_else(|| {
        AppError::field(
            "algorithm",
            format!(
                "algorithm: {:?} is not one of HS256, RS256, EdDSA",
                body.algorithm
            ),
        )
    })?;
    decoding_key(algorithm, &body.key)
        .map_err(|why| AppError::field("key", format!("key: {why}")))?;
    append(
        &state,
        vec![ControlRecord::UserTokenKeySet {
            tenant: tenant.clone(),
            algorithm,
            key: body.key,
        }],
    )
    .await?;
    token_key_shown(&state, &tenant)
        .map(Json)
        .ok_or_else(|| AppError::internal("a user-token key just applied is missing"))
}

/// The tenant's user-token key (its algorithm and fingerprint, never the key)
#[utoipa::path(get, path = "/v1/admin/user-token-key", tag = "accounts",
    responses((status = 200, body = UserTokenKeyShown), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn get_user_token_key(
    State(state): State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
) -> Result<Json<UserTokenKeyShown>, AppError> {
    token_key_shown(&state, &tenant)
        .map(Json)
        .ok_or_else(token_key_not_found)
}

/// Remove the tenant's user-token key
///
/// Its users' tokens are refused from the record's offset; the deployment's tokens act on
/// its events again.
#[utoipa::path(delete, path = "/v1/admin/user-token-key", tag = "accounts",
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("admin_key" = [])))]
pub(crate) async fn delete_user_token_key(
    State(state): State<AppState>,
    TenantAdmin(tenant): TenantAdmin,
) -> Result<StatusCode, AppError> {
    if token_key_shown(&state, &tenant).is_none() {
        return Err(token_key_not_found());
    }
    append(&state, vec![ControlRecord::UserTokenKeyRemoved { tenant }]).await?;
    Ok(StatusCode::NO_CONTENT)
}
