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
    #[error("the personal-data store's sync: {0}")]
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
    /// Group commit of new entries (`remember_grouped`): waiters for the next fsync of the
    /// store's write-ahead log, taken in bulk by the `personal-data-sync` thread. The
    /// thread ends when the store is dropped (this sender with it).
    sync_waiters: Option<Mutex<std::sync::mpsc::Sender<SyncWaiter>>>,
    /// Entries written but not yet synced: a second request of the same new user waits
    /// for the same sync rather than being appended before its user is durable.
    unsynced: std::sync::Arc<Mutex<std::collections::HashSet<String>>>,
}

/// Told once the write-ahead log holding an entry (of the pseudonym) is on disk (or why
/// not).
type SyncWaiter = (String, tokio::sync::oneshot::Sender<Result<(), String>>);

/// Syncs the write-ahead log once for every waiter that arrived before the sync began: a
/// flash sale's thousands of new users a second cost one fsync per batch, not one each.
fn run_syncer(
    db: std::sync::Weak<DB>,
    waiters: std::sync::mpsc::Receiver<SyncWaiter>,
    unsynced: std::sync::Arc<Mutex<std::collections::HashSet<String>>>,
) {
    while let Ok(first) = waiters.recv() {
        let mut batch = vec![first];
        batch.extend(waiters.try_iter());
        let Some(db) = db.upgrade() else {
            return;
        };
        let result = db.flush_wal(true).map_err(|error| error.to_string());
        drop(db);
        if result.is_ok() {
            let mut unsynced = lock(&unsynced);
            for (pseudonym, _) in &batch {
                unsynced.remove(pseudonym);
            }
        }
        for (_, waiter) in batch {
            // A request that gave up waiting has nobody to tell.
            let _ = waiter.send(result.clone());
        }
    }
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
        let (sender, receiver) = std::sync::mpsc::channel();
        let weak = std::sync::Arc::downgrade(&db);
        let unsynced = std::sync::Arc::new(Mutex::new(std::collections::HashSet::new()));
        let syncer_unsynced = std::sync::Arc::clone(&unsynced);
        std::thread::Builder::new()
            .name("personal-data-sync".into())
            .spawn(move || run_syncer(weak, receiver, syncer_unsynced))
            .map_err(|error| PersonalDataError::Sync(error.to_string()))?;
        Ok(PersonalData {
            backing: Backing::Rocks(db),
            sync_waiters: Some(Mutex::new(sender)),
            unsynced,
        })
    }

    /// A store in memory.
    pub(crate) fn in_memory() -> PersonalData {
        PersonalData {
            backing: Backing::Memory(Mutex::new(BTreeMap::new())),
            sync_waiters: None,
            unsynced: std::sync::Arc::default(),
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
    /// known already. Blocking (tests; requests use `remember_grouped`).
    #[cfg(test)]
    pub(crate) fn remember(&self, pseudonym: &str, user: &str) -> Result<(), PersonalDataError> {
        if self.knows(pseudonym)? {
            return Ok(());
        }
        self.write_entry(pseudonym, user, true)
    }

    /// Records that `pseudonym` is `user` like [`PersonalData::remember`], without waiting
    /// for the disk on the calling thread: the entry is written (unsynced, a few
    /// microseconds), and the answer says when the next group fsync of the write-ahead log
    /// made it durable (`None`: durable already, or nothing to write). The caller appends
    /// the user's request only after that.
    pub(crate) fn remember_grouped(
        &self,
        pseudonym: &str,
        user: &str,
    ) -> Result<Option<tokio::sync::oneshot::Receiver<Result<(), String>>>, PersonalDataError> {
        let Some(waiters) = &self.sync_waiters else {
            if !self.knows(pseudonym)? {
                self.write_entry(pseudonym, user, true)?;
            }
            return Ok(None);
        };
        // Known and synced: nothing to wait for. Known but not synced yet (another request
        // of this user just wrote it): wait for the same sync.
        let write = {
            let mut unsynced = lock(&self.unsynced);
            if unsynced.contains(pseudonym) {
                false
            } else if self.knows(pseudonym)? {
                return Ok(None);
            } else {
                unsynced.insert(pseudonym.to_string());
                true
            }
        };
        if write {
            if let Err(error) = self.write_entry(pseudonym, user, false) {
                lock(&self.unsynced).remove(pseudonym);
                return Err(error);
            }
        }
        let (sender, receiver) = tokio::sync::oneshot::channel();
        lock(waiters)
            .send((pseudonym.to_string(), sender))
            .map_err(|_| PersonalDataError::Sync("the sync thread has stopped".into()))?;
        Ok(Some(receiver))
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
                // The user's request is appended once this is durable (here, or by the
                // group sync of `remember_grouped`): a log record whose user this store
                // could lose in a crash would be an unknown attendee.
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

    /// New entries are made durable by one group sync; a second request of the same new
    /// user waits for that sync too; once synced, nothing more is waited for.
    #[tokio::test]
    async fn new_entries_wait_for_one_group_sync() {
        let dir = tempfile::tempdir().unwrap();
        let store = PersonalData::open(&dir.path().join("personal")).unwrap();
        let first = store.remember_grouped("u_a", "alice@example.com").unwrap();
        let again = store.remember_grouped("u_a", "alice@example.com").unwrap();
        let other = store.remember_grouped("u_b", "bob@example.com").unwrap();
        for waiter in [first, again, other] {
            waiter
                .expect("an unsynced entry is waited for")
                .await
                .unwrap()
                .unwrap();
        }
        assert!(store
            .remember_grouped("u_a", "alice@example.com")
            .unwrap()
            .is_none());
        assert_eq!(
            store.resolve("u_a").unwrap(),
            Identity::Known("alice@example.com".into())
        );
        let memory = PersonalData::in_memory();
        assert!(memory.remember_grouped("u_a", "alice").unwrap().is_none());
        assert_eq!(
            memory.resolve("u_a").unwrap(),
            Identity::Known("alice".into())
        );
    }
}
