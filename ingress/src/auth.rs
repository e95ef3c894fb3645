//! Who is asking: tenants' API keys (`crate::accounts`, each with a role; a config-file
//! tenant's admin key is an `admin` key), the operator (its own key), and users: JWTs
//! whose `sub` is the user id, signed with the deployment's HS256 user-token secret, or,
//! when the token's `iss` names a tenant, with that tenant's own key (HS256, RS256 or
//! EdDSA). The ingress then replaces `sub` by its pseudonym in the token's scope
//! (`crate::privacy`: the deployment's, or the issuing tenant's), so users of two tenants
//! never share holds, bookings or limits.

use crate::accounts::Accounts;
use crate::config::Tenant;
use crate::error::{AppError, Reason};
use crate::generations::Generations;
use crate::user_token::{self, DeploymentKey};
use axum::http::{header, HeaderMap};
use engine::control::ApiKeyRole;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The longest user id accepted from a token's `sub`.
pub const USER_ID_BYTES_MAX: usize = 256;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
}

pub(crate) struct Auth {
    tenants: Vec<Tenant>,
    operator_key: String,
    /// The deployment's user-token secret (`crate::user_token`).
    deployment_key: DeploymentKey,
    verified: VerifiedTokens,
}

/// How long after its `exp` a token is still taken (clock skew between the frontend that
/// signs it and this ingress).
const TOKEN_LEEWAY_SECONDS: u64 = 30;

/// User tokens whose signature was checked lately. A client sends the same token with
/// every request until it expires, and checking it (an HMAC, or a public-key signature for
/// a tenant's RS256 or EdDSA key) was a few percent of a write's CPU: a token seen again
/// is taken from here while it is unexpired and, for a tenant's token, while that
/// tenant's key is the one that checked it. Bounded by generations (`generations.rs`: a
/// miss costs one check).
///
/// Keyed by the token's [`TokenDigest`], not the token: a token differing in any byte has
/// another digest, so it is checked afresh. Perf: keyed by the whole token (a few hundred
/// bytes), a look-up hashed it once per probe (a new token took five), a hit compared it
/// against the kept copy (several cache lines, cold), and every new token was copied onto
/// the heap: 5% of the HTTP thread under new buyers in `Generations` alone (BENCHMARKS.md,
/// "Session 43"). A digest is hashed once per request, compared in one 16-byte load and
/// kept in its entry (50,000 tokens: about 15 MB less).
///
/// The entry also keeps the pseudonym the token last acted as ([`Auth::acted_as`]), so a
/// returning user's request finds who it is in one look-up, where it took three (this
/// cache, the current pseudonyms of `privacy` and the personal-data store's known
/// pseudonyms), each a probe of a large table that misses the processor's caches: 1.24 us
/// against 0.26 us at 20,000 users (`benches/src/bin/identity.rs`, BENCHMARKS.md,
/// "Session 35").
struct VerifiedTokens {
    /// The digest's key, random per process.
    digest_keys: (u64, u64),
    /// Perf: an entry is shared (`Arc`), so a table's bucket is 24 bytes, not the 112 of
    /// the verified token itself: a probe's bucket is one cache line, a young hit in the
    /// old generation moves 24 bytes, and a hit hands out the entry, not copies of its
    /// names (two allocations a returning request fewer).
    tokens: std::sync::Mutex<Generations<TokenDigest, Arc<Verified>>>,
}

/// A token's SipHash-2-4 with 128 bits of output under [`VerifiedTokens`]' secret random
/// key: a pseudorandom function of the token, so two tokens share a digest with
/// probability 2^-128, and nobody without the key (it never leaves the process) can make
/// a token whose digest is another's (a forged token that took a verified one's entry
/// would act as its user: 64 bits would leave that at about 2^-48 per try against 50,000
/// kept tokens, 128 put it out of reach).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct TokenDigest(u128);

impl Default for VerifiedTokens {
    fn default() -> VerifiedTokens {
        VerifiedTokens {
            digest_keys: (rand::random(), rand::random()),
            tokens: std::sync::Mutex::new(Generations::new(VERIFIED_TOKENS_MAX)),
        }
    }
}

/// Verified tokens [`VerifiedTokens`] keeps.
const VERIFIED_TOKENS_MAX: usize = 50_000;

#[derive(Debug, Clone)]
struct Verified {
    sub: Box<str>,
    issuer: Option<Box<str>>,
    /// The token's `exp` (seconds since the epoch).
    exp_seconds: u64,
    /// The fingerprint of the tenant key that checked it (`None`: the deployment's secret).
    key_fingerprint: Option<String>,
    /// The pseudonym a request with this token last acted as, once its personal-data
    /// entry was remembered (`privacy::pseudonym_of_user`).
    acted_as: Option<Box<str>>,
}

impl VerifiedTokens {
    fn digest(&self, token: &str) -> TokenDigest {
        let (key0, key1) = self.digest_keys;
        TokenDigest(
            siphasher::sip128::SipHasher24::new_with_keys(key0, key1)
                .hash(token.as_bytes())
                .as_u128(),
        )
    }

    fn get(&self, token: TokenDigest, now_seconds: u64, accounts: &Accounts) -> Option<User> {
        let mut tokens = self
            .tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        tokens
            .get(&token, |verified: &Arc<Verified>| {
                let key_unchanged = match (&verified.issuer, &verified.key_fingerprint) {
                    (Some(tenant), Some(fingerprint)) => accounts
                        .token_key(tenant)
                        .is_some_and(|key| key.fingerprint == *fingerprint),
                    (None, None) => true,
                    _ => false,
                };
                (key_unchanged
                    && now_seconds <= verified.exp_seconds.saturating_add(TOKEN_LEEWAY_SECONDS))
                .then(|| User {
                    verified: Arc::clone(verified),
                    digest: token,
                })
            })
            .flatten()
    }

    fn insert(&self, token: TokenDigest, verified: Arc<Verified>) {
        self.tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(token, verified);
    }

    fn act_as(&self, token: TokenDigest, pseudonym: &str) {
        self.tokens
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .update(&token, |verified| {
                // Once a token (its first request, or its first after an erasure): the
                // entry is shared with requests under way, so it is replaced, not changed.
                *verified = Arc::new(Verified {
                    acted_as: Some(pseudonym.into()),
                    ..Verified::clone(verified)
                });
            });
    }
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

/// What an admin-area key turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AdminKey {
    Tenant { tenant: String, role: ApiKeyRole },
    Operator,
}

/// A user, from a valid user token: the verified token's entry, shared with the cache.
#[derive(Debug)]
pub(crate) struct User {
    verified: Arc<Verified>,
    /// The token's digest, for [`Auth::acted_as`] (a token is digested once a request).
    digest: TokenDigest,
}

impl User {
    /// The token's `sub` (an e-mail, a name...: never logged, `crate::privacy`).
    pub(crate) fn sub(&self) -> &str {
        &self.verified.sub
    }

    /// The tenant whose key signed the token; `None`: the deployment's secret.
    pub(crate) fn issuer(&self) -> Option<&str> {
        self.verified.issuer.as_deref()
    }

    /// The pseudonym the same token acted as before ([`Auth::acted_as`]), if this
    /// ingress still keeps it: the user's current pseudonym unless it was erased since,
    /// which the caller checks. `None` for a token verified now.
    pub(crate) fn acted_as(&self) -> Option<&str> {
        self.verified.acted_as.as_deref()
    }
}

/// Compares secrets (or their hashes) in time independent of where they differ: the one
/// comparison of admin keys, the operator key and API keys' hashes (`crate::accounts`).
pub(crate) fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let mut difference = given.len() ^ expected.len();
    for (index, byte) in expected.iter().enumerate() {
        difference |= usize::from(given.get(index).copied().unwrap_or(0) ^ byte);
    }
    difference == 0
}

impl Auth {
    pub(crate) fn new(tenants: Vec<Tenant>, operator_key: String, user_token_secret: &str) -> Auth {
        Auth {
            tenants,
            operator_key,
            deployment_key: DeploymentKey::new(user_token_secret.as_bytes()),
            verified: VerifiedTokens::default(),
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

    /// An admin-area key: an API key (`accounts`), a config-file tenant's admin key or the
    /// operator key; anything else is 401.
    pub(crate) fn admin_key(&self, token: &str, accounts: &Accounts) -> Result<AdminKey, AppError> {
        if let Some(key) = accounts.key_of_secret(token) {
            return Ok(AdminKey::Tenant {
                tenant: key.tenant.clone(),
                role: key.role,
            });
        }
        // Check every key so the time taken does not tell which one is close.
        let mut found = None;
        for tenant in &self.tenants {
            if same_secret(token.as_bytes(), tenant.admin_key.as_bytes()) {
                found = Some(AdminKey::Tenant {
                    tenant: tenant.id.clone(),
                    role: ApiKeyRole::Admin,
                });
            }
        }
        if same_secret(token.as_bytes(), self.operator_key.as_bytes()) {
            found = Some(AdminKey::Operator);
        }
        found.ok_or_else(|| AppError::unauthorized(Reason::UnknownAdminKey, "unknown admin key"))
    }

    /// The user of a valid user token, or 401. A token with an `iss` is verified with
    /// that tenant's registered key only.
    pub(crate) fn user(&self, token: &str, accounts: &Accounts) -> Result<User, AppError> {
        let now_seconds = now_seconds();
        let digest = self.verified.digest(token);
        if let Some(user) = self.verified.get(digest, now_seconds, accounts) {
            return Ok(user);
        }
        let invalid = |error: &dyn std::fmt::Display| {
            AppError::unauthorized(Reason::InvalidToken, format!("invalid user token: {error}"))
        };
        // The claims, parsed once and unverified, name the issuer whose key checks them:
        // a tenant's (`jsonwebtoken`, with that tenant's key only), or the deployment's
        // secret (`user_token`, HS256).
        let mut payload = Vec::new();
        let parsed = user_token::parse(token, &mut payload).map_err(|error| invalid(&error))?;
        let (user, exp, issuer, key_fingerprint) = match parsed.claims.issuer() {
            Some(tenant) => {
                let key = accounts.token_key(tenant).ok_or_else(|| {
                    AppError::unauthorized(
                        Reason::InvalidToken,
                        format!("invalid user token: its issuer {tenant:?} is not a tenant with a user-token key"),
                    )
                })?;
                let validation = crate::accounts::tenant_validation(key.algorithm, tenant);
                let data = jsonwebtoken::decode::<Claims>(token, &key.decoding_key, &validation)
                    .map_err(|error| invalid(&error))?;
                (
                    Cow::Owned(data.claims.sub),
                    data.claims.exp,
                    Some(tenant.into()),
                    Some(key.fingerprint.clone()),
                )
            }
            None => {
                let (sub, exp) = parsed
                    .verify(&self.deployment_key, now_seconds, TOKEN_LEEWAY_SECONDS)
                    .map_err(|error| invalid(&error))?;
                (sub, exp, None, None)
            }
        };
        if user.trim().is_empty()
            || user.len() > USER_ID_BYTES_MAX
            || user.chars().any(char::is_control)
        {
            return Err(AppError::unauthorized(
                Reason::InvalidToken,
                format!("the token's sub must be a user id of 1 to {USER_ID_BYTES_MAX} bytes"),
            ));
        }
        let verified = Arc::new(Verified {
            sub: user.into(),
            issuer,
            exp_seconds: exp,
            key_fingerprint,
            acted_as: None,
        });
        self.verified.insert(digest, Arc::clone(&verified));
        Ok(User { verified, digest })
    }

    /// Keeps `pseudonym` as what `user`'s token acts as, once its personal-data entry is
    /// remembered: the token's next request skips deriving it and looking it up in the
    /// personal-data store (it is kept with the verified token, and forgotten with it).
    /// Found by the digest the token's look-up made, not by hashing the token again.
    pub(crate) fn acted_as(&self, user: &User, pseudonym: &str) {
        self.verified.act_as(user.digest, pseudonym);
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
        iss: None,
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

    /// A user's `sub`, issuer and kept pseudonym.
    fn parts(user: &User) -> (&str, Option<&str>, Option<&str>) {
        (user.sub(), user.issuer(), user.acted_as())
    }

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
        let accounts = Accounts::new(vec!["demo".into(), "other".into()]);
        assert_eq!(
            auth.admin_key("k2", &accounts).unwrap(),
            AdminKey::Tenant {
                tenant: "other".into(),
                role: ApiKeyRole::Admin
            }
        );
        assert_eq!(auth.admin_key("op", &accounts).unwrap(), AdminKey::Operator);
        assert!(auth.admin_key("k", &accounts).is_err());
        assert!(auth.admin_key("k11", &accounts).is_err());
        assert_eq!(
            parts(
                &auth
                    .user(&mint_user_token("secret", "alice", 60), &accounts)
                    .unwrap()
            ),
            ("alice", None, None)
        );
        assert_eq!(
            auth.user(&mint_user_token("wrong", "alice", 60), &accounts)
                .unwrap_err()
                .code,
            "unauthorized"
        );
        assert!(auth.user("not-a-jwt", &accounts).is_err());
        assert!(auth
            .user(&mint_user_token("secret", "", 60), &accounts)
            .is_err());
        // A deployment token naming an audience is refused (401, `invalid_token`).
        let with_audience = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "alice", "exp": now_seconds() + 60, "aud": "them"}),
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        let refused = auth.user(&with_audience, &accounts).unwrap_err();
        assert_eq!(
            (refused.status.as_u16(), refused.reason),
            (401, Reason::InvalidToken)
        );
    }

    /// A tenant's token is checked with that tenant's key only, and names its issuer. The
    /// deployment secret cannot sign for a tenant.
    #[test]
    fn tenant_tokens_use_the_tenant_key() {
        let auth = auth();
        let mut accounts = Accounts::new(vec!["demo".into(), "other".into()]);
        let tenant_secret = "t".repeat(32);
        accounts
            .apply(
                1,
                &engine::control::ControlRecord::UserTokenKeySet {
                    tenant: "demo".into(),
                    algorithm: engine::control::UserTokenAlgorithm::Hs256,
                    key: tenant_secret.clone(),
                },
            )
            .unwrap();
        let mint = |secret: &str, iss: &str| {
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &Claims {
                    sub: "alice".into(),
                    exp: 4_000_000_000,
                    iat: None,
                    iss: Some(iss.into()),
                },
                &EncodingKey::from_secret(secret.as_bytes()),
            )
            .unwrap()
        };
        assert_eq!(
            parts(&auth.user(&mint(&tenant_secret, "demo"), &accounts).unwrap()),
            ("alice", Some("demo"), None)
        );
        // Signed with the deployment secret but claiming the tenant: refused.
        assert!(auth.user(&mint("secret", "demo"), &accounts).is_err());
        // A tenant without a key cannot issue tokens.
        assert!(auth
            .user(&mint(&tenant_secret, "other"), &accounts)
            .is_err());
    }

    /// A token seen again is taken from the cache of verified tokens, but never past its
    /// `exp` (and the leeway), and a tenant's token not after that tenant's key changed.
    #[test]
    fn a_verified_token_is_taken_again_only_while_it_and_its_key_hold() {
        let auth = auth();
        let mut accounts = Accounts::new(vec!["demo".into()]);
        let set_key = |accounts: &mut Accounts, offset: u64, secret: &str| {
            accounts
                .apply(
                    offset,
                    &engine::control::ControlRecord::UserTokenKeySet {
                        tenant: "demo".into(),
                        algorithm: engine::control::UserTokenAlgorithm::Hs256,
                        key: secret.into(),
                    },
                )
                .unwrap();
        };
        let (first, second) = ("f".repeat(32), "s".repeat(32));
        set_key(&mut accounts, 1, &first);
        let alice_of_demo = |secret: &str, exp: u64| {
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &Claims {
                    sub: "alice".into(),
                    exp,
                    iat: None,
                    iss: Some("demo".into()),
                },
                &EncodingKey::from_secret(secret.as_bytes()),
            )
            .unwrap()
        };
        let token = alice_of_demo(&first, 4_000_000_000);
        let alice = ("alice", Some("demo"), None);
        assert_eq!(parts(&auth.user(&token, &accounts).unwrap()), alice);
        assert_eq!(
            parts(&auth.user(&token, &accounts).unwrap()),
            alice,
            "from the cache"
        );
        // The pseudonym it acted as is kept with it, for this token only.
        auth.acted_as(&auth.user(&token, &accounts).unwrap(), "u_alice");
        assert_eq!(
            auth.user(&token, &accounts).unwrap().acted_as(),
            Some("u_alice")
        );
        let other_token = mint_user_token("secret", "alice", 60);
        assert_eq!(auth.user(&other_token, &accounts).unwrap().acted_as(), None);
        // The cache is keyed by the token's digest: the verified token with one byte of
        // its signature changed is checked afresh, and refused.
        let mut forged = token.clone().into_bytes();
        let signature = token.rfind('.').unwrap() + 1;
        forged[signature] = if forged[signature] == b'A' {
            b'B'
        } else {
            b'A'
        };
        let forged = String::from_utf8(forged).unwrap();
        assert_ne!(auth.verified.digest(&forged), auth.verified.digest(&token));
        assert_eq!(
            auth.user(&forged, &accounts).unwrap_err().code,
            "unauthorized",
            "a token one byte away from a verified one is not taken from the cache"
        );
        assert_eq!(
            parts(&auth.user(&token, &accounts).unwrap()),
            ("alice", Some("demo"), Some("u_alice")),
            "the genuine one still is"
        );
        // The tenant's key is replaced: the cached verdict no longer counts.
        set_key(&mut accounts, 2, &second);
        assert_eq!(
            auth.user(&token, &accounts).unwrap_err().code,
            "unauthorized"
        );
        // ... and what it acted as with it: a token of the new key starts afresh.
        let renewed = alice_of_demo(&second, 4_000_000_001);
        assert_eq!(parts(&auth.user(&renewed, &accounts).unwrap()), alice);

        // The cache itself, at times around a token's `exp`.
        let deployment = mint_user_token("secret", "bob", 60);
        assert!(auth.user(&deployment, &accounts).is_ok());
        let digest = auth.verified.digest(&deployment);
        let exp = (auth.verified.tokens.lock().unwrap())
            .get(&digest, |verified| verified.exp_seconds)
            .expect("cached");
        let at = |now: u64| auth.verified.get(digest, now, &accounts);
        assert!(at(exp - 60).is_some());
        assert!(at(exp + TOKEN_LEEWAY_SECONDS).is_some());
        assert!(at(exp + TOKEN_LEEWAY_SECONDS + 2).is_none(), "expired");
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
