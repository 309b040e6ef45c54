//! A chaos run: random kills, graceful restarts, freezes, write pauses and slot moves while 16
//! threads commit with `ack.replicas: 1`, for a bounded time (60 s; `SLOTLINE_CHAOS_SECS`
//! changes it, and the soak variant runs `SLOTLINE_SOAK_SECS`, default 600).
//!
//! Invariants, checked at the end:
//!
//! - every acknowledged write is in its key's list exactly once, a write whose outcome was
//!   ambiguous (`may_have_been_applied`) at most once, a write told not applied never, and
//!   each list in submission order;
//! - every caller got one result, and the client's metrics account for every write once;
//! - no committer hangs (each stops within a few seconds when asked).
//!
//! One fault at a time, each followed by a wait for a healthy cluster: the test is about the
//! client, and two overlapping faults can break a 3-master cluster for good (or, when a killed
//! master restarts empty before its replica took over, lose data by Redis's own design: the
//! nodes run without persistence). A killed or stopped master is therefore only started again
//! once its replica serves its slots.
//!
//! Replay a run with `SLOTLINE_SEED=<seed printed by the run>`.
#![cfg(not(feature = "loom"))]

mod fault_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use fault_support::{
    client_pause_write, figure, masters_by_slot, metrics_outcomes, ms, node_index, reshard,
    slot_map, soak_secs, totals, wait_slots_served, Load, Rng, Worker,
};
use slotline_client::Client;
use slotline_testkit::{LocalCluster, Role};

const TEST: &str = "chaos";
const THREADS: usize = 16;
const KEYS: usize = 128;

/// What the chaos did, by kind.
#[derive(Debug, Default)]
struct Actions(BTreeMap<&'static str, u64>);

impl Actions {
    fn count(&mut self, what: &'static str) {
        *self.0.entry(what).or_default() += 1;
    }
}

fn chaos_secs() -> Duration {
    let secs = std::env::var("SLOTLINE_CHAOS_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// Waits for a healthy cluster. Under heavy load on two cores Redis does not always heal by
/// itself: a node can stay convinced that some slots are unassigned after a restart (gossip lost
/// to CPU starvation). The repairs escalate, each counted as an action so the report shows it:
/// after 30 s, `redis-cli --cluster fix` from every node whose view lacks slots; after 30 s more,
/// a master that lacks slots the others assign is told their owners (`CLUSTER SETSLOT .. NODE`:
/// seen after a slot move then a failover) and every replica whose view still lacks slots is
/// restarted (it holds nothing its master lacks, and
/// reloads its `nodes.conf` and the gossip). If that does not heal it within 60 s, the test fails
/// with every node's view and log tail. What the test checks is the client's promise
/// (acknowledged ⊆ present, one result per call), not Redis's own healing.
fn healthy(cluster: &mut LocalCluster, after: &str, actions: &mut Actions) {
    let Err(first) = cluster.wait_healthy(Duration::from_secs(30)) else {
        return;
    };
    eprintln!("[chaos] not healed 30 s after {after} ({first}); running redis-cli --cluster fix");
    eprintln!("{}", views(cluster));
    actions.count("repair (--cluster fix)");
    let mut fix_from = lacking_slots(cluster);
    if fix_from.is_empty() {
        fix_from.extend(running(cluster).first());
    }
    for i in fix_from {
        let target = format!("127.0.0.1:{}", cluster.nodes()[i].port);
        let _ = cluster.cli(i, &["--cluster", "fix", &target, "--cluster-yes"]);
    }
    let Err(second) = cluster.wait_healthy(Duration::from_secs(30)) else {
        return;
    };
    // A master that lacks a slot the others assign (seen after a slot move followed by a
    // failover: the promoted replica never learned one slot of the move) is told the owner.
    let lacking = lacking_slots(cluster);
    let full = running(cluster)
        .into_iter()
        .find(|i| !lacking.contains(i))
        .and_then(|i| cluster.cli(i, &["CLUSTER", "NODES"]).ok());
    if let Some(full) = full {
        let owners = slot_owners(&full);
        for &i in &lacking {
            if cluster.live_role(i).is_ok_and(|r| r == Role::Master) {
                let Ok(mine) = cluster.cli(i, &["CLUSTER", "NODES"]) else {
                    continue;
                };
                let seen = slot_owners(&mine);
                for (slot, owner) in owners.iter().enumerate() {
                    if let (Some(owner), None) = (owner, &seen[slot]) {
                        actions.count("repair (SETSLOT NODE on a master that lacks it)");
                        let slot = slot.to_string();
                        let _ = cluster.cli(i, &["CLUSTER", "SETSLOT", &slot, "NODE", owner]);
                    }
                }
            }
        }
    }
    let replicas: Vec<usize> = lacking_slots(cluster)
        .into_iter()
        .filter(|&i| cluster.live_role(i).is_ok_and(|r| r == Role::Replica))
        .collect();
    eprintln!("[chaos] still not healed ({second}); restarting the replicas that lack slots: {replicas:?}");
    for i in replicas {
        actions.count("repair (replica restart)");
        cluster.restart_node(i).expect("restart a replica");
    }
    if let Err(e) = cluster.wait_healthy(Duration::from_secs(60)) {
        panic!(
            "the cluster did not heal after {after}: {e}\n{}",
            views(cluster)
        );
    }
}

/// The owner (node ID) of each slot in a `CLUSTER NODES` text; `None` where unassigned.
/// Migration markers (`[slot->-id]`) are not assignments.
fn slot_owners(nodes: &str) -> Vec<Option<String>> {
    let mut owners = vec![None; 16384];
    for line in nodes.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 9 || !fields[2].contains("master") {
            continue;
        }
        for range in &fields[8..] {
            if range.starts_with('[') {
                continue;
            }
            let (a, b) = range.split_once('-').unwrap_or((range, range));
            if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                if a <= b && b < owners.len() {
                    owners[a..=b].fill(Some(fields[0].to_owned()));
                }
            }
        }
    }
    owners
}

/// Indices of the running nodes.
fn running(cluster: &LocalCluster) -> Vec<usize> {
    (0..cluster.nodes().len())
        .filter(|&i| cluster.nodes()[i].pid.is_some())
        .collect()
}

/// Running nodes whose `CLUSTER INFO` counts fewer than 16384 assigned slots.
fn lacking_slots(cluster: &LocalCluster) -> Vec<usize> {
    running(cluster)
        .into_iter()
        .filter(|&i| {
            cluster
                .cli(i, &["CLUSTER", "INFO"])
                .is_ok_and(|info| !info.contains("cluster_slots_assigned:16384"))
        })
        .collect()
}

/// Every running node's `CLUSTER INFO` counts, `CLUSTER NODES` and log tail, for a failure
/// report.
fn views(cluster: &LocalCluster) -> String {
    let mut out = String::new();
    for i in running(cluster) {
        let port = cluster.nodes()[i].port;
        let info = cluster
            .cli(i, &["CLUSTER", "INFO"])
            .unwrap_or_else(|e| e.to_string());
        let counts: Vec<&str> = info
            .lines()
            .filter(|l| l.starts_with("cluster_state") || l.starts_with("cluster_slots_assigned"))
            .collect();
        let nodes = cluster
            .cli(i, &["CLUSTER", "NODES"])
            .unwrap_or_else(|e| e.to_string());
        let log = cluster
            .log_path(i)
            .ok()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(25).collect();
        out.push_str(&format!(
            "--- node {port} ({}):\n{nodes}--- log tail of {port}:\n{}\n",
            counts.join(" "),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    out
}

/// Takes node `i` down (`kill -9` or a clean stop), waits until its slots are served again
/// if it was a master, and starts it again.
fn down_and_up(cluster: &mut LocalCluster, rng: &mut Rng, i: usize, kill: bool) {
    let was_master = cluster.live_role(i).is_ok_and(|r| r == Role::Master);
    if kill {
        cluster.kill_node(i).expect("kill -9");
    } else {
        cluster.stop_node(i).expect("stop");
    }
    if was_master {
        wait_slots_served(cluster, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("no replica took over the slots of node {i} within 30 s"));
    }
    thread::sleep(rng.millis(0, 1000));
    cluster.restart_node(i).expect("start the node again");
}

/// One random fault; returns its name for the tally.
fn one_fault(cluster: &mut LocalCluster, rng: &mut Rng) -> &'static str {
    let nodes = cluster.nodes().len();
    let masters: Vec<usize> = masters_by_slot(&slot_map(cluster))
        .iter()
        .map(|(port, _)| node_index(cluster, *port))
        .collect();
    match rng.below(100) {
        0..=24 => {
            let i = rng.below(nodes as u64) as usize;
            down_and_up(cluster, rng, i, true);
            "kill -9 + start"
        }
        25..=39 => {
            let i = rng.below(nodes as u64) as usize;
            down_and_up(cluster, rng, i, false);
            "graceful restart"
        }
        40..=59 => {
            // Shorter than the 1 s node timeout: a stall, not a failure the cluster acts on.
            let i = rng.below(nodes as u64) as usize;
            cluster.pause_node(i).expect("SIGSTOP");
            thread::sleep(rng.millis(200, 800));
            cluster.resume_node(i).expect("SIGCONT");
            "freeze (SIGSTOP)"
        }
        60..=74 => {
            let i = masters[rng.below(masters.len() as u64) as usize];
            let pause = rng.millis(200, 1500);
            client_pause_write(cluster, i, pause);
            thread::sleep(pause);
            "CLIENT PAUSE WRITE"
        }
        _ => {
            let from = rng.below(masters.len() as u64) as usize;
            let to = (from + 1 + rng.below(masters.len() as u64 - 1) as usize) % masters.len();
            let slots = 20 + rng.below(281) as usize;
            match reshard(cluster, masters[from], masters[to], slots) {
                Ok(_) => "slot move",
                Err(err) => {
                    eprintln!("[{TEST}] reshard failed, fixing: {err}");
                    let entry = format!("127.0.0.1:{}", cluster.nodes()[masters[from]].port);
                    let _ = cluster.cli(
                        masters[from],
                        &["--cluster", "fix", &entry, "--cluster-yes"],
                    );
                    "slot move (failed, fixed)"
                }
            }
        }
    }
}

fn run(duration: Duration) {
    let begun = Instant::now();
    let mut rng = Rng::from_env(TEST);
    let mut cluster = LocalCluster::builder()
        .masters(3)
        .replicas_per_master(1)
        .args(["--cluster-require-full-coverage", "no"])
        .start()
        .unwrap_or_else(|e| panic!("local cluster: {e}"));
    let mut config = cluster.config();
    config.ack.replicas = 1;
    config.ack.timeout = Duration::from_millis(200);
    config.commit.timeout = Duration::from_secs(2);
    let client = Arc::new(Client::connect(config).expect("connect"));
    let workers = (0..THREADS)
        .map(|t| Worker {
            group: 0,
            keys: (0..KEYS)
                .map(|k| format!("ch:{{{t}-{k}}}").into_bytes())
                .collect(),
        })
        .collect();

    let load = Load::start(&client, workers, Duration::ZERO, false);
    let started = Instant::now();
    let mut actions = Actions::default();
    thread::sleep(Duration::from_secs(1));
    while started.elapsed() < duration {
        let what = one_fault(&mut cluster, &mut rng);
        actions.count(what);
        healthy(&mut cluster, what, &mut actions);
        thread::sleep(rng.millis(200, 1000));
    }
    let chaos = started.elapsed();
    let reports = load.stop(Duration::from_secs(15));
    healthy(&mut cluster, "the run", &mut actions);

    let (tally, ledger, calls) = totals(&reports);
    let accounted = metrics_outcomes(&client, calls, Duration::from_secs(10));
    let verified = ledger.verify(&cluster, TEST);
    let metrics = client.metrics().total;
    figure(
        TEST,
        "chaos",
        format!("{} of faults: {:?}", ms(chaos), actions.0),
    );
    figure(
        TEST,
        "commits",
        format!(
            "{calls} calls, {} acknowledged",
            tally.get(fault_support::Kind::Ok)
        ),
    );
    figure(TEST, "outcomes", &tally);
    figure(
        TEST,
        "client metrics",
        format!(
            "commits {} timeouts {} drops {} rejections {} errors {:?} moved {} ask {}; {accounted} outcomes for {calls} calls",
            metrics.commits,
            metrics.timeouts,
            metrics.drops,
            metrics.rejections,
            metrics.errors,
            metrics.moved,
            metrics.ask
        ),
    );
    figure(
        TEST,
        "read back",
        format!(
            "{} keys: {} with only acknowledged writes, {} with ambiguous ones too",
            verified.keys, verified.exact, verified.ambiguous
        ),
    );
    figure(TEST, "wall time", ms(begun.elapsed()));
    assert!(
        tally.get(fault_support::Kind::Ok) > 0,
        "nothing was acknowledged: {tally}"
    );
    assert_eq!(
        accounted, calls,
        "the client's metrics count {accounted} outcomes for {calls} commits"
    );
}

#[test]
fn chaos_keeps_every_acknowledged_write_and_answers_every_caller() {
    run(chaos_secs());
}

#[test]
#[ignore = "soak: SLOTLINE_SOAK_SECS=600 cargo test -p slotline-client --test fault_chaos -- --ignored"]
fn soak_chaos() {
    run(soak_secs(600));
}

/// The views of a failed CI run: the promoted master lacks slot 520 that the others give it.
#[test]
fn slot_owners_finds_the_slot_a_master_lacks() {
    let full = "\
d32f 127.0.0.1:34437@44437 master - 0 1 17 connected 521-5749
658051 127.0.0.1:36551@46551 master - 0 1 20 connected 242-520 5750-11157
6fbaca 127.0.0.1:34783@44783 myself,master - 0 1 19 connected 0-241 11158-16383 [7->-d32f]
3354 127.0.0.1:46377@56377 slave d32f 0 1 17 connected
";
    let lacking = full.replace("242-520", "242-519");
    let owners = slot_owners(full);
    assert!(owners.iter().all(Option::is_some), "every slot is assigned");
    assert_eq!(owners[520].as_deref(), Some("658051"));
    assert_eq!(
        owners[7].as_deref(),
        Some("6fbaca"),
        "a migration marker is not an owner"
    );
    let seen = slot_owners(&lacking);
    let missing: Vec<usize> = (0..16384).filter(|&s| seen[s].is_none()).collect();
    assert_eq!(missing, [520]);
}
