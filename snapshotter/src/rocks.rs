//! Snapshots in RocksDB on local disk.
//!
//! ```text
//! key "m" | offset: u64 BE                  → meta (format.rs)
//! key "d" | offset: u64 BE | chunk: u32 BE  → state bytes, in chunks of `chunk_bytes`
//! ```
//!
//! A snapshot is one `WriteBatch` written with `sync = true`: its meta, its chunks, and the
//! deletion of the snapshots it pushes out of the newest `keep`. RocksDB's write-ahead log
//! makes the batch atomic across a crash (point-in-time recovery drops a torn batch whole).

use crate::format;
use crate::{Listed, Snapshot, SnapshotError, SnapshotInfo, SnapshotStore};
use rocksdb::{
    DBCompressionType, DBRecoveryMode, Direction, IteratorMode, ReadOptions, WriteBatch,
    WriteOptions, DB,
};
use std::path::Path;

const META_PREFIX: u8 = b'm';
const DATA_PREFIX: u8 = b'd';

/// Limits of a [`RocksStore`].
#[derive(Clone, Debug)]
pub struct RocksStoreOptions {
    /// How many snapshots to keep; older ones are deleted by the write that replaces them.
    pub keep: usize,
    /// State bytes per stored value.
    pub chunk_bytes: usize,
}

impl Default for RocksStoreOptions {
    fn default() -> Self {
        RocksStoreOptions {
            keep: 3,
            chunk_bytes: 4 << 20,
        }
    }
}

/// A [`SnapshotStore`] in a RocksDB directory.
pub struct RocksStore {
    db: DB,
    options: RocksStoreOptions,
}

fn meta_key(offset: u64) -> [u8; 9] {
    let mut key = [META_PREFIX; 9];
    key[1..].copy_from_slice(&offset.to_be_bytes());
    key
}

fn data_key(offset: u64, chunk: u32) -> [u8; 13] {
    let mut key = [DATA_PREFIX; 13];
    key[1..9].copy_from_slice(&offset.to_be_bytes());
    key[9..].copy_from_slice(&chunk.to_be_bytes());
    key
}

impl RocksStore {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(
        dir: impl AsRef<Path>,
        options: RocksStoreOptions,
    ) -> Result<RocksStore, SnapshotError> {
        assert!(options.keep >= 1, "keep at least one snapshot");
        assert!(options.chunk_bytes >= 1024);
        let mut db_options = rocksdb::Options::default();
        db_options.create_if_missing(true);
        db_options.set_paranoid_checks(true);
        db_options.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
        // State bytes are mostly small varints: LZ4 shrinks them cheaply.
        db_options.set_compression_type(DBCompressionType::Lz4);
        let db = DB::open(&db_options, dir.as_ref())?;
        Ok(RocksStore { db, options })
    }

    fn offsets(&self) -> Result<Vec<u64>, SnapshotError> {
        let mut offsets = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(&[META_PREFIX], Direction::Forward))
        {
            let (key, _) = item?;
            if key.first() != Some(&META_PREFIX) {
                break;
            }
            let bytes: [u8; 8] = key[1..].try_into().map_err(|_| SnapshotError::Corrupt {
                offset: 0,
                reason: "a meta key is not an offset".into(),
            })?;
            offsets.push(u64::from_be_bytes(bytes));
        }
        Ok(offsets)
    }

    fn delete(batch: &mut WriteBatch, offset: u64) {
        batch.delete(meta_key(offset));
        batch.delete_range(data_key(offset, 0), data_key(offset, u32::MAX));
        batch.delete(data_key(offset, u32::MAX));
    }

    fn read_state(&self, offset: u64, expected_bytes: u64) -> Result<Vec<u8>, SnapshotError> {
        let mut read_options = ReadOptions::default();
        read_options.set_verify_checksums(true);
        read_options.set_iterate_upper_bound(data_key(offset + 1, 0).to_vec());
        // A corrupt length must not make us reserve more than the chunks can hold.
        let mut state = Vec::with_capacity(expected_bytes.min(1 << 32) as usize);
        let chunks = self.db.iterator_opt(
            IteratorMode::From(&data_key(offset, 0), Direction::Forward),
            read_options,
        );
        for (item, expected_chunk) in chunks.zip(0u32..) {
            let (key, value) = item?;
            if key.len() != 13 || key[..9] != data_key(offset, 0)[..9] {
                break;
            }
            let chunk = u32::from_be_bytes(key[9..].try_into().expect("4 bytes"));
            if chunk != expected_chunk {
                return Err(SnapshotError::Corrupt {
                    offset,
                    reason: format!("state chunk {expected_chunk} is missing"),
                });
            }
            state.extend_from_slice(&value);
        }
        Ok(state)
    }
}

impl SnapshotStore for RocksStore {
    fn write(&mut self, snapshot: &Snapshot) -> Result<SnapshotInfo, SnapshotError> {
        let state_checksum = format::checksum(&snapshot.state);
        let meta = format::encode_meta(snapshot, &state_checksum);
        let info = format::decode_meta(snapshot.offset, &meta).expect("a fresh header decodes");
        let mut batch = WriteBatch::default();
        let mut offsets = self.offsets()?;
        if offsets.contains(&snapshot.offset) {
            Self::delete(&mut batch, snapshot.offset);
        } else {
            offsets.push(snapshot.offset);
            offsets.sort_unstable();
        }
        for (index, chunk) in snapshot.state.chunks(self.options.chunk_bytes).enumerate() {
            batch.put(
                data_key(
                    snapshot.offset,
                    u32::try_from(index).expect("fewer than 2^32 chunks"),
                ),
                chunk,
            );
        }
        batch.put(meta_key(snapshot.offset), &meta);
        let excess = offsets.len().saturating_sub(self.options.keep);
        for &old in &offsets[..excess] {
            Self::delete(&mut batch, old);
        }
        let mut write_options = WriteOptions::default();
        write_options.set_sync(true);
        self.db.write_opt(batch, &write_options)?;
        Ok(info)
    }

    fn list(&self) -> Result<Vec<Listed>, SnapshotError> {
        let mut listed = Vec::new();
        for offset in self.offsets()?.into_iter().rev() {
            let info = match self.db.get(meta_key(offset)) {
                Ok(Some(meta)) => format::decode_meta(offset, &meta),
                Ok(None) => Err("header vanished".to_string()),
                Err(error) => Err(format!("unreadable header: {error}")),
            };
            listed.push(Listed { offset, info });
        }
        Ok(listed)
    }

    fn read(&self, offset: u64) -> Result<Snapshot, SnapshotError> {
        let corrupt = |reason: String| SnapshotError::Corrupt { offset, reason };
        let meta = self
            .db
            .get(meta_key(offset))?
            .ok_or(SnapshotError::NotFound { offset })?;
        let info = format::decode_meta(offset, &meta).map_err(corrupt)?;
        let state = self.read_state(offset, info.state_bytes)?;
        format::assemble(&info, state).map_err(corrupt)
    }
}
