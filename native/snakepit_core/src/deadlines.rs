//! The timer's side of the state machine: [`Dispatch::tick`] carries out whatever is due, and
//! [`Dispatch::next_deadline`] says when to call it next, so the host's timer sleeps until then
//! instead of polling.
//!
//! The session map's rotation (`session.rs`) is one more deadline, once per session TTL.
//!
//! Why no ordered set of deadlines: every slot has at most one timer running at a time (its
//! request's timeout, then its cancel grace; or, idle, its health check and age; or, waiting, its
//! start retry), and all queued requests share the pool's queue timeout, so the front of each
//! queue line is its earliest deadline. `next_deadline` is therefore a scan over the slots and the
//! line fronts, done by the timer alone; the request path pays nothing to keep an ordered set
//! current, and nothing stale accumulates in one. A new deadline earlier than the timer's wakes it
//! ([`Dispatch::take_wake`]).

use std::time::Instant;

use crate::dispatch::{expire, Dispatch, Phase};
use crate::effects::{Effects, Failure, Send};
use crate::outcome::Outcome;
use crate::slot::{InFlight, Kind, SlotStatus};
use crate::Host;

impl<H: Host> Dispatch<H> {
    /// Carries out what is due at `now`: queued requests past the queue timeout fail; running
    /// requests past their timeout fail and their worker is sent a cancel; workers still silent
    /// after the cancel grace are killed; idle workers are health-checked or recycled; failed
    /// starts are retried. `next_id` numbers health-check requests.
    pub fn tick(&mut self, now: Instant, next_id: &mut dyn FnMut() -> u64) -> Effects<H> {
        let now = self.clock(now);
        let mut effects = Effects::default();
        if self.phase == Phase::Stopping {
            return effects;
        }
        let queue_timeout = self.config.queue_timeout;
        let expired = self.queue.drain_front_while(|queued| {
            now.saturating_duration_since(queued.enqueued) >= queue_timeout
        });
        for queued in expired {
            let timings = self
                .counters
                .record(Outcome::QueueTimeout, queued.timings(now));
            effects.demonitors.extend(queued.monitor);
            let waited = timings.queue;
            effects.fail(queued.reply, Failure::QueueTimeout { waited }, timings);
        }
        let grace = self.config.cancel_grace;
        let mut due_checks = Vec::new();
        let mut due_recycling = Vec::new();
        for index in 0..self.slots.len() {
            let slot = &mut self.slots[index];
            if slot.status == SlotStatus::Waiting && slot.retry_at.is_some_and(|at| at <= now) {
                slot.status = SlotStatus::Starting;
                slot.retry_at = None;
                effects.starts.push(index);
                continue;
            }
            let Some(worker) = slot.worker().cloned() else {
                continue;
            };
            if let Some(inflight) = slot.inflight.as_mut() {
                if inflight.expired_at.is_none() && now >= inflight.deadline() {
                    if let Some((reply, failure, timings)) =
                        expire(&mut self.counters, inflight, now)
                    {
                        slot.errors += 1;
                        effects.fail(reply, failure, timings);
                    }
                }
                if let Some(expired_at) = inflight.expired_at {
                    if !inflight.cancel_sent {
                        inflight.cancel_sent = true;
                        effects
                            .sends
                            .push((worker.clone(), Send::Cancel(inflight.id)));
                    }
                    if now >= expired_at + grace && !inflight.killed {
                        inflight.killed = true;
                        self.counters.workers_killed += 1;
                        effects.kills.push(worker);
                    }
                }
                continue;
            }
            if slot.status != SlotStatus::Idle || slot.retiring {
                continue;
            }
            if self.worn_out(index, now) {
                due_recycling.push(index);
            } else if self.health_check_due(index, now) {
                due_checks.push(index);
            }
        }
        for index in due_recycling {
            self.retire(index, &mut effects);
        }
        for index in due_checks {
            self.health_check(index, next_id(), now, &mut effects);
        }
        effects.ended_sessions = self.sessions.rotate(now);
        self.timer_at = self.next_deadline();
        self.take_wake();
        effects
    }

    /// When the timer is due, as the last tick (or an earlier new deadline since) set it.
    pub fn timer_due(&self) -> Option<Instant> {
        self.timer_at
    }

    /// When [`Dispatch::tick`] next has something to do; `None`: nothing is pending.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.phase == Phase::Stopping {
            return None;
        }
        let queue_timeout = self.config.queue_timeout;
        let queued = self
            .queue
            .fronts()
            .map(|queued| queued.enqueued + queue_timeout);
        let slots = (0..self.slots.len()).filter_map(|index| self.slot_deadline(index));
        queued.chain(slots).chain(self.sessions.rotate_at()).min()
    }

    /// The earliest thing due for slot `index`.
    fn slot_deadline(&self, index: usize) -> Option<Instant> {
        let slot = &self.slots[index];
        if slot.status == SlotStatus::Waiting {
            return slot.retry_at;
        }
        match &slot.inflight {
            Some(InFlight {
                expired_at: None, ..
            }) => slot.inflight.as_ref().map(InFlight::deadline),
            Some(inflight) if !inflight.cancel_sent => inflight.expired_at,
            Some(inflight) if !inflight.killed => {
                inflight.expired_at.map(|at| at + self.config.cancel_grace)
            }
            Some(_) => None,
            None if slot.status == SlotStatus::Idle => self.idle_deadline(index),
            None => None,
        }
    }

    /// When idle slot `index` is due for recycling by age or for a health check.
    pub(crate) fn idle_deadline(&self, index: usize) -> Option<Instant> {
        let slot = &self.slots[index];
        if slot.retiring {
            return None;
        }
        let config = &self.config;
        let aged = config.worker_ttl.map(|ttl| slot.installed + ttl);
        let check = config
            .health_check_interval
            .map(|interval| slot.last_active + interval);
        aged.into_iter().chain(check).min()
    }

    fn health_check_due(&self, index: usize, now: Instant) -> bool {
        let last_active = self.slots[index].last_active;
        self.config
            .health_check_interval
            .is_some_and(|interval| now.saturating_duration_since(last_active) >= interval)
    }

    fn health_check(&mut self, index: usize, id: u64, now: Instant, effects: &mut Effects<H>) {
        self.idle.retain(|&idle| idle != index);
        self.counters.health_checks += 1;
        let inflight = InFlight {
            id,
            kind: Kind::HealthCheck,
            command: String::new(),
            reply: None,
            submitted: now,
            dispatched: now,
            timeout: self.config.health_check_timeout,
            expired_at: None,
            cancel_sent: false,
            killed: false,
            stream: None,
            session_id: None,
        };
        let worker = self.run(index, inflight);
        effects.sends.push((worker, Send::HealthCheck(id)));
    }
}
