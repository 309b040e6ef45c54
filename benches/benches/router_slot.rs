//! Key → slot: slotline's `key_slot` against the Rust peers, in one process.
//!
//! Every implementation computes the whole Redis slot (hash-tag scan + CRC-16/XMODEM + mask):
//!
//! | id | implementation |
//! |---|---|
//! | `0-slotline` | `slotline_router::key_slot` (fused scan + fixed-cost table CRC up to 32 B; above, vectorised scan + PCLMULQDQ/PMULL folding) |
//! | `0b-slotline general path` | (A/B mode only) slotline's scan-then-`crc16` path at every length, as `key_slot` takes it above 32 B |
//! | `1-slotline-table` | slotline's scan with its portable slice-by-16 table forced |
//! | `2-crc-table16` | `crc` 3.x `Crc<u16, Table<16>>` (slice-by-16) with the byte-loop tag rule |
//! | `3-redis-rs` | `redis::cluster_routing::Slot::for_key` (redis-rs 1.x, `cluster` feature) |
//! | `4-crc16-crate` | `crc16::State::<XMODEM>::calculate` with the byte-loop tag rule |
//! | `5-crc-table1` | `crc` 3.x default `Crc<u16>` (one 256-entry table) with the byte-loop tag rule |
//!
//! Groups are key sizes (`16B`, `64B`, `256B`, `1KiB`, and two 24-byte shapes with a 12-byte
//! hash tag: `24B-tagged` like `{user:1234567}:cart:0042`, `24B-geo` like
//! `geo:{user:1234567}:loc:4`); each iteration computes the slot of one key, cycling through 16
//! keys of the group (random bytes without braces for the plain sizes), so the time is ns per key
//! and the throughput is bytes of key per second.
//!
//! Criterion's groups run one after the other, so on a noisy machine their ratios drift. Set
//! `SLOTLINE_BENCH_AB=1` for the interleaved mode instead: many short rounds, every
//! implementation once per round in rotating order, and the median of the per-round ratios to
//! `2-crc-table16` (with a same-vs-same control row to show the noise). It also times the two
//! halves of the work apart: the scan alone, and the CRC alone of the bytes that are hashed (the
//! tag, for tagged keys), with slotline's CRC-only ratio to `crc`'s `Table<16>` on the same bytes,
//! so that the scan and the CRC are credited separately. A summary closes the run.
//!
//! Figures depend on the CPU (carry-less multiplier, vector width, cache), so both modes print
//! the CPU model first.
//!
//! ```text
//! cargo bench -p slotline-bench --bench router_slot
//! SLOTLINE_BENCH_AB=1 cargo bench -p slotline-bench --bench router_slot
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use crc::{Crc, Table, CRC_16_XMODEM};
use criterion::{measurement::WallTime, BenchmarkGroup, Criterion, Throughput};

/// `crc`'s slice-by-16 table for CRC-16/XMODEM.
static CRC_TABLE16: Crc<u16, Table<16>> = Crc::<u16, Table<16>>::new(&CRC_16_XMODEM);
/// `crc`'s default single table.
static CRC_TABLE1: Crc<u16, Table<1>> = Crc::<u16, Table<1>>::new(&CRC_16_XMODEM);

/// The hash-tag rule written the obvious way (as redis-rs does): byte loops.
fn tag_bytewise(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    match key[open + 1..].iter().position(|&b| b == b'}') {
        Some(close) if close > 0 => &key[open + 1..open + 1 + close],
        _ => key,
    }
}

fn slotline(key: &[u8]) -> u16 {
    slotline_router::key_slot(key).get()
}

fn slotline_table(key: &[u8]) -> u16 {
    slotline_router::crc16_paths::table(slotline_router::hash_tag(key)) & 0x3FFF
}

fn crc_table16(key: &[u8]) -> u16 {
    CRC_TABLE16.checksum(tag_bytewise(key)) & 0x3FFF
}

fn redis_rs(key: &[u8]) -> redis::cluster_routing::Slot {
    redis::cluster_routing::Slot::for_key(key)
}

fn crc16_crate(key: &[u8]) -> u16 {
    crc16::State::<crc16::XMODEM>::calculate(tag_bytewise(key)) & 0x3FFF
}

fn crc_table1(key: &[u8]) -> u16 {
    CRC_TABLE1.checksum(tag_bytewise(key)) & 0x3FFF
}

/// Deterministic random keys without braces (the whole key is hashed: the worst case).
fn keys(len: usize, count: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    (0..count)
        .map(|_| {
            (0..len)
                .map(|_| match (next() >> 24) as u8 {
                    b'{' | b'}' => b'x',
                    b => b,
                })
                .collect()
        })
        .collect()
}

/// Keys like `{user:1234567}:cart:0042`: 24 bytes with a 12-byte tag.
fn tagged_keys(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| format!("{{user:{:07}}}:cart:{:04}", i * 7919, i % 10_000).into_bytes())
        .collect()
}

/// Keys like `geo:{user:1234567}:loc:4`: 24 bytes, the 12-byte tag in the middle.
fn geo_keys(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| format!("geo:{{user:{:07}}}:loc:{}", i * 7919, i % 10).into_bytes())
        .collect()
}

/// The CPU model as `/proc/cpuinfo` names it, or `unknown`.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The machine line every run starts with.
fn print_machine() {
    println!(
        "CPU: {}, {} logical cores; CRC path for long keys: {}; short-key scan: {}",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        slotline_router::crc16_paths::active(),
        slotline_router::slot_paths::short_scan(),
    );
}

/// Sanity check before timing: every implementation agrees with the bitwise reference.
fn sanity_check(sets: &[(&str, Vec<Vec<u8>>)]) {
    let mut fixed: Vec<Vec<u8>> = [
        &b"foo"[..],
        b"{user1000}.following",
        b"foo{}{bar}",
        b"}{a}",
        b"a{b",
        b"",
    ]
    .iter()
    .map(|k| k.to_vec())
    .collect();
    fixed.extend(sets.iter().flat_map(|(_, ks)| ks.iter().cloned()));
    for key in &fixed {
        let want = slotline_router::key_slot_reference(key);
        assert_eq!(slotline(key), want, "slotline, key {key:?}");
        assert_eq!(slotline_table(key), want, "slotline table, key {key:?}");
        assert_eq!(crc_table16(key), want, "crc Table<16>, key {key:?}");
        assert_eq!(
            Some(redis_rs(key)),
            redis::cluster_routing::Slot::new(want),
            "redis-rs, key {key:?}"
        );
        assert_eq!(crc16_crate(key), want, "crc16 crate, key {key:?}");
        assert_eq!(crc_table1(key), want, "crc Table<1>, key {key:?}");
        let paths = slotline_router::slot_paths::general(key);
        assert_eq!(paths, want, "slotline general path, key {key:?}");
        if let Some(short) = slotline_router::slot_paths::short(key) {
            assert_eq!(short, want, "slotline short-key path, key {key:?}");
        }
    }
    assert_eq!(slotline(b"foo"), 12182);
}

/// One benchmark: the slot of one key per iteration, cycling through `keys`.
fn bench_one<R>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    keys: &[Vec<u8>],
    f: fn(&[u8]) -> R,
) {
    group.bench_function(id, |b| {
        let mut i = 0usize;
        b.iter(|| {
            let key = &keys[i & 15];
            i = i.wrapping_add(1);
            f(black_box(key))
        });
    });
}

fn criterion_groups(c: &mut Criterion, sets: &[(&str, Vec<Vec<u8>>)]) {
    for (name, keys) in sets {
        let mut group = c.benchmark_group(format!("router_slot/{name}"));
        group.throughput(Throughput::Bytes(keys[0].len() as u64));
        bench_one(&mut group, "0-slotline", keys, slotline);
        bench_one(&mut group, "1-slotline-table", keys, slotline_table);
        bench_one(&mut group, "2-crc-table16", keys, crc_table16);
        bench_one(&mut group, "3-redis-rs", keys, redis_rs);
        bench_one(&mut group, "4-crc16-crate", keys, crc16_crate);
        bench_one(&mut group, "5-crc-table1", keys, crc_table1);
        group.finish();
    }
}

/// ns per key of `f` over `reps` passes through `keys`, clock read around the loop.
fn time_per_key<R>(keys: &[Vec<u8>], reps: usize, f: fn(&[u8]) -> R) -> f64 {
    let start = Instant::now();
    for _ in 0..reps {
        for key in keys {
            black_box(f(black_box(key)));
        }
    }
    start.elapsed().as_secs_f64() * 1e9 / (reps * keys.len()) as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// What an implementation is given: the whole key, or only the bytes that are hashed.
#[derive(Clone, Copy, PartialEq)]
enum Input {
    Key,
    Hashed,
}

/// Interleaved A/B rounds: every implementation once per round, rotating the order, then the
/// median per-round ratio against `2-crc-table16` (for the CRC-only rows, `9-crc-table16 crc
/// only` on the same bytes).
fn ab_mode(sets: &[(&str, Vec<Vec<u8>>)]) {
    type Imp = (&'static str, Input, fn(&[u8]) -> u64);
    let imps: [Imp; 11] = [
        ("0-slotline", Input::Key, |k| u64::from(slotline(k))),
        // The general path alone (scan, then `crc16`), as `key_slot` takes it above 32 bytes.
        ("0b-slotline general path", Input::Key, |k| {
            u64::from(slotline_router::slot_paths::general(k))
        }),
        ("1-slotline-table", Input::Key, |k| {
            u64::from(slotline_table(k))
        }),
        ("2-crc-table16", Input::Key, |k| u64::from(crc_table16(k))),
        ("2b-crc-table16 (control)", Input::Key, |k| {
            u64::from(crc_table16(k))
        }),
        ("3-redis-rs", Input::Key, |k| {
            black_box(redis_rs(k));
            0
        }),
        ("4-crc16-crate", Input::Key, |k| u64::from(crc16_crate(k))),
        ("5-crc-table1", Input::Key, |k| u64::from(crc_table1(k))),
        // The two halves of the work on their own: the scan of the whole key, and the CRC of
        // the bytes that are hashed (the tag, for tagged keys).
        ("6-slotline scan only", Input::Key, |k| {
            slotline_router::hash_tag(k).len() as u64
        }),
        ("7-slotline crc only", Input::Hashed, |k| {
            u64::from(slotline_router::crc16(k))
        }),
        ("8-crc-table16 crc only", Input::Hashed, |k| {
            u64::from(CRC_TABLE16.checksum(k))
        }),
    ];
    let (key_base, crc_base, crc_slotline) = (3, 10, 9);
    let rounds = 31;
    print_machine();
    println!(
        "interleaved A/B: {rounds} rounds, median per-round ratio; baseline 2-crc-table16 \
         (CRC-only rows: 8-crc-table16 crc only, on the same hashed bytes)"
    );
    // (set, key_slot ratio, CRC-only ratio) for the summary.
    let mut summary = Vec::new();
    for (name, keys) in sets {
        let len = keys[0].len();
        let hashed: Vec<Vec<u8>> = keys
            .iter()
            .map(|k| slotline_router::hash_tag(k).to_vec())
            .collect();
        // About 2 ms per implementation per round.
        let reps = (2_000_000 / (len * keys.len() + 200)).max(1);
        let mut times = vec![Vec::with_capacity(rounds); imps.len()];
        for round in 0..rounds {
            for j in 0..imps.len() {
                let idx = (j + round) % imps.len();
                let (_, input, f) = imps[idx];
                let inputs = if input == Input::Key { keys } else { &hashed };
                times[idx].push(time_per_key(inputs, reps, f));
            }
        }
        let ratio = |i: usize, base: usize| {
            let mut r: Vec<f64> = times[base]
                .iter()
                .zip(&times[i])
                .map(|(b, t)| b / t)
                .collect();
            median(&mut r)
        };
        println!("\n{name} ({len} B keys, {} B hashed)", hashed[0].len());
        println!(
            "{:<26} {:>10} {:>9} {:>12}",
            "id", "ns/key", "GB/s", "speed-up"
        );
        for (i, (id, input, _)) in imps.iter().enumerate() {
            let base = if *input == Input::Key {
                key_base
            } else {
                crc_base
            };
            let bytes = if *input == Input::Key {
                len
            } else {
                hashed[0].len()
            };
            let ns = median(&mut times[i].clone());
            println!(
                "{id:<26} {ns:>10.2} {:>9.2} {:>11.2}x",
                bytes as f64 / ns,
                ratio(i, base)
            );
        }
        summary.push((name, ratio(0, key_base), ratio(crc_slotline, crc_base)));
    }
    println!("\nsummary: slotline vs crc Table<16> (median per-round ratio)");
    println!("{:<12} {:>10} {:>10}", "keys", "key_slot", "CRC only");
    for (name, key, crc) in summary {
        println!("{name:<12} {key:>9.2}x {crc:>9.2}x");
    }
}

fn main() {
    let sets: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("16B", keys(16, 16, 1)),
        ("64B", keys(64, 16, 2)),
        ("256B", keys(256, 16, 3)),
        ("1KiB", keys(1024, 16, 4)),
        ("24B-tagged", tagged_keys(16)),
        ("24B-geo", geo_keys(16)),
    ];
    sanity_check(&sets);
    if std::env::var_os("SLOTLINE_BENCH_AB").is_some() {
        ab_mode(&sets);
        return;
    }
    print_machine();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    criterion_groups(&mut c, &sets);
    c.final_summary();
}
