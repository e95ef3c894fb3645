//! Users interned to dense ids, in the order the log first gives them state (a hold, a
//! booking or a waitlist entry): every replica assigns the same ids. The state keeps the
//! names by id (`State::users`, copy-on-write chunks, so a snapshot copy stays cheap);
//! holds, bookings, waiters and the per-user counters keep the 4-byte id, so the hot
//! paths compare integers instead of names and store no name per hold.
//!
//! The name → id index is derived data: it lives in the [`Engine`], not in the
//! replicated state, and [`Engine::from_state`] rebuilds it. It is a hash map that is
//! only ever looked up, never iterated, so it cannot leak an order into anything.

use super::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A user's dense id: its index in `State::users`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) struct UserId(pub(crate) u32);

/// Name → id, for the users in `State::users`. Names are chosen outside (an identity
/// provider), so the hasher is seeded per process (no chosen-collision flood), and fast
/// (foldhash rather than SipHash: this lookup runs for nearly every command).
/// Perf: the keys are the state's own shared names, not copies: interning allocates the
/// name once, and the look-up's comparison brings into cache the very name an outcome
/// then shares ([`Engine::user_entry`]).
#[derive(Default)]
pub(crate) struct UserIndex(HashMap<UserName, UserId, foldhash::fast::RandomState>);

impl UserIndex {
    pub(crate) fn of(names: &CowVec<UserName, USER_CHUNK>) -> UserIndex {
        let mut index =
            HashMap::with_capacity_and_hasher(names.len(), foldhash::fast::RandomState::default());
        for (id, name) in names.iter().enumerate() {
            let id = UserId(u32::try_from(id).expect("user ids fit in u32"));
            let previous = index.insert(name.clone(), id);
            assert!(previous.is_none(), "a user is interned once: {name:?}");
        }
        UserIndex(index)
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

impl Engine {
    /// The user's id if the user has ever had state here.
    pub(crate) fn user_id(&self, name: &str) -> Option<UserId> {
        self.users.0.get(name).copied()
    }

    /// The user's id and shared name if the user has ever had state here.
    pub(crate) fn user_entry(&self, name: &str) -> Option<(UserId, UserName)> {
        self.users
            .0
            .get_key_value(name)
            .map(|(shared, id)| (*id, shared.clone()))
    }

    /// The user's id, assigned now (the next dense id) if the user is new.
    pub(super) fn intern_user(&mut self, name: &str) -> UserId {
        match self.user_id(name) {
            Some(id) => id,
            None => self.intern_new_user(name).0,
        }
    }

    /// Interns a user the caller has just looked up and not found, with its shared name
    /// for an outcome. Perf: no second look-up (the index's insert asserts the name new).
    pub(super) fn intern_new_user(&mut self, name: &str) -> (UserId, UserName) {
        let id = UserId(u32::try_from(self.state.users.len()).expect("fewer than 2^32 users"));
        let name = UserName::from(name);
        self.state.users.push(name.clone());
        let previous = self.users.0.insert(name.clone(), id);
        assert!(previous.is_none(), "a user is interned once: {name:?}");
        debug_assert_eq!(self.users.len(), self.state.users.len());
        (id, name)
    }

    pub(crate) fn user_name(&self, id: UserId) -> &str {
        &self.state.users[id.0 as usize]
    }

    /// The user's name to put in an outcome: shared, not copied.
    pub(crate) fn user_shared(&self, id: UserId) -> UserName {
        self.state.users[id.0 as usize].clone()
    }
}
