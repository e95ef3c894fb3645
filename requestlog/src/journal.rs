//! The journal of a synced embedded log: the one file whose `fdatasync` acknowledges a commit.
//!
//! Why: an `fdatasync` of a file that grows (a segment file, `segments.rs`, or a
//! write-ahead log) writes the file's size too: on this machine's ext4 an append changes
//! the inode, a second disk round trip after the data's (`ext4_write_inode` under
//! `ext4_sync_file`): 157-220 us at the median against 102-113 us for an overwrite of the
//! same bytes, idle, and 225 against 126 us under load (BENCHMARKS.md, "HTTP hold +
//! confirm, session 16"). The journal is a file of fixed size, written full of zeros when it
//! is made, that commits overwrite in place: its `fdatasync` writes the data alone.
//!
//! How: each group commit writes its records as a segment entry to the newest segment
//! file and its hosted tables' writes (a RocksDB batch) to RocksDB, neither synced, and
//! both as one journal entry, which is `fdatasync`'d before the commit is published or
//! acknowledged. A crash may lose the unsynced tail of either (of the process: what RocksDB
//! still held in its log's buffer, `set_manual_wal_flush`; of the machine: what the
//! operating system had not written), and [`EmbeddedLog::open`](crate::EmbeddedLog::open)
//! writes back, synced, every journal entry past what they recovered.
//!
//! The file is two halves used in turn, entries never straddling them. Before the writer
//! leaves a half it asks a background thread to sync the segment files and RocksDB's log
//! (everything written so far, so every entry of that half), and before it writes into a
//! half again it waits for the sync asked for when it last left it: an entry is
//! overwritten only once the files and RocksDB hold it durably. A commit too large for a
//! half is synced in the files themselves.
//!
//! Entry layout (little-endian): magic `u32`, log tag `u32` (CRC-32C of the log's id, so a
//! journal is never applied to another log, and of the entry's kind: [`segment_log_tag`]),
//! first offset `u64`, record count `u32`, batch length `u32`, CRC-32C `u32` of the 24
//! bytes before it and of the batch, then the batch. Recovery walks each half from its
//! start while entries are whole and valid; what follows the newest entry is an older
//! lap's, whose entries the files already hold.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// The journal's file name in the log's directory (RocksDB leaves files it does not name
/// alone).
pub(crate) const JOURNAL_FILE: &str = "BOXOFFICE-JOURNAL";
const MAGIC: u32 = 0x4c4e_524a; // "JRNL"
pub(crate) const HEADER_BYTES: usize = 28;
/// The smallest journal accepted: two halves that each hold a commit of some size.
pub const JOURNAL_SIZE_MIN_BYTES: u64 = 64 * 1024;
/// The largest journal accepted (it is written full of zeros when made, and on an erasure).
pub const JOURNAL_SIZE_MAX_BYTES: u64 = 1 << 30;

/// Whether `bytes` may size a log's journal: 0 (none), or within the bounds above. The one
/// rule, for the log's options and the deployment's configuration alike.
pub fn journal_size_allowed(bytes: u64) -> bool {
    bytes == 0 || (JOURNAL_SIZE_MIN_BYTES..=JOURNAL_SIZE_MAX_BYTES).contains(&bytes)
}

/// A wait this long for the log's storage to sync before a half is reused is logged.
const SLOW_SYNC_WARNING: std::time::Duration = std::time::Duration::from_millis(100);

/// One journal entry: a group commit's batch (see [`segment_log_tag`]) and the offsets it
/// wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub first_offset: u64,
    pub count: u32,
    pub batch: Vec<u8>,
}

/// The tag of a log's entries as versions before segment files wrote them (a RocksDB
/// batch of records and hosted-table writes): CRC-32C of its id.
pub(crate) fn log_tag(log_id: &str) -> u32 {
    crc32c::crc32c(log_id.as_bytes())
}

/// The tag of a log's entries since segment files (`segments.rs`): a segment entry, then
/// the RocksDB batch of the commit's hosted-table writes (perhaps empty). Another tag than
/// [`log_tag`], so an entry of either kind is never read as the other.
pub(crate) fn segment_log_tag(log_id: &str) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(b"segments:"), log_id.as_bytes())
}

fn encode_entry(tag: u32, first_offset: u64, count: u32, parts: &[&[u8]], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&first_offset.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    let batch_bytes: usize = parts.iter().map(|part| part.len()).sum();
    let length = u32::try_from(batch_bytes).expect("a journaled batch fits a half of the journal");
    out.extend_from_slice(&length.to_le_bytes());
    let crc = parts.iter().fold(crc32c::crc32c(&out[..24]), |crc, part| {
        crc32c::crc32c_append(crc, part)
    });
    out.extend_from_slice(&crc.to_le_bytes());
    for part in parts {
        out.extend_from_slice(part);
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// The valid entries of `tag` in `region`, walked from its start until one is not.
fn walk(region: &[u8], tag: u32, entries: &mut Vec<Entry>) {
    let mut at = 0;
    while region.len() - at >= HEADER_BYTES {
        let header = &region[at..at + HEADER_BYTES];
        if u32_at(header, 0) != MAGIC || u32_at(header, 4) != tag {
            return;
        }
        let length = u32_at(header, 20) as usize;
        if length > region.len() - at - HEADER_BYTES {
            return;
        }
        let batch = &region[at + HEADER_BYTES..at + HEADER_BYTES + length];
        if crc32c::crc32c_append(crc32c::crc32c(&header[..24]), batch) != u32_at(header, 24) {
            return;
        }
        entries.push(Entry {
            first_offset: u64::from_le_bytes(header[8..16].try_into().expect("8 bytes")),
            count: u32_at(header, 16),
            batch: batch.to_vec(),
        });
        at += HEADER_BYTES + length;
    }
}

/// Every valid entry of `tag` in the journal of `dir` (none if it has no journal), in
/// offset order: both halves of the file as it is, whatever its size.
pub(crate) fn read_entries(dir: &Path, tag: u32) -> io::Result<Vec<Entry>> {
    let bytes = match std::fs::read(dir.join(JOURNAL_FILE)) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let half = bytes.len() / 2;
    let mut entries = Vec::new();
    walk(&bytes[..half], tag, &mut entries);
    walk(&bytes[half..], tag, &mut entries);
    entries.sort_by_key(|entry| entry.first_offset);
    Ok(entries)
}

/// The entries the store lacks, given that it holds every offset below `end_offset`: those
/// from `end_offset` on, which must follow each other without a gap (an entry is written
/// only after every earlier one was durable, so a gap is a lost acknowledged commit).
/// `Err` names the offset where the run breaks.
pub(crate) fn missing_from(entries: Vec<Entry>, end_offset: u64) -> Result<Vec<Entry>, u64> {
    let mut next = end_offset;
    let mut missing = Vec::new();
    for entry in entries {
        let entry_end = entry.first_offset + u64::from(entry.count);
        if entry_end <= end_offset {
            continue; // the store holds it
        }
        if entry.first_offset != next {
            return Err(next);
        }
        next = entry_end;
        missing.push(entry);
    }
    Ok(missing)
}

/// Makes the journal file of `size_bytes` zeros (replacing any), durable with its name.
fn create_file(dir: &Path, size_bytes: u64) -> io::Result<File> {
    let path = dir.join(JOURNAL_FILE);
    let temporary = dir.join(format!("{JOURNAL_FILE}.new"));
    {
        let mut file = File::create(&temporary)?;
        let zeros = vec![0u8; 1 << 20];
        let mut left = size_bytes;
        while left > 0 {
            let chunk = left.min(zeros.len() as u64) as usize;
            file.write_all(&zeros[..chunk])?;
            left -= chunk as u64;
        }
        file.sync_all()?;
    }
    std::fs::rename(&temporary, &path)?;
    File::open(dir)?.sync_all()?;
    OpenOptions::new().read(true).write(true).open(&path)
}

/// Asks for syncs of the log's storage (its segment files and RocksDB's log) on a thread
/// of its own and tells when one is done.
struct WalSyncer {
    state: Arc<(Mutex<SyncState>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct SyncState {
    requested: u64,
    done: u64,
    failed: Option<String>,
    stopping: bool,
}

/// Syncs the log's storage: its segment files and RocksDB's write-ahead log.
pub(crate) type SyncWal = Box<dyn Fn() -> Result<(), String> + Send>;

impl WalSyncer {
    fn start(sync_wal: SyncWal) -> io::Result<WalSyncer> {
        let state = Arc::new((Mutex::new(SyncState::default()), Condvar::new()));
        let shared = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("requestlog-walsync".into())
            .spawn(move || {
                let (lock, changed) = &*shared;
                let mut state = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                loop {
                    while state.requested == state.done && !state.stopping {
                        state = changed
                            .wait(state)
                            .unwrap_or_else(|poisoned| poisoned.into_inner());
                    }
                    if state.requested == state.done {
                        return; // stopping, nothing asked
                    }
                    let target = state.requested;
                    drop(state);
                    let synced = sync_wal();
                    state = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    match synced {
                        Ok(()) => state.done = target,
                        Err(reason) => {
                            state.failed = Some(reason);
                            state.done = state.requested; // waiters see the failure
                        }
                    }
                    changed.notify_all();
                }
            })?;
        Ok(WalSyncer {
            state,
            thread: Some(thread),
        })
    }

    /// Asks for a sync of everything written so far; the ticket to wait for.
    fn request(&self) -> u64 {
        let (lock, changed) = &*self.state;
        let mut state = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.requested += 1;
        changed.notify_all();
        state.requested
    }

    /// Until the sync of `ticket` (and every one before it) is done.
    fn wait(&self, ticket: u64) -> Result<(), String> {
        if ticket == 0 {
            return Ok(()); // nothing was asked
        }
        let (lock, changed) = &*self.state;
        let mut state = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        while state.done < ticket {
            state = changed
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        match &state.failed {
            Some(reason) => Err(format!("syncing the log's files: {reason}")),
            None => Ok(()),
        }
    }
}

impl Drop for WalSyncer {
    fn drop(&mut self) {
        {
            let (lock, changed) = &*self.state;
            lock.lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .stopping = true;
            changed.notify_all();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The journal a synced log's writer thread writes its commits to.
pub(crate) struct Journal {
    file: File,
    half_bytes: u64,
    tag: u32,
    /// Where the next entry goes.
    head: u64,
    /// The half being written (0 or 1). Kept, not derived from `head`: an entry that ends
    /// exactly at a half's end leaves `head` on the next half's first byte, which must
    /// still be entered through the sync protocol.
    half: usize,
    /// For each half, the sync that covers every entry written into it (0: none needed).
    covering: [u64; 2],
    syncer: WalSyncer,
    entry: Vec<u8>,
}

impl Journal {
    /// A fresh journal of `size_bytes` for the log tagged `tag`, written from its start.
    /// Call it only once the log's storage holds every entry of the old one durably
    /// (after recovering them and syncing it).
    pub(crate) fn create(
        dir: &Path,
        size_bytes: u64,
        tag: u32,
        sync_wal: SyncWal,
    ) -> io::Result<Journal> {
        assert!(size_bytes >= JOURNAL_SIZE_MIN_BYTES);
        let path = dir.join(JOURNAL_FILE);
        let file = match std::fs::metadata(&path) {
            // Same size: overwritten in place (its entries are all stored now).
            Ok(metadata) if metadata.len() == size_bytes => {
                OpenOptions::new().read(true).write(true).open(&path)?
            }
            _ => create_file(dir, size_bytes)?,
        };
        Ok(Journal {
            file,
            half_bytes: size_bytes / 2,
            tag,
            head: 0,
            half: 0,
            covering: [0, 0],
            syncer: WalSyncer::start(sync_wal)?,
            entry: Vec::new(),
        })
    }

    /// Whether a batch of `batch_bytes` fits a half (else the commit syncs the files).
    pub(crate) fn fits(&self, batch_bytes: usize) -> bool {
        (HEADER_BYTES + batch_bytes) as u64 <= self.half_bytes
    }

    /// Writes a commit's entry, its batch the concatenation of `parts` (not yet durable:
    /// [`Journal::sync`]).
    pub(crate) fn write(
        &mut self,
        first_offset: u64,
        count: u32,
        parts: &[&[u8]],
    ) -> Result<(), String> {
        assert!(
            self.fits(parts.iter().map(|part| part.len()).sum()),
            "the caller checks that the batch fits"
        );
        encode_entry(self.tag, first_offset, count, parts, &mut self.entry);
        let length = self.entry.len() as u64;
        let half = self.half;
        let half_end = (half as u64 + 1) * self.half_bytes;
        if self.head + length > half_end {
            // Into the other half: first ask for what makes this one's entries durable in
            // the log's storage, then wait for what made the other one's so.
            self.covering[half] = self.syncer.request();
            let other = 1 - half;
            let waiting = std::time::Instant::now();
            self.syncer.wait(self.covering[other])?;
            let waited = waiting.elapsed();
            if waited >= SLOW_SYNC_WARNING {
                // The commits stood still meanwhile: the log's storage took longer to sync than
                // the commits took to fill half the journal.
                tracing::warn!(
                    waited_ms = waited.as_millis() as u64,
                    half_bytes = self.half_bytes,
                    "commits waited for the log's files to sync before reusing half of the journal; a larger log.journal_size_bytes gives the sync longer"
                );
            }
            self.head = other as u64 * self.half_bytes;
            self.half = other;
        }
        self.file
            .write_all_at(&self.entry, self.head)
            .map_err(|error| format!("writing the journal: {error}"))?;
        self.head += length;
        Ok(())
    }

    /// Zeroes the whole file and starts again from its start. Only once the storage durably
    /// holds every entry (the caller synced its log).
    pub(crate) fn clear(&mut self) -> Result<(), String> {
        let size_bytes = 2 * self.half_bytes;
        let zeros = vec![0u8; 1 << 20];
        let mut at = 0;
        while at < size_bytes {
            let chunk = (size_bytes - at).min(zeros.len() as u64);
            self.file
                .write_all_at(&zeros[..chunk as usize], at)
                .map_err(|error| format!("zeroing the journal: {error}"))?;
            at += chunk;
        }
        self.sync()?;
        self.head = 0;
        self.half = 0;
        self.covering = [0, 0];
        Ok(())
    }

    /// Makes the entries written so far durable.
    pub(crate) fn sync(&self) -> Result<(), String> {
        self.file
            .sync_data()
            .map_err(|error| format!("syncing the journal: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(first_offset: u64, count: u32, fill: u8, bytes: usize) -> Entry {
        Entry {
            first_offset,
            count,
            batch: vec![fill; bytes],
        }
    }

    fn no_sync() -> SyncWal {
        Box::new(|| Ok(()))
    }

    #[test]
    fn entries_written_are_read_back_in_offset_order_across_both_halves() {
        let dir = tempfile::tempdir().unwrap();
        let tag = log_tag("embedded:a");
        let mut journal =
            Journal::create(dir.path(), JOURNAL_SIZE_MIN_BYTES, tag, no_sync()).unwrap();
        let mut written = Vec::new();
        let mut offset = 0;
        // 10 KiB entries: a 32 KiB half holds three, so this wraps the file once.
        for fill in 0..8u8 {
            let e = entry(offset, 2, fill, 10 * 1024);
            journal.write(e.first_offset, e.count, &[&e.batch]).unwrap();
            offset += 2;
            written.push(e);
        }
        journal.sync().unwrap();
        let read = read_entries(dir.path(), tag).unwrap();
        // Entries 6 and 7 overwrote 0 and 1; entry 2 is still whole after them (harmless:
        // RocksDB held it before the half was written again), and the second half holds
        // entries 3 to 5.
        assert_eq!(read, written[2..].to_vec());
        // Another log's tag reads nothing.
        assert!(read_entries(dir.path(), log_tag("embedded:b"))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_torn_entry_ends_the_walk_of_its_half() {
        let dir = tempfile::tempdir().unwrap();
        let tag = log_tag("embedded:a");
        let mut journal =
            Journal::create(dir.path(), JOURNAL_SIZE_MIN_BYTES, tag, no_sync()).unwrap();
        journal.write(0, 1, &[&[1; 100]]).unwrap();
        journal.write(1, 1, &[&[2; 100]]).unwrap();
        journal.write(2, 1, &[&[3; 100]]).unwrap();
        journal.sync().unwrap();
        // Tear the second entry: one byte of its batch.
        let file = OpenOptions::new()
            .write(true)
            .open(dir.path().join(JOURNAL_FILE))
            .unwrap();
        file.write_all_at(&[9], (HEADER_BYTES + 100 + HEADER_BYTES + 50) as u64)
            .unwrap();
        let read = read_entries(dir.path(), tag).unwrap();
        assert_eq!(read, vec![entry(0, 1, 1, 100)]);
    }

    #[test]
    fn missing_entries_are_those_past_the_end_and_must_be_contiguous() {
        let entries = vec![entry(0, 2, 0, 1), entry(2, 3, 0, 1), entry(5, 1, 0, 1)];
        assert_eq!(
            missing_from(entries.clone(), 5),
            Ok(vec![entry(5, 1, 0, 1)])
        );
        assert_eq!(missing_from(entries.clone(), 6), Ok(vec![]));
        assert_eq!(missing_from(entries.clone(), 2), Ok(entries[1..].to_vec()));
        // RocksDB ends inside an entry: impossible for atomic batches, a broken run.
        assert_eq!(missing_from(entries.clone(), 3), Err(3));
        // A hole between RocksDB's end and the journal's first entry.
        assert_eq!(missing_from(vec![entry(4, 1, 0, 1)], 2), Err(2));
    }

    /// A journal of the smallest size tagged 1, and how many syncs of RocksDB it asked.
    fn counting_journal() -> (tempfile::TempDir, Journal, Arc<Mutex<u32>>) {
        let dir = tempfile::tempdir().unwrap();
        let synced = Arc::new(Mutex::new(0u32));
        let counter = Arc::clone(&synced);
        let journal = Journal::create(
            dir.path(),
            JOURNAL_SIZE_MIN_BYTES,
            1,
            Box::new(move || {
                *counter.lock().unwrap() += 1;
                Ok(())
            }),
        )
        .unwrap();
        (dir, journal, synced)
    }

    #[test]
    fn a_half_is_written_again_only_after_the_sync_asked_when_it_was_left() {
        let (_dir, mut journal, synced) = counting_journal();
        for offset in 0..3 {
            journal.write(offset, 1, &[&[0; 10 * 1024]]).unwrap();
        }
        assert_eq!(*synced.lock().unwrap(), 0, "still in the first half");
        journal.write(3, 1, &[&[0; 10 * 1024]]).unwrap(); // into the second half
        for offset in 4..6 {
            journal.write(offset, 1, &[&[0; 10 * 1024]]).unwrap();
        }
        journal.write(6, 1, &[&[0; 10 * 1024]]).unwrap(); // back into the first: waits for it
        assert!(*synced.lock().unwrap() >= 1);
    }

    /// Entries that fill a half to its last byte: the next one enters the other half
    /// through the same protocol (it used to be taken for already in it, and an entry
    /// ending at the file's end named a third half).
    #[test]
    fn entries_that_fill_a_half_exactly_still_wait_for_its_sync() {
        let (dir, mut journal, synced) = counting_journal();
        // Four entries of a quarter of a half each fill it exactly.
        let batch = vec![5u8; (JOURNAL_SIZE_MIN_BYTES / 8) as usize - HEADER_BYTES];
        for offset in 0..8 {
            journal.write(offset, 1, &[&batch]).unwrap();
        }
        // (The sync asked when the first half was left may have run already: it is the
        // syncing thread's.)
        journal.write(8, 1, &[&batch]).unwrap(); // reuses the first half: waited for its sync
        assert!(*synced.lock().unwrap() >= 1);
        journal.sync().unwrap();
        let read = read_entries(dir.path(), 1).unwrap();
        let offsets: Vec<u64> = read.iter().map(|entry| entry.first_offset).collect();
        assert_eq!(offsets, [1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn a_failed_sync_refuses_the_next_half() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::create(
            dir.path(),
            JOURNAL_SIZE_MIN_BYTES,
            1,
            Box::new(|| Err("disk gone".to_string())),
        )
        .unwrap();
        for offset in 0..6 {
            journal.write(offset, 1, &[&[0; 10 * 1024]]).unwrap();
        }
        let refused = journal.write(6, 1, &[&[0; 10 * 1024]]).unwrap_err();
        assert!(refused.contains("disk gone"), "{refused}");
    }
}
