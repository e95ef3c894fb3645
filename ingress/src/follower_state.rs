//! The follower's state on disk: read-model snapshots, so an ingress restarts from its
//! newest snapshot plus the outcomes after it, whatever the outcomes log's length (and
//! follows a log whose early records retention has removed).
//!
//! ```text
//! <state_dir>/slot-<n>/index       the idempotency index (RocksDB), kept across restarts
//! <state_dir>/slot-<n>/snapshots   read-model snapshots (`snapshotter::RocksStore`)
//! ```
//!
//! A snapshot is a `snapshotter::Snapshot` (the engine snapshots' stored format: header with
//! the outcomes log's identity, blake3 checksums, atomic synced write, the newest few
//! kept) whose offset is the last outcome the model applied (an input offset) and whose
//! state is [`encode`]: magic `BXRM`, a version byte, then bincode of (the outcomes log
//! record position to read from next, the read model). The model encodes canonically (hash
//! maps in key order), so one model is always the same bytes, and `state_hash` is blake3
//! of them.
//!
//! The idempotency index is too large to copy into a snapshot (BENCHMARKS.md), so it stays
//! in its RocksDB and records, with every batch, the last outcome it covers. The snapshot
//! thread flushes the index before writing a snapshot, so the index on disk always covers
//! at least the newest snapshot; recording the outcomes after a snapshot again is
//! harmless (the same keys get the same values, in the same order).
//!
//! Writing: the follower thread clones the model every `snapshot_every_outcomes` outcomes
//! or `snapshot_interval` (and once more when it stops) and hands the copy to the snapshot
//! thread over a channel of one; when that thread is still busy the follower skips the
//! snapshot rather than wait, so it never blocks on disk. No snapshot is taken once the
//! follower saw a gap in the outcomes log: its model is stale.
//!
//! Loading ([`load_newest`]): newest first, a snapshot from another outcomes log stops the
//! start (naming both ids); one the index does not cover, or one that fails its checksums
//! or does not decode, is skipped with a reason for an older one; none left: the follower
//! reads from offset 0 with an emptied index.

use crate::idempotency_index::IdempotencyIndex;
use crate::read_model::ReadModel;
use snapshotter::{Snapshot, SnapshotError, SnapshotStore};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const STATE_MAGIC: [u8; 4] = *b"BXRM";
/// 2: bookings carry no ticket list (outcome version 3; tickets and codes are derived).
/// 3: the model keeps each user's notifications (an older snapshot is skipped, and the
/// model rebuilt from the outcomes log, notifications included).
/// 4: waiters keep their place and queues map place → waiter; events keep their draw.
/// 5: events keep their terms of sale.
/// 6: events keep the engine's seat ledger and waitlist queues (`engine::ledger`), holds
/// their slot in the ledger.
/// 7: a ledger encodes its seats as two bits each (free, booked; neither: held), not as
/// 4-byte words naming the holds' slots (an older snapshot is skipped, and the model
/// rebuilt from the outcomes log).
const STATE_VERSION: u8 = 7;
/// The snapshots directory inside a slot.
pub(crate) const SNAPSHOTS_DIR: &str = "snapshots";

/// The error of loading the follower's state at start.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("ingress snapshots: {0}")]
    Store(#[from] SnapshotError),
    #[error("ingress snapshot at outcome offset {offset} was taken from the outcomes log {snapshot_log_id}, not from this ingress's outcomes log {log_id}: the configured log or data directory is not the one these snapshots belong to (move the directory away to rebuild the read model from this log)")]
    OtherLog {
        offset: u64,
        snapshot_log_id: String,
        log_id: String,
    },
}

/// A read model and where its outcomes log is to be read from next.
pub(crate) struct FollowerState {
    pub(crate) model: ReadModel,
    /// The outcomes log record after the one that completed the model's last outcome.
    pub(crate) position: u64,
}

/// A snapshot that was skipped at start, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub offset: u64,
    pub reason: String,
}

/// The state's bytes: magic, version, bincode of (position, model).
pub(crate) fn encode(position: u64, model: &ReadModel) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(1 << 16);
    bytes.extend_from_slice(&STATE_MAGIC);
    bytes.push(STATE_VERSION);
    bincode::serde::encode_into_std_write(
        (position, model),
        &mut bytes,
        bincode::config::standard(),
    )
    .expect("encoding into a Vec cannot fail");
    bytes
}

pub(crate) fn decode(bytes: &[u8]) -> Result<FollowerState, String> {
    if bytes.len() <= STATE_MAGIC.len() || bytes[..STATE_MAGIC.len()] != STATE_MAGIC {
        return Err("not a read-model snapshot".into());
    }
    if bytes[4] != STATE_VERSION {
        return Err(format!(
            "read-model snapshot version {} (this ingress reads {STATE_VERSION})",
            bytes[4]
        ));
    }
    let body = &bytes[5..];
    let ((position, model), read): ((u64, ReadModel), usize) =
        bincode::serde::decode_from_slice(body, bincode::config::standard())
            .map_err(|error| format!("the read model does not decode: {error}"))?;
    if read != body.len() {
        return Err(format!("{} bytes follow the read model", body.len() - read));
    }
    Ok(FollowerState { model, position })
}

fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// The snapshot of a model that has applied at least one outcome of the outcomes log
/// `log_id`.
pub(crate) fn snapshot_of(position: u64, model: &ReadModel, log_id: &str) -> Snapshot {
    let offset = model
        .applied_offset
        .expect("a snapshot covers at least one outcome");
    let state = encode(position, model);
    Snapshot {
        offset,
        created_at_ms: wall_clock_ms(),
        log_id: Some(log_id.to_string()),
        state_hash: *blake3::hash(&state).as_bytes(),
        state,
    }
}

/// The newest snapshot of the outcomes log `log_id` that the index covers (`covered`: the
/// last outcome offset it recorded) and that reads back whole; the snapshots skipped on
/// the way, newest first.
pub(crate) fn load_newest(
    store: &dyn SnapshotStore,
    log_id: &str,
    covered: Option<u64>,
) -> Result<(Option<FollowerState>, Vec<Skipped>), StateError> {
    let mut skipped = Vec::new();
    for listed in store.list()? {
        let offset = listed.offset;
        if let Ok(info) = &listed.info {
            if info.log_id.as_deref() != Some(log_id) {
                return Err(StateError::OtherLog {
                    offset,
                    snapshot_log_id: info.log_id.clone().unwrap_or_else(|| "(none)".into()),
                    log_id: log_id.to_string(),
                });
            }
        }
        let loaded = match (&listed.info, covered) {
            (Err(reason), _) => Err(reason.clone()),
            (Ok(_), covered) if covered.is_none_or(|covered| covered < offset) => Err(format!(
                "the idempotency index covers outcomes only up to {covered:?}"
            )),
            (Ok(_), _) => read(store, offset),
        };
        match loaded {
            Ok(state) => {
                tracing::info!(offset, position = state.position, "ingress snapshot loaded");
                return Ok((Some(state), skipped));
            }
            Err(reason) => {
                tracing::warn!(offset, %reason, "ingress snapshot skipped");
                skipped.push(Skipped { offset, reason });
            }
        }
    }
    Ok((None, skipped))
}

fn read(store: &dyn SnapshotStore, offset: u64) -> Result<FollowerState, String> {
    let snapshot = store.read(offset).map_err(|error| error.to_string())?;
    if *blake3::hash(&snapshot.state).as_bytes() != snapshot.state_hash {
        return Err("the state does not hash to the stored hash".into());
    }
    let state = decode(&snapshot.state)?;
    if state.model.applied_offset != Some(offset) {
        return Err(format!(
            "the read model has applied up to {:?}, not {offset}",
            state.model.applied_offset
        ));
    }
    Ok(state)
}

/// A copy of the model for the snapshot thread.
pub(crate) struct SnapshotJob {
    pub(crate) model: ReadModel,
    pub(crate) position: u64,
    /// A snapshot records a position in the outcomes log: what it covers must survive a
    /// machine crash (an embedded outcomes log does not fsync each append), or a restart
    /// would find the log shorter than the snapshot. The snapshot thread makes it so
    /// before it writes (a flush of everything appended since the last one: 16-19 ms
    /// every 200,000 outcomes under load, which the follower once spent with every answer
    /// waiting); `None`: the log shows only durable records.
    pub(crate) durable: Option<requestlog::Durability>,
}

/// The follower's side of the snapshot thread: when to take one, and the hand-off.
pub(crate) struct SnapshotTrigger {
    sender: Option<SyncSender<SnapshotJob>>,
    /// Set while the snapshot thread has a copy to write: no copy is made meanwhile.
    busy: Arc<AtomicBool>,
    every_outcomes: u64,
    interval: std::time::Duration,
    outcomes_since: u64,
    last_at: Instant,
}

impl SnapshotTrigger {
    /// Never takes a snapshot (an ingress without a state directory).
    pub(crate) fn off() -> SnapshotTrigger {
        SnapshotTrigger {
            sender: None,
            busy: Arc::default(),
            every_outcomes: u64::MAX,
            interval: std::time::Duration::MAX,
            outcomes_since: 0,
            last_at: Instant::now(),
        }
    }

    pub(crate) fn note_outcomes(&mut self, count: u64) {
        self.outcomes_since += count;
    }

    /// True when a snapshot is due (there is something new to snapshot, and the snapshot
    /// thread is free to take it).
    pub(crate) fn due(&self) -> bool {
        self.sender.is_some()
            && !self.busy.load(Ordering::Acquire)
            && self.outcomes_since > 0
            && (self.outcomes_since >= self.every_outcomes
                || self.last_at.elapsed() >= self.interval)
    }

    /// Hands a copy over without waiting: false when the snapshot thread is still busy
    /// (the snapshot is taken later).
    pub(crate) fn offer(&mut self, job: SnapshotJob) -> bool {
        let Some(sender) = &self.sender else {
            return false;
        };
        self.busy.store(true, Ordering::Release);
        match sender.try_send(job) {
            Ok(()) => {
                self.outcomes_since = 0;
                self.last_at = Instant::now();
                true
            }
            Err(TrySendError::Full(_)) => {
                self.busy.store(false, Ordering::Release);
                false
            }
            Err(TrySendError::Disconnected(_)) => {
                self.sender = None;
                false
            }
        }
    }

    /// The last snapshot, when the follower stops: waits for the snapshot thread.
    pub(crate) fn finish(&mut self, job: Option<SnapshotJob>) {
        if let (Some(sender), Some(job)) = (self.sender.take(), job) {
            if self.outcomes_since > 0 {
                let _ = sender.send(job);
            }
        }
    }

    pub(crate) fn pending(&self) -> bool {
        self.sender.is_some() && self.outcomes_since > 0
    }
}

/// Starts the snapshot thread: it encodes each copy, flushes the index, and writes the
/// snapshot. Returns the follower's trigger and the thread (joined at stop, after the
/// follower, so the last snapshot is written).
pub(crate) fn start_writer(
    mut store: Box<dyn SnapshotStore>,
    index: Arc<IdempotencyIndex>,
    log_id: String,
    every_outcomes: u64,
    interval: std::time::Duration,
    written: Arc<AtomicU64>,
) -> (SnapshotTrigger, JoinHandle<()>) {
    let (sender, receiver) = std::sync::mpsc::sync_channel::<SnapshotJob>(1);
    let busy = Arc::new(AtomicBool::new(false));
    let thread = {
        let busy = Arc::clone(&busy);
        std::thread::Builder::new()
            .name("ingress-snapshots".into())
            .spawn(move || write_loop(&mut *store, &index, &log_id, &receiver, &written, &busy))
            .expect("spawning the ingress snapshot thread")
    };
    let trigger = SnapshotTrigger {
        sender: Some(sender),
        busy,
        every_outcomes,
        interval,
        outcomes_since: 0,
        last_at: Instant::now(),
    };
    (trigger, thread)
}

fn write_loop(
    store: &mut dyn SnapshotStore,
    index: &IdempotencyIndex,
    log_id: &str,
    receiver: &Receiver<SnapshotJob>,
    written: &AtomicU64,
    busy: &AtomicBool,
) {
    while let Ok(job) = receiver.recv() {
        let started = Instant::now();
        if let Some(Err(error)) = job.durable.as_ref().map(requestlog::Durability::sync) {
            tracing::warn!(%error, "no read-model snapshot: the outcomes log cannot be made durable");
            busy.store(false, Ordering::Release);
            continue;
        }
        let snapshot = snapshot_of(job.position, &job.model, log_id);
        drop(job);
        // The index must cover the snapshot before the snapshot exists (see the module).
        let result = index
            .flush()
            .map_err(|error| error.to_string())
            .and_then(|()| store.write(&snapshot).map_err(|error| error.to_string()));
        match result {
            Ok(_) => {
                // Stored +1 so that 0 means "none yet".
                written.store(snapshot.offset + 1, Ordering::Release);
                tracing::info!(
                    offset = snapshot.offset,
                    state_bytes = snapshot.state.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "ingress snapshot written"
                );
            }
            Err(error) => {
                tracing::error!(offset = snapshot.offset, %error, "writing an ingress snapshot failed");
            }
        }
        busy.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_decodes_back_and_anything_else_is_refused_with_a_reason() {
        let model = ReadModel::new(10);
        let bytes = encode(42, &model);
        assert_eq!(&bytes[..5], b"BXRM\x07");
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded.position, 42);
        assert_eq!(
            encode(42, &decoded.model),
            bytes,
            "canonical: the same bytes"
        );

        let mut other_version = bytes.clone();
        other_version[4] = 2;
        let mut trailing = bytes.clone();
        trailing.push(0);
        let cases: [(&[u8], &str); 5] = [
            (b"", "not a read-model snapshot"),
            (b"BXRM", "not a read-model snapshot"),
            (b"BXSN\x01\x00", "not a read-model snapshot"),
            // Version 2 had no notifications: skipped, so the model is rebuilt with them.
            (&other_version, "version 2"),
            (&trailing, "1 bytes follow the read model"),
        ];
        for (bytes, reason) in cases {
            let error = decode(bytes).err().unwrap();
            assert!(error.contains(reason), "{error}");
        }
        let truncated = decode(&bytes[..bytes.len() - 1]).err().unwrap();
        assert!(truncated.contains("does not decode"), "{truncated}");
    }
}
