//! The embedded log: segment files and a RocksDB database on local disk, one writer thread
//! doing group commit.
//!
//! ```text
//!  appenders ──(payloads, reply)──► bounded channel ──► writer thread
//!                                                        │ under load, wait group_commit_delay_us
//!                                                        │ (from the commit before)
//!                                                        │ drain up to the batch caps
//!                                                        │ the records as one segment entry:
//!                                                        │ to the journal, and to the newest
//!                                                        │ segment file, unsynced; the hosted
//!                                                        │ tables' writes to RocksDB, unsynced
//!                                                        │ fsync the journal
//!                                                        │ publish end_offset, notify readers
//!  appenders ◄──────── Vec<Appended> ───────────────────┘
//!  readers: wait on a Condvar for end_offset to pass their position, then take the records
//!           from the tail cache, or read them from the segment files
//! ```
//!
//! Readers never look past the published `end_offset`, which the writer thread advances only
//! after the commit is durable (the journal's `fdatasync`, `journal.rs`; for a commit too
//! large for it, a sync of the segment files, `segments.rs`): a reader cannot see a record
//! that is not durable.
//! A speculative reader ([`EmbeddedLog::speculative_reader`], the engine's) is the one
//! exception: it sees a journaled commit once written, while its `fdatasync` is in flight,
//! and its owner holds back what it derives until [`DurableEnd`] covers it.
//! A log opened with `sync_appends: false` (the outcomes log, which is re-derived from the
//! requests log after a crash) skips the fsync, and commits on its caller's thread: its
//! records survive a crash (of the process or of the machine) only once
//! [`EmbeddedLog::sync`] has returned, and a clean close.
//!
//! Under load (the commit before held at least `group_commit_siblings` appends) the writer
//! waits `group_commit_delay_us` from the end of the commit before (or, when no append
//! came in that time, from the first one to come) before it drains its queue, so that
//! commits gather more appends: each fsync and each thread woken after it (the engine's
//! reader, the engine, the publisher, the follower) then serves more requests. A lone
//! append never waits.
//!
//! The newest group commits also stay in memory (`tail_cache_records_max`), so a reader that
//! follows the writer (the engine's reader, an outcome follower) takes them from there instead
//! of reading the files again and checking and decoding what the writer just encoded.
//!
//! RocksDB holds the rest: the `meta` column family the log's identity
//! ([`EmbeddedLog::log_id`]), a random id written once, when a log is first opened by a
//! version that knows it, and kept for the life of the directory; hosted tables
//! ([`EmbeddedOptions::hosted_tables`]) are further column families, written in the
//! commits by their companions ([`crate::CommitCompanion`]). Versions before segment files
//! kept the records in its default family, from which opening moves them.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::Sender;
use rocksdb::{
    DBCompressionType, DBRecoveryMode, Direction, IteratorMode, ReadOptions, WriteBatch,
    WriteOptions, DB,
};

use crate::journal::{self, Journal};
use crate::record_format::{decode_key, decode_value, encode_key};
use crate::segments::{self, Cursor, Segments, SEGMENT_SIZE_MAX_BYTES, SEGMENT_SIZE_MIN_BYTES};
use crate::EMBEDDED_LOG_ID_PREFIX;
use crate::{
    AppendDone, Appended, BeforeCommit, DurableEnd, LogError, LogReader, LogRecord, LogWriter,
    StartRefused,
};

/// Limits of an [`EmbeddedLog`].
#[derive(Clone, Debug)]
pub struct EmbeddedOptions {
    /// Largest payload accepted by `append`; bigger ones fail with `PayloadTooLarge` before
    /// touching the disk.
    pub payload_size_max_bytes: usize,
    /// Most records in one `append` call. Also bounds the memory a single caller can pin.
    pub append_records_max: usize,
    /// The writer stops draining the queue once a batch holds this many records (one append
    /// more may push it over: appends are never split).
    pub batch_records_max: usize,
    /// Same as `batch_records_max`, in payload bytes.
    pub batch_size_max_bytes: usize,
    /// Appends waiting for the writer thread; further appenders block (back-pressure).
    pub queue_depth_max: usize,
    /// Every group commit is fsync'd before it is acknowledged or read (true: a log that is
    /// the source of truth). False for a log whose records can be derived again from
    /// another (the outcomes log): appends then return once written to the operating
    /// system, and [`EmbeddedLog::sync`] makes them durable.
    pub sync_appends: bool,
    /// The newest records kept in memory for readers that follow the writer (0: none).
    pub tail_cache_records_max: usize,
    /// Same as `tail_cache_records_max`, in payload bytes.
    pub tail_cache_bytes_max: usize,
    /// Tables (RocksDB column families) kept in the log's database beside its records, for
    /// what must be durable with them ([`HostedTables`], [`crate::CommitCompanion`]):
    /// created when missing. Tables made by an earlier opening are opened whether named
    /// here or not.
    pub hosted_tables: Vec<String>,
    /// Size of the journal of a log with `sync_appends` (`journal.rs`): a file of fixed
    /// size whose `fdatasync`, an overwrite, acknowledges each group commit, instead of an
    /// `fdatasync` of the growing segment file (which writes the file's size too).
    /// 0: no journal, every commit syncs the segment files. A commit larger than half of
    /// it is synced so too.
    pub journal_size_bytes: u64,
    /// Under load, how long the writer thread waits from the end of the commit before
    /// (or, when no append came meanwhile, from the first to come) before it drains the
    /// queue and commits (PostgreSQL's `commit_delay`): a commit then
    /// gathers more appends, so each pays a smaller share of the fsync and of every
    /// hand-off after it (reader, engine, publisher, follower wake once per commit), at up
    /// to this much more latency. 0: commit at once. At most [`GROUP_COMMIT_DELAY_MAX_US`].
    pub group_commit_delay_us: u64,
    /// The load that turns the delay on (PostgreSQL's `commit_siblings`): a commit waits
    /// only when the one before it held at least this many appends, so a lone append, or a
    /// log written now and then (the control log), never waits. At least 1.
    pub group_commit_siblings: usize,
    /// Size of the record files (`segments.rs`): a commit starts a new file once the newest
    /// holds this much. Within [`SEGMENT_SIZE_MIN_BYTES`]..=[`SEGMENT_SIZE_MAX_BYTES`].
    pub segment_size_bytes: u64,
}

/// The longest [`EmbeddedOptions::group_commit_delay_us`]: 100 ms (PostgreSQL's bound for
/// its `commit_delay`).
pub const GROUP_COMMIT_DELAY_MAX_US: u64 = 100_000;

/// Whether a commit waits [`EmbeddedOptions::group_commit_delay_us`] before it drains the
/// queue: only under load, when the commit before it held at least `siblings` appends.
pub(crate) fn group_commit_waits(delay_us: u64, siblings: usize, previous_appends: usize) -> bool {
    delay_us > 0 && previous_appends >= siblings
}

impl Default for EmbeddedOptions {
    fn default() -> EmbeddedOptions {
        EmbeddedOptions {
            payload_size_max_bytes: 1024 * 1024,
            append_records_max: 4096,
            batch_records_max: 8192,
            batch_size_max_bytes: 16 * 1024 * 1024,
            queue_depth_max: 1024,
            sync_appends: true,
            tail_cache_records_max: 65_536,
            tail_cache_bytes_max: 32 * 1024 * 1024,
            hosted_tables: Vec::new(),
            journal_size_bytes: 8 * 1024 * 1024,
            // Measured in `serve` under 64 hold + confirm clients (BENCHMARKS.md, session
            // 32): commits of about 48 appends instead of 24, 6% less CPU per request.
            group_commit_delay_us: 400,
            group_commit_siblings: 8,
            segment_size_bytes: 64 * 1024 * 1024,
        }
    }
}

impl EmbeddedOptions {
    fn assert_valid(&self) {
        assert!(self.payload_size_max_bytes > 0);
        assert!(self.append_records_max > 0);
        assert!(
            self.batch_records_max >= self.append_records_max,
            "one append must fit a batch"
        );
        assert!(
            self.batch_size_max_bytes >= self.payload_size_max_bytes,
            "one payload must fit a batch"
        );
        assert!(self.queue_depth_max > 0);
        assert!(self.group_commit_delay_us <= GROUP_COMMIT_DELAY_MAX_US);
        assert!(self.group_commit_siblings > 0);
        assert!(
            (SEGMENT_SIZE_MIN_BYTES..=SEGMENT_SIZE_MAX_BYTES).contains(&self.segment_size_bytes),
            "record files of some size, bounded"
        );
        assert!(
            journal::journal_size_allowed(self.journal_size_bytes),
            "a journal holds two halves of some size, and is bounded"
        );
        for table in &self.hosted_tables {
            assert!(
                !table.is_empty()
                    && table != META_COLUMN_FAMILY
                    && table != rocksdb::DEFAULT_COLUMN_FAMILY_NAME,
                "a hosted table is named apart from the log's own families"
            );
        }
    }
}

/// An open embedded log. Hands out one cloneable [`EmbeddedWriter`] per caller and any number
/// of [`EmbeddedReader`]s.
///
/// The writer thread stops (after answering every queued append) when this value and every
/// writer are dropped; the RocksDB handle closes when the readers are dropped too. Only then can
/// the same directory be opened again.
pub struct EmbeddedLog {
    writer: EmbeddedWriter,
    log_id: String,
}

/// The column family of the log's own facts (today its identity), apart from the records.
const META_COLUMN_FAMILY: &str = "meta";
const LOG_ID_KEY: &[u8] = b"log_id";

/// Appends to an [`EmbeddedLog`]. Clone it freely: all clones feed the same writer thread.
#[derive(Clone)]
pub struct EmbeddedWriter {
    handle: Arc<WriterHandle>,
}

/// Reads an [`EmbeddedLog`] in offset order, from offset 0 unless told to `seek`.
pub struct EmbeddedReader {
    shared: Arc<Shared>,
    position: u64,
    /// Where it last read the record files (a reader reading on starts there).
    cursor: Option<Cursor>,
    /// Sees records once written, before their commit is durable
    /// ([`EmbeddedLog::speculative_reader`]).
    speculative: bool,
}

/// How far an embedded log's records are durable ([`DurableEnd`] for a speculative
/// reader).
struct EmbeddedDurableEnd {
    shared: Arc<Shared>,
}

impl crate::DurableWatch for EmbeddedDurableEnd {
    fn covers(&self, offset: u64) -> Result<bool, LogError> {
        covers(&self.shared.lock_published(), offset)
    }

    fn wait_for(&self, offset: u64, timeout: Duration) -> Result<bool, LogError> {
        let deadline = Instant::now().checked_add(timeout);
        let mut published = self.shared.lock_published();
        loop {
            if covers(&published, offset)? {
                return Ok(true);
            }
            let remaining = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::MAX,
            };
            if remaining.is_zero() {
                return Ok(false);
            }
            published = self
                .shared
                .published_changed
                .wait_timeout(published, remaining)
                .expect("published state poisoned: the writer thread panicked")
                .0;
        }
    }
}

fn covers(published: &Published, offset: u64) -> Result<bool, LogError> {
    if offset < published.end_offset {
        return Ok(true);
    }
    match &published.failed {
        Some(reason) => Err(LogError::Journal(format!(
            "the commit of offset {offset} was read before it was durable, and its sync failed: {reason}"
        ))),
        // Every commit ends durable or failed before the writer stops.
        None if published.closed => Err(LogError::Closed),
        None => Ok(false),
    }
}

/// State shared by the writer thread and the readers.
struct Shared {
    db: DB,
    /// The records (`segments.rs`).
    segments: Segments,
    published: Mutex<Published>,
    /// Signalled when `end_offset` moves (and on failure or close): what plain readers
    /// and [`DurableEnd`]s wait for.
    published_changed: Condvar,
    /// Signalled when `written_offset` moves (and on failure or close): what speculative
    /// readers wait for. Apart, so that neither kind wakes for the other's news: a journaled
    /// commit moves the two at its write and at its sync, each a futex wake-up and a
    /// thread switch for every waiter told.
    written_changed: Condvar,
    /// The newest group commits, oldest first, every one written (readers never look past
    /// `end_offset`, or a speculative one past `written_offset`).
    tail: Mutex<TailCache>,
    /// Made durable before each synced commit ([`LogWriter::sync_before_commit`]): weak, so
    /// a hook ends with whoever set it (an ingress stopped and started again on this log).
    before_commit: Mutex<Vec<std::sync::Weak<crate::BeforeCommitFn>>>,
    /// The writer's state, for [`HostedTables::retire_deleted`] to scrub its journal: weak,
    /// since the writer's journal holds this (its syncing thread syncs the database).
    core: std::sync::OnceLock<std::sync::Weak<Mutex<WriterCore>>>,
    /// Group commits the writer thread made, and how many of them waited
    /// ([`EmbeddedOptions::group_commit_delay_us`]).
    group_commits: AtomicU64,
    delayed_commits: AtomicU64,
}

/// How the writer thread's commits went ([`EmbeddedLog::group_commits`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupCommits {
    /// Commits made by the writer thread (a log without `sync_appends` commits on its
    /// callers' threads, not counted).
    pub commits: u64,
    /// Of those, the commits that waited for more appends before they drained the queue.
    pub delayed: u64,
}

/// The newest records, as the writer thread wrote them.
#[derive(Default)]
struct TailCache {
    commits: VecDeque<CachedCommit>,
    records: usize,
    bytes: usize,
    records_max: usize,
    bytes_max: usize,
}

/// A cached commit as a reader takes it: (first offset, timestamp, payloads).
type CommitRef = (u64, u64, Arc<Vec<Vec<u8>>>);

/// One group commit's records: offsets `first_offset..first_offset + payloads.len()`.
struct CachedCommit {
    first_offset: u64,
    timestamp_ms: u64,
    payloads: Arc<Vec<Vec<u8>>>,
    bytes: usize,
}

impl TailCache {
    fn push(&mut self, commit: CachedCommit) {
        if commit.payloads.len() > self.records_max || commit.bytes > self.bytes_max {
            // Larger than the whole cache: readers read it from the files, and nothing older
            // may stay (the cache holds a contiguous run of offsets).
            self.commits.clear();
            (self.records, self.bytes) = (0, 0);
            return;
        }
        self.records += commit.payloads.len();
        self.bytes += commit.bytes;
        self.commits.push_back(commit);
        while self.records > self.records_max || self.bytes > self.bytes_max {
            let oldest = self
                .commits
                .pop_front()
                .expect("over the bounds, so not empty");
            self.records -= oldest.payloads.len();
            self.bytes -= oldest.bytes;
        }
    }

    /// The commits holding `[from, until)`, if the cache holds all of it.
    fn covering(&self, from: u64, until: u64) -> Option<Vec<CommitRef>> {
        let first = self.commits.front()?;
        if from < first.first_offset {
            return None;
        }
        // The commits are contiguous and in offset order: the first one ending past `from`
        // is found by bisection (a reader follows the newest commits, and a scan from the
        // oldest of up to 65,536 cached records cost every reader tens of microseconds per
        // read, under the lock the writer thread takes to publish).
        let start = self
            .commits
            .partition_point(|commit| commit.first_offset + commit.payloads.len() as u64 <= from);
        let found: Vec<_> = (self.commits.range(start..))
            .take_while(|commit| commit.first_offset < until)
            .map(|commit| {
                (
                    commit.first_offset,
                    commit.timestamp_ms,
                    Arc::clone(&commit.payloads),
                )
            })
            .collect();
        let last = found.last()?;
        (last.0 + last.2.len() as u64 >= until).then_some(found)
    }
}

/// What readers may see. Changed only by the writer thread.
struct Published {
    /// Offset of the next record to be written; every record below it is durable.
    end_offset: u64,
    /// Every record below it is written (to the segment file, the tail cache and the
    /// journal's file) but perhaps not yet durable: at least `end_offset`, and past it only
    /// while a commit's journal `fdatasync` is in flight. What a speculative reader sees
    /// ([`EmbeddedLog::speculative_reader`]).
    written_offset: u64,
    /// The writer thread has stopped: no record will ever be added.
    closed: bool,
    /// A commit's sync failed: the records in `end_offset..written_offset` may never become
    /// durable, and nothing else will be written.
    failed: Option<String>,
}

/// Owns the writer thread: dropping the last handle stops and joins it.
struct WriterHandle {
    /// std's bounded channel, not crossbeam's: the writer's blocking receive parks at once
    /// (crossbeam's spins with `sched_yield` first, which only batched by accident).
    sender: SyncSender<WriterMessage>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    core: Arc<Mutex<WriterCore>>,
    options: EmbeddedOptions,
}

enum WriterMessage {
    Append(AppendRequest),
    Shutdown,
}

struct AppendRequest {
    payloads: Vec<Vec<u8>>,
    reply: Reply,
}

/// Where an append's result goes.
enum Reply {
    /// A blocked `append` call.
    Channel(Sender<Result<Vec<Appended>, LogError>>),
    /// A `start_append`'s callback, called on the writer thread.
    Callback(AppendDone),
}

impl Reply {
    fn send(self, result: Result<Vec<Appended>, LogError>) {
        match self {
            // An appender that gave up is not an error.
            Reply::Channel(sender) => {
                let _ = sender.send(result);
            }
            Reply::Callback(done) => done(result),
        }
    }
}

impl EmbeddedLog {
    /// Opens (creating if needed) the log stored in `dir` and starts its writer thread.
    ///
    /// Recovery: the segment files are walked from what their last sync made durable, and a
    /// commit torn by a crash is cut off with everything after it (it was never
    /// acknowledged, since acknowledgement waits for the fsync); RocksDB replays its
    /// write-ahead log to a point in time. Then the journal's: its commits past the files'
    /// end, and the hosted tables' writes of those past RocksDB's, are written back, synced.
    /// The end offset is then the last record's plus one, and that record's checksum is
    /// verified. Records a version before segment files kept in RocksDB are moved into them.
    pub fn open(dir: impl AsRef<Path>, options: EmbeddedOptions) -> Result<EmbeddedLog, LogError> {
        options.assert_valid();
        let db = open_db(dir.as_ref(), &options.hosted_tables)?;
        let log_id = read_or_create_log_id(&db)?;
        let segments = Segments::open(dir.as_ref(), options.segment_size_bytes)?;
        recover_legacy_journal(&db, dir.as_ref(), &log_id, segments.written_end())?;
        migrate_legacy_records(&db, &segments)?;
        recover_journal(&db, dir.as_ref(), &log_id, &segments)?;
        let tail = Tail {
            end_offset: segments.written_end(),
            last_timestamp_ms: segments.last_timestamp_ms()?.unwrap_or(0),
        };
        tracing::info!(
            dir = %dir.as_ref().display(),
            end_offset = tail.end_offset,
            log_id,
            "embedded log opened"
        );

        let shared = Arc::new(Shared {
            db,
            segments,
            published: Mutex::new(Published {
                end_offset: tail.end_offset,
                written_offset: tail.end_offset,
                closed: false,
                failed: None,
            }),
            published_changed: Condvar::new(),
            written_changed: Condvar::new(),
            tail: Mutex::new(TailCache {
                records_max: options.tail_cache_records_max,
                bytes_max: options.tail_cache_bytes_max,
                ..TailCache::default()
            }),
            before_commit: Mutex::new(Vec::new()),
            core: std::sync::OnceLock::new(),
            group_commits: AtomicU64::new(0),
            delayed_commits: AtomicU64::new(0),
        });
        let journal = if options.sync_appends && options.journal_size_bytes > 0 {
            let syncing = Arc::clone(&shared);
            let journal = Journal::create(
                dir.as_ref(),
                options.journal_size_bytes,
                journal::segment_log_tag(&log_id),
                Box::new(move || syncing.sync().map_err(|error| error.to_string())),
            )
            .map_err(|error| LogError::Journal(format!("creating the journal: {error}")))?;
            Some(journal)
        } else {
            match std::fs::remove_file(dir.as_ref().join(journal::JOURNAL_FILE)) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    return Err(LogError::Journal(format!("removing the journal: {error}")))
                }
                _ => None, // recovered above: nothing in it is missing from the files
            }
        };
        let (sender, receiver) = std::sync::mpsc::sync_channel(options.queue_depth_max);
        let core = Arc::new(Mutex::new(WriterCore {
            shared: Arc::clone(&shared),
            journal,
            sync_appends: options.sync_appends,
            next_offset: tail.end_offset,
            last_timestamp_ms: tail.last_timestamp_ms,
            failure: None,
            entry: Vec::new(),
            #[cfg(test)]
            before_sync: None,
        }));
        assert!(
            shared.core.set(Arc::downgrade(&core)).is_ok(),
            "set once, here"
        );
        let writer_thread = WriterThread {
            receiver,
            batch_records_max: options.batch_records_max,
            batch_size_max_bytes: options.batch_size_max_bytes,
            group_commit_delay_us: options.group_commit_delay_us,
            group_commit_siblings: options.group_commit_siblings,
            core: Arc::clone(&core),
        };
        let thread = thread::Builder::new()
            .name("requestlog-writer".into())
            .spawn(move || writer_thread.run())
            .map_err(|_| LogError::Closed)?;
        let handle = WriterHandle {
            sender,
            thread: Some(thread),
            shared,
            core,
            options,
        };
        Ok(EmbeddedLog {
            writer: EmbeddedWriter {
                handle: Arc::new(handle),
            },
            log_id,
        })
    }

    /// The identity of this log: `embedded:` and 32 hex digits, random, written to the log's
    /// directory the first time it was opened and the same on every later open. Snapshots
    /// record it, so a snapshot is never loaded against another log.
    pub fn log_id(&self) -> &str {
        &self.log_id
    }

    /// A handle for appending; clones share the writer thread.
    pub fn writer(&self) -> EmbeddedWriter {
        self.writer.clone()
    }

    /// A reader positioned at offset 0.
    pub fn reader(&self) -> EmbeddedReader {
        EmbeddedReader {
            shared: Arc::clone(&self.writer.handle.shared),
            position: 0,
            cursor: None,
            speculative: false,
        }
    }

    /// A reader positioned at offset 0 that sees each group commit once it is written,
    /// while its `fdatasync` is still in flight (LMAX's business logic beside its
    /// journaller): the engine applies a batch in the time its records take to become
    /// durable. Whoever reads with it must release nothing derived from a record before
    /// [`DurableEnd`] covers it; if the sync fails, the reader's `poll` and the
    /// [`DurableEnd`] fail, and what was derived must be thrown away. A log that commits
    /// without its journal (none, or a commit too large for it) shows those commits only
    /// once durable.
    pub fn speculative_reader(&self) -> (EmbeddedReader, DurableEnd) {
        let shared = Arc::clone(&self.writer.handle.shared);
        let durable = DurableEnd::new(EmbeddedDurableEnd {
            shared: Arc::clone(&shared),
        });
        let reader = EmbeddedReader {
            shared,
            position: 0,
            cursor: None,
            speculative: true,
        };
        (reader, durable)
    }

    /// Offset of the next record to be written.
    pub fn end_offset(&self) -> u64 {
        self.writer.handle.shared.lock_published().end_offset
    }

    /// How many group commits the writer thread made, and how many of them waited.
    pub fn group_commits(&self) -> GroupCommits {
        let shared = &self.writer.handle.shared;
        GroupCommits {
            commits: shared.group_commits.load(Ordering::Relaxed),
            delayed: shared.delayed_commits.load(Ordering::Relaxed),
        }
    }

    /// Makes every record appended so far durable (fsync of the segment files written
    /// since the last, and of RocksDB's write-ahead log). A log with `sync_appends` has its
    /// appends durable already (by the journal); this makes the files hold them too.
    pub fn sync(&self) -> Result<(), LogError> {
        self.writer.handle.shared.sync()
    }
}

impl LogWriter for EmbeddedWriter {
    fn append(&self, payloads: Vec<Vec<u8>>) -> Result<Vec<Appended>, LogError> {
        if payloads.is_empty() {
            return Ok(Vec::new());
        }
        check_append_limits(&payloads, &self.handle.options)?;
        let (reply, replied) = crossbeam_channel::bounded(1);
        let count = payloads.len();
        let request = AppendRequest {
            payloads,
            reply: Reply::Channel(reply),
        };
        if self.handle.options.sync_appends {
            self.handle
                .sender
                .send(WriterMessage::Append(request))
                .map_err(|_| LogError::Closed)?;
        } else {
            lock_core(&self.handle.core).commit(vec![request]);
        }
        let appended = replied.recv().map_err(|_| LogError::Closed)??;
        assert_eq!(appended.len(), count);
        Ok(appended)
    }

    fn end_offset(&self) -> Result<u64, LogError> {
        Ok(self.handle.shared.lock_published().end_offset)
    }

    fn hosted_tables(&self) -> Option<HostedTables> {
        let names = &self.handle.options.hosted_tables;
        (self.handle.options.sync_appends && !names.is_empty()).then(|| HostedTables {
            shared: Arc::clone(&self.handle.shared),
            names: names.clone().into(),
        })
    }

    /// Taken on logs whose appends are synced (the writer thread's group commit), for as
    /// long as the caller keeps `hook`.
    fn sync_before_commit(&self, hook: &BeforeCommit) -> bool {
        if !self.handle.options.sync_appends {
            return false;
        }
        self.handle
            .shared
            .before_commit
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(Arc::downgrade(hook));
        true
    }

    /// Queues the append for the writer thread, which calls `done` after its group commit:
    /// no thread waits in between. Handed back when the queue is full.
    fn start_append(&self, payloads: Vec<Vec<u8>>, done: AppendDone) -> Result<(), StartRefused> {
        if payloads.is_empty() {
            done(Ok(Vec::new()));
            return Ok(());
        }
        if let Err(error) = check_append_limits(&payloads, &self.handle.options) {
            done(Err(error));
            return Ok(());
        }
        let request = AppendRequest {
            payloads,
            reply: Reply::Callback(done),
        };
        match self.handle.sender.try_send(WriterMessage::Append(request)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(refused) | TrySendError::Disconnected(refused)) => {
                let WriterMessage::Append(request) = refused else {
                    unreachable!("an append was sent")
                };
                let Reply::Callback(done) = request.reply else {
                    unreachable!("a callback was sent")
                };
                Err(StartRefused {
                    payloads: request.payloads,
                    done,
                })
            }
        }
    }
}

fn check_append_limits(payloads: &[Vec<u8>], options: &EmbeddedOptions) -> Result<(), LogError> {
    crate::error::check_append_limits(
        payloads,
        options.append_records_max,
        options.payload_size_max_bytes,
    )
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        // No appender is left (this is the last handle), so Shutdown is the last message: the
        // writer answers everything queued before it, then stops.
        let _ = self.sender.send(WriterMessage::Shutdown);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("embedded log writer thread panicked");
            }
        }
        // A clean close leaves the record files durable, and says so in their `SYNCED`:
        // the next opening walks no more than the newest file.
        if let Err(error) = self.shared.segments.sync() {
            tracing::warn!(%error, "embedded log: syncing the record files at close failed");
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Closing hands the write-ahead log's buffer to the file (`set_manual_wal_flush`): a
        // log closed and opened again by the same process keeps what it held.
        if let Err(error) = self.db.flush_wal(false) {
            tracing::warn!(%error, "embedded log: writing RocksDB's log buffer at close failed");
        }
    }
}

impl Shared {
    /// A hosted table's family: one the log was opened with (asked for another, a bug).
    fn family(&self, table: &str) -> &rocksdb::ColumnFamily {
        assert!(
            table != META_COLUMN_FAMILY && table != rocksdb::DEFAULT_COLUMN_FAMILY_NAME,
            "not a hosted table: {table}"
        );
        self.db
            .cf_handle(table)
            .unwrap_or_else(|| panic!("the log hosts no table {table}"))
    }

    /// Makes everything written durable: the record files, then RocksDB's log (the
    /// hosted tables).
    fn sync(&self) -> Result<(), LogError> {
        self.segments.sync()?;
        self.db.flush_wal(true)?;
        Ok(())
    }

    fn lock_tail(&self) -> MutexGuard<'_, TailCache> {
        self.tail
            .lock()
            .expect("tail cache poisoned: the writer thread panicked")
    }

    fn lock_published(&self) -> MutexGuard<'_, Published> {
        self.published
            .lock()
            .expect("published state poisoned: the writer thread panicked")
    }
}

/// The log's RocksDB, as every opener of an embedded log opens it (the log itself, and
/// [`EmbeddedLog::import`] in `import.rs`): its records (the default column family), its
/// `meta` family, every hosted table it already has (RocksDB refuses to open a database
/// without all of its families) and the `hosted` ones, created if missing.
pub(crate) fn open_db(dir: &Path, hosted: &[String]) -> Result<DB, LogError> {
    let mut db_options = rocksdb::Options::default();
    db_options.create_if_missing(true);
    db_options.set_paranoid_checks(true);
    db_options.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
    db_options.set_compression_type(DBCompressionType::Lz4);
    db_options.create_missing_column_families(true);
    // The hosted tables' hashed memtables take writes one at a time; so does the log's
    // writer thread anyway.
    db_options.set_allow_concurrent_memtable_write(false);
    // RocksDB's write-ahead log keeps its appends in its own buffer, written to the file
    // when the buffer fills, by a synced write, or by `flush_wal` (`Shared::sync`, the
    // journal's syncing thread, the log's drop), not by every write. Perf: a `write(2)`
    // per commit of each log (the requests log's writer, the outcomes log's publisher)
    // was a fifth of RocksDB's share of their threads under load (when it held the
    // records). Nothing relies on an unsynced write reaching the file: a synced log's
    // commits are durable by its journal, which writes back whatever RocksDB lost, in a
    // crash of the process as of the machine.
    db_options.set_manual_wal_flush(true);
    // A new directory has no families to list.
    let existing = DB::list_cf(&db_options, dir).unwrap_or_default();
    let mut tables: Vec<String> = existing
        .into_iter()
        .chain(hosted.iter().cloned())
        .filter(|name| name != META_COLUMN_FAMILY && name != rocksdb::DEFAULT_COLUMN_FAMILY_NAME)
        .collect();
    tables.sort();
    tables.dedup();
    let families = [META_COLUMN_FAMILY.to_string()]
        .into_iter()
        .map(|name| rocksdb::ColumnFamilyDescriptor::new(name, rocksdb::Options::default()))
        .chain(
            tables
                .into_iter()
                .map(|name| rocksdb::ColumnFamilyDescriptor::new(name, hosted_table_options())),
        );
    Ok(DB::open_cf_descriptors(&db_options, dir, families)?)
}

/// A hosted table's options: tables of small entries looked up by key, most often a key
/// that is nowhere (a new user), which a Bloom filter over whole keys in table files
/// answers without reading a block.
///
/// Their keys are random (pseudonyms), so inserting one into a skip list of every key of
/// the memtable walks it from the top, a cache miss a level: 2-3% of `serve`'s CPU under
/// new users. The memtable is a hash of small skip lists instead, by the key's first
/// [`HOSTED_PREFIX_BYTES`] bytes (fewer for a shorter key): a key that is not there is
/// found missing in its bucket, mostly empty or of one key. The memtable has no Bloom
/// filter: the buckets already answer a miss in about one cache line, and the filter
/// (a tenth of the memtable's size) cost each insert two cache misses in it, a tenth of
/// the log's writer thread under new users.
fn hosted_table_options() -> rocksdb::Options {
    let mut options = rocksdb::Options::default();
    options.set_prefix_extractor(rocksdb::SliceTransform::create(
        "boxoffice.capped_prefix.8",
        |key| &key[..key.len().min(HOSTED_PREFIX_BYTES)],
        Some(|_| true),
    ));
    options.set_memtable_factory(rocksdb::MemtableFactory::HashSkipList {
        bucket_count: HOSTED_MEMTABLE_BUCKETS,
        height: 4,
        branching_factor: 4,
    });
    let mut tables = rocksdb::BlockBasedOptions::default();
    tables.set_bloom_filter(10.0, false);
    tables.set_whole_key_filtering(true);
    options.set_block_based_table_factory(&tables);
    options
}

/// The bytes of a hosted table's key that choose its memtable bucket.
const HOSTED_PREFIX_BYTES: usize = 8;
/// Buckets of a hosted table's memtable (8 bytes each, allocated with every memtable).
const HOSTED_MEMTABLE_BUCKETS: usize = 1 << 16;

/// Tables kept in an embedded log's database beside its records
/// ([`EmbeddedOptions::hosted_tables`]): point reads, writes of their own, and writes added
/// to the log's commits by a [`crate::CommitCompanion`] (atomic with the records and durable by the
/// same fsync). Holding it keeps the database open.
#[derive(Clone)]
pub struct HostedTables {
    shared: Arc<Shared>,
    names: Arc<[String]>,
}

/// Writes to [`HostedTables`]: of a commit of the log (given to
/// [`crate::CommitCompanion::before_commit`]) or of their own ([`HostedTables::write`]).
pub struct TableBatch<'a> {
    shared: &'a Shared,
    batch: &'a mut WriteBatch,
}

impl HostedTables {
    /// Whether `table` is one of them.
    pub fn has(&self, table: &str) -> bool {
        self.names.iter().any(|name| name == table)
    }

    fn family(&self, table: &str) -> &rocksdb::ColumnFamily {
        self.shared.family(table)
    }

    /// The value of `key` in `table`.
    pub fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, LogError> {
        Ok(self.shared.db.get_cf(self.family(table), key)?)
    }

    /// Whether `table` holds `key`.
    pub fn contains(&self, table: &str, key: &[u8]) -> Result<bool, LogError> {
        Ok(self
            .shared
            .db
            .get_pinned_cf(self.family(table), key)?
            .is_some())
    }

    /// Calls `each` with every key of `table`, in key order (a scan of the whole table:
    /// at start, not on a request's path).
    pub fn for_each_key(&self, table: &str, mut each: impl FnMut(&[u8])) -> Result<(), LogError> {
        let mut options = ReadOptions::default();
        // The tables' prefix extractor would otherwise confine the scan to one prefix.
        options.set_total_order_seek(true);
        let mut keys = self
            .shared
            .db
            .raw_iterator_cf_opt(self.family(table), options);
        keys.seek_to_first();
        while let Some(key) = keys.key() {
            each(key);
            keys.next();
        }
        Ok(keys.status()?)
    }

    /// One write of what `fill` adds, fsync'd when `sync`.
    pub fn write(
        &self,
        sync: bool,
        fill: impl FnOnce(&mut TableBatch<'_>),
    ) -> Result<(), LogError> {
        let mut batch = WriteBatch::default();
        fill(&mut TableBatch {
            shared: &self.shared,
            batch: &mut batch,
        });
        let mut write_options = WriteOptions::default();
        write_options.set_sync(sync);
        Ok(self.shared.db.write_opt(batch, &write_options)?)
    }

    /// Makes sure nothing deleted from these tables so far is left in a file the database
    /// keeps: flushes every column family of the database (records included: a
    /// write-ahead log file is deleted only once every family with data in it is flushed)
    /// and compacts `tables` (rewriting their table files without what was deleted).
    pub fn retire_deleted(&self, tables: &[&str]) -> Result<(), LogError> {
        // The journal holds what rode the log's commits (a new user's key, say) until it is
        // overwritten: it is made durable elsewhere and zeroed first.
        if let Some(core) = self.shared.core.get().and_then(std::sync::Weak::upgrade) {
            lock_core(&core).scrub_journal()?;
        }
        let db = &self.shared.db;
        let mut families = vec![
            db.cf_handle(rocksdb::DEFAULT_COLUMN_FAMILY_NAME)
                .expect("the default family"),
            db.cf_handle(META_COLUMN_FAMILY).expect("the meta family"),
        ];
        families.extend(self.names.iter().map(|name| self.family(name)));
        db.flush_cfs_opt(&families, &rocksdb::FlushOptions::default())?;
        // Forced down to the last level: without it RocksDB may move the table files
        // to the last level as they are (a "trivial move"), deleted values and all.
        let mut compaction = rocksdb::CompactOptions::default();
        compaction.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        for table in tables {
            db.compact_range_cf_opt(
                self.family(table),
                None::<&[u8]>,
                None::<&[u8]>,
                &compaction,
            );
        }
        Ok(())
    }
}

impl TableBatch<'_> {
    /// Puts `key` → `value` in `table`.
    pub fn put(&mut self, table: &str, key: &[u8], value: &[u8]) {
        self.batch.put_cf(self.shared.family(table), key, value);
    }

    /// Deletes `key` from `table`.
    pub fn delete(&mut self, table: &str, key: &[u8]) {
        self.batch.delete_cf(self.shared.family(table), key);
    }

    /// Whether this batch writes to `tables` (the same log's database).
    pub fn is_of(&self, tables: &HostedTables) -> bool {
        std::ptr::eq(self.shared, &*tables.shared)
    }
}

/// Reads the log's id, or makes one (random) and writes it, synced, before any record can be
/// appended by this process.
pub(crate) fn read_or_create_log_id(db: &DB) -> Result<String, LogError> {
    let meta = db
        .cf_handle(META_COLUMN_FAMILY)
        .expect("the meta column family is opened with the log");
    if let Some(stored) = db.get_cf(meta, LOG_ID_KEY)? {
        return String::from_utf8(stored).map_err(|_| LogError::Corrupt {
            offset: 0,
            reason: "the log id is not UTF-8",
        });
    }
    let log_id = format!("{EMBEDDED_LOG_ID_PREFIX}{:032x}", rand::random::<u128>());
    let mut write_options = WriteOptions::default();
    write_options.set_sync(true);
    db.put_cf_opt(meta, LOG_ID_KEY, log_id.as_bytes(), &write_options)?;
    Ok(log_id)
}

/// A journal left by a version that kept the records in RocksDB (entries of
/// [`journal::log_tag`], RocksDB batches of records and hosted-table writes): writes back,
/// synced, its entries past both RocksDB's records and the segment files' (`written_end`),
/// which [`migrate_legacy_records`] then moves into the files. A run of entries that breaks
/// off past them is corruption (an acknowledged commit is missing).
fn recover_legacy_journal(
    db: &DB,
    dir: &Path,
    log_id: &str,
    written_end: u64,
) -> Result<(), LogError> {
    let entries = journal::read_entries(dir, journal::log_tag(log_id))
        .map_err(|error| LogError::Journal(format!("reading the journal: {error}")))?;
    if entries.is_empty() {
        return Ok(());
    }
    let end_offset = legacy_tail(db)?.end_offset.max(written_end);
    let missing = missing_past(entries, end_offset, "RocksDB")?;
    let mut write_options = WriteOptions::default();
    write_options.set_sync(true);
    for entry in &missing {
        db.write_opt(WriteBatch::from_data(&entry.batch), &write_options)?;
    }
    db.flush_wal(true)?;
    Ok(())
}

/// The journal's entries past `end_offset`, which the store (`store`, for the log) lacks:
/// a run that does not follow it is corruption (an acknowledged commit is missing).
fn missing_past(
    entries: Vec<journal::Entry>,
    end_offset: u64,
    store: &str,
) -> Result<Vec<journal::Entry>, LogError> {
    let missing =
        journal::missing_from(entries, end_offset).map_err(|offset| LogError::Corrupt {
            offset,
            reason: "the journal's commits past the stored records do not follow them",
        })?;
    if !missing.is_empty() {
        tracing::warn!(
            end_offset,
            commits = missing.len(),
            "writing back commits the journal holds and {store} lost"
        );
    }
    Ok(missing)
}

/// Moves the records a version before segment files kept in RocksDB's default family into
/// the files (those past what the files hold: a move cut short by a crash goes on), makes
/// them durable, then deletes them from RocksDB.
fn migrate_legacy_records(db: &DB, segments: &Segments) -> Result<(), LogError> {
    let legacy_end = legacy_tail(db)?.end_offset;
    if legacy_end == 0 {
        return Ok(());
    }
    let written_end = segments.written_end();
    if written_end < legacy_end {
        tracing::info!(
            from = written_end,
            to = legacy_end,
            "moving the log's records from RocksDB into segment files"
        );
        let mut read_options = ReadOptions::default();
        read_options.set_verify_checksums(true);
        let start_key = encode_key(written_end);
        let stored = db.iterator_opt(
            IteratorMode::From(&start_key, Direction::Forward),
            read_options,
        );
        let mut records: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut first_offset = written_end;
        let mut entry = Vec::new();
        let mut flush = |first_offset: u64, records: &mut Vec<(u64, Vec<u8>)>| {
            entry.clear();
            segments::encode_entry(
                first_offset,
                records
                    .iter()
                    .map(|(timestamp_ms, payload)| (*timestamp_ms, payload.as_slice())),
                &mut entry,
            );
            records.clear();
            segments.append(first_offset, &entry)
        };
        for (expected, item) in (written_end..).zip(stored) {
            let (key, value) = item?;
            if decode_key(&key) != Some(expected) {
                return Err(LogError::Corrupt {
                    offset: expected,
                    reason: "record missing",
                });
            }
            let (timestamp_ms, payload) = decode_value(expected, &value)?;
            records.push((timestamp_ms, payload.to_vec()));
            if records.len() >= 4096 {
                flush(first_offset, &mut records)?;
                first_offset = expected + 1;
            }
        }
        if !records.is_empty() {
            flush(first_offset, &mut records)?;
        }
        if segments.written_end() != legacy_end {
            return Err(LogError::Corrupt {
                offset: segments.written_end(),
                reason: "record missing",
            });
        }
        segments.sync()?;
    }
    let records = db
        .cf_handle(rocksdb::DEFAULT_COLUMN_FAMILY_NAME)
        .expect("the default family");
    let mut delete = WriteBatch::default();
    delete.delete_range_cf(records, encode_key(0), encode_key(legacy_end));
    let mut write_options = WriteOptions::default();
    write_options.set_sync(true);
    db.write_opt(delete, &write_options)?;
    Ok(())
}

/// Where RocksDB records through which offset the hosted-table writes of the log's commits
/// are in it: written in the batch of every commit that has some.
const HOSTED_THROUGH_KEY: &[u8] = b"hosted_through";

/// Writes back what the journal holds and a crash lost: the segment entries past the
/// files' end (which must follow it without a gap), and the hosted-table writes of the
/// commits past what RocksDB holds ([`HOSTED_THROUGH_KEY`]). Then makes both durable: after
/// it the journal may be overwritten.
fn recover_journal(db: &DB, dir: &Path, log_id: &str, segments: &Segments) -> Result<(), LogError> {
    let entries = journal::read_entries(dir, journal::segment_log_tag(log_id))
        .map_err(|error| LogError::Journal(format!("reading the journal: {error}")))?;
    if entries.is_empty() {
        return Ok(());
    }
    let meta = db
        .cf_handle(META_COLUMN_FAMILY)
        .expect("the meta column family is opened with the log");
    let hosted_through = match db.get_cf(meta, HOSTED_THROUGH_KEY)? {
        Some(bytes) => {
            u64::from_be_bytes(bytes.as_slice().try_into().map_err(|_| LogError::Corrupt {
                offset: 0,
                reason: "the hosted tables' offset is not 8 bytes",
            })?)
        }
        None => 0,
    };
    let split = |entry: &journal::Entry| -> Result<(usize, u64), LogError> {
        let corrupt = || LogError::Corrupt {
            offset: entry.first_offset,
            reason: "a journal entry does not start with a segment entry",
        };
        let header = segments::Header::decode(&entry.batch).ok_or_else(corrupt)?;
        let records_bytes = header.entry_bytes() as usize;
        if records_bytes > entry.batch.len()
            || header.first_offset != entry.first_offset
            || header.count != entry.count
        {
            return Err(corrupt());
        }
        Ok((records_bytes, header.end_offset()))
    };
    for entry in &entries {
        let (records_bytes, end_offset) = split(entry)?;
        let hosted = &entry.batch[records_bytes..];
        if end_offset > hosted_through && !hosted.is_empty() {
            db.write(WriteBatch::from_data(hosted))?;
        }
    }
    let missing = missing_past(entries, segments.written_end(), "the segment files")?;
    for entry in &missing {
        let (records_bytes, _) = split(entry)?;
        segments.append(entry.first_offset, &entry.batch[..records_bytes])?;
    }
    segments.sync()?;
    db.flush_wal(true)?;
    Ok(())
}

struct Tail {
    end_offset: u64,
    last_timestamp_ms: u64,
}

/// The end of the records a version before segment files kept in RocksDB (none: 0).
pub(crate) fn legacy_end_offset(db: &DB) -> Result<u64, LogError> {
    Ok(legacy_tail(db)?.end_offset)
}

fn legacy_tail(db: &DB) -> Result<Tail, LogError> {
    let Some(last) = db.iterator(IteratorMode::End).next() else {
        return Ok(Tail {
            end_offset: 0,
            last_timestamp_ms: 0,
        });
    };
    let (key, value) = last?;
    let offset = decode_key(&key).ok_or(LogError::Corrupt {
        offset: 0,
        reason: "last key is not an offset",
    })?;
    let (timestamp_ms, _payload) = decode_value(offset, &value)?;
    Ok(Tail {
        end_offset: offset + 1,
        last_timestamp_ms: timestamp_ms,
    })
}

/// The group-commit loop.
struct WriterThread {
    receiver: Receiver<WriterMessage>,
    batch_records_max: usize,
    batch_size_max_bytes: usize,
    group_commit_delay_us: u64,
    group_commit_siblings: usize,
    core: Arc<Mutex<WriterCore>>,
}

/// The authoritative next offset, and the commit. The writer thread commits under its
/// lock; so does `append` on a log without `sync_appends`, on the caller's thread (there is
/// no fsync to share, so handing the write to the writer thread would only cost two
/// thread switches).
struct WriterCore {
    shared: Arc<Shared>,
    /// Where a synced log's commits are made durable (`journal.rs`); none: by syncs of
    /// the segment files.
    journal: Option<Journal>,
    sync_appends: bool,
    next_offset: u64,
    last_timestamp_ms: u64,
    /// After a failed write the on-disk state is unknown (a file may hold part of the commit,
    /// or RocksDB be in its read-only error mode), so every later append is refused with
    /// this error.
    failure: Option<Failure>,
    /// The segment entry being made (kept for its allocation).
    entry: Vec<u8>,
    /// Tests: runs before each journal sync, and fails it with its error.
    #[cfg(test)]
    before_sync: Option<Box<dyn FnMut() -> Result<(), String> + Send>>,
}

/// Why a writer refuses every append.
#[derive(Clone)]
enum Failure {
    Storage(rocksdb::Error),
    Journal(String),
    Files(String),
}

impl Failure {
    fn error(&self) -> LogError {
        match self {
            Failure::Storage(error) => LogError::Storage(error.clone()),
            Failure::Journal(reason) => LogError::Journal(reason.clone()),
            Failure::Files(reason) => LogError::Files(reason.clone()),
        }
    }
}

impl WriterThread {
    fn run(self) {
        let mut shutdown = false;
        let mut previous_appends = 0;
        let delay = Duration::from_micros(self.group_commit_delay_us);
        while !shutdown {
            let mut batch = Vec::new();
            let waits = group_commit_waits(
                self.group_commit_delay_us,
                self.group_commit_siblings,
                previous_appends,
            );
            // Under load the delay runs from the end of the commit before, while the
            // next appends come in (their clients were just answered), so the first of
            // them waits what is left of it, not all of it; only when none came does the
            // first to come wait the delay out itself. Perf: hold + confirm over HTTP
            // 27,297 -> 31,549 requests/s (faster in 5 of 6 alternated runs), p50 2.1 ->
            // 1.9 ms, at the same CPU a response (BENCHMARKS.md, session 46).
            let after_delay = if waits {
                thread::sleep(delay);
                self.receiver.try_recv()
            } else {
                Err(TryRecvError::Empty)
            };
            let (message, came_after) = match after_delay {
                Ok(message) => (message, false),
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => match self.receiver.recv() {
                    Ok(message) => (message, true),
                    Err(_) => break,
                },
            };
            match message {
                WriterMessage::Append(request) => batch.push(request),
                WriterMessage::Shutdown => break,
            }
            if waits && came_after {
                thread::sleep(delay);
            }
            shutdown = self.drain(&mut batch);
            previous_appends = batch.len();
            let core = &mut lock_core(&self.core);
            core.shared.group_commits.fetch_add(1, Ordering::Relaxed);
            if waits {
                core.shared.delayed_commits.fetch_add(1, Ordering::Relaxed);
            }
            core.commit(batch);
        }
        let core = lock_core(&self.core);
        core.shared.lock_published().closed = true;
        core.shared.published_changed.notify_all();
        core.shared.written_changed.notify_all();
        tracing::debug!(end_offset = core.next_offset, "embedded log writer stopped");
    }

    /// Adds the queued appends to `batch` up to the batch caps; true once it took the
    /// shutdown message.
    fn drain(&self, batch: &mut Vec<AppendRequest>) -> bool {
        let mut records: usize = batch.iter().map(|request| request.payloads.len()).sum();
        let mut size_bytes: usize = batch
            .iter()
            .flat_map(|request| &request.payloads)
            .map(Vec::len)
            .sum();
        while records < self.batch_records_max && size_bytes < self.batch_size_max_bytes {
            match self.receiver.try_recv() {
                Ok(WriterMessage::Append(request)) => {
                    records += request.payloads.len();
                    size_bytes += request.payloads.iter().map(Vec::len).sum::<usize>();
                    batch.push(request);
                }
                Ok(WriterMessage::Shutdown) => return true,
                Err(_) => break,
            }
        }
        false
    }
}

fn lock_core(core: &Mutex<WriterCore>) -> MutexGuard<'_, WriterCore> {
    core.lock()
        .expect("writer state poisoned: a commit panicked")
}

impl WriterCore {
    /// Zeroes the journal once the segment files and RocksDB's log durably hold everything
    /// in it.
    fn scrub_journal(&mut self) -> Result<(), LogError> {
        let Some(journal) = self.journal.as_mut() else {
            return Ok(());
        };
        self.shared.sync()?;
        journal.clear().map_err(LogError::Journal)
    }

    /// Writes the batch with one write (synced with `sync_appends`), publishes it, then
    /// answers every appender.
    fn commit(&mut self, batch: Vec<AppendRequest>) {
        if let Some(failure) = &self.failure {
            for request in batch {
                request.reply.send(Err(failure.error()));
            }
            return;
        }
        let first_offset = self.next_offset;
        let timestamp_ms = self.last_timestamp_ms.max(wall_clock_ms());
        let mut write_batch = WriteBatch::default();
        // Before the records: a record must never be durable while what it refers to (a new
        // user's personal-data entry) could still be lost. A companion makes that durable
        // itself or adds it to this very batch; a failure refuses this commit only (the log
        // itself is fine).
        let mut riding: Vec<BeforeCommit> = Vec::new();
        if self.sync_appends {
            let hooks: Vec<BeforeCommit> = {
                let mut hooks = self
                    .shared
                    .before_commit
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                hooks.retain(|hook| hook.strong_count() > 0);
                hooks.iter().filter_map(std::sync::Weak::upgrade).collect()
            };
            for hook in hooks {
                let mut tables = TableBatch {
                    shared: &self.shared,
                    batch: &mut write_batch,
                };
                match hook.before_commit(Some(&mut tables)) {
                    Ok(true) => riding.push(hook),
                    Ok(false) => {}
                    Err(reason) => {
                        tracing::error!(%reason, "what must precede a commit is not durable; commit refused");
                        riding.iter().for_each(|hook| hook.after_commit(false));
                        for request in batch {
                            request
                                .reply
                                .send(Err(LogError::BeforeCommit(reason.clone())));
                        }
                        return;
                    }
                }
            }
        }
        // The records as one segment entry; the tables' writes, if any, say through which
        // offset RocksDB holds the commits' (what recovery writes back, `recover_journal`).
        let mut entry = std::mem::take(&mut self.entry);
        entry.clear();
        segments::encode_entry(
            first_offset,
            batch
                .iter()
                .flat_map(|request| &request.payloads)
                .map(|payload| (timestamp_ms, payload.as_slice())),
            &mut entry,
        );
        let count: usize = batch.iter().map(|request| request.payloads.len()).sum();
        let offset = first_offset + count as u64;
        let count = u32::try_from(count).expect("a batch's records fit a u32");
        let hosted = !write_batch.is_empty();
        if hosted {
            let meta = self
                .shared
                .db
                .cf_handle(META_COLUMN_FAMILY)
                .expect("the meta family");
            write_batch.put_cf(meta, HOSTED_THROUGH_KEY, offset.to_be_bytes());
        }
        // Durable by the journal's fsync when the commit fits it, else by syncs of its own.
        let journal = self
            .journal
            .as_mut()
            .filter(|journal| journal.fits(entry.len() + write_batch.data().len()));
        let sync_follows = journal.is_some();
        let shared = &self.shared;
        let write_tables = |write_batch: WriteBatch, sync: bool| {
            let mut write_options = WriteOptions::default();
            write_options.set_sync(sync);
            (shared.db.write_opt(write_batch, &write_options)).map_err(Failure::Storage)
        };
        let log_failure = |error: LogError| match error {
            LogError::Files(reason) => Failure::Files(reason),
            other => Failure::Files(other.to_string()),
        };
        let written = match journal {
            Some(journal) => journal
                .write(first_offset, count, &[&entry, write_batch.data()])
                .map_err(Failure::Journal)
                .and_then(|()| (shared.segments.append(first_offset, &entry)).map_err(log_failure))
                .and_then(|()| match hosted {
                    true => write_tables(write_batch, false),
                    false => Ok(()),
                }),
            // What the records refer to first, then the records.
            None => match hosted {
                true => write_tables(write_batch, self.sync_appends),
                false => Ok(()),
            }
            .and_then(|()| (shared.segments.append(first_offset, &entry)).map_err(log_failure))
            .and_then(|()| match self.sync_appends {
                true => shared.segments.sync().map_err(log_failure),
                false => Ok(()),
            }),
        };
        self.entry = entry;
        if let Err(failure) = written {
            riding.iter().for_each(|hook| hook.after_commit(false));
            self.refuse_from_now(failure, first_offset, batch);
            return;
        }

        tracing::trace!(
            appends = batch.len(),
            records = offset - first_offset,
            first_offset,
            "group commit"
        );
        // Into the cache before written_offset moves, so a reader woken by it finds them.
        let counts: Vec<usize> = batch.iter().map(|request| request.payloads.len()).collect();
        let mut payloads = Vec::with_capacity(counts.iter().sum());
        let mut replies = Vec::with_capacity(batch.len());
        for request in batch {
            payloads.extend(request.payloads);
            replies.push(request.reply);
        }
        let bytes = payloads.iter().map(Vec::len).sum();
        self.shared.lock_tail().push(CachedCommit {
            first_offset,
            timestamp_ms,
            payloads: Arc::new(payloads),
            bytes,
        });
        if sync_follows {
            // Speculative readers (the engine) start on the batch while it syncs.
            self.shared.lock_published().written_offset = offset;
            self.shared.written_changed.notify_all();
            #[cfg(test)]
            let before_sync = self.before_sync.as_mut().map_or(Ok(()), |hook| hook());
            #[cfg(not(test))]
            let before_sync = Ok(());
            let synced = before_sync
                .and_then(|()| self.journal.as_ref().expect("a journaled commit").sync())
                .map_err(Failure::Journal);
            riding
                .iter()
                .for_each(|hook| hook.after_commit(synced.is_ok()));
            if let Err(failure) = synced {
                let failed = replies.into_iter().map(|reply| AppendRequest {
                    payloads: Vec::new(),
                    reply,
                });
                self.refuse_from_now(failure, first_offset, failed.collect());
                return;
            }
        } else {
            riding.iter().for_each(|hook| hook.after_commit(true));
        }
        self.next_offset = offset;
        self.last_timestamp_ms = timestamp_ms;
        {
            let mut published = self.shared.lock_published();
            assert_eq!(
                published.end_offset, first_offset,
                "only commits advance end_offset, one at a time"
            );
            published.end_offset = offset;
            published.written_offset = offset;
        }
        self.shared.published_changed.notify_all();
        if !sync_follows {
            // Written and durable at once: speculative readers learn it now.
            self.shared.written_changed.notify_all();
        }

        let mut offset = first_offset;
        for (reply, count) in replies.into_iter().zip(counts) {
            let appended = (offset..offset + count as u64)
                .map(|offset| Appended {
                    offset,
                    timestamp_ms,
                })
                .collect();
            offset += count as u64;
            reply.send(Ok(appended));
        }
        assert_eq!(offset, self.next_offset);
    }

    /// A write or sync failed: the on-disk state is unknown, so this commit's appends and
    /// every later one are refused, and speculative readers are told (the records they may
    /// have seen may never become durable).
    fn refuse_from_now(&mut self, failure: Failure, first_offset: u64, batch: Vec<AppendRequest>) {
        let error = failure.error();
        tracing::error!(%error, first_offset, "embedded log write failed; refusing further appends");
        self.shared.lock_published().failed = Some(error.to_string());
        self.shared.published_changed.notify_all();
        self.shared.written_changed.notify_all();
        for request in batch {
            request.reply.send(Err(failure.error()));
        }
        self.failure = Some(failure);
    }
}

fn wall_clock_ms() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

impl EmbeddedReader {
    /// Waits until a record exists at `position` (or the deadline passes, or the log closes).
    /// Returns the end of what this reader may read if there is something to read: the
    /// durable end, or for a speculative reader the written one (an error once a commit
    /// failed: what it read may never become durable).
    fn wait_for_records(&self, timeout: Duration) -> Result<Option<u64>, LogError> {
        let deadline = Instant::now().checked_add(timeout);
        let mut published = self.shared.lock_published();
        loop {
            let visible = match self.speculative {
                true => published.written_offset,
                false => published.end_offset,
            };
            if self.speculative {
                if let Some(reason) = &published.failed {
                    return Err(LogError::Journal(format!(
                        "a commit failed after it was read, before it was durable: {reason}"
                    )));
                }
            }
            if visible > self.position {
                return Ok(Some(visible));
            }
            if published.closed {
                return Ok(None);
            }
            let remaining = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::MAX, // a timeout too large to represent: wait for ever
            };
            if remaining.is_zero() {
                return Ok(None);
            }
            let changed = match self.speculative {
                true => &self.shared.written_changed,
                false => &self.shared.published_changed,
            };
            published = changed
                .wait_timeout(published, remaining)
                .expect("published state poisoned: the writer thread panicked")
                .0;
        }
    }

    /// The end of the next poll's records (`[self.position, until)`, at most
    /// `max_records`), once there are any; `None` when none came within `timeout`.
    fn next_range(&self, max_records: usize, timeout: Duration) -> Result<Option<u64>, LogError> {
        if max_records == 0 {
            return Ok(None);
        }
        Ok(self
            .wait_for_records(timeout)?
            .map(|end_offset| end_offset.min(self.position.saturating_add(max_records as u64))))
    }

    /// Reads `[self.position, until)`, which must all be published: from the tail cache
    /// when it holds all of it, otherwise from the record files.
    fn read_range(&mut self, until: u64) -> Result<Vec<LogRecord>, LogError> {
        let cached = self.shared.lock_tail().covering(self.position, until);
        if let Some(commits) = cached {
            let mut records = Vec::with_capacity((until - self.position) as usize);
            for (first_offset, timestamp_ms, payloads) in commits {
                let from = self.position.max(first_offset);
                let to = until.min(first_offset + payloads.len() as u64);
                for offset in from..to {
                    records.push(LogRecord {
                        offset,
                        timestamp_ms,
                        payload: payloads[(offset - first_offset) as usize].clone(),
                    });
                }
            }
            assert_eq!(
                records.len() as u64,
                until - self.position,
                "a contiguous run"
            );
            return Ok(records);
        }
        self.read_range_stored(until)
    }

    fn read_range_stored(&mut self, until: u64) -> Result<Vec<LogRecord>, LogError> {
        let mut records = Vec::with_capacity((until - self.position) as usize);
        (self.shared.segments).read(&mut self.cursor, self.position, until, &mut records)?;
        assert_eq!(
            records.len() as u64,
            until - self.position,
            "a contiguous run"
        );
        Ok(records)
    }
}

impl LogReader for EmbeddedReader {
    fn seek(&mut self, offset: u64) -> Result<(), LogError> {
        let end_offset = self.end_offset()?;
        if offset > end_offset {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start_offset: 0,
                end_offset,
            });
        }
        self.position = offset;
        Ok(())
    }

    fn poll(&mut self, max_records: usize, timeout: Duration) -> Result<Vec<LogRecord>, LogError> {
        let Some(until) = self.next_range(max_records, timeout)? else {
            return Ok(Vec::new());
        };
        let records = self.read_range(until)?;
        debug_assert!(records
            .windows(2)
            .all(|pair| pair[1].offset == pair[0].offset + 1));
        self.position = until;
        Ok(records)
    }

    fn poll_each(
        &mut self,
        max_records: usize,
        timeout: Duration,
        each: &mut dyn FnMut(u64, u64, &[u8]),
    ) -> Result<usize, LogError> {
        let Some(until) = self.next_range(max_records, timeout)? else {
            return Ok(0);
        };
        let cached = self.shared.lock_tail().covering(self.position, until);
        match cached {
            Some(commits) => {
                let mut next = self.position;
                for (first_offset, timestamp_ms, payloads) in commits {
                    let to = until.min(first_offset + payloads.len() as u64);
                    for offset in next.max(first_offset)..to {
                        each(
                            offset,
                            timestamp_ms,
                            &payloads[(offset - first_offset) as usize],
                        );
                    }
                    next = to;
                }
                assert_eq!(next, until, "a contiguous run");
            }
            None => {
                for record in self.read_range_stored(until)? {
                    each(record.offset, record.timestamp_ms, &record.payload);
                }
            }
        }
        let count = (until - self.position) as usize;
        self.position = until;
        Ok(count)
    }

    fn position(&self) -> u64 {
        self.position
    }

    /// The durable end, for a speculative reader too: what it reads past it is not the log's
    /// yet (a status built on it must not count records a failed sync may drop).
    fn end_offset(&self) -> Result<u64, LogError> {
        Ok(self.shared.lock_published().end_offset)
    }

    fn durability(&self) -> Option<crate::Durability> {
        let shared = Arc::clone(&self.shared);
        Some(crate::Durability::new(move || shared.sync()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log whose journal syncs wait for a word on `release` (`Ok` syncs, `Err` fails the
    /// sync with it), and tell `syncing` when one starts.
    fn gated_log(
        dir: &Path,
    ) -> (
        EmbeddedLog,
        std::sync::mpsc::Receiver<()>,
        std::sync::mpsc::Sender<Result<(), String>>,
    ) {
        let log = EmbeddedLog::open(dir, EmbeddedOptions::default()).unwrap();
        let (syncing, sync_started) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<Result<(), String>>();
        let released = Mutex::new(released);
        lock_core(&log.writer.handle.core).before_sync = Some(Box::new(move || {
            let _ = syncing.send(());
            released.lock().unwrap().recv().unwrap_or(Ok(()))
        }));
        (log, sync_started, release)
    }

    fn started_append(
        log: &EmbeddedLog,
        payload: &[u8],
    ) -> std::sync::mpsc::Receiver<Result<Vec<Appended>, LogError>> {
        let (done, appended) = std::sync::mpsc::channel();
        log.writer()
            .start_append(
                vec![payload.to_vec()],
                Box::new(move |result| {
                    let _ = done.send(result);
                }),
            )
            .unwrap_or_else(|_| panic!("the writer's queue has room"));
        appended
    }

    #[test]
    fn a_speculative_reader_sees_a_commit_while_it_syncs_and_the_durable_end_follows_the_sync() {
        let dir = tempfile::tempdir().unwrap();
        let (log, sync_started, release) = gated_log(dir.path());
        let (mut speculative, durable) = log.speculative_reader();
        let mut reader = log.reader();
        let appended = started_append(&log, b"first");
        sync_started.recv().unwrap();

        // Written, not durable: only the speculative reader has it.
        let records = speculative.poll(10, Duration::from_secs(10)).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(
            (records[0].offset, &records[0].payload[..]),
            (0, &b"first"[..])
        );
        assert_eq!(
            speculative.end_offset().unwrap(),
            0,
            "the log's durable end"
        );
        assert!(!durable.covers(0).unwrap());
        assert!(!durable.wait_for(0, Duration::ZERO).unwrap());
        assert_eq!(reader.end_offset().unwrap(), 0);
        assert_eq!(log.end_offset(), 0);
        assert!(matches!(
            appended.try_recv(),
            Err(std::sync::mpsc::TryRecvError::Empty)
        ));

        release.send(Ok(())).unwrap();
        assert_eq!(appended.recv().unwrap().unwrap()[0].offset, 0);
        assert!(durable.covers(0).unwrap());
        assert!(!durable.covers(1).unwrap());
        let records = reader.poll(10, Duration::from_secs(10)).unwrap();
        assert_eq!(records.len(), 1);

        // The next commit, with the sync let through at once.
        release.send(Ok(())).unwrap();
        let appended = started_append(&log, b"second");
        assert!(durable.wait_for(1, Duration::from_secs(10)).unwrap());
        assert_eq!(appended.recv().unwrap().unwrap()[0].offset, 1);
        assert_eq!(
            speculative.poll(10, Duration::from_secs(10)).unwrap()[0].offset,
            1
        );
    }

    #[test]
    fn a_failed_sync_fails_the_speculative_reader_and_the_durable_end_and_is_never_read_as_durable()
    {
        let dir = tempfile::tempdir().unwrap();
        let (log, sync_started, release) = gated_log(dir.path());
        release.send(Ok(())).unwrap();
        started_append(&log, b"durable").recv().unwrap().unwrap();
        let (mut speculative, durable) = log.speculative_reader();
        assert_eq!(
            speculative.poll(10, Duration::from_secs(10)).unwrap().len(),
            1
        );
        sync_started.recv().unwrap();

        let appended = started_append(&log, b"lost");
        sync_started.recv().unwrap();
        let seen = speculative.poll(10, Duration::from_secs(10)).unwrap();
        assert_eq!(seen[0].offset, 1, "read while its sync is in flight");
        release.send(Err("the disk is gone".into())).unwrap();

        assert!(matches!(
            appended.recv().unwrap(),
            Err(LogError::Journal(_))
        ));
        assert!(durable.covers(0).unwrap(), "what was durable stays so");
        let error = durable.covers(1).unwrap_err().to_string();
        assert!(error.contains("the disk is gone"), "{error}");
        assert!(durable.wait_for(1, Duration::from_secs(10)).is_err());
        assert!(speculative.poll(10, Duration::from_secs(10)).is_err());
        // A plain reader never sees the record whose sync failed, and later appends fail.
        let mut reader = log.reader();
        assert_eq!(reader.poll(10, Duration::ZERO).unwrap().len(), 1);
        assert_eq!(reader.end_offset().unwrap(), 1);
        assert!(started_append(&log, b"after").recv().unwrap().is_err());
    }

    fn cache(sizes: &[usize]) -> TailCache {
        let mut cache = TailCache {
            commits: VecDeque::new(),
            records: 0,
            bytes: 0,
            records_max: 1_000,
            bytes_max: 1 << 20,
        };
        let mut first_offset = 100;
        for &size in sizes {
            cache.push(CachedCommit {
                first_offset,
                timestamp_ms: first_offset,
                payloads: Arc::new(vec![vec![0]; size]),
                bytes: size,
            });
            first_offset += size as u64;
        }
        cache
    }

    /// The first offsets of the commits `covering` gives, or `None`.
    fn covering(cache: &TailCache, from: u64, until: u64) -> Option<Vec<u64>> {
        let commits = cache.covering(from, until)?;
        Some(commits.iter().map(|commit| commit.0).collect())
    }

    /// Commits at 100..103, 103..104, 104..109, 109..111: a range gets exactly the
    /// commits it overlaps, and nothing when the cache does not hold all of it.
    #[test]
    fn covering_gives_exactly_the_commits_a_range_overlaps() {
        let cache = cache(&[3, 1, 5, 2]);
        // ((from, until), the first offsets of the commits it gets)
        type Case = ((u64, u64), Option<Vec<u64>>);
        let cases: [Case; 9] = [
            ((100, 111), Some(vec![100, 103, 104, 109])),
            ((100, 101), Some(vec![100])),
            ((102, 104), Some(vec![100, 103])),
            ((103, 104), Some(vec![103])),
            ((105, 108), Some(vec![104])),
            ((108, 110), Some(vec![104, 109])),
            ((110, 111), Some(vec![109])),
            ((110, 112), None),
            ((99, 101), None),
        ];
        for ((from, until), expected) in cases {
            assert_eq!(covering(&cache, from, until), expected, "{from}..{until}");
        }
    }
}
