//! Organiser accounts by API (issue "Discovery like a real box office, and organiser
//! accounts by API"): tenants the operator made or suspended, each tenant's API keys (with
//! a role; only the SHA-256 of each secret is kept) and each tenant's own user-token key.
//! All of it is the control log's (`engine::control`): every ingress applies the same
//! records in the same order ([`Accounts::apply`]), so a key revoked on one ingress is
//! refused on every ingress once the revocation's offset is applied there, and an ingress
//! that is behind the control log by more than a bound refuses tenant keys
//! ([`Freshness`]). Config-file tenants (`auth.tenants`) remain as a bootstrap: they exist
//! without a record, and their admin key is an `admin` key.
//!
//! A key is `key_<24 hex>.<43 base64url>`: the part before the dot finds the key without
//! comparing secrets, the whole string's SHA-256 is compared in constant time. The secret
//! is 256 random bits, so a fast hash is the right one (a password hash guards low-entropy
//! secrets; this one cannot be guessed).

use engine::control::{ApiKeyRole, ControlRecord, UserTokenAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Tenants the control log may make (config-file tenants not counted).
pub(crate) const TENANTS_MAX: usize = 10_000;
/// API keys one tenant may have at once (revoked ones do not count).
pub(crate) const KEYS_PER_TENANT_MAX: usize = 100;
/// A tenant id: 1 to 64 of `a-z 0-9 - _`.
pub(crate) const TENANT_ID_BYTES_MAX: usize = 64;
/// A tenant's or a key's display name.
pub(crate) const NAME_BYTES_MAX: usize = 200;
/// A user-token key: an HS256 secret or a PEM public key.
pub(crate) const USER_TOKEN_KEY_BYTES_MAX: usize = 8 * 1024;
/// The shortest HS256 secret a tenant may register (RFC 7518 §3.2: at least the hash's size).
pub(crate) const HS256_SECRET_BYTES_MIN: usize = 32;

/// Whether `tenant` is a well-formed tenant id; the sentence why not.
pub(crate) fn check_tenant_id(tenant: &str) -> Result<(), String> {
    if tenant.is_empty() || tenant.len() > TENANT_ID_BYTES_MAX {
        return Err(format!(
            "a tenant id is 1 to {TENANT_ID_BYTES_MAX} characters"
        ));
    }
    if !tenant.bytes().all(|byte| {
        byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-' || byte == b'_'
    }) {
        return Err("a tenant id is made of a-z, 0-9, '-' and '_'".into());
    }
    Ok(())
}

/// A display name: 0 to [`NAME_BYTES_MAX`] bytes without control characters.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.len() > NAME_BYTES_MAX || name.chars().any(char::is_control) {
        return Err(format!(
            "at most {NAME_BYTES_MAX} bytes without control characters"
        ));
    }
    Ok(())
}

/// A tenant made through the control log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TenantAccount {
    pub(crate) name: String,
    /// The control log offset of its creation.
    pub(crate) created_offset: u64,
}

/// An issued API key (never its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ApiKey {
    pub(crate) id: String,
    pub(crate) tenant: String,
    pub(crate) name: String,
    pub(crate) role: ApiKeyRole,
    secret_sha256: [u8; 32],
    /// Offsets of its first issue and of its last rotation.
    pub(crate) created_offset: u64,
    pub(crate) rotated_offset: Option<u64>,
}

/// A tenant's own user-token verification key, ready to verify.
#[derive(Clone)]
pub(crate) struct TenantTokenKey {
    pub(crate) algorithm: UserTokenAlgorithm,
    /// SHA-256 of the key as registered, hex (what the admin API shows instead of it).
    pub(crate) fingerprint: String,
    pub(crate) decoding_key: DecodingKey,
}

/// Why a control record changed nothing (skipped the same way on every ingress).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Skipped {
    TenantExists,
    UnknownTenant,
    TooManyTenants,
    TooManyKeys,
    KeyOfAnotherTenant,
    UnknownKey,
    BadTokenKey(String),
}

/// The accounts as the control log made them, up to this ingress's applied offset.
#[derive(Default)]
pub(crate) struct Accounts {
    /// Config-file tenants: they exist without a record.
    bootstrap: Vec<String>,
    tenants: BTreeMap<String, TenantAccount>,
    /// Suspended tenants and why.
    suspended: BTreeMap<String, String>,
    keys: BTreeMap<String, ApiKey>,
    token_keys: BTreeMap<String, TenantTokenKey>,
}

/// The key a user-token key verifies with, or why it is not one.
pub(crate) fn decoding_key(
    algorithm: UserTokenAlgorithm,
    key: &str,
) -> Result<DecodingKey, String> {
    if key.len() > USER_TOKEN_KEY_BYTES_MAX {
        return Err(format!("at most {USER_TOKEN_KEY_BYTES_MAX} bytes"));
    }
    match algorithm {
        UserTokenAlgorithm::Hs256 if key.len() < HS256_SECRET_BYTES_MIN => Err(format!(
            "an HS256 secret has at least {HS256_SECRET_BYTES_MIN} bytes"
        )),
        UserTokenAlgorithm::Hs256 => Ok(DecodingKey::from_secret(key.as_bytes())),
        UserTokenAlgorithm::Rs256 => DecodingKey::from_rsa_pem(key.as_bytes())
            .map_err(|error| format!("not an RSA public key in PEM: {error}")),
        UserTokenAlgorithm::EdDsa => DecodingKey::from_ed_pem(key.as_bytes())
            .map_err(|error| format!("not an Ed25519 public key in PEM: {error}")),
    }
}

/// The JOSE algorithm a tenant's tokens must be signed with.
pub(crate) fn jose_algorithm(algorithm: UserTokenAlgorithm) -> Algorithm {
    match algorithm {
        UserTokenAlgorithm::Hs256 => Algorithm::HS256,
        UserTokenAlgorithm::Rs256 => Algorithm::RS256,
        UserTokenAlgorithm::EdDsa => Algorithm::EdDSA,
    }
}

/// The validation of a tenant's user tokens: its algorithm only, `iss` = the tenant.
pub(crate) fn tenant_validation(algorithm: UserTokenAlgorithm, tenant: &str) -> Validation {
    let mut validation = Validation::new(jose_algorithm(algorithm));
    validation.set_required_spec_claims(&["exp", "sub", "iss"]);
    validation.set_issuer(&[tenant]);
    validation.leeway = 30;
    validation
}

/// A fresh key id and its full secret (`key_<hex>.<base64url>`), and the secret's hash.
pub(crate) fn new_key_secret(key_id: Option<&str>) -> (String, String, [u8; 32]) {
    let id = key_id.map_or_else(
        || format!("key_{:024x}", rand::random::<u128>() >> 32),
        str::to_string,
    );
    let random: [u8; 32] = rand::random();
    let secret = format!(
        "{id}.{}",
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, random)
    );
    let hash = Sha256::digest(secret.as_bytes()).into();
    (id, secret, hash)
}

impl Accounts {
    pub(crate) fn new(bootstrap: Vec<String>) -> Accounts {
        Accounts {
            bootstrap,
            ..Accounts::default()
        }
    }

    /// Whether the tenant exists (config file or control log).
    pub(crate) fn exists(&self, tenant: &str) -> bool {
        self.tenants.contains_key(tenant) || self.bootstrap.iter().any(|id| id == tenant)
    }

    pub(crate) fn tenant(&self, tenant: &str) -> Option<&TenantAccount> {
        self.tenants.get(tenant)
    }

    /// Every tenant: config-file ones (`None`) and made ones, by id.
    pub(crate) fn tenants(&self) -> BTreeMap<&str, Option<&TenantAccount>> {
        let mut all: BTreeMap<&str, Option<&TenantAccount>> = self
            .bootstrap
            .iter()
            .map(|tenant| (tenant.as_str(), None))
            .collect();
        all.extend(
            self.tenants
                .iter()
                .map(|(tenant, account)| (tenant.as_str(), Some(account))),
        );
        all
    }

    pub(crate) fn made_count(&self) -> usize {
        self.tenants.len()
    }

    /// Why the tenant is suspended, if it is.
    pub(crate) fn suspension(&self, tenant: &str) -> Option<&str> {
        self.suspended.get(tenant).map(String::as_str)
    }

    pub(crate) fn keys_of<'a>(&'a self, tenant: &'a str) -> impl Iterator<Item = &'a ApiKey> + 'a {
        self.keys.values().filter(move |key| key.tenant == tenant)
    }

    pub(crate) fn key(&self, tenant: &str, key: &str) -> Option<&ApiKey> {
        self.keys.get(key).filter(|found| found.tenant == tenant)
    }

    /// The key a presented secret belongs to, if it is one of ours and its secret matches.
    pub(crate) fn key_of_secret(&self, secret: &str) -> Option<&ApiKey> {
        let (id, _) = secret.split_once('.')?;
        let key = self.keys.get(id)?;
        let hash: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        crate::auth::same_secret(&hash, &key.secret_sha256).then_some(key)
    }

    pub(crate) fn token_key(&self, tenant: &str) -> Option<&TenantTokenKey> {
        self.token_keys.get(tenant)
    }

    /// Applies one account record at `offset`; other records are not this registry's.
    /// A record the appender checked is never skipped; one that lost a race (two
    /// creations of one tenant) is skipped identically everywhere.
    pub(crate) fn apply(&mut self, offset: u64, record: &ControlRecord) -> Result<(), Skipped> {
        match record {
            ControlRecord::TenantCreated { tenant, name } => {
                if self.exists(tenant) {
                    return Err(Skipped::TenantExists);
                }
                if self.tenants.len() >= TENANTS_MAX {
                    return Err(Skipped::TooManyTenants);
                }
                self.tenants.insert(
                    tenant.clone(),
                    TenantAccount {
                        name: name.clone(),
                        created_offset: offset,
                    },
                );
            }
            ControlRecord::TenantSuspended { tenant, reason } => {
                if !self.exists(tenant) {
                    return Err(Skipped::UnknownTenant);
                }
                self.suspended.insert(tenant.clone(), reason.clone());
            }
            ControlRecord::TenantResumed { tenant } => {
                self.suspended.remove(tenant);
            }
            ControlRecord::ApiKeyIssued {
                tenant,
                key,
                name,
                role,
                secret_sha256,
            } => {
                if !self.exists(tenant) {
                    return Err(Skipped::UnknownTenant);
                }
                match self.keys.get_mut(key) {
                    Some(existing) if existing.tenant != *tenant => {
                        return Err(Skipped::KeyOfAnotherTenant)
                    }
                    // A rotation: the same key, a new secret.
                    Some(existing) => {
                        existing.secret_sha256 = *secret_sha256;
                        existing.rotated_offset = Some(offset);
                    }
                    None => {
                        if self.keys_of(tenant).count() >= KEYS_PER_TENANT_MAX {
                            return Err(Skipped::TooManyKeys);
                        }
                        self.keys.insert(
                            key.clone(),
                            ApiKey {
                                id: key.clone(),
                                tenant: tenant.clone(),
                                name: name.clone(),
                                role: *role,
                                secret_sha256: *secret_sha256,
                                created_offset: offset,
                                rotated_offset: None,
                            },
                        );
                    }
                }
            }
            ControlRecord::ApiKeyRevoked { tenant, key } => {
                if self.key(tenant, key).is_none() {
                    return Err(Skipped::UnknownKey);
                }
                self.keys.remove(key);
            }
            ControlRecord::UserTokenKeySet {
                tenant,
                algorithm,
                key,
            } => {
                if !self.exists(tenant) {
                    return Err(Skipped::UnknownTenant);
                }
                let decoding_key = decoding_key(*algorithm, key).map_err(Skipped::BadTokenKey)?;
                self.token_keys.insert(
                    tenant.clone(),
                    TenantTokenKey {
                        algorithm: *algorithm,
                        fingerprint: hex_of(&Sha256::digest(key.as_bytes())),
                        decoding_key,
                    },
                );
            }
            ControlRecord::UserTokenKeyRemoved { tenant } => {
                self.token_keys.remove(tenant);
            }
            _ => {}
        }
        Ok(())
    }
}

/// Whether a key of `role` may call `route` (the matched route template) with `method`:
/// `admin` everything of its tenant; `checkin` only checks tickets in; `reports` reads
/// (GET) anything but the tenant's keys and user-token key.
pub(crate) fn role_allows(role: ApiKeyRole, method: &axum::http::Method, route: &str) -> bool {
    use axum::http::Method;
    match role {
        ApiKeyRole::Admin => true,
        ApiKeyRole::Checkin => {
            *method == Method::POST && route == "/v1/admin/events/{event_id}/checkin"
        }
        ApiKeyRole::Reports => {
            *method == Method::GET
                && !route.starts_with("/v1/admin/keys")
                && !route.starts_with("/v1/admin/user-token-key")
        }
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// How far behind the control log this ingress may be and still authenticate tenant keys.
///
/// The control follower observes the log's end (its offset and when it was asked) and,
/// once its own position reaches that end, knows it had applied every record written
/// before that moment: `caught_up_as_of`. A tenant key is accepted only while that moment
/// is less than `lag_max` ago, so a key revoked on another ingress works here at most
/// `lag_max` after the revocation was acknowledged, and an ingress cut off from the
/// control log (or stalled behind it) refuses tenant keys with 503 until it catches up.
#[derive(Debug)]
pub(crate) struct Freshness {
    lag_max: Duration,
    /// The newest moment up to which every record is applied.
    caught_up_as_of: Option<Instant>,
    /// An end observed but not yet reached: (end offset, when it was asked).
    pending: Option<(u64, Instant)>,
}

impl Freshness {
    pub(crate) fn new(lag_max: Duration) -> Freshness {
        Freshness {
            lag_max,
            caught_up_as_of: None,
            pending: None,
        }
    }

    /// Whether a new end observation is due (none pending).
    pub(crate) fn wants_end(&self) -> bool {
        self.pending.is_none()
    }

    /// The log's end was `end` when asked at `asked_at`.
    pub(crate) fn observed_end(&mut self, end: u64, asked_at: Instant) {
        self.pending = Some((end, asked_at));
    }

    /// The follower's position is now `position`.
    pub(crate) fn reached(&mut self, position: u64) {
        if let Some((end, asked_at)) = self.pending {
            if position >= end {
                self.caught_up_as_of = Some(asked_at);
                self.pending = None;
            }
        }
    }

    /// How far behind this ingress may be at `now`, if too far (`None`: fresh enough).
    pub(crate) fn behind(&self, now: Instant) -> Option<Duration> {
        match self.caught_up_as_of {
            Some(as_of) if now.saturating_duration_since(as_of) <= self.lag_max => None,
            Some(as_of) => Some(now.saturating_duration_since(as_of)),
            None => Some(self.lag_max),
        }
    }

    pub(crate) fn lag_max(&self) -> Duration {
        self.lag_max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issued(tenant: &str, key: &str, role: ApiKeyRole, hash: [u8; 32]) -> ControlRecord {
        ControlRecord::ApiKeyIssued {
            tenant: tenant.into(),
            key: key.into(),
            name: String::new(),
            role,
            secret_sha256: hash,
        }
    }

    #[test]
    fn keys_are_found_by_secret_rotated_and_revoked() {
        let mut accounts = Accounts::new(vec!["demo".into()]);
        let (id, secret, hash) = new_key_secret(None);
        assert!(id.starts_with("key_") && secret.starts_with(&format!("{id}.")));
        accounts
            .apply(1, &issued("demo", &id, ApiKeyRole::Checkin, hash))
            .unwrap();
        let found = accounts.key_of_secret(&secret).unwrap();
        assert_eq!(
            (found.tenant.as_str(), found.role),
            ("demo", ApiKeyRole::Checkin)
        );
        // A wrong secret under a real id, and a secret of no key, are not found.
        assert!(accounts.key_of_secret(&format!("{id}.x")).is_none());
        assert!(accounts.key_of_secret("key_0.abc").is_none());
        assert!(accounts.key_of_secret("no dot").is_none());
        // Rotation: the old secret stops, the new one works, the role stays.
        let (same, rotated, hash) = new_key_secret(Some(&id));
        assert_eq!(same, id);
        accounts
            .apply(2, &issued("demo", &id, ApiKeyRole::Admin, hash))
            .unwrap();
        assert!(accounts.key_of_secret(&secret).is_none());
        let found = accounts.key_of_secret(&rotated).unwrap();
        assert_eq!(
            (found.role, found.rotated_offset),
            (ApiKeyRole::Checkin, Some(2))
        );
        // Another tenant cannot take or revoke the key.
        accounts
            .apply(
                3,
                &ControlRecord::TenantCreated {
                    tenant: "other".into(),
                    name: "O".into(),
                },
            )
            .unwrap();
        assert_eq!(
            accounts.apply(4, &issued("other", &id, ApiKeyRole::Admin, [0; 32])),
            Err(Skipped::KeyOfAnotherTenant)
        );
        assert_eq!(
            accounts.apply(
                5,
                &ControlRecord::ApiKeyRevoked {
                    tenant: "other".into(),
                    key: id.clone()
                }
            ),
            Err(Skipped::UnknownKey)
        );
        accounts
            .apply(
                6,
                &ControlRecord::ApiKeyRevoked {
                    tenant: "demo".into(),
                    key: id.clone(),
                },
            )
            .unwrap();
        assert!(accounts.key_of_secret(&rotated).is_none());
        // Keys of unknown tenants are skipped.
        assert_eq!(
            accounts.apply(7, &issued("ghost", "key_1", ApiKeyRole::Admin, [0; 32])),
            Err(Skipped::UnknownTenant)
        );
    }

    #[test]
    fn tenants_are_made_once_suspended_and_resumed() {
        let mut accounts = Accounts::new(vec!["demo".into()]);
        let made = ControlRecord::TenantCreated {
            tenant: "acme".into(),
            name: "Acme".into(),
        };
        accounts.apply(1, &made).unwrap();
        assert_eq!(accounts.apply(2, &made), Err(Skipped::TenantExists));
        assert_eq!(
            accounts.apply(
                3,
                &ControlRecord::TenantCreated {
                    tenant: "demo".into(),
                    name: String::new()
                }
            ),
            Err(Skipped::TenantExists)
        );
        assert_eq!(
            accounts.tenants().keys().copied().collect::<Vec<_>>(),
            ["acme", "demo"]
        );
        accounts
            .apply(
                4,
                &ControlRecord::TenantSuspended {
                    tenant: "demo".into(),
                    reason: "unpaid".into(),
                },
            )
            .unwrap();
        assert_eq!(accounts.suspension("demo"), Some("unpaid"));
        accounts
            .apply(
                5,
                &ControlRecord::TenantResumed {
                    tenant: "demo".into(),
                },
            )
            .unwrap();
        assert_eq!(accounts.suspension("demo"), None);
        assert_eq!(
            accounts.apply(
                6,
                &ControlRecord::TenantSuspended {
                    tenant: "ghost".into(),
                    reason: String::new()
                }
            ),
            Err(Skipped::UnknownTenant)
        );
    }

    #[test]
    fn keys_per_tenant_are_capped() {
        let mut accounts = Accounts::new(vec!["demo".into()]);
        for index in 0..KEYS_PER_TENANT_MAX {
            accounts
                .apply(
                    index as u64,
                    &issued(
                        "demo",
                        &format!("key_{index}"),
                        ApiKeyRole::Reports,
                        [0; 32],
                    ),
                )
                .unwrap();
        }
        assert_eq!(
            accounts.apply(1000, &issued("demo", "key_x", ApiKeyRole::Reports, [0; 32])),
            Err(Skipped::TooManyKeys)
        );
    }

    #[test]
    fn tenant_ids_and_token_keys_are_checked() {
        assert!(check_tenant_id("acme-1_x").is_ok());
        for bad in ["", "Acme", "a b", "a|b", &"a".repeat(65)] {
            assert!(check_tenant_id(bad).is_err(), "{bad:?}");
        }
        assert!(decoding_key(UserTokenAlgorithm::Hs256, "short").is_err());
        assert!(decoding_key(UserTokenAlgorithm::Hs256, &"s".repeat(32)).is_ok());
        assert!(decoding_key(UserTokenAlgorithm::Rs256, "not pem").is_err());
        assert!(decoding_key(UserTokenAlgorithm::EdDsa, "not pem").is_err());
    }

    /// Virtual time: fresh while the last catch-up is within the bound, behind after.
    #[test]
    fn freshness_follows_the_observed_end() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut freshness = Freshness::new(Duration::from_millis(1000));
        assert!(freshness.behind(at(0)).is_some(), "never caught up: behind");
        freshness.observed_end(10, at(0));
        freshness.reached(5);
        assert!(freshness.behind(at(1)).is_some());
        assert!(!freshness.wants_end());
        freshness.reached(10);
        assert_eq!(freshness.behind(at(900)), None);
        assert!(freshness.wants_end());
        // The next observation finds more records, which the follower does not reach.
        freshness.observed_end(20, at(500));
        freshness.reached(15);
        assert_eq!(freshness.behind(at(1000)), None);
        assert_eq!(
            freshness.behind(at(1500)),
            Some(Duration::from_millis(1500))
        );
        freshness.reached(20);
        assert_eq!(freshness.behind(at(1500)), None, "caught up as of 500 ms");
    }
}
