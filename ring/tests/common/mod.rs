//! Helpers shared by the test files.

use std::panic::resume_unwind;
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::thread;
use std::time::Duration;

/// Runs `test` on its own thread and fails if it has not finished within `limit`, so a
/// deadlock or a lost item fails the test instead of hanging the run. A panic in `test` is
/// passed on as is.
pub fn within<F: FnOnce() + Send + 'static>(limit: Duration, test: F) {
    let (done, finished) = channel();
    let handle = thread::spawn(move || {
        test();
        let _ = done.send(());
    });
    match finished.recv_timeout(limit) {
        Ok(()) => handle.join().unwrap(),
        Err(RecvTimeoutError::Disconnected) => match handle.join() {
            Err(panic) => resume_unwind(panic),
            Ok(()) => unreachable!("the test thread ended without reporting"),
        },
        Err(RecvTimeoutError::Timeout) => {
            panic!("still running after {limit:?}: deadlocked, hung or lost an item")
        }
    }
}
