//! The embedded log's records on disk: append-only segment files, as Kafka keeps a
//! partition.
//!
//! ```text
//! <log dir>/segments/00000000000000000000.seg   records 0..n, one entry per commit
//!                    000000000000000n.seg ...    the next file starts where one ends
//!                    SYNCED                      how far the files are durable
//! ```
//!
//! Why not RocksDB: the records are written once, in offset order, and read in offset
//! order; RocksDB's write path (its batch, its write-ahead log's buffer, a skip list
//! insert per record, then flushes and compactions of what is never updated) cost `serve`
//! 2-5 us of CPU a request against keeping the records in the journal and the tail cache
//! alone (BENCHMARKS.md, session 40). A segment file takes each commit as one `pwrite`
//! of the bytes the journal gets anyway.
//!
//! Entry layout (little-endian): magic `u32`, body length `u32`, CRC-32C `u32` of the 12
//! header bytes after it and of the body, first offset `u64`, record count `u32`; the
//! body is `count` times a value length `u32` and the value in `record_format`'s layout
//! (its own CRC over its offset, version and timestamp).
//!
//! Durability: the files are written without a sync. A synced log's commits are durable
//! by its journal (`journal.rs`), which keeps each entry until a sync of the files
//! ([`Segments::sync`]) covers it; a log without `sync_appends` is durable as far as its
//! last [`Segments::sync`]. Each sync ends by recording the offset it made durable in
//! `SYNCED` (two slots written in turn, each with its CRC, so a torn write leaves the
//! other). Opening ([`Segments::open`]) trusts the files below that offset, and walks the
//! rest: an entry that is not whole and valid there is the torn tail of a crash, cut off
//! with every file after it (the journal writes back what was acknowledged); an invalid
//! entry below it is corruption, refused.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::record_format::{decode_value, encode_value_into};
use crate::{LogError, LogRecord};

/// The segment files' directory in the log's directory.
pub(crate) const SEGMENTS_DIR: &str = "segments";
const SYNCED_FILE: &str = "SYNCED";
const SEGMENT_SUFFIX: &str = ".seg";
const ENTRY_MAGIC: u32 = 0x4753_4f42; // "BOSG"
pub(crate) const ENTRY_HEADER_BYTES: usize = 24;
const SYNCED_MAGIC: u32 = 0x434e_5953; // "SYNC"
/// Where the second slot of `SYNCED` starts (its own sector).
const SYNCED_SLOT_BYTES: u64 = 512;

/// The smallest and largest segment size accepted.
pub const SEGMENT_SIZE_MIN_BYTES: u64 = 4 * 1024;
pub const SEGMENT_SIZE_MAX_BYTES: u64 = 1 << 30;

/// Appends a commit's entry to `out`: `records` as `(timestamp_ms, payload)`, the first at
/// `first_offset` and the others after it.
pub(crate) fn encode_entry<'a>(
    first_offset: u64,
    records: impl IntoIterator<Item = (u64, &'a [u8])>,
    out: &mut Vec<u8>,
) {
    let start = out.len();
    out.extend_from_slice(&[0; ENTRY_HEADER_BYTES]);
    let mut count: u32 = 0;
    for (timestamp_ms, payload) in records {
        let at = out.len();
        out.extend_from_slice(&[0; 4]);
        encode_value_into(first_offset + u64::from(count), timestamp_ms, payload, out);
        let length = u32::try_from(out.len() - at - 4).expect("a record fits a u32");
        out[at..at + 4].copy_from_slice(&length.to_le_bytes());
        count += 1;
    }
    let body_bytes =
        u32::try_from(out.len() - start - ENTRY_HEADER_BYTES).expect("a commit fits a u32");
    let header = &mut out[start..start + ENTRY_HEADER_BYTES];
    header[0..4].copy_from_slice(&ENTRY_MAGIC.to_le_bytes());
    header[4..8].copy_from_slice(&body_bytes.to_le_bytes());
    header[12..20].copy_from_slice(&first_offset.to_le_bytes());
    header[20..24].copy_from_slice(&count.to_le_bytes());
    let crc = crc32c::crc32c_append(
        crc32c::crc32c(&out[start + 12..start + ENTRY_HEADER_BYTES]),
        &out[start + ENTRY_HEADER_BYTES..],
    );
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
}

/// An entry's header, as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub first_offset: u64,
    pub count: u32,
    pub body_bytes: u32,
    crc: u32,
}

impl Header {
    /// The header at the start of `bytes`, if it has this format's magic.
    pub(crate) fn decode(bytes: &[u8]) -> Option<Header> {
        let bytes = bytes.get(..ENTRY_HEADER_BYTES)?;
        (u32_at(bytes, 0) == ENTRY_MAGIC).then(|| Header {
            body_bytes: u32_at(bytes, 4),
            crc: u32_at(bytes, 8),
            first_offset: u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes")),
            count: u32_at(bytes, 20),
        })
    }

    pub(crate) fn end_offset(&self) -> u64 {
        self.first_offset + u64::from(self.count)
    }

    pub(crate) fn entry_bytes(&self) -> u64 {
        ENTRY_HEADER_BYTES as u64 + u64::from(self.body_bytes)
    }

    /// Whether `body` is this header's, unchanged.
    fn checks(&self, header_bytes: &[u8], body: &[u8]) -> bool {
        body.len() == self.body_bytes as usize
            && crc32c::crc32c_append(crc32c::crc32c(&header_bytes[12..ENTRY_HEADER_BYTES]), body)
                == self.crc
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// Calls `each(offset, timestamp_ms, payload)` for the records of a checked body whose
/// offsets are in `from..until`.
fn each_record(
    header: &Header,
    body: &[u8],
    from: u64,
    until: u64,
    mut each: impl FnMut(u64, u64, &[u8]),
) -> Result<(), LogError> {
    let mut at = 0;
    for offset in header.first_offset..header.end_offset() {
        let corrupt = || LogError::Corrupt {
            offset,
            reason: "a commit's records do not fill its entry",
        };
        let length = body.get(at..at + 4).ok_or_else(corrupt)?;
        let length = u32_at(length, 0) as usize;
        let value = body.get(at + 4..at + 4 + length).ok_or_else(corrupt)?;
        at += 4 + length;
        if offset >= from && offset < until {
            let (timestamp_ms, payload) = decode_value(offset, value)?;
            each(offset, timestamp_ms, payload);
        }
    }
    if at != body.len() {
        return Err(LogError::Corrupt {
            offset: header.first_offset,
            reason: "a commit's entry holds more than its records",
        });
    }
    Ok(())
}

fn segment_name(first_offset: u64) -> String {
    format!("{first_offset:020}{SEGMENT_SUFFIX}")
}

fn io_error(what: &str) -> impl Fn(io::Error) -> LogError + '_ {
    move |error| LogError::Files(format!("{what}: {error}"))
}

/// The segment files of one log: written by its one writer at a time, read by any reader,
/// synced by whoever asks.
pub(crate) struct Segments {
    dir: PathBuf,
    segment_size_bytes: u64,
    files: Mutex<Files>,
    /// One sync at a time, so `SYNCED` only grows.
    syncing: Mutex<SyncSlot>,
}

struct SyncSlot {
    file: Option<File>,
    /// The slot the next record of `SYNCED` goes to.
    next_slot: u64,
    synced_end: u64,
}

struct Files {
    /// The first offset of every file, ascending.
    starts: Vec<u64>,
    /// The newest file, which commits are appended to: its first offset, handle, length.
    current: Option<(u64, Arc<File>, u64)>,
    /// The offset after the last entry written.
    written_end: u64,
    /// Older files written since the last sync.
    unsynced: Vec<Arc<File>>,
    /// A file was made since the last sync: the directory needs one too.
    dir_unsynced: bool,
    /// Files made since the log was opened.
    files_made: u64,
}

/// A reader's place in the files: the entry starting at `entry_offset`, at `position` of
/// the file holding offsets from `start`.
pub(crate) struct Cursor {
    start: u64,
    file: File,
    position: u64,
    entry_offset: u64,
}

impl Segments {
    /// Opens (creating if needed) the segment files under `log_dir`, cutting off a torn
    /// tail past what `SYNCED` says is durable ([module docs](self)).
    pub(crate) fn open(log_dir: &Path, segment_size_bytes: u64) -> Result<Segments, LogError> {
        let dir = log_dir.join(SEGMENTS_DIR);
        if !dir.exists() {
            std::fs::create_dir_all(&dir).map_err(io_error("creating the segments' directory"))?;
            File::open(log_dir)
                .and_then(|log_dir| log_dir.sync_all())
                .map_err(io_error("syncing the log's directory"))?;
        }
        let (synced_end, next_slot) = read_synced(&dir)?;
        let mut starts = list_starts(&dir)?;
        // Trusted: every file wholly below `synced_end`; walked: the rest, from the file
        // holding `synced_end` on.
        let walk_from = starts
            .iter()
            .rposition(|&start| start <= synced_end)
            .unwrap_or(0);
        if synced_end > 0 && starts.is_empty() {
            return Err(LogError::Corrupt {
                offset: 0,
                reason: "the log's segment files are missing",
            });
        }
        let mut expected = starts.get(walk_from).copied().unwrap_or(0);
        let mut index = walk_from;
        while index < starts.len() {
            let start = starts[index];
            let path = dir.join(segment_name(start));
            if start != expected {
                if expected < synced_end {
                    return Err(LogError::Corrupt {
                        offset: expected,
                        reason: "record missing",
                    });
                }
                cut_files(&dir, &mut starts, index)?;
                break;
            }
            let bytes = std::fs::read(&path).map_err(io_error("reading a segment file"))?;
            let mut at = 0usize;
            let mut whole = true;
            while at < bytes.len() {
                let valid = Header::decode(&bytes[at..]).filter(|header| {
                    header.first_offset == expected
                        && bytes.len() - at >= header.entry_bytes() as usize
                        && header.checks(
                            &bytes[at..at + ENTRY_HEADER_BYTES],
                            &bytes[at + ENTRY_HEADER_BYTES..at + header.entry_bytes() as usize],
                        )
                });
                let Some(header) = valid else {
                    whole = false;
                    break;
                };
                expected = header.end_offset();
                at += header.entry_bytes() as usize;
            }
            if !whole {
                if expected < synced_end {
                    return Err(LogError::Corrupt {
                        offset: expected,
                        reason: "a commit the log made durable is damaged",
                    });
                }
                tracing::warn!(
                    file = %path.display(),
                    end_offset = expected,
                    "cutting off the torn tail of the log's newest segment file"
                );
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_error("opening a segment file"))?;
                file.set_len(at as u64)
                    .and_then(|()| file.sync_all())
                    .map_err(io_error("cutting a segment file"))?;
                cut_files(&dir, &mut starts, index + 1)?;
                break;
            }
            index += 1;
        }
        if expected < synced_end {
            return Err(LogError::Corrupt {
                offset: expected,
                reason: "record missing",
            });
        }
        // Files walked past `SYNCED` were written by an earlier process and may still be
        // only in the operating system's cache: the next sync covers them (and the
        // directory, whose entries for them may be unsynced too) before `SYNCED` passes
        // them.
        let mut unsynced = Vec::new();
        for &start in starts.iter().skip(walk_from).rev().skip(1) {
            let file = File::open(dir.join(segment_name(start)))
                .map_err(io_error("opening a segment file"))?;
            unsynced.push(Arc::new(file));
        }
        let current = match starts.last() {
            Some(&start) => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(dir.join(segment_name(start)))
                    .map_err(io_error("opening the newest segment file"))?;
                let length = file
                    .metadata()
                    .map_err(io_error("reading a segment file's size"))?
                    .len();
                Some((start, Arc::new(file), length))
            }
            None => None,
        };
        Ok(Segments {
            dir,
            segment_size_bytes,
            files: Mutex::new(Files {
                starts,
                current,
                written_end: expected,
                unsynced,
                dir_unsynced: true,
                files_made: 0,
            }),
            syncing: Mutex::new(SyncSlot {
                file: None,
                next_slot,
                synced_end,
            }),
        })
    }

    /// The timestamp of the last record (checked), if there is one.
    pub(crate) fn last_timestamp_ms(&self) -> Result<Option<u64>, LogError> {
        let end = self.written_end();
        if end == 0 {
            return Ok(None);
        }
        let mut records = Vec::new();
        self.read(&mut None, end - 1, end, &mut records)?;
        Ok(records.first().map(|record| record.timestamp_ms))
    }

    fn lock_files(&self) -> MutexGuard<'_, Files> {
        self.files
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The offset after the last entry written.
    pub(crate) fn written_end(&self) -> u64 {
        self.lock_files().written_end
    }

    /// Appends a commit's entry ([`encode_entry`]) for the records `first_offset..` (not
    /// yet durable: [`Segments::sync`]). A new file is started first when the newest one
    /// holds `segment_size_bytes` already. Called by one thread at a time (the log's
    /// writer).
    pub(crate) fn append(&self, first_offset: u64, entry: &[u8]) -> Result<(), LogError> {
        let header = Header::decode(entry).expect("an encoded entry");
        let (file, position) = {
            let mut files = self.lock_files();
            assert_eq!(files.written_end, first_offset, "commits follow each other");
            assert_eq!(header.first_offset, first_offset);
            let full = match &files.current {
                None => true,
                Some((_, _, length)) => *length >= self.segment_size_bytes,
            };
            if full {
                let path = self.dir.join(segment_name(first_offset));
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)
                    .map_err(io_error("creating a segment file"))?;
                if let Some((_, sealed, _)) = files.current.take() {
                    files.unsynced.push(sealed);
                }
                files.current = Some((first_offset, Arc::new(file), 0));
                files.starts.push(first_offset);
                files.dir_unsynced = true;
                files.files_made += 1;
            }
            let (_, file, length) = files.current.as_ref().expect("made above");
            (Arc::clone(file), *length)
        };
        file.write_all_at(entry, position)
            .map_err(io_error("writing a segment file"))?;
        let mut files = self.lock_files();
        let current = files.current.as_mut().expect("the file written");
        current.2 = position + entry.len() as u64;
        files.written_end = header.end_offset();
        Ok(())
    }

    /// Makes every entry written so far durable, then records how far in `SYNCED`.
    pub(crate) fn sync(&self) -> Result<(), LogError> {
        let mut slot = self
            .syncing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (files, dir_unsynced, files_made, end) = {
            let files = self.lock_files();
            let mut to_sync = files.unsynced.clone();
            to_sync.extend(files.current.as_ref().map(|(_, file, _)| Arc::clone(file)));
            (
                to_sync,
                files.dir_unsynced,
                files.files_made,
                files.written_end,
            )
        };
        if end == slot.synced_end && !dir_unsynced {
            return Ok(());
        }
        for file in &files {
            file.sync_data()
                .map_err(io_error("syncing a segment file"))?;
        }
        if dir_unsynced {
            File::open(&self.dir)
                .and_then(|dir| dir.sync_all())
                .map_err(io_error("syncing the segments' directory"))?;
        }
        {
            let mut files_now = self.lock_files();
            files_now
                .unsynced
                .retain(|file| !files.iter().any(|synced| Arc::ptr_eq(synced, file)));
            // A file made meanwhile has its name synced next time.
            if dir_unsynced && files_now.files_made == files_made {
                files_now.dir_unsynced = false;
            }
        }
        if slot.file.is_none() {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(self.dir.join(SYNCED_FILE))
                .map_err(io_error("opening the segments' SYNCED file"))?;
            slot.file = Some(file);
        }
        let mut record = [0u8; 16];
        record[0..4].copy_from_slice(&SYNCED_MAGIC.to_le_bytes());
        record[8..16].copy_from_slice(&end.to_le_bytes());
        let crc = crc32c::crc32c(&record[8..16]);
        record[4..8].copy_from_slice(&crc.to_le_bytes());
        let at = slot.next_slot * SYNCED_SLOT_BYTES;
        let file = slot.file.as_ref().expect("opened above");
        file.write_all_at(&record, at)
            .and_then(|()| file.sync_data())
            .map_err(io_error("writing the segments' SYNCED file"))?;
        slot.next_slot = 1 - slot.next_slot;
        slot.synced_end = end;
        Ok(())
    }

    /// Reads the records `from..until` (all written) into `records`, starting from
    /// `cursor` when it is at or before `from` (a reader reading on), else from the start
    /// of the file holding `from`.
    pub(crate) fn read(
        &self,
        cursor: &mut Option<Cursor>,
        from: u64,
        until: u64,
        records: &mut Vec<LogRecord>,
    ) -> Result<(), LogError> {
        let mut next = from;
        let mut header_bytes = [0u8; ENTRY_HEADER_BYTES];
        let mut body = Vec::new();
        while next < until {
            let reusable = cursor.as_ref().is_some_and(|cursor| {
                cursor.entry_offset <= next && self.file_start_of(next) == Some(cursor.start)
            });
            if !reusable {
                *cursor = Some(self.cursor_at(next)?);
            }
            let at = cursor.as_mut().expect("placed above");
            let read = read_fully_at(&at.file, &mut header_bytes, at.position)
                .map_err(io_error("reading a segment file"))?;
            if read == 0 {
                // The end of this file: the next one must start where it ended.
                let following = self.file_after(at.start);
                if following != Some(at.entry_offset) {
                    return Err(LogError::Corrupt {
                        offset: at.entry_offset,
                        reason: "record missing",
                    });
                }
                *cursor = Some(self.open_cursor(at.entry_offset)?);
                continue;
            }
            let header = Header::decode(&header_bytes)
                .filter(|header| {
                    read == ENTRY_HEADER_BYTES && header.first_offset == at.entry_offset
                })
                .ok_or(LogError::Corrupt {
                    offset: at.entry_offset,
                    reason: "a commit's entry in the segment files is damaged",
                })?;
            if header.end_offset() <= next {
                at.position += header.entry_bytes();
                at.entry_offset = header.end_offset();
                continue;
            }
            body.resize(header.body_bytes as usize, 0);
            let read = read_fully_at(&at.file, &mut body, at.position + ENTRY_HEADER_BYTES as u64)
                .map_err(io_error("reading a segment file"))?;
            if read != body.len() || !header.checks(&header_bytes, &body) {
                return Err(LogError::Corrupt {
                    offset: next,
                    reason: "checksum mismatch",
                });
            }
            let to = until.min(header.end_offset());
            each_record(&header, &body, next, to, |offset, timestamp_ms, payload| {
                records.push(LogRecord {
                    offset,
                    timestamp_ms,
                    payload: payload.to_vec(),
                })
            })?;
            next = to;
            if to == header.end_offset() {
                at.position += header.entry_bytes();
                at.entry_offset = header.end_offset();
            }
        }
        Ok(())
    }

    /// The first offset of the file holding `offset`.
    fn file_start_of(&self, offset: u64) -> Option<u64> {
        let files = self.lock_files();
        let index = files.starts.partition_point(|&start| start <= offset);
        index.checked_sub(1).map(|index| files.starts[index])
    }

    /// The first offset of the file after the one starting at `start`.
    fn file_after(&self, start: u64) -> Option<u64> {
        let files = self.lock_files();
        let index = files.starts.partition_point(|&first| first <= start);
        files.starts.get(index).copied()
    }

    /// A cursor at the start of the file holding `offset`.
    fn cursor_at(&self, offset: u64) -> Result<Cursor, LogError> {
        let start = self.file_start_of(offset).ok_or(LogError::Corrupt {
            offset,
            reason: "record missing",
        })?;
        self.open_cursor(start)
    }

    fn open_cursor(&self, start: u64) -> Result<Cursor, LogError> {
        let file = File::open(self.dir.join(segment_name(start)))
            .map_err(io_error("opening a segment file"))?;
        Ok(Cursor {
            start,
            file,
            position: 0,
            entry_offset: start,
        })
    }
}

/// The newest record file of the embedded log in `log_dir`, and how many of its bytes its
/// last sync made durable (what a crash of the machine keeps): for tests that simulate one
/// by cutting the rest. `None` when the log has no record file.
pub fn newest_record_file_synced(log_dir: &Path) -> Result<Option<(PathBuf, u64)>, LogError> {
    let dir = log_dir.join(SEGMENTS_DIR);
    let (synced_end, _) = read_synced(&dir)?;
    let starts = list_starts(&dir)?;
    let Some(&newest) = starts.last() else {
        return Ok(None);
    };
    let path = dir.join(segment_name(newest));
    if newest > synced_end {
        return Ok(Some((path, 0)));
    }
    let bytes = std::fs::read(&path).map_err(io_error("reading a segment file"))?;
    let mut at = 0usize;
    while let Some(header) = Header::decode(&bytes[at..]) {
        if header.first_offset >= synced_end {
            break;
        }
        at += header.entry_bytes() as usize;
    }
    Ok(Some((path, at.min(bytes.len()) as u64)))
}

/// Reads into `buffer` from `at` until it is full or the file ends; how much it read.
fn read_fully_at(file: &File, buffer: &mut [u8], at: u64) -> io::Result<usize> {
    let mut read = 0;
    while read < buffer.len() {
        match file.read_at(&mut buffer[read..], at + read as u64) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(read)
}

/// The first offsets of the segment files in `dir`, ascending (other files ignored).
fn list_starts(dir: &Path) -> Result<Vec<u64>, LogError> {
    let mut starts = Vec::new();
    for item in std::fs::read_dir(dir).map_err(io_error("listing the segment files"))? {
        let item = item.map_err(io_error("listing the segment files"))?;
        let name = item.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(digits) = name.strip_suffix(SEGMENT_SUFFIX) else {
            continue;
        };
        if digits.len() == 20 && digits.bytes().all(|byte| byte.is_ascii_digit()) {
            starts.push(digits.parse().expect("20 digits fit a u64 here"));
        }
    }
    starts.sort_unstable();
    Ok(starts)
}

/// Deletes the files from `starts[index]` on (a torn tail's), durably.
fn cut_files(dir: &Path, starts: &mut Vec<u64>, index: usize) -> Result<(), LogError> {
    if index >= starts.len() {
        return Ok(());
    }
    for &start in &starts[index..] {
        std::fs::remove_file(dir.join(segment_name(start)))
            .map_err(io_error("deleting a torn segment file"))?;
    }
    starts.truncate(index);
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io_error("syncing the segments' directory"))
}

/// How far `SYNCED` says the files are durable, and the slot to write next.
fn read_synced(dir: &Path) -> Result<(u64, u64), LogError> {
    let bytes = match std::fs::read(dir.join(SYNCED_FILE)) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(error) => return Err(io_error("reading the segments' SYNCED file")(error)),
    };
    let slot = |index: u64| -> Option<u64> {
        let at = (index * SYNCED_SLOT_BYTES) as usize;
        let record = bytes.get(at..at + 16)?;
        let end = u64::from_le_bytes(record[8..16].try_into().expect("8 bytes"));
        (u32_at(record, 0) == SYNCED_MAGIC && u32_at(record, 4) == crc32c::crc32c(&record[8..16]))
            .then_some(end)
    };
    Ok(match (slot(0), slot(1)) {
        (Some(first), Some(second)) if second > first => (second, 0),
        (Some(first), _) => (first, 1),
        (None, Some(second)) => (second, 0),
        (None, None) => (0, 0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(first_offset: u64, payloads: &[&[u8]], timestamp_ms: u64) -> Vec<u8> {
        let mut out = Vec::new();
        encode_entry(
            first_offset,
            payloads.iter().map(|payload| (timestamp_ms, *payload)),
            &mut out,
        );
        out
    }

    fn read_all(
        segments: &Segments,
        from: u64,
        until: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, LogError> {
        let mut records = Vec::new();
        segments.read(&mut None, from, until, &mut records)?;
        Ok(records
            .into_iter()
            .map(|record| (record.offset, record.payload))
            .collect())
    }

    /// Commits of three records each into files of 4 KiB: many files.
    fn filled(dir: &Path, commits: u64) -> Segments {
        let segments = Segments::open(dir, SEGMENT_SIZE_MIN_BYTES).unwrap();
        for commit in 0..commits {
            let first = commit * 3;
            let payloads: Vec<Vec<u8>> = (first..first + 3)
                .map(|offset| vec![offset as u8; 300])
                .collect();
            let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            segments
                .append(first, &entry(first, &refs, 1_000 + commit))
                .unwrap();
        }
        segments
    }

    #[test]
    fn records_read_back_from_any_offset_across_files_with_a_cursor_or_without() {
        let dir = tempfile::tempdir().unwrap();
        let segments = filled(dir.path(), 40);
        assert!(list_starts(&dir.path().join(SEGMENTS_DIR)).unwrap().len() > 3);
        let all = read_all(&segments, 0, 120).unwrap();
        assert_eq!(all.len(), 120);
        for (index, (offset, payload)) in all.iter().enumerate() {
            assert_eq!(*offset, index as u64);
            assert_eq!(payload, &vec![index as u8; 300]);
        }
        assert_eq!(
            read_all(&segments, 37, 38).unwrap(),
            vec![(37, vec![37; 300])]
        );
        // A reader reading on, a few records at a time, crossing entries and files.
        let mut cursor = None;
        let mut records = Vec::new();
        let mut from = 5;
        while from < 120 {
            let until = (from + 7).min(120);
            segments
                .read(&mut cursor, from, until, &mut records)
                .unwrap();
            from = until;
        }
        let offsets: Vec<u64> = records.iter().map(|record| record.offset).collect();
        assert_eq!(offsets, (5..120).collect::<Vec<_>>());
    }

    #[test]
    fn reopening_finds_the_end_and_the_last_timestamp_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let segments = filled(dir.path(), 10);
            segments.sync().unwrap();
            // Two more commits, not synced; the last one torn.
            for commit in 10..12u64 {
                let first = commit * 3;
                segments
                    .append(first, &entry(first, &[b"a", b"b", b"c"], 5_000 + commit))
                    .unwrap();
            }
        }
        let starts = list_starts(&dir.path().join(SEGMENTS_DIR)).unwrap();
        let newest = dir
            .path()
            .join(SEGMENTS_DIR)
            .join(segment_name(*starts.last().unwrap()));
        let length = std::fs::metadata(&newest).unwrap().len();
        let file = OpenOptions::new().write(true).open(&newest).unwrap();
        file.set_len(length - 2).unwrap();
        let segments = Segments::open(dir.path(), SEGMENT_SIZE_MIN_BYTES).unwrap();
        assert_eq!(segments.written_end(), 33);
        assert_eq!(segments.last_timestamp_ms().unwrap(), Some(5_010));
        // The log goes on from there.
        segments.append(33, &entry(33, &[b"d"], 6_000)).unwrap();
        assert_eq!(
            read_all(&segments, 30, 34).unwrap().last().unwrap(),
            &(33, b"d".to_vec())
        );
    }

    /// Damages a record in the first entry of the file starting at `start`.
    fn damage(dir: &Path, start: u64) {
        let path = dir.join(SEGMENTS_DIR).join(segment_name(start));
        let file = OpenOptions::new().write(true).open(path).unwrap();
        file.write_all_at(&[0xEE], (ENTRY_HEADER_BYTES + 100) as u64)
            .unwrap();
    }

    #[test]
    fn a_damaged_record_below_what_was_synced_is_refused_at_open_or_when_read() {
        // In the newest file, walked at open: the log does not open.
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path(), 40).sync().unwrap();
        let starts = list_starts(&dir.path().join(SEGMENTS_DIR)).unwrap();
        let newest = *starts.last().unwrap();
        damage(dir.path(), newest);
        match Segments::open(dir.path(), SEGMENT_SIZE_MIN_BYTES) {
            Err(LogError::Corrupt { offset, .. }) => assert_eq!(offset, newest),
            Err(other) => panic!("expected Corrupt, got {other:?}"),
            Ok(segments) => panic!("expected Corrupt, opened to {}", segments.written_end()),
        }
        // In the first, trusted at open: reading it fails.
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path(), 40).sync().unwrap();
        damage(dir.path(), 0);
        let segments = Segments::open(dir.path(), SEGMENT_SIZE_MIN_BYTES).unwrap();
        assert_eq!(segments.written_end(), 120);
        assert!(matches!(
            read_all(&segments, 0, 3),
            Err(LogError::Corrupt { offset: 0, .. })
        ));
        assert_eq!(read_all(&segments, 117, 120).unwrap().len(), 3);
    }

    #[test]
    fn a_missing_file_is_a_missing_record() {
        let dir = tempfile::tempdir().unwrap();
        {
            let segments = filled(dir.path(), 40);
            segments.sync().unwrap();
        }
        let segments_dir = dir.path().join(SEGMENTS_DIR);
        let starts = list_starts(&segments_dir).unwrap();
        std::fs::remove_file(segments_dir.join(segment_name(starts[1]))).unwrap();
        let segments = Segments::open(dir.path(), SEGMENT_SIZE_MIN_BYTES).unwrap();
        match read_all(&segments, 0, 120) {
            Err(LogError::Corrupt {
                offset,
                reason: "record missing",
            }) => assert_eq!(offset, starts[1]),
            other => panic!("expected a missing record, got {other:?}"),
        }
    }

    /// Files an earlier process wrote past `SYNCED` are synced by the next sync before it
    /// records them durable (they may have been in the operating system's cache only).
    #[test]
    fn files_walked_past_synced_at_open_are_synced_by_the_next_sync() {
        let dir = tempfile::tempdir().unwrap();
        drop(filled(dir.path(), 40)); // never synced
        let files = list_starts(&dir.path().join(SEGMENTS_DIR)).unwrap().len();
        assert!(files > 3);
        let segments = Segments::open(dir.path(), SEGMENT_SIZE_MIN_BYTES).unwrap();
        {
            let state = segments.lock_files();
            assert_eq!(
                state.unsynced.len(),
                files - 1,
                "all but the newest, kept apart"
            );
            assert!(state.dir_unsynced);
        }
        segments.sync().unwrap();
        assert!(segments.lock_files().unsynced.is_empty());
        assert!(!segments.lock_files().dir_unsynced);
        assert_eq!(read_synced(&dir.path().join(SEGMENTS_DIR)).unwrap().0, 120);
    }

    #[test]
    fn synced_keeps_the_newest_valid_slot() {
        let dir = tempfile::tempdir().unwrap();
        let segments = filled(dir.path(), 2);
        segments.sync().unwrap();
        segments.append(6, &entry(6, &[b"x"], 9)).unwrap();
        segments.sync().unwrap();
        let segments_dir = dir.path().join(SEGMENTS_DIR);
        assert_eq!(read_synced(&segments_dir).unwrap(), (7, 0));
        // The newest slot torn: the other one's offset stands.
        let file = OpenOptions::new()
            .write(true)
            .open(segments_dir.join(SYNCED_FILE))
            .unwrap();
        file.write_all_at(&[0xFF], SYNCED_SLOT_BYTES + 9).unwrap();
        assert_eq!(read_synced(&segments_dir).unwrap(), (6, 1));
    }
}
