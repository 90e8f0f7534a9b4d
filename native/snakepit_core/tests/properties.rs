//! Properties of the dispatch state machine over random runs: requests, replies, crashes, failed
//! starts, dying callers, caller deadline checks and the passing of time, driven by a model
//! host that checks every effect as it is carried out.
//!
//! - every accepted request is answered exactly once (or dropped because its caller died);
//! - requests reach workers in FIFO order;
//! - a request whose queue time ran out never reaches a worker;
//! - a busy worker, or one not (or no longer) installed, never gets work;
//! - in every snapshot, `requests == Σ outcomes + in_flight + queued`;
//!
//! and, with requests of a few sessions in every affinity mode mixed in (`session.rs`):
//!
//! - a strict request of a session bound to a live worker runs on that worker or nowhere;
//!   a fail-fast one runs at once or is refused, never queued; a strict one of a session whose
//!   worker is gone is refused;
//! - a hint request of a session bound to an idle worker runs there at once;
//! - no request but a strict one waits while a worker is idle;
//! - requests without a session reach workers in FIFO order;
//! - a session's reported worker is always installed, and a forgotten session has none;
//!
//! and, with streams mixed in (`stream.rs`: chunks, acknowledgements, halts, dying callers,
//! idle timeouts):
//!
//! - every stream gets exactly one end (a final reply, a failure, or its halt), and no chunk
//!   reaches its sink after it;
//! - a stream carries a window exactly when its worker takes credit;
//! - credit sent never exceeds the chunks acknowledged (so chunks ≤ window + acknowledged);
//! - a halted stream's worker gets new work only after its final reply.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use common::*;
use proptest::prelude::*;
use snakepit_core::{
    Affinity, Chunked, Completed, Config, Deadline, Outcome, Rejected, Send, Submitted,
};

const AFFINITIES: [Affinity; 3] = [
    Affinity::Hint,
    Affinity::StrictQueue,
    Affinity::StrictFailFast,
];

#[derive(Debug, Clone)]
enum Op {
    Submit {
        timeout_ms: u64,
    },
    /// A request of session `s{session}` in mode `AFFINITIES[mode]`.
    SubmitInSession {
        session: u8,
        mode: usize,
    },
    Forget {
        session: u8,
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
    SubmitStream {
        timeout_ms: u64,
        window: u64,
        chunk_timeout_ms: Option<u64>,
    },
    /// The worker of `slot` sends a chunk of the stream it runs (as its window allows); with
    /// `rogue`, whatever it runs.
    Chunk {
        slot: usize,
        rogue: bool,
    },
    /// The consumer of a stream takes up to `k` of the chunks it got.
    Ack {
        pick: usize,
        k: u64,
    },
    Halt {
        pick: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1u64..3000).prop_map(|timeout_ms| Op::Submit { timeout_ms }),
        3 => (0u8..4, 0usize..3).prop_map(|(session, mode)| Op::SubmitInSession { session, mode }),
        1 => (0u8..4).prop_map(|session| Op::Forget { session }),
        4 => (0usize..6, proptest::bool::weighted(0.2))
            .prop_map(|(slot, failed)| Op::Reply { slot, failed }),
        3 => (1u64..2500, proptest::bool::weighted(0.6)).prop_map(|(ms, tick)| Op::Advance { ms, tick }),
        1 => (0usize..64).prop_map(|pick| Op::CheckDeadline { pick }),
        1 => (0usize..64).prop_map(|pick| Op::CallerDown { pick }),
        1 => (0usize..6).prop_map(|slot| Op::Crash { slot }),
        2 => proptest::bool::weighted(0.7).prop_map(|ok| Op::StartResolves { ok }),
        2 => (1u64..3000, 1u64..5, proptest::option::of(50u64..1500)).prop_map(
            |(timeout_ms, window, chunk_timeout_ms)| Op::SubmitStream { timeout_ms, window, chunk_timeout_ms }
        ),
        5 => (0usize..6, proptest::bool::weighted(0.03)).prop_map(|(slot, rogue)| Op::Chunk { slot, rogue }),
        3 => (0usize..64, 1u64..4).prop_map(|(pick, k)| Op::Ack { pick, k }),
        1 => (0usize..64).prop_map(|pick| Op::Halt { pick }),
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
    /// Requests waiting for a worker (accepted, not sent, not answered): whether strict.
    waiting: HashMap<u64, bool>,
    /// Requests of a session: they may overtake others.
    in_session: BTreeSet<u64>,
    /// Strict requests that must run on this worker (their session's, when submitted).
    pinned: HashMap<u64, u64>,
    /// The model's own session map: request id → session, and session → (the worker that last
    /// started one of its requests, when the session was last used).
    session_of: HashMap<u64, String>,
    bindings: HashMap<String, (u64, u64)>,
    session_ttl_ms: u64,
    /// Streams by request id.
    streams: BTreeMap<u64, StreamModel>,
    /// Requests dropped with their caller while they waited.
    gone: BTreeSet<u64>,
}

/// What the model knows of one stream.
#[derive(Debug, Default)]
struct StreamModel {
    window: u64,
    /// The window its frame carried, once sent to a worker.
    window_sent: Option<Option<u64>>,
    delivered: u64,
    acked: u64,
    credited: u64,
}

impl Model {
    fn new(config: Config) -> Self {
        let clock = Clock::new();
        let queue_timeout_ms = config.queue_timeout.as_millis() as u64;
        let session_ttl_ms = config
            .session_ttl
            .map_or(u64::MAX, |ttl| ttl.as_millis() as u64);
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
            waiting: HashMap::new(),
            in_session: BTreeSet::new(),
            pinned: HashMap::new(),
            session_of: HashMap::new(),
            bindings: HashMap::new(),
            session_ttl_ms,
            streams: BTreeMap::new(),
            gone: BTreeSet::new(),
        };
        model.carry_out(effects);
        model
    }

    fn answer(&mut self, id: u64) {
        assert!(
            self.accepted.contains_key(&id),
            "answered unknown request {id}"
        );
        self.waiting.remove(&id);
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
                    if let Some(&pinned) = self.pinned.get(&id) {
                        assert_eq!(worker, pinned, "strict request {id} left its worker");
                    }
                    if !self.in_session.contains(&id) {
                        assert!(
                            id > self.last_dispatched,
                            "request {id} overtook an older one"
                        );
                        self.last_dispatched = id;
                    }
                    self.waiting.remove(&id);
                    if let Some(session) = self.session_of.get(&id) {
                        self.bindings.insert(session.clone(), (worker, self.now));
                    }
                    let waited = self.now - self.accepted[&id];
                    assert!(
                        waited < self.queue_timeout_ms,
                        "request {id} reached a worker after waiting {waited} ms"
                    );
                    if let Some(stream) = self.streams.get_mut(&id) {
                        let expected = (worker % 2 == 0).then_some(stream.window);
                        assert_eq!(frame_window(&frame), expected, "stream {id}'s window");
                        stream.window_sent = Some(expected);
                    } else {
                        assert_eq!(frame_window(&frame), None, "a window for a call");
                    }
                    self.outstanding.insert(worker, id);
                }
                Send::Credit(id, k) => {
                    assert!(!self.answers.contains_key(&id), "credit after {id}'s end");
                    assert_eq!(self.outstanding.get(&worker), Some(&id), "credit elsewhere");
                    let stream = self.streams.get_mut(&id).expect("credit for a stream");
                    assert!(
                        stream.window_sent.flatten().is_some(),
                        "credit without window"
                    );
                    stream.credited += k.get();
                    assert!(stream.credited <= stream.acked, "{id}: {stream:?}");
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
        // Every failure carries its timings, and they are what the histograms recorded.
        assert_eq!(effects.failures.len(), effects.failure_timings.len());
        for (id, _) in effects.failures {
            self.answer(id);
        }
        // A removed monitor never fires.
        self.monitors
            .retain(|_, monitor| !effects.demonitors.contains(monitor));
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
        if stats.available > 0 {
            let plain = self.waiting.iter().find(|(_, &strict)| !strict);
            assert!(plain.is_none(), "{plain:?} waits while a worker is idle");
        }
        for session in 0..4 {
            let name = format!("s{session}");
            let info = self.dispatch.session(&name, self.at());
            let expected = self.binding(&name);
            assert_eq!(info.is_some(), expected.is_some(), "{name}: {info:?}");
            if let Some(worker) = info.and_then(|info| info.worker) {
                assert!(
                    self.installed.contains_key(&worker),
                    "bound to a gone worker"
                );
                assert_eq!(Some(worker), expected, "{name} bound elsewhere");
            }
        }
    }

    /// The worker the model has session `name` bound to, unless it expired.
    fn binding(&self, name: &str) -> Option<u64> {
        let &(worker, last_used) = self.bindings.get(name)?;
        (self.now - last_used < self.session_ttl_ms).then_some(worker)
    }

    fn submit_in_session(&mut self, session: u8, mode: usize) {
        let id = self.next_id;
        self.next_id += 1;
        let name = format!("s{session}");
        let affinity = AFFINITIES[mode];
        let bound = self
            .dispatch
            .session(&name, self.at())
            .map(|info| info.worker);
        let submitted = self
            .dispatch
            .submit(in_session(id, &name, affinity), self.at());
        // A submit that gets past the pool-wide checks uses the session.
        if !matches!(
            submitted,
            Err((Rejected::Shutdown | Rejected::CircuitOpen { .. }, _))
        ) {
            match self.binding(&name) {
                Some(worker) => drop(self.bindings.insert(name.clone(), (worker, self.now))),
                None => drop(self.bindings.remove(&name)),
            }
        }
        self.session_of.insert(id, name.clone());
        match (&submitted, bound) {
            (Err((Rejected::SessionWorkerUnavailable, _)), bound) => {
                assert!(affinity.is_strict() && bound == Some(None))
            }
            (Err((Rejected::WorkerBusy, _)), Some(Some(worker))) => {
                assert_eq!(affinity, Affinity::StrictFailFast);
                assert!(
                    self.outstanding.contains_key(&worker),
                    "refused for an idle worker"
                );
            }
            (Err((Rejected::WorkerBusy, _)), _) => panic!("busy without a worker"),
            (Ok(_), Some(None)) if affinity.is_strict() => panic!("strict ran without its worker"),
            (Ok(Submitted::Queued), Some(Some(_))) if affinity == Affinity::StrictFailFast => {
                panic!("fail-fast queued")
            }
            (Ok(Submitted::Queued), Some(Some(worker)))
                if !self.outstanding.contains_key(&worker) =>
            {
                panic!("queued while its worker {worker} is idle")
            }
            _ => {}
        }
        if let (Some(Some(worker)), true) = (bound, affinity.is_strict()) {
            self.pinned.insert(id, worker);
        }
        if let Ok(submitted) = submitted {
            self.accepted.insert(id, self.now);
            self.in_session.insert(id);
            match submitted {
                Submitted::Run { worker, frame } => {
                    if let Some(Some(bound)) = bound.filter(|_| affinity == Affinity::Hint) {
                        if !self.outstanding.contains_key(&bound) {
                            assert_eq!(worker, bound, "hint left its idle worker");
                        }
                    }
                    let mut effects = E::default();
                    effects.sends.push((worker, Send::Frame(frame)));
                    self.carry_out(effects);
                }
                Submitted::Queued => {
                    self.waiting.insert(id, affinity.is_strict());
                    self.dispatch.attach_monitor(id, id).unwrap();
                    self.monitors.insert(id, id);
                }
            }
        }
    }

    /// An accepted request: sent to its worker, or waiting with its caller monitored.
    fn accept(&mut self, id: u64, submitted: Submitted<T>) {
        self.accepted.insert(id, self.now);
        match submitted {
            Submitted::Run { worker, frame } => {
                let mut effects = E::default();
                effects.sends.push((worker, Send::Frame(frame)));
                self.carry_out(effects);
            }
            Submitted::Queued => {
                self.waiting.insert(id, false);
                self.dispatch.attach_monitor(id, id).unwrap();
                self.monitors.insert(id, id);
            }
        }
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Submit { timeout_ms } => {
                let id = self.next_id;
                self.next_id += 1;
                if let Ok(submitted) = self.dispatch.submit(request(id, timeout_ms), self.at()) {
                    self.accept(id, submitted);
                }
            }
            Op::SubmitInSession { session, mode } => self.submit_in_session(session, mode),
            Op::Forget { session } => {
                let name = format!("s{session}");
                self.dispatch.forget_session(&name);
                self.bindings.remove(&name);
                assert!(self.dispatch.session(&name, self.at()).is_none());
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
                    Completed::Request(Some((reply, _))) => self.answer(reply),
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
                if let Deadline::Expired(..) = deadline {
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
                let effects = self.dispatch.caller_down(|m| *m == monitor, self.at());
                if effects.withdrawn == [id] {
                    assert!(!self.answers.contains_key(&id));
                    if self.waiting.remove(&id).is_some() {
                        self.gone.insert(id);
                    } else {
                        // A running stream is halted: that is its end.
                        assert!(self.streams.contains_key(&id));
                        self.answer(id);
                    }
                } else {
                    assert!(effects.withdrawn.is_empty());
                }
                self.carry_out(effects);
            }
            Op::SubmitStream {
                timeout_ms,
                window,
                chunk_timeout_ms,
            } => {
                let id = self.next_id;
                self.next_id += 1;
                let request = streamed(id, timeout_ms, window, chunk_timeout_ms);
                self.streams.insert(
                    id,
                    StreamModel {
                        window,
                        ..Default::default()
                    },
                );
                let Ok(submitted) = self.dispatch.submit(request, self.at()) else {
                    self.streams.remove(&id);
                    return self.check_identity();
                };
                let running = matches!(submitted, Submitted::Run { .. });
                self.accept(id, submitted);
                // A stream's caller is monitored while it runs too.
                if running {
                    self.dispatch.attach_monitor(id, id).unwrap();
                    self.monitors.insert(id, id);
                }
            }
            Op::Chunk { slot, rogue } => {
                let Some((&uid, _)) = self.installed.iter().find(|(_, &s)| s == slot) else {
                    return;
                };
                let Some(&id) = self.outstanding.get(&uid) else {
                    return;
                };
                let chunked = match self.streams.get(&id) {
                    Some(stream) => {
                        let window = stream.window_sent.flatten();
                        if window.is_some_and(|w| stream.delivered >= w + stream.credited) {
                            return;
                        }
                        self.dispatch.on_chunk(slot, uid, id, self.at())
                    }
                    None if rogue => self.dispatch.on_chunk(slot, uid, id, self.at()),
                    None => return,
                };
                match chunked {
                    Chunked::Deliver(sink) => {
                        assert_eq!(sink, id);
                        assert!(!self.answers.contains_key(&id), "chunk after {id}'s end");
                        self.streams.get_mut(&id).unwrap().delivered += 1;
                    }
                    Chunked::Discard => {
                        assert!(self.answers.contains_key(&id), "{id}'s chunk dropped");
                        self.streams.get_mut(&id).unwrap().delivered += 1;
                    }
                    Chunked::Unexpected(_) if !self.streams.contains_key(&id) => {
                        self.installed.remove(&uid);
                        self.outstanding.remove(&uid);
                        let (_, effects) =
                            self.dispatch.worker_down(slot, uid, "broken", self.at());
                        self.carry_out(effects);
                    }
                    other => panic!("chunk of stream {id}: {other:?}"),
                }
            }
            Op::Ack { pick, k } => {
                let count = self.streams.len().max(1);
                let Some((&id, stream)) = self.streams.iter_mut().nth(pick % count) else {
                    return;
                };
                let k = k.min(stream.delivered - stream.acked);
                if k == 0 {
                    return;
                }
                stream.acked += k;
                let effects = self.dispatch.stream_ack(id, k, self.at());
                self.carry_out(effects);
            }
            Op::Halt { pick } => {
                let Some(&id) = self.streams.keys().nth(pick % self.streams.len().max(1)) else {
                    return;
                };
                let effects = self.dispatch.halt(id, self.at());
                if effects.withdrawn == [id] {
                    self.answer(id);
                } else {
                    assert!(effects.withdrawn.is_empty());
                    assert!(
                        !self.accepted.contains_key(&id)
                            || self.answers.contains_key(&id)
                            || self.gone.contains(&id),
                        "halting {id}, which has no end yet, did nothing"
                    );
                }
                self.carry_out(effects);
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
            config.session_ttl = Some(ms(6000));
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
