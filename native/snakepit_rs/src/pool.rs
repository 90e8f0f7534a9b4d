//! The pool: the core's [`Dispatch`] behind one short-held mutex, and the carrying out of the
//! [`Effects`] each decision returns — after unlocking, so that nothing calls into the BEAM (or
//! writes a pipe, or signals a process) while the lock is held.
//!
//! The pool is itself the resource Elixir holds (`resource.rs` has its callbacks). Everyone who
//! acts on it later — the supervisor task, reader threads, queued callers' monitors — holds a
//! [`PoolRef`]; the references end when the pool stops.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use parking_lot::Mutex;
use rustler::{Encoder, Env, LocalPid, Monitor, ResourceArc};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::Notify;

use snakepit_core::{
    Chunked, Completed, Deadline, Dispatch, Effects, Event, Host, Rejected, Removed, Request,
    SessionInfo, Stats, Submitted, WorkerInfo,
};

use crate::atoms;
use crate::beam::BeamWorkers;
use crate::config::PoolConfig;
use crate::error::PoolError;
use crate::events::Owner;
use crate::processes::Processes;
use crate::reply::{Finish, ReplyTo, Spares};
use crate::stream::StreamSink;
use crate::worker::WorkerHandle;

use snakepit_core::workers::NotWanted;

/// How everyone but the BEAM holds the pool.
pub type PoolRef = ResourceArc<Pool>;
type Worker = std::sync::Arc<WorkerHandle>;

/// The NIF's types in the core's state machine.
pub struct Nif;

impl Host for Nif {
    type Worker = Worker;
    type Reply = ReplyTo;
    type Monitor = CallerMonitor;
    type Loss = PoolError;
    type Sink = std::sync::Arc<StreamSink>;

    fn takes_credit(worker: &Worker) -> bool {
        worker.takes_credit()
    }

    fn set_window(frame: &mut Vec<u8>, window: std::num::NonZeroU64) {
        crate::stream::set_window(frame, window);
    }
}

/// The monitor of a caller whose request waits in the queue (or whose stream runs), with the
/// pool it was set on so it can be removed from any thread.
pub struct CallerMonitor {
    pub pool: PoolRef,
    pub monitor: Monitor,
}

/// Work for the pool's supervisor task (`supervisor.rs`).
pub enum Job {
    /// Start a worker in this slot.
    Start(usize),
    /// A monitored caller died (its request waited, or its stream ran).
    CallerDown(Monitor),
    /// The owner died: stop everything.
    OwnerDown,
    /// The pool stopped: the supervisor ends.
    Stop,
}

pub struct Pool {
    pub config: PoolConfig,
    dispatch: Mutex<Dispatch<Nif>>,
    /// Request ids, unique in the pool (health checks included).
    ids: AtomicU64,
    pub owner: Owner,
    /// Cleared reply environments for reuse (allocating one per request shows in profiles).
    pub spares: Spares,
    /// Every spawned worker process not yet reaped, for stop.
    pub processes: Processes,
    /// The workers that are BEAM processes (a pool of an `execute/3` adapter).
    pub beam: BeamWorkers,
    /// Wakes the supervisor's timer when a deadline earlier than its own appears.
    pub timer: Notify,
    jobs: UnboundedSender<Job>,
}

impl Pool {
    /// A pool whose workers are not started yet: the returned jobs (starts among them) are for
    /// the supervisor.
    pub fn new(config: PoolConfig, owner: LocalPid) -> (Pool, UnboundedReceiver<Job>) {
        let (jobs, receiver) = unbounded_channel();
        let (dispatch, effects) = Dispatch::new(config.core(), Instant::now());
        for slot in effects.starts {
            let _ = jobs.send(Job::Start(slot));
        }
        let pool = Pool {
            config,
            dispatch: Mutex::new(dispatch),
            ids: AtomicU64::new(1),
            owner: Owner::new(owner),
            spares: Spares::default(),
            processes: Processes::default(),
            beam: BeamWorkers::default(),
            timer: Notify::new(),
            jobs,
        };
        (pool, receiver)
    }

    /// A fresh request id.
    pub fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Relaxed)
    }

    /// Posts work for the supervisor; after stop there is none, and nothing to do.
    pub fn post(&self, job: Job) {
        let _ = self.jobs.send(job);
    }

    /// Runs `decide` under the lock with the current time; wakes the timer afterwards if the
    /// decision brought a deadline earlier than the one it sleeps until.
    fn decide<R>(&self, decide: impl FnOnce(&mut Dispatch<Nif>, Instant) -> R) -> R {
        // Read before locking: the core clamps it, so time never runs backwards in there.
        let now = Instant::now();
        let (result, wake) = {
            let mut dispatch = self.dispatch.lock();
            let result = decide(&mut dispatch, now);
            (result, dispatch.take_wake())
        };
        if wake {
            self.timer.notify_one();
        }
        result
    }

    /// A rejected request is handed back, to be freed outside the lock (by value: boxing it
    /// would cost an allocation per call to save a copy on the rare refusal).
    #[allow(clippy::type_complexity, clippy::result_large_err)]
    pub fn submit(
        &self,
        request: Request<Nif>,
    ) -> Result<Submitted<Nif>, (Rejected, Request<Nif>)> {
        self.decide(|dispatch, now| dispatch.submit(request, now))
    }

    /// Gives back the monitor if the request already left the queue.
    pub fn attach_monitor(&self, id: u64, monitor: CallerMonitor) -> Result<(), CallerMonitor> {
        self.dispatch.lock().attach_monitor(id, monitor)
    }

    pub fn check_deadline(&self, env: Env, id: u64) -> Deadline<PoolError> {
        let (deadline, effects) = self.decide(|dispatch, now| dispatch.check_deadline(id, now));
        self.apply(effects, Some(env));
        deadline
    }

    /// A worker's reply to request `id`: says what it completed (the reader then answers).
    /// `env`: the calling NIF's environment, when on a BEAM thread (a BEAM worker's reply).
    pub fn on_reply(
        &self,
        slot: usize,
        uid: u64,
        id: u64,
        failed: bool,
        env: Option<Env>,
    ) -> Completed<ReplyTo> {
        let (completed, effects) =
            self.decide(|dispatch, now| dispatch.on_reply(slot, uid, id, failed, now));
        self.apply(effects, env);
        completed
    }

    /// A worker's chunk of stream `id`: where to send it, or why not (see `Chunked`); and
    /// whether the worker now waits for credit (its window is used up: a stall).
    pub fn on_chunk(
        &self,
        slot: usize,
        uid: u64,
        id: u64,
    ) -> (Chunked<std::sync::Arc<StreamSink>>, bool) {
        self.decide(|dispatch, now| {
            let chunked = dispatch.on_chunk(slot, uid, id, now);
            let stalled = matches!(chunked, Chunked::Deliver(_)) && dispatch.waits_for_credit(id);
            (chunked, stalled)
        })
    }

    /// The caller of stream `id` took `taken` more chunks: its worker gets credit.
    pub fn stream_ack(&self, env: Env, id: u64, taken: u64) {
        let effects = self.decide(|dispatch, now| dispatch.stream_ack(id, taken, now));
        self.apply(effects, Some(env));
    }

    /// The caller of stream `id` stops it: no more messages; its worker is sent a cancel.
    /// Halts stream `id`. True when this took its reply (no message will come for it); false
    /// when the stream had its outcome already: its last message is sent, or on its way from
    /// the thread that took the reply.
    pub fn halt(&self, env: Env, id: u64) -> bool {
        let effects = self.decide(|dispatch, now| dispatch.halt(id, now));
        let halted = !effects.withdrawn.is_empty();
        self.apply(effects, Some(env));
        halted
    }

    pub fn worker_up(
        &self,
        slot: usize,
        worker: &Worker,
        env: Option<Env>,
    ) -> Result<(), NotWanted> {
        let effects = self.decide(|dispatch, now| {
            dispatch.worker_up(slot, worker.uid, std::sync::Arc::clone(worker), now)
        })?;
        self.apply(effects, env);
        Ok(())
    }

    pub fn start_failed(&self, slot: usize, message: &str) {
        let effects = self.decide(|dispatch, now| dispatch.start_failed(slot, message, now));
        self.apply(effects, None);
    }

    pub fn worker_down(&self, slot: usize, uid: u64, loss: PoolError, env: Option<Env>) -> Removed {
        let (removed, effects) =
            self.decide(|dispatch, now| dispatch.worker_down(slot, uid, loss, now));
        self.apply(effects, env);
        removed
    }

    /// A caller we monitor died: its queued request is dropped, its running stream halted.
    /// (Comparing monitors, `enif_compare_monitors`, is the one BEAM call made under the lock: it
    /// only compares bytes, takes no lock of the BEAM's and cannot block.)
    pub fn caller_down(&self, monitor: Monitor) {
        let effects =
            self.decide(|dispatch, now| dispatch.caller_down(|m| m.monitor == monitor, now));
        self.apply(effects, None);
    }

    /// Carries out what is due; returns when the timer should run next.
    pub fn tick(&self) -> Option<Instant> {
        let (effects, next) = self.decide(|dispatch, now| {
            let effects = dispatch.tick(now, &mut || self.next_id());
            (effects, dispatch.timer_due())
        });
        self.apply(effects, None);
        next
    }

    /// Enters the stopping phase: fails everything queued or running with `:pool_shutdown`,
    /// closes request pipes and sends SIGTERM to every worker group, and asks BEAM workers to
    /// exit (their owner kills what is left after `:shutdown_grace`). Never blocks. False if
    /// stop had already begun.
    pub fn begin_stop(&self, env: Option<Env>) -> bool {
        let Some(effects) = self.decide(|dispatch, now| dispatch.begin_stop(now)) else {
            return false;
        };
        self.apply(effects, env);
        for worker in self.processes.close() {
            worker.close_requests(env);
            worker.signal_group(libc::SIGTERM);
        }
        for worker in self.beam.close() {
            worker.close_requests(env);
        }
        self.post(Job::Stop);
        true
    }

    pub fn stats(&self) -> Stats {
        self.dispatch.lock().stats()
    }

    pub fn workers(&self) -> Vec<WorkerInfo<Worker>> {
        self.dispatch.lock().workers()
    }

    /// Session `id` ended: forgets its worker, and tells every worker process that keeps
    /// per-session state to drop the session's (any of them may have served it, as a hint
    /// session moves); whether the session had a worker.
    pub fn end_session(&self, id: &str) -> bool {
        let had_worker = self.dispatch.lock().forget_session(id);
        self.tell_session_end(id);
        had_worker
    }

    fn tell_session_end(&self, id: &str) {
        for worker in self.processes.snapshot() {
            worker.end_session(id);
        }
    }

    /// The session of the request worker `uid` runs now, if any (for its log lines).
    pub fn session_running_on(&self, uid: u64) -> Option<String> {
        self.dispatch
            .lock()
            .session_running_on(uid)
            .map(str::to_string)
    }

    /// Session `id`'s worker, mode and last use (see `snakepit_core::session`).
    pub fn session(&self, id: &str) -> Option<SessionInfo<Worker>> {
        self.dispatch.lock().session(id, Instant::now())
    }

    /// Carries out what was decided under the lock. `env` is the calling NIF's environment when
    /// on a BEAM thread.
    pub fn apply(&self, effects: Effects<Nif>, env: Option<Env>) {
        if effects.is_empty() {
            return;
        }
        for reply in effects.withdrawn {
            reply.recycle(&self.spares);
        }
        for (worker, send) in effects.sends {
            worker.send(env, send);
        }
        for session in &effects.ended_sessions {
            self.tell_session_end(session);
        }
        for worker in effects.closes {
            worker.close_requests(env);
        }
        for worker in effects.kills {
            worker.kill(env);
        }
        // On a BEAM thread, removing a monitor needs the calling NIF's environment (every NIF
        // that applies effects passes it).
        debug_assert!(env.is_some() || !rustler::thread::is_scheduler_thread());
        for caller in &effects.demonitors {
            caller.pool.demonitor(env, &caller.monitor);
        }
        for slot in effects.starts {
            self.post(Job::Start(slot));
        }
        let mut failures: Vec<_> = effects
            .failures
            .into_iter()
            .zip(effects.failure_timings)
            .map(|((reply, failure), timings)| (reply, PoolError::from(failure), timings))
            .collect();
        let events = effects.events;
        // In a NIF call (a BEAM worker's reply, a stop) the calling process sends them.
        if let Some(env) = env.filter(|_| rustler::thread::is_scheduler_thread()) {
            for (reply, error, timings) in failures.drain(..) {
                reply.fail(Some(env), &self.spares, &error, Finish::new(None, timings));
            }
        }
        if failures.is_empty() && events.is_empty() {
            return;
        }
        // `enif_send` from an owned environment is not allowed on a BEAM thread: there (rare:
        // an event decided in a NIF call) the sends go to a runtime thread, without spares to
        // return to.
        let owner = self.owner.clone();
        let send = move |spares: Option<&Spares>| {
            for (reply, error, timings) in failures {
                reply.send_error(spares, &error, Finish::new(None, timings));
            }
            for event in events {
                owner.pool_event(event);
            }
        };
        if rustler::thread::is_scheduler_thread() {
            crate::runtime::runtime().spawn_blocking(move || send(None));
        } else {
            send(Some(&self.spares));
        }
    }
}

impl Owner {
    /// Tells the owner about a pool-level event from the core.
    fn pool_event(&self, event: Event) {
        match event {
            Event::Ready { started } => self.event(|env| (atoms::ready(), started).encode(env)),
            Event::StartFailed { message } => {
                self.event(|env| (atoms::start_failed(), message.as_str()).encode(env))
            }
            Event::CircuitOpened { failures } => {
                self.event(|env| (atoms::circuit_open(), failures).encode(env))
            }
            Event::CircuitClosed => self.event(|env| atoms::circuit_closed().encode(env)),
            Event::CallerGone { request } => {
                self.event(|env| (atoms::caller_gone(), request).encode(env))
            }
            Event::HealthCheckPassed => self.event(|env| atoms::health_check_passed().encode(env)),
        }
    }
}
