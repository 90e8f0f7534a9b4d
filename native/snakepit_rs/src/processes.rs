//! Every worker process the pool spawned and has not reaped yet (those still starting too), so
//! that stop can signal them all and wait until they are gone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::worker::WorkerHandle;

#[derive(Default)]
pub struct Processes {
    state: Mutex<State>,
    /// Signalled whenever a process is reaped.
    reaped: Condvar,
}

#[derive(Default)]
struct State {
    live: Vec<Arc<WorkerHandle>>,
    /// Stop has begun: a process spawned from now on must be killed by its starter.
    closed: bool,
}

impl Processes {
    /// Registers a spawned process. False when stop has begun (the caller kills it).
    pub fn track(&self, worker: &Arc<WorkerHandle>) -> bool {
        let mut state = self.state.lock();
        if state.closed {
            return false;
        }
        state.live.push(Arc::clone(worker));
        true
    }

    /// A process was reaped.
    pub fn untrack(&self, worker: &WorkerHandle) {
        self.state
            .lock()
            .live
            .retain(|tracked| tracked.uid != worker.uid);
        self.reaped.notify_all();
    }

    /// Begins stop: no new process is tracked; returns those alive now.
    pub fn close(&self) -> Vec<Arc<WorkerHandle>> {
        let mut state = self.state.lock();
        state.closed = true;
        state.live.clone()
    }

    /// Stop has begun.
    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    pub fn snapshot(&self) -> Vec<Arc<WorkerHandle>> {
        self.state.lock().live.clone()
    }

    /// Waits up to `grace` for every process to be reaped, then kills what is left with
    /// SIGKILL and waits for that. Blocks: call from a dirty scheduler or a blocking thread.
    pub fn await_gone(&self, grace: Duration) {
        let mut state = self.state.lock();
        let deadline = Instant::now() + grace;
        while !state.live.is_empty() {
            if self.reaped.wait_until(&mut state, deadline).timed_out() {
                break;
            }
        }
        for worker in &state.live {
            worker.signal_group(libc::SIGKILL);
        }
        // SIGKILL cannot be ignored; the bound only guards against a process stuck in the kernel.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !state.live.is_empty() {
            if self.reaped.wait_until(&mut state, deadline).timed_out() {
                break;
            }
        }
    }
}
