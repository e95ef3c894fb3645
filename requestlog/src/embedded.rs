//! The embedded log: RocksDB on local disk, one writer thread doing group commit.
//!
//! ```text
//!  appenders ──(payloads, reply)──► bounded channel ──► writer thread
//!                                                        │ drain up to the batch caps
//!                                                        │ one WriteBatch, sync = true (fsync)
//!                                                        │ publish end_offset, notify readers
//!  appenders ◄──────── Vec<Appended> ───────────────────┘
//!  readers: wait on a Condvar for end_offset to pass their position, then iterate RocksDB
//! ```
//!
//! Readers never look past the published `end_offset`, which the writer thread advances only
//! after RocksDB's synced write has returned: a reader cannot see a record that is not durable.
//!
//! The records live in RocksDB's default column family; the `meta` column family holds the
//! log's identity ([`EmbeddedLog::log_id`]), a random id written once, when a log is first
//! opened by a version that knows it, and kept for the life of the directory.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender};
use rocksdb::{
    DBCompressionType, DBRecoveryMode, Direction, IteratorMode, ReadOptions, WriteBatch,
    WriteOptions, DB,
};

use crate::record_format::{decode_key, decode_value, encode_key, encode_value};
use crate::EMBEDDED_LOG_ID_PREFIX;
use crate::{Appended, LogError, LogReader, LogRecord, LogWriter};

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
}

impl Default for EmbeddedOptions {
    fn default() -> EmbeddedOptions {
        EmbeddedOptions {
            payload_size_max_bytes: 1024 * 1024,
            append_records_max: 4096,
            batch_records_max: 8192,
            batch_size_max_bytes: 16 * 1024 * 1024,
            queue_depth_max: 1024,
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
}

/// State shared by the writer thread and the readers.
struct Shared {
    db: DB,
    published: Mutex<Published>,
    published_changed: Condvar,
}

/// What readers may see. Changed only by the writer thread, after a synced write.
struct Published {
    /// Offset of the next record to be written; every record below it is durable.
    end_offset: u64,
    /// The writer thread has stopped: no record will ever be added.
    closed: bool,
}

/// Owns the writer thread: dropping the last handle stops and joins it.
struct WriterHandle {
    sender: Sender<WriterMessage>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    options: EmbeddedOptions,
}

enum WriterMessage {
    Append(AppendRequest),
    Shutdown,
}

struct AppendRequest {
    payloads: Vec<Vec<u8>>,
    reply: Sender<Result<Vec<Appended>, LogError>>,
}

impl EmbeddedLog {
    /// Opens (creating if needed) the log stored in `dir` and starts its writer thread.
    ///
    /// Recovery is RocksDB's: its write-ahead log is replayed with point-in-time recovery, so a
    /// write torn by a crash is dropped whole (it was never acknowledged, since acknowledgement
    /// waits for the fsync). The end offset is then the last key plus one, and the last record's
    /// checksum is verified.
    pub fn open(dir: impl AsRef<Path>, options: EmbeddedOptions) -> Result<EmbeddedLog, LogError> {
        options.assert_valid();
        let db = open_db(dir.as_ref())?;
        let tail = recover_tail(&db)?;
        let log_id = read_or_create_log_id(&db)?;
        tracing::info!(
            dir = %dir.as_ref().display(),
            end_offset = tail.end_offset,
            log_id,
            "embedded log opened"
        );

        let shared = Arc::new(Shared {
            db,
            published: Mutex::new(Published {
                end_offset: tail.end_offset,
                closed: false,
            }),
            published_changed: Condvar::new(),
        });
        let (sender, receiver) = crossbeam_channel::bounded(options.queue_depth_max);
        let writer_thread = WriterThread {
            shared: Arc::clone(&shared),
            receiver,
            batch_records_max: options.batch_records_max,
            batch_size_max_bytes: options.batch_size_max_bytes,
            next_offset: tail.end_offset,
            last_timestamp_ms: tail.last_timestamp_ms,
            failure: None,
        };
        let thread = thread::Builder::new()
            .name("requestlog-writer".into())
            .spawn(move || writer_thread.run())
            .map_err(|_| LogError::Closed)?;
        let handle = WriterHandle {
            sender,
            thread: Some(thread),
            shared,
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
        }
    }

    /// Offset of the next record to be written.
    pub fn end_offset(&self) -> u64 {
        self.writer.handle.shared.lock_published().end_offset
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
        self.handle
            .sender
            .send(WriterMessage::Append(AppendRequest { payloads, reply }))
            .map_err(|_| LogError::Closed)?;
        let appended = replied.recv().map_err(|_| LogError::Closed)??;
        assert_eq!(appended.len(), count);
        Ok(appended)
    }

    fn end_offset(&self) -> Result<u64, LogError> {
        Ok(self.handle.shared.lock_published().end_offset)
    }
}

fn check_append_limits(payloads: &[Vec<u8>], options: &EmbeddedOptions) -> Result<(), LogError> {
    if payloads.len() > options.append_records_max {
        return Err(LogError::TooManyRecords {
            count: payloads.len(),
            count_max: options.append_records_max,
        });
    }
    match payloads
        .iter()
        .position(|payload| payload.len() > options.payload_size_max_bytes)
    {
        Some(index) => Err(LogError::PayloadTooLarge {
            index,
            size_bytes: payloads[index].len(),
            size_max_bytes: options.payload_size_max_bytes,
        }),
        None => Ok(()),
    }
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
    }
}

impl Shared {
    fn lock_published(&self) -> MutexGuard<'_, Published> {
        self.published
            .lock()
            .expect("published state poisoned: the writer thread panicked")
    }
}

/// The log's RocksDB, as every opener of an embedded log opens it (the log itself, and
/// [`EmbeddedLog::import`] in `import.rs`).
pub(crate) fn open_db(dir: &Path) -> Result<DB, LogError> {
    let mut db_options = rocksdb::Options::default();
    db_options.create_if_missing(true);
    db_options.set_paranoid_checks(true);
    db_options.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
    db_options.set_compression_type(DBCompressionType::Lz4);
    db_options.create_missing_column_families(true);
    Ok(DB::open_cf(&db_options, dir, [META_COLUMN_FAMILY])?)
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

struct Tail {
    end_offset: u64,
    last_timestamp_ms: u64,
}

fn recover_tail(db: &DB) -> Result<Tail, LogError> {
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

/// The group-commit loop. Owns the authoritative next offset.
struct WriterThread {
    shared: Arc<Shared>,
    receiver: Receiver<WriterMessage>,
    batch_records_max: usize,
    batch_size_max_bytes: usize,
    next_offset: u64,
    last_timestamp_ms: u64,
    /// After a failed write the on-disk state is unknown (RocksDB may hold part of the batch, or
    /// be in its read-only error mode), so every later append is refused with this error.
    failure: Option<rocksdb::Error>,
}

impl WriterThread {
    fn run(mut self) {
        let mut shutdown = false;
        while !shutdown {
            let mut batch = Vec::new();
            match self.receiver.recv() {
                Ok(WriterMessage::Append(request)) => batch.push(request),
                Ok(WriterMessage::Shutdown) | Err(_) => break,
            }
            let mut records = batch[0].payloads.len();
            let mut size_bytes: usize = batch[0].payloads.iter().map(Vec::len).sum();
            while records < self.batch_records_max && size_bytes < self.batch_size_max_bytes {
                match self.receiver.try_recv() {
                    Ok(WriterMessage::Append(request)) => {
                        records += request.payloads.len();
                        size_bytes += request.payloads.iter().map(Vec::len).sum::<usize>();
                        batch.push(request);
                    }
                    Ok(WriterMessage::Shutdown) => {
                        shutdown = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.commit(batch);
        }
        self.shared.lock_published().closed = true;
        self.shared.published_changed.notify_all();
        tracing::debug!(end_offset = self.next_offset, "embedded log writer stopped");
    }

    /// Writes the batch with one synced write, publishes it, then answers every appender.
    fn commit(&mut self, batch: Vec<AppendRequest>) {
        if let Some(failure) = &self.failure {
            for request in batch {
                let _ = request.reply.send(Err(LogError::Storage(failure.clone())));
            }
            return;
        }
        let first_offset = self.next_offset;
        let timestamp_ms = self.last_timestamp_ms.max(wall_clock_ms());
        let mut write_batch = WriteBatch::default();
        let mut offset = first_offset;
        for request in &batch {
            for payload in &request.payloads {
                write_batch.put(
                    encode_key(offset),
                    encode_value(offset, timestamp_ms, payload),
                );
                offset += 1;
            }
        }
        let mut write_options = WriteOptions::default();
        write_options.set_sync(true);
        if let Err(error) = self.shared.db.write_opt(write_batch, &write_options) {
            tracing::error!(%error, first_offset, "embedded log write failed; refusing further appends");
            for request in batch {
                let _ = request.reply.send(Err(LogError::Storage(error.clone())));
            }
            self.failure = Some(error);
            return;
        }

        tracing::trace!(
            appends = batch.len(),
            records = offset - first_offset,
            first_offset,
            "group commit"
        );
        self.next_offset = offset;
        self.last_timestamp_ms = timestamp_ms;
        {
            let mut published = self.shared.lock_published();
            assert_eq!(
                published.end_offset, first_offset,
                "only the writer thread advances end_offset"
            );
            published.end_offset = offset;
        }
        self.shared.published_changed.notify_all();

        let mut offset = first_offset;
        for request in batch {
            let appended = (offset..offset + request.payloads.len() as u64)
                .map(|offset| Appended {
                    offset,
                    timestamp_ms,
                })
                .collect();
            offset += request.payloads.len() as u64;
            let _ = request.reply.send(Ok(appended)); // an appender that gave up is not an error
        }
        assert_eq!(offset, self.next_offset);
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
    /// Returns the published end offset if there is something to read.
    fn wait_for_records(&self, timeout: Duration) -> Option<u64> {
        let deadline = Instant::now().checked_add(timeout);
        let mut published = self.shared.lock_published();
        loop {
            if published.end_offset > self.position {
                return Some(published.end_offset);
            }
            if published.closed {
                return None;
            }
            let remaining = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::MAX, // a timeout too large to represent: wait for ever
            };
            if remaining.is_zero() {
                return None;
            }
            published = self
                .shared
                .published_changed
                .wait_timeout(published, remaining)
                .expect("published state poisoned: the writer thread panicked")
                .0;
        }
    }

    /// Reads `[self.position, until)`, which must all be published.
    fn read_range(&self, until: u64) -> Result<Vec<LogRecord>, LogError> {
        let mut read_options = ReadOptions::default();
        read_options.set_verify_checksums(true);
        read_options.set_iterate_upper_bound(encode_key(until).to_vec());
        let start_key = encode_key(self.position);
        let iterator = self.shared.db.iterator_opt(
            IteratorMode::From(&start_key, Direction::Forward),
            read_options,
        );
        let mut records = Vec::with_capacity((until - self.position) as usize);
        let mut expected_offset = self.position;
        for item in iterator {
            let (key, value) = item?;
            let offset = decode_key(&key).ok_or(LogError::Corrupt {
                offset: expected_offset,
                reason: "key is not an offset",
            })?;
            if offset != expected_offset {
                return Err(LogError::Corrupt {
                    offset: expected_offset,
                    reason: "record missing",
                });
            }
            let (timestamp_ms, payload) = decode_value(offset, &value)?;
            records.push(LogRecord {
                offset,
                timestamp_ms,
                payload: payload.to_vec(),
            });
            expected_offset += 1;
        }
        if expected_offset != until {
            return Err(LogError::Corrupt {
                offset: expected_offset,
                reason: "record missing",
            });
        }
        Ok(records)
    }
}

impl LogReader for EmbeddedReader {
    fn seek(&mut self, offset: u64) -> Result<(), LogError> {
        let end_offset = self.shared.lock_published().end_offset;
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
        if max_records == 0 {
            return Ok(Vec::new());
        }
        let Some(end_offset) = self.wait_for_records(timeout) else {
            return Ok(Vec::new());
        };
        let until = end_offset.min(self.position.saturating_add(max_records as u64));
        let records = self.read_range(until)?;
        debug_assert!(records
            .windows(2)
            .all(|pair| pair[1].offset == pair[0].offset + 1));
        self.position = until;
        Ok(records)
    }

    fn position(&self) -> u64 {
        self.position
    }

    fn end_offset(&self) -> Result<u64, LogError> {
        Ok(self.shared.lock_published().end_offset)
    }
}
