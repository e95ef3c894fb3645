//! Metrics on `GET /metrics`, kept and rendered by `prometheus-client` (the Prometheus
//! project's Rust client) in the OpenMetrics text format. Counters and histograms are
//! updated where things happen; gauges (applied offset, lag, live holds) are read from the
//! read model at scrape time.
//!
//! Label values are bounded: `route` is the matched route template (`unmatched` for any
//! other path), `method` one of the standard methods or `other`, `status` a status code.
//! So a client sending random paths or methods cannot grow the exposition.
//!
//! The hot path (one request) takes a read lock on the HTTP family's map (a new series
//! takes its write lock once) and the lock of its own series' histogram: there is no
//! lock every request shares exclusively.

use axum::http::Method;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

/// Upper bounds in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The `Content-Type` of [`Metrics::render`]'s text.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// An HTTP method as a label: the standard ones by name, anything else `other`.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(crate) struct MethodLabel(&'static str);

impl MethodLabel {
    pub(crate) fn of(method: &Method) -> MethodLabel {
        const KNOWN: [Method; 9] = [
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
            Method::CONNECT,
            Method::TRACE,
        ];
        let name = KNOWN
            .iter()
            .find(|known| *known == method)
            .map_or("other", |known| known.as_str());
        MethodLabel(name)
    }
}

impl EncodeLabelValue for MethodLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.0, encoder)
    }
}

/// The labels of the HTTP series, in this order (`loadgen` reads them by name).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: MethodLabel,
    status: u16,
}

pub(crate) struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<HttpLabels, Histogram, fn() -> Histogram>,
    pub(crate) log_append: Histogram,
    /// From a write's record durable to its outcome applied to the read model: the
    /// engine, the outcomes log and the follower (`writes::Pending`). With the append's
    /// and the request's own, says which stage a slow request waited in.
    pub(crate) outcome_after_durable: Histogram,
    pub(crate) log_appended_records: Counter,
    pub(crate) log_append_errors: Counter,
    pub(crate) outcome_timeouts: Counter,
    pub(crate) rate_limited: Counter,
    pub(crate) outcomes_applied: Counter,
    pub(crate) outcomes_replayed: Counter,
    pub(crate) outcomes_duplicate: Counter,
    pub(crate) outcomes_undecodable: Counter,
    pub(crate) outcome_read_errors: Counter,
    pub(crate) idempotency_index_answers: Counter,
    pub(crate) idempotency_index_reused: Counter,
    pub(crate) idempotency_index_errors: Counter,
    gauges: GaugeSet,
}

/// Values read at scrape time.
pub(crate) struct Gauges {
    pub(crate) applied_offset: Option<u64>,
    pub(crate) outcomes_position: u64,
    pub(crate) outcomes_end_offset: u64,
    pub(crate) live_holds: u64,
    pub(crate) live_bookings: u64,
    pub(crate) waiting: u64,
    pub(crate) events: u64,
    pub(crate) pending_writes: u64,
    pub(crate) read_model_anomalies: u64,
}

/// The `shard` label of a per-shard gauge (only with more than one shard).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShardLabel {
    shard: u32,
}

/// A gauge per shard: unlabelled in a single-shard deployment (so its exposition is the
/// one it always had), labelled `shard` otherwise.
#[derive(Clone)]
enum ShardGauge {
    One(Gauge),
    Many(Family<ShardLabel, Gauge>),
}

impl ShardGauge {
    fn new(shards: u32) -> ShardGauge {
        match shards {
            1 => ShardGauge::One(Gauge::default()),
            _ => ShardGauge::Many(Family::default()),
        }
    }

    fn set(&self, shard: u32, value: i64) {
        match self {
            ShardGauge::One(gauge) => {
                gauge.set(value);
            }
            ShardGauge::Many(family) => {
                family.get_or_create(&ShardLabel { shard }).set(value);
            }
        };
    }

    fn register(&self, registry: &mut Registry, name: &str, help: &str) {
        match self {
            ShardGauge::One(gauge) => registry.register(name, help, gauge.clone()),
            ShardGauge::Many(family) => registry.register(name, help, family.clone()),
        };
    }
}

struct GaugeSet {
    applied_offset: ShardGauge,
    outcomes_lag: ShardGauge,
    outcomes_end_offset: ShardGauge,
    live_holds: ShardGauge,
    live_bookings: ShardGauge,
    waiting: ShardGauge,
    events: ShardGauge,
    pending_writes: ShardGauge,
    long_polls: Gauge,
    seat_map_streams: Gauge,
    read_model_anomalies: ShardGauge,
}

impl GaugeSet {
    fn new(shards: u32) -> GaugeSet {
        GaugeSet {
            applied_offset: ShardGauge::new(shards),
            outcomes_lag: ShardGauge::new(shards),
            outcomes_end_offset: ShardGauge::new(shards),
            live_holds: ShardGauge::new(shards),
            live_bookings: ShardGauge::new(shards),
            waiting: ShardGauge::new(shards),
            events: ShardGauge::new(shards),
            pending_writes: ShardGauge::new(shards),
            long_polls: Gauge::default(),
            seat_map_streams: Gauge::default(),
            read_model_anomalies: ShardGauge::new(shards),
        }
    }
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(1)
    }
}

impl Metrics {
    /// The metrics of an ingress of `shards` shards: per-shard gauges are labelled `shard`
    /// when there is more than one.
    pub(crate) fn new(shards: u32) -> Self {
        let mut registry = Registry::default();
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration =
            Family::<HttpLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        // Counters are registered without `_total`: the encoder appends it.
        registry.register(
            "boxoffice_http_requests",
            "HTTP requests answered, by route, method and status",
            http_requests.clone(),
        );
        registry.register(
            "boxoffice_http_request_duration_seconds",
            "HTTP request latency, by route, method and status",
            http_duration.clone(),
        );
        let log_append = latency_histogram();
        registry.register(
            "boxoffice_log_append_duration_seconds",
            "Latency of one durable append (a batch) to the requests log",
            log_append.clone(),
        );
        let outcome_after_durable = latency_histogram();
        registry.register(
            "boxoffice_outcome_after_durable_seconds",
            "From a write's record durable in the requests log to its outcome applied to the read model",
            outcome_after_durable.clone(),
        );
        let mut counter = |name: &str, help: &str| {
            let counter = Counter::default();
            registry.register(name, help, counter.clone());
            counter
        };
        let log_appended_records = counter(
            "boxoffice_log_appended_records",
            "Records appended to the requests log by this ingress",
        );
        let log_append_errors = counter(
            "boxoffice_log_append_errors",
            "Failed appends to the requests log",
        );
        let outcome_timeouts = counter(
            "boxoffice_outcome_timeouts",
            "Writes answered 503 because their outcome did not come in time",
        );
        let rate_limited = counter(
            "boxoffice_rate_limited",
            "Requests refused by a rate limit or a cap on open long-polls and streams",
        );
        let outcomes_applied = counter(
            "boxoffice_outcomes_applied",
            "Outcomes applied to the read model",
        );
        let outcomes_replayed = counter(
            "boxoffice_outcomes_replayed",
            "Replayed (idempotent repeat) outcomes, answered but not re-applied",
        );
        let outcomes_duplicate = counter(
            "boxoffice_outcomes_duplicate",
            "Outcomes dropped because their offset was already applied",
        );
        let outcomes_undecodable = counter(
            "boxoffice_outcomes_undecodable",
            "Outcome records that could not be decoded",
        );
        let outcome_read_errors = counter(
            "boxoffice_outcome_read_errors",
            "Errors reading the outcomes log",
        );
        let idempotency_index_answers = counter(
            "boxoffice_idempotency_index_answers",
            "Repeated keyed requests answered from the idempotency index, not appended",
        );
        let idempotency_index_reused = counter(
            "boxoffice_idempotency_index_reused",
            "Keys reused for another request, refused (422) by the idempotency index",
        );
        let idempotency_index_errors = counter(
            "boxoffice_idempotency_index_errors",
            "Errors reading or writing the idempotency index",
        );
        let gauges = GaugeSet::new(shards);
        for (name, help, gauge) in [
            (
                "boxoffice_read_model_applied_offset",
                "Input offset of the last outcome the read model applied (-1: none)",
                &gauges.applied_offset,
            ),
            (
                "boxoffice_outcomes_lag_records",
                "Outcome records not yet read by the follower",
                &gauges.outcomes_lag,
            ),
            (
                "boxoffice_outcomes_end_offset",
                "End offset of the outcomes log when last checked",
                &gauges.outcomes_end_offset,
            ),
            ("boxoffice_holds_active", "Live holds", &gauges.live_holds),
            (
                "boxoffice_bookings_active",
                "Bookings not canceled",
                &gauges.live_bookings,
            ),
            (
                "boxoffice_waitlist_waiting",
                "Waitlist entries waiting",
                &gauges.waiting,
            ),
            (
                "boxoffice_events",
                "Events known to the read model",
                &gauges.events,
            ),
            (
                "boxoffice_pending_writes",
                "Writes waiting for their outcome",
                &gauges.pending_writes,
            ),
            (
                "boxoffice_read_model_anomalies",
                "Outcomes that did not fit the read model (should be 0)",
                &gauges.read_model_anomalies,
            ),
        ] {
            gauge.register(&mut registry, name, help);
        }
        registry.register(
            "boxoffice_long_polls",
            "Long-polls waiting for a change (waitlist entries and users watched)",
            gauges.long_polls.clone(),
        );
        registry.register(
            "boxoffice_seat_map_streams",
            "Seat-map streams (server-sent events) open",
            gauges.seat_map_streams.clone(),
        );
        Metrics {
            registry,
            http_requests,
            http_duration,
            log_append,
            outcome_after_durable,
            log_appended_records,
            log_append_errors,
            outcome_timeouts,
            rate_limited,
            outcomes_applied,
            outcomes_replayed,
            outcomes_duplicate,
            outcomes_undecodable,
            outcome_read_errors,
            idempotency_index_answers,
            idempotency_index_reused,
            idempotency_index_errors,
            gauges,
        }
    }
}

impl Metrics {
    /// Counts and times one answer. `route` is a route template or `unmatched`.
    pub(crate) fn observe_http(
        &self,
        route: &str,
        method: MethodLabel,
        status: u16,
        elapsed: Duration,
    ) {
        let labels = HttpLabels {
            route: route.to_string(),
            method,
            status,
        };
        self.http_requests.get_or_create(&labels).inc();
        self.http_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// The exposition (OpenMetrics text, [`CONTENT_TYPE`]), with each shard's `gauges`
    /// (in shard order) and the open long-polls and streams as of now.
    pub(crate) fn render(
        &self,
        shards: &[Gauges],
        long_polls: u64,
        seat_map_streams: u64,
    ) -> String {
        let set = &self.gauges;
        for (shard, gauges) in (0u32..).zip(shards) {
            set.applied_offset
                .set(shard, gauges.applied_offset.map_or(-1, saturating_i64));
            set.outcomes_lag.set(
                shard,
                saturating_i64(
                    gauges
                        .outcomes_end_offset
                        .saturating_sub(gauges.outcomes_position),
                ),
            );
            set.outcomes_end_offset
                .set(shard, saturating_i64(gauges.outcomes_end_offset));
            set.live_holds.set(shard, saturating_i64(gauges.live_holds));
            set.live_bookings
                .set(shard, saturating_i64(gauges.live_bookings));
            set.waiting.set(shard, saturating_i64(gauges.waiting));
            set.events.set(shard, saturating_i64(gauges.events));
            set.pending_writes
                .set(shard, saturating_i64(gauges.pending_writes));
            set.read_model_anomalies
                .set(shard, saturating_i64(gauges.read_model_anomalies));
        }
        set.long_polls.set(saturating_i64(long_polls));
        set.seat_map_streams.set(saturating_i64(seat_map_streams));
        let mut text = String::new();
        // Writing to a String cannot fail; an encoder error would be a bug in a label.
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "the metrics could not be encoded");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauges() -> Gauges {
        Gauges {
            applied_offset: Some(4),
            outcomes_position: 5,
            outcomes_end_offset: 7,
            live_holds: 1,
            live_bookings: 2,
            waiting: 3,
            events: 1,
            pending_writes: 0,
            read_model_anomalies: 0,
        }
    }

    #[test]
    fn renders_counts_and_cumulative_buckets() {
        let metrics = Metrics::default();
        let get = MethodLabel::of(&Method::GET);
        metrics.observe_http("/v1/events/{event_id}", get, 200, Duration::from_millis(3));
        metrics.observe_http("/v1/events/{event_id}", get, 200, Duration::from_millis(30));
        metrics.log_append.observe(0.0002);
        metrics.outcome_after_durable.observe(0.0004);
        metrics.log_appended_records.inc_by(3);
        let text = metrics.render(&[gauges()], 0, 0);
        for expected in [
            "boxoffice_http_requests_total{route=\"/v1/events/{event_id}\",method=\"GET\",status=\"200\"} 2\n",
            "boxoffice_http_request_duration_seconds_bucket{le=\"0.005\",route=\"/v1/events/{event_id}\",method=\"GET\",status=\"200\"} 1\n",
            "le=\"0.05\",route=\"/v1/events/{event_id}\",method=\"GET\",status=\"200\"} 2\n",
            "boxoffice_log_append_duration_seconds_count 1\n",
            "boxoffice_outcome_after_durable_seconds_count 1\n",
            "boxoffice_log_appended_records_total 3\n",
            "boxoffice_outcomes_lag_records 2\n",
            "boxoffice_read_model_applied_offset 4\n",
            "# EOF\n",
        ] {
            assert!(text.contains(expected), "no {expected} in\n{text}");
        }
    }

    /// With more than one shard every per-shard gauge says its shard.
    #[test]
    fn gauges_are_labelled_by_shard_with_more_than_one() {
        let metrics = Metrics::new(2);
        let second = Gauges {
            applied_offset: Some(9),
            ..gauges()
        };
        let text = metrics.render(&[gauges(), second], 1, 0);
        for expected in [
            "boxoffice_read_model_applied_offset{shard=\"0\"} 4\n",
            "boxoffice_read_model_applied_offset{shard=\"1\"} 9\n",
            "boxoffice_outcomes_lag_records{shard=\"1\"} 2\n",
            "boxoffice_long_polls 1\n",
        ] {
            assert!(text.contains(expected), "no {expected} in\n{text}");
        }
    }

    #[test]
    fn unknown_methods_share_one_label() {
        let metrics = Metrics::default();
        for name in ["BREW", "PROPFIND", "X-RANDOM-1", "X-RANDOM-2"] {
            let method = Method::from_bytes(name.as_bytes()).unwrap();
            metrics.observe_http("unmatched", MethodLabel::of(&method), 405, Duration::ZERO);
        }
        let text = metrics.render(&[gauges()], 0, 0);
        assert!(
            text.contains(
                "boxoffice_http_requests_total{route=\"unmatched\",method=\"other\",status=\"405\"} 4\n"
            ),
            "{text}"
        );
        assert!(
            !text.contains("BREW") && !text.contains("X-RANDOM"),
            "{text}"
        );
        assert_eq!(MethodLabel::of(&Method::PATCH).0, "PATCH");
    }
}
