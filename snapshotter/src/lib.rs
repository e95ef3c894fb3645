//! `snapshotter`: durable snapshots of the engine's state, so a restart replays only the
//! log's tail.
//!
//! A [`Snapshot`] is the engine `State` encoded by `engine::snapshot::encode_state`,
//! with the log offset it covers (the last applied record), the identity of the requests
//! log it was applied from, the engine's state hash and its creation time. Stores write a
//! snapshot atomically with checksums and keep the newest few; [`load_newest`] walks them
//! newest first and returns the first one that is intact, fits the log it is loaded
//! against, *and* rebuilds an engine whose `state_hash()` equals the stored hash. A
//! damaged snapshot (a flipped byte, a torn write, a missing value, an unknown format) is
//! skipped with a reason, down to "no snapshot" (replay from offset 0): a corrupt snapshot
//! never loads.
//!
//! Some mismatches are not skipped but stop the load, because falling back would quietly
//! decide the history again: a snapshot applied with another engine configuration
//! ([`SnapshotError::ConfigMismatch`]), a snapshot from another log
//! ([`SnapshotError::OtherLog`]: the replica points at the wrong topic or directory, and a
//! replay from 0 would rebuild some other history and then overwrite the snapshots). A
//! snapshot ahead of the log's end is skipped in favour of an older one that fits; when
//! none fits the load stops ([`SnapshotError::AheadOfLog`]: the log lost records it had
//! acknowledged, and replaying what is left from 0 would not give the state those records
//! built). A snapshot written before snapshots recorded their log (format version 1) has no
//! log id: it still loads, so an upgrade does not cost a replay from 0, and the next
//! snapshot records the id.
//!
//! Layout:
//! - this file: [`Snapshot`], [`SnapshotInfo`], the [`SnapshotStore`] trait, the loading
//!   and verifying logic, and the boundary's error, [`SnapshotError`].
//! - `format.rs`: the stored byte format (header with checksums), shared by all stores.
//! - [`RocksStore`] (`rocks.rs`): RocksDB on local disk; one synced `WriteBatch` per
//!   snapshot, pruning included.
//! - [`MemoryStore`] (`memory.rs`): in memory, with fault injection for tests (fail after
//!   N writes, tear or corrupt the last write, lose a snapshot).

mod format;
mod memory;
mod rocks;

pub use format::LOG_ID_BYTES_MAX;
pub use memory::MemoryStore;
pub use rocks::{RocksStore, RocksStoreOptions};

use engine::{Engine, EngineConfig, State};

/// One snapshot, as written and as read back (after its checksums were verified).
#[derive(Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The offset of the last record applied to the state: a restart reads from here + 1.
    pub offset: u64,
    /// Wall-clock milliseconds since the Unix epoch when the snapshot was taken.
    pub created_at_ms: u64,
    /// The identity of the requests log the state was applied from (`requestlog`'s
    /// `log_id`). `None` only for a snapshot written before snapshots recorded it.
    pub log_id: Option<String>,
    /// `Engine::state_hash` of the state, checked again after every load.
    pub state_hash: [u8; 32],
    /// `engine::snapshot::encode_state` bytes (a version byte, then bincode).
    pub state: Vec<u8>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("offset", &self.offset)
            .field("created_at_ms", &self.created_at_ms)
            .field("log_id", &self.log_id)
            .field("state_hash", &hex(&self.state_hash))
            .field("state_bytes", &self.state.len())
            .finish()
    }
}

impl Snapshot {
    /// Encodes a state that has applied at least one record of the log `log_id`. O(state):
    /// the runtime calls it on its snapshot thread, on a copy of the state.
    pub fn of_state(state: &State, created_at_ms: u64, log_id: &str) -> Snapshot {
        Snapshot::of_state_in(state, created_at_ms, log_id, Vec::new())
    }

    /// [`Snapshot::of_state`], encoded into `buffer` (its capacity reused: pass the state
    /// bytes of the previous snapshot once it is written).
    pub fn of_state_in(
        state: &State,
        created_at_ms: u64,
        log_id: &str,
        mut buffer: Vec<u8>,
    ) -> Snapshot {
        let offset =
            engine::snapshot::applied_offset(state).expect("a snapshot covers at least one record");
        assert!(
            (1..=LOG_ID_BYTES_MAX).contains(&log_id.len()),
            "log id {log_id:?}"
        );
        engine::snapshot::encode_state_into(state, &mut buffer);
        let state_hash = engine::snapshot::state_hash_of_encoded(&buffer);
        Snapshot {
            offset,
            created_at_ms,
            log_id: Some(log_id.to_string()),
            state_hash,
            state: buffer,
        }
    }
}

/// What a store knows about a snapshot without reading its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The stored format (`format.rs`), not the state's encoding version.
    pub format_version: u8,
    pub offset: u64,
    pub created_at_ms: u64,
    pub state_hash: [u8; 32],
    pub state_bytes: u64,
    /// blake3 of the state bytes.
    pub state_checksum: [u8; 32],
    /// See [`Snapshot::log_id`].
    pub log_id: Option<String>,
}

impl SnapshotInfo {
    pub fn state_hash_hex(&self) -> String {
        hex(&self.state_hash)
    }
}

/// One entry of [`SnapshotStore::list`]: a snapshot whose header could not be read is
/// still listed, with the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub offset: u64,
    pub info: Result<SnapshotInfo, String>,
}

/// Where snapshots live. Implementations write atomically: after a crash a snapshot is
/// there whole or not at all (torn or corrupted bytes are caught by the checksums anyway).
pub trait SnapshotStore: Send {
    /// Writes `snapshot` durably and atomically (replacing one at the same offset), then
    /// keeps only the newest `keep` snapshots (by offset).
    fn write(&mut self, snapshot: &Snapshot) -> Result<SnapshotInfo, SnapshotError>;

    /// Every stored snapshot, newest (highest offset) first.
    fn list(&self) -> Result<Vec<Listed>, SnapshotError>;

    /// Reads one snapshot and verifies its checksums (not its decoding: see [`verify`]).
    fn read(&self, offset: u64) -> Result<Snapshot, SnapshotError>;
}

/// The error of the snapshot boundary.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot storage: {0}")]
    Storage(#[from] rocksdb::Error),
    #[error("snapshot at offset {offset} is corrupt: {reason}")]
    Corrupt { offset: u64, reason: String },
    #[error("no snapshot at offset {offset}")]
    NotFound { offset: u64 },
    /// The snapshot's state was applied with another engine configuration. Not skipped:
    /// an older snapshot, or a replay from offset 0, would decide the history again with
    /// the new configuration, so the replica refuses to start and names the key.
    #[error("snapshot at offset {offset}: {mismatch}")]
    ConfigMismatch {
        offset: u64,
        mismatch: engine::config::ConfigMismatch,
    },
    /// The snapshot was taken from another log than the one it is loaded against. Not
    /// skipped (see the crate's documentation).
    #[error("snapshot at offset {offset} was taken from the log {snapshot_log_id}, not from this replica's requests log {log_id}: the configured log or data directory is not the one these snapshots belong to (move the snapshots away to start this log from offset 0)")]
    OtherLog {
        offset: u64,
        snapshot_log_id: String,
        log_id: String,
    },
    /// Every snapshot that is otherwise sound covers records the log does not have.
    #[error("the snapshot at offset {offset} covers records past the requests log's end ({log_end_offset}) and no older snapshot fits: the log lost records it had acknowledged; refusing to replay what is left")]
    AheadOfLog { offset: u64, log_end_offset: u64 },
    /// A fault injected by [`MemoryStore`].
    #[error("injected fault: {0}")]
    Injected(&'static str),
}

/// A snapshot that passed every check, rebuilt into an engine.
pub struct Loaded {
    pub engine: Engine,
    pub info: SnapshotInfo,
}

/// A snapshot that was skipped, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    pub offset: u64,
    pub reason: String,
}

/// What [`load_newest`] found.
pub struct Recovery {
    /// The newest snapshot that passed every check; `None`: replay from offset 0.
    pub loaded: Option<Loaded>,
    /// Newer snapshots that did not, newest first.
    pub rejected: Vec<Rejected>,
}

/// Reads, decodes and rebuilds one snapshot, and checks that the rebuilt engine's
/// `state_hash()` equals the stored hash and that it covers the stored offset.
pub fn verify(
    store: &dyn SnapshotStore,
    offset: u64,
    config: &EngineConfig,
) -> Result<Loaded, SnapshotError> {
    let corrupt = |reason: String| SnapshotError::Corrupt { offset, reason };
    let snapshot = store.read(offset)?;
    let info = SnapshotInfo {
        format_version: format::version_of(&snapshot),
        log_id: snapshot.log_id.clone(),
        offset,
        created_at_ms: snapshot.created_at_ms,
        state_hash: snapshot.state_hash,
        state_bytes: snapshot.state.len() as u64,
        state_checksum: format::checksum(&snapshot.state),
    };
    let state = engine::snapshot::decode_state(&snapshot.state).map_err(corrupt)?;
    drop(snapshot.state);
    let applied = engine::snapshot::applied_offset(&state);
    if applied != Some(offset) {
        return Err(corrupt(format!(
            "the state has applied up to {applied:?}, not {offset}"
        )));
    }
    if let Some(mismatch) = Engine::config_mismatch(&state, config) {
        return Err(SnapshotError::ConfigMismatch { offset, mismatch });
    }
    let engine = Engine::from_state(config.clone(), state);
    let rebuilt = engine.state_hash();
    if rebuilt != info.state_hash {
        return Err(corrupt(format!(
            "the rebuilt state hashes to {}, not {}",
            hex(&rebuilt),
            hex(&info.state_hash)
        )));
    }
    Ok(Loaded { engine, info })
}

/// The requests log a snapshot is loaded against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentLog {
    /// Its identity (`requestlog`'s `log_id`).
    pub log_id: String,
    /// The offset of the next record to be written: a snapshot fits when its offset is below.
    pub end_offset: u64,
}

/// The newest snapshot that passes [`verify`] and fits `log`, falling back to older ones.
/// Errors: a store that cannot be listed, and the mismatches that must stop a replica
/// (another configuration, another log, every snapshot ahead of the log).
pub fn load_newest(
    store: &dyn SnapshotStore,
    config: &EngineConfig,
    log: &CurrentLog,
) -> Result<Recovery, SnapshotError> {
    let mut rejected = Vec::new();
    let mut ahead_of_log = None;
    for listed in store.list()? {
        let offset = listed.offset;
        if let Ok(SnapshotInfo {
            log_id: Some(snapshot_log_id),
            ..
        }) = &listed.info
        {
            if *snapshot_log_id != log.log_id {
                return Err(SnapshotError::OtherLog {
                    offset,
                    snapshot_log_id: snapshot_log_id.clone(),
                    log_id: log.log_id.clone(),
                });
            }
        }
        // By the offset the store files it under: even a damaged snapshot there says the
        // log once reached that far.
        let result = if offset >= log.end_offset {
            ahead_of_log.get_or_insert(offset);
            Err(SnapshotError::AheadOfLog {
                offset,
                log_end_offset: log.end_offset,
            })
        } else {
            match listed.info {
                Ok(SnapshotInfo { log_id: None, .. }) => {
                    tracing::warn!(
                        offset,
                        "snapshot written before snapshots recorded their log: loading it without checking its log"
                    );
                    verify(store, offset, config)
                }
                Ok(_) => verify(store, offset, config),
                Err(reason) => Err(SnapshotError::Corrupt { offset, reason }),
            }
        };
        match result {
            Ok(loaded) => {
                if ahead_of_log.is_some() {
                    tracing::warn!(offset = loaded.info.offset, log_end_offset = log.end_offset, "newer snapshots cover records past the requests log's end: falling back to an older one");
                }
                tracing::info!(offset = loaded.info.offset, state_hash = %loaded.info.state_hash_hex(), "snapshot loaded");
                return Ok(Recovery {
                    loaded: Some(loaded),
                    rejected,
                });
            }
            Err(error @ SnapshotError::ConfigMismatch { .. }) => return Err(error),
            Err(error) => {
                tracing::warn!(offset = listed.offset, %error, "snapshot skipped");
                rejected.push(Rejected {
                    offset: listed.offset,
                    reason: error.to_string(),
                });
            }
        }
    }
    if let Some(offset) = ahead_of_log {
        return Err(SnapshotError::AheadOfLog {
            offset,
            log_end_offset: log.end_offset,
        });
    }
    Ok(Recovery {
        loaded: None,
        rejected,
    })
}

/// Lower-case hex, for hashes in logs and tools.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
