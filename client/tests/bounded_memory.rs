//! Under open-loop load against paused masters, the client holds no more writes than its
//! configuration allows and its memory stays flat, while callers get backpressure errors:
//! every pending write waits in a fixed-size ring or a link's window.
//!
//! Open-loop: four threads create `commit_async` futures without waiting for them, poll each
//! once (which queues it or has it refused at once), keep the pending ones and poll them again
//! now and then, so the number of writes outstanding is up to the client. A client that
//! queued more than its rings hold (or kept refused writes somewhere) would show it in that
//! number, which the test compares with the bound it derives from the configuration, and in
//! memory.
//!
//! Alone in its own test binary so that the process's RSS is this test's.
#![cfg(not(feature = "loom"))]

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use slotline_client::config::FallbackStrategy;
use slotline_client::Client;
use slotline_testkit::LocalCluster;

mod fault_support;
use fault_support::{
    client_bound, masters_by_slot, ms, poll_until, rss_kib, slot_map, Kind, OpenLoop, SWEEP,
};

/// Open-loop writer threads.
const WRITERS: usize = 4;
/// How long each master is paused for writes.
const PAUSE: Duration = Duration::from_secs(3);
/// The samples taken from this far into the pause on count as settled: the rings fill
/// within milliseconds of it.
const SETTLED: Duration = Duration::from_secs(1);

#[test]
fn open_loop_writers_against_paused_masters_stay_within_the_client_bound_and_flat_memory() {
    let cluster = LocalCluster::start().unwrap_or_else(|e| panic!("local cluster: {e}"));
    let mut config = cluster.config();
    // Few slots for pending writes: one shard's worth of ring (16, line at 80 %) per master,
    // batches of 4.
    config.shard_config.total_shards = 1;
    config.shard_config.ring_buffer_capacity = 16;
    config.batching.max_batch = 4;
    config.backpressure.fallback_strategy = FallbackStrategy::Reject;
    config.commit.timeout = Duration::from_secs(1);
    config.redis_pool.read_timeout = Duration::from_millis(200);
    let map = slot_map(&cluster);
    let masters = masters_by_slot(&map);
    // Each thread's count is exact at its last sweep, at most SWEEP futures ago.
    let bound = client_bound(&config, &map) + WRITERS * SWEEP;
    let capacity: usize = masters
        .iter()
        .map(|&(_, slots)| config.master_capacity(slots))
        .sum();
    let window = masters.len() * config.batching.max_batch * config.batching.pipeline_depth;
    let client = Arc::new(Client::connect(config).expect("connect"));
    client.commit(b"warm", b"up").expect("warm-up commit");

    let open = OpenLoop::start(&client, WRITERS, "mem:", &[b'x'; 512], 0);
    // The writers are committing before the masters are paused.
    let warm = client.metrics().total.commits;
    assert!(
        poll_until(Duration::from_secs(30), || client.metrics().total.commits
            > warm + 1000),
        "the open-loop writers committed nothing within 30 s"
    );

    for i in cluster.master_indices() {
        let reply = cluster
            .query(
                i,
                redis::cmd("CLIENT")
                    .arg("PAUSE")
                    .arg(PAUSE.as_millis() as u64)
                    .arg("WRITE"),
            )
            .expect("CLIENT PAUSE");
        assert!(reply.is_ok(), "CLIENT PAUSE: {reply:?}");
    }
    let paused_at = Instant::now();
    let mut rings = 0;
    // (time into the pause, RSS KiB, futures outstanding, rejections, ring fill, in flight)
    let mut samples = Vec::new();
    while paused_at.elapsed() < PAUSE - Duration::from_millis(200) {
        let m = client.metrics().total;
        let ring = m.ring.expect("the total has the rings' fill");
        rings = rings.max(ring.capacity);
        samples.push((
            paused_at.elapsed(),
            rss_kib(),
            open.outstanding(),
            m.rejections,
            ring.len,
            m.in_flight,
        ));
        thread::sleep(Duration::from_millis(50));
    }
    let sampled_for = paused_at.elapsed();
    let report = open.stop();

    let settled: Vec<_> = samples.iter().filter(|s| s.0 >= SETTLED).collect();
    let first = settled.first().expect("samples after the first second");
    let last = settled.last().expect("samples after the first second");
    let peak = settled.iter().map(|s| s.1).max().expect("samples");
    let most = samples.iter().map(|s| s.2).max().expect("samples");
    let fullest = samples.iter().map(|s| s.4).max().expect("samples");
    let in_flight = samples.iter().map(|s| s.5).max().expect("samples");
    eprintln!(
        "paused {} → {}: RSS {} → {} KiB (peak {peak}), rejections {} → {}; \
         {} futures, at most {most} outstanding (bound {bound}), rings at most {fullest} of {capacity}, \
         at most {in_flight} in flight (windows {window}); {}",
        ms(SETTLED),
        ms(sampled_for),
        first.1,
        last.1,
        first.3,
        last.3,
        report.created,
        report.tally
    );
    assert!(
        report.created >= 4 * bound as u64,
        "the writers made only {} futures, too few to test the bound {bound}",
        report.created
    );
    assert!(
        most <= bound,
        "{most} writes outstanding at once, above the client's bound {bound} (rings {capacity})"
    );
    assert_eq!(
        rings, capacity,
        "the client's rings hold what its configuration says"
    );
    assert!(
        in_flight <= window as u64,
        "{in_flight} writes in flight, above the links' windows ({window})"
    );
    assert!(
        last.3 > first.3 + 1000,
        "callers must keep getting backpressure errors: {} → {}",
        first.3,
        last.3
    );
    assert!(
        peak <= first.1 + 2048,
        "RSS grew from {} KiB to {} KiB while the masters were paused",
        first.1,
        peak
    );
    let told = [
        Kind::Ok,
        Kind::Rejected,
        Kind::DeadlineUnsent,
        Kind::DeadlineMaybe,
    ]
    .iter()
    .map(|&k| report.tally.get(k))
    .sum::<u64>();
    assert_eq!(
        told,
        report.tally.total(),
        "unexpected outcomes: {}",
        report.tally
    );
}
