//! Extractors whose rejections are our error format: JSON bodies (field named, 413 for
//! large bodies), query strings, the Idempotency-Key header, and who is asking.

use crate::auth::{AdminKey, Auth};
use crate::client_address::ClientAddress;
use crate::error::{AppError, Reason};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// The longest Idempotency-Key accepted (the contract's limit).
pub(crate) const IDEMPOTENCY_KEY_CHARS_MAX: usize = 64;

/// A JSON body. A wrong content type, malformed JSON or a bad field is a 400 naming the
/// field (`details.field`); a body over the limit is 413.
pub(crate) struct ApiJson<T>(pub(crate) T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, AppError> {
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(AppError::bad_request(
                Reason::NotJson,
                "the body must be JSON with Content-Type: application/json",
            ));
        }
        let limit = state.config().body_bytes_max;
        let bytes =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection: BytesRejection| {
                    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                        AppError::payload_too_large(limit)
                    } else {
                        AppError::bad_request(
                            Reason::UnreadableBody,
                            format!("the body could not be read: {}", rejection.body_text()),
                        )
                    }
                })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// A JSON body. A number with a zero fraction (`2.0`) is the integer it equals, as JSON
/// Schema's `integer` says, so the body is read again with such numbers as integers when
/// the first reading fails; errors name what the client sent.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    // Perf: a body that reads is read once, without tracking where the reader is (every
    // write's body); one that does not is read again below, which names the place.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let error = match parse_json_as_sent(bytes) {
        Ok(value) => return Ok(value),
        Err(error) => error,
    };
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Err(error);
    };
    if !integral_floats_to_integers(&mut value) {
        return Err(error);
    }
    let normalized = serde_json::to_vec(&value).expect("a JSON value serializes");
    parse_json_as_sent(&normalized).map_err(|_| error)
}

/// Turns numbers like `2.0` into `2`; whether any changed.
fn integral_floats_to_integers(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Number(number) if number.is_f64() => {
            let float = number.as_f64().expect("an f64");
            // Within ±2^53 every integer is exact, and the engine's integers are below it.
            const EXACT: f64 = 9_007_199_254_740_992.0;
            if float.fract() == 0.0 && float.abs() <= EXACT {
                *value = if float < 0.0 {
                    Value::from(float as i64)
                } else {
                    Value::from(float as u64)
                };
                true
            } else {
                false
            }
        }
        Value::Array(items) => items.iter_mut().fold(false, |changed, item| {
            integral_floats_to_integers(item) | changed
        }),
        Value::Object(fields) => fields.values_mut().fold(false, |changed, field| {
            integral_floats_to_integers(field) | changed
        }),
        _ => false,
    }
}

fn parse_json_as_sent<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let message = inner.to_string();
        // A missing field is reported at its parent; name the field itself.
        let field = match message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
        {
            Some(missing) if path == "." => missing.to_string(),
            Some(missing) => format!("{path}.{missing}"),
            None => path,
        };
        if matches!(
            inner.classify(),
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof
        ) {
            return AppError::bad_request(
                Reason::MalformedJson,
                format!("malformed JSON: {message}"),
            );
        }
        if field == "." {
            AppError::bad_request(Reason::InvalidBody, message)
        } else {
            AppError::field(&field, format!("{field}: {message}"))
        }
    })?;
    deserializer.end().map_err(|error| {
        AppError::bad_request(Reason::MalformedJson, format!("malformed JSON: {error}"))
    })?;
    Ok(value)
}

/// A query string; an unknown parameter or a bad value is a 400.
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded_deserializer(query);
        deserializer.map(ApiQuery)
    }
}

fn serde_urlencoded_deserializer<T: DeserializeOwned>(query: &str) -> Result<T, AppError> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|_| AppError::bad_request(Reason::MalformedQuery, "malformed query string"))?,
    )
    .map(|axum::extract::Query(value)| value)
    .map_err(|rejection| AppError::bad_request(Reason::MalformedQuery, rejection.body_text()))
}

/// Path parameters; a segment that does not decode is a 400 in our format.
pub(crate) struct ApiPath<T>(pub(crate) T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| ApiPath(value))
            .map_err(|rejection| {
                AppError::bad_request(Reason::MalformedPath, rejection.body_text())
            })
    }
}

/// `Idempotency-Key`: at most 64 visible ASCII characters.
pub(crate) struct IdempotencyKey(pub(crate) Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyKey(None));
        };
        let invalid = || {
            AppError::field("Idempotency-Key", format!("Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_CHARS_MAX} visible ASCII characters"))
        };
        let key = value.to_str().map_err(|_| invalid())?;
        if key.is_empty()
            || key.len() > IDEMPOTENCY_KEY_CHARS_MAX
            || !key.bytes().all(|byte| byte.is_ascii_graphic())
        {
            return Err(invalid());
        }
        Ok(IdempotencyKey(Some(key.to_string())))
    }
}

/// A user, from a valid user token: the pseudonym of its `sub` (`privacy`) in the token's
/// scope (the deployment's, or the issuing tenant's), the only user id anything downstream
/// sees; also takes a token from the user's rate limit. On a route naming an event or a
/// desk, a tenant's token (`iss`) acts only on that tenant's, and a tenant that registered
/// its own user-token key accepts only its own tokens.
pub(crate) struct UserId(pub(crate) String);

impl FromRequestParts<AppState> for UserId {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        // The route's tenant first: finding it takes `parts` mutably, the token borrows it.
        let route_tenant = tenant_of_route(parts, state).await;
        let token = Auth::bearer(&parts.headers)?;
        let user = {
            let accounts = state.shared.control.accounts();
            state.shared.auth.user(token, &accounts)?
        };
        if let Some(tenant) = route_tenant {
            check_user_tenant(state, user.issuer(), &tenant)?;
        }
        // A returning token's pseudonym, kept with it, is its user's current one while it
        // is not erased (an erasure is for good, and marks the pseudonym erased before it
        // destroys its personal-data entry), and its entry was remembered when it was kept.
        let kept = user
            .acted_as()
            .filter(|pseudonym| !state.shared.control.is_erased(pseudonym));
        let pseudonym = match kept {
            Some(pseudonym) => pseudonym.to_string(),
            None => {
                let scope = match user.issuer() {
                    Some(tenant) => crate::privacy::TokenScope::Tenant(tenant),
                    None => crate::privacy::TokenScope::Deployment,
                };
                let pseudonym = crate::privacy::pseudonym_of_user(state, scope, user.sub()).await?;
                state.shared.auth.acted_as(&user, &pseudonym);
                pseudonym
            }
        };
        state.check_user_rate(&pseudonym)?;
        Ok(UserId(pseudonym))
    }
}

/// The tenant of the event or desk a route names (`None`: none named, or unknown: the
/// handler answers 404).
async fn tenant_of_route(parts: &mut Parts, state: &AppState) -> Option<String> {
    let params = axum::extract::RawPathParams::from_request_parts(parts, state)
        .await
        .ok()?;
    for (name, value) in params.iter() {
        match name {
            "event_id" => {
                let id = engine::EventId::parse(value)?;
                return state
                    .model_of(id)
                    .event(id)
                    .map(|event| event.tenant.clone());
            }
            "desk_id" => {
                let id = engine::DeskId::parse(value)?;
                return state.model_of(id).desk(id).map(|desk| desk.tenant.clone());
            }
            _ => {}
        }
    }
    None
}

/// A tenant's token acts on its own tenant's events and desks only; a tenant with its own
/// user-token key takes no deployment-signed token.
fn check_user_tenant(state: &AppState, issuer: Option<&str>, tenant: &str) -> Result<(), AppError> {
    match issuer {
        Some(issuer) if issuer != tenant => Err(AppError::forbidden(
            Reason::UserTokenOfAnotherTenant,
            format!("this user token was issued by tenant {issuer:?}, which does not sell this"),
        )),
        Some(_) => Ok(()),
        None if state.shared.control.accounts().token_key(tenant).is_some() => {
            Err(AppError::forbidden(
                Reason::TenantUserTokenRequired,
                format!("tenant {tenant:?} verifies its own users' tokens: sign in through its frontend (a token whose iss is {tenant:?})"),
            ))
        }
        None => Ok(()),
    }
}

/// A tenant's API key (or config-file admin key) whose role allows this route, of a tenant
/// that is not suspended, on an ingress not too far behind the control log. The operator
/// key is 403 here.
pub(crate) struct TenantAdmin(pub(crate) String);

impl FromRequestParts<AppState> for TenantAdmin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let token = Auth::bearer(&parts.headers)?;
        let key = {
            let accounts = state.shared.control.accounts();
            state.shared.auth.admin_key(token, &accounts)?
        };
        let (tenant, role) = match key {
            AdminKey::Tenant { tenant, role } => (tenant, role),
            AdminKey::Operator => {
                return Err(AppError::forbidden(
                    Reason::TenantKeyRequired,
                    "the operator key does not administer tenants' events",
                ))
            }
        };
        if let Some((behind, bound)) = state.shared.control.behind() {
            return Err(AppError::unavailable(
                Reason::ControlLogBehind,
                format!(
                    "this ingress is {} ms behind the control log (bound {} ms), so it cannot tell whether this key is still valid: retry shortly",
                    behind.as_millis(),
                    bound.as_millis()
                ),
            ));
        }
        if let Some(reason) = state
            .shared
            .control
            .accounts()
            .suspension(&tenant)
            .map(str::to_string)
        {
            return Err(AppError::forbidden(
                Reason::TenantSuspended,
                format!("tenant {tenant:?} is suspended by the operator: {reason}"),
            ));
        }
        let route = parts
            .extensions
            .get::<axum::extract::MatchedPath>()
            .map_or("", |path| path.as_str());
        if !crate::accounts::role_allows(role, &parts.method, route) {
            return Err(AppError::forbidden(
                Reason::KeyRoleForbidden,
                format!("a {} key cannot do this", role.as_str()),
            )
            .with_details(serde_json::json!({"role": role.as_str()})));
        }
        Ok(TenantAdmin(tenant))
    }
}

/// The operator, from the operator key. A tenant's key is 403 here.
pub(crate) struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let token = Auth::bearer(&parts.headers)?;
        let key = {
            let accounts = state.shared.control.accounts();
            state.shared.auth.admin_key(token, &accounts)?
        };
        match key {
            AdminKey::Operator => Ok(Operator),
            AdminKey::Tenant { .. } => Err(AppError::forbidden(
                Reason::OperatorKeyRequired,
                "this endpoint needs the operator key",
            )),
        }
    }
}

/// The client's address as the edge middleware found it (`client_address`); `None` when
/// the request came without a socket (tests calling the router directly).
pub(crate) struct Client(pub(crate) Option<ClientAddress>);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Client(parts.extensions.get::<ClientAddress>().copied()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        items: Vec<Inner>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        price_cents: u64,
    }

    fn field_of(body: &str) -> String {
        let error = parse_json::<Outer>(body.as_bytes()).unwrap_err();
        assert_eq!(error.code, "bad_request");
        error
            .details
            .map(|details| details["field"].as_str().unwrap().to_string())
            .unwrap_or_default()
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field_of(r#"{"items": []}"#), "name");
        assert_eq!(field_of(r#"{"name": 5, "items": []}"#), "name");
        assert_eq!(
            field_of(r#"{"name": "x", "items": [{"price_cents": -1}]}"#),
            "items[0].price_cents"
        );
        assert_eq!(
            field_of(r#"{"name": "x", "items": [{}]}"#),
            "items[0].price_cents"
        );
        assert_eq!(
            field_of(r#"{"name": "x", "items": [], "extra": 1}"#),
            "extra"
        );
        assert_eq!(field_of(r#"{"name": "#), "");
        assert_eq!(field_of(r#"{"name": "x", "items": []} trailing"#), "");
        assert!(parse_json::<Outer>(br#"{"name": "x", "items": []}"#).is_ok());
    }

    /// JSON Schema's `integer` includes `7.0`; the OpenAPI document says `integer`, so the
    /// server takes it (schemathesis sends such numbers). A fraction or a negative stays a 400.
    #[test]
    fn integral_floats_are_integers() {
        let outer = parse_json::<Outer>(br#"{"name": "x", "items": [{"price_cents": 7.0}]}"#)
            .expect("7.0 is the integer 7");
        assert_eq!(outer.items[0].price_cents, 7);
        assert_eq!(
            parse_json::<Outer>(br#"{"name": "x", "items": [{"price_cents": 1e3}]}"#)
                .unwrap()
                .items[0]
                .price_cents,
            1000
        );
        for bad in ["7.5", "-1.0", "1e300"] {
            let body = format!(r#"{{"name": "x", "items": [{{"price_cents": {bad}}}]}}"#);
            assert_eq!(field_of(&body), "items[0].price_cents", "{bad}");
        }
    }
}
