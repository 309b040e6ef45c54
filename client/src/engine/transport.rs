//! A non-blocking byte stream to one node: the socket, or rustls over it.
//!
//! The socket is built with `socket2` so that `SO_SNDBUF`, `SO_RCVBUF` and `TCP_NODELAY` are
//! set before the (non-blocking) `connect`, exactly as the blocking [`Conn`](crate::Conn)
//! does. TLS uses the same rustls configuration as the blocking connection; the handshake runs
//! as part of the first reads and writes, so nothing here ever blocks the event loop.
//!
//! rustls buffers: the plaintext it accepts before it can encrypt is capped at
//! [`TLS_BUFFER_LIMIT`]; everything else is the event loop's own fixed buffers.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::TcpStream;
use rustls::ClientConnection;

use crate::conn::ConnOptions;

/// Plaintext rustls holds for sending at most (its default is 64 KiB too; set explicitly).
pub(crate) const TLS_BUFFER_LIMIT: usize = 64 * 1024;

/// The stream of one link.
pub(crate) enum Transport {
    Plain(TcpStream),
    Tls(Box<(TcpStream, ClientConnection)>),
}

impl Transport {
    /// Starts a non-blocking connect to `target` with the socket options of `opts`.
    pub(crate) fn connect(target: SocketAddr, opts: &ConnOptions) -> io::Result<TcpStream> {
        let socket = crate::conn::tuned_socket(target, opts)?;
        socket.set_nonblocking(true)?;
        match socket.connect(&target.into()) {
            Ok(()) => {}
            Err(err)
                if err.raw_os_error() == Some(libc_einprogress())
                    || err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) => return Err(err),
        }
        Ok(TcpStream::from_std(socket.into()))
    }

    /// The socket underneath (for registration with the poller).
    pub(crate) fn socket(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(b) => &mut b.0,
        }
    }

    /// Whether the TCP connect has completed: `Ok(true)` connected, `Ok(false)` still in
    /// progress, `Err` failed.
    pub(crate) fn connected(&mut self) -> io::Result<bool> {
        let socket = self.socket();
        if let Some(err) = socket.take_error()? {
            return Err(err);
        }
        match socket.peer_addr() {
            Ok(_) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(err) if err.raw_os_error() == Some(libc_einprogress()) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Whether the TLS handshake is still running (always false for plaintext).
    pub(crate) fn handshaking(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls(b) => b.1.is_handshaking(),
        }
    }

    /// Writes as much of `buf` as the stream takes now. `Ok(0)` with a non-empty `buf` means
    /// "would block". Over TLS, bytes taken are encrypted records queued in rustls (bounded by
    /// [`TLS_BUFFER_LIMIT`]) and pushed to the socket as far as it accepts them.
    pub(crate) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => match s.write(buf) {
                Ok(n) => Ok(n),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(0),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => Ok(0),
                Err(err) => Err(err),
            },
            Transport::Tls(b) => {
                let (sock, tls) = &mut **b;
                flush_tls(sock, tls)?;
                if tls.wants_write() {
                    return Ok(0);
                }
                let n = tls.writer().write(buf)?;
                // The bytes are rustls's now: report them written even if pushing records to
                // the socket fails here (that error shows again on the next call).
                let _ = flush_tls(sock, tls);
                Ok(n)
            }
        }
    }

    /// Pushes records rustls still holds (handshake messages, queued data) to the socket.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(_) => Ok(()),
            Transport::Tls(b) => {
                let (sock, tls) = &mut **b;
                flush_tls(sock, tls)
            }
        }
    }

    /// Reads what is available into `buf`: `Ok(Some(n))` read `n > 0` bytes, `Ok(None)` would
    /// block, `Err(UnexpectedEof)` the node closed the connection.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self {
            Transport::Plain(s) => loop {
                match s.read(buf) {
                    Ok(0) => return Err(eof()),
                    Ok(n) => return Ok(Some(n)),
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    Err(err) => return Err(err),
                }
            },
            Transport::Tls(b) => {
                let (sock, tls) = &mut **b;
                loop {
                    match tls.reader().read(buf) {
                        Ok(0) => return Err(eof()),
                        Ok(n) => return Ok(Some(n)),
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                        Err(err) => return Err(err),
                    }
                    // No plaintext buffered: bring in more records.
                    match tls.read_tls(sock) {
                        Ok(0) => return Err(eof()),
                        Ok(_) => {
                            let state = tls
                                .process_new_packets()
                                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                            // Handshake replies and alerts must go out even if we never write.
                            flush_tls(sock, tls)?;
                            if state.plaintext_bytes_to_read() == 0 && state.peer_has_closed() {
                                return Err(eof());
                            }
                        }
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                            flush_tls(sock, tls)?;
                            return Ok(None);
                        }
                        Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                        Err(err) => return Err(err),
                    }
                }
            }
        }
    }
}

/// Writes rustls's pending records until the socket would block.
fn flush_tls(sock: &mut TcpStream, tls: &mut ClientConnection) -> io::Result<()> {
    while tls.wants_write() {
        match tls.write_tls(sock) {
            Ok(0) => return Err(eof()),
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

fn eof() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the node closed the connection",
    )
}

/// `EINPROGRESS`: a non-blocking connect under way (115 on Linux, 36 on the BSDs and macOS).
fn libc_einprogress() -> i32 {
    if cfg!(any(
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd"
    )) {
        36
    } else {
        115
    }
}
