//! The `redis-server` processes behind every server and cluster node: finding the binaries
//! (and checking their version), reserving free loopback ports, starting a server and waiting
//! for it to answer, talking to it (a fresh connection or `redis-cli`), signalling it, and
//! stopping it until its port no longer answers.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use slotline_client::config::{NodeAddr, Password};
use slotline_client::conn::{Conn, ConnOptions, Reply};
use slotline_client::Error;

use crate::error::io_context;
use crate::tls::LocalTls;
use crate::{LocalError, TlsFiles};

/// The oldest `redis-server` major version accepted.
pub const MIN_REDIS_MAJOR: u32 = 7;

// ---------------------------------------------------------------------------------------------
// Binaries and ports
// ---------------------------------------------------------------------------------------------

pub(crate) struct Binaries {
    pub(crate) server: PathBuf,
    pub(crate) cli: PathBuf,
}

/// Finds `redis-server` and `redis-cli` on `PATH` and checks the server's version, once per
/// process.
pub(crate) fn binaries() -> Result<&'static Binaries, LocalError> {
    static FOUND: OnceLock<Result<Binaries, String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let (Some(server), Some(cli)) = (which("redis-server"), which("redis-cli")) else {
            return Err(String::new());
        };
        let output = Command::new(&server)
            .arg("--version")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", server.display()))?;
        let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        match parse_major_version(&version) {
            Some(major) if major >= MIN_REDIS_MAJOR => Ok(Binaries { server, cli }),
            _ => Err(version),
        }
    });
    match found {
        Ok(bins) => Ok(bins),
        Err(version) if version.is_empty() => Err(LocalError::RedisServerNotFound),
        Err(version) => Err(LocalError::RedisTooOld {
            version: version.clone(),
        }),
    }
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The major version in `redis-server --version` output (`Redis server v=7.0.15 sha=...`).
fn parse_major_version(version: &str) -> Option<u32> {
    let v = version.split("v=").nth(1)?;
    v.split('.').next()?.parse().ok()
}

/// Ports handed out in this process and not yet released.
static RESERVED_PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Picks a port whose cluster bus port (`+10000`) is free too, and reserves it.
fn reserve_port() -> Result<u16, LocalError> {
    for _ in 0..200 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(io_context("binding 127.0.0.1:0 to pick a port"))?;
        let port = listener
            .local_addr()
            .map_err(io_context("reading a bound port"))?
            .port();
        let Some(bus) = port.checked_add(10_000) else {
            continue;
        };
        if TcpListener::bind((Ipv4Addr::LOCALHOST, bus)).is_err() {
            continue;
        }
        let mut reserved = RESERVED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
        if reserved.get_or_insert_with(HashSet::new).insert(port) {
            return Ok(port);
        }
    }
    Err(LocalError::NoFreePort)
}

fn release_port(port: u16) {
    let mut reserved = RESERVED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(set) = reserved.as_mut() {
        set.remove(&port);
    }
}

fn port_answers(host: Ipv4Addr, port: u16) -> bool {
    let addr = SocketAddr::from((host, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
}

/// Options shared by cluster nodes and standalone servers.
#[derive(Clone, Debug, Default)]
pub(crate) struct ServerOptions {
    pub(crate) args: Vec<String>,
    pub(crate) password: Option<Password>,
    pub(crate) tls: Option<TlsFiles>,
    /// The address servers bind to and announce; `None` is 127.0.0.1.
    pub(crate) host: Option<Ipv4Addr>,
    /// Words run before `redis-server` (such as `ip netns exec NAME`); the last of them must
    /// exec the server, so that the child's pid stays the server's.
    pub(crate) command_prefix: Vec<String>,
}

impl ServerOptions {
    /// The address servers bind to and announce.
    pub(crate) fn host(&self) -> Ipv4Addr {
        self.host.unwrap_or(Ipv4Addr::LOCALHOST)
    }
}

/// One `redis-server` child process and the port it owns.
pub(crate) struct Process {
    pub(crate) port: u16,
    host: Ipv4Addr,
    command_prefix: Vec<String>,
    dir: PathBuf,
    args: Vec<String>,
    password: Option<Password>,
    pub(crate) tls: Option<LocalTls>,
    pub(crate) child: Option<Child>,
}

impl Process {
    /// Starts a server on a fresh port in `parent/<port>`, retrying on a new port when the
    /// server exits at once (another process took the port).
    pub(crate) fn start(
        parent: &Path,
        cluster: bool,
        opts: &ServerOptions,
        deadline: Instant,
    ) -> Result<Process, LocalError> {
        let tls = opts.tls.as_ref().map(LocalTls::new).transpose()?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = reserve_port()?;
            let dir = parent.join(port.to_string());
            std::fs::create_dir_all(&dir)
                .map_err(io_context(format!("creating {}", dir.display())))?;
            let mut args = match &tls {
                Some(tls) => tls.files.server_args(port, cluster),
                None => vec!["--port".to_owned(), port.to_string()],
            };
            args.extend([
                "--bind".into(),
                opts.host().to_string(),
                "--daemonize".into(),
                "no".into(),
                "--dir".into(),
                dir.display().to_string(),
                "--save".into(),
                String::new(),
                "--appendonly".into(),
                "no".into(),
                "--enable-debug-command".into(),
                "local".into(),
            ]);
            if opts.host.is_some() {
                // Protected mode refuses clients from anywhere but loopback when no password
                // is set; a server on another address is meant to be reached there.
                args.extend(["--protected-mode".into(), "no".into()]);
                if cluster {
                    args.extend(["--cluster-announce-ip".into(), opts.host().to_string()]);
                }
            }
            if cluster {
                args.extend(
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-node-timeout",
                        "1000",
                        "--repl-diskless-sync-delay",
                        "0",
                        "--cluster-config-file",
                        "nodes.conf",
                    ]
                    .map(String::from),
                );
            }
            if let Some(pw) = &opts.password {
                args.extend(["--requirepass".into(), pw.expose().to_owned()]);
                if cluster {
                    args.extend(["--masterauth".into(), pw.expose().to_owned()]);
                }
            }
            args.extend(opts.args.iter().cloned());
            let mut process = Process {
                port,
                host: opts.host(),
                command_prefix: opts.command_prefix.clone(),
                dir,
                args,
                password: opts.password.clone(),
                tls: tls.clone(),
                child: None,
            };
            match process.spawn().and_then(|()| process.wait_ready(deadline)) {
                Ok(()) => return Ok(process),
                Err(LocalError::ServerExited { ref log_tail, .. })
                    if attempt < 3 && log_tail.contains("Address already in use") =>
                {
                    drop(process); // releases the port
                    continue;
                }
                Err(err) => return Err(err),
            }
        }
    }

    pub(crate) fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    pub(crate) fn spawn(&mut self) -> Result<(), LocalError> {
        let bins = binaries()?;
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(io_context(format!("opening {}", self.log_path().display())))?;
        let log2 = log
            .try_clone()
            .map_err(io_context("duplicating the log file handle"))?;
        let mut command = match self.command_prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&bins.server);
                c
            }
            None => Command::new(&bins.server),
        };
        let child = command
            .args(&self.args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(io_context(format!("starting {}", bins.server.display())))?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the server answers `PING` (with `AUTH` when it has a password).
    pub(crate) fn wait_ready(&mut self, deadline: Instant) -> Result<(), LocalError> {
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_status)) = child.try_wait() {
                    self.child = None;
                    return Err(LocalError::ServerExited {
                        port: self.port,
                        log_tail: self.log_tail(),
                    });
                }
            }
            if let Ok(Ok(_)) = self.query(&redis::cmd("PING")) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LocalError::Command {
                    port: self.port,
                    message: "redis-server does not answer PING before the deadline".into(),
                });
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn conn_options(&self) -> ConnOptions {
        ConnOptions {
            dial_timeout: Duration::from_millis(500),
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            password: self.password.clone(),
            tls: self.tls.as_ref().map(|tls| tls.connector.clone()),
            ..ConnOptions::default()
        }
    }

    pub(crate) fn addr(&self) -> NodeAddr {
        NodeAddr::new(self.host.to_string(), self.port)
    }

    pub(crate) fn connect(&self) -> Result<Conn, Error> {
        Conn::connect(&self.addr(), &self.conn_options())
    }

    pub(crate) fn query(&self, cmd: &redis::Cmd) -> Result<Reply, Error> {
        self.connect()?.query(cmd)
    }

    /// Runs a command and returns its reply as text; an error reply is an error.
    pub(crate) fn query_text(&self, cmd: &redis::Cmd) -> Result<String, LocalError> {
        let fail = |message: String| LocalError::Command {
            port: self.port,
            message,
        };
        match self.query(cmd).map_err(|e| fail(e.to_string()))? {
            Ok(value) => Ok(value_text(&value)),
            Err(err) => Err(fail(server_error_text(&err))),
        }
    }

    pub(crate) fn cli(&self, args: &[&str]) -> Result<String, LocalError> {
        let bins = binaries()?;
        let mut cmd = Command::new(&bins.cli);
        cmd.args(["-h", &self.host.to_string(), "-p", &self.port.to_string()]);
        if let Some(tls) = &self.tls {
            cmd.args(tls.files.cli_args());
        }
        if let Some(pw) = &self.password {
            cmd.args(["-a", pw.expose(), "--no-auth-warning"]);
        }
        let output = cmd
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(io_context(format!("running {}", bins.cli.display())))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            Ok(stdout)
        } else {
            Err(LocalError::Command {
                port: self.port,
                message: format!(
                    "redis-cli {args:?} failed ({}): {stdout}{}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr)
                ),
            })
        }
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub(crate) fn signal(&self, signal: &str) -> Result<(), LocalError> {
        let pid = self.pid().ok_or(LocalError::Command {
            port: self.port,
            message: "not running".into(),
        })?;
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .map_err(io_context("running kill"))?;
        if status.success() {
            Ok(())
        } else {
            Err(LocalError::Command {
                port: self.port,
                message: format!("kill {signal} {pid} failed: {status}"),
            })
        }
    }

    /// `SIGKILL`, reap, then wait for the port to stop answering.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.wait_port_closed();
    }

    /// `SHUTDOWN NOSAVE`, falling back to `SIGKILL` after five seconds.
    pub(crate) fn stop(&mut self) {
        if self.child.is_none() {
            return;
        }
        let _ = self.query(redis::cmd("SHUTDOWN").arg("NOSAVE"));
        let deadline = Instant::now() + Duration::from_secs(5);
        if let Some(child) = self.child.as_mut() {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
        self.kill();
    }

    fn wait_port_closed(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while port_answers(self.host, self.port) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The last 4 KiB of the log.
    fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(self.log_path()) {
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = file.seek(SeekFrom::Start(len.saturating_sub(4096)));
            let mut bytes = Vec::new();
            let _ = file.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        release_port(self.port);
    }
}

/// A reply as text: bulk and simple strings as they are, integers in decimal, arrays one
/// element per line.
pub(crate) fn value_text(value: &redis::Value) -> String {
    use redis::Value;
    match value {
        Value::Nil => String::new(),
        Value::Int(i) => i.to_string(),
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Okay => "OK".into(),
        Value::Array(items) | Value::Set(items) => {
            items.iter().map(value_text).collect::<Vec<_>>().join("\n")
        }
        other => format!("{other:?}"),
    }
}

/// A server's error reply as text: its code, then its message (`ERR unknown command ...`).
pub(crate) fn server_error_text(err: &redis::ServerError) -> String {
    match err.details() {
        Some(detail) => format!("{} {detail}", err.code()),
        None => err.code().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn major_version_is_read_from_the_version_line() {
        let line = "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=ae4d";
        assert_eq!(parse_major_version(line), Some(7));
        assert_eq!(parse_major_version("Redis server v=6.2.1 sha=0"), Some(6));
        assert_eq!(parse_major_version("garbage"), None);
    }

    #[test]
    fn reserved_ports_are_unique_until_released() {
        let ports: Vec<u16> = (0..20).map(|_| reserve_port().unwrap()).collect();
        let unique: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), ports.len());
        for p in ports {
            assert!(p.checked_add(10_000).is_some());
            release_port(p);
        }
    }
}
