//! The `burst` report: counts add up, percentiles are right, and `report.json` has the
//! documented layout.
#![cfg(not(feature = "loom"))]

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value as Json;
use slotline_bench::burst::plot::OUTAGE_FILL;
use slotline_bench::burst::readback::ReadBack;
use slotline_bench::burst::replay::{payload, seq_of, DepthSample, Outcome, PathRun, Record};
use slotline_bench::burst::report::{
    Latency, Machine, Params, PathExtras, PathReport, Report, SlotlineParams, TraceSummary, SCHEMA,
};
use slotline_bench::burst::sidecar::SidecarParams;
use slotline_bench::burst::trace::{Event, Trace};
use slotline_bench::burst::write_outputs;

/// Ten events, 10 ms apart, on two keys.
fn trace() -> Trace {
    Trace {
        name: "tiny".to_owned(),
        keys: vec!["geo:{user0}".to_owned(), "geo:{user1}".to_owned()],
        events: (0..10)
            .map(|i| Event {
                t_us: i * 10_000,
                key: (i % 2) as u32,
                bytes: 48,
            })
            .collect(),
    }
}

/// Eight acknowledged (latency 1..=8 ms), one refused, one unknown.
fn run() -> PathRun {
    let t = trace();
    let records = t
        .events
        .iter()
        .enumerate()
        .map(|(i, e)| Record {
            send_us: e.t_us,
            done_us: e.t_us + (i as u64 + 1) * 1_000,
            outcome: match i {
                8 => Outcome::Refused,
                9 => Outcome::Unknown,
                _ => Outcome::Ok,
            },
        })
        .collect();
    PathRun {
        start_unix_us: 1,
        records,
        samples: vec![
            DepthSample {
                t_us: 0,
                depth: 3,
                bytes: 300,
                kernel_bytes: 10,
                rss_kib: Some(1100),
                proxy_rss_kib: None,
            },
            DepthSample {
                t_us: 50_000,
                depth: 7,
                bytes: 700,
                kernel_bytes: 5,
                rss_kib: None,
                proxy_rss_kib: None,
            },
        ],
        errors: BTreeMap::from([("rejected (backpressure)".to_owned(), 1)]),
        in_redis_us: None,
        after_ack: BTreeMap::new(),
        caller_base_rss_kib: 1000,
        caller_peak_rss_kib: 1024,
    }
}

fn report() -> Report {
    let t = trace();
    let path = PathReport::build(
        &t,
        &run(),
        ReadBack {
            keys_checked: 2,
            ..ReadBack::default()
        },
        PathExtras {
            path: "slotline".to_owned(),
            configured_depth: 100,
            depth_enforced: true,
            ..PathExtras::default()
        },
    );
    Report {
        schema: SCHEMA,
        command: "burst --duration 1".to_owned(),
        machine: Machine {
            cpus: 2,
            ..Machine::default()
        },
        params: Params {
            duration_s: 0.1,
            rate: 100.0,
            burst_factor: 10.0,
            seed: 1,
            users: 2,
            zipf_s: 1.0,
            callers: 1,
            runs: 1,
            trace_file: None,
            sidecar: SidecarParams::default(),
            slotline: SlotlineParams::default(),
        },
        traces: vec![TraceSummary::of(&t)],
        runs: vec![path],
        wall_s: 1.0,
    }
}

#[test]
fn counts_add_up_and_percentiles_come_from_the_scheduled_time() {
    let r = &report().runs[0];
    assert_eq!(
        (r.offered, r.acknowledged, r.rejected, r.unknown, r.pending),
        (10, 8, 1, 1, 0)
    );
    assert_eq!(
        r.offered,
        r.acknowledged + r.rejected + r.unknown + r.pending
    );
    // Caller latency covers every outcome: 1..=10 ms.
    assert_eq!(r.caller_latency_ms.count, 10);
    assert_eq!(r.caller_latency_ms.max, 10.0);
    assert_eq!(r.caller_latency_ms.p50, 5.0);
    // Until in Redis: acknowledged writes only, 1..=8 ms.
    assert_eq!(r.in_redis_latency_ms.count, 8);
    assert_eq!(r.in_redis_latency_ms.max, 8.0);
    assert_eq!(r.peak_queue_depth, 7);
    assert_eq!(r.peak_bytes_buffered, 700);
    assert_eq!(r.peak_acked_not_in_redis, 0);
    // The series runs to the last answer (the unknown write, told at 100 ms), past the
    // trace's last event (90 ms).
    assert_eq!(r.series.len(), 2);
    assert_eq!(r.series[0].offered_per_s, 100.0);
    assert_eq!(r.series[1].offered_per_s, 0.0);
    // Confirmed by Redis: the 8 acknowledged writes (a client's ACK is Redis's reply).
    assert_eq!(r.series[0].confirmed_per_s, 80.0);
    assert_eq!(r.series[0].acked_per_s, 80.0);
    // Failed visibly, by when the caller was told: the refusal at 89 ms, the unknown at 100.
    assert_eq!(
        (r.series[0].failed_per_s, r.series[1].failed_per_s),
        (10.0, 10.0)
    );
    // ... and cumulative by scheduled time: both were scheduled in the first bucket.
    assert_eq!((r.series[0].failed_cum, r.series[1].failed_cum), (2, 2));
    assert_eq!((r.series[0].lost_cum, r.series[1].lost_cum), (0, 0));
    // Memory: growth over the base (1000 KiB), only in a bucket whose sample read it.
    assert_eq!(
        (r.series[0].rss_kib, r.series[1].rss_kib),
        (Some(100), None)
    );
    assert_eq!(r.series[0].proxy_rss_kib, None);
    // The flat summary fields repeat the figures above.
    assert_eq!(r.scenario, "tiny");
    assert_eq!((r.acked, r.acked_lost, r.failed_visibly), (8, 0, 2));
    assert_eq!(r.p99_caller_ms, r.caller_latency_ms.p99);
    assert_eq!(r.p99_until_in_redis_ms, r.in_redis_latency_ms.p99);
    assert_eq!(r.peak_in_flight, 7);
}

#[test]
fn latency_percentiles_are_nearest_rank() {
    let mut us: Vec<u64> = (1..=1000).rev().map(|i| i * 1000).collect();
    let l = Latency::of(&mut us);
    assert_eq!(
        (l.count, l.p50, l.p99, l.p999, l.max),
        (1000, 500.0, 990.0, 999.0, 1000.0)
    );
    assert_eq!(Latency::of(&mut []), Latency::default());
}

#[test]
fn payload_is_unique_sized_and_names_its_write() {
    let mut a = Vec::new();
    let mut b = Vec::new();
    payload(41, 64, &mut a);
    payload(42, 64, &mut b);
    assert_eq!(a.len(), 64);
    assert_ne!(a, b);
    assert_eq!(seq_of(&a), Some(41));
    payload(123_456_789, 5, &mut a);
    assert!(a.len() > 5, "a value never truncates its prefix");
    assert_eq!(seq_of(&a), Some(123_456_789));
    assert_eq!(seq_of(b"no bar here"), None);
}

/// The type of each field a reader of `report.json` relies on.
fn expect(v: &Json, path: &str, kind: &str) {
    let mut cur = v;
    for part in path.split('.') {
        cur = match part.parse::<usize>() {
            Ok(i) => &cur[i],
            Err(_) => &cur[part],
        };
    }
    let ok = match kind {
        "number" => cur.is_number(),
        "string" => cur.is_string(),
        "bool" => cur.is_boolean(),
        "array" => cur.is_array(),
        "object" => cur.is_object(),
        "number|null" => cur.is_number() || cur.is_null(),
        _ => unreachable!(),
    };
    assert!(ok, "`{path}` should be {kind}, is {cur}");
}

#[test]
fn json_report_has_the_documented_layout_and_round_trips() {
    let report = report();
    let v = serde_json::to_value(&report).unwrap();
    for (path, kind) in [
        ("schema", "number"),
        ("command", "string"),
        ("wall_s", "number"),
        ("machine.cpus", "number"),
        ("machine.redis_version", "string"),
        ("machine.cluster", "string"),
        ("params.rate", "number"),
        ("params.burst_factor", "number"),
        ("params.seed", "number"),
        ("params.callers", "number"),
        ("params.sidecar.depth", "number"),
        ("params.sidecar.enforce", "bool"),
        ("params.sidecar.window", "number"),
        ("params.sidecar.grace", "number"),
        ("params.slotline.shards", "number"),
        ("params.slotline.backpressure_limit", "number"),
        ("traces.0.name", "string"),
        ("traces.0.events", "number"),
        ("traces.0.rate_10ms.mean", "number"),
        ("traces.0.rate_10ms.std_dev", "number"),
        ("traces.0.rate_10ms.top1pct_share", "number"),
        ("runs.0.path", "string"),
        ("runs.0.trace", "string"),
        ("runs.0.scenario", "string"),
        ("runs.0.p99_until_in_redis_ms", "number"),
        ("runs.0.p99_caller_ms", "number"),
        ("runs.0.acked", "number"),
        ("runs.0.acked_lost", "number"),
        ("runs.0.failed_visibly", "number"),
        ("runs.0.peak_rss_bytes", "number"),
        ("runs.0.peak_in_flight", "number"),
        ("runs.0.offered", "number"),
        ("runs.0.acknowledged", "number"),
        ("runs.0.rejected", "number"),
        ("runs.0.unknown", "number"),
        ("runs.0.pending", "number"),
        ("runs.0.lost", "number"),
        ("runs.0.errors", "object"),
        ("runs.0.read_back.keys_checked", "number"),
        ("runs.0.read_back.acked_checked", "number"),
        ("runs.0.read_back.lost", "number"),
        ("runs.0.read_back.phantom", "number"),
        ("runs.0.read_back.unknown_applied", "number"),
        ("runs.0.read_back.unknown_absent", "number"),
        ("runs.0.read_back.foreign", "number"),
        ("runs.0.throughput_per_s", "number"),
        ("runs.0.caller_latency_ms.p50", "number"),
        ("runs.0.caller_latency_ms.p99", "number"),
        ("runs.0.caller_latency_ms.p999", "number"),
        ("runs.0.caller_latency_ms.max", "number"),
        ("runs.0.in_redis_latency_ms.p99", "number"),
        ("runs.0.peak_queue_depth", "number"),
        ("runs.0.configured_depth", "number"),
        ("runs.0.depth_enforced", "bool"),
        ("runs.0.peak_acked_not_in_redis", "number"),
        ("runs.0.peak_bytes_buffered", "number"),
        ("runs.0.peak_kernel_bytes", "number"),
        ("runs.0.after_ack_failures", "object"),
        ("runs.0.peak_rss.callers_base_kib", "number"),
        ("runs.0.peak_rss.callers_peak_kib", "number"),
        ("runs.0.series", "array"),
        ("runs.0.series.0.t_s", "number"),
        ("runs.0.series.0.offered_per_s", "number"),
        ("runs.0.series.0.acked_per_s", "number"),
        ("runs.0.series.0.in_redis_p99_ms", "number|null"),
        ("runs.0.series.0.depth", "number"),
        ("runs.0.series.0.confirmed_per_s", "number"),
        ("runs.0.series.0.failed_per_s", "number"),
        ("runs.0.series.0.rss_kib", "number|null"),
        ("runs.0.series.0.proxy_rss_kib", "number|null"),
        ("runs.0.series.0.lost_cum", "number"),
        ("runs.0.series.0.failed_cum", "number"),
    ] {
        expect(&v, path, kind);
    }
    assert_eq!(v["schema"], 4);
    assert_eq!(SCHEMA, 4);
    let back: Report = serde_json::from_value(v).unwrap();
    assert_eq!(back, report);
}

#[test]
fn outputs_are_a_json_file_and_an_svg_plot() {
    let dir: PathBuf = std::env::temp_dir().join(format!("burst-report-{}", std::process::id()));
    let out = write_outputs(&report(), &dir).unwrap();
    let json: Report = serde_json::from_str(&std::fs::read_to_string(&out.json).unwrap()).unwrap();
    assert_eq!(json.runs.len(), 1);
    assert_eq!(out.svgs, [dir.join("report.svg")]);
    let svg = std::fs::read_to_string(&out.svgs[0]).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
    assert!(svg.contains("Queue depth"));
    assert!(
        !svg.contains(OUTAGE_FILL),
        "no outage, no shaded band: {OUTAGE_FILL}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn story_table_has_one_row_per_run() {
    let table = report().story_table();
    assert_eq!(table.lines().count(), 3, "{table}");
    assert!(
        table
            .lines()
            .nth(2)
            .unwrap()
            .starts_with("| slotline | tiny |"),
        "{table}"
    );
}

#[test]
fn summary_table_gives_the_median_and_range_of_a_repeated_scenario() {
    let mut report = report();
    let first = report.runs[0].clone();
    for (rep, p99) in [(1, 30.0), (2, 10.0)] {
        let mut r = first.clone();
        r.repetition = rep;
        r.p99_until_in_redis_ms = p99;
        report.runs.push(r);
    }
    report.runs[0].p99_until_in_redis_ms = 20.0;
    let table = report.summary_table();
    let rows: Vec<&str> = table.lines().skip(2).collect();
    assert_eq!(rows.len(), 1, "one row per scenario and path: {table}");
    assert!(
        rows[0].starts_with("| tiny | slotline | 3 | 20.0 ms (10.0 ms–30.0 ms) |"),
        "{table}"
    );
    assert!(report.story_table().contains("| slotline | tiny #3 |"));
}

#[test]
fn verdicts_compare_every_path_by_its_median_run_and_bold_a_peer_that_beats_slotline() {
    use slotline_bench::burst::report::Latency;
    let run = |path: &str, rep: usize, p99: f64, lost: u64| PathReport {
        path: path.to_owned(),
        trace: "heavy".to_owned(),
        repetition: rep,
        in_redis_latency_ms: Latency {
            p99,
            ..Latency::default()
        },
        lost,
        ..PathReport::default()
    };
    let r = Report {
        runs: vec![
            run("sidecar", 0, 100.0, 5),
            run("slotline", 0, 50.0, 0),
            run("redis-rs", 0, 9.0, 0),
            // slotline's median of three is 10 ms: even with redis-rs's 9 ms (within 10 %).
            run("slotline", 1, 10.0, 0),
            run("slotline", 2, 8.0, 0),
            run("fred", 0, 30.0, 0),
        ],
        ..report()
    };
    let v = r.verdicts();
    assert!(
        v.contains("| metric | sidecar | slotline | redis-rs | fred | best |"),
        "{v}"
    );
    let p99 = v
        .lines()
        .find(|l| l.starts_with("| p99 until in Redis"))
        .unwrap();
    assert!(p99.contains("| slotline, redis-rs |"), "{p99}");
    let lost = v
        .lines()
        .find(|l| l.starts_with("| lost after ACK"))
        .unwrap();
    assert!(lost.ends_with("| slotline, redis-rs, fred |"), "{lost}");
    // A metric a peer wins alone is in bold.
    let r = Report {
        runs: vec![run("slotline", 0, 50.0, 0), run("fred", 0, 20.0, 0)],
        ..report()
    };
    let v = r.verdicts();
    let p99 = v
        .lines()
        .find(|l| l.starts_with("| p99 until in Redis"))
        .unwrap();
    assert!(p99.ends_with("| **fred** |"), "{p99}");
}

/// Fifty events 10 ms apart (0.5 s) on two keys, every one acknowledged after 1 ms.
fn half_second() -> (Trace, PathRun) {
    let t = Trace {
        events: (0..50)
            .map(|i| Event {
                t_us: i * 10_000,
                key: (i % 2) as u32,
                bytes: 48,
            })
            .collect(),
        ..trace()
    };
    let run = PathRun {
        records: t
            .events
            .iter()
            .map(|e| Record {
                send_us: e.t_us,
                done_us: e.t_us + 1_000,
                outcome: Outcome::Ok,
            })
            .collect(),
        ..PathRun::default()
    };
    (t, run)
}

#[test]
fn a_lost_write_shows_in_lost_cum_from_its_scheduled_bucket_on() {
    let (t, run) = half_second();
    // Write 23 is scheduled at 230 ms, in the third bucket.
    let r = PathReport::build(
        &t,
        &run,
        ReadBack {
            lost: 1,
            acked_checked: 50,
            ..ReadBack::default()
        },
        PathExtras {
            lost_writes: vec![23],
            ..PathExtras::default()
        },
    );
    let lost: Vec<u64> = r.series.iter().map(|b| b.lost_cum).collect();
    assert_eq!(lost, [0, 0, 1, 1, 1], "lost_cum by bucket");
    assert!(r.series.iter().all(|b| b.failed_cum == 0));
    assert_eq!(r.acked_lost, 1);
}

#[test]
fn a_sidecar_like_run_confirms_after_it_acknowledges_and_the_series_covers_the_drain() {
    let (t, mut run) = half_second();
    // Acknowledged within 1 ms, in Redis 700 ms after the scheduled time (a backlog): the
    // last confirmation is at 490 + 700 = 1190 ms, past the trace's end at 490 ms.
    run.in_redis_us = Some(t.events.iter().map(|e| Some(e.t_us + 700_000)).collect());
    let r = PathReport::build(&t, &run, ReadBack::default(), PathExtras::default());
    assert_eq!(r.series.len(), 12, "0 to 1.2 s in 100 ms buckets");
    let acked: f64 = r.series.iter().map(|b| b.acked_per_s).sum();
    let confirmed: f64 = r.series.iter().map(|b| b.confirmed_per_s).sum();
    assert_eq!((acked, confirmed), (500.0, 500.0), "50 writes at 10/bucket");
    for b in &r.series[..5] {
        assert_eq!((b.acked_per_s, b.confirmed_per_s), (100.0, 0.0), "{b:?}");
    }
    for b in &r.series[7..] {
        assert_eq!((b.acked_per_s, b.confirmed_per_s), (0.0, 100.0), "{b:?}");
    }
    assert_eq!(r.series[3].in_redis_p99_ms, Some(700.0));
    assert!((r.duration_s - 1.19).abs() < 1e-9, "{}", r.duration_s);
}

#[test]
fn proxy_memory_is_kept_beside_the_callers_growth() {
    let (t, mut run) = half_second();
    run.caller_base_rss_kib = 5_000;
    run.samples = [
        (50_000, 5_400, 9_000),
        (150_000, 5_900, 9_500),
        (160_000, 5_800, 9_700),
    ]
    .iter()
    .map(|&(t_us, own, proxy)| DepthSample {
        t_us,
        rss_kib: Some(own),
        proxy_rss_kib: Some(proxy),
        ..DepthSample::default()
    })
    .collect();
    let r = PathReport::build(&t, &run, ReadBack::default(), PathExtras::default());
    let mem: Vec<(Option<u64>, Option<u64>)> = r
        .series
        .iter()
        .map(|b| (b.rss_kib, b.proxy_rss_kib))
        .collect();
    assert_eq!(
        mem,
        [
            (Some(400), Some(9_000)),
            (Some(900), Some(9_700)),
            (None, None),
            (None, None),
            (None, None)
        ],
        "the largest sample of each bucket; nothing where nothing was sampled"
    );
}

/// A report of three scenarios through two paths, the outage scenario in the middle, plus a
/// second run of `heavy` (not plotted).
fn three_scenarios() -> Report {
    let mut report = report();
    let base = report.runs[0].clone();
    let mut runs = Vec::new();
    for scenario in ["heavy", "heavy-outage", "poisson"] {
        for path in ["slotline", "sidecar"] {
            let mut r = base.clone();
            r.trace = scenario.to_owned();
            r.scenario = scenario.to_owned();
            r.path = path.to_owned();
            if scenario == "heavy-outage" {
                r.outage_ms = Some((20.0, 50.0));
            }
            runs.push(r);
        }
    }
    let mut again = runs[0].clone();
    again.repetition = 1;
    runs.push(again);
    report.runs = runs;
    report
}

#[test]
fn every_scenario_gets_a_plot_and_report_svg_is_the_outage_one() {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("burst-report-scenarios-{}", std::process::id()));
    let out = write_outputs(&three_scenarios(), &dir).unwrap();
    assert_eq!(
        out.svgs,
        [
            dir.join("report.svg"),
            dir.join("report-heavy.svg"),
            dir.join("report-poisson.svg")
        ]
    );
    let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap();
    let main = read(&out.svgs[0]);
    assert!(
        main.contains("`heavy-outage` scenario"),
        "report.svg is the outage scenario"
    );
    // The band: one rect per panel (5 rows × 2 columns), plus its swatch in each row's legend.
    let band = format!("fill=\"{OUTAGE_FILL}\"");
    let rects = main
        .lines()
        .filter(|l| l.trim_start().starts_with("<rect") && l.contains(&band))
        .count();
    assert_eq!(rects, 5 * 2 + 5, "shaded outage rects in report.svg");
    assert!(main.contains("frozen (SIGSTOP), 0.02 s to 0.07 s"));
    for other in &out.svgs[1..] {
        let svg = read(other);
        assert!(svg.starts_with("<svg"));
        assert!(
            !svg.contains(&band),
            "{}: no outage, no band",
            other.display()
        );
    }
    assert!(read(&out.svgs[1]).contains("`heavy` scenario"));
    // Columns in a fixed order, the sidecar first, whatever order the runs came in.
    let (side, slot) = (
        main.find("sidecar: 10 offered").unwrap(),
        main.find("slotline: 10 offered").unwrap(),
    );
    assert!(side < slot);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn each_depth_sample_takes_the_latest_memory_reading_before_it() {
    use slotline_bench::burst::replay::{attach_rss, RssSample};
    let start = 1_000_000;
    let reading = |unix_us, own, proxy| RssSample {
        unix_us,
        rss_kib: Some(own),
        other_kib: proxy,
    };
    let rss = [
        reading(start + 10_000, 100, Some(7)),
        reading(start + 110_000, 200, Some(8)),
        reading(start + 210_000, 300, None),
    ];
    let mut samples: Vec<DepthSample> = [0, 20_000, 110_000, 150_000, 400_000]
        .iter()
        .map(|&t_us| DepthSample {
            t_us,
            ..DepthSample::default()
        })
        .collect();
    attach_rss(&mut samples, &rss, start);
    let got: Vec<(Option<u64>, Option<u64>)> = samples
        .iter()
        .map(|s| (s.rss_kib, s.proxy_rss_kib))
        .collect();
    assert_eq!(
        got,
        [
            (Some(100), Some(7)),
            (Some(100), Some(7)),
            (Some(200), Some(8)),
            (Some(200), Some(8)),
            (Some(300), None)
        ]
    );
}

#[test]
fn the_ideal_queue_waits_only_for_earlier_writes_at_its_rate() {
    use slotline_bench::burst::report::IdealQueue;
    // Writes 1 ms apart served at 2,000/s never queue: each waits its 0.5 ms of service.
    let spaced = Trace {
        name: "spaced".to_owned(),
        keys: vec!["k".to_owned()],
        events: (0..1000)
            .map(|i| Event {
                t_us: i * 1000,
                key: 0,
                bytes: 40,
            })
            .collect(),
    };
    let i = IdealQueue::on(&spaced, 2_000.0);
    assert!((i.p99_ms - 0.5).abs() < 1e-9, "{i:?}");
    // The same writes in one burst of 1,000 at t = 0: the 990th waits 990 × 0.5 ms.
    let burst = Trace {
        events: (0..1000)
            .map(|_| Event {
                t_us: 0,
                key: 0,
                bytes: 40,
            })
            .collect(),
        ..spaced
    };
    let i = IdealQueue::on(&burst, 2_000.0);
    assert!((i.p99_ms - 495.0).abs() < 1e-9, "{i:?}");
    assert!((i.p99_at_double_rate_ms - 247.5).abs() < 1e-9, "{i:?}");
    // No rate, no claim.
    assert_eq!(IdealQueue::on(&burst, 0.0).p99_ms, 0.0);
}

#[test]
fn the_ceiling_table_shows_each_paths_median_run() {
    use slotline_bench::burst::report::{IdealQueue, Latency};
    let run = |path: &str, rep: usize, p99: f64, rate: f64| PathReport {
        path: path.to_owned(),
        trace: "heavy".to_owned(),
        scenario: "heavy".to_owned(),
        repetition: rep,
        in_redis_latency_ms: Latency {
            p99,
            ..Latency::default()
        },
        own_ceiling: Some(IdealQueue {
            rate_per_s: rate,
            p99_ms: p99 * 0.9,
            p99_at_double_rate_ms: 0.0,
        }),
        ..PathReport::default()
    };
    let r = Report {
        runs: vec![
            run("slotline", 0, 30.0, 100_000.0),
            run("slotline", 1, 10.0, 150_000.0),
            run("slotline", 2, 20.0, 120_000.0),
            run("fred", 0, 100.0, 50_000.0),
        ],
        ..report()
    };
    let t = r.ceiling_table();
    assert!(
        t.contains("| heavy | slotline | 120000/s | 18.0 ms | 20.0 ms |"),
        "{t}"
    );
    assert!(
        t.contains("| heavy | fred | 50000/s | 90.0 ms | 100 ms |"),
        "{t}"
    );
    assert_eq!(t.lines().count(), 4, "{t}");
}
