//! The `tracing` feature: the client reports connections, redirects, refreshes, backpressure
//! decisions and its own death as events. Runs with
//! `cargo test -p slotline-client --features tracing --test tracing`.
#![cfg(all(feature = "tracing", not(feature = "loom")))]

mod fault_support;

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fault_support::{keys_on, masters_by_slot, node_id, node_index, slot_map};
use slotline_client::{CallOptions, Client, CommitError, FallbackStrategy};
use slotline_testkit::LocalCluster;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Every event as one line: `<target> <level> <fields>`.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<String>>>);

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl Subscriber for Collect {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let meta = event.metadata();
        let mut line = Line(format!("{} {}", meta.target(), meta.level()));
        event.record(&mut line);
        self.0.lock().unwrap().push(line.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

impl Collect {
    /// Waits (bounded) until an event line contains every one of `parts`.
    fn wait_for(&self, parts: &[&str]) -> String {
        let limit = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(line) = self
                .0
                .lock()
                .unwrap()
                .iter()
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                return line.clone();
            }
            assert!(
                Instant::now() < limit,
                "no event with {parts:?}; events: {:#?}",
                self.0.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[test]
fn the_client_reports_what_it_does_as_events() {
    let collect = Collect::default();
    tracing::subscriber::set_global_default(collect.clone()).expect("one subscriber");
    let cluster = LocalCluster::start().unwrap_or_else(|e| panic!("local cluster: {e}"));
    let mut config = cluster.config();
    config.shard_config.total_shards = 1;
    config.shard_config.ring_buffer_capacity = 16;
    config.backpressure.threshold_percent = 50;
    config.batching.max_batch = 4;
    config.batching.pipeline_depth = 1;
    config.backpressure.fallback_strategy = FallbackStrategy::Block;
    config.commit.timeout = Duration::from_secs(20);
    let client = Client::connect(config).expect("connect");

    // Connections.
    client.commit(b"t:{1}", b"v").expect("commit");
    collect.wait_for(&["slotline::conn", "DEBUG", "connecting"]);
    collect.wait_for(&["slotline::conn", "DEBUG", "connection ready"]);

    // A redirect: slot ownership moves to another master behind the client's back.
    let map = slot_map(&cluster);
    let masters = masters_by_slot(&map);
    let (from, to) = (masters[0].0, masters[1].0);
    let key = keys_on(&map, from, "mv:", 1).remove(0);
    let slot = slotline_router::key_slot(&key).get();
    let to_id = node_id(&cluster, node_index(&cluster, to));
    for i in cluster.master_indices() {
        cluster
            .query(
                i,
                redis::cmd("CLUSTER")
                    .arg("SETSLOT")
                    .arg(slot)
                    .arg("NODE")
                    .arg(&to_id),
            )
            .expect("SETSLOT")
            .expect("SETSLOT reply");
    }
    client
        .commit(&key, b"moved")
        .expect("commit after the move");
    collect.wait_for(&[
        "slotline::route",
        "redirect",
        "Moved",
        &format!("slot={slot}"),
    ]);
    collect.wait_for(&["slotline::route", "INFO", "slot table refreshed"]);

    // Backpressure: a paused master, a full queue, a call that asks to be refused.
    let port = masters[2].0;
    let i = node_index(&cluster, port);
    cluster.pause_node(i).expect("SIGSTOP");
    let client = Arc::new(client);
    let fillers: Vec<_> = keys_on(&map, port, "bp:", 20)
        .into_iter()
        .map(|k| {
            let client = Arc::clone(&client);
            std::thread::spawn(move || client.commit(&k, b"v"))
        })
        .collect();
    collect.wait_for(&["slotline::backpressure", "TRACE", "waiting for room"]);
    // A caller may start waiting before the I/O thread has taken its first batch to the paused
    // master; that take frees room for a moment. Refuse only once the state is settled: a
    // batch in flight (the pipeline holds one, and the master does not answer) and the queue
    // at its threshold (8 of 16).
    let settled = Instant::now() + Duration::from_secs(10);
    loop {
        let m = client.metrics();
        let queued = m.total.ring.map_or(0, |r| r.len);
        if m.total.in_flight >= 1 && queued >= 8 {
            break;
        }
        assert!(
            Instant::now() < settled,
            "the paused master's queue never settled: {} in flight, {queued} queued",
            m.total.in_flight
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let reject = CallOptions::new().fallback_strategy(FallbackStrategy::Reject);
    let extra = keys_on(&map, port, "bp2:", 1).remove(0);
    assert_eq!(
        client.commit_with(&extra, b"v", &reject),
        Err(CommitError::Rejected)
    );
    collect.wait_for(&[
        "slotline::backpressure",
        "DEBUG",
        "call refused",
        "rejected",
    ]);
    cluster.resume_node(i).expect("SIGCONT");
    for f in fillers {
        f.join().expect("filler").expect("a filler's commit");
    }

    // A lost connection.
    for i in cluster.master_indices() {
        let _ = cluster.query(
            i,
            redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("normal"),
        );
    }
    let _ = client.commit(b"t:{1}", b"again");
    collect.wait_for(&["slotline::conn", "WARN", "connection failed"]);

    // Death.
    client.inject_io_panic();
    let limit = Instant::now() + Duration::from_secs(10);
    while !client.metrics().client_dead {
        assert!(Instant::now() < limit, "the client did not die");
        std::thread::sleep(Duration::from_millis(5));
    }
    collect.wait_for(&["slotline::engine", "ERROR", "panicked"]);
}
