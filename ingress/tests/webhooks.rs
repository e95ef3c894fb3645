//! Webhook endpoints through the admin API (issue "Effects outside, exactly once"): an
//! ingress with a control log, as `serve` and `ingress` always have one. No engine is
//! needed: endpoints live in the control log only.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use engine::control::{encode_control, ControlRecord};
use ingress::{ControlLogs, Ingress, IngressConfig, ShardLogs};
use requestlog::{EmbeddedLog, EmbeddedOptions, LogWriter};
use serde_json::{json, Value};
use std::sync::Arc;

struct WithControl {
    ingress: Option<Ingress>,
    control: Arc<EmbeddedLog>,
    _dir: tempfile::TempDir,
}

impl Drop for WithControl {
    fn drop(&mut self) {
        if let Some(ingress) = self.ingress.take() {
            ingress.stop();
        }
    }
}

impl WithControl {
    fn start(config: IngressConfig) -> WithControl {
        let dir = tempfile::tempdir().unwrap();
        let open = |name: &str| {
            Arc::new(EmbeddedLog::open(dir.path().join(name), EmbeddedOptions::default()).unwrap())
        };
        let (requests, outcomes, control) = (open("requests"), open("outcomes"), open("control"));
        let ingress = Ingress::start_shards(
            config,
            vec![ShardLogs {
                writer: Arc::new(requests.writer()),
                outcomes: Box::new(outcomes.reader()),
                outcomes_log_id: None,
                engine: None,
            }],
            Some(ControlLogs {
                writer: Arc::new(control.writer()),
                reader: Box::new(control.reader()),
            }),
        )
        .unwrap();
        WithControl {
            ingress: Some(ingress),
            control,
            _dir: dir,
        }
    }

    fn router(&self) -> axum::Router {
        self.ingress.as_ref().unwrap().router()
    }

    fn control_end(&self) -> u64 {
        self.control.writer().end_offset().unwrap()
    }
}

fn guarded() -> IngressConfig {
    IngressConfig {
        webhook_private_addresses_allowed: false,
        ..config()
    }
}

fn loopback_allowed() -> IngressConfig {
    IngressConfig {
        webhook_private_addresses_allowed: true,
        ..config()
    }
}

async fn webhooks_of(router: &axum::Router, admin: &str) -> Vec<Value> {
    let listed = call(router, Method::GET, "/v1/admin/webhooks", Some(admin), None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    listed.body.as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_makes_lists_reads_and_deletes_its_endpoints() {
    let ingress = WithControl::start(loopback_allowed());
    let router = ingress.router();
    let made = call(
        &router,
        Method::POST,
        "/v1/admin/webhooks",
        Some(ADMIN),
        Some(json!({"url": "http://127.0.0.1:9/hook", "event_types": ["booking.created", "hold.expired", "booking.created"]})),
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let id = made.body["webhook_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("wh_"), "{id}");
    assert_eq!(
        made.headers["location"].to_str().unwrap(),
        format!("/v1/admin/webhooks/{id}")
    );
    let secret = made.body["secret"].as_str().unwrap();
    let key = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        secret.strip_prefix("whsec_").unwrap(),
    )
    .unwrap();
    assert_eq!(key.len(), engine::webhook::WEBHOOK_SECRET_BYTES);
    assert_eq!(
        (&made.body["event_types"], &made.body["enabled"]),
        (&json!(["booking.created", "hold.expired"]), &json!(true))
    );

    // Read back: the secret is shown once.
    let listed = webhooks_of(&router, ADMIN).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["webhook_id"], json!(id));
    assert_eq!(listed[0].get("secret"), None);
    let one = call(
        &router,
        Method::GET,
        &format!("/v1/admin/webhooks/{id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!((one.status, one.body.get("secret")), (StatusCode::OK, None));
    assert_eq!(one.body["url"], json!("http://127.0.0.1:9/hook"));

    // Another tenant sees nothing of it and cannot touch it.
    assert!(webhooks_of(&router, OTHER_ADMIN).await.is_empty());
    for method in [Method::GET, Method::DELETE] {
        let other = call(
            &router,
            method,
            &format!("/v1/admin/webhooks/{id}"),
            Some(OTHER_ADMIN),
            None,
        )
        .await;
        assert_eq!(
            (other.status, other.reason()),
            (StatusCode::NOT_FOUND, "webhook_not_found")
        );
    }
    let operator = call(
        &router,
        Method::GET,
        "/v1/admin/webhooks",
        Some(OPERATOR),
        None,
    )
    .await;
    assert_eq!(operator.status, StatusCode::FORBIDDEN);

    // No effects worker in this process: the delivery log is not here.
    let deliveries = call(
        &router,
        Method::GET,
        &format!("/v1/admin/webhooks/{id}/deliveries"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(
        (deliveries.status, deliveries.reason()),
        (StatusCode::SERVICE_UNAVAILABLE, "no_effects_worker")
    );

    let deleted = call(
        &router,
        Method::DELETE,
        &format!("/v1/admin/webhooks/{id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    assert!(webhooks_of(&router, ADMIN).await.is_empty());
    let again = call(
        &router,
        Method::DELETE,
        &format!("/v1/admin/webhooks/{id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

/// The effects worker disables an endpoint through the control log; its admin enables it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_endpoint_is_enabled_again_by_its_admin() {
    let ingress = WithControl::start(loopback_allowed());
    let router = ingress.router();
    let made = call(
        &router,
        Method::POST,
        "/v1/admin/webhooks",
        Some(ADMIN),
        Some(json!({"url": "http://localhost:9/hook", "event_types": ["hold.expired"]})),
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let id = made.body["webhook_id"].as_str().unwrap().to_string();
    let disabled_at = ingress
        .control
        .writer()
        .append(vec![encode_control(&ControlRecord::WebhookDisabled {
            tenant: "demo".into(),
            webhook: id.clone(),
            reason: "failing for 24 h: HTTP 500".into(),
        })])
        .unwrap()[0]
        .offset;
    // A creation answers once this ingress applied its record, which comes after.
    let later = call(
        &router,
        Method::POST,
        "/v1/admin/webhooks",
        Some(ADMIN),
        Some(json!({"url": "http://localhost:9/other", "event_types": ["hold.expired"]})),
    )
    .await;
    assert_eq!(later.status, StatusCode::CREATED, "{}", later.text);
    let path = format!("/v1/admin/webhooks/{id}");
    let seen = call(&router, Method::GET, &path, Some(ADMIN), None).await;
    assert_eq!(
        (&seen.body["enabled"], &seen.body["disabled_reason"]),
        (&json!(false), &json!("failing for 24 h: HTTP 500")),
        "after control record {disabled_at}"
    );
    let enabled = call(
        &router,
        Method::POST,
        &format!("{path}/enable"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.text);
    assert_eq!(
        (&enabled.body["enabled"], &enabled.body["disabled_reason"]),
        (&json!(true), &Value::Null)
    );
}

/// Bad input: a clear 4xx naming the field, and nothing recorded in the control log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_endpoints_are_refused_with_nothing_recorded() {
    let ingress = WithControl::start(guarded());
    let router = ingress.router();
    for (body, status, reason, field) in [
        (
            json!({"url": "ftp://example.com/", "event_types": ["hold.expired"]}),
            400,
            "invalid_field",
            "url",
        ),
        (
            json!({"url": "example.com/hook", "event_types": ["hold.expired"]}),
            400,
            "invalid_field",
            "url",
        ),
        (
            json!({"url": "https://user:pw@example.com/", "event_types": ["hold.expired"]}),
            400,
            "invalid_field",
            "url",
        ),
        (
            json!({"url": format!("https://example.com/{}", "a".repeat(2048)), "event_types": ["hold.expired"]}),
            400,
            "invalid_field",
            "url",
        ),
        (
            json!({"url": "https://example.com/", "event_types": []}),
            400,
            "invalid_field",
            "event_types",
        ),
        (
            json!({"url": "https://example.com/", "event_types": ["booking.made"]}),
            400,
            "invalid_field",
            "event_types",
        ),
        (
            json!({"url": "https://example.com/"}),
            400,
            "invalid_field",
            "event_types",
        ),
        (
            json!({"url": "https://example.com/", "event_types": ["hold.expired"], "secret": "x"}),
            400,
            "invalid_field",
            "secret",
        ),
        // The SSRF guard: loopback, private, link-local (cloud metadata), by literal or name.
        (
            json!({"url": "http://127.0.0.1:8080/", "event_types": ["hold.expired"]}),
            400,
            "webhook_address_private",
            "url",
        ),
        (
            json!({"url": "http://[::1]/", "event_types": ["hold.expired"]}),
            400,
            "webhook_address_private",
            "url",
        ),
        (
            json!({"url": "http://10.0.0.7/", "event_types": ["hold.expired"]}),
            400,
            "webhook_address_private",
            "url",
        ),
        (
            json!({"url": "http://169.254.169.254/latest/meta-data", "event_types": ["hold.expired"]}),
            400,
            "webhook_address_private",
            "url",
        ),
        (
            json!({"url": "http://localhost:9/", "event_types": ["hold.expired"]}),
            400,
            "webhook_address_private",
            "url",
        ),
        // A host that cannot resolve (RFC 6761 reserves `.invalid`).
        (
            json!({"url": "https://no-such-host.invalid/hook", "event_types": ["hold.expired"]}),
            400,
            "webhook_url_unreachable",
            "url",
        ),
    ] {
        let refused = call(
            &router,
            Method::POST,
            "/v1/admin/webhooks",
            Some(ADMIN),
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            (refused.status.as_u16(), refused.reason(), refused.field()),
            (status, reason, field),
            "{body}: {}",
            refused.text
        );
    }
    assert_eq!(ingress.control_end(), 0, "nothing reached the control log");
    assert!(webhooks_of(&router, ADMIN).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_has_at_most_its_cap_of_endpoints() {
    let ingress = WithControl::start(guarded());
    let router = ingress.router();
    let body = json!({"url": "http://93.184.216.34/hook", "event_types": ["booking.created"]});
    for _ in 0..engine::webhook::WEBHOOKS_PER_TENANT_MAX {
        let made = call(
            &router,
            Method::POST,
            "/v1/admin/webhooks",
            Some(ADMIN),
            Some(body.clone()),
        )
        .await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    }
    let end = ingress.control_end();
    let refused = call(
        &router,
        Method::POST,
        "/v1/admin/webhooks",
        Some(ADMIN),
        Some(body.clone()),
    )
    .await;
    assert_eq!(
        (
            refused.status,
            refused.reason(),
            &refused.body["error"]["details"]["max"]
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "webhooks_per_tenant_max",
            &json!(engine::webhook::WEBHOOKS_PER_TENANT_MAX)
        ),
        "{}",
        refused.text
    );
    assert_eq!(ingress.control_end(), end, "nothing recorded");
    assert_eq!(
        webhooks_of(&router, ADMIN).await.len(),
        engine::webhook::WEBHOOKS_PER_TENANT_MAX
    );
    // The cap is per tenant.
    let other = call(
        &router,
        Method::POST,
        "/v1/admin/webhooks",
        Some(OTHER_ADMIN),
        Some(body),
    )
    .await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.text);
}
