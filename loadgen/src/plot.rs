//! SVG plots of a report with `plotters`: latency over time (p50, p99, max per second,
//! log scale) and the percentile curve (latency against "nines"). Text is left to the
//! SVG viewer, so no font library is needed.

use plotters::prelude::*;
use std::path::Path;

use crate::report::Report;

#[derive(Debug, thiserror::Error)]
#[error("cannot draw {path}: {message}")]
pub struct PlotError {
    path: String,
    message: String,
}

fn plot_error(path: &Path) -> impl Fn(String) -> PlotError + '_ {
    move |message| PlotError {
        path: path.display().to_string(),
        message,
    }
}

fn ms(micros: u64) -> f64 {
    (micros.max(1) as f64) / 1_000.0
}

/// `latency-over-time.svg`: p50, p99 and max of the answers completed in each second.
pub fn latency_over_time(report: &Report, path: &Path) -> Result<(), PlotError> {
    let error = plot_error(path);
    let timeline = &report.measurements.timeline;
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| error(e.to_string()))?;
    let seconds = timeline.last().map_or(1, |point| point.second + 1) as f64;
    let high = timeline
        .iter()
        .map(|point| ms(point.max_us))
        .fold(1.0, f64::max)
        * 1.5;
    let low = timeline
        .iter()
        .map(|point| ms(point.p50_us))
        .fold(high, f64::min)
        .max(0.01)
        / 1.5;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{}: latency over time ({})", report.scenario, report.mode),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..seconds, (low..high).log_scale())
        .map_err(|e| error(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("latency (ms, from intended send time)")
        .draw()
        .map_err(|e| error(e.to_string()))?;
    /// A line of the plot: its name, colour, and the value it draws of each point.
    type Series = (
        &'static str,
        RGBColor,
        fn(&crate::report::TimelinePoint) -> u64,
    );
    let series: [Series; 3] = [
        ("p50", BLUE, |point| point.p50_us),
        ("p99", RED, |point| point.p99_us),
        ("max", BLACK, |point| point.max_us),
    ];
    for (name, color, value) in series {
        chart
            .draw_series(LineSeries::new(
                timeline
                    .iter()
                    .map(|point| (point.second as f64 + 0.5, ms(value(point)))),
                color.stroke_width(2),
            ))
            .map_err(|e| error(e.to_string()))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| error(e.to_string()))?;
    root.present().map_err(|e| error(e.to_string()))?;
    Ok(())
}

/// `percentile-curve.svg`: latency against percentile, the x axis in nines
/// (0 = p0, 1 = p90, 2 = p99, 3 = p99.9 ...).
pub fn percentile_curve(report: &Report, path: &Path) -> Result<(), PlotError> {
    let error = plot_error(path);
    let curve = &report.measurements.percentile_curve;
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| error(e.to_string()))?;
    let nines = |percentile: f64| -((1.0 - percentile / 100.0).max(1e-6)).log10();
    let high = curve
        .iter()
        .map(|point| ms(point.latency_us))
        .fold(1.0, f64::max)
        * 1.5;
    let low = curve
        .iter()
        .map(|point| ms(point.latency_us))
        .fold(high, f64::min)
        .max(0.01)
        / 1.5;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "{}: latency by percentile ({})",
                report.scenario, report.mode
            ),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..6f64, (low..high).log_scale())
        .map_err(|e| error(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .x_label_formatter(&|nines: &f64| match nines.round() as i64 {
            0 => "p0".into(),
            1 => "p90".into(),
            2 => "p99".into(),
            3 => "p99.9".into(),
            4 => "p99.99".into(),
            5 => "p99.999".into(),
            _ => "max".into(),
        })
        .y_desc("latency (ms)")
        .draw()
        .map_err(|e| error(e.to_string()))?;
    chart
        .draw_series(LineSeries::new(
            curve
                .iter()
                .map(|point| (nines(point.percentile).min(6.0), ms(point.latency_us))),
            RED.stroke_width(2),
        ))
        .map_err(|e| error(e.to_string()))?;
    root.present().map_err(|e| error(e.to_string()))?;
    Ok(())
}

/// `steps.svg` for a step run: p99 against the target rate, with the threshold.
pub fn steps(report: &Report, path: &Path) -> Result<(), PlotError> {
    let error = plot_error(path);
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| error(e.to_string()))?;
    let rate_max = report
        .steps
        .iter()
        .map(|step| step.target_rate_per_second)
        .fold(1.0, f64::max)
        * 1.1;
    let threshold = report.p99_threshold_ms.unwrap_or(50.0);
    let high = report
        .steps
        .iter()
        .map(|step| ms(step.p99_us))
        .fold(threshold, f64::max)
        * 1.5;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{}: p99 by offered rate", report.scenario),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..rate_max, (0.01f64..high).log_scale())
        .map_err(|e| error(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("offered rate (requests/s)")
        .y_desc("p99 latency (ms)")
        .draw()
        .map_err(|e| error(e.to_string()))?;
    let points: Vec<(f64, f64)> = report
        .steps
        .iter()
        .map(|step| (step.target_rate_per_second, ms(step.p99_us)))
        .collect();
    chart
        .draw_series(LineSeries::new(points.clone(), RED.stroke_width(2)))
        .map_err(|e| error(e.to_string()))?;
    chart
        .draw_series(
            points
                .iter()
                .map(|&point| Circle::new(point, 4, RED.filled())),
        )
        .map_err(|e| error(e.to_string()))?;
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, threshold), (rate_max, threshold)],
            BLACK.stroke_width(1),
        ))
        .map_err(|e| error(e.to_string()))?;
    root.present().map_err(|e| error(e.to_string()))?;
    Ok(())
}
