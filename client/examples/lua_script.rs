//! A Lua script routed by its keys: a fixed-window rate limiter that counts a user's calls and
//! refuses past a limit, run with `EVAL` (keys from `numkeys`, never from the script's text).
//!
//! ```text
//! cargo run -p slotline-client --example lua_script
//! ```
//!
//! It starts its own local Redis Cluster (`redis-server` must be installed).

use slotline_client::Client;
use slotline_testkit::LocalCluster;

/// KEYS[1]: the user's counter. ARGV[1]: the limit, ARGV[2]: the window in seconds.
/// Returns 1 when the call is allowed, 0 when over the limit.
const LIMITER: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if n > tonumber(ARGV[1]) then return 0 end
return 1
";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = LocalCluster::start()?;
    let client = Client::connect(cluster.config())?;

    let mut allowed = 0;
    let mut refused = 0;
    for user in 0..30 {
        for _call in 0..15 {
            let reply = client.commit_cmd(
                redis::cmd("EVAL")
                    .arg(LIMITER)
                    .arg(1)
                    .arg(format!("rate:{{user{user}}}"))
                    .arg(10)
                    .arg(60),
            )?;
            match redis::from_redis_value::<i64>(reply)? {
                1 => allowed += 1,
                _ => refused += 1,
            }
        }
    }
    let moved = client.metrics().total.moved;
    println!("{allowed} calls allowed, {refused} refused; {moved} redirects (keys route EVAL)");
    assert_eq!(allowed, 30 * 10);
    assert_eq!(refused, 30 * 5);
    assert_eq!(moved, 0);
    Ok(())
}
