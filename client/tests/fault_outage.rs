//! Whole-cluster outage under load: every node is stopped while 16 threads commit, kept down
//! for a few seconds, then started again.
//!
//! - While the cluster is down every commit ends within its deadline (`commit.timeout`, the
//!   default 1 s, plus scheduling slack) with a typed error, and none succeeds.
//! - No committer thread hangs: all of them stop within a few seconds when asked.
//! - The process's memory stays flat while the writers retry against closed ports.
//! - After the restart the same `Client` commits again, without being rebuilt, and what it
//!   acknowledges then is in the cluster. (Writes acknowledged before the outage are gone: the
//!   local nodes run without persistence, so a full stop loses the data by design.)
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
    figure, ms, rss_kib, soak_secs, totals, Kind, Load, Report, Tally, Worker, PHASES,
};
use slotline_client::Client;
use slotline_testkit::{LocalCluster, Role};

const TEST: &str = "outage";
const THREADS: usize = 16;
const KEYS: usize = 64;
/// How long every node stays down.
const DOWN_FOR: Duration = Duration::from_secs(4);
/// Scheduling slack over a commit's deadline on a loaded two-core machine.
const SLACK: Duration = Duration::from_millis(500);
/// How long the load runs after the cluster is healthy again: every thread must have
/// committed by then (the client refreshes its map every 100 ms and backs off at most 250 ms).
const RECOVER_WITHIN: Duration = Duration::from_secs(3);
/// RSS growth allowed while the cluster is down, after the first second.
const RSS_GROWTH_KIB: u64 = 4096;

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

/// One outage and recovery; returns the figures of this round.
fn outage(cluster: &mut LocalCluster, load: &Load, round: usize) -> Vec<(String, String)> {
    let mut figures = Vec::new();
    load.set_phase(STOPPING);
    let stopping = load.now();
    stop_all(cluster);
    load.set_phase(DOWN);
    let down = load.now();
    figures.push((
        format!("round {round} stop"),
        format!("every node stopped in {}", ms(down - stopping)),
    ));

    // Memory while the writers retry against closed ports.
    let mut samples = Vec::new();
    while load.now() < down + DOWN_FOR {
        samples.push((load.now() - down, rss_kib()));
        thread::sleep(Duration::from_millis(50));
    }
    let settled: Vec<u64> = samples
        .iter()
        .filter(|(t, _)| *t >= Duration::from_secs(1))
        .map(|(_, kib)| *kib)
        .collect();
    let first = *settled.first().expect("RSS samples");
    let peak = *settled.iter().max().expect("RSS samples");
    figures.push((
        format!("round {round} RSS while down"),
        format!("{first} KiB → peak {peak} KiB"),
    ));
    assert!(
        peak <= first + RSS_GROWTH_KIB,
        "round {round}: RSS grew from {first} KiB to {peak} KiB while the cluster was down"
    );

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
    figures
}

fn run(soak: Duration) {
    let begun = Instant::now();
    let mut cluster = LocalCluster::start().unwrap_or_else(|e| panic!("local cluster: {e}"));
    let config = cluster.config();
    let timeout = config.commit.timeout;
    let client = Arc::new(Client::connect(config).expect("connect"));
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
        thread::sleep(Duration::from_millis(1500));
        let figures = outage(&mut cluster, &load, round);
        let healthy = load.now();
        // Every thread must commit again, and rewrite its keys, within this.
        thread::sleep(RECOVER_WITHIN);
        let reports = load.stop(Duration::from_secs(5));
        for (label, value) in &figures {
            figure(TEST, label, value);
        }
        check(&reports, timeout, healthy, round);
        let (_, ledger, _) = totals(&reports);
        let verified = ledger.acked_since(RECOVERING).verify(&cluster, TEST);
        figure(
            TEST,
            &format!("round {round} read back"),
            format!(
                "{} keys acknowledged after the restart, {} with that value",
                verified.keys, verified.exact
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
fn check(reports: &[Report], timeout: Duration, healthy: Duration, round: usize) {
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
            *l <= timeout + SLACK,
            "round {round}: a commit in phase {p} took {} (deadline {})",
            ms(*l),
            ms(timeout)
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
        slowest <= RECOVER_WITHIN,
        "round {round}: recovery took {}",
        ms(slowest)
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
