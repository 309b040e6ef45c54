//! `LocalCluster` and `LocalServer` against the real `redis-server`: start, health, node
//! control, and clean shutdown.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use slotline_testkit::{LocalCluster, LocalServer, Role};

fn port_answers(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

#[test]
fn default_cluster_is_three_masters_three_replicas_and_healthy() {
    let cluster = LocalCluster::start().unwrap();
    eprintln!(
        "6-node cluster healthy after {:?} (dir {})",
        cluster.startup_time(),
        cluster.dir().display()
    );
    let nodes = cluster.nodes();
    assert_eq!(nodes.len(), 6);
    assert_eq!(nodes.iter().filter(|n| n.role == Role::Master).count(), 3);
    assert!(nodes.iter().all(|n| n.pid.is_some()));
    for i in 0..6 {
        let info = cluster.cli(i, &["CLUSTER", "INFO"]).unwrap();
        assert!(info.contains("cluster_state:ok"), "node {i}: {info}");
        assert!(info.contains("cluster_known_nodes:6"), "node {i}: {info}");
        let expected = if i < 3 { Role::Master } else { Role::Replica };
        assert_eq!(cluster.live_role(i).unwrap(), expected, "node {i}");
    }
    let replication = cluster.cli(3, &["INFO", "replication"]).unwrap();
    assert!(
        replication.contains("master_link_status:up"),
        "{replication}"
    );
    assert_eq!(cluster.master_addrs().len(), 3);
    assert_eq!(cluster.config().nodes, cluster.seed_addrs());
}

#[test]
fn dropping_a_cluster_frees_every_port_and_removes_its_directory() {
    let cluster = LocalCluster::builder()
        .masters(3)
        .replicas_per_master(0)
        .start()
        .unwrap();
    let ports: Vec<u16> = cluster.nodes().iter().map(|n| n.port).collect();
    let dir = cluster.dir().to_path_buf();
    assert!(ports.iter().all(|&p| port_answers(p)));
    drop(cluster);
    for port in ports {
        assert!(!port_answers(port), "port {port} still answers after drop");
    }
    assert!(!dir.exists(), "{} still exists", dir.display());
}

#[test]
fn single_master_cluster_is_formed_without_redis_cli_create() {
    let cluster = LocalCluster::builder()
        .masters(1)
        .replicas_per_master(1)
        .start()
        .unwrap();
    assert_eq!(cluster.nodes().len(), 2);
    let slots = cluster.cli(0, &["CLUSTER", "INFO"]).unwrap();
    assert!(slots.contains("cluster_slots_assigned:16384"), "{slots}");
    assert_eq!(cluster.live_role(1).unwrap(), Role::Replica);
}

#[test]
fn killed_node_restarts_on_its_port_and_the_cluster_heals() {
    let mut cluster = LocalCluster::builder()
        .masters(3)
        .replicas_per_master(1)
        .start()
        .unwrap();
    let victim = 4; // a replica: no failover needed
    let port = cluster.nodes()[victim].port;
    cluster.kill_node(victim).unwrap();
    assert!(!port_answers(port));
    assert_eq!(cluster.nodes()[victim].pid, None);
    assert!(cluster.cli(victim, &["PING"]).is_err());
    cluster.restart_node(victim).unwrap();
    assert!(cluster.nodes()[victim].pid.is_some());
    cluster.wait_healthy(Duration::from_secs(30)).unwrap();
    assert_eq!(cluster.cli(victim, &["PING"]).unwrap().trim(), "PONG");
}

#[test]
fn paused_node_answers_nothing_until_resumed() {
    let server_cluster = LocalCluster::builder()
        .masters(1)
        .replicas_per_master(0)
        .start()
        .unwrap();
    server_cluster.pause_node(0).unwrap();
    let mut conn = {
        let addr = server_cluster.nodes()[0].addr();
        let opts = slotline_client::ConnOptions {
            read_timeout: Duration::from_millis(200),
            ..Default::default()
        };
        slotline_client::Conn::connect(&addr, &opts).unwrap()
    };
    let err = conn.query(&redis::cmd("PING")).unwrap_err();
    assert!(err.is_timeout(), "{err}");
    server_cluster.resume_node(0).unwrap();
    assert_eq!(server_cluster.cli(0, &["PING"]).unwrap().trim(), "PONG");
}

#[test]
fn stopped_node_frees_its_port() {
    let mut cluster = LocalCluster::builder()
        .masters(1)
        .replicas_per_master(0)
        .start()
        .unwrap();
    let port = cluster.nodes()[0].port;
    cluster.stop_node(0).unwrap();
    assert!(!port_answers(port));
    assert!(matches!(
        cluster.pause_node(0),
        Err(slotline_testkit::LocalError::NodeNotRunning(0))
    ));
    assert!(matches!(
        cluster.kill_node(9),
        Err(slotline_testkit::LocalError::NoSuchNode(9))
    ));
}

#[test]
fn standalone_server_runs_commands_and_stops_on_drop() {
    let server = LocalServer::start().unwrap();
    let port = server.port();
    server.cli(&["SET", "k", "v"]).unwrap();
    assert_eq!(server.cli(&["GET", "k"]).unwrap().trim(), "v");
    assert_eq!(
        server.query(&redis::cmd("DBSIZE")).unwrap(),
        Ok(redis::Value::Int(1))
    );
    let info = server.cli(&["INFO", "server"]).unwrap();
    assert!(info.contains("redis_mode:standalone"), "{info}");
    drop(server);
    assert!(!port_answers(port));
}

#[test]
fn servers_started_in_parallel_get_distinct_ports() {
    let servers: Vec<LocalServer> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6).map(|_| s.spawn(LocalServer::start)).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect()
    });
    let mut ports: Vec<u16> = servers.iter().map(LocalServer::port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 6);
}
