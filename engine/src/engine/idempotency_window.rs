//! The engine's idempotency window (`State::idempotency`): the keys answered within
//! `idempotency_engine_window_ms`, at most `idempotency_entries_max` (2,000,000 by
//! default) of them, each with its answer.
//!
//! Keys are stored in time order and forgotten from the front, so the answers live in a
//! [`ChunkedDeque`] (oldest first), and a [`ChunkedMap`] indexes them by key digest,
//! naming each one's sequence number (the number of keys stored before it). A copy for a
//! snapshot copies a pointer per chunk of each (about 2,000 + 6,000 with a full window),
//! and every operation touches at most a chunk of each. Digests are attacker-chosen
//! (through the keys), so the index is ordered, not hashed: no key can be made slow.
//!
//! It encodes as the two persistent structures it replaces did: the map of key digest →
//! entry in key order, then the queue of (stored at, key digest) in time order.

use super::state::IdempotencyEntry;
use crate::chunked::{ChunkedDeque, ChunkedMap};
use crate::idempotency::DIGEST_BYTES;
use serde::ser::SerializeSeq;
use serde::{Serialize, Serializer};

type Digest = [u8; DIGEST_BYTES];

/// Answers per chunk of the window (a few hundred KiB).
pub(crate) const WINDOW_CHUNK: usize = 1024;
/// Index entries (40 bytes) per chunk, at most: a chunk copy or shift stays ~20 KiB.
pub(crate) const INDEX_CHUNK: usize = 512;

#[derive(Clone, Debug, Default)]
pub(crate) struct IdempotencyWindow {
    /// The answered keys with their answers, oldest first (`stored_at_ms` never
    /// decreases from front to back).
    entries: ChunkedDeque<(Digest, IdempotencyEntry), WINDOW_CHUNK>,
    /// The sequence number of the front entry: the k-th entry from the front has
    /// `first_sequence + k`.
    first_sequence: u64,
    /// Key digest → sequence number, for every entry and nothing else.
    index: ChunkedMap<Digest, u64, INDEX_CHUNK>,
}

impl IdempotencyWindow {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The stored answer to the key with this digest.
    pub(crate) fn get(&self, key: &Digest) -> Option<&IdempotencyEntry> {
        let sequence = *self.index.get(key)?;
        let (stored, entry) = self
            .entries
            .get((sequence - self.first_sequence) as usize)
            .expect("the index names entries in the window");
        debug_assert_eq!(stored, key, "the index names the key's own entry");
        Some(entry)
    }

    /// Stores the answer to a key not in the window, at its time, which is never before
    /// the newest entry's.
    pub(crate) fn push(&mut self, key: Digest, entry: IdempotencyEntry) {
        assert!(
            self.entries
                .back()
                .is_none_or(|(_, newest)| newest.stored_at_ms <= entry.stored_at_ms),
            "keys are stored in time order"
        );
        let sequence = self.first_sequence + self.entries.len() as u64;
        let previous = self.index.insert(key, sequence);
        assert!(
            previous.is_none(),
            "a remembered key is answered, not stored again"
        );
        self.entries.push_back((key, entry));
    }

    /// When the oldest key was stored.
    pub(crate) fn oldest_stored_ms(&self) -> Option<u64> {
        self.entries.front().map(|(_, entry)| entry.stored_at_ms)
    }

    /// Forgets the oldest key.
    pub(crate) fn forget_oldest(&mut self) {
        let (key, _) = self.entries.front().expect("a key to forget");
        let key = *key;
        let sequence = self.first_sequence;
        self.entries.pop_front();
        self.first_sequence += 1;
        assert_eq!(
            self.index.remove(&key),
            Some(sequence),
            "the index mirrors the window"
        );
    }

    /// How many chunks a copy copies (the window's and the index's).
    #[cfg(test)]
    pub(crate) fn chunk_count(&self) -> usize {
        self.entries.chunk_count() + self.index.chunk_count()
    }

    /// Asserts that the index names exactly the window's entries, each its own, and that
    /// the window is in time order (walks everything: tests and `check_invariants`).
    pub(crate) fn check(&self) {
        self.entries.check();
        self.index.check();
        assert_eq!(
            self.index.len(),
            self.entries.len(),
            "one index entry per key"
        );
        for (key, sequence) in &self.index {
            let at = sequence
                .checked_sub(self.first_sequence)
                .expect("no index entry names a forgotten key");
            let (stored, _) = self.entries.get(at as usize).expect("inside the window");
            assert_eq!(stored, key, "the index names the key's own entry");
        }
        let mut previous = 0;
        for (_, entry) in self.entries.iter() {
            assert!(
                entry.stored_at_ms >= previous,
                "keys are stored in time order"
            );
            previous = entry.stored_at_ms;
        }
    }

    /// Encodes as the map of key digest → entry, in key order.
    pub(crate) fn by_key(&self) -> ByKey<'_> {
        ByKey(self)
    }

    /// Encodes as the queue of (stored at, key digest), oldest first.
    pub(crate) fn by_time(&self) -> ByTime<'_> {
        ByTime(self)
    }

    /// The window [`ByKey`] and [`ByTime`] encoded: the same keys in both, each entry
    /// stored when the queue says, the queue in time order. Anything else is a corrupt
    /// state (the sentence says how).
    pub(crate) fn from_encoded(
        by_key: Vec<(Digest, IdempotencyEntry)>,
        by_time: Vec<(u64, Digest)>,
    ) -> Result<IdempotencyWindow, String> {
        if by_key.len() != by_time.len() {
            return Err(format!(
                "{} idempotency entries but {} queued keys",
                by_key.len(),
                by_time.len()
            ));
        }
        if by_time.windows(2).any(|pair| pair[0].0 > pair[1].0) {
            return Err("the idempotency queue is not in time order".into());
        }
        // Looked up, never iterated.
        let position: super::FastMap<Digest, usize> = by_time
            .iter()
            .enumerate()
            .map(|(at, (_, key))| (*key, at))
            .collect();
        if position.len() != by_time.len() {
            return Err("a key queued twice in the idempotency queue".into());
        }
        let mut slots: Vec<Option<IdempotencyEntry>> = (0..by_time.len()).map(|_| None).collect();
        let mut index = Vec::with_capacity(by_key.len());
        for (key, entry) in by_key {
            let at = *position
                .get(&key)
                .ok_or("an idempotency entry whose key is not queued")?;
            if entry.stored_at_ms != by_time[at].0 {
                return Err("an idempotency entry stored at another time than queued".into());
            }
            if index.last().is_some_and(|(last, _)| *last >= key) {
                return Err("idempotency entries not in key order".into());
            }
            slots[at] = Some(entry);
            index.push((key, at as u64));
        }
        let mut window = IdempotencyWindow {
            index: ChunkedMap::from_sorted(index),
            ..IdempotencyWindow::default()
        };
        for ((_, key), slot) in by_time.into_iter().zip(slots) {
            // Every slot is filled: as many distinct keys in the map as in the queue,
            // each found in the queue.
            window
                .entries
                .push_back((key, slot.expect("every queued key has its entry")));
        }
        Ok(window)
    }
}

/// Equal windows hold the same keys with the same answers in the same order (the
/// sequence numbers and chunk boundaries are the history's, not the state's).
impl PartialEq for IdempotencyWindow {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Eq for IdempotencyWindow {}

/// See [`IdempotencyWindow::by_key`].
pub(crate) struct ByKey<'a>(&'a IdempotencyWindow);

impl Serialize for ByKey<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let window = self.0;
        super::sorted_map::serialize_entries(
            serializer,
            window.len(),
            window.index.iter().map(|(key, sequence)| {
                let (_, entry) = window
                    .entries
                    .get((sequence - window.first_sequence) as usize)
                    .expect("the index names entries in the window");
                (key, entry)
            }),
        )
    }
}

/// See [`IdempotencyWindow::by_time`].
pub(crate) struct ByTime<'a>(&'a IdempotencyWindow);

impl Serialize for ByTime<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut queue = serializer.serialize_seq(Some(self.0.len()))?;
        for (key, entry) in self.0.entries.iter() {
            queue.serialize_element(&(entry.stored_at_ms, key))?;
        }
        queue.end()
    }
}

/// `#[serde(deserialize_with = "pairs")]`: a map's entries as they were encoded.
pub(crate) fn pairs<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<(Digest, IdempotencyEntry)>, D::Error> {
    struct Pairs;

    impl<'de> serde::de::Visitor<'de> for Pairs {
        type Value = Vec<(Digest, IdempotencyEntry)>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("a map")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            // Never trust a length prefix for more than a chunk's worth of allocation.
            let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(WINDOW_CHUNK));
            while let Some(pair) = map.next_entry()? {
                pairs.push(pair);
            }
            Ok(pairs)
        }
    }

    deserializer.deserialize_map(Pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Rejection;
    use std::collections::{BTreeMap, VecDeque};

    /// The reference model: the map and the queue the window replaces.
    type Model = (BTreeMap<Digest, IdempotencyEntry>, VecDeque<(u64, Digest)>);

    fn random_digest(seed: &mut u64) -> Digest {
        let mut digest = [0; DIGEST_BYTES];
        for byte in &mut digest {
            *seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            *byte = (*seed >> 56) as u8;
        }
        digest
    }

    fn bytes(window: &IdempotencyWindow) -> Vec<u8> {
        bincode::serde::encode_to_vec(
            (window.by_key(), window.by_time()),
            bincode::config::standard(),
        )
        .unwrap()
    }

    fn model_bytes(model: &Model) -> Vec<u8> {
        bincode::serde::encode_to_vec(model, bincode::config::standard()).unwrap()
    }

    #[derive(serde::Deserialize)]
    struct Encoded(
        #[serde(deserialize_with = "pairs")] Vec<(Digest, IdempotencyEntry)>,
        Vec<(u64, Digest)>,
    );

    fn decode(bytes: &[u8]) -> Result<IdempotencyWindow, String> {
        let (Encoded(by_key, by_time), _): (Encoded, usize) =
            bincode::serde::decode_from_slice(bytes, bincode::config::standard()).unwrap();
        IdempotencyWindow::from_encoded(by_key, by_time)
    }

    /// The window answers, forgets and encodes exactly like the map of key digest → entry
    /// plus the queue of (stored at, key digest) that it replaces (`imbl`'s `OrdMap` and
    /// `Vector` encoded like a `BTreeMap` and a `VecDeque`: length-prefixed, the map in key
    /// order), over a seeded sequence that grows it past several chunks of the window and
    /// of its index, forgets from the front (by time or at the bound) and empties it
    /// twice; copies taken mid-sequence keep their bytes whatever the original does
    /// after; and what it encodes decodes to an equal window.
    #[test]
    fn the_window_behaves_and_encodes_like_the_map_and_queue_it_replaces() {
        let mut seed = 5;
        let mut window = IdempotencyWindow::default();
        let mut model: Model = (BTreeMap::new(), VecDeque::new());
        let mut copies = Vec::new();
        let mut now_ms = 0;
        let mut stored = Vec::new();
        for step in 0..12_000u64 {
            now_ms += step % 3;
            // Phases: grow to about 3,000 keys, shrink, empty, grow again.
            let forget = match (step / 3_000) % 4 {
                0 | 2 => step % 4 == 0,
                1 => step % 4 != 0,
                _ => step % 2 == 0,
            };
            if forget && !model.1.is_empty() {
                window.forget_oldest();
                let (_, key) = model.1.pop_front().unwrap();
                model.0.remove(&key).unwrap();
            } else {
                let key = random_digest(&mut seed);
                let entry = IdempotencyEntry {
                    stored_at_ms: now_ms,
                    fingerprint: random_digest(&mut seed),
                    result: Err(Rejection::SoldOut {
                        category: (step % 5 == 0).then_some(step as u16),
                        free: step,
                    }),
                };
                window.push(key, entry.clone());
                model.0.insert(key, entry);
                model.1.push_back((now_ms, key));
                stored.push(key);
            }
            assert_eq!(window.len(), model.0.len());
            assert_eq!(window.is_empty(), model.0.is_empty());
            assert_eq!(
                window.oldest_stored_ms(),
                model.1.front().map(|(at, _)| *at)
            );
            let probe = stored[(seed % stored.len() as u64) as usize];
            assert_eq!(window.get(&probe), model.0.get(&probe));
            assert_eq!(window.get(&random_digest(&mut seed)), None);
            if step % 61 == 0 {
                window.check();
                let encoded = bytes(&window);
                assert_eq!(encoded, model_bytes(&model));
                let decoded = decode(&encoded).unwrap();
                decoded.check();
                assert_eq!(decoded, window);
                assert_eq!(bytes(&decoded), encoded);
            }
            if step % 499 == 0 {
                copies.push((window.clone(), model_bytes(&model)));
            }
        }
        assert!(
            window.chunk_count() > 2,
            "the sequence spans several chunks"
        );
        for (copy, then) in &copies {
            copy.check();
            assert_eq!(&bytes(copy), then, "a copy keeps what it held");
        }
    }

    /// A corrupt encoding (the map and the queue disagree) is an error, not a window.
    #[test]
    fn a_window_whose_map_and_queue_disagree_does_not_decode() {
        let entry = |stored_at_ms| IdempotencyEntry {
            stored_at_ms,
            fingerprint: [0; DIGEST_BYTES],
            result: Err(Rejection::IdempotencyKeyReused),
        };
        let (first, second) = ([1; DIGEST_BYTES], [2; DIGEST_BYTES]);
        let check = |by_key: Vec<(Digest, IdempotencyEntry)>, by_time: Vec<(u64, Digest)>| {
            IdempotencyWindow::from_encoded(by_key, by_time).map(|window| window.len())
        };
        assert_eq!(
            check(
                vec![(first, entry(5)), (second, entry(3))],
                vec![(3, second), (5, first)]
            ),
            Ok(2)
        );
        for (by_key, by_time) in [
            (vec![(first, entry(5))], vec![]),
            (vec![(first, entry(5))], vec![(5, second)]),
            (vec![(first, entry(5))], vec![(4, first)]),
            (
                vec![(first, entry(5)), (second, entry(3))],
                vec![(5, first), (3, second)],
            ),
            (
                vec![(second, entry(3)), (first, entry(5))],
                vec![(3, second), (5, first)],
            ),
            (
                vec![(first, entry(5)), (second, entry(5))],
                vec![(5, first), (5, first)],
            ),
        ] {
            assert!(check(by_key, by_time).is_err());
        }
    }
}
