//! Engine configuration. Every replica must apply the log with the same
//! configuration, or they diverge; the shell loads it from one file.

use crate::ids::{ShardPlace, SHARDS_MAX};

/// Limits and policies. Times are log time in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Secret from which ticket codes are derived (HMAC-SHA256), so every replica
    /// computes the same codes and nobody without it can forge one.
    pub ticket_secret: Vec<u8>,
    /// How long past `expires_at` a confirm is still accepted.
    pub confirm_grace_ms: u64,
    /// How long a repeated idempotency key returns the first answer (the contract's 24 h).
    /// The engine keeps keys only for `idempotency_engine_window_ms`; the ingress's
    /// durable index answers repeats for this long.
    pub idempotency_window_ms: u64,
    /// How long the engine itself remembers a key (log time): long enough for a retry that
    /// reaches the log before the ingress has indexed the first answer (the outcome
    /// follower's lag plus a write's time in the append queue), short enough that the
    /// state stays small at any throughput.
    pub idempotency_engine_window_ms: u64,
    /// At most this many idempotency entries are kept; past it the oldest go first.
    pub idempotency_entries_max: usize,
    /// How long an ended hold is remembered (so a late confirm says `hold_expired`).
    pub ended_hold_retention_ms: u64,
    pub ended_holds_max: usize,
    /// Waiters per event.
    pub waitlist_length_max: u32,
    /// How long a waiter may wait before its entry ends.
    pub waitlist_wait_max_ms: u64,
    /// Live waitlist entries one user may have per event, so one user cannot fill a
    /// queue (or the event's `waitlist_length_max`) alone.
    pub waiters_per_user_max: u32,
    /// Open desk tickets (live, their slot not yet over) one user may have per desk.
    pub desk_tickets_per_user_max: u32,
    /// Hard cap on any event's `seats_per_order_max`.
    pub seats_per_order_cap: u32,
    pub hold_ttl_min_ms: u64,
    pub hold_ttl_max_ms: u64,
    pub events_max: u32,
    pub event_seats_max: u32,
    pub event_rows_max: u32,
    pub event_categories_max: u32,
    pub pool_capacity_max: u32,
    /// Longest accepted text field (names, labels, payment references, keys).
    pub text_bytes_max: usize,
    pub desks_max: u32,
    pub desk_slots_max: u64,
    /// Which shard of the deployment this engine runs: it gives out only ids of that
    /// shard and knows no other (see `ids`). `{0, 1}`: the one shard, ids as always.
    pub shard: ShardPlace,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            ticket_secret: b"demo-ticket-secret".to_vec(),
            confirm_grace_ms: 5_000,
            idempotency_window_ms: 24 * 3_600_000,
            idempotency_engine_window_ms: 300_000,
            idempotency_entries_max: 2_000_000,
            ended_hold_retention_ms: 24 * 3_600_000,
            ended_holds_max: 2_000_000,
            waitlist_length_max: 200_000,
            waitlist_wait_max_ms: 3_600_000,
            waiters_per_user_max: 4,
            desk_tickets_per_user_max: 4,
            seats_per_order_cap: 100,
            hold_ttl_min_ms: 1_000,
            hold_ttl_max_ms: 7_200_000,
            events_max: 1_000_000,
            event_seats_max: 1_000_000,
            event_rows_max: 100_000,
            event_categories_max: 64,
            pool_capacity_max: 10_000_000,
            text_bytes_max: 1_024,
            desks_max: 100_000,
            desk_slots_max: 1_000_000,
            shard: ShardPlace::default(),
        }
    }
}

const _: () = assert!(u16::MAX as u64 >= 64, "category indices are u16");

/// Log time is clamped to this (about 146 million years after 1970), so adding any
/// duration the engine accepts to the clock can never overflow a u64.
/// (Fix: a record stamped near `u64::MAX` used to overflow `now + hold_ttl` and friends.)
pub const TIME_MS_MAX: u64 = u64::MAX / 4;
/// The longest duration a configuration or a desk spec may name.
pub const DURATION_MS_MAX: u64 = u64::MAX / 16;
const _: () = assert!(
    TIME_MS_MAX as u128 + 4 * DURATION_MS_MAX as u128 <= u64::MAX as u128,
    "time plus durations fits a u64"
);

impl EngineConfig {
    /// Whether the engine can run with this configuration; the reason, naming the key,
    /// when not. Shells check it when they load their settings; `Engine::new` and
    /// `Engine::from_state` refuse (panic) a configuration that fails it.
    pub fn validate(&self) -> Result<(), String> {
        if !self.durations_are_bounded() {
            return Err(format!(
                "engine.confirm_grace_ms, engine.hold_ttl_max_ms and engine.waitlist_wait_max_ms must be at most {DURATION_MS_MAX}"
            ));
        }
        if self.event_seats_max > crate::engine::EVENT_SEATS_LIMIT {
            return Err(format!(
                "engine.event_seats_max must be at most {} (a held seat names its hold's slot in 30 bits)",
                crate::engine::EVENT_SEATS_LIMIT
            ));
        }
        let ShardPlace { index, count } = self.shard;
        if count == 0 || count > SHARDS_MAX {
            return Err(format!(
                "shards is {count}: a deployment has from 1 to {SHARDS_MAX} shards"
            ));
        }
        if index >= count {
            return Err(format!(
                "engine.shard is {index} but shards is {count}: shards are numbered from 0 to {}",
                count - 1
            ));
        }
        // Event and desk ids are u32: the last row of the last shard must have one.
        let id_space = u64::from(u32::MAX) + 1;
        for (key, max) in [
            ("events_max", self.events_max),
            ("desks_max", self.desks_max),
        ] {
            if u64::from(max) * u64::from(count) > id_space {
                return Err(format!(
                    "engine.{key} ({max}) times shards ({count}) must be at most {id_space}: every shard's ids must fit a u32"
                ));
            }
        }
        Ok(())
    }

    /// Durations that are added to the clock are bounded by `DURATION_MS_MAX`.
    pub fn durations_are_bounded(&self) -> bool {
        [
            self.confirm_grace_ms,
            self.hold_ttl_max_ms,
            self.waitlist_wait_max_ms,
        ]
        .iter()
        .all(|&duration| duration <= DURATION_MS_MAX)
    }
}

/// The configuration a state was applied with, key by key, as printable values (secrets
/// as a digest, never the secret). A state records it and carries it into every
/// snapshot, so a replica started with another configuration is refused with the key
/// that differs ([`ConfigStamp::first_difference`]) instead of silently deciding
/// differently from the log's history.
pub type ConfigStamp = std::collections::BTreeMap<String, String>;

/// A key whose configured value differs from the one a state was applied with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigMismatch {
    pub key: String,
    /// The value the log (a snapshot's state or a `Configure` record) was applied with
    /// (`None`: it predates the key).
    pub applied: Option<String>,
    pub configured: Option<String>,
}

impl std::fmt::Display for ConfigMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |value: &Option<String>| value.clone().unwrap_or_else(|| "unset".into());
        write!(
            f,
            "engine.{} is {} here but the log was applied with {}: every replica must apply the log with the configuration it was applied with (see ARCHITECTURE.md, \"Configuration is part of the history\")",
            self.key,
            show(&self.configured),
            show(&self.applied)
        )
    }
}

impl EngineConfig {
    /// Every key that decides outcomes, with its value (secrets as a digest).
    pub fn stamp(&self) -> ConfigStamp {
        let secret = |bytes: &[u8]| {
            let digest = blake3::hash(bytes);
            format!("blake3:{}", &digest.to_hex()[..16])
        };
        let EngineConfig {
            ticket_secret,
            confirm_grace_ms,
            idempotency_window_ms,
            idempotency_engine_window_ms,
            idempotency_entries_max,
            ended_hold_retention_ms,
            ended_holds_max,
            waitlist_length_max,
            waitlist_wait_max_ms,
            waiters_per_user_max,
            desk_tickets_per_user_max,
            seats_per_order_cap,
            hold_ttl_min_ms,
            hold_ttl_max_ms,
            events_max,
            event_seats_max,
            event_rows_max,
            event_categories_max,
            pool_capacity_max,
            text_bytes_max,
            desks_max,
            desk_slots_max,
            shard,
        } = self;
        // Destructured above so a new field cannot be forgotten here.
        // The shard is stamped only when there are several, so a single-shard state (its
        // snapshots, its state hash) is exactly what it was before shards existed; a
        // replica of one shard started on another shard's log or snapshot is refused by
        // the stamp checks, naming `shard`.
        let shard =
            (shard.count > 1).then(|| ("shard", format!("{}/{}", shard.index, shard.count)));
        [
            ("ticket_secret", secret(ticket_secret)),
            ("confirm_grace_ms", confirm_grace_ms.to_string()),
            ("idempotency_window_ms", idempotency_window_ms.to_string()),
            (
                "idempotency_engine_window_ms",
                idempotency_engine_window_ms.to_string(),
            ),
            (
                "idempotency_entries_max",
                idempotency_entries_max.to_string(),
            ),
            (
                "ended_hold_retention_ms",
                ended_hold_retention_ms.to_string(),
            ),
            ("ended_holds_max", ended_holds_max.to_string()),
            ("waitlist_length_max", waitlist_length_max.to_string()),
            ("waitlist_wait_max_ms", waitlist_wait_max_ms.to_string()),
            ("waiters_per_user_max", waiters_per_user_max.to_string()),
            (
                "desk_tickets_per_user_max",
                desk_tickets_per_user_max.to_string(),
            ),
            ("seats_per_order_cap", seats_per_order_cap.to_string()),
            ("hold_ttl_min_ms", hold_ttl_min_ms.to_string()),
            ("hold_ttl_max_ms", hold_ttl_max_ms.to_string()),
            ("events_max", events_max.to_string()),
            ("event_seats_max", event_seats_max.to_string()),
            ("event_rows_max", event_rows_max.to_string()),
            ("event_categories_max", event_categories_max.to_string()),
            ("pool_capacity_max", pool_capacity_max.to_string()),
            ("text_bytes_max", text_bytes_max.to_string()),
            ("desks_max", desks_max.to_string()),
            ("desk_slots_max", desk_slots_max.to_string()),
        ]
        .into_iter()
        .chain(shard)
        .map(|(key, value)| (key.to_string(), value))
        .collect()
    }
}

/// The first key (in key order) whose value differs between a state's stamp and a
/// configuration's, if any.
pub fn first_difference(applied: &ConfigStamp, configured: &ConfigStamp) -> Option<ConfigMismatch> {
    applied
        .keys()
        .chain(configured.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .find(|key| applied.get(*key) != configured.get(*key))
        .map(|key| ConfigMismatch {
            key: key.clone(),
            applied: applied.get(key).cloned(),
            configured: configured.get(key).cloned(),
        })
}
