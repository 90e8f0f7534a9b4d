//! How each accepted request ended, and how long it waited and ran. Counters and latency
//! histograms are derived from outcomes only, and the same [`Timings`] go back to the caller
//! with its reply (for telemetry), so that stats and events can never disagree: every accepted
//! request is recorded exactly once.

use std::time::{Duration, Instant};

use crate::latency::{Histogram, Percentiles};

/// How long a finished request waited for a worker and ran on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    /// From submit until a worker took it — or, if none did, until it left the queue.
    pub queue: Duration,
    /// From a worker taking it until its outcome; `None` if it never reached a worker.
    pub run: Option<Duration>,
}

impl Timings {
    /// A request that waited since `enqueued` and leaves the queue at `now` without running.
    pub fn waited(enqueued: Instant, now: Instant) -> Self {
        Timings {
            queue: now.saturating_duration_since(enqueued),
            run: None,
        }
    }

    /// A request submitted at `submitted`, taken by a worker at `dispatched`, ending at `now`.
    pub fn ran(submitted: Instant, dispatched: Instant, now: Instant) -> Self {
        Timings {
            queue: dispatched.saturating_duration_since(submitted),
            run: Some(now.saturating_duration_since(dispatched)),
        }
    }
}

/// The one way an accepted request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered with a result.
    Completed,
    /// Answered with the worker's error (the command raised, or is unknown).
    WorkerError,
    /// Ran past its execution timeout.
    Timeout,
    /// Waited past the queue timeout; never ran.
    QueueTimeout,
    /// Its worker crashed or broke the protocol while running it.
    Lost,
    /// The pool stopped first.
    Shutdown,
    /// Waited while the circuit opened.
    CircuitOpen,
    /// Its caller died while it waited; dropped, never run, never answered.
    CallerGone,
    /// It waited for its session's worker (strict affinity), which went away; never ran.
    SessionWorkerGone,
    /// A stream its consumer stopped early (or whose caller died while it ran).
    Halted,
}

impl Outcome {
    pub const ALL: [Outcome; 10] = [
        Outcome::Completed,
        Outcome::WorkerError,
        Outcome::Timeout,
        Outcome::QueueTimeout,
        Outcome::Lost,
        Outcome::Shutdown,
        Outcome::CircuitOpen,
        Outcome::CallerGone,
        Outcome::SessionWorkerGone,
        Outcome::Halted,
    ];

    /// Answered with an error.
    pub fn is_error(self) -> bool {
        !matches!(
            self,
            Outcome::Completed | Outcome::CallerGone | Outcome::Halted
        )
    }
}

/// Monotonic counters, and latency over a recent window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Accepted requests.
    pub requests: u64,
    /// Per outcome, indexed as [`Outcome::ALL`].
    pub outcomes: [u64; 10],
    /// Accepted requests that were streamed (counted in `requests` too).
    pub streams: u64,
    /// Stream chunks received from workers.
    pub chunks: u64,
    /// Rejected at submit: the queue was full.
    pub pool_saturated: u64,
    /// Rejected at submit: the circuit was open and no worker ran.
    pub circuit_rejections: u64,
    /// Rejected at submit (`strict_fail_fast`): the session's worker was busy.
    pub worker_busy: u64,
    /// Rejected at submit (strict affinity): the session's worker was gone.
    pub session_worker_unavailable: u64,
    /// Sum of submit-to-answer times of requests a worker answered.
    pub response_time: Duration,
    pub worker_crashes: u64,
    pub worker_starts: u64,
    pub worker_start_failures: u64,
    pub workers_killed: u64,
    pub worker_recycles: u64,
    pub health_checks: u64,
    /// Queue times ([`Timings::queue`]) of finished requests, over a recent window.
    pub queue_time: Histogram,
    /// Run times ([`Timings::run`]) of finished requests that reached a worker.
    pub run_time: Histogram,
}

impl Counters {
    /// Records how one accepted request ended, and its timings; returns them (for its reply).
    pub fn record(&mut self, outcome: Outcome, timings: Timings) -> Timings {
        self.outcomes[outcome as usize] += 1;
        self.queue_time.record(timings.queue);
        if let Some(run) = timings.run {
            self.run_time.record(run);
            if matches!(outcome, Outcome::Completed | Outcome::WorkerError) {
                self.response_time += timings.queue + run;
            }
        }
        timings
    }

    /// Percentiles of queue times over the recent window.
    pub fn queue_percentiles(&self) -> Percentiles {
        self.queue_time.percentiles()
    }

    /// Percentiles of run times over the recent window.
    pub fn run_percentiles(&self) -> Percentiles {
        self.run_time.percentiles()
    }

    pub fn outcome(&self, outcome: Outcome) -> u64 {
        self.outcomes[outcome as usize]
    }

    /// Accepted requests answered with an error.
    pub fn errors(&self) -> u64 {
        Outcome::ALL
            .iter()
            .filter(|outcome| outcome.is_error())
            .map(|&outcome| self.outcome(outcome))
            .sum()
    }
}

/// One consistent snapshot: `requests == Σ outcomes + in_flight + queued`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub counters: Counters,
    /// Workers running (installed).
    pub workers: usize,
    pub available: usize,
    /// Slots running something (a request, a health check, a timed-out request not yet answered).
    pub busy: usize,
    /// Accepted requests running now with no outcome yet.
    pub in_flight: usize,
    pub queued: usize,
    pub circuit_open: bool,
    /// Sessions bound to a worker (expired ones not yet dropped included).
    pub sessions: usize,
}
