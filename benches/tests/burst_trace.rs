//! The `burst` trace generator (seeded, right mean, heavy tail) and the CSV trace reader.
#![cfg(not(feature = "loom"))]

use std::io::Cursor;
use std::time::Duration;

use slotline_bench::burst::trace::{user_key, Shape, Trace, TraceError, TraceSpec};

const HEAVY: Shape = Shape::Heavy { burst_factor: 10.0 };

fn spec(shape: Shape, seed: u64) -> TraceSpec {
    TraceSpec {
        duration: Duration::from_secs(10),
        rate: 20_000.0,
        shape,
        seed,
        users: 100_000,
        zipf_s: 1.0,
    }
}

#[test]
fn same_seed_gives_the_same_trace_and_another_seed_does_not() {
    for shape in [HEAVY, Shape::Poisson] {
        let a = spec(shape, 7).generate();
        let b = spec(shape, 7).generate();
        let c = spec(shape, 8).generate();
        assert_eq!(a, b, "{shape:?}: same seed, different traces");
        assert_ne!(
            a.events, c.events,
            "{shape:?}: different seeds, same events"
        );
    }
}

#[test]
fn events_are_sorted_within_the_duration_and_name_valid_keys() {
    let t = spec(HEAVY, 1).generate();
    assert!(t.events.windows(2).all(|w| w[0].t_us <= w[1].t_us));
    assert!(t.events.iter().all(|e| e.t_us < 10_000_000));
    assert!(t.events.iter().all(|e| (e.key as usize) < t.keys.len()));
    assert!(t.events.iter().all(|e| (40..=72).contains(&e.bytes)));
    assert_eq!(t.key_of(&t.events[0]), user_key(t.events[0].key));
    assert_eq!(user_key(42), "geo:{user42}");
}

#[test]
fn mean_rate_is_the_requested_rate_for_both_shapes() {
    for seed in 1..=5 {
        for shape in [HEAVY, Shape::Poisson] {
            let t = spec(shape, seed).generate();
            let mean = t.events.len() as f64 / 10.0;
            assert!(
                (mean - 20_000.0).abs() < 0.03 * 20_000.0,
                "{shape:?} seed {seed}: mean {mean}/s, wanted 20000/s ± 3 %"
            );
        }
    }
}

#[test]
fn heavy_trace_has_a_std_dev_several_times_its_mean_and_poisson_does_not() {
    for seed in 1..=5 {
        let r = spec(HEAVY, seed).generate().rate_stats(10);
        let ratio = r.std_dev / r.mean;
        assert!(
            ratio >= 1.5,
            "seed {seed}: heavy std dev / mean = {ratio:.2}, wanted >= 1.5"
        );
    }
    // Poisson at 200 events per 10 ms bin: std dev / mean = 1/sqrt(200) ≈ 0.071.
    let r = spec(Shape::Poisson, 1).generate().rate_stats(10);
    let ratio = r.std_dev / r.mean;
    assert!(
        (0.055..0.09).contains(&ratio),
        "poisson std dev / mean = {ratio:.3}, wanted ≈ 0.071"
    );
}

#[test]
fn heavy_trace_has_a_heavy_tail_of_busy_bins() {
    for seed in 1..=5 {
        let heavy = spec(HEAVY, seed).generate().rate_stats(10);
        assert!(
            heavy.top1pct_share > 0.08,
            "seed {seed}: busiest 1 % of bins hold {:.3} of events, wanted > 0.08",
            heavy.top1pct_share
        );
        assert!(
            heavy.max > 8.0 * heavy.mean,
            "seed {seed}: max bin {:.0}/s vs mean {:.0}/s, wanted > 8×",
            heavy.max,
            heavy.mean
        );
    }
    let poisson = spec(Shape::Poisson, 1).generate().rate_stats(10);
    assert!(poisson.top1pct_share < 0.015, "{poisson:?}");
    assert!(poisson.max < 1.5 * poisson.mean, "{poisson:?}");
}

#[test]
fn bigger_burst_factor_means_taller_bursts() {
    let mut s = spec(HEAVY, 3);
    s.shape = Shape::Heavy { burst_factor: 4.0 };
    let low = s.generate().rate_stats(10);
    s.shape = Shape::Heavy { burst_factor: 20.0 };
    let high = s.generate().rate_stats(10);
    assert!(
        high.std_dev > low.std_dev,
        "factor 20: {high:?}\nfactor 4: {low:?}"
    );
}

#[test]
fn zipf_popularity_makes_a_few_users_hot() {
    let t = spec(Shape::Poisson, 1).generate();
    let mut counts = vec![0u64; t.keys.len()];
    for e in &t.events {
        counts[e.key as usize] += 1;
    }
    let hottest = counts
        .iter()
        .enumerate()
        .max_by_key(|&(_, c)| *c)
        .map(|(i, _)| i);
    assert_eq!(hottest, Some(0), "user 0 should be the hottest");
    let top_1pct: u64 = counts[..1000].iter().sum();
    let share = top_1pct as f64 / t.events.len() as f64;
    assert!(
        share > 0.4,
        "top 1 % of users wrote {share:.2} of events, wanted > 0.4"
    );

    let mut uniform = spec(Shape::Poisson, 1);
    uniform.zipf_s = 0.0;
    let u = uniform.generate();
    let low: usize = u.events.iter().filter(|e| e.key < 1000).count();
    assert!((low as f64 / u.events.len() as f64) < 0.02);
}

#[test]
fn csv_round_trips() {
    let mut s = spec(HEAVY, 2);
    s.duration = Duration::from_secs(1);
    let t = s.generate();
    let mut csv = Vec::new();
    t.write_csv(&mut csv).unwrap();
    let back = Trace::read_csv(Cursor::new(&csv), "rt").unwrap();
    assert_eq!(back.events.len(), t.events.len());
    for (a, b) in t.events.iter().zip(&back.events) {
        assert_eq!(
            (a.t_us, t.key_of(a), a.bytes),
            (b.t_us, back.key_of(b), b.bytes)
        );
    }
}

#[test]
fn csv_reader_accepts_header_comments_blank_lines_and_crlf() {
    let csv = "t_us,key,bytes\r\n# recorded on a quiet day\n\n0,geo:{user1},48\n0,geo:{user2},50\r\n7,geo:{user1},1\n";
    let t = Trace::read_csv(Cursor::new(csv), "ok").unwrap();
    assert_eq!(t.events.len(), 3);
    assert_eq!(t.keys, ["geo:{user1}", "geo:{user2}"]);
    assert_eq!(t.events[2].key, 0);
    assert_eq!(t.span_us(), 8);
}

fn read_err(csv: &str) -> TraceError {
    Trace::read_csv(Cursor::new(csv), "bad").expect_err("a bad trace must be refused")
}

#[test]
fn csv_reader_names_the_line_of_an_unsorted_row() {
    let e = read_err("t_us,key,bytes\n10,a,5\n20,b,5\n15,c,5\n");
    assert!(
        matches!(
            e,
            TraceError::Unsorted {
                line: 4,
                t_us: 15,
                previous: 20
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().starts_with("line 4:"), "{e}");
}

#[test]
fn csv_reader_names_the_line_of_a_bad_row() {
    let cases = [
        ("0,a,5\n1,b\n", 2, "expected 3 fields"),
        ("0,a,5\n1,b,5,6\n", 2, "expected 3 fields"),
        ("x,a,5\n", 1, "t_us `x`"),
        ("-3,a,5\n", 1, "t_us `-3`"),
        ("0,a,5\n1,,5\n", 2, "key is empty"),
        ("0,a,0\n", 1, "bytes `0`"),
        ("0,a,2000000\n", 1, "bytes `2000000`"),
        ("0,a,big\n", 1, "bytes `big`"),
    ];
    for (csv, line, text) in cases {
        let e = read_err(csv);
        match &e {
            TraceError::BadRow { line: l, reason } => {
                assert_eq!(*l, line, "{csv:?}: {e}");
                assert!(reason.contains(text), "{csv:?}: `{reason}` lacks `{text}`");
            }
            other => panic!("{csv:?}: expected BadRow, got {other:?}"),
        }
        assert!(e.to_string().starts_with(&format!("line {line}:")), "{e}");
    }
}

#[test]
fn csv_reader_refuses_an_empty_trace() {
    assert!(matches!(read_err(""), TraceError::Empty));
    assert!(matches!(
        read_err("t_us,key,bytes\n# nothing\n"),
        TraceError::Empty
    ));
}
