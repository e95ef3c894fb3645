//! Pseudonyms: the only user ids that reach a log (issue 23, "No personal data in the log
//! or snapshots").
//!
//! A token's `sub` may be an e-mail or a name. Before anything is appended, the ingress
//! replaces it by `u_` + the lowercase base32 of the first 15 bytes (120 bits) of
//! `HMAC-SHA256(scope key, sub)`, where the scope key is
//! `HMAC-SHA256(privacy.pseudonym_key, "boxoffice/pseudonym/v1/" + scope)`: one key per
//! tenant that issues tokens (`tenant:<id>`), and one for tokens of the deployment's
//! shared user-token secret (`deployment`). Requests, outcomes, snapshots, read models,
//! the idempotency index, webhooks and notifications all carry the pseudonym; the
//! pseudonym → user id mapping lives only in the personal-data store
//! (`crate::personal_data`).
//!
//! Why a key per tenant: two tenants' identity providers name different people alike
//! (`alice` at one is not `alice` at the other), and one tenant's records (exports,
//! webhooks) must not let anyone link its customers to another tenant's. Why keyed and
//! not a plain hash: a plain hash of an e-mail is reversed by hashing a list of e-mails.
//!
//! Erasure (`ControlRecord::UserErased`) retires a pseudonym; a user who comes back after
//! it gets the next *generation* of pseudonym (`HMAC(scope key, sub ‖ 0 ‖ generation)`),
//! so the bookings made before the erasure stay unlinked from the identity that comes back.

use crate::error::{AppError, Reason};
use crate::generations::Generations;
use crate::state::AppState;
use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What every pseudonym starts with.
pub const PSEUDONYM_PREFIX: &str = "u_";
/// Bytes of the HMAC kept: 120 bits, 24 base32 characters without padding.
const PSEUDONYM_BYTES: usize = 15;
/// A pseudonym's length: the prefix and 24 base32 characters.
pub const PSEUDONYM_CHARS: usize = PSEUDONYM_PREFIX.len() + PSEUDONYM_BYTES * 8 / 5;

/// Erasures of one identity followed through (a limit on everything: each erasure is a
/// logged operator action, so a user past it is refused rather than looped over).
pub(crate) const GENERATIONS_MAX: u32 = 1_000;

/// Derives pseudonyms from the deployment's pseudonym key.
#[derive(Clone)]
pub(crate) struct Pseudonyms {
    deployment_key: Vec<u8>,
    /// The deployment scope's key, derived once: most requests are of that scope.
    deployment_scope: HmacSha256,
    /// Tenant scopes' keys, derived once each (two HMACs a derivation); by tenant id.
    tenant_scopes: std::sync::Arc<std::sync::Mutex<Generations<Box<str>, HmacSha256>>>,
    /// The current pseudonyms of identities erased at least once, by scope and `sub`
    /// ([`Pseudonyms::current`]): deriving one takes an HMAC and an erasure check per
    /// generation before it. Only those: the first generation is derived every time.
    later_generations: std::sync::Arc<std::sync::Mutex<Generations<Box<str>, String>>>,
}

/// Tenant scopes' keys [`Pseudonyms`] keeps, by generations (`generations.rs`: a miss
/// costs two HMACs).
const TENANT_SCOPES_KEPT_MAX: usize = 1_024;

/// Current pseudonyms of erased identities [`Pseudonyms`] keeps, by generations (a miss
/// costs an HMAC and an erasure check for each generation before the current one).
const LATER_GENERATIONS_KEPT_MAX: usize = 10_000;

/// Whose tokens a pseudonym is for: the deployment's shared user-token secret, or a
/// tenant's own token key (issue 22's per-tenant user-token keys).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenScope<'a> {
    Deployment,
    Tenant(&'a str),
}

impl Pseudonyms {
    pub(crate) fn new(pseudonym_key: &str) -> Pseudonyms {
        Pseudonyms {
            deployment_key: pseudonym_key.as_bytes().to_vec(),
            deployment_scope: derive_scope_key(pseudonym_key.as_bytes(), TokenScope::Deployment),
            tenant_scopes: std::sync::Arc::new(std::sync::Mutex::new(Generations::new(
                TENANT_SCOPES_KEPT_MAX,
            ))),
            later_generations: std::sync::Arc::new(std::sync::Mutex::new(Generations::new(
                LATER_GENERATIONS_KEPT_MAX,
            ))),
        }
    }

    fn scope_key(&self, scope: TokenScope<'_>) -> HmacSha256 {
        match scope {
            TokenScope::Deployment => self.deployment_scope.clone(),
            TokenScope::Tenant(tenant) => {
                let lock = || {
                    self.tenant_scopes
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                };
                if let Some(key) = lock().get(tenant, HmacSha256::clone) {
                    return key;
                }
                let key = derive_scope_key(&self.deployment_key, scope);
                lock().insert(tenant.into(), key.clone());
                key
            }
        }
    }
}

/// `HMAC-SHA256(deployment key, "boxoffice/pseudonym/v1/" + scope)`, as an HMAC key.
fn derive_scope_key(deployment_key: &[u8], scope: TokenScope<'_>) -> HmacSha256 {
    let mut derive =
        HmacSha256::new_from_slice(deployment_key).expect("HMAC takes a key of any length");
    derive.update(b"boxoffice/pseudonym/v1/");
    match scope {
        TokenScope::Deployment => derive.update(b"deployment"),
        TokenScope::Tenant(tenant) => {
            derive.update(b"tenant:");
            derive.update(tenant.as_bytes());
        }
    }
    let key = derive.finalize().into_bytes();
    HmacSha256::new_from_slice(&key).expect("HMAC takes a key of any length")
}

impl Pseudonyms {
    /// The pseudonym of `sub` in `scope`, generation `generation` (0 until the first
    /// erasure of that identity).
    pub(crate) fn pseudonym(&self, scope: TokenScope<'_>, sub: &str, generation: u32) -> String {
        let mut mac = self.scope_key(scope);
        mac.update(sub.as_bytes());
        if generation > 0 {
            // A `sub` holds no control character (`auth`), so 0 ends it unambiguously.
            mac.update(&[0]);
            mac.update(&generation.to_be_bytes());
        }
        let digest = mac.finalize().into_bytes();
        let mut pseudonym = String::with_capacity(PSEUDONYM_CHARS);
        pseudonym.push_str(PSEUDONYM_PREFIX);
        pseudonym.push_str(
            &BASE32_NOPAD
                .encode(&digest[..PSEUDONYM_BYTES])
                .to_ascii_lowercase(),
        );
        pseudonym
    }

    /// The current pseudonym of `sub` in `scope`: the first generation not `erased`, or
    /// `None` past [`GENERATIONS_MAX`] erasures. Runs once per new token (a token's next
    /// requests find the pseudonym it acted as in `auth`'s verified tokens), so the first
    /// generation is derived every time: one HMAC, where a table of every recent user
    /// cost a look-up that missed the caches and an insert for each new user, more than
    /// the HMAC it saved a returning one (BENCHMARKS.md, "Session 55"). The current
    /// generation of an identity erased before is kept (an erasure is for good, so the
    /// generations before a kept one stay erased): finding it again takes an HMAC and a
    /// check per erasure.
    pub(crate) fn current(
        &self,
        scope: TokenScope<'_>,
        sub: &str,
        erased: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let first = self.pseudonym(scope, sub, 0);
        if !erased(&first) {
            return Some(first);
        }
        // A `sub` holds no control character (`auth`): 0 ends the scope unambiguously.
        let key: Box<str> = match scope {
            TokenScope::Deployment => format!("\0{sub}"),
            TokenScope::Tenant(tenant) => format!("{tenant}\0{sub}"),
        }
        .into();
        let lock = || {
            self.later_generations
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        };
        let kept = lock().get(&key, String::clone);
        if let Some(pseudonym) = kept.filter(|pseudonym| !erased(pseudonym)) {
            return Some(pseudonym);
        }
        let pseudonym = (1..GENERATIONS_MAX)
            .map(|generation| self.pseudonym(scope, sub, generation))
            .find(|pseudonym| !erased(pseudonym))?;
        lock().insert(key, pseudonym.clone());
        Some(pseudonym)
    }
}

/// The pseudonym a token of the deployment's shared secret with `sub` = `user` acts as
/// until its first erasure: what logs, webhooks and notifications name that user by. For
/// tests and tools.
pub fn deployment_pseudonym(pseudonym_key: &str, user: &str) -> String {
    Pseudonyms::new(pseudonym_key).pseudonym(TokenScope::Deployment, user, 0)
}

/// Whether `text` has a pseudonym's form (`u_` and 24 lowercase base32 characters).
pub(crate) fn is_pseudonym(text: &str) -> bool {
    text.len() == PSEUDONYM_CHARS
        && text.strip_prefix(PSEUDONYM_PREFIX).is_some_and(|code| {
            code.bytes()
                .all(|byte| byte.is_ascii_lowercase() || (b'2'..=b'7').contains(&byte))
        })
}

/// The pseudonym a request of the user `sub` (a verified token's) acts as: its current
/// generation, remembered in the personal-data store (durable before any record of the
/// request is) the first time this ingress sees it.
pub(crate) async fn pseudonym_of_user(
    state: &AppState,
    scope: TokenScope<'_>,
    sub: &str,
) -> Result<String, AppError> {
    let shared = &state.shared;
    let store_failed = |error: String| {
        tracing::error!(%error, "the personal-data store failed");
        AppError::unavailable(
            Reason::PersonalDataUnavailable,
            "the personal-data store cannot be written; try again",
        )
    };
    loop {
        let pseudonym = shared
            .pseudonyms
            .current(scope, sub, |pseudonym| shared.control.is_erased(pseudonym))
            .ok_or_else(|| {
                AppError::forbidden(
                    Reason::UserErased,
                    format!("this user was erased more than {GENERATIONS_MAX} times"),
                )
            })?;
        // The entry is written here, unsynced (microseconds); the requests log's writer
        // makes it durable before the commit that holds this request (`Writes`), so the
        // request costs one trip through the log's group commit, new user or not.
        shared
            .personal
            .remember_unsynced(&pseudonym, sub)
            .map_err(|error| store_failed(error.to_string()))?;
        // An erasure applied while this request was on its way marks the pseudonym erased
        // before it destroys the key: seen here, the entry just written is destroyed too,
        // and the user goes on under the next generation.
        let erased_meanwhile = shared.control.is_erased(&pseudonym);
        if !erased_meanwhile {
            return Ok(pseudonym);
        }
        let (personal, forgotten) = (std::sync::Arc::clone(&shared.personal), pseudonym);
        tokio::task::spawn_blocking(move || personal.forget(&forgotten))
            .await
            .map_err(|error| store_failed(error.to_string()))?
            .map_err(|error| store_failed(error.to_string()))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_keyed_per_scope_stable_and_well_formed() {
        let pseudonyms = Pseudonyms::new("key-1");
        let alice = pseudonyms.pseudonym(TokenScope::Deployment, "alice@example.com", 0);
        assert!(is_pseudonym(&alice), "{alice}");
        assert_eq!(alice.len(), PSEUDONYM_CHARS);
        assert!(!alice.contains("alice"));
        // Stable: every ingress with the key derives the same one.
        assert_eq!(
            Pseudonyms::new("key-1").pseudonym(TokenScope::Deployment, "alice@example.com", 0),
            alice
        );
        // Another key, scope, user or generation gives another pseudonym.
        let others = [
            Pseudonyms::new("key-2").pseudonym(TokenScope::Deployment, "alice@example.com", 0),
            pseudonyms.pseudonym(TokenScope::Tenant("acme"), "alice@example.com", 0),
            pseudonyms.pseudonym(TokenScope::Tenant("other"), "alice@example.com", 0),
            pseudonyms.pseudonym(TokenScope::Deployment, "bob@example.com", 0),
            pseudonyms.pseudonym(TokenScope::Deployment, "alice@example.com", 1),
        ];
        let mut all: std::collections::BTreeSet<&String> = others.iter().collect();
        all.insert(&alice);
        assert_eq!(all.len(), others.len() + 1);
        // Pinned, as computed outside Boxoffice (Python's hmac and base64): a change of
        // derivation would re-key every user of every log.
        assert_eq!(
            Pseudonyms::new("demo-pseudonym-key").pseudonym(TokenScope::Deployment, "alice", 0),
            "u_rtc3tmg6aaghref4zseoy2xf"
        );
    }

    #[test]
    fn the_current_pseudonym_skips_erased_generations() {
        let pseudonyms = Pseudonyms::new("key");
        let first = pseudonyms.pseudonym(TokenScope::Deployment, "alice", 0);
        let second = pseudonyms.pseudonym(TokenScope::Deployment, "alice", 1);
        assert_eq!(
            pseudonyms.current(TokenScope::Deployment, "alice", |_| false),
            Some(first.clone())
        );
        assert_eq!(
            pseudonyms.current(TokenScope::Deployment, "alice", |p| p == first),
            Some(second)
        );
        // Kept per scope: the same `sub` of a tenant's tokens is someone else.
        assert_eq!(
            pseudonyms.current(TokenScope::Tenant("acme"), "alice", |_| false),
            Some(pseudonyms.pseudonym(TokenScope::Tenant("acme"), "alice", 0))
        );
        assert_eq!(
            pseudonyms.current(TokenScope::Deployment, "alice", |_| true),
            None
        );
        // The kept later generation is taken while it is current, and passed over once
        // it is erased too.
        let third = pseudonyms.pseudonym(TokenScope::Deployment, "alice", 2);
        assert_eq!(
            pseudonyms.current(TokenScope::Deployment, "alice", |p| p == first),
            Some(pseudonyms.pseudonym(TokenScope::Deployment, "alice", 1))
        );
        let first_two = [
            first.clone(),
            pseudonyms.pseudonym(TokenScope::Deployment, "alice", 1),
        ];
        assert_eq!(
            pseudonyms.current(TokenScope::Deployment, "alice", |p| first_two
                .iter()
                .any(|erased| erased == p)),
            Some(third)
        );
        // A tenant's scope key, derived once and kept, is the one a fresh derivation gives.
        assert_eq!(
            pseudonyms.pseudonym(TokenScope::Tenant("acme"), "bob", 0),
            Pseudonyms::new("key").pseudonym(TokenScope::Tenant("acme"), "bob", 0)
        );
    }

    #[test]
    fn only_the_pseudonym_form_is_a_pseudonym() {
        let pseudonym = Pseudonyms::new("k").pseudonym(TokenScope::Deployment, "a", 0);
        assert!(is_pseudonym(&pseudonym));
        for bad in [
            "",
            "alice@example.com",
            "u_",
            &pseudonym.to_ascii_uppercase(),
            &format!("{pseudonym}a"),
            &pseudonym[..pseudonym.len() - 1],
            &pseudonym.replace('u', "v"),
            "u_00000000000000000000000",
        ] {
            assert!(!is_pseudonym(bad), "{bad}");
        }
    }
}
