//! Importing a log's records, with their own offsets and timestamps, into a fresh embedded
//! log: how an exact copy of another server's requests log is made (`loadgen replay
//! --into-data-dir` of a recording that carries the server's log).
//!
//! Appending cannot do it: the log stamps every appended record with its own clock, and a
//! replica's state includes the offsets and times it applied records at. So this is the one
//! way records enter an embedded log with times the caller chose, and it is narrow on
//! purpose: only into an empty log, only offsets contiguous from 0, only timestamps that
//! never go back (the log's own guarantee, which its writer keeps from the last record on
//! once the log is opened again), only payloads the log's options accept. Everything is
//! checked before anything is written, so a refused import leaves the directory as it was.
//!
//! The log is closed while importing (RocksDB's lock keeps a running server, or an open
//! [`EmbeddedLog`], out); open it afterwards as usual.

use std::path::Path;

use crate::embedded::{legacy_end_offset, open_db, read_or_create_log_id};
use crate::segments::{self, Segments};
use crate::{EmbeddedLog, EmbeddedOptions, LogError, LogRecord};

/// What an import wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    /// Records written (offsets `0..records`).
    pub records: u64,
    /// The log's identity (a new one: an import makes a new log).
    pub log_id: String,
}

/// Why an import was refused or failed. A refusal (every variant but `Directory` and `Log`)
/// wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the log under {dir} already holds records (offsets 0..{end_offset}): an import makes a new log, so it needs an empty directory")]
    NotEmpty { dir: String, end_offset: u64 },
    #[error("record {index} has offset {found}, but an import's offsets run from 0 without a gap (expected {expected})")]
    OffsetGap {
        index: usize,
        expected: u64,
        found: u64,
    },
    #[error("record at offset {offset} has timestamp {timestamp_ms} ms, before the previous record's {previous_ms} ms: a log's times never go back")]
    TimeGoesBack {
        offset: u64,
        timestamp_ms: u64,
        previous_ms: u64,
    },
    #[error("record at offset {offset} is {size_bytes} bytes, over the log's limit of {size_max_bytes} bytes")]
    PayloadTooLarge {
        offset: u64,
        size_bytes: usize,
        size_max_bytes: usize,
    },
    #[error("cannot create {dir}: {source}")]
    Directory {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the log under {dir}: {source}")]
    Log {
        dir: String,
        #[source]
        source: LogError,
    },
}

impl EmbeddedLog {
    /// Writes `records` (their offsets, timestamps and payloads, unchanged) as the whole
    /// content of the embedded log in `dir`, which must be empty or not exist yet. Refused,
    /// with nothing written, unless the offsets run 0, 1, 2, ... and the timestamps never
    /// decrease and every payload fits `options`. Durable when it returns (commits of at
    /// most `options.batch_records_max` records or `batch_size_max_bytes` each, synced).
    pub fn import(
        dir: impl AsRef<Path>,
        options: &EmbeddedOptions,
        records: &[LogRecord],
    ) -> Result<Imported, ImportError> {
        let dir = dir.as_ref();
        check_records(records, options)?;
        let log_error = |source: LogError| ImportError::Log {
            dir: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|source| ImportError::Directory {
            dir: dir.display().to_string(),
            source,
        })?;
        let db = open_db(dir, &options.hosted_tables).map_err(log_error)?;
        let segments = Segments::open(dir, options.segment_size_bytes).map_err(log_error)?;
        let end_offset = legacy_end_offset(&db)
            .map_err(log_error)?
            .max(segments.written_end());
        if end_offset > 0 {
            return Err(ImportError::NotEmpty {
                dir: dir.display().to_string(),
                end_offset,
            });
        }
        let log_id = read_or_create_log_id(&db).map_err(log_error)?;
        // Commits as the log's writer would make them: at most a batch's records and bytes.
        let mut entry = Vec::new();
        let mut first = 0;
        while first < records.len() {
            let mut end = first;
            let mut bytes = 0;
            while end < records.len()
                && end - first < options.batch_records_max
                && bytes < options.batch_size_max_bytes
            {
                bytes += records[end].payload.len();
                end += 1;
            }
            entry.clear();
            segments::encode_entry(
                first as u64,
                records[first..end]
                    .iter()
                    .map(|record| (record.timestamp_ms, record.payload.as_slice())),
                &mut entry,
            );
            segments.append(first as u64, &entry).map_err(log_error)?;
            first = end;
        }
        segments.sync().map_err(log_error)?;
        tracing::info!(
            dir = %dir.display(),
            records = records.len(),
            log_id,
            "records imported into an empty embedded log"
        );
        Ok(Imported {
            records: records.len() as u64,
            log_id,
        })
    }
}

/// Offsets from 0 without a gap, times never going back, payloads within the limit.
fn check_records(records: &[LogRecord], options: &EmbeddedOptions) -> Result<(), ImportError> {
    let mut previous_ms = 0;
    for (index, record) in records.iter().enumerate() {
        let expected = index as u64;
        if record.offset != expected {
            return Err(ImportError::OffsetGap {
                index,
                expected,
                found: record.offset,
            });
        }
        if record.timestamp_ms < previous_ms {
            return Err(ImportError::TimeGoesBack {
                offset: record.offset,
                timestamp_ms: record.timestamp_ms,
                previous_ms,
            });
        }
        previous_ms = record.timestamp_ms;
        if record.payload.len() > options.payload_size_max_bytes {
            return Err(ImportError::PayloadTooLarge {
                offset: record.offset,
                size_bytes: record.payload.len(),
                size_max_bytes: options.payload_size_max_bytes,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LogReader, LogWriter};
    use std::time::Duration;

    fn record(offset: u64, timestamp_ms: u64, payload: &[u8]) -> LogRecord {
        LogRecord {
            offset,
            timestamp_ms,
            payload: payload.to_vec(),
        }
    }

    fn read_all(log: &EmbeddedLog) -> Vec<LogRecord> {
        let mut reader = log.reader();
        let mut records = Vec::new();
        while reader.position() < log.end_offset() {
            records.extend(reader.poll(100, Duration::from_secs(1)).unwrap());
        }
        records
    }

    /// Far in the past, so an append after the import is stamped later than them.
    const PAST_MS: u64 = 1_000_000;

    #[test]
    fn imported_records_keep_their_offsets_times_and_bytes_and_appends_follow_them() {
        let dir = tempfile::tempdir().unwrap();
        let records = vec![
            record(0, PAST_MS, b"first"),
            record(1, PAST_MS, b""),
            record(2, PAST_MS + 5, b"third"),
        ];
        // Batches of two: the import spans several writes.
        let options = EmbeddedOptions {
            append_records_max: 2,
            batch_records_max: 2,
            ..EmbeddedOptions::default()
        };
        let imported = EmbeddedLog::import(dir.path(), &options, &records).unwrap();
        assert_eq!(imported.records, 3);
        assert!(imported.log_id.starts_with(crate::EMBEDDED_LOG_ID_PREFIX));

        let log = EmbeddedLog::open(dir.path(), options).unwrap();
        assert_eq!(log.log_id(), imported.log_id);
        assert_eq!(log.end_offset(), 3);
        assert_eq!(read_all(&log), records);
        let appended = log.writer().append(vec![b"later".to_vec()]).unwrap();
        assert_eq!(appended[0].offset, 3);
        assert!(appended[0].timestamp_ms >= PAST_MS + 5);
    }

    #[test]
    fn an_empty_import_makes_an_empty_log() {
        let dir = tempfile::tempdir().unwrap();
        let options = EmbeddedOptions::default();
        assert_eq!(
            EmbeddedLog::import(dir.path(), &options, &[])
                .unwrap()
                .records,
            0
        );
        assert_eq!(
            EmbeddedLog::open(dir.path(), options).unwrap().end_offset(),
            0
        );
    }

    /// A log that holds records is never imported into: its records stay as they were,
    /// and nothing is added.
    #[test]
    fn an_import_into_a_log_with_records_is_refused_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let options = EmbeddedOptions::default();
        let existing = {
            let log = EmbeddedLog::open(dir.path(), options.clone()).unwrap();
            log.writer()
                .append(vec![b"a".to_vec(), b"b".to_vec()])
                .unwrap();
            read_all(&log)
        };
        let error =
            EmbeddedLog::import(dir.path(), &options, &[record(0, PAST_MS, b"x")]).unwrap_err();
        assert!(
            matches!(error, ImportError::NotEmpty { end_offset: 2, .. }),
            "{error:?}"
        );
        assert!(error
            .to_string()
            .contains("already holds records (offsets 0..2)"));
        let log = EmbeddedLog::open(dir.path(), options).unwrap();
        assert_eq!(read_all(&log), existing);
    }

    #[test]
    fn an_open_log_cannot_be_imported_into() {
        let dir = tempfile::tempdir().unwrap();
        let options = EmbeddedOptions::default();
        let _open = EmbeddedLog::open(dir.path(), options.clone()).unwrap();
        let error =
            EmbeddedLog::import(dir.path(), &options, &[record(0, PAST_MS, b"x")]).unwrap_err();
        assert!(matches!(error, ImportError::Log { .. }), "{error:?}");
    }

    /// Bad records are refused before the directory is even created.
    #[test]
    fn gaps_times_going_back_and_oversized_payloads_are_refused_before_anything_is_written() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("requests");
        let options = EmbeddedOptions {
            payload_size_max_bytes: 4,
            batch_size_max_bytes: 4,
            ..EmbeddedOptions::default()
        };
        let cases: [(Vec<LogRecord>, &str); 4] = [
            (
                vec![record(1, PAST_MS, b"x")],
                "record 0 has offset 1, but an import's offsets run from 0 without a gap (expected 0)",
            ),
            (
                vec![record(0, PAST_MS, b"x"), record(2, PAST_MS, b"y")],
                "record 1 has offset 2",
            ),
            (
                vec![record(0, PAST_MS, b"x"), record(1, PAST_MS - 1, b"y")],
                "record at offset 1 has timestamp 999999 ms, before the previous record's 1000000 ms",
            ),
            (
                vec![record(0, PAST_MS, b"12345")],
                "record at offset 0 is 5 bytes, over the log's limit of 4 bytes",
            ),
        ];
        for (records, message) in cases {
            let error = EmbeddedLog::import(&dir, &options, &records).unwrap_err();
            assert!(error.to_string().contains(message), "{error}");
            assert!(!dir.exists(), "nothing written for {message}");
        }
    }
}
