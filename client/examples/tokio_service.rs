//! An async service on tokio: a thousand tasks each count a page view with
//! `commit_cmd_async(INCR)` and record a session with `commit_async`, all sharing one client.
//! The client needs no runtime of its own: its futures work on any executor.
//!
//! ```text
//! cargo run -p slotline-client --example tokio_service
//! ```
//!
//! It starts its own local Redis Cluster (`redis-server` must be installed).

use std::sync::Arc;

use slotline_client::{CallOptions, Client};
use slotline_testkit::LocalCluster;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = LocalCluster::start()?;
    let client = Arc::new(Client::connect(cluster.config())?);
    let runtime = tokio::runtime::Builder::new_multi_thread().build()?;

    let views: i64 = runtime.block_on(async {
        let tasks: Vec<_> = (0..1000)
            .map(|i| {
                let client = Arc::clone(&client);
                tokio::spawn(async move {
                    let page = i % 10;
                    let count = client
                        .commit_cmd_async(redis::cmd("INCR").arg(format!("views:{{page{page}}}")))
                        .await?;
                    // A session write that must also reach a replica, this call only.
                    client
                        .commit_async_with(
                            format!("session:{{u{i}}}").as_bytes(),
                            b"active",
                            &CallOptions::new().replicas(1),
                        )
                        .await?;
                    let count: i64 = redis::from_redis_value(count).expect("INCR replies a count");
                    Ok::<i64, slotline_client::CommitError>(count)
                })
            })
            .collect();
        let mut highest = 0;
        for t in tasks {
            highest = highest.max(t.await.expect("task")?);
        }
        Ok::<i64, slotline_client::CommitError>(highest)
    })?;

    let total: i64 = (0..10)
        .map(|page| {
            let v = client.commit_cmd(redis::cmd("GET").arg(format!("views:{{page{page}}}")))?;
            Ok(redis::from_redis_value::<i64>(v).expect("a count"))
        })
        .sum::<Result<i64, slotline_client::CommitError>>()?;
    println!("1000 views counted on 10 pages (highest count seen {views}), total {total}");
    assert_eq!(total, 1000);
    assert_eq!(views, 100);
    Ok(())
}
