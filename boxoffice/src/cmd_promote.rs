//! `boxoffice promote --node NODE`: appends a `Promote` record naming NODE to the requests
//! log, then (unless `--wait-seconds 0`) waits for that record's outcome in the outcomes
//! log, which the new primary publishes once it has taken over.
//!
//! The log, not a process, promotes: every replica applies the record at the same offset,
//! NODE opens the outcomes writer there (fencing the old primary's Kafka producer) and the
//! old primary, if it is alive, steps down when it reads it. Nothing needs to reach the
//! standby's process, so this works while the old primary hangs.
//!
//! NODE must be a replica's: every `boxoffice engine` announces its node on the requests
//! topic (a consumer group `boxoffice-replica.<topic>.<node>` holding its position, see
//! `requestlog::ReplicaAnnouncer`), and a node none has announced is refused: a record
//! naming it would make the primary step down with no one to take over.

use crate::cmd_engine::{log_error, open_logs, requests_topic, ToolError};
use crate::settings::{LogKind, Settings};
use engine::Reply;
use std::path::Path;
use std::time::{Duration, Instant};

pub(crate) fn run(
    settings: &Settings,
    data_dir: &Path,
    node: &str,
    wait: Duration,
) -> Result<(), ToolError> {
    if node.trim().is_empty() {
        return Err(ToolError::Invalid("--node must name a replica".into()));
    }
    // On the embedded log there is one engine (`serve`) and no standby to hand over to: a
    // Promote record naming anyone else would only make that engine step down.
    if settings.log.kind == LogKind::Embedded {
        return Err(ToolError::Invalid(
            "promotion needs replicas sharing a Kafka log (log.kind = \"kafka\"); the embedded log has a single engine".into(),
        ));
    }
    // A record naming a node no replica runs as would make the primary step down and
    // leave no one publishing: refused.
    let announced = requests_topic(settings)?
        .announced_replicas()
        .map_err(log_error(
            "cannot list the replicas announced on the requests topic",
        ))?;
    if !announced.iter().any(|announced| announced == node) {
        return Err(ToolError::Invalid(format!(
            "no replica has announced node {node} on topic {} (announced: {}); start `boxoffice engine --node {node}` first",
            settings.kafka.requests_topic,
            if announced.is_empty() { "none".to_string() } else { announced.join(", ") },
        )));
    }
    let logs = open_logs(settings, data_dir)?;
    // The Promote record's outcome can only be published after the record exists, so
    // reading from the outcomes log's current end is enough to find it.
    let mut outcomes = logs
        .outcomes
        .open_reader()
        .map_err(log_error("cannot read the outcomes log"))?;
    let outcomes_end = outcomes
        .end_offset()
        .map_err(log_error("cannot read the outcomes log's end"))?;
    let started = Instant::now();
    let offset = runtime::append_promote(logs.requests.as_ref(), node)?;
    println!("Promote record for {node} appended at offset {offset}");
    if wait.is_zero() {
        return Ok(());
    }
    if outcomes_end != outcomes.position() {
        outcomes
            .seek(outcomes_end)
            .map_err(log_error("cannot seek the outcomes log"))?;
    }
    let mut assembler = engine::wire::OutcomeAssembler::new();
    while started.elapsed() < wait {
        let records = outcomes
            .poll(1024, Duration::from_millis(100))
            .map_err(log_error("cannot read the outcomes log"))?;
        for record in records {
            // Only the Promote record's outcome is decoded (from its frames); the rest is
            // skipped by header.
            let header = engine::wire::frame_header(&record.payload).map_err(|reason| {
                ToolError::Invalid(format!(
                    "undecodable outcome at {}: {reason}",
                    record.offset
                ))
            })?;
            if header.offset != offset {
                continue;
            }
            let assembled = assembler.push(&record.payload).map_err(|reason| {
                ToolError::Invalid(format!(
                    "undecodable outcome at {}: {reason}",
                    record.offset
                ))
            })?;
            let Some(outcome) = assembled else {
                continue;
            };
            let elapsed_ms = started.elapsed().as_millis();
            return match outcome.result {
                Ok(Reply::Promoted { epoch, node: named }) => {
                    println!("promoted: {named} is primary from offset {offset} (epoch {epoch}); its outcome was published {elapsed_ms} ms after the request");
                    Ok(())
                }
                other => Err(ToolError::Invalid(format!(
                    "the Promote record at {offset} was answered {other:?}"
                ))),
            };
        }
    }
    Err(ToolError::Invalid(format!(
        "no outcome for the Promote record at offset {offset} within {} s: is a replica named {node} running?",
        wait.as_secs()
    )))
}
