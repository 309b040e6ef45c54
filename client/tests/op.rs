#![cfg(not(feature = "loom"))]
//! `Op` and `Completion`: exactly-once completion under races, the blocking and async waits,
//! deadlines, and what dropping either half does.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Context, Waker};
use std::thread;
use std::time::{Duration, Instant};

use slotline_client::op::{Completion, Op};
use slotline_client::{BatchFuture, CommitError, CommitFuture, ReplyFuture};
use slotline_testkit::exec::{block_on, run_woken};

fn in_ms(ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(ms)
}

fn assert_send<T: Send>() {}
fn assert_sync<T: Sync>() {}

#[test]
fn both_halves_and_every_client_future_are_send() {
    assert_send::<Op>();
    assert_sync::<Op>();
    assert_send::<Completion>();
    assert_sync::<Completion>();
    // The futures callers hold across `.await` in multi-threaded runtimes.
    assert_send::<CommitFuture>();
    assert_send::<ReplyFuture>();
    assert_send::<BatchFuture>();
}

#[test]
fn outcome_completed_before_the_wait_is_returned() {
    let (op, completion) = Op::set(b"k", b"v", in_ms(1000));
    assert!(op.claim_for_send());
    assert!(op.complete(Err(CommitError::Server {
        message: "WRONGTYPE x".into()
    })));
    assert_eq!(
        completion.wait(),
        Err(CommitError::Server {
            message: "WRONGTYPE x".into()
        })
    );
}

#[test]
fn blocking_wait_wakes_when_another_thread_completes() {
    let (op, completion) = Op::set(b"k", b"v", in_ms(5000));
    let writer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        assert!(op.claim_for_send());
        op.complete(Ok(()))
    });
    let started = Instant::now();
    assert_eq!(completion.wait(), Ok(()));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        writer.join().unwrap(),
        "the caller was waiting, so it saw the outcome"
    );
}

#[test]
fn deadline_before_the_claim_means_not_applied_and_never_sent() {
    let (op, completion) = Op::set(b"k", b"v", in_ms(10));
    assert_eq!(
        completion.wait(),
        Err(CommitError::DeadlineExceeded {
            may_have_been_applied: false
        })
    );
    assert!(op.is_abandoned());
    assert!(!op.claim_for_send(), "an abandoned op must not be sent");
    assert!(!op.complete(Ok(())), "a late outcome is discarded");
}

#[test]
fn deadline_after_the_claim_means_may_have_been_applied() {
    let (op, completion) = Op::set(b"k", b"v", in_ms(10));
    assert!(op.claim_for_send());
    assert_eq!(
        completion.wait(),
        Err(CommitError::DeadlineExceeded {
            may_have_been_applied: true
        })
    );
    assert!(
        !op.complete(Ok(())),
        "a late outcome is discarded without panicking"
    );
}

#[test]
fn wait_until_can_give_up_before_the_ops_own_deadline() {
    let (op, completion) = Op::set(b"k", b"v", in_ms(60_000));
    let started = Instant::now();
    let err = completion.wait_until(in_ms(20)).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!err.may_have_been_applied());
    assert!(!op.claim_for_send());
}

#[test]
fn dropping_an_op_unsent_completes_the_caller_with_closed() {
    let (op, completion) = Op::set(b"k", b"v", in_ms(5000));
    drop(op);
    assert_eq!(completion.wait(), Err(CommitError::Closed));
}

#[test]
fn dropping_a_sent_op_reports_a_lost_connection_that_may_have_applied() {
    let (op, completion) = Op::set(b"k", b"v", in_ms(5000));
    assert!(op.claim_for_send());
    drop(op);
    assert_eq!(
        completion.wait(),
        Err(CommitError::ConnectionLost {
            may_have_been_applied: true
        })
    );
}

#[test]
fn dropping_the_completion_abandons_an_unsent_op() {
    let (op, completion) = Op::set(b"k", b"v", in_ms(5000));
    drop(completion);
    assert!(op.is_abandoned());
    assert!(!op.claim_for_send());
    assert!(!op.complete(Ok(())));
}

#[test]
fn future_resolves_when_another_thread_completes() {
    let (op, completion) = Op::set(b"k", b"v", in_ms(5000));
    let writer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        assert!(op.claim_for_send());
        op.complete(Ok(()))
    });
    assert_eq!(block_on(completion), Ok(()));
    assert!(writer.join().unwrap());
}

#[test]
fn future_polled_after_the_deadline_resolves_with_deadline_exceeded() {
    let (op, completion) = Op::set(b"k", b"v", in_ms(20));
    // Nobody completes it; the first poll already comes after the deadline.
    thread::sleep(Duration::from_millis(30));
    assert_eq!(
        block_on(completion),
        Err(CommitError::DeadlineExceeded {
            may_have_been_applied: false
        })
    );
    assert!(!op.claim_for_send());
}

/// Polls `inner`; after its first poll (which registered the executor's waker) sends `go`
/// whether that poll returned `Pending` and when it ended, so whatever the other thread then
/// does happens to a future that is already waiting.
struct SignalAfterFirstPoll<F> {
    inner: F,
    go: Option<std::sync::mpsc::Sender<(bool, Instant)>>,
}

impl<F: Future + Unpin> Future for SignalAfterFirstPoll<F> {
    type Output = F::Output;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let out = std::pin::Pin::new(&mut self.inner).poll(cx);
        if let Some(go) = self.go.take() {
            go.send((out.is_pending(), Instant::now()))
                .expect("the writer waits");
        }
        out
    }
}

#[test]
fn future_is_woken_by_the_writers_expiry_completion() {
    // The first poll must come before the deadline: a future first polled after it resolves by
    // itself, and the attempt proves nothing. A loaded machine can delay that poll past a short
    // deadline; the attempt is then repeated with a longer one (the first is short so that an
    // idle run stays quick).
    for deadline in [300, 3_000, 15_000] {
        if woken_by_the_writers_expiry_completion(Duration::from_millis(deadline)) {
            return;
        }
    }
    panic!("the first poll came after the deadline in every attempt, the last with 15 s");
}

/// One attempt of [`future_is_woken_by_the_writers_expiry_completion`]. Returns `false`, having
/// checked only that the future resolved by itself at its deadline, if its first poll came
/// after the deadline.
fn woken_by_the_writers_expiry_completion(deadline: Duration) -> bool {
    let (op, completion) = Op::set(b"k", b"v", Instant::now() + deadline);
    let expires = op.deadline();
    let (go, wait_go) = std::sync::mpsc::channel::<(bool, Instant)>();
    let writer = thread::spawn(move || {
        let (pending, polled) = wait_go.recv().expect("first poll");
        if !pending {
            return Err(polled);
        }
        // What a writer does with an op it finds expired in its ring.
        let limit = Instant::now() + Duration::from_secs(30);
        while !op.is_expired(Instant::now()) {
            assert!(Instant::now() < limit, "the op never expired");
            thread::sleep(Duration::from_millis(1));
        }
        Ok(op.complete(Err(CommitError::DeadlineExceeded {
            may_have_been_applied: false,
        })))
    });
    // The strict executor polls again only when woken: nothing but the writer's completion
    // can wake this future (an `Op` has no timer of its own).
    let run = run_woken(
        SignalAfterFirstPoll {
            inner: completion,
            go: Some(go),
        },
        Duration::from_secs(30),
    )
    .expect("the writer's completion did not wake the future");
    assert_eq!(
        run.output,
        Err(CommitError::DeadlineExceeded {
            may_have_been_applied: false
        })
    );
    let delivered = match writer.join().unwrap() {
        Ok(delivered) => delivered,
        Err(polled) => {
            // Ready at its first poll: right only if that poll ended past the deadline.
            assert!(
                polled >= expires,
                "the future resolved at its first poll, {:?} before its deadline",
                expires - polled
            );
            assert_eq!(run.polls, 1);
            return false;
        }
    };
    // One poll that registered the waker, one wake-up by the writer's completion, one poll
    // that found the outcome: a future that spun or woke itself would show more.
    assert_eq!(
        (run.polls, run.wakes),
        (2, 1),
        "polls and wakes of a future woken once by its writer"
    );
    assert!(delivered, "the writer's completion was delivered");
    true
}

#[test]
fn dropped_future_abandons_the_op_without_panicking() {
    let (op, completion) = Op::set(b"k", b"v", in_ms(5000));
    {
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut fut = Box::pin(completion);
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        drop(fut);
    }
    assert!(!op.claim_for_send());
    assert!(!op.complete(Ok(())));
}

/// Many writer threads complete ops while many caller threads wait on them, blocking or async,
/// with deadlines that land in the middle of the completions. Every caller must get exactly one
/// outcome, consistent with what the writer saw: if the writer's completion was delivered the
/// caller got `Ok`; if the caller timed out, either the writer's claim failed (never sent) or
/// the caller was told the write may have been applied.
#[test]
fn exactly_once_under_racing_completions_and_deadlines() {
    const OPS: usize = 4000;
    const WRITERS: usize = 4;
    const CALLERS: usize = 4;
    let mut ops = Vec::with_capacity(OPS);
    let mut completions = Vec::with_capacity(OPS);
    for i in 0..OPS {
        // Deadlines spread over 1-39 ms, where writers work through the ops over a similar
        // span and the outcome is a race; the rest are certain: already passed when the writers
        // start (never sent), or a minute away (always delivered).
        let deadline = match i % 41 {
            0 => Instant::now(),
            40 => in_ms(60_000),
            m => in_ms(m as u64),
        };
        let (op, completion) = Op::set(format!("k{i}").as_bytes(), b"v", deadline);
        ops.push(op);
        completions.push((i, completion));
    }
    let delivered = Arc::new((0..OPS).map(|_| AtomicUsize::new(0)).collect::<Vec<_>>());
    let claimed = Arc::new((0..OPS).map(|_| AtomicUsize::new(0)).collect::<Vec<_>>());
    let start = Arc::new(Barrier::new(WRITERS + CALLERS));

    let mut op_shares: Vec<Vec<(usize, Op)>> = (0..WRITERS).map(|_| Vec::new()).collect();
    for (i, op) in ops.into_iter().enumerate() {
        op_shares[i % WRITERS].push((i, op));
    }
    let mut caller_shares: Vec<Vec<(usize, Completion)>> =
        (0..CALLERS).map(|_| Vec::new()).collect();
    for (i, c) in completions {
        caller_shares[(i * 7) % CALLERS].push((i, c));
    }

    let writers: Vec<_> = op_shares
        .into_iter()
        .map(|share| {
            let (delivered, claimed, start) = (delivered.clone(), claimed.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                for (n, (i, op)) in share.into_iter().enumerate() {
                    if n % 64 == 0 {
                        thread::sleep(Duration::from_micros(500));
                    }
                    if op.is_expired(Instant::now()) {
                        // What the engine does with an op whose deadline passed unsent.
                        op.complete(Err(CommitError::DeadlineExceeded {
                            may_have_been_applied: false,
                        }));
                        continue;
                    }
                    if op.claim_for_send() {
                        claimed[i].fetch_add(1, Ordering::SeqCst);
                        if i % 16 == 0 {
                            // A slow reply: the caller's deadline may pass while it is sent.
                            thread::sleep(Duration::from_millis(2));
                        }
                        if op.complete(Ok(())) {
                            delivered[i].fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })
        })
        .collect();
    let callers: Vec<_> = caller_shares
        .into_iter()
        .enumerate()
        .map(|(c, share)| {
            let start = start.clone();
            thread::spawn(move || {
                start.wait();
                share
                    .into_iter()
                    .map(|(i, completion)| {
                        let outcome = if c % 2 == 0 {
                            completion.wait()
                        } else {
                            block_on(completion)
                        };
                        (i, outcome)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let mut outcomes = Vec::new();
    for c in callers {
        outcomes.extend(c.join().unwrap());
    }
    assert_eq!(outcomes.len(), OPS);
    let (mut ok, mut late_unsent, mut late_sent) = (0, 0, 0);
    for (i, outcome) in outcomes {
        let delivered = delivered[i].load(Ordering::SeqCst);
        let claimed = claimed[i].load(Ordering::SeqCst);
        match i % 41 {
            0 => assert_eq!(
                outcome,
                Err(CommitError::DeadlineExceeded {
                    may_have_been_applied: false
                }),
                "op {i}: its deadline passed before any writer started"
            ),
            40 => assert_eq!(outcome, Ok(()), "op {i}: its deadline is a minute away"),
            _ => {}
        }
        match outcome {
            Ok(()) => {
                assert_eq!(delivered, 1, "op {i}: Ok without a delivered completion");
                ok += 1;
            }
            Err(CommitError::DeadlineExceeded {
                may_have_been_applied: false,
            }) => {
                assert_eq!(claimed, 0, "op {i}: told not applied, but it was sent");
                late_unsent += 1;
            }
            Err(CommitError::DeadlineExceeded {
                may_have_been_applied: true,
            }) => {
                assert_eq!(claimed, 1, "op {i}: told maybe applied, but never claimed");
                assert_eq!(
                    delivered, 0,
                    "op {i}: outcome delivered to a caller that left"
                );
                late_sent += 1;
            }
            Err(other) => panic!("op {i}: unexpected {other:?}"),
        }
    }
    eprintln!("ok {ok}, timed out unsent {late_unsent}, timed out after send {late_sent}");
    assert_eq!(ok + late_unsent + late_sent, OPS);
}
