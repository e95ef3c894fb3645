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
/// (foldhash rather than SipHash: this lookup runs for every command naming a new user).
///
/// Perf: an entry is 8 bytes, the low half of its name's hash and its id; the name is the
/// state's own (`State::users[id]`), read only when the 32 bits match. Entries of (hash,
/// shared name, id), 32 bytes, made the index 4 MB at 100,000 users, kept a second
/// reference to every name, and grew from empty through fresh tables twice the size:
/// with them the standard mix wrote 239,478 cache lines never touched before per
/// 200,000 commands, with these 75,388, and missed a 2 MB cache 13% less (callgrind,
/// session 37). Growing a table reads no name and hashes nothing again (an entry's place
/// is chosen by the 32 bits it keeps).
///
/// A table of its own (open addressing over groups of eight entries, a cache line each)
/// rather than `hashbrown`'s: a name's place is one address computed from its hash, so
/// [`Engine::prefetch`] can ask for it one command ahead (the look-up of a new user's
/// name missed the cache on `hashbrown`'s control bytes for about 5% of the standard mix,
/// session 44), and a look-up reads one line, not a control group and then an entry.
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
    shards: Box<[IndexShard; USER_INDEX_SHARDS]>,
}

/// One shard of the [`UserIndex`]: groups of entries, a power of two of them, filled to
/// at most [`LOAD_NUMERATOR`]/[`LOAD_DENOMINATOR`] of their entries. A name's entry is in
/// the first group, from the one its hash names on (wrapping), that had a free entry when
/// it was filed; entries are never removed, so a look-up that meets a free entry has
/// passed every group the name could be in.
#[derive(Clone)]
struct IndexShard {
    groups: Vec<IndexGroup>,
    len: usize,
}

/// Eight entries on one cache line. An entry is the low 32 bits of a name's hash (high
/// half) and 1 + its user's id (low half); 0 is a free entry.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct IndexGroup([u64; GROUP_ENTRIES]);

const GROUP_ENTRIES: usize = 8;
const FREE: u64 = 0;

const _: () = assert!(std::mem::size_of::<IndexGroup>() == 64);

/// A shard grows past this share of its entries: with groups of eight, a look-up reads
/// its first group alone nearly always (one in a few hundred spills into the next group
/// at this load).
const LOAD_NUMERATOR: usize = 3;
const LOAD_DENOMINATOR: usize = 4;

/// How many tables [`UserIndex`] spreads its users over (a power of two).
pub(crate) const USER_INDEX_SHARDS: usize = 1024;

/// The groups each shard starts with: 256 entries, room for 192 users, so the index takes
/// its first 196,608 users (an on-sale's crowd) without moving an entry, for 2 MB an
/// engine (of which only the lines touched are ever paged in). Perf: the shards grew from
/// empty, doubling five times to hold a hundred thousand users; those moves were 2-3% of
/// the standard mix, whose 200,000 commands bring most of its 100,000 users (session 38).
const SHARD_GROUPS_START: usize = 32;

/// An entry for user `id` under hash bits `hash_low`.
#[inline]
fn entry_of(hash_low: u32, id: UserId) -> u64 {
    (u64::from(hash_low) << 32) | u64::from(id.0.checked_add(1).expect("fewer than 2^32 - 1 users"))
}

impl IndexShard {
    fn new() -> IndexShard {
        IndexShard {
            groups: vec![IndexGroup([FREE; GROUP_ENTRIES]); SHARD_GROUPS_START],
            len: 0,
        }
    }

    /// The group a name's look-up starts at.
    #[inline]
    fn home(&self, hash_low: u32) -> usize {
        hash_low as usize & (self.groups.len() - 1)
    }

    /// The id of the entry whose hash bits are `hash_low` and for which `is_name` holds.
    #[inline]
    fn find(&self, hash_low: u32, is_name: impl Fn(UserId) -> bool) -> Option<UserId> {
        let mask = self.groups.len() - 1;
        let mut group = self.home(hash_low);
        loop {
            for &entry in &self.groups[group].0 {
                if entry == FREE {
                    return None;
                }
                if (entry >> 32) as u32 == hash_low {
                    let id = UserId(entry as u32 - 1);
                    if is_name(id) {
                        return Some(id);
                    }
                }
            }
            // The load bound leaves free entries, so the walk ends.
            group = (group + 1) & mask;
        }
    }

    /// Files `entry` (not in the shard) in the first free place from its home group on.
    #[inline]
    fn place(groups: &mut [IndexGroup], entry: u64) {
        let mask = groups.len() - 1;
        let mut group = (entry >> 32) as usize & mask;
        loop {
            if let Some(free) = groups[group].0.iter_mut().find(|slot| **slot == FREE) {
                *free = entry;
                return;
            }
            group = (group + 1) & mask;
        }
    }

    fn insert(&mut self, entry: u64) {
        if (self.len + 1) * LOAD_DENOMINATOR > self.groups.len() * GROUP_ENTRIES * LOAD_NUMERATOR {
            self.grow();
        }
        Self::place(&mut self.groups, entry);
        self.len += 1;
    }

    /// Doubles the groups, filing every entry again from the hash bits it keeps.
    #[cold]
    fn grow(&mut self) {
        let mut groups = vec![IndexGroup([FREE; GROUP_ENTRIES]); self.groups.len() * 2];
        for group in &self.groups {
            for &entry in group.0.iter().filter(|entry| **entry != FREE) {
                Self::place(&mut groups, entry);
            }
        }
        self.groups = groups;
    }
}

impl Default for UserIndex {
    fn default() -> UserIndex {
        UserIndex {
            hasher: foldhash::fast::RandomState::default(),
            shards: Box::new(std::array::from_fn(|_| IndexShard::new())),
        }
    }
}

impl UserIndex {
    pub(crate) fn of(names: &CowVec<UserName, USER_CHUNK>) -> UserIndex {
        let mut index = UserIndex::default();
        for (id, name) in names.iter().enumerate() {
            let id = UserId(u32::try_from(id).expect("user ids fit in u32"));
            index.insert_checked(names, name, id);
        }
        index
    }

    /// (A sum over the shards: for checks, not for a hot path.)
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.len).sum()
    }

    fn hash(&self, name: &str) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(name)
    }

    /// The shard of a name's hash. From bits the tables do not use: a shard's groups are
    /// chosen by the low 32 bits, so a shard chosen by them would leave its groups'
    /// homes alike.
    #[inline]
    fn shard(&self, hash: u64) -> &IndexShard {
        &self.shards[(hash >> 32) as usize & (USER_INDEX_SHARDS - 1)]
    }

    #[inline]
    fn shard_mut(&mut self, hash: u64) -> &mut IndexShard {
        &mut self.shards[(hash >> 32) as usize & (USER_INDEX_SHARDS - 1)]
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
        self.shard(hash)
            .find(hash as u32, |id| *names[id.0 as usize] == *name)
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

    /// Asks the cache for the group where a look-up of `name` starts ([`super::prefetch`]).
    #[inline]
    pub(crate) fn prefetch(&self, name: &str) {
        let hash = self.hash(name);
        let shard = self.shard(hash);
        super::prefetch::hint(&shard.groups[shard.home(hash as u32)]);
    }

    /// Files a name read from a state (a restore), checking it is not there yet: a state
    /// naming a user twice stops the process. `names[id]` is `name`.
    fn insert_checked(&mut self, names: &CowVec<UserName, USER_CHUNK>, name: &str, id: UserId) {
        let hash = self.hash(name);
        assert!(
            self.get_hashed(names, name, hash).is_none(),
            "a user is interned once: {name:?}"
        );
        self.shard_mut(hash).insert(entry_of(hash as u32, id));
    }

    /// Files the user `id` the caller has just looked up by name and not found (`hash`
    /// is what the look-up gave). Perf: no second probe for the name, only for a free
    /// entry, and no second hash of it; `check_invariants` checks that every name maps to
    /// its own id.
    fn insert_new(&mut self, id: UserId, hash: NameHash) {
        let hash = hash.0;
        self.shard_mut(hash).insert(entry_of(hash as u32, id));
    }

    /// The most users one shard holds (the largest table an insert may have to grow).
    #[cfg(test)]
    pub(crate) fn shard_len_max(&self) -> usize {
        self.shards.iter().map(|shard| shard.len).max().unwrap_or(0)
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
