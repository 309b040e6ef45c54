//! Real `redis-server` processes for the live tests: cluster-enabled nodes on free loopback
//! ports in a temp dir, stopped (and waited for) on drop.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

pub const REDIS_SERVER: &str = "redis-server";

/// Panics with install instructions when redis-server is missing.
pub fn require_redis_server() {
    let found = Command::new(REDIS_SERVER)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "redis-server not found on PATH: these tests start a real Redis. Install it with \
         `apt-get install redis-server` (Debian/Ubuntu) or `brew install redis` (macOS)."
    );
}

/// A free loopback port (bound then released; the server binds it right after).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// One cluster-enabled redis-server.
pub struct Node {
    pub port: u16,
    child: Child,
}

impl Node {
    pub fn start(dir: &Path) -> Node {
        require_redis_server();
        let port = free_port();
        let node_dir = dir.join(port.to_string());
        std::fs::create_dir_all(&node_dir).expect("node dir");
        let child = Command::new(REDIS_SERVER)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
            .args(["--cluster-config-file", "nodes.conf"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&node_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        let node = Node { port, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = node.connect() {
                if roundtrip(&mut c, &[b"PING"]).starts_with(b"+PONG") {
                    return node;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {port} did not answer PING"
            );
            sleep(Duration::from_millis(20));
        }
    }

    pub fn connect(&self) -> std::io::Result<TcpStream> {
        let s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_nodelay(true)?;
        Ok(s)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A server that exited can linger (zombie or slow shutdown): wait until the port is
        // really closed so the next test cannot talk to it.
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            sleep(Duration::from_millis(20));
        }
    }
}

/// Sends one command and returns the whole raw reply (read until it parses completely).
pub fn roundtrip(conn: &mut TcpStream, args: &[&[u8]]) -> Vec<u8> {
    let mut req = Vec::new();
    slotline_router::write_command(&mut req, args);
    conn.write_all(&req).expect("write command");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        match slotline_router::parse_resp(&buf) {
            Ok((_, used)) => {
                buf.truncate(used);
                return buf;
            }
            Err(slotline_router::RespError::Incomplete) => {}
            Err(e) => panic!("bad reply {e}: {:?}", String::from_utf8_lossy(&buf)),
        }
        let n = conn.read(&mut chunk).expect("read reply");
        assert!(n > 0, "server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads `count` integer replies (`:<n>\r\n`) from a buffered reader, parsed by hand.
pub fn read_ints(reader: &mut BufReader<TcpStream>, count: usize) -> Vec<i64> {
    let mut out = Vec::with_capacity(count);
    let mut line = Vec::new();
    for _ in 0..count {
        line.clear();
        reader
            .read_until(b'\n', &mut line)
            .expect("read reply line");
        let text = std::str::from_utf8(&line).expect("ASCII reply");
        let n = text
            .strip_prefix(':')
            .and_then(|t| t.trim_end().parse().ok())
            .unwrap_or_else(|| panic!("expected an integer reply, got {text:?}"));
        out.push(n);
    }
    out
}

/// Runs a command to completion and returns its stdout (panics with stderr on failure).
pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
