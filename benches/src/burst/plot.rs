//! `report.svg`: offered rate, p99 until-in-Redis latency and queue depth over time, every
//! path of one trace on the same axes (plotters, SVG backend).

use std::path::Path;

use plotters::prelude::*;

use super::report::{PathReport, Report};

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 1100;

fn color(path: &str) -> RGBColor {
    match path {
        "sidecar" => RGBColor(214, 39, 40),
        "slotline" => RGBColor(31, 119, 180),
        "redis-rs" => RGBColor(255, 127, 14),
        "fred" => RGBColor(44, 160, 44),
        _ => RGBColor(90, 90, 90),
    }
}

/// Draws the runs of `trace` from `report` into `out` (an `.svg` file).
///
/// # Errors
///
/// A message when drawing or writing fails, or no run used `trace`.
pub fn plot(report: &Report, trace: &str, out: &Path) -> Result<(), String> {
    // The first run of each path (a repeated scenario would draw each path several times).
    let runs: Vec<&PathReport> = report
        .runs
        .iter()
        .filter(|r| r.trace == trace && r.repetition == 0)
        .collect();
    if runs.is_empty() {
        return Err(format!("no run replayed the trace `{trace}`"));
    }
    draw(report, trace, &runs, out).map_err(|e| format!("plot {}: {e}", out.display()))
}

fn draw(
    report: &Report,
    trace: &str,
    runs: &[&PathReport],
    out: &Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(out, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let (head, body) = root.split_vertically(70);
    let p = &report.params;
    head.draw_text(
        &format!("burst: `{trace}` trace through each write path on a local Redis Cluster"),
        &("sans-serif", 22).into_font().color(&BLACK),
        (20, 12),
    )?;
    head.draw_text(
        &format!(
            "mean {:.0} writes/s, burst factor {}, seed {}, {} callers; sidecar: depth {} ({}), window {} ms; \
             slotline: {} shards × ring {}, backpressure at {} ({})",
            p.rate,
            p.burst_factor,
            p.seed,
            p.callers,
            p.sidecar.depth,
            if p.sidecar.enforce { "enforced" } else { "not enforced" },
            p.sidecar.window.as_millis(),
            p.slotline.shards,
            p.slotline.ring_capacity,
            p.slotline.backpressure_limit,
            p.slotline.fallback,
        ),
        &("sans-serif", 14).into_font().color(&RGBColor(60, 60, 60)),
        (20, 44),
    )?;
    let panels = body.split_evenly((3, 1));
    let x_max = runs
        .iter()
        .flat_map(|r| r.series.last().map(|b| b.t_s + 0.1))
        .fold(1.0f64, f64::max);

    // 1. Offered rate (same for every path) and each path's acknowledged rate.
    let rate_max = runs
        .iter()
        .flat_map(|r| r.series.iter().map(|b| b.offered_per_s.max(b.acked_per_s)))
        .fold(1.0f64, f64::max)
        * 1.35;
    let mut chart = ChartBuilder::on(&panels[0])
        .caption(
            "offered and acknowledged writes per second (100 ms buckets)",
            ("sans-serif", 17),
        )
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..x_max, 0f64..rate_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the start of the replay")
        .y_desc("writes/s")
        .y_label_formatter(&|v| format!("{:.0}k", v / 1e3))
        .draw()?;
    chart
        .draw_series(LineSeries::new(
            runs[0].series.iter().map(|b| (b.t_s, b.offered_per_s)),
            BLACK.stroke_width(2),
        ))?
        .label("offered (the trace)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
    for r in runs {
        let c = color(&r.path);
        chart
            .draw_series(LineSeries::new(
                r.series.iter().map(|b| (b.t_s, b.acked_per_s)),
                c.stroke_width(1),
            ))?
            .label(format!("{}: acknowledged", r.path))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;

    // 2. p99 until in Redis, log scale.
    let lat_max = runs
        .iter()
        .flat_map(|r| r.series.iter().filter_map(|b| b.in_redis_p99_ms))
        .fold(1.0f64, f64::max)
        * 12.0;
    let lat_min = 0.05f64;
    let mut chart = ChartBuilder::on(&panels[1])
        .caption(
            "p99 latency from scheduled time until the write is in Redis, per 100 ms (log scale)",
            ("sans-serif", 17),
        )
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..x_max, (lat_min..lat_max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("seconds since the start of the replay")
        .y_desc("ms")
        .y_label_formatter(&|v| {
            if *v >= 1.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            }
        })
        .draw()?;
    for r in runs {
        let c = color(&r.path);
        chart
            .draw_series(LineSeries::new(
                r.series
                    .iter()
                    .filter_map(|b| b.in_redis_p99_ms.map(|l| (b.t_s, l.max(lat_min)))),
                c.stroke_width(2),
            ))?
            .label(format!(
                "{}: p99 over the run {:.1} ms",
                r.path, r.in_redis_latency_ms.p99
            ))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;

    // 3. Queue depth (writes accepted, not yet in Redis), log scale, with each path's limit.
    let depth_max = runs
        .iter()
        .flat_map(|r| {
            r.series
                .iter()
                .map(|b| b.depth)
                .chain([r.configured_depth, r.peak_queue_depth])
        })
        .max()
        .unwrap_or(1)
        .max(10) as f64
        * 30.0;
    let mut chart = ChartBuilder::on(&panels[2])
        .caption(
            "queue depth: writes accepted and not yet in Redis (log scale; dashed: configured limit)",
            ("sans-serif", 17),
        )
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..x_max, (1f64..depth_max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("seconds since the start of the replay")
        .y_desc("writes")
        .y_label_formatter(&|v| {
            if *v >= 1e3 {
                format!("{:.0}k", v / 1e3)
            } else {
                format!("{v:.0}")
            }
        })
        .draw()?;
    for r in runs {
        let c = color(&r.path);
        chart
            .draw_series(LineSeries::new(
                r.series.iter().map(|b| (b.t_s, (b.depth as f64).max(1.0))),
                c.stroke_width(2),
            ))?
            .label(format!("{}: peak {}", r.path, r.peak_queue_depth))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        let limit = r.configured_depth as f64;
        let dashes = (0..((x_max * 4.0) as usize)).map(|i| {
            let x0 = i as f64 * 0.25;
            PathElement::new(vec![(x0, limit), (x0 + 0.15, limit)], c.stroke_width(1))
        });
        chart
            .draw_series(dashes)?
            .label(format!(
                "{}: configured limit {}{}",
                r.path,
                r.configured_depth,
                if r.depth_enforced {
                    ""
                } else {
                    " (not enforced)"
                }
            ))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 8, y)], c.stroke_width(1)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
