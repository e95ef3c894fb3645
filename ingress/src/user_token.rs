//! The deployment's user tokens (HS256 JWTs under `auth.user_token_secret`), checked
//! here rather than by `jsonwebtoken`, which still checks tenants' tokens (HS256, RS256,
//! EdDSA) and mints tokens.
//!
//! Why not the crate for these: a new token's check runs on the HTTP thread for every new
//! buyer of an on-sale, and `jsonwebtoken::decode` set the HMAC key up on every call,
//! parsed the header into its full `Header` and the claims twice, and `auth` parsed them
//! a third time to find the issuer (BENCHMARKS.md, "Session 54"): a new token took 1.5
//! us, now 0.85 ("Session 55"). Here the key is set up once, the claims are parsed once,
//! borrowed, and the header only for its `alg`. The cryptography is `ring`'s (the HMAC, and its
//! constant-time comparison of the tag); what is ours is the framing, kept to what
//! `jsonwebtoken` 9 accepts with the validation `auth` gave it (`Algorithm::HS256` only,
//! `exp` and `sub` required, 30 s of leeway after `exp`, no audience), and a test compares
//! the two on tokens made to differ in each of those (`the_same_verdicts_as_jsonwebtoken`).
//! One difference, stricter: a token with an `aud` claim of any JSON type is refused
//! (`jsonwebtoken` let an `aud` that is neither a string nor a list of strings through).

use serde::Deserialize;
use std::borrow::Cow;

/// The deployment's HS256 key, set up once.
pub(crate) struct DeploymentKey(ring::hmac::Key);

impl DeploymentKey {
    pub(crate) fn new(secret: &[u8]) -> DeploymentKey {
        DeploymentKey(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret))
    }
}

/// Why a token was refused (shown after "invalid user token: ").
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenError {
    #[error("not a JWT of three base64url parts")]
    Malformed,
    #[error("its header or claims are not the JSON expected: {0}")]
    Json(String),
    #[error("its algorithm is not HS256")]
    Algorithm,
    #[error("its signature does not match")]
    Signature,
    #[error("it has no {0} claim")]
    MissingClaim(&'static str),
    #[error("it has expired")]
    Expired,
    #[error("it names an audience")]
    Audience,
}

/// A token's claims as read before its signature is checked: `iss` chooses the key.
#[derive(Deserialize)]
pub(crate) struct Claims<'a> {
    #[serde(borrow, default)]
    sub: Option<Cow<'a, str>>,
    #[serde(default)]
    exp: Option<u64>,
    #[serde(borrow, default)]
    iss: Option<Cow<'a, str>>,
    // Read for its type only, as `jsonwebtoken` did (an `iat` that is not a number was
    // refused by the claims `auth` parsed).
    #[serde(default)]
    #[allow(dead_code)]
    iat: Option<u64>,
    #[serde(default)]
    aud: Option<serde::de::IgnoredAny>,
}

impl Claims<'_> {
    /// The tenant the token names as its issuer (`None`: the deployment's token).
    pub(crate) fn issuer(&self) -> Option<&str> {
        self.iss.as_deref()
    }
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
}

/// A token split into its parts, its claims parsed (not yet trusted).
pub(crate) struct Parsed<'a> {
    header: &'a str,
    /// `header.payload`: what the signature signs.
    signed: &'a str,
    signature: &'a str,
    pub(crate) claims: Claims<'a>,
}

/// Splits `token` and parses its claims, unverified. The claims borrow from `payload`,
/// the caller's buffer for the decoded bytes.
pub(crate) fn parse<'a>(
    token: &'a str,
    payload: &'a mut Vec<u8>,
) -> Result<Parsed<'a>, TokenError> {
    // As `jsonwebtoken` splits: the signature after the last dot, the payload after the
    // one before (a fourth part stays in the header, whose base64 then fails).
    let (signed, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let (header, encoded_payload) = signed.rsplit_once('.').ok_or(TokenError::Malformed)?;
    *payload = decode_part(encoded_payload)?;
    let payload: &'a Vec<u8> = payload;
    let claims: Claims<'a> =
        serde_json::from_slice(payload).map_err(|error| TokenError::Json(error.to_string()))?;
    Ok(Parsed {
        header,
        signed,
        signature,
        claims,
    })
}

impl<'a> Parsed<'a> {
    /// Checks the header's algorithm, the signature under `key` and the claims at
    /// `now_seconds`; the token's `sub` and `exp`.
    pub(crate) fn verify(
        self,
        key: &DeploymentKey,
        now_seconds: u64,
        leeway_seconds: u64,
    ) -> Result<(Cow<'a, str>, u64), TokenError> {
        let header_bytes = decode_part(self.header)?;
        let header: Header<'_> = serde_json::from_slice(&header_bytes)
            .map_err(|error| TokenError::Json(error.to_string()))?;
        if header.alg != "HS256" {
            return Err(TokenError::Algorithm);
        }
        // The canonical base64url of a 32-byte tag is 43 characters; the decoder refuses
        // padding and non-canonical trailing bits, so one tag has one accepted encoding,
        // as `jsonwebtoken`'s comparison of encoded strings had.
        let tag = decode_part(self.signature).map_err(|_| TokenError::Signature)?;
        ring::hmac::verify(&key.0, self.signed.as_bytes(), &tag)
            .map_err(|_| TokenError::Signature)?;
        let claims = self.claims;
        let exp = claims.exp.ok_or(TokenError::MissingClaim("exp"))?;
        let sub = claims.sub.ok_or(TokenError::MissingClaim("sub"))?;
        if exp < now_seconds.saturating_sub(leeway_seconds) {
            return Err(TokenError::Expired);
        }
        if claims.aud.is_some() {
            return Err(TokenError::Audience);
        }
        Ok((sub, exp))
    }
}

fn decode_part(part: &str) -> Result<Vec<u8>, TokenError> {
    base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, part)
        .map_err(|_| TokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Algorithm, EncodingKey, Validation};

    const SECRET: &str = "the deployment's secret";
    const LEEWAY: u64 = 30;

    /// The test's time: `jsonwebtoken` reads the clock itself, so both take it (the
    /// expiry cases are 5 s from the edge, in case a second passes between the two).
    fn now() -> u64 {
        static NOW: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        *NOW.get_or_init(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        })
    }

    fn b64(bytes: &[u8]) -> String {
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes)
    }

    /// A token of `header` and `claims` (JSON texts), signed with `secret`.
    fn signed(header: &str, claims: &str, secret: &str) -> String {
        let message = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
        let tag = ring::hmac::sign(&key, message.as_bytes());
        format!("{message}.{}", b64(tag.as_ref()))
    }

    /// Ours: the `sub` of a deployment token, or why not (a token naming an issuer is
    /// not the deployment's: `auth` sends it to the tenant's key).
    fn ours(token: &str) -> Result<String, String> {
        let mut payload = Vec::new();
        let parsed = parse(token, &mut payload).map_err(|error| error.to_string())?;
        if parsed.claims.issuer().is_some() {
            return Err("a tenant's".into());
        }
        parsed
            .verify(&DeploymentKey::new(SECRET.as_bytes()), now(), LEEWAY)
            .map(|(sub, _)| sub.into_owned())
            .map_err(|error| error.to_string())
    }

    #[derive(Deserialize)]
    struct CrateClaims {
        sub: String,
        #[allow(dead_code)]
        exp: u64,
        iss: Option<String>,
        #[allow(dead_code)]
        iat: Option<u64>,
    }

    /// The crate with the validation `auth` gave it before, at the same time.
    fn the_crates(token: &str) -> Result<String, String> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = LEEWAY;
        let data = jsonwebtoken::decode::<CrateClaims>(
            token,
            &jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()),
            &validation,
        )
        .map_err(|error| error.to_string())?;
        match data.claims.iss {
            Some(_) => Err("a tenant's".into()),
            None => Ok(data.claims.sub),
        }
    }

    /// Every token below gets the same verdict (accepted with the same `sub`, or refused)
    /// from both.
    #[test]
    fn the_same_verdicts_as_jsonwebtoken() {
        let now = now();
        let hs256 = r#"{"alg":"HS256","typ":"JWT"}"#;
        let good = format!(r#"{{"sub":"alice","exp":{}}}"#, now + 60);
        let valid = signed(hs256, &good, SECRET);
        let mut tampered = valid.clone();
        tampered.pop();
        tampered.push(if valid.ends_with('A') { 'B' } else { 'A' });
        let parts: Vec<&str> = valid.split('.').collect();
        let cases: Vec<(&str, String, bool)> = vec![
            ("valid", valid.clone(), true),
            (
                "an escaped sub",
                signed(
                    hs256,
                    &format!(r#"{{"sub":"al\u0069ce \"x\"","exp":{}}}"#, now + 60),
                    SECRET,
                ),
                true,
            ),
            (
                "header without typ",
                signed(r#"{"alg":"HS256"}"#, &good, SECRET),
                true,
            ),
            (
                "extra claims",
                signed(
                    hs256,
                    &format!(
                        r#"{{"sub":"a","exp":{},"nbf":{},"role":[1,2]}}"#,
                        now + 60,
                        now + 999
                    ),
                    SECRET,
                ),
                true,
            ),
            (
                "within the leeway",
                signed(
                    hs256,
                    &format!(r#"{{"sub":"a","exp":{}}}"#, now - LEEWAY + 5),
                    SECRET,
                ),
                true,
            ),
            (
                "expired",
                signed(
                    hs256,
                    &format!(r#"{{"sub":"a","exp":{}}}"#, now - LEEWAY - 5),
                    SECRET,
                ),
                false,
            ),
            ("another secret", signed(hs256, &good, "another"), false),
            ("tampered signature", tampered, false),
            (
                "claims swapped",
                format!(
                    "{}.{}.{}",
                    parts[0],
                    b64(format!(r#"{{"sub":"mallory","exp":{}}}"#, now + 60).as_bytes()),
                    parts[2]
                ),
                false,
            ),
            ("no signature", format!("{}.{}.", parts[0], parts[1]), false),
            ("padded signature", format!("{valid}="), false),
            ("two parts", format!("{}.{}", parts[0], parts[1]), false),
            ("four parts", format!("{valid}.{}", parts[2]), false),
            (
                "alg none",
                signed(r#"{"alg":"none"}"#, &good, SECRET),
                false,
            ),
            (
                "alg HS384",
                signed(r#"{"alg":"HS384"}"#, &good, SECRET),
                false,
            ),
            (
                "alg RS256",
                signed(r#"{"alg":"RS256"}"#, &good, SECRET),
                false,
            ),
            ("no alg", signed(r#"{"typ":"JWT"}"#, &good, SECRET), false),
            (
                "alg twice",
                signed(r#"{"alg":"HS256","alg":"HS256"}"#, &good, SECRET),
                false,
            ),
            ("header not JSON", signed("alg=HS256", &good, SECRET), false),
            ("no exp", signed(hs256, r#"{"sub":"a"}"#, SECRET), false),
            (
                "no sub",
                signed(hs256, &format!(r#"{{"exp":{}}}"#, now + 60), SECRET),
                false,
            ),
            (
                "exp a string",
                signed(
                    hs256,
                    &format!(r#"{{"sub":"a","exp":"{}"}}"#, now + 60),
                    SECRET,
                ),
                false,
            ),
            (
                "exp a float",
                signed(
                    hs256,
                    &format!(r#"{{"sub":"a","exp":{}.5}}"#, now + 60),
                    SECRET,
                ),
                false,
            ),
            (
                "exp negative",
                signed(hs256, r#"{"sub":"a","exp":-1}"#, SECRET),
                false,
            ),
            (
                "sub a number",
                signed(hs256, &format!(r#"{{"sub":7,"exp":{}}}"#, now + 60), SECRET),
                false,
            ),
            (
                "sub twice",
                signed(
                    hs256,
                    &format!(r#"{{"sub":"a","sub":"b","exp":{}}}"#, now + 60),
                    SECRET,
                ),
                false,
            ),
            (
                "iat a string",
                signed(
                    hs256,
                    &format!(r#"{{"sub":"a","exp":{},"iat":"x"}}"#, now + 60),
                    SECRET,
                ),
                false,
            ),
            (
                "an audience",
                signed(
                    hs256,
                    &format!(r#"{{"sub":"a","exp":{},"aud":"them"}}"#, now + 60),
                    SECRET,
                ),
                false,
            ),
            (
                "audiences",
                signed(
                    hs256,
                    &format!(r#"{{"sub":"a","exp":{},"aud":["them"]}}"#, now + 60),
                    SECRET,
                ),
                false,
            ),
            (
                "an issuer",
                signed(
                    hs256,
                    &format!(r#"{{"sub":"a","exp":{},"iss":"acme"}}"#, now + 60),
                    SECRET,
                ),
                false,
            ),
            (
                "a null issuer",
                signed(
                    hs256,
                    &format!(r#"{{"sub":"a","exp":{},"iss":null}}"#, now + 60),
                    SECRET,
                ),
                true,
            ),
            ("claims not JSON", signed(hs256, "sub=a", SECRET), false),
            ("claims an array", signed(hs256, "[1]", SECRET), false),
            ("not base64", "a.b!.c".to_string(), false),
            ("empty", String::new(), false),
        ];
        for (name, token, accepted) in cases {
            let (ours, crates) = (ours(&token), the_crates(&token));
            assert_eq!(ours.is_ok(), accepted, "{name}: ours {ours:?}");
            assert_eq!(
                ours.is_ok(),
                crates.is_ok(),
                "{name}: ours {ours:?}, the crate's {crates:?}"
            );
            if let (Ok(ours), Ok(crates)) = (&ours, &crates) {
                assert_eq!(ours, crates, "{name}");
            }
        }
        // The one difference: an `aud` that is neither a string nor a list of strings.
        let odd_audience = signed(
            hs256,
            &format!(r#"{{"sub":"a","exp":{},"aud":7}}"#, now + 60),
            SECRET,
        );
        assert_eq!(ours(&odd_audience), Err("it names an audience".to_string()));
        assert!(the_crates(&odd_audience).is_ok());
        // Tokens the crate mints pass.
        let minted = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "bob", "exp": now + 60, "iat": now}),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert_eq!(ours(&minted), Ok("bob".to_string()));
    }
}
