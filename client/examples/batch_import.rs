//! A batch import: 20,000 events committed in batches of 500 with `commit_batch`, each batch
//! spread over every master, with one result per event telling which ones failed (none should
//! here), then counted back.
//!
//! ```text
//! cargo run -p slotline-client --example batch_import
//! ```
//!
//! It starts its own local Redis Cluster (`redis-server` must be installed).

use slotline_client::Client;
use slotline_testkit::LocalCluster;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = LocalCluster::start()?;
    let client = Client::connect(cluster.config())?;

    const EVENTS: usize = 20_000;
    const USERS: usize = 200;
    let mut failed = Vec::new();
    for chunk in (0..EVENTS).collect::<Vec<_>>().chunks(500) {
        let cmds: Vec<redis::Cmd> = chunk
            .iter()
            .map(|&e| {
                // One hash per user (its own slot), one field per event.
                redis::cmd("HSET")
                    .arg(format!("events:{{user{}}}", e % USERS))
                    .arg(e)
                    .arg(format!("payload-{e}"))
                    .clone()
            })
            .collect();
        let results = client.commit_batch(&cmds)?;
        for (&e, result) in chunk.iter().zip(results) {
            match result {
                Ok(redis::Value::Int(1)) => {}
                Ok(other) => panic!("event {e}: HSET replied {other:?}"),
                Err(err) => failed.push((e, err)),
            }
        }
    }

    let stored: usize = (0..USERS)
        .map(|u| {
            let n = client.commit_cmd(redis::cmd("HLEN").arg(format!("events:{{user{u}}}")))?;
            Ok(redis::from_redis_value::<usize>(n).expect("HLEN replies a count"))
        })
        .sum::<Result<usize, slotline_client::CommitError>>()?;
    println!(
        "{EVENTS} events in {} batches: {} failed, {stored} stored",
        EVENTS / 500,
        failed.len()
    );
    assert!(failed.is_empty(), "failed events: {failed:?}");
    assert_eq!(stored, EVENTS);
    Ok(())
}
