//! A stored snapshot's byte format, version 1, shared by every store.
//!
//! A snapshot is stored as two values: a fixed-size header ("meta") and the state bytes
//! (`engine::snapshot::encode_state`), which a store may split into chunks.
//!
//! ```text
//! meta = magic "BXSN" | format: u8 (= 1) | offset: u64 BE | created_at_ms: u64 BE
//!      | state_hash: [u8; 32] | state_bytes: u64 BE | state_checksum: [u8; 32]
//!      | meta_checksum: [u8; 8]
//! ```
//!
//! `state_checksum` is blake3 over the state bytes; `meta_checksum` is the first 8 bytes of
//! blake3 over the meta before it. Both are checked before anything is decoded. Changing
//! this layout is deliberate: bump `FORMAT_VERSION` and update the golden bytes below.

use crate::{Snapshot, SnapshotInfo};

pub(crate) const MAGIC: [u8; 4] = *b"BXSN";
pub(crate) const FORMAT_VERSION: u8 = 1;
pub(crate) const META_SIZE: usize = 4 + 1 + 8 + 8 + 32 + 8 + 32 + 8;
const META_CHECKED: usize = META_SIZE - 8;

const _: () = assert!(META_SIZE == 101);

pub(crate) fn checksum(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}

pub(crate) fn encode_meta(snapshot: &Snapshot, state_checksum: &[u8; 32]) -> Vec<u8> {
    let mut meta = Vec::with_capacity(META_SIZE);
    meta.extend_from_slice(&MAGIC);
    meta.push(FORMAT_VERSION);
    meta.extend_from_slice(&snapshot.offset.to_be_bytes());
    meta.extend_from_slice(&snapshot.created_at_ms.to_be_bytes());
    meta.extend_from_slice(&snapshot.state_hash);
    meta.extend_from_slice(&(snapshot.state.len() as u64).to_be_bytes());
    meta.extend_from_slice(state_checksum);
    let meta_checksum = checksum(&meta);
    meta.extend_from_slice(&meta_checksum[..8]);
    assert_eq!(meta.len(), META_SIZE);
    meta
}

/// Decodes and checks a meta stored under `offset`.
pub(crate) fn decode_meta(offset: u64, meta: &[u8]) -> Result<SnapshotInfo, String> {
    if meta.len() != META_SIZE {
        return Err(format!("header is {} bytes, not {META_SIZE}", meta.len()));
    }
    if checksum(&meta[..META_CHECKED])[..8] != meta[META_CHECKED..] {
        return Err("header checksum mismatch".into());
    }
    if meta[..4] != MAGIC {
        return Err("not a snapshot header".into());
    }
    if meta[4] != FORMAT_VERSION {
        return Err(format!("unknown snapshot format {}", meta[4]));
    }
    let u64_at = |at: usize| u64::from_be_bytes(meta[at..at + 8].try_into().expect("8 bytes"));
    let array_at = |at: usize| -> [u8; 32] { meta[at..at + 32].try_into().expect("32 bytes") };
    let info = SnapshotInfo {
        format_version: meta[4],
        offset: u64_at(5),
        created_at_ms: u64_at(13),
        state_hash: array_at(21),
        state_bytes: u64_at(53),
        state_checksum: array_at(61),
    };
    if info.offset != offset {
        return Err(format!(
            "header says offset {} but is stored under {offset}",
            info.offset
        ));
    }
    Ok(info)
}

/// Checks the state bytes against their header and returns the whole snapshot.
pub(crate) fn assemble(info: &SnapshotInfo, state: Vec<u8>) -> Result<Snapshot, String> {
    if state.len() as u64 != info.state_bytes {
        return Err(format!(
            "state is {} bytes, the header says {}",
            state.len(),
            info.state_bytes
        ));
    }
    if checksum(&state) != info.state_checksum {
        return Err("state checksum mismatch".into());
    }
    Ok(Snapshot {
        offset: info.offset,
        created_at_ms: info.created_at_ms,
        state_hash: info.state_hash,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot {
            offset: 7,
            created_at_ms: 1_700_000_000_123,
            state_hash: [0xAB; 32],
            state: b"\x01state".to_vec(),
        }
    }

    #[test]
    fn golden_meta() {
        let snapshot = snapshot();
        let meta = encode_meta(&snapshot, &checksum(&snapshot.state));
        assert_eq!(&meta[..5], b"BXSN\x01");
        assert_eq!(&meta[5..13], &7u64.to_be_bytes());
        assert_eq!(
            &meta[13..21],
            &[0x00, 0x00, 0x01, 0x8B, 0xCF, 0xE5, 0x68, 0x7B]
        );
        assert_eq!(&meta[21..53], &[0xAB; 32]);
        assert_eq!(&meta[53..61], &6u64.to_be_bytes());
        assert_eq!(&meta[61..93], &checksum(b"\x01state"));
        let info = decode_meta(7, &meta).unwrap();
        assert_eq!(
            (info.offset, info.created_at_ms, info.state_bytes),
            (7, 1_700_000_000_123, 6)
        );
        assert_eq!(assemble(&info, snapshot.state.clone()).unwrap(), snapshot);
    }

    #[test]
    fn every_flipped_bit_and_every_truncation_is_caught() {
        let snapshot = snapshot();
        let meta = encode_meta(&snapshot, &checksum(&snapshot.state));
        for index in 0..meta.len() {
            for bit in 0..8 {
                let mut flipped = meta.clone();
                flipped[index] ^= 1 << bit;
                assert!(
                    decode_meta(7, &flipped).is_err(),
                    "meta byte {index} bit {bit}"
                );
            }
        }
        for len in 0..meta.len() {
            assert!(decode_meta(7, &meta[..len]).is_err());
        }
        assert!(decode_meta(8, &meta).unwrap_err().contains("offset"));
        let info = decode_meta(7, &meta).unwrap();
        for index in 0..snapshot.state.len() {
            let mut flipped = snapshot.state.clone();
            flipped[index] ^= 0x10;
            assert!(assemble(&info, flipped).is_err());
        }
        for len in 0..snapshot.state.len() {
            assert!(assemble(&info, snapshot.state[..len].to_vec()).is_err());
        }
    }
}
