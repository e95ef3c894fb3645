//! Who is asking: tenant admins (an admin key per tenant), the operator (its own key), and
//! users (HS256 JWTs whose `sub` is the user id, signed with the user-token secret).

use crate::config::Tenant;
use crate::error::{AppError, Reason};
use axum::http::{header, HeaderMap};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// The longest user id accepted from a token's `sub`.
pub const USER_ID_BYTES_MAX: usize = 256;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
}

pub(crate) struct Auth {
    tenants: Vec<Tenant>,
    operator_key: String,
    decoding_key: DecodingKey,
    validation: Validation,
}

/// What an admin-area key turned out to be.
pub(crate) enum AdminKey<'a> {
    Tenant(&'a str),
    Operator,
}

/// Compares secrets in time independent of where they differ.
fn same_secret(given: &str, expected: &str) -> bool {
    let (given, expected) = (given.as_bytes(), expected.as_bytes());
    let mut difference = given.len() ^ expected.len();
    for (index, byte) in expected.iter().enumerate() {
        difference |= usize::from(given.get(index).copied().unwrap_or(0) ^ byte);
    }
    difference == 0
}

impl Auth {
    pub(crate) fn new(tenants: Vec<Tenant>, operator_key: String, user_token_secret: &str) -> Auth {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 30;
        Auth {
            tenants,
            operator_key,
            decoding_key: DecodingKey::from_secret(user_token_secret.as_bytes()),
            validation,
        }
    }

    /// The bearer token of a request, or 401.
    pub(crate) fn bearer(headers: &HeaderMap) -> Result<&str, AppError> {
        let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
            AppError::unauthorized(
                Reason::MissingToken,
                "missing Authorization: Bearer <token>",
            )
        })?;
        let value = value.to_str().map_err(|_| {
            AppError::unauthorized(
                Reason::MalformedAuthorization,
                "the Authorization header is not valid text",
            )
        })?;
        let (scheme, token) = value.split_once(' ').ok_or_else(|| {
            AppError::unauthorized(
                Reason::MalformedAuthorization,
                "expected Authorization: Bearer <token>",
            )
        })?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AppError::unauthorized(
                Reason::MalformedAuthorization,
                "expected Authorization: Bearer <token>",
            ));
        }
        Ok(token.trim())
    }

    /// An admin-area key: a tenant's admin key or the operator key; anything else is 401.
    pub(crate) fn admin_key(&self, token: &str) -> Result<AdminKey<'_>, AppError> {
        // Check every key so the time taken does not tell which one is close.
        let mut found = None;
        for tenant in &self.tenants {
            if same_secret(token, &tenant.admin_key) {
                found = Some(AdminKey::Tenant(tenant.id.as_str()));
            }
        }
        if same_secret(token, &self.operator_key) {
            found = Some(AdminKey::Operator);
        }
        found.ok_or_else(|| AppError::unauthorized(Reason::UnknownAdminKey, "unknown admin key"))
    }

    /// The user id of a valid user token, or 401.
    pub(crate) fn user(&self, token: &str) -> Result<String, AppError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding_key, &self.validation)
            .map_err(|error| {
                AppError::unauthorized(Reason::InvalidToken, format!("invalid user token: {error}"))
            })?;
        let user = data.claims.sub;
        if user.trim().is_empty()
            || user.len() > USER_ID_BYTES_MAX
            || user.chars().any(char::is_control)
        {
            return Err(AppError::unauthorized(
                Reason::InvalidToken,
                format!("the token's sub must be a user id of 1 to {USER_ID_BYTES_MAX} bytes"),
            ));
        }
        Ok(user)
    }
}

/// Mints a user token (HS256, `sub` = user, valid for `ttl_seconds`), as a frontend would
/// after its own login. Used by `boxoffice token` and the tests.
pub fn mint_user_token(secret: &str, user: &str, ttl_seconds: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    let claims = Claims {
        sub: user.to_string(),
        exp: now + ttl_seconds,
        iat: Some(now),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 encoding cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        Auth::new(
            vec![
                Tenant {
                    id: "demo".into(),
                    admin_key: "k1".into(),
                },
                Tenant {
                    id: "other".into(),
                    admin_key: "k2".into(),
                },
            ],
            "op".into(),
            "secret",
        )
    }

    #[test]
    fn keys_and_tokens() {
        let auth = auth();
        assert!(matches!(
            auth.admin_key("k2"),
            Ok(AdminKey::Tenant("other"))
        ));
        assert!(matches!(auth.admin_key("op"), Ok(AdminKey::Operator)));
        assert!(auth.admin_key("k").is_err());
        assert!(auth.admin_key("k11").is_err());
        assert_eq!(
            auth.user(&mint_user_token("secret", "alice", 60)).unwrap(),
            "alice"
        );
        assert_eq!(
            auth.user(&mint_user_token("wrong", "alice", 60))
                .unwrap_err()
                .code,
            "unauthorized"
        );
        assert!(auth.user("not-a-jwt").is_err());
        assert!(auth.user(&mint_user_token("secret", "", 60)).is_err());
    }

    #[test]
    fn bearer_parsing() {
        let mut headers = HeaderMap::new();
        assert!(Auth::bearer(&headers).is_err());
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(Auth::bearer(&headers).unwrap(), "abc");
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert!(Auth::bearer(&headers).is_err());
        headers.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert!(Auth::bearer(&headers).is_err());
    }
}
