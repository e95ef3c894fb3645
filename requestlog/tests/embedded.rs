//! The embedded log (segment files, RocksDB beside them) against its contract: dense offsets, durability across reopen,
//! group commit under concurrency, prompt reader wake-up, corruption detection, limits.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use requestlog::{
    EmbeddedLog, EmbeddedOptions, GroupCommits, LogError, LogReader, LogRecord, LogWriter,
    GROUP_COMMIT_DELAY_MAX_US,
};

const NO_WAIT: Duration = Duration::ZERO;

/// A fresh directory under the system temp dir, removed on drop (no dependency for 20 lines).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let unique = format!(
            "requestlog-test-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(unique);
        std::fs::create_dir(&path).expect("create temp dir");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn open(dir: &Path) -> EmbeddedLog {
    EmbeddedLog::open(dir, EmbeddedOptions::default()).expect("open embedded log")
}

fn payloads(texts: &[&str]) -> Vec<Vec<u8>> {
    texts.iter().map(|text| text.as_bytes().to_vec()).collect()
}

fn texts(records: &[LogRecord]) -> Vec<(u64, String)> {
    records
        .iter()
        .map(|record| {
            (
                record.offset,
                String::from_utf8(record.payload.clone()).unwrap(),
            )
        })
        .collect()
}

fn offsets(appended: &[requestlog::Appended]) -> Vec<u64> {
    appended.iter().map(|appended| appended.offset).collect()
}

/// Opens (creating if needed) the log's RocksDB directly, as an operator (or a disk, or
/// a version before segment files, which kept the records in its default column family)
/// could.
fn open_raw(dir: &Path) -> rocksdb::DB {
    let mut options = rocksdb::Options::default();
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    rocksdb::DB::open_cf(&options, dir, ["meta"]).expect("open rocksdb directly")
}

/// A record as versions before segment files stored it in RocksDB: under its offset
/// (big-endian), CRC-32C over key and the rest, format version 1, timestamp, payload.
fn legacy_record(offset: u64, timestamp_ms: u64, payload: &[u8]) -> ([u8; 8], Vec<u8>) {
    let mut rest = vec![1u8];
    rest.extend_from_slice(&timestamp_ms.to_be_bytes());
    rest.extend_from_slice(payload);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&offset.to_be_bytes()), &rest);
    let mut value = crc.to_be_bytes().to_vec();
    value.extend_from_slice(&rest);
    (offset.to_be_bytes(), value)
}

/// Records a version before segment files kept in RocksDB are moved into segment files
/// when the log is first opened, with their offsets and times; appends follow them, and
/// RocksDB no longer holds them.
#[test]
fn a_log_written_before_segment_files_has_its_records_moved_into_them() {
    let dir = TempDir::new();
    {
        let raw = open_raw(dir.path());
        for (offset, text) in ["a", "b", "c"].iter().enumerate() {
            let (key, value) = legacy_record(offset as u64, 1_000 + offset as u64, text.as_bytes());
            raw.put(key, value).unwrap();
        }
    }
    {
        let log = open(dir.path());
        assert_eq!(log.end_offset(), 3);
        let records = log.reader().poll(10, NO_WAIT).unwrap();
        assert_eq!(
            texts(&records),
            [(0, "a".into()), (1, "b".into()), (2, "c".into())]
        );
        let times: Vec<u64> = records.iter().map(|record| record.timestamp_ms).collect();
        assert_eq!(times, [1_000, 1_001, 1_002]);
        let appended = log.writer().append(payloads(&["d"])).unwrap();
        assert_eq!(offsets(&appended), [3]);
        assert!(appended[0].timestamp_ms >= 1_002);
    }
    assert!(
        open_raw(dir.path())
            .iterator(rocksdb::IteratorMode::Start)
            .next()
            .is_none(),
        "moved out of RocksDB"
    );
    assert!(!record_files(dir.path()).is_empty());
    let log = open(dir.path());
    assert_eq!(
        texts(&log.reader().poll(10, NO_WAIT).unwrap()),
        [
            (0, "a".into()),
            (1, "b".into()),
            (2, "c".into()),
            (3, "d".into())
        ]
    );
}

#[test]
fn a_log_keeps_its_identity_and_another_log_has_another() {
    let dir = TempDir::new();
    let other_dir = TempDir::new();
    let log = open(dir.path());
    let log_id = log.log_id().to_string();
    assert!(
        log_id.starts_with(requestlog::EMBEDDED_LOG_ID_PREFIX),
        "{log_id}"
    );
    log.writer().append(payloads(&["a", "b"])).unwrap();
    drop(log);
    let log = open(dir.path());
    assert_eq!(log.log_id(), log_id, "the same directory is the same log");
    assert_eq!(log.end_offset(), 2);
    let other = open(other_dir.path());
    assert_ne!(other.log_id(), log_id);
    // The identity is not a record.
    let mut reader = log.reader();
    assert_eq!(
        texts(&reader.poll(10, Duration::ZERO).unwrap()),
        [(0, "a".to_string()), (1, "b".to_string())]
    );
}

#[test]
fn a_log_written_before_logs_had_an_identity_gets_one_and_keeps_its_records() {
    let dir = TempDir::new();
    {
        // An old log: records in the default column family, nothing else.
        let (key, value) = legacy_record(0, 1_000, b"old");
        open_raw(dir.path()).put(key, value).unwrap();
    }
    {
        let mut raw = open_raw(dir.path());
        raw.drop_cf("meta").unwrap();
    }
    let log = open(dir.path());
    let log_id = log.log_id().to_string();
    assert!(log_id.starts_with(requestlog::EMBEDDED_LOG_ID_PREFIX));
    assert_eq!(log.end_offset(), 1);
    drop(log);
    assert_eq!(open(dir.path()).log_id(), log_id);
}

#[test]
fn append_then_read_round_trip() {
    let dir = TempDir::new();
    let log = open(dir.path());
    let writer = log.writer();
    let mut reader = log.reader();

    assert_eq!(writer.end_offset().unwrap(), 0);
    assert_eq!(reader.poll(10, NO_WAIT).unwrap(), vec![]);

    let first = writer.append(payloads(&["a", "bb", ""])).unwrap();
    assert_eq!(offsets(&first), [0, 1, 2]);
    let second = writer.append(payloads(&["ccc"])).unwrap();
    assert_eq!(offsets(&second), [3]);
    assert_eq!(writer.append(Vec::new()).unwrap(), vec![]);
    assert_eq!(writer.end_offset().unwrap(), 4);
    assert_eq!(log.end_offset(), 4);

    let records = reader.poll(10, NO_WAIT).unwrap();
    assert_eq!(
        texts(&records),
        [
            (0, "a".into()),
            (1, "bb".into()),
            (2, "".into()),
            (3, "ccc".into())
        ]
    );
    let timestamps: Vec<u64> = first
        .iter()
        .chain(&second)
        .map(|appended| appended.timestamp_ms)
        .collect();
    assert_eq!(
        records
            .iter()
            .map(|record| record.timestamp_ms)
            .collect::<Vec<_>>(),
        timestamps
    );
    assert!(
        timestamps.windows(2).all(|pair| pair[0] <= pair[1]),
        "{timestamps:?}"
    );
    assert!(timestamps[0] > 1_600_000_000_000, "wall-clock milliseconds");
    assert_eq!(reader.position(), 4);
    assert_eq!(reader.end_offset().unwrap(), 4);
}

#[test]
fn poll_respects_max_records_and_seek() {
    let dir = TempDir::new();
    let log = open(dir.path());
    let writer = log.writer();
    writer
        .append((0..10).map(|index| vec![index]).collect())
        .unwrap();
    let mut reader = log.reader();

    let check = |reader: &mut requestlog::EmbeddedReader, max: usize, expected: &[u64]| {
        let records = reader.poll(max, NO_WAIT).unwrap();
        let got: Vec<u64> = records.iter().map(|record| record.offset).collect();
        assert_eq!(got, expected);
        for record in &records {
            assert_eq!(record.payload, [record.offset as u8]);
        }
    };
    check(&mut reader, 3, &[0, 1, 2]);
    check(&mut reader, 0, &[]);
    check(&mut reader, 2, &[3, 4]);
    reader.seek(8).unwrap();
    check(&mut reader, 100, &[8, 9]);
    check(&mut reader, 100, &[]);
    reader.seek(1).unwrap();
    check(&mut reader, 1, &[1]);
    reader.seek(10).unwrap(); // the end: valid, waits for the next record
    check(&mut reader, 1, &[]);
    match reader.seek(11) {
        Err(LogError::OffsetOutOfRange {
            offset: 11,
            start_offset: 0,
            end_offset: 10,
        }) => {}
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
    assert_eq!(reader.position(), 10, "a failed seek keeps the position");
}

#[test]
fn poll_times_out_empty() {
    let dir = TempDir::new();
    let log = open(dir.path());
    let mut reader = log.reader();
    let started = Instant::now();
    assert_eq!(reader.poll(10, Duration::from_millis(50)).unwrap(), vec![]);
    assert!(started.elapsed() >= Duration::from_millis(50));
}

#[test]
fn records_survive_reopen() {
    let dir = TempDir::new();
    let last_timestamp_ms = {
        let log = open(dir.path());
        let writer = log.writer();
        writer.append(payloads(&["one", "two"])).unwrap();
        let appended = writer.append(payloads(&["three"])).unwrap();
        appended[0].timestamp_ms
        // log, writer dropped: the writer thread stops and the files close
    };

    let log = open(dir.path());
    assert_eq!(log.end_offset(), 3);
    let writer = log.writer();
    let appended = writer.append(payloads(&["four"])).unwrap();
    assert_eq!(offsets(&appended), [3], "offsets continue after reopen");
    assert!(
        appended[0].timestamp_ms >= last_timestamp_ms,
        "timestamps never go back"
    );

    let mut reader = log.reader();
    let records = reader.poll(10, NO_WAIT).unwrap();
    assert_eq!(
        texts(&records),
        [
            (0, "one".into()),
            (1, "two".into()),
            (2, "three".into()),
            (3, "four".into())
        ]
    );
}

#[test]
fn concurrent_appenders_get_unique_dense_offsets() {
    const THREADS: usize = 8;
    const APPENDS_PER_THREAD: usize = 100;
    let dir = TempDir::new();
    let log = open(dir.path());
    let start = Arc::new(Barrier::new(THREADS));

    let handles: Vec<_> = (0..THREADS)
        .map(|thread_index| {
            let writer = log.writer();
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                let mut appended_offsets = Vec::new();
                for append_index in 0..APPENDS_PER_THREAD {
                    let count = 1 + append_index % 3;
                    let batch = (0..count)
                        .map(|record| {
                            format!("{thread_index}/{append_index}/{record}").into_bytes()
                        })
                        .collect();
                    let appended = writer.append(batch).unwrap();
                    let batch_offsets = offsets(&appended);
                    assert!(
                        batch_offsets.windows(2).all(|pair| pair[1] == pair[0] + 1),
                        "one append is contiguous"
                    );
                    appended_offsets.push(batch_offsets);
                }
                appended_offsets
            })
        })
        .collect();
    let per_thread: Vec<Vec<Vec<u64>>> = handles
        .into_iter()
        .map(|handle| handle.join().unwrap())
        .collect();

    let mut all: Vec<u64> = per_thread.iter().flatten().flatten().copied().collect();
    let total = all.len();
    assert_eq!(
        total,
        THREADS
            * (0..APPENDS_PER_THREAD)
                .map(|index| 1 + index % 3)
                .sum::<usize>()
    );
    all.sort_unstable();
    assert_eq!(
        all,
        (0..total as u64).collect::<Vec<_>>(),
        "unique and dense"
    );

    // The log holds exactly what each appender was told, and each thread's appends in order.
    let mut reader = log.reader();
    let records = reader.poll(total + 1, NO_WAIT).unwrap();
    assert_eq!(records.len(), total);
    let by_offset: HashMap<u64, String> = records
        .iter()
        .map(|record| {
            (
                record.offset,
                String::from_utf8(record.payload.clone()).unwrap(),
            )
        })
        .collect();
    for (thread_index, appends) in per_thread.iter().enumerate() {
        for (append_index, batch_offsets) in appends.iter().enumerate() {
            for (record, offset) in batch_offsets.iter().enumerate() {
                assert_eq!(
                    by_offset[offset],
                    format!("{thread_index}/{append_index}/{record}")
                );
            }
        }
        assert!(
            appends.windows(2).all(|pair| pair[0][0] < pair[1][0]),
            "a thread's appends in order"
        );
    }
    let timestamps: Vec<u64> = records.iter().map(|record| record.timestamp_ms).collect();
    assert!(
        timestamps.windows(2).all(|pair| pair[0] <= pair[1]),
        "timestamps non-decreasing"
    );
}

#[test]
fn reader_wakes_when_a_record_is_appended() {
    const TIMEOUT: Duration = Duration::from_secs(60);
    let dir = TempDir::new();
    let log = open(dir.path());
    let mut reader = log.reader();
    let ready = Arc::new(Barrier::new(2));

    let waiting = {
        let ready = Arc::clone(&ready);
        thread::spawn(move || {
            ready.wait();
            let started = Instant::now();
            let records = reader.poll(10, TIMEOUT).unwrap();
            (records, started.elapsed())
        })
    };
    ready.wait();
    // Whether the reader is already parked in poll or not yet, it must return this record
    // long before its timeout.
    log.writer().append(payloads(&["wake up"])).unwrap();
    let (records, waited) = waiting.join().unwrap();
    assert_eq!(texts(&records), [(0, "wake up".into())]);
    assert!(
        waited < TIMEOUT / 2,
        "woke on append, not on timeout ({waited:?})"
    );
}

#[test]
fn reader_returns_when_the_log_closes() {
    let dir = TempDir::new();
    let log = open(dir.path());
    let mut reader = log.reader();
    let waiting = thread::spawn(move || reader.poll(10, Duration::from_secs(60)).unwrap());
    drop(log); // stops the writer thread; nothing can be appended any more
    assert_eq!(waiting.join().unwrap(), vec![]);
}

/// Record files of the smallest size, so that a few records make several.
fn small_files() -> EmbeddedOptions {
    EmbeddedOptions {
        segment_size_bytes: requestlog::SEGMENT_SIZE_MIN_BYTES,
        ..EmbeddedOptions::default()
    }
}

/// Three record files: offsets 0..2 ("zero", a filler), 2..4 ("one", a filler), 4..5
/// ("two"), each record its own commit. Closed cleanly.
fn three_files(dir: &Path) {
    let log = EmbeddedLog::open(dir, small_files()).unwrap();
    let writer = log.writer();
    for text in ["zero", "one"] {
        writer.append(payloads(&[text])).unwrap();
        writer.append(vec![vec![b'.'; 5000]]).unwrap();
    }
    writer.append(payloads(&["two"])).unwrap();
}

/// The record files of a log, oldest first.
fn record_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "seg"))
        .collect();
    files.sort();
    files
}

/// Flips a bit of the first occurrence of `text` in `file`.
fn damage(file: &Path, text: &[u8]) {
    let mut bytes = std::fs::read(file).unwrap();
    let at = bytes
        .windows(text.len())
        .position(|window| window == text)
        .expect("the text is in the file");
    bytes[at + text.len() - 1] ^= 0x20;
    std::fs::write(file, bytes).unwrap();
}

/// A damaged record in an older record file (trusted at open) fails the read that reaches
/// it, naming its offset; the records around it still read.
#[test]
fn corrupted_value_is_detected() {
    let dir = TempDir::new();
    three_files(dir.path());
    let files = record_files(dir.path());
    assert_eq!(files.len(), 3);
    damage(&files[1], b"one"); // "one" -> "onE"

    let log = EmbeddedLog::open(dir.path(), small_files()).unwrap();
    let mut reader = log.reader();
    assert_eq!(
        texts(&reader.poll(1, NO_WAIT).unwrap()),
        [(0, "zero".into())]
    );
    reader.seek(2).unwrap();
    match reader.poll(10, NO_WAIT) {
        Err(LogError::Corrupt {
            offset: 2,
            reason: "checksum mismatch",
        }) => {}
        other => panic!("expected Corrupt at offset 2, got {other:?}"),
    }
    assert_eq!(reader.position(), 2, "a failed poll does not advance");
    reader.seek(4).unwrap();
    assert_eq!(
        texts(&reader.poll(10, NO_WAIT).unwrap()),
        [(4, "two".into())]
    );
}

/// A record file gone is a gap in the offsets, found by the read that reaches it.
#[test]
fn missing_record_is_detected() {
    let dir = TempDir::new();
    three_files(dir.path());
    std::fs::remove_file(&record_files(dir.path())[1]).unwrap();

    let log = EmbeddedLog::open(dir.path(), small_files()).unwrap();
    let mut reader = log.reader();
    match reader.poll(10, NO_WAIT) {
        Err(LogError::Corrupt {
            offset: 2,
            reason: "record missing",
        }) => {}
        other => panic!("expected a missing record at offset 2, got {other:?}"),
    }
}

/// The newest records, made durable (here by a clean close), are checked at open: damaged,
/// the log does not open. Past what was made durable, a damaged or torn commit is the
/// tail a crash tore, cut off (`a_torn_tail_past_what_was_synced_is_cut_and_the_log_goes_on`).
#[test]
fn corrupted_last_record_fails_open() {
    let dir = TempDir::new();
    {
        let log = open(dir.path());
        log.writer().append(payloads(&["zero"])).unwrap();
        log.writer().append(payloads(&["one"])).unwrap();
    }
    damage(&record_files(dir.path())[0], b"one");
    match EmbeddedLog::open(dir.path(), EmbeddedOptions::default()) {
        Err(LogError::Corrupt { offset: 1, .. }) => {}
        Err(other) => panic!("expected Corrupt, got {other:?}"),
        Ok(_) => panic!("expected Corrupt, got an open log"),
    }
}

/// An unsynced log's records past its last sync may be torn by a crash of the machine:
/// opening cuts the torn commit off, keeps what came before it, and appends after it.
#[test]
fn a_torn_tail_past_what_was_synced_is_cut_and_the_log_goes_on() {
    let dir = TempDir::new();
    let unsynced = EmbeddedOptions {
        sync_appends: false,
        ..EmbeddedOptions::default()
    };
    let torn = TempDir::new();
    {
        let log = EmbeddedLog::open(dir.path(), unsynced.clone()).unwrap();
        log.writer().append(payloads(&["zero", "one"])).unwrap();
        log.sync().unwrap();
        log.writer().append(payloads(&["two"])).unwrap();
        log.writer().append(payloads(&["three"])).unwrap();
        // The files as a crash left them, before the clean close below syncs them.
        copy_dir(dir.path(), torn.path());
    }
    let file = &record_files(torn.path())[0];
    let length = std::fs::metadata(file).unwrap().len();
    let bytes = std::fs::read(file).unwrap();
    std::fs::write(file, &bytes[..length as usize - 3]).unwrap(); // "three" torn
    let log = EmbeddedLog::open(torn.path(), unsynced).unwrap();
    assert_eq!(log.end_offset(), 3);
    assert_eq!(
        offsets(&log.writer().append(payloads(&["new"])).unwrap()),
        [3]
    );
    assert_eq!(
        texts(&log.reader().poll(10, NO_WAIT).unwrap()),
        [
            (0, "zero".into()),
            (1, "one".into()),
            (2, "two".into()),
            (3, "new".into())
        ]
    );
}

#[test]
fn limits_are_enforced() {
    let dir = TempDir::new();
    let options = EmbeddedOptions {
        payload_size_max_bytes: 16,
        append_records_max: 4,
        ..EmbeddedOptions::default()
    };
    let log = EmbeddedLog::open(dir.path(), options).unwrap();
    let writer = log.writer();

    match writer.append(vec![vec![1; 16], vec![2; 17]]) {
        Err(LogError::PayloadTooLarge {
            index: 1,
            size_bytes: 17,
            size_max_bytes: 16,
        }) => {}
        other => panic!("expected PayloadTooLarge, got {other:?}"),
    }
    match writer.append(vec![vec![0]; 5]) {
        Err(LogError::TooManyRecords {
            count: 5,
            count_max: 4,
        }) => {}
        other => panic!("expected TooManyRecords, got {other:?}"),
    }
    assert_eq!(
        writer.end_offset().unwrap(),
        0,
        "a rejected append writes nothing"
    );
    assert_eq!(
        offsets(&writer.append(vec![vec![0; 16]; 4]).unwrap()),
        [0, 1, 2, 3]
    );
}

/// `poll_each`'s records, as `LogRecord`s (`poll`'s).
fn lent(reader: &mut dyn LogReader, max_records: usize) -> Vec<LogRecord> {
    let mut records = Vec::new();
    let count = reader
        .poll_each(
            max_records,
            NO_WAIT,
            &mut |offset, timestamp_ms, payload| {
                records.push(LogRecord {
                    offset,
                    timestamp_ms,
                    payload: payload.to_vec(),
                })
            },
        )
        .unwrap();
    assert_eq!(count, records.len());
    records
}

/// The tail cache: a reader that follows the writer takes records from memory, one that
/// lags behind it (or a commit larger than the cache) from the record files; both read
/// the same, whether they copy the records (`poll`) or are lent them (`poll_each`, here
/// also a few at a time, cutting commits).
#[test]
fn readers_from_the_tail_cache_and_from_disk_read_the_same_records() {
    let dir = TempDir::new();
    let options = EmbeddedOptions {
        tail_cache_records_max: 8,
        tail_cache_bytes_max: 1024,
        ..EmbeddedOptions::default()
    };
    let log = EmbeddedLog::open(dir.path(), options).unwrap();
    let writer = log.writer();
    let mut following = log.reader();
    let mut lagging = log.reader();
    let (mut following_lent, mut lagging_lent) = (log.reader(), log.reader());
    let mut followed = Vec::new();
    let mut followed_lent = Vec::new();
    let mut expected = Vec::new();
    for (round, size) in [1usize, 3, 5, 20, 2, 7, 1, 9, 4].into_iter().enumerate() {
        let batch: Vec<Vec<u8>> = (0..size)
            .map(|index| format!("round {round} record {index}").into_bytes())
            .collect();
        expected.extend(batch.iter().cloned());
        writer.append(batch).unwrap();
        followed.extend(following.poll(1000, NO_WAIT).unwrap());
        loop {
            let some = lent(&mut following_lent, 3);
            if some.is_empty() {
                break;
            }
            followed_lent.extend(some);
        }
    }
    assert_eq!(following.position(), expected.len() as u64);
    assert_eq!(following_lent.position(), expected.len() as u64);
    assert_eq!(followed_lent, followed);
    let lagged = lagging.poll(1000, NO_WAIT).unwrap();
    assert_eq!(lagged, followed);
    assert_eq!(lent(&mut lagging_lent, 1000), followed);
    assert_eq!(lagging_lent.position(), expected.len() as u64);
    assert_eq!(
        followed
            .iter()
            .map(|record| record.payload.clone())
            .collect::<Vec<_>>(),
        expected
    );
    drop((
        writer,
        following,
        lagging,
        following_lent,
        lagging_lent,
        log,
    ));
    let reopened = EmbeddedLog::open(dir.path(), EmbeddedOptions::default()).unwrap();
    let from_disk = reopened.reader().poll(1000, NO_WAIT).unwrap();
    assert_eq!(from_disk, followed, "the cache gave what the disk holds");
}

/// A log without `sync_appends` (the outcomes log): appends are read at once and survive
/// the process; `sync` and a reader's `make_durable` make them survive the machine.
#[test]
fn an_unsynced_log_shows_its_records_at_once_and_keeps_them() {
    let dir = TempDir::new();
    let options = EmbeddedOptions {
        sync_appends: false,
        ..EmbeddedOptions::default()
    };
    let log = EmbeddedLog::open(dir.path(), options.clone()).unwrap();
    let appended = log.writer().append(payloads(&["a", "b"])).unwrap();
    assert_eq!(offsets(&appended), vec![0, 1]);
    let mut reader = log.reader();
    assert_eq!(
        texts(&reader.poll(10, NO_WAIT).unwrap()),
        vec![(0, "a".to_string()), (1, "b".to_string())]
    );
    log.sync().unwrap();
    log.writer().append(payloads(&["c"])).unwrap();
    reader.make_durable().unwrap();
    drop((reader, log));
    let reopened = EmbeddedLog::open(dir.path(), options).unwrap();
    assert_eq!(reopened.end_offset(), 3);
    assert_eq!(
        texts(&reopened.reader().poll(10, NO_WAIT).unwrap())[2],
        (2, "c".to_string())
    );
}

/// `start_append` calls back once the records are written and readable, with their
/// offsets; a payload over the limit is refused through the callback, nothing written.
#[test]
fn start_append_calls_back_after_the_commit() {
    let dir = TempDir::new();
    let log = EmbeddedLog::open(
        dir.path(),
        EmbeddedOptions {
            payload_size_max_bytes: 16,
            ..EmbeddedOptions::default()
        },
    )
    .unwrap();
    let writer = log.writer();
    let (sender, results) = crossbeam_channel::unbounded();
    for text in ["first", "second"] {
        let sender = sender.clone();
        let started = writer.start_append(
            payloads(&[text]),
            Box::new(move |result| sender.send(result).unwrap()),
        );
        assert!(started.is_ok());
    }
    let first = results.recv().unwrap().unwrap();
    let second = results.recv().unwrap().unwrap();
    assert_eq!((offsets(&first), offsets(&second)), (vec![0], vec![1]));
    assert_eq!(log.reader().poll(10, NO_WAIT).unwrap().len(), 2);

    let sender = sender.clone();
    let started = writer.start_append(
        vec![vec![0; 17]],
        Box::new(move |result| sender.send(result).unwrap()),
    );
    assert!(started.is_ok());
    assert!(matches!(
        results.recv().unwrap(),
        Err(LogError::PayloadTooLarge { index: 0, .. })
    ));
    assert_eq!(log.end_offset(), 2);
}

/// A log whose commits wait the longest delay allowed once the commit before held
/// `siblings` appends.
fn open_waiting_longest(dir: &Path, siblings: usize) -> EmbeddedLog {
    let options = EmbeddedOptions {
        group_commit_delay_us: GROUP_COMMIT_DELAY_MAX_US,
        group_commit_siblings: siblings,
        ..EmbeddedOptions::default()
    };
    EmbeddedLog::open(dir, options).unwrap()
}

/// A lone append never waits for siblings, however long the delay: with the longest delay
/// allowed and a load of two appends to turn it on, five appends one after another make five
/// commits, none of which waited.
#[test]
fn a_lone_append_never_waits_for_siblings() {
    let dir = TempDir::new();
    let log = open_waiting_longest(dir.path(), 2);
    let writer = log.writer();
    for (offset, text) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
        let appended = writer.append(payloads(&[text])).unwrap();
        assert_eq!(offsets(&appended), vec![offset as u64]);
    }
    let expected = GroupCommits {
        commits: 5,
        delayed: 0,
    };
    assert_eq!(log.group_commits(), expected);
}

/// Under load (here any commit before counts: one sibling) a commit waits the delay (from
/// the end of the commit before, or, if none came by then, from its first append), and
/// the appends queued meanwhile ride the same commit: after a first commit, four appends
/// started together make one more commit, which waited, with the next four offsets in the
/// order they were started (whether they came within the delay or after it).
#[test]
fn under_load_a_commit_waits_and_gathers_the_appends_queued_meanwhile() {
    let dir = TempDir::new();
    let log = open_waiting_longest(dir.path(), 1);
    let writer = log.writer();
    assert_eq!(
        offsets(&writer.append(payloads(&["first"])).unwrap()),
        vec![0]
    );
    assert_eq!(
        log.group_commits(),
        GroupCommits {
            commits: 1,
            delayed: 0
        }
    );
    let (sender, results) = crossbeam_channel::unbounded();
    for index in 0..4_u64 {
        let sender = sender.clone();
        let started = writer.start_append(
            payloads(&["sibling"]),
            Box::new(move |result| sender.send((index, result)).unwrap()),
        );
        assert!(started.is_ok());
    }
    let mut answers: Vec<(u64, Vec<u64>)> = (0..4)
        .map(|_| {
            let (index, result) = results.recv().unwrap();
            (index, offsets(&result.unwrap()))
        })
        .collect();
    answers.sort();
    assert_eq!(
        answers,
        vec![(0, vec![1]), (1, vec![2]), (2, vec![3]), (3, vec![4])]
    );
    assert_eq!(
        log.group_commits(),
        GroupCommits {
            commits: 2,
            delayed: 1
        }
    );
    assert_eq!(log.reader().poll(10, NO_WAIT).unwrap().len(), 5);
}

/// The hook runs before each synced commit, once per commit; while it fails, commits are
/// refused whole (nothing written, the reason said) and the log goes on once it succeeds.
/// A hook dropped by its owner runs no more.
#[test]
fn what_must_precede_a_commit_runs_first_and_its_failure_refuses_the_commit() {
    use std::sync::atomic::AtomicBool;
    let dir = TempDir::new();
    let log = open(dir.path());
    let writer = log.writer();
    let runs = Arc::new(AtomicU64::new(0));
    let failing = Arc::new(AtomicBool::new(false));
    let (hook_runs, hook_failing) = (Arc::clone(&runs), Arc::clone(&failing));
    let hook: requestlog::BeforeCommit = Arc::new(move || {
        hook_runs.fetch_add(1, Ordering::SeqCst);
        match hook_failing.load(Ordering::SeqCst) {
            true => Err("the disk is full".to_string()),
            false => Ok(()),
        }
    });
    assert!(writer.sync_before_commit(&hook));

    assert_eq!(
        offsets(&writer.append(payloads(&["a", "b"])).unwrap()),
        [0, 1]
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    failing.store(true, Ordering::SeqCst);
    match writer.append(payloads(&["lost"])) {
        Err(LogError::BeforeCommit(reason)) => assert_eq!(reason, "the disk is full"),
        other => panic!("expected the commit refused, got {other:?}"),
    }
    assert_eq!(
        writer.end_offset().unwrap(),
        2,
        "nothing of a refused commit is written"
    );
    failing.store(false, Ordering::SeqCst);
    assert_eq!(offsets(&writer.append(payloads(&["c"])).unwrap()), [2]);
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    // The log holds the hook only while its owner does.
    drop(hook);
    assert_eq!(offsets(&writer.append(payloads(&["d"])).unwrap()), [3]);
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    drop(writer);
    drop(log);
    let reopened = open(dir.path());
    let mut reader = reopened.reader();
    assert_eq!(
        texts(&reader.poll(10, NO_WAIT).unwrap()),
        [
            (0, "a".into()),
            (1, "b".into()),
            (2, "c".into()),
            (3, "d".into())
        ]
    );

    // A log whose appends are not synced takes no hook: the caller keeps its own sync.
    let unsynced_dir = TempDir::new();
    let unsynced = EmbeddedLog::open(
        unsynced_dir.path(),
        EmbeddedOptions {
            sync_appends: false,
            ..EmbeddedOptions::default()
        },
    )
    .unwrap();
    let hook: requestlog::BeforeCommit = Arc::new(|| Ok(()));
    assert!(!unsynced.writer().sync_before_commit(&hook));
}

/// Writes into tables of the log, added to a commit by a companion and told once whether
/// they became durable.
struct TableCompanion {
    next: std::sync::Mutex<Vec<(&'static str, &'static str)>>,
    told: std::sync::Mutex<Vec<bool>>,
}

impl requestlog::CommitCompanion for TableCompanion {
    fn before_commit(
        &self,
        tables: Option<&mut requestlog::TableBatch<'_>>,
    ) -> Result<bool, String> {
        let tables = tables.expect("an embedded log's commit carries its tables");
        let next = std::mem::take(&mut *self.next.lock().unwrap());
        for (key, value) in &next {
            tables.put("people", key.as_bytes(), value.as_bytes());
        }
        Ok(!next.is_empty())
    }

    fn after_commit(&self, durable: bool) {
        self.told.lock().unwrap().push(durable);
    }
}

fn hosting(dir: &Path) -> EmbeddedLog {
    EmbeddedLog::open(
        dir,
        EmbeddedOptions {
            hosted_tables: vec!["people".into()],
            ..EmbeddedOptions::default()
        },
    )
    .expect("open embedded log")
}

/// A scan of a hosted table sees every key, in order, whatever their first bytes (the
/// tables' memtables hash by them) and after a reopening; and no other table's.
#[test]
fn a_hosted_table_s_keys_are_scanned_whole() {
    let dir = TempDir::new();
    let scan = |log: &EmbeddedLog| {
        let mut keys = Vec::new();
        let tables = log.writer().hosted_tables().unwrap();
        tables
            .for_each_key("people", |key| keys.push(key.to_vec()))
            .unwrap();
        keys
    };
    let log = hosting(dir.path());
    let mut expected: Vec<Vec<u8>> = (0..500u32)
        .map(|n| format!("u_{:08x}", n.wrapping_mul(0x9e37_79b9)).into_bytes())
        .chain([b"u".to_vec(), b"short".to_vec()])
        .collect();
    let tables = log.writer().hosted_tables().unwrap();
    tables
        .write(true, |batch| {
            for key in &expected {
                batch.put("people", key, b"x");
            }
        })
        .unwrap();
    expected.sort();
    assert_eq!(scan(&log), expected);
    drop((tables, log));
    assert_eq!(scan(&hosting(dir.path())), expected, "after a reopening");
}

/// A companion's writes to the log's own tables ride the commit of the records: readable
/// once the append returns, the companion told they are durable; when another companion
/// refuses the commit, neither the records nor the table writes are written and the first
/// is told so. The tables outlast a reopening, also by a version that does not name them.
#[test]
fn a_companion_s_table_writes_ride_the_log_s_commit() {
    let dir = TempDir::new();
    let log = hosting(dir.path());
    let writer = log.writer();
    let tables = writer.hosted_tables().expect("the log hosts tables");
    assert!(tables.has("people") && !tables.has("meta"));
    let companion = Arc::new(TableCompanion {
        next: std::sync::Mutex::new(vec![("u_a", "alice")]),
        told: std::sync::Mutex::default(),
    });
    let hook: requestlog::BeforeCommit = companion.clone();
    assert!(writer.sync_before_commit(&hook));

    assert_eq!(offsets(&writer.append(payloads(&["a"])).unwrap()), [0]);
    assert_eq!(
        tables.get("people", b"u_a").unwrap(),
        Some(b"alice".to_vec())
    );
    assert_eq!(*companion.told.lock().unwrap(), [true]);
    // Nothing to add: not told.
    assert_eq!(offsets(&writer.append(payloads(&["b"])).unwrap()), [1]);
    assert_eq!(*companion.told.lock().unwrap(), [true]);

    // A second companion refuses: the first one's writes are not made.
    companion.next.lock().unwrap().push(("u_b", "bob"));
    let refusing: requestlog::BeforeCommit = Arc::new(|| Err("the disk is full".to_string()));
    assert!(writer.sync_before_commit(&refusing));
    assert!(matches!(
        writer.append(payloads(&["lost"])),
        Err(LogError::BeforeCommit(_))
    ));
    assert_eq!(*companion.told.lock().unwrap(), [true, false]);
    assert_eq!(tables.get("people", b"u_b").unwrap(), None);
    assert_eq!(writer.end_offset().unwrap(), 2);
    drop(refusing);

    // A write of the tables' own.
    tables
        .write(true, |batch| batch.put("people", b"u_c", b"carol"))
        .unwrap();
    drop((hook, tables, writer, log));
    let reopened = open(dir.path());
    assert!(
        reopened.writer().hosted_tables().is_none(),
        "opened without naming them: kept, not offered"
    );
    assert_eq!(reopened.reader().poll(10, NO_WAIT).unwrap().len(), 2);
    drop(reopened);
    let reopened = hosting(dir.path());
    let tables = reopened.writer().hosted_tables().unwrap();
    assert_eq!(
        tables.get("people", b"u_a").unwrap(),
        Some(b"alice".to_vec())
    );
    assert_eq!(tables.get("people", b"u_b").unwrap(), None);
    assert_eq!(
        tables.get("people", b"u_c").unwrap(),
        Some(b"carol".to_vec())
    );

    // A log whose appends are not synced offers no tables.
    let unsynced_dir = TempDir::new();
    let unsynced = EmbeddedLog::open(
        unsynced_dir.path(),
        EmbeddedOptions {
            sync_appends: false,
            hosted_tables: vec!["people".into()],
            ..EmbeddedOptions::default()
        },
    )
    .unwrap();
    assert!(unsynced.writer().hosted_tables().is_none());
}

/// A companion's writes ride the journal with the records: what RocksDB lost in a crash
/// (its write-ahead log is not synced by commits) is written back from the journal when
/// the log opens, whether the record files kept their records or lost them too; and what
/// RocksDB durably holds is not written again over a later change (an erased entry stays
/// erased). Simulated with the log's files as they were after a first run and the journal
/// (and record files) as they are after a second.
#[test]
fn a_companion_s_writes_rocksdb_lost_are_written_back_from_the_journal() {
    let dir = TempDir::new();
    let run = |dir: &Path, entries: Vec<(&'static str, &'static str)>, texts: &[&str]| {
        let log = hosting(dir);
        let writer = log.writer();
        let companion = Arc::new(TableCompanion {
            next: std::sync::Mutex::new(Vec::new()),
            told: std::sync::Mutex::default(),
        });
        let hook: requestlog::BeforeCommit = companion.clone();
        assert!(writer.sync_before_commit(&hook));
        for (entry, text) in entries.into_iter().zip(texts) {
            companion.next.lock().unwrap().push(entry);
            writer.append(payloads(&[text])).unwrap();
        }
    };
    run(dir.path(), vec![("u_a", "alice")], &["a"]);
    let earlier = TempDir::new();
    let earlier_with_records = TempDir::new();
    copy_dir(dir.path(), earlier.path());
    copy_dir(dir.path(), earlier_with_records.path());
    run(
        dir.path(),
        vec![("u_b", "bob"), ("u_c", "carol")],
        &["b", "c"],
    );
    std::fs::copy(
        dir.path().join(JOURNAL_FILE),
        earlier.path().join(JOURNAL_FILE),
    )
    .unwrap();
    std::fs::copy(
        dir.path().join(JOURNAL_FILE),
        earlier_with_records.path().join(JOURNAL_FILE),
    )
    .unwrap();
    copy_dir(
        &dir.path().join("segments"),
        &earlier_with_records.path().join("segments"),
    );
    for copy in [earlier.path(), earlier_with_records.path()] {
        let log = hosting(copy);
        assert_eq!(
            texts(&log.reader().poll(10, NO_WAIT).unwrap()),
            [(0, "a".into()), (1, "b".into()), (2, "c".into())]
        );
        let tables = log.writer().hosted_tables().unwrap();
        for (key, value) in [("u_a", "alice"), ("u_b", "bob"), ("u_c", "carol")] {
            assert_eq!(
                tables.get("people", key.as_bytes()).unwrap(),
                Some(value.as_bytes().to_vec()),
                "{key} in {}",
                copy.display()
            );
        }
    }
    // Erased after the commits that wrote it, which the journal still holds: opening
    // does not bring it back.
    {
        let log = hosting(dir.path());
        let tables = log.writer().hosted_tables().unwrap();
        tables
            .write(true, |batch| batch.delete("people", b"u_b"))
            .unwrap();
    }
    let log = hosting(dir.path());
    let tables = log.writer().hosted_tables().unwrap();
    assert_eq!(tables.get("people", b"u_b").unwrap(), None);
    assert_eq!(
        tables.get("people", b"u_c").unwrap(),
        Some(b"carol".to_vec())
    );
}

/// What is deleted from a hosted table is, after `retire_deleted`, in no file of the log's
/// directory: not in the write-ahead log that carried it (with records), not in a table file.
/// The journal's file in a log's directory (`requestlog/src/journal.rs`).
const JOURNAL_FILE: &str = "BOXOFFICE-JOURNAL";

/// Copies the files of `from` into `to`, directories too.
fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A crash of the machine may lose the tail of the record files (and of RocksDB's
/// write-ahead log), which commits do not sync: the journal, synced by every commit, holds
/// them, and opening the log writes them back. Simulated with the log's files as they were
/// after a first run and the journal as it is after a second.
#[test]
fn commits_the_files_lost_are_written_back_from_the_journal() {
    let dir = TempDir::new();
    let earlier = TempDir::new();
    {
        let log = open(dir.path());
        log.writer().append(payloads(&["one", "two"])).unwrap();
    }
    copy_dir(dir.path(), earlier.path());
    {
        let log = open(dir.path());
        let writer = log.writer();
        writer.append(payloads(&["three"])).unwrap();
        writer.append(payloads(&["four", "five"])).unwrap();
    }
    std::fs::copy(
        dir.path().join(JOURNAL_FILE),
        earlier.path().join(JOURNAL_FILE),
    )
    .unwrap();

    let log = open(earlier.path());
    assert_eq!(log.end_offset(), 5);
    let expected = [
        (0, "one".into()),
        (1, "two".into()),
        (2, "three".into()),
        (3, "four".into()),
        (4, "five".into()),
    ];
    assert_eq!(texts(&log.reader().poll(10, NO_WAIT).unwrap()), expected);
    assert_eq!(
        offsets(&log.writer().append(payloads(&["six"])).unwrap()),
        [5]
    );
    drop(log);
    // Written back durably: the journal, overwritten since, is not needed again.
    let log = open(earlier.path());
    assert_eq!(log.end_offset(), 6);
}

/// Any earlier state of the log's files (records and RocksDB) with the newest journal (what
/// a machine crash could leave, and worse: states older than the journal covers) opens to
/// exactly the records written, or is refused as corrupt; never to other records or a
/// silent gap. Seeded: six sessions of random commits through a 64-KiB journal (many laps
/// each), the files copied after each.
#[test]
fn any_earlier_rocksdb_state_with_the_journal_recovers_exactly_or_is_refused() {
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    let options = EmbeddedOptions {
        journal_size_bytes: 64 * 1024,
        ..EmbeddedOptions::default()
    };
    let mut rng = StdRng::seed_from_u64(17);
    let dir = TempDir::new();
    let mut written: Vec<Vec<u8>> = Vec::new();
    let mut copies = Vec::new();
    for session in 0..6 {
        {
            let log = EmbeddedLog::open(dir.path(), options.clone()).unwrap();
            let writer = log.writer();
            // The last two sessions are short, so the newest journal still covers the
            // end of the one before.
            let commits = if session >= 4 {
                rng.random_range(1..4)
            } else {
                rng.random_range(5..40)
            };
            for _ in 0..commits {
                let payloads: Vec<Vec<u8>> = (0..rng.random_range(1..4))
                    .map(|_| {
                        let length = rng.random_range(1..3000);
                        (0..length).map(|_| rng.random::<u8>()).collect()
                    })
                    .collect();
                writer.append(payloads.clone()).unwrap();
                written.extend(payloads);
            }
        }
        let copy = TempDir::new();
        copy_dir(dir.path(), copy.path());
        copies.push(copy);
    }
    let (mut recovered, mut refused) = (0, 0);
    for copy in &copies {
        std::fs::copy(
            dir.path().join(JOURNAL_FILE),
            copy.path().join(JOURNAL_FILE),
        )
        .unwrap();
        match EmbeddedLog::open(copy.path(), options.clone()) {
            Ok(log) => {
                let records = log.reader().poll(100_000, NO_WAIT).unwrap();
                let payloads: Vec<Vec<u8>> =
                    records.into_iter().map(|record| record.payload).collect();
                assert_eq!(payloads, written, "recovered, so every record, in order");
                recovered += 1;
            }
            Err(LogError::Corrupt { .. }) => refused += 1,
            Err(other) => panic!("expected records or corruption, got {other}"),
        }
    }
    // The last copy is the final state; the one before it is brought up to date from the
    // journal; the oldest ones lack what the journal has overwritten since.
    assert_eq!((recovered, refused), (2, 4));
}

/// Journal entries that do not follow the files' last record mean an acknowledged commit
/// is lost: opening fails loudly, naming the first missing offset.
#[test]
fn a_journal_that_does_not_follow_the_records_fails_open() {
    let dir = TempDir::new();
    let empty = TempDir::new();
    drop(open(dir.path()));
    copy_dir(dir.path(), empty.path());
    {
        let log = open(dir.path());
        log.writer().append(payloads(&["a"])).unwrap();
        log.writer().append(payloads(&["b"])).unwrap();
    }
    {
        let log = open(dir.path());
        log.writer().append(payloads(&["c"])).unwrap();
    }
    // Files with no record, a journal whose commits start at offset 1 or 2.
    std::fs::copy(
        dir.path().join(JOURNAL_FILE),
        empty.path().join(JOURNAL_FILE),
    )
    .unwrap();
    match EmbeddedLog::open(empty.path(), EmbeddedOptions::default()) {
        Err(LogError::Corrupt { offset: 0, .. }) => {}
        other => panic!(
            "expected corruption at offset 0, got {:?}",
            other.map(|_| ())
        ),
    }
}

/// A commit larger than half the journal syncs the record files itself; smaller ones that
/// wrap the journal many times keep every record.
#[test]
fn commits_larger_than_half_the_journal_and_many_laps_of_it_keep_every_record() {
    let dir = TempDir::new();
    let options = EmbeddedOptions {
        journal_size_bytes: 64 * 1024,
        ..EmbeddedOptions::default()
    };
    {
        let log = EmbeddedLog::open(dir.path(), options.clone()).unwrap();
        let writer = log.writer();
        writer.append(vec![vec![7u8; 40_000]]).unwrap();
        for index in 0..100u32 {
            writer
                .append(vec![index.to_le_bytes().repeat(1000)])
                .unwrap();
        }
    }
    let log = EmbeddedLog::open(dir.path(), options).unwrap();
    let records = log.reader().poll(200, NO_WAIT).unwrap();
    assert_eq!(records.len(), 101);
    assert_eq!(records[0].payload, vec![7u8; 40_000]);
    for (index, record) in records[1..].iter().enumerate() {
        assert_eq!(record.payload, (index as u32).to_le_bytes().repeat(1000));
    }
}

#[test]
fn a_value_deleted_and_retired_is_on_no_file() {
    let secret = b"secret-7f3a9c1e5b2d";
    let on_some_file = |dir: &Path| {
        std::fs::read_dir(dir).unwrap().any(|entry| {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap_or_default();
            bytes.windows(secret.len()).any(|window| window == secret)
        })
    };
    let dir = TempDir::new();
    let log = hosting(dir.path());
    let writer = log.writer();
    let tables = writer.hosted_tables().unwrap();
    tables
        .write(true, |batch| batch.put("people", b"u_a", secret))
        .unwrap();
    writer.append(payloads(&["a", "b"])).unwrap();
    assert!(on_some_file(dir.path()), "written, so on a file");
    // The same value riding a commit of the log, so in its journal too.
    let companion = Arc::new(TableCompanion {
        next: std::sync::Mutex::new(vec![("u_b", std::str::from_utf8(secret).unwrap())]),
        told: std::sync::Mutex::default(),
    });
    let hook: requestlog::BeforeCommit = companion.clone();
    assert!(writer.sync_before_commit(&hook));
    writer.append(payloads(&["rides"])).unwrap();
    assert_eq!(*companion.told.lock().unwrap(), [true]);
    let journal = std::fs::read(dir.path().join(JOURNAL_FILE)).unwrap();
    assert!(journal.windows(secret.len()).any(|window| window == secret));
    // Flushed into a table file too, before the delete.
    tables.retire_deleted(&[]).unwrap();
    writer.append(payloads(&["c"])).unwrap();
    assert!(on_some_file(dir.path()));

    tables
        .write(true, |batch| {
            batch.delete("people", b"u_a");
            batch.delete("people", b"u_b");
        })
        .unwrap();
    writer.append(payloads(&["d"])).unwrap();
    tables.retire_deleted(&["people"]).unwrap();
    assert!(!on_some_file(dir.path()), "retired");
    assert_eq!(tables.get("people", b"u_a").unwrap(), None);
    assert_eq!(tables.get("people", b"u_b").unwrap(), None);
    assert_eq!(log.reader().poll(10, NO_WAIT).unwrap().len(), 5);
    // The log goes on, its journal too.
    assert_eq!(offsets(&writer.append(payloads(&["e"])).unwrap()), [5]);
    drop((hook, tables, writer, log));
    assert_eq!(open(dir.path()).end_offset(), 6);
}
