//! The engine as the ingress sees it. `boxoffice serve` wires this to the engine runtime
//! running in the same process, whose failure readiness reports at once; an ingress alone
//! (Kafka mode) has none. The engine's operator endpoints (`/v1/admin/engine`, promotion)
//! are not the ingress's: one operator router in the `boxoffice` binary
//! (`boxoffice/src/operator_http.rs`) serves them in `serve` and in `engine`, in the
//! shapes this crate's OpenAPI document gives (`EngineStatusResponse`, `PromoteResponse`).

/// The engine runtime next to this ingress.
pub trait EngineControl: Send + Sync {
    /// Set when the engine runtime has stopped on a failure (the reason, a sentence): it
    /// applies and publishes nothing more, and readiness says so.
    fn failure(&self) -> Option<String>;

    /// The outcomes its publisher appended last, which the outcome follower takes instead
    /// of decoding the records it reads (`engine::wire::OutcomeAssembler::push_at_known`).
    /// `None`: the follower decodes everything.
    fn recent_outcomes(&self) -> Option<engine::wire::SharedRecentOutcomes> {
        None
    }
}
