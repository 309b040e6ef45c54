//! The read-back: is every acknowledged write in Redis?
//!
//! After a path has finished (and the sidecar has drained or been stopped), every key that
//! received at least one acknowledged write is read with pipelined `GET`s, one connection per
//! master. Each value names the write that produced it (`<seq>|...`).
//!
//! # When a key counts as lost
//!
//! Let `W` be the key's *last acknowledged write*: the acknowledged write to the key that was
//! offered last. The key is **lost** when Redis holds no value for it (*missing*), or holds the
//! value of a write `S` ≠ `W` that cannot legitimately have landed after `W` (*stale*): `S`
//! was acknowledged before `W` was even offered. A write `S` whose caller got its answer after
//! `W` was offered overlapped `W`, so either order is correct; and a write whose outcome is
//! unknown (a timeout after sending) may have landed at any time. A value written by a write
//! whose caller was told it was *not* applied is counted apart, as a *phantom*.

use std::collections::HashMap;

use slotline_router::{key_slot, NodeMap, Value};

use super::net::RawConn;
use super::replay::{seq_of, Outcome, PathRun};
use super::trace::Trace;

/// `GET`s per pipelined batch.
const BATCH: usize = 1_000;

/// The read-back's findings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReadBack {
    /// Keys with at least one acknowledged write (all were read).
    pub keys_checked: u64,
    /// Keys whose last acknowledged write is not in Redis (`missing + stale`).
    pub lost: u64,
    /// Lost keys with no value at all.
    pub missing: u64,
    /// Lost keys holding an older write's value.
    pub stale: u64,
    /// Keys holding a value from a write its caller was told failed.
    pub phantom: u64,
}

/// Reads back every key `run` acknowledged a write to, from the masters in `map`.
///
/// # Errors
///
/// A message naming the master that could not be read.
pub fn read_back(map: &NodeMap, trace: &Trace, run: &PathRun) -> Result<ReadBack, String> {
    // Per key: the last acknowledged write (latest offer time, then highest index).
    let mut last: HashMap<u32, (u64, usize)> = HashMap::new();
    for (i, r) in run.records.iter().enumerate() {
        if r.outcome == Outcome::Ok {
            let key = trace.events[i].key;
            let entry = last.entry(key).or_insert((r.send_us, i));
            if (r.send_us, i) > *entry {
                *entry = (r.send_us, i);
            }
        }
    }
    let mut by_master: HashMap<String, Vec<u32>> = HashMap::new();
    for &key in last.keys() {
        let name = &trace.keys[key as usize];
        let master = map
            .master_addr(key_slot(name.as_bytes()))
            .ok_or_else(|| format!("no master serves the slot of `{name}`"))?;
        by_master.entry(master.to_string()).or_default().push(key);
    }
    let mut found = ReadBack {
        keys_checked: last.len() as u64,
        ..ReadBack::default()
    };
    let mut cmd = Vec::with_capacity(64 * 1024);
    for (master, keys) in &by_master {
        let mut conn = RawConn::connect(master).map_err(|e| format!("{master}: {e}"))?;
        for chunk in keys.chunks(BATCH) {
            cmd.clear();
            for &k in chunk {
                slotline_router::write_command(
                    &mut cmd,
                    &[b"GET", trace.keys[k as usize].as_bytes()],
                );
            }
            std::io::Write::write_all(&mut conn.stream, &cmd)
                .map_err(|e| format!("{master}: {e}"))?;
            for &k in chunk {
                let value = conn.read_value().map_err(|e| format!("{master}: {e}"))?;
                let (w_send, w_idx) = last[&k];
                match value {
                    Value::Nil => {
                        found.missing += 1;
                        found.lost += 1;
                    }
                    Value::Bulk(v) => {
                        let s = seq_of(&v).map(|s| s as usize);
                        let verdict = match s {
                            Some(s) if s == w_idx => Verdict::Ok,
                            Some(s) if s < run.records.len() && trace.events[s].key == k => {
                                let r = run.records[s];
                                match r.outcome {
                                    Outcome::Refused => Verdict::Phantom,
                                    Outcome::Ok if r.done_us < w_send => Verdict::Stale,
                                    _ => Verdict::Ok,
                                }
                            }
                            _ => Verdict::Stale,
                        };
                        match verdict {
                            Verdict::Ok => {}
                            Verdict::Stale => {
                                found.stale += 1;
                                found.lost += 1;
                            }
                            Verdict::Phantom => found.phantom += 1,
                        }
                    }
                    other => {
                        return Err(format!(
                            "{master}: GET {} answered {other:?}",
                            trace.keys[k as usize]
                        ))
                    }
                }
            }
        }
    }
    Ok(found)
}

enum Verdict {
    Ok,
    Stale,
    Phantom,
}
