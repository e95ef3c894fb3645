//! The operator router: one for `boxoffice serve` and `boxoffice engine`. It serves a
//! replica's status (`GET /v1/admin/engine`) and promotion (`POST
//! /v1/admin/engine/promote`), in the shapes of the ingress's OpenAPI document
//! (`ingress::EngineStatusResponse`, `ingress::PromoteResponse`) and its error format,
//! with the operator key as a bearer token. `engine` serves it alone on its operator
//! listener, with `/healthz` and the replica's `/metrics` ([`router`]); `serve` merges its
//! engine routes into the ingress's router ([`engine_routes`]), whose health, readiness
//! and metrics are the ingress's.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ingress::{AppError, EngineStatusResponse, PromoteResponse, Reason, SnapshotBody};
use runtime::{EngineStatus, Role, RuntimeError, RuntimeHandle};
use serde_json::json;
use std::sync::Arc;

#[derive(Clone)]
struct OperatorState {
    runtime: RuntimeHandle,
    operator_key: Arc<str>,
}

/// `/v1/admin/engine` and promotion, with their state.
fn routes() -> Router<OperatorState> {
    Router::new()
        .route("/v1/admin/engine", get(status))
        .route("/v1/admin/engine/promote", post(promote))
}

fn state(runtime: RuntimeHandle, operator_key: &str) -> OperatorState {
    OperatorState {
        runtime,
        operator_key: operator_key.into(),
    }
}

/// The operator endpoints of a process that runs an engine next to an ingress (`serve`):
/// merged into the ingress's router.
pub(crate) fn engine_routes(runtime: RuntimeHandle, operator_key: &str) -> Router {
    routes().with_state(state(runtime, operator_key))
}

/// The whole operator listener of `boxoffice engine` (no ingress in its process).
pub(crate) fn router(runtime: RuntimeHandle, operator_key: &str) -> Router {
    routes()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/metrics", get(metrics))
        .with_state(state(runtime, operator_key))
}

/// The operator key as a bearer token, compared in constant time.
fn authorize(headers: &HeaderMap, state: &OperatorState) -> Result<(), AppError> {
    let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
        AppError::unauthorized(
            Reason::MissingToken,
            "send the operator key as `Authorization: Bearer <key>`",
        )
    })?;
    let token = value
        .to_str()
        .ok()
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or_else(|| {
            AppError::unauthorized(
                Reason::MalformedAuthorization,
                "expected Authorization: Bearer <operator key>",
            )
        })?;
    if constant_time_eq(token.trim().as_bytes(), state.operator_key.as_bytes()) {
        Ok(())
    } else {
        Err(AppError::forbidden(
            Reason::OperatorKeyRequired,
            "this endpoint needs the operator key",
        ))
    }
}

fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    left.len() == right.len()
        && left
            .iter()
            .zip(right)
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
}

/// Records the log holds that this replica has not applied yet.
fn lag_records(status: &EngineStatus) -> u64 {
    status
        .log_end_offset
        .saturating_sub(status.applied_offset.map_or(0, |applied| applied + 1))
}

fn role_body(role: Role) -> ingress::EngineRole {
    match role {
        Role::Primary => ingress::EngineRole::Primary,
        Role::Standby => ingress::EngineRole::Standby,
        Role::CatchingUp => ingress::EngineRole::CatchingUp,
    }
}

/// RFC 3339 in UTC, as every time the API answers.
fn format_time(millis: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .ok()
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "9999-12-31T23:59:59Z".to_string())
}

fn status_body(node: &str, status: EngineStatus) -> EngineStatusResponse {
    EngineStatusResponse {
        node: node.to_string(),
        role: role_body(status.role),
        applied_offset: status.applied_offset,
        log_end_offset: status.log_end_offset,
        lag_records: lag_records(&status),
        published_offset: status.published_offset,
        last_snapshot: status.last_snapshot.map(|snapshot| SnapshotBody {
            offset: snapshot.offset,
            at: format_time(snapshot.at_ms),
        }),
        state_hash: status.state_hash,
        state_hash_offset: status.state_hash_offset,
        failure: status.failure,
    }
}

async fn status(
    State(state): State<OperatorState>,
    headers: HeaderMap,
) -> Result<Json<EngineStatusResponse>, AppError> {
    authorize(&headers, &state)?;
    Ok(Json(status_body(
        state.runtime.node(),
        state.runtime.status(),
    )))
}

/// Appends a `Promote` record naming this replica; answers 202 with its offset. The role
/// changes when the replica applies it (poll `GET /v1/admin/engine`).
async fn promote(
    State(state): State<OperatorState>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    authorize(&headers, &state)?;
    let runtime = state.runtime.clone();
    let appended = tokio::task::spawn_blocking(move || runtime.promote())
        .await
        .map_err(AppError::internal)?;
    match appended {
        Ok(offset) => {
            tracing::warn!(
                node = state.runtime.node(),
                offset,
                "promotion requested by the operator"
            );
            let body = PromoteResponse {
                node: state.runtime.node().to_string(),
                promote_offset: offset,
            };
            Ok((StatusCode::ACCEPTED, Json(body)).into_response())
        }
        Err(RuntimeError::PromotionRefused(refused)) => Err(AppError::conflict(
            Reason::PromotionRefused,
            refused.to_string(),
        )),
        Err(failure) => Err(AppError::unavailable(
            Reason::LogNotWritable,
            format!("cannot append the Promote record: {failure}"),
        )),
    }
}

async fn metrics(State(state): State<OperatorState>) -> Response {
    let status = state.runtime.status();
    let gauge = |name: &str, help: &str, value: u64| {
        format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n")
    };
    let offset = |offset: Option<u64>| offset.map_or(0, |offset| offset + 1);
    let text = [
        gauge(
            "boxoffice_engine_primary",
            "1 when this replica publishes outcomes (primary), 0 when standby.",
            u64::from(status.role == Role::Primary),
        ),
        gauge(
            "boxoffice_engine_applied_records",
            "Request offset applied + 1.",
            offset(status.applied_offset),
        ),
        gauge(
            "boxoffice_engine_log_end_offset",
            "The requests log's end offset as last seen.",
            status.log_end_offset,
        ),
        gauge(
            "boxoffice_engine_lag_records",
            "Records in the requests log not applied yet.",
            lag_records(&status),
        ),
        gauge(
            "boxoffice_engine_published_records",
            "Request offset of the last published outcome + 1.",
            offset(status.published_offset),
        ),
        gauge(
            "boxoffice_engine_last_snapshot_records",
            "Request offset covered by the last snapshot + 1.",
            offset(
                status
                    .last_snapshot
                    .as_ref()
                    .map(|snapshot| snapshot.offset),
            ),
        ),
    ]
    .concat();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use requestlog::{EmbeddedLog, EmbeddedOptions};
    use runtime::{Logs, Runtime, RuntimeOptions};
    use serde_json::Value;
    use std::time::Duration;
    use tower::ServiceExt;

    const KEY: &str = "operator-key-for-tests";

    /// A replica on embedded logs in `dir` (a standby needs a primary's logs to follow; here
    /// the log is empty, so a standby just waits).
    fn replica(dir: &std::path::Path, node: &str, role: Role) -> Runtime {
        let open = |name: &str| -> Arc<dyn runtime::OpenLog> {
            Arc::new(EmbeddedLog::open(dir.join(name), EmbeddedOptions::default()).unwrap())
        };
        let options = RuntimeOptions {
            node: node.to_string(),
            role,
            ..RuntimeOptions::new(engine::EngineConfig::default())
        };
        let logs = Logs {
            requests: open("requests"),
            outcomes: open("outcomes"),
        };
        Runtime::start(options, logs, Box::new(snapshotter::MemoryStore::new(1))).unwrap()
    }

    async fn call(
        router: &Router,
        method: &str,
        path: &str,
        key: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(key) = key {
            request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let response = router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn the_operator_key_guards_status_and_promotion() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = replica(dir.path(), "a", Role::Primary);
        let router = router(runtime.handle(), KEY);
        let (status, body) = call(&router, "GET", "/v1/admin/engine", None).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (StatusCode::UNAUTHORIZED, &json!("unauthorized"))
        );
        let (status, body) = call(&router, "GET", "/v1/admin/engine", Some("demo-admin-key")).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (StatusCode::FORBIDDEN, &json!("forbidden"))
        );
        let (status, _) = call(&router, "POST", "/v1/admin/engine/promote", Some("wrong")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = call(&router, "GET", "/healthz", None).await;
        assert_eq!(status, StatusCode::OK);
        runtime.shutdown().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_standby_is_promoted_through_its_own_log_and_a_primary_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = replica(dir.path(), "b", Role::Standby);
        let handle = runtime.handle();
        let (_, settled) = handle.wait_for(Duration::from_secs(30), |status| {
            status.role == Role::Standby
        });
        assert!(settled);
        let router = router(runtime.handle(), KEY);
        let (status, body) = call(&router, "GET", "/v1/admin/engine", Some(KEY)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            (&body["node"], &body["role"], &body["lag_records"]),
            (&json!("b"), &json!("standby"), &json!(0))
        );
        let (status, body) = call(&router, "POST", "/v1/admin/engine/promote", Some(KEY)).await;
        assert_eq!(
            (status, &body["promote_offset"]),
            (StatusCode::ACCEPTED, &json!(0))
        );
        let (_, promoted) = handle.wait_for(Duration::from_secs(30), |status| {
            status.role == Role::Primary && status.published_offset == Some(0)
        });
        assert!(
            promoted,
            "the Promote record made b primary, and it published its outcome"
        );
        let (status, body) = call(&router, "POST", "/v1/admin/engine/promote", Some(KEY)).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (StatusCode::CONFLICT, &json!("conflict"))
        );
        let (status, body) = call(&router, "GET", "/v1/admin/engine", Some(KEY)).await;
        assert_eq!(
            (status, &body["role"], &body["published_offset"]),
            (StatusCode::OK, &json!("primary"), &json!(0))
        );
        let metrics = router
            .clone()
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let text = axum::body::to_bytes(metrics.into_body(), 1 << 20)
            .await
            .unwrap();
        let text = String::from_utf8(text.to_vec()).unwrap();
        assert!(text.contains("boxoffice_engine_primary 1\n"), "{text}");
        assert!(
            text.contains("boxoffice_engine_published_records 1\n"),
            "{text}"
        );
        runtime.shutdown().unwrap();
    }

    /// What the ingress's OpenAPI document says of a schema: its property names, sorted.
    fn documented_properties(schema: &str) -> Vec<String> {
        let document = serde_json::to_value(ingress::openapi_document()).unwrap();
        let mut names: Vec<String> = document["components"]["schemas"][schema]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{schema} is documented"))
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    fn keys(body: &Value) -> Vec<String> {
        let mut names: Vec<String> = body.as_object().unwrap().keys().cloned().collect();
        names.sort();
        names
    }

    /// `serve` (the ingress's router with these engine routes merged in) and `engine` (this
    /// router alone) answer `/v1/admin/engine` and promotion alike, in the documented shape.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serve_and_engine_answer_the_operator_endpoints_from_one_router() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = replica(dir.path(), "a", Role::Primary);
        let handle = runtime.handle();
        let (_, settled) = handle.wait_for(Duration::from_secs(30), |status| {
            status.role == Role::Primary
        });
        assert!(settled);
        let requests: Arc<dyn runtime::OpenLog> = Arc::new(
            EmbeddedLog::open(
                dir.path().join("requests-ingress"),
                EmbeddedOptions::default(),
            )
            .unwrap(),
        );
        struct Running;
        impl ingress::EngineControl for Running {
            fn failure(&self) -> Option<String> {
                None
            }
        }
        let config = ingress::IngressConfig {
            operator_key: KEY.to_string(),
            ..ingress::IngressConfig::default()
        };
        let with_engine = ingress::Ingress::start(
            config.clone(),
            requests.open_writer().unwrap(),
            requests.open_reader().unwrap(),
            Some(Arc::new(Running)),
        )
        .unwrap();
        let serve = with_engine
            .router()
            .merge(engine_routes(handle.clone(), KEY));
        let engine = router(handle.clone(), KEY);

        let (serve_status, serve_body) = call(&serve, "GET", "/v1/admin/engine", Some(KEY)).await;
        let (engine_status, engine_body) =
            call(&engine, "GET", "/v1/admin/engine", Some(KEY)).await;
        assert_eq!(
            (serve_status, engine_status),
            (StatusCode::OK, StatusCode::OK)
        );
        assert_eq!(serve_body, engine_body);
        assert_eq!(
            (&serve_body["node"], &serve_body["role"]),
            (&json!("a"), &json!("primary"))
        );
        assert_eq!(
            keys(&serve_body),
            documented_properties("EngineStatusResponse")
        );
        for router in [&serve, &engine] {
            let (status, body) = call(router, "POST", "/v1/admin/engine/promote", Some(KEY)).await;
            assert_eq!(
                (status, &body["error"]["details"]["reason"]),
                (StatusCode::CONFLICT, &json!("promotion_refused")),
                "{body}"
            );
            let (status, body) = call(router, "GET", "/v1/admin/engine", Some("wrong")).await;
            assert_eq!(
                (status, &body["error"]["details"]["reason"]),
                (StatusCode::FORBIDDEN, &json!("operator_key_required")),
                "{body}"
            );
        }
        with_engine.stop();

        // An ingress without an engine in its process sends the operator elsewhere.
        let alone = ingress::Ingress::start(
            config,
            requests.open_writer().unwrap(),
            requests.open_reader().unwrap(),
            None,
        )
        .unwrap();
        let (status, body) = call(&alone.router(), "GET", "/v1/admin/engine", Some(KEY)).await;
        assert_eq!(
            (status, &body["error"]["details"]["reason"]),
            (StatusCode::SERVICE_UNAVAILABLE, &json!("no_engine")),
            "{body}"
        );
        alone.stop();
        runtime.shutdown().unwrap();
    }

    /// A replica that has just started and replays the log is neither standby nor primary,
    /// and says so; the document lists the word.
    #[test]
    fn a_replica_catching_up_says_so() {
        let status = EngineStatus {
            role: Role::CatchingUp,
            applied_offset: Some(4),
            applied_log_time_ms: Some(1_000),
            log_end_offset: 10,
            published_offset: Some(9),
            last_snapshot: None,
            state_hash: "00".into(),
            state_hash_offset: Some(4),
            failure: None,
            configure_offset: None,
        };
        let body = serde_json::to_value(status_body("b", status)).unwrap();
        assert_eq!(
            (&body["role"], &body["lag_records"]),
            (&json!("catching_up"), &json!(5))
        );
        let document = serde_json::to_value(ingress::openapi_document()).unwrap();
        assert_eq!(
            document["components"]["schemas"]["EngineRole"]["enum"],
            json!(["primary", "standby", "catching_up"])
        );
    }
}
