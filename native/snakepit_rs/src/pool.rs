//! The pool: worker slots, the request queue, dispatch and counters.
//!
//! All scheduling state sits behind one short-held mutex. The hot path has no hand-off: `submit`
//! (a NIF on the caller's scheduler) frames the request and writes it straight to a free worker's
//! pipe; the worker's reader thread takes the reply, hands the worker its next queued request and
//! sends the reply to the caller. Timeouts are driven by the caller, which waits in `receive ...
//! after` and then asks `check_deadline` whether its request expired; the pool answers atomically,
//! so a request either expires (and is never sent) or is answered (exactly once).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rustler::{LocalPid, Term};

use crate::config::PoolConfig;
use crate::error::PoolError;
use crate::events::Owner;
use crate::reply::{deliver_errors, ReplyTo};
use crate::request::{encode_request, RequestError, RequestHead};
use crate::worker::WorkerHandle;

/// Longest command name accepted.
pub const MAX_COMMAND_BYTES: usize = 1024;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    /// Initial workers are starting; requests queue.
    Starting,
    Running,
    /// No initial worker could start.
    Failed,
    Stopping,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SlotStatus {
    Starting,
    Idle,
    Busy,
}

/// A request running on a worker.
struct InFlight {
    id: u64,
    command: String,
    /// `None` once the caller gave up (timeout): the reply is discarded, the worker stays busy
    /// until it has answered.
    reply_to: Option<ReplyTo>,
    submitted: Instant,
    dispatched: Instant,
    timeout: Duration,
}

/// A request waiting for a worker, already framed.
struct Queued {
    id: u64,
    command: String,
    frame: Vec<u8>,
    reply_to: ReplyTo,
    enqueued: Instant,
    timeout: Duration,
}

/// One place for a worker; a crashed worker's replacement takes the same slot.
struct Slot {
    worker: Option<Arc<WorkerHandle>>,
    status: SlotStatus,
    inflight: Option<InFlight>,
    /// Requests answered by the workers of this slot.
    requests: u64,
}

struct State {
    phase: Phase,
    slots: Vec<Slot>,
    /// Idle slots, oldest first, so work spreads over all workers.
    idle: VecDeque<usize>,
    queue: VecDeque<Queued>,
}

/// Monotonic counters behind `Snakepit.get_stats/1`.
#[derive(Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub completed: AtomicU64,
    pub errors: AtomicU64,
    pub queue_timeouts: AtomicU64,
    pub pool_saturated: AtomicU64,
    pub timeouts: AtomicU64,
    pub worker_crashes: AtomicU64,
    pub worker_starts: AtomicU64,
    /// Sum of submit-to-reply times of completed requests, in microseconds.
    pub response_micros: AtomicU64,
}

pub struct Pool {
    pub config: PoolConfig,
    pub owner: Owner,
    pub counters: Counters,
    state: Mutex<State>,
    next_request_id: AtomicU64,
    /// Every spawned, not yet reaped worker process (also those still starting), for stop.
    processes: Mutex<Vec<Arc<WorkerHandle>>>,
    /// Signalled whenever a process is reaped.
    reaped: Condvar,
}

/// What `check_deadline` found.
pub enum Deadline {
    /// Not expired: wait this much longer.
    Wait(u64),
    /// Expired and withdrawn: no reply will be sent.
    Expired(PoolError),
    /// Answered: the reply is in, or on its way to, the caller's mailbox.
    Replied,
}

/// A snapshot of one worker for `list_workers`.
pub struct WorkerInfo {
    pub id: Option<String>,
    pub os_pid: Option<u32>,
    pub status: SlotStatus,
    pub requests: u64,
}

impl Pool {
    pub fn new(config: PoolConfig, owner: LocalPid) -> Self {
        let slots = (0..config.size)
            .map(|_| Slot {
                worker: None,
                status: SlotStatus::Starting,
                inflight: None,
                requests: 0,
            })
            .collect();
        Pool {
            config,
            owner: Owner::new(owner),
            counters: Counters::default(),
            state: Mutex::new(State {
                phase: Phase::Starting,
                slots,
                idle: VecDeque::new(),
                queue: VecDeque::new(),
            }),
            next_request_id: AtomicU64::new(1),
            processes: Mutex::new(Vec::new()),
            reaped: Condvar::new(),
        }
    }

    /// Accepts a request: runs it on a free worker at once or queues it. Returns its id.
    pub fn submit(
        &self,
        caller: LocalPid,
        tag: Term,
        command: &str,
        args: Term,
        session_id: Option<&str>,
        timeout_ms: u64,
    ) -> Result<u64, PoolError> {
        validate_command(command)?;
        let id = self.next_request_id.fetch_add(1, Relaxed);
        let mut frame = Vec::with_capacity(256);
        let head = RequestHead {
            command,
            session_id,
            stream: false,
        };
        encode_request(&mut frame, id, &head, args, self.config.max_frame_size).map_err(
            |error| match error {
                RequestError::Args(error) => PoolError::InvalidArgs(error.to_string()),
                RequestError::Frame(_) => PoolError::ArgsTooLarge {
                    size: frame.len(),
                    max: self.config.max_frame_size,
                },
            },
        )?;
        let reply_to = ReplyTo::new(caller, tag);
        let now = Instant::now();
        let timeout = Duration::from_millis(timeout_ms);

        let mut state = self.state.lock();
        match state.phase {
            Phase::Failed => {
                return Err(PoolError::PoolNotInitialized(
                    "pool has no workers: none could be started".into(),
                ))
            }
            Phase::Stopping => return Err(PoolError::PoolShutdown),
            Phase::Starting | Phase::Running => {}
        }
        self.counters.requests.fetch_add(1, Relaxed);
        if let Some(slot) = state.idle.pop_front() {
            let slot = &mut state.slots[slot];
            slot.status = SlotStatus::Busy;
            slot.inflight = Some(InFlight {
                id,
                command: command.to_string(),
                reply_to: Some(reply_to),
                submitted: now,
                dispatched: now,
                timeout,
            });
            let worker = Arc::clone(slot.worker.as_ref().expect("idle slot has a worker"));
            drop(state);
            worker.send_frame(frame);
        } else if state.queue.len() >= self.config.max_queue_size {
            self.counters.pool_saturated.fetch_add(1, Relaxed);
            self.counters.errors.fetch_add(1, Relaxed);
            return Err(PoolError::PoolSaturated {
                max: self.config.max_queue_size,
            });
        } else {
            state.queue.push_back(Queued {
                id,
                command: command.to_string(),
                frame,
                reply_to,
                enqueued: now,
                timeout,
            });
        }
        Ok(id)
    }

    /// Withdraws request `id` if it is past its deadline (queue timeout while queued, execution
    /// timeout while running), else says how long it still has.
    pub fn check_deadline(&self, id: u64) -> Deadline {
        let queue_timeout = Duration::from_millis(self.config.queue_timeout_ms);
        let now = Instant::now();
        let mut state = self.state.lock();
        if let Some(position) = state.queue.iter().position(|queued| queued.id == id) {
            let queued = &state.queue[position];
            let waited = now - queued.enqueued;
            if waited < queue_timeout {
                // Check again by the queue deadline, or one execution timeout from now: the
                // request may reach a worker meanwhile, and its execution timeout starts then.
                return Deadline::Wait(millis_left((queue_timeout - waited).min(queued.timeout)));
            }
            state.queue.remove(position);
            self.counters.queue_timeouts.fetch_add(1, Relaxed);
            self.counters.errors.fetch_add(1, Relaxed);
            return Deadline::Expired(PoolError::QueueTimeout {
                waited_ms: waited.as_millis() as u64,
            });
        }
        for slot in state.slots.iter_mut() {
            let Some(inflight) = slot.inflight.as_mut() else {
                continue;
            };
            if inflight.id != id || inflight.reply_to.is_none() {
                continue;
            }
            let ran = now - inflight.dispatched;
            if ran < inflight.timeout {
                return Deadline::Wait(millis_left(inflight.timeout - ran));
            }
            // Abandon: the worker stays busy (no new work) until it answers or is replaced.
            inflight.reply_to = None;
            self.counters.timeouts.fetch_add(1, Relaxed);
            self.counters.errors.fetch_add(1, Relaxed);
            return Deadline::Expired(PoolError::Timeout {
                command: inflight.command.clone(),
                timeout_ms: inflight.timeout.as_millis() as u64,
            });
        }
        Deadline::Replied
    }

    /// A worker answered request `id`: frees the worker (or hands it the next queued request) and
    /// returns where the answer goes. Called on the worker's reader thread.
    pub fn complete(
        &self,
        slot_index: usize,
        worker: &Arc<WorkerHandle>,
        id: u64,
        failed: bool,
    ) -> Result<Option<ReplyTo>, String> {
        let now = Instant::now();
        let mut expired = Vec::new();
        let (inflight, next) = {
            let mut state = self.state.lock();
            let state = &mut *state;
            let slot = &mut state.slots[slot_index];
            if !is_current(slot, worker) {
                return Ok(None);
            }
            match &slot.inflight {
                Some(inflight) if inflight.id == id => {}
                Some(inflight) => {
                    return Err(format!(
                        "reply for request {id} while request {} is running",
                        inflight.id
                    ))
                }
                None => return Err(format!("reply for request {id}, which is not running")),
            }
            let inflight = slot.inflight.take().unwrap();
            slot.requests += 1;
            let next = self.next_request(state, slot_index, now, &mut expired);
            (inflight, next)
        };
        if let Some(frame) = next {
            worker.send_frame(frame);
        }
        self.counters.completed.fetch_add(1, Relaxed);
        self.counters
            .response_micros
            .fetch_add((now - inflight.submitted).as_micros() as u64, Relaxed);
        if failed && inflight.reply_to.is_some() {
            self.counters.errors.fetch_add(1, Relaxed);
        }
        deliver_errors(expired);
        Ok(inflight.reply_to)
    }

    /// Gives slot `slot_index` its next request from the queue, or marks it idle. Requests that
    /// waited past the queue timeout are failed (collected in `expired`), never run.
    fn next_request(
        &self,
        state: &mut State,
        slot_index: usize,
        now: Instant,
        expired: &mut Vec<(ReplyTo, PoolError)>,
    ) -> Option<Vec<u8>> {
        let queue_timeout = Duration::from_millis(self.config.queue_timeout_ms);
        while let Some(queued) = state.queue.pop_front() {
            let waited = now - queued.enqueued;
            if waited >= queue_timeout {
                self.counters.queue_timeouts.fetch_add(1, Relaxed);
                self.counters.errors.fetch_add(1, Relaxed);
                let waited_ms = waited.as_millis() as u64;
                expired.push((queued.reply_to, PoolError::QueueTimeout { waited_ms }));
                continue;
            }
            let slot = &mut state.slots[slot_index];
            slot.status = SlotStatus::Busy;
            slot.inflight = Some(InFlight {
                id: queued.id,
                command: queued.command,
                reply_to: Some(queued.reply_to),
                submitted: queued.enqueued,
                dispatched: now,
                timeout: queued.timeout,
            });
            return Some(queued.frame);
        }
        state.slots[slot_index].status = SlotStatus::Idle;
        state.idle.push_back(slot_index);
        None
    }

    /// Puts a worker that completed its handshake into its slot and gives it work.
    /// Returns false when the pool is stopping (the caller then stops the worker).
    pub fn install(&self, slot_index: usize, worker: Arc<WorkerHandle>) -> bool {
        let mut expired = Vec::new();
        let next = {
            let mut state = self.state.lock();
            if state.phase == Phase::Stopping || state.phase == Phase::Failed {
                return false;
            }
            let slot = &mut state.slots[slot_index];
            slot.worker = Some(Arc::clone(&worker));
            slot.inflight = None;
            self.next_request(&mut state, slot_index, Instant::now(), &mut expired)
        };
        self.counters.worker_starts.fetch_add(1, Relaxed);
        if let Some(frame) = next {
            worker.send_frame(frame);
        }
        deliver_errors(expired);
        true
    }

    /// The worker in `slot_index` is gone (exited, or broke the protocol): fails its request with
    /// `error_for_inflight` and empties the slot. Returns whether a replacement should start.
    pub fn remove_worker(
        &self,
        slot_index: usize,
        worker: &Arc<WorkerHandle>,
        error_for_inflight: PoolError,
    ) -> bool {
        let inflight = {
            let mut state = self.state.lock();
            if !is_current(&state.slots[slot_index], worker) {
                return false;
            }
            state.idle.retain(|&idle| idle != slot_index);
            let slot = &mut state.slots[slot_index];
            slot.worker = None;
            slot.status = SlotStatus::Starting;
            let inflight = slot.inflight.take();
            if state.phase != Phase::Stopping {
                self.counters.worker_crashes.fetch_add(1, Relaxed);
            }
            (inflight, state.phase)
        };
        let (inflight, phase) = inflight;
        if let Some(reply_to) = inflight.and_then(|inflight| inflight.reply_to) {
            self.counters.errors.fetch_add(1, Relaxed);
            deliver_errors(vec![(reply_to, error_for_inflight)]);
        }
        matches!(phase, Phase::Starting | Phase::Running)
    }

    /// Records the outcome of the initial start. With no worker at all the pool fails, and
    /// everything queued is refused.
    pub fn finish_start(&self, started: usize) -> Phase {
        let mut state = self.state.lock();
        if state.phase != Phase::Starting {
            return state.phase;
        }
        if started == 0 {
            state.phase = Phase::Failed;
            let failed = state
                .queue
                .drain(..)
                .map(|queued| {
                    let error =
                        PoolError::PoolNotInitialized("no worker of the pool could start".into());
                    (queued.reply_to, error)
                })
                .collect();
            drop(state);
            deliver_errors(failed);
            Phase::Failed
        } else {
            state.phase = Phase::Running;
            Phase::Running
        }
    }

    pub fn phase(&self) -> Phase {
        self.state.lock().phase
    }

    /// Registers a spawned process for stop. Returns false (and the caller must kill it) when the
    /// pool is already stopping.
    pub fn track_process(&self, worker: &Arc<WorkerHandle>) -> bool {
        let state = self.state.lock();
        if state.phase == Phase::Stopping {
            return false;
        }
        self.processes.lock().push(Arc::clone(worker));
        true
    }

    /// Called once a worker process has been reaped.
    pub fn untrack_process(&self, worker: &Arc<WorkerHandle>) {
        let mut processes = self.processes.lock();
        processes.retain(|tracked| tracked.uid != worker.uid);
        self.reaped.notify_all();
    }

    /// Enters the stopping phase: refuses new work, fails everything queued or running with
    /// `:pool_shutdown`, closes request pipes and sends SIGTERM to every worker group. Never blocks.
    /// Returns false if stop had already begun.
    pub fn begin_stop(&self) -> bool {
        let failed: Vec<(ReplyTo, PoolError)> = {
            let mut state = self.state.lock();
            if state.phase == Phase::Stopping {
                return false;
            }
            state.phase = Phase::Stopping;
            let queued = state.queue.drain(..).map(|queued| queued.reply_to);
            let mut failed: Vec<_> = queued.map(|r| (r, PoolError::PoolShutdown)).collect();
            for slot in state.slots.iter_mut() {
                if let Some(reply_to) = slot.inflight.take().and_then(|i| i.reply_to) {
                    failed.push((reply_to, PoolError::PoolShutdown));
                }
            }
            state.idle.clear();
            failed
        };
        deliver_errors(failed);
        for worker in self.processes.lock().iter() {
            worker.close_requests();
            worker.signal_group(libc::SIGTERM);
        }
        true
    }

    /// Waits up to `grace` for every worker to exit, then kills what is left with SIGKILL and
    /// waits for it to be reaped. Blocks: call from a dirty scheduler or a blocking thread.
    pub fn await_stopped(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        let mut processes = self.processes.lock();
        while !processes.is_empty() {
            if self.reaped.wait_until(&mut processes, deadline).timed_out() {
                break;
            }
        }
        for worker in processes.iter() {
            worker.signal_group(libc::SIGKILL);
        }
        // SIGKILL cannot be ignored; the bound only guards against a process stuck in the kernel.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !processes.is_empty() {
            if self.reaped.wait_until(&mut processes, deadline).timed_out() {
                break;
            }
        }
    }

    pub fn workers(&self) -> Vec<WorkerInfo> {
        let state = self.state.lock();
        state
            .slots
            .iter()
            .map(|slot| WorkerInfo {
                id: slot.worker.as_ref().map(|w| w.id.clone()),
                os_pid: slot.worker.as_ref().map(|w| w.os_pid),
                status: slot.status,
                requests: slot.requests,
            })
            .collect()
    }

    /// (workers, available, busy, queued) right now.
    pub fn occupancy(&self) -> (usize, usize, usize, usize) {
        let state = self.state.lock();
        let workers = state.slots.iter().filter(|s| s.worker.is_some()).count();
        let busy = state
            .slots
            .iter()
            .filter(|s| s.status == SlotStatus::Busy)
            .count();
        (workers, state.idle.len(), busy, state.queue.len())
    }

    pub fn worker_ids(&self) -> Vec<Arc<WorkerHandle>> {
        self.processes.lock().clone()
    }

    pub fn slot_count(&self) -> usize {
        self.config.size
    }
}

fn is_current(slot: &Slot, worker: &Arc<WorkerHandle>) -> bool {
    matches!(&slot.worker, Some(current) if current.uid == worker.uid)
}

fn millis_left(left: Duration) -> u64 {
    (left.as_micros() as u64).div_ceil(1000).max(1)
}

fn validate_command(command: &str) -> Result<(), PoolError> {
    if command.is_empty() {
        return Err(PoolError::InvalidCommand(
            "command must not be empty".into(),
        ));
    }
    if command.len() > MAX_COMMAND_BYTES {
        return Err(PoolError::InvalidCommand(format!(
            "command is {} bytes long; the limit is {MAX_COMMAND_BYTES}",
            command.len()
        )));
    }
    if command.chars().any(char::is_control) {
        return Err(PoolError::InvalidCommand(format!(
            "command {command:?} contains control characters"
        )));
    }
    Ok(())
}
