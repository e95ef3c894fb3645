//! The personal-data store: pseudonym → user id, outside every log (issue 23).
//!
//! The logs, snapshots and read models name users by pseudonym only (`crate::privacy`);
//! what an organiser's attendee export needs (the user id, often an e-mail) is kept here,
//! each entry encrypted (ChaCha20-Poly1305, the pseudonym as associated data) under a key
//! of its own, drawn at random when the ingress first sees the user. Two column families:
//! `keys` (pseudonym → 32-byte key) and `identities` (pseudonym → nonce ‖ ciphertext).
//!
//! **Erasure is forgetting the key** (crypto-shredding): [`PersonalData::forget`] deletes
//! the user's key (and ciphertext), flushes the memtable (so the write-ahead log that held
//! the key is retired) and compacts the small `keys` family (so no table file keeps it).
//! A copy of the `identities` family made earlier (a backup) is then ciphertext nobody can
//! open. Nothing here is ever rebuilt from a log: the logs hold no identity, so no replay
//! can bring one back.
//!
//! Each ingress keeps its own store (`<state dir>/slot-<n>/personal`, in its slot beside
//! the idempotency index, or in memory without a state directory) and learns the users
//! whose requests it takes; see ARCHITECTURE.md ("Privacy") for what that means with
//! several ingresses.

use crate::generations::Generations;
use crate::stored_filter::{self, StoredFilter};
use requestlog::{CommitCompanion, HostedTables, TableBatch};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use rocksdb::{BlockBasedOptions, ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Condvar, Mutex, MutexGuard};

const KEYS: &str = "keys";
const IDENTITIES: &str = "identities";
/// The store's two tables when the requests log hosts them ([`PersonalData::hosted`]):
/// `serve` opens its embedded requests log with these ([`requestlog::EmbeddedOptions::hosted_tables`]).
pub const HOSTED_TABLES: [&str; 2] = ["personal-data.keys", "personal-data.identities"];
const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;

/// What the store knows of a pseudonym.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Identity {
    /// The user id behind it.
    Known(String),
    /// Nothing: never seen by this ingress, or erased (the key is gone).
    Unknown,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum PersonalDataError {
    #[error("the personal-data store: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("the personal-data store: {0}")]
    Log(#[from] requestlog::LogError),
    #[error("the personal-data store holds a damaged entry for {pseudonym}")]
    Damaged { pseudonym: String },
    #[error("the personal-data store cannot move its entries from {dir}: {reason}")]
    Migration { dir: String, reason: String },
    #[error("{0}")]
    Sync(String),
}

/// One user's entry: the key, and the nonce and ciphertext of the user id.
type SealedEntry = ([u8; KEY_BYTES], Vec<u8>);

enum Backing {
    /// A RocksDB of its own (an ingress whose requests log cannot hold it: Kafka).
    Rocks(std::sync::Arc<DB>),
    /// Two tables in the database of the requests log (`serve`'s embedded log, shard 0's):
    /// new entries are written in the log's own commits, durable by the same fsync as the
    /// records that name their users.
    Hosted(HostedTables),
    /// For an ingress without a state directory (tests, tools).
    Memory(Mutex<BTreeMap<String, SealedEntry>>),
}

pub(crate) struct PersonalData {
    backing: Backing,
    /// New entries wait in memory until a commit of the requests log takes them: written
    /// in that commit's own batch when the log hosts the store, else by one synced write of
    /// their own just before it ([`CommitCompanion::before_commit`], run by the log's writer
    /// thread, or by an appender thread before each Kafka append). A new user costs no disk
    /// write on the request's thread, and its entry and request share one trip through the
    /// writer.
    sync: SyncState,
    /// Pseudonyms known to have an entry (pending or stored), so that a known user's
    /// request does not search RocksDB's memtable (a skip list of every new user) again.
    /// Bounded by generations (`generations.rs`: a miss only costs the look-up). Filled
    /// under `sync.entries`' lock, emptied of a pseudonym by `forget` under the same lock.
    known: Mutex<Generations<Box<str>, ()>>,
}

/// Pseudonyms [`PersonalData::known`] keeps (about 60 bytes each).
const KNOWN_CACHED_MAX: usize = 500_000;
/// New entries held in memory at most: past it, the request that adds one writes them
/// (synced) itself. Commits write them long before that unless requests of new users
/// arrive and none is appended (each one refused after its user was seen).
pub(crate) const PENDING_MAX: usize = 10_000;

/// A new entry waiting to be written: the pseudonym, its key and its sealed user id.
type PendingEntry = (Box<str>, SealedEntry);

struct SyncState {
    /// Held across the look-up and the queuing of a new entry, so whoever sees an entry in
    /// `known` (another request of the same user) finds it here or written: the commit that
    /// follows its request writes it, or waits for the write that took it.
    entries: Mutex<Entries>,
    /// Signalled when a write ends (`Entries::busy` falls).
    idle: Condvar,
    /// Writes of new entries done (tests count them).
    syncs: std::sync::atomic::AtomicU64,
}

struct Entries {
    /// Entries not yet written.
    pending: Vec<PendingEntry>,
    /// Entries a write in progress took: found here until they are durable, and put back
    /// in front of `pending` if the write fails.
    writing: Vec<PendingEntry>,
    /// A write of entries is in progress; a commit (of any shard's writer) that needs
    /// entries it took waits until they are durable.
    busy: bool,
    /// The write in progress is a commit of the hosting log, which ends it with
    /// [`CommitCompanion::after_commit`].
    riding: bool,
    /// Every pseudonym the store holds or is about to (and some it does not): a new user's
    /// is answered "not held" without reading the store.
    held: StoredFilter,
}

impl Entries {
    fn find(&self, pseudonym: &str) -> Option<&SealedEntry> {
        self.writing
            .iter()
            .chain(&self.pending)
            .find(|(queued, _)| &**queued == pseudonym)
            .map(|(_, entry)| entry)
    }
}

impl PersonalData {
    /// The store in `dir` (created if missing).
    pub(crate) fn open(dir: &Path) -> Result<PersonalData, PersonalDataError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        // Most look-ups of `keys` are of a new user's pseudonym, which is nowhere: a Bloom
        // filter over whole keys in the memtable and in table files answers "absent"
        // without walking the memtable's skip list or reading a block.
        let mut keys = Options::default();
        keys.set_memtable_prefix_bloom_ratio(0.1);
        keys.set_memtable_whole_key_filtering(true);
        let mut tables = BlockBasedOptions::default();
        tables.set_bloom_filter(10.0, false);
        tables.set_whole_key_filtering(true);
        keys.set_block_based_table_factory(&tables);
        let families = [
            ColumnFamilyDescriptor::new(KEYS, keys),
            ColumnFamilyDescriptor::new(IDENTITIES, Options::default()),
        ];
        let db = std::sync::Arc::new(DB::open_cf_descriptors(&options, dir, families)?);
        PersonalData::with(Backing::Rocks(db))
    }

    /// The store in the requests log's own tables, if `tables` has them ([`HOSTED_TABLES`]).
    /// A store of the earlier kind left in `legacy_dir` (an ingress's slot, from a version
    /// that kept it apart) moves in first: its entries are written to the tables (synced),
    /// then its directory is deleted.
    pub(crate) fn hosted(
        tables: HostedTables,
        legacy_dir: Option<&Path>,
    ) -> Result<Option<PersonalData>, PersonalDataError> {
        if !HOSTED_TABLES.iter().all(|table| tables.has(table)) {
            return Ok(None);
        }
        if let Some(dir) = legacy_dir.filter(|dir| dir.exists()) {
            let migration = |reason: String| PersonalDataError::Migration {
                dir: dir.display().to_string(),
                reason,
            };
            let legacy = PersonalData::open(dir)?;
            let Backing::Rocks(db) = &legacy.backing else {
                unreachable!("opened from a directory")
            };
            let keys = db.cf_handle(KEYS).expect("keys");
            let identities = db.cf_handle(IDENTITIES).expect("identities");
            let mut entries = Vec::new();
            for entry in db.iterator_cf(&keys, rocksdb::IteratorMode::Start) {
                let (pseudonym, key) = entry?;
                if let Some(stored) = db.get_cf(&identities, &pseudonym)? {
                    entries.push((pseudonym, key, stored));
                }
            }
            tables.write(true, |batch| {
                for (pseudonym, key, stored) in &entries {
                    batch.put(HOSTED_TABLES[0], pseudonym, key);
                    batch.put(HOSTED_TABLES[1], pseudonym, stored);
                }
            })?;
            drop(legacy);
            std::fs::remove_dir_all(dir).map_err(|error| migration(error.to_string()))?;
            tracing::info!(
                users = entries.len(),
                from = %dir.display(),
                "the personal-data store moved into the requests log's database"
            );
        }
        Ok(Some(PersonalData::with(Backing::Hosted(tables))?))
    }

    /// A store in memory.
    pub(crate) fn in_memory() -> PersonalData {
        PersonalData::with(Backing::Memory(Mutex::new(BTreeMap::new())))
            .expect("an empty store in memory opens")
    }

    fn with(backing: Backing) -> Result<PersonalData, PersonalDataError> {
        // Built before the store exists: no filter is ever empty of what the store holds.
        let held = Self::held_filter(&backing)?;
        Ok(PersonalData {
            backing,
            sync: SyncState {
                entries: Mutex::new(Entries {
                    pending: Vec::new(),
                    writing: Vec::new(),
                    busy: false,
                    riding: false,
                    held,
                }),
                idle: Condvar::new(),
                syncs: std::sync::atomic::AtomicU64::new(0),
            },
            known: Mutex::new(Generations::new(KNOWN_CACHED_MAX)),
        })
    }

    /// The filter of the pseudonyms `backing` holds: one scan of its keys (at start).
    fn held_filter(backing: &Backing) -> Result<StoredFilter, PersonalDataError> {
        let mut held: Vec<u64> = Vec::new();
        match backing {
            Backing::Rocks(db) => {
                let keys = db.cf_handle(KEYS).expect("the keys family");
                for entry in db.iterator_cf(&keys, rocksdb::IteratorMode::Start) {
                    held.push(stored_filter::hash(&entry?.0));
                }
            }
            Backing::Hosted(tables) => {
                tables.for_each_key(HOSTED_TABLES[0], |key| held.push(stored_filter::hash(key)))?;
            }
            Backing::Memory(entries) => {
                held.extend(
                    lock(entries)
                        .keys()
                        .map(|key| stored_filter::hash(key.as_bytes())),
                );
            }
        }
        Ok(StoredFilter::with_held_hashes(held))
    }

    /// Whether the store holds a key for `pseudonym`, written or about to be: the filter's
    /// certain "no" first (it holds every pending and written pseudonym), then the entries
    /// waiting for a commit, then the store. Perf: a new user's "no" skips the scan of the
    /// pending entries' boxed names (all of them when they pile up behind a slow commit).
    /// Under the entries' lock (`entries`), which every insert into the filter holds too.
    fn holds(&self, entries: &Entries, pseudonym: &str) -> Result<bool, PersonalDataError> {
        Ok(entries.held.may_hold(pseudonym.as_bytes())
            && (entries.find(pseudonym).is_some() || self.stored(pseudonym)?))
    }

    /// Whether the store holds a key for `pseudonym` (written or about to be).
    pub(crate) fn knows(&self, pseudonym: &str) -> Result<bool, PersonalDataError> {
        self.holds(&lock(&self.sync.entries), pseudonym)
    }

    /// Whether a key for `pseudonym` is written (not counting entries waiting for a
    /// commit).
    pub(crate) fn stored(&self, pseudonym: &str) -> Result<bool, PersonalDataError> {
        match &self.backing {
            Backing::Rocks(db) => {
                let keys = db.cf_handle(KEYS).expect("the keys family");
                Ok(db.get_pinned_cf(&keys, pseudonym)?.is_some())
            }
            Backing::Hosted(tables) => Ok(tables.contains(HOSTED_TABLES[0], pseudonym.as_bytes())?),
            Backing::Memory(entries) => Ok(lock(entries).contains_key(pseudonym)),
        }
    }

    /// Records that `pseudonym` is `user`, under a fresh key, durably (fsync) unless it is
    /// known already. Blocking (tests; requests use `remember_unsynced`).
    #[cfg(test)]
    pub(crate) fn remember(&self, pseudonym: &str, user: &str) -> Result<(), PersonalDataError> {
        if self.knows(pseudonym)? {
            return Ok(());
        }
        lock(&self.sync.entries).held.insert(pseudonym.as_bytes());
        self.write_entries(&[(pseudonym.into(), seal(pseudonym, user))], true)
    }

    /// Records that `pseudonym` is `user` like [`PersonalData::remember`], without waiting
    /// for the disk: a new entry is sealed and kept in memory, and the next commit of the
    /// requests log makes it durable first (or with it). The caller appends the user's
    /// request to a log whose commits run [`CommitCompanion::before_commit`] (`Writes`), so
    /// no record of the request is durable before its user's entry.
    pub(crate) fn remember_unsynced(
        &self,
        pseudonym: &str,
        user: &str,
    ) -> Result<(), PersonalDataError> {
        if lock(&self.known).contains(pseudonym) {
            return Ok(());
        }
        let mut entries = lock(&self.sync.entries);
        if !self.holds(&entries, pseudonym)? {
            entries.held.insert(pseudonym.as_bytes());
            entries
                .pending
                .push((pseudonym.into(), seal(pseudonym, user)));
        }
        let full = entries.pending.len() >= PENDING_MAX;
        {
            lock(&self.known).insert(pseudonym.into(), ());
        }
        drop(entries);
        if full {
            self.sync_written().map_err(PersonalDataError::Sync)?;
        }
        Ok(())
    }

    /// The entries' lock, once no write of entries is in progress.
    fn lock_idle(&self) -> MutexGuard<'_, Entries> {
        let entries = lock(&self.sync.entries);
        self.sync
            .idle
            .wait_while(entries, |entries| entries.busy)
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Ends a write of the entries it took: durable, or back in front of the pending ones.
    fn end_write(&self, entries: &mut Entries, durable: bool) {
        assert!(entries.busy, "a write of entries is in progress");
        let written = std::mem::take(&mut entries.writing);
        if durable {
            self.sync
                .syncs
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        } else {
            let newer = std::mem::replace(&mut entries.pending, written);
            entries.pending.extend(newer);
        }
        (entries.busy, entries.riding) = (false, false);
        self.sync.idle.notify_all();
    }

    /// Writes every pending entry durably (one synced write; nothing when none is
    /// pending, after waiting for a write in progress). On failure the entries stay
    /// pending for the next commit.
    pub(crate) fn sync_written(&self) -> Result<(), String> {
        let mut entries = self.lock_idle();
        if entries.pending.is_empty() {
            return Ok(());
        }
        entries.writing = std::mem::take(&mut entries.pending);
        entries.busy = true;
        let writing = entries.writing.clone();
        drop(entries);
        let written = self.write_entries(&writing, true);
        self.end_write(&mut lock(&self.sync.entries), written.is_ok());
        written.map_err(|error| {
            format!("the personal-data store cannot write its new entries: {error}")
        })
    }

    /// This store as the requests logs' [`CommitCompanion`].
    pub(crate) fn before_commit(self: &std::sync::Arc<Self>) -> requestlog::BeforeCommit {
        std::sync::Arc::clone(self) as requestlog::BeforeCommit
    }

    fn write_entries(&self, entries: &[PendingEntry], sync: bool) -> Result<(), PersonalDataError> {
        match &self.backing {
            Backing::Rocks(db) => {
                let (keys, identities) = (
                    db.cf_handle(KEYS).expect("keys"),
                    db.cf_handle(IDENTITIES).expect("identities"),
                );
                let mut batch = WriteBatch::default();
                for (pseudonym, (key, stored)) in entries {
                    batch.put_cf(&keys, &**pseudonym, key);
                    batch.put_cf(&identities, &**pseudonym, stored);
                }
                let mut write = WriteOptions::default();
                // No record of a user's request is durable before this is: a log record
                // whose user this store could lose in a crash would be an unknown attendee.
                write.set_sync(sync);
                db.write_opt(batch, &write)?;
            }
            Backing::Hosted(tables) => {
                tables.write(sync, |batch| put_entries(batch, entries))?;
            }
            Backing::Memory(stored) => {
                let mut stored = lock(stored);
                for (pseudonym, entry) in entries {
                    stored.insert(pseudonym.to_string(), entry.clone());
                }
            }
        }
        Ok(())
    }

    /// The user id behind `pseudonym`, if this store holds its key.
    pub(crate) fn resolve(&self, pseudonym: &str) -> Result<Identity, PersonalDataError> {
        let queued = lock(&self.sync.entries)
            .find(pseudonym)
            .map(|(key, stored)| (key.to_vec(), stored.clone()));
        let (key, stored) = match (queued, &self.backing) {
            (Some(entry), _) => entry,
            (None, Backing::Rocks(db)) => {
                let key = db.get_cf(&db.cf_handle(KEYS).expect("keys"), pseudonym)?;
                let stored =
                    db.get_cf(&db.cf_handle(IDENTITIES).expect("identities"), pseudonym)?;
                match (key, stored) {
                    (Some(key), Some(stored)) => (key, stored),
                    _ => return Ok(Identity::Unknown),
                }
            }
            (None, Backing::Hosted(tables)) => {
                let key = tables.get(HOSTED_TABLES[0], pseudonym.as_bytes())?;
                let stored = tables.get(HOSTED_TABLES[1], pseudonym.as_bytes())?;
                match (key, stored) {
                    (Some(key), Some(stored)) => (key, stored),
                    _ => return Ok(Identity::Unknown),
                }
            }
            (None, Backing::Memory(entries)) => match lock(entries).get(pseudonym) {
                Some((key, stored)) => (key.to_vec(), stored.clone()),
                None => return Ok(Identity::Unknown),
            },
        };
        let damaged = || PersonalDataError::Damaged {
            pseudonym: pseudonym.to_string(),
        };
        if key.len() != KEY_BYTES || stored.len() < NONCE_BYTES {
            return Err(damaged());
        }
        let user = open(&key, &stored, pseudonym).ok_or_else(damaged)?;
        String::from_utf8(user)
            .map(Identity::Known)
            .map_err(|_| damaged())
    }

    /// Destroys `pseudonym`'s key and its sealed user id, so that nothing in this store
    /// can tell who it was any more (a no-op for a pseudonym it never held).
    pub(crate) fn forget(&self, pseudonym: &str) -> Result<(), PersonalDataError> {
        // No write of entries in progress (it could hold this one), and none queued or
        // cached meanwhile: under the lock `remember_unsynced` and the commits take.
        let mut entries = self.lock_idle();
        entries.pending.retain(|(queued, _)| &**queued != pseudonym);
        lock(&self.known).remove(pseudonym);
        if !self.stored(pseudonym)? {
            return Ok(());
        }
        match &self.backing {
            Backing::Rocks(db) => {
                let keys = db.cf_handle(KEYS).expect("keys");
                let identities = db.cf_handle(IDENTITIES).expect("identities");
                let mut batch = WriteBatch::default();
                batch.delete_cf(&keys, pseudonym);
                batch.delete_cf(&identities, pseudonym);
                let mut write = WriteOptions::default();
                write.set_sync(true);
                db.write_opt(batch, &write)?;
                drop(entries);
                // The key must not outlive the erasure anywhere on disk: flushing retires
                // the write-ahead log that carried it, and compacting the keys family
                // (small: 32 bytes a user) rewrites every table file without it.
                // Forced down to the last level: without it RocksDB may move table files
                // there as they are (a "trivial move"), the deleted key in them.
                db.flush_cf(&keys)?;
                db.flush_cf(&identities)?;
                let mut compaction = rocksdb::CompactOptions::default();
                compaction
                    .set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
                for family in [&keys, &identities] {
                    db.compact_range_cf_opt(family, None::<&[u8]>, None::<&[u8]>, &compaction);
                }
            }
            Backing::Hosted(tables) => {
                tables.write(true, |batch| {
                    for table in HOSTED_TABLES {
                        batch.delete(table, pseudonym.as_bytes());
                    }
                })?;
                drop(entries);
                // As above, in the log's database: the write-ahead log that carried the key
                // also carried records, so every family of the database is flushed.
                tables.retire_deleted(&HOSTED_TABLES)?;
            }
            Backing::Memory(stored) => {
                lock(stored).remove(pseudonym);
            }
        }
        Ok(())
    }
}

/// The store beside the requests log's commits: the log's writer thread calls it before
/// each commit (and an appender thread before each Kafka append, with no tables).
impl CommitCompanion for PersonalData {
    fn before_commit(&self, tables: Option<&mut TableBatch<'_>>) -> Result<bool, String> {
        match (tables, &self.backing) {
            (Some(batch), Backing::Hosted(host)) if batch.is_of(host) => {
                let mut entries = self.lock_idle();
                if entries.pending.is_empty() {
                    return Ok(false);
                }
                entries.writing = std::mem::take(&mut entries.pending);
                put_entries(batch, &entries.writing);
                (entries.busy, entries.riding) = (true, true);
                Ok(true)
            }
            // Another shard's log, or a store of its own: written before the commit.
            _ => self.sync_written().map(|()| false),
        }
    }

    fn after_commit(&self, durable: bool) {
        let mut entries = lock(&self.sync.entries);
        assert!(entries.riding, "after a commit the store rode");
        self.end_write(&mut entries, durable);
    }
}

/// Adds `entries` to `batch` of the hosted tables.
fn put_entries(batch: &mut TableBatch<'_>, entries: &[PendingEntry]) {
    for (pseudonym, (key, stored)) in entries {
        batch.put(HOSTED_TABLES[0], pseudonym.as_bytes(), key);
        batch.put(HOSTED_TABLES[1], pseudonym.as_bytes(), stored);
    }
}

/// `user` sealed for `pseudonym` under a fresh random key: (key, nonce ‖ ciphertext).
pub(crate) fn seal(pseudonym: &str, user: &str) -> SealedEntry {
    let key: [u8; KEY_BYTES] = rand::random();
    let nonce: [u8; NONCE_BYTES] = rand::random();
    (key, seal_with(&key, nonce, pseudonym, user))
}

/// ChaCha20-Poly1305 (RFC 8439) of `user` with `pseudonym` as associated data: nonce ‖
/// ciphertext ‖ tag. Perf: `ring`'s, not RustCrypto's `chacha20poly1305` (the same
/// bytes: `sealed_entries_are_rfc_8439_as_before`), which took 1.7 us for a user id of a
/// few bytes against ring's 0.3 us, on the HTTP thread of every new user's first request.
fn seal_with(
    key: &[u8; KEY_BYTES],
    nonce: [u8; NONCE_BYTES],
    pseudonym: &str,
    user: &str,
) -> Vec<u8> {
    let key = LessSafeKey::new(
        UnboundKey::new(&CHACHA20_POLY1305, key).expect("a ChaCha20-Poly1305 key is 32 bytes"),
    );
    let mut stored = Vec::with_capacity(NONCE_BYTES + user.len() + CHACHA20_POLY1305.tag_len());
    stored.extend_from_slice(&nonce);
    stored.extend_from_slice(user.as_bytes());
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(pseudonym.as_bytes()),
            &mut stored[NONCE_BYTES..],
        )
        .expect("ChaCha20-Poly1305 seals any message below 256 GiB");
    stored.extend_from_slice(tag.as_ref());
    stored
}

/// The user id [`seal_with`] sealed in `stored` for `pseudonym` under `key`; `None` when
/// the key, the nonce, the ciphertext or the pseudonym does not match.
fn open(key: &[u8], stored: &[u8], pseudonym: &str) -> Option<Vec<u8>> {
    let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).ok()?);
    let (nonce, sealed) = stored.split_at_checked(NONCE_BYTES)?;
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut sealed = sealed.to_vec();
    let user = key
        .open_in_place(nonce, Aad::from(pseudonym.as_bytes()), &mut sealed)
        .ok()?;
    let length = user.len();
    sealed.truncate(length);
    Some(sealed)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::draw::to_hex;

    /// The sealed entries are ChaCha20-Poly1305 exactly as the store always wrote them
    /// (RustCrypto's `chacha20poly1305` until session 28): a store written before the
    /// switch to `ring` still opens, and an entry sealed now is the same bytes.
    #[test]
    fn sealed_entries_are_rfc_8439_as_before() {
        let (key, nonce) = ([0x42; KEY_BYTES], [0x24; NONCE_BYTES]);
        // Sealed by `chacha20poly1305` 0.10.1 (nonce, then ciphertext and tag).
        let before = "242424242424242424242424\
                      8672fc6b99f36fe13c1128acdd3d2a9bc4796342fe2c92";
        let stored = seal_with(&key, nonce, "u_abcdefghijklmnopqrstuvwx", "buyer-7");
        assert_eq!(to_hex(&stored), before.replace(char::is_whitespace, ""));
        assert_eq!(
            open(&key, &stored, "u_abcdefghijklmnopqrstuvwx").as_deref(),
            Some(&b"buyer-7"[..])
        );
        // RFC 8439, 2.8.2: the AEAD's own test vector.
        let key: [u8; KEY_BYTES] = std::array::from_fn(|index| 0x80 + index as u8);
        let nonce = [
            0x07, 0, 0, 0, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47,
        ];
        let aad = [
            0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7,
        ];
        let plaintext = "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let sealed = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &key).unwrap());
        let mut in_out = plaintext.as_bytes().to_vec();
        sealed
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut in_out,
            )
            .unwrap();
        assert_eq!(
            to_hex(&in_out[in_out.len() - 16..]),
            "1ae10b594f09e26a7e902ecbd0600691"
        );
        assert_eq!(to_hex(&in_out[..8]), "d31a8d34648e60db");
    }

    #[test]
    fn an_entry_opens_only_with_its_key_and_pseudonym() {
        let (key, nonce) = ([9; KEY_BYTES], [3; NONCE_BYTES]);
        let stored = seal_with(&key, nonce, "u_a", "alice");
        assert_eq!(open(&key, &stored, "u_a").as_deref(), Some(&b"alice"[..]));
        assert_eq!(open(&[8; KEY_BYTES], &stored, "u_a"), None, "another key");
        assert_eq!(open(&key, &stored, "u_b"), None, "another pseudonym");
        assert_eq!(open(&key[..31], &stored, "u_a"), None, "a short key");
        assert_eq!(
            open(&key, &stored[..NONCE_BYTES - 1], "u_a"),
            None,
            "no nonce"
        );
        let mut flipped = stored.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(open(&key, &flipped, "u_a"), None, "a damaged tag");
    }

    fn stores(dir: &Path) -> [PersonalData; 2] {
        [PersonalData::open(dir).unwrap(), PersonalData::in_memory()]
    }

    /// An embedded requests log that hosts the store's tables, as `serve` opens it.
    fn hosting_log(dir: &Path) -> requestlog::EmbeddedLog {
        requestlog::EmbeddedLog::open(
            dir,
            requestlog::EmbeddedOptions {
                hosted_tables: HOSTED_TABLES.map(String::from).to_vec(),
                ..requestlog::EmbeddedOptions::default()
            },
        )
        .unwrap()
    }

    fn hosted_store(log: &requestlog::EmbeddedLog) -> PersonalData {
        use requestlog::LogWriter;
        PersonalData::hosted(log.writer().hosted_tables().unwrap(), None)
            .unwrap()
            .expect("the log hosts the store's tables")
    }

    /// The stored key of `pseudonym` (the bytes erasure must leave on no file).
    fn stored_key(store: &PersonalData, pseudonym: &str) -> Vec<u8> {
        match &store.backing {
            Backing::Rocks(db) => db
                .get_cf(&db.cf_handle(KEYS).unwrap(), pseudonym)
                .unwrap()
                .unwrap(),
            Backing::Hosted(tables) => tables
                .get(HOSTED_TABLES[0], pseudonym.as_bytes())
                .unwrap()
                .unwrap(),
            Backing::Memory(entries) => lock(entries).get(pseudonym).unwrap().0.to_vec(),
        }
    }

    /// Whether some file of `dir` holds `bytes`.
    fn on_some_file(dir: &Path, bytes: &[u8]) -> bool {
        std::fs::read_dir(dir).unwrap().any(|entry| {
            let content = std::fs::read(entry.unwrap().path()).unwrap_or_default();
            content.windows(bytes.len()).any(|window| window == bytes)
        })
    }

    /// Forgetting leaves the key on no file of the store's directory (the log's, when it
    /// hosts the store): not in a write-ahead log, not in a table file moved down as it was.
    #[test]
    fn a_forgotten_key_is_on_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = hosting_log(&dir.path().join("requests"));
        for (store, path) in [
            (PersonalData::open(&dir.path().join("own")).unwrap(), "own"),
            (hosted_store(&log), "requests"),
        ] {
            let path = dir.path().join(path);
            store.remember("u_a", "alice@example.com").unwrap();
            store.remember("u_b", "bob@example.com").unwrap();
            let key = stored_key(&store, "u_a");
            assert!(on_some_file(&path, &key), "written, so on a file");
            // In a table file, as an entry is once its user has been around a while.
            match &store.backing {
                Backing::Rocks(db) => db.flush_cf(&db.cf_handle(KEYS).unwrap()).unwrap(),
                Backing::Hosted(tables) => tables.retire_deleted(&[]).unwrap(),
                Backing::Memory(_) => unreachable!(),
            }
            store.remember("u_c", "carol@example.com").unwrap();
            store.forget("u_a").unwrap();
            assert!(!on_some_file(&path, &key), "{path:?} still holds the key");
            assert_eq!(
                store.resolve("u_b").unwrap(),
                Identity::Known("bob@example.com".into())
            );
        }
    }

    /// In the log's tables, new entries are written in the commit of the request that
    /// names their user: no write of their own, resolvable throughout, written once the
    /// append returns. A commit refused by another companion leaves them pending for the
    /// next one.
    #[test]
    fn hosted_entries_ride_the_commit_of_their_request() {
        use requestlog::LogWriter;
        let dir = tempfile::tempdir().unwrap();
        let log = hosting_log(dir.path());
        let writer = log.writer();
        let store = std::sync::Arc::new(hosted_store(&log));
        let companion = store.before_commit();
        assert!(writer.sync_before_commit(&companion));
        let syncs =
            |store: &PersonalData| store.sync.syncs.load(std::sync::atomic::Ordering::Relaxed);

        store.remember_unsynced("u_a", "alice").unwrap();
        assert!(!store.stored("u_a").unwrap());
        assert_eq!(
            store.resolve("u_a").unwrap(),
            Identity::Known("alice".into())
        );
        writer.append(vec![b"hold".to_vec()]).unwrap();
        assert!(store.stored("u_a").unwrap(), "written with the record");
        assert_eq!(syncs(&store), 1);
        writer.append(vec![b"confirm".to_vec()]).unwrap();
        assert_eq!(syncs(&store), 1, "nothing new, nothing written");

        store.remember_unsynced("u_b", "bob").unwrap();
        let refusing: requestlog::BeforeCommit = std::sync::Arc::new(|| Err("full".to_string()));
        assert!(writer.sync_before_commit(&refusing));
        assert!(writer.append(vec![b"lost".to_vec()]).is_err());
        assert!(!store.stored("u_b").unwrap());
        assert_eq!(lock(&store.sync.entries).pending.len(), 1, "pending again");
        assert_eq!(store.resolve("u_b").unwrap(), Identity::Known("bob".into()));
        drop(refusing);
        writer.append(vec![b"hold".to_vec()]).unwrap();
        assert!(store.stored("u_b").unwrap());
        assert_eq!(syncs(&store), 2);

        // Another log's commit (another shard's) cannot carry them: written before it.
        let other_dir = tempfile::tempdir().unwrap();
        let other = hosting_log(other_dir.path());
        assert!(other.writer().sync_before_commit(&companion));
        store.remember_unsynced("u_c", "carol").unwrap();
        other.writer().append(vec![b"hold".to_vec()]).unwrap();
        assert!(store.stored("u_c").unwrap());
        assert_eq!(syncs(&store), 3);
    }

    /// A reopened store's filter of held pseudonyms is built from its keys: a user it
    /// held is known again (never sealed under a second key), a new one is queued, and an
    /// erased one is not held (the filter's "maybe" checked against the store). For a
    /// store of its own and for one the requests log hosts.
    #[test]
    fn a_reopened_store_knows_whom_it_held() {
        use requestlog::LogWriter;
        let pending = |store: &PersonalData| lock(&store.sync.entries).pending.len();
        let dir = tempfile::tempdir().unwrap();
        let own = dir.path().join("own");
        {
            let store = PersonalData::open(&own).unwrap();
            store.remember("u_a", "alice").unwrap();
            store.remember("u_b", "bob").unwrap();
            store.forget("u_b").unwrap();
        }
        let log_dir = dir.path().join("requests");
        {
            let log = hosting_log(&log_dir);
            let store = std::sync::Arc::new(hosted_store(&log));
            let companion = store.before_commit();
            assert!(log.writer().sync_before_commit(&companion));
            store.remember_unsynced("u_a", "alice").unwrap();
            store.remember_unsynced("u_b", "bob").unwrap();
            log.writer().append(vec![b"hold".to_vec()]).unwrap();
            store.forget("u_b").unwrap();
        }
        let log = hosting_log(&log_dir);
        for store in [PersonalData::open(&own).unwrap(), hosted_store(&log)] {
            let key = stored_key(&store, "u_a");
            assert!(store.knows("u_a").unwrap());
            store.remember_unsynced("u_a", "alice").unwrap();
            assert_eq!(pending(&store), 0, "a held user is not sealed again");
            assert_eq!(stored_key(&store, "u_a"), key);
            assert!(!store.knows("u_b").unwrap(), "erased");
            store.remember_unsynced("u_new", "nina").unwrap();
            assert_eq!(pending(&store), 1);
            assert!(store.knows("u_new").unwrap());
        }
    }

    /// A store an earlier version kept apart (in the ingress's slot) moves into the log's
    /// tables: every entry resolves there, and its directory is gone.
    #[test]
    fn a_store_kept_apart_moves_into_the_log() {
        use requestlog::LogWriter;
        let dir = tempfile::tempdir().unwrap();
        let legacy = dir.path().join("personal");
        {
            let own = PersonalData::open(&legacy).unwrap();
            own.remember("u_a", "alice").unwrap();
            own.remember("u_b", "bob").unwrap();
            own.forget("u_b").unwrap();
        }
        let log = hosting_log(&dir.path().join("requests"));
        let store = PersonalData::hosted(log.writer().hosted_tables().unwrap(), Some(&legacy))
            .unwrap()
            .unwrap();
        assert!(!legacy.exists());
        assert_eq!(
            store.resolve("u_a").unwrap(),
            Identity::Known("alice".into())
        );
        assert!(
            store.knows("u_a").unwrap(),
            "in the filter built after the move"
        );
        assert_eq!(store.resolve("u_b").unwrap(), Identity::Unknown);
        // A log without the tables hosts nothing.
        let plain = requestlog::EmbeddedLog::open(
            dir.path().join("plain"),
            requestlog::EmbeddedOptions::default(),
        )
        .unwrap();
        assert!(plain.writer().hosted_tables().is_none());
    }

    #[test]
    fn remembers_resolves_and_forgets() {
        let dir = std::env::temp_dir().join(format!(
            "boxoffice-personal-data-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        for store in stores(&dir) {
            assert_eq!(store.resolve("u_a").unwrap(), Identity::Unknown);
            store.remember("u_a", "alice@example.com").unwrap();
            // A second sight keeps the first key.
            store.remember("u_a", "alice@example.com").unwrap();
            store.remember("u_b", "bob@example.com").unwrap();
            assert!(store.knows("u_a").unwrap());
            assert_eq!(
                store.resolve("u_a").unwrap(),
                Identity::Known("alice@example.com".into())
            );
            store.forget("u_a").unwrap();
            store.forget("u_never").unwrap();
            assert!(!store.knows("u_a").unwrap());
            assert_eq!(store.resolve("u_a").unwrap(), Identity::Unknown);
            assert_eq!(
                store.resolve("u_b").unwrap(),
                Identity::Known("bob@example.com".into())
            );
        }
        // Reopened: what was remembered and forgotten stays so, and no file holds the
        // identities in clear.
        let store = PersonalData::open(&dir).unwrap();
        assert_eq!(store.resolve("u_a").unwrap(), Identity::Unknown);
        assert_eq!(
            store.resolve("u_b").unwrap(),
            Identity::Known("bob@example.com".into())
        );
        drop(store);
        for entry in std::fs::read_dir(&dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(!bytes
                .windows(17)
                .any(|window| window == b"alice@example.com"));
            assert!(!bytes.windows(15).any(|window| window == b"bob@example.com"));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_sealed_entry_opens_only_for_its_own_pseudonym() {
        let store = PersonalData::in_memory();
        store.remember("u_a", "alice").unwrap();
        let Backing::Memory(entries) = &store.backing else {
            unreachable!()
        };
        let entry = lock(entries).get("u_a").cloned().unwrap();
        // The same key and ciphertext filed under another pseudonym do not open.
        lock(entries).insert("u_b".into(), entry);
        assert!(matches!(
            store.resolve("u_b"),
            Err(PersonalDataError::Damaged { .. })
        ));
    }

    /// New entries wait in memory (and resolve from there) until one synced write takes
    /// them all; with nothing pending a sync writes nothing. A second request of the same
    /// user adds nothing; a forgotten pseudonym is neither pending nor "known" any more.
    #[test]
    fn new_entries_are_written_together_before_the_next_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("personal");
        let store = PersonalData::open(&path).unwrap();
        let syncs =
            |store: &PersonalData| store.sync.syncs.load(std::sync::atomic::Ordering::Relaxed);
        let pending = |store: &PersonalData| lock(&store.sync.entries).pending.len();
        store.sync_written().unwrap();
        assert_eq!(syncs(&store), 0, "nothing pending, nothing written");
        store.remember_unsynced("u_a", "alice@example.com").unwrap();
        store.remember_unsynced("u_a", "alice@example.com").unwrap();
        store.remember_unsynced("u_b", "bob@example.com").unwrap();
        assert_eq!(pending(&store), 2, "one entry per user");
        assert!(store.knows("u_a").unwrap());
        assert!(!store.stored("u_a").unwrap(), "not written before the sync");
        assert_eq!(
            store.resolve("u_a").unwrap(),
            Identity::Known("alice@example.com".into())
        );
        store.sync_written().unwrap();
        store.sync_written().unwrap();
        assert_eq!(syncs(&store), 1, "one write for both, none after");
        assert_eq!(pending(&store), 0);
        assert!(store.stored("u_a").unwrap() && store.stored("u_b").unwrap());
        store.remember_unsynced("u_a", "alice@example.com").unwrap();
        assert_eq!(pending(&store), 0, "a known user adds nothing");

        // Forgotten while pending: never written.
        store.remember_unsynced("u_c", "carol@example.com").unwrap();
        store.forget("u_c").unwrap();
        assert!(!store.knows("u_c").unwrap());
        // Forgotten once written: a later request queues a new entry.
        store.forget("u_a").unwrap();
        assert_eq!(store.resolve("u_a").unwrap(), Identity::Unknown);
        store.remember_unsynced("u_a", "alice@example.com").unwrap();
        assert_eq!(pending(&store), 1);
        store.sync_written().unwrap();
        assert_eq!(syncs(&store), 2);
        drop(store);
        let reopened = PersonalData::open(&path).unwrap();
        assert_eq!(
            reopened.resolve("u_a").unwrap(),
            Identity::Known("alice@example.com".into())
        );
        assert_eq!(reopened.resolve("u_c").unwrap(), Identity::Unknown);

        let memory = PersonalData::in_memory();
        memory.remember_unsynced("u_a", "alice").unwrap();
        memory.sync_written().unwrap();
        assert_eq!(
            memory.resolve("u_a").unwrap(),
            Identity::Known("alice".into())
        );
    }
}
