//! The effects worker next to this ingress (`boxoffice serve`), for the delivery log and
//! manual re-sends of `/v1/admin/webhooks/{id}/deliveries`, and its metrics on `/metrics`. The worker keeps both in its
//! own store, so an ingress without one in its process (Kafka mode) answers 503
//! `no_effects_worker` there.

use serde::Serialize;
use utoipa::ToSchema;

pub trait EffectsControl: Send + Sync {
    /// Endpoint `webhook`'s newest messages, newest first, at most `limit`.
    fn deliveries(&self, webhook: &str, limit: usize) -> Result<Vec<WebhookDelivery>, String>;
    /// Queues message `message_id` for endpoint `webhook` again (same id, same body), after
    /// what it already waits to send. False when the worker no longer holds the message.
    fn resend(&self, webhook: &str, message_id: &str) -> Result<bool, String>;
    /// The worker's metrics in the OpenMetrics text format without its `# EOF` line:
    /// `/metrics` writes them before its own.
    fn metrics_text(&self) -> String;
    /// Whose endpoint `webhook` is, as the worker's control follower has it (`None`:
    /// unknown or deleted).
    fn tenant_of(&self, webhook: &str) -> Option<String>;
}

/// One message to one endpoint and its attempts.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct WebhookDelivery {
    /// The `webhook-id` header: `msg_<shard>_<log offset>_<index>`, the same on every
    /// attempt and re-send (receivers deduplicate by it).
    pub message_id: String,
    pub event_type: String,
    /// `pending` (waiting for its turn or its next attempt), `delivered` (a 2xx came).
    pub status: String,
    /// When the event happened (the engine's log time), RFC 3339.
    pub timestamp: String,
    /// Oldest first.
    pub attempts: Vec<WebhookAttempt>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct WebhookAttempt {
    /// When the attempt started (the worker's clock), RFC 3339.
    pub at: String,
    /// The receiver's HTTP status; `null` when none came (`error` says why).
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
}
