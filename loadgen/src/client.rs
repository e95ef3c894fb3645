//! The HTTP side: one API call as data ([`Call`]), user tokens, and the answer reduced
//! to what the load tester needs ([`Answer`]: status, error code, JSON body).
//!
//! Calls go out over hyper's pooled HTTP/1 client, not reqwest: the load generator shares
//! the machine with the server it measures, and reqwest's per-call URL parsing, redirect
//! policy and request building cost about as much CPU as everything else it does per call.
//! The target is parsed once ([`Client::new`]), each call's URI is built from its path, and
//! authorization headers are made once per user. reqwest stays for the operator's long
//! line-by-line reads, which are not on the hot path.

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use jsonwebtoken::{EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Who a call is sent as.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Auth {
    /// No token (public reads).
    None,
    /// A user token whose `sub` is this user id.
    User(String),
    /// The admin key of this tenant.
    Admin(String),
    /// The operator key.
    Operator,
}

/// One HTTP request, independent of any connection: what the request log records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Call {
    pub method: String,
    /// Path and query, e.g. `/v1/events/ev_3/holds`.
    pub path: String,
    pub auth: Auth,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

impl Call {
    pub fn get(path: impl Into<String>, auth: Auth) -> Call {
        Call {
            method: "GET".into(),
            path: path.into(),
            auth,
            idempotency_key: None,
            body: None,
        }
    }

    pub fn post(path: impl Into<String>, auth: Auth, body: Value) -> Call {
        Call {
            method: "POST".into(),
            path: path.into(),
            auth,
            idempotency_key: None,
            body: Some(body),
        }
    }

    pub fn delete(path: impl Into<String>, auth: Auth) -> Call {
        Call {
            method: "DELETE".into(),
            path: path.into(),
            auth,
            idempotency_key: None,
            body: None,
        }
    }

    /// The route template the server's metrics use (`/v1/holds/{hold_id}/confirm`).
    pub fn route(&self) -> String {
        let mut route = String::with_capacity(self.path.len() + 16);
        self.push_route(&mut route);
        route
    }

    /// `METHOD` and [`Call::route`], as the reports key their answers, into `out` (cleared
    /// first). Perf: the load generator keys every answer by it; a buffer kept by the
    /// caller makes it allocation-free.
    pub fn method_route_into(&self, out: &mut String) {
        out.clear();
        out.push_str(&self.method);
        out.push(' ');
        self.push_route(out);
    }

    fn push_route(&self, route: &mut String) {
        let path = self.path.split('?').next().unwrap_or("");
        let mut parent = "";
        for (index, segment) in path.split('/').enumerate() {
            if index > 0 {
                route.push('/');
            }
            let templated = match parent {
                _ if segment.is_empty() => "",
                "events" => "{event_id}",
                "holds" => "{hold_id}",
                "bookings" => "{booking_id}",
                "waitlist" if index == 3 => "{waitlist_id}",
                _ => segment,
            };
            route.push_str(templated);
            parent = segment;
        }
    }
}

/// What came back.
///
/// Perf: the body is kept as it came and parsed into a JSON [`Value`] only when something
/// asks for the whole of it ([`Answer::body`]: recordings, verification, replays); the
/// load's own bookkeeping reads the few fields it needs with a typed, borrowing decode
/// ([`Answer::decode`]). A `Value` tree per answer was a tenth of the load generator's CPU.
#[derive(Clone, Debug)]
pub struct Answer {
    /// 0 when no HTTP answer came (connection refused, reset, timeout).
    pub status: u16,
    /// `ok` for 2xx, the body's `error.code` otherwise, or `transport` / `timeout`.
    pub code: String,
    /// The body's bytes as they came (empty when no answer came).
    raw: Bytes,
    /// The body as JSON (`Null` when it is not JSON), parsed on first use.
    body: OnceLock<Value>,
}

/// Two answers are equal when their statuses, codes and JSON bodies are.
impl PartialEq for Answer {
    fn eq(&self, other: &Answer) -> bool {
        self.status == other.status && self.code == other.code && self.body() == other.body()
    }
}

/// What an error answer says of itself: `{"error": {"code": ...}}`.
#[derive(Deserialize)]
struct ErrorAnswer<'a> {
    #[serde(borrow)]
    error: ErrorCode<'a>,
}

#[derive(Deserialize)]
struct ErrorCode<'a> {
    #[serde(borrow)]
    code: Cow<'a, str>,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// No HTTP answer came: `code` is `transport` or `timeout`; the body says why, with
    /// the error's causes.
    pub fn unanswered(code: &str, error: &dyn std::error::Error) -> Answer {
        let mut reason = error.to_string();
        let mut cause = error.source();
        while let Some(source) = cause {
            reason.push_str(": ");
            reason.push_str(&source.to_string());
            cause = source.source();
        }
        Answer {
            status: 0,
            code: code.into(),
            raw: Bytes::new(),
            body: OnceLock::from(Value::String(reason)),
        }
    }

    /// An answer whose body is already JSON (tests, recordings).
    pub fn from_parts(status: u16, body: Value) -> Answer {
        let raw = Bytes::from(serde_json::to_vec(&body).expect("a JSON value serialises"));
        Answer {
            body: OnceLock::from(body),
            ..Answer::from_bytes(status, raw)
        }
    }

    /// An answer as it came over HTTP.
    pub fn from_bytes(status: u16, raw: Bytes) -> Answer {
        let code = if (200..300).contains(&status) {
            "ok".to_string()
        } else {
            serde_json::from_slice::<ErrorAnswer>(&raw).map_or_else(
                |_| format!("http_{status}"),
                |answer| answer.error.code.into_owned(),
            )
        };
        Answer {
            status,
            code,
            raw,
            body: OnceLock::new(),
        }
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn body(&self) -> &Value {
        self.body
            .get_or_init(|| serde_json::from_slice(&self.raw).unwrap_or(Value::Null))
    }

    pub fn into_body(self) -> Value {
        self.body();
        self.body.into_inner().expect("parsed just above")
    }

    /// The fields of the body that `T` names, read without building the whole JSON tree;
    /// `None` when the body does not have `T`'s shape.
    pub fn decode<'a, T: Deserialize<'a>>(&'a self) -> Option<T> {
        match self.body.get() {
            Some(body) => T::deserialize(body).ok(),
            None => serde_json::from_slice(&self.raw).ok(),
        }
    }

    pub fn text(&self, pointer: &str) -> Option<&str> {
        self.body().pointer(pointer).and_then(Value::as_str)
    }
}

/// Secrets to authenticate with (development defaults from `config/default.toml`).
#[derive(Clone, Debug)]
pub struct Credentials {
    pub user_token_secret: String,
    /// (tenant, admin key); calls as `Auth::Admin(tenant)` use the matching key.
    pub admin_keys: Vec<(String, String)>,
    pub operator_key: Option<String>,
}

impl Default for Credentials {
    fn default() -> Self {
        Credentials {
            user_token_secret: "demo-user-secret".into(),
            admin_keys: vec![("demo".into(), "demo-admin-key".into())],
            operator_key: Some("demo-operator-key".into()),
        }
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    iat: u64,
    exp: u64,
}

/// Mints HS256 user tokens and caches each user's `Authorization` header (a cheap,
/// reference-counted clone per call).
pub struct Tokens {
    key: EncodingKey,
    /// The numbered users' tokens ([`Tokens::mint_numbered`]): `<prefix><n>`'s at `n - 1`,
    /// found without a lock or a look-up of the name. The look-up of one of 200,000 names
    /// in the map below was 5-6% of the load generator's CPU under the hold + confirm
    /// load (cache misses on the table, the name and the value; BENCHMARKS.md, session 36).
    numbered: std::sync::OnceLock<(String, Vec<HeaderValue>)>,
    /// Every other user's, minted on first use.
    cache: Mutex<HashMap<String, HeaderValue, foldhash::fast::FixedState>>,
}

/// Tokens stay valid this long (a run is bounded to an hour).
const TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3_600);

impl Tokens {
    pub fn new(secret: &str) -> Tokens {
        Tokens {
            key: EncodingKey::from_secret(secret.as_bytes()),
            numbered: std::sync::OnceLock::new(),
            cache: Mutex::new(HashMap::default()),
        }
    }

    /// Mints the tokens of the users `<prefix>1` to `<prefix><count>` now (a scenario's
    /// users), kept by number. Once per `Tokens`; a second call mints into the map.
    pub fn mint_numbered(&self, prefix: &str, count: u64) {
        if self.numbered.get().is_some() {
            return self.mint((1..=count).map(|number| format!("{prefix}{number}")));
        }
        let tokens = (1..=count)
            .map(|number| self.mint_one(&format!("{prefix}{number}")))
            .collect();
        let _ = self.numbered.set((prefix.to_string(), tokens));
    }

    /// A numbered user's token, if `user` is one.
    fn numbered(&self, user: &str) -> Option<HeaderValue> {
        let (prefix, tokens) = self.numbered.get()?;
        let digits = user.strip_prefix(prefix.as_str())?;
        // `<prefix>01` is not user 1: only the canonical spelling is numbered.
        if digits.starts_with('0') || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
            return None;
        }
        let number: usize = digits.parse().ok()?;
        tokens.get(number.checked_sub(1)?).cloned()
    }

    /// Mints and caches the tokens of `users` now (those not cached yet), so that a run
    /// does not sign them while it measures: a real crowd's tokens come from its identity
    /// provider, not from the clients' CPU.
    pub fn mint(&self, users: impl IntoIterator<Item = String>) {
        for user in users {
            self.authorization(&user);
        }
    }

    /// `Bearer <token>` for `user`, minted on first use.
    pub fn authorization(&self, user: &str) -> HeaderValue {
        if let Some(authorization) = self.numbered(user) {
            return authorization;
        }
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(authorization) = cache.get(user) {
            return authorization.clone();
        }
        let authorization = self.mint_one(user);
        cache.insert(user.to_string(), authorization.clone());
        authorization
    }

    /// A fresh token for `user`, as its `Authorization` header.
    fn mint_one(&self, user: &str) -> HeaderValue {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = Claims {
            sub: user,
            iat: now,
            exp: now + TOKEN_LIFETIME.as_secs(),
        };
        let token = jsonwebtoken::encode(&Header::default(), &claims, &self.key)
            .expect("HS256 signing cannot fail");
        bearer(&token).expect("a JWT is printable ASCII")
    }
}

/// `Bearer <secret>` as a header value; `None` when the secret cannot be sent in a header.
fn bearer(secret: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {secret}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// A target parsed once: every call's URI is built from it and the call's path.
#[derive(Clone, Debug)]
struct Base {
    /// The URL as given, without a trailing `/` (reports and request logs name it).
    text: String,
    scheme: Scheme,
    authority: Authority,
    /// A path the API is mounted under, without a trailing `/` (usually empty).
    path_prefix: String,
}

impl Base {
    fn parse(target: &str) -> Result<Base, TargetError> {
        let invalid = || TargetError::Invalid(target.to_string());
        let text = loopback_target(target)?
            .as_str()
            .trim_end_matches('/')
            .to_string();
        let uri: Uri = text.parse().map_err(|_| invalid())?;
        Ok(Base {
            scheme: uri.scheme().cloned().ok_or_else(invalid)?,
            authority: uri.authority().cloned().ok_or_else(invalid)?,
            path_prefix: uri.path().trim_end_matches('/').to_string(),
            text,
        })
    }

    /// The URI of `path` (path and query) on this target.
    fn uri(&self, path: &str) -> Result<Uri, http::Error> {
        let path_and_query = if self.path_prefix.is_empty() {
            PathAndQuery::try_from(path)?
        } else {
            PathAndQuery::try_from(format!("{}{path}", self.path_prefix))?
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("{0:?} is not a valid http:// URL")]
    Invalid(String),
    #[error("refusing to load {0}: load tests only target loopback addresses (127.0.0.0/8, ::1, localhost)")]
    NotLoopback(String),
}

/// Parses a target base URL and refuses anything but a loopback address.
pub fn loopback_target(url: &str) -> Result<reqwest::Url, TargetError> {
    let parsed = reqwest::Url::parse(url).map_err(|_| TargetError::Invalid(url.to_string()))?;
    if parsed.scheme() != "http" {
        return Err(TargetError::Invalid(url.to_string()));
    }
    let host = parsed.host_str().unwrap_or("");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback());
    if !loopback {
        return Err(TargetError::NotLoopback(url.to_string()));
    }
    Ok(parsed)
}

/// The longest a [`Client::get_operator_lines`] read may take.
const LINES_TIMEOUT: Duration = Duration::from_secs(600);

/// Sends [`Call`]s to one loopback server.
pub struct Client {
    /// The hot path: pooled keep-alive connections, no redirects (the API never redirects).
    http: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
    /// The operator's long line-by-line reads and `/metrics`.
    http_reqwest: reqwest::Client,
    /// How long one call may take, from sending to its whole answer.
    timeout: Duration,
    base: Base,
    /// Where operator calls go when the engine is not behind the target (Kafka mode: the
    /// `boxoffice engine` operator endpoint); `None` sends them to `base`.
    operator_base: Option<Base>,
    tokens: Tokens,
    /// `Authorization` of each tenant's admin key, in `credentials.admin_keys` order.
    admin_authorizations: Vec<(String, Option<HeaderValue>)>,
    operator_authorization: Option<HeaderValue>,
    credentials: Credentials,
}

/// Idle connections kept per host: one per closed-loop user and then some.
const POOL_IDLE_PER_HOST_MAX: usize = 4_096;

impl Client {
    pub fn new(
        target: &str,
        credentials: Credentials,
        timeout: Duration,
    ) -> Result<Client, TargetError> {
        let base = Base::parse(target)?;
        let http_reqwest = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(POOL_IDLE_PER_HOST_MAX)
            .tcp_nodelay(true)
            .no_proxy()
            .build()
            .expect("a plain HTTP client always builds");
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(POOL_IDLE_PER_HOST_MAX)
            .build(connector);
        let admin_authorizations = credentials
            .admin_keys
            .iter()
            .map(|(tenant, key)| (tenant.clone(), bearer(key)))
            .collect();
        let operator_authorization = credentials.operator_key.as_deref().and_then(bearer);
        Ok(Client {
            http,
            http_reqwest,
            timeout,
            base,
            operator_base: None,
            tokens: Tokens::new(&credentials.user_token_secret),
            admin_authorizations,
            operator_authorization,
            credentials,
        })
    }

    pub fn base(&self) -> &str {
        &self.base.text
    }

    /// Sends operator calls (`Auth::Operator`: the engine's status) to `target` instead of
    /// the ingress: in Kafka mode the engine runs in its own process with its own operator
    /// endpoint (`boxoffice engine --operator-listen`).
    pub fn with_operator_target(mut self, target: &str) -> Result<Client, TargetError> {
        self.operator_base = Some(Base::parse(target)?);
        Ok(self)
    }

    /// The target a call goes to.
    fn base_for(&self, call: &Call) -> &Base {
        match (&call.auth, &self.operator_base) {
            (Auth::Operator, Some(operator_base)) => operator_base,
            _ => &self.base,
        }
    }

    /// The `Authorization` header a call carries, if any.
    fn authorization(&self, auth: &Auth) -> Option<HeaderValue> {
        match auth {
            Auth::None => None,
            Auth::User(user) => Some(self.tokens.authorization(user)),
            Auth::Admin(tenant) => self
                .admin_authorizations
                .iter()
                .find(|(name, _)| name == tenant)
                .or(self.admin_authorizations.first())
                .and_then(|(_, authorization)| authorization.clone()),
            Auth::Operator => self.operator_authorization.clone(),
        }
    }

    /// Mints the user tokens of `users` ahead of a run ([`Tokens::mint`]).
    /// Mints the tokens of the users `<prefix>1` to `<prefix><count>` ahead of a run
    /// ([`Tokens::mint_numbered`]).
    pub fn mint_numbered_user_tokens(&self, prefix: &str, count: u64) {
        self.tokens.mint_numbered(prefix, count);
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// Sends one call; never fails: transport errors become an [`Answer`] with status 0.
    pub async fn send(&self, call: &Call) -> Answer {
        match tokio::time::timeout(self.timeout, self.exchange(call)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(error)) => Answer::unanswered("transport", &*error),
            Err(elapsed) => Answer::unanswered("timeout", &elapsed),
        }
    }

    /// One request and its whole answer.
    async fn exchange(
        &self,
        call: &Call,
    ) -> Result<Answer, Box<dyn std::error::Error + Send + Sync>> {
        // A recorded call with a method HTTP does not allow is an error, never silently a GET.
        let method = Method::from_bytes(call.method.as_bytes())?;
        let mut request = http::Request::builder()
            .method(method)
            .uri(self.base_for(call).uri(&call.path)?);
        if let Some(authorization) = self.authorization(&call.auth) {
            request = request.header(AUTHORIZATION, authorization);
        }
        if let Some(key) = &call.idempotency_key {
            request = request.header("Idempotency-Key", key.as_str());
        }
        let body = match &call.body {
            Some(body) => {
                request =
                    request.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                Bytes::from(serde_json::to_vec(body)?)
            }
            None => Bytes::new(),
        };
        let response = self.http.request(request.body(Full::new(body))?).await?;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok(Answer::from_bytes(status, bytes))
    }

    /// A GET with the operator key answered as lines (`application/x-ndjson`), handed to
    /// `line` one by one as they arrive, without a line break; a `line` error stops the
    /// read. The body is not held whole (a server's requests log can be large).
    pub async fn get_operator_lines(
        &self,
        path: &str,
        mut line: impl FnMut(&[u8]) -> Result<(), String>,
    ) -> Result<(), String> {
        let call = Call::get(path, Auth::Operator);
        // A long log takes longer than one API call may: the read has its own bound.
        let mut request = self
            .http_reqwest
            .get(format!("{}{}", self.base_for(&call).text, path))
            .timeout(LINES_TIMEOUT);
        if let Some(key) = &self.credentials.operator_key {
            request = request.bearer_auth(key);
        }
        let mut response = request
            .send()
            .await
            .map_err(|error| format!("GET {path}: {error}"))?;
        if !response.status().is_success() {
            let status = response.status().as_u16();
            let body = response.bytes().await.unwrap_or_default();
            let answer = Answer::from_bytes(status, body);
            return Err(format!("GET {path}: HTTP {status} {}", answer.code));
        }
        let mut pending = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| format!("GET {path}: the answer was cut short: {error}"))?
        {
            pending.extend_from_slice(&chunk);
            let mut start = 0;
            while let Some(end) = pending[start..].iter().position(|&byte| byte == b'\n') {
                line(&pending[start..start + end])?;
                start += end + 1;
            }
            pending.drain(..start);
        }
        if !pending.is_empty() {
            line(&pending)?;
        }
        Ok(())
    }

    /// A GET answered as text (for `/metrics`).
    pub async fn get_text(&self, path: &str) -> Result<String, reqwest::Error> {
        self.http_reqwest
            .get(format!("{}{}", self.base.text, path))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_reads_its_code_fields_and_body_from_the_bytes_it_came_as() {
        let refused = Answer::from_bytes(
            409,
            Bytes::from_static(br#"{"error":{"code":"seats_unavailable","message":"taken"}}"#),
        );
        assert_eq!(refused.code, "seats_unavailable");
        let not_json = Answer::from_bytes(502, Bytes::from_static(b"Bad Gateway"));
        assert_eq!(
            (not_json.code.as_str(), not_json.body()),
            ("http_502", &Value::Null)
        );

        #[derive(Deserialize)]
        struct Hold<'a> {
            hold_id: &'a str,
            quantity: u64,
        }
        let raw = br#"{"hold_id":"h_7","quantity":2,"seats":["A-1-1","A-1-2"]}"#;
        let held = Answer::from_bytes(201, Bytes::from_static(raw));
        let hold = held.decode::<Hold>().expect("the hold's fields");
        assert_eq!(
            (held.code.as_str(), hold.hold_id, hold.quantity),
            ("ok", "h_7", 2)
        );
        assert!(held.decode::<Vec<u64>>().is_none(), "another shape is None");
        // The same answer built from its JSON compares equal, parsed or not.
        let value: Value = serde_json::from_slice(raw).unwrap();
        assert_eq!(held, Answer::from_parts(201, value.clone()));
        assert_eq!(held.text("/seats/1"), Some("A-1-2"));
        assert_eq!(held.into_body(), value);
        assert_ne!(
            Answer::from_bytes(201, Bytes::from_static(br#"{"hold_id":"h_8"}"#)),
            Answer::from_bytes(201, Bytes::from_static(br#"{"hold_id":"h_9"}"#))
        );
    }

    fn credentials() -> Credentials {
        Credentials {
            user_token_secret: "secret".into(),
            admin_keys: vec![("demo".into(), "admin".into())],
            operator_key: Some("operator".into()),
        }
    }

    /// A client of `target` with the test credentials.
    fn client_of(target: &str) -> Client {
        Client::new(target, credentials(), Duration::from_secs(1)).unwrap()
    }

    #[test]
    fn routes_are_the_server_s_templates() {
        let check = |path: &str, expected: &str| {
            assert_eq!(Call::get(path, Auth::None).route(), expected, "{path}");
        };
        check("/v1/events/ev_3/holds", "/v1/events/{event_id}/holds");
        check("/v1/holds/h_1/confirm", "/v1/holds/{hold_id}/confirm");
        check("/v1/bookings/b_2?x=1", "/v1/bookings/{booking_id}");
        check("/v1/waitlist/w_4", "/v1/waitlist/{waitlist_id}");
        check(
            "/v1/events/ev_1/waitlist/w_4",
            "/v1/events/{event_id}/waitlist/w_4",
        );
        check("/healthz", "/healthz");
        let mut buffer = String::from("left over");
        Call::post("/v1/holds/h_1/confirm", Auth::None, Value::Null).method_route_into(&mut buffer);
        assert_eq!(buffer, "POST /v1/holds/{hold_id}/confirm");
        check("/", "/");
    }

    #[test]
    fn target_paths_are_kept_in_call_uris() {
        let client = client_of("http://127.0.0.1:8080/api/");
        assert_eq!(client.base(), "http://127.0.0.1:8080/api");
        assert_eq!(
            client.base.uri("/v1/events?limit=2").unwrap().to_string(),
            "http://127.0.0.1:8080/api/v1/events?limit=2"
        );
        let client = client_of("http://localhost:8080");
        assert_eq!(
            client.base.uri("/healthz").unwrap().to_string(),
            "http://localhost:8080/healthz"
        );
    }

    #[test]
    fn authorizations_follow_the_call_s_auth() {
        let client = client_of("http://127.0.0.1:8080");
        assert_eq!(client.authorization(&Auth::None), None);
        assert_eq!(
            client.authorization(&Auth::Admin("demo".into())).unwrap(),
            "Bearer admin"
        );
        assert_eq!(
            client.authorization(&Auth::Admin("other".into())).unwrap(),
            "Bearer admin",
            "an unknown tenant uses the first key"
        );
        assert_eq!(
            client.authorization(&Auth::Operator).unwrap(),
            "Bearer operator"
        );
        let user = client.authorization(&Auth::User("u_1".into())).unwrap();
        assert!(user.to_str().unwrap().starts_with("Bearer ey"));
        assert_eq!(
            client.authorization(&Auth::User("u_1".into())).unwrap(),
            user,
            "one token per user"
        );
    }

    /// The token a user's `sub` names, as the server reads it (signature not checked).
    fn subject(authorization: &HeaderValue) -> String {
        let token = authorization
            .to_str()
            .unwrap()
            .strip_prefix("Bearer ")
            .unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.insecure_disable_signature_validation();
        let claims = jsonwebtoken::decode::<serde_json::Value>(
            token,
            &jsonwebtoken::DecodingKey::from_secret(b""),
            &validation,
        )
        .unwrap()
        .claims;
        claims["sub"].as_str().unwrap().to_string()
    }

    #[test]
    fn numbered_users_get_their_own_minted_token_and_other_names_one_on_first_use() {
        let tokens = Tokens::new("secret");
        tokens.mint_numbered("buyer-", 12);
        for user in ["buyer-1", "buyer-7", "buyer-12"] {
            let token = tokens.authorization(user);
            assert_eq!(subject(&token), user);
            assert_eq!(tokens.authorization(user), token, "the one minted ahead");
        }
        // Past the count, spelt otherwise, or of another prefix: minted on first use.
        for user in [
            "buyer-13", "buyer-0", "buyer-07", "buyer-", "buyer-1x", "seller-1", "b",
        ] {
            let token = tokens.authorization(user);
            assert_eq!(subject(&token), user);
            assert_eq!(tokens.authorization(user), token, "kept once minted");
        }
        // A second numbered set mints into the map.
        tokens.mint_numbered("fan-", 2);
        assert_eq!(subject(&tokens.authorization("fan-2")), "fan-2");
    }

    #[test]
    fn operator_calls_go_to_the_engine_when_it_has_its_own_endpoint() {
        let client = client_of("http://127.0.0.1:8080");
        let status = Call::get("/v1/admin/engine", Auth::Operator);
        let seats = Call::get("/v1/events/ev_0/seats", Auth::None);
        assert_eq!(client.base_for(&status).text, "http://127.0.0.1:8080");
        let client = client
            .with_operator_target("http://127.0.0.1:8081/")
            .unwrap();
        assert_eq!(client.base_for(&status).text, "http://127.0.0.1:8081");
        assert_eq!(client.base_for(&seats).text, "http://127.0.0.1:8080");
        assert!(
            client_of("http://127.0.0.1:8080")
                .with_operator_target("http://example.com:8081")
                .is_err(),
            "only loopback targets"
        );
    }
}
