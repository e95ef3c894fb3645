//! The engine as the operator endpoints see it. `boxoffice serve` wires this to the engine
//! runtime running in the same process; an ingress alone (Kafka mode) has none, and the
//! operator endpoints then answer 503.

/// Status and promotion of the engine runtime next to this ingress.
pub trait EngineControl: Send + Sync {
    /// `None` while the engine cannot tell (starting, or not in this process).
    fn status(&self) -> Option<EngineStatus>;

    /// Promotes a standby to primary. The error is a sentence for the operator (for
    /// example "already primary").
    fn promote(&self) -> Result<(), String>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineRole {
    Primary,
    Standby,
}

impl EngineRole {
    pub fn name(self) -> &'static str {
        match self {
            EngineRole::Primary => "primary",
            EngineRole::Standby => "standby",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineStatus {
    pub role: EngineRole,
    /// Offset of the last request the engine applied.
    pub applied_offset: Option<u64>,
    /// End offset of the requests log.
    pub log_end_offset: u64,
    pub last_snapshot: Option<SnapshotStatus>,
    /// Hex digest of the engine state (`Engine::state_hash_hex`) as of `state_hash_offset`.
    pub state_hash: String,
    /// The last applied offset `state_hash` is of: the runtime hashes at idle moments,
    /// snapshots and start, so the hash can lag `applied_offset`. `None`: nothing applied.
    pub state_hash_offset: Option<u64>,
    /// Set when the engine runtime has stopped on a failure (the reason, a sentence): it
    /// applies and publishes nothing more, and readiness says so.
    pub failure: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotStatus {
    /// The last request offset the snapshot includes.
    pub offset: u64,
    pub at_ms: u64,
}
