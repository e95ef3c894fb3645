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
use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};
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
    /// New entries are written unsynced and made durable by [`PersonalData::sync_written`],
    /// which the requests log's writer runs before each commit (or an appender thread before
    /// each append): a new user's entry and request share one trip through the writer.
    sync: SyncState,
    /// Pseudonyms known to have an entry (written, or found), so that a known user's
    /// request does not search RocksDB's memtable (a skip list of every new user) again.
    /// Bounded: cleared when full (a miss only costs the look-up). An entry is added only
    /// after it is counted in `sync.written`, and removed by `forget`.
    known: Mutex<std::collections::HashSet<Box<str>>>,
}

/// Pseudonyms [`PersonalData::known`] keeps (about 60 bytes each).
const KNOWN_CACHED_MAX: usize = 500_000;

/// How far the store's write-ahead log is known durable, in entries written.
#[derive(Default)]
struct SyncState {
    /// Entries written so far. Held across the look-up and the write of a new entry, so
    /// that whoever sees an entry (another request of the same user) also sees it counted:
    /// a commit that follows its request then syncs it.
    written: Mutex<u64>,
    /// Entries known durable; held across a sync, so commits of several shards' writers
    /// that need the same entries share one fsync (the later ones find them durable).
    durable: Mutex<u64>,
    /// Syncs done (tests count them).
    syncs: std::sync::atomic::AtomicU64,
}

impl PersonalData {
    /// The store in `dir` (created if missing).
    pub(crate) fn open(dir: &Path) -> Result<PersonalData, PersonalDataError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let families =
            [KEYS, IDENTITIES].map(|name| ColumnFamilyDescriptor::new(name, Options::default()));
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

    /// Whether the store holds a key for `pseudonym`.
    pub(crate) fn knows(&self, pseudonym: &str) -> Result<bool, PersonalDataError> {
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
        self.write_entry(pseudonym, user, true)
    }

    /// Records that `pseudonym` is `user` like [`PersonalData::remember`], without waiting
    /// for the disk: the entry is written (unsynced, a few microseconds) and counted, and
    /// the next [`PersonalData::sync_written`] makes it durable. The caller appends the
    /// user's request to a log whose commits run that first (`Writes`), so no record of
    /// the request is durable before its user's entry.
    pub(crate) fn remember_unsynced(
        &self,
        pseudonym: &str,
        user: &str,
    ) -> Result<(), PersonalDataError> {
        if lock(&self.known).contains(pseudonym) {
            return Ok(());
        }
        // Known already (written by this or an earlier request, counted under this lock):
        // nothing to write.
        let mut written = lock(&self.sync.written);
        if !self.knows(pseudonym)? {
            self.write_entry(pseudonym, user, false)?;
            *written += 1;
        }
        // Cached under the same lock that `forget` deletes under: no stale "known".
        let mut known = lock(&self.known);
        if known.len() >= KNOWN_CACHED_MAX {
            known.clear();
        }
        known.insert(pseudonym.into());
        Ok(())
    }

    /// Makes every entry written so far durable (one fsync of the write-ahead log, none
    /// when nothing new was written). Run before each commit of the requests logs.
    pub(crate) fn sync_written(&self) -> Result<(), String> {
        let target = *lock(&self.sync.written);
        let mut durable = lock(&self.sync.durable);
        if *durable >= target {
            return Ok(());
        }
        if let Backing::Rocks(db) = &self.backing {
            db.flush_wal(true).map_err(|error| {
                format!("the personal-data store cannot sync its new entries: {error}")
            })?;
        }
        self.sync
            .syncs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *durable = target;
        Ok(())
    }

    /// [`PersonalData::sync_written`] as a requests log's hook.
    pub(crate) fn before_commit(self: &std::sync::Arc<Self>) -> requestlog::BeforeCommit {
        let store = std::sync::Arc::clone(self);
        std::sync::Arc::new(move || store.sync_written())
    }

    fn write_entry(
        &self,
        pseudonym: &str,
        user: &str,
        sync: bool,
    ) -> Result<(), PersonalDataError> {
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
        match &self.backing {
            Backing::Rocks(db) => {
                let mut batch = WriteBatch::default();
                batch.put_cf(&db.cf_handle(KEYS).expect("keys"), pseudonym, key);
                batch.put_cf(
                    &db.cf_handle(IDENTITIES).expect("identities"),
                    pseudonym,
                    stored,
                );
                let mut write = WriteOptions::default();
                // No record of the user's request is durable before this is (here, or by
                // `sync_written` before the log's commit): a log record whose user this
                // store could lose in a crash would be an unknown attendee.
                write.set_sync(sync);
                db.write_opt(batch, &write)?;
            }
            Backing::Memory(entries) => {
                lock(entries).insert(pseudonym.to_string(), (key, stored));
            }
        }
        Ok(())
    }

    /// The user id behind `pseudonym`, if this store holds its key.
    pub(crate) fn resolve(&self, pseudonym: &str) -> Result<Identity, PersonalDataError> {
        let (key, stored) = match &self.backing {
            Backing::Rocks(db) => {
                let key = db.get_cf(&db.cf_handle(KEYS).expect("keys"), pseudonym)?;
                let stored =
                    db.get_cf(&db.cf_handle(IDENTITIES).expect("identities"), pseudonym)?;
                match (key, stored) {
                    (Some(key), Some(stored)) => (key, stored),
                    _ => return Ok(Identity::Unknown),
                }
            }
            Backing::Memory(entries) => match lock(entries).get(pseudonym) {
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
        // Under the lock `remember_unsynced` writes and caches under.
        let written = lock(&self.sync.written);
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
                drop(written);
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

    /// New entries are written unsynced and counted; one sync makes every entry written
    /// before it durable, and a sync with nothing new written does nothing. A second
    /// request of the same user writes nothing.
    #[test]
    fn new_entries_are_synced_once_before_the_next_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = PersonalData::open(&dir.path().join("personal")).unwrap();
        let syncs =
            |store: &PersonalData| store.sync.syncs.load(std::sync::atomic::Ordering::Relaxed);
        store.sync_written().unwrap();
        assert_eq!(syncs(&store), 0, "nothing written, nothing synced");
        store.remember_unsynced("u_a", "alice@example.com").unwrap();
        store.remember_unsynced("u_a", "alice@example.com").unwrap();
        store.remember_unsynced("u_b", "bob@example.com").unwrap();
        assert_eq!(*lock(&store.sync.written), 2, "one entry per user");
        store.sync_written().unwrap();
        store.sync_written().unwrap();
        assert_eq!(syncs(&store), 1, "one sync for both, none after");
        store.remember_unsynced("u_a", "alice@example.com").unwrap();
        store.sync_written().unwrap();
        assert_eq!(syncs(&store), 1, "a known user writes nothing");
        assert_eq!(
            store.resolve("u_a").unwrap(),
            Identity::Known("alice@example.com".into())
        );
        // Forgotten, the pseudonym is not "known" any more (the cache neither): a later
        // request writes a new entry, which the next commit syncs.
        store.forget("u_a").unwrap();
        assert_eq!(store.resolve("u_a").unwrap(), Identity::Unknown);
        store.remember_unsynced("u_a", "alice@example.com").unwrap();
        assert_eq!(*lock(&store.sync.written), 3);
        store.sync_written().unwrap();
        assert_eq!(syncs(&store), 2);
        assert_eq!(
            store.resolve("u_a").unwrap(),
            Identity::Known("alice@example.com".into())
        );
        let memory = PersonalData::in_memory();
        memory.remember_unsynced("u_a", "alice").unwrap();
        memory.sync_written().unwrap();
        assert_eq!(
            memory.resolve("u_a").unwrap(),
            Identity::Known("alice".into())
        );
    }
}
