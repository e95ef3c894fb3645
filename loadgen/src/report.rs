//! Measurements and the report: HDR histograms per request kind (microseconds, three
//! significant digits), error counts by API error code, answers by route and status (to
//! compare with the server's `/metrics`), and a per-second timeline for the plots.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

use crate::scenario::Kind;

/// Largest latency a histogram records (longer ones are clamped to it and still counted).
pub const LATENCY_MAX: Duration = Duration::from_secs(600);

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX.as_micros() as u64, 3)
        .expect("valid histogram bounds")
}

fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let micros = (latency.as_micros() as u64).clamp(1, LATENCY_MAX.as_micros() as u64);
    histogram
        .record(micros)
        .expect("clamped into the histogram's range");
}

/// The decimal text of an HTTP status, without an allocation for the usual ones.
fn status_text(status: u16) -> std::borrow::Cow<'static, str> {
    match status {
        200 => "200".into(),
        201 => "201".into(),
        204 => "204".into(),
        400 => "400".into(),
        404 => "404".into(),
        409 => "409".into(),
        422 => "422".into(),
        429 => "429".into(),
        503 => "503".into(),
        other => other.to_string().into(),
    }
}

/// Collects samples during a run.
pub struct Recorder {
    kinds: BTreeMap<Kind, KindRecorder>,
    overall: Histogram<u64>,
    /// One histogram per second of the run, by completion time.
    timeline: Vec<(u64, Histogram<u64>)>,
    /// "METHOD route" → status → count.
    routes: BTreeMap<String, BTreeMap<String, u64>>,
    pub responses: u64,
}

struct KindRecorder {
    histogram: Histogram<u64>,
    count: u64,
    ok: u64,
    errors: BTreeMap<String, u64>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            kinds: BTreeMap::new(),
            overall: new_histogram(),
            timeline: Vec::new(),
            routes: BTreeMap::new(),
            responses: 0,
        }
    }
}

impl Recorder {
    /// One answer: its kind, `ok` or the error code, the charged latency, when it
    /// completed (since the run's start), and its route and HTTP status.
    pub fn record(
        &mut self,
        kind: Kind,
        code: &str,
        latency: Duration,
        completed: Duration,
        route: &str,
        status: u16,
    ) {
        self.responses += 1;
        let entry = self.kinds.entry(kind).or_insert_with(|| KindRecorder {
            histogram: new_histogram(),
            count: 0,
            ok: 0,
            errors: BTreeMap::new(),
        });
        entry.count += 1;
        if code == "ok" {
            entry.ok += 1;
        } else if let Some(count) = entry.errors.get_mut(code) {
            *count += 1;
        } else {
            entry.errors.insert(code.to_string(), 1);
        }
        record(&mut entry.histogram, latency);
        record(&mut self.overall, latency);
        let second = completed.as_secs();
        let position = self.timeline.partition_point(|(at, _)| *at < second);
        if self
            .timeline
            .get(position)
            .is_none_or(|(at, _)| *at != second)
        {
            self.timeline.insert(position, (second, new_histogram()));
        }
        record(&mut self.timeline[position].1, latency);
        // Looked up before inserting: the keys are allocated once per route and status,
        // not once per answer.
        let statuses = match self.routes.get_mut(route) {
            Some(statuses) => statuses,
            None => self.routes.entry(route.to_string()).or_default(),
        };
        let status = status_text(status);
        match statuses.get_mut(status.as_ref()) {
            Some(count) => *count += 1,
            None => {
                statuses.insert(status.into_owned(), 1);
            }
        }
    }

    pub fn overall_p99(&self) -> Duration {
        Duration::from_micros(self.overall.value_at_quantile(0.99))
    }

    pub fn errors(&self) -> u64 {
        self.kinds
            .values()
            .map(|kind| kind.errors.values().sum::<u64>())
            .sum()
    }

    /// The summary of what was recorded.
    pub fn summarize(&self) -> Measurements {
        let mut errors_by_code = BTreeMap::new();
        let kinds = self
            .kinds
            .iter()
            .map(|(kind, recorder)| {
                for (code, count) in &recorder.errors {
                    *errors_by_code.entry(code.clone()).or_default() += count;
                }
                (
                    kind.name().to_string(),
                    KindReport {
                        count: recorder.count,
                        ok: recorder.ok,
                        errors_by_code: recorder.errors.clone(),
                        latency: Percentiles::of(&recorder.histogram),
                    },
                )
            })
            .collect();
        let timeline = self
            .timeline
            .iter()
            .map(|(second, histogram)| TimelinePoint {
                second: *second,
                responses: histogram.len(),
                p50_us: histogram.value_at_quantile(0.5),
                p99_us: histogram.value_at_quantile(0.99),
                max_us: histogram.max(),
            })
            .collect();
        Measurements {
            responses: self.responses,
            errors_by_code,
            kinds,
            overall: Percentiles::of(&self.overall),
            timeline,
            by_route: self.routes.clone(),
            percentile_curve: percentile_curve(&self.overall),
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub p9999_us: u64,
    pub max_us: u64,
    pub mean_us: u64,
}

impl Percentiles {
    pub fn of(histogram: &Histogram<u64>) -> Percentiles {
        if histogram.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: histogram.len(),
            p50_us: histogram.value_at_quantile(0.5),
            p90_us: histogram.value_at_quantile(0.9),
            p99_us: histogram.value_at_quantile(0.99),
            p999_us: histogram.value_at_quantile(0.999),
            p9999_us: histogram.value_at_quantile(0.9999),
            max_us: histogram.max(),
            mean_us: histogram.mean().round() as u64,
        }
    }
}

/// (percentile, latency) pairs on a log scale from p0 to p99.999 and the max, for the
/// percentile-curve plot.
fn percentile_curve(histogram: &Histogram<u64>) -> Vec<CurvePoint> {
    if histogram.is_empty() {
        return Vec::new();
    }
    let mut points = Vec::new();
    // 1 - 10^(-k/8) for k = 0..=40 gives 0 .. 0.99999, evenly spaced in "nines".
    for step in 0..=40 {
        let quantile = 1.0 - 10f64.powf(-(step as f64) / 8.0);
        // Six decimals: short enough to survive a JSON round trip exactly.
        let percentile = (quantile * 100.0 * 1e6).round() / 1e6;
        points.push(CurvePoint {
            percentile,
            latency_us: histogram.value_at_quantile(quantile),
        });
    }
    points.push(CurvePoint {
        percentile: 100.0,
        latency_us: histogram.max(),
    });
    points
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub percentile: f64,
    pub latency_us: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KindReport {
    pub count: u64,
    pub ok: u64,
    pub errors_by_code: BTreeMap<String, u64>,
    pub latency: Percentiles,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimelinePoint {
    pub second: u64,
    pub responses: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// What a recorder measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Measurements {
    pub responses: u64,
    pub errors_by_code: BTreeMap<String, u64>,
    /// By kind name (`hold_best`, `confirm`, ...).
    pub kinds: BTreeMap<String, KindReport>,
    pub overall: Percentiles,
    pub timeline: Vec<TimelinePoint>,
    /// "METHOD /route/{template}" → HTTP status (as text; 0 = no answer) → count.
    pub by_route: BTreeMap<String, BTreeMap<String, u64>>,
    pub percentile_curve: Vec<CurvePoint>,
}

/// One rate of a step run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    pub target_rate_per_second: f64,
    pub achieved_rate_per_second: f64,
    pub responses: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// The scenario's users (or the run's request budget) ran out before the step's end: not
    /// a measurement at this rate, and never the knee.
    #[serde(default)]
    pub cut_short: bool,
}

/// The JSON result file of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub loadgen_version: String,
    pub scenario: String,
    pub scale: f64,
    /// `open`, `closed`, `step`, `replay_http` or `replay_log`.
    pub mode: String,
    pub target: String,
    pub started_at: String,
    pub seed: u64,
    pub duration_seconds: f64,
    pub target_rate_per_second: Option<f64>,
    pub achieved_rate_per_second: f64,
    pub concurrency: Option<usize>,
    pub slots: u64,
    pub requests_sent: u64,
    pub skipped_slots: u64,
    /// The largest delay between a request's intended time and its hand-off to a task:
    /// when large, the load generator itself fell behind (and the latencies include it).
    pub dispatch_lag_max_us: u64,
    pub events: Vec<String>,
    pub measurements: Measurements,
    #[serde(default)]
    pub steps: Vec<StepReport>,
    /// Step mode: the highest rate whose p99 stayed under the threshold.
    pub knee_rate_per_second: Option<f64>,
    pub p99_threshold_ms: Option<f64>,
    pub granted: Option<GrantedSummary>,
    pub verification: Option<crate::verify::Verification>,
    /// CPU time of each watched process (and the load generator) over the measured phase.
    #[serde(default)]
    pub cpu: Vec<crate::cpu::ProcessCpu>,
    /// A replay: its answers against the recorded ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<crate::timeline::Comparison>,
    /// Events with an arrival window: how the draw placed the run's entries by when they
    /// arrived (flat, if arriving early buys nothing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub draws: Vec<DrawSpread>,
}

/// One event's draw, as the run's entries saw it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DrawSpread {
    pub event_id: String,
    /// `revealed` or `fallback` (the server's `seed_source`); empty if not drawn.
    pub seed_source: String,
    /// Entries the draw placed.
    pub entries: u64,
    /// The window cut into equal spans of arrival time, earliest first.
    pub buckets: Vec<DrawBucket>,
}

/// The entries that arrived in one span of the window, and where the draw put them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DrawBucket {
    /// The span, in seconds before the opening.
    pub from_seconds_before: f64,
    pub to_seconds_before: f64,
    pub entries: u64,
    /// The mean of (place - 1) / (entries - 1): 0 first, 1 last, 0.5 for a fair draw.
    pub mean_place_fraction: f64,
}

/// Buckets `arrivals` (entry id, wall-clock ms) over the window `[opens_at_ms, draws_at_ms)`
/// into `buckets` equal spans, with their mean place fraction from `places` (entry id →
/// place from 1, of `placed` places). Entries without a place, or outside the window, are
/// left out.
pub fn draw_spread(
    opens_at_ms: u64,
    draws_at_ms: u64,
    arrivals: &[(String, u64)],
    places: &BTreeMap<String, u64>,
    placed: u64,
    buckets: usize,
) -> Vec<DrawBucket> {
    assert!(buckets > 0 && draws_at_ms > opens_at_ms);
    let span_ms = (draws_at_ms - opens_at_ms) as f64 / buckets as f64;
    let mut sums = vec![(0u64, 0.0f64); buckets];
    for (entry, at_ms) in arrivals {
        let (Some(place), true) = (
            places.get(entry),
            (opens_at_ms..draws_at_ms).contains(at_ms),
        ) else {
            continue;
        };
        let bucket = (((at_ms - opens_at_ms) as f64 / span_ms) as usize).min(buckets - 1);
        let fraction = if placed > 1 {
            (place - 1) as f64 / (placed - 1) as f64
        } else {
            0.5
        };
        sums[bucket].0 += 1;
        sums[bucket].1 += fraction;
    }
    let to_seconds = |ms: f64| ms / 1_000.0;
    sums.into_iter()
        .enumerate()
        .map(|(index, (entries, sum))| DrawBucket {
            from_seconds_before: to_seconds(
                (draws_at_ms - opens_at_ms) as f64 - span_ms * index as f64,
            ),
            to_seconds_before: to_seconds(
                (draws_at_ms - opens_at_ms) as f64 - span_ms * (index + 1) as f64,
            ),
            entries,
            mean_place_fraction: if entries > 0 {
                sum / entries as f64
            } else {
                0.0
            },
        })
        .collect()
}

/// What the run was granted, in counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GrantedSummary {
    pub holds_granted: u64,
    pub bookings_granted: u64,
    pub waitlisted: u64,
    pub holds_live: u64,
    pub bookings_live: u64,
    pub seats_booked_live: u64,
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }

    pub fn from_json(text: &str) -> Result<Report, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// A human-readable summary table.
    pub fn table(&self) -> String {
        let ms = |micros: u64| micros as f64 / 1_000.0;
        let mut out = String::new();
        out.push_str(&format!(
            "{} ({}) against {}: {} responses in {:.1} s = {:.0}/s",
            self.scenario,
            self.mode,
            self.target,
            self.measurements.responses,
            self.duration_seconds,
            self.achieved_rate_per_second
        ));
        if let Some(rate) = self.target_rate_per_second {
            out.push_str(&format!(" (target {rate:.0}/s)"));
        }
        out.push('\n');
        out.push_str(&format!(
            "{:<14} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            "kind",
            "count",
            "errors",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "p99.99 ms",
            "max ms"
        ));
        let mut rows: Vec<(&str, &KindReport)> = self
            .measurements
            .kinds
            .iter()
            .map(|(name, report)| (name.as_str(), report))
            .collect();
        let overall = KindReport {
            count: self.measurements.responses,
            ok: self.measurements.responses
                - self.measurements.errors_by_code.values().sum::<u64>(),
            errors_by_code: self.measurements.errors_by_code.clone(),
            latency: self.measurements.overall.clone(),
        };
        rows.push(("all", &overall));
        for (name, report) in rows {
            let latency = &report.latency;
            out.push_str(&format!(
                "{:<14} {:>8} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}\n",
                name,
                report.count,
                report.count - report.ok,
                ms(latency.p50_us),
                ms(latency.p90_us),
                ms(latency.p99_us),
                ms(latency.p999_us),
                ms(latency.p9999_us),
                ms(latency.max_us)
            ));
        }
        if !self.measurements.errors_by_code.is_empty() {
            let codes: Vec<String> = self
                .measurements
                .errors_by_code
                .iter()
                .map(|(code, count)| format!("{code} {count}"))
                .collect();
            out.push_str(&format!("errors by code: {}\n", codes.join(", ")));
        }
        for step in &self.steps {
            out.push_str(&format!(
                "step {:>8.0}/s: achieved {:>8.0}/s, p50 {:>8.2} ms, p99 {:>8.2} ms, errors {}{}\n",
                step.target_rate_per_second,
                step.achieved_rate_per_second,
                ms(step.p50_us),
                ms(step.p99_us),
                step.errors,
                if step.cut_short {
                    " (cut short: the users or the request budget ran out)"
                } else {
                    ""
                }
            ));
        }
        if let Some(knee) = self.knee_rate_per_second {
            out.push_str(&format!(
                "knee: {knee:.0}/s is the highest rate with p99 < {} ms\n",
                self.p99_threshold_ms.unwrap_or(50.0)
            ));
        }
        if self.dispatch_lag_max_us > 100_000 {
            out.push_str(&format!("warning: the load generator fell up to {:.0} ms behind its schedule (charged to latency)\n", ms(self.dispatch_lag_max_us)));
        }
        if let Some(granted) = &self.granted {
            out.push_str(&format!(
                "granted: {} holds, {} bookings, {} waitlisted; live at the end: {} holds, {} bookings ({} seats)\n",
                granted.holds_granted, granted.bookings_granted, granted.waitlisted, granted.holds_live, granted.bookings_live, granted.seats_booked_live
            ));
        }
        for process in &self.cpu {
            out.push_str(&format!(
                "cpu {}{}: {} ms, {:.1} us per response\n",
                process.name,
                process
                    .pid
                    .map(|pid| format!(" (pid {pid})"))
                    .unwrap_or_default(),
                process.cpu_ms,
                process.cpu_us_per_response
            ));
            if !process.threads.is_empty() {
                let threads: Vec<String> = process
                    .threads
                    .iter()
                    .map(|thread| format!("{} {:.1}", thread.name, thread.cpu_us_per_response))
                    .collect();
                out.push_str(&format!(
                    "cpu {} by thread, us per response: {}\n",
                    process.name,
                    threads.join(", ")
                ));
            }
        }
        for draw in &self.draws {
            out.push_str(&format!(
                "draw of {} ({} seed): {} entries; mean place (0 first, 1 last) by arrival, earliest first:",
                draw.event_id, draw.seed_source, draw.entries
            ));
            for bucket in &draw.buckets {
                out.push_str(&format!(
                    " {:.2} ({})",
                    bucket.mean_place_fraction, bucket.entries
                ));
            }
            out.push('\n');
        }
        if let Some(verification) = &self.verification {
            out.push_str(&verification.summary());
        }
        out
    }
}
