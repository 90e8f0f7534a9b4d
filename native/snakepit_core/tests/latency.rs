//! Timings and latency (`outcome.rs`, `latency.rs`): what each finished request reports, what
//! the stats' percentiles say, and the per-worker figures — with the clock passed in.

mod common;

use common::*;
use snakepit_core::latency::GENERATION;
use snakepit_core::{Completed, Percentiles, Submitted, Timings};

fn timings_of(completed: Completed<u64>) -> Timings {
    match completed {
        Completed::Request(Some((_, timings))) => timings,
        _ => panic!("not a completed request"),
    }
}

/// Timings in milliseconds.
fn took(queue: u64, run: Option<u64>) -> Timings {
    Timings {
        queue: ms(queue),
        run: run.map(ms),
    }
}

#[test]
fn a_reply_carries_its_queue_and_run_time() {
    let clock = Clock::new();
    let mut d = running(config(1), &clock);
    assert!(matches!(
        d.submit(request(1, 60_000), clock.at(0)).unwrap(),
        Submitted::Run { .. }
    ));
    // Queued behind request 1 from 5 ms until 1 finishes at 30 ms.
    assert!(matches!(
        d.submit(request(2, 60_000), clock.at(5)).unwrap(),
        Submitted::Queued
    ));
    let (first, _) = d.on_reply(0, 100, 1, false, clock.at(30));
    assert_eq!(timings_of(first), took(0, Some(30)));
    let (second, _) = d.on_reply(0, 100, 2, true, clock.at(42));
    assert_eq!(timings_of(second), took(25, Some(12)));
}

#[test]
fn failures_carry_their_timings_too() {
    let clock = Clock::new();
    let mut d = running(config(1), &clock);
    let _ = d.submit(request(1, 100), clock.at(0)).unwrap();
    let _ = d.submit(request(2, 60_000), clock.at(10)).unwrap();
    // Request 1 times out at 100 ms (after running 100 ms); then request 2 waits past the 5 s
    // queue timeout on the timed-out worker, never running.
    let effects = d.tick(clock.at(100), &mut || 0);
    assert_eq!(effects.failure_timings, vec![took(0, Some(100))]);
    let effects = d.tick(clock.at(5010), &mut || 0);
    assert_eq!(effects.failure_timings, vec![took(5000, None)]);
}

#[test]
fn stats_give_percentiles_of_queue_and_run_times() {
    let clock = Clock::new();
    let mut d = running(config(1), &clock);
    let empty = d.stats().counters;
    assert_eq!(empty.queue_percentiles(), Percentiles::default());
    assert_eq!(empty.run_percentiles().samples, 0);
    // 100 requests, one at a time, running 1, 2, …, 100 ms; none waits.
    let mut now = 0;
    for id in 1..=100 {
        let _ = d.submit(request(id, 60_000), clock.at(now)).unwrap();
        now += id;
        let _ = d.on_reply(0, 100, id, false, clock.at(now));
    }
    let counters = d.stats().counters;
    let run = counters.run_percentiles();
    assert_eq!(run.samples, 100);
    // Nearest rank: the 50th, 95th and 99th smallest, within a bucket (< 1/16).
    for (got, want) in [(run.p50, 50.0), (run.p95, 95.0), (run.p99, 99.0)] {
        let got = got.as_secs_f64() * 1000.0;
        assert!(
            (got - want).abs() / want < 1.0 / 16.0,
            "{got} ms for {want}"
        );
    }
    let queue = counters.queue_percentiles();
    assert_eq!((queue.samples, queue.p99), (100, ms(0)));
}

#[test]
fn requests_that_never_ran_count_in_the_queue_times_only() {
    let clock = Clock::new();
    let mut d = running(config(1), &clock);
    let _ = d.submit(request(1, 60_000), clock.at(0)).unwrap();
    let _ = d.submit(request(2, 60_000), clock.at(0)).unwrap();
    let _ = d.check_deadline(2, clock.at(5000));
    let counters = d.stats().counters;
    assert_eq!(counters.queue_percentiles().samples, 1);
    assert_eq!(
        counters.queue_percentiles().p50,
        ms(5000) + micros_of_bucket(5_000_000)
    );
    assert_eq!(counters.run_percentiles().samples, 0);
}

/// How far the bucket holding `us` reads above it (its middle, see `latency.rs`).
fn micros_of_bucket(us: u64) -> std::time::Duration {
    use snakepit_core::latency::{bucket, value_of};
    std::time::Duration::from_micros(value_of(bucket(us)) - us)
}

#[test]
fn the_window_forgets_old_samples_a_generation_at_a_time() {
    let clock = Clock::new();
    let mut d = running(config(1), &clock);
    let mut now = 0;
    let mut run = |d: &mut D, id: u64, took: u64| {
        let _ = d.submit(request(id, 60_000), clock.at(now)).unwrap();
        now += took;
        let _ = d.on_reply(0, 100, id, false, clock.at(now));
    };
    let generation = u64::from(GENERATION);
    // Two generations of slow requests, then two of fast ones: the slow ones are gone.
    for id in 0..2 * generation {
        run(&mut d, id, 50);
    }
    assert_eq!(d.stats().counters.run_percentiles().samples, 2 * generation);
    for id in 0..2 * generation {
        run(&mut d, 10_000 + id, 1);
    }
    let window = d.stats().counters.run_percentiles();
    assert_eq!(window.samples, 2 * generation);
    assert!(window.p99 < ms(2), "{window:?}");
    // One more starts a new generation: the window holds one generation plus that one.
    run(&mut d, 99_999, 1);
    assert_eq!(d.stats().counters.run_percentiles().samples, generation + 1);
}

#[test]
fn workers_report_their_errors_and_last_use() {
    let clock = Clock::new();
    let mut d = running(config(2), &clock);
    assert!(d.workers().iter().all(|w| w.last_used.is_none()));
    let _ = d.submit(request(1, 60_000), clock.at(0)).unwrap(); // slot 0
    let _ = d.submit(request(2, 100), clock.at(0)).unwrap(); // slot 1
    let _ = d.on_reply(0, 100, 1, true, clock.at(7));
    let _ = d.tick(clock.at(100), &mut || 0); // request 2 times out
    let workers = d.workers();
    assert_eq!(
        workers
            .iter()
            .map(|w| (w.requests, w.errors, w.last_used))
            .collect::<Vec<_>>(),
        vec![(1, 1, Some(clock.at(7))), (0, 1, None)]
    );
    assert!(workers.iter().all(|w| w.installed == clock.at(0)));
}
