//! The read-back: is every acknowledged write in Redis?
//!
//! Every write is `HSET <key> <seq> <payload>` (see [`super::replay`]): a field per write, so
//! a later write to the same key does not hide an earlier one, and every write can be checked,
//! not only the last one per key. After a path has finished (and the sidecar has drained or
//! been stopped), every key that any write went to is read with pipelined `HGETALL`s, one
//! connection per master, and each write is judged by its caller's outcome:
//!
//! | caller was told | its field in Redis | counted as |
//! |---|---|---|
//! | acknowledged | present, holding its payload | fine |
//! | acknowledged | absent (or another payload) | **lost** |
//! | refused (not applied) | present | **phantom** |
//! | refused | absent | fine |
//! | unknown (may have been applied) | either | `unknown_applied` / `unknown_absent` |
//!
//! A field that names no write to its key is **foreign** (it cannot come from this replay,
//! which starts from an empty cluster). `lost` counts writes, in the same unit as
//! `acknowledged`, so `lost / acknowledged` is a loss rate.

use std::collections::HashMap;

use slotline_router::{key_slot, NodeMap, Value};

use super::net::RawConn;
use super::replay::{seq_of, Outcome, PathRun};
use super::trace::Trace;

/// `HGETALL`s per pipelined batch.
const BATCH: usize = 500;

/// The read-back's findings, in writes (except `keys_checked`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReadBack {
    /// Keys read (every key any write went to).
    pub keys_checked: u64,
    /// Acknowledged writes checked (all of them).
    pub acked_checked: u64,
    /// Acknowledged writes whose field is absent or holds another payload.
    pub lost: u64,
    /// Writes refused (not applied) whose field is present.
    pub phantom: u64,
    /// Writes with an unknown outcome whose field is present.
    pub unknown_applied: u64,
    /// Writes with an unknown outcome whose field is absent.
    pub unknown_absent: u64,
    /// Fields that name no write to their key.
    pub foreign: u64,
}

/// The read-back's counts, and which acknowledged writes it did not find.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// The counts.
    pub counts: ReadBack,
    /// The event indices of the lost writes (`counts.lost` of them, ascending), so the report
    /// can say when in the trace they were scheduled.
    pub lost_writes: Vec<usize>,
}

/// Reads back every key `run` sent a write to, from the masters in `map`, and judges every
/// write (see the [module docs](self)). `progress` is called after every pipelined batch with
/// the number of writes judged so far (out of the writes with an outcome).
///
/// # Errors
///
/// A message naming the master that could not be read, or a reply that is not a hash.
pub fn read_back(
    map: &NodeMap,
    trace: &Trace,
    run: &PathRun,
    mut progress: impl FnMut(u64),
) -> Result<Findings, String> {
    // Per key: the writes offered to it, by index.
    let mut writes: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, r) in run.records.iter().enumerate() {
        if r.outcome != Outcome::Pending {
            writes.entry(trace.events[i].key).or_default().push(i);
        }
    }
    let mut by_master: HashMap<String, Vec<u32>> = HashMap::new();
    for &key in writes.keys() {
        let name = &trace.keys[key as usize];
        let master = map
            .master_addr(key_slot(name.as_bytes()))
            .ok_or_else(|| format!("no master serves the slot of `{name}`"))?;
        by_master.entry(master.to_string()).or_default().push(key);
    }
    let mut found = ReadBack {
        keys_checked: writes.len() as u64,
        ..ReadBack::default()
    };
    let mut lost_writes = Vec::new();
    let mut judged = 0u64;
    let mut cmd = Vec::with_capacity(64 * 1024);
    for (master, keys) in &by_master {
        let mut conn = RawConn::connect(master).map_err(|e| format!("{master}: {e}"))?;
        for chunk in keys.chunks(BATCH) {
            cmd.clear();
            for &k in chunk {
                slotline_router::write_command(
                    &mut cmd,
                    &[b"HGETALL", trace.keys[k as usize].as_bytes()],
                );
            }
            std::io::Write::write_all(&mut conn.stream, &cmd)
                .map_err(|e| format!("{master}: {e}"))?;
            for &k in chunk {
                let name = &trace.keys[k as usize];
                let value = conn.read_value().map_err(|e| format!("{master}: {e}"))?;
                let fields = hash_fields(value)
                    .map_err(|other| format!("{master}: HGETALL {name} answered {other:?}"))?;
                judge(&mut found, &mut lost_writes, &writes[&k], &fields, run);
                judged += writes[&k].len() as u64;
            }
            progress(judged);
        }
    }
    lost_writes.sort_unstable();
    Ok(Findings {
        counts: found,
        lost_writes,
    })
}

/// A `HGETALL` reply as field → value (RESP2 flat array or RESP3 map).
fn hash_fields(value: Value) -> Result<HashMap<Vec<u8>, Vec<u8>>, Value> {
    let items = match value {
        Value::Array(items) if items.len() % 2 == 0 => items,
        Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        other => return Err(other),
    };
    let mut fields = HashMap::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let (Some(field), Some(value)) = (items.next(), items.next()) {
        match (field, value) {
            (Value::Bulk(f), Value::Bulk(v)) => {
                fields.insert(f, v);
            }
            (f, _) => return Err(f),
        }
    }
    Ok(fields)
}

/// Judges the writes `to_key` (event indices) against the fields their key holds; the lost
/// ones are added to `lost`.
fn judge(
    found: &mut ReadBack,
    lost: &mut Vec<usize>,
    to_key: &[usize],
    fields: &HashMap<Vec<u8>, Vec<u8>>,
    run: &PathRun,
) {
    let mut named = 0;
    for &i in to_key {
        let field = field_name(i as u64);
        let present = fields
            .get(field.as_bytes())
            .is_some_and(|v| seq_of(v) == Some(i as u64));
        named += usize::from(fields.contains_key(field.as_bytes()));
        match (run.records[i].outcome, present) {
            (Outcome::Ok, true) => found.acked_checked += 1,
            (Outcome::Ok, false) => {
                found.acked_checked += 1;
                found.lost += 1;
                lost.push(i);
            }
            (Outcome::Refused, true) => found.phantom += 1,
            (Outcome::Unknown, true) => found.unknown_applied += 1,
            (Outcome::Unknown, false) => found.unknown_absent += 1,
            (Outcome::Refused, false) | (Outcome::Pending, _) => {}
        }
    }
    found.foreign += (fields.len() - named) as u64;
}

/// The hash field write `seq` sets: its decimal sequence number.
pub fn field_name(seq: u64) -> String {
    seq.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::burst::replay::{payload, Record};

    fn run(outcomes: &[Outcome]) -> PathRun {
        PathRun {
            records: outcomes
                .iter()
                .map(|&outcome| Record {
                    outcome,
                    ..Record::default()
                })
                .collect(),
            ..PathRun::default()
        }
    }

    fn hash(seqs: &[u64]) -> HashMap<Vec<u8>, Vec<u8>> {
        seqs.iter()
            .map(|&s| {
                let mut v = Vec::new();
                payload(s, 32, &mut v);
                (field_name(s).into_bytes(), v)
            })
            .collect()
    }

    #[test]
    fn every_write_is_judged_by_what_its_caller_was_told() {
        use Outcome::{Ok, Refused, Unknown};
        let run = run(&[Ok, Ok, Refused, Refused, Unknown, Unknown, Ok]);
        let mut found = ReadBack::default();
        let mut lost = Vec::new();
        // Write 1 (acknowledged) is missing even though a later write to the key (6) landed:
        // the last-value check this replaces could not see that.
        judge(
            &mut found,
            &mut lost,
            &[0, 1, 2, 3, 4, 5, 6],
            &hash(&[0, 3, 4, 6, 99]),
            &run,
        );
        assert_eq!(
            found,
            ReadBack {
                keys_checked: 0,
                acked_checked: 3,
                lost: 1,
                phantom: 1,
                unknown_applied: 1,
                unknown_absent: 1,
                foreign: 1,
            }
        );
        assert_eq!(lost, [1], "the lost write by index");
    }

    #[test]
    fn a_field_holding_another_writes_payload_is_lost() {
        let run = run(&[Outcome::Ok]);
        let mut fields = hash(&[7]);
        let wrong = fields.remove(b"7".as_slice()).expect("field 7");
        fields.insert(b"0".to_vec(), wrong);
        let mut found = ReadBack::default();
        let mut lost = Vec::new();
        judge(&mut found, &mut lost, &[0], &fields, &run);
        assert_eq!((found.acked_checked, found.lost, found.foreign), (1, 1, 0));
        assert_eq!(lost, [0]);
    }

    #[test]
    fn hgetall_replies_parse_in_both_protocols() {
        let bulk = |s: &str| Value::Bulk(s.as_bytes().to_vec());
        let resp2 = Value::Array(vec![bulk("1"), bulk("a"), bulk("2"), bulk("b")]);
        let resp3 = Value::Map(vec![(bulk("1"), bulk("a")), (bulk("2"), bulk("b"))]);
        for reply in [resp2, resp3] {
            let fields = hash_fields(reply).expect("a hash");
            assert_eq!(fields.len(), 2);
            assert_eq!(fields[b"2".as_slice()], b"b");
        }
        assert!(hash_fields(Value::Array(vec![bulk("odd")])).is_err());
        assert!(hash_fields(Value::Int(3)).is_err());
    }
}
