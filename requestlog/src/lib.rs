//! `requestlog`: a single-partition, append-only, durable log of opaque byte records.
//!
//! Boxoffice is built like an exchange matching engine: ingress threads append every request
//! to this log, and the engine applies the log in offset order, so replaying the log rebuilds the
//! engine's state exactly. In Kafka mode a second log carries the engine's outcomes. The crate
//! knows nothing about the records: payloads are `Vec<u8>`, encoded by their owners.
//!
//! # Layout
//!
//! - [`LogWriter`] / [`LogReader`] (this file): the two traits every log implements, with
//!   [`LogRecord`], [`Appended`] and the boundary's one error type, [`LogError`] (`error.rs`).
//! - [`EmbeddedLog`] (`embedded.rs`): on local disk; a writer thread does group commit,
//!   one fsync per batch of concurrent appends (of its journal, `journal.rs`: a fixed-size
//!   file overwritten in place), which callers may also queue without waiting
//!   ([`LogWriter::start_append`]); its newest records stay in memory for the readers that
//!   follow it. Its records live in append-only segment files (`segments.rs`, one entry
//!   per commit, synced behind the journal), each in the format of `record_format.rs`
//!   (versioned, CRC-32C per record, hardware-accelerated by the `crc32c` crate). A
//!   RocksDB database beside them holds the log's identity and the tables it may host
//!   ([`HostedTables`]), which a [`CommitCompanion`] writes in the log's own commits: what
//!   the records refer to, durable by the same fsync.
//! - [`KafkaLog`] (`kafka.rs`): a one-partition Kafka topic; an idempotent (optionally
//!   transactional) producer writes, an assigned consumer reads.
//! - [`EmbeddedLog::import`] (`import.rs`): an exact copy of another log's records (their
//!   offsets and timestamps) into an empty embedded log, for exact replays of a recording.
//! - [`MemoryLog`] (`memory.rs`): in memory, for simulation tests, with a seeded fault plan
//!   (failed, torn and unsynced appends, fencing, delayed visibility, crashes); it never
//!   blocks, so a single-threaded simulator can drive it on virtual time.
//!
//! # Guarantees
//!
//! - **Durable before acknowledged.** `append` returns only once its records are durable: the
//!   commit's entry in the embedded log's journal fsync'd (or its segment file, for a
//!   commit too large for the journal or a log without one), or acknowledged by all in-sync Kafka replicas (`acks=all`).
//!   The one exception is an embedded log opened with `sync_appends: false` (the outcomes
//!   log of `serve` and of an embedded `engine`, whose records are a function of the requests
//!   log): its appends survive a crash (of the process or of the machine) once
//!   [`LogReader::make_durable`] (or [`EmbeddedLog::sync`]) has returned, and a clean close.
//! - **Never read before durable.** An embedded reader sees a record only after the fsync that
//!   wrote it has returned (only after its write, without `sync_appends`). A Kafka reader sees records below the high watermark, i.e.
//!   replicated to the in-sync set, and (with `read_committed`) only committed transactions.
//! - **One order.** Offsets start at 0 and increase by one per record; each `append`'s records
//!   are contiguous and in the order given. Readers return records in offset order with no gaps
//!   (embedded, and Kafka without transactions). A transactional Kafka writer leaves one offset
//!   per commit marker unused, so offsets there increase with gaps.
//! - **Timestamps are assigned by the log**, not the caller: wall-clock milliseconds made
//!   non-decreasing by the embedded writer (`max(previous, now)`, also across restarts), or the
//!   broker's `LogAppendTime` in Kafka. The one exception is [`EmbeddedLog::import`], which
//!   writes a whole log's records with their own times into an empty log.
//! - **Corruption is loud.** Every embedded record carries a checksum over its offset and bytes;
//!   a mismatch, an unknown format version or a missing offset is [`LogError::Corrupt`]. Kafka
//!   consumers verify Kafka's own CRCs (`check.crcs=true`).
//! - **Limits everywhere.** Payload size, records per append, records and bytes per group
//!   commit, and the depth of the writer's queue are all bounded by the options.
//!
//! - **Every log has an identity** (`log_id`): `embedded:<random id>` written once into the
//!   embedded log's directory, or `kafka:<cluster id>/<topic>`. Snapshots record the identity of
//!   the requests log they were taken from, so a snapshot is never applied to another log.
//! - **A Kafka topic is checked before use.** `KafkaLog::open` refuses a topic that cannot hold
//!   a log (more than one partition, `cleanup.policy` other than `delete`, a retention shorter
//!   than configured, `CreateTime` timestamps, fewer replicas or in-sync replicas than
//!   configured, unclean leader election) with [`LogError::TopicSetting`], naming the setting.
//!
//! Recovery of the embedded log walks its newest segment files from what their last sync
//! made durable, cutting off a commit torn by a crash (it was never acknowledged), then
//! writes back the journal's entries past them, and the hosted tables' writes RocksDB lost
//! (its write-ahead log is recovered to a point in time, and commits do not sync it). The
//! end offset is the last record's plus one. A log a version before segment files wrote
//! (its records in RocksDB) has them moved into segment files when first opened.

mod embedded;
mod error;
mod import;
mod journal;
mod kafka;
mod memory;
mod record_format;
mod segments;

use std::sync::Arc;
use std::time::Duration;

pub use embedded::{
    EmbeddedLog, EmbeddedOptions, EmbeddedReader, EmbeddedWriter, GroupCommits, HostedTables,
    TableBatch, GROUP_COMMIT_DELAY_MAX_US,
};
pub use error::LogError;
pub use import::{ImportError, Imported};
pub use journal::{journal_size_allowed, JOURNAL_SIZE_MAX_BYTES, JOURNAL_SIZE_MIN_BYTES};
pub use kafka::{KafkaLog, KafkaOptions, KafkaReader, KafkaWriter, ReplicaAnnouncer};
pub use memory::{FaultCounts, FaultPlan, MemoryLog, MemoryReader, MemoryWriter};
pub use segments::{newest_record_file_synced, SEGMENT_SIZE_MAX_BYTES, SEGMENT_SIZE_MIN_BYTES};

/// The Kafka broker a test runs against: `KAFKA_BOOTSTRAP`, the one rule every crate's
/// Kafka tests follow. Unset on a developer's machine, the test is skipped with a note
/// naming `what`; under `CI=true` an unset `KAFKA_BOOTSTRAP` fails it instead, so CI never
/// passes without having run the Kafka tests (`scripts/test.sh` starts the broker).
/// Reads `reader` from its position until `stop` is set, handing every record to `apply`
/// in log order, `records_max` at a time, waiting at most `wait` for each poll (so a stop is
/// seen within it). A read error is logged and retried after `wait`. The followers of the
/// control log (each ingress's, the effects worker's) run this loop.
pub fn follow(
    reader: &mut dyn LogReader,
    stop: &std::sync::atomic::AtomicBool,
    records_max: usize,
    wait: Duration,
    what: &str,
    mut apply: impl FnMut(&LogRecord),
) {
    while !stop.load(std::sync::atomic::Ordering::Acquire) {
        match reader.poll(records_max, wait) {
            Ok(records) => records.iter().for_each(&mut apply),
            Err(error) => {
                tracing::warn!(%error, "cannot read the {what}; retrying");
                std::thread::sleep(wait);
            }
        }
    }
}

pub fn test_kafka_bootstrap(what: &str) -> Option<String> {
    match std::env::var("KAFKA_BOOTSTRAP") {
        Ok(servers) if !servers.is_empty() => Some(servers),
        _ if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "KAFKA_BOOTSTRAP is not set: CI must run {what} against a broker (scripts/kafka.sh start)"
        ),
        _ => {
            eprintln!("note: KAFKA_BOOTSTRAP is not set; {what} not run (scripts/kafka.sh start)");
            None
        }
    }
}

/// How every embedded log's id starts ([`EmbeddedLog::log_id`]).
pub const EMBEDDED_LOG_ID_PREFIX: &str = "embedded:";
/// How every Kafka log's id starts ([`KafkaLog::log_id`]): then the cluster id, `/`, the topic.
pub const KAFKA_LOG_ID_PREFIX: &str = "kafka:";

/// One record read from a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    pub offset: u64,
    /// Milliseconds since the Unix epoch, assigned by the log when the record was written.
    pub timestamp_ms: u64,
    pub payload: Vec<u8>,
}

/// Where one appended record landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub offset: u64,
    pub timestamp_ms: u64,
}

/// Appends records. Implementations are cheap, cloneable handles (an `Arc` inside) shared by
/// many ingress threads.
pub trait LogWriter: Send + Sync {
    /// Appends `payloads` as consecutive records, in order, and returns once all of them are
    /// durable: one [`Appended`] per payload, same order. An empty `payloads` is a no-op.
    ///
    /// On error none of the records may be assumed written, but some may have been (a Kafka
    /// delivery can fail after a partial write, or a fsync can fail after the write).
    fn append(&self, payloads: Vec<Vec<u8>>) -> Result<Vec<Appended>, LogError>;

    /// Offset of the next record to be written.
    fn end_offset(&self) -> Result<u64, LogError>;

    /// Starts an append without waiting for it: `done` is called, on a thread of the log,
    /// with what [`LogWriter::append`] would have returned. Hands both back when the append
    /// cannot start without blocking (the log's queue is full, or the log has no such path,
    /// as by default): append from a thread of the caller's own then.
    fn start_append(&self, payloads: Vec<Vec<u8>>, done: AppendDone) -> Result<(), StartRefused> {
        Err(StartRefused { payloads, done })
    }

    /// Runs `hook` on the log's writer thread before each durable commit from now on, for
    /// as long as the caller keeps it (the log holds it weakly); its error refuses that
    /// commit whole with [`LogError::BeforeCommit`]. Says whether it will: false when this
    /// log commits nothing in this process (Kafka: the caller runs the hook itself before
    /// appending) or when its appends are not durable anyway. The ingress's personal-data
    /// store makes its new entries durable here: one trip through the writer for a new
    /// user's entry and request, not two group commits in series.
    fn sync_before_commit(&self, hook: &BeforeCommit) -> bool {
        let _ = hook;
        false
    }

    /// The tables this log keeps beside its records, in its own storage, when it was opened
    /// with some ([`EmbeddedOptions::hosted_tables`]) and its commits are durable: a
    /// [`CommitCompanion`] writing there rides the log's own commits (one fsync for both).
    fn hosted_tables(&self) -> Option<HostedTables> {
        None
    }
}

/// What must be made durable before a commit of the log ([`LogWriter::sync_before_commit`]).
pub type BeforeCommit = Arc<BeforeCommitFn>;

/// The trait object behind a [`BeforeCommit`].
pub type BeforeCommitFn = dyn CommitCompanion;

/// Runs around the commits of a log whose records refer to something kept elsewhere (the
/// ingress's personal-data store: a record names a user whose entry must be durable first).
/// Both calls run on the log's writer thread: they may block on the disk, briefly.
pub trait CommitCompanion: Send + Sync {
    /// Before a commit: makes durable what the commit's records may refer to, either by a
    /// write of its own or, when `tables` is the commit's own batch of tables it keeps in
    /// this log ([`HostedTables`], [`TableBatch::is_of`]), by adding its writes to the
    /// commit (atomic with the records, durable with the same fsync). Returns whether it
    /// added anything: then [`CommitCompanion::after_commit`] follows. An error refuses the
    /// commit whole ([`LogError::BeforeCommit`]). `tables` is `None` where the log has no
    /// tables (Kafka, whose appender threads call this before each append).
    fn before_commit(&self, tables: Option<&mut TableBatch<'_>>) -> Result<bool, String>;

    /// After a commit to which [`CommitCompanion::before_commit`] added writes: whether
    /// they are durable (false: the commit was refused or failed, and nothing of it was
    /// written).
    fn after_commit(&self, durable: bool) {
        let _ = durable;
    }
}

/// A companion from a function that makes its writes durable itself.
impl<F> CommitCompanion for F
where
    F: Fn() -> Result<(), String> + Send + Sync,
{
    fn before_commit(&self, _tables: Option<&mut TableBatch<'_>>) -> Result<bool, String> {
        self().map(|()| false)
    }
}

/// Called once with an append's result ([`LogWriter::start_append`]). It runs on the log's
/// own thread: it must not block.
pub type AppendDone = Box<dyn FnOnce(Result<Vec<Appended>, LogError>) + Send>;

/// An append [`LogWriter::start_append`] could not start, handed back.
pub struct StartRefused {
    pub payloads: Vec<Vec<u8>>,
    pub done: AppendDone,
}

/// Reads records in offset order. Owned by one reader thread.
pub trait LogReader: Send {
    /// Moves the position to `offset` (at most the end offset: seeking to the end waits for the
    /// next record).
    fn seek(&mut self, offset: u64) -> Result<(), LogError>;

    /// Returns up to `max_records` records starting at the position and advances past them.
    /// Blocks up to `timeout` for the first one; returns an empty vector on timeout. Wakes
    /// promptly when a record is appended.
    fn poll(&mut self, max_records: usize, timeout: Duration) -> Result<Vec<LogRecord>, LogError>;

    /// [`LogReader::poll`], lending each record to `each` (its offset, timestamp and
    /// payload) in order instead of returning copies; returns how many there were. For a
    /// reader that only decodes them: the embedded log lends its newest records from its
    /// tail cache without copying them (a reader of `serve`'s pipeline copied every
    /// record it read).
    fn poll_each(
        &mut self,
        max_records: usize,
        timeout: Duration,
        each: &mut dyn FnMut(u64, u64, &[u8]),
    ) -> Result<usize, LogError> {
        let records = self.poll(max_records, timeout)?;
        for record in &records {
            each(record.offset, record.timestamp_ms, &record.payload);
        }
        Ok(records.len())
    }

    /// Offset of the next record `poll` will return (or wait for).
    fn position(&self) -> u64;

    /// Offset of the next record to be written.
    fn end_offset(&self) -> Result<u64, LogError>;

    /// What makes every record this reader can see durable, callable from another thread:
    /// a snapshot thread calls it before it records a position in the log, so the reader's
    /// own thread (an ingress's follower, answering requests) never waits for that flush.
    /// `None` where there is nothing to do: every log but an embedded one shows only
    /// durable records.
    fn durability(&self) -> Option<Durability> {
        None
    }

    /// Makes every record this reader can see durable, on this thread.
    fn make_durable(&self) -> Result<(), LogError> {
        self.durability()
            .map_or(Ok(()), |durability| durability.sync())
    }
}

/// How far a log's records are durable: for whoever acts on records a speculative reader
/// ([`EmbeddedLog::speculative_reader`]) handed over before they were, and must let nothing
/// derived from them out of the process until they are. Clones share one log's.
#[derive(Clone)]
pub struct DurableEnd(Arc<dyn DurableWatch>);

/// What a [`DurableEnd`] asks of its log.
pub trait DurableWatch: Send + Sync {
    /// Whether the record at `offset` is durable. An error once a commit's sync failed
    /// and the record is not durable: it may never be, and what was derived from it must
    /// be dropped (the process restarts from the log).
    fn covers(&self, offset: u64) -> Result<bool, LogError>;
    /// Waits up to `timeout` until the record at `offset` is durable: true once it is,
    /// false when the time ran out first. An error as for `covers`.
    fn wait_for(&self, offset: u64, timeout: Duration) -> Result<bool, LogError>;
}

impl DurableEnd {
    pub fn new(watch: impl DurableWatch + 'static) -> DurableEnd {
        DurableEnd(Arc::new(watch))
    }

    /// See [`DurableWatch::covers`].
    pub fn covers(&self, offset: u64) -> Result<bool, LogError> {
        self.0.covers(offset)
    }

    /// See [`DurableWatch::wait_for`].
    pub fn wait_for(&self, offset: u64, timeout: Duration) -> Result<bool, LogError> {
        self.0.wait_for(offset, timeout)
    }
}

/// A handle that makes the records a reader could see durable ([`LogReader::durability`]),
/// from any thread.
#[derive(Clone)]
pub struct Durability(Arc<dyn Fn() -> Result<(), LogError> + Send + Sync>);

impl Durability {
    pub fn new(sync: impl Fn() -> Result<(), LogError> + Send + Sync + 'static) -> Durability {
        Durability(Arc::new(sync))
    }

    /// Makes every record appended so far durable (and so every one the reader had seen
    /// when it handed this out).
    pub fn sync(&self) -> Result<(), LogError> {
        (self.0)()
    }
}
