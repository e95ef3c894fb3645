//! An ingress of Kafka mode restarts from its snapshot after Kafka deleted the outcomes
//! topic's early records (`DeleteRecords`, what retention does), and one without a
//! snapshot refuses to start, naming the cause. Needs a broker at `KAFKA_BOOTSTRAP`
//! (`scripts/kafka.sh start`): without it the test prints a note and passes on a
//! developer's machine, and fails in CI (`CI=true`).

mod common;

use common::*;
use ingress::{Ingress, IngressConfig};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::{Offset, TopicPartitionList};
use requestlog::{KafkaLog, KafkaOptions, LogReader, LogWriter};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn bootstrap() -> Option<String> {
    requestlog::test_kafka_bootstrap("the Kafka ingress restart test")
}

fn unique_topic(name: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("ingress-test-{name}-{}-{nanos}", std::process::id())
}

/// The outcomes log record after the one that completes the outcome of `offset` (waits
/// for it: the engine publishes it).
fn record_after(outcomes: &KafkaLog, offset: u64) -> u64 {
    let mut reader = outcomes.reader().unwrap();
    let mut assembler = engine::wire::OutcomeAssembler::new();
    loop {
        for record in reader.poll(256, Duration::from_secs(5)).unwrap() {
            if let Some(outcome) = assembler.push(&record.payload).unwrap() {
                if outcome.offset == offset {
                    return record.offset + 1;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_ingress_resumes_from_its_snapshot_after_retention_and_refuses_without_one() {
    let Some(brokers) = bootstrap() else {
        return;
    };
    let requests = KafkaLog::open(KafkaOptions::new(&brokers, unique_topic("requests"))).unwrap();
    let outcomes_topic = unique_topic("outcomes");
    // Transactional, as the runtime publishes: commit markers take offsets between frames.
    let outcomes = KafkaLog::open(KafkaOptions {
        transactional_id: Some(format!("{outcomes_topic}-publisher")),
        ..KafkaOptions::new(&brokers, &outcomes_topic)
    })
    .unwrap();
    let (requests, outcomes) = (Arc::new(requests), Arc::new(outcomes));
    let engine = start_runtime(requests.clone(), outcomes.clone(), engine_config());
    let dir = tempfile::tempdir().unwrap();
    let config = |name: &str| IngressConfig {
        state_dir: Some(dir.path().join(name)),
        ..config()
    };
    let start = |name: &str| {
        Ingress::start_resuming(
            config(name),
            Arc::new(requests.writer().unwrap()),
            Box::new(outcomes.reader().unwrap()),
            outcomes.log_id(),
            None,
        )
    };

    let first = start("ingress").unwrap();
    assert!(first.wait_caught_up(Duration::from_secs(30)).await);
    let router = first.router();
    let event = create_event(&router, event_body("Kafka restart", 10, 600)).await;
    let (status, held) = {
        let answer = call(
            &router,
            axum::http::Method::POST,
            &format!("/v1/events/{event}/holds"),
            Some(&token("ann")),
            Some(serde_json::json!({"quantity": 2, "category": "Gold"})),
        )
        .await;
        (answer.status, answer.body)
    };
    assert_eq!(status, axum::http::StatusCode::CREATED, "{held}");
    let seats_before = call(
        &router,
        axum::http::Method::GET,
        &format!("/v1/events/{event}/seats"),
        None,
        None,
    )
    .await;
    drop(router);
    let snapshot = first.stop().unwrap();

    // One more outcome, then Kafka deletes every record up to where the snapshot ends.
    let tick = engine::wire::encode_request(&engine::Request::new(engine::Command::Tick));
    let tick_offset = requests.writer().unwrap().append(vec![tick]).unwrap()[0].offset;
    let snapshot_ends = record_after(&outcomes, snapshot);
    record_after(&outcomes, tick_offset);
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let mut before = TopicPartitionList::new();
    before
        .add_partition_offset(&outcomes_topic, 0, Offset::Offset(snapshot_ends as i64))
        .unwrap();
    admin
        .delete_records(&before, &AdminOptions::new())
        .await
        .unwrap();

    let resumed = start("ingress").unwrap();
    assert!(resumed.wait_caught_up(Duration::from_secs(30)).await);
    assert_eq!(resumed.state().resumed_from(), Some(snapshot));
    assert_eq!(resumed.state().applied_offset(), Some(tick_offset));
    let seats_after = call(
        &resumed.router(),
        axum::http::Method::GET,
        &format!("/v1/events/{event}/seats"),
        None,
        None,
    )
    .await;
    assert_eq!(seats_after.body, seats_before.body);
    resumed.stop();

    let refused = start("another-ingress")
        .err()
        .expect("no snapshot, and offset 0 deleted");
    assert!(
        refused.contains("has no usable snapshot") && refused.contains("retention"),
        "{refused}"
    );
    engine.shutdown().unwrap();
}
