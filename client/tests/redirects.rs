//! MOVED and ASK during a manual slot migration on a real local Redis Cluster:
//! `CLUSTER SETSLOT ... IMPORTING/MIGRATING`, `MIGRATE`, then `SETSLOT ... NODE`.
#![cfg(not(feature = "loom"))]

use slotline_client::Client;
use slotline_router::key_slot;
use slotline_testkit::LocalCluster;

/// The text of a simple or bulk string reply.
fn text(reply: slotline_client::conn::Reply) -> String {
    match reply.expect("command failed") {
        redis::Value::BulkString(b) => String::from_utf8(b).expect("utf-8"),
        redis::Value::SimpleString(s) => s,
        redis::Value::Okay => "OK".to_owned(),
        other => panic!("unexpected reply {other:?}"),
    }
}

fn ok(cluster: &LocalCluster, node: usize, cmd: &redis::Cmd) {
    let reply = cluster.query(node, cmd).expect("query");
    assert!(reply.is_ok(), "{cmd:?} on node {node}: {reply:?}");
}

/// Node index of the master owning `slot`, and of another master.
fn source_and_target(cluster: &LocalCluster, slot: u16) -> (usize, usize) {
    let masters: Vec<usize> = cluster.master_indices().collect();
    let owns = |i: usize| {
        let reply = cluster
            .query(i, redis::cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot))
            .expect("query");
        // Only the owner answers GET on a key of the slot without a redirect.
        let probe = cluster
            .query(i, redis::cmd("GET").arg("{mig}probe"))
            .expect("query");
        reply.is_ok() && probe.is_ok()
    };
    let source = *masters
        .iter()
        .find(|&&i| owns(i))
        .expect("some master owns the slot");
    let target = *masters
        .iter()
        .find(|&&i| i != source)
        .expect("three masters");
    (source, target)
}

#[test]
fn ask_during_migration_and_moved_after_it_are_followed() {
    let cluster = LocalCluster::start().unwrap_or_else(|e| panic!("local cluster: {e}"));
    let client = Client::connect(cluster.config()).expect("connect");
    let slot = key_slot(b"{mig}a").get();
    let (source, target) = source_and_target(&cluster, slot);
    let nodes = cluster.nodes();
    let (src_port, dst_port) = (nodes[source].port, nodes[target].port);
    let src_id = text(
        cluster
            .query(source, redis::cmd("CLUSTER").arg("MYID"))
            .unwrap(),
    );
    let dst_id = text(
        cluster
            .query(target, redis::cmd("CLUSTER").arg("MYID"))
            .unwrap(),
    );

    client
        .commit(b"{mig}a", b"before")
        .expect("commit before migration");

    // Start migrating the slot and move the key: the source now answers ASK for it.
    ok(
        &cluster,
        target,
        redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("IMPORTING")
            .arg(&src_id),
    );
    ok(
        &cluster,
        source,
        redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("MIGRATING")
            .arg(&dst_id),
    );
    ok(
        &cluster,
        source,
        redis::cmd("MIGRATE")
            .arg("127.0.0.1")
            .arg(dst_port)
            .arg("")
            .arg(0)
            .arg(5000)
            .arg("KEYS")
            .arg("{mig}a"),
    );
    client
        .commit(b"{mig}a", b"during")
        .expect("commit during migration (ASK)");
    client
        .commit(b"{mig}b", b"new")
        .expect("new key during migration (ASK)");
    let asks = client.metrics().total.ask;
    assert!(
        asks >= 2,
        "expected two ASK redirects followed, metrics say {asks}"
    );
    assert_eq!(
        client.metrics().total.moved,
        0,
        "ASK must not be taken for MOVED"
    );

    // Finish the migration on every master: the source now answers MOVED.
    for i in cluster.master_indices() {
        ok(
            &cluster,
            i,
            redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg("NODE")
                .arg(&dst_id),
        );
    }
    client
        .commit(b"{mig}a", b"after")
        .expect("commit after migration (MOVED)");
    client
        .commit(b"{mig}c", b"after")
        .expect("second commit after migration");
    let moved = client.metrics().total.moved;
    assert!(moved >= 1, "expected a MOVED followed, metrics say {moved}");
    assert!(
        moved <= 2,
        "one MOVED updates the slot: later commits go straight there ({moved})"
    );

    // Everything is on the target, read with plain connections.
    for (key, want) in [("{mig}a", "after"), ("{mig}b", "new"), ("{mig}c", "after")] {
        let got = cluster
            .query(target, redis::cmd("GET").arg(key))
            .expect("GET on the target");
        assert_eq!(
            got,
            Ok(redis::Value::BulkString(want.as_bytes().to_vec())),
            "{key}"
        );
    }
    let on_source = cluster
        .query(
            source,
            redis::cmd("CLUSTER").arg("COUNTKEYSINSLOT").arg(slot),
        )
        .expect("count on the source");
    assert_eq!(
        on_source,
        Ok(redis::Value::Int(0)),
        "source port {src_port}"
    );
}
