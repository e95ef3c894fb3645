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
/// Perf: the keys are the state's own shared names, not copies: interning allocates the
/// name once. Each entry keeps its name's hash, so growing a table reads no name and
/// hashes nothing again. Outcomes name users by number ([`UserNumber`]), so nothing on the
/// engine thread touches a name after its look-up.
///
/// In [`USER_INDEX_SHARDS`] tables by the name's hash, so that no insert stalls the engine
/// for long: a hash table grows by moving every entry into a table twice the size, in
/// one insert, and one table of every user moved 114,688 of them (3.7 MB) on the engine
/// thread when the 114,689th user was new, 917,504 at the millionth: milliseconds for
/// every request behind it. A shard grows alone, with a 1,024th of the users.
pub(crate) struct UserIndex {
    hasher: foldhash::fast::RandomState,
    /// (the name's hash, the shared name, its id), in the shard its hash chooses.
    /// Perf: an array, so that indexing by a masked hash checks no bound.
    shards: Box<[hashbrown::HashTable<(u64, UserName, UserId)>; USER_INDEX_SHARDS]>,
}

/// How many tables [`UserIndex`] spreads its users over (a power of two).
pub(crate) const USER_INDEX_SHARDS: usize = 1024;

impl Default for UserIndex {
    fn default() -> UserIndex {
        UserIndex {
            hasher: foldhash::fast::RandomState::default(),
            shards: Box::new(std::array::from_fn(|_| hashbrown::HashTable::new())),
        }
    }
}

impl UserIndex {
    pub(crate) fn of(names: &CowVec<UserName, USER_CHUNK>) -> UserIndex {
        let mut index = UserIndex::default();
        let per_shard = names.len().div_ceil(USER_INDEX_SHARDS);
        for shard in index.shards.iter_mut() {
            shard.reserve(per_shard, |(entry_hash, _, _)| *entry_hash);
        }
        for (id, name) in names.iter().enumerate() {
            let id = UserId(u32::try_from(id).expect("user ids fit in u32"));
            index.insert_checked(name.clone(), id);
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

    /// The shard of a name's hash. From bits a table does not use: hashbrown takes a
    /// bucket from the low bits and a tag from the top seven, so a shard chosen by either
    /// would leave its table's buckets or tags all alike.
    #[inline]
    fn shard(&self, hash: u64) -> usize {
        (hash >> 32) as usize & (USER_INDEX_SHARDS - 1)
    }

    /// The entry of `name`, if interned.
    #[inline]
    fn get(&self, name: &str) -> Option<&(u64, UserName, UserId)> {
        self.get_hashed(name, self.hash(name))
    }

    /// The entry of `name`, whose hash is `hash`, if interned.
    #[inline]
    fn get_hashed(&self, name: &str, hash: u64) -> Option<&(u64, UserName, UserId)> {
        self.shards[self.shard(hash)].find(hash, |(entry_hash, entry_name, _)| {
            *entry_hash == hash && **entry_name == *name
        })
    }

    /// The id of `name`, or, when it is not interned, its hash for the insert that may
    /// follow ([`UserIndex::insert_new`]).
    #[inline]
    fn find(&self, name: &str) -> Result<UserId, NameHash> {
        let hash = self.hash(name);
        match self.get_hashed(name, hash) {
            Some((_, _, id)) => Ok(*id),
            None => Err(NameHash(hash)),
        }
    }

    /// Files a name read from a state (a restore), checking it is not there yet: a state
    /// naming a user twice stops the process.
    fn insert_checked(&mut self, name: UserName, id: UserId) {
        let hash = self.hash(&name);
        let shard = self.shard(hash);
        let entry = self.shards[shard].entry(
            hash,
            |(entry_hash, entry_name, _)| *entry_hash == hash && *entry_name == name,
            |(entry_hash, _, _)| *entry_hash,
        );
        match entry {
            hashbrown::hash_table::Entry::Vacant(vacant) => {
                vacant.insert((hash, name, id));
            }
            hashbrown::hash_table::Entry::Occupied(_) => {
                panic!("a user is interned once: {name:?}")
            }
        }
    }

    /// Files a name the caller has just looked up and not found (`hash` is what the
    /// look-up gave). Perf: no second probe for the name, only for a free slot (the probe
    /// was about a sixth of interning a user), and no second hash of it;
    /// `check_invariants` checks that every name maps to its own id.
    fn insert_new(&mut self, name: UserName, id: UserId, hash: NameHash) {
        debug_assert!(
            self.get(&name).is_none(),
            "a user is interned once: {name:?}"
        );
        debug_assert_eq!(hash.0, self.hash(&name), "the name's own hash");
        let hash = hash.0;
        let shard = self.shard(hash);
        self.shards[shard].insert_unique(hash, (hash, name, id), |(entry_hash, _, _)| *entry_hash);
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
        self.users.get(name).map(|(_, _, id)| *id)
    }

    /// The user's id, assigned now (the next dense id) if the user is new.
    pub(super) fn intern_user(&mut self, name: &str) -> UserId {
        match self.users.find(name) {
            Ok(id) => id,
            Err(hash) => self.intern_new_user(name, hash),
        }
    }

    /// Interns a user the caller has just looked up and not found (`hash`: what the
    /// look-up gave). Perf: no second look-up (the index's insert asserts the name new).
    pub(super) fn intern_new_user(&mut self, name: &str, hash: NameHash) -> UserId {
        let id = UserId(u32::try_from(self.state.users.len()).expect("fewer than 2^32 users"));
        let name = UserName::from(name);
        // Perf: two references, not three: every clone and drop of a shared name is a
        // locked instruction, which waits for the index's pending stores (a new user's
        // slot in a table just grown, a cache miss) before the engine goes on.
        self.state.users.push(name.clone());
        self.users.insert_new(name, id, hash);
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
            Who::Name(name) => self.users.find(name),
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
            names.push(name.clone());
            let hash = index.find(&name).expect_err("a new name");
            index.insert_new(name, UserId(id as u32), hash);
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
            assert_eq!(
                index.get(name).map(|entry| entry.2),
                Some(UserId(id as u32))
            );
            assert_eq!(
                rebuilt.get(name).map(|entry| entry.2),
                Some(UserId(id as u32))
            );
        }
        assert!(index.get("buyer-unknown").is_none());
    }
}
