//! The operator endpoints of `boxoffice engine` (a process with no ingress in it): its
//! status and promotion, `/metrics` and `/healthz`, on their own listener. The shapes are
//! the contract's (`GET /v1/admin/engine`, `POST /v1/admin/engine/promote`, operator key as
//! a bearer token), plus what only a replica knows: its node name, published offset and lag.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use runtime::{EngineStatus, Role, RuntimeError, RuntimeHandle};
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Clone)]
struct OperatorState {
    runtime: RuntimeHandle,
    operator_key: Arc<str>,
}

pub(crate) fn router(runtime: RuntimeHandle, operator_key: &str) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/metrics", get(metrics))
        .route("/v1/admin/engine", get(status))
        .route("/v1/admin/engine/promote", post(promote))
        .with_state(OperatorState {
            runtime,
            operator_key: operator_key.into(),
        })
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message.into() } })),
    )
        .into_response()
}

/// The operator key as a bearer token, compared in constant time; the refusal to send
/// when it is missing or wrong.
fn refusal(headers: &HeaderMap, state: &OperatorState) -> Option<Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match token {
        None => Some(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send the operator key as `Authorization: Bearer <key>`",
        )),
        Some(token) if constant_time_eq(token.as_bytes(), state.operator_key.as_bytes()) => None,
        Some(_) => Some(error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this endpoint needs the operator key",
        )),
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

fn status_body(node: &str, status: &EngineStatus) -> Value {
    json!({
        "node": node,
        "role": status.role.as_str(),
        "applied_offset": status.applied_offset,
        "log_end_offset": status.log_end_offset,
        "lag_records": lag_records(status),
        "published_offset": status.published_offset,
        "last_snapshot": status.last_snapshot.as_ref().map(|snapshot| json!({
            "offset": snapshot.offset,
            "at_ms": snapshot.at_ms,
        })),
        "state_hash": status.state_hash,
        "state_hash_offset": status.state_hash_offset,
        "failure": status.failure,
    })
}

async fn status(State(state): State<OperatorState>, headers: HeaderMap) -> Response {
    if let Some(response) = refusal(&headers, &state) {
        return response;
    }
    Json(status_body(state.runtime.node(), &state.runtime.status())).into_response()
}

/// Appends a `Promote` record naming this replica; answers 202 with its offset. The role
/// changes when the replica applies it (poll `GET /v1/admin/engine`).
async fn promote(State(state): State<OperatorState>, headers: HeaderMap) -> Response {
    if let Some(response) = refusal(&headers, &state) {
        return response;
    }
    let runtime = state.runtime.clone();
    let appended = tokio::task::spawn_blocking(move || runtime.promote()).await;
    match appended {
        Ok(Ok(offset)) => {
            tracing::warn!(
                node = state.runtime.node(),
                offset,
                "promotion requested by the operator"
            );
            (
                StatusCode::ACCEPTED,
                Json(json!({ "node": state.runtime.node(), "promote_offset": offset })),
            )
                .into_response()
        }
        Ok(Err(RuntimeError::NotStandby)) => error(
            StatusCode::CONFLICT,
            "conflict",
            "this replica is already primary (or its promotion is under way)",
        ),
        Ok(Err(failure)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("cannot append the Promote record: {failure}"),
        ),
        Err(join) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("promotion task failed: {join}"),
        ),
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
}
