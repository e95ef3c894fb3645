//! Which pseudonyms the personal-data store holds, as Bloom filters (`fastbloom`): "not
//! held" is certain, "held" is a guess the store checks (`personal_data`).
//!
//! Why: nearly every request of an on-sale crowd's first minutes is a new user's, and its
//! check of the store (a RocksDB get that finds nothing, in a memtable of every new user)
//! cost about 4% of the HTTP thread under 64 hold + confirm clients (BENCHMARKS.md). A
//! filter answers it from one or two cache lines.
//!
//! Complete by construction: every key in the store at start is inserted
//! (`with_held_hashes`), and every new entry is inserted before it is queued for writing,
//! under the same lock. An erased entry stays in (a false "held", checked). The filters grow as a chain: when the
//! newest is full, a four times larger one takes the new pseudonyms, so a look-up probes one
//! filter per quadrupling (the first holds a million), and nothing is ever rebuilt from the
//! store while requests wait.

use fastbloom::BloomFilter;
use std::hash::BuildHasher;

/// Pseudonyms the first filter is made for, at least (about 1.8 MB at the rate below).
const FIRST_CAPACITY_MIN: u64 = 1 << 20;
/// Each filter's rate of false "held" answers when full.
const FALSE_POSITIVE_RATE: f64 = 0.001;
/// How much larger each next filter is.
const GROWTH: u64 = 4;

pub(crate) struct StoredFilter {
    /// Oldest first; new pseudonyms go into the last.
    filters: Vec<Filter>,
}

struct Filter {
    bloom: BloomFilter,
    capacity: u64,
    inserted: u64,
}

impl Filter {
    fn new(capacity: u64) -> Filter {
        Filter {
            bloom: BloomFilter::with_false_pos(FALSE_POSITIVE_RATE)
                .expected_items(usize::try_from(capacity).unwrap_or(usize::MAX)),
            capacity,
            inserted: 0,
        }
    }
}

/// The pseudonym's hash the filters take (fixed seed: only this process reads them).
pub(crate) fn hash(pseudonym: &[u8]) -> u64 {
    foldhash::quality::FixedState::with_seed(0x626f_786f_6666_6963).hash_one(pseudonym)
}

impl StoredFilter {
    /// A filter of the pseudonyms whose [`hash`]es these are (the store's keys at start:
    /// a scan of a large store keeps 8 bytes a key, not the keys), with room for as many
    /// again (and at least a million).
    pub(crate) fn with_held_hashes(hashes: Vec<u64>) -> StoredFilter {
        StoredFilter::build(hashes, FIRST_CAPACITY_MIN)
    }

    fn build(hashes: Vec<u64>, capacity_min: u64) -> StoredFilter {
        let capacity = (2 * hashes.len() as u64).max(capacity_min);
        let mut first = Filter::new(capacity);
        for hash in &hashes {
            first.bloom.insert_hash(*hash);
        }
        first.inserted = hashes.len() as u64;
        StoredFilter {
            filters: vec![first],
        }
    }

    /// Notes that the store holds (or is about to hold) `pseudonym`.
    pub(crate) fn insert(&mut self, pseudonym: &[u8]) {
        let last = self.filters.last_mut().expect("at least one filter");
        if last.inserted >= last.capacity {
            let capacity = last.capacity.saturating_mul(GROWTH);
            self.filters.push(Filter::new(capacity));
        }
        let last = self.filters.last_mut().expect("at least one filter");
        last.bloom.insert_hash(hash(pseudonym));
        last.inserted += 1;
    }

    /// False only if the store cannot hold `pseudonym`.
    pub(crate) fn may_hold(&self, pseudonym: &[u8]) -> bool {
        let hash = hash(pseudonym);
        // Newest first: under a crowd of new users it is the one recent pseudonyms are in.
        self.filters
            .iter()
            .rev()
            .any(|filter| filter.bloom.contains_hash(hash))
    }

    /// How many filters a look-up probes.
    #[cfg(test)]
    fn filters(&self) -> usize {
        self.filters.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudonym(n: u64) -> Vec<u8> {
        format!("u_{n:026x}").into_bytes()
    }

    /// No pseudonym held at start or inserted since is ever answered "not held", across
    /// the filters' growth; pseudonyms never inserted mostly are.
    #[test]
    fn what_is_held_is_never_denied_and_most_of_the_rest_is() {
        let held: Vec<Vec<u8>> = (0..1_000).map(pseudonym).collect();
        let mut filter = StoredFilter::build(held.iter().map(|p| hash(p)).collect(), 10_000);
        assert!(held.iter().all(|p| filter.may_hold(p)));
        // Past the first filter's capacity: a second, four times larger, takes the rest.
        let inserted = 10_000 + 1_000;
        for n in 1_000..inserted {
            filter.insert(&pseudonym(n));
        }
        assert_eq!(filter.filters(), 2);
        let denied = (0..inserted)
            .filter(|n| !filter.may_hold(&pseudonym(*n)))
            .count();
        assert_eq!(denied, 0, "a held pseudonym was denied");
        let guessed = (inserted..inserted + 100_000)
            .filter(|n| filter.may_hold(&pseudonym(*n)))
            .count();
        // Two filters at 0.1% each (the first full): about 0.2% expected.
        assert!(
            guessed < 1_000,
            "{guessed} of 100,000 new pseudonyms guessed held"
        );
    }

    #[test]
    fn the_first_filter_has_room_for_as_many_again_as_were_held() {
        let held: Vec<Vec<u8>> = (0..3_000).map(pseudonym).collect();
        let mut filter = StoredFilter::build(held.iter().map(|p| hash(p)).collect(), 1_000);
        for n in 3_000..6_000 {
            filter.insert(&pseudonym(n));
        }
        assert_eq!(filter.filters(), 1);
        filter.insert(&pseudonym(6_000));
        assert_eq!(filter.filters(), 2);
        // An empty store's first filter is the minimum's.
        assert_eq!(
            StoredFilter::with_held_hashes(Vec::new()).filters[0].capacity,
            FIRST_CAPACITY_MIN
        );
    }
}
