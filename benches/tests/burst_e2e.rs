//! A short `burst` run against a real local cluster through every path (the sidecar model,
//! slotline, redis-rs, fred): the loss accounting adds up.
//!
//! Needs `redis-server` and `redis-cli` (7 or newer) on `PATH`, as the client's tests do.
#![cfg(not(feature = "loom"))]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use slotline_bench::burst::args::{Args, PathKind, TraceKind};
use slotline_bench::burst::plot::OUTAGE_FILL;
use slotline_bench::burst::report::BUCKET_MS;
use slotline_bench::burst::{run, DROPPED_AT_STOP};
use slotline_testkit::LocalCluster;

/// A run measures this process's peak RSS (it resets `VmHWM` when a path starts), so the runs
/// of this file's tests, which share the process, go one at a time.
fn one_run_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static RUNS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    RUNS.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn args(cluster: &LocalCluster, out: &str) -> Args {
    Args {
        duration: Duration::from_secs(2),
        rate: 3_000.0,
        burst_factor: 8.0,
        seed: 5,
        users: 2_000,
        traces: vec![TraceKind::Heavy],
        runs: 1,
        callers: 4,
        nodes: Some(cluster.seed_addrs()),
        out: std::env::temp_dir().join(format!("burst-e2e-{}-{out}", std::process::id())),
        progress: false,
        proxy_program: Some(PathBuf::from(env!("CARGO_BIN_EXE_burst"))),
        ..Args::default()
    }
}

#[test]
fn offered_equals_acknowledged_plus_refused_and_slotline_loses_nothing() {
    let _one = one_run_at_a_time();
    let cluster = LocalCluster::start().expect("a local cluster (redis-server on PATH)");

    let a = args(&cluster, "drain");
    assert_eq!(a.paths, PathKind::ALL, "every path by default");
    let (report, outputs) = run(&a, "burst (test)").unwrap();
    let paths: Vec<&str> = report.runs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["sidecar", "slotline", "redis-rs", "fred"]);
    let events = report.traces[0].events;
    assert!(events > 3_000, "a 2 s trace at 3000/s has {events} events");
    // The floor is computed from the confirmed rates the runs reached.
    let ideal = report.traces[0]
        .ideal
        .expect("the ideal queue of the trace");
    let best = report
        .runs
        .iter()
        .flat_map(|r| r.series.iter().map(|b| b.confirmed_per_s))
        .fold(0.0f64, f64::max);
    assert_eq!(ideal.rate_per_s, best);
    assert!(ideal.p99_ms > 0.0 && ideal.p99_at_double_rate_ms <= ideal.p99_ms);
    for r in &report.runs {
        let own = r.own_ceiling.expect("every path confirmed writes");
        assert!(own.rate_per_s > 0.0 && own.rate_per_s <= best, "{}", r.path);
        // A slower server than the best one cannot give a lower p99.
        assert!(own.p99_ms >= ideal.p99_ms, "{}", r.path);
    }
    for r in &report.runs {
        let who = format!("{} / {}", r.path, r.trace);
        assert_eq!(r.offered, events, "{who}");
        assert_eq!(r.pending, 0, "{who}: writes left without an answer");
        assert_eq!(
            r.offered,
            r.acknowledged + r.rejected + r.unknown,
            "{who}: offered != acknowledged + rejected + unknown"
        );
        assert_eq!(
            r.lost, 0,
            "{who}: acknowledged writes missing from Redis: {:?}",
            r.read_back
        );
        assert_eq!(r.read_back.phantom, 0, "{who}");
        assert_eq!(r.read_back.foreign, 0, "{who}");
        assert_eq!(
            r.read_back.acked_checked, r.acknowledged,
            "{who}: every ack checked"
        );
        assert_eq!(
            r.read_back.unknown_applied + r.read_back.unknown_absent,
            r.unknown,
            "{who}"
        );
        assert!(r.read_back.keys_checked > 0, "{who}");
        let errors: u64 = r.errors.values().sum();
        assert_eq!(errors, r.rejected + r.unknown, "{who}: {:?}", r.errors);
    }
    let sidecar = &report.runs[0];
    assert_eq!(sidecar.path, "sidecar");
    // Drained: every acknowledged write was confirmed by Redis.
    assert_eq!(sidecar.in_redis_latency_ms.count, sidecar.acknowledged);
    assert!(sidecar.peak_rss.proxy_peak_kib.unwrap_or(0) > 0);
    // The exact peak depth counts acknowledged writes not yet confirmed: never more than were
    // acknowledged (a count taken after a flush settled the write would wrap it).
    assert!(
        sidecar.peak_queue_depth > 0 && sidecar.peak_queue_depth <= sidecar.acknowledged,
        "peak depth {} of {} acknowledged",
        sidecar.peak_queue_depth,
        sidecar.acknowledged
    );
    assert!(
        sidecar.after_ack_failures.is_empty(),
        "{:?}",
        sidecar.after_ack_failures
    );
    // The 100 ms window shows in the sidecar's until-in-Redis latency, not its callers'.
    assert!(sidecar.in_redis_latency_ms.p50 > sidecar.caller_latency_ms.p50);
    // slotline acknowledges only what Redis confirmed; that nothing acknowledged is missing is
    // the read-back's `lost == 0` above (its acked-not-in-Redis figure is 0 by construction).
    assert_eq!(report.runs[1].path, "slotline");
    // The peers: every write answered on a healthy cluster, an in-flight count sampled, no
    // configured bound, their memory measured.
    for peer in &report.runs[2..] {
        let who = &peer.path;
        assert_eq!(peer.acknowledged, peer.offered, "{who}: {:?}", peer.errors);
        assert_eq!(peer.in_redis_latency_ms.count, peer.acknowledged, "{who}");
        assert!(peer.peak_queue_depth > 0, "{who}: no in-flight sample");
        assert!(
            peer.series.iter().any(|b| b.depth > 0),
            "{who}: in flight over time"
        );
        assert_eq!(
            (peer.configured_depth, peer.depth_enforced),
            (0, false),
            "{who}"
        );
        assert_eq!(peer.peak_acked_not_in_redis, 0, "{who}");
        assert!(
            peer.peak_rss.callers_peak_kib >= peer.peak_rss.callers_base_kib
                && peer.peak_rss.callers_base_kib > 0,
            "{who}: {:?}",
            peer.peak_rss
        );
        assert!(peer.peak_rss.proxy_peak_kib.is_none(), "{who}");
    }
    let json: serde_json::Value =
        serde_json::from_reader(std::fs::File::open(&outputs.json).unwrap()).unwrap();
    let json_paths: Vec<&str> = json["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(json_paths, paths);
    assert!(report.story_table().contains("| redis-rs | heavy |"));
    assert!(report.story_table().contains("/ none (unbounded)"));
    assert!(outputs.json.exists());
    assert_eq!(outputs.svgs.len(), 1, "one scenario, one plot");
    assert!(outputs.svgs[0].ends_with("report.svg") && outputs.svgs[0].exists());
    // The time series: every path's memory sampled, the proxy's too; the sidecar's writes
    // confirmed in Redis add up to what it acknowledged, after its ACKs.
    for r in &report.runs {
        assert!(
            r.series.iter().filter(|b| b.rss_kib.is_some()).count() >= 10,
            "{}: memory over a 2 s replay",
            r.path
        );
        let per_bucket = BUCKET_MS as f64 / 1e3;
        let confirmed: f64 = r.series.iter().map(|b| b.confirmed_per_s).sum::<f64>() * per_bucket;
        assert_eq!(
            confirmed.round() as u64,
            r.in_redis_latency_ms.count,
            "{}",
            r.path
        );
        assert_eq!(r.series.last().map(|b| b.lost_cum), Some(0), "{}", r.path);
    }
    assert!(sidecar.series.iter().any(|b| b.proxy_rss_kib.is_some()));
    assert!(report.runs[1..]
        .iter()
        .all(|r| r.series.iter().all(|b| b.proxy_rss_kib.is_none())));

    // Stopped at once when the replay ends (no grace): what was still queued was
    // acknowledged and is lost, and the read-back finds it. The window is far longer than the
    // run, so no flush runs before the stop (a short one could take the trace's last writes,
    // its tail burst ends at 2.0 s, just before the stop arrives, leaving nothing queued); with
    // no grace the proxy drops its queue as soon as the stop comes, not a window later.
    let mut a = args(&cluster, "stop");
    a.paths = vec![PathKind::Sidecar];
    a.sidecar.grace = Duration::ZERO;
    // 120 s: far past the run. A stop that waited for the tick would take that long.
    a.sidecar.window = Duration::from_secs(120);
    let started = Instant::now();
    let (report, _) = run(&a, "burst (test, no grace)").unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(60),
        "the no-grace run took {took:?}: the stop waited for the 120 s window"
    );
    let r = &report.runs[0];
    let dropped = r
        .after_ack_failures
        .get(DROPPED_AT_STOP)
        .copied()
        .unwrap_or(0);
    assert_eq!(r.offered, r.acknowledged + r.rejected + r.unknown);
    assert!(
        dropped > 0 && dropped == r.acknowledged,
        "a window longer than the replay leaves every acknowledged write queued at the stop: \
         {} acknowledged, {:?}",
        r.acknowledged,
        r.after_ack_failures
    );
    // Every write is checked (one hash field each): exactly the dropped writes are lost.
    assert_eq!(r.lost, dropped, "lost writes vs writes dropped at the stop");
    assert_eq!(r.in_redis_latency_ms.count, r.acknowledged - dropped);
    // The lost writes, by scheduled time: all of them by the end, none before the window.
    let lost_cum: Vec<u64> = r.series.iter().map(|b| b.lost_cum).collect();
    assert_eq!(lost_cum.last(), Some(&r.lost), "{lost_cum:?}");
    assert!(lost_cum.windows(2).all(|w| w[0] <= w[1]), "{lost_cum:?}");
    let _ = std::fs::remove_dir_all(outputs.json.parent().unwrap());
}

/// The `heavy-outage` scenario freezes the whole local cluster at the top of the burst:
/// slotline's callers see typed errors for what could not be confirmed, and nothing slotline
/// acknowledged is missing; the sidecar keeps acknowledging and gives up batches upstream;
/// the peers, without a command timeout by default, hold their writes through the freeze.
#[test]
fn an_outage_fails_slotline_writes_visibly_and_loses_none_it_acknowledged() {
    let _one = one_run_at_a_time();
    let mut a = Args {
        duration: Duration::from_secs(3),
        rate: 2_000.0,
        burst_factor: 6.0,
        seed: 7,
        users: 2_000,
        traces: vec![TraceKind::HeavyOutage],
        // Longer than slotline's commit timeout (1 s in geo_shard_client.yaml) and than the
        // sidecar's request timeout.
        outage: Duration::from_millis(1500),
        callers: 4,
        out: std::env::temp_dir().join(format!("burst-e2e-{}-outage", std::process::id())),
        progress: false,
        proxy_program: Some(PathBuf::from(env!("CARGO_BIN_EXE_burst"))),
        ..Args::default()
    };
    a.sidecar.timeout = Duration::from_millis(200);
    let (report, outputs) = run(&a, "burst (test, outage)").unwrap();
    assert_eq!(report.runs.len(), 4);
    let svg = std::fs::read_to_string(&outputs.svgs[0]).unwrap();
    assert!(
        svg.contains(&format!("fill=\"{OUTAGE_FILL}\"")),
        "the outage is shaded in report.svg"
    );
    for r in &report.runs {
        assert_eq!(r.trace, "heavy-outage");
        assert_eq!(r.pending, 0, "{}", r.path);
        let (at, length) = r.outage_ms.expect("the outage is reported");
        assert_eq!(length, 1500.0);
        assert!(at + length <= report.traces[0].duration_s * 1e3 + 1.0);
        assert_eq!(r.offered, r.acknowledged + r.rejected + r.unknown);
        assert_eq!(r.read_back.acked_checked, r.acknowledged);
    }
    let sidecar = &report.runs[0];
    let slotline = &report.runs[1];
    assert_eq!(slotline.path, "slotline");
    assert_eq!(slotline.lost, 0, "slotline lost acknowledged writes");
    assert!(
        slotline
            .errors
            .get("deadline exceeded")
            .copied()
            .unwrap_or(0)
            > 0,
        "a 1.5 s freeze passes slotline's 1 s deadlines, visibly: {:?}",
        slotline.errors
    );
    assert!(
        slotline.caller_latency_ms.max >= 900.0,
        "the freeze shows in slotline's latency: {:?}",
        slotline.caller_latency_ms
    );
    assert_eq!(sidecar.path, "sidecar");
    assert!(
        sidecar.errors.is_empty(),
        "the sidecar acknowledges on enqueue, whatever Redis does: {:?}",
        sidecar.errors
    );
    assert!(
        sidecar
            .after_ack_failures
            .keys()
            .any(|k| k.contains("request timeout")),
        "batches in flight during a 1.5 s freeze outlive a 200 ms request timeout: {:?}",
        sidecar.after_ack_failures
    );
    for peer in &report.runs[2..] {
        let who = &peer.path;
        assert_eq!(peer.lost, 0, "{who} lost acknowledged writes");
        assert_eq!(peer.read_back.phantom, 0, "{who}");
        assert_eq!(
            peer.read_back.unknown_applied + peer.read_back.unknown_absent,
            peer.unknown,
            "{who}"
        );
        let errors: u64 = peer.errors.values().sum();
        assert_eq!(
            errors,
            peer.rejected + peer.unknown,
            "{who}: {:?}",
            peer.errors
        );
        // Offered writes wait out the freeze (no timeout by default): the in-flight count
        // climbs past what a healthy cluster ever holds.
        assert!(
            peer.caller_latency_ms.max >= 1_000.0,
            "{who}: the freeze shows in its latency: {:?}",
            peer.caller_latency_ms
        );
        assert!(
            peer.peak_queue_depth > 500,
            "{who}: {}",
            peer.peak_queue_depth
        );
    }
    let _ = std::fs::remove_dir_all(outputs.json.parent().unwrap());
}

/// `--runs` repeats the heavy scenario through every path, the paths' order reversed every
/// other run, and the summary gives each path's median over its runs.
#[test]
fn repeated_runs_alternate_the_paths_order_and_are_summarised_per_path() {
    let _one = one_run_at_a_time();
    let cluster = LocalCluster::start().expect("a local cluster (redis-server on PATH)");
    let mut a = args(&cluster, "runs");
    a.duration = Duration::from_secs(1);
    a.rate = 1_000.0;
    a.runs = 3;
    a.paths = vec![PathKind::Slotline, PathKind::RedisRs];
    let (report, outputs) = run(&a, "burst (test, runs)").unwrap();
    let order: Vec<(usize, &str)> = report
        .runs
        .iter()
        .map(|r| (r.repetition, r.path.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            (0, "slotline"),
            (0, "redis-rs"),
            (1, "redis-rs"),
            (1, "slotline"),
            (2, "slotline"),
            (2, "redis-rs"),
        ]
    );
    for r in &report.runs {
        assert_eq!(r.offered, r.acked + r.failed_visibly, "{}", r.label());
        assert_eq!(r.acked_lost, 0, "{}", r.label());
    }
    let summary = report.summary_table();
    assert_eq!(summary.lines().count(), 2 + 2, "{summary}");
    assert!(summary.contains("| heavy | slotline | 3 |"), "{summary}");
    assert!(summary.contains("| heavy | redis-rs | 3 |"), "{summary}");
    let _ = std::fs::remove_dir_all(outputs.json.parent().unwrap());
}

#[test]
fn equal_bounds_enforce_the_sidecars_queue_at_slotlines_capacity() {
    let _one = one_run_at_a_time();
    let cluster = LocalCluster::start().expect("a local cluster (redis-server on PATH)");
    let a = Args {
        duration: Duration::from_secs(1),
        paths: vec![PathKind::Sidecar, PathKind::Slotline],
        equal_bounds: true,
        ..args(&cluster, "equal")
    };
    let (report, _) = run(&a, "burst (test, equal bounds)").unwrap();
    let p = &report.params;
    let slotline_total = p.slotline.shards * p.slotline.backpressure_limit;
    assert!(
        slotline_total > 10_000,
        "the default configuration holds more than the default depth"
    );
    assert_eq!(p.sidecar.depth as u64, slotline_total);
    assert!(p.sidecar.enforce);
    for r in &report.runs {
        assert_eq!(r.configured_depth, slotline_total, "{}", r.path);
        assert!(r.depth_enforced, "{}", r.path);
        assert_eq!(r.acked_lost, 0, "{}", r.path);
    }
    assert_eq!(report.runs.len(), 2);
}
