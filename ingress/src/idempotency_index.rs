//! The durable idempotency index: a repeat of a keyed request is answered here for the
//! contract's 24 hours, while the engine remembers keys only for a few minutes.
//!
//! ```text
//! follower ──record(outcomes)──▶ RocksDB: key digest → (log time, fingerprint, offset, answer)
//! handler ──look_up(stamp)─────▶ same fingerprint: the first answer, replayed; another: 422
//!                                 absent or older than the window: append to the log
//! ```
//!
//! Why here, in the ingress, beside the read model: the index is derived from the outcomes
//! log exactly as the read model is (the engine stamps each first answer to a keyed request
//! with its key digest and request fingerprint), so every ingress keeps its own and
//! answers repeats without a round trip, and nothing of it touches the engine thread, its
//! state or its snapshots. Why RocksDB: a full window at 25,000 keyed writes per second is
//! two billion entries (see BENCHMARKS.md for the bytes each costs), far beyond memory.
//!
//! Why it keeps each answer rather than the outcome's position in the outcomes log: a
//! repeat is then one `get`, in Kafka mode too (no consumer to seek), and it does not
//! depend on the outcomes log's retention or record framing. The cost, measured in
//! BENCHMARKS.md, is the answer's bytes next to each key.
//!
//! Expiry is by log time, never the wall clock: the index's clock is the newest outcome
//! time it has recorded, an entry older than `window_ms` is absent to `look_up` at once,
//! and a compaction filter deletes it from disk when RocksDB next compacts its file
//! (periodic compaction bounds how long that can wait).
//!
//! Like the read model, the index is derived from the outcomes log, so it needs no
//! write-ahead log: every batch also records the last outcome it covers (`covered`), and
//! what a crash loses is a suffix, which the follower records again. An ingress claims a
//! free slot directory (`slot-<n>`, one per running ingress, so several ingresses may
//! share a state directory; the index lives in `slot-<n>/index`, the read-model snapshots
//! beside it). [`IdempotencyIndex::open`] empties the slot (rebuilt from offset 0);
//! [`IdempotencyIndex::open_resumable`] keeps it, for an ingress that resumes from a
//! read-model snapshot (`follower_state`), and refuses a slot built from another outcomes
//! log.

use engine::{IdempotencyStamp, Outcome, Rejection, Reply};
use rocksdb::compaction_filter::Decision;
use rocksdb::{BlockBasedOptions, DBCompressionType, Options, WriteBatch, WriteOptions, DB};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Ingresses that may share one index directory (each takes a slot).
const SLOTS_MAX: usize = 64;
/// How often RocksDB rewrites a file that no compaction touched, so expired entries of a
/// quiet index leave the disk too.
const PERIODIC_COMPACTION_SECONDS: u64 = 6 * 3600;
/// Key prefix of entries (leaves room for other kinds of keys later).
const ENTRY_PREFIX: u8 = b'k';
/// The identity of the outcomes log a resumable index is built from.
const LOG_ID_KEY: &[u8] = b"l";
/// What the index covers (`Covered`: two u64, big-endian), written with every batch.
const COVERED_KEY: &[u8] = b"p";
/// The index's directory inside its slot.
const INDEX_DIR: &str = "index";
/// An entry's value: log time (8 bytes, big-endian, read by the compaction filter without
/// decoding), the request's fingerprint, then bincode of (input offset, answer).
const TIME_BYTES: usize = 8;
const FINGERPRINT_BYTES: usize = engine::idempotency::DIGEST_BYTES;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("idempotency index: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("idempotency index: every slot of {0} is in use by another ingress")]
    NoFreeSlot(PathBuf),
    #[error("idempotency index: corrupt entry: {0}")]
    Corrupt(String),
    #[error("the ingress state in {} was built from the outcomes log {found}, not from this ingress's outcomes log {log_id}: the configured log or data directory is not the one this state belongs to (move the directory away to rebuild it from this log)", slot.display())]
    OtherLog {
        slot: PathBuf,
        found: String,
        log_id: String,
    },
}

/// What the index knows of a stamped key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// The key answered this very request: its first answer.
    Answer(IndexedAnswer),
    /// The key answered another request (another fingerprint).
    Reused,
}

/// A first answer, as recorded from its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedAnswer {
    /// The input offset of the first request.
    pub offset: u64,
    /// When the engine answered it (log time).
    pub time_ms: u64,
    pub result: Result<Reply, Rejection>,
}

impl IndexedAnswer {
    /// The answer as an outcome, marked replayed (nothing of it is applied again).
    pub fn into_outcome(self) -> Outcome {
        Outcome {
            offset: self.offset,
            time_ms: self.time_ms,
            replayed: true,
            result: self.result,
            effects: Vec::new(),
            effects_before_reply: 0,
            idempotency: None,
        }
    }
}

pub struct IdempotencyIndex {
    db: DB,
    /// Where it lives (`None`: in memory).
    path: Option<PathBuf>,
    window_ms: u64,
    /// The newest log time recorded.
    clock_ms: AtomicU64,
    /// Entries stored before this log time are deleted by compaction (`clock - window`).
    horizon_ms: Arc<AtomicU64>,
}

impl IdempotencyIndex {
    /// Opens an empty index in a free slot under `dir`, or in memory when `dir` is `None`
    /// (tests and tools). `window_ms`: how long of log time a key answers.
    pub fn open(dir: Option<&Path>, window_ms: u64) -> Result<IdempotencyIndex, IndexError> {
        let horizon_ms = Arc::new(AtomicU64::new(0));
        let options = Self::options(Arc::clone(&horizon_ms));
        let Some(dir) = dir else {
            let mut options = options;
            options.set_env(&rocksdb::Env::mem_env()?);
            let db = DB::open(&options, "/idempotency")?;
            return Ok(Self::new(db, None, window_ms, horizon_ms));
        };
        let (db, slot) = claim_slot(dir, &options)?;
        let index = Self::new(db, Some(slot), window_ms, horizon_ms);
        index.clear()?;
        Ok(index)
    }

    /// Opens the index of a free slot under `dir` as it was left, for an ingress that resumes
    /// from a read-model snapshot of the outcomes log `log_id` (`follower_state`). A slot
    /// built from no log yet (new, or left by [`IdempotencyIndex::open`]) is emptied and
    /// marked with `log_id`; a slot built from another log is refused, naming both.
    /// Returns the index and what it covers (`None`: nothing, rebuild from offset 0).
    pub fn open_resumable(
        dir: &Path,
        window_ms: u64,
        log_id: &str,
    ) -> Result<(IdempotencyIndex, Option<Covered>), IndexError> {
        let horizon_ms = Arc::new(AtomicU64::new(0));
        let options = Self::options(Arc::clone(&horizon_ms));
        let (db, slot) = claim_slot(dir, &options)?;
        let index = Self::new(db, Some(slot), window_ms, horizon_ms);
        match index.db.get(LOG_ID_KEY)? {
            Some(found) if found == log_id.as_bytes() => {}
            Some(found) => {
                return Err(IndexError::OtherLog {
                    slot: index.path.clone().unwrap_or_default(),
                    found: String::from_utf8_lossy(&found).into_owned(),
                    log_id: log_id.to_string(),
                })
            }
            None => {
                index.clear()?;
                let mut write = WriteOptions::default();
                write.set_sync(true);
                index.db.put_opt(LOG_ID_KEY, log_id.as_bytes(), &write)?;
            }
        }
        let covered = index.covered()?;
        if let Some(covered) = covered {
            index.set_clock(covered.clock_ms);
        }
        Ok((index, covered))
    }

    /// What the index has recorded (as far as it is on disk after a crash: entries are
    /// written without a write-ahead log, and RocksDB flushes them in order, so what
    /// survives is a prefix, and this key says which).
    pub fn covered(&self) -> Result<Option<Covered>, IndexError> {
        let Some(value) = self.db.get(COVERED_KEY)? else {
            return Ok(None);
        };
        let word = |at: usize| {
            value
                .get(at..at + 8)
                .and_then(|bytes| bytes.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| IndexError::Corrupt(format!("a {}-byte coverage", value.len())))
        };
        Ok(Some(Covered {
            offset: word(0)?,
            clock_ms: word(8)?,
        }))
    }

    /// Forgets every entry and what the index covered (an index that will be rebuilt from
    /// offset 0).
    pub fn clear(&self) -> Result<(), IndexError> {
        let mut batch = WriteBatch::default();
        batch.delete_range([ENTRY_PREFIX], [ENTRY_PREFIX + 1]);
        batch.delete(COVERED_KEY);
        let mut write = WriteOptions::default();
        write.set_sync(true);
        self.db.write_opt(batch, &write)?;
        self.set_clock(0);
        Ok(())
    }

    /// Makes everything recorded so far durable (before a read-model snapshot that counts
    /// on it is written).
    pub fn flush(&self) -> Result<(), IndexError> {
        self.db.flush()?;
        Ok(())
    }

    fn set_clock(&self, clock_ms: u64) {
        self.clock_ms.store(clock_ms, Ordering::Release);
        self.horizon_ms
            .store(clock_ms.saturating_sub(self.window_ms), Ordering::Relaxed);
    }

    fn new(db: DB, path: Option<PathBuf>, window_ms: u64, horizon_ms: Arc<AtomicU64>) -> Self {
        IdempotencyIndex {
            db,
            path,
            window_ms,
            clock_ms: AtomicU64::new(0),
            horizon_ms,
        }
    }

    /// The RocksDB options of the index: bloom filters (most look-ups are of new keys and
    /// must not read a block), LZ4, and the expiry compaction filter.
    pub fn options(horizon_ms: Arc<AtomicU64>) -> Options {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.set_compression_type(DBCompressionType::Lz4);
        let mut table = BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        options.set_block_based_table_factory(&table);
        options.set_periodic_compaction_seconds(PERIODIC_COMPACTION_SECONDS);
        options.set_compaction_filter(
            "idempotency-expiry",
            move |_level, key: &[u8], value: &[u8]| match (key.first(), stored_at_ms(value)) {
                (Some(&ENTRY_PREFIX), Some(stored))
                    if stored < horizon_ms.load(Ordering::Relaxed) =>
                {
                    Decision::Remove
                }
                _ => Decision::Keep,
            },
        );
        options
    }

    /// The index's clock: the newest log time recorded.
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms.load(Ordering::Acquire)
    }

    /// Records a batch of outcomes, in log order (the follower's call): the first answer of
    /// every stamped one, and the clock. Replays and refusals carry no stamp.
    pub fn record<'a>(
        &self,
        outcomes: impl IntoIterator<Item = &'a Outcome>,
    ) -> Result<(), IndexError> {
        self.record_with(outcomes, true)
    }

    /// Like [`IdempotencyIndex::record`], but writes to RocksDB only when one of the
    /// outcomes is stamped (their coverage with them); without one it only moves the
    /// clock, and leaves the coverage to the caller's next `record`. The follower calls it
    /// for every chunk of a poll but the last: one write a group commit, not one a chunk,
    /// when no request carries a key. A crash in between leaves `covered` behind entries
    /// already written, which are then recorded again (the same values).
    pub fn record_stamped<'a>(
        &self,
        outcomes: impl IntoIterator<Item = &'a Outcome>,
    ) -> Result<(), IndexError> {
        self.record_with(outcomes, false)
    }

    fn record_with<'a>(
        &self,
        outcomes: impl IntoIterator<Item = &'a Outcome>,
        cover: bool,
    ) -> Result<(), IndexError> {
        let mut batch = WriteBatch::default();
        let mut clock_ms = self.clock_ms();
        let mut last_offset = None;
        for outcome in outcomes {
            clock_ms = clock_ms.max(outcome.time_ms);
            last_offset = Some(outcome.offset);
            let Some(stamp) = &outcome.idempotency else {
                continue;
            };
            debug_assert!(!outcome.replayed);
            batch.put(entry_key(stamp), encode_entry(outcome, stamp));
        }
        if !cover && batch.is_empty() {
            self.set_clock(clock_ms);
            return Ok(());
        }
        if let Some(offset) = last_offset {
            let mut covered = [0; 16];
            covered[..8].copy_from_slice(&offset.to_be_bytes());
            covered[8..].copy_from_slice(&clock_ms.to_be_bytes());
            batch.put(COVERED_KEY, covered);
        }
        if !batch.is_empty() {
            let mut write = WriteOptions::default();
            // No write-ahead log: what a crash loses is a suffix (see `covered`), which the
            // follower records again from its snapshot's offset (or from offset 0).
            write.disable_wal(true);
            self.db.write_opt(batch, &write)?;
        }
        self.set_clock(clock_ms);
        Ok(())
    }

    /// What the index knows of this key, as of its clock: `None` when the key is unknown
    /// or its window has passed.
    pub fn look_up(&self, stamp: &IdempotencyStamp) -> Result<Option<Found>, IndexError> {
        let Some(value) = self.db.get_pinned(entry_key(stamp))? else {
            return Ok(None);
        };
        let (stored_at_ms, fingerprint, answer) = decode_entry(&value)?;
        if stored_at_ms.saturating_add(self.window_ms) < self.clock_ms() {
            return Ok(None);
        }
        if fingerprint != stamp.fingerprint {
            return Ok(Some(Found::Reused));
        }
        let (offset, result) = answer()?;
        Ok(Some(Found::Answer(IndexedAnswer {
            offset,
            time_ms: stored_at_ms,
            result,
        })))
    }

    /// Bytes of the index's table files (`rocksdb.total-sst-files-size`), after a flush.
    pub fn total_sst_bytes(&self) -> Result<u64, IndexError> {
        self.db.flush()?;
        Ok(self
            .db
            .property_int_value(rocksdb::properties::TOTAL_SST_FILES_SIZE)?
            .unwrap_or(0))
    }

    /// Entries on disk, expired or not (a full scan: tests and tools only).
    pub fn stored_entries(&self) -> usize {
        self.db
            .prefix_iterator([ENTRY_PREFIX])
            .filter_map(Result::ok)
            .take_while(|(key, _)| key.first() == Some(&ENTRY_PREFIX))
            .count()
    }

    /// Flushes and compacts everything, so expired entries leave the disk now.
    pub fn compact(&self) -> Result<(), IndexError> {
        self.db.flush()?;
        self.db.compact_range(None::<&[u8]>, None::<&[u8]>);
        Ok(())
    }

    /// The slot directory in use (`None`: in memory); the index itself is in its `index`
    /// directory, the read-model snapshots in its `snapshots` directory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

/// What a resumable index has recorded: up to the outcome of this input offset, with the
/// clock it had then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Covered {
    pub offset: u64,
    pub clock_ms: u64,
}

/// Claims the first slot under `dir` that no running ingress holds (RocksDB's lock on
/// `slot-<n>/index`): the index in it, and the slot directory.
fn claim_slot(dir: &Path, options: &Options) -> Result<(DB, PathBuf), IndexError> {
    for slot in 0..SLOTS_MAX {
        let path = dir.join(format!("slot-{slot}"));
        std::fs::create_dir_all(&path).map_err(|error| {
            IndexError::Corrupt(format!("cannot create {}: {error}", path.display()))
        })?;
        match DB::open(options, path.join(INDEX_DIR)) {
            Ok(db) => return Ok((db, path)),
            Err(error) if is_lock_error(&error) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(IndexError::NoFreeSlot(dir.to_path_buf()))
}

fn is_lock_error(error: &rocksdb::Error) -> bool {
    // RocksDB reports a held LOCK file as an IO error naming it.
    let text = error.to_string();
    text.contains("LOCK") || text.contains("lock")
}

fn entry_key(stamp: &IdempotencyStamp) -> [u8; 1 + FINGERPRINT_BYTES] {
    let mut key = [ENTRY_PREFIX; 1 + FINGERPRINT_BYTES];
    key[1..].copy_from_slice(&stamp.key_digest);
    key
}

fn encode_entry(outcome: &Outcome, stamp: &IdempotencyStamp) -> Vec<u8> {
    let mut value = Vec::with_capacity(64);
    value.extend_from_slice(&outcome.time_ms.to_be_bytes());
    value.extend_from_slice(&stamp.fingerprint);
    bincode::serde::encode_into_std_write(
        (outcome.offset, &outcome.result),
        &mut value,
        bincode::config::standard(),
    )
    .expect("encoding into a Vec cannot fail");
    value
}

fn stored_at_ms(value: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(
        value.get(..TIME_BYTES)?.try_into().ok()?,
    ))
}

type Answer = Result<Reply, Rejection>;

/// (log time, fingerprint, the answer's decoder): the answer is decoded only when the
/// fingerprint matches.
#[allow(clippy::type_complexity)]
fn decode_entry(
    value: &[u8],
) -> Result<
    (
        u64,
        [u8; FINGERPRINT_BYTES],
        impl FnOnce() -> Result<(u64, Answer), IndexError> + '_,
    ),
    IndexError,
> {
    let corrupt = || IndexError::Corrupt(format!("a {}-byte entry", value.len()));
    let stored_at_ms = stored_at_ms(value).ok_or_else(corrupt)?;
    let fingerprint: [u8; FINGERPRINT_BYTES] = value
        .get(TIME_BYTES..TIME_BYTES + FINGERPRINT_BYTES)
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(corrupt)?;
    let answer = move || {
        bincode::serde::decode_from_slice(
            &value[TIME_BYTES + FINGERPRINT_BYTES..],
            bincode::config::standard(),
        )
        .map(|(answer, _)| answer)
        .map_err(|error| IndexError::Corrupt(error.to_string()))
    };
    Ok((stored_at_ms, fingerprint, answer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::{Command, EventId, HoldId, Items, Selection};

    const WINDOW_MS: u64 = 24 * 3_600_000;
    const T0: u64 = 1_800_000_000_000;

    fn hold(quantity: u32) -> Command {
        Command::PlaceHold {
            user: "ann".into(),
            event: EventId(1),
            selection: Selection::Best {
                quantity,
                category: None,
                together: false,
            },
            wait: false,
        }
    }

    fn released(offset: u64, time_ms: u64, stamp: Option<IdempotencyStamp>) -> Outcome {
        Outcome {
            offset,
            time_ms,
            replayed: false,
            result: Ok(Reply::HoldReleased {
                hold: HoldId(offset),
                event: EventId(1),
                user: "ann".into(),
                items: Items::Seats(vec![1, 2].into()),
            }),
            effects: Vec::new(),
            effects_before_reply: 0,
            idempotency: stamp,
        }
    }

    fn tick(offset: u64, time_ms: u64) -> Outcome {
        Outcome {
            result: Ok(Reply::Ticked),
            ..released(offset, time_ms, None)
        }
    }

    #[test]
    fn a_key_answers_its_request_for_the_window_of_log_time_then_leaves_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let index = IdempotencyIndex::open(Some(dir.path()), WINDOW_MS).unwrap();
        let stamp = IdempotencyStamp::of(&hold(2), "k1").unwrap();
        let other_body = IdempotencyStamp::of(&hold(3), "k1").unwrap();
        let unknown = IdempotencyStamp::of(&hold(2), "k2").unwrap();
        let first = released(7, T0, Some(stamp));
        index.record([&first, &tick(8, T0 + 10)]).unwrap();
        let answer = Found::Answer(IndexedAnswer {
            offset: 7,
            time_ms: T0,
            result: first.result.clone(),
        });
        // (log time the index has reached, stamp looked up, what it finds)
        let cases = [
            (T0 + 10, stamp, Some(answer.clone())),
            (T0 + 10, other_body, Some(Found::Reused)),
            (T0 + 10, unknown, None),
            (T0 + WINDOW_MS, stamp, Some(answer)),
            (T0 + WINDOW_MS, other_body, Some(Found::Reused)),
            // One millisecond past the window (of log time) the key is new again.
            (T0 + WINDOW_MS + 1, stamp, None),
            (T0 + WINDOW_MS + 1, other_body, None),
        ];
        for (offset, (clock_ms, stamp, expected)) in (9..).zip(cases) {
            index.record([&tick(offset, clock_ms)]).unwrap();
            assert_eq!(index.look_up(&stamp).unwrap(), expected, "at {clock_ms}");
        }
        // Time never goes back: an older outcome does not revive the key.
        index.record([&tick(20, T0)]).unwrap();
        assert_eq!(index.clock_ms(), T0 + WINDOW_MS + 1);
        assert_eq!(index.look_up(&stamp).unwrap(), None);
        // Compaction deletes the expired entry; a fresh one stays.
        let fresh = IdempotencyStamp::of(&hold(4), "k3").unwrap();
        index
            .record([&released(21, T0 + WINDOW_MS + 1, Some(fresh))])
            .unwrap();
        assert_eq!(index.stored_entries(), 2);
        index.compact().unwrap();
        assert_eq!(index.stored_entries(), 1);
        assert!(matches!(
            index.look_up(&fresh).unwrap(),
            Some(Found::Answer(_))
        ));
    }

    #[test]
    fn ingresses_sharing_a_directory_take_their_own_slots_and_start_empty() {
        let dir = tempfile::tempdir().unwrap();
        let stamp = IdempotencyStamp::of(&hold(2), "k1").unwrap();
        let first = IdempotencyIndex::open(Some(dir.path()), WINDOW_MS).unwrap();
        first.record([&released(1, T0, Some(stamp))]).unwrap();
        let second = IdempotencyIndex::open(Some(dir.path()), WINDOW_MS).unwrap();
        assert_ne!(first.path(), second.path());
        assert_eq!(second.look_up(&stamp).unwrap(), None);
        let first_path = first.path().unwrap().to_path_buf();
        drop(first);
        // A restarted ingress reuses a free slot, emptied: the follower rebuilds it.
        let third = IdempotencyIndex::open(Some(dir.path()), WINDOW_MS).unwrap();
        assert_eq!(third.path(), Some(first_path.as_path()));
        assert_eq!(third.look_up(&stamp).unwrap(), None);
    }

    #[test]
    fn a_resumable_slot_keeps_its_entries_and_coverage_and_refuses_another_log() {
        let dir = tempfile::tempdir().unwrap();
        let stamp = IdempotencyStamp::of(&hold(2), "k1").unwrap();
        {
            let (index, covered) =
                IdempotencyIndex::open_resumable(dir.path(), WINDOW_MS, "embedded:a").unwrap();
            assert_eq!(covered, None);
            index
                .record([&released(3, T0, Some(stamp)), &tick(4, T0 + 5)])
                .unwrap();
            index.flush().unwrap();
        }
        let (index, covered) =
            IdempotencyIndex::open_resumable(dir.path(), WINDOW_MS, "embedded:a").unwrap();
        assert_eq!(
            covered,
            Some(Covered {
                offset: 4,
                clock_ms: T0 + 5
            })
        );
        assert_eq!(index.clock_ms(), T0 + 5);
        assert!(matches!(
            index.look_up(&stamp).unwrap(),
            Some(Found::Answer(_))
        ));
        drop(index);
        let refused = IdempotencyIndex::open_resumable(dir.path(), WINDOW_MS, "embedded:b")
            .err()
            .unwrap()
            .to_string();
        assert!(
            refused.contains("embedded:a") && refused.contains("embedded:b"),
            "{refused}"
        );
        // Opened to be rebuilt, the slot is emptied: it covers nothing.
        let index = IdempotencyIndex::open(Some(dir.path()), WINDOW_MS).unwrap();
        assert_eq!(index.covered().unwrap(), None);
        assert_eq!(index.look_up(&stamp).unwrap(), None);
        drop(index);
        let (_, covered) =
            IdempotencyIndex::open_resumable(dir.path(), WINDOW_MS, "embedded:a").unwrap();
        assert_eq!(covered, None);
    }

    /// The follower's chunks but the last of a poll: without a stamp nothing is written
    /// (the coverage stays where the last `record` put it, the clock moves); with one, its
    /// entry and the coverage up to it are written together.
    #[test]
    fn chunks_without_a_stamp_write_nothing_and_leave_the_coverage_to_the_last() {
        let index = IdempotencyIndex::open(None, WINDOW_MS).unwrap();
        let covered = |offset, clock_ms| Some(Covered { offset, clock_ms });
        index.record([&tick(1, T0)]).unwrap();
        assert_eq!(index.covered().unwrap(), covered(1, T0));
        index
            .record_stamped([&tick(2, T0 + 1), &tick(3, T0 + 2)])
            .unwrap();
        assert_eq!(index.covered().unwrap(), covered(1, T0), "nothing written");
        assert_eq!(index.clock_ms(), T0 + 2, "the clock moved");
        let stamp = IdempotencyStamp::of(&hold(2), "k1").unwrap();
        index
            .record_stamped([&released(4, T0 + 3, Some(stamp)), &tick(5, T0 + 4)])
            .unwrap();
        assert_eq!(index.covered().unwrap(), covered(5, T0 + 4));
        assert!(matches!(
            index.look_up(&stamp).unwrap(),
            Some(Found::Answer(_))
        ));
        index.record_stamped([&tick(6, T0 + 5)]).unwrap();
        index.record([&tick(7, T0 + 6)]).unwrap();
        assert_eq!(
            index.covered().unwrap(),
            covered(7, T0 + 6),
            "the last chunk covers"
        );
    }

    #[test]
    fn an_in_memory_index_works_alike() {
        let index = IdempotencyIndex::open(None, 1_000).unwrap();
        let stamp = IdempotencyStamp::of(&hold(2), "k1").unwrap();
        index.record([&released(1, T0, Some(stamp))]).unwrap();
        assert!(matches!(
            index.look_up(&stamp).unwrap(),
            Some(Found::Answer(_))
        ));
        index.record([&tick(2, T0 + 1_001)]).unwrap();
        assert_eq!(index.look_up(&stamp).unwrap(), None);
    }
}
