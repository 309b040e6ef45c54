//! Passwords never leave the client in text: not in `Debug` or `Display` output, not in any
//! error message (configuration, connection, authentication), not in the metrics.
//!
//! Each test writes the secrets into every place a user can put them, provokes every message
//! it can, and checks the whole text for each secret. The client itself has no logging: what
//! it reports is exactly these values, so they are what a log would contain.
#![cfg(not(feature = "loom"))]

use std::time::Duration;

use slotline_client::config::{Config, NodeAddr, Password};
use slotline_client::{Client, Conn, ConnOptions};
use slotline_testkit::{LocalCluster, LocalServer};

/// The section password, the URL password (percent-escaped in the URL), and wrong ones.
const AUTH_SECRET: &str = "auth-s3cret-8f2c";
const URL_SECRET: &str = "url-p@ss-41d7";
const URL_SECRET_ESCAPED: &str = "url-p%40ss-41d7";
const WRONG_SECRET: &str = "wrong-s3cret-77aa";

/// Fails with the offending text if any secret (or its escaped form) appears in it.
#[track_caller]
fn assert_no_secret(what: &str, text: &str) {
    for secret in [AUTH_SECRET, URL_SECRET, URL_SECRET_ESCAPED, WRONG_SECRET] {
        assert!(
            !text.contains(secret),
            "{what} shows the password `{secret}`:\n{text}"
        );
    }
}

/// `Display`, `Debug` and pretty `Debug` of a value, and of its source chain.
fn all_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = format!("{err}\n{err:?}\n{err:#?}");
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!("\n{cause}\n{cause:?}"));
        source = cause.source();
    }
    text
}

fn config_with_secrets() -> Config {
    Config::from_yaml_str(&format!(
        "auth:\n  username: writer\n  password: {AUTH_SECRET}\n\
         nodes:\n  - \"redis://app:{URL_SECRET_ESCAPED}@127.0.0.1:7000\"\n  - 127.0.0.1:7001\n"
    ))
    .unwrap()
}

#[test]
fn config_debug_and_node_display_never_show_a_password() {
    let config = config_with_secrets();
    assert_eq!(config.auth.password.as_ref().unwrap().expose(), AUTH_SECRET);
    let node = &config.nodes[0];
    assert_eq!(node.password().unwrap().expose(), URL_SECRET);

    assert_no_secret("Config Debug", &format!("{config:?}"));
    assert_no_secret("Config pretty Debug", &format!("{config:#?}"));
    for node in &config.nodes {
        assert_no_secret("NodeAddr Display", &node.to_string());
        assert_no_secret("NodeAddr Debug", &format!("{node:?} {node:#?}"));
    }
    assert_eq!(node.to_string(), "127.0.0.1:7000");

    let opts = ConnOptions::from_config(&config);
    assert_no_secret("ConnOptions Debug", &format!("{opts:?} {opts:#?}"));
    let for_node = opts.for_node(node);
    assert_eq!(for_node.password.as_ref().unwrap().expose(), URL_SECRET);
    assert_no_secret("ConnOptions::for_node Debug", &format!("{for_node:#?}"));
    let password = Password::new(WRONG_SECRET);
    assert_no_secret("Password Debug", &format!("{password:?} {password:#?}"));
}

#[test]
fn config_errors_never_show_a_password() {
    let a = AUTH_SECRET;
    let u = URL_SECRET_ESCAPED;
    let cases = [
        // Wrong shapes around the password itself.
        format!("auth: {a}"),
        format!("auth: [{a}]"),
        format!("auth: {{ password: [{a}] }}"),
        format!("auth: {{ password: {{ value: {a} }} }}"),
        format!("auth: {{ password: {a}, colour: blue }}"),
        format!("auth: {{ password: {a}, username: [writer] }}"),
        format!("auth:\n  password: {a}\n  password: {a}\n"),
        format!("auth: {{ password: \"{a}"),
        format!("auth: {{ password: {a}\n"),
        // A password next to another broken value. (Values of keys that are not secrets,
        // such as an unknown `fallback_strategy`, are echoed on purpose.)
        format!("auth: {{ password: {a} }}\nshard_config: {{ total_shards: 0 }}"),
        format!("auth: {{ password: {a} }}\nbackpressure: {{ fallback_strategy: maybe }}"),
        // Node URLs with credentials that do not parse, or in the wrong place.
        format!("nodes: \"redis://app:{u}@127.0.0.1:7000\""),
        format!("nodes: [\"redis://app:{u}@127.0.0.1:notaport\"]"),
        format!("nodes: [\"redis://app:{u}@127.0.0.1:7000/3\"]"),
        format!("nodes: [\"redis://app:{u}@:7000\"]"),
        format!("nodes: [\"http://app:{u}@127.0.0.1:7000\"]"),
        format!("nodes: [\"app:{u}@127.0.0.1:7000\"]"),
        format!("nodes: [\"redis://app:{u}%zz@127.0.0.1:7000\"]"),
        format!("nodes: [\"redis://app:{u}@[::1:7000\"]"),
        format!("nodes: [\"redis://app:{u}@127.0.0.1:7000\", 127.0.0.1]"),
        format!("nodes: [{{ url: \"redis://app:{u}@127.0.0.1:7000\" }}]"),
        format!("nodes: [\"redis://{u}@127.0.0.1:7000\"]\nauth: {{ username: x }}"),
        format!("- {a}"),
        a.to_string(),
    ];
    for yaml in &cases {
        let err = Config::from_yaml_str(yaml).expect_err(yaml);
        assert_no_secret(&format!("ConfigError for {yaml:?}"), &all_text(&err));
        let err = slotline_client::Error::from(err);
        assert_no_secret(&format!("Error for {yaml:?}"), &all_text(&err));
    }

    // From a file, too (the message then names the file).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("client.yaml");
    std::fs::write(&path, format!("auth: {{ password: {a}, colour: blue }}")).unwrap();
    let err = Config::from_yaml_file(&path).unwrap_err();
    assert_no_secret("ConfigError from a file", &all_text(&err));

    // Validation errors of a config built in code.
    let mut config = config_with_secrets();
    config.shard_config.total_shards = 0;
    let err = config.validate().unwrap_err();
    assert_no_secret("validate()", &all_text(&err));
    let err = Client::connect(config).unwrap_err();
    assert_no_secret("Client::connect with an invalid config", &all_text(&err));

    // Node address errors on their own.
    for input in [
        format!("redis://app:{u}@h:x"),
        format!("rediss://:{u}@h:1/9"),
        format!("app:{u}@h:1"),
    ] {
        let err = input.parse::<NodeAddr>().unwrap_err();
        assert_no_secret(&format!("NodeAddrError for {input:?}"), &all_text(&err));
    }
}

#[test]
fn a_refused_password_is_not_repeated_in_any_error() {
    let server = LocalServer::builder()
        .requirepass(AUTH_SECRET)
        .acl_user(&format!("app on >{URL_SECRET} ~* +@all"))
        .start()
        .unwrap();
    let opts = ConnOptions {
        dial_timeout: Duration::from_secs(2),
        password: Some(Password::new(WRONG_SECRET)),
        ..ConnOptions::default()
    };
    let err = Conn::connect(&server.addr(), &opts).unwrap_err();
    assert!(err.to_string().contains("WRONGPASS"), "{err}");
    assert_no_secret("wrong requirepass", &all_text(&err));

    // A user name with the wrong password, through a URL.
    let node: NodeAddr = format!("redis://app:{WRONG_SECRET}@127.0.0.1:{}", server.port())
        .parse()
        .unwrap();
    let err = Conn::connect(&node, &ConnOptions::default()).unwrap_err();
    assert_no_secret("wrong ACL password", &all_text(&err));

    // The right ones work, and the connection's Debug shows no secret either.
    let node: NodeAddr = format!(
        "redis://app:{URL_SECRET_ESCAPED}@127.0.0.1:{}",
        server.port()
    )
    .parse()
    .unwrap();
    let conn = Conn::connect(&node, &ConnOptions::default()).unwrap();
    assert_no_secret("Conn Debug", &format!("{conn:?} {conn:#?}"));

    // A node that is down: the connection error names the node, not its credentials.
    let port = server.port();
    drop(server);
    let err = Conn::connect(&node, &ConnOptions::default()).unwrap_err();
    assert!(err.to_string().contains(&port.to_string()), "{err}");
    assert_no_secret("refused connection", &all_text(&err));
}

#[test]
fn client_errors_debug_and_metrics_never_show_a_password() {
    let cluster = LocalCluster::builder()
        .masters(1)
        .replicas_per_master(0)
        .requirepass(AUTH_SECRET)
        .start()
        .unwrap_or_else(|e| panic!("local cluster: {e}"));
    let port = cluster.nodes()[0].port;

    // Wrong password in the auth section, then in a node URL.
    let mut config = cluster.config();
    config.auth.password = Some(Password::new(WRONG_SECRET));
    let err = Client::connect(config).unwrap_err();
    assert!(err.to_string().contains("WRONGPASS"), "{err}");
    assert_no_secret("Client::connect, wrong auth.password", &all_text(&err));

    let mut config = cluster.config();
    config.auth.password = None;
    config.nodes = vec![format!("redis://:{WRONG_SECRET}@127.0.0.1:{port}")
        .parse()
        .unwrap()];
    let err = Client::connect(config).unwrap_err();
    assert_no_secret("Client::connect, wrong URL password", &all_text(&err));

    // The right password: commits, failed commits, Debug and the metrics text.
    let client = Client::connect(cluster.config()).expect("connect with requirepass");
    for i in 0..50 {
        client
            .commit(format!("k{i}").as_bytes(), AUTH_SECRET.as_bytes())
            .unwrap();
    }
    let mut bad = redis::cmd("LPUSH");
    bad.arg("k1").arg("x"); // WRONGTYPE: k1 holds a string
    let err = client.commit_cmd(&bad).unwrap_err();
    assert_no_secret("CommitError", &format!("{err} {err:?}"));
    assert_no_secret("Client Debug", &format!("{client:?} {client:#?}"));
    let metrics = client.metrics();
    assert_no_secret("metrics Debug", &format!("{metrics:?}"));
    let text = metrics.to_prometheus();
    assert!(text.contains("# TYPE"), "{text}");
    assert_no_secret("Prometheus metrics", &text);
}
