//! Whole-cluster outage under load: every node is stopped while 16 threads commit, kept down
//! for a few seconds, then started again.
//!
//! - While the cluster is down every commit ends within its deadline (`commit.timeout`, the
//!   default 1 s, plus scheduling slack) with a typed error, and none succeeds.
//! - No committer thread hangs: all of them stop within a few seconds when asked.
//! - While the cluster is down an open-loop writer keeps creating `commit_async` futures
//!   without waiting for them, far more than the client may hold: the writes outstanding stay
//!   within the client's own bound (its rings and links' windows, from its configuration), and
//!   the process's memory stays flat while the links retry against closed ports. The rings are
//!   configured small (about 340 writes per master) so that the open-loop writer fills them at
//!   once; an unbounded queue would hold every write until its deadline.
//! - After the restart the same `Client` commits again, without being rebuilt, every thread
//!   within 5 s of the cluster being healthy (the load runs on until they all have, or 30 s),
//!   and what it acknowledges then is in the cluster. (Writes acknowledged before the outage
//!   are gone: the local nodes run without persistence, so a full stop loses the data by
//!   design; the ledger still checks that what is there was applied once, in order.)
//!
//! The time bounds are excused twice the worst scheduling lag measured in the same run (see
//! `Lag`): milliseconds on an idle machine, more on a loaded one.
//!
//! Alone in its own test binary so that the process's RSS is this test's.
//!
//! Soak: `SLOTLINE_SOAK_SECS=600 cargo test -p slotline-client --test fault_outage --
//! --ignored` repeats the outage and recovery for that long.
#![cfg(not(feature = "loom"))]

mod fault_support;

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fault_support::{
    client_bound, figure, ms, rss_kib, slot_map, soak_secs, totals, Kind, Lag, Load, OpenLoop,
    Report, Tally, Worker, PHASES,
};
use slotline_client::Client;
use slotline_testkit::{LocalCluster, Role};

const TEST: &str = "outage";
const THREADS: usize = 16;
const KEYS: usize = 64;
/// How long every node stays down.
const DOWN_FOR: Duration = Duration::from_secs(4);
/// Slack over a commit's deadline, on top of twice the run's worst scheduling lag.
const SLACK: Duration = Duration::from_millis(500);
/// Every thread commits again within this (plus twice the worst scheduling lag) after the
/// cluster is healthy again (the client refreshes its map every 100 ms and backs off at most
/// 500 ms between connection attempts).
const RECOVER_WITHIN: Duration = Duration::from_secs(5);
/// How long the test waits for progress it then checks against a tighter bound: the load
/// keeps running that long while the bound matters.
const PROGRESS_WITHIN: Duration = Duration::from_secs(30);
/// RSS growth allowed while the cluster is down, after the first second.
const RSS_GROWTH_KIB: u64 = 4096;
/// The open-loop writer's value, and how many futures it creates between 1 ms pauses (at
/// most about 32 000 a second: far more than the client may hold, without taking a whole
/// core from the committers).
const OPEN_VALUE: &[u8] = &[b'o'; 64];
const OPEN_BURST: usize = 32;

/// Phases of one outage, as the committers count them.
const HEALTHY: usize = 0;
const STOPPING: usize = 1;
const DOWN: usize = 2;
const RECOVERING: usize = 3;

/// Stops every node: replicas first, so that no replica is promoted while its master goes.
fn stop_all(cluster: &mut LocalCluster) {
    let n = cluster.nodes().len();
    let (mut order, masters): (Vec<usize>, Vec<usize>) =
        (0..n).partition(|&i| cluster.live_role(i).is_ok_and(|r| r == Role::Replica));
    order.extend(masters);
    for i in order {
        cluster.stop_node(i).expect("stop a node");
    }
}

fn restart_all(cluster: &mut LocalCluster) {
    for i in 0..cluster.nodes().len() {
        cluster.restart_node(i).expect("restart a node");
    }
}

/// One outage and recovery; returns the figures of this round and when the cluster was
/// healthy again (from the load's start).
fn outage(
    cluster: &mut LocalCluster,
    client: &Arc<Client>,
    bound: usize,
    load: &Load,
    round: usize,
) -> (Vec<(String, String)>, Duration) {
    let mut figures = Vec::new();
    load.set_phase(STOPPING);
    // No commit of the healthy phase is still running when the first node stops.
    assert!(
        load.wait_started_in(STOPPING, PROGRESS_WITHIN),
        "round {round}: a healthy-phase commit was still running after {}",
        ms(PROGRESS_WITHIN)
    );
    let stopping = load.now();
    stop_all(cluster);
    load.set_phase(DOWN);
    let down = load.now();
    figures.push((
        format!("round {round} stop"),
        format!("every node stopped in {}", ms(down - stopping)),
    ));

    // Memory and the writes outstanding while an open-loop writer pushes and the links retry
    // against closed ports.
    let open = OpenLoop::start(client, 1, "out-open:", OPEN_VALUE, OPEN_BURST);
    let mut samples = Vec::new();
    while load.now() < down + DOWN_FOR {
        let m = client.metrics().total;
        let ring = m.ring.expect("the total has the rings' fill").len;
        samples.push((load.now() - down, rss_kib(), open.outstanding(), ring));
        thread::sleep(Duration::from_millis(50));
    }
    let open = open.stop();
    let settled: Vec<u64> = samples
        .iter()
        .filter(|(t, ..)| *t >= Duration::from_secs(1))
        .map(|(_, kib, ..)| *kib)
        .collect();
    let first = *settled.first().expect("RSS samples");
    let peak = *settled.iter().max().expect("RSS samples");
    let most = samples.iter().map(|s| s.2).max().unwrap_or(0);
    let fullest = samples.iter().map(|s| s.3).max().unwrap_or(0);
    figures.push((
        format!("round {round} RSS while down"),
        format!("{first} KiB → peak {peak} KiB"),
    ));
    figures.push((
        format!("round {round} open-loop writer while down"),
        format!(
            "{} futures, at most {most} outstanding (bound {bound}), rings at most {fullest} full: {}",
            open.created, open.tally
        ),
    ));
    assert!(
        open.created >= 4 * bound as u64,
        "round {round}: the open-loop writer made only {} futures, too few to test the bound {bound}",
        open.created
    );
    assert!(
        most <= bound,
        "round {round}: {most} writes outstanding while the cluster was down, above the client's bound {bound}"
    );
    assert!(
        peak <= first + RSS_GROWTH_KIB,
        "round {round}: RSS grew from {first} KiB to {peak} KiB while the cluster was down"
    );
    for kind in [Kind::Ok, Kind::Closed, Kind::Other] {
        assert_eq!(
            open.tally.get(kind),
            0,
            "round {round}: open-loop {kind:?} while down: {}",
            open.tally
        );
    }

    load.set_phase(RECOVERING);
    let restarting = load.now();
    restart_all(cluster);
    cluster
        .wait_healthy(Duration::from_secs(60))
        .expect("the cluster heals after the restart");
    let healthy = load.now();
    figures.push((
        format!("round {round} restart"),
        format!(
            "every node up and the cluster healthy in {}",
            ms(healthy - restarting)
        ),
    ));
    (figures, healthy)
}

fn run(soak: Duration) {
    let begun = Instant::now();
    let lag = Lag::start();
    let mut cluster = LocalCluster::start().unwrap_or_else(|e| panic!("local cluster: {e}"));
    let mut config = cluster.config();
    // Small rings (4 shards × 256: about 340 writes per master) and windows (16 × 4 per
    // link), so that the open-loop writer reaches the bound at once.
    config.shard_config.total_shards = 4;
    config.shard_config.ring_buffer_capacity = 256;
    config.batching.max_batch = 16;
    let timeout = config.commit.timeout;
    let map = slot_map(&cluster);
    let bound = client_bound(&config, &map) + fault_support::SWEEP;
    let capacity: usize = fault_support::masters_by_slot(&map)
        .iter()
        .map(|&(_, slots)| config.master_capacity(slots))
        .sum();
    let client = Arc::new(Client::connect(config).expect("connect"));
    let rings = client.metrics().total.ring.expect("the rings' fill");
    assert_eq!(
        rings.capacity, capacity,
        "the client's rings hold what its configuration says"
    );
    let workers: Vec<Worker> = (0..THREADS)
        .map(|t| Worker {
            group: 0,
            keys: (0..KEYS)
                .map(|k| format!("out:{{{t}-{k}}}").into_bytes())
                .collect(),
        })
        .collect();

    let mut round = 0;
    loop {
        let load = Load::start(&client, workers.clone(), Duration::ZERO, false);
        assert!(
            load.wait_committed_after(None, Duration::ZERO, PROGRESS_WITHIN)
                .is_some(),
            "round {round}: a committer made no commit within {}",
            ms(PROGRESS_WITHIN)
        );
        let (figures, healthy) = outage(&mut cluster, &client, bound, &load, round);
        // The load runs on until every thread has committed again (checked against
        // RECOVER_WITHIN from the reports), or for PROGRESS_WITHIN.
        load.wait_committed_after(None, healthy, PROGRESS_WITHIN);
        let reports = load.stop(Duration::from_secs(5));
        for (label, value) in &figures {
            figure(TEST, label, value);
        }
        figure(TEST, "worst scheduling lag", ms(lag.worst()));
        check(&reports, timeout, healthy, round, lag.worst() * 2);
        let (tally, ledger, _) = totals(&reports);
        let verified = ledger.acked_since(RECOVERING).verify(&cluster, TEST);
        figure(
            TEST,
            &format!("round {round} read back"),
            format!(
                "{} keys, {} values: every write acknowledged after the restart present once ({} of {} acknowledged in all)",
                verified.keys,
                verified.values,
                verified.acked,
                tally.get(Kind::Ok)
            ),
        );
        round += 1;
        if begun.elapsed() >= soak {
            break;
        }
    }
    let metrics = client.metrics().total;
    figure(
        TEST,
        "client metrics",
        format!(
            "commits {} timeouts {} drops {} errors {:?}",
            metrics.commits, metrics.timeouts, metrics.drops, metrics.errors
        ),
    );
    figure(TEST, "wall time", ms(begun.elapsed()));
}

/// Every commit ended within its deadline; none succeeded while the cluster was down; every
/// thread committed again after the restart.
fn check(reports: &[Report], timeout: Duration, healthy: Duration, round: usize, lag: Duration) {
    let mut phases: Vec<Tally> = vec![Tally::default(); PHASES];
    let mut longest = [Duration::ZERO; PHASES];
    for r in reports {
        for p in 0..PHASES {
            phases[p].merge(&r.phase_tally[p]);
            longest[p] = longest[p].max(r.phase_max_latency[p]);
        }
    }
    for (p, name) in ["healthy", "stopping", "down", "recovering"]
        .iter()
        .enumerate()
    {
        figure(
            TEST,
            &format!("round {round} {name}"),
            format!("{} (longest commit {})", phases[p], ms(longest[p])),
        );
    }
    for (p, l) in longest.iter().enumerate() {
        assert!(
            *l <= timeout + SLACK + lag,
            "round {round}: a commit in phase {p} took {} (deadline {}, slack {} + {} of lag)",
            ms(*l),
            ms(timeout),
            ms(SLACK),
            ms(lag)
        );
    }
    assert_eq!(
        phases[HEALTHY].errors(),
        0,
        "errors before the outage: {}",
        phases[HEALTHY]
    );
    let down = &phases[DOWN];
    assert!(down.total() > 0, "no commit ran while the cluster was down");
    assert_eq!(
        down.get(Kind::Ok),
        0,
        "a commit succeeded with every node down: {down}"
    );
    for kind in [Kind::Closed, Kind::Other] {
        assert_eq!(down.get(kind), 0, "unexpected {kind:?} while down: {down}");
    }
    let mut slowest = Duration::ZERO;
    for r in reports {
        let first = r.phase_first_ok[RECOVERING].unwrap_or_else(|| {
            panic!(
                "round {round}: thread {} never committed after the restart: {}",
                r.thread, r.phase_tally[RECOVERING]
            )
        });
        slowest = slowest.max(first.saturating_sub(healthy));
    }
    figure(
        TEST,
        &format!("round {round} recovery"),
        format!(
            "every thread committed again at most {} after the cluster was healthy",
            ms(slowest)
        ),
    );
    assert!(
        slowest <= RECOVER_WITHIN + lag,
        "round {round}: recovery took {} (bound {} + {} of lag)",
        ms(slowest),
        ms(RECOVER_WITHIN),
        ms(lag)
    );
}

#[test]
fn every_commit_ends_in_time_while_the_whole_cluster_is_down_and_the_client_recovers() {
    run(Duration::ZERO);
}

#[test]
#[ignore = "soak: SLOTLINE_SOAK_SECS=600 cargo test -p slotline-client --test fault_outage -- --ignored"]
fn soak_repeated_outages() {
    run(soak_secs(600));
}
