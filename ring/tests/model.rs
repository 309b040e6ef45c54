//! Random single-threaded operation sequences checked against a `VecDeque` model.
#![cfg(not(all(feature = "loom", loom)))]

use std::collections::VecDeque;

use proptest::prelude::*;
use slotline_ring::{Full, Ring};

#[derive(Debug, Clone)]
enum Op {
    Push(u32),
    Pop,
    Force(u32),
    PopBatch(usize),
    PushBatch(Vec<u32>),
    PushSlice(Vec<u32>),
    Peek,
    PushBelow(u32, usize),
    Check,
}

fn op(cap: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u32>().prop_map(Op::Push),
        4 => Just(Op::Pop),
        2 => any::<u32>().prop_map(Op::Force),
        2 => (0..cap + 3).prop_map(Op::PopBatch),
        2 => proptest::collection::vec(any::<u32>(), 0..cap + 3).prop_map(Op::PushBatch),
        2 => proptest::collection::vec(any::<u32>(), 0..cap + 3).prop_map(Op::PushSlice),
        2 => (any::<u32>(), 0..cap + 2).prop_map(|(v, l)| Op::PushBelow(v, l)),
        1 => Just(Op::Peek),
        1 => Just(Op::Check),
    ]
}

/// Operations per case; Miri runs fewer, shorter cases.
const MAX_OPS: usize = if cfg!(miri) { 40 } else { 300 };

fn case() -> impl Strategy<Value = (usize, Vec<Op>)> {
    let cap = prop_oneof![1..=17usize, Just(31), Just(64), Just(100), Just(1000)];
    cap.prop_flat_map(|cap| {
        (
            Just(cap),
            proptest::collection::vec(op(cap.min(40)), 0..MAX_OPS),
        )
    })
}

/// Runs `ops` on a ring of `cap` slots and on the model, comparing after every step.
fn check(cap: usize, ops: &[Op]) {
    let mut ring = Ring::new(cap);
    let mut model: VecDeque<u32> = VecDeque::new();
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Push(v) => {
                let got = ring.try_push(*v);
                if model.len() < cap {
                    model.push_back(*v);
                    assert_eq!(got, Ok(()), "step {step}: {op:?}");
                } else {
                    assert_eq!(got, Err(Full(*v)), "step {step}: {op:?}");
                }
            }
            Op::Pop => assert_eq!(ring.try_pop(), model.pop_front(), "step {step}"),
            Op::Force(v) => {
                let evicted = if model.len() == cap {
                    model.pop_front()
                } else {
                    None
                };
                model.push_back(*v);
                assert_eq!(ring.force_push(*v), evicted, "step {step}: {op:?}");
            }
            Op::PopBatch(max) => {
                let mut out = Vec::new();
                let n = ring.pop_batch(*max, &mut out);
                let want: Vec<u32> = model.drain(..(*max).min(model.len())).collect();
                assert_eq!(n, want.len(), "step {step}: {op:?}");
                assert_eq!(out, want, "step {step}: {op:?}");
            }
            Op::PushBatch(items) => {
                let mut rest = items.clone();
                let n = ring.push_batch(&mut rest);
                let fit = items.len().min(cap - model.len());
                assert_eq!(n, fit, "step {step}: {op:?}");
                assert_eq!(rest, items[fit..], "step {step}: {op:?}");
                model.extend(&items[..fit]);
            }
            Op::PushSlice(items) => {
                let n = ring.push_slice(items);
                let fit = items.len().min(cap - model.len());
                assert_eq!(n, fit, "step {step}: {op:?}");
                model.extend(&items[..fit]);
            }
            Op::PushBelow(v, limit) => {
                let got = ring.try_push_below(*v, *limit);
                if model.len() < *limit && model.len() < cap {
                    model.push_back(*v);
                    assert_eq!(got, Ok(()), "step {step}: {op:?}");
                } else {
                    assert_eq!(got, Err(Full(*v)), "step {step}: {op:?}");
                }
            }
            Op::Peek => assert_eq!(ring.peek(), model.front(), "step {step}"),
            Op::Check => {}
        }
        assert_eq!(ring.len(), model.len(), "len after step {step}: {op:?}");
        assert_eq!(ring.is_empty(), model.is_empty(), "step {step}");
        assert_eq!(ring.is_full(), model.len() == cap, "step {step}");
        assert_eq!(
            ring.fill_permille() as usize,
            model.len() * 1000 / cap,
            "step {step}"
        );
    }
    let mut rest = Vec::new();
    ring.pop_batch(usize::MAX, &mut rest);
    assert_eq!(rest, model.into_iter().collect::<Vec<_>>());
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 8 } else { 512 },
        // Miri's isolation forbids the file lookup that failure persistence does.
        failure_persistence: if cfg!(miri) {
            None
        } else {
            ProptestConfig::default().failure_persistence
        },
        ..ProptestConfig::default()
    })]

    #[test]
    fn ring_matches_vecdeque_model((cap, ops) in case()) {
        check(cap, &ops);
    }
}

#[test]
fn every_capacity_fills_and_empties_over_many_laps() {
    for cap in 1..=if cfg!(miri) { 12 } else { 70 } {
        let ring = Ring::new(cap);
        for lap in 0..3u32 {
            for i in 0..cap as u32 {
                ring.try_push(lap * 1000 + i).unwrap();
            }
            assert!(ring.is_full(), "cap {cap}");
            for i in 0..cap as u32 {
                assert_eq!(ring.try_pop(), Some(lap * 1000 + i), "cap {cap}");
            }
            assert!(ring.is_empty(), "cap {cap}");
        }
    }
}
