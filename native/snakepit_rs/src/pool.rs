//! The pool: worker slots, the request queue, dispatch, deadlines and counters.
//!
//! All scheduling state sits behind one short-held mutex; work that must not happen under it
//! (pipe writes, replies, signals) is collected as [`Effects`] and carried out after unlocking.
//!
//! The hot path has no hand-off: `submit` (a NIF on the caller's scheduler) frames the request and
//! writes it straight to a free worker's pipe; the worker's reader thread takes the reply, hands
//! the worker its next queued request and sends the reply to the caller.
//!
//! Deadlines are enforced twice over the same atomic state: by the caller, which waits in
//! `receive ... after` and then asks [`Pool::check_deadline`] (exact timing), and by the sweeper
//! ([`Pool::sweep`], every few tens of milliseconds), which also covers callers that died, sends
//! cancel frames, kills workers that ignore them, runs health checks and recycles old workers.
//! Either way a request expires (and is never sent, or its late reply is discarded) or is
//! answered — exactly once.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rustler::{Env, LocalPid, Monitor, ResourceArc, Term};

use crate::codec::JsonWriter;
use crate::config::PoolConfig;
use crate::error::PoolError;
use crate::events::Owner;
use crate::reply::{deliver_errors, ReplyTo};
use crate::request::{encode_cancel, encode_request, RequestError, RequestHead};
use crate::resource::PoolResource;
use crate::worker::WorkerHandle;

/// Longest command name accepted.
pub const MAX_COMMAND_BYTES: usize = 1024;

/// The command a health check sends.
const HEALTH_CHECK_COMMAND: &str = "ping";

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
    /// Its worker is starting (or being replaced).
    Starting,
    Idle,
    Busy,
    /// Replaced by a recycled worker: gets no new work and exits once its request is done.
    Draining,
    /// Unused: the slot of a retired worker, free for the next recycled one.
    Vacant,
}

/// A request running on a worker.
struct InFlight {
    id: u64,
    command: String,
    /// `None` once the caller was answered with `:timeout` (or gave up), and for health checks:
    /// the late reply is then discarded.
    reply_to: Option<ReplyTo>,
    health_check: bool,
    submitted: Instant,
    dispatched: Instant,
    timeout: Duration,
    /// When the execution timeout passed: from then on the worker has `cancel_grace` to answer
    /// (it is sent a cancel frame) before it is killed.
    expired_at: Option<Instant>,
    cancel_sent: bool,
    /// The worker was sent SIGKILL for not answering (once).
    killed: bool,
}

impl InFlight {
    fn new(
        id: u64,
        command: String,
        reply_to: Option<ReplyTo>,
        health_check: bool,
        submitted: Instant,
        dispatched: Instant,
        timeout: Duration,
    ) -> Self {
        InFlight {
            id,
            command,
            reply_to,
            health_check,
            submitted,
            dispatched,
            timeout,
            expired_at: None,
            cancel_sent: false,
            killed: false,
        }
    }
}

/// A request waiting for a worker, already framed.
struct Queued {
    id: u64,
    command: String,
    frame: Vec<u8>,
    reply_to: ReplyTo,
    enqueued: Instant,
    timeout: Duration,
    /// Monitor of the caller, so that a caller that dies is dropped from the queue.
    monitor: Option<Monitor>,
}

/// One place for a worker; a crashed worker's replacement takes the same slot.
struct Slot {
    worker: Option<Arc<WorkerHandle>>,
    status: SlotStatus,
    inflight: Option<InFlight>,
    /// Requests answered by the workers of this slot.
    requests: u64,
    /// Requests answered by the current worker (for `worker_max_requests`).
    served: u64,
    /// When the current worker was installed (for `worker_ttl`).
    installed: Instant,
    /// When the current worker last finished something (for health checks).
    last_active: Instant,
    /// A replacement is starting for this worker (recycling).
    retiring: bool,
}

impl Slot {
    fn new(status: SlotStatus) -> Self {
        let now = Instant::now();
        Slot {
            worker: None,
            status,
            inflight: None,
            requests: 0,
            served: 0,
            installed: now,
            last_active: now,
            retiring: false,
        }
    }

    fn is_current(&self, worker: &Arc<WorkerHandle>) -> bool {
        matches!(&self.worker, Some(current) if current.uid == worker.uid)
    }
}

struct State {
    phase: Phase,
    slots: Vec<Slot>,
    /// Idle slots, oldest first, so work spreads over all workers.
    idle: VecDeque<usize>,
    queue: VecDeque<Queued>,
    /// Consecutive failed worker starts across the pool.
    start_failures: u32,
    /// Too many consecutive start failures: while no worker runs, requests fail at once.
    circuit_open: bool,
}

impl State {
    fn live_workers(&self) -> usize {
        self.slots
            .iter()
            .filter(|slot| slot.worker.is_some())
            .count()
    }
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
    pub worker_start_failures: AtomicU64,
    pub workers_killed: AtomicU64,
    pub worker_recycles: AtomicU64,
    pub health_checks: AtomicU64,
    pub callers_gone: AtomicU64,
    /// Sum of submit-to-reply times of completed requests, in microseconds.
    pub response_micros: AtomicU64,
}

/// A worker being recycled: its slot, and its uid (the slot may hold another worker by the time
/// the replacement is ready).
pub type Retiring = (usize, u64);

/// Work decided under the lock and carried out after it is released.
#[derive(Default)]
#[must_use]
pub struct Effects {
    frames: Vec<(Arc<WorkerHandle>, Vec<u8>)>,
    errors: Vec<(ReplyTo, PoolError)>,
    demonitors: Vec<Monitor>,
    /// Workers to kill (process group, SIGKILL).
    kills: Vec<Arc<WorkerHandle>>,
    /// Workers to ask to exit (request pipe closed).
    closes: Vec<Arc<WorkerHandle>>,
    /// New slots whose worker must be started, replacing a recycled worker.
    replacements: Vec<(usize, Retiring)>,
    /// The circuit opened (true) or closed (false).
    circuit: Option<bool>,
}

pub struct Pool {
    /// The pool itself, for tasks it starts (replacements).
    me: Weak<Pool>,
    pub config: PoolConfig,
    pub owner: Owner,
    pub counters: Counters,
    state: Mutex<State>,
    next_request_id: AtomicU64,
    /// Every spawned, not yet reaped worker process (also those still starting), for stop.
    processes: Mutex<Vec<Arc<WorkerHandle>>>,
    /// Signalled whenever a process is reaped.
    reaped: Condvar,
    /// The resource Elixir holds, to remove caller monitors from threads that have no handle on
    /// it. Set after creation, cleared when the pool stops (it is a reference cycle until then).
    resource: Mutex<Option<ResourceArc<PoolResource>>>,
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

/// What became of a worker that went away.
pub enum Removed {
    /// It died in service: its slot needs a replacement.
    Crashed,
    /// It was recycled; its replacement already serves.
    Retired,
    /// The pool is stopping.
    Stopping,
    /// It never made it into service (a failed start), or was already replaced.
    NotInstalled,
}

/// What a worker's reply completed.
pub enum Completed {
    /// A caller's request: answer it here (if the caller still waits).
    Request(Option<ReplyTo>),
    HealthCheck,
    /// Not the request this worker runs: the worker is broken.
    Unexpected(String),
}

impl Pool {
    pub fn new(config: PoolConfig, owner: LocalPid) -> Arc<Self> {
        let slots = (0..config.size)
            .map(|_| Slot::new(SlotStatus::Starting))
            .collect();
        Arc::new_cyclic(|me| Pool {
            me: me.clone(),
            config,
            owner: Owner::new(owner),
            counters: Counters::default(),
            state: Mutex::new(State {
                phase: Phase::Starting,
                slots,
                idle: VecDeque::new(),
                queue: VecDeque::new(),
                start_failures: 0,
                circuit_open: false,
            }),
            next_request_id: AtomicU64::new(1),
            processes: Mutex::new(Vec::new()),
            reaped: Condvar::new(),
            resource: Mutex::new(None),
        })
    }

    pub fn set_resource(&self, resource: ResourceArc<PoolResource>) {
        *self.resource.lock() = Some(resource);
    }

    /// Accepts a request: runs it on a free worker at once or queues it. Returns its id.
    /// `monitor_caller` is called only when the request must wait.
    #[allow(clippy::too_many_arguments)]
    pub fn submit(
        &self,
        caller: LocalPid,
        tag: Term,
        command: &str,
        args: Term,
        session_id: Option<&str>,
        timeout_ms: u64,
        monitor_caller: impl FnOnce() -> Option<Monitor>,
    ) -> Result<u64, PoolError> {
        validate_command(command)?;
        let id = self.next_request_id.fetch_add(1, Relaxed);
        let mut frame = Vec::with_capacity(256);
        let head = RequestHead {
            command,
            session_id,
            stream: false,
        };
        let write_args = |out: &mut Vec<u8>| JsonWriter::new(out, "args").write(args);
        encode_request(
            &mut frame,
            id,
            &head,
            write_args,
            self.config.max_frame_size,
        )
        .map_err(|error| match error {
            RequestError::Args(error) => PoolError::InvalidArgs(error.to_string()),
            RequestError::Frame(_) => PoolError::ArgsTooLarge {
                size: frame.len(),
                max: self.config.max_frame_size,
            },
        })?;
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
        if state.circuit_open && state.live_workers() == 0 {
            self.counters.errors.fetch_add(1, Relaxed);
            return Err(self.circuit_error());
        }
        self.counters.requests.fetch_add(1, Relaxed);
        if let Some(slot) = state.idle.pop_front() {
            let slot = &mut state.slots[slot];
            slot.status = SlotStatus::Busy;
            slot.inflight = Some(InFlight::new(
                id,
                command.to_string(),
                Some(reply_to),
                false,
                now,
                now,
                timeout,
            ));
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
                monitor: monitor_caller(),
            });
        }
        Ok(id)
    }

    /// Withdraws request `id` if it is past its deadline (queue timeout while queued, execution
    /// timeout while running), else says how long it still has. Called by the waiting caller.
    pub fn check_deadline(&self, env: Env, id: u64) -> Deadline {
        let queue_timeout = Duration::from_millis(self.config.queue_timeout_ms);
        let now = Instant::now();
        let mut effects = Effects::default();
        let deadline = {
            let mut state = self.state.lock();
            self.find_deadline(&mut state, id, now, queue_timeout, &mut effects)
        };
        self.apply(effects, Some(env));
        deadline
    }

    fn find_deadline(
        &self,
        state: &mut State,
        id: u64,
        now: Instant,
        queue_timeout: Duration,
        effects: &mut Effects,
    ) -> Deadline {
        if let Some(position) = state.queue.iter().position(|queued| queued.id == id) {
            let queued = &state.queue[position];
            let waited = now - queued.enqueued;
            if waited < queue_timeout {
                // Check again by the queue deadline, or one execution timeout from now: the
                // request may reach a worker meanwhile, and its execution timeout starts then.
                return Deadline::Wait(millis_left((queue_timeout - waited).min(queued.timeout)));
            }
            let queued = state.queue.remove(position).expect("position is valid");
            effects.demonitors.extend(queued.monitor);
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
            return Deadline::Expired(self.expire_inflight(inflight, now).1);
        }
        Deadline::Replied
    }

    /// Takes the caller away from a running request past its timeout. The worker stays busy (no
    /// new work) until it answers, or is killed once the cancel grace period is over.
    fn expire_inflight(
        &self,
        inflight: &mut InFlight,
        now: Instant,
    ) -> (Option<ReplyTo>, PoolError) {
        inflight.expired_at = Some(now);
        self.counters.timeouts.fetch_add(1, Relaxed);
        self.counters.errors.fetch_add(1, Relaxed);
        let error = PoolError::Timeout {
            command: inflight.command.clone(),
            timeout_ms: inflight.timeout.as_millis() as u64,
        };
        (inflight.reply_to.take(), error)
    }

    /// Periodic duties: expired queue entries and requests, cancel frames, killing workers that
    /// ignore them, health checks, recycling by age.
    pub fn sweep(&self) -> Effects {
        let now = Instant::now();
        let queue_timeout = Duration::from_millis(self.config.queue_timeout_ms);
        let grace = Duration::from_millis(self.config.cancel_grace_ms);
        let mut effects = Effects::default();
        let mut state = self.state.lock();
        if state.phase == Phase::Stopping {
            return effects;
        }
        // All requests share one queue timeout, so the expired ones are at the front.
        while state
            .queue
            .front()
            .is_some_and(|queued| now - queued.enqueued >= queue_timeout)
        {
            let queued = state.queue.pop_front().unwrap();
            let waited_ms = (now - queued.enqueued).as_millis() as u64;
            self.counters.queue_timeouts.fetch_add(1, Relaxed);
            self.counters.errors.fetch_add(1, Relaxed);
            effects.demonitors.extend(queued.monitor);
            effects
                .errors
                .push((queued.reply_to, PoolError::QueueTimeout { waited_ms }));
        }
        let health_interval = Duration::from_millis(self.config.health_check_interval_ms);
        let mut health_checks = Vec::new();
        let mut retire = Vec::new();
        for (index, slot) in state.slots.iter_mut().enumerate() {
            let Some(worker) = slot.worker.clone() else {
                continue;
            };
            if let Some(inflight) = slot.inflight.as_mut() {
                if inflight.expired_at.is_none() && now - inflight.dispatched >= inflight.timeout {
                    let (reply_to, error) = self.expire_inflight(inflight, now);
                    effects
                        .errors
                        .extend(reply_to.map(|reply_to| (reply_to, error)));
                }
                if let Some(expired_at) = inflight.expired_at {
                    if !inflight.cancel_sent {
                        inflight.cancel_sent = true;
                        effects
                            .frames
                            .push((Arc::clone(&worker), encode_cancel(inflight.id)));
                    }
                    if now - expired_at >= grace && !inflight.killed {
                        inflight.killed = true;
                        self.counters.workers_killed.fetch_add(1, Relaxed);
                        effects.kills.push(worker);
                    }
                }
                continue;
            }
            if slot.status != SlotStatus::Idle {
                continue;
            }
            if !slot.retiring && self.worn_out(slot, now) {
                retire.push(index);
            } else if self.config.health_check_interval_ms > 0
                && now - slot.last_active >= health_interval
            {
                health_checks.push(index);
            }
        }
        for index in retire {
            self.retire(&mut state, index, &mut effects);
        }
        for index in health_checks {
            self.start_health_check(&mut state, index, now, &mut effects);
        }
        effects
    }

    /// Whether a worker is due for recycling: `worker_max_requests` served or `worker_ttl` old.
    /// Checked when it finishes a request and, while idle, by the sweeper.
    fn worn_out(&self, slot: &Slot, now: Instant) -> bool {
        let max_requests = self.config.worker_max_requests;
        let ttl = self.config.worker_ttl_ms;
        (max_requests > 0 && slot.served >= max_requests)
            || (ttl > 0 && now - slot.installed >= Duration::from_millis(ttl))
    }

    fn start_health_check(
        &self,
        state: &mut State,
        index: usize,
        now: Instant,
        effects: &mut Effects,
    ) {
        let id = self.next_request_id.fetch_add(1, Relaxed);
        let mut frame = Vec::with_capacity(128);
        let head = RequestHead {
            command: HEALTH_CHECK_COMMAND,
            session_id: None,
            stream: false,
        };
        let no_args = |out: &mut Vec<u8>| {
            out.extend_from_slice(b"{}");
            Ok(())
        };
        if encode_request(&mut frame, id, &head, no_args, self.config.max_frame_size).is_err() {
            return;
        }
        state.idle.retain(|&idle| idle != index);
        let slot = &mut state.slots[index];
        slot.status = SlotStatus::Busy;
        slot.inflight = Some(InFlight::new(
            id,
            HEALTH_CHECK_COMMAND.into(),
            None,
            true,
            now,
            now,
            Duration::from_millis(self.config.health_check_timeout_ms),
        ));
        self.counters.health_checks.fetch_add(1, Relaxed);
        let worker = Arc::clone(slot.worker.as_ref().unwrap());
        effects.frames.push((worker, frame));
    }

    /// A worker answered request `id`: frees the worker (or hands it the next queued request) and
    /// says what the answer completed. Called on the worker's reader thread.
    pub fn complete(
        &self,
        slot_index: usize,
        worker: &Arc<WorkerHandle>,
        id: u64,
        failed: bool,
    ) -> Completed {
        let now = Instant::now();
        let mut effects = Effects::default();
        let inflight = {
            let mut state = self.state.lock();
            let state = &mut *state;
            let slot = &mut state.slots[slot_index];
            if !slot.is_current(worker) {
                return Completed::Request(None);
            }
            match &slot.inflight {
                Some(inflight) if inflight.id == id => {}
                Some(inflight) => {
                    return Completed::Unexpected(format!(
                        "reply for request {id} while request {} is running",
                        inflight.id
                    ))
                }
                None => {
                    return Completed::Unexpected(format!(
                        "reply for request {id}, which is not running"
                    ))
                }
            }
            let inflight = slot.inflight.take().unwrap();
            slot.last_active = now;
            if !inflight.health_check {
                slot.requests += 1;
                slot.served += 1;
            }
            if !slot.retiring && self.worn_out(slot, now) {
                self.retire(state, slot_index, &mut effects);
            }
            self.next_request(state, slot_index, now, &mut effects);
            inflight
        };
        self.apply(effects, None);
        if inflight.health_check {
            return Completed::HealthCheck;
        }
        self.counters.completed.fetch_add(1, Relaxed);
        self.counters
            .response_micros
            .fetch_add((now - inflight.submitted).as_micros() as u64, Relaxed);
        if failed && inflight.reply_to.is_some() {
            self.counters.errors.fetch_add(1, Relaxed);
        }
        Completed::Request(inflight.reply_to)
    }

    /// Gives slot `slot_index` its next request from the queue, or marks it idle (or, draining,
    /// lets its worker go). Requests that waited past the queue timeout are failed, never run.
    fn next_request(
        &self,
        state: &mut State,
        slot_index: usize,
        now: Instant,
        effects: &mut Effects,
    ) {
        if state.slots[slot_index].status == SlotStatus::Draining {
            effects
                .closes
                .extend(state.slots[slot_index].worker.clone());
            return;
        }
        let queue_timeout = Duration::from_millis(self.config.queue_timeout_ms);
        while let Some(queued) = state.queue.pop_front() {
            effects.demonitors.extend(queued.monitor);
            let waited = now - queued.enqueued;
            if waited >= queue_timeout {
                self.counters.queue_timeouts.fetch_add(1, Relaxed);
                self.counters.errors.fetch_add(1, Relaxed);
                let waited_ms = waited.as_millis() as u64;
                effects
                    .errors
                    .push((queued.reply_to, PoolError::QueueTimeout { waited_ms }));
                continue;
            }
            let slot = &mut state.slots[slot_index];
            slot.status = SlotStatus::Busy;
            slot.inflight = Some(InFlight::new(
                queued.id,
                queued.command,
                Some(queued.reply_to),
                false,
                queued.enqueued,
                now,
                queued.timeout,
            ));
            let worker = Arc::clone(slot.worker.as_ref().expect("slot has a worker"));
            effects.frames.push((worker, queued.frame));
            return;
        }
        state.slots[slot_index].status = SlotStatus::Idle;
        state.idle.push_back(slot_index);
    }

    /// Starts recycling the worker of `index`: a replacement starts in another slot; this worker
    /// keeps serving until the replacement is ready, so capacity never drops.
    fn retire(&self, state: &mut State, index: usize, effects: &mut Effects) {
        if state.phase == Phase::Stopping {
            return;
        }
        state.slots[index].retiring = true;
        let new_index = match state
            .slots
            .iter()
            .position(|s| s.status == SlotStatus::Vacant)
        {
            Some(vacant) => {
                state.slots[vacant] = Slot::new(SlotStatus::Starting);
                vacant
            }
            None => {
                state.slots.push(Slot::new(SlotStatus::Starting));
                state.slots.len() - 1
            }
        };
        self.counters.worker_recycles.fetch_add(1, Relaxed);
        let uid = state.slots[index]
            .worker
            .as_ref()
            .map_or(0, |worker| worker.uid);
        effects.replacements.push((new_index, (index, uid)));
    }

    /// Puts a worker that completed its handshake into its slot and gives it work. If it
    /// replaces a recycled worker, that one drains. Returns false when the pool is stopping (the
    /// caller then stops the worker).
    pub fn install(
        &self,
        slot_index: usize,
        worker: Arc<WorkerHandle>,
        replaces: Option<Retiring>,
    ) -> bool {
        let mut effects = Effects::default();
        {
            let mut state = self.state.lock();
            if state.phase == Phase::Stopping || state.phase == Phase::Failed {
                return false;
            }
            let now = Instant::now();
            let slot = &mut state.slots[slot_index];
            slot.worker = Some(Arc::clone(&worker));
            slot.inflight = None;
            slot.served = 0;
            slot.installed = now;
            slot.last_active = now;
            slot.retiring = false;
            if state.start_failures > 0 || state.circuit_open {
                effects.circuit = state.circuit_open.then_some(false);
                state.start_failures = 0;
                state.circuit_open = false;
            }
            self.next_request(&mut state, slot_index, now, &mut effects);
            if let Some(old) = replaces {
                self.drain(&mut state, old, &mut effects);
            }
        }
        self.counters.worker_starts.fetch_add(1, Relaxed);
        self.apply(effects, None);
        true
    }

    /// The replaced worker of a recycled slot gets no new work and exits when done.
    fn drain(&self, state: &mut State, (index, uid): Retiring, effects: &mut Effects) {
        let slot = &mut state.slots[index];
        let Some(worker) = slot.worker.clone().filter(|worker| worker.uid == uid) else {
            return;
        };
        match slot.status {
            SlotStatus::Idle => {
                slot.status = SlotStatus::Draining;
                state.idle.retain(|&idle| idle != index);
                effects.closes.push(worker);
            }
            SlotStatus::Busy => slot.status = SlotStatus::Draining,
            _ => {}
        }
    }

    /// Records a failed worker start. Past `max_start_failures` in a row the circuit opens: while
    /// no worker runs, requests fail at once with `:circuit_open` instead of waiting.
    pub fn start_failed(&self) {
        self.counters.worker_start_failures.fetch_add(1, Relaxed);
        let mut effects = Effects::default();
        {
            let mut state = self.state.lock();
            state.start_failures += 1;
            if !state.circuit_open && state.start_failures >= self.config.max_start_failures {
                state.circuit_open = true;
                effects.circuit = Some(true);
                if state.live_workers() == 0 {
                    let error = self.circuit_error();
                    for queued in state.queue.drain(..) {
                        effects.demonitors.extend(queued.monitor);
                        effects.errors.push((queued.reply_to, error.clone()));
                    }
                }
            }
        }
        self.apply(effects, None);
    }

    pub fn circuit_open(&self) -> bool {
        self.state.lock().circuit_open
    }

    fn circuit_error(&self) -> PoolError {
        PoolError::CircuitOpen {
            failures: self.config.max_start_failures,
        }
    }

    /// The worker in `slot_index` is gone (exited, or broke the protocol): fails its request with
    /// `error_for_inflight` and empties the slot.
    pub fn remove_worker(
        &self,
        slot_index: usize,
        worker: &Arc<WorkerHandle>,
        error_for_inflight: PoolError,
    ) -> Removed {
        let mut effects = Effects::default();
        let removed = {
            let mut state = self.state.lock();
            if !state.slots[slot_index].is_current(worker) {
                return Removed::NotInstalled;
            }
            state.idle.retain(|&idle| idle != slot_index);
            let phase = state.phase;
            let slot = &mut state.slots[slot_index];
            let retired = slot.status == SlotStatus::Draining || slot.retiring;
            slot.worker = None;
            slot.status = if retired {
                SlotStatus::Vacant
            } else {
                SlotStatus::Starting
            };
            if let Some(reply_to) = slot.inflight.take().and_then(|inflight| inflight.reply_to) {
                self.counters.errors.fetch_add(1, Relaxed);
                effects.errors.push((reply_to, error_for_inflight));
            }
            match (phase, retired) {
                (Phase::Stopping | Phase::Failed, _) => Removed::Stopping,
                (_, true) => Removed::Retired,
                (_, false) => {
                    self.counters.worker_crashes.fetch_add(1, Relaxed);
                    Removed::Crashed
                }
            }
        };
        self.apply(effects, None);
        removed
    }

    /// A caller that was waiting in the queue died: its request is dropped, never run.
    pub fn caller_down(&self, monitor: Monitor) {
        let mut state = self.state.lock();
        let before = state.queue.len();
        state.queue.retain(|queued| queued.monitor != Some(monitor));
        if state.queue.len() < before {
            self.counters.callers_gone.fetch_add(1, Relaxed);
        }
    }

    /// Records the outcome of the initial start. With no worker at all the pool fails, and
    /// everything queued is refused.
    pub fn finish_start(&self, started: usize) -> Phase {
        let mut effects = Effects::default();
        let phase = {
            let mut state = self.state.lock();
            if state.phase != Phase::Starting {
                return state.phase;
            }
            state.phase = if started == 0 {
                Phase::Failed
            } else {
                Phase::Running
            };
            if started == 0 {
                for queued in state.queue.drain(..) {
                    let error =
                        PoolError::PoolNotInitialized("no worker of the pool could start".into());
                    effects.demonitors.extend(queued.monitor);
                    effects.errors.push((queued.reply_to, error));
                }
            }
            state.phase
        };
        self.apply(effects, None);
        phase
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
    pub fn begin_stop(&self, env: Option<Env>) -> bool {
        let mut effects = Effects::default();
        {
            let mut state = self.state.lock();
            if state.phase == Phase::Stopping {
                return false;
            }
            state.phase = Phase::Stopping;
            for queued in state.queue.drain(..) {
                effects.demonitors.extend(queued.monitor);
                effects
                    .errors
                    .push((queued.reply_to, PoolError::PoolShutdown));
            }
            for slot in state.slots.iter_mut() {
                if let Some(reply_to) = slot.inflight.take().and_then(|i| i.reply_to) {
                    effects.errors.push((reply_to, PoolError::PoolShutdown));
                }
            }
            state.idle.clear();
        }
        self.apply(effects, env);
        for worker in self.processes.lock().iter() {
            worker.close_requests();
            worker.signal_group(libc::SIGTERM);
        }
        // The resource no longer needs to reach itself: break the cycle so it can be freed.
        self.resource.lock().take();
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

    /// Carries out what was decided under the lock. `env` is the calling NIF's environment when
    /// on a BEAM thread.
    pub fn apply(&self, effects: Effects, env: Option<Env>) {
        for (worker, frame) in effects.frames {
            worker.send_frame(frame);
        }
        for worker in effects.closes {
            worker.close_requests();
        }
        for worker in effects.kills {
            worker.signal_group(libc::SIGKILL);
        }
        // Without an environment on a BEAM thread (a resource destructor) monitors cannot be
        // removed; the resource is going away, and its monitors with it.
        let can_demonitor = env.is_some() || !rustler::thread::is_scheduler_thread();
        if can_demonitor && !effects.demonitors.is_empty() {
            if let Some(resource) = self.resource.lock().as_ref() {
                for monitor in &effects.demonitors {
                    resource.demonitor(env, monitor);
                }
            }
        }
        deliver_errors(effects.errors);
        if let Some(open) = effects.circuit {
            crate::lifecycle::report_circuit(self, open);
        }
        if let Some(pool) = self.me.upgrade() {
            for (slot, replaces) in effects.replacements {
                crate::lifecycle::start_replacement(&pool, slot, replaces);
            }
        }
    }

    pub fn workers(&self) -> Vec<WorkerInfo> {
        let state = self.state.lock();
        state
            .slots
            .iter()
            .filter(|slot| slot.status != SlotStatus::Vacant)
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
        let busy = state
            .slots
            .iter()
            .filter(|s| matches!(s.status, SlotStatus::Busy | SlotStatus::Draining))
            .count();
        (
            state.live_workers(),
            state.idle.len(),
            busy,
            state.queue.len(),
        )
    }

    pub fn processes(&self) -> Vec<Arc<WorkerHandle>> {
        self.processes.lock().clone()
    }

    pub fn slot_count(&self) -> usize {
        self.config.size
    }
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
