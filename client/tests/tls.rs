//! TLS against real `redis-server` processes started with `--tls-port`, using a CA and
//! certificates made at test time: trust, refusals with clear errors, no hangs, and a client
//! committing through a TLS cluster.
#![cfg(not(feature = "loom"))]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use redis::Value;
use slotline_client::config::{Config, NodeAddr, Tls};
use slotline_client::conn::tls::{TlsConnector, TlsError};
use slotline_client::{Client, Conn, ConnOptions, Error};
use slotline_testkit::{LocalCluster, LocalServer, TlsFiles};

/// A CA, a certificate it signed for `127.0.0.1` and `localhost` (usable by servers and
/// clients), and a second CA that signed nothing here, all in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    files: TlsFiles,
    other_ca: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("slotline-tls-")
            .tempdir()
            .unwrap();
        let (ca_pem, issuer) = make_ca("slotline test CA");
        let (other_pem, _) = make_ca("some other CA");
        let (cert_pem, key_pem) = make_leaf(&issuer, &["127.0.0.1", "localhost"]);
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let files = TlsFiles::new(
            write("ca.pem", &ca_pem),
            write("node.pem", &cert_pem),
            write("node.key", &key_pem),
        );
        let other_ca = write("other-ca.pem", &other_pem);
        Pki {
            dir,
            files,
            other_ca,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn make_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

fn make_leaf(issuer: &Issuer<'_, KeyPair>, names: &[&str]) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "slotline test node");
    // Cluster nodes and replicas present their own certificate as TLS clients too.
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn tls_server(files: &TlsFiles) -> LocalServer {
    LocalServer::builder()
        .tls(files)
        .start()
        .unwrap_or_else(|e| panic!("TLS server: {e}"))
}

/// Options that trust `settings.ca_file`, with short timeouts so a hang shows as a failure.
fn tls_options(settings: &Tls) -> ConnOptions {
    ConnOptions {
        dial_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(2),
        write_timeout: Duration::from_secs(2),
        tls: Some(TlsConnector::new(settings).unwrap_or_else(|e| panic!("{e}"))),
        ..ConnOptions::default()
    }
}

fn settings_with_ca(ca_file: &Path) -> Tls {
    Tls {
        enabled: true,
        ca_file: Some(ca_file.to_path_buf()),
        ..Tls::default()
    }
}

#[test]
fn conn_over_tls_round_trips_with_the_right_ca() {
    let pki = Pki::new();
    let server = tls_server(&pki.files);
    let opts = ConnOptions {
        so_sndbuf: 256 * 1024,
        so_rcvbuf: 256 * 1024,
        ..tls_options(&pki.files.client_settings())
    };
    let mut conn = Conn::connect(&server.addr(), &opts).expect("TLS connect");
    assert!(conn.is_tls());
    assert!(format!("{conn:?}").contains("tls: true"), "{conn:?}");

    // Socket options were set before connect and still read back under TLS.
    assert!(conn.nodelay().unwrap());
    assert!(conn.send_buffer_size().unwrap() >= 256 * 1024);
    assert!(conn.recv_buffer_size().unwrap() >= 256 * 1024);
    assert_eq!(conn.read_timeout().unwrap(), Some(Duration::from_secs(2)));

    assert_eq!(
        conn.query(redis::cmd("SET").arg("k").arg("v")).unwrap(),
        Ok(Value::Okay)
    );
    assert_eq!(
        conn.query(redis::cmd("GET").arg("k")).unwrap(),
        Ok(Value::BulkString(b"v".to_vec()))
    );

    // A pipeline larger than the write buffer and than one TLS record, with one value
    // larger than the whole write buffer.
    let big = vec![b'x'; 3 * opts.write_buffer];
    let mut pipe = redis::pipe();
    for i in 0..2000 {
        pipe.cmd("SET").arg(format!("k{i}")).arg(i);
    }
    pipe.cmd("SET").arg("big").arg(&big[..]);
    pipe.cmd("STRLEN").arg("big");
    let mut replies = Vec::new();
    conn.pipeline(pipe.cmd_iter(), |_, r| replies.push(r))
        .unwrap();
    assert_eq!(replies.len(), 2002);
    assert!(replies[..2001].iter().all(|r| *r == Ok(Value::Okay)));
    assert_eq!(replies[2001], Ok(Value::Int(big.len() as i64)));

    // The server saw a TLS client.
    let info = server.cli(&["INFO", "stats"]).unwrap();
    assert!(info.contains("total_connections_received"), "{info}");
}

#[test]
fn a_rediss_seed_in_the_config_turns_tls_on() {
    let pki = Pki::new();
    let server = tls_server(&pki.files);
    let yaml = format!(
        "nodes: [\"rediss://127.0.0.1:{}\"]\ntls:\n  ca_file: {}\n",
        server.port(),
        pki.files.ca_file.display()
    );
    let config = Config::from_yaml_str(&yaml).unwrap();
    assert!(config.tls_enabled());
    assert!(!config.tls.enabled);
    let opts = ConnOptions::from_config(&config);
    let mut conn = Conn::connect(&config.nodes[0], &opts).expect("rediss:// connect");
    assert!(conn.is_tls());
    assert_eq!(
        conn.query(&redis::cmd("PING")).unwrap(),
        Ok(Value::SimpleString("PONG".into()))
    );
}

#[test]
fn a_rediss_node_with_options_that_have_no_tls_is_refused_up_front() {
    let node: NodeAddr = "rediss://127.0.0.1:1".parse().unwrap();
    let err = Conn::connect(&node, &ConnOptions::default()).unwrap_err();
    assert!(matches!(err, Error::TlsUnsupported { .. }), "{err:?}");
}

#[test]
fn without_a_ca_file_the_system_trust_store_is_used_and_a_private_ca_is_refused() {
    let pki = Pki::new();
    let server = tls_server(&pki.files);
    let config = Config::from_yaml_str(&format!(
        "nodes: [\"rediss://127.0.0.1:{}\"]",
        server.port()
    ))
    .unwrap();
    assert!(config.tls_enabled() && config.tls.ca_file.is_none());
    let opts = ConnOptions::from_config(&config);
    let err = Conn::connect(&config.nodes[0], &opts).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("not trusted"), "{text}");
    assert!(text.contains("system's trust store"), "{text}");
    assert!(
        matches!(
            TlsError::find(&err),
            Some(TlsError::Untrusted { ca_file: None, .. })
        ),
        "{err:?}"
    );
}

#[test]
fn a_wrong_ca_fails_with_a_clear_error_naming_the_ca_file() {
    let pki = Pki::new();
    let server = tls_server(&pki.files);
    let opts = tls_options(&settings_with_ca(&pki.other_ca));
    let begun = Instant::now();
    let err = Conn::connect(&server.addr(), &opts).unwrap_err();
    assert!(begun.elapsed() < Duration::from_secs(2), "{err}");
    let text = err.to_string();
    assert!(text.contains("not trusted"), "{text}");
    assert!(text.contains(&pki.other_ca.display().to_string()), "{text}");
    assert!(text.contains("not signed by a CA in that file"), "{text}");
    match TlsError::find(&err) {
        Some(TlsError::Untrusted {
            ca_file,
            server_name,
            ..
        }) => {
            assert_eq!(ca_file.as_deref(), Some(pki.other_ca.as_path()));
            assert_eq!(server_name, "127.0.0.1");
        }
        other => panic!("expected Untrusted, got {other:?} from {err:?}"),
    }
    assert!(err.is_connection_broken());
    assert!(!err.is_timeout());
}

#[test]
fn a_certificate_for_another_name_is_not_trusted_and_server_name_can_fix_it() {
    let pki = Pki::new();
    let server = tls_server(&pki.files);

    let mut wrong = pki.files.client_settings();
    wrong.server_name = Some("redis.example.com".into());
    let err = Conn::connect(&server.addr(), &tls_options(&wrong)).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("not trusted for `redis.example.com`"),
        "{text}"
    );
    assert!(text.contains("tls.server_name"), "{text}");

    // The certificate carries `localhost`: dialling the IP but checking that name works.
    let mut right = pki.files.client_settings();
    right.server_name = Some("localhost".into());
    let mut conn = Conn::connect(&server.addr(), &tls_options(&right)).unwrap();
    assert!(conn.query(&redis::cmd("PING")).unwrap().is_ok());
}

#[test]
fn a_plaintext_client_against_a_tls_port_fails_within_its_timeouts() {
    let pki = Pki::new();
    let server = tls_server(&pki.files);
    let opts = ConnOptions {
        dial_timeout: Duration::from_millis(500),
        read_timeout: Duration::from_millis(500),
        write_timeout: Duration::from_millis(500),
        ..ConnOptions::default()
    };

    // No AUTH: connect succeeds at the TCP level, the first reply never comes as RESP.
    let begun = Instant::now();
    let result =
        Conn::connect(&server.addr(), &opts).and_then(|mut c| c.query(&redis::cmd("PING")));
    let err = result.expect_err("plaintext PING on a TLS port");
    assert!(
        begun.elapsed() < Duration::from_secs(2),
        "took {:?}",
        begun.elapsed()
    );
    assert!(err.is_connection_broken(), "{err:?}");

    // With AUTH the failure happens inside connect, bounded by the dial timeout.
    let opts = ConnOptions {
        password: Some(slotline_client::config::Password::new("pw")),
        ..opts
    };
    let begun = Instant::now();
    let err = Conn::connect(&server.addr(), &opts).unwrap_err();
    assert!(
        begun.elapsed() < Duration::from_secs(2),
        "took {:?}",
        begun.elapsed()
    );
    assert!(err.is_connection_broken(), "{err:?}");
}

#[test]
fn a_tls_client_against_a_plaintext_port_fails_within_the_dial_timeout() {
    let pki = Pki::new();
    let plain = LocalServer::start().unwrap();
    let opts = ConnOptions {
        dial_timeout: Duration::from_millis(700),
        ..tls_options(&pki.files.client_settings())
    };
    let begun = Instant::now();
    let err = Conn::connect(&plain.addr(), &opts).unwrap_err();
    let took = begun.elapsed();
    assert!(
        took < Duration::from_millis(700 + 1000),
        "took {took:?}: {err}"
    );
    let is_handshake_failure = matches!(TlsError::find(&err), Some(TlsError::Handshake { .. }))
        || matches!(
            err,
            Error::Timeout {
                during: "TLS handshake",
                ..
            }
        );
    assert!(is_handshake_failure, "{err:?}");
    eprintln!("TLS to a plaintext port: {err} (after {took:?})");
}

#[test]
fn mutual_tls_needs_the_client_certificate() {
    let pki = Pki::new();
    let files = TlsFiles {
        auth_clients: true,
        ..pki.files.clone()
    };
    let server = tls_server(&files);

    // Without a client certificate the node refuses: at the handshake (TLS 1.2) or on the
    // first read (TLS 1.3, where the client finishes its side first).
    let opts = tls_options(&settings_with_ca(&files.ca_file));
    let begun = Instant::now();
    let err = Conn::connect(&server.addr(), &opts)
        .and_then(|mut c| c.query(&redis::cmd("PING")))
        .expect_err("no client certificate");
    assert!(begun.elapsed() < Duration::from_secs(3));
    assert!(err.is_connection_broken(), "{err:?}");
    eprintln!("mutual TLS without a client certificate: {err}");

    // With it, the connection works; the options print paths, never the key.
    let settings = files.client_settings();
    assert!(settings.client_cert_file.is_some());
    let debug = format!("{:?}", tls_options(&settings));
    assert!(
        debug.contains("node.key") && !debug.contains("PRIVATE KEY"),
        "{debug}"
    );
    let mut conn = Conn::connect(&server.addr(), &tls_options(&settings)).unwrap();
    assert_eq!(
        conn.query(&redis::cmd("PING")).unwrap(),
        Ok(Value::SimpleString("PONG".into()))
    );
}

#[test]
fn bad_tls_settings_are_config_errors_naming_the_key_and_path() {
    let pki = Pki::new();
    let garbage = pki.path("garbage.pem");
    std::fs::write(&garbage, "this is not PEM\n").unwrap();
    let missing = pki.path("missing.pem");
    let ca = pki.files.ca_file.display().to_string();

    let cases = [
        (
            format!("tls: {{ enabled: true, ca_file: {} }}", missing.display()),
            "tls.ca_file",
            Some(missing.display().to_string()),
        ),
        (
            format!("tls: {{ enabled: true, ca_file: {} }}", garbage.display()),
            "tls.ca_file",
            Some(garbage.display().to_string()),
        ),
        (
            format!("tls: {{ enabled: true, ca_file: {ca}, client_cert_file: {ca} }}"),
            "tls.client_key_file",
            None,
        ),
        (
            format!(
                "tls: {{ enabled: true, ca_file: {ca}, \
                 client_cert_file: {}, client_key_file: {} }}",
                pki.files.cert_file.display(),
                missing.display()
            ),
            "tls.client_key_file",
            Some(missing.display().to_string()),
        ),
        (
            format!("tls: {{ enabled: true, ca_file: {ca}, server_name: \"not a name\" }}"),
            "tls.server_name",
            None,
        ),
    ];
    for (yaml, key, path) in cases {
        let err = Config::from_yaml_str(&yaml).expect_err(&yaml);
        assert_eq!(err.key(), Some(key), "yaml={yaml} err={err}");
        if let Some(path) = path {
            assert!(err.to_string().contains(&path), "yaml={yaml} err={err}");
        }
    }

    // Unknown keys in the section are still errors, so a misspelt switch is never ignored.
    let err = Config::from_yaml_str("tls: { enabled: true, verify: false }").unwrap_err();
    assert!(
        err.to_string().contains("tls: unknown field `verify`"),
        "{err}"
    );

    // Off, the files are not looked at; on, a good CA file or the system's store is accepted.
    Config::from_yaml_str("tls: { enabled: true }").unwrap();
    Config::from_yaml_str(&format!("tls: {{ ca_file: {} }}", missing.display())).unwrap();
    let config =
        Config::from_yaml_str(&format!("tls: {{ enabled: true, ca_file: {ca} }}")).unwrap();
    assert!(config.tls_enabled());
}

#[test]
fn a_ca_file_that_disappears_after_validation_is_reported_by_connect() {
    let pki = Pki::new();
    let server = tls_server(&pki.files);
    let copy = pki.path("ca-copy.pem");
    std::fs::copy(&pki.files.ca_file, &copy).unwrap();
    let mut config = Config::from_yaml_str(&format!(
        "tls: {{ enabled: true, ca_file: {} }}",
        copy.display()
    ))
    .unwrap();
    config.nodes = vec![server.addr()];
    std::fs::remove_file(&copy).unwrap();

    let err = Conn::connect(&server.addr(), &ConnOptions::from_config(&config)).unwrap_err();
    assert!(
        matches!(
            TlsError::find(&err),
            Some(TlsError::File {
                key: "tls.ca_file",
                ..
            })
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&copy.display().to_string()),
        "{err}"
    );
    let err = Client::connect(config).unwrap_err();
    assert!(err.to_string().contains("tls.ca_file"), "{err}");
}

#[test]
fn client_commits_through_a_one_node_tls_cluster() {
    let pki = Pki::new();
    let cluster = LocalCluster::builder()
        .masters(1)
        .replicas_per_master(0)
        .tls(&pki.files)
        .start()
        .unwrap_or_else(|e| panic!("TLS cluster: {e}"));
    let port = cluster.nodes()[0].port;

    // With tls-cluster and no plaintext port the node announces only its TLS port.
    let shards = cluster.cli(0, &["CLUSTER", "SHARDS"]).unwrap();
    assert!(shards.contains("tls-port"), "{shards}");
    assert!(shards.contains(&port.to_string()), "{shards}");

    let config = cluster.config();
    assert!(config.tls_enabled());
    let client = Client::connect(config).expect("client over TLS");
    for i in 0..100 {
        client
            .commit(format!("tls:{i}").as_bytes(), format!("v{i}").as_bytes())
            .unwrap_or_else(|e| panic!("commit {i}: {e}"));
    }
    assert_eq!(
        cluster.query(0, redis::cmd("GET").arg("tls:42")).unwrap(),
        Ok(Value::BulkString(b"v42".to_vec()))
    );
    assert_eq!(
        cluster.query(0, &redis::cmd("DBSIZE")).unwrap(),
        Ok(Value::Int(100))
    );
}

#[test]
fn client_commits_through_a_three_master_tls_cluster_with_replicas() {
    let pki = Pki::new();
    let cluster = LocalCluster::builder()
        .masters(3)
        .replicas_per_master(1)
        .tls(&pki.files)
        .start()
        .unwrap_or_else(|e| panic!("TLS cluster: {e}"));
    let mut config = cluster.config();
    config.ack.replicas = 1;
    // WAIT returns as soon as the replica confirms: a long timeout costs nothing, and keeps a
    // replica that a loaded machine schedules late from failing a commit.
    config.ack.timeout = Duration::from_secs(5);
    config.commit.timeout = Duration::from_secs(10);
    let client = Client::connect(config).expect("client over TLS");
    for i in 0..300 {
        client
            .commit(format!("geo:{i}").as_bytes(), b"52.52,13.40")
            .unwrap_or_else(|e| panic!("commit {i}: {e}"));
    }
    let snapshot = client.metrics();
    let text = snapshot.to_prometheus();
    assert!(!text.is_empty());
    let total: i64 = cluster
        .master_addrs()
        .iter()
        .enumerate()
        .map(
            |(i, _)| match cluster.query(i, &redis::cmd("DBSIZE")).unwrap() {
                Ok(Value::Int(n)) => n,
                other => panic!("DBSIZE: {other:?}"),
            },
        )
        .sum();
    assert_eq!(total, 300);
}
