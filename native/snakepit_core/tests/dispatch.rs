//! The dispatch rules, one test each, with the clock passed in (no sleeping).

mod common;

use common::*;
use snakepit_core::{
    Completed, Deadline, Event, Failure, Outcome, Rejected, Removed, Send, SlotStatus, Submitted,
    Timings,
};

fn run_on(submitted: Submitted<T>) -> (u64, u64) {
    match submitted {
        Submitted::Run { worker, frame } => (worker, frame_id(&frame)),
        Submitted::Queued => panic!("expected the request to run at once"),
    }
}

#[test]
fn idle_workers_take_requests_at_once_the_rest_queue_in_order() {
    let clock = Clock::new();
    let mut d = running(config(2), &clock);
    assert_eq!(
        run_on(d.submit(request(1, 1000), clock.at(1)).unwrap()),
        (100, 1)
    );
    assert_eq!(
        run_on(d.submit(request(2, 1000), clock.at(1)).unwrap()),
        (101, 2)
    );
    assert!(matches!(
        d.submit(request(3, 1000), clock.at(1)).unwrap(),
        Submitted::Queued
    ));
    assert!(matches!(
        d.submit(request(4, 1000), clock.at(1)).unwrap(),
        Submitted::Queued
    ));

    // Worker 101 answers first: it takes the oldest queued request.
    let (completed, effects) = d.on_reply(1, 101, 2, false, clock.at(2));
    assert!(matches!(completed, Completed::Request(Some((2, _)))));
    assert_eq!(
        effects.sends,
        vec![(101, Send::Frame(3u64.to_le_bytes().to_vec()))]
    );
    let (_, effects) = d.on_reply(0, 100, 1, false, clock.at(3));
    assert_eq!(
        effects.sends,
        vec![(100, Send::Frame(4u64.to_le_bytes().to_vec()))]
    );
}

#[test]
fn a_full_queue_rejects_without_counting_a_request() {
    let clock = Clock::new();
    let mut cfg = config(1);
    cfg.max_queue_size = 1;
    let mut d = running(cfg, &clock);
    d.submit(request(1, 1000), clock.at(0)).unwrap();
    d.submit(request(2, 1000), clock.at(0)).unwrap();
    assert_eq!(
        d.submit(request(3, 1000), clock.at(0))
            .err()
            .map(|(rejected, _)| rejected),
        Some(Rejected::Saturated { max: 1 })
    );
    let stats = d.stats();
    assert_eq!(stats.counters.requests, 2);
    assert_eq!(stats.counters.pool_saturated, 1);
}

#[test]
fn a_request_past_its_queue_timeout_fails_and_never_reaches_a_worker() {
    let clock = Clock::new();
    let mut d = running(config(1), &clock); // queue timeout 5000 ms
    d.submit(request(1, 60_000), clock.at(0)).unwrap();
    d.submit(request(2, 60_000), clock.at(0)).unwrap();
    assert_eq!(d.next_deadline(), Some(clock.at(5000)));

    let effects = d.tick(clock.at(4999), &mut || 0);
    assert!(effects.failures.is_empty());
    let effects = d.tick(clock.at(5000), &mut || 0);
    assert_eq!(
        effects.failures,
        vec![(2, Failure::QueueTimeout { waited: ms(5000) })]
    );
    // The worker frees up later: nothing is left for it.
    let (_, effects) = d.on_reply(0, 100, 1, false, clock.at(5001));
    assert!(effects.sends.is_empty());
    assert_eq!(d.stats().counters.outcome(Outcome::QueueTimeout), 1);
}

#[test]
fn a_worker_freeing_up_after_the_queue_timeout_skips_the_expired_request() {
    // The timer has not run yet when the worker frees up: the check on dequeue catches it.
    let clock = Clock::new();
    let mut d = running(config(1), &clock);
    d.submit(request(1, 60_000), clock.at(0)).unwrap();
    d.submit(request(2, 60_000), clock.at(0)).unwrap();
    d.submit(request(3, 60_000), clock.at(4000)).unwrap();
    let (_, effects) = d.on_reply(0, 100, 1, false, clock.at(5500));
    assert_eq!(
        effects.failures,
        vec![(2, Failure::QueueTimeout { waited: ms(5500) })]
    );
    assert_eq!(
        effects.sends,
        vec![(100, Send::Frame(3u64.to_le_bytes().to_vec()))]
    );
}

#[test]
fn the_caller_check_withdraws_a_queued_request_exactly_at_its_deadline() {
    let clock = Clock::new();
    let mut d = running(config(1), &clock);
    d.submit(request(1, 60_000), clock.at(0)).unwrap();
    d.submit(request(2, 100), clock.at(0)).unwrap();
    d.attach_monitor(2, 7).unwrap();
    // Queued: the wait is bounded by the queue deadline and by one execution timeout.
    assert_eq!(d.check_deadline(2, clock.at(10)).0, Deadline::Wait(ms(100)));
    assert_eq!(
        d.check_deadline(2, clock.at(4990)).0,
        Deadline::Wait(ms(10))
    );
    let (deadline, effects) = d.check_deadline(2, clock.at(5000));
    assert_eq!(
        deadline,
        Deadline::Expired(
            Failure::QueueTimeout { waited: ms(5000) },
            Timings {
                queue: ms(5000),
                run: None
            }
        )
    );
    assert_eq!((effects.demonitors, effects.withdrawn), (vec![7], vec![2]));
    let (_, effects) = d.on_reply(0, 100, 1, false, clock.at(5001));
    assert!(effects.sends.is_empty(), "a withdrawn request never runs");
}

#[test]
fn an_execution_timeout_cancels_then_kills_after_the_grace_and_the_worker_gets_no_work() {
    let clock = Clock::new();
    let mut d = running(config(1), &clock); // cancel grace 2000 ms
    d.submit(request(1, 100), clock.at(0)).unwrap();
    d.submit(request(2, 60_000), clock.at(50)).unwrap();
    assert_eq!(d.next_deadline(), Some(clock.at(100)));

    let effects = d.tick(clock.at(100), &mut || 0);
    assert_eq!(
        effects.failures,
        vec![(
            1,
            Failure::Timeout {
                command: "cmd1".into(),
                timeout: ms(100)
            }
        )]
    );
    assert_eq!(effects.sends, vec![(100, Send::Cancel(1))]);
    assert_eq!(d.next_deadline(), Some(clock.at(2100)));
    assert!(d.tick(clock.at(2099), &mut || 0).kills.is_empty());
    let effects = d.tick(clock.at(2100), &mut || 0);
    assert_eq!(effects.kills, vec![100]);
    assert!(
        effects.sends.is_empty(),
        "the busy worker never got request 2"
    );
    // Killed once only.
    assert!(d.tick(clock.at(3000), &mut || 0).kills.is_empty());
}

#[test]
fn a_late_reply_within_the_grace_is_discarded_and_the_worker_kept() {
    let clock = Clock::new();
    let mut d = running(config(1), &clock);
    d.submit(request(1, 100), clock.at(0)).unwrap();
    let (deadline, effects) = d.check_deadline(1, clock.at(100));
    assert!(matches!(
        deadline,
        Deadline::Expired(Failure::Timeout { .. }, _)
    ));
    assert_eq!(effects.sends, vec![(100, Send::Cancel(1))]);
    let (completed, _) = d.on_reply(0, 100, 1, false, clock.at(500));
    assert!(matches!(completed, Completed::Request(None)));
    assert!(d.tick(clock.at(5000), &mut || 0).kills.is_empty());
    assert_eq!(
        run_on(d.submit(request(2, 100), clock.at(5000)).unwrap()).0,
        100
    );
    let counters = d.stats().counters;
    assert_eq!(counters.outcome(Outcome::Timeout), 1);
    assert_eq!(
        counters.outcome(Outcome::Completed),
        0,
        "counted once, as a timeout"
    );
}

#[test]
fn a_running_request_has_time_left_until_its_own_timeout() {
    let clock = Clock::new();
    let mut d = running(config(1), &clock);
    d.submit(request(1, 1000), clock.at(0)).unwrap();
    assert_eq!(
        d.check_deadline(1, clock.at(400)).0,
        Deadline::Wait(ms(600))
    );
    let _ = d.on_reply(0, 100, 1, false, clock.at(500));
    assert_eq!(d.check_deadline(1, clock.at(2000)).0, Deadline::Replied);
}

#[test]
fn a_caller_that_dies_while_queued_is_dropped() {
    let clock = Clock::new();
    let mut d = running(config(1), &clock);
    d.submit(request(1, 1000), clock.at(0)).unwrap();
    d.submit(request(2, 1000), clock.at(0)).unwrap();
    d.attach_monitor(2, 9).unwrap();
    let effects = d.caller_down(|m| *m == 9, clock.at(0));
    assert_eq!((effects.withdrawn, effects.demonitors), (vec![2], vec![9]));
    assert_eq!(effects.events, vec![Event::CallerGone { request: 2 }]);
    assert!(d.caller_down(|m| *m == 9, clock.at(0)).is_empty());
    let (_, effects) = d.on_reply(0, 100, 1, false, clock.at(1));
    assert!(effects.sends.is_empty());
    assert_eq!(d.stats().counters.outcome(Outcome::CallerGone), 1);
    // A request that already left the queue gives its monitor back.
    assert_eq!(d.attach_monitor(2, 9), Err(9));
}

#[test]
fn a_crashed_worker_fails_its_request_and_is_replaced_in_its_slot() {
    let clock = Clock::new();
    let mut d = running(config(2), &clock);
    d.submit(request(1, 1000), clock.at(0)).unwrap();
    let (removed, effects) = d.worker_down(0, 100, "killed by signal 9", clock.at(1));
    assert_eq!(removed, Removed::Crashed);
    assert_eq!(
        effects.failures,
        vec![(1, Failure::Lost("killed by signal 9"))]
    );
    assert_eq!(effects.starts, vec![0]);
    // The old worker's late news is ignored.
    assert_eq!(
        d.worker_down(0, 100, "x", clock.at(2)).0,
        Removed::NotInstalled
    );
    assert!(matches!(
        d.on_reply(0, 100, 1, false, clock.at(2)).0,
        Completed::Stale
    ));
    let effects = d.worker_up(0, 102, 102, clock.at(3)).unwrap();
    assert!(effects.is_empty());
    assert_eq!(d.stats().workers, 2);
    assert_eq!(d.stats().counters.worker_crashes, 1);
}

#[test]
fn a_reply_for_another_request_marks_the_worker_broken() {
    let clock = Clock::new();
    let mut d = running(config(1), &clock);
    d.submit(request(1, 1000), clock.at(0)).unwrap();
    assert!(matches!(
        d.on_reply(0, 100, 5, false, clock.at(1)).0,
        Completed::Unexpected(_)
    ));
    let _ = d.on_reply(0, 100, 1, false, clock.at(1));
    assert!(matches!(
        d.on_reply(0, 100, 1, false, clock.at(1)).0,
        Completed::Unexpected(_)
    ));
}

#[test]
fn failed_starts_retry_with_doubling_capped_back_off_and_open_the_circuit() {
    let clock = Clock::new();
    let mut cfg = config(1);
    cfg.max_start_failures = 3;
    let (mut d, _) = D::new(cfg, clock.at(0));
    d.submit(request(1, 1000), clock.at(0)).unwrap();

    // Initial round: no worker at all. The owner hears it; the pool keeps trying.
    let effects = d.start_failed(0, "boom", clock.at(10));
    assert_eq!(
        effects.events,
        vec![Event::StartFailed {
            message: "boom".into()
        }]
    );
    assert_eq!(d.next_deadline(), Some(clock.at(110)));
    assert!(d.tick(clock.at(109), &mut || 0).starts.is_empty());
    assert_eq!(d.tick(clock.at(110), &mut || 0).starts, vec![0]);
    let _ = d.start_failed(0, "boom", clock.at(120));
    assert_eq!(d.next_deadline(), Some(clock.at(320)));
    assert_eq!(d.tick(clock.at(320), &mut || 0).starts, vec![0]);

    // Third failure in a row: the circuit opens and the waiting request fails at once.
    let effects = d.start_failed(0, "boom", clock.at(630));
    assert_eq!(effects.events, vec![Event::CircuitOpened { failures: 3 }]);
    assert_eq!(
        effects.failures,
        vec![(1, Failure::CircuitOpen { failures: 3 })]
    );
    assert_eq!(
        d.submit(request(2, 1000), clock.at(640))
            .err()
            .map(|(rejected, _)| rejected),
        Some(Rejected::CircuitOpen { failures: 3 })
    );
    // Back-off is capped (5 s) and retries go on.
    for failures in 4..10 {
        let due = d.next_deadline().unwrap();
        assert_eq!(d.tick(due, &mut || 0).starts, vec![0]);
        let _ = d.start_failed(0, "boom", due);
        let wait = d.next_deadline().unwrap() - due;
        assert_eq!(wait, ms((100u64 << (failures - 1)).min(5000)));
    }
    // The cause goes away: the next start succeeds and the circuit closes.
    let due = d.next_deadline().unwrap();
    assert_eq!(d.tick(due, &mut || 0).starts, vec![0]);
    let effects = d.worker_up(0, 7, 7, due).unwrap();
    assert_eq!(effects.events, vec![Event::CircuitClosed]);
    assert_eq!(run_on(d.submit(request(3, 1000), due).unwrap()).0, 7);
    assert_eq!(d.stats().counters.circuit_rejections, 1);
}

#[test]
fn the_pool_is_ready_when_every_initial_start_resolved() {
    let clock = Clock::new();
    let (mut d, _) = D::new(config(2), clock.at(0));
    assert!(d.worker_up(1, 1, 1, clock.at(1)).unwrap().events.is_empty());
    let effects = d.start_failed(0, "nope", clock.at(2));
    assert_eq!(effects.events, vec![Event::Ready { started: 1 }]);
}

#[test]
fn idle_workers_are_health_checked_and_a_failed_check_gets_no_work() {
    let clock = Clock::new();
    let mut cfg = config(1);
    cfg.health_check_interval = Some(ms(1000));
    cfg.health_check_timeout = ms(300);
    let mut d = running(cfg, &clock);
    assert_eq!(d.next_deadline(), Some(clock.at(1000)));
    let effects = d.tick(clock.at(1000), &mut || 77);
    assert_eq!(effects.sends, vec![(100, Send::HealthCheck(77))]);
    // A request arriving meanwhile waits.
    assert!(matches!(
        d.submit(request(1, 1000), clock.at(1001)).unwrap(),
        Submitted::Queued
    ));
    let (completed, effects) = d.on_reply(0, 100, 77, false, clock.at(1002));
    assert!(matches!(completed, Completed::HealthCheck { ok: true }));
    assert_eq!(effects.events, vec![Event::HealthCheckPassed]);
    assert_eq!(
        effects.sends,
        vec![(100, Send::Frame(1u64.to_le_bytes().to_vec()))]
    );
    let _ = d.on_reply(0, 100, 1, false, clock.at(1003));

    // The next check fails: the worker gets nothing more (it is about to be replaced).
    let _ = d.tick(clock.at(2003), &mut || 78);
    d.submit(request(2, 1000), clock.at(2004)).unwrap();
    let (completed, effects) = d.on_reply(0, 100, 78, true, clock.at(2005));
    assert!(matches!(completed, Completed::HealthCheck { ok: false }));
    assert!(effects.sends.is_empty());
}

#[test]
fn a_health_check_that_hangs_gets_the_worker_killed() {
    let clock = Clock::new();
    let mut cfg = config(1);
    cfg.health_check_interval = Some(ms(1000));
    cfg.health_check_timeout = ms(300);
    cfg.cancel_grace = ms(200);
    let mut d = running(cfg, &clock);
    let _ = d.tick(clock.at(1000), &mut || 5);
    let effects = d.tick(clock.at(1300), &mut || 0);
    assert_eq!(effects.sends, vec![(100, Send::Cancel(5))]);
    assert!(
        effects.failures.is_empty(),
        "nobody waits for a health check"
    );
    assert_eq!(d.tick(clock.at(1500), &mut || 0).kills, vec![100]);
}

#[test]
fn recycling_starts_the_replacement_first_and_the_old_worker_drains() {
    let clock = Clock::new();
    let mut cfg = config(1);
    cfg.worker_max_requests = Some(2);
    let mut d = running(cfg, &clock);
    d.submit(request(1, 1000), clock.at(0)).unwrap();
    let _ = d.on_reply(0, 100, 1, false, clock.at(1));
    d.submit(request(2, 1000), clock.at(2)).unwrap();
    let (_, effects) = d.on_reply(0, 100, 2, false, clock.at(3));
    assert_eq!(
        effects.starts,
        vec![1],
        "a replacement starts in a new slot"
    );
    // The old worker keeps serving until the replacement is up.
    assert_eq!(
        run_on(d.submit(request(3, 1000), clock.at(4)).unwrap()).0,
        100
    );
    let effects = d.worker_up(1, 200, 200, clock.at(5)).unwrap();
    assert!(
        effects.closes.is_empty(),
        "busy: it finishes its request first"
    );
    let (_, effects) = d.on_reply(0, 100, 3, false, clock.at(6));
    assert_eq!(effects.closes, vec![100]);
    assert_eq!(
        d.worker_down(0, 100, "exited", clock.at(7)).0,
        Removed::Retired
    );
    assert_eq!(
        run_on(d.submit(request(4, 1000), clock.at(8)).unwrap()).0,
        200
    );
    assert_eq!(d.stats().counters.worker_recycles, 1);
    assert_eq!(d.stats().workers, 1);
}

#[test]
fn an_idle_worker_is_recycled_by_age() {
    let clock = Clock::new();
    let mut cfg = config(1);
    cfg.worker_ttl = Some(ms(10_000));
    let mut d = running(cfg, &clock);
    assert_eq!(d.next_deadline(), Some(clock.at(10_000)));
    let effects = d.tick(clock.at(10_000), &mut || 0);
    assert_eq!(effects.starts, vec![1]);
    let effects = d.worker_up(1, 200, 200, clock.at(10_100)).unwrap();
    assert_eq!(effects.closes, vec![100]);
    let workers = d.workers();
    assert_eq!(workers[0].status, SlotStatus::Draining);
    assert_eq!(workers[1].status, SlotStatus::Idle);
}

#[test]
fn stop_fails_everything_queued_or_running() {
    let clock = Clock::new();
    let mut d = running(config(1), &clock);
    d.submit(request(1, 1000), clock.at(0)).unwrap();
    d.submit(request(2, 1000), clock.at(0)).unwrap();
    let effects = d.begin_stop(clock.at(1)).unwrap();
    let mut failed: Vec<_> = effects
        .failures
        .iter()
        .map(|(id, f)| (*id, f.clone()))
        .collect();
    failed.sort_by_key(|(id, _)| *id);
    assert_eq!(failed, vec![(1, Failure::Shutdown), (2, Failure::Shutdown)]);
    assert!(d.begin_stop(clock.at(2)).is_none());
    assert_eq!(
        d.submit(request(3, 1000), clock.at(2))
            .err()
            .map(|(rejected, _)| rejected),
        Some(Rejected::Shutdown)
    );
    assert!(matches!(
        d.on_reply(0, 100, 1, false, clock.at(3)).0,
        Completed::Stale
    ));
    assert!(d.worker_up(0, 5, 5, clock.at(4)).is_err());
    assert_eq!(d.next_deadline(), None);
}

#[test]
fn an_earlier_deadline_wakes_the_timer_a_later_one_does_not() {
    let clock = Clock::new();
    let mut d = running(config(2), &clock);
    let _ = d.tick(clock.at(0), &mut || 0);
    assert!(!d.take_wake());
    d.submit(request(1, 1000), clock.at(0)).unwrap();
    assert!(d.take_wake(), "the first deadline wakes the timer");
    d.submit(request(2, 5000), clock.at(0)).unwrap();
    assert!(!d.take_wake());
    assert_eq!(d.next_deadline(), Some(clock.at(1000)));
}

#[test]
fn a_clock_read_before_the_lock_never_runs_backwards() {
    let clock = Clock::new();
    let mut d = running(config(1), &clock);
    d.submit(request(1, 1000), clock.at(100)).unwrap();
    d.submit(request(2, 1000), clock.at(50)).unwrap();
    // Request 2 counts as queued at 100, not 50.
    assert_eq!(
        d.check_deadline(2, clock.at(5050)).0,
        Deadline::Wait(ms(50))
    );
}
