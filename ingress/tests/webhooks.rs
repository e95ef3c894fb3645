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

/// A worker as `boxoffice effects` runs it: one endpoint of `demo`'s, one message.
struct FakeWorker {
    resent: std::sync::Mutex<Vec<String>>,
}

impl ingress::EffectsControl for FakeWorker {
    fn deliveries(
        &self,
        webhook: &str,
        _limit: usize,
    ) -> Result<Vec<ingress::WebhookDelivery>, String> {
        assert_eq!(webhook, "wh_1");
        Ok(vec![ingress::WebhookDelivery {
            message_id: "msg_0_4_0".into(),
            event_type: "booking.created".into(),
            status: "delivered".into(),
            timestamp: "2030-01-01T00:00:00Z".into(),
            attempts: vec![ingress::WebhookAttempt {
                at: "2030-01-01T00:00:01Z".into(),
                status_code: Some(204),
                error: None,
                latency_ms: 3,
            }],
        }])
    }

    fn resend(&self, _webhook: &str, message_id: &str) -> Result<bool, String> {
        self.resent.lock().unwrap().push(message_id.to_string());
        Ok(message_id == "msg_0_4_0")
    }

    fn metrics_text(&self) -> String {
        "# HELP boxoffice_webhook_outcomes_routed Outcomes.\n# TYPE boxoffice_webhook_outcomes_routed counter\nboxoffice_webhook_outcomes_routed_total 1\n".into()
    }

    fn tenant_of(&self, webhook: &str) -> Option<String> {
        (webhook == "wh_1").then(|| "demo".to_string())
    }
}

/// `boxoffice effects`'s listener (a Kafka-mode ingress has no worker to ask): the delivery
/// log and re-sends for the endpoint's own tenant admin only, at the ingress's paths and in
/// its shapes; `/metrics` is a whole exposition.
#[tokio::test]
async fn the_effects_listener_serves_the_delivery_log_to_the_endpoint_s_admin() {
    let worker = Arc::new(FakeWorker {
        resent: std::sync::Mutex::new(Vec::new()),
    });
    let router = ingress::effects_router(
        config().tenants,
        OPERATOR.into(),
        Arc::clone(&worker) as Arc<dyn ingress::EffectsControl>,
    );
    let log = call(
        &router,
        Method::GET,
        "/v1/admin/webhooks/wh_1/deliveries",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.text);
    assert_eq!(log.body["deliveries"][0]["message_id"], "msg_0_4_0");
    assert_eq!(log.body["deliveries"][0]["attempts"][0]["status_code"], 204);
    for (bearer, webhook, status, reason) in [
        (None, "wh_1", StatusCode::UNAUTHORIZED, "missing_token"),
        (
            Some("nope"),
            "wh_1",
            StatusCode::UNAUTHORIZED,
            "unknown_admin_key",
        ),
        (
            Some(OPERATOR),
            "wh_1",
            StatusCode::FORBIDDEN,
            "tenant_key_required",
        ),
        (
            Some(OTHER_ADMIN),
            "wh_1",
            StatusCode::NOT_FOUND,
            "webhook_not_found",
        ),
        (
            Some(ADMIN),
            "wh_2",
            StatusCode::NOT_FOUND,
            "webhook_not_found",
        ),
    ] {
        let refused = call(
            &router,
            Method::GET,
            &format!("/v1/admin/webhooks/{webhook}/deliveries"),
            bearer,
            None,
        )
        .await;
        assert_eq!(
            (refused.status, refused.reason()),
            (status, reason),
            "{bearer:?} {webhook}"
        );
    }
    let resend = "/v1/admin/webhooks/wh_1/deliveries/msg_0_4_0/resend";
    let refused = call(&router, Method::POST, resend, Some(OTHER_ADMIN), None).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    assert!(
        worker.resent.lock().unwrap().is_empty(),
        "nothing queued for another tenant"
    );
    let resent = call(&router, Method::POST, resend, Some(ADMIN), None).await;
    assert_eq!(resent.status, StatusCode::ACCEPTED, "{}", resent.text);
    assert_eq!(resent.body["message_id"], "msg_0_4_0");
    let unknown = call(
        &router,
        Method::POST,
        "/v1/admin/webhooks/wh_1/deliveries/msg_9_9_9/resend",
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(
        (unknown.status, unknown.reason()),
        (StatusCode::NOT_FOUND, "webhook_message_not_found")
    );
    let metrics = call(&router, Method::GET, "/metrics", None, None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics
            .text
            .ends_with("boxoffice_webhook_outcomes_routed_total 1\n# EOF\n"),
        "{}",
        metrics.text
    );
    let health = call(&router, Method::GET, "/healthz", None, None).await;
    assert_eq!(health.status, StatusCode::OK);
}
