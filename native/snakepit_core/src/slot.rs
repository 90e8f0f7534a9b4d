//! One place for a worker. A crashed worker's replacement takes the same slot; a recycled
//! worker's replacement takes another, so capacity never drops while it starts.

use std::time::{Duration, Instant};

use crate::outcome::Timings;
use crate::stream::Stream;
use crate::Host;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SlotStatus {
    /// A worker is being started for it.
    Starting,
    /// Its last start failed; the next is due at `Slot::retry_at`.
    Waiting,
    Idle,
    /// Running a request (or a health check, or a timed-out request not yet answered).
    Busy,
    /// Replaced by a recycled worker: gets no new work and exits once its request is done.
    Draining,
    /// Unused: the slot of a retired worker, free for the next recycled one.
    Vacant,
}

/// What a slot's worker runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Request,
    HealthCheck,
}

/// A request running on a worker.
pub struct InFlight<H: Host> {
    pub id: u64,
    pub kind: Kind,
    pub command: String,
    /// `None` once the request has its outcome (timed out), and for health checks: a late reply
    /// is then discarded.
    pub reply: Option<H::Reply>,
    pub submitted: Instant,
    pub dispatched: Instant,
    pub timeout: Duration,
    /// When its execution timeout passed (or, for a stream, its idle timeout, or it was halted):
    /// the worker then has the cancel grace to answer.
    pub expired_at: Option<Instant>,
    pub cancel_sent: bool,
    /// The worker was killed for not answering (once).
    pub killed: bool,
    /// Set for a streamed request.
    pub stream: Option<Stream<H>>,
    /// The session of the request, if any: what the worker prints while it runs is logged
    /// with it.
    pub session_id: Option<String>,
}

impl<H: Host> InFlight<H> {
    /// A request (not a health check) starting now on its worker.
    pub(crate) fn request(
        id: u64,
        command: String,
        reply: H::Reply,
        submitted: Instant,
        now: Instant,
        timeout: Duration,
        stream: Option<Stream<H>>,
    ) -> Self {
        InFlight {
            id,
            kind: Kind::Request,
            command,
            reply: Some(reply),
            submitted,
            dispatched: now,
            timeout,
            expired_at: None,
            cancel_sent: false,
            killed: false,
            stream,
            session_id: None,
        }
    }

    /// When it times out: its execution timeout, or sooner a stream's idle timeout.
    pub fn deadline(&self) -> Instant {
        let whole = self.dispatched + self.timeout;
        match self.stream.as_ref().and_then(Stream::idle_deadline) {
            Some(idle) => idle.min(whole),
            None => whole,
        }
    }

    /// Its timings, ending at `now`.
    pub fn timings(&self, now: Instant) -> Timings {
        Timings::ran(self.submitted, self.dispatched, now)
    }

    /// Running with no outcome yet.
    pub fn pending(&self) -> bool {
        self.kind == Kind::Request && self.reply.is_some()
    }
}

pub struct Slot<H: Host> {
    /// The installed worker and its uid (unique across the run: tells a replacement apart from
    /// the worker it replaced).
    pub worker: Option<(u64, H::Worker)>,
    pub status: SlotStatus,
    pub inflight: Option<InFlight<H>>,
    /// Requests answered by the workers of this slot.
    pub requests: u64,
    /// Requests of this slot's workers that ended in an error: answered with one, timed out,
    /// or lost with their worker.
    pub errors: u64,
    /// When a worker of this slot last finished a request (health checks aside).
    pub last_used: Option<Instant>,
    /// Requests answered by the current worker (for `worker_max_requests`).
    pub served: u64,
    /// When the current worker was installed (for `worker_ttl`).
    pub installed: Instant,
    /// When the current worker last finished something (for health checks).
    pub last_active: Instant,
    /// A replacement is starting for this worker (recycling).
    pub retiring: bool,
    /// The worker being started here replaces (recycles) this slot's worker, by uid.
    pub replaces: Option<(usize, u64)>,
    /// Consecutive failed starts of this slot, and when the next is due.
    pub failures: u32,
    pub retry_at: Option<Instant>,
    /// Still part of the pool's initial round of starts.
    pub initial: bool,
}

impl<H: Host> Slot<H> {
    pub fn new(status: SlotStatus, now: Instant) -> Self {
        Slot {
            worker: None,
            status,
            inflight: None,
            requests: 0,
            errors: 0,
            last_used: None,
            served: 0,
            installed: now,
            last_active: now,
            retiring: false,
            replaces: None,
            failures: 0,
            retry_at: None,
            initial: false,
        }
    }

    pub fn holds(&self, uid: u64) -> bool {
        matches!(&self.worker, Some((current, _)) if *current == uid)
    }

    pub fn worker(&self) -> Option<&H::Worker> {
        self.worker.as_ref().map(|(_, worker)| worker)
    }
}

/// A snapshot of one slot for `list_workers`.
pub struct WorkerInfo<W> {
    pub worker: Option<W>,
    pub status: SlotStatus,
    pub requests: u64,
    pub errors: u64,
    /// When a worker of the slot last finished a request; `None` if none has.
    pub last_used: Option<Instant>,
    /// When the current worker was installed (or the slot began, while none is).
    pub installed: Instant,
}
