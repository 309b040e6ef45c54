//! Plain RESP over a plain `TcpStream`, for the parts of `burst` that are not slotline: the
//! sidecar model's upstream links, cluster set-up and the read-back. Socket options are left
//! to the kernel, as an ordinary middleware leaves them.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use slotline_router::{parse_resp, write_command, NodeMap, RespError, Value};

/// One connection, a receive buffer, and RESP decoding of replies.
#[derive(Debug)]
pub struct RawConn {
    /// `host:port`.
    pub addr: String,
    /// The socket.
    pub stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
}

impl RawConn {
    /// Connects to `addr` (`host:port`) with `TCP_NODELAY` and a 30 s read timeout.
    ///
    /// # Errors
    ///
    /// Connect errors.
    pub fn connect(addr: &str) -> io::Result<RawConn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(RawConn::from_stream(addr, stream))
    }

    /// Wraps a connected stream to `addr`, its options as they are.
    pub fn from_stream(addr: &str, stream: TcpStream) -> RawConn {
        RawConn {
            addr: addr.to_owned(),
            stream,
            buf: Vec::with_capacity(64 * 1024),
            start: 0,
        }
    }

    /// Sends one command and reads its reply.
    ///
    /// # Errors
    ///
    /// I/O errors, and malformed replies as `InvalidData`.
    pub fn query(&mut self, args: &[&[u8]]) -> io::Result<Value> {
        let mut out = Vec::new();
        write_command(&mut out, args);
        self.stream.write_all(&out)?;
        self.read_value()
    }

    /// Reads the next reply.
    ///
    /// # Errors
    ///
    /// I/O errors, end of stream, and malformed replies as `InvalidData`.
    pub fn read_value(&mut self) -> io::Result<Value> {
        loop {
            match parse_resp(&self.buf[self.start..]) {
                Ok((v, used)) => {
                    self.start += used;
                    if self.start == self.buf.len() {
                        self.buf.clear();
                        self.start = 0;
                    }
                    return Ok(v);
                }
                Err(RespError::Incomplete) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
            }
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            let len = self.buf.len();
            self.buf.resize(len + 64 * 1024, 0);
            let n = self.stream.read(&mut self.buf[len..])?;
            self.buf.truncate(len + n);
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{} closed the connection", self.addr),
                ));
            }
        }
    }
}

/// Reads the cluster's slot map from the first of `seeds` that answers `CLUSTER SHARDS`.
///
/// # Errors
///
/// A message naming the last failure when no seed gave a complete map.
pub fn cluster_map(seeds: &[String]) -> Result<NodeMap, String> {
    let mut last = String::from("no seed nodes");
    for seed in seeds {
        let reply = RawConn::connect(seed).and_then(|mut c| c.query(&[b"CLUSTER", b"SHARDS"]));
        match reply {
            Ok(v) => match NodeMap::from_cluster_shards(&v) {
                Ok(map) if map.is_complete() => return Ok(map),
                Ok(_) => last = format!("{seed}: not every slot is served"),
                Err(e) => last = format!("{seed}: {e}"),
            },
            Err(e) => last = format!("{seed}: {e}"),
        }
    }
    Err(format!("cannot read the cluster's slot map: {last}"))
}

/// The masters' addresses (`host:port`), in map order.
pub fn master_addrs(map: &NodeMap) -> Vec<String> {
    map.masters().map(|n| n.addr.to_string()).collect()
}

/// `FLUSHALL` on every master (replicas follow), then waits until every master reports 0 keys.
///
/// # Errors
///
/// A message naming the master that failed.
pub fn flush_cluster(masters: &[String]) -> Result<(), String> {
    for m in masters {
        let mut c = RawConn::connect(m).map_err(|e| format!("{m}: {e}"))?;
        match c.query(&[b"FLUSHALL"]) {
            Ok(Value::Error(e)) => return Err(format!("{m}: FLUSHALL: {e}")),
            Ok(_) => {}
            Err(e) => return Err(format!("{m}: FLUSHALL: {e}")),
        }
        match c.query(&[b"DBSIZE"]) {
            Ok(Value::Int(0)) => {}
            other => return Err(format!("{m}: DBSIZE after FLUSHALL: {other:?}")),
        }
    }
    Ok(())
}
