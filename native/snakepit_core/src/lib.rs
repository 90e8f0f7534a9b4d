//! snakepit_core: the dispatch state machine of a snakepit_rs pool, free of rustler and of I/O.
//!
//! Everything that decides *what happens* to a request or a worker lives here; everything that
//! *makes it happen* (writing frames, sending replies, signalling processes, timers) lives in the
//! NIF crate, which holds a [`Dispatch`] behind one mutex and carries out the [`Effects`] each call
//! returns after unlocking. The clock is passed into every call, so the timing rules (queue
//! timeout, execution timeout, cancel grace, health checks, recycling, start back-off) are tested
//! here with plain `cargo test`, without sleeping.
//!
//! # Layout
//! - [`dispatch`]: [`Dispatch`] — requests: submit, replies, caller deadlines, dropped callers.
//! - [`workers`]: worker life cycle on [`Dispatch`] — up, down, failed starts and back-off,
//!   recycling, stop.
//! - [`deadlines`]: the timer's side — [`Dispatch::tick`] and [`Dispatch::next_deadline`].
//! - [`request`]: a request going in ([`Request`]) and what comes back ([`Submitted`],
//!   [`Rejected`], [`Deadline`], [`Completed`]).
//! - [`queue`]: the global FIFO plus a strict and a hint FIFO per slot.
//! - [`session`]: session affinity — the session → worker map and what each mode promises.
//! - [`stream`]: streamed requests — chunks, credits (back-pressure), halting, the per-chunk
//!   idle timeout.
//! - [`slot`]: one place for a worker, and the request it runs.
//! - [`effects`]: what a call decided — [`Effects`], [`Failure`], [`Event`].
//! - [`outcome`]: how each accepted request ended and its [`Timings`], and the [`Counters`]
//!   derived from them.
//! - [`latency`]: the fixed-size histogram behind the queue- and run-time percentiles.
//! - [`config`]: the pool's rules, as durations and limits.
//! - [`log_line`]: cutting worker output into bounded log lines.

pub mod config;
pub mod deadlines;
pub mod dispatch;
pub mod effects;
pub mod latency;
pub mod log_line;
pub mod outcome;
pub mod queue;
pub mod request;
pub mod session;
pub mod slot;
pub mod stream;
pub mod workers;

pub use config::Config;
pub use dispatch::{Dispatch, Phase};
pub use effects::{Effects, Event, Failure, Send};
pub use latency::{Histogram, Percentiles};
pub use outcome::{Counters, Outcome, Stats, Timings};
pub use request::{Completed, Deadline, Rejected, Request, Submitted};
pub use session::{Affinity, Binding, Session, SessionInfo};
pub use slot::{SlotStatus, WorkerInfo};
pub use stream::{Chunked, StreamRequest};
pub use workers::Removed;

/// The types the host (the NIF, or a test) plugs into the state machine.
pub trait Host {
    /// A handle to a running worker: frames are written to it, signals sent to it.
    type Worker: Clone;
    /// Where a request's outcome goes. Dropped unanswered only when its caller is gone.
    type Reply;
    /// A monitor of a caller waiting in the queue, removed once the request leaves the queue.
    type Monitor;
    /// Why a worker's running request was lost (it crashed, it broke the protocol).
    type Loss: Clone;
    /// Where a stream's chunks go (see `stream.rs`): handed out once per chunk, so cheap to
    /// clone.
    type Sink: Clone;

    /// Whether `worker` takes stream credit (its handshake announced it): its streams then get
    /// a credit window. Others stream without limit.
    fn takes_credit(_worker: &Self::Worker) -> bool {
        false
    }

    /// Writes the credit window `window` into a streamed request's frame, as it goes to a
    /// worker that takes credit.
    fn set_window(_frame: &mut Vec<u8>, _window: std::num::NonZeroU64) {}
}
