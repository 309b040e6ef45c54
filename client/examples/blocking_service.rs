//! A blocking service: worker threads write location pings with `commit` (a `SET` acknowledged
//! by the key's master) and append them to a per-user stream with `commit_cmd` (`XADD`, whose
//! reply is the entry ID), then print the client's metrics.
//!
//! ```text
//! cargo run -p slotline-client --example blocking_service
//! ```
//!
//! It starts its own local Redis Cluster (3 masters + 3 replicas on free loopback ports;
//! `redis-server` must be installed). Point `config.nodes` at your cluster instead in a service.

use std::sync::Arc;
use std::thread;

use slotline_client::{Client, CommitError};
use slotline_testkit::LocalCluster;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = LocalCluster::start()?;
    let client = Arc::new(Client::connect(cluster.config())?);

    let workers: Vec<_> = (0..8)
        .map(|w| {
            let client = Arc::clone(&client);
            thread::spawn(move || -> Result<usize, CommitError> {
                let mut written = 0;
                for i in 0..250 {
                    let user = w * 1000 + i % 50;
                    let ping = format!("52.{i:04},13.{w:04}");
                    // The hash tag `{user}` keeps a user's keys in one slot.
                    client.commit(format!("geo:{{{user}}}:last").as_bytes(), ping.as_bytes())?;
                    let id = client.commit_cmd(
                        redis::cmd("XADD")
                            .arg(format!("geo:{{{user}}}:trail"))
                            .arg("MAXLEN")
                            .arg("~")
                            .arg(100)
                            .arg("*")
                            .arg("p")
                            .arg(&ping),
                    )?;
                    let id: String = redis::from_redis_value(id).expect("XADD replies an ID");
                    assert!(id.contains('-'), "a stream ID is <ms>-<seq>: {id}");
                    written += 1;
                }
                Ok(written)
            })
        })
        .collect();
    let mut total = 0;
    for w in workers {
        total += w.join().expect("worker")?;
    }

    // Read one back through the same client: a read is a single-slot command too.
    let last = client.commit_cmd(redis::cmd("GET").arg("geo:{7049}:last"))?;
    let last: String = redis::from_redis_value(last)?;
    let metrics = client.metrics().total;
    println!("{total} pings written, each as a SET and an XADD; geo:{{7049}}:last = {last}");
    println!(
        "{} commits acknowledged, p99 {:?}",
        metrics.commits, metrics.latency.p99
    );
    assert_eq!(metrics.commits, 2 * total as u64 + 1);
    Ok(())
}
