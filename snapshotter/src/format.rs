//! A stored snapshot's byte format, versions 1 and 2, shared by every store.
//!
//! A snapshot is stored as two values: a header ("meta") and the state bytes
//! (`engine::snapshot::encode_state`), which a store may split into chunks.
//!
//! ```text
//! meta v2 = magic "BXSN" | format: u8 (= 2) | offset: u64 BE | created_at_ms: u64 BE
//!         | state_hash: [u8; 32] | state_bytes: u64 BE | state_checksum: [u8; 32]
//!         | log_id_bytes: u16 BE (1..=LOG_ID_BYTES_MAX) | log_id: UTF-8
//!         | meta_checksum: [u8; 8]
//! meta v1 = the same without log_id_bytes and log_id (101 bytes)
//! ```
//!
//! `log_id` is the identity of the requests log the state was applied from
//! (`requestlog`'s `log_id`). Version 1 was written before logs had one; it is still read
//! (its snapshot has no log id) and still written for a [`Snapshot`] whose `log_id` is
//! `None`, which only tests make, to stand for an old snapshot.
//!
//! `state_checksum` is blake3 over the state bytes; `meta_checksum` is the first 8 bytes of
//! blake3 over the meta before it. Both are checked before anything is decoded. Changing
//! this layout is deliberate: bump `FORMAT_VERSION` and update the golden bytes below.

use crate::{Snapshot, SnapshotInfo};

pub(crate) const MAGIC: [u8; 4] = *b"BXSN";
pub(crate) const FORMAT_VERSION: u8 = 2;
/// The version written before snapshots recorded their log's identity.
const FORMAT_VERSION_WITHOUT_LOG_ID: u8 = 1;
/// The fields every version has, before the log id.
const FIXED_SIZE: usize = 4 + 1 + 8 + 8 + 32 + 8 + 32;
const CHECKSUM_SIZE: usize = 8;
const META_V1_SIZE: usize = FIXED_SIZE + CHECKSUM_SIZE;
/// The longest log id a snapshot records (a Kafka id is `kafka:`, a cluster id of 22
/// characters, `/` and a topic name of at most 249).
pub const LOG_ID_BYTES_MAX: usize = 1024;

const _: () = assert!(META_V1_SIZE == 101);
const _: () = assert!(LOG_ID_BYTES_MAX <= u16::MAX as usize);

pub(crate) fn checksum(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}

pub(crate) fn encode_meta(snapshot: &Snapshot, state_checksum: &[u8; 32]) -> Vec<u8> {
    let version = match &snapshot.log_id {
        Some(_) => FORMAT_VERSION,
        None => FORMAT_VERSION_WITHOUT_LOG_ID,
    };
    let mut meta = Vec::with_capacity(META_V1_SIZE + 2 + LOG_ID_BYTES_MAX);
    meta.extend_from_slice(&MAGIC);
    meta.push(version);
    meta.extend_from_slice(&snapshot.offset.to_be_bytes());
    meta.extend_from_slice(&snapshot.created_at_ms.to_be_bytes());
    meta.extend_from_slice(&snapshot.state_hash);
    meta.extend_from_slice(&(snapshot.state.len() as u64).to_be_bytes());
    meta.extend_from_slice(state_checksum);
    assert_eq!(meta.len(), FIXED_SIZE);
    if let Some(log_id) = &snapshot.log_id {
        assert!(
            (1..=LOG_ID_BYTES_MAX).contains(&log_id.len()),
            "a log id of {} bytes",
            log_id.len()
        );
        meta.extend_from_slice(&(log_id.len() as u16).to_be_bytes());
        meta.extend_from_slice(log_id.as_bytes());
    }
    let meta_checksum = checksum(&meta);
    meta.extend_from_slice(&meta_checksum[..CHECKSUM_SIZE]);
    meta
}

/// Decodes and checks a meta stored under `offset`.
pub(crate) fn decode_meta(offset: u64, meta: &[u8]) -> Result<SnapshotInfo, String> {
    if meta.len() < META_V1_SIZE {
        return Err(format!(
            "header is {} bytes, less than {META_V1_SIZE}",
            meta.len()
        ));
    }
    let checked = meta.len() - CHECKSUM_SIZE;
    if checksum(&meta[..checked])[..CHECKSUM_SIZE] != meta[checked..] {
        return Err("header checksum mismatch".into());
    }
    if meta[..4] != MAGIC {
        return Err("not a snapshot header".into());
    }
    let log_id = match meta[4] {
        FORMAT_VERSION_WITHOUT_LOG_ID if checked == FIXED_SIZE => None,
        FORMAT_VERSION if checked >= FIXED_SIZE + 2 => {
            let log_id_bytes = u16::from_be_bytes(
                meta[FIXED_SIZE..FIXED_SIZE + 2]
                    .try_into()
                    .expect("2 bytes"),
            );
            let log_id = &meta[FIXED_SIZE + 2..checked];
            if usize::from(log_id_bytes) != log_id.len()
                || !(1..=LOG_ID_BYTES_MAX).contains(&log_id.len())
            {
                return Err(format!(
                    "header holds a log id of {} bytes, its length says {log_id_bytes}",
                    log_id.len()
                ));
            }
            let log_id = std::str::from_utf8(log_id).map_err(|_| "the log id is not UTF-8")?;
            Some(log_id.to_string())
        }
        FORMAT_VERSION_WITHOUT_LOG_ID | FORMAT_VERSION => {
            return Err(format!(
                "header of format {} is {} bytes",
                meta[4],
                meta.len()
            ))
        }
        unknown => return Err(format!("unknown snapshot format {unknown}")),
    };
    let u64_at = |at: usize| u64::from_be_bytes(meta[at..at + 8].try_into().expect("8 bytes"));
    let array_at = |at: usize| -> [u8; 32] { meta[at..at + 32].try_into().expect("32 bytes") };
    let info = SnapshotInfo {
        format_version: meta[4],
        offset: u64_at(5),
        created_at_ms: u64_at(13),
        state_hash: array_at(21),
        state_bytes: u64_at(53),
        state_checksum: array_at(61),
        log_id,
    };
    if info.offset != offset {
        return Err(format!(
            "header says offset {} but is stored under {offset}",
            info.offset
        ));
    }
    Ok(info)
}

/// The format version a snapshot is (or was) stored in: only version 1 has no log id.
pub(crate) fn version_of(snapshot: &Snapshot) -> u8 {
    match snapshot.log_id {
        Some(_) => FORMAT_VERSION,
        None => FORMAT_VERSION_WITHOUT_LOG_ID,
    }
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
        log_id: info.log_id.clone(),
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
            log_id: Some("embedded:0123".into()),
            state_hash: [0xAB; 32],
            state: b"\x01state".to_vec(),
        }
    }

    /// A version-1 header as written before snapshots had a log id (the layout alone, built
    /// here by hand: no code writes it on purpose any more).
    fn meta_v1(snapshot: &Snapshot) -> Vec<u8> {
        let mut meta = b"BXSN\x01".to_vec();
        meta.extend_from_slice(&snapshot.offset.to_be_bytes());
        meta.extend_from_slice(&snapshot.created_at_ms.to_be_bytes());
        meta.extend_from_slice(&snapshot.state_hash);
        meta.extend_from_slice(&(snapshot.state.len() as u64).to_be_bytes());
        meta.extend_from_slice(&checksum(&snapshot.state));
        let meta_checksum = checksum(&meta);
        meta.extend_from_slice(&meta_checksum[..8]);
        meta
    }

    #[test]
    fn golden_meta() {
        let snapshot = snapshot();
        let meta = encode_meta(&snapshot, &checksum(&snapshot.state));
        assert_eq!(&meta[..5], b"BXSN\x02");
        assert_eq!(&meta[5..13], &7u64.to_be_bytes());
        assert_eq!(
            &meta[13..21],
            &[0x00, 0x00, 0x01, 0x8B, 0xCF, 0xE5, 0x68, 0x7B]
        );
        assert_eq!(&meta[21..53], &[0xAB; 32]);
        assert_eq!(&meta[53..61], &6u64.to_be_bytes());
        assert_eq!(&meta[61..93], &checksum(b"\x01state"));
        assert_eq!(&meta[93..95], &[0x00, 0x0D]);
        assert_eq!(&meta[95..108], b"embedded:0123");
        assert_eq!(meta.len(), 116);
        let info = decode_meta(7, &meta).unwrap();
        assert_eq!(
            (info.offset, info.created_at_ms, info.state_bytes),
            (7, 1_700_000_000_123, 6)
        );
        assert_eq!(
            (info.format_version, info.log_id.as_deref()),
            (2, Some("embedded:0123"))
        );
        assert_eq!(assemble(&info, snapshot.state.clone()).unwrap(), snapshot);
    }

    #[test]
    fn a_version_1_header_still_reads_without_a_log_id() {
        let old = Snapshot {
            log_id: None,
            ..snapshot()
        };
        let meta = meta_v1(&old);
        assert_eq!(meta.len(), 101);
        assert_eq!(encode_meta(&old, &checksum(&old.state)), meta);
        let info = decode_meta(7, &meta).unwrap();
        assert_eq!((info.format_version, info.log_id.as_deref()), (1, None));
        assert_eq!(assemble(&info, old.state.clone()).unwrap(), old);
    }

    #[test]
    fn every_flipped_bit_and_every_truncation_is_caught() {
        let snapshot = snapshot();
        let meta = encode_meta(&snapshot, &checksum(&snapshot.state));
        let old_meta = meta_v1(&Snapshot {
            log_id: None,
            ..snapshot.clone()
        });
        for meta in [&meta, &old_meta] {
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
