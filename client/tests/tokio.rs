//! The `tokio` feature: `connect_async` and `close_async` on a tokio runtime. Runs with
//! `cargo test -p slotline-client --features tokio --test tokio`.
#![cfg(all(feature = "tokio", not(feature = "loom")))]

use std::time::{Duration, Instant};

use slotline_client::{Client, CommitError};
use slotline_testkit::LocalCluster;

#[test]
fn connect_and_close_await_on_a_current_thread_runtime() {
    let cluster = LocalCluster::start().unwrap_or_else(|e| panic!("local cluster: {e}"));
    // One worker thread: a blocking connect or close on it would stall everything else.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // A task that must keep ticking while the client connects and closes.
        let ticker = tokio::spawn(async {
            let mut ticks = 0u32;
            let started = Instant::now();
            while started.elapsed() < Duration::from_millis(400) {
                tokio::time::sleep(Duration::from_millis(5)).await;
                ticks += 1;
            }
            ticks
        });
        let client = Client::connect_async(cluster.config())
            .await
            .expect("connect_async");
        client
            .commit_async(b"tokio:{1}", b"v")
            .await
            .expect("commit_async");
        let reply = client
            .commit_cmd_async(redis::cmd("GET").arg("tokio:{1}"))
            .await
            .expect("GET");
        assert_eq!(reply, redis::Value::BulkString(b"v".to_vec()));
        client.close_async().await;
        assert_eq!(
            client.commit_async(b"tokio:{1}", b"w").await,
            Err(CommitError::Closed)
        );
        // Closing again is a no-op.
        client.close_async().await;
        let ticks = ticker.await.expect("ticker");
        assert!(
            ticks >= 10,
            "the runtime's only thread was blocked: {ticks} ticks"
        );
    });
}
