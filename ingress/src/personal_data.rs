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

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rocksdb::{BlockBasedOptions, ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

const KEYS: &str = "keys";
const IDENTITIES: &str = "identities";
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
    #[error("the personal-data store holds a damaged entry for {pseudonym}")]
    Damaged { pseudonym: String },
    #[error("{0}")]
    Sync(String),
}

/// One user's entry: the key, and the nonce and ciphertext of the user id.
type SealedEntry = ([u8; KEY_BYTES], Vec<u8>);

enum Backing {
    Rocks(std::sync::Arc<DB>),
    /// For an ingress without a state directory (tests, tools).
    Memory(Mutex<BTreeMap<String, SealedEntry>>),
}

pub(crate) struct PersonalData {
    backing: Backing,
    /// New entries wait in memory until [`PersonalData::sync_written`] writes them, all in
    /// one synced write, which the requests log's writer runs before each commit (or an
    /// appender thread before each append): a new user costs no disk write of its own on
    /// the request's thread, and its entry and request share one trip through the writer.
    sync: SyncState,
    /// Pseudonyms known to have an entry (pending or stored), so that a known user's
    /// request does not search RocksDB's memtable (a skip list of every new user) again.
    /// Bounded: cleared when full (a miss only costs the look-up). Filled under
    /// `sync.pending`'s lock, emptied of a pseudonym by `forget` under the same lock.
    known: Mutex<std::collections::HashSet<Box<str>>>,
}

/// Pseudonyms [`PersonalData::known`] keeps (about 60 bytes each).
const KNOWN_CACHED_MAX: usize = 500_000;
/// New entries held in memory at most: past it, the request that adds one writes them
/// (synced) itself. Commits write them long before that unless requests of new users
/// arrive and none is appended (each one refused after its user was seen).
const PENDING_MAX: usize = 10_000;

/// A new entry waiting to be written: the pseudonym, its key and its sealed user id.
type PendingEntry = (Box<str>, SealedEntry);

#[derive(Default)]
struct SyncState {
    /// Entries not yet written. Held across the look-up and the queuing of a new entry,
    /// so whoever sees an entry in `known` (another request of the same user) finds it
    /// here or written: the commit that follows its request writes it, or waits for the
    /// write that took it.
    pending: Mutex<Vec<PendingEntry>>,
    /// Held across taking and writing the pending entries, so a commit (of any shard's
    /// writer) that needs entries another commit took waits until they are durable.
    writing: Mutex<()>,
    /// Synced writes done (tests count them).
    syncs: std::sync::atomic::AtomicU64,
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
        Ok(PersonalData {
            backing: Backing::Rocks(db),
            sync: SyncState::default(),
            known: Mutex::default(),
        })
    }

    /// A store in memory.
    pub(crate) fn in_memory() -> PersonalData {
        PersonalData {
            backing: Backing::Memory(Mutex::new(BTreeMap::new())),
            sync: SyncState::default(),
            known: Mutex::default(),
        }
    }

    /// Whether the store holds a key for `pseudonym` (written or about to be).
    pub(crate) fn knows(&self, pseudonym: &str) -> Result<bool, PersonalDataError> {
        if lock(&self.sync.pending)
            .iter()
            .any(|(pending, _)| &**pending == pseudonym)
        {
            return Ok(true);
        }
        self.stored(pseudonym)
    }

    /// Whether a key for `pseudonym` is written.
    fn stored(&self, pseudonym: &str) -> Result<bool, PersonalDataError> {
        match &self.backing {
            Backing::Rocks(db) => {
                let keys = db.cf_handle(KEYS).expect("the keys family");
                Ok(db.get_pinned_cf(&keys, pseudonym)?.is_some())
            }
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
        self.write_entries(&[(pseudonym.into(), seal(pseudonym, user))], true)
    }

    /// Records that `pseudonym` is `user` like [`PersonalData::remember`], without waiting
    /// for the disk: a new entry is sealed and kept in memory, and the next
    /// [`PersonalData::sync_written`] writes it durably. The caller appends the user's
    /// request to a log whose commits run that first (`Writes`), so no record of the
    /// request is durable before its user's entry.
    pub(crate) fn remember_unsynced(
        &self,
        pseudonym: &str,
        user: &str,
    ) -> Result<(), PersonalDataError> {
        if lock(&self.known).contains(pseudonym) {
            return Ok(());
        }
        let mut pending = lock(&self.sync.pending);
        let queued = pending.iter().any(|(queued, _)| &**queued == pseudonym);
        if !queued && !self.stored(pseudonym)? {
            pending.push((pseudonym.into(), seal(pseudonym, user)));
        }
        let full = pending.len() >= PENDING_MAX;
        {
            let mut known = lock(&self.known);
            if known.len() >= KNOWN_CACHED_MAX {
                known.clear();
            }
            known.insert(pseudonym.into());
        }
        drop(pending);
        if full {
            self.sync_written().map_err(PersonalDataError::Sync)?;
        }
        Ok(())
    }

    /// Writes every pending entry durably (one synced write; nothing when none is
    /// pending, after waiting for a write in progress). Run before each commit of the
    /// requests logs. On failure the entries stay pending for the next commit.
    pub(crate) fn sync_written(&self) -> Result<(), String> {
        let _writing = lock(&self.sync.writing);
        let entries = std::mem::take(&mut *lock(&self.sync.pending));
        if entries.is_empty() {
            return Ok(());
        }
        if let Err(error) = self.write_entries(&entries, true) {
            let mut pending = lock(&self.sync.pending);
            let newer = std::mem::replace(&mut *pending, entries);
            pending.extend(newer);
            return Err(format!(
                "the personal-data store cannot write its new entries: {error}"
            ));
        }
        self.sync
            .syncs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// [`PersonalData::sync_written`] as a requests log's hook.
    pub(crate) fn before_commit(self: &std::sync::Arc<Self>) -> requestlog::BeforeCommit {
        let store = std::sync::Arc::clone(self);
        std::sync::Arc::new(move || store.sync_written())
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
        let pending = lock(&self.sync.pending)
            .iter()
            .find(|(pending, _)| &**pending == pseudonym)
            .map(|(_, (key, stored))| (key.to_vec(), stored.clone()));
        let (key, stored) = match (pending, &self.backing) {
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
        let (nonce, sealed) = stored.split_at(NONCE_BYTES);
        let user = ChaCha20Poly1305::new(Key::from_slice(&key))
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: pseudonym.as_bytes(),
                },
            )
            .map_err(|_| damaged())?;
        String::from_utf8(user)
            .map(Identity::Known)
            .map_err(|_| damaged())
    }

    /// Destroys `pseudonym`'s key and its sealed user id, so that nothing in this store
    /// can tell who it was any more (a no-op for a pseudonym it never held).
    pub(crate) fn forget(&self, pseudonym: &str) -> Result<(), PersonalDataError> {
        // No write of pending entries in progress (it could hold this one), and none
        // queued or cached meanwhile: under the locks `sync_written` and
        // `remember_unsynced` take.
        let writing = lock(&self.sync.writing);
        let mut pending = lock(&self.sync.pending);
        pending.retain(|(queued, _)| &**queued != pseudonym);
        lock(&self.known).remove(pseudonym);
        match &self.backing {
            Backing::Rocks(db) => {
                let keys = db.cf_handle(KEYS).expect("keys");
                let identities = db.cf_handle(IDENTITIES).expect("identities");
                if db.get_pinned_cf(&keys, pseudonym)?.is_none() {
                    return Ok(());
                }
                let mut batch = WriteBatch::default();
                batch.delete_cf(&keys, pseudonym);
                batch.delete_cf(&identities, pseudonym);
                let mut write = WriteOptions::default();
                write.set_sync(true);
                db.write_opt(batch, &write)?;
                drop(pending);
                drop(writing);
                // The key must not outlive the erasure anywhere on disk: flushing retires
                // the write-ahead log that carried it, and compacting the keys family
                // (small: 32 bytes a user) rewrites every table file without it.
                db.flush_cf(&keys)?;
                db.flush_cf(&identities)?;
                db.compact_range_cf(&keys, None::<&[u8]>, None::<&[u8]>);
                db.compact_range_cf(&identities, None::<&[u8]>, None::<&[u8]>);
            }
            Backing::Memory(entries) => {
                lock(entries).remove(pseudonym);
            }
        }
        Ok(())
    }
}

/// `user` sealed for `pseudonym` under a fresh random key: (key, nonce ‖ ciphertext).
fn seal(pseudonym: &str, user: &str) -> SealedEntry {
    let key: [u8; KEY_BYTES] = rand::random();
    let nonce: [u8; NONCE_BYTES] = rand::random();
    let sealed = ChaCha20Poly1305::new(Key::from_slice(&key))
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: user.as_bytes(),
                aad: pseudonym.as_bytes(),
            },
        )
        .expect("ChaCha20-Poly1305 seals any message below 256 GiB");
    let mut stored = nonce.to_vec();
    stored.extend_from_slice(&sealed);
    (key, stored)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stores(dir: &Path) -> [PersonalData; 2] {
        [PersonalData::open(dir).unwrap(), PersonalData::in_memory()]
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
        let pending = |store: &PersonalData| lock(&store.sync.pending).len();
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
