//! Waiting for an item or for room: blocking ([`Ring::pop_wait`], [`Ring::push_wait`]) and
//! async ([`Ring::pop`], [`Ring::push`]), for any runtime. Needs the `std` feature.
//!
//! Waiters sleep on an [`event_listener::Event`]; the ring's operations wake them. A push or
//! pop pays for that only with one load of a waiter count (on a cache line nobody writes while
//! nobody waits) and a branch: it touches the `Event` only if someone waits.
//!
//! # No lost wake-ups
//!
//! A waiter for an item (for room it is the mirror image, with head and tail swapped):
//!
//! 1. adds itself to `pop_waiters` (a `SeqCst` RMW), creates a listener, and tries to pop
//!    again;
//! 2. reads the tail with a `SeqCst` RMW (`fetch_add(0)`) and then the head: if they differ,
//!    some push has claimed a slot that is not popped yet, so it does not sleep: it yields
//!    and looks again later (that push may not know about the waiter, see below and [`Stall`]);
//! 3. otherwise it sleeps on the listener until woken (or until its deadline).
//!
//! A push claims its slot with a `SeqCst` CAS on the tail, *then* loads `pop_waiters`
//! (`SeqCst`), writes its value and stamp, and if the count was non-zero, notifies. Take a
//! push P and a waiter W that sleeps. Both the CAS and W's RMW in step 2 are RMWs of the tail,
//! so one reads from the other:
//!
//! * if W's RMW came first, P's CAS (acquire) reads from it (release), so W's increment
//!   happens before P's load of the count: P sees a waiter and notifies after its stamp
//!   store. Notifying and listening both lock the `Event`'s list, so either W's listener was
//!   in the list when P notified (W is woken), or P's notify came first and W's try-pop in
//!   step 1, which follows its listen, sees P's stamp (the item is taken, W does not sleep);
//! * if P's CAS came first, W's tail RMW sees P's slot claimed, so W sleeps only if the head
//!   has passed it too: P's item was popped already, and W has nothing to miss.
//!
//! The same holds with the head and `push_waiters` for pops and waiters for room, and for the
//! batch calls (which wake as many waiters as items they moved). [`Ring::close`] wakes
//! everyone unconditionally: its `fetch_or` on the tail comes before its notify, and a waiter
//! checks for closing after its listen, so again the list lock orders the two.
//!
//! Step 2's "look again" is the price of the ring's non-blocking claim: between a push's CAS
//! and its stamp store, the item is neither poppable nor announced, and that push may have read
//! the waiter count before the waiter registered (then it will not notify). The window lasts
//! as long as that push is stalled: usually a few nanoseconds, a scheduler time slice if it
//! was preempted. A publish that notifies after its stamp store would close the window, but
//! only with a store-load fence on every push, which is what the count-after-CAS design
//! avoids. So a waiter in the window polls, at a falling rate ([`Stall`]): a blocking waiter
//! spins briefly, yields a few times, then sleeps on its listener with a timeout that doubles
//! from 20 µs to 1 ms (a push that sees a waiter wakes one waiter, maybe this one, ending its
//! nap early); an async waiter, which has no timer, asks its executor to poll it again,
//! cooperatively at first and yielding its thread to the OS once the stall has lasted a few
//! polls, so that a preempted producer on the same core can finish.
//!
//! # A notification is never swallowed
//!
//! A notification stands for an item (or a free slot) that some waiter may take. A listener
//! dropped after it was notified passes the notification on (event-listener notifies another
//! listener), but a listener that *returned* a notification has consumed it. A waiter that
//! consumed one and then gives up without an item or a slot (its deadline passed while it
//! looked again, or its future was dropped) would strand another waiter asleep beside an
//! available item. So every waiter remembers that it owes a notification from the moment it
//! consumes one until it takes an item or a slot, or until a look finds every claimed slot
//! released (the item it stood for was taken by someone else, and any later claim notifies);
//! if it returns (or is dropped) owing, it notifies one more waiter first. A spare wake-up
//! costs the woken waiter one look.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::time::{Duration, Instant};

use event_listener::{Event, EventListener, IntoNotification, Listener};

use crate::full::{PopError, PushError};
use crate::ring::Ring;
use crate::sync::{yield_now, AtomicUsize, Backoff, Ordering};

/// The waiting state of a ring: how many wait on each side, and the events they sleep on.
pub(crate) struct Waiters {
    /// Callers between step 1 and their return in `pop_wait` or a `pop` future.
    pub(crate) pop_waiters: AtomicUsize,
    /// Callers between step 1 and their return in `push_wait` or a `push` future.
    pub(crate) push_waiters: AtomicUsize,
    not_empty: Event,
    not_full: Event,
}

impl Waiters {
    pub(crate) fn new() -> Self {
        Self {
            pop_waiters: AtomicUsize::new(0),
            push_waiters: AtomicUsize::new(0),
            not_empty: Event::new(),
            not_full: Event::new(),
        }
    }

    /// Wakes `items` more callers waiting for an item (`additional`: a caller woken earlier
    /// and not yet running does not count).
    #[cold]
    pub(crate) fn wake_poppers(&self, items: usize) {
        self.not_empty.notify(items.additional());
    }

    /// Wakes `slots` more callers waiting for room.
    #[cold]
    pub(crate) fn wake_pushers(&self, slots: usize) {
        self.not_full.notify(slots.additional());
    }

    /// Wakes every waiter (on `close`).
    pub(crate) fn wake_all(&self) {
        self.not_empty.notify(usize::MAX);
        self.not_full.notify(usize::MAX);
    }
}

impl core::fmt::Debug for Waiters {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Waiters").finish_non_exhaustive()
    }
}

/// Sleeps on `listener` until it is notified (`true`) or `deadline` passes (`false`).
fn sleep(listener: EventListener, deadline: Option<Instant>) -> bool {
    let woken = match deadline {
        Some(deadline) if Instant::now() >= deadline => false,
        // Loom cannot time out a park: under loom a deadline that has not passed yet waits
        // without limit (models use `Duration::MAX` or `Duration::ZERO`).
        #[cfg(not(all(feature = "loom", loom)))]
        Some(deadline) => listener.wait_deadline(deadline).is_some(),
        _ => {
            listener.wait();
            true
        }
    };
    #[cfg(all(test, not(loom)))]
    if woken {
        tests::WOKEN.fetch_add(1, Ordering::Relaxed);
    }
    woken
}

/// A caller counted in a waiter count until dropped.
struct Registered<'a>(&'a AtomicUsize);

impl<'a> Registered<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        // `SeqCst` RMW: see the module docs, step 1.
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        // A late decrement only costs a notify nobody needed.
        self.0.fetch_sub(1, Ordering::Release);
    }
}

/// How a waiter waits out a push (or pop) that claimed a slot and has not published it yet:
/// see the module docs. One per waiting call; reset when the waiter goes to sleep for real.
struct Stall {
    /// Consecutive looks that found a slot in flight.
    rounds: u32,
    backoff: Backoff,
    /// The next nap of a blocking waiter.
    #[cfg_attr(all(feature = "loom", loom), allow(dead_code))]
    nap: Duration,
}

impl Stall {
    /// Looks (blocking) or polls (async) that spin or yield before the waiter slows down.
    const EAGER: u32 = 8;
    #[cfg_attr(all(feature = "loom", loom), allow(dead_code))]
    const FIRST_NAP: Duration = Duration::from_micros(20);
    #[cfg_attr(all(feature = "loom", loom), allow(dead_code))]
    const LONGEST_NAP: Duration = Duration::from_millis(1);

    fn new() -> Self {
        Self {
            rounds: 0,
            backoff: Backoff::new(),
            nap: Self::FIRST_NAP,
        }
    }

    /// After a look found nothing in flight (the waiter sleeps until notified).
    fn reset(&mut self) {
        *self = Self::new();
    }

    /// A blocking waiter's wait before it looks again: spin or yield for the first few
    /// rounds, then sleep on `listener` (registered before the look) for a nap, at most until
    /// `deadline`. A notification ends the nap early. Returns whether the nap consumed a
    /// notification (see the module docs: the waiter then owes one until it takes an item or
    /// a slot).
    #[must_use]
    fn wait(&mut self, listener: EventListener, deadline: Option<Instant>) -> bool {
        self.rounds = self.rounds.saturating_add(1);
        #[cfg(all(test, not(loom)))]
        tests::STALL_WAITS.fetch_add(1, Ordering::Relaxed);
        // Under loom a park cannot time out: the model yields instead, which it explores as
        // a scheduling point.
        if cfg!(all(feature = "loom", loom)) || self.rounds <= Self::EAGER {
            // Dropping the listener passes on a notification it may have received.
            drop(listener);
            self.backoff.snooze();
            return false;
        }
        #[cfg(not(all(feature = "loom", loom)))]
        {
            let now = Instant::now();
            // `Instant` cannot overflow a millisecond past now in practice; if it did, the
            // nap would end at once and the waiter would look again.
            let until = now.checked_add(self.nap).unwrap_or(now);
            let until = deadline.map_or(until, |d| d.min(until));
            self.nap = (self.nap * 2).min(Self::LONGEST_NAP);
            // Woken or timed out, the caller looks again either way.
            listener.wait_deadline(until).is_some()
        }
        #[cfg(all(feature = "loom", loom))]
        {
            let _ = deadline;
            false
        }
    }

    /// An async waiter's wait before it is polled again: wake its own task, and, once the
    /// stall has lasted a few polls, yield the thread to the OS first.
    fn repoll(&mut self, cx: &Context<'_>) {
        self.rounds = self.rounds.saturating_add(1);
        if self.rounds > Self::EAGER / 2 {
            yield_now();
        }
        cx.waker().wake_by_ref();
    }
}

/// What a waiter found when it looked again.
enum Look<R> {
    /// Done: return this.
    Done(R),
    /// A claimed slot is in flight: wait a little ([`Stall`]) and look again.
    InFlight,
    /// Nothing to do until someone wakes us.
    Sleep,
}

impl<T> Ring<T> {
    /// Pops an item, or says the ring is closed and drained.
    fn pop_or_closed(&self) -> Option<Result<T, PopError>> {
        if let Some(value) = self.try_pop() {
            return Some(Ok(value));
        }
        let tail = self.tail.load(Ordering::SeqCst);
        if tail & self.mark_bit == 0 {
            return None;
        }
        // Closed, and the head has reached the tail, which no longer moves: drained, unless
        // the slot there is still held by the previous lap. That happens while an evicting
        // `force_push` on a ring of capacity 1 is between its head CAS and its tail move (its
        // item is about to land), or while a consumer moves the last item out; look again.
        let head = self.head.load(Ordering::SeqCst);
        if tail & !self.mark_bit == head && self.slot(head).stamp.load(Ordering::Acquire) == head {
            return Some(Err(PopError::Closed));
        }
        None
    }

    /// Step 2 for a waiter for an item (registered and listening).
    fn look_for_item(&self) -> Look<Result<T, PopError>> {
        if let Some(done) = self.pop_or_closed() {
            return Look::Done(done);
        }
        // The RMW orders us against every push's tail CAS (module docs).
        let tail = self.tail.fetch_add(0, Ordering::SeqCst);
        if tail & self.mark_bit != 0 {
            // Closed but not drained as far as `pop_or_closed` could tell: an item is in
            // flight (being written, or the last one being moved out by another consumer).
            // Nobody will notify after the close's wake-up, so look again rather than sleep.
            Look::InFlight
        } else if tail != self.head.load(Ordering::SeqCst) {
            Look::InFlight
        } else {
            Look::Sleep
        }
    }

    /// Step 2 for a waiter for room (registered and listening); hands `value` back if it did
    /// not go in.
    fn look_for_room(&self, value: T) -> (Look<Result<(), PushError<T>>>, Option<T>) {
        let value = match self.push_impl::<false>(value, usize::MAX) {
            Ok(()) => return (Look::Done(Ok(())), None),
            Err(PushError::Closed(value)) => {
                return (Look::Done(Err(PushError::Closed(value))), None)
            }
            Err(PushError::Full(value)) => value,
        };
        // The RMW orders us against every pop's head CAS (module docs).
        let head = self.head.fetch_add(0, Ordering::SeqCst);
        let tail = self.tail.load(Ordering::SeqCst);
        if tail & self.mark_bit != 0 {
            // Closed since our push: look again, it will say so.
            (Look::InFlight, Some(value))
        } else if self.distance(head, tail) < self.cap {
            (Look::InFlight, Some(value))
        } else {
            (Look::Sleep, Some(value))
        }
    }

    /// Pops the oldest item, waiting up to `timeout` for one to arrive.
    ///
    /// Returns at once if an item is ready. Otherwise the thread sleeps until a push wakes it,
    /// the ring is closed, or the timeout passes. While a push that has claimed the next slot
    /// is still writing it, the thread looks again at a falling rate: a few spins and yields,
    /// then naps of 20 µs doubling up to 1 ms (that push may have missed this waiter, so it
    /// may not wake it). A `timeout` too large to add to the current time (such as
    /// `Duration::MAX`) waits without limit.
    ///
    /// # Errors
    ///
    /// [`PopError::Closed`] once the ring is [closed](Ring::close) and every item has been
    /// popped; [`PopError::Timeout`] if no item arrived in time.
    ///
    /// # Examples
    ///
    /// A producer and a consumer thread, the consumer blocking until the producer closes the
    /// ring:
    ///
    /// ```
    /// # slotline_ring::__doctest_threads(|| {
    /// use std::sync::Arc;
    /// use std::thread;
    /// use std::time::Duration;
    /// use slotline_ring::{PopError, Ring};
    ///
    /// let ring = Arc::new(Ring::new(2));
    /// let producer = {
    ///     let ring = Arc::clone(&ring);
    ///     thread::spawn(move || {
    ///         for i in 0..5 {
    ///             ring.push_wait(i, Duration::MAX).unwrap();
    ///         }
    ///         ring.close();
    ///     })
    /// };
    /// let mut got = Vec::new();
    /// loop {
    ///     match ring.pop_wait(Duration::MAX) {
    ///         Ok(item) => got.push(item),
    ///         Err(PopError::Closed) => break,
    ///         Err(PopError::Timeout) => unreachable!("no timeout"),
    ///     }
    /// }
    /// producer.join().unwrap();
    /// assert_eq!(got, [0, 1, 2, 3, 4]);
    /// # });
    /// ```
    pub fn pop_wait(&self, timeout: Duration) -> Result<T, PopError> {
        if let Some(done) = self.pop_or_closed() {
            return done;
        }
        let deadline = Instant::now().checked_add(timeout);
        let _registered = Registered::new(&self.waiters.pop_waiters);
        let mut stall = Stall::new();
        // A notification consumed and not yet matched by an item (module docs).
        let mut owed = false;
        let give_up = |owed: bool| {
            if owed {
                self.waiters.wake_poppers(1);
            }
            Err(PopError::Timeout)
        };
        loop {
            let listener = self.waiters.not_empty.listen();
            match self.look_for_item() {
                Look::Done(done) => return done,
                Look::InFlight => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        drop(listener);
                        return give_up(owed);
                    }
                    owed |= stall.wait(listener, deadline);
                }
                Look::Sleep => {
                    stall.reset();
                    // Every slot claimed before this look has been taken: a notification
                    // consumed earlier stood for one of them, and a later claim notifies.
                    owed = false;
                    let woken = sleep(listener, deadline);
                    owed |= woken;
                    if !woken {
                        return self.pop_or_closed().unwrap_or_else(|| give_up(owed));
                    }
                }
            }
        }
    }

    /// Pushes `value`, waiting up to `timeout` for room.
    ///
    /// Returns at once if there is room. Otherwise the thread sleeps until a pop wakes it, the
    /// ring is closed, or the timeout passes (looking again at a falling rate, as
    /// [`pop_wait`](Ring::pop_wait) does, while a pop that has claimed the oldest item finishes
    /// moving it out). A `timeout` too large to add to the
    /// current time waits without limit. See [`pop_wait`](Ring::pop_wait) for an example.
    ///
    /// # Errors
    ///
    /// [`PushError::Closed`] if the ring is [closed](Ring::close); [`PushError::Full`] if there
    /// was no room before the timeout. Both hand `value` back.
    pub fn push_wait(&self, value: T, timeout: Duration) -> Result<(), PushError<T>> {
        let value = match self.push_impl::<false>(value, usize::MAX) {
            Err(PushError::Full(value)) => value,
            done => return done,
        };
        let deadline = Instant::now().checked_add(timeout);
        let _registered = Registered::new(&self.waiters.push_waiters);
        let mut stall = Stall::new();
        let mut value = value;
        // A notification consumed and not yet matched by a slot (module docs).
        let mut owed = false;
        let pass_on = |owed: bool| {
            if owed {
                self.waiters.wake_pushers(1);
            }
        };
        loop {
            let listener = self.waiters.not_full.listen();
            let (look, back) = self.look_for_room(value);
            match look {
                Look::Done(done) => return done,
                Look::InFlight => {
                    value = back.expect("a value comes back unless done");
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        drop(listener);
                        pass_on(owed);
                        return Err(PushError::Full(value));
                    }
                    owed |= stall.wait(listener, deadline);
                }
                Look::Sleep => {
                    stall.reset();
                    // As in `pop_wait`: nothing owed once every claimed slot is released.
                    owed = false;
                    value = back.expect("a value comes back unless done");
                    let woken = sleep(listener, deadline);
                    owed |= woken;
                    if !woken {
                        let last = self.push_impl::<false>(value, usize::MAX);
                        if last.is_err() {
                            pass_on(owed);
                        }
                        return last;
                    }
                }
            }
        }
    }

    /// Pops the oldest item, waiting for one without blocking the thread: a future for any
    /// runtime.
    ///
    /// The future resolves to an item, or to [`PopError::Closed`] once the ring is closed and
    /// drained (never to [`PopError::Timeout`]; race it against your runtime's timer for a
    /// timeout). Dropping it stops waiting; an item is never taken by a dropped future.
    ///
    /// # Examples
    ///
    /// ```
    /// # slotline_ring::__doctest(|| {
    /// use std::future::Future;
    /// use std::pin::pin;
    /// use std::task::{Context, Poll, Waker};
    /// use slotline_ring::Ring;
    ///
    /// let ring = Ring::new(2);
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let mut pop = pin!(ring.pop());
    /// assert!(pop.as_mut().poll(&mut cx).is_pending());
    /// ring.try_push(7).unwrap();
    /// assert_eq!(pop.as_mut().poll(&mut cx), Poll::Ready(Ok(7)));
    /// # });
    /// ```
    pub fn pop(&self) -> Pop<'_, T> {
        Pop {
            ring: self,
            registered: None,
            listener: None,
            stall: Stall::new(),
            owed: false,
        }
    }

    /// Pushes `value`, waiting for room without blocking the thread: a future for any runtime.
    ///
    /// The future resolves to `Ok(())` once the value is in the ring, or to
    /// [`PushError::Closed`] with the value if the ring is closed (never to
    /// [`PushError::Full`]). Dropping it stops waiting and drops the value if it was not
    /// pushed.
    ///
    /// # Examples
    ///
    /// ```
    /// # slotline_ring::__doctest(|| {
    /// use std::future::Future;
    /// use std::pin::pin;
    /// use std::task::{Context, Poll, Waker};
    /// use slotline_ring::{PushError, Ring};
    ///
    /// let ring = Ring::new(1);
    /// ring.try_push(1).unwrap();
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let mut push = pin!(ring.push(2));
    /// assert!(push.as_mut().poll(&mut cx).is_pending());
    /// assert_eq!(ring.try_pop(), Some(1));
    /// assert_eq!(push.as_mut().poll(&mut cx), Poll::Ready(Ok(())));
    /// ring.close();
    /// let mut push = pin!(ring.push(3));
    /// assert_eq!(push.as_mut().poll(&mut cx), Poll::Ready(Err(PushError::Closed(3))));
    /// # });
    /// ```
    pub fn push(&self, value: T) -> Push<'_, T> {
        Push {
            ring: self,
            value: Some(value),
            registered: None,
            listener: None,
            stall: Stall::new(),
            owed: false,
        }
    }
}

/// The future of [`Ring::pop`].
#[must_use = "futures do nothing unless polled"]
pub struct Pop<'a, T> {
    ring: &'a Ring<T>,
    registered: Option<Registered<'a>>,
    listener: Option<EventListener>,
    stall: Stall,
    /// A notification consumed and not yet matched by an item or a slot: passed on if the
    /// future is dropped first (module docs).
    owed: bool,
}

impl<T> Future for Pop<'_, T> {
    type Output = Result<T, PopError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Every field is `Unpin`.
        let this = self.get_mut();
        loop {
            if this.registered.is_none() {
                if let Some(done) = this.ring.pop_or_closed() {
                    return Poll::Ready(done);
                }
                this.registered = Some(Registered::new(&this.ring.waiters.pop_waiters));
            }
            let Some(listener) = this.listener.as_mut() else {
                this.listener = Some(this.ring.waiters.not_empty.listen());
                match this.ring.look_for_item() {
                    Look::Done(done) => {
                        this.listener = None;
                        this.registered = None;
                        // An item taken, or the ring closed (after which no waiter sleeps
                        // without looking again: nothing is owed).
                        this.owed = false;
                        return Poll::Ready(done);
                    }
                    Look::InFlight => {
                        // Ask to be polled again (module docs: a claimed slot is not
                        // published yet, and its producer may not know about us).
                        this.listener = None;
                        this.stall.repoll(cx);
                        return Poll::Pending;
                    }
                    Look::Sleep => {
                        this.stall.reset();
                        // Nothing owed once every claimed slot is released (`pop_wait`).
                        this.owed = false;
                        continue;
                    }
                }
            };
            match Pin::new(listener).poll(cx) {
                Poll::Ready(()) => {
                    this.listener = None;
                    this.owed = true;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<T> Drop for Pop<'_, T> {
    fn drop(&mut self) {
        if self.owed {
            // Our own listener first, so that the notification goes to another waiter.
            drop(self.listener.take());
            self.ring.waiters.wake_poppers(1);
        }
    }
}

impl<T> core::fmt::Debug for Pop<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pop")
            .field("waiting", &self.listener.is_some())
            .finish_non_exhaustive()
    }
}

/// The future of [`Ring::push`].
#[must_use = "futures do nothing unless polled"]
pub struct Push<'a, T> {
    ring: &'a Ring<T>,
    value: Option<T>,
    registered: Option<Registered<'a>>,
    listener: Option<EventListener>,
    stall: Stall,
    /// A notification consumed and not yet matched by an item or a slot: passed on if the
    /// future is dropped first (module docs).
    owed: bool,
}

// The value is moved in and out, never pinned.
impl<T> Unpin for Push<'_, T> {}

impl<T> Future for Push<'_, T> {
    type Output = Result<(), PushError<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            let value = this.value.take().expect("`Push` polled after it completed");
            if this.registered.is_none() {
                let value = match this.ring.push_impl::<false>(value, usize::MAX) {
                    Err(PushError::Full(value)) => value,
                    done => return Poll::Ready(done),
                };
                this.value = Some(value);
                this.registered = Some(Registered::new(&this.ring.waiters.push_waiters));
                continue;
            }
            let Some(listener) = this.listener.as_mut() else {
                this.listener = Some(this.ring.waiters.not_full.listen());
                let (look, back) = this.ring.look_for_room(value);
                this.value = back;
                match look {
                    Look::Done(done) => {
                        this.listener = None;
                        this.registered = None;
                        // A slot taken, or the ring closed (after which no waiter sleeps
                        // without looking again: nothing is owed).
                        this.owed = false;
                        return Poll::Ready(done);
                    }
                    Look::InFlight => {
                        // Ask to be polled again (module docs: a claimed slot is not
                        // published yet, and its producer may not know about us).
                        this.listener = None;
                        this.stall.repoll(cx);
                        return Poll::Pending;
                    }
                    Look::Sleep => {
                        this.stall.reset();
                        // Nothing owed once every claimed slot is released (`pop_wait`).
                        this.owed = false;
                        continue;
                    }
                }
            };
            this.value = Some(value);
            match Pin::new(listener).poll(cx) {
                Poll::Ready(()) => {
                    this.listener = None;
                    this.owed = true;
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<T> Drop for Push<'_, T> {
    fn drop(&mut self) {
        if self.owed {
            // Our own listener first, so that the notification goes to another waiter.
            drop(self.listener.take());
            self.ring.waiters.wake_pushers(1);
        }
    }
}

impl<T> core::fmt::Debug for Push<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Push")
            .field("waiting", &self.listener.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::AtomicUsize as StdAtomic;
    use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
    use std::thread;
    use std::time::{Duration, Instant};

    use crate::sync::Ordering;
    use crate::{PopError, PushError, Ring};

    /// `Stall::wait` calls, across the crate's unit tests.
    pub(super) static STALL_WAITS: StdAtomic = StdAtomic::new(0);

    /// Notifications that ended a blocking waiter's sleep, across the crate's unit tests.
    pub(super) static WOKEN: StdAtomic = StdAtomic::new(0);

    /// Held by every test whose waiters reach `Stall::wait`, so that one test's count of
    /// looks does not include another's.
    static STALLING: Mutex<()> = Mutex::new(());

    fn one_at_a_time() -> MutexGuard<'static, ()> {
        STALLING.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A push stalled between its claim and its publish, which read the waiter count before
    /// the waiter registered (so it will not notify): the waiter naps instead of spinning, and
    /// takes the item once it is published.
    #[test]
    fn a_waiter_naps_through_an_unpublished_claim_and_gets_the_item() {
        let _alone = one_at_a_time();
        let ring = Arc::new(Ring::<u64>::new(4));
        let tail = claim(&ring);
        let looks = || STALL_WAITS.load(Ordering::SeqCst);
        let before = looks();
        let waiter = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || ring.pop_wait(Duration::from_secs(60)))
        };
        // Past the eager rounds (a slow interpreter such as miri may take a while)...
        let started = Instant::now();
        while looks() - before <= 8 {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the waiter never looked past its eager rounds ({} looks)",
                looks() - before
            );
            thread::sleep(Duration::from_millis(1));
        }
        // ...it naps: 20 µs doubling to 1 ms, so about 200 looks in 200 ms at most. A waiter
        // that yield-spun would look tens of thousands of times.
        let napping = looks();
        thread::sleep(Duration::from_millis(200));
        let in_window = looks() - napping;
        assert!(
            in_window < 1_000,
            "the waiter spun: {in_window} looks in 200 ms"
        );
        assert!(!waiter.is_finished(), "nothing was published yet");
        // The publish, without a notify (the push read the count before the waiter came).
        publish(&ring, tail, 42);
        let published = Instant::now();
        assert_eq!(waiter.join().unwrap(), Ok(42));
        // A generous liveness bound: the next nap ends within 1 ms.
        assert!(published.elapsed() < Duration::from_secs(5));
    }

    /// The claim of a push, by hand: the stamp check and the tail CAS, nothing written yet.
    /// Returns its position.
    fn claim(ring: &Ring<u64>) -> usize {
        let tail = ring.tail.load(Ordering::SeqCst);
        assert_eq!(
            ring.slot(tail).stamp.load(Ordering::Acquire),
            tail,
            "the slot at the tail is empty for this lap"
        );
        ring.tail
            .compare_exchange(tail, ring.next(tail), Ordering::SeqCst, Ordering::SeqCst)
            .unwrap();
        tail
    }

    /// The publish of a claimed slot, by hand, notifying nobody (as a push that read the
    /// waiter count before anyone registered).
    fn publish(ring: &Ring<u64>, position: usize, value: u64) {
        // SAFETY: `claim` saw the slot at `position` empty (Acquire) and claimed it with the
        // tail CAS for the caller.
        unsafe { ring.put(ring.slot(position), position, value) };
    }

    /// Runs `wait` on a thread of its own, timing it.
    fn timed<R: Send + 'static>(
        wait: impl FnOnce() -> R + Send + 'static,
    ) -> thread::JoinHandle<(R, Duration)> {
        thread::spawn(move || {
            let started = Instant::now();
            (wait(), started.elapsed())
        })
    }

    /// A waiter with a 20 s deadline that returned within 10 s was woken, not timed out.
    fn assert_woken(who: &str, after: Duration) {
        assert!(
            after < Duration::from_secs(10),
            "{who} slept to its deadline ({after:?}): a wake-up was swallowed"
        );
    }

    /// Waits until `n` callers are asleep on `event` (listening, nothing to do).
    fn wait_for_sleepers(event: &event_listener::Event, n: usize) {
        let started = Instant::now();
        while event.total_listeners() < n {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no waiter came"
            );
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// A waiter that consumed a notification and then timed out (the item it was woken for
    /// sat behind a slot still in flight) passes the notification on, so the other waiter,
    /// asleep, is not stranded beside items it could take.
    #[test]
    #[cfg_attr(miri, ignore = "real-time sleeps of seconds; the logic runs natively")]
    fn a_waiter_that_times_out_after_a_wake_up_passes_it_on() {
        let _alone = one_at_a_time();
        let ring = Arc::new(Ring::<u64>::new(4));
        let first = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || ring.pop_wait(Duration::from_secs(2)))
        };
        wait_for_sleepers(&ring.waiters.not_empty, 1);
        let second = {
            let ring = Arc::clone(&ring);
            timed(move || ring.pop_wait(Duration::from_secs(20)))
        };
        wait_for_sleepers(&ring.waiters.not_empty, 2);
        assert!(!first.is_finished());
        // Slot 0 claimed and not written; slot 1 pushed, whose push sees two waiters and
        // notifies one: the older listener, the first waiter's.
        let stalled = claim(&ring);
        ring.try_push(2).unwrap();
        // The first waiter finds slot 0 in flight until its deadline.
        assert_eq!(first.join().unwrap(), Err(PopError::Timeout));
        // Slot 0 lands, notifying nobody. Only a notification passed on wakes the second.
        publish(&ring, stalled, 1);
        let (got, after) = second.join().unwrap();
        assert_eq!(got, Ok(1));
        assert_woken("the second waiter", after);
        assert_eq!(ring.try_pop(), Some(2));
    }

    /// The same for a future: one that consumed a notification and is dropped before it
    /// got an item (a `select!` timeout, say) passes the notification on.
    #[test]
    #[cfg_attr(miri, ignore = "real-time sleeps of seconds; the logic runs natively")]
    fn a_dropped_pop_future_passes_on_a_wake_up_it_consumed() {
        use core::future::Future;
        use core::task::{Context, Waker};

        let _alone = one_at_a_time();
        let ring = Arc::new(Ring::<u64>::new(4));
        let mut cx = Context::from_waker(Waker::noop());
        {
            // Boxed, so that dropping it drops the future itself.
            let mut pop = Box::pin(ring.pop());
            assert!(pop.as_mut().poll(&mut cx).is_pending());
            let second = {
                let ring = Arc::clone(&ring);
                timed(move || ring.pop_wait(Duration::from_secs(20)))
            };
            wait_for_sleepers(&ring.waiters.not_empty, 2);
            // Slot 0 in flight; slot 1's push notifies the future's (older) listener.
            let stalled = claim(&ring);
            ring.try_push(2).unwrap();
            // The future consumes the notification, finds slot 0 in flight, and is dropped.
            assert!(pop.as_mut().poll(&mut cx).is_pending());
            drop(pop);
            publish(&ring, stalled, 1);
            let (got, after) = second.join().unwrap();
            assert_eq!(got, Ok(1));
            assert_woken("the blocking waiter", after);
        }
        assert_eq!(ring.try_pop(), Some(2));
    }

    /// The mirror image for room: a pusher woken by a pop whose slot is still behind one
    /// claimed and not released times out and passes the wake-up on to the other pusher.
    #[test]
    #[cfg_attr(miri, ignore = "real-time sleeps of seconds; the logic runs natively")]
    fn a_pusher_that_times_out_after_a_wake_up_passes_it_on() {
        let _alone = one_at_a_time();
        let ring = Arc::new(Ring::<u64>::new(2));
        ring.try_push(1).unwrap();
        ring.try_push(2).unwrap();
        let first = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || ring.push_wait(10, Duration::from_secs(2)))
        };
        wait_for_sleepers(&ring.waiters.not_full, 1);
        let second = {
            let ring = Arc::clone(&ring);
            timed(move || ring.push_wait(20, Duration::from_secs(20)))
        };
        wait_for_sleepers(&ring.waiters.not_full, 2);
        assert!(!first.is_finished());
        // A pop claims slot 0 by hand and does not release it; a second pop releases slot 1
        // and notifies one pusher: the older, the first.
        let head = ring.head.load(Ordering::SeqCst);
        ring.head
            .compare_exchange(head, ring.next(head), Ordering::SeqCst, Ordering::SeqCst)
            .unwrap();
        assert_eq!(ring.try_pop(), Some(2));
        // The first pusher finds the tail's slot (0) still held until its deadline.
        assert_eq!(first.join().unwrap(), Err(PushError::Full(10)));
        // Slot 0 is released, notifying nobody: only a wake-up passed on wakes the second.
        // SAFETY: the head CAS above claimed the written slot at `head` for this thread.
        let value = unsafe { ring.take(ring.slot(head), head) };
        assert_eq!(value, 1);
        let (pushed, after) = second.join().unwrap();
        assert_eq!(pushed, Ok(()));
        assert_woken("the second pusher", after);
        assert_eq!(ring.try_pop(), Some(20));
    }

    /// A wake-up whose item someone else took is not owed: waiters that find every claimed
    /// slot released go back to sleep without passing it on, so a stale wake-up dies instead
    /// of circling among waiters that time out and retry.
    #[test]
    #[cfg_attr(miri, ignore = "real-time sleeps; the logic runs natively")]
    fn a_stale_wake_up_is_not_passed_round_for_ever() {
        let _alone = one_at_a_time();
        let ring = Arc::new(Ring::<u64>::new(4));
        let until = Instant::now() + Duration::from_millis(600);
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let ring = Arc::clone(&ring);
                thread::spawn(move || {
                    while Instant::now() < until {
                        assert_eq!(
                            ring.pop_wait(Duration::from_millis(20)),
                            Err(PopError::Timeout)
                        );
                    }
                })
            })
            .collect();
        wait_for_sleepers(&ring.waiters.not_empty, 3);
        let before = WOKEN.load(Ordering::SeqCst);
        // A notification with no item behind it (as when a `try_pop` took the item first).
        ring.waiters.wake_poppers(1);
        for w in waiters {
            w.join().unwrap();
        }
        let woken = WOKEN.load(Ordering::SeqCst) - before;
        // One waiter takes it and finds nothing; passed on at every timeout it would wake a
        // waiter about every 20 ms, some 25 times.
        assert!(woken <= 2, "a stale wake-up woke waiters {woken} times");
    }
}
