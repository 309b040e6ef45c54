//! Awkward input gets a defined result or a typed error: never a panic, never a stuck caller.
#![cfg(not(feature = "loom"))]

use std::time::{Duration, Instant};

use slotline_client::conn::Conn;
use slotline_client::keys::KeyError;
use slotline_client::{Client, CommandError, CommitError, Config, ConfigError};
use slotline_testkit::LocalCluster;

fn get(cluster: &LocalCluster, key: &[u8]) -> Option<Vec<u8>> {
    let mut opts = slotline_client::ConnOptions::from_config(&cluster.config());
    // Replies are read into a bounded buffer; make room for the 1 MiB value.
    opts.read_buffer = 2 << 20;
    for addr in cluster.master_addrs() {
        let mut conn = Conn::connect(&addr, &opts).expect("connect to a master");
        match conn.query(redis::cmd("GET").arg(key)).expect("GET") {
            Ok(redis::Value::BulkString(v)) => return Some(v),
            Ok(redis::Value::Nil) => return None,
            Ok(other) => panic!("GET returned {other:?}"),
            Err(e) if e.code() == "MOVED" => continue,
            Err(e) => panic!("GET failed: {e}"),
        }
    }
    panic!("no master owns the key")
}

#[test]
fn binary_empty_and_large_keys_and_values_round_trip() {
    let cluster = LocalCluster::start().unwrap_or_else(|e| panic!("local cluster: {e}"));
    let client = Client::connect(cluster.config()).expect("connect");
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let one_mib: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let cases: [(&[u8], &[u8]); 7] = [
        (b"", b"empty key"),
        (b"empty value", b""),
        (&all_bytes, &all_bytes),
        (b"\r\n*1\r\n$4\r\nPING\r\n", b"\r\n-ERR not an error\r\n"),
        (b"{}", b"an empty hash tag hashes the whole key"),
        (
            b"{}{tag}",
            b"the first tag is empty, so the whole key is hashed",
        ),
        (b"big", &one_mib),
    ];
    for (key, value) in cases {
        client
            .commit(key, value)
            .unwrap_or_else(|e| panic!("commit {key:?}: {e}"));
    }
    for (key, value) in cases {
        assert_eq!(get(&cluster, key).as_deref(), Some(value), "key {key:?}");
    }
}

#[test]
fn unknown_and_malformed_commands_get_typed_errors() {
    let cluster = LocalCluster::start().unwrap_or_else(|e| panic!("local cluster: {e}"));
    let client = Client::connect(cluster.config()).expect("connect");
    let started = Instant::now();
    // A command whose keys cannot be known cannot be routed: refused before it is queued.
    let err = client
        .commit_cmd(redis::cmd("NOSUCHCOMMAND").arg("k").arg("v"))
        .expect_err("unknown command");
    assert!(
        matches!(
            &err,
            CommitError::InvalidCommand(CommandError::Keys(KeyError::UnknownCommand { command }))
                if command.eq_ignore_ascii_case("NOSUCHCOMMAND")
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("NOSUCHCOMMAND"), "{err}");
    // Nor can a command without a key.
    let err = client
        .commit_cmd(&redis::cmd("PING"))
        .expect_err("no key argument");
    assert!(
        matches!(
            &err,
            CommitError::InvalidCommand(CommandError::Keys(KeyError::NoKey { .. }))
        ),
        "{err:?}"
    );
    assert!(!err.may_have_been_applied());
    // Keys in two slots: refused like a cluster's CROSSSLOT, before anything is sent.
    let err = client
        .commit_cmd(redis::cmd("MSET").arg("a").arg(1).arg("b").arg(2))
        .expect_err("keys in two slots");
    assert!(
        matches!(&err, CommitError::InvalidCommand(CommandError::CrossSlot { command, .. }) if command == "MSET"),
        "{err:?}"
    );
    assert!(err.to_string().contains("CROSSSLOT"), "{err}");
    // Wrong arity is the server's call, reported as such.
    let err = client
        .commit_cmd(redis::cmd("SET").arg("k"))
        .expect_err("SET with no value");
    assert!(
        matches!(&err, CommitError::Server { message } if message.contains("wrong number")),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "callers got stuck"
    );
    // The client is still healthy afterwards.
    client.commit(b"after", b"ok").expect("commit after errors");
}

#[test]
fn a_config_file_of_garbage_bytes_is_a_typed_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("garbage.yaml");
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &garbage).expect("write garbage");
    let err = Config::from_yaml_file(&path).expect_err("garbage is not a config");
    assert!(
        matches!(err, ConfigError::Parse { .. } | ConfigError::Io { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("garbage.yaml"), "{err}");
    for text in [
        "\u{0}\u{1}\u{2}",
        "[[[[",
        "shard_config: [1, 2",
        "- - - -",
        "!!binary AAAA",
    ] {
        assert!(
            Config::from_yaml_str(text).is_err(),
            "{text:?} was accepted"
        );
    }
}
