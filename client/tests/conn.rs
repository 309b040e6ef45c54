#![cfg(not(feature = "loom"))]
//! `Conn` against a real standalone `redis-server`: round trips, pipelines with per-command
//! error replies, socket options read back from the kernel, AUTH, and timeouts.

use std::time::{Duration, Instant};

use redis::Value;
use slotline_client::config::{NodeAddr, Password};
use slotline_client::conn::{Conn, ConnOptions, Reply};
use slotline_client::Error;
use slotline_testkit::LocalServer;

fn connect(server: &LocalServer) -> Conn {
    Conn::connect(&server.addr(), &ConnOptions::default()).unwrap()
}

#[test]
fn set_then_get_round_trips() {
    let server = LocalServer::start().unwrap();
    let mut conn = connect(&server);
    let reply = conn
        .query(redis::cmd("SET").arg("geo:{u1}").arg("lat,lon"))
        .unwrap();
    assert_eq!(reply, Ok(Value::Okay));
    let reply = conn.query(redis::cmd("GET").arg("geo:{u1}")).unwrap();
    assert_eq!(reply, Ok(Value::BulkString(b"lat,lon".to_vec())));
    let reply = conn.query(redis::cmd("GET").arg("missing")).unwrap();
    assert_eq!(reply, Ok(Value::Nil));
}

#[test]
fn thousand_pipelined_sets_get_a_thousand_replies_in_order() {
    let server = LocalServer::start().unwrap();
    let mut conn = connect(&server);
    let packed: Vec<Vec<u8>> = (0..1000)
        .map(|i| {
            redis::cmd("SET")
                .arg(format!("k{i}"))
                .arg(i)
                .get_packed_command()
        })
        .collect();
    let mut seen = Vec::new();
    let n = conn
        .pipeline_packed(packed.iter().map(Vec::as_slice), |i, reply| {
            seen.push((i, reply));
        })
        .unwrap();
    assert_eq!(n, 1000);
    assert_eq!(seen.len(), 1000);
    assert!(seen
        .iter()
        .enumerate()
        .all(|(k, (i, r))| k == *i && *r == Ok(Value::Okay)));
    assert_eq!(
        server.query(&redis::cmd("DBSIZE")).unwrap(),
        Ok(Value::Int(1000))
    );
    assert_eq!(server.cli(&["GET", "k999"]).unwrap().trim(), "999");
}

#[test]
fn pipeline_larger_than_the_write_buffer_is_flushed_in_pieces() {
    let server = LocalServer::start().unwrap();
    let opts = ConnOptions {
        write_buffer: 1024,
        read_buffer: 1024,
        ..ConnOptions::default()
    };
    let mut conn = Conn::connect(&server.addr(), &opts).unwrap();
    let big = vec![b'x'; 10_000]; // one command larger than the whole write buffer
    let mut pipe = redis::pipe();
    for i in 0..200 {
        pipe.cmd("SET").arg(format!("k{i}")).arg(i);
    }
    pipe.cmd("SET").arg("big").arg(&big[..]);
    pipe.cmd("STRLEN").arg("big");
    let mut replies: Vec<Reply> = Vec::new();
    conn.pipeline(pipe.cmd_iter(), |_, r| replies.push(r))
        .unwrap();
    assert_eq!(replies.len(), 202);
    assert_eq!(replies[201], Ok(Value::Int(10_000)));
    // A reply larger than the read buffer is refused and breaks the connection.
    let err = conn.query(redis::cmd("GET").arg("big")).unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }), "{err}");
    assert!(
        err.to_string().contains("larger than the read buffer"),
        "{err}"
    );
    assert!(conn.is_broken());
    assert!(matches!(
        conn.query(&redis::cmd("PING")),
        Err(Error::Closed { .. })
    ));
}

#[test]
fn error_reply_fails_only_its_own_command() {
    let server = LocalServer::start().unwrap();
    let mut conn = connect(&server);
    let mut pipe = redis::pipe();
    pipe.cmd("SET")
        .arg("s")
        .arg("string")
        .cmd("LPUSH")
        .arg("s")
        .arg("x") // WRONGTYPE
        .cmd("NOSUCHCOMMAND")
        .cmd("INCR")
        .arg("n");
    let mut replies = Vec::new();
    conn.pipeline(pipe.cmd_iter(), |_, r| replies.push(r))
        .unwrap();
    assert_eq!(replies[0], Ok(Value::Okay));
    let wrongtype = replies[1].as_ref().unwrap_err();
    assert_eq!(wrongtype.code(), "WRONGTYPE");
    assert_eq!(replies[2].as_ref().unwrap_err().code(), "ERR");
    assert_eq!(replies[3], Ok(Value::Int(1)));
    assert!(!conn.is_broken());
}

#[test]
fn socket_options_are_set_before_connect_and_read_back() {
    let server = LocalServer::start().unwrap();
    for (size, nodelay) in [(4 << 20, true), (256 << 10, false), (64 << 10, true)] {
        let opts = ConnOptions {
            so_sndbuf: size,
            so_rcvbuf: size,
            tcp_nodelay: nodelay,
            ..ConnOptions::default()
        };
        let conn = Conn::connect(&server.addr(), &opts).unwrap();
        let (snd, rcv) = (
            conn.send_buffer_size().unwrap(),
            conn.recv_buffer_size().unwrap(),
        );
        eprintln!("requested {size}: SO_SNDBUF={snd} SO_RCVBUF={rcv}");
        // Linux caps the request at net.core.wmem_max / rmem_max, then doubles it (bookkeeping
        // overhead): what it reports is exactly twice the capped request.
        let (wmem_max, rmem_max) = (sysctl("net/core/wmem_max"), sysctl("net/core/rmem_max"));
        assert_eq!(
            snd,
            2 * size.min(wmem_max),
            "SO_SNDBUF for {size} (wmem_max {wmem_max})"
        );
        assert_eq!(
            rcv,
            2 * size.min(rmem_max),
            "SO_RCVBUF for {size} (rmem_max {rmem_max})"
        );
        assert_eq!(conn.nodelay().unwrap(), nodelay);
        assert_eq!(conn.read_timeout().unwrap(), Some(opts.read_timeout));
        assert_eq!(conn.write_timeout().unwrap(), Some(opts.write_timeout));
    }
}

#[test]
fn auth_with_an_acl_user_succeeds_and_is_scoped_to_its_rules() {
    let server = LocalServer::builder()
        .acl_user("writer on >w-pass ~geo:* +set +get +ping")
        .start()
        .unwrap();
    let opts = ConnOptions {
        username: Some("writer".into()),
        password: Some(Password::new("w-pass")),
        ..ConnOptions::default()
    };
    let mut conn = Conn::connect(&server.addr(), &opts).unwrap();
    let whoami = conn.query(redis::cmd("ACL").arg("WHOAMI")).unwrap();
    assert_eq!(whoami.unwrap_err().code(), "NOPERM");
    assert_eq!(
        conn.query(redis::cmd("SET").arg("geo:1").arg("x")).unwrap(),
        Ok(Value::Okay)
    );
    let denied = conn.query(redis::cmd("SET").arg("other").arg("x")).unwrap();
    assert_eq!(denied.unwrap_err().code(), "NOPERM");
}

#[test]
fn credentials_in_the_node_url_are_used() {
    let server = LocalServer::builder()
        .acl_user("app on >url-pass ~* +@all")
        .start()
        .unwrap();
    let url: NodeAddr = format!("redis://app:url-pass@127.0.0.1:{}", server.port())
        .parse()
        .unwrap();
    let mut conn = Conn::connect(&url, &ConnOptions::default()).unwrap();
    let whoami = conn.query(redis::cmd("ACL").arg("WHOAMI")).unwrap();
    assert_eq!(whoami, Ok(Value::BulkString(b"app".to_vec())));
}

#[test]
fn requirepass_password_only_auth_succeeds() {
    let server = LocalServer::builder()
        .requirepass("only-pw")
        .start()
        .unwrap();
    let opts = ConnOptions {
        password: Some(Password::new("only-pw")),
        ..ConnOptions::default()
    };
    let mut conn = Conn::connect(&server.addr(), &opts).unwrap();
    assert_eq!(
        conn.query(redis::cmd("SET").arg("k").arg("v")).unwrap(),
        Ok(Value::Okay)
    );
    // Without credentials the server refuses commands (not the connection).
    let mut anon = connect(&server);
    let refused = anon.query(redis::cmd("SET").arg("k").arg("v")).unwrap();
    assert_eq!(refused.unwrap_err().code(), "NOAUTH");
}

#[test]
fn wrong_password_fails_with_a_clear_auth_error() {
    let server = LocalServer::builder()
        .acl_user("writer on >right ~* +@all")
        .start()
        .unwrap();
    let opts = ConnOptions {
        username: Some("writer".into()),
        password: Some(Password::new("wrong-secret")),
        ..ConnOptions::default()
    };
    let err = Conn::connect(&server.addr(), &opts).unwrap_err();
    assert!(matches!(err, Error::Auth { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("authentication failed: WRONGPASS"), "{text}");
    assert!(!text.contains("wrong-secret") && !format!("{err:?}").contains("wrong-secret"));
}

#[test]
fn read_timeout_on_a_sleeping_server_is_a_timeout_error() {
    let server = LocalServer::start().unwrap();
    let opts = ConnOptions {
        read_timeout: Duration::from_millis(150),
        ..ConnOptions::default()
    };
    let mut conn = Conn::connect(&server.addr(), &opts).unwrap();
    // The server stalls far longer than the bound below, so a read that waited for the reply
    // instead of timing out fails it by seconds, even on a loaded machine. (Dropping the
    // server kills it; the sleep costs the test nothing.)
    let started = Instant::now();
    let err = conn
        .query(redis::cmd("DEBUG").arg("SLEEP").arg("5"))
        .unwrap_err();
    let waited = started.elapsed();
    assert!(
        matches!(err, Error::Timeout { during: "read", .. }),
        "{err:?}"
    );
    assert!(err.is_timeout());
    assert!(
        waited >= Duration::from_millis(140) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert!(
        conn.is_broken(),
        "a timed-out connection is out of step and must not be reused"
    );
}

#[test]
fn connect_to_a_closed_port_fails_fast() {
    let server = LocalServer::start().unwrap();
    let addr = server.addr();
    drop(server);
    let err = Conn::connect(&addr, &ConnOptions::default()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[test]
fn server_closing_the_connection_is_reported_as_closed() {
    let server = LocalServer::start().unwrap();
    let mut conn = connect(&server);
    let mut killer = connect(&server);
    killer
        .query(
            redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("normal")
                .arg("SKIPME")
                .arg("yes"),
        )
        .unwrap()
        .unwrap();
    let err = conn.query(&redis::cmd("PING")).unwrap_err();
    assert!(
        matches!(err, Error::Closed { .. } | Error::Io { .. }),
        "{err:?}"
    );
    assert!(err.is_connection_broken());
}

#[test]
fn tls_urls_are_refused_with_a_clear_error() {
    let addr: NodeAddr = "rediss://127.0.0.1:6380".parse().unwrap();
    let err = Conn::connect(&addr, &ConnOptions::default()).unwrap_err();
    assert!(matches!(err, Error::TlsUnsupported { .. }), "{err:?}");
}

/// A numeric value under `/proc/sys`.
fn sysctl(name: &str) -> usize {
    let path = format!("/proc/sys/{name}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{path} holds {text:?}: {e}"))
}
