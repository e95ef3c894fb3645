//! Prometheus metrics in the text exposition format, kept by hand: a few counters and
//! fixed-bucket histograms behind one small lock each, rendered on `GET /metrics`. Gauges
//! (applied offset, lag, live holds) are read from the read model at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub(crate) fn inc(&self) {
        self.add(1);
    }

    pub(crate) fn add(&self, count: u64) {
        self.0.fetch_add(count, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Clone, Default)]
struct HistogramData {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

impl HistogramData {
    fn observe(&mut self, seconds: f64) {
        for (bucket, bound) in self.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        self.count += 1;
        self.sum_seconds += seconds;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let separator = if labels.is_empty() { "" } else { "," };
        for (bucket, bound) in self.buckets.iter().zip(BUCKETS) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{separator}le=\"{bound}\"}} {bucket}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{separator}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum_seconds);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

#[derive(Default)]
pub(crate) struct Histogram(Mutex<HistogramData>);

impl Histogram {
    pub(crate) fn observe(&self, elapsed: Duration) {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .observe(elapsed.as_secs_f64());
    }

    fn snapshot(&self) -> HistogramData {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// (route template, method, status) → latency histogram (whose count is the request count).
type HttpKey = (String, String, u16);

#[derive(Default)]
pub(crate) struct Metrics {
    http: Mutex<BTreeMap<HttpKey, HistogramData>>,
    pub(crate) log_append: Histogram,
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
    pub(crate) long_polls: u64,
    pub(crate) seat_map_streams: u64,
    pub(crate) read_model_anomalies: u64,
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub(crate) fn observe_http(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let mut http = self
            .http
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        http.entry((route.to_string(), method.to_string(), status))
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    pub(crate) fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::new();
        let http = self
            .http
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        out.push_str("# HELP boxoffice_http_requests_total HTTP requests answered, by route, method and status.\n");
        out.push_str("# TYPE boxoffice_http_requests_total counter\n");
        for ((route, method, status), data) in &http {
            let _ = writeln!(out, "boxoffice_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {}", escape(route), data.count);
        }
        out.push_str("# HELP boxoffice_http_request_duration_seconds HTTP request latency, by route, method and status.\n");
        out.push_str("# TYPE boxoffice_http_request_duration_seconds histogram\n");
        for ((route, method, status), data) in &http {
            let labels = format!(
                "route=\"{}\",method=\"{method}\",status=\"{status}\"",
                escape(route)
            );
            data.render(&mut out, "boxoffice_http_request_duration_seconds", &labels);
        }
        out.push_str("# HELP boxoffice_log_append_duration_seconds Latency of one durable append (a batch) to the requests log.\n");
        out.push_str("# TYPE boxoffice_log_append_duration_seconds histogram\n");
        self.log_append
            .snapshot()
            .render(&mut out, "boxoffice_log_append_duration_seconds", "");
        let counters: [(&str, &str, &Counter); 12] = [
            (
                "boxoffice_log_appended_records_total",
                "Records appended to the requests log by this ingress.",
                &self.log_appended_records,
            ),
            (
                "boxoffice_log_append_errors_total",
                "Failed appends to the requests log.",
                &self.log_append_errors,
            ),
            (
                "boxoffice_outcome_timeouts_total",
                "Writes answered 503 because their outcome did not come in time.",
                &self.outcome_timeouts,
            ),
            (
                "boxoffice_rate_limited_total",
                "Requests refused by a rate limit.",
                &self.rate_limited,
            ),
            (
                "boxoffice_outcomes_applied_total",
                "Outcomes applied to the read model.",
                &self.outcomes_applied,
            ),
            (
                "boxoffice_outcomes_replayed_total",
                "Replayed (idempotent repeat) outcomes, answered but not re-applied.",
                &self.outcomes_replayed,
            ),
            (
                "boxoffice_outcomes_duplicate_total",
                "Outcomes dropped because their offset was already applied.",
                &self.outcomes_duplicate,
            ),
            (
                "boxoffice_outcomes_undecodable_total",
                "Outcome records that could not be decoded.",
                &self.outcomes_undecodable,
            ),
            (
                "boxoffice_outcome_read_errors_total",
                "Errors reading the outcomes log.",
                &self.outcome_read_errors,
            ),
            (
                "boxoffice_idempotency_index_answers_total",
                "Repeated keyed requests answered from the idempotency index, not appended.",
                &self.idempotency_index_answers,
            ),
            (
                "boxoffice_idempotency_index_reused_total",
                "Keys reused for another request, refused (422) by the idempotency index.",
                &self.idempotency_index_reused,
            ),
            (
                "boxoffice_idempotency_index_errors_total",
                "Errors reading or writing the idempotency index.",
                &self.idempotency_index_errors,
            ),
        ];
        for (name, help, counter) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                counter.get()
            );
        }
        let applied = gauges.applied_offset.map_or(-1, |offset| offset as i64);
        let lag = gauges
            .outcomes_end_offset
            .saturating_sub(gauges.outcomes_position);
        let gauge_values: [(&str, &str, i64); 11] = [
            (
                "boxoffice_read_model_applied_offset",
                "Input offset of the last outcome the read model applied (-1: none).",
                applied,
            ),
            (
                "boxoffice_outcomes_lag_records",
                "Outcome records not yet read by the follower.",
                lag as i64,
            ),
            (
                "boxoffice_outcomes_end_offset",
                "End offset of the outcomes log when last checked.",
                gauges.outcomes_end_offset as i64,
            ),
            (
                "boxoffice_holds_active",
                "Live holds.",
                gauges.live_holds as i64,
            ),
            (
                "boxoffice_bookings_active",
                "Bookings not canceled.",
                gauges.live_bookings as i64,
            ),
            (
                "boxoffice_waitlist_waiting",
                "Waitlist entries waiting.",
                gauges.waiting as i64,
            ),
            (
                "boxoffice_events",
                "Events known to the read model.",
                gauges.events as i64,
            ),
            (
                "boxoffice_pending_writes",
                "Writes waiting for their outcome.",
                gauges.pending_writes as i64,
            ),
            (
                "boxoffice_long_polls",
                "Waitlist long-polls waiting for a change.",
                gauges.long_polls as i64,
            ),
            (
                "boxoffice_seat_map_streams",
                "Seat-map streams (server-sent events) open.",
                gauges.seat_map_streams as i64,
            ),
            (
                "boxoffice_read_model_anomalies",
                "Outcomes that did not fit the read model (should be 0).",
                gauges.read_model_anomalies as i64,
            ),
        ];
        for (name, help, value) in gauge_values {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_cumulative_buckets() {
        let metrics = Metrics::default();
        metrics.observe_http(
            "/v1/events/{event_id}",
            "GET",
            200,
            Duration::from_millis(3),
        );
        metrics.observe_http(
            "/v1/events/{event_id}",
            "GET",
            200,
            Duration::from_millis(30),
        );
        metrics.log_append.observe(Duration::from_micros(200));
        let gauges = Gauges {
            applied_offset: Some(4),
            outcomes_position: 5,
            outcomes_end_offset: 7,
            live_holds: 1,
            live_bookings: 2,
            waiting: 3,
            events: 1,
            pending_writes: 0,
            long_polls: 0,
            seat_map_streams: 0,
            read_model_anomalies: 0,
        };
        let text = metrics.render(&gauges);
        assert!(text.contains("boxoffice_http_requests_total{route=\"/v1/events/{event_id}\",method=\"GET\",status=\"200\"} 2"), "{text}");
        assert!(text.contains("boxoffice_http_request_duration_seconds_bucket{route=\"/v1/events/{event_id}\",method=\"GET\",status=\"200\",le=\"0.005\"} 1"));
        assert!(text.contains("le=\"0.05\"} 2"));
        assert!(text.contains("boxoffice_log_append_duration_seconds_count 1"));
        assert!(text.contains("boxoffice_outcomes_lag_records 2"));
        assert!(text.contains("boxoffice_read_model_applied_offset 4"));
    }
}
