//! Snapshots in memory, with faults on demand: the store tests and the runtime's tests
//! use it to prove that a bad snapshot is never loaded.
//!
//! It stores the same bytes as the RocksDB store (`format.rs`), so a fault here exercises
//! the same checks. Clones share one store, so a test keeps a handle while the runtime owns
//! another.

use crate::format;
use crate::{Listed, Snapshot, SnapshotError, SnapshotInfo, SnapshotStore};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// An in-memory [`SnapshotStore`] that can be told to fail.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    keep: usize,
    /// offset → (meta, state bytes)
    snapshots: BTreeMap<u64, (Vec<u8>, Vec<u8>)>,
    writes: u64,
    /// Writes after this many successful ones fail (and change nothing).
    fail_after_writes: Option<u64>,
    last_written: Option<u64>,
}

impl MemoryStore {
    pub fn new(keep: usize) -> MemoryStore {
        assert!(keep >= 1);
        let inner = Inner {
            keep,
            snapshots: BTreeMap::new(),
            writes: 0,
            fail_after_writes: None,
            last_written: None,
        };
        MemoryStore {
            inner: Arc::new(Mutex::new(inner)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("memory store poisoned")
    }

    /// From now on, every write after `writes` more successful ones fails.
    pub fn fail_after_writes(&self, writes: u64) {
        let mut inner = self.lock();
        inner.fail_after_writes = Some(inner.writes + writes);
    }

    /// Successful writes so far.
    pub fn writes(&self) -> u64 {
        self.lock().writes
    }

    /// Stored offsets, oldest first.
    pub fn offsets(&self) -> Vec<u64> {
        self.lock().snapshots.keys().copied().collect()
    }

    /// Whether the last write is still stored: a write below the newest kept offsets (a
    /// replica that restarted from an older snapshot) is pruned at once.
    pub fn last_write_kept(&self) -> bool {
        let inner = self.lock();
        inner
            .last_written
            .is_some_and(|offset| inner.snapshots.contains_key(&offset))
    }

    /// Keeps only the first `state_bytes` bytes of the last write's state, as a write torn
    /// by a crash would.
    pub fn tear_last_write(&self, state_bytes: usize) {
        self.with_last(|_, state| state.truncate(state_bytes));
    }

    /// Flips one bit of the last write's state bytes (`position` modulo its length).
    pub fn corrupt_last_write(&self, position: usize) {
        self.with_last(|_, state| {
            let index = position % state.len();
            state[index] ^= 0x04;
        });
    }

    /// Flips one bit of the last write's header.
    pub fn corrupt_last_meta(&self, position: usize) {
        self.with_last(|meta, _| {
            let index = position % meta.len();
            meta[index] ^= 0x04;
        });
    }

    /// Replaces a stored snapshot's state bytes outright, checksums and all untouched.
    pub fn replace_state(&self, offset: u64, state: Vec<u8>) {
        self.lock()
            .snapshots
            .get_mut(&offset)
            .expect("a stored snapshot")
            .1 = state;
    }

    /// Loses a snapshot, as if it had never been written.
    pub fn remove(&self, offset: u64) {
        self.lock().snapshots.remove(&offset);
    }

    fn with_last(&self, change: impl FnOnce(&mut Vec<u8>, &mut Vec<u8>)) {
        let mut inner = self.lock();
        let offset = inner.last_written.expect("a write happened");
        let (meta, state) = inner
            .snapshots
            .get_mut(&offset)
            .expect("the last write is kept");
        change(meta, state);
    }
}

impl SnapshotStore for MemoryStore {
    fn write(&mut self, snapshot: &Snapshot) -> Result<SnapshotInfo, SnapshotError> {
        let mut inner = self.lock();
        if inner
            .fail_after_writes
            .is_some_and(|limit| inner.writes >= limit)
        {
            return Err(SnapshotError::Injected("write failed"));
        }
        let meta = format::encode_meta(snapshot, &format::checksum(&snapshot.state));
        let info = format::decode_meta(snapshot.offset, &meta).expect("a fresh header decodes");
        inner
            .snapshots
            .insert(snapshot.offset, (meta, snapshot.state.clone()));
        while inner.snapshots.len() > inner.keep {
            inner.snapshots.pop_first();
        }
        inner.writes += 1;
        inner.last_written = Some(snapshot.offset);
        Ok(info)
    }

    fn list(&self) -> Result<Vec<Listed>, SnapshotError> {
        let inner = self.lock();
        Ok(inner
            .snapshots
            .iter()
            .rev()
            .map(|(&offset, (meta, _))| Listed {
                offset,
                info: format::decode_meta(offset, meta),
            })
            .collect())
    }

    fn read(&self, offset: u64) -> Result<Snapshot, SnapshotError> {
        let inner = self.lock();
        let (meta, state) = inner
            .snapshots
            .get(&offset)
            .ok_or(SnapshotError::NotFound { offset })?;
        let corrupt = |reason: String| SnapshotError::Corrupt { offset, reason };
        let info = format::decode_meta(offset, meta).map_err(corrupt)?;
        format::assemble(&info, state.clone()).map_err(corrupt)
    }
}
