//! ACL authentication at the client level, on a real local Redis Cluster.
#![cfg(not(feature = "loom"))]

use slotline_client::config::Password;
use slotline_client::{Client, CommitError, Error};
use slotline_testkit::LocalCluster;

/// A cluster whose `default` user has a password, plus a `writer` user limited to what the
/// client needs to write `geo:*` keys.
fn cluster() -> LocalCluster {
    LocalCluster::builder()
        .requirepass("admin-secret")
        .args([
            "--user",
            "writer",
            "on",
            ">writer-secret",
            "~geo:*",
            "+set",
            "+geoadd",
            "+wait",
            "+cluster|shards",
            "+cluster|slots",
            "+ping",
            "+asking",
        ])
        .start()
        .unwrap_or_else(|e| panic!("local cluster: {e}"))
}

#[test]
fn a_limited_acl_user_commits_and_is_refused_outside_its_rights() {
    let cluster = cluster();
    let mut config = cluster.config();
    config.auth.username = Some("writer".to_owned());
    config.auth.password = Some(Password::new("writer-secret"));
    let client = Client::connect(config).expect("connect as the ACL user");

    client
        .commit(b"geo:{u1}", b"52.52,13.40")
        .expect("SET on geo:* is allowed");
    let mut geoadd = redis::cmd("GEOADD");
    geoadd.arg("geo:{u1}:trail").arg(13.4).arg(52.5).arg("t1");
    client
        .commit_cmd(&geoadd)
        .expect("GEOADD on geo:* is allowed");

    // A key outside `~geo:*`, and a command outside the user's rights.
    let err = client
        .commit(b"other:{u1}", b"x")
        .expect_err("key outside the pattern");
    assert!(
        matches!(&err, CommitError::Server { message } if message.contains("NOPERM")),
        "{err:?}"
    );
    let mut hset = redis::cmd("HSET");
    hset.arg("geo:{u1}:h").arg("f").arg("v");
    let err = client.commit_cmd(&hset).expect_err("HSET is not granted");
    assert!(
        matches!(&err, CommitError::Server { message } if message.contains("NOPERM")),
        "{err:?}"
    );
    assert!(!err.may_have_been_applied());
}

#[test]
fn a_wrong_password_fails_connect_with_an_auth_error() {
    let cluster = cluster();
    let mut config = cluster.config();
    config.auth.username = Some("writer".to_owned());
    config.auth.password = Some(Password::new("not-the-password"));
    let err = Client::connect(config).expect_err("wrong password");
    let text = err.to_string();
    let auth = match &err {
        Error::NoReachableNode {
            last: Some(last), ..
        } => matches!(**last, Error::Auth { .. }),
        Error::Auth { .. } => true,
        _ => false,
    };
    assert!(auth, "expected an authentication error, got {err:?}");
    assert!(
        !text.contains("not-the-password"),
        "the password leaked into the error: {text}"
    );
    assert!(!format!("{err:?}").contains("not-the-password"));
}
