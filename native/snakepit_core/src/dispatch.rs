//! The dispatch state machine, request side: submit, replies, the caller's deadline check and
//! callers that died while waiting. Worker life cycle is in `workers.rs`, the timer's side in
//! `deadlines.rs`.

use std::collections::VecDeque;
use std::time::Instant;

use crate::effects::{Effects, Event, Failure, Send};
use crate::outcome::{Counters, Outcome, Stats, Timings};
use crate::queue::{Place, Queue};
use crate::request::{Completed, Deadline, Queued, Rejected, Request, Submitted};
use crate::session::{Affinity, Session, SessionInfo, Sessions};
use crate::slot::{InFlight, Kind, Slot, SlotStatus, WorkerInfo};
use crate::stream::Stream;
use crate::{Config, Host};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    /// The initial starts are under way; requests queue.
    Starting,
    Running,
    Stopping,
}

pub struct Dispatch<H: Host> {
    pub(crate) config: Config,
    pub(crate) phase: Phase,
    pub(crate) slots: Vec<Slot<H>>,
    /// Idle slots, longest idle first, so work spreads over all workers.
    pub(crate) idle: VecDeque<usize>,
    pub(crate) queue: Queue<Queued<H>>,
    /// Consecutive failed starts across the pool.
    pub(crate) start_failures: u32,
    /// Too many consecutive failed starts: while no worker runs, requests fail at once.
    pub(crate) circuit_open: bool,
    pub(crate) counters: Counters,
    /// Initial starts not yet resolved, and the last error among them.
    pub(crate) initial_pending: usize,
    pub(crate) last_start_error: String,
    /// The latest time seen: clocks passed in are clamped to it, so time never runs backwards
    /// here even when callers read the clock before taking the lock.
    now: Instant,
    /// When the host's timer is due next; a new deadline before it sets `wake`.
    pub(crate) timer_at: Option<Instant>,
    wake: bool,
    /// Session → worker (see `session.rs`).
    pub(crate) sessions: Sessions,
    /// The sequence number of the latest queued request (queue lines are ordered by it).
    next_seq: u64,
}

/// Where a submitted request goes.
enum Target {
    Run(usize),
    Wait(Place),
}

impl<H: Host> Dispatch<H> {
    /// A pool whose `config.size` workers must be started now (the returned effects say so).
    pub fn new(config: Config, now: Instant) -> (Self, Effects<H>) {
        let slots = (0..config.size)
            .map(|_| {
                let mut slot = Slot::new(SlotStatus::Starting, now);
                slot.initial = true;
                slot
            })
            .collect();
        let mut effects = Effects::default();
        effects.starts.extend(0..config.size);
        let dispatch = Dispatch {
            queue: Queue::new(config.size),
            sessions: Sessions::new(config.session_ttl),
            initial_pending: config.size,
            config,
            phase: Phase::Starting,
            slots,
            idle: VecDeque::new(),
            start_failures: 0,
            circuit_open: false,
            counters: Counters::default(),
            last_start_error: String::new(),
            now,
            timer_at: None,
            wake: false,
            next_seq: 0,
        };
        (dispatch, effects)
    }

    /// The session of the request worker `uid` runs now, if it has one.
    pub fn session_running_on(&self, uid: u64) -> Option<&str> {
        let slot = self.slots.iter().find(|slot| slot.holds(uid))?;
        slot.inflight.as_ref()?.session_id.as_deref()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Accepts a request: to an idle worker at once, or into the queue (for a session, as its
    /// affinity says: see `session.rs`). A rejected request is handed back (for the host to
    /// free after unlocking; by value: boxing it would cost an allocation per call to save a
    /// copy on the rare refusal).
    #[allow(clippy::result_large_err)]
    pub fn submit(
        &mut self,
        request: Request<H>,
        now: Instant,
    ) -> Result<Submitted<H>, (Rejected, Request<H>)> {
        let now = self.clock(now);
        if self.phase == Phase::Stopping {
            return Err((Rejected::Shutdown, request));
        }
        if self.circuit_open && self.live_workers() == 0 {
            self.counters.circuit_rejections += 1;
            let failures = self.config.max_start_failures;
            return Err((Rejected::CircuitOpen { failures }, request));
        }
        let target = match &request.session {
            None => self.any_worker(),
            Some(session) => match self.session_target(session, now) {
                Ok(target) => target,
                Err(rejected) => {
                    match rejected {
                        Rejected::WorkerBusy => self.counters.worker_busy += 1,
                        _ => self.counters.session_worker_unavailable += 1,
                    }
                    return Err((rejected, request));
                }
            },
        };
        let place = match target {
            Target::Run(slot) => {
                self.take_idle(slot);
                self.counters.requests += 1;
                let Request {
                    id,
                    command,
                    mut frame,
                    reply,
                    timeout,
                    session,
                    stream,
                } = request;
                let session_id = session.as_ref().map(|session| session.id.clone());
                if let Some(session) = session {
                    self.bind(session, slot, now);
                }
                let stream = stream.map(|stream| {
                    self.counters.streams += 1;
                    let credit = self.slots[slot].worker().is_some_and(H::takes_credit);
                    Stream::begin(stream, credit, &mut frame, None, now)
                });
                let mut inflight = InFlight::request(id, command, reply, now, now, timeout, stream);
                inflight.session_id = session_id;
                let worker = self.run(slot, inflight);
                return Ok(Submitted::Run { worker, frame });
            }
            Target::Wait(place) => place,
        };
        if self.queue.len() >= self.config.max_queue_size {
            self.counters.pool_saturated += 1;
            let max = self.config.max_queue_size;
            return Err((Rejected::Saturated { max }, request));
        }
        self.counters.requests += 1;
        if request.stream.is_some() {
            self.counters.streams += 1;
        }
        if self.queue.is_empty() {
            self.note_deadline(now + self.config.queue_timeout);
        }
        self.next_seq += 1;
        let queued = Queued {
            id: request.id,
            command: request.command,
            frame: request.frame,
            reply: request.reply,
            enqueued: now,
            timeout: request.timeout,
            monitor: None,
            session: request.session,
            stream: request.stream,
            seq: self.next_seq,
        };
        self.queue.push(queued, place);
        Ok(Submitted::Queued)
    }

    /// Where a request without a (live) session binding goes: the longest idle worker, else
    /// the global queue.
    fn any_worker(&self) -> Target {
        match self.idle.front() {
            Some(&slot) => Target::Run(slot),
            None => Target::Wait(Place::Global),
        }
    }

    /// Where a request of `session` goes, or why it is refused (the rules of `session.rs`).
    fn session_target(&mut self, session: &Session, now: Instant) -> Result<Target, Rejected> {
        let Some(binding) = self.sessions.get_mut(&session.id, now) else {
            return Ok(self.any_worker());
        };
        binding.last_used = now;
        binding.affinity = session.affinity;
        let slot = binding.slot;
        let uid = binding.uid;
        if !self.serves(slot, uid) {
            return match session.affinity {
                Affinity::Hint => Ok(self.any_worker()),
                _ => Err(Rejected::SessionWorkerUnavailable),
            };
        }
        if self.slots[slot].status == SlotStatus::Idle {
            return Ok(Target::Run(slot));
        }
        match session.affinity {
            Affinity::Hint if self.idle.is_empty() => Ok(Target::Wait(Place::Hint(slot))),
            Affinity::Hint => Ok(self.any_worker()),
            Affinity::StrictQueue => Ok(Target::Wait(Place::Strict(slot))),
            Affinity::StrictFailFast => Err(Rejected::WorkerBusy),
        }
    }

    /// Whether slot `slot` still holds worker `uid` and gives it work (not draining).
    fn serves(&self, slot: usize, uid: u64) -> bool {
        self.slots
            .get(slot)
            .is_some_and(|s| s.holds(uid) && s.status != SlotStatus::Draining)
    }

    /// Takes slot `slot` out of the idle list (it is about to run something).
    fn take_idle(&mut self, slot: usize) {
        if self.idle.front() == Some(&slot) {
            self.idle.pop_front();
        } else if let Some(position) = self.idle.iter().position(|&idle| idle == slot) {
            self.idle.remove(position);
        }
    }

    /// Binds `session` to slot `slot`'s worker, which starts one of its requests now.
    fn bind(&mut self, session: Session, slot: usize, now: Instant) {
        let Some((uid, _)) = self.slots[slot].worker else {
            return;
        };
        let first = self.sessions.rotate_at().is_none();
        self.sessions.bind(session, slot, uid, now);
        if let Some(at) = self.sessions.rotate_at().filter(|_| first) {
            self.note_deadline(at);
        }
    }

    /// Forgets session `id`'s worker (the session ended); whether it had one.
    pub fn forget_session(&mut self, id: &str) -> bool {
        self.sessions.forget(id)
    }

    /// Session `id`'s worker (`None` inside when it is gone), the mode of its latest request
    /// and when it was last used; `None` if the session is not bound (or expired).
    pub fn session(&self, id: &str, now: Instant) -> Option<SessionInfo<H::Worker>> {
        let binding = self.sessions.get(id, now.max(self.now))?;
        let worker = if self.serves(binding.slot, binding.uid) {
            self.slots[binding.slot].worker().cloned()
        } else {
            None
        };
        Some(SessionInfo {
            worker,
            affinity: binding.affinity,
            last_used: binding.last_used,
        })
    }

    /// Attaches the caller's monitor to its queued request, so that it is removed when the
    /// request leaves the queue — or, for a stream, to the stream until it leaves its worker
    /// (`stream.rs`). Gives the monitor back if the request already left (or ended).
    pub fn attach_monitor(&mut self, id: u64, monitor: H::Monitor) -> Result<(), H::Monitor> {
        if let Some(queued) = self.queue.get_mut(id) {
            queued.monitor = Some(monitor);
            return Ok(());
        }
        if !self.streaming(id) {
            return Err(monitor);
        }
        let index = self.running(id).expect("a running stream");
        let inflight = self.slots[index].inflight.as_mut().expect("running");
        let stream = inflight.stream.as_mut().expect("a stream");
        stream.monitor = Some(monitor);
        Ok(())
    }

    /// Called by the waiting caller when its wait ran out: withdraws request `id` if it is past
    /// its deadline (the queue timeout while queued, the execution timeout while running), else
    /// says how long it still has. Atomic with replies: a withdrawn request is never answered.
    pub fn check_deadline(&mut self, id: u64, now: Instant) -> (Deadline<H::Loss>, Effects<H>) {
        let now = self.clock(now);
        let mut effects = Effects::default();
        let queue_timeout = self.config.queue_timeout;
        if let Some(queued) = self.queue.get(id) {
            let waited = now.saturating_duration_since(queued.enqueued);
            if waited < queue_timeout {
                // Check again by the queue deadline, or one execution timeout from now: the
                // request may reach a worker meanwhile, and its execution timeout starts then.
                let wait = (queue_timeout - waited).min(queued.timeout);
                return (Deadline::Wait(wait), effects);
            }
            let queued = self.queue.remove(id).expect("found above");
            let timings = self
                .counters
                .record(Outcome::QueueTimeout, queued.timings(now));
            effects.demonitors.extend(queued.monitor);
            effects.withdrawn.push(queued.reply);
            let failure = Failure::QueueTimeout { waited };
            return (Deadline::Expired(failure, timings), effects);
        }
        let grace = self.config.cancel_grace;
        for slot in &mut self.slots {
            let Some(inflight) = slot.inflight.as_mut().filter(|i| i.id == id && i.pending())
            else {
                continue;
            };
            let deadline = inflight.deadline();
            if now < deadline {
                return (Deadline::Wait(deadline - now), effects);
            }
            let (reply, failure, timings) =
                expire(&mut self.counters, inflight, now).expect("a pending request expires");
            slot.errors += 1;
            effects.withdrawn.push(reply);
            inflight.cancel_sent = true;
            let worker = slot.worker().expect("a running slot has a worker").clone();
            effects.sends.push((worker, Send::Cancel(id)));
            self.note_deadline(now + grace);
            return (Deadline::Expired(failure, timings), effects);
        }
        (Deadline::Replied, effects)
    }

    /// A worker answered request `id` (`failed`: with an error). Frees the worker or hands it
    /// the next queued request, and says what the answer completed.
    pub fn on_reply(
        &mut self,
        slot_index: usize,
        uid: u64,
        id: u64,
        failed: bool,
        now: Instant,
    ) -> (Completed<H::Reply>, Effects<H>) {
        let now = self.clock(now);
        let mut effects = Effects::default();
        let slot = &mut self.slots[slot_index];
        if self.phase == Phase::Stopping || !slot.holds(uid) {
            return (Completed::Stale, effects);
        }
        match &slot.inflight {
            Some(inflight) if inflight.id == id => {}
            Some(inflight) => {
                let detail = format!(
                    "reply for request {id} while request {} is running",
                    inflight.id
                );
                return (Completed::Unexpected(detail), effects);
            }
            None => {
                let detail = format!("reply for request {id}, which is not running");
                return (Completed::Unexpected(detail), effects);
            }
        }
        let mut inflight = slot.inflight.take().expect("matched above");
        let reply = inflight.reply.take();
        let kind = inflight.kind;
        let timings = inflight.timings(now);
        let _ = inflight.leave(&mut effects);
        slot.last_active = now;
        if kind == Kind::HealthCheck {
            if failed {
                // The worker is broken and is about to be replaced: no new work for it.
                return (Completed::HealthCheck { ok: false }, effects);
            }
        } else {
            slot.requests += 1;
            slot.errors += u64::from(failed && reply.is_some());
            slot.last_used = Some(now);
            slot.served += 1;
        }
        if !slot.retiring && self.worn_out(slot_index, now) {
            self.retire(slot_index, &mut effects);
        }
        self.next_request(slot_index, now, &mut effects);
        let completed = match kind {
            Kind::HealthCheck => {
                effects.events.push(Event::HealthCheckPassed);
                Completed::HealthCheck { ok: true }
            }
            Kind::Request => Completed::Request(reply.map(|reply| {
                let outcome = if failed {
                    Outcome::WorkerError
                } else {
                    Outcome::Completed
                };
                (reply, self.counters.record(outcome, timings))
            })),
        };
        (completed, effects)
    }

    /// The caller of a queued request died (its monitor fired): the request is dropped, never
    /// run. The caller of a running stream died: the stream is halted (see `stream.rs`). Empty
    /// effects if no request had that monitor.
    pub fn caller_down(
        &mut self,
        is_its_monitor: impl Fn(&H::Monitor) -> bool,
        now: Instant,
    ) -> Effects<H> {
        let now = self.clock(now);
        let mut effects = Effects::default();
        let removed = self
            .queue
            .remove_first(|queued| queued.monitor.as_ref().is_some_and(&is_its_monitor));
        if let Some(queued) = removed {
            self.counters
                .record(Outcome::CallerGone, queued.timings(now));
            effects
                .events
                .push(Event::CallerGone { request: queued.id });
            effects.withdrawn.push(queued.reply);
            effects.demonitors.extend(queued.monitor);
            return effects;
        }
        let running = self.slots.iter_mut().position(|slot| {
            let stream = slot.inflight.as_mut().and_then(|i| i.stream.as_mut());
            // The monitor fired: it is gone already.
            stream.is_some_and(|s| s.monitor.take_if(|m| is_its_monitor(m)).is_some())
        });
        if let Some(index) = running {
            self.halt_running(index, now, &mut effects);
        }
        effects
    }

    /// Gives slot `slot_index` its next queued request, or marks it idle (or, draining, lets
    /// its worker go). Requests that waited past the queue timeout fail and never run.
    pub(crate) fn next_request(
        &mut self,
        slot_index: usize,
        now: Instant,
        effects: &mut Effects<H>,
    ) {
        let slot = &self.slots[slot_index];
        if slot.status == SlotStatus::Draining {
            effects.closes.extend(slot.worker().cloned());
            return;
        }
        let queue_timeout = self.config.queue_timeout;
        while let Some((queued, place)) = self.queue.dequeue_for(slot_index) {
            let waited = now.saturating_duration_since(queued.enqueued);
            if waited >= queue_timeout {
                let timings = self
                    .counters
                    .record(Outcome::QueueTimeout, queued.timings(now));
                effects.demonitors.extend(queued.monitor);
                effects.fail(queued.reply, Failure::QueueTimeout { waited }, timings);
                continue;
            }
            // A strict request that waited unbound follows its session to the worker one of its
            // requests started on meanwhile (or fails if that worker is gone).
            let home = match (&queued.session, place) {
                (Some(session), Place::Global) if session.affinity.is_strict() => self
                    .sessions
                    .get(&session.id, now)
                    .map(|binding| (binding.slot, self.serves(binding.slot, binding.uid))),
                _ => None,
            };
            match home {
                Some((home, true)) if home != slot_index => {
                    if self.slots[home].status == SlotStatus::Idle {
                        self.take_idle(home);
                        self.start(home, queued, now, effects);
                    } else {
                        self.queue.push(queued, Place::Strict(home));
                    }
                    continue;
                }
                Some((_, false)) => {
                    let timings = self
                        .counters
                        .record(Outcome::SessionWorkerGone, queued.timings(now));
                    effects.demonitors.extend(queued.monitor);
                    effects.fail(queued.reply, Failure::SessionWorkerUnavailable, timings);
                    continue;
                }
                _ => {}
            }
            self.start(slot_index, queued, now, effects);
            return;
        }
        self.slots[slot_index].status = SlotStatus::Idle;
        self.idle.push_back(slot_index);
        if let Some(due) = self.idle_deadline(slot_index) {
            self.note_deadline(due);
        }
    }

    /// Starts a request that waited on slot `slot_index`'s worker (which is not idle-listed).
    fn start(
        &mut self,
        slot_index: usize,
        queued: Queued<H>,
        now: Instant,
        effects: &mut Effects<H>,
    ) {
        let Queued {
            id,
            command,
            mut frame,
            reply,
            enqueued,
            timeout,
            monitor,
            session,
            stream,
            seq: _,
        } = queued;
        let session_id = session.as_ref().map(|session| session.id.clone());
        if let Some(session) = session {
            self.bind(session, slot_index, now);
        }
        // A stream keeps its caller's monitor while it runs; a call drops it now.
        let stream = match stream {
            Some(stream) => {
                let credit = self.slots[slot_index].worker().is_some_and(H::takes_credit);
                Some(Stream::begin(stream, credit, &mut frame, monitor, now))
            }
            None => {
                effects.demonitors.extend(monitor);
                None
            }
        };
        let mut inflight = InFlight::request(id, command, reply, enqueued, now, timeout, stream);
        inflight.session_id = session_id;
        let worker = self.run(slot_index, inflight);
        effects.sends.push((worker, Send::Frame(frame)));
    }

    /// Slot `slot`'s worker takes no more work: strict requests waiting for it fail, its hint
    /// line joins the global queue.
    pub(crate) fn abandon_line(&mut self, slot: usize, effects: &mut Effects<H>) {
        for queued in self.queue.abandon_line(slot) {
            let timings = self
                .counters
                .record(Outcome::SessionWorkerGone, queued.timings(self.now));
            effects.demonitors.extend(queued.monitor);
            effects.fail(queued.reply, Failure::SessionWorkerUnavailable, timings);
        }
    }

    /// Puts `inflight` on slot `slot_index`'s worker; returns the worker to write to.
    pub(crate) fn run(&mut self, slot_index: usize, inflight: InFlight<H>) -> H::Worker {
        let deadline = inflight.deadline();
        let slot = &mut self.slots[slot_index];
        slot.status = SlotStatus::Busy;
        slot.inflight = Some(inflight);
        let worker = slot
            .worker()
            .expect("a slot given work has a worker")
            .clone();
        self.note_deadline(deadline);
        worker
    }

    /// Clamps `now` to the latest time seen.
    pub(crate) fn clock(&mut self, now: Instant) -> Instant {
        self.now = self.now.max(now);
        self.now
    }

    /// A new deadline: if it comes before the timer's, the timer must wake up early.
    pub(crate) fn note_deadline(&mut self, at: Instant) {
        if self.timer_at.is_none_or(|timer| at < timer) {
            self.timer_at = Some(at);
            self.wake = true;
        }
    }

    /// Whether the host's timer must be woken (a deadline earlier than it was set for appeared);
    /// reading it clears it.
    pub fn take_wake(&mut self) -> bool {
        std::mem::take(&mut self.wake)
    }

    pub(crate) fn live_workers(&self) -> usize {
        self.slots
            .iter()
            .filter(|slot| slot.worker.is_some())
            .count()
    }

    /// One consistent snapshot of counters and occupancy.
    pub fn stats(&self) -> Stats {
        let busy = self
            .slots
            .iter()
            .filter(|s| matches!(s.status, SlotStatus::Busy | SlotStatus::Draining))
            .count();
        let in_flight = self
            .slots
            .iter()
            .filter(|s| s.inflight.as_ref().is_some_and(InFlight::pending))
            .count();
        Stats {
            counters: self.counters.clone(),
            workers: self.live_workers(),
            available: self.idle.len(),
            busy,
            in_flight,
            queued: self.queue.len(),
            circuit_open: self.circuit_open,
            sessions: self.sessions.len(),
        }
    }

    /// Every slot in use, with its worker.
    pub fn workers(&self) -> Vec<WorkerInfo<H::Worker>> {
        self.slots
            .iter()
            .filter(|slot| slot.status != SlotStatus::Vacant)
            .map(|slot| WorkerInfo {
                worker: slot.worker().cloned(),
                status: slot.status,
                requests: slot.requests,
                errors: slot.errors,
                last_used: slot.last_used,
                installed: slot.installed,
            })
            .collect()
    }
}

/// Takes the caller away from a running request past its timeout (its execution timeout, or a
/// stream's idle timeout when that came first): records the outcome and returns the reply
/// target with the failure and timings. The worker stays busy (no new work) until it
/// answers, or is killed once the cancel grace is over.
pub(crate) fn expire<H: Host>(
    counters: &mut Counters,
    inflight: &mut InFlight<H>,
    now: Instant,
) -> Option<(H::Reply, Failure<H::Loss>, Timings)> {
    inflight.expired_at = Some(now);
    let reply = inflight.reply.take()?;
    let timings = counters.record(Outcome::Timeout, inflight.timings(now));
    let command = inflight.command.clone();
    let whole = inflight.dispatched + inflight.timeout;
    let failure = match inflight.stream.as_ref().and_then(|s| s.chunk_timeout) {
        Some(timeout) if now < whole => Failure::ChunkTimeout { command, timeout },
        _ => Failure::Timeout {
            command,
            timeout: inflight.timeout,
        },
    };
    Some((reply, failure, timings))
}
