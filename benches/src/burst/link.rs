//! `--link RATE`: the local cluster behind a shaped link, so that the network, not loopback,
//! is the bottleneck between the write paths and Redis.
//!
//! [`Link::up`] builds, for one run:
//!
//! - a network namespace `slb-<pid>` holding the cluster, joined to this namespace by a veth
//!   pair (`slb<pid>r` here, `10.203.<x>.1/30`; `slb<pid>n` there, `10.203.<x>.2/30`);
//! - a `tc tbf` qdisc at `RATE` on both ends' egress: requests (paths to cluster) and replies.
//!   The cluster's own traffic (replication, bus) stays inside the namespace, unshaped;
//! - socket buffer limits raised (`net.core.{w,r}mem_max`, `net.ipv4.tcp_{w,r}mem`'s maximum,
//!   to [`RAISED_MAX`]) on both sides, so that autotuning, not a low ceiling, decides how far
//!   a socket's send buffer grows.
//!
//! Everything is undone when the [`Link`] drops, on SIGINT/SIGTERM (a watcher thread tears
//! the link down and exits the process), and, after a crash, by [`clean_stale`] at the start
//! of the next run: leftover `slb-<pid>` namespaces of dead processes are deleted and the
//! sysctl values they saved in [`STATE_DIR`] are written back.
//!
//! Kernel buffers are read with `ss -tmipn` ([`parse_ss`]): every 100 ms, the `Send-Q` and
//! `Recv-Q` columns and the `skmem` fields (`tb`: the send buffer size as autotuned, `w`:
//! bytes queued for sending) of the path's own sockets to the masters ([`sample_kernel`]).
//!
//! The sysctls are machine-wide state (the root namespace's): two processes running `--link`
//! at once would restore each other's values. One [`Link`] per process at a time.

use std::collections::HashMap;
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Prefix of the namespaces this module creates (`slb-<pid>`).
pub const NAMESPACE_PREFIX: &str = "slb-";
/// Where a running link records the sysctl values it replaced (`slb-<pid>.sysctl`), for
/// [`clean_stale`] after a crash.
pub const STATE_DIR: &str = "/run/slotline-burst";
/// The maximum socket buffer size during a link run, bytes (64 MiB). Only raised: a higher
/// value already set is kept.
pub const RAISED_MAX: u64 = 64 << 20;
/// How often [`sample_kernel`] runs `ss`.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// The sysctls raised during a run: `(name, file)`. `tcp_*mem` are triples (min, default,
/// max) of which only the max is raised.
const SYSCTLS: [(&str, &str); 4] = [
    ("net.core.wmem_max", "/proc/sys/net/core/wmem_max"),
    ("net.core.rmem_max", "/proc/sys/net/core/rmem_max"),
    ("net.ipv4.tcp_wmem", "/proc/sys/net/ipv4/tcp_wmem"),
    ("net.ipv4.tcp_rmem", "/proc/sys/net/ipv4/tcp_rmem"),
];

/// The link of a run, as recorded in `report.json` (`machine.link`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkInfo {
    /// The shaped rate, bits/s, each direction.
    pub rate_bps: u64,
    /// `tbf` bucket size, bytes (see [`tbf_params`]).
    pub tbf_burst_bytes: u64,
    /// `tbf` queue limit, bytes (see [`tbf_params`]).
    pub tbf_limit_bytes: u64,
    /// The namespace the cluster ran in.
    pub namespace: String,
    /// This side's address on the veth pair.
    pub client_addr: String,
    /// The cluster's address (the namespace side).
    pub cluster_addr: String,
    /// The sysctls raised in this (the paths') namespace.
    pub sysctls: Vec<SysctlChange>,
    /// Which of them could be set inside the cluster's namespace too (per-namespace ones).
    pub namespace_sysctls: Vec<String>,
}

/// One sysctl raised for the run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysctlChange {
    /// `net.core.wmem_max`, ...
    pub name: String,
    /// The value before (restored afterwards).
    pub before: String,
    /// The value during the run.
    pub during: String,
}

impl LinkInfo {
    /// One line for the summary: rate, tbf settings, buffer ceilings.
    pub fn describe(&self) -> String {
        let raised: Vec<String> = self
            .sysctls
            .iter()
            .map(|s| format!("{} {}", s.name, s.during))
            .collect();
        format!(
            "link: {} each way, tc tbf burst {} limit {} (namespace {}, cluster at {}); {}",
            rate_text(self.rate_bps),
            kib_text(self.tbf_burst_bytes),
            kib_text(self.tbf_limit_bytes),
            self.namespace,
            self.cluster_addr,
            raised.join(", ")
        )
    }
}

fn rate_text(bps: u64) -> String {
    let (value, unit) = if bps >= 1_000_000_000 {
        (bps as f64 / 1e9, "Gbit/s")
    } else if bps >= 1_000_000 {
        (bps as f64 / 1e6, "Mbit/s")
    } else {
        (bps as f64 / 1e3, "kbit/s")
    };
    let text = format!("{value:.3}");
    format!(
        "{} {unit}",
        text.trim_end_matches('0').trim_end_matches('.')
    )
}

fn kib_text(bytes: u64) -> String {
    format!("{} KiB", bytes / 1024)
}

/// `tbf`'s bucket (`burst`) and queue limit (`limit`) in bytes for `rate_bps`.
///
/// - **burst**: the bucket must hold what the rate earns in one timer tick or the qdisc
///   cannot reach its rate (the kernel's HZ may be as low as 100: 10 ms of the rate), and at
///   least 32 KiB, so that one TSO segment (up to 64 KiB, which tbf splits into MTU packets
///   when larger than the bucket) and a short back-to-back run of packets pass at line speed.
/// - **limit**: the bytes that may wait in the qdisc: 50 ms of the rate, at least 128 KiB.
///   A router's buffer of a few tens of milliseconds; a larger one would move the backlog
///   out of the senders' sockets (what the run measures) into the qdisc, a smaller one would
///   drop at every burst of a single connection.
///
/// ```
/// use slotline_bench::burst::link::tbf_params;
///
/// let (burst, limit) = tbf_params(50_000_000); // 50 Mbit/s = 6.25 MB/s
/// assert_eq!(burst, 62_500);
/// assert_eq!(limit, 312_500);
/// assert_eq!(tbf_params(1_000_000), (32 * 1024, 128 * 1024));
/// ```
pub fn tbf_params(rate_bps: u64) -> (u64, u64) {
    let bytes_per_s = rate_bps / 8;
    let burst = (bytes_per_s / 100).max(32 * 1024);
    let limit = (bytes_per_s / 20).max(128 * 1024);
    (burst, limit)
}

/// Checks what `--link` needs: root (effective uid 0), and `ip`, `tc` and `ss` on `PATH`.
///
/// # Errors
///
/// A message saying what is missing.
pub fn check_prerequisites() -> Result<(), String> {
    match effective_uid() {
        Some(0) => {}
        Some(uid) => {
            return Err(format!(
                "--link needs root (network namespaces, tc, sysctls); running as uid {uid}"
            ))
        }
        None => return Err("--link needs root; cannot read /proc/self/status".to_owned()),
    }
    let missing: Vec<&str> = ["ip", "tc", "ss"]
        .into_iter()
        .filter(|tool| which(tool).is_none())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "--link needs iproute2's {} on PATH (apt-get install iproute2)",
            missing.join(", ")
        ))
    }
}

/// This process's effective uid, from `/proc/self/status`.
pub fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Runs a command, returning its stdout; a failure names the command and its stderr.
fn run(args: &[&str]) -> Result<String, String> {
    let (program, rest) = args.split_first().ok_or("an empty command")?;
    let output = Command::new(program)
        .args(rest)
        .output()
        .map_err(|e| format!("`{}`: {e}", args.join(" ")))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "`{}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// What tearing a link down undoes; shared by [`Link`]'s `Drop` and the signal watcher, and
/// taken by whichever runs first.
#[derive(Debug)]
struct Teardown {
    namespace: String,
    root_veth: String,
    /// Sysctl files and the values to write back.
    restore: Vec<(PathBuf, String)>,
    state_file: PathBuf,
}

impl Teardown {
    /// Restores the sysctls, stops whatever still runs in the namespace, deletes the veth
    /// pair and the namespace. Best effort: every step runs even if one fails.
    fn run(self) {
        for (file, value) in &self.restore {
            let _ = fs::write(file, value);
        }
        remove_namespace(&self.namespace, &self.root_veth);
        let _ = fs::remove_file(&self.state_file);
    }
}

/// Kills the namespace's processes, deletes the root side of the veth (which takes its peer
/// with it) and the namespace.
fn remove_namespace(namespace: &str, root_veth: &str) {
    if let Ok(pids) = run(&["ip", "netns", "pids", namespace]) {
        for pid in pids.split_whitespace() {
            let _ = run(&["kill", "-KILL", pid]);
        }
    }
    let _ = run(&["ip", "link", "del", root_veth]);
    let _ = run(&["ip", "netns", "del", namespace]);
}

/// The link being torn down on exit; `Some` while a [`Link`] is up.
static ACTIVE: Mutex<Option<Teardown>> = Mutex::new(None);
/// The signal that asked the process to stop (0: none).
static SIGNALLED: AtomicI32 = AtomicI32::new(0);

const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

extern "C" {
    /// libc's `signal(2)`; handlers are passed and returned as addresses (`sighandler_t`).
    fn signal(signum: i32, handler: usize) -> usize;
}

/// Only stores the signal number: async-signal-safe. The watcher thread does the rest.
extern "C" fn on_signal(signum: i32) {
    SIGNALLED.store(signum, Ordering::SeqCst);
}

/// Takes the active teardown, if any, and runs it.
fn tear_down_active() {
    let teardown = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(t) = teardown {
        t.run();
    }
}

/// A shaped link to a network namespace where the cluster runs; torn down on drop. See the
/// [module docs](self).
#[derive(Debug)]
pub struct Link {
    info: LinkInfo,
    cluster_ip: Ipv4Addr,
    /// Signal handlers replaced while the link is up, restored on drop.
    previous_handlers: Vec<(i32, usize)>,
}

impl Link {
    /// Builds the namespace, the veth pair, the qdiscs, and raises the sysctls. Cleans up
    /// leftovers of crashed runs first ([`clean_stale`]).
    ///
    /// # Errors
    ///
    /// A message when a prerequisite is missing ([`check_prerequisites`]), another link is
    /// up in this process, or a step fails; what was built so far is removed.
    pub fn up(rate_bps: u64) -> Result<Link, String> {
        check_prerequisites()?;
        let pid = std::process::id();
        let namespace = format!("{NAMESPACE_PREFIX}{pid}");
        let root_veth = format!("slb{pid}r");
        let ns_veth = format!("slb{pid}n");
        let state_file = Path::new(STATE_DIR).join(format!("{namespace}.sysctl"));
        {
            let mut active = ACTIVE.lock().unwrap_or_else(|e| e.into_inner());
            if active.is_some() {
                return Err("--link: a link is already up in this process".to_owned());
            }
            clean_stale();
            *active = Some(Teardown {
                namespace: namespace.clone(),
                root_veth: root_veth.clone(),
                restore: Vec::new(),
                state_file: state_file.clone(),
            });
        }
        let (burst, limit) = tbf_params(rate_bps);
        let mut link = Link {
            info: LinkInfo {
                rate_bps,
                tbf_burst_bytes: burst,
                tbf_limit_bytes: limit,
                namespace: namespace.clone(),
                ..LinkInfo::default()
            },
            cluster_ip: Ipv4Addr::UNSPECIFIED,
            previous_handlers: Vec::new(),
        };
        // From here on, an early return drops `link`, which tears down what exists.
        let x = free_subnet(pid)?;
        let client_ip = Ipv4Addr::new(10, 203, x, 1);
        link.cluster_ip = Ipv4Addr::new(10, 203, x, 2);
        link.info.client_addr = client_ip.to_string();
        link.info.cluster_addr = link.cluster_ip.to_string();
        let ns = namespace.as_str();
        let client_cidr = format!("{client_ip}/30");
        let cluster_cidr = format!("{}/30", link.cluster_ip);
        let rate = rate_bps.to_string();
        let (burst, limit) = (burst.to_string(), limit.to_string());
        let tbf = [
            "root", "tbf", "rate", &rate, "burst", &burst, "limit", &limit,
        ];
        run(&["ip", "netns", "add", ns])?;
        run(&[
            "ip", "link", "add", &root_veth, "type", "veth", "peer", "name", &ns_veth, "netns", ns,
        ])?;
        run(&["ip", "addr", "add", &client_cidr, "dev", &root_veth])?;
        run(&[
            "ip",
            "-n",
            ns,
            "addr",
            "add",
            &cluster_cidr,
            "dev",
            &ns_veth,
        ])?;
        run(&["ip", "link", "set", &root_veth, "up"])?;
        run(&["ip", "-n", ns, "link", "set", &ns_veth, "up"])?;
        run(&["ip", "-n", ns, "link", "set", "lo", "up"])?;
        // Bare numbers: tc reads a rate as bits/s and sizes as bytes.
        let mut add = vec!["tc", "qdisc", "add", "dev", &root_veth];
        add.extend(tbf);
        run(&add)?;
        let mut add = vec!["tc", "-n", ns, "qdisc", "add", "dev", &ns_veth];
        add.extend(tbf);
        run(&add)?;
        link.raise_sysctls(&state_file)?;
        link.watch_signals();
        Ok(link)
    }

    /// Raises the sysctls here (saving the old values in the teardown and in the state file
    /// first) and the per-namespace ones in the cluster's namespace.
    fn raise_sysctls(&mut self, state_file: &Path) -> Result<(), String> {
        let mut changes = Vec::new();
        for (name, file) in SYSCTLS {
            let before = fs::read_to_string(file)
                .map_err(|e| format!("reading {file}: {e}"))?
                .trim()
                .to_owned();
            let during = raised_value(&before)
                .ok_or_else(|| format!("{name}: unexpected value `{before}`"))?;
            changes.push((name, file, before, during));
        }
        let saved: String = changes
            .iter()
            .map(|(_, file, before, _)| format!("{file}\t{before}\n"))
            .collect();
        fs::create_dir_all(STATE_DIR)
            .and_then(|()| fs::write(state_file, saved))
            .map_err(|e| format!("saving the sysctls in {}: {e}", state_file.display()))?;
        for (name, file, before, during) in changes {
            if let Some(t) = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                t.restore.push((PathBuf::from(file), before.clone()));
            }
            fs::write(file, &during).map_err(|e| format!("writing {name} = {during}: {e}"))?;
            // Per-namespace on recent kernels (all four on 6.x); where one is not, the
            // namespace has no such file or refuses the write, and the global value applies.
            let set_in_namespace = run(&[
                "ip",
                "netns",
                "exec",
                &self.info.namespace,
                "sh",
                "-c",
                "printf '%s\\n' \"$1\" > \"$2\"",
                "sh",
                &during,
                file,
            ])
            .is_ok();
            if set_in_namespace {
                self.info.namespace_sysctls.push(name.to_owned());
            }
            self.info.sysctls.push(SysctlChange {
                name: name.to_owned(),
                before,
                during,
            });
        }
        Ok(())
    }

    /// Routes SIGINT and SIGTERM to a watcher thread that tears the link down and exits.
    fn watch_signals(&mut self) {
        SIGNALLED.store(0, Ordering::SeqCst);
        for signum in [SIGINT, SIGTERM] {
            // SAFETY: `signal` is libc's, declared with its C ABI (`sighandler_t` is a
            // pointer-sized address). `on_signal` is an `extern "C" fn(i32)` that only
            // stores to an atomic, which is async-signal-safe.
            let previous = unsafe { signal(signum, on_signal as extern "C" fn(i32) as usize) };
            self.previous_handlers.push((signum, previous));
        }
        thread::spawn(|| loop {
            thread::sleep(Duration::from_millis(50));
            let signum = SIGNALLED.load(Ordering::SeqCst);
            if signum != 0 {
                eprintln!("burst: signal {signum}: removing the shaped link and exiting");
                tear_down_active();
                std::process::exit(128 + signum);
            }
            if ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).is_none() {
                return;
            }
        });
    }

    /// What the report records about the link.
    pub fn info(&self) -> &LinkInfo {
        &self.info
    }

    /// The cluster's address (inside the namespace).
    pub fn cluster_ip(&self) -> Ipv4Addr {
        self.cluster_ip
    }

    /// The namespace's name.
    pub fn namespace(&self) -> &str {
        &self.info.namespace
    }

    /// The words that run a program inside the namespace (`ip netns exec <name>`); `ip`
    /// execs the program, so its pid is the program's.
    pub fn exec_prefix(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.info.namespace]
            .map(String::from)
            .to_vec()
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        tear_down_active();
        for &(signum, previous) in &self.previous_handlers {
            // SAFETY: as in `watch_signals`; `previous` is what `signal` returned for this
            // signal, so a handler (or SIG_DFL / SIG_IGN) that was valid before.
            unsafe {
                signal(signum, previous);
            }
        }
    }
}

/// The sysctl value with its maximum raised to at least [`RAISED_MAX`]: a number, or the last
/// of three numbers (`tcp_wmem`). `None` for anything else.
///
/// ```
/// use slotline_bench::burst::link::raised_value;
///
/// assert_eq!(raised_value("4194304").as_deref(), Some("67108864"));
/// assert_eq!(raised_value("4096\t16384\t4194304").as_deref(), Some("4096 16384 67108864"));
/// assert_eq!(raised_value("4096 131072 134217728").as_deref(), Some("4096 131072 134217728"));
/// assert_eq!(raised_value("lots"), None);
/// ```
pub fn raised_value(value: &str) -> Option<String> {
    let mut numbers: Vec<u64> = value
        .split_whitespace()
        .map(|n| n.parse().ok())
        .collect::<Option<_>>()?;
    if numbers.len() != 1 && numbers.len() != 3 {
        return None;
    }
    let last = numbers.last_mut()?;
    *last = (*last).max(RAISED_MAX);
    Some(
        numbers
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// A `10.203.<x>.0/30` subnet no interface uses, `x` derived from the pid.
fn free_subnet(pid: u32) -> Result<u8, String> {
    let used = run(&["ip", "-o", "-4", "addr", "show"])?;
    (0..250u32)
        .map(|k| ((pid + k) % 250 + 1) as u8)
        .find(|x| !used.contains(&format!("10.203.{x}.")))
        .ok_or_else(|| "--link: no free 10.203.x.0/30 subnet".to_owned())
}

/// Removes what crashed runs left: `slb-<pid>` namespaces (and their veths) whose process is
/// gone, and writes back the sysctl values such a run saved in [`STATE_DIR`]. Returns the
/// namespaces removed and the state files applied.
pub fn clean_stale() -> Vec<String> {
    let alive = |pid: &str| Path::new("/proc").join(pid).exists();
    let mut cleaned = Vec::new();
    if let Ok(list) = run(&["ip", "netns", "list"]) {
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            let Some(pid) = name.strip_prefix(NAMESPACE_PREFIX) else {
                continue;
            };
            if pid.parse::<u32>().is_ok() && !alive(pid) {
                remove_namespace(name, &format!("slb{pid}r"));
                cleaned.push(name.to_owned());
            }
        }
    }
    if let Ok(dir) = fs::read_dir(STATE_DIR) {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name
                .strip_prefix(NAMESPACE_PREFIX)
                .and_then(|n| n.strip_suffix(".sysctl"))
            else {
                continue;
            };
            if alive(pid) {
                continue;
            }
            if let Ok(saved) = fs::read_to_string(entry.path()) {
                for (file, value) in saved.lines().filter_map(|l| l.split_once('\t')) {
                    // Only the files this module writes.
                    if SYSCTLS.iter().any(|(_, f)| *f == file) {
                        let _ = fs::write(file, value);
                    }
                }
            }
            let _ = fs::remove_file(entry.path());
            cleaned.push(entry.path().display().to_string());
        }
    }
    cleaned
}

// ---------------------------------------------------------------------------------------------
// ss
// ---------------------------------------------------------------------------------------------

/// `ss -m`'s `skmem:(r..,rb..,t..,tb..,f..,w..,o..,bl..,d..)`, bytes (drops: `d`, a count).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Skmem {
    /// `r`: receive queue memory allocated (`rmem_alloc`).
    pub r: u64,
    /// `rb`: receive buffer size (`SO_RCVBUF`, autotuned or set).
    pub rb: u64,
    /// `t`: send memory in flight in the lower layers (`wmem_alloc`).
    pub t: u64,
    /// `tb`: send buffer size (`SO_SNDBUF`, autotuned or set).
    pub tb: u64,
    /// `f`: memory scheduled but not used (`fwd_alloc`).
    pub f: u64,
    /// `w`: bytes queued for sending (`wmem_queued`).
    pub w: u64,
    /// `o`: option memory (`optmem`).
    pub o: u64,
    /// `bl`: backlog queue memory.
    pub bl: u64,
    /// `d`: packets dropped before reaching the socket.
    pub d: u64,
}

/// One TCP socket of `ss -tmipn` output.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SsSocket {
    /// `Recv-Q`: bytes received and not read by the application.
    pub recv_q: u64,
    /// `Send-Q`: bytes written and not acknowledged by the peer.
    pub send_q: u64,
    /// Local address, `ip:port`.
    pub local: String,
    /// Peer address, `ip:port`.
    pub peer: String,
    /// Processes holding the socket (`users:(("name",pid=N,fd=M),...)`), their pids.
    pub pids: Vec<u32>,
    /// The memory line, when `-m` was given.
    pub skmem: Option<Skmem>,
}

impl SsSocket {
    /// The peer's port.
    pub fn peer_port(&self) -> Option<u16> {
        self.peer.rsplit_once(':')?.1.parse().ok()
    }

    /// The peer's host (brackets of an IPv6 address removed).
    pub fn peer_host(&self) -> &str {
        let host = self.peer.rsplit_once(':').map_or("", |(h, _)| h);
        host.trim_start_matches('[').trim_end_matches(']')
    }
}

/// Parses `ss -t [-m] [-i] [-p] -n` output, with or without the header and the `State`
/// column (`ss` leaves it out when a state filter is given). A socket's first line starts in
/// column 0; its details (`skmem`, TCP info) follow on lines that start with whitespace.
/// Lines that do not parse are skipped.
pub fn parse_ss(text: &str) -> Vec<SsSocket> {
    let mut sockets: Vec<SsSocket> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            if let (Some(last), Some(skmem)) = (sockets.last_mut(), parse_skmem(line)) {
                last.skmem = Some(skmem);
            }
            continue;
        }
        let mut fields = line.split_whitespace().peekable();
        // An optional state (`ESTAB`, `SYN-SENT`, ...): the queue columns are numbers.
        if fields
            .peek()
            .is_some_and(|f| f.parse::<u64>().is_err() && !f.starts_with("Recv"))
        {
            fields.next();
        }
        let (Some(recv_q), Some(send_q), Some(local), Some(peer)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (Ok(recv_q), Ok(send_q)) = (recv_q.parse(), send_q.parse()) else {
            continue; // the header
        };
        let rest: Vec<&str> = fields.collect();
        let rest = rest.join(" ");
        let mut socket = SsSocket {
            recv_q,
            send_q,
            local: local.to_owned(),
            peer: peer.to_owned(),
            pids: parse_pids(&rest),
            skmem: None,
        };
        // `ss -m` without `-i` may put skmem on the socket's own line.
        socket.skmem = parse_skmem(&rest);
        sockets.push(socket);
    }
    sockets
}

/// Every `pid=N` in a `users:((...))` list.
fn parse_pids(text: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("pid=") {
        rest = &rest[at + 4..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(pid) = digits.parse() {
            if !pids.contains(&pid) {
                pids.push(pid);
            }
        }
    }
    pids
}

/// The `skmem:(...)` group of a line, if any.
fn parse_skmem(line: &str) -> Option<Skmem> {
    let start = line.find("skmem:(")? + "skmem:(".len();
    let end = start + line[start..].find(')')?;
    let mut m = Skmem::default();
    for item in line[start..end].split(',') {
        let split = item.find(|c: char| c.is_ascii_digit())?;
        let (key, value) = item.split_at(split);
        let value: u64 = value.parse().ok()?;
        match key {
            "r" => m.r = value,
            "rb" => m.rb = value,
            "t" => m.t = value,
            "tb" => m.tb = value,
            "f" => m.f = value,
            "w" => m.w = value,
            "o" => m.o = value,
            "bl" => m.bl = value,
            "d" => m.d = value,
            _ => {}
        }
    }
    Some(m)
}

/// Whose sockets a path's kernel buffers are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// A process's own (slotline and the peers: this process).
    Pid(u32),
    /// Those of the children of a process, not its own (the sidecar: the proxy process this
    /// one started).
    ChildrenOf(u32),
}

/// Sums over a set of sockets at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SsTotals {
    /// Sockets counted.
    pub sockets: u64,
    /// Σ `Send-Q`.
    pub send_q: u64,
    /// Σ `Recv-Q`.
    pub recv_q: u64,
    /// Σ `skmem` `tb` (send buffer sizes).
    pub sndbuf: u64,
    /// Σ `skmem` `w` (bytes queued for sending, with their overhead).
    pub wmem_queued: u64,
}

/// The sockets of `sockets` to `cluster_ip` on one of `ports` that `owner` holds; `parent_of`
/// gives a pid's parent (for [`Owner::ChildrenOf`]).
pub fn totals(
    sockets: &[SsSocket],
    cluster_ip: &str,
    ports: &[u16],
    owner: Owner,
    mut parent_of: impl FnMut(u32) -> Option<u32>,
) -> SsTotals {
    let mut t = SsTotals::default();
    for s in sockets {
        if s.peer_host() != cluster_ip || !s.peer_port().is_some_and(|p| ports.contains(&p)) {
            continue;
        }
        let owned = match owner {
            Owner::Pid(pid) => s.pids.contains(&pid),
            Owner::ChildrenOf(parent) => s
                .pids
                .iter()
                .any(|&p| p != parent && parent_of(p) == Some(parent)),
        };
        if !owned {
            continue;
        }
        t.sockets += 1;
        t.send_q += s.send_q;
        t.recv_q += s.recv_q;
        if let Some(m) = s.skmem {
            t.sndbuf += m.tb;
            t.wmem_queued += m.w;
        }
    }
    t
}

/// A process's parent pid, from `/proc/<pid>/stat`.
pub fn parent_pid(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may hold spaces and parentheses: split after the last ')'.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Runs `ss -tmipnH dst <cluster_ip>` once.
///
/// # Errors
///
/// A message when `ss` cannot run or fails.
pub fn ss_snapshot(cluster_ip: Ipv4Addr) -> Result<Vec<SsSocket>, String> {
    let dst = cluster_ip.to_string();
    Ok(parse_ss(&run(&["ss", "-tmipnH", "dst", &dst])?))
}

/// The peaks over a path's replay, from [`sample_kernel`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelPeaks {
    /// Samples taken.
    pub samples: u64,
    /// Samples in which the path had at least one socket to a master.
    pub samples_with_sockets: u64,
    /// Peak Σ (`Send-Q` + `Recv-Q`): what `peak_kernel_bytes` reports.
    pub queued: u64,
    /// Peak Σ `Send-Q`.
    pub send_q: u64,
    /// Peak Σ `skmem` `w`.
    pub wmem_queued: u64,
    /// Σ `tb` in the first sample with sockets.
    pub sndbuf_first: u64,
    /// Peak Σ `tb`.
    pub sndbuf_peak: u64,
}

impl KernelPeaks {
    /// Folds one sample in.
    pub fn add(&mut self, t: SsTotals) {
        self.samples += 1;
        if t.sockets == 0 {
            return;
        }
        if self.samples_with_sockets == 0 {
            self.sndbuf_first = t.sndbuf;
        }
        self.samples_with_sockets += 1;
        self.queued = self.queued.max(t.send_q + t.recv_q);
        self.send_q = self.send_q.max(t.send_q);
        self.wmem_queued = self.wmem_queued.max(t.wmem_queued);
        self.sndbuf_peak = self.sndbuf_peak.max(t.sndbuf);
    }
}

/// Samples the kernel buffers of `owner`'s sockets to `cluster_ip`:`ports` every
/// [`SAMPLE_EVERY`] until `running` is false (one last sample then). A failed `ss` counts as
/// a sample without sockets.
pub fn sample_kernel(
    running: &AtomicBool,
    cluster_ip: Ipv4Addr,
    ports: &[u16],
    owner: Owner,
) -> KernelPeaks {
    let ip = cluster_ip.to_string();
    let mut parents: HashMap<u32, Option<u32>> = HashMap::new();
    let mut peaks = KernelPeaks::default();
    loop {
        let last = !running.load(Ordering::Relaxed);
        let sockets = ss_snapshot(cluster_ip).unwrap_or_default();
        peaks.add(totals(&sockets, &ip, ports, owner, |pid| {
            *parents.entry(pid).or_insert_with(|| parent_pid(pid))
        }));
        if last {
            return peaks;
        }
        thread::sleep(SAMPLE_EVERY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured with `ss -tmipnH dst 10.203.250.2` (no state filter: the `State` column is
    /// there) while `redis-cli --pipe` wrote to a server behind a 20 Mbit/s tbf.
    const CAPTURED: &str = "\
ESTAB 0      750176 10.203.250.1:34664 10.203.250.2:7777 users:((\"redis-cli\",pid=8382,fd=3))
\t skmem:(r0,rb1514036,t32072,tb1112832,f32,w761824,o0,bl0,d2) bbr wscale:10,10 rto:212 rtt:11.882/0.336 ato:40 mss:1448 pmtu:1500 rcvmss:540 advmss:1448 cwnd:22 ssthresh:138 bytes_sent:20595816 bytes_acked:20565409 bytes_received:771510 segs_out:14302 segs_in:3309 data_segs_out:14225 data_segs_in:1657 bbr:(bw:19142312bps,mrtt:0.008,pacing_gain:1.25,cwnd_gain:2) send 21448241bps lastsnd:4 lastrcv:4 lastack:4 pacing_rate 23688616bps delivery_rate 18948224bps delivered:14205 busy:8592ms unacked:21 rcv_rtt:709.321 rcv_space:65285 rcv_ssthresh:626905 notsent:719768 minrtt:0.008 snd_wnd:1034240
";

    /// The same with a header and `state established` (no `State` column).
    const CAPTURED_HEADER: &str = "\
Recv-Q Send-Q Local Address:Port  Peer Address:PortProcess
0      762320 10.203.250.1:34664 10.203.250.2:7777 users:((\"redis-cli\",pid=8382,fd=3))
\t skmem:(r0,rb1514036,t42208,tb1112832,f176,w773968,o0,bl0,d2) bbr wscale:10,10 rto:220 rtt:17.396/4.929 ato:40 mss:1448 cwnd:28 notsent:721776 minrtt:0.008 snd_wnd:1034240
";

    #[test]
    fn parses_a_captured_socket() {
        let s = parse_ss(CAPTURED);
        assert_eq!(s.len(), 1);
        let s = &s[0];
        assert_eq!((s.recv_q, s.send_q), (0, 750_176));
        assert_eq!(s.local, "10.203.250.1:34664");
        assert_eq!((s.peer_host(), s.peer_port()), ("10.203.250.2", Some(7777)));
        assert_eq!(s.pids, vec![8382]);
        let m = s.skmem.expect("skmem parsed");
        assert_eq!(
            m,
            Skmem {
                r: 0,
                rb: 1_514_036,
                t: 32_072,
                tb: 1_112_832,
                f: 32,
                w: 761_824,
                o: 0,
                bl: 0,
                d: 2
            }
        );
    }

    #[test]
    fn parses_without_the_state_column_and_skips_the_header() {
        let s = parse_ss(CAPTURED_HEADER);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].send_q, 762_320);
        assert_eq!(s[0].skmem.map(|m| m.w), Some(773_968));
    }

    #[test]
    fn totals_keep_the_owners_sockets_to_the_masters() {
        let text = format!(
            "{CAPTURED}\
ESTAB 10 2000 10.203.250.1:34666 10.203.250.2:7778 users:((\"burst\",pid=500,fd=9),(\"burst\",pid=500,fd=12))
\t skmem:(r0,rb131072,t0,tb87040,f0,w3000,o0,bl0,d0) cubic
ESTAB 0 99 10.203.250.1:34668 10.203.250.2:17777 users:((\"burst\",pid=500,fd=10))
\t skmem:(r0,rb131072,t0,tb46080,f0,w0,o0,bl0,d0) cubic
ESTAB 0 7 10.203.250.1:34670 10.203.250.3:7777 users:((\"burst\",pid=500,fd=11))
"
        );
        let sockets = parse_ss(&text);
        assert_eq!(sockets.len(), 4);
        assert_eq!(sockets[1].pids, vec![500]);
        let ports = [7777, 7778];
        let none = |_| None;
        let mine = totals(&sockets, "10.203.250.2", &ports, Owner::Pid(500), none);
        assert_eq!(
            mine,
            SsTotals {
                sockets: 1,
                send_q: 2000,
                recv_q: 10,
                sndbuf: 87_040,
                wmem_queued: 3000
            }
        );
        // redis-cli (8382) is a child of 500; burst's own sockets are not its children's.
        let parent = |pid| (pid == 8382).then_some(500);
        let children = totals(
            &sockets,
            "10.203.250.2",
            &ports,
            Owner::ChildrenOf(500),
            parent,
        );
        assert_eq!((children.sockets, children.send_q), (1, 750_176));
        assert_eq!(children.sndbuf, 1_112_832);
    }

    #[test]
    fn peaks_track_maxima_and_the_first_buffer_size() {
        let mut p = KernelPeaks::default();
        p.add(SsTotals::default());
        let sample = |send_q, sndbuf| SsTotals {
            sockets: 1,
            send_q,
            recv_q: 1,
            sndbuf,
            wmem_queued: send_q + 100,
        };
        p.add(sample(10, 1000));
        p.add(sample(500, 4000));
        p.add(sample(20, 3000));
        assert_eq!(p.samples, 4);
        assert_eq!(p.samples_with_sockets, 3);
        assert_eq!((p.queued, p.send_q, p.wmem_queued), (501, 500, 600));
        assert_eq!((p.sndbuf_first, p.sndbuf_peak), (1000, 4000));
    }

    #[test]
    fn garbage_lines_are_skipped() {
        assert!(parse_ss("nothing here\n\t skmem:(r0)\n").is_empty());
        assert_eq!(parse_pids("users:((\"a b\",pid=12,fd=3))"), vec![12]);
        assert_eq!(parse_skmem("skmem:(r1,zz)"), None);
    }

    #[test]
    fn parent_of_this_process_is_read() {
        let me = std::process::id();
        assert!(parent_pid(me).is_some_and(|p| p != me));
    }

    #[test]
    fn rates_read_as_tc_writes_them() {
        assert_eq!(rate_text(50_000_000), "50 Mbit/s");
        assert_eq!(rate_text(2_000_000_000), "2 Gbit/s");
        assert_eq!(rate_text(12_500_000), "12.5 Mbit/s");
    }
}
