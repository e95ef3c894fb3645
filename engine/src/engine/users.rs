//! Users interned to dense ids, in the order the log first gives them state (a hold, a
//! booking or a waitlist entry): every replica assigns the same ids. The state keeps the
//! names by id (`State::users`, copy-on-write chunks, so a snapshot copy stays cheap);
//! holds, bookings, waiters and the per-user counters keep the 4-byte id, so the hot
//! paths compare integers instead of names and store no name per hold. The engine's
//! outcomes carry the id too ([`UserNumber`]); whoever publishes them names the users
//! from a table of its own ([`UserNames`], fed by [`Engine::user_names_from`]).
//!
//! The name → id index is derived data: it lives in the [`Engine`], not in the
//! replicated state, and [`Engine::from_state`] rebuilds it. It is a hash map that is
//! only ever looked up, never iterated, so it cannot leak an order into anything.

use super::*;
use serde::{Deserialize, Serialize};

/// A user's dense id: its index in `State::users`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) struct UserId(pub(crate) u32);

impl UserId {
    /// The user as outcomes name them.
    #[inline]
    pub(crate) fn number(self) -> UserNumber {
        UserNumber(self.0)
    }
}

/// Name → id, for the users in `State::users`. Names are chosen outside (an identity
/// provider), so the hasher is seeded per process (no chosen-collision flood), and fast
/// (foldhash rather than SipHash: this lookup runs for nearly every command).
/// Perf: an entry is 8 bytes, the low half of its name's hash and its id; the name is the
/// state's own (`State::users[id]`), read only when the 32 bits match. Entries of (hash,
/// shared name, id), 32 bytes, made the index 4 MB at 100,000 users, kept a second
/// reference to every name, and grew from empty through fresh tables twice the size:
/// with them the standard mix wrote 239,478 cache lines never touched before per
/// 200,000 commands, with these 75,388, and missed a 2 MB cache 13% less (callgrind,
/// session 37). Growing a table reads no name and hashes nothing again (the table's
/// hash is made from the 32 bits kept, [`table_hash`]).
///
/// In [`USER_INDEX_SHARDS`] tables by the name's hash, so that no insert stalls the engine
/// for long: a hash table grows by moving every entry into a table twice the size, in
/// one insert, and one table of every user moved 114,688 of them (3.7 MB) on the engine
/// thread when the 114,689th user was new, 917,504 at the millionth: milliseconds for
/// every request behind it. A shard grows alone, with a 1,024th of the users.
pub(crate) struct UserIndex {
    hasher: foldhash::fast::RandomState,
    /// The users, in the shard their name's hash chooses.
    /// Perf: an array, so that indexing by a masked hash checks no bound.
    shards: Box<[hashbrown::HashTable<IndexEntry>; USER_INDEX_SHARDS]>,
}

/// A user in the [`UserIndex`]: the low 32 bits of its name's hash, and its id.
#[derive(Clone, Copy, Debug)]
struct IndexEntry {
    hash_low: u32,
    id: UserId,
}

const _: () = assert!(std::mem::size_of::<IndexEntry>() == 8);

/// The hash a shard's table files an entry under, from the 32 bits the entry keeps:
/// hashbrown takes a bucket from the low bits and a tag from the top seven, so both
/// halves are the kept bits (a shard's table never has 2^25 buckets, so the tag's bits
/// are not the bucket's).
#[inline]
fn table_hash(hash_low: u32) -> u64 {
    u64::from(hash_low) | (u64::from(hash_low) << 32)
}

/// How many tables [`UserIndex`] spreads its users over (a power of two).
pub(crate) const USER_INDEX_SHARDS: usize = 1024;

/// The users each shard has room for from the start: 128 buckets at hashbrown's load of
/// 7/8, so the index takes its first 114,688 users (an on-sale's crowd) without moving an
/// entry, for 1.2 MB an engine. Perf: the shards grew from empty, doubling five times to
/// hold a hundred thousand users; those moves were 2-3% of the standard mix, whose
/// 200,000 commands bring most of its 100,000 users (session 38).
const USER_INDEX_SHARD_ROOM: usize = 112;

impl Default for UserIndex {
    fn default() -> UserIndex {
        UserIndex {
            hasher: foldhash::fast::RandomState::default(),
            shards: Box::new(std::array::from_fn(|_| {
                hashbrown::HashTable::with_capacity(USER_INDEX_SHARD_ROOM)
            })),
        }
    }
}

impl UserIndex {
    pub(crate) fn of(names: &CowVec<UserName, USER_CHUNK>) -> UserIndex {
        let mut index = UserIndex::default();
        let per_shard = names.len().div_ceil(USER_INDEX_SHARDS);
        for shard in index.shards.iter_mut() {
            shard.reserve(per_shard, |entry| table_hash(entry.hash_low));
        }
        for (id, name) in names.iter().enumerate() {
            let id = UserId(u32::try_from(id).expect("user ids fit in u32"));
            index.insert_checked(names, name, id);
        }
        index
    }

    /// (A sum over the shards: for checks, not for a hot path.)
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(hashbrown::HashTable::len).sum()
    }

    fn hash(&self, name: &str) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(name)
    }

    /// The shard of a name's hash. From bits the tables do not use: a table's hash is
    /// made from the low 32 bits ([`table_hash`]), so a shard chosen by them would leave
    /// its table's buckets or tags all alike.
    #[inline]
    fn shard(&self, hash: u64) -> usize {
        (hash >> 32) as usize & (USER_INDEX_SHARDS - 1)
    }

    /// The id of `name`, whose hash is `hash`, if interned (`names`: the state's table,
    /// which the entries' ids index).
    #[inline]
    fn get_hashed(
        &self,
        names: &CowVec<UserName, USER_CHUNK>,
        name: &str,
        hash: u64,
    ) -> Option<UserId> {
        let hash_low = hash as u32;
        self.shards[self.shard(hash)]
            .find(table_hash(hash_low), |entry| {
                entry.hash_low == hash_low && *names[entry.id.0 as usize] == *name
            })
            .map(|entry| entry.id)
    }

    /// The id of `name`, if interned.
    #[inline]
    fn get(&self, names: &CowVec<UserName, USER_CHUNK>, name: &str) -> Option<UserId> {
        self.get_hashed(names, name, self.hash(name))
    }

    /// The id of `name`, or, when it is not interned, its hash for the insert that may
    /// follow ([`UserIndex::insert_new`]).
    #[inline]
    fn find(&self, names: &CowVec<UserName, USER_CHUNK>, name: &str) -> Result<UserId, NameHash> {
        let hash = self.hash(name);
        self.get_hashed(names, name, hash).ok_or(NameHash(hash))
    }

    /// Files a name read from a state (a restore), checking it is not there yet: a state
    /// naming a user twice stops the process. `names[id]` is `name`.
    fn insert_checked(&mut self, names: &CowVec<UserName, USER_CHUNK>, name: &str, id: UserId) {
        let hash = self.hash(name);
        let hash_low = hash as u32;
        let shard = self.shard(hash);
        let entry = self.shards[shard].entry(
            table_hash(hash_low),
            |entry| entry.hash_low == hash_low && *names[entry.id.0 as usize] == *name,
            |entry| table_hash(entry.hash_low),
        );
        match entry {
            hashbrown::hash_table::Entry::Vacant(vacant) => {
                vacant.insert(IndexEntry { hash_low, id });
            }
            hashbrown::hash_table::Entry::Occupied(_) => {
                panic!("a user is interned once: {name:?}")
            }
        }
    }

    /// Files the user `id` the caller has just looked up by name and not found (`hash`
    /// is what the look-up gave). Perf: no second probe for the name, only for a free
    /// slot (the probe was about a sixth of interning a user), and no second hash of it;
    /// `check_invariants` checks that every name maps to its own id.
    fn insert_new(&mut self, id: UserId, hash: NameHash) {
        let hash = hash.0;
        let hash_low = hash as u32;
        let shard = self.shard(hash);
        self.shards[shard].insert_unique(
            table_hash(hash_low),
            IndexEntry { hash_low, id },
            |entry| table_hash(entry.hash_low),
        );
    }

    /// The most users one shard holds (the largest table an insert may have to grow).
    #[cfg(test)]
    pub(crate) fn shard_len_max(&self) -> usize {
        self.shards
            .iter()
            .map(hashbrown::HashTable::len)
            .max()
            .unwrap_or(0)
    }
}

/// A user name's hash in the [`UserIndex`]: what a look-up that found nothing hands to
/// the interning that may follow it, so that a new user's name is hashed once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NameHash(u64);

impl Engine {
    /// The user's id if the user has ever had state here.
    #[inline]
    pub(crate) fn user_id(&self, name: &str) -> Option<UserId> {
        self.users.get(&self.state.users, name)
    }

    /// The user's id, assigned now (the next dense id) if the user is new.
    pub(super) fn intern_user(&mut self, name: &str) -> UserId {
        match self.users.find(&self.state.users, name) {
            Ok(id) => id,
            Err(hash) => self.intern_new_user(name, hash),
        }
    }

    /// Interns a user the caller has just looked up and not found (`hash`: what the
    /// look-up gave). Perf: no second look-up (the index's insert asserts the name new).
    pub(super) fn intern_new_user(&mut self, name: &str, hash: NameHash) -> UserId {
        let id = UserId(u32::try_from(self.state.users.len()).expect("fewer than 2^32 users"));
        debug_assert!(
            self.users.get(&self.state.users, name).is_none(),
            "a user is interned once: {name:?}"
        );
        debug_assert_eq!(hash.0, self.users.hash(name), "the name's own hash");
        // Perf: one reference to the name, the state's (the index keeps the id).
        self.state.users.append(UserName::from(name));
        self.users.insert_new(id, hash);
        debug_assert_eq!(self.users.len(), self.state.users.len());
        id
    }

    pub(crate) fn user_name(&self, id: UserId) -> &str {
        &self.state.users[id.0 as usize]
    }

    /// The user's shared name.
    pub(crate) fn user_shared(&self, id: UserId) -> UserName {
        self.state.users[id.0 as usize].clone()
    }

    /// Every user's name, by number: what a publisher starts naming outcomes with.
    pub fn user_names(&self) -> UserNames {
        UserNames::of_table(&self.state.users)
    }

    /// How many users the engine has numbered.
    pub fn users_len(&self) -> usize {
        self.state.users.len()
    }

    /// The names of the users numbered from `first` on (the ones a batch of commands
    /// added, for a publisher's [`UserNames::extend`]).
    pub fn user_names_from(&self, first: usize) -> Vec<UserName> {
        (first..self.state.users.len())
            .map(|index| self.state.users[index].clone())
            .collect()
    }

    /// `outcome` with its users by name, from this engine's own table: for tools and
    /// tests that apply commands themselves. A publisher keeps its own [`UserNames`].
    pub fn named(&self, outcome: Outcome<UserNumber>) -> Outcome {
        outcome.map_users(&mut |number| self.state.users[number.0 as usize].clone())
    }
}

/// The rejection of a command naming its user by an id the engine never assigned.
pub(crate) fn unassigned_user(id: u32) -> Rejection {
    Rejection::Invalid {
        reason: format!("user id {id} was never assigned"),
    }
}

/// A command's user as `apply` resolved it: by name (looked up where a handler needs
/// its id), or by an id the engine has assigned (`Engine::who` refuses any other before
/// a handler runs).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Who<'a> {
    Name(&'a str),
    Id(UserId),
}

impl Engine {
    /// Whether `id` is an assigned user id.
    #[inline]
    pub(crate) fn user_assigned(&self, id: u32) -> bool {
        (id as usize) < self.state.users.len()
    }

    /// The user of a command, resolved: an id the engine never assigned names nobody,
    /// and is refused before anything else (`apply` refuses it before a keyed request's
    /// key is looked up, with the same rejection).
    #[inline]
    pub(crate) fn who<'a>(&self, user: &'a UserRef) -> Result<Who<'a>, Rejection> {
        match user {
            UserRef::Name(name) => Ok(Who::Name(name)),
            UserRef::Id(id) if self.user_assigned(*id) => Ok(Who::Id(UserId(*id))),
            UserRef::Id(id) => Err(unassigned_user(*id)),
        }
    }

    /// The user's id if the user has ever had state here.
    #[inline]
    pub(crate) fn who_id(&self, who: Who<'_>) -> Option<UserId> {
        match who {
            Who::Name(name) => self.user_id(name),
            Who::Id(id) => Some(id),
        }
    }

    /// [`Engine::who_id`], or for a name never interned, the hash to intern it under
    /// ([`Engine::intern_new_user`]).
    #[inline]
    pub(crate) fn who_found(&self, who: Who<'_>) -> Result<UserId, NameHash> {
        match who {
            Who::Name(name) => self.users.find(&self.state.users, name),
            Who::Id(id) => Ok(id),
        }
    }

    /// Whether the user `id` is `who`. Perf: by name, one comparison of names (no
    /// look-up); by id, of integers.
    #[inline]
    pub(crate) fn is_who(&self, id: UserId, who: Who<'_>) -> bool {
        match who {
            Who::Name(name) => self.user_name(id) == name,
            Who::Id(who) => who == id,
        }
    }

    /// The user's id, assigned now if the user is new (a name never seen).
    #[inline]
    pub(super) fn intern_who(&mut self, who: Who<'_>) -> UserId {
        match who {
            Who::Name(name) => self.intern_user(name),
            Who::Id(id) => id,
        }
    }

    /// A user by name must be a valid name; an assigned id was one when it was assigned.
    #[inline]
    pub(super) fn check_who(&self, who: Who<'_>) -> Result<(), Rejection> {
        match who {
            Who::Name(name) => self.check_text("user", name, true),
            Who::Id(_) => Ok(()),
        }
    }

    /// The user's name (shared): desk tickets keep their users by name.
    pub(crate) fn who_name(&self, who: Who<'_>) -> UserName {
        match who {
            Who::Name(name) => UserName::from(name),
            Who::Id(id) => self.user_shared(id),
        }
    }

    /// The name of an assigned user id, for tools and tests that learn ids (the
    /// standard-mix generator names known users by id, as a writer that learnt them
    /// would). `None` for an id never assigned.
    pub fn user_name_of(&self, id: u32) -> Option<&str> {
        self.user_assigned(id).then(|| self.user_name(UserId(id)))
    }

    /// The id the engine gave `name`, if the user has ever had state here.
    pub fn user_number(&self, name: &str) -> Option<u32> {
        self.user_id(name).map(|id| id.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_spreads_users_evenly_over_its_shards_and_finds_every_one() {
        let mut names: CowVec<UserName, USER_CHUNK> = CowVec::default();
        let mut index = UserIndex::default();
        let users = 200 * USER_INDEX_SHARDS;
        for id in 0..users {
            let name = UserName::from(format!("buyer-{id}").as_str());
            let hash = index.find(&names, &name).expect_err("a new name");
            names.push(name);
            index.insert_new(UserId(id as u32), hash);
        }
        assert_eq!(index.len(), users);
        // A shard chosen from bits the tables use would pile users up (or leave tags
        // alike): evenly spread, no shard holds much more than its share of 200.
        assert!(
            index.shard_len_max() < 300,
            "the fullest shard holds {}",
            index.shard_len_max()
        );
        let rebuilt = UserIndex::of(&names);
        assert_eq!(rebuilt.len(), users);
        for (id, name) in names.iter().enumerate() {
            assert_eq!(index.get(&names, name), Some(UserId(id as u32)));
            assert_eq!(rebuilt.get(&names, name), Some(UserId(id as u32)));
        }
        assert!(index.get(&names, "buyer-unknown").is_none());
    }
}
