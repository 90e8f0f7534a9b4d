//! The session affinity rules (`session.rs`), one test each, with the clock passed in.

mod common;

use common::*;
use snakepit_core::Affinity::{Hint, StrictFailFast, StrictQueue};
use snakepit_core::{Affinity, Failure, Outcome, Rejected, Send, Submitted};

fn frame(id: u64) -> Send {
    Send::Frame(id.to_le_bytes().to_vec())
}

/// The worker a request ran on at once; panics if it was queued or refused.
fn ran_on(d: &mut D, id: u64, session: &str, affinity: Affinity, at: u64, clock: &Clock) -> u64 {
    match d.submit(in_session(id, session, affinity), clock.at(at)) {
        Ok(Submitted::Run { worker, .. }) => worker,
        Ok(Submitted::Queued) => panic!("request {id} was queued"),
        Err((rejected, _)) => panic!("request {id} was refused: {rejected:?}"),
    }
}

fn queued(d: &mut D, id: u64, session: &str, affinity: Affinity, at: u64, clock: &Clock) {
    assert!(matches!(
        d.submit(in_session(id, session, affinity), clock.at(at)),
        Ok(Submitted::Queued)
    ));
}

fn refused(d: &mut D, id: u64, session: &str, affinity: Affinity, clock: &Clock) -> Rejected {
    match d.submit(in_session(id, session, affinity), clock.at(1)) {
        Err((rejected, _)) => rejected,
        Ok(_) => panic!("request {id} was accepted"),
    }
}

fn bound_worker(d: &D, session: &str, clock: &Clock) -> Option<u64> {
    d.session(session, clock.at(0)).and_then(|info| info.worker)
}

#[test]
fn an_unbound_session_runs_like_a_plain_request_and_binds_to_its_worker() {
    let clock = Clock::new();
    let mut d = running(config(2), &clock);
    assert_eq!(d.session("s", clock.at(0)), None);
    assert_eq!(ran_on(&mut d, 1, "s", StrictQueue, 1, &clock), 100);
    let info = d.session("s", clock.at(1)).unwrap();
    assert_eq!(info.worker, Some(100));
    assert_eq!(info.affinity, StrictQueue);
    assert_eq!(info.last_used, clock.at(1));
    assert_eq!(d.stats().sessions, 1);
}

#[test]
fn hint_runs_on_the_bound_worker_when_it_is_idle_even_if_another_idled_longer() {
    let clock = Clock::new();
    let mut d = running(config(2), &clock);
    assert_eq!(ran_on(&mut d, 1, "s", Hint, 0, &clock), 100);
    let _ = d.on_reply(0, 100, 1, false, clock.at(1));
    // Worker 101 has been idle longest; a plain request would go there.
    assert_eq!(ran_on(&mut d, 2, "s", Hint, 2, &clock), 100);
}

#[test]
fn hint_moves_to_an_idle_worker_when_the_bound_one_is_busy() {
    let clock = Clock::new();
    let mut d = running(config(2), &clock);
    assert_eq!(ran_on(&mut d, 1, "s", Hint, 0, &clock), 100);
    assert_eq!(ran_on(&mut d, 2, "s", Hint, 1, &clock), 101);
    assert_eq!(bound_worker(&d, "s", &clock), Some(101));
}

#[test]
fn hint_waits_for_the_bound_worker_only_while_every_other_worker_is_busy() {
    let clock = Clock::new();
    let mut d = running(config(2), &clock);
    assert_eq!(ran_on(&mut d, 1, "s", Hint, 0, &clock), 100);
    d.submit(request(2, 60_000), clock.at(0)).unwrap(); // on 101
    queued(&mut d, 3, "s", Hint, 1, &clock);
    // Worker 101 frees first, with nothing of its own: it takes the session's request.
    let (_, effects) = d.on_reply(1, 101, 2, false, clock.at(2));
    assert_eq!(effects.sends, vec![(101, frame(3))]);
    assert_eq!(bound_worker(&d, "s", &clock), Some(101));
}

#[test]
fn a_freed_worker_serves_its_own_sessions_first_then_the_oldest_of_the_rest() {
    let clock = Clock::new();
    let mut d = running(config(2), &clock);
    assert_eq!(ran_on(&mut d, 1, "s", Hint, 0, &clock), 100);
    assert_eq!(ran_on(&mut d, 2, "t", Hint, 0, &clock), 101);
    d.submit(request(3, 60_000), clock.at(1)).unwrap(); // global
    queued(&mut d, 4, "t", Hint, 2, &clock); // 101's line
    queued(&mut d, 5, "s", StrictQueue, 3, &clock); // 100's strict line
    let (_, effects) = d.on_reply(0, 100, 1, false, clock.at(4));
    assert_eq!(effects.sends, vec![(100, frame(5))], "its own line first");
    let (_, effects) = d.on_reply(0, 100, 5, false, clock.at(5));
    assert_eq!(
        effects.sends,
        vec![(100, frame(3))],
        "then the oldest: global 3"
    );
    let (_, effects) = d.on_reply(0, 100, 3, false, clock.at(6));
    assert_eq!(effects.sends, vec![(100, frame(4))], "then 101's hint line");
    assert_eq!(bound_worker(&d, "t", &clock), Some(100));
}

#[test]
fn strict_queue_waits_for_its_worker_even_when_another_is_idle() {
    let clock = Clock::new();
    let mut d = running(config(2), &clock);
    assert_eq!(ran_on(&mut d, 1, "s", StrictQueue, 0, &clock), 100);
    queued(&mut d, 2, "s", StrictQueue, 1, &clock);
    assert_eq!(d.stats().available, 1, "worker 101 stays idle");
    // Plain work goes to the idle worker, and 101 never takes the strict request.
    assert_eq!(ran_on_plain(&mut d, 3, &clock), 101);
    let (_, effects) = d.on_reply(1, 101, 3, false, clock.at(2));
    assert!(effects.sends.is_empty());
    let (_, effects) = d.on_reply(0, 100, 1, false, clock.at(3));
    assert_eq!(effects.sends, vec![(100, frame(2))]);
}

fn ran_on_plain(d: &mut D, id: u64, clock: &Clock) -> u64 {
    match d.submit(request(id, 60_000), clock.at(1)).unwrap() {
        Submitted::Run { worker, .. } => worker,
        Submitted::Queued => panic!("queued"),
    }
}

#[test]
fn strict_queue_is_bounded_by_the_queue_timeout() {
    let clock = Clock::new();
    let mut d = running(config(2), &clock); // queue timeout 5000 ms
    assert_eq!(ran_on(&mut d, 1, "s", StrictQueue, 0, &clock), 100);
    queued(&mut d, 2, "s", StrictQueue, 0, &clock);
    let effects = d.tick(clock.at(5000), &mut || 0);
    assert_eq!(
        effects.failures,
        vec![(2, Failure::QueueTimeout { waited: ms(5000) })]
    );
}

#[test]
fn strict_fail_fast_is_refused_at_once_when_its_worker_is_busy_and_not_counted() {
    let clock = Clock::new();
    let mut d = running(config(2), &clock);
    assert_eq!(ran_on(&mut d, 1, "s", StrictFailFast, 0, &clock), 100);
    assert_eq!(
        refused(&mut d, 2, "s", StrictFailFast, &clock),
        Rejected::WorkerBusy
    );
    let stats = d.stats();
    assert_eq!(stats.counters.requests, 1);
    assert_eq!(stats.counters.worker_busy, 1);
    assert_eq!(stats.queued, 0);
    let _ = d.on_reply(0, 100, 1, false, clock.at(1));
    assert_eq!(ran_on(&mut d, 3, "s", StrictFailFast, 2, &clock), 100);
}

#[test]
fn when_the_bound_worker_dies_strict_requests_fail_and_hint_ones_move_on() {
    let clock = Clock::new();
    let mut d = running(config(2), &clock);
    assert_eq!(ran_on(&mut d, 1, "s", StrictQueue, 0, &clock), 100);
    assert_eq!(ran_on(&mut d, 2, "h", Hint, 0, &clock), 101);
    queued(&mut d, 3, "s", StrictQueue, 1, &clock);
    let (_, effects) = d.worker_down(0, 100, "killed", clock.at(2));
    assert_eq!(
        effects.failures,
        vec![
            (1, Failure::Lost("killed")),
            (3, Failure::SessionWorkerUnavailable)
        ]
    );
    assert_eq!(d.stats().counters.outcome(Outcome::SessionWorkerGone), 1);
    // The session is still bound to the dead worker: strict requests are refused ...
    assert_eq!(d.session("s", clock.at(2)).unwrap().worker, None);
    for affinity in [StrictQueue, StrictFailFast] {
        assert_eq!(
            refused(&mut d, 4, "s", affinity, &clock),
            Rejected::SessionWorkerUnavailable
        );
    }
    assert_eq!(d.stats().counters.session_worker_unavailable, 2);
    // ... even by the replacement in the same slot (another uid) ...
    let _ = d.worker_up(0, 102, 102, clock.at(3)).unwrap();
    assert_eq!(
        refused(&mut d, 5, "s", StrictQueue, &clock),
        Rejected::SessionWorkerUnavailable
    );
    // ... until a hint request moves the session to a live worker.
    assert_eq!(ran_on(&mut d, 6, "s", Hint, 4, &clock), 102);
    assert_eq!(bound_worker(&d, "s", &clock), Some(102));
    let _ = d.on_reply(0, 102, 6, false, clock.at(5));
    assert_eq!(ran_on(&mut d, 7, "s", StrictQueue, 6, &clock), 102);
}

#[test]
fn hint_requests_waiting_for_a_dead_worker_wait_for_any_worker() {
    let clock = Clock::new();
    let mut d = running(config(2), &clock);
    assert_eq!(ran_on(&mut d, 1, "s", Hint, 0, &clock), 100);
    d.submit(request(2, 60_000), clock.at(0)).unwrap(); // on 101
    queued(&mut d, 3, "s", Hint, 1, &clock);
    let (_, effects) = d.worker_down(0, 100, "killed", clock.at(2));
    assert_eq!(effects.failures, vec![(1, Failure::Lost("killed"))]);
    let (_, effects) = d.on_reply(1, 101, 2, false, clock.at(3));
    assert_eq!(effects.sends, vec![(101, frame(3))]);
    assert_eq!(bound_worker(&d, "s", &clock), Some(101));
}

#[test]
fn forgetting_a_session_frees_it_from_its_dead_worker() {
    let clock = Clock::new();
    let mut d = running(config(2), &clock);
    assert_eq!(ran_on(&mut d, 1, "s", StrictQueue, 0, &clock), 100);
    let _ = d.worker_down(0, 100, "killed", clock.at(1));
    assert!(d.forget_session("s"));
    assert!(!d.forget_session("s"));
    assert_eq!(d.session("s", clock.at(1)), None);
    assert_eq!(ran_on(&mut d, 2, "s", StrictQueue, 2, &clock), 101);
}

#[test]
fn a_recycled_worker_is_unavailable_to_its_strict_sessions_once_it_drains() {
    let clock = Clock::new();
    let mut cfg = config(1);
    cfg.worker_max_requests = Some(1);
    let mut d = running(cfg, &clock);
    assert_eq!(ran_on(&mut d, 1, "s", StrictQueue, 0, &clock), 100);
    queued(&mut d, 2, "s", StrictQueue, 0, &clock);
    // Worn out after one request: it keeps serving (request 2) until its replacement is up.
    let (_, effects) = d.on_reply(0, 100, 1, false, clock.at(1));
    assert_eq!(effects.sends, vec![(100, frame(2))]);
    queued(&mut d, 3, "s", StrictQueue, 1, &clock);
    let effects = d.worker_up(1, 200, 200, clock.at(2)).unwrap();
    assert_eq!(
        effects.failures,
        vec![(3, Failure::SessionWorkerUnavailable)]
    );
    assert_eq!(
        refused(&mut d, 4, "s", StrictFailFast, &clock),
        Rejected::SessionWorkerUnavailable
    );
}

#[test]
fn strict_requests_submitted_before_their_session_was_bound_follow_it() {
    let clock = Clock::new();
    let mut d = running(config(2), &clock);
    d.submit(request(1, 60_000), clock.at(0)).unwrap(); // on 100
    d.submit(request(2, 60_000), clock.at(0)).unwrap(); // on 101
    queued(&mut d, 3, "s", StrictQueue, 1, &clock); // unbound: global
    queued(&mut d, 4, "s", StrictQueue, 1, &clock); // unbound: global
    let (_, effects) = d.on_reply(0, 100, 1, false, clock.at(2));
    assert_eq!(effects.sends, vec![(100, frame(3))]);
    // Worker 101 frees: request 4 belongs to 100 now, and waits for it.
    let (_, effects) = d.on_reply(1, 101, 2, false, clock.at(3));
    assert!(effects.sends.is_empty());
    assert_eq!(d.stats().queued, 1);
    let (_, effects) = d.on_reply(0, 100, 3, false, clock.at(4));
    assert_eq!(effects.sends, vec![(100, frame(4))]);
}

#[test]
fn an_unused_binding_expires_after_the_session_ttl() {
    let clock = Clock::new();
    let mut cfg = config(2);
    cfg.session_ttl = Some(ms(10_000));
    let mut d = running(cfg, &clock);
    assert_eq!(ran_on(&mut d, 1, "s", StrictQueue, 0, &clock), 100);
    let _ = d.on_reply(0, 100, 1, false, clock.at(1));
    assert_eq!(d.next_deadline(), Some(clock.at(10_000)));
    let _ = d.tick(clock.at(10_000), &mut || 0);
    assert_eq!(d.stats().sessions, 1, "kept one more generation");
    assert_eq!(d.session("s", clock.at(10_000)), None, "but expired");
    let effects = d.tick(clock.at(20_000), &mut || 0);
    assert_eq!(effects.ended_sessions, ["s"], "the host tells the workers");
    assert_eq!(d.stats().sessions, 0);
    assert_eq!(d.next_deadline(), None);
}

#[test]
fn a_used_binding_lives_on() {
    let clock = Clock::new();
    let mut cfg = config(1);
    cfg.session_ttl = Some(ms(10_000));
    let mut d = running(cfg, &clock);
    for (id, at) in [(1, 0), (2, 9_000), (3, 18_000), (4, 27_000)] {
        let _ = d.tick(clock.at(at), &mut || 0);
        assert_eq!(ran_on(&mut d, id, "s", StrictFailFast, at, &clock), 100);
        let _ = d.on_reply(0, 100, id, false, clock.at(at + 1));
    }
    assert_eq!(d.stats().sessions, 1);
}
