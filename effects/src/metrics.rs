//! The worker's metrics, rendered by `prometheus-client` in the OpenMetrics text format
//! (`serve`'s `/metrics` writes them into the ingress's exposition; `boxoffice effects`
//! serves them alone):
//!
//! - `boxoffice_webhook_deliveries_total{outcome}`: `delivered` (a 2xx), `failed` (an
//!   attempt that got another status or none), `dropped_backlog_full` (a message its
//!   endpoint's full backlog refused);
//! - `boxoffice_webhook_outcomes_routed_total`, `boxoffice_webhook_endpoints_disabled_total`
//!   (by this worker, after sustained failure), since the process started;
//! - `boxoffice_webhook_endpoints{state}`: endpoints `enabled` and `disabled` now;
//! - `boxoffice_webhook_backlog_messages{endpoint}`: messages waiting per endpoint, for the
//!   [`BACKLOG_SERIES_MAX`] with the most (ties by id); the others' are summed under
//!   `endpoint="other"`, so a deployment with thousands of endpoints keeps a bounded
//!   exposition and the series still sum to the whole backlog;
//! - `boxoffice_webhook_oldest_undelivered_age_seconds`: now minus the log time of the
//!   oldest message an enabled endpoint still waits to deliver (0 when none waits).

use crate::worker::WorkerMetrics;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

/// Endpoints with a backlog series of their own.
pub const BACKLOG_SERIES_MAX: usize = 20;
/// The label value the other endpoints' backlogs are summed under (no endpoint id is
/// `other`: ids are `wh_…`).
pub const OTHER_ENDPOINTS: &str = "other";

/// What one scrape reads.
pub struct Snapshot<'a> {
    pub counters: &'a WorkerMetrics,
    /// Every endpoint and whether it is enabled.
    pub endpoints: Vec<(String, bool)>,
    /// Messages waiting per endpoint (endpoints with none may be absent).
    pub backlog: BTreeMap<String, u64>,
    pub oldest_undelivered_age_ms: u64,
}

type Labels = Vec<(&'static str, String)>;

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The exposition without its closing `# EOF` line.
pub fn render(snapshot: &Snapshot<'_>) -> String {
    let mut registry = Registry::with_prefix("boxoffice_webhook");
    let counter = |value: &std::sync::atomic::AtomicU64| {
        let counter = Counter::<u64>::default();
        counter.inc_by(value.load(Ordering::Relaxed));
        counter
    };
    let deliveries = Family::<Labels, Counter>::default();
    for (outcome, value) in [
        ("delivered", &snapshot.counters.delivered),
        ("failed", &snapshot.counters.failed_attempts),
        (
            "dropped_backlog_full",
            &snapshot.counters.dropped_backlog_full,
        ),
    ] {
        deliveries
            .get_or_create(&vec![("outcome", outcome.to_string())])
            .inc_by(value.load(Ordering::Relaxed));
    }
    registry.register(
        "deliveries",
        "Webhook messages by outcome: delivered (a 2xx), failed attempts, dropped (backlog full)",
        deliveries,
    );
    registry.register(
        "outcomes_routed",
        "Outcomes the worker routed into endpoints' backlogs",
        counter(&snapshot.counters.outcomes_routed),
    );
    registry.register(
        "endpoints_disabled",
        "Endpoints this worker disabled after sustained failure",
        counter(&snapshot.counters.disabled),
    );
    let endpoints = Family::<Labels, Gauge>::default();
    for (state, enabled) in [("enabled", true), ("disabled", false)] {
        let count = snapshot
            .endpoints
            .iter()
            .filter(|(_, is)| *is == enabled)
            .count();
        endpoints
            .get_or_create(&vec![("state", state.to_string())])
            .set(saturating_i64(count as u64));
    }
    registry.register(
        "endpoints",
        "Webhook endpoints, enabled and disabled",
        endpoints,
    );
    let backlog = Family::<Labels, Gauge>::default();
    let mut lanes: BTreeMap<&str, u64> = snapshot
        .endpoints
        .iter()
        .map(|(endpoint, _)| (endpoint.as_str(), 0))
        .collect();
    for (endpoint, waiting) in &snapshot.backlog {
        lanes.insert(endpoint, *waiting);
    }
    let mut by_size: Vec<(&str, u64)> = lanes.into_iter().collect();
    by_size.sort_by(|left, right| right.1.cmp(&left.1).then(left.0.cmp(right.0)));
    let others = by_size.split_off(by_size.len().min(BACKLOG_SERIES_MAX));
    for (endpoint, waiting) in &by_size {
        backlog
            .get_or_create(&vec![("endpoint", endpoint.to_string())])
            .set(saturating_i64(*waiting));
    }
    if !others.is_empty() {
        backlog
            .get_or_create(&vec![("endpoint", OTHER_ENDPOINTS.to_string())])
            .set(saturating_i64(
                others.iter().map(|(_, waiting)| waiting).sum(),
            ));
    }
    registry.register(
        "backlog_messages",
        "Messages waiting per endpoint (the largest ones; the rest under endpoint=\"other\")",
        backlog,
    );
    let age = Gauge::<i64>::default();
    age.set(saturating_i64(snapshot.oldest_undelivered_age_ms / 1000));
    registry.register(
        "oldest_undelivered_age_seconds",
        "Now minus the log time of the oldest message an enabled endpoint waits to deliver",
        age,
    );
    let mut text = String::new();
    // Writing into a String cannot fail; an encoder error would be a bug in a label.
    if let Err(error) = prometheus_client::encoding::text::encode_registry(&mut text, &registry) {
        tracing::error!(%error, "the webhook metrics could not be encoded");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_with(endpoints: usize, backlog: &[(&str, u64)]) -> String {
        let counters = WorkerMetrics::default();
        counters.delivered.store(7, Ordering::Relaxed);
        counters.failed_attempts.store(2, Ordering::Relaxed);
        render(&Snapshot {
            counters: &counters,
            endpoints: (0..endpoints)
                .map(|index| (format!("wh_{index:02}"), index != 1))
                .collect(),
            backlog: backlog
                .iter()
                .map(|(endpoint, waiting)| (endpoint.to_string(), *waiting))
                .collect(),
            oldest_undelivered_age_ms: 61_500,
        })
    }

    #[test]
    fn counts_outcomes_endpoints_backlogs_and_the_oldest_age() {
        let text = render_with(2, &[("wh_00", 3)]);
        for expected in [
            "boxoffice_webhook_deliveries_total{outcome=\"delivered\"} 7\n",
            "boxoffice_webhook_deliveries_total{outcome=\"failed\"} 2\n",
            "boxoffice_webhook_deliveries_total{outcome=\"dropped_backlog_full\"} 0\n",
            "boxoffice_webhook_endpoints{state=\"enabled\"} 1\n",
            "boxoffice_webhook_endpoints{state=\"disabled\"} 1\n",
            "boxoffice_webhook_backlog_messages{endpoint=\"wh_00\"} 3\n",
            "boxoffice_webhook_backlog_messages{endpoint=\"wh_01\"} 0\n",
            "boxoffice_webhook_oldest_undelivered_age_seconds 61\n",
        ] {
            assert!(text.contains(expected), "no {expected} in\n{text}");
        }
        assert!(!text.contains("# EOF"), "written into another exposition");
        assert!(!text.contains("{endpoint=\"other\"}"), "{text}");
    }

    /// Past the cap, the largest backlogs keep their series and the rest are summed.
    #[test]
    fn backlog_series_are_capped_and_the_rest_summed() {
        let endpoints = BACKLOG_SERIES_MAX + 5;
        let text = render_with(endpoints, &[("wh_24", 100), ("wh_23", 50), ("wh_22", 1)]);
        let series = text
            .lines()
            .filter(|line| line.starts_with("boxoffice_webhook_backlog_messages{"))
            .count();
        assert_eq!(series, BACKLOG_SERIES_MAX + 1);
        for expected in [
            "{endpoint=\"wh_24\"} 100\n",
            "{endpoint=\"wh_23\"} 50\n",
            "{endpoint=\"wh_22\"} 1\n",
            // The zero backlogs of the highest ids are the ones summed.
            "{endpoint=\"other\"} 0\n",
        ] {
            assert!(text.contains(expected), "no {expected} in\n{text}");
        }
        assert!(!text.contains("wh_21"), "{text}");
    }
}
