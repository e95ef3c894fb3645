//! The Boxoffice engine: a pure, deterministic, single-writer booking state machine.
//!
//! Input is `(log offset, log time, Request)`; output is exactly one [`Outcome`] per
//! request, with the consequences it caused (expired holds, waitlist offers) as
//! [`Effect`]s. There is no I/O, no thread, no wall clock, no randomness and no
//! hash-map iteration whose order could leak out (hash maps are looked up, and encoded
//! sorted by key): the same log gives the same outcomes and the same
//! [`Engine::state_hash`] on every machine. The shell crates (`runtime`, `ingress`)
//! do all I/O and drive time with `Tick` records.
//!
//! An engine runs one shard of a deployment (`EngineConfig::shard`, a [`ShardPlace`]):
//! every id it gives out says that shard (`id mod shards`, see [`ids`]), so any crate
//! routes an id with [`shard_of`] alone, and an id of another shard is "not found" here.
//! With one shard (the default) ids, outcomes, snapshots and state hashes are exactly what
//! they were before shards existed.
//!
//! Layout:
//! - [`command`]: what can be asked ([`Request`], [`Command`], specs).
//! - [`outcome`]: what is answered ([`Outcome`], [`Reply`], [`Rejection`], [`Effect`]);
//!   [`seat_list`]: a hold's or booking's seats, inline when few.
//! - `engine`: [`Engine::apply`] and the one `match` that dispatches a command; its
//!   submodules each own one part: `state` (the replicated [`State`]),
//!   `clock` (time and timers), `events`, `holds`, `bookings`, `waitlist`, `draws`, `users` (user
//!   names interned to dense ids in log order), `idempotency_window` (the answered keys).
//! - [`ledger`]: seat accounting, the one implementation ([`ledger::SeatLedger`]: per-seat
//!   tags, hold slots, counts per category, pool and row, and the four transitions hold,
//!   release, book, unbook), and the waitlist queues ([`ledger::WaitQueues`]: join,
//!   leave), which the engine asserts and the ingress's read model applies outcomes
//!   through; `seat_bits`: the ledger's derived free-seat and booked-seat bitmasks and
//!   rows-with-k-free sets (best available and open runs in a few word operations).
//! - `allocate`: best-available seat search; `desk`: service-desk slots.
//! - [`draw`]: an arrival window's draw (commit–reveal, the keyed order, the fallback
//!   seed), pure functions anyone can use to recompute a published draw; the engine's
//!   `draws` submodule applies them.
//! - [`layout`]: seat maps flattened to dense seat indices, shared with the read side.
//! - [`wire`]: the versioned log record format; [`tickets`]: ticket codes (derived and
//!   verified by the read side; the engine checks them only for old by-code check-ins).
//! - `control`: the control log's records; [`webhook`]: webhook endpoints as those
//!   records define them (the registry, event types, the SSRF address rule);
//!   [`messages`]: what an outcome tells the outside world (webhook bodies and ids, and
//!   each user's share of them for the notifications API).
//! - [`idempotency`]: key scopes and request fingerprints ([`IdempotencyStamp`]).
//! - [`ids`]: ids, their string forms and the shard they say ([`ShardPlace`]); the
//!   engine's `event_index`, `booking_index` and `desk_index` are the one translation
//!   from an id to a table row.
//! - `invariants`: the full state walk behind [`Engine::check_invariants`].
//! - [`spec_rules`]: every rule about the values of an event's spec and of a patch, one
//!   table for the engine (`Invalid`), the ingress (400s naming the JSON field) and
//!   loadgen.
//! - [`terms`]: an event's terms of sale (currency, cancellation policy), validated in one
//!   place for the ingress and the engine.
//! - [`query`]: read-only views used by tests, tools and the read side's bootstrap.
//! - [`snapshot`]: the state's snapshot encoding, and the copy-on-write storage that
//!   keeps `State::clone` cheap for the runtime's snapshot hand-off (`CowVec`); `chunked`:
//!   its ordered map and queue of shared chunks (the idempotency window, waitlist queues).

mod allocate;
pub mod catalog;
pub mod chunked;
pub mod command;
pub mod config;
pub mod control;
mod desk;
pub mod draw;
mod engine;
pub mod idempotency;
pub mod ids;
mod invariants;
pub mod layout;
pub mod ledger;
pub mod messages;
pub mod outcome;
pub mod payment_ref;
pub mod query;
mod seat_bits;
pub mod seat_list;
pub mod snapshot;
pub mod spec_rules;
pub mod terms;
pub mod tickets;
pub mod webhook;
pub mod wire;

pub use command::*;
pub use config::EngineConfig;
pub use desk::Desks;
pub use engine::{Engine, State};
pub use idempotency::{IdempotencyScope, IdempotencyStamp};
pub use ids::*;
pub use outcome::*;
pub use terms::{CancellationPolicy, CancellationRefund, EventTerms};
