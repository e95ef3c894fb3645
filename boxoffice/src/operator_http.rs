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
        .route("/healthz", get(|| async { Json(json!({ "status": "ok" })) }))
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

/// The operator key as a bearer token, compared in constant time.
fn authorize(headers: &HeaderMap, state: &OperatorState) -> Result<(), Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match token {
        None => Err(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send the operator key as `Authorization: Bearer <key>`",
        )),
        Some(token) if constant_time_eq(token.as_bytes(), state.operator_key.as_bytes()) => Ok(()),
        Some(_) => Err(error(
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
    if let Err(response) = authorize(&headers, &state) {
        return response;
    }
    Json(status_body(state.runtime.node(), &state.runtime.status())).into_response()
}

/// Appends a `Promote` record naming this replica; answers 202 with its offset. The role
/// changes when the replica applies it (poll `GET /v1/admin/engine`).
async fn promote(State(state): State<OperatorState>, headers: HeaderMap) -> Response {
    if let Err(response) = authorize(&headers, &state) {
        return response;
    }
    let runtime = state.runtime.clone();
    let appended = tokio::task::spawn_blocking(move || runtime.promote()).await;
    match appended {
        Ok(Ok(offset)) => {
            tracing::warn!(node = state.runtime.node(), offset, "promotion requested by the operator");
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
            offset(status.last_snapshot.as_ref().map(|snapshot| snapshot.offset)),
        ),
    ]
    .concat();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response()
}
