//! The operator router: one for `boxoffice serve` and `boxoffice engine`. It serves a
//! replica's status (`GET /v1/admin/engine`), promotion (`POST
//! /v1/admin/engine/promote`) and its requests log as JSON lines (`GET
//! /v1/admin/engine/requests`, the lines of `boxoffice log export`: a load tester stores
//! them in its recording for an exact replay), in the shapes of the ingress's OpenAPI document
//! (`ingress::EngineStatusResponse`, `ingress::PromoteResponse`) and its error format,
//! with the operator key as a bearer token. `engine` serves it alone on its operator
//! listener, with `/healthz` and the replica's `/metrics` ([`router`]); `serve` merges its
//! engine routes into the ingress's router ([`engine_routes`]), whose health, readiness
//! and metrics are the ingress's.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ingress::{AppError, EngineStatusResponse, PromoteResponse, Reason, SnapshotBody};
use runtime::{EngineStatus, OpenLog, Role, RuntimeError, RuntimeHandle};
use serde_json::json;
use std::sync::Arc;

#[derive(Clone)]
struct OperatorState {
    /// The shard whose engine the top-level fields, promotion and the requests log are of.
    shard: u32,
    /// Whether the deployment has more than one shard: then `/metrics` labels every
    /// series with the shard (a single-shard exposition is the one it always was).
    sharded: bool,
    runtime: RuntimeHandle,
    /// Every shard this process runs (`serve`: all; `engine --shard K`: K), in order.
    shards: Arc<Vec<(u32, RuntimeHandle)>>,
    /// The requests log the replica applies, read by `GET /v1/admin/engine/requests`.
    requests: Arc<dyn OpenLog>,
    operator_key: Arc<str>,
}

/// `/v1/admin/engine`, promotion and the requests log, with their state.
fn routes() -> Router<OperatorState> {
    Router::new()
        .route("/v1/admin/engine", get(status))
        .route("/v1/admin/engine/promote", post(promote))
        .route("/v1/admin/engine/requests", get(requests_log))
}

/// The operator state of the shards `runtimes` (shard index, runtime) of one process;
/// the first is the one the top-level fields, promotion and `requests` are of.
fn state(
    runtimes: Vec<(u32, RuntimeHandle)>,
    requests: Arc<dyn OpenLog>,
    operator_key: &str,
) -> OperatorState {
    let (shard, runtime) = runtimes
        .first()
        .cloned()
        .expect("at least one shard's runtime");
    OperatorState {
        shard,
        sharded: false,
        runtime,
        shards: Arc::new(runtimes),
        requests,
        operator_key: operator_key.into(),
    }
}

/// The operator endpoints of a process that runs engines next to an ingress (`serve`):
/// merged into the ingress's router. `runtimes` are (shard, runtime) in shard order;
/// `requests` is the first's requests log.
pub(crate) fn engine_routes(
    runtimes: Vec<(u32, RuntimeHandle)>,
    requests: Arc<dyn OpenLog>,
    operator_key: &str,
) -> Router {
    routes().with_state(state(runtimes, requests, operator_key))
}

/// The whole operator listener of `boxoffice engine --shard K` (no ingress in its
/// process) in a deployment of `shards` shards.
pub(crate) fn router(
    shard: u32,
    shards: u32,
    runtime: RuntimeHandle,
    requests: Arc<dyn OpenLog>,
    operator_key: &str,
) -> Router {
    let state = OperatorState {
        sharded: shards > 1,
        ..state(vec![(shard, runtime)], requests, operator_key)
    };
    routes()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/metrics", get(metrics))
        .with_state(state)
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

/// Every shard this process runs, as `GET /v1/admin/engine` lists them.
fn shard_bodies(state: &OperatorState) -> Vec<ingress::ShardStatusBody> {
    state
        .shards
        .iter()
        .map(|(shard, runtime)| {
            let status = runtime.status();
            ingress::ShardStatusBody {
                shard: *shard,
                node: runtime.node().to_string(),
                role: role_body(status.role),
                applied_offset: status.applied_offset,
                log_end_offset: status.log_end_offset,
                state_hash: status.state_hash,
                state_hash_offset: status.state_hash_offset,
                failure: status.failure,
            }
        })
        .collect()
}

fn status_body(
    node: &str,
    status: EngineStatus,
    shard: u32,
    shards: Vec<ingress::ShardStatusBody>,
) -> EngineStatusResponse {
    EngineStatusResponse {
        shard,
        shards,
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
        state.shard,
        shard_bodies(&state),
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

/// Chunks of the export in flight to the client at most; the reading thread waits for the
/// client beyond them.
const EXPORT_CHUNKS_IN_FLIGHT: usize = 8;
const EXPORT_CHUNK_BYTES: usize = 64 * 1024;

/// `GET /v1/admin/engine/requests?from=F&to=T`: the requests log from offset `from`
/// (default 0) through `to` (inclusive; default the last record when asked), as
/// `application/x-ndjson` in the lines of `boxoffice log export` (`log_export.rs`),
/// streamed as it is read. A load tester asks for `to` = the `state_hash_offset` of
/// `GET /v1/admin/engine`, so the lines and the hash describe the same log. A read that
/// fails after the answer has begun ends the body with an error (the client sees a body
/// cut short, never a shorter log passed off as whole).
async fn requests_log(
    State(state): State<OperatorState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    authorize(&headers, &state)?;
    let (from, to) = export_range(query.as_deref().unwrap_or(""))?;
    let requests = Arc::clone(&state.requests);
    let started = tokio::task::spawn_blocking(move || {
        let mut reader = requests.open_reader()?;
        let last = crate::log_export::start(reader.as_mut(), from, to)?;
        Ok::<_, requestlog::LogError>((reader, last))
    })
    .await
    .map_err(AppError::internal)?;
    let (mut reader, last) = started.map_err(|error| {
        AppError::internal(format!(
            "cannot read the requests log from offset {from}: {error}"
        ))
    })?;
    let (sender, mut receiver) =
        tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(EXPORT_CHUNKS_IN_FLIGHT);
    if let Some(last) = last {
        tokio::task::spawn_blocking(move || {
            let mut out =
                std::io::BufWriter::with_capacity(EXPORT_CHUNK_BYTES, ChunkSender(sender.clone()));
            let written = crate::log_export::export(
                reader.as_mut(),
                last,
                crate::log_export::WhichLog::Requests,
                &mut out,
            )
            .and_then(|()| std::io::Write::flush(&mut out));
            if let Err(error) = written {
                if error.kind() != std::io::ErrorKind::BrokenPipe {
                    tracing::warn!(%error, "the requests log export stopped");
                    let _ = sender.blocking_send(Err(error));
                }
            }
        });
    }
    let stream = futures_util::stream::poll_fn(move |context| receiver.poll_recv(context));
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `from` and `to` of the export's query string.
fn export_range(query: &str) -> Result<(u64, Option<u64>), AppError> {
    let (mut from, mut to) = (0, None);
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let offset = || {
            value.parse::<u64>().map_err(|_| {
                AppError::bad_request(
                    Reason::MalformedQuery,
                    format!("{name} must be a record offset (an integer from 0), not `{value}`"),
                )
            })
        };
        match name {
            "from" => from = offset()?,
            "to" => to = Some(offset()?),
            _ => {
                return Err(AppError::bad_request(
                    Reason::MalformedQuery,
                    format!("unknown query parameter `{name}`: from and to are known"),
                ))
            }
        }
    }
    Ok((from, to))
}

/// Hands the export's bytes to the response body; a client that went away is a broken
/// pipe, which stops the export.
struct ChunkSender(tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>);

impl std::io::Write for ChunkSender {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.blocking_send(Ok(bytes.to_vec())).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
        })?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn metrics(State(state): State<OperatorState>) -> Response {
    let status = state.runtime.status();
    let labels = match state.sharded {
        true => format!("{{shard=\"{}\"}}", state.shard),
        false => String::new(),
    };
    let gauge = |name: &str, help: &str, value: u64| {
        format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name}{labels} {value}\n")
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
    fn replica(dir: &std::path::Path, node: &str, role: Role) -> (Runtime, Arc<dyn OpenLog>) {
        let open = |name: &str| -> Arc<dyn runtime::OpenLog> {
            Arc::new(EmbeddedLog::open(dir.join(name), EmbeddedOptions::default()).unwrap())
        };
        let options = RuntimeOptions {
            node: node.to_string(),
            role,
            ..RuntimeOptions::new(engine::EngineConfig::default())
        };
        let requests = open("requests");
        let logs = Logs {
            requests: Arc::clone(&requests),
            outcomes: open("outcomes"),
        };
        let runtime =
            Runtime::start(options, logs, Box::new(snapshotter::MemoryStore::new(1))).unwrap();
        (runtime, requests)
    }

    async fn call(
        router: &Router,
        method: &str,
        path: &str,
        key: Option<&str>,
    ) -> (StatusCode, Value) {
        let (status, bytes) = call_bytes(router, method, path, key).await;
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn call_bytes(
        router: &Router,
        method: &str,
        path: &str,
        key: Option<&str>,
    ) -> (StatusCode, Vec<u8>) {
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
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .unwrap();
        (status, bytes.to_vec())
    }

    /// The requests log as `boxoffice log export` prints it, over HTTP: every record from
    /// `from` through `to`, with the operator key only; bad ranges are 400.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_requests_log_streams_as_export_lines() {
        let dir = tempfile::tempdir().unwrap();
        let (runtime, requests) = replica(dir.path(), "a", Role::Primary);
        // The primary's own Configure record first (offset 0), so ours are 1..=3001.
        let (_, configured) = runtime
            .handle()
            .wait_for(Duration::from_secs(30), |status| {
                status.role == Role::Primary && status.configured()
            });
        assert!(configured);
        // More than one chunk of the stream.
        let payloads: Vec<Vec<u8>> = (0..3_000)
            .map(|index| {
                engine::wire::encode_request(&engine::Request::with_key(
                    engine::Command::Tick,
                    format!("tick-{index}"),
                ))
            })
            .chain([vec![9, 9]])
            .collect();
        requests.open_writer().unwrap().append(payloads).unwrap();
        let mut reader = requests.open_reader().unwrap();
        let mut lines = crate::log_export::Lines::new(crate::log_export::WhichLog::Requests);
        let mut expected = Vec::new();
        while expected.len() < 3_002 {
            for record in reader.poll(4_096, Duration::from_secs(5)).unwrap() {
                expected.extend(lines.lines(&record).iter().map(Value::to_string));
            }
        }
        let router = router(0, 1, runtime.handle(), requests, KEY);
        let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();

        let (status, body) = call_bytes(
            &router,
            "GET",
            "/v1/admin/engine/requests?to=3001",
            Some(KEY),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let body = text(body);
        let got: Vec<&str> = body.lines().collect();
        assert_eq!(got, expected[..3_002]);
        assert!(got[0].contains(r#""Configure""#), "{}", got[0]);
        assert!(got[3_001].contains(r#""undecodable":"unknown record version 9""#));

        let (status, body) = call_bytes(
            &router,
            "GET",
            "/v1/admin/engine/requests?from=10&to=12",
            Some(KEY),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(text(body).lines().collect::<Vec<_>>(), expected[10..=12]);

        // Past the end: nothing, not an error (the log may still grow to it).
        let (status, body) = call_bytes(
            &router,
            "GET",
            "/v1/admin/engine/requests?from=1000000",
            Some(KEY),
        )
        .await;
        assert_eq!((status, body.len()), (StatusCode::OK, 0));

        let (status, body) = call(&router, "GET", "/v1/admin/engine/requests", None).await;
        assert_eq!(
            (status, &body["error"]["details"]["reason"]),
            (StatusCode::UNAUTHORIZED, &json!("missing_token"))
        );
        for query in ["to=-1", "from=x", "upto=3"] {
            let (status, body) = call(
                &router,
                "GET",
                &format!("/v1/admin/engine/requests?{query}"),
                Some(KEY),
            )
            .await;
            assert_eq!(
                (status, &body["error"]["details"]["reason"]),
                (StatusCode::BAD_REQUEST, &json!("malformed_query")),
                "{query}: {body}"
            );
        }
        runtime.shutdown().unwrap();
    }

    #[tokio::test]
    async fn the_operator_key_guards_status_and_promotion() {
        let dir = tempfile::tempdir().unwrap();
        let (runtime, requests) = replica(dir.path(), "a", Role::Primary);
        let router = router(0, 1, runtime.handle(), requests, KEY);
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
        let (runtime, requests) = replica(dir.path(), "b", Role::Standby);
        let handle = runtime.handle();
        let (_, settled) = handle.wait_for(Duration::from_secs(30), |status| {
            status.role == Role::Standby
        });
        assert!(settled);
        let router = router(0, 1, runtime.handle(), requests, KEY);
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
        let (runtime, replica_requests) = replica(dir.path(), "a", Role::Primary);
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
        let serve = with_engine.router().merge(engine_routes(
            vec![(0, handle.clone())],
            Arc::clone(&replica_requests),
            KEY,
        ));
        let engine = router(0, 1, handle.clone(), replica_requests, KEY);

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

    /// The engine of shard 2 of 3 says its shard in its status and labels its metrics
    /// with it; a single-shard engine's metrics have no label.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_shard_engine_names_its_shard() {
        let dir = tempfile::tempdir().unwrap();
        let (runtime, requests) = replica(dir.path(), "a", Role::Primary);
        let sharded = router(2, 3, runtime.handle(), Arc::clone(&requests), KEY);
        let (status, body) = call(&sharded, "GET", "/v1/admin/engine", Some(KEY)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            (
                &body["shard"],
                &body["shards"][0]["shard"],
                &body["shards"][0]["node"]
            ),
            (&json!(2), &json!(2), &json!("a"))
        );
        assert_eq!(body["shards"].as_array().unwrap().len(), 1);
        let (_, text) = call_bytes(&sharded, "GET", "/metrics", None).await;
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains("boxoffice_engine_primary{shard=\"2\"} "),
            "{text}"
        );
        let single = router(0, 1, runtime.handle(), requests, KEY);
        let (_, text) = call_bytes(&single, "GET", "/metrics", None).await;
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("\nboxoffice_engine_primary "), "{text}");
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
        let body = serde_json::to_value(status_body("b", status, 0, Vec::new())).unwrap();
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
