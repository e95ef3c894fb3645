//! The HTTP side: one API call as data ([`Call`]), user tokens, and the answer reduced
//! to what the load tester needs ([`Answer`]: status, error code, JSON body).

use jsonwebtoken::{EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
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
        let path = self.path.split('?').next().unwrap_or("");
        let segments: Vec<&str> = path.split('/').collect();
        let mut route = Vec::with_capacity(segments.len());
        for (index, segment) in segments.iter().enumerate() {
            let parent = if index > 0 { segments[index - 1] } else { "" };
            let templated = match parent {
                "events" => "{event_id}",
                "holds" => "{hold_id}",
                "bookings" => "{booking_id}",
                "waitlist" if index == 3 => "{waitlist_id}",
                _ => segment,
            };
            route.push(if segment.is_empty() { "" } else { templated });
        }
        route.join("/")
    }
}

/// What came back.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// 0 when no HTTP answer came (connection refused, reset, timeout).
    pub status: u16,
    /// `ok` for 2xx, the body's `error.code` otherwise, or `transport` / `timeout`.
    pub code: String,
    pub body: Value,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn transport(error: &reqwest::Error) -> Answer {
        let code = if error.is_timeout() {
            "timeout"
        } else {
            "transport"
        };
        Answer {
            status: 0,
            code: code.into(),
            body: Value::String(error.to_string()),
        }
    }

    pub fn from_parts(status: u16, body: Value) -> Answer {
        let code = if (200..300).contains(&status) {
            "ok".to_string()
        } else {
            body.pointer("/error/code")
                .and_then(Value::as_str)
                .map_or_else(|| format!("http_{status}"), str::to_string)
        };
        Answer { status, code, body }
    }

    pub fn text(&self, pointer: &str) -> Option<&str> {
        self.body.pointer(pointer).and_then(Value::as_str)
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

/// Mints HS256 user tokens and caches one per user.
pub struct Tokens {
    key: EncodingKey,
    cache: Mutex<HashMap<String, String>>,
}

/// Tokens stay valid this long (a run is bounded to an hour).
const TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3_600);

impl Tokens {
    pub fn new(secret: &str) -> Tokens {
        Tokens {
            key: EncodingKey::from_secret(secret.as_bytes()),
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn token(&self, user: &str) -> String {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(token) = cache.get(user) {
            return token.clone();
        }
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
        cache.insert(user.to_string(), token.clone());
        token
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
    http: reqwest::Client,
    base: String,
    /// Where operator calls go when the engine is not behind the target (Kafka mode: the
    /// `boxoffice engine` operator endpoint); `None` sends them to `base`.
    operator_base: Option<String>,
    tokens: Tokens,
    credentials: Credentials,
}

impl Client {
    pub fn new(
        target: &str,
        credentials: Credentials,
        timeout: Duration,
    ) -> Result<Client, TargetError> {
        let base = loopback_target(target)?
            .as_str()
            .trim_end_matches('/')
            .to_string();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(4_096)
            .tcp_nodelay(true)
            .no_proxy()
            .build()
            .expect("a plain HTTP client always builds");
        Ok(Client {
            http,
            base,
            operator_base: None,
            tokens: Tokens::new(&credentials.user_token_secret),
            credentials,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends operator calls (`Auth::Operator`: the engine's status) to `target` instead of
    /// the ingress: in Kafka mode the engine runs in its own process with its own operator
    /// endpoint (`boxoffice engine --operator-listen`).
    pub fn with_operator_target(mut self, target: &str) -> Result<Client, TargetError> {
        let base = loopback_target(target)?
            .as_str()
            .trim_end_matches('/')
            .to_string();
        self.operator_base = Some(base);
        Ok(self)
    }

    /// The base URL a call goes to.
    fn base_for(&self, call: &Call) -> &str {
        match (&call.auth, &self.operator_base) {
            (Auth::Operator, Some(operator_base)) => operator_base,
            _ => &self.base,
        }
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// Sends one call; never fails: transport errors become an [`Answer`] with status 0.
    pub async fn send(&self, call: &Call) -> Answer {
        let url = format!("{}{}", self.base_for(call), call.path);
        let method =
            reqwest::Method::from_bytes(call.method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut request = self.http.request(method, url);
        match &call.auth {
            Auth::None => {}
            Auth::User(user) => request = request.bearer_auth(self.tokens.token(user)),
            Auth::Admin(tenant) => {
                let key = self
                    .credentials
                    .admin_keys
                    .iter()
                    .find(|(name, _)| name == tenant)
                    .or(self.credentials.admin_keys.first());
                if let Some((_, key)) = key {
                    request = request.bearer_auth(key);
                }
            }
            Auth::Operator => {
                if let Some(key) = &self.credentials.operator_key {
                    request = request.bearer_auth(key);
                }
            }
        }
        if let Some(key) = &call.idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return Answer::transport(&error),
        };
        let status = response.status().as_u16();
        match response.bytes().await {
            Ok(bytes) => Answer::from_parts(
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            ),
            Err(error) => Answer::transport(&error),
        }
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
            .http
            .get(format!("{}{}", self.base_for(&call), path))
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
            let answer =
                Answer::from_parts(status, serde_json::from_slice(&body).unwrap_or(Value::Null));
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
        self.http
            .get(format!("{}{}", self.base, path))
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

    fn credentials() -> Credentials {
        Credentials {
            user_token_secret: "secret".into(),
            admin_keys: vec![("demo".into(), "admin".into())],
            operator_key: Some("operator".into()),
        }
    }

    #[test]
    fn operator_calls_go_to_the_engine_when_it_has_its_own_endpoint() {
        let client = Client::new(
            "http://127.0.0.1:8080",
            credentials(),
            Duration::from_secs(1),
        )
        .unwrap();
        let status = Call::get("/v1/admin/engine", Auth::Operator);
        let seats = Call::get("/v1/events/ev_0/seats", Auth::None);
        assert_eq!(client.base_for(&status), "http://127.0.0.1:8080");
        let client = client
            .with_operator_target("http://127.0.0.1:8081/")
            .unwrap();
        assert_eq!(client.base_for(&status), "http://127.0.0.1:8081");
        assert_eq!(client.base_for(&seats), "http://127.0.0.1:8080");
        assert!(
            Client::new(
                "http://127.0.0.1:8080",
                credentials(),
                Duration::from_secs(1)
            )
            .unwrap()
            .with_operator_target("http://example.com:8081")
            .is_err(),
            "only loopback targets"
        );
    }
}
