//! `burst --link`: the shaped link to a cluster in a network namespace is built and removed
//! completely, crashed runs' leftovers are cleaned, and a short run behind a 20 Mbit/s link
//! reads back every acknowledged write and reports the kernel buffers it saw.
//!
//! The tests that build a link need root, `ip`, `tc` and `ss`; they are `#[ignore]`d (run
//! them with `cargo test -p slotline-bench --test burst_link -- --ignored`, as `.ci/run` does
//! when it runs as root) and fail, saying so, when run without root.
#![cfg(not(feature = "loom"))]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use slotline_bench::burst::args::{Args, PathKind, TraceKind};
use slotline_bench::burst::link::{self, Link, RAISED_MAX, STATE_DIR};
use slotline_bench::burst::run;
use slotline_testkit::LocalCluster;

/// One link per process at a time (and the sysctls are machine-wide): these tests take turns.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LINKS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LINKS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Fails the test, with the reason, unless it can build links.
fn require_root() {
    if let Err(why) = link::check_prerequisites() {
        panic!("this test needs root, ip, tc and ss: {why}");
    }
}

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn namespaces() -> Vec<String> {
    sh(&["ip", "netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

fn interface_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", name])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn sysctl(file: &str) -> String {
    fs::read_to_string(file).unwrap().trim().to_owned()
}

fn max_of(value: &str) -> u64 {
    value.split_whitespace().last().unwrap().parse().unwrap()
}

const SYSCTL_FILES: [&str; 4] = [
    "/proc/sys/net/core/wmem_max",
    "/proc/sys/net/core/rmem_max",
    "/proc/sys/net/ipv4/tcp_wmem",
    "/proc/sys/net/ipv4/tcp_rmem",
];

#[test]
fn prerequisites_are_checked_with_a_clear_message() {
    match link::effective_uid() {
        Some(0) => {
            // Root: the answer depends only on iproute2 being there.
            let tools = ["ip", "tc", "ss"].iter().all(|t| {
                Command::new("sh")
                    .args(["-c", &format!("command -v {t}")])
                    .output()
                    .is_ok_and(|o| o.status.success())
            });
            assert_eq!(link::check_prerequisites().is_ok(), tools);
        }
        Some(uid) => {
            let err = link::check_prerequisites().unwrap_err();
            assert!(err.contains("needs root"), "{err}");
            assert!(err.contains(&uid.to_string()), "{err}");
            let err = Link::up(20_000_000).unwrap_err();
            assert!(err.contains("needs root"), "{err}");
        }
        None => panic!("/proc/self/status has no Uid line"),
    }
}

#[test]
fn link_is_refused_with_nodes() {
    let args = Args {
        link: Some(20_000_000),
        nodes: Some(vec!["127.0.0.1:7000".parse().unwrap()]),
        progress: false,
        ..Args::default()
    };
    let err = run(&args, "burst (test)").unwrap_err();
    assert!(err.contains("--link") && err.contains("--nodes"), "{err}");
}

#[test]
#[ignore = "needs root: builds a network namespace, qdiscs, and raises sysctls"]
fn a_link_is_built_shaped_and_removed_with_everything_restored() {
    require_root();
    let _one = one_at_a_time();
    let before: Vec<String> = SYSCTL_FILES.iter().map(|f| sysctl(f)).collect();
    let pid = std::process::id();
    let (ns, veth) = (format!("slb-{pid}"), format!("slb{pid}r"));
    {
        let link = Link::up(20_000_000).expect("a link");
        assert_eq!(link.namespace(), ns);
        assert!(namespaces().contains(&ns), "{:?}", namespaces());
        assert!(interface_exists(&veth));
        let root_qdisc = sh(&["tc", "qdisc", "show", "dev", &veth]);
        assert!(
            root_qdisc.contains("tbf") && root_qdisc.contains("rate 20Mbit"),
            "{root_qdisc}"
        );
        let ns_qdisc = sh(&[
            "tc",
            "-n",
            &ns,
            "qdisc",
            "show",
            "dev",
            &format!("slb{pid}n"),
        ]);
        assert!(
            ns_qdisc.contains("tbf") && ns_qdisc.contains("rate 20Mbit"),
            "{ns_qdisc}"
        );
        let info = link.info();
        assert_eq!(info.rate_bps, 20_000_000);
        assert_eq!(info.cluster_addr, link.cluster_ip().to_string());
        assert_eq!(info.sysctls.len(), 4);
        for (file, change) in SYSCTL_FILES.iter().zip(&info.sysctls) {
            let now = sysctl(file);
            assert!(max_of(&now) >= RAISED_MAX, "{file} = {now}");
            assert_eq!(
                now.split_whitespace().collect::<Vec<_>>().join(" "),
                change.during
            );
        }
        assert!(Path::new(STATE_DIR)
            .join(format!("slb-{pid}.sysctl"))
            .exists());
        let ns_wmem = sh(&[
            "ip",
            "netns",
            "exec",
            &ns,
            "cat",
            "/proc/sys/net/ipv4/tcp_wmem",
        ]);
        assert!(
            max_of(&ns_wmem) >= RAISED_MAX,
            "in the namespace: {ns_wmem}"
        );

        // A cluster inside: its nodes are the redis-server processes themselves (so pause
        // works), in the namespace, reachable through the link.
        let cluster = LocalCluster::builder()
            .masters(3)
            .replicas_per_master(0)
            .host(link.cluster_ip())
            .command_prefix(link.exec_prefix())
            .start()
            .expect("a cluster in the namespace");
        let own_netns = fs::read_link("/proc/self/ns/net").unwrap();
        for node in cluster.nodes() {
            let pid = node.pid.expect("running");
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
            assert_eq!(comm.trim(), "redis-server");
            let netns = fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
            assert_ne!(netns, own_netns, "node {pid} runs in this namespace");
        }
        assert!(cluster
            .seed_addrs()
            .iter()
            .all(|a| a.host() == link.cluster_ip().to_string()));
        let state = |pid: u32| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
            stat.rsplit_once(')')
                .unwrap()
                .1
                .split_whitespace()
                .next()
                .unwrap()
                .to_owned()
        };
        let first = cluster.nodes()[0].pid.unwrap();
        cluster.pause_node(0).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(state(first), "T", "SIGSTOP reached the server");
        cluster.resume_node(0).unwrap();
        assert!(cluster.cli(0, &["PING"]).unwrap().contains("PONG"));
        drop(cluster);
    }
    assert!(!namespaces().contains(&ns), "{:?}", namespaces());
    assert!(!interface_exists(&veth));
    let after: Vec<String> = SYSCTL_FILES.iter().map(|f| sysctl(f)).collect();
    assert_eq!(after, before);
    assert!(!Path::new(STATE_DIR)
        .join(format!("slb-{pid}.sysctl"))
        .exists());
}

#[test]
#[ignore = "needs root: builds a network namespace and writes sysctls"]
fn leftovers_of_a_crashed_run_are_cleaned() {
    require_root();
    let _one = one_at_a_time();
    // A pid above pid_max belongs to no process.
    let pid_max: u64 = sysctl("/proc/sys/kernel/pid_max").parse().unwrap();
    let dead = pid_max + 1;
    let (ns, veth) = (format!("slb-{dead}"), format!("slb{dead}r"));
    sh(&["ip", "netns", "add", &ns]);
    sh(&[
        "ip", "link", "add", &veth, "type", "veth", "peer", "name", "slbxn", "netns", &ns,
    ]);
    assert!(namespaces().contains(&ns) && interface_exists(&veth));
    // The crashed run saved wmem_max as it was, then raised it.
    let file = "/proc/sys/net/core/wmem_max";
    let original = sysctl(file);
    let state: PathBuf = Path::new(STATE_DIR).join(format!("slb-{dead}.sysctl"));
    fs::create_dir_all(STATE_DIR).unwrap();
    fs::write(&state, format!("{file}\t{original}\n")).unwrap();
    let raised = original.parse::<u64>().unwrap() + 4096;
    fs::write(file, raised.to_string()).unwrap();

    let cleaned = link::clean_stale();
    let now = sysctl(file);
    if now != original {
        fs::write(file, &original).unwrap();
    }
    assert!(cleaned.contains(&ns), "{cleaned:?}");
    assert!(!namespaces().contains(&ns));
    assert!(!interface_exists(&veth));
    assert_eq!(now, original, "the saved value is written back");
    assert!(!state.exists());
}

#[test]
#[ignore = "needs root: runs the cluster behind a shaped link"]
fn a_short_burst_behind_a_20_mbit_link_loses_nothing_and_reports_kernel_buffers() {
    require_root();
    let _one = one_at_a_time();
    let before: Vec<String> = SYSCTL_FILES.iter().map(|f| sysctl(f)).collect();
    let args = Args {
        link: Some(20_000_000),
        duration: Duration::from_secs(1),
        runs: 1,
        paths: vec![PathKind::Sidecar, PathKind::Slotline],
        traces: vec![TraceKind::Heavy],
        out: std::env::temp_dir().join(format!("burst-link-{}", std::process::id())),
        progress: false,
        proxy_program: Some(PathBuf::from(env!("CARGO_BIN_EXE_burst"))),
        ..Args::default()
    };
    let (report, _outputs) = run(&args, "burst --link 20mbit (test)").unwrap();

    let link = report.machine.link.as_ref().expect("the link is recorded");
    assert_eq!(link.rate_bps, 20_000_000);
    assert!(link.tbf_burst_bytes >= 32 * 1024 && link.tbf_limit_bytes >= 128 * 1024);
    assert_eq!(link.sysctls.len(), 4);
    assert!(report.machine.cluster.contains(&link.cluster_addr));
    let json = fs::read_to_string(args.out.join("report.json")).unwrap();
    assert!(
        json.contains("\"rate_bps\": 20000000"),
        "link in report.json"
    );

    let paths: Vec<&str> = report.runs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["sidecar", "slotline"]);
    for r in &report.runs {
        let who = &r.path;
        assert_eq!(r.pending, 0, "{who}");
        assert_eq!(r.offered, r.acknowledged + r.rejected + r.unknown, "{who}");
        assert!(r.acknowledged > 0, "{who}");
        assert_eq!(
            r.lost, 0,
            "{who}: acknowledged writes missing: {:?}",
            r.read_back
        );
        assert_eq!(r.read_back.acked_checked, r.acknowledged, "{who}");
    }
    let sidecar = &report.runs[0];
    assert!(
        sidecar.peak_kernel_bytes > 0,
        "the proxy's sockets to the masters held bytes behind the link"
    );
    assert!(
        sidecar.sndbuf_bytes.1 > 0,
        "the proxy's send buffers were read"
    );
    let slotline = &report.runs[1];
    // Measured, not the configured value: slotline sets SO_SNDBUF on each of its sockets to
    // the masters (the kernel doubles it), so the sum exceeds the configured size and does
    // not move.
    let configured = report.params.slotline.so_sndbuf;
    assert!(
        slotline.sndbuf_bytes.1 > configured,
        "slotline's send buffers: {:?}, configured {configured}",
        slotline.sndbuf_bytes
    );
    assert_eq!(slotline.sndbuf_bytes.0, slotline.sndbuf_bytes.1);

    // Everything is back.
    let pid = std::process::id();
    assert!(!namespaces().contains(&format!("slb-{pid}")));
    let after: Vec<String> = SYSCTL_FILES.iter().map(|f| sysctl(f)).collect();
    assert_eq!(after, before);
}
