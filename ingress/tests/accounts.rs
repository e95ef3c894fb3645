//! Organiser accounts by API (issue "Discovery like a real box office, and organiser
//! accounts by API"): tenants made and suspended by the operator, API keys with roles,
//! rotated and revoked, tenants' own user-token keys, isolation between tenants, two
//! ingresses over one control log, and an ingress behind its control log refusing tenant
//! keys. Ingresses with an engine and a control log, as `serve` and `ingress` have.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use engine::control::{encode_control, ControlRecord};
use ingress::{ControlLogs, Ingress, IngressConfig, ShardLogs};
use requestlog::{EmbeddedLog, EmbeddedOptions, LogError, LogReader, LogRecord, LogWriter};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An Ed25519 key pair for a tenant's frontend (generated for these tests only).
const ED25519_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIIp6qe1uUBAOUGaMV/yURzojsEFO0SKyGNzJW8uKxS2t
-----END PRIVATE KEY-----
";
const ED25519_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEANFp9u9QdfRZp4K4DGBVpL8UXDnnDqJmcKEd3cX48+RY=
-----END PUBLIC KEY-----
";

/// A control-log reader a test can stall: while stalled it returns nothing, as an ingress
/// cut off from its control log would. `stalled_polls` counts the polls that returned
/// nothing because of it, so a test knows the stall took effect (a poll already waiting
/// in the log would still return the next record).
struct StallableReader {
    inner: Box<dyn LogReader>,
    stalled: Arc<AtomicBool>,
    stalled_polls: Arc<std::sync::atomic::AtomicU64>,
}

impl LogReader for StallableReader {
    fn seek(&mut self, offset: u64) -> Result<(), LogError> {
        self.inner.seek(offset)
    }
    fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<LogRecord>, LogError> {
        if self.stalled.load(Ordering::Acquire) {
            self.stalled_polls.fetch_add(1, Ordering::AcqRel);
            std::thread::sleep(timeout.min(Duration::from_millis(20)));
            return Ok(Vec::new());
        }
        self.inner.poll(max, timeout)
    }
    fn position(&self) -> u64 {
        self.inner.position()
    }
    fn end_offset(&self) -> Result<u64, LogError> {
        self.inner.end_offset()
    }
}

/// One engine, its two logs and a control log; ingresses over them share all three.
struct Deployment {
    ingresses: Vec<Ingress>,
    engine: Option<runtime::Runtime>,
    requests: Arc<EmbeddedLog>,
    outcomes: Arc<EmbeddedLog>,
    control: Arc<EmbeddedLog>,
    _dir: tempfile::TempDir,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for ingress in self.ingresses.drain(..) {
            ingress.stop();
        }
        if let Some(engine) = self.engine.take() {
            let _ = engine.shutdown();
        }
    }
}

impl Deployment {
    fn start() -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        let open = |name: &str| {
            Arc::new(EmbeddedLog::open(dir.path().join(name), EmbeddedOptions::default()).unwrap())
        };
        let (requests, outcomes, control) = (open("requests"), open("outcomes"), open("control"));
        let engine = start_runtime(requests.clone(), outcomes.clone(), engine_config());
        Deployment {
            ingresses: Vec::new(),
            engine: Some(engine),
            requests,
            outcomes,
            control,
            _dir: dir,
        }
    }

    /// Another ingress; `stalled` stalls its control follower while set.
    fn ingress(&mut self, config: IngressConfig, stalled: Arc<AtomicBool>) -> axum::Router {
        self.ingress_counting(config, stalled, Arc::default())
    }

    fn ingress_counting(
        &mut self,
        config: IngressConfig,
        stalled: Arc<AtomicBool>,
        stalled_polls: Arc<std::sync::atomic::AtomicU64>,
    ) -> axum::Router {
        let ingress = Ingress::start_shards(
            config,
            vec![ShardLogs {
                writer: Arc::new(self.requests.writer()),
                outcomes: Box::new(self.outcomes.reader()),
                outcomes_log_id: None,
                engine: None,
            }],
            Some(ControlLogs {
                writer: Arc::new(self.control.writer()),
                reader: Box::new(StallableReader {
                    inner: Box::new(self.control.reader()),
                    stalled,
                    stalled_polls,
                }),
            }),
        )
        .unwrap();
        let router = ingress.router();
        self.ingresses.push(ingress);
        router
    }
}

fn one() -> (Deployment, axum::Router) {
    let mut deployment = Deployment::start();
    let mut config = config();
    // Webhooks to a local address, as in development.
    config.webhook_private_addresses_allowed = true;
    let router = deployment.ingress(config, Arc::new(AtomicBool::new(false)));
    (deployment, router)
}

/// Polls `check` until it holds or 30 s pass (the other ingress applies the control log
/// on its own thread).
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn make_tenant(router: &axum::Router, tenant: &str) -> String {
    let made = call(
        router,
        Method::POST,
        "/v1/operator/tenants",
        Some(OPERATOR),
        Some(json!({"tenant_id": tenant, "name": format!("{tenant} concerts")})),
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    made.body["admin_key"]["secret"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn make_key(router: &axum::Router, admin: &str, role: &str) -> (String, String) {
    let made = call(
        router,
        Method::POST,
        "/v1/admin/keys",
        Some(admin),
        Some(json!({"role": role, "name": format!("a {role} key")})),
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    assert_eq!(made.body["role"], role);
    (
        made.body["key_id"].as_str().unwrap().to_string(),
        made.body["secret"].as_str().unwrap().to_string(),
    )
}

async fn create_event_as(router: &axum::Router, key: &str) -> Answer {
    call(
        router,
        Method::POST,
        "/v1/admin/events",
        Some(key),
        Some(event_body("Show", 4, 600)),
    )
    .await
}

#[tokio::test]
async fn the_operator_makes_tenants_whose_first_key_administers_them() {
    let (_deployment, router) = one();
    let acme = make_tenant(&router, "acme").await;
    let event = create_event_as(&router, &acme).await;
    assert_eq!(event.status, StatusCode::CREATED, "{}", event.text);
    let listed = call(&router, Method::GET, "/v1/admin/events", Some(&acme), None).await;
    assert_eq!(
        listed.body["events"].as_array().map(Vec::len),
        Some(1),
        "{}",
        listed.text
    );

    let tenants = call(
        &router,
        Method::GET,
        "/v1/operator/tenants",
        Some(OPERATOR),
        None,
    )
    .await;
    let summary: Vec<(String, String, u64)> = tenants
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|tenant| {
            (
                tenant["tenant_id"].as_str().unwrap().to_string(),
                tenant["source"].as_str().unwrap().to_string(),
                tenant["api_keys"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("acme".to_string(), "api".to_string(), 1),
            ("demo".to_string(), "config".to_string(), 0),
            ("other".to_string(), "config".to_string(), 0)
        ]
    );
    assert!(
        tenants.body[0].get("admin_key").is_none(),
        "no secrets in lists"
    );

    // Bad input, duplicates and the wrong keys: clear errors, nothing made.
    for (body, field) in [
        (json!({"tenant_id": "Acme Inc"}), "tenant_id"),
        (json!({"tenant_id": ""}), "tenant_id"),
        (json!({"tenant_id": "x".repeat(65)}), "tenant_id"),
        (json!({"tenant_id": "ok", "name": "n".repeat(201)}), "name"),
        (json!({"tenant_id": "ok", "extra": 1}), "extra"),
    ] {
        let refused = call(
            &router,
            Method::POST,
            "/v1/operator/tenants",
            Some(OPERATOR),
            Some(body),
        )
        .await;
        assert_eq!(
            (refused.status, refused.field()),
            (StatusCode::BAD_REQUEST, field),
            "{}",
            refused.text
        );
    }
    for existing in ["acme", "demo"] {
        let again = call(
            &router,
            Method::POST,
            "/v1/operator/tenants",
            Some(OPERATOR),
            Some(json!({"tenant_id": existing})),
        )
        .await;
        assert_eq!(
            (again.status, again.reason()),
            (StatusCode::CONFLICT, "tenant_exists")
        );
    }
    let as_tenant = call(
        &router,
        Method::GET,
        "/v1/operator/tenants",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(
        (as_tenant.status, as_tenant.reason()),
        (StatusCode::FORBIDDEN, "operator_key_required")
    );
    let unknown = call(
        &router,
        Method::GET,
        "/v1/operator/tenants/ghost",
        Some(OPERATOR),
        None,
    )
    .await;
    assert_eq!(
        (unknown.status, unknown.reason()),
        (StatusCode::NOT_FOUND, "tenant_not_found")
    );
    let tenants_after = call(
        &router,
        Method::GET,
        "/v1/operator/tenants",
        Some(OPERATOR),
        None,
    )
    .await;
    assert_eq!(tenants_after.body.as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn roles_limit_what_a_key_does() {
    let (_deployment, router) = one();
    let (_, checkin) = make_key(&router, ADMIN, "checkin").await;
    let (_, reports) = make_key(&router, ADMIN, "reports").await;
    let event = create_event(&router, event_body("Show", 4, 600)).await;

    // A checkin key cannot create events, nor read them, nor make keys.
    for (method, uri, body) in [
        (
            Method::POST,
            "/v1/admin/events".to_string(),
            Some(event_body("No", 4, 600)),
        ),
        (Method::GET, format!("/v1/admin/events/{event}"), None),
        (
            Method::POST,
            "/v1/admin/keys".to_string(),
            Some(json!({"role": "admin"})),
        ),
    ] {
        let refused = call(&router, method, &uri, Some(&checkin), body).await;
        assert_eq!(
            (
                refused.status,
                refused.reason(),
                refused.body["error"]["details"]["role"].as_str()
            ),
            (StatusCode::FORBIDDEN, "key_role_forbidden", Some("checkin")),
            "{uri}: {}",
            refused.text
        );
    }
    // ...but it checks a real ticket in.
    let alice = token("alice");
    let hold = call(
        &router,
        Method::POST,
        &format!("/v1/events/{event}/holds"),
        Some(&alice),
        Some(json!({"seats": ["A-1-1"]})),
    )
    .await;
    assert_eq!(hold.status, StatusCode::CREATED, "{}", hold.text);
    let booked = call(
        &router,
        Method::POST,
        &format!(
            "/v1/holds/{}/confirm",
            hold.body["hold_id"].as_str().unwrap()
        ),
        Some(&alice),
        Some(json!({"payment_ref": "pay_1"})),
    )
    .await;
    let code = booked.body["tickets"][0]["code"]
        .as_str()
        .unwrap()
        .to_string();
    let used = call(
        &router,
        Method::POST,
        &format!("/v1/admin/events/{event}/checkin"),
        Some(&checkin),
        Some(json!({"code": code})),
    )
    .await;
    assert_eq!(
        (used.status, used.body["status"].as_str()),
        (StatusCode::OK, Some("used")),
        "{}",
        used.text
    );

    // A reports key reads but changes nothing, and cannot see the keys.
    let read = call(
        &router,
        Method::GET,
        &format!("/v1/admin/events/{event}/attendees"),
        Some(&reports),
        None,
    )
    .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
    for (method, uri, body) in [
        (
            Method::POST,
            "/v1/admin/events".to_string(),
            Some(event_body("No", 4, 600)),
        ),
        (Method::DELETE, format!("/v1/admin/events/{event}"), None),
        (Method::GET, "/v1/admin/keys".to_string(), None),
        (Method::GET, "/v1/admin/user-token-key".to_string(), None),
    ] {
        let refused = call(&router, method, &uri, Some(&reports), body).await;
        assert_eq!(
            (refused.status, refused.reason()),
            (StatusCode::FORBIDDEN, "key_role_forbidden"),
            "{uri}"
        );
    }
    let bad_role = call(
        &router,
        Method::POST,
        "/v1/admin/keys",
        Some(ADMIN),
        Some(json!({"role": "owner"})),
    )
    .await;
    assert_eq!(
        (bad_role.status, bad_role.field()),
        (StatusCode::BAD_REQUEST, "role")
    );
    let keys = call(&router, Method::GET, "/v1/admin/keys", Some(ADMIN), None).await;
    let roles: Vec<&str> = keys
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles.len(), 2, "{}", keys.text);
    assert!(keys
        .body
        .as_array()
        .unwrap()
        .iter()
        .all(|key| key.get("secret").is_none()));
}

#[tokio::test]
async fn a_tenant_never_reads_or_changes_another_tenants_keys_events_or_webhooks() {
    let (_deployment, router) = one();
    let acme = make_tenant(&router, "acme").await;
    let (demo_key, _) = make_key(&router, ADMIN, "reports").await;
    let demo_event = create_event(&router, event_body("Demo show", 4, 600)).await;
    let webhook = call(
        &router,
        Method::POST,
        "/v1/admin/webhooks",
        Some(ADMIN),
        Some(json!({"url": "http://127.0.0.1:9/hook", "event_types": ["booking.created"]})),
    )
    .await;
    assert_eq!(webhook.status, StatusCode::CREATED, "{}", webhook.text);
    let webhook_id = webhook.body["webhook_id"].as_str().unwrap();

    let keys = call(&router, Method::GET, "/v1/admin/keys", Some(&acme), None).await;
    let ids: Vec<&str> = keys
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["key_id"].as_str().unwrap())
        .collect();
    assert!(
        !ids.contains(&demo_key.as_str()) && ids.len() == 1,
        "{ids:?}"
    );
    for (method, uri) in [
        (Method::POST, format!("/v1/admin/keys/{demo_key}/rotate")),
        (Method::DELETE, format!("/v1/admin/keys/{demo_key}")),
        (Method::GET, format!("/v1/admin/events/{demo_event}")),
        (Method::DELETE, format!("/v1/admin/events/{demo_event}")),
        (Method::GET, format!("/v1/admin/webhooks/{webhook_id}")),
        (Method::DELETE, format!("/v1/admin/webhooks/{webhook_id}")),
    ] {
        let refused = call(&router, method, &uri, Some(&acme), None).await;
        assert_eq!(
            refused.status,
            StatusCode::NOT_FOUND,
            "{uri}: {}",
            refused.text
        );
    }
    let webhooks = call(
        &router,
        Method::GET,
        "/v1/admin/webhooks",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(webhooks.body, json!([]));
    // Demo's key and event are untouched.
    let still = call(
        &router,
        Method::GET,
        &format!("/v1/admin/events/{demo_event}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(still.body["status"], "scheduled", "{}", still.text);
    let demo_keys = call(&router, Method::GET, "/v1/admin/keys", Some(ADMIN), None).await;
    assert_eq!(demo_keys.body[0]["key_id"], demo_key.as_str());
}

#[tokio::test]
async fn rotated_and_revoked_keys_are_refused_and_suspension_stops_a_tenant() {
    let (_deployment, router) = one();
    let (key_id, first) = make_key(&router, ADMIN, "admin").await;
    assert_eq!(
        create_event_as(&router, &first).await.status,
        StatusCode::CREATED
    );
    let rotated = call(
        &router,
        Method::POST,
        &format!("/v1/admin/keys/{key_id}/rotate"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(
        (rotated.status, rotated.body["rotated"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{}",
        rotated.text
    );
    let second = rotated.body["secret"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    let old = create_event_as(&router, &first).await;
    assert_eq!(
        (old.status, old.reason()),
        (StatusCode::UNAUTHORIZED, "unknown_admin_key")
    );
    assert_eq!(
        create_event_as(&router, &second).await.status,
        StatusCode::CREATED
    );
    let revoked = call(
        &router,
        Method::DELETE,
        &format!("/v1/admin/keys/{key_id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    assert_eq!(
        create_event_as(&router, &second).await.status,
        StatusCode::UNAUTHORIZED
    );
    let gone = call(
        &router,
        Method::DELETE,
        &format!("/v1/admin/keys/{key_id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(
        (gone.status, gone.reason()),
        (StatusCode::NOT_FOUND, "key_not_found")
    );

    let suspended = call(
        &router,
        Method::POST,
        "/v1/operator/tenants/demo/suspend",
        Some(OPERATOR),
        Some(json!({"reason": "unpaid invoice"})),
    )
    .await;
    assert_eq!(suspended.body["status"], "suspended", "{}", suspended.text);
    let refused = create_event_as(&router, ADMIN).await;
    assert_eq!(
        (refused.status, refused.reason()),
        (StatusCode::FORBIDDEN, "tenant_suspended")
    );
    assert!(refused.text.contains("unpaid invoice"));
    let resumed = call(
        &router,
        Method::POST,
        "/v1/operator/tenants/demo/resume",
        Some(OPERATOR),
        None,
    )
    .await;
    assert_eq!(resumed.body["status"], "active");
    assert_eq!(
        create_event_as(&router, ADMIN).await.status,
        StatusCode::CREATED
    );
}

fn tenant_token(tenant: &str, user: &str) -> String {
    #[derive(serde::Serialize)]
    struct Claims<'a> {
        sub: &'a str,
        iss: &'a str,
        exp: u64,
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
        &Claims {
            sub: user,
            iss: tenant,
            exp: 4_000_000_000,
        },
        &jsonwebtoken::EncodingKey::from_ed_pem(ED25519_PRIVATE.as_bytes()).unwrap(),
    )
    .unwrap()
}

async fn hold(router: &axum::Router, event: &str, bearer: &str) -> Answer {
    call(
        router,
        Method::POST,
        &format!("/v1/events/{event}/holds"),
        Some(bearer),
        Some(json!({"quantity": 1, "category": "Floor"})),
    )
    .await
}

#[tokio::test]
async fn a_tenants_user_tokens_act_on_its_own_events_only() {
    let (_deployment, router) = one();
    let acme = make_tenant(&router, "acme").await;
    let acme_event = create_event_as(&router, &acme).await.body["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    let demo_event = create_event(&router, event_body("Demo", 4, 600)).await;

    // Bad keys: clear 400s naming the field, nothing registered.
    for (body, field) in [
        (json!({"algorithm": "none", "key": "x"}), "algorithm"),
        (json!({"algorithm": "HS256", "key": "too short"}), "key"),
        (json!({"algorithm": "RS256", "key": ED25519_PUBLIC}), "key"),
        (json!({"algorithm": "EdDSA", "key": "not a pem"}), "key"),
    ] {
        let refused = call(
            &router,
            Method::PUT,
            "/v1/admin/user-token-key",
            Some(&acme),
            Some(body),
        )
        .await;
        assert_eq!(
            (refused.status, refused.field()),
            (StatusCode::BAD_REQUEST, field),
            "{}",
            refused.text
        );
    }
    let none = call(
        &router,
        Method::GET,
        "/v1/admin/user-token-key",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(
        (none.status, none.reason()),
        (StatusCode::NOT_FOUND, "user_token_key_not_found")
    );
    // Before the key: acme's token is refused everywhere.
    let early = hold(&router, &acme_event, &tenant_token("acme", "alice")).await;
    assert_eq!(
        (early.status, early.reason()),
        (StatusCode::UNAUTHORIZED, "invalid_token")
    );

    let set = call(
        &router,
        Method::PUT,
        "/v1/admin/user-token-key",
        Some(&acme),
        Some(json!({"algorithm": "EdDSA", "key": ED25519_PUBLIC})),
    )
    .await;
    assert_eq!(
        (set.status, set.body["algorithm"].as_str()),
        (StatusCode::OK, Some("EdDSA")),
        "{}",
        set.text
    );
    assert_eq!(set.body["fingerprint"].as_str().map(str::len), Some(64));
    assert!(!set.text.contains("BEGIN"), "the key is never shown back");

    let acme_alice = tenant_token("acme", "alice");
    let held = hold(&router, &acme_event, &acme_alice).await;
    assert_eq!(held.status, StatusCode::CREATED, "{}", held.text);
    let on_demo = hold(&router, &demo_event, &acme_alice).await;
    assert_eq!(
        (on_demo.status, on_demo.reason()),
        (StatusCode::FORBIDDEN, "user_token_of_another_tenant")
    );
    let deployment_token = token("alice");
    let global_on_acme = hold(&router, &acme_event, &deployment_token).await;
    assert_eq!(
        (global_on_acme.status, global_on_acme.reason()),
        (StatusCode::FORBIDDEN, "tenant_user_token_required")
    );
    assert_eq!(
        hold(&router, &demo_event, &deployment_token).await.status,
        StatusCode::CREATED
    );
    // acme's alice is not the deployment's alice: her hold is hers only.
    let hold_id = held.body["hold_id"].as_str().unwrap();
    let theirs = call(
        &router,
        Method::GET,
        &format!("/v1/holds/{hold_id}"),
        Some(&deployment_token),
        None,
    )
    .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    let mine = call(
        &router,
        Method::GET,
        &format!("/v1/holds/{hold_id}"),
        Some(&acme_alice),
        None,
    )
    .await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.text);
    // Another tenant cannot claim acme's key: a token with iss "other" is refused.
    let claimed = hold(&router, &demo_event, &tenant_token("other", "mallory")).await;
    assert_eq!(claimed.status, StatusCode::UNAUTHORIZED);

    // acme's alice has a pseudonym of acme's scope: the operator erases her by naming it.
    let erase = |body: Value| {
        let router = router.clone();
        async move {
            call(
                &router,
                Method::POST,
                "/v1/operator/users/erase",
                Some(OPERATOR),
                Some(body),
            )
            .await
        }
    };
    let refused = erase(json!({"tenant_id": "acme"})).await;
    assert_eq!(
        (refused.status, refused.field()),
        (StatusCode::BAD_REQUEST, "tenant_id"),
        "{}",
        refused.text
    );
    let ghost = erase(json!({"user_id": "alice", "tenant_id": "ghost"})).await;
    assert_eq!(
        (ghost.status, ghost.reason()),
        (StatusCode::NOT_FOUND, "tenant_not_found")
    );
    let erased = erase(json!({"user_id": "alice", "tenant_id": "acme"})).await;
    assert_eq!(erased.status, StatusCode::OK, "{}", erased.text);
    assert_ne!(
        erased.body["pseudonym"].as_str().unwrap(),
        pseudonym("alice"),
        "not the deployment's alice"
    );
    let erased_hold = call(
        &router,
        Method::GET,
        &format!("/v1/holds/{hold_id}"),
        Some(&acme_alice),
        None,
    )
    .await;
    assert_eq!(
        erased_hold.status,
        StatusCode::NOT_FOUND,
        "she comes back as a new pseudonym"
    );
    let removed = call(
        &router,
        Method::DELETE,
        "/v1/admin/user-token-key",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    assert_eq!(
        hold(&router, &acme_event, &acme_alice).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        hold(&router, &acme_event, &deployment_token).await.status,
        StatusCode::CREATED
    );
}

/// Two ingresses over one control log: a key made on one works on the other once applied
/// there, and a key revoked on one is refused on the other.
#[tokio::test]
async fn a_key_revoked_on_one_ingress_is_refused_on_another() {
    let mut deployment = Deployment::start();
    let first = deployment.ingress(config(), Arc::new(AtomicBool::new(false)));
    let second = deployment.ingress(config(), Arc::new(AtomicBool::new(false)));
    let (key_id, secret) = make_key(&first, ADMIN, "admin").await;
    eventually("the key works on the second ingress", async || {
        call(
            &second,
            Method::GET,
            "/v1/admin/events",
            Some(&secret),
            None,
        )
        .await
        .status
            == StatusCode::OK
    })
    .await;
    let revoked = call(
        &first,
        Method::DELETE,
        &format!("/v1/admin/keys/{key_id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    eventually(
        "the revoked key is refused on the second ingress",
        async || {
            call(
                &second,
                Method::GET,
                "/v1/admin/events",
                Some(&secret),
                None,
            )
            .await
            .status
                == StatusCode::UNAUTHORIZED
        },
    )
    .await;
}

/// An ingress whose control follower is stalled while the log moves on refuses tenant
/// keys (503 control_log_behind) once it is further behind than the bound, keeps serving
/// the operator and users, and takes tenant keys again once it caught up.
#[tokio::test]
async fn an_ingress_behind_its_control_log_refuses_tenant_keys() {
    let mut deployment = Deployment::start();
    let stalled = Arc::new(AtomicBool::new(false));
    let mut config = config();
    config.control_lag_max = Duration::from_millis(300);
    let stalled_polls = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let router = deployment.ingress_counting(config, stalled.clone(), stalled_polls.clone());
    eventually("fresh at start", async || {
        call(&router, Method::GET, "/v1/admin/events", Some(ADMIN), None)
            .await
            .status
            == StatusCode::OK
    })
    .await;
    stalled.store(true, Ordering::Release);
    eventually("the follower is stalled", async || {
        stalled_polls.load(Ordering::Acquire) > 0
    })
    .await;
    // Another ingress writes to the control log meanwhile.
    deployment
        .control
        .writer()
        .append(vec![encode_control(&ControlRecord::TenantCreated {
            tenant: "acme".into(),
            name: String::new(),
        })])
        .unwrap();
    eventually("tenant keys refused while behind", async || {
        let answer = call(&router, Method::GET, "/v1/admin/events", Some(ADMIN), None).await;
        answer.status == StatusCode::SERVICE_UNAVAILABLE && answer.reason() == "control_log_behind"
    })
    .await;
    let operator = call(
        &router,
        Method::GET,
        "/v1/operator/tenants",
        Some(OPERATOR),
        None,
    )
    .await;
    assert_eq!(operator.status, StatusCode::OK);
    let tenants: Vec<Value> = operator.body.as_array().unwrap().clone();
    assert!(
        tenants.iter().all(|tenant| tenant["tenant_id"] != "acme"),
        "the stalled ingress has not applied it"
    );
    stalled.store(false, Ordering::Release);
    eventually("tenant keys taken again once caught up", async || {
        call(&router, Method::GET, "/v1/admin/events", Some(ADMIN), None)
            .await
            .status
            == StatusCode::OK
    })
    .await;
    let caught_up = call(
        &router,
        Method::GET,
        "/v1/operator/tenants/acme",
        Some(OPERATOR),
        None,
    )
    .await;
    assert_eq!(caught_up.status, StatusCode::OK);
}
