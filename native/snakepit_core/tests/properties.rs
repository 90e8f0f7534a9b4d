//! Properties of the dispatch state machine over random runs: requests, replies, crashes, failed
//! starts, dying callers, caller deadline checks and the passing of time, driven by a model
//! host that checks every effect as it is carried out.
//!
//! - every accepted request is answered exactly once (or dropped because its caller died);
//! - requests reach workers in FIFO order;
//! - a request whose queue time ran out never reaches a worker;
//! - a busy worker, or one not (or no longer) installed, never gets work;
//! - in every snapshot, `requests == Σ outcomes + in_flight + queued`.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use common::*;
use proptest::prelude::*;
use snakepit_core::{Completed, Config, Deadline, Outcome, Send, Submitted};

#[derive(Debug, Clone)]
enum Op {
    Submit {
        timeout_ms: u64,
    },
    Reply {
        slot: usize,
        failed: bool,
    },
    /// Time passes; the host's timer may not have run yet (`tick: false`).
    Advance {
        ms: u64,
        tick: bool,
    },
    CheckDeadline {
        pick: usize,
    },
    CallerDown {
        pick: usize,
    },
    Crash {
        slot: usize,
    },
    StartResolves {
        ok: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u64..3000).prop_map(|timeout_ms| Op::Submit { timeout_ms }),
        4 => (0usize..6, proptest::bool::weighted(0.2))
            .prop_map(|(slot, failed)| Op::Reply { slot, failed }),
        3 => (1u64..2500, proptest::bool::weighted(0.6)).prop_map(|(ms, tick)| Op::Advance { ms, tick }),
        1 => (0usize..64).prop_map(|pick| Op::CheckDeadline { pick }),
        1 => (0usize..64).prop_map(|pick| Op::CallerDown { pick }),
        1 => (0usize..6).prop_map(|slot| Op::Crash { slot }),
        2 => proptest::bool::weighted(0.7).prop_map(|ok| Op::StartResolves { ok }),
    ]
}

/// The model host: what each worker was given, who was answered, what is pending.
struct Model {
    clock: Clock,
    now: u64,
    dispatch: D,
    queue_timeout_ms: u64,
    next_id: u64,
    next_uid: u64,
    /// Accepted request ids and when they were submitted.
    accepted: BTreeMap<u64, u64>,
    /// How many times each request was answered (or dropped with its caller).
    answers: HashMap<u64, u32>,
    /// Worker uid → slot, for installed workers.
    installed: HashMap<u64, usize>,
    /// Worker uid → the request (or health check) it was given and has not answered.
    outstanding: HashMap<u64, u64>,
    /// Highest request id a worker received so far (FIFO check).
    last_dispatched: u64,
    /// Slots waiting for the host to start a worker.
    starts: Vec<usize>,
    /// Callers whose monitor is attached: request id → monitor.
    monitors: HashMap<u64, u64>,
    health_ids: BTreeSet<u64>,
}

impl Model {
    fn new(config: Config) -> Self {
        let clock = Clock::new();
        let queue_timeout_ms = config.queue_timeout.as_millis() as u64;
        let (dispatch, effects) = D::new(config, clock.at(0));
        let mut model = Model {
            clock,
            now: 0,
            dispatch,
            queue_timeout_ms,
            next_id: 1,
            next_uid: 1,
            accepted: BTreeMap::new(),
            answers: HashMap::new(),
            installed: HashMap::new(),
            outstanding: HashMap::new(),
            last_dispatched: 0,
            starts: Vec::new(),
            monitors: HashMap::new(),
            health_ids: BTreeSet::new(),
        };
        model.carry_out(effects);
        model
    }

    fn answer(&mut self, id: u64) {
        assert!(
            self.accepted.contains_key(&id),
            "answered unknown request {id}"
        );
        *self.answers.entry(id).or_default() += 1;
        assert_eq!(self.answers[&id], 1, "request {id} answered twice");
    }

    /// Carries out effects, checking each.
    fn carry_out(&mut self, effects: E) {
        for (worker, send) in effects.sends {
            match send {
                Send::Frame(frame) => {
                    let id = frame_id(&frame);
                    assert!(
                        self.installed.contains_key(&worker),
                        "work for a worker not installed"
                    );
                    assert!(
                        !self.outstanding.contains_key(&worker),
                        "request {id} sent to busy worker {worker}"
                    );
                    assert!(
                        id > self.last_dispatched,
                        "request {id} overtook an older one"
                    );
                    self.last_dispatched = id;
                    let waited = self.now - self.accepted[&id];
                    assert!(
                        waited < self.queue_timeout_ms,
                        "request {id} reached a worker after waiting {waited} ms"
                    );
                    self.outstanding.insert(worker, id);
                }
                Send::HealthCheck(id) => {
                    assert!(
                        !self.outstanding.contains_key(&worker),
                        "health check to a busy worker"
                    );
                    self.health_ids.insert(id);
                    self.outstanding.insert(worker, id);
                }
                Send::Cancel(_) => {}
            }
        }
        for (id, _) in effects.failures {
            self.answer(id);
        }
        for worker in effects.kills.into_iter().chain(effects.closes) {
            // A killed or closed worker exits: the reader reports it gone.
            if let Some(slot) = self.installed.remove(&worker) {
                self.outstanding.remove(&worker);
                let (_, effects) = self.dispatch.worker_down(slot, worker, "gone", self.at());
                self.carry_out(effects);
            }
        }
        self.starts.extend(effects.starts);
    }

    fn at(&self) -> std::time::Instant {
        self.clock.at(self.now)
    }

    fn check_identity(&self) {
        let stats = self.dispatch.stats();
        let outcomes: u64 = Outcome::ALL
            .iter()
            .map(|&o| stats.counters.outcome(o))
            .sum();
        assert_eq!(
            stats.counters.requests,
            outcomes + stats.in_flight as u64 + stats.queued as u64,
            "{stats:?}"
        );
        assert_eq!(stats.counters.requests, self.accepted.len() as u64);
        let answered = self.answers.len() as u64;
        let gone = stats.counters.outcome(Outcome::CallerGone);
        assert_eq!(answered + gone, outcomes, "every outcome is one answer");
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Submit { timeout_ms } => {
                let id = self.next_id;
                self.next_id += 1;
                if let Ok(submitted) = self.dispatch.submit(request(id, timeout_ms), self.at()) {
                    {
                        self.accepted.insert(id, self.now);
                        match submitted {
                            Submitted::Run { worker, frame } => {
                                let mut effects = E::default();
                                effects.sends.push((worker, Send::Frame(frame)));
                                self.carry_out(effects);
                            }
                            Submitted::Queued => {
                                self.dispatch.attach_monitor(id, id).unwrap();
                                self.monitors.insert(id, id);
                            }
                        }
                    }
                }
            }
            Op::Reply { slot, failed } => {
                let Some((&uid, _)) = self.installed.iter().find(|(_, &s)| s == slot) else {
                    return;
                };
                let Some(id) = self.outstanding.remove(&uid) else {
                    return;
                };
                let (completed, effects) = self.dispatch.on_reply(slot, uid, id, failed, self.at());
                match completed {
                    Completed::Request(Some(reply)) => self.answer(reply),
                    Completed::Request(None) | Completed::HealthCheck { ok: true } => {}
                    Completed::HealthCheck { ok: false } | Completed::Unexpected(_) => {
                        // The host kills a broken worker.
                        self.installed.remove(&uid);
                        let (_, more) = self.dispatch.worker_down(slot, uid, "broken", self.at());
                        self.carry_out(more);
                    }
                    Completed::Stale => panic!("stale reply from an installed worker"),
                }
                self.carry_out(effects);
            }
            Op::Advance { ms, tick } => {
                self.now += ms;
                if !tick {
                    return self.check_identity();
                }
                let mut next = 1_000_000;
                let effects = self.dispatch.tick(self.at(), &mut || {
                    next += 1;
                    next
                });
                self.carry_out(effects);
                if let Some(due) = self.dispatch.next_deadline() {
                    assert!(due > self.at(), "a tick leaves nothing due");
                }
            }
            Op::CheckDeadline { pick } => {
                let Some(&id) = self.accepted.keys().nth(pick) else {
                    return;
                };
                if self.answers.contains_key(&id) {
                    return;
                }
                let (deadline, effects) = self.dispatch.check_deadline(id, self.at());
                if let Deadline::Expired(_) = deadline {
                    self.answer(id);
                }
                self.carry_out(effects);
            }
            Op::CallerDown { pick } => {
                let Some((&id, &monitor)) =
                    self.monitors.iter().nth(pick % self.monitors.len().max(1))
                else {
                    return;
                };
                self.monitors.remove(&id);
                if !self.dispatch.caller_down(|m| *m == monitor).is_empty() {
                    assert!(!self.answers.contains_key(&id));
                }
            }
            Op::Crash { slot } => {
                let Some((&uid, _)) = self.installed.iter().find(|(_, &s)| s == slot) else {
                    return;
                };
                self.installed.remove(&uid);
                self.outstanding.remove(&uid);
                let (_, effects) = self.dispatch.worker_down(slot, uid, "crashed", self.at());
                self.carry_out(effects);
            }
            Op::StartResolves { ok } => {
                if self.starts.is_empty() {
                    return;
                }
                let slot = self.starts.remove(0);
                if ok {
                    let uid = self.next_uid;
                    self.next_uid += 1;
                    if let Ok(effects) = self.dispatch.worker_up(slot, uid, uid, self.at()) {
                        self.installed.insert(uid, slot);
                        self.carry_out(effects);
                    }
                } else {
                    let effects = self.dispatch.start_failed(slot, "failed", self.at());
                    self.carry_out(effects);
                }
            }
        }
        self.check_identity();
    }

    /// Stops the pool: afterwards every accepted request has been answered or dropped.
    fn finish(&mut self) {
        let effects = self.dispatch.begin_stop(self.at()).unwrap();
        self.carry_out(effects);
        self.check_identity();
        let gone = self.dispatch.stats().counters.outcome(Outcome::CallerGone);
        // Requests that timed out while their worker kept running were answered at expiry.
        assert_eq!(self.answers.len() as u64 + gone, self.accepted.len() as u64);
    }
}

fn small_config() -> impl Strategy<Value = Config> {
    (
        1usize..4,
        1usize..8,
        200u64..4000,
        proptest::option::of(500u64..5000),
        proptest::option::of(1u64..6),
    )
        .prop_map(|(size, max_queue, queue_timeout, health, max_requests)| {
            let mut config = Config::new(size);
            config.max_queue_size = max_queue;
            config.queue_timeout = ms(queue_timeout);
            config.health_check_interval = health.map(ms);
            config.health_check_timeout = ms(300);
            config.cancel_grace = ms(500);
            config.worker_max_requests = max_requests;
            config.max_start_failures = 3;
            config
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn dispatch_keeps_its_promises(config in small_config(), ops in proptest::collection::vec(op(), 1..200)) {
        let mut model = Model::new(config);
        for op in ops {
            model.step(op);
        }
        model.finish();
    }
}
