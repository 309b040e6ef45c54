//! The plots: one SVG per scenario, one column per write path, one row per question a
//! skeptical reader asks (plotters, SVG backend).
//!
//! Rows, every one on the same axes across the columns so that the paths compare at a glance:
//!
//! 1. **Rates**: offered writes per second (the trace), writes *confirmed in Redis* per second
//!    (for the sidecar when its proxy saw Redis's reply, not its enqueue ACK; for the clients
//!    their ACK, which is Redis's reply), and writes whose callers were told of a failure.
//! 2. **p99 until in Redis** of the writes scheduled in each 100 ms bucket (log scale).
//! 3. **Memory**: how much the path's processes grew since the replay started: the `burst`
//!    process (callers, and the client on the in-process paths) plus, for the sidecar, the
//!    proxy process's whole resident set.
//! 4. **Queue depth / in flight**: writes the path accepted that Redis has not confirmed
//!    (log scale), with the path's configured limit, if any.
//! 5. **Losses**: acknowledged writes the read-back did not find and writes failed visibly,
//!    cumulative by scheduled time, so a reader sees *when* acknowledged writes were lost.
//!
//! The x axis runs from the replay's start past the end of the trace (dotted line) to the
//! last write confirmed (or answered), so a backlog drained after the trace shows. The
//! cluster's outage, if the scenario has one, is shaded in every panel ([`OUTAGE_FILL`]).

use std::path::Path;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::report::{ms_text, Bucket, PathReport, Report, BUCKET_MS};

/// The outage band's fill in the SVG (`fill="#FFC878"` on its `rect`s).
pub const OUTAGE_FILL: &str = "#FFC878";
const OUTAGE: RGBColor = RGBColor(0xFF, 0xC8, 0x78);
const OFFERED: RGBColor = RGBColor(120, 120, 120);
const CONFIRMED: RGBColor = RGBColor(31, 119, 180);
const FAILED: RGBColor = RGBColor(255, 127, 14);
const LOST: RGBColor = RGBColor(214, 39, 40);
const PROXY: RGBColor = RGBColor(44, 160, 44);
const LIMIT: RGBColor = RGBColor(60, 60, 60);
const TRACE_END: RGBColor = RGBColor(150, 150, 150);

/// Width of one path's column, pixels.
const COLUMN: u32 = 430;
/// Height of the header (title, parameters, how to read the plot).
const HEAD: u32 = 112;
/// Height of one row: its title strip and the panels.
const ROW: u32 = 262;
/// Height of a row's title strip (title and legend, above the data).
const STRIP: u32 = 24;
const ROWS: u32 = 5;

/// The paths in the order of the columns: the sidecar first, then slotline, then the peers.
fn rank(path: &str) -> usize {
    ["sidecar", "slotline", "redis-rs", "fred"]
        .iter()
        .position(|&p| p == path)
        .unwrap_or(4)
}

/// Draws the first run (`repetition == 0`) of each path through the scenario `trace` of
/// `report` into `out` (an `.svg` file).
///
/// # Errors
///
/// A message when drawing or writing fails, or no run used `trace`.
pub fn plot(report: &Report, trace: &str, out: &Path) -> Result<(), String> {
    let mut runs: Vec<&PathReport> = report
        .runs
        .iter()
        .filter(|r| r.trace == trace && r.repetition == 0)
        .collect();
    if runs.is_empty() {
        return Err(format!("no run replayed the trace `{trace}`"));
    }
    runs.sort_by_key(|r| rank(&r.path));
    draw(report, trace, &runs, out).map_err(|e| format!("plot {}: {e}", out.display()))
}

/// `1234567` → `1,234,567`.
pub(super) fn thousands(v: u64) -> String {
    let digits = v.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The path's memory growth in a bucket, MiB: the `burst` process's growth plus the proxy's
/// resident set; `None` if the bucket has no sample.
fn memory_mib(b: &Bucket) -> Option<f64> {
    match (b.rss_kib, b.proxy_rss_kib) {
        (None, None) => None,
        (own, proxy) => Some((own.unwrap_or(0) + proxy.unwrap_or(0)) as f64 / 1024.0),
    }
}

/// What every panel shares: the x range, the trace's end, the outage.
struct Frame {
    x_max: f64,
    trace_end_s: f64,
    outage_s: Option<(f64, f64)>,
}

type Chart<'a, 'b, Y> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, Y>>;
type Drawn = Result<(), Box<dyn std::error::Error>>;

/// A panel with its caption, the shared x axis and `y`; the outage band and the end of the
/// trace drawn behind the data.
fn panel<'a, 'b, Y, R>(
    area: &DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    frame: &Frame,
    caption: &str,
    y: R,
    (y_lo, y_hi): (f64, f64),
    y_text: &dyn Fn(&f64) -> String,
) -> Result<Chart<'a, 'b, Y>, Box<dyn std::error::Error>>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
    R: AsRangedCoord<CoordDescType = Y, Value = f64>,
    'b: 'a,
{
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 14))
        .margin_left(6)
        .margin_right(14)
        .margin_top(4)
        .margin_bottom(2)
        .x_label_area_size(22)
        .y_label_area_size(52)
        .build_cartesian_2d(0f64..frame.x_max, y)?;
    chart
        .configure_mesh()
        .light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(215, 215, 215))
        .x_labels(8)
        .y_labels(6)
        .x_label_formatter(&|v| {
            if frame.x_max < 10.0 {
                format!("{v:.1} s")
            } else {
                format!("{v:.0} s")
            }
        })
        .y_label_formatter(y_text)
        .label_style(("sans-serif", 11))
        .draw()?;
    if let Some((from, to)) = frame.outage_s {
        chart.draw_series(std::iter::once(Rectangle::new(
            [(from, y_lo), (to.min(frame.x_max), y_hi)],
            OUTAGE.mix(0.45).filled(),
        )))?;
    }
    chart.draw_series(DashedLineSeries::new(
        [(frame.trace_end_s, y_lo), (frame.trace_end_s, y_hi)],
        3,
        4,
        TRACE_END.stroke_width(1),
    ))?;
    Ok(chart)
}

/// A row's title and legend, drawn in its strip above the panels (never over data).
fn strip(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    legend: &[(&str, RGBColor, bool)],
) -> Drawn {
    let bold = ("sans-serif", 15).into_font().style(FontStyle::Bold);
    area.draw_text(title, &bold.color(&BLACK), (12, 5))?;
    let font = ("sans-serif", 13).into_font();
    let mut x = 12 + (title.chars().count() as i32) * 8 + 24;
    for &(label, color, dashed) in legend {
        if dashed {
            area.draw(&PathElement::new(
                vec![(x, 12), (x + 7, 12)],
                color.stroke_width(2),
            ))?;
            area.draw(&PathElement::new(
                vec![(x + 13, 12), (x + 20, 12)],
                color.stroke_width(2),
            ))?;
        } else if color == OUTAGE {
            area.draw(&Rectangle::new(
                [(x, 5), (x + 20, 19)],
                OUTAGE.mix(0.45).filled(),
            ))?;
        } else {
            area.draw(&PathElement::new(
                vec![(x, 12), (x + 20, 12)],
                color.stroke_width(2),
            ))?;
        }
        area.draw_text(label, &font.color(&BLACK), (x + 25, 6))?;
        x += 25 + (label.chars().count() as i32) * 7 + 22;
    }
    Ok(())
}

fn draw(report: &Report, trace: &str, runs: &[&PathReport], out: &Path) -> Drawn {
    let columns = runs.len() as u32;
    let width = (COLUMN * columns).max(900) + 20;
    let root = SVGBackend::new(out, (width, HEAD + ROWS * ROW)).into_drawing_area();
    root.fill(&WHITE)?;
    let (head, body) = root.split_vertically(HEAD);
    let (_, body) = body.split_horizontally(10);
    let p = &report.params;
    let trace_end_s = report
        .traces
        .iter()
        .find(|t| t.name == trace)
        .map_or(0.0, |t| t.duration_s);
    let x_max = runs
        .iter()
        .map(|r| r.series.len() as f64 * BUCKET_MS as f64 / 1e3)
        .fold(trace_end_s, f64::max)
        .max(0.1);
    let outage_s = runs
        .iter()
        .find_map(|r| r.outage_ms)
        .map(|(at, length)| (at / 1e3, (at + length) / 1e3));
    let frame = Frame {
        x_max,
        trace_end_s,
        outage_s,
    };

    head.draw_text(
        &format!(
            "burst: the `{trace}` scenario through each write path on a local Redis Cluster \
             (first run of each)"
        ),
        &("sans-serif", 21).into_font().color(&BLACK),
        (20, 10),
    )?;
    let grey = ("sans-serif", 13).into_font().color(&RGBColor(60, 60, 60));
    head.draw_text(
        &format!(
            "trace: mean {:.0} writes/s, burst factor {}, seed {}, {} callers; sidecar: depth {} ({}), \
             window {} ms, grace {} s; slotline: {} shards × ring {}, backpressure at {} ({})",
            p.rate,
            p.burst_factor,
            p.seed,
            p.callers,
            p.sidecar.depth,
            if p.sidecar.enforce { "enforced" } else { "not enforced" },
            p.sidecar.window.as_millis(),
            p.sidecar.grace.as_secs_f64(),
            p.slotline.shards,
            p.slotline.ring_capacity,
            p.slotline.backpressure_limit,
            p.slotline.fallback,
        ),
        &grey,
        (20, 40),
    )?;
    head.draw_text(
        &format!(
            "x: seconds since the replay started, {BUCKET_MS} ms buckets, on to the last write \
             confirmed in Redis (dotted line: the trace ends at {trace_end_s:.1} s; what follows \
             is the paths draining their backlog).{}",
            match outage_s {
                Some((from, to)) => format!(
                    " Shaded: every node of the cluster frozen (SIGSTOP), {from:.2} s to {to:.2} s."
                ),
                None => String::new(),
            }
        ),
        &grey,
        (20, 62),
    )?;
    let proxy_sampled = runs
        .iter()
        .any(|r| r.series.iter().any(|b| b.proxy_rss_kib.is_some()));
    let sidecar_run = runs.iter().any(|r| r.path == "sidecar");
    head.draw_text(
        &format!(
            "Same y axis across the columns in every row. Memory: growth of the `burst` process \
             (callers; the client too on the in-process paths) since the replay started{}.",
            match (sidecar_run, proxy_sampled) {
                (false, _) => "",
                (true, true) => ", plus, for the sidecar, the proxy process's whole resident set",
                (true, false) =>
                    "; the sidecar proxy's resident set was not sampled and is left out",
            }
        ),
        &grey,
        (20, 84),
    )?;

    let rows = body.split_evenly((ROWS as usize, 1));
    let mut row_areas = Vec::new();
    for row in &rows {
        let (title, panels) = row.split_vertically(STRIP);
        let cells = panels.split_evenly((1, columns as usize));
        row_areas.push((title, cells));
    }
    let outage_legend = ("cluster frozen", OUTAGE, false);
    let with_outage = |mut v: Vec<(&'static str, RGBColor, bool)>| {
        if outage_s.is_some() {
            v.push(outage_legend);
        }
        v
    };

    // 1. Rates.
    let rate_max = runs
        .iter()
        .flat_map(|r| {
            r.series
                .iter()
                .map(|b| b.offered_per_s.max(b.confirmed_per_s).max(b.failed_per_s))
        })
        .fold(10.0f64, f64::max)
        * 1.08;
    strip(
        &row_areas[0].0,
        "Writes per second",
        &with_outage(vec![
            ("offered (the trace)", OFFERED, false),
            ("confirmed in Redis", CONFIRMED, false),
            ("failed visibly (callers told)", FAILED, false),
        ]),
    )?;
    let rate_text = |v: &f64| {
        if *v >= 1e3 {
            format!("{:.0}k", v / 1e3)
        } else {
            format!("{v:.0}")
        }
    };
    for (r, area) in runs.iter().zip(&row_areas[0].1) {
        let confirmed: f64 =
            r.series.iter().map(|b| b.confirmed_per_s).sum::<f64>() * BUCKET_MS as f64 / 1e3;
        let mut chart = panel(
            area,
            &frame,
            &format!(
                "{}: {} offered, {} acked, {} confirmed",
                r.path,
                thousands(r.offered),
                thousands(r.acknowledged),
                thousands(confirmed.round() as u64)
            ),
            0f64..rate_max,
            (0.0, rate_max),
            &rate_text,
        )?;
        chart.draw_series(LineSeries::new(
            r.series.iter().map(|b| (b.t_s, b.offered_per_s)),
            OFFERED.stroke_width(1),
        ))?;
        chart.draw_series(LineSeries::new(
            r.series.iter().map(|b| (b.t_s, b.failed_per_s)),
            FAILED.stroke_width(2),
        ))?;
        chart.draw_series(LineSeries::new(
            r.series.iter().map(|b| (b.t_s, b.confirmed_per_s)),
            CONFIRMED.stroke_width(2),
        ))?;
    }

    // 2. p99 until in Redis, log scale.
    let p99s = || {
        runs.iter()
            .flat_map(|r| r.series.iter().filter_map(|b| b.in_redis_p99_ms))
    };
    let lat_min = p99s().fold(f64::INFINITY, f64::min).clamp(0.01, 1.0) / 2.0;
    let lat_max = p99s().fold(1.0f64, f64::max) * 2.0;
    strip(
        &row_areas[1].0,
        "p99 until in Redis, ms (log)",
        &with_outage(vec![(
            "p99 of the writes scheduled in each 100 ms, from the scheduled time",
            CONFIRMED,
            false,
        )]),
    )?;
    let ms_axis = |v: &f64| {
        if *v >= 1.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.2}")
        }
    };
    for (r, area) in runs.iter().zip(&row_areas[1].1) {
        let mut chart = panel(
            area,
            &frame,
            &format!(
                "{}: p99 over the run {}, max {}",
                r.path,
                ms_text(r.in_redis_latency_ms.p99),
                ms_text(r.in_redis_latency_ms.max)
            ),
            (lat_min..lat_max).log_scale(),
            (lat_min, lat_max),
            &ms_axis,
        )?;
        chart.draw_series(LineSeries::new(
            r.series
                .iter()
                .filter_map(|b| b.in_redis_p99_ms.map(|l| (b.t_s, l.max(lat_min)))),
            CONFIRMED.stroke_width(2),
        ))?;
    }

    // 3. Memory.
    let mem_max = runs
        .iter()
        .flat_map(|r| r.series.iter().filter_map(memory_mib))
        .fold(1.0f64, f64::max)
        * 1.1;
    let mut legend = vec![("the path's growth", CONFIRMED, false)];
    if proxy_sampled {
        legend.push(("of which the sidecar proxy process", PROXY, true));
    }
    strip(&row_areas[2].0, "Memory, MiB", &with_outage(legend))?;
    let mib_text = |v: &f64| format!("{v:.0}");
    for (r, area) in runs.iter().zip(&row_areas[2].1) {
        let peak = r
            .series
            .iter()
            .filter_map(memory_mib)
            .fold(0.0f64, f64::max);
        let proxy_peak = r
            .series
            .iter()
            .filter_map(|b| b.proxy_rss_kib)
            .max()
            .map(|k| format!(" (proxy {:.0} MiB)", k as f64 / 1024.0));
        let mut chart = panel(
            area,
            &frame,
            &format!(
                "{}: peak +{peak:.0} MiB{}",
                r.path,
                proxy_peak.unwrap_or_default()
            ),
            0f64..mem_max,
            (0.0, mem_max),
            &mib_text,
        )?;
        chart.draw_series(LineSeries::new(
            r.series
                .iter()
                .filter_map(|b| memory_mib(b).map(|m| (b.t_s, m))),
            CONFIRMED.stroke_width(2),
        ))?;
        chart.draw_series(DashedLineSeries::new(
            r.series
                .iter()
                .filter_map(|b| b.proxy_rss_kib.map(|k| (b.t_s, k as f64 / 1024.0)))
                .collect::<Vec<_>>(),
            6,
            4,
            PROXY.stroke_width(2),
        ))?;
    }

    // 4. Queue depth / in flight, log scale, with each path's limit.
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
        * 3.0;
    strip(
        &row_areas[3].0,
        "Queue depth / in flight (log)",
        &with_outage(vec![
            (
                "writes accepted, not yet confirmed by Redis",
                CONFIRMED,
                false,
            ),
            ("configured limit", LIMIT, true),
        ]),
    )?;
    let count_text = |v: &f64| {
        if *v >= 1e6 {
            format!("{:.0}M", v / 1e6)
        } else if *v >= 1e3 {
            format!("{:.0}k", v / 1e3)
        } else {
            format!("{v:.0}")
        }
    };
    for (r, area) in runs.iter().zip(&row_areas[3].1) {
        let limit = if r.configured_depth == 0 && !r.depth_enforced {
            "no limit".to_owned()
        } else {
            format!(
                "limit {}{}",
                thousands(r.configured_depth),
                if r.depth_enforced {
                    ""
                } else {
                    ", not enforced"
                }
            )
        };
        let mut chart = panel(
            area,
            &frame,
            &format!(
                "{}: peak {} ({limit})",
                r.path,
                thousands(r.peak_queue_depth)
            ),
            (1f64..depth_max).log_scale(),
            (1.0, depth_max),
            &count_text,
        )?;
        chart.draw_series(LineSeries::new(
            r.series.iter().map(|b| (b.t_s, (b.depth as f64).max(1.0))),
            CONFIRMED.stroke_width(2),
        ))?;
        if r.configured_depth > 0 {
            let limit = r.configured_depth as f64;
            chart.draw_series(DashedLineSeries::new(
                [(0.0, limit), (x_max, limit)],
                6,
                4,
                LIMIT.stroke_width(1),
            ))?;
        }
    }

    // 5. Losses, cumulative by scheduled time.
    let loss_max = runs
        .iter()
        .flat_map(|r| r.series.iter().map(|b| b.lost_cum.max(b.failed_cum)))
        .max()
        .unwrap_or(0)
        .max(10) as f64
        * 1.1;
    strip(
        &row_areas[4].0,
        "Writes lost or failed, cumulative by scheduled time",
        &with_outage(vec![
            ("acknowledged, not found by the read-back", LOST, false),
            ("failed visibly", FAILED, false),
        ]),
    )?;
    for (r, area) in runs.iter().zip(&row_areas[4].1) {
        let mut chart = panel(
            area,
            &frame,
            &format!(
                "{}: {} acked writes lost, {} failed visibly",
                r.path,
                thousands(r.lost),
                thousands(r.rejected + r.unknown)
            ),
            0f64..loss_max,
            (0.0, loss_max),
            &count_text,
        )?;
        chart.draw_series(LineSeries::new(
            r.series.iter().map(|b| (b.t_s, b.failed_cum as f64)),
            FAILED.stroke_width(2),
        ))?;
        chart.draw_series(LineSeries::new(
            r.series.iter().map(|b| (b.t_s, b.lost_cum as f64)),
            LOST.stroke_width(2),
        ))?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outage_fill_names_the_outage_colour() {
        let RGBColor(r, g, b) = OUTAGE;
        assert_eq!(format!("#{r:02X}{g:02X}{b:02X}"), OUTAGE_FILL);
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
