//! A pending write ([`Op`]) and the caller's side of it ([`Completion`]).
//!
//! [`Op::new`] packs one command into RESP, finds its key and slot, and returns two halves that
//! share one reference-counted cell (the only allocation besides the packed bytes):
//!
//! - the [`Op`] travels through its master's queue to an I/O thread, which sends it and then
//!   completes it, exactly once, with the outcome ([`Op::complete`] consumes the op);
//! - the [`Completion`] stays with the caller, who blocks on it ([`Completion::wait`]) or
//!   `.await`s it (it is a `Send` future that needs no particular executor).
//!
//! # Who decides whether a write was sent
//!
//! The cell holds a *stage*: `QUEUED`, then either `SENT` (the sender claimed the op with
//! [`Op::claim_for_send`] just before writing it to a socket) or `ABANDONED` (the caller gave
//! up first). Both moves are a compare-and-swap from `QUEUED`, so exactly one side wins:
//!
//! | the caller gives up (deadline, or drops its `Completion`) | outcome for the caller |
//! |---|---|
//! | before the sender claimed the op | `DeadlineExceeded { may_have_been_applied: false }`; the sender's claim fails and the op is never sent |
//! | after the sender claimed it | `DeadlineExceeded { may_have_been_applied: true }`; the write proceeds and its outcome is discarded |
//!
//! So a caller told "not applied" can rely on it, and nothing is acknowledged that Redis did not
//! confirm.
//!
//! # Completion, exactly once
//!
//! The outcome goes into the cell under its mutex; the first completion wins and any later one
//! (or one after the caller left) is discarded without panicking. An `Op` dropped without being
//! completed (an I/O thread that failed, a ring dropped with ops inside) completes its caller with
//! [`CommitError::Closed`] if it was never sent, or
//! [`CommitError::ConnectionLost { may_have_been_applied: true }`](CommitError::ConnectionLost)
//! if it was: a caller never waits forever.
//!
//! # Deadlines and the future
//!
//! [`Completion::wait`] blocks until the outcome or the op's deadline. The future has no timer of
//! its own (that would tie it to a runtime): it is woken by the completion. Inside a
//! [`Client`](crate::Client), the I/O thread that holds the op completes it with
//! `DeadlineExceeded` when its deadline passes, whether or not the future is polled meanwhile,
//! and that wakes it. Dropping the future (or the blocking `Completion`) abandons the op as
//! above, and releases its waker.

use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread::{self, Thread};
use std::time::Instant;

use slotline_router::{key_slot, Slot};

use crate::error::{CommandError, CommitError};

/// The outcome of one write.
pub type CommitResult = Result<(), CommitError>;

/// The outcome of one command: the reply Redis sent (an error reply is
/// [`CommitError::Server`]), or what became of the command.
pub type ReplyResult = Result<redis::Value, CommitError>;

/// Created; in a ring or about to be.
const QUEUED: u8 = 0;
/// Claimed by an I/O thread to be written to a socket: from now on it may be applied.
const SENT: u8 = 1;
/// The caller gave up before the sender claimed it: it must never be sent.
const ABANDONED: u8 = 2;

/// The state shared by an [`Op`] and its [`Completion`].
#[derive(Debug)]
struct Cell {
    /// `QUEUED` → `SENT` (sender) or `QUEUED` → `ABANDONED` (caller); never changes again.
    /// Both moves are a compare-and-swap, so exactly one side wins. `AcqRel`/`Acquire`: the
    /// stage carries no data of its own, the outcome is published under the mutex.
    stage: AtomicU8,
    state: Mutex<State>,
}

/// Who to wake when the outcome is stored.
#[derive(Debug)]
enum Waiter {
    /// A thread blocked in [`Completion::wait_until`]: unparked. Unparking a thread that has
    /// not parked yet costs no system call, so a completion that beats its caller to sleep is
    /// cheap.
    Thread(Thread),
    /// A task awaiting the [`Completion`] future.
    Task(Waker),
}

/// What the mutex guards.
#[derive(Debug, Default)]
struct State {
    /// The outcome, from completion until the caller takes it.
    outcome: Option<ReplyResult>,
    /// Set by the first completion; later ones are discarded.
    completed: bool,
    /// Set when the caller has its answer or has left; completions are then discarded.
    caller_gone: bool,
    /// The thread or task to wake when the outcome arrives.
    waiter: Option<Waiter>,
}

impl Cell {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No code that can panic runs under this lock, but stay usable if a waker did.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores the outcome if this is the first completion and the caller is still there.
    /// Returns whether the caller will see it.
    fn complete(&self, outcome: ReplyResult) -> bool {
        let mut state = self.lock();
        if state.completed {
            return false;
        }
        state.completed = true;
        if state.caller_gone {
            return false;
        }
        state.outcome = Some(outcome);
        let waiter = state.waiter.take();
        drop(state);
        match waiter {
            Some(Waiter::Thread(thread)) => thread.unpark(),
            Some(Waiter::Task(waker)) => waker.wake(),
            None => {}
        }
        true
    }

    /// The caller gives up at its deadline, with the lock held: abandon the op if the sender
    /// has not claimed it, and say which happened.
    fn give_up(&self, state: &mut State) -> ReplyResult {
        state.caller_gone = true;
        state.waiter = None;
        let sent = self
            .stage
            .compare_exchange(QUEUED, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_err();
        Err(CommitError::DeadlineExceeded {
            may_have_been_applied: sent,
        })
    }
}

/// A write on its way to Redis: the packed command, its key and slot, its deadline, and the
/// cell its caller waits on. See the [module docs](self).
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use slotline_client::op::Op;
///
/// let deadline = Instant::now() + Duration::from_secs(1);
/// let (op, completion) = Op::set(b"geo:{user42}", b"52.52,13.40", deadline);
/// assert_eq!(op.key(), b"geo:{user42}");
/// assert_eq!(op.slot(), slotline_router::key_slot(b"user42"));
///
/// // The writer side: claim, send `op.packed()`, read the reply, complete.
/// assert!(op.claim_for_send());
/// op.complete(Ok(()));
/// // The caller side.
/// assert_eq!(completion.wait(), Ok(()));
/// ```
#[derive(Debug)]
pub struct Op {
    /// The command in RESP, ready to be written to a socket.
    packed: Box<[u8]>,
    /// Where the key's bytes are inside `packed`.
    key: Range<usize>,
    slot: Slot,
    created: Instant,
    deadline: Instant,
    cell: Arc<Cell>,
    /// Whether sending it again after a lost connection is harmless (`SET` from
    /// `Client::commit`): see the crate docs on retries.
    pub(crate) resend_safe: bool,
    /// Send `ASKING` before it (an `ASK` redirect brought it to this master's queue).
    pub(crate) asking: bool,
    /// A connection failed after the op was wholly written: it may be in Redis.
    pub(crate) maybe_applied: bool,
    /// Resends after transient errors or lost connections so far (for the backoff).
    pub(crate) attempts: u32,
    /// `MOVED`/`ASK` redirects followed so far (at most 16).
    pub(crate) redirects: u32,
    /// Replicas that must confirm it (`WAIT`) before it succeeds: `ack.replicas`, or the
    /// call's own [`CallOptions::replicas`](crate::CallOptions::replicas).
    pub(crate) replicas: u32,
}

/// A command that cannot become an [`Op`].
///
/// # Examples
///
/// ```
/// use std::time::Instant;
/// use slotline_client::op::{Op, OpError};
///
/// let err = Op::new(&redis::cmd("PING"), 1, Instant::now()).unwrap_err();
/// assert_eq!(err, OpError::NoSuchArgument { index: 1, args: 1 });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpError {
    /// The key's argument index is past the command's last argument.
    NoSuchArgument {
        /// The index asked for (0 is the command name).
        index: usize,
        /// How many arguments the command has, name included.
        args: usize,
    },
    /// The packed bytes are not a RESP array of bulk strings.
    Malformed,
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpError::NoSuchArgument { index, args } => write!(
                f,
                "the key is argument {index}, but the command has only {args} arguments"
            ),
            OpError::Malformed => f.write_str("the command is not a RESP array of bulk strings"),
        }
    }
}

impl std::error::Error for OpError {}

impl Op {
    /// Packs `cmd`, takes argument `key_index` (0 is the command name, so usually 1) as its key,
    /// and computes the key's slot.
    ///
    /// # Errors
    ///
    /// [`OpError::NoSuchArgument`] if the command has no argument `key_index`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use slotline_client::op::Op;
    ///
    /// let mut geoadd = redis::cmd("GEOADD");
    /// geoadd.arg("riders").arg(13.40).arg(52.52).arg("rider:7");
    /// let (op, _completion) = Op::new(&geoadd, 1, Instant::now() + Duration::from_secs(1))?;
    /// assert_eq!(op.key(), b"riders");
    /// # Ok::<(), slotline_client::op::OpError>(())
    /// ```
    pub fn new(
        cmd: &redis::Cmd,
        key_index: usize,
        deadline: Instant,
    ) -> Result<(Op, Completion), OpError> {
        Op::from_packed(cmd.get_packed_command(), key_index, deadline)
    }

    /// A `SET key value`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Instant;
    /// use slotline_client::op::Op;
    ///
    /// let (op, _completion) = Op::set(b"k", b"v", Instant::now());
    /// assert_eq!(op.packed(), b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n");
    /// ```
    pub fn set(key: &[u8], value: &[u8], deadline: Instant) -> (Op, Completion) {
        let mut packed = Vec::with_capacity(32 + key.len() + value.len());
        packed.extend_from_slice(b"*3\r\n$3\r\nSET\r\n");
        push_bulk(&mut packed, key);
        let key_start = packed.len() - key.len() - 2;
        push_bulk(&mut packed, value);
        let (mut op, completion) = Op::assemble(packed, key_start..key_start + key.len(), deadline);
        op.resend_safe = true;
        (op, completion)
    }

    /// An op from a command already packed as RESP (an array of bulk strings), with its key at
    /// argument `key_index`.
    ///
    /// # Errors
    ///
    /// [`OpError::Malformed`] if `packed` is not one RESP array of bulk strings,
    /// [`OpError::NoSuchArgument`] if it has no argument `key_index`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Instant;
    /// use slotline_client::op::{Op, OpError};
    ///
    /// let packed = redis::cmd("HSET").arg("h").arg("f").arg("v").get_packed_command();
    /// let (op, _c) = Op::from_packed(packed, 1, Instant::now())?;
    /// assert_eq!(op.key(), b"h");
    /// assert_eq!(Op::from_packed(b"+OK\r\n".to_vec(), 1, Instant::now()).unwrap_err(), OpError::Malformed);
    /// # Ok::<(), OpError>(())
    /// ```
    pub fn from_packed(
        packed: Vec<u8>,
        key_index: usize,
        deadline: Instant,
    ) -> Result<(Op, Completion), OpError> {
        let key = arg_range(&packed, key_index)?;
        Ok(Op::assemble(packed, key, deadline))
    }

    /// Packs `cmd` and finds its keys by the command's key spec ([`crate::keys`]): all of
    /// them must hash to one slot, the op's slot.
    ///
    /// # Errors
    ///
    /// [`CommandError::Keys`] when the command has no key or its keys cannot be found,
    /// [`CommandError::CrossSlot`] when they hash to different slots.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use slotline_client::{op::Op, CommandError};
    ///
    /// let deadline = Instant::now() + Duration::from_secs(1);
    /// let mut eval = redis::cmd("EVAL");
    /// eval.arg("return redis.call('INCR', KEYS[1])").arg(1).arg("hits:{page7}");
    /// let (op, _completion) = Op::command(&eval, deadline)?;
    /// assert_eq!(op.key(), b"hits:{page7}");
    ///
    /// let mut mset = redis::cmd("MSET");
    /// mset.arg("a").arg(1).arg("b").arg(2);
    /// assert!(matches!(Op::command(&mset, deadline), Err(CommandError::CrossSlot { .. })));
    /// # Ok::<(), CommandError>(())
    /// ```
    pub fn command(cmd: &redis::Cmd, deadline: Instant) -> Result<(Op, Completion), CommandError> {
        Op::from_packed_command(cmd.get_packed_command(), deadline)
    }

    /// Like [`Op::command`], for a command already packed in RESP.
    ///
    /// # Errors
    ///
    /// As [`Op::command`], and [`CommandError::Malformed`] if `packed` is not a RESP array of
    /// bulk strings.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Instant;
    /// use slotline_client::op::Op;
    ///
    /// let packed = redis::cmd("INCR").arg("n:{7}").get_packed_command();
    /// let (op, _c) = Op::from_packed_command(packed, Instant::now())?;
    /// assert_eq!(op.key(), b"n:{7}");
    /// # Ok::<(), slotline_client::CommandError>(())
    /// ```
    pub fn from_packed_command(
        packed: Vec<u8>,
        deadline: Instant,
    ) -> Result<(Op, Completion), CommandError> {
        let ranges = arg_ranges(&packed).map_err(|_| CommandError::Malformed)?;
        let args: Vec<&[u8]> = ranges.iter().map(|r| &packed[r.clone()]).collect();
        let keys = crate::keys::key_indices(&args).map_err(CommandError::Keys)?;
        if let Some(reason) = not_pipelinable(&args) {
            return Err(CommandError::NotPipelinable {
                command: String::from_utf8_lossy(args[0]).into_owned(),
                reason,
            });
        }
        let Some(&first) = keys.first() else {
            let command = String::from_utf8_lossy(args.first().copied().unwrap_or_default());
            return Err(CommandError::Keys(crate::keys::KeyError::NoKey {
                command: command.into_owned(),
            }));
        };
        let slot = key_slot(args[first]);
        for &k in &keys[1..] {
            let other = key_slot(args[k]);
            if other != slot {
                return Err(CommandError::CrossSlot {
                    command: String::from_utf8_lossy(args[0]).into_owned(),
                    slots: [slot.get(), other.get()],
                });
            }
        }
        let key = ranges[first].clone();
        drop(args);
        Ok(Op::assemble(packed, key, deadline))
    }

    fn assemble(packed: Vec<u8>, key: Range<usize>, deadline: Instant) -> (Op, Completion) {
        let slot = key_slot(&packed[key.clone()]);
        let cell = Arc::new(Cell {
            stage: AtomicU8::new(QUEUED),
            state: Mutex::new(State::default()),
        });
        let completion = Completion {
            cell: Arc::clone(&cell),
            deadline,
        };
        let op = Op {
            packed: packed.into_boxed_slice(),
            key,
            slot,
            created: Instant::now(),
            deadline,
            cell,
            resend_safe: false,
            asking: false,
            maybe_applied: false,
            attempts: 0,
            redirects: 0,
            replicas: 0,
        };
        (op, completion)
    }

    /// The command in RESP, to be written to the socket as is.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use slotline_client::op::Op;
    /// let (op, _c) = Op::set(b"k", b"v", Instant::now());
    /// assert!(op.packed().starts_with(b"*3\r\n"));
    /// ```
    pub fn packed(&self) -> &[u8] {
        &self.packed
    }

    /// The bytes this op is charged for against its master's byte budget: its RESP encoding.
    pub(crate) fn charge(&self) -> u64 {
        self.packed.len() as u64
    }

    /// The key's bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use slotline_client::op::Op;
    /// let (op, _c) = Op::set(b"user:{7}", b"v", Instant::now());
    /// assert_eq!(op.key(), b"user:{7}");
    /// ```
    pub fn key(&self) -> &[u8] {
        &self.packed[self.key.clone()]
    }

    /// The key's hash slot (hash tags honoured).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use slotline_client::op::Op;
    /// let (a, _) = Op::set(b"{user7}:pos", b"v", Instant::now());
    /// let (b, _) = Op::set(b"{user7}:seen", b"v", Instant::now());
    /// assert_eq!(a.slot(), b.slot());
    /// ```
    pub fn slot(&self) -> Slot {
        self.slot
    }

    /// When the op was created (the start of its commit latency).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use slotline_client::op::Op;
    /// let before = Instant::now();
    /// let (op, _c) = Op::set(b"k", b"v", before);
    /// assert!(op.created() >= before);
    /// ```
    pub fn created(&self) -> Instant {
        self.created
    }

    /// The commit's deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use slotline_client::op::Op;
    /// let deadline = Instant::now();
    /// let (op, _c) = Op::set(b"k", b"v", deadline);
    /// assert_eq!(op.deadline(), deadline);
    /// ```
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has passed at `now`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use slotline_client::op::Op;
    /// let now = Instant::now();
    /// let (op, _c) = Op::set(b"k", b"v", now + Duration::from_millis(5));
    /// assert!(!op.is_expired(now));
    /// assert!(op.is_expired(now + Duration::from_millis(5)));
    /// ```
    pub fn is_expired(&self, now: Instant) -> bool {
        now >= self.deadline
    }

    /// The sender's claim, made just before the op is written to a socket: `true` means "send
    /// it" (from now on the caller is told it may have been applied); `false` means the caller
    /// already gave up, so the op must not be sent (drop it; its caller has its answer).
    /// Claiming twice returns `false` the second time.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use slotline_client::op::Op;
    /// let (op, completion) = Op::set(b"k", b"v", Instant::now()); // deadline already passed
    /// assert!(completion.wait().is_err()); // the caller gives up first ...
    /// assert!(!op.claim_for_send()); // ... so the writer must skip the op
    /// ```
    pub fn claim_for_send(&self) -> bool {
        self.cell
            .stage
            .compare_exchange(QUEUED, SENT, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Whether a writer has claimed the op for sending.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use slotline_client::op::Op;
    /// let (op, _c) = Op::set(b"k", b"v", Instant::now() + Duration::from_secs(1));
    /// assert!(!op.is_sent());
    /// op.claim_for_send();
    /// assert!(op.is_sent());
    /// ```
    pub fn is_sent(&self) -> bool {
        self.cell.stage.load(Ordering::Acquire) == SENT
    }

    /// Whether the caller has given up before the op was sent (it must then not be sent).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use slotline_client::op::Op;
    /// let (op, completion) = Op::set(b"k", b"v", Instant::now() + Duration::from_secs(1));
    /// drop(completion);
    /// assert!(op.is_abandoned());
    /// ```
    pub fn is_abandoned(&self) -> bool {
        self.cell.stage.load(Ordering::Acquire) == ABANDONED
    }

    /// Delivers the outcome to the caller. Returns `true` if the caller will see it, `false` if
    /// the caller had already left (deadline passed, or its `Completion` was dropped): the
    /// outcome is then discarded.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use slotline_client::{op::Op, CommitError};
    /// let (op, completion) = Op::set(b"k", b"v", Instant::now() + Duration::from_secs(1));
    /// assert!(op.complete(Err(CommitError::Rejected)));
    /// assert_eq!(completion.wait(), Err(CommitError::Rejected));
    /// ```
    pub fn complete(self, outcome: CommitResult) -> bool {
        self.complete_reply(outcome.map(|()| redis::Value::Okay))
    }

    /// Like [`Op::complete`], with the command's reply: what
    /// [`Completion::wait_reply`] returns.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use slotline_client::op::Op;
    /// let (op, completion) = Op::set(b"k", b"v", Instant::now() + Duration::from_secs(1));
    /// assert!(op.complete_reply(Ok(redis::Value::Int(7))));
    /// assert_eq!(completion.wait_reply(), Ok(redis::Value::Int(7)));
    /// ```
    pub fn complete_reply(self, outcome: ReplyResult) -> bool {
        self.cell.complete(outcome)
        // `Drop` then finds the cell completed and does nothing.
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        let outcome = if self.is_sent() {
            CommitError::ConnectionLost {
                may_have_been_applied: true,
            }
        } else {
            CommitError::Closed
        };
        self.cell.complete(Err(outcome));
    }
}

/// The caller's half of an [`Op`]: block on it with [`Completion::wait`], or `.await` it.
///
/// Dropping it before the outcome abandons the write if it was not sent yet (see the
/// [module docs](self)).
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use slotline_client::op::Op;
///
/// let (op, completion) = Op::set(b"k", b"v", Instant::now() + Duration::from_secs(1));
/// let writer = std::thread::spawn(move || {
///     if op.claim_for_send() {
///         op.complete(Ok(()));
///     }
/// });
/// assert_eq!(completion.wait(), Ok(()));
/// writer.join().unwrap();
/// ```
#[derive(Debug)]
pub struct Completion {
    cell: Arc<Cell>,
    deadline: Instant,
}

impl Completion {
    /// Blocks until the outcome arrives or the op's deadline passes.
    ///
    /// # Errors
    ///
    /// The write's [`CommitError`]; at the deadline,
    /// [`CommitError::DeadlineExceeded`] saying whether the write may have been applied.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use slotline_client::{op::Op, CommitError};
    /// let (_op, completion) = Op::set(b"k", b"v", Instant::now() + Duration::from_millis(10));
    /// assert_eq!(
    ///     completion.wait(),
    ///     Err(CommitError::DeadlineExceeded { may_have_been_applied: false })
    /// );
    /// ```
    pub fn wait(self) -> CommitResult {
        self.wait_reply().map(drop)
    }

    /// Like [`Completion::wait`], with the command's reply.
    ///
    /// # Errors
    ///
    /// As [`Completion::wait`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use slotline_client::op::Op;
    /// let (op, completion) = Op::set(b"k", b"v", Instant::now() + Duration::from_secs(1));
    /// op.complete_reply(Ok(redis::Value::Okay));
    /// assert_eq!(completion.wait_reply(), Ok(redis::Value::Okay));
    /// ```
    pub fn wait_reply(self) -> ReplyResult {
        let deadline = self.deadline;
        self.wait_reply_until(deadline)
    }

    /// Blocks until the outcome arrives or `deadline` passes (which may be earlier or later
    /// than the op's own deadline).
    ///
    /// # Errors
    ///
    /// As [`Completion::wait`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use slotline_client::op::Op;
    /// let (op, completion) = Op::set(b"k", b"v", Instant::now() + Duration::from_secs(1));
    /// op.claim_for_send();
    /// let err = completion.wait_until(Instant::now()).unwrap_err();
    /// assert!(err.may_have_been_applied());
    /// ```
    pub fn wait_until(self, deadline: Instant) -> CommitResult {
        self.wait_reply_until(deadline).map(drop)
    }

    /// Like [`Completion::wait_until`], with the command's reply.
    ///
    /// # Errors
    ///
    /// As [`Completion::wait`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use slotline_client::op::Op;
    /// let (op, completion) = Op::set(b"k", b"v", Instant::now() + Duration::from_secs(1));
    /// op.complete_reply(Ok(redis::Value::Int(1)));
    /// assert_eq!(completion.wait_reply_until(Instant::now()), Ok(redis::Value::Int(1)));
    /// ```
    pub fn wait_reply_until(self, deadline: Instant) -> ReplyResult {
        let cell = &self.cell;
        let mut registered = false;
        loop {
            let now = Instant::now();
            {
                let mut state = cell.lock();
                if let Some(outcome) = state.outcome.take() {
                    state.caller_gone = true;
                    return outcome;
                }
                if now >= deadline {
                    return cell.give_up(&mut state);
                }
                if !registered {
                    state.waiter = Some(Waiter::Thread(thread::current()));
                    registered = true;
                }
            }
            // Returns at the unpark, at the timeout, or spuriously: the loop looks again.
            thread::park_timeout(deadline - now);
        }
        // `self` drops here and finds `caller_gone` set: nothing more to do.
    }

    /// The outcome if it has arrived, without blocking.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use slotline_client::op::Op;
    /// let (op, mut completion) = Op::set(b"k", b"v", Instant::now() + Duration::from_secs(1));
    /// assert_eq!(completion.try_take(), None);
    /// op.complete(Ok(()));
    /// assert_eq!(completion.try_take(), Some(Ok(())));
    /// ```
    pub fn try_take(&mut self) -> Option<CommitResult> {
        self.try_take_reply().map(|r| r.map(drop))
    }

    /// Like [`Completion::try_take`], with the command's reply.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::{Duration, Instant};
    /// # use slotline_client::op::Op;
    /// let (op, mut completion) = Op::set(b"k", b"v", Instant::now() + Duration::from_secs(1));
    /// op.complete_reply(Ok(redis::Value::Int(3)));
    /// assert_eq!(completion.try_take_reply(), Some(Ok(redis::Value::Int(3))));
    /// ```
    pub fn try_take_reply(&mut self) -> Option<ReplyResult> {
        let mut state = self.cell.lock();
        let outcome = state.outcome.take();
        if outcome.is_some() {
            state.caller_gone = true;
        }
        outcome
    }

    /// The op's deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Instant;
    /// # use slotline_client::op::Op;
    /// let deadline = Instant::now();
    /// let (_op, completion) = Op::set(b"k", b"v", deadline);
    /// assert_eq!(completion.deadline(), deadline);
    /// ```
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

impl Completion {
    /// The [`Future`] behind `.await`, with the command's reply: ready with the outcome once
    /// it has arrived; ready with `DeadlineExceeded` when polled after the deadline; otherwise
    /// stores the task's waker (replacing an older one) and returns `Pending`.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::task::{Context, Poll, Waker};
    /// # use std::time::{Duration, Instant};
    /// # use slotline_client::op::Op;
    /// let (op, mut completion) = Op::set(b"k", b"v", Instant::now() + Duration::from_secs(1));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(completion.poll_reply(&mut cx).is_pending());
    /// op.complete_reply(Ok(redis::Value::Int(2)));
    /// assert_eq!(completion.poll_reply(&mut cx), Poll::Ready(Ok(redis::Value::Int(2))));
    /// ```
    pub fn poll_reply(&mut self, cx: &mut Context<'_>) -> Poll<ReplyResult> {
        let this = self;
        let mut state = this.cell.lock();
        if state.caller_gone {
            // Polled again after it returned `Ready`.
            return Poll::Ready(Err(CommitError::Closed));
        }
        if let Some(outcome) = state.outcome.take() {
            state.caller_gone = true;
            return Poll::Ready(outcome);
        }
        if Instant::now() >= this.deadline {
            return Poll::Ready(this.cell.give_up(&mut state));
        }
        match &mut state.waiter {
            Some(Waiter::Task(waker)) if waker.will_wake(cx.waker()) => {}
            waiter => *waiter = Some(Waiter::Task(cx.waker().clone())),
        }
        Poll::Pending
    }
}

impl Future for Completion {
    type Output = CommitResult;

    /// [`Completion::poll_reply`] without the reply.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<CommitResult> {
        self.get_mut().poll_reply(cx).map(|r| r.map(drop))
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        let mut state = self.cell.lock();
        if state.caller_gone {
            return;
        }
        // Leaving without an answer: release the waker and any outcome, and make sure an op
        // not yet sent never will be.
        state.caller_gone = true;
        state.waiter = None;
        state.outcome = None;
        let _ = self.cell.stage.compare_exchange(
            QUEUED,
            ABANDONED,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }
}

/// Why a command with keys cannot share a pipelined connection with other callers' commands,
/// if it cannot: it blocks the connection, changes its state, or gets more than one reply.
fn not_pipelinable(args: &[&[u8]]) -> Option<&'static str> {
    let name = args.first()?;
    let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
    if ["SSUBSCRIBE", "SUNSUBSCRIBE", "SUBSCRIBE", "PSUBSCRIBE"]
        .iter()
        .any(|n| is(n))
    {
        return Some("it turns the connection into a subscriber and gets a reply per channel");
    }
    if ["WATCH", "MULTI", "EXEC", "DISCARD", "UNWATCH"]
        .iter()
        .any(|n| is(n))
    {
        return Some("a transaction's state belongs to one connection, which is shared");
    }
    if [
        "BLPOP",
        "BRPOP",
        "BLMOVE",
        "BRPOPLPUSH",
        "BLMPOP",
        "BZPOPMIN",
        "BZPOPMAX",
        "BZMPOP",
    ]
    .iter()
    .any(|n| is(n))
    {
        return Some("it blocks the shared connection; use its non-blocking form");
    }
    if (is("XREAD") || is("XREADGROUP"))
        && args[1..]
            .iter()
            .take_while(|a| !a.eq_ignore_ascii_case(b"STREAMS"))
            .any(|a| a.eq_ignore_ascii_case(b"BLOCK"))
    {
        return Some("BLOCK blocks the shared connection; leave it out");
    }
    None
}

/// Appends `bytes` as a RESP bulk string.
fn push_bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    use std::io::Write as _;
    // Writing to a Vec cannot fail; `write!` formats the length without a temporary String.
    let _ = write!(out, "${}\r\n", bytes.len());
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// Where argument `index` of a packed command (`*N\r\n` then N × `$len\r\n<bytes>\r\n`) lies,
/// checking the whole command's structure on the way.
fn arg_range(packed: &[u8], index: usize) -> Result<Range<usize>, OpError> {
    let mut found = None;
    let args = walk_args(packed, |i, range| {
        if i == index {
            found = Some(range);
        }
    })?;
    found.ok_or(OpError::NoSuchArgument { index, args })
}

/// Where every argument of a packed command lies.
fn arg_ranges(packed: &[u8]) -> Result<Vec<Range<usize>>, OpError> {
    let mut ranges = Vec::new();
    walk_args(packed, |_, range| ranges.push(range))?;
    Ok(ranges)
}

/// Calls `each(index, range)` for every argument of a packed command, checking the whole
/// command's structure; returns the argument count.
fn walk_args(packed: &[u8], mut each: impl FnMut(usize, Range<usize>)) -> Result<usize, OpError> {
    fn header(packed: &[u8], pos: usize, kind: u8) -> Result<(usize, usize), OpError> {
        if packed.get(pos) != Some(&kind) {
            return Err(OpError::Malformed);
        }
        let rest = packed.get(pos + 1..).ok_or(OpError::Malformed)?;
        let len = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or(OpError::Malformed)?;
        let n = std::str::from_utf8(&rest[..len])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .ok_or(OpError::Malformed)?;
        Ok((n, pos + 1 + len + 2))
    }
    let (args, mut pos) = header(packed, 0, b'*')?;
    for i in 0..args {
        let (len, start) = header(packed, pos, b'$')?;
        let end = start.checked_add(len).ok_or(OpError::Malformed)?;
        if packed.get(end..end + 2) != Some(b"\r\n") {
            return Err(OpError::Malformed);
        }
        each(i, start..end);
        pos = end + 2;
    }
    if pos != packed.len() {
        return Err(OpError::Malformed);
    }
    Ok(args)
}

#[cfg(all(test, not(feature = "loom")))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;
    use std::time::Duration;

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    struct CountingWaker(AtomicUsize);
    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn set_packs_like_the_redis_crate() {
        let (op, _c) = Op::set(b"key", b"value", later());
        let expected = redis::cmd("SET")
            .arg("key")
            .arg("value")
            .get_packed_command();
        assert_eq!(op.packed(), expected.as_slice());
        assert_eq!(op.key(), b"key");
    }

    #[test]
    fn arg_range_rejects_malformed_commands() {
        for bad in [
            &b""[..],
            b"*1\r\n",
            b"*1\r\n$3\r\nSE",
            b"*1\r\n$3\r\nSETXX",
            b"*1\r\n$3\r\nSET\r\nextra",
            b"*x\r\n",
            b"*1\r\n+SET\r\n",
        ] {
            assert_eq!(arg_range(bad, 0), Err(OpError::Malformed), "bad={bad:?}");
        }
        assert_eq!(arg_range(b"*1\r\n$3\r\nSET\r\n", 0), Ok(8..11));
    }

    #[test]
    fn both_halves_dropped_free_the_cell() {
        let (op, completion) = Op::set(b"k", b"v", later());
        let weak = Arc::downgrade(&op.cell);
        drop(completion);
        drop(op);
        assert!(weak.upgrade().is_none());
    }

    #[test]
    fn dropped_future_releases_its_waker() {
        let (op, mut completion) = Op::set(b"k", b"v", later());
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&counter));
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut completion).poll(&mut cx).is_pending());
        assert_eq!(Arc::strong_count(&counter), 3); // ours, `waker`, the stored clone
        drop(completion);
        assert_eq!(Arc::strong_count(&counter), 2);
        assert!(!op.complete(Ok(())));
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn repolling_with_the_same_waker_does_not_clone_it_again() {
        let (op, mut completion) = Op::set(b"k", b"v", later());
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&counter));
        let mut cx = Context::from_waker(&waker);
        for _ in 0..5 {
            assert!(Pin::new(&mut completion).poll(&mut cx).is_pending());
        }
        assert_eq!(Arc::strong_count(&counter), 3);
        assert!(op.complete(Ok(())));
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert_eq!(Pin::new(&mut completion).poll(&mut cx), Poll::Ready(Ok(())));
        assert_eq!(Arc::strong_count(&counter), 2);
    }
}
