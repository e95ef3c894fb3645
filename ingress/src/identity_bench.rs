//! What `benches/src/bin/identity.rs` measures (not part of the API): the steps that turn
//! a request's bearer token into the pseudonym it acts as (`extract::UserId`), for a user
//! this ingress has not seen (every cache missed) and for one it has. A crowd's first
//! requests pay the first kind: on the HTTP thread, before anything is appended.

use crate::accounts::Accounts;
use crate::auth::{mint_user_token, Auth};
use crate::personal_data::PersonalData;
use crate::privacy::{Pseudonyms, TokenScope};
use std::time::Instant;

/// Nanoseconds per call of each step, over `users` users.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct IdentitySteps {
    /// A token not verified before: its signature, claims and the cache's insert.
    pub token_new_ns: f64,
    /// A token verified before (the cache's look-up).
    pub token_known_ns: f64,
    /// A new user's pseudonym (an HMAC: only an erased identity's later generation is kept).
    pub pseudonym_new_ns: f64,
    /// A user's pseudonym again (the same HMAC).
    pub pseudonym_known_ns: f64,
    /// Sealing a new user's entry of the personal-data store (ChaCha20-Poly1305 under a
    /// fresh key).
    pub seal_ns: f64,
    /// Whether the personal-data store holds a pseudonym (one it does not: RocksDB).
    pub stored_ns: f64,
    /// The same as a new user's request asks it: the filter of held pseudonyms
    /// (`stored_filter`), which answers "no" without the queued entries or RocksDB.
    pub knows_new_ns: f64,
    /// A new user's entry queued for the next commit (`remember_unsynced`: sealed, the
    /// filter told, kept pending), while up to 9,999 others wait, as behind a stalled
    /// commit (below the pending entries' bound, so no write is timed).
    pub remember_new_ns: f64,
    /// A returning user's whole identity as it was found until session 35: the token's
    /// cache, then the pseudonym (kept until session 55, derived since), then the
    /// personal-data store's known pseudonyms.
    pub returning_three_ns: f64,
    /// The same as it is found now: the pseudonym kept with the verified token
    /// ([`Auth::acted_as`]; the request then checks it is not erased).
    pub returning_kept_ns: f64,
}

/// See [`IdentitySteps`]; the personal-data store is a RocksDB in `dir`.
#[doc(hidden)]
pub fn identity_steps_bench(users: usize, dir: &std::path::Path) -> IdentitySteps {
    let secret = crate::config::DEVELOPMENT_USER_TOKEN_SECRET;
    let names: Vec<String> = (0..users).map(|user| format!("buyer-{user}")).collect();
    let tokens: Vec<String> = names
        .iter()
        .map(|name| mint_user_token(secret, name, 3_600))
        .collect();
    let time = |step: &mut dyn FnMut(usize)| {
        let started = Instant::now();
        (0..users).for_each(&mut *step);
        started.elapsed().as_nanos() as f64 / users as f64
    };
    let auth = Auth::new(Vec::new(), String::new(), secret);
    let accounts = Accounts::default();
    let token_new_ns = time(&mut |user| {
        std::hint::black_box(auth.user(&tokens[user], &accounts).expect("valid"));
    });
    let token_known_ns = time(&mut |user| {
        std::hint::black_box(auth.user(&tokens[user], &accounts).expect("valid"));
    });
    let pseudonyms = Pseudonyms::new(crate::config::DEVELOPMENT_PSEUDONYM_KEY);
    let mut derived = Vec::with_capacity(users);
    let pseudonym_new_ns = time(&mut |user| {
        derived.push(
            pseudonyms
                .current(TokenScope::Deployment, &names[user], |_| false)
                .expect("not erased"),
        );
    });
    let pseudonym_known_ns = time(&mut |user| {
        std::hint::black_box(pseudonyms.current(TokenScope::Deployment, &names[user], |_| false));
    });
    let seal_ns = time(&mut |user| {
        std::hint::black_box(crate::personal_data::seal(&derived[user], &names[user]));
    });
    let store = PersonalData::open(dir).expect("a personal-data store");
    let stored_ns = time(&mut |user| {
        std::hint::black_box(store.stored(&derived[user]).expect("readable"));
    });
    let knows_new_ns = time(&mut |user| {
        assert!(!store.knows(&derived[user]).expect("readable"));
    });
    let remember = |user: usize| {
        store
            .remember_unsynced(&derived[user], &names[user])
            .expect("remembered");
    };
    // Timed below the pending entries' bound, where the queue's write would be timed too.
    let queued = users.min(crate::personal_data::PENDING_MAX - 1);
    let started = Instant::now();
    (0..queued).for_each(remember);
    let remember_new_ns = started.elapsed().as_nanos() as f64 / queued.max(1) as f64;
    (queued..users).for_each(remember);
    // A kept pseudonym, then the store's known pseudonyms.
    let the_long_way = |sub: &str| {
        let pseudonym = pseudonyms
            .current(TokenScope::Deployment, sub, |_| false)
            .expect("not erased");
        store.remember_unsynced(&pseudonym, sub).expect("known");
        pseudonym
    };
    let returning_three_ns = time(&mut |user| {
        let verified = auth.user(&tokens[user], &accounts).expect("valid");
        std::hint::black_box(the_long_way(verified.sub()));
    });
    for user in 0..users {
        let verified = auth.user(&tokens[user], &accounts).expect("valid");
        auth.acted_as(&verified, &derived[user]);
    }
    let returning_kept_ns = time(&mut |user| {
        let verified = auth.user(&tokens[user], &accounts).expect("valid");
        // As a request does: a token the cache no longer keeps (more users than its
        // bound) finds its pseudonym the long way, and keeps it again.
        let pseudonym = verified.acted_as().map(str::to_string).unwrap_or_else(|| {
            let pseudonym = the_long_way(verified.sub());
            auth.acted_as(&verified, &pseudonym);
            pseudonym
        });
        std::hint::black_box(pseudonym);
    });
    IdentitySteps {
        returning_three_ns,
        returning_kept_ns,
        token_new_ns,
        token_known_ns,
        pseudonym_new_ns,
        pseudonym_known_ns,
        seal_ns,
        stored_ns,
        knows_new_ns,
        remember_new_ns,
    }
}
