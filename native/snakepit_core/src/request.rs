//! What goes into the state machine with a request, and what comes back.

use std::time::{Duration, Instant};

use crate::effects::Failure;
use crate::outcome::Timings;
use crate::queue::Waiting;
use crate::session::Session;
use crate::stream::StreamRequest;
use crate::Host;

/// A request to run, framed by the host with its id.
pub struct Request<H: Host> {
    pub id: u64,
    pub command: String,
    pub frame: Vec<u8>,
    pub reply: H::Reply,
    /// Execution timeout, counted from when a worker gets it.
    pub timeout: Duration,
    /// The session it belongs to, if any, and how strictly it keeps to the session's worker.
    pub session: Option<Session>,
    /// Set for a streamed request (see `stream.rs`).
    pub stream: Option<StreamRequest<H>>,
}

impl<H: Host> std::fmt::Debug for Request<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("id", &self.id)
            .field("command", &self.command)
            .field("timeout", &self.timeout)
            .field("session", &self.session)
            .field("stream", &self.stream.is_some())
            .finish_non_exhaustive()
    }
}

/// Where an accepted request went.
pub enum Submitted<H: Host> {
    /// To this idle worker: the host writes the frame.
    Run { worker: H::Worker, frame: Vec<u8> },
    /// Into the queue: the host may attach a monitor of the caller ([`Dispatch::attach_monitor`]).
    Queued,
}

/// Why a request was not accepted. Rejected requests are not counted as requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    Shutdown,
    Saturated {
        max: usize,
    },
    CircuitOpen {
        failures: u32,
    },
    /// `strict_fail_fast`: the session's worker is busy.
    WorkerBusy,
    /// Strict affinity: the session's worker is gone (see `session.rs`).
    SessionWorkerUnavailable,
}

/// What [`Dispatch::check_deadline`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Deadline<L> {
    /// Not expired: check again after this long.
    Wait(Duration),
    /// Expired and withdrawn: no reply will be sent; the caller reports this failure, which
    /// came after these timings.
    Expired(Failure<L>, Timings),
    /// Answered: the reply is in, or on its way to, the caller.
    Replied,
}

/// What a worker's reply completed.
pub enum Completed<R> {
    /// A request, with its timings; `None` when it already had its outcome (timed out):
    /// discard the reply.
    Request(Option<(R, Timings)>),
    HealthCheck {
        ok: bool,
    },
    /// Not the request this worker runs: the worker is broken.
    Unexpected(String),
    /// From a worker no longer installed in that slot (or a stopping pool): ignore it.
    Stale,
}

/// A request waiting for a worker.
pub struct Queued<H: Host> {
    pub id: u64,
    pub command: String,
    pub frame: Vec<u8>,
    pub reply: H::Reply,
    pub enqueued: Instant,
    pub timeout: Duration,
    pub monitor: Option<H::Monitor>,
    pub session: Option<Session>,
    pub stream: Option<StreamRequest<H>>,
    /// Its place in submit order (see `queue.rs`).
    pub seq: u64,
}

impl<H: Host> Queued<H> {
    /// Its timings, leaving the queue at `now` without running.
    pub(crate) fn timings(&self, now: Instant) -> Timings {
        Timings::waited(self.enqueued, now)
    }
}

impl<H: Host> Waiting for Queued<H> {
    fn id(&self) -> u64 {
        self.id
    }

    fn seq(&self) -> u64 {
        self.seq
    }
}
