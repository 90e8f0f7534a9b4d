//! The dispatch state machine, worker side: workers coming up and going away, failed starts
//! with capped back-off, the circuit, recycling, and stop.

use std::time::Instant;

use crate::dispatch::{Dispatch, Phase};
use crate::effects::{Effects, Event, Failure};
use crate::outcome::Outcome;
use crate::slot::{Slot, SlotStatus};
use crate::Host;

/// What became of a worker that went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    /// It died in service: a replacement is starting in its slot.
    Crashed,
    /// It was recycled; its replacement already serves.
    Retired,
    /// The pool is stopping.
    Stopping,
    /// It was not (or no longer) installed: a failed start, or already replaced.
    NotInstalled,
}

/// The pool is stopping: the host stops the worker it just started.
#[derive(Debug, PartialEq, Eq)]
pub struct NotWanted;

impl<H: Host> Dispatch<H> {
    /// A worker completed its handshake in slot `slot_index`: it is installed and gets work. If
    /// it replaces a recycled worker, that one drains.
    pub fn worker_up(
        &mut self,
        slot_index: usize,
        uid: u64,
        worker: H::Worker,
        now: Instant,
    ) -> Result<Effects<H>, NotWanted> {
        let now = self.clock(now);
        if self.phase == Phase::Stopping {
            return Err(NotWanted);
        }
        let mut effects = Effects::default();
        let slot = &mut self.slots[slot_index];
        slot.worker = Some((uid, worker));
        slot.inflight = None;
        slot.served = 0;
        slot.installed = now;
        slot.last_active = now;
        slot.retiring = false;
        slot.failures = 0;
        slot.retry_at = None;
        let replaces = slot.replaces.take();
        let initial = std::mem::take(&mut slot.initial);
        self.counters.worker_starts += 1;
        if self.circuit_open {
            effects.events.push(Event::CircuitClosed);
        }
        self.start_failures = 0;
        self.circuit_open = false;
        self.next_request(slot_index, now, &mut effects);
        if let Some(old) = replaces {
            self.drain(old, &mut effects);
        }
        if initial {
            self.initial_resolved(&mut effects);
        }
        Ok(effects)
    }

    /// Starting a worker in slot `slot_index` failed. The slot is retried after a back-off that
    /// doubles per failure (capped), for as long as the pool runs. Past `max_start_failures` in
    /// a row the circuit opens: while no worker runs, requests then fail at once.
    pub fn start_failed(&mut self, slot_index: usize, message: &str, now: Instant) -> Effects<H> {
        let now = self.clock(now);
        let mut effects = Effects::default();
        self.counters.worker_start_failures += 1;
        if self.phase == Phase::Stopping {
            return effects;
        }
        let slot = &mut self.slots[slot_index];
        slot.failures += 1;
        slot.status = SlotStatus::Waiting;
        let retry_at = now + self.config.backoff(slot.failures);
        slot.retry_at = Some(retry_at);
        let initial = std::mem::take(&mut slot.initial);
        self.note_deadline(retry_at);
        self.start_failures += 1;
        if !self.circuit_open && self.start_failures >= self.config.max_start_failures {
            self.circuit_open = true;
            let failures = self.config.max_start_failures;
            effects.events.push(Event::CircuitOpened { failures });
            if self.live_workers() == 0 {
                for queued in self.queue.drain_all() {
                    let timings = self
                        .counters
                        .record(Outcome::CircuitOpen, queued.timings(now));
                    effects.demonitors.extend(queued.monitor);
                    effects.fail(queued.reply, Failure::CircuitOpen { failures }, timings);
                }
            }
        }
        if initial {
            self.last_start_error = message.to_string();
            self.initial_resolved(&mut effects);
        }
        effects
    }

    /// The worker `uid` of slot `slot_index` is gone (it exited, or broke the protocol): its
    /// running request fails with `loss`, and a replacement starts unless it was recycled.
    pub fn worker_down(
        &mut self,
        slot_index: usize,
        uid: u64,
        loss: H::Loss,
        now: Instant,
    ) -> (Removed, Effects<H>) {
        let now = self.clock(now);
        let mut effects = Effects::default();
        if !self.slots[slot_index].holds(uid) {
            return (Removed::NotInstalled, effects);
        }
        self.idle.retain(|&idle| idle != slot_index);
        let slot = &mut self.slots[slot_index];
        let retired = slot.status == SlotStatus::Draining || slot.retiring;
        slot.worker = None;
        slot.retiring = false;
        slot.status = if retired {
            SlotStatus::Vacant
        } else {
            SlotStatus::Starting
        };
        if let Some(inflight) = slot.inflight.take() {
            let timings = inflight.timings(now);
            if let Some(reply) = inflight.leave(&mut effects) {
                slot.errors += 1;
                self.counters.record(Outcome::Lost, timings);
                effects.fail(reply, Failure::Lost(loss), timings);
            }
        }
        // Strict requests waiting for this worker fail; hint ones wait for any worker instead.
        self.abandon_line(slot_index, &mut effects);
        let removed = match (self.phase, retired) {
            (Phase::Stopping, _) => Removed::Stopping,
            (_, true) => Removed::Retired,
            (_, false) => {
                self.counters.worker_crashes += 1;
                effects.starts.push(slot_index);
                Removed::Crashed
            }
        };
        (removed, effects)
    }

    /// Enters the stopping phase: refuses new work and fails everything queued or running with
    /// [`Failure::Shutdown`]. `None` if stop had already begun.
    pub fn begin_stop(&mut self, now: Instant) -> Option<Effects<H>> {
        let now = self.clock(now);
        if self.phase == Phase::Stopping {
            return None;
        }
        self.phase = Phase::Stopping;
        self.timer_at = None;
        let mut effects = Effects::default();
        for queued in self.queue.drain_all() {
            let timings = self.counters.record(Outcome::Shutdown, queued.timings(now));
            effects.demonitors.extend(queued.monitor);
            effects.fail(queued.reply, Failure::Shutdown, timings);
        }
        for slot in &mut self.slots {
            let Some(inflight) = slot.inflight.take() else {
                continue;
            };
            let timings = inflight.timings(now);
            if let Some(reply) = inflight.leave(&mut effects) {
                self.counters.record(Outcome::Shutdown, timings);
                effects.fail(reply, Failure::Shutdown, timings);
            }
        }
        self.idle.clear();
        Some(effects)
    }

    /// Whether slot `index`'s worker is due for recycling: `worker_max_requests` served or
    /// `worker_ttl` old.
    pub(crate) fn worn_out(&self, index: usize, now: Instant) -> bool {
        let slot = &self.slots[index];
        let config = &self.config;
        config
            .worker_max_requests
            .is_some_and(|max| slot.served >= max)
            || config
                .worker_ttl
                .is_some_and(|ttl| now.saturating_duration_since(slot.installed) >= ttl)
    }

    /// Starts recycling slot `index`'s worker: a replacement starts in another slot; this worker
    /// keeps serving until the replacement is ready, so capacity never drops.
    pub(crate) fn retire(&mut self, index: usize, effects: &mut Effects<H>) {
        if self.phase == Phase::Stopping {
            return;
        }
        let Some((uid, _)) = self.slots[index].worker else {
            return;
        };
        self.slots[index].retiring = true;
        let mut fresh = Slot::new(SlotStatus::Starting, self.slots[index].installed);
        fresh.replaces = Some((index, uid));
        let new_index = match self
            .slots
            .iter()
            .position(|s| s.status == SlotStatus::Vacant)
        {
            Some(vacant) => {
                self.slots[vacant] = fresh;
                vacant
            }
            None => {
                self.slots.push(fresh);
                self.slots.len() - 1
            }
        };
        self.counters.worker_recycles += 1;
        effects.starts.push(new_index);
    }

    /// The replaced worker of a recycled slot gets no new work and exits when done.
    fn drain(&mut self, (index, uid): (usize, u64), effects: &mut Effects<H>) {
        let slot = &mut self.slots[index];
        if !slot.holds(uid) {
            return;
        }
        match slot.status {
            SlotStatus::Idle => {
                slot.status = SlotStatus::Draining;
                effects.closes.extend(slot.worker().cloned());
                self.idle.retain(|&idle| idle != index);
            }
            SlotStatus::Busy => slot.status = SlotStatus::Draining,
            _ => return,
        }
        // Its sessions' state goes with it: nothing more waits for it.
        self.abandon_line(index, effects);
    }

    /// One slot of the initial round resolved; when all have, the pool runs (and says whether
    /// any worker started — if none did, it keeps retrying).
    fn initial_resolved(&mut self, effects: &mut Effects<H>) {
        self.initial_pending -= 1;
        if self.initial_pending > 0 || self.phase != Phase::Starting {
            return;
        }
        self.phase = Phase::Running;
        let started = self.live_workers();
        effects.events.push(if started > 0 {
            Event::Ready { started }
        } else {
            Event::StartFailed {
                message: std::mem::take(&mut self.last_start_error),
            }
        });
    }
}
