//! Without `redis-server` on `PATH`, starting a local server or cluster fails with an error
//! that says how to install it. (Its own test binary: it empties `PATH` for the process.)

use slotline_testkit::{LocalCluster, LocalError, LocalServer};

#[test]
fn missing_redis_server_says_how_to_install_it() {
    // The only test in this process, so changing the environment races with nothing.
    std::env::set_var("PATH", "/nonexistent-slotline-test-path");
    let err = LocalServer::start().unwrap_err();
    assert!(matches!(err, LocalError::RedisServerNotFound), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("apt-get install redis-server redis-tools")
            && text.contains("redis-server ≥ 7 required"),
        "{text}"
    );
    let err = LocalCluster::start().unwrap_err();
    assert!(matches!(err, LocalError::RedisServerNotFound), "{err:?}");
}
