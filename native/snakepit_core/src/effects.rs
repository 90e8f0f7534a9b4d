//! What a call on [`crate::Dispatch`] decided, for the host to carry out after unlocking.

use std::num::NonZeroU64;
use std::time::Duration;

use crate::outcome::Timings;
use crate::Host;

/// Something to write to a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Send {
    /// A framed request, as the host built it.
    Frame(Vec<u8>),
    /// Ask the worker to stop request `id` (its timeout passed, or its stream was halted).
    Cancel(u64),
    /// Stream `id`'s consumer took this many more chunks: the worker may send as many more.
    Credit(u64, NonZeroU64),
    /// A health check with this request id.
    HealthCheck(u64),
}

/// Why a request failed, for the host to turn into its own error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure<L> {
    /// It waited this long for a worker, past the queue timeout; it never ran.
    QueueTimeout { waited: Duration },
    /// It ran past its execution timeout.
    Timeout { command: String, timeout: Duration },
    /// A stream whose worker sent no chunk (nor its final reply) for this long while it could.
    ChunkTimeout { command: String, timeout: Duration },
    /// Its worker went away while running it.
    Lost(L),
    /// The pool stopped first.
    Shutdown,
    /// It waited while no worker ran and the last `failures` starts failed.
    CircuitOpen { failures: u32 },
    /// It waited for its session's worker (strict affinity), which went away.
    SessionWorkerUnavailable,
}

/// Pool-level news for the owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The initial starts are done and `started` workers run.
    Ready { started: usize },
    /// No initial start succeeded (the last error); the pool keeps retrying with back-off.
    StartFailed { message: String },
    /// `failures` starts failed in a row.
    CircuitOpened { failures: u32 },
    /// A worker started after the circuit opened.
    CircuitClosed,
    /// The caller of queued request `request` died; the request was dropped, never run.
    CallerGone { request: u64 },
    /// A worker answered its health check.
    HealthCheckPassed,
}

/// Work decided under the lock, carried out after it is released, in field order.
#[must_use]
pub struct Effects<H: Host> {
    pub sends: Vec<(H::Worker, Send)>,
    /// Requests to answer with an error.
    pub failures: Vec<(H::Reply, Failure<H::Loss>)>,
    /// The timings of `failures`, index for index (kept apart so that the failures read as
    /// what they are; [`Effects::fail`] pushes both).
    pub failure_timings: Vec<Timings>,
    /// Monitors of callers whose request left the queue.
    pub demonitors: Vec<H::Monitor>,
    /// Replies that will never be sent (the caller answered itself, or died): handed back so
    /// the host frees them after unlocking.
    pub withdrawn: Vec<H::Reply>,
    /// Workers to kill (SIGKILL to the process group).
    pub kills: Vec<H::Worker>,
    /// Workers to ask to exit (close their request pipe).
    pub closes: Vec<H::Worker>,
    /// Slots whose worker must be started now.
    pub starts: Vec<usize>,
    pub events: Vec<Event>,
    /// Sessions whose binding expired unused (see `session.rs`): the host tells the workers,
    /// which drop what they kept for them.
    pub ended_sessions: Vec<String>,
}

impl<H: Host> Default for Effects<H> {
    fn default() -> Self {
        Effects {
            sends: Vec::new(),
            failures: Vec::new(),
            failure_timings: Vec::new(),
            demonitors: Vec::new(),
            withdrawn: Vec::new(),
            kills: Vec::new(),
            closes: Vec::new(),
            starts: Vec::new(),
            events: Vec::new(),
            ended_sessions: Vec::new(),
        }
    }
}

impl<H: Host> Effects<H> {
    /// Request `reply` failed with `failure` after `timings`.
    pub fn fail(&mut self, reply: H::Reply, failure: Failure<H::Loss>, timings: Timings) {
        self.failures.push((reply, failure));
        self.failure_timings.push(timings);
    }

    pub fn is_empty(&self) -> bool {
        self.sends.is_empty()
            && self.failures.is_empty()
            && self.demonitors.is_empty()
            && self.withdrawn.is_empty()
            && self.kills.is_empty()
            && self.closes.is_empty()
            && self.starts.is_empty()
            && self.events.is_empty()
            && self.ended_sessions.is_empty()
    }
}
