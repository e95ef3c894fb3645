//! The Kafka log against a real broker at `KAFKA_BOOTSTRAP` (start one with
//! `scripts/kafka.sh start`). Without `KAFKA_BOOTSTRAP` these tests print a note and pass on a
//! developer's machine, and fail in CI (`CI=true`): they are never skipped silently there.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use requestlog::{
    Appended, KafkaLog, KafkaOptions, KafkaReader, LogError, LogReader, LogRecord, LogWriter,
};

/// Upper bound on waiting for records that were already acknowledged.
const READ_DEADLINE: Duration = Duration::from_secs(30);

fn bootstrap() -> Option<String> {
    requestlog::test_kafka_bootstrap("the Kafka log tests")
}

/// A topic name no other test (or earlier run) uses.
fn unique_topic(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("requestlog-test-{test}-{}-{nanos}", std::process::id())
}

fn payloads(count: usize, prefix: &str) -> Vec<Vec<u8>> {
    (0..count)
        .map(|index| format!("{prefix}-{index}").into_bytes())
        .collect()
}

fn offsets(appended: &[Appended]) -> Vec<u64> {
    appended.iter().map(|appended| appended.offset).collect()
}

/// Polls until `count` records have arrived (they were acknowledged, so they must).
fn read_exactly(reader: &mut KafkaReader, count: usize) -> Vec<LogRecord> {
    let deadline = Instant::now() + READ_DEADLINE;
    let mut records = Vec::new();
    while records.len() < count {
        let remaining = deadline.saturating_duration_since(Instant::now());
        assert!(
            !remaining.is_zero(),
            "only {} of {count} records after {READ_DEADLINE:?}",
            records.len()
        );
        records.extend(reader.poll(count - records.len(), remaining).unwrap());
    }
    assert_eq!(records.len(), count);
    records
}

#[test]
fn append_and_read_round_trip_on_auto_created_topic() {
    let Some(brokers) = bootstrap() else { return };
    let topic = unique_topic("round-trip");
    let log = KafkaLog::open(KafkaOptions::new(&brokers, &topic)).expect("open creates the topic");
    let writer = log.writer().unwrap();
    assert_eq!(writer.end_offset().unwrap(), 0);

    let before_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let first = writer.append(payloads(3, "first")).unwrap();
    let second = writer.append(payloads(2, "second")).unwrap();
    assert_eq!(offsets(&first), [0, 1, 2]);
    assert_eq!(offsets(&second), [3, 4]);
    assert_eq!(writer.append(Vec::new()).unwrap(), vec![]);
    assert_eq!(writer.end_offset().unwrap(), 5);
    for appended in first.iter().chain(&second) {
        // LogAppendTime: the broker's clock, which is this machine's here.
        assert!(appended.timestamp_ms + 60_000 >= before_ms, "{appended:?}");
    }

    let mut reader = log.reader().unwrap();
    let records = read_exactly(&mut reader, 5);
    let expected: Vec<Vec<u8>> = payloads(3, "first")
        .into_iter()
        .chain(payloads(2, "second"))
        .collect();
    assert_eq!(
        records
            .iter()
            .map(|record| record.offset)
            .collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert_eq!(
        records
            .iter()
            .map(|record| record.payload.clone())
            .collect::<Vec<_>>(),
        expected
    );
    for (record, appended) in records.iter().zip(first.iter().chain(&second)) {
        assert_eq!(
            record.timestamp_ms, appended.timestamp_ms,
            "reader and writer agree on the timestamp"
        );
    }
    assert_eq!(reader.position(), 5);
    assert_eq!(reader.end_offset().unwrap(), 5);
    assert_eq!(
        reader.poll(10, Duration::from_millis(200)).unwrap(),
        vec![],
        "nothing more"
    );

    // Opening again finds the existing topic and does not recreate it.
    let again = KafkaLog::open(KafkaOptions::new(&brokers, &topic)).unwrap();
    assert_eq!(again.writer().unwrap().end_offset().unwrap(), 5);
}

#[test]
fn reading_from_the_middle_of_a_producer_batch() {
    let Some(brokers) = bootstrap() else { return };
    let log = KafkaLog::open(KafkaOptions::new(&brokers, unique_topic("mid-batch"))).unwrap();
    let writer = log.writer().unwrap();
    let appended = writer.append(payloads(20, "record")).unwrap();
    assert_eq!(offsets(&appended), (0..20).collect::<Vec<_>>());

    let mut reader = log.reader().unwrap();
    reader.seek(7).unwrap();
    let records = read_exactly(&mut reader, 13);
    assert_eq!(
        records
            .iter()
            .map(|record| record.offset)
            .collect::<Vec<_>>(),
        (7..20).collect::<Vec<_>>()
    );
    for record in &records {
        assert_eq!(
            record.payload,
            format!("record-{}", record.offset).into_bytes()
        );
    }
    assert_eq!(
        reader.poll(10, Duration::from_millis(200)).unwrap(),
        vec![],
        "nothing past the end"
    );

    // Seeking backwards re-reads; seeking past the end is refused.
    reader.seek(18).unwrap();
    let tail = read_exactly(&mut reader, 2);
    assert_eq!(
        tail.iter().map(|record| record.offset).collect::<Vec<_>>(),
        [18, 19]
    );
    match reader.seek(21) {
        Err(LogError::OffsetOutOfRange {
            offset: 21,
            start_offset: 0,
            end_offset: 20,
        }) => {}
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
}

#[test]
fn reader_wakes_when_a_record_is_appended() {
    let Some(brokers) = bootstrap() else { return };
    let log = KafkaLog::open(KafkaOptions::new(&brokers, unique_topic("wake"))).unwrap();
    let mut reader = log.reader().unwrap();
    let writer = log.writer().unwrap();
    let waiting = std::thread::spawn(move || {
        let started = Instant::now();
        let records = reader.poll(10, Duration::from_secs(60)).unwrap();
        (records, started.elapsed())
    });
    writer.append(vec![b"wake up".to_vec()]).unwrap();
    let (records, waited) = waiting.join().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].payload, b"wake up");
    assert!(
        waited < Duration::from_secs(30),
        "woke on append, not on timeout ({waited:?})"
    );
}

#[test]
fn concurrent_appenders_get_unique_offsets() {
    let Some(brokers) = bootstrap() else { return };
    let log = KafkaLog::open(KafkaOptions::new(&brokers, unique_topic("concurrent"))).unwrap();
    let writer = log.writer().unwrap();
    let handles: Vec<_> = (0..4)
        .map(|thread_index| {
            let writer = writer.clone();
            std::thread::spawn(move || {
                (0..25)
                    .map(|append_index| {
                        let appended = writer
                            .append(payloads(3, &format!("{thread_index}/{append_index}")))
                            .unwrap();
                        let batch = offsets(&appended);
                        assert!(
                            batch.windows(2).all(|pair| pair[1] == pair[0] + 1),
                            "one append is contiguous"
                        );
                        batch
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<u64> = handles
        .into_iter()
        .flat_map(|handle| handle.join().unwrap())
        .flatten()
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..300).collect::<Vec<_>>(), "unique and dense");
}

#[test]
fn missing_topic_is_an_error_without_create() {
    let Some(brokers) = bootstrap() else { return };
    let mut options = KafkaOptions::new(&brokers, unique_topic("missing"));
    options.create_if_missing = false;
    options.operation_timeout = Duration::from_secs(3);
    match KafkaLog::open(options) {
        Err(LogError::Topic { .. }) => {}
        Err(other) => panic!("expected a Topic error, got {other:?}"),
        Ok(_) => panic!("expected a Topic error, got an open log"),
    }
}

#[test]
fn payload_over_the_limit_is_rejected() {
    let Some(brokers) = bootstrap() else { return };
    let mut options = KafkaOptions::new(&brokers, unique_topic("limits"));
    options.payload_size_max_bytes = 100;
    let log = KafkaLog::open(options).unwrap();
    let writer = log.writer().unwrap();
    match writer.append(vec![vec![0; 100], vec![0; 101]]) {
        Err(LogError::PayloadTooLarge {
            index: 1,
            size_bytes: 101,
            size_max_bytes: 100,
        }) => {}
        other => panic!("expected PayloadTooLarge, got {other:?}"),
    }
    assert_eq!(writer.end_offset().unwrap(), 0);
}

#[test]
fn a_newer_transactional_writer_fences_the_older_one() {
    let Some(brokers) = bootstrap() else { return };
    let topic = unique_topic("fencing");
    let mut options = KafkaOptions::new(&brokers, &topic);
    options.transactional_id = Some(format!("{topic}-primary"));
    let log = KafkaLog::open(options).unwrap();

    let old_primary = log.writer().unwrap();
    let before = old_primary.append(payloads(2, "old")).unwrap();
    assert_eq!(offsets(&before), [0, 1]);

    let new_primary = log.writer().unwrap(); // same transactional.id: fences the old one
    match old_primary.append(payloads(1, "zombie")) {
        Err(LogError::Fenced) => {}
        other => panic!("expected Fenced, got {other:?}"),
    }
    match old_primary.append(payloads(1, "zombie-again")) {
        Err(LogError::Fenced) => {}
        other => panic!("a fenced writer stays fenced, got {other:?}"),
    }
    let after = new_primary.append(payloads(2, "new")).unwrap();
    assert!(
        after[0].offset > before[1].offset,
        "{before:?} then {after:?}"
    );

    // read_committed: the zombie's records never show; offsets skip the commit markers.
    let mut reader = log.reader().unwrap();
    let records = read_exactly(&mut reader, 4);
    let got: Vec<(u64, Vec<u8>)> = records
        .into_iter()
        .map(|record| (record.offset, record.payload))
        .collect();
    let expected: Vec<(u64, Vec<u8>)> = before
        .iter()
        .zip(payloads(2, "old"))
        .chain(after.iter().zip(payloads(2, "new")))
        .map(|(appended, payload)| (appended.offset, payload))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(
        reader.poll(10, Duration::from_millis(500)).unwrap(),
        vec![],
        "no zombie record"
    );
}

/// A transactional writer's commit markers take offsets but are never returned; the reader's
/// position still steps over them to the end offset, so a follower can tell it caught up.
#[test]
fn a_reader_of_a_transactional_topic_reaches_its_end() {
    let Some(brokers) = bootstrap() else { return };
    let topic = unique_topic("markers");
    let mut options = KafkaOptions::new(&brokers, &topic);
    options.transactional_id = Some(format!("{topic}-writer"));
    let log = KafkaLog::open(options).unwrap();
    let writer = log.writer().unwrap();
    for round in 0..3 {
        writer
            .append(payloads(2, &format!("round-{round}")))
            .unwrap();
    }
    // Three transactions of two records, each followed by its commit marker (written by the
    // transaction coordinator, so the end offset may show it a moment after the commit).
    let deadline = Instant::now() + READ_DEADLINE;
    while writer.end_offset().unwrap() < 9 {
        assert!(Instant::now() < deadline, "the last marker never showed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let end = writer.end_offset().unwrap();
    assert_eq!(end, 9);

    let mut reader = log.reader().unwrap();
    let records = read_exactly(&mut reader, 6);
    assert_eq!(
        records
            .iter()
            .map(|record| record.offset)
            .collect::<Vec<_>>(),
        [0, 1, 3, 4, 6, 7]
    );
    while reader.position() < end {
        assert!(
            Instant::now() < deadline,
            "the position stayed at {} before the end {end}",
            reader.position()
        );
        assert_eq!(reader.poll(10, Duration::from_millis(100)).unwrap(), vec![]);
    }
    assert_eq!(reader.position(), end);
}

/// A transaction costs a few broker round trips, not a client-side poll interval: the
/// commit used to start while the records were in flight, and the flush inside it then
/// waited 100 ms for an event the producer's own thread had already taken (every
/// transactional append took ≥ 100 ms, so an engine publishing outcomes capped at ~10
/// batches per second). The median of 9 appends is far below that even on a busy machine.
#[test]
fn a_transactional_append_takes_round_trips_not_a_poll_interval() {
    let Some(brokers) = bootstrap() else { return };
    let topic = unique_topic("txn-latency");
    let mut options = KafkaOptions::new(&brokers, &topic);
    options.transactional_id = Some(format!("{topic}-writer"));
    let log = KafkaLog::open(options).unwrap();
    let writer = log.writer().unwrap();
    writer.append(payloads(1, "warm-up")).unwrap();
    let mut took: Vec<Duration> = (0..9)
        .map(|round| {
            let began = Instant::now();
            writer
                .append(payloads(2, &format!("round-{round}")))
                .unwrap();
            began.elapsed()
        })
        .collect();
    took.sort();
    assert!(
        took[4] < Duration::from_millis(50),
        "median transactional append {:?} (all: {took:?})",
        took[4]
    );
}

/// Drives one admin future on this thread (rdkafka's own polling thread completes it), as
/// the library does.
fn admin_call<F: std::future::Future>(future: F) -> F::Output {
    struct ThreadWaker(std::thread::Thread);
    impl std::task::Wake for ThreadWaker {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let mut future = std::pin::pin!(future);
    let waker = std::task::Waker::from(std::sync::Arc::new(ThreadWaker(std::thread::current())));
    let mut context = std::task::Context::from_waker(&waker);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}

fn admin(brokers: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap()
}

/// Creates a topic by hand, as an operator would: `partitions`, and the settings a log needs
/// except where `configs` says otherwise.
fn create_topic_by_hand(brokers: &str, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let mut settings = vec![
        ("cleanup.policy", "delete"),
        ("retention.ms", "-1"),
        ("retention.bytes", "-1"),
        ("message.timestamp.type", "LogAppendTime"),
        ("min.insync.replicas", "1"),
        ("unclean.leader.election.enable", "false"),
    ];
    for (name, value) in configs {
        settings.retain(|(existing, _)| existing != name);
        settings.push((name, value));
    }
    let mut new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (name, value) in &settings {
        new_topic = new_topic.set(name, value);
    }
    let results =
        admin_call(admin(brokers).create_topics([&new_topic], &AdminOptions::new())).unwrap();
    for result in results {
        result.unwrap();
    }
}

/// The configuration of `topic` as the broker describes it.
fn topic_config(brokers: &str, topic: &str, name: &str) -> Option<String> {
    let specifier = ResourceSpecifier::Topic(topic);
    let results =
        admin_call(admin(brokers).describe_configs([&specifier], &AdminOptions::new())).unwrap();
    let resource = results.into_iter().next().unwrap().unwrap();
    resource.get(name).and_then(|entry| entry.value.clone())
}

#[test]
fn an_existing_topic_that_cannot_keep_the_log_is_refused_naming_the_setting() {
    let Some(brokers) = bootstrap() else { return };
    // (name, partitions, settings unlike a log's, what the refusal says)
    type Case<'a> = (&'a str, i32, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("two-partitions", 2, &[], "partitions is 2"),
        (
            "compacted",
            1,
            &[("cleanup.policy", "compact")],
            "cleanup.policy is compact",
        ),
        (
            "short-retention",
            1,
            &[("retention.ms", "3600000")],
            "retention.ms is 3600000",
        ),
        (
            "size-retention",
            1,
            &[("retention.bytes", "1048576")],
            "retention.bytes is 1048576",
        ),
        (
            "create-time",
            1,
            &[("message.timestamp.type", "CreateTime")],
            "message.timestamp.type is CreateTime",
        ),
        (
            "unclean",
            1,
            &[("unclean.leader.election.enable", "true")],
            "unclean.leader.election.enable is true",
        ),
    ];
    for (name, partitions, configs, named) in cases {
        let topic = unique_topic(name);
        create_topic_by_hand(&brokers, &topic, *partitions, configs);
        let error = KafkaLog::open(KafkaOptions::new(&brokers, &topic))
            .err()
            .unwrap_or_else(|| panic!("{name}: a topic with {configs:?} was accepted"));
        assert!(
            matches!(error, LogError::TopicSetting { .. }),
            "{name}: {error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains(&topic) && message.contains(named),
            "{name}: {message}"
        );
    }
    // The same topic, sound: accepted; a finite retention is accepted from its minimum.
    let topic = unique_topic("sound");
    create_topic_by_hand(&brokers, &topic, 1, &[]);
    KafkaLog::open(KafkaOptions::new(&brokers, &topic)).unwrap();
    let topic = unique_topic("week-retention");
    create_topic_by_hand(&brokers, &topic, 1, &[("retention.ms", "604800000")]);
    let mut options = KafkaOptions::new(&brokers, &topic);
    options.retention_ms_min = Some(604_800_000);
    KafkaLog::open(options).unwrap();
}

#[test]
fn a_created_topic_has_the_configured_replication_and_passes_its_own_check() {
    let Some(brokers) = bootstrap() else { return };
    let topic = unique_topic("created");
    KafkaLog::open(KafkaOptions::new(&brokers, &topic)).unwrap();
    for (name, value) in [
        ("min.insync.replicas", "1"),
        ("message.timestamp.type", "LogAppendTime"),
        ("cleanup.policy", "delete"),
        ("retention.ms", "-1"),
    ] {
        assert_eq!(
            topic_config(&brokers, &topic, name).as_deref(),
            Some(value),
            "{name}"
        );
    }
    // More in-sync replicas than replicas would refuse every append: refused before the
    // topic is created.
    let topic = unique_topic("isr-above-replicas");
    let mut options = KafkaOptions::new(&brokers, &topic);
    options.min_insync_replicas = 2;
    let error = KafkaLog::open(options).err().expect("refused");
    assert!(
        error.to_string().contains("min.insync.replicas is 2"),
        "{error}"
    );
    assert_eq!(topic_config(&brokers, &topic, "cleanup.policy"), None);
    // An existing topic with fewer in-sync replicas than configured is refused (one broker
    // here: the configured replication factor stays 1).
    let topic = unique_topic("isr-below");
    create_topic_by_hand(&brokers, &topic, 1, &[]);
    let mut options = KafkaOptions::new(&brokers, &topic);
    options.replication_factor = 1;
    options.min_insync_replicas = 1;
    KafkaLog::open(options.clone()).unwrap();
    options.replication_factor = 3;
    let error = KafkaLog::open(options).err().expect("refused");
    assert!(
        error.to_string().contains("replication factor is 1"),
        "{error}"
    );
}

#[test]
fn a_client_property_reaches_every_client() {
    let Some(brokers) = bootstrap() else { return };
    let mut options = KafkaOptions::new(&brokers, unique_topic("client-properties"));
    options
        .client_properties
        .push(("security.protocol".into(), "carrier_pigeon".into()));
    let error = KafkaLog::open(options).err().expect("refused");
    assert!(error.to_string().contains("security.protocol"), "{error}");
}

#[test]
fn a_log_id_names_the_cluster_and_the_topic() {
    let Some(brokers) = bootstrap() else { return };
    let (first_topic, second_topic) = (unique_topic("id-first"), unique_topic("id-second"));
    let first = KafkaLog::open(KafkaOptions::new(&brokers, &first_topic)).unwrap();
    let second = KafkaLog::open(KafkaOptions::new(&brokers, &second_topic)).unwrap();
    let cluster = |log_id: &str| {
        let rest = log_id
            .strip_prefix(requestlog::KAFKA_LOG_ID_PREFIX)
            .unwrap_or_else(|| panic!("{log_id}"));
        rest.split_once('/').unwrap().0.to_string()
    };
    assert!(
        first.log_id().ends_with(&format!("/{first_topic}")),
        "{}",
        first.log_id()
    );
    assert!(!cluster(first.log_id()).is_empty());
    assert_eq!(cluster(first.log_id()), cluster(second.log_id()));
    assert_ne!(first.log_id(), second.log_id());
    let again = KafkaLog::open(KafkaOptions::new(&brokers, &first_topic)).unwrap();
    assert_eq!(again.log_id(), first.log_id());
}
