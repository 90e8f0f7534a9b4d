//! The stream rules (`stream.rs`), one test each, with the clock passed in (no sleeping).
//! Worker uids in `running(...)` are 100 + slot: slot 0's worker (100) takes credit, slot 1's
//! (101) does not.

mod common;

use std::num::NonZeroU64;

use common::*;
use snakepit_core::{Chunked, Completed, Deadline, Failure, Outcome, Send, Submitted, Timings};

fn frame_of(submitted: Submitted<T>) -> (u64, Vec<u8>) {
    match submitted {
        Submitted::Run { worker, frame } => (worker, frame),
        Submitted::Queued => panic!("expected the stream to run at once"),
    }
}

fn credit(id: u64, k: u64) -> Send {
    Send::Credit(id, NonZeroU64::new(k).unwrap())
}

#[test]
fn a_stream_keeps_its_worker_until_the_final_reply_and_its_chunks_go_to_its_sink() {
    let clock = Clock::new();
    let mut d = running(config(1), &clock);
    let (worker, frame) = frame_of(d.submit(streamed(1, 60_000, 4, None), clock.at(0)).unwrap());
    assert_eq!((worker, frame_window(&frame)), (100, Some(4)));
    assert!(matches!(
        d.submit(request(2, 1000), clock.at(0)).unwrap(),
        Submitted::Queued
    ));
    for _ in 0..3 {
        assert_eq!(d.on_chunk(0, 100, 1, clock.at(1)), Chunked::Deliver(1));
    }
    assert_eq!(d.stats().busy, 1);
    let (completed, effects) = d.on_reply(0, 100, 1, false, clock.at(2));
    assert!(matches!(completed, Completed::Request(Some((1, _)))));
    assert_eq!(
        effects.sends,
        vec![(100, Send::Frame(2u64.to_le_bytes().to_vec()))]
    );
    let counters = d.stats().counters;
    assert_eq!(
        (
            counters.streams,
            counters.chunks,
            counters.outcome(Outcome::Completed)
        ),
        (1, 3, 1)
    );
}

#[test]
fn only_a_worker_that_takes_credit_gets_a_window() {
    let clock = Clock::new();
    let mut d = running(config(2), &clock);
    let (_, first) = frame_of(d.submit(streamed(1, 60_000, 2, None), clock.at(0)).unwrap());
    let (worker, second) = frame_of(d.submit(streamed(2, 60_000, 2, None), clock.at(0)).unwrap());
    assert_eq!(frame_window(&first), Some(2));
    assert_eq!((worker, frame_window(&second)), (101, None));
    // Without a window, chunks are not limited and acknowledgements send no credit.
    for _ in 0..10 {
        assert_eq!(d.on_chunk(1, 101, 2, clock.at(1)), Chunked::Deliver(2));
    }
    assert!(d.stream_ack(2, 10, clock.at(1)).sends.is_empty());
}

#[test]
fn acknowledgements_become_credit_and_a_chunk_beyond_the_window_breaks_the_protocol() {
    let clock = Clock::new();
    let mut d = running(config(1), &clock);
    let _ = d.submit(streamed(1, 60_000, 2, None), clock.at(0)).unwrap();
    // No credit for chunks not received yet.
    assert!(d.stream_ack(1, 5, clock.at(0)).sends.is_empty());
    assert_eq!(d.on_chunk(0, 100, 1, clock.at(1)), Chunked::Deliver(1));
    assert_eq!(d.on_chunk(0, 100, 1, clock.at(1)), Chunked::Deliver(1));
    // Credit is clamped to the chunks received.
    assert_eq!(
        d.stream_ack(1, 5, clock.at(2)).sends,
        vec![(100, credit(1, 2))]
    );
    assert_eq!(d.on_chunk(0, 100, 1, clock.at(3)), Chunked::Deliver(1));
    assert_eq!(d.on_chunk(0, 100, 1, clock.at(3)), Chunked::Deliver(1));
    assert!(matches!(
        d.on_chunk(0, 100, 1, clock.at(3)),
        Chunked::Unexpected(detail) if detail.contains("window of 2 plus 2 credited")
    ));
}

#[test]
fn a_chunk_for_a_request_that_asked_for_no_stream_breaks_the_protocol() {
    let clock = Clock::new();
    let mut d = running(config(1), &clock);
    let _ = d.submit(request(1, 1000), clock.at(0)).unwrap();
    assert_eq!(
        d.on_chunk(0, 100, 1, clock.at(1)),
        Chunked::Unexpected("stream chunk for request 1, which asked for no stream".into())
    );
    assert!(matches!(
        d.on_chunk(0, 100, 7, clock.at(1)),
        Chunked::Unexpected(_)
    ));
    assert_eq!(d.on_chunk(0, 999, 1, clock.at(1)), Chunked::Stale);
}

#[test]
fn a_halted_stream_is_cancelled_and_its_worker_serves_again_only_after_its_final_reply() {
    let clock = Clock::new();
    let mut d = running(config(1), &clock); // cancel grace 2000 ms
    let _ = d.submit(streamed(1, 60_000, 8, None), clock.at(0)).unwrap();
    d.attach_monitor(1, 9).unwrap();
    let _ = d.submit(request(2, 60_000), clock.at(0)).unwrap();
    assert_eq!(d.on_chunk(0, 100, 1, clock.at(1)), Chunked::Deliver(1));

    let effects = d.halt(1, clock.at(2));
    assert_eq!(effects.sends, vec![(100, Send::Cancel(1))]);
    assert_eq!(effects.withdrawn, vec![1]);
    assert_eq!(d.stats().counters.outcome(Outcome::Halted), 1);
    // Chunks in flight are dropped; acknowledgements send nothing; a second halt does nothing.
    assert_eq!(d.on_chunk(0, 100, 1, clock.at(3)), Chunked::Discard);
    assert!(d.stream_ack(1, 1, clock.at(3)).sends.is_empty());
    assert!(d.halt(1, clock.at(3)).is_empty());
    assert_eq!(d.next_deadline(), Some(clock.at(2002)));

    // The final reply (a Cancelled failure) frees the worker for the queued request.
    let (completed, effects) = d.on_reply(0, 100, 1, true, clock.at(4));
    assert!(matches!(completed, Completed::Request(None)));
    assert_eq!(effects.demonitors, vec![9]);
    assert_eq!(
        effects.sends,
        vec![(100, Send::Frame(2u64.to_le_bytes().to_vec()))]
    );
    assert_eq!(d.stats().counters.outcome(Outcome::WorkerError), 0);
}

#[test]
fn a_halted_stream_whose_worker_stays_silent_is_killed_after_the_grace() {
    let clock = Clock::new();
    let mut d = running(config(1), &clock);
    let _ = d.submit(streamed(1, 60_000, 8, None), clock.at(0)).unwrap();
    let _ = d.halt(1, clock.at(10));
    assert!(d.tick(clock.at(2009), &mut || 0).kills.is_empty());
    assert_eq!(d.tick(clock.at(2010), &mut || 0).kills, vec![100]);
}

#[test]
fn a_queued_stream_halts_without_running() {
    let clock = Clock::new();
    let mut d = running(config(1), &clock);
    let _ = d.submit(request(1, 60_000), clock.at(0)).unwrap();
    let _ = d.submit(streamed(2, 60_000, 8, None), clock.at(0)).unwrap();
    d.attach_monitor(2, 9).unwrap();
    let effects = d.halt(2, clock.at(1));
    assert_eq!((effects.withdrawn, effects.demonitors), (vec![2], vec![9]));
    let (_, effects) = d.on_reply(0, 100, 1, false, clock.at(2));
    assert!(effects.sends.is_empty());
    let stats = d.stats();
    assert_eq!(
        (stats.available, stats.counters.outcome(Outcome::Halted)),
        (1, 1)
    );
}

#[test]
fn a_caller_that_dies_mid_stream_halts_it() {
    let clock = Clock::new();
    let mut d = running(config(1), &clock);
    let _ = d.submit(streamed(1, 60_000, 8, None), clock.at(0)).unwrap();
    d.attach_monitor(1, 9).unwrap();
    let effects = d.caller_down(|m| *m == 9, clock.at(5));
    assert_eq!(effects.sends, vec![(100, Send::Cancel(1))]);
    assert_eq!(effects.withdrawn, vec![1]);
    // The monitor fired: it is not removed again when the stream ends.
    let (_, effects) = d.on_reply(0, 100, 1, true, clock.at(6));
    assert!(effects.demonitors.is_empty());
    assert_eq!(d.stats().counters.outcome(Outcome::Halted), 1);
}

#[test]
fn the_idle_timeout_runs_while_the_worker_may_send_and_stops_while_it_waits_for_credit() {
    let clock = Clock::new();
    let mut d = running(config(1), &clock);
    let _ = d
        .submit(streamed(1, 60_000, 2, Some(100)), clock.at(0))
        .unwrap();
    assert_eq!(d.next_deadline(), Some(clock.at(100)));
    assert_eq!(d.on_chunk(0, 100, 1, clock.at(90)), Chunked::Deliver(1));
    assert_eq!(d.check_deadline(1, clock.at(150)).0, Deadline::Wait(ms(40)));
    // The window is used up: the worker waits for the consumer, whatever it takes.
    assert_eq!(d.on_chunk(0, 100, 1, clock.at(180)), Chunked::Deliver(1));
    assert!(d.tick(clock.at(10_000), &mut || 0).failures.is_empty());
    // Credit restarts the clock.
    let _ = d.stream_ack(1, 1, clock.at(10_000));
    assert_eq!(d.next_deadline(), Some(clock.at(10_100)));
    let effects = d.tick(clock.at(10_100), &mut || 0);
    assert_eq!(
        effects.failures,
        vec![(
            1,
            Failure::ChunkTimeout {
                command: "cmd1".into(),
                timeout: ms(100)
            }
        )]
    );
    assert_eq!(effects.sends, vec![(100, Send::Cancel(1))]);
    assert_eq!(d.stats().counters.outcome(Outcome::Timeout), 1);
}

#[test]
fn the_whole_stream_timeout_holds_however_fast_chunks_come() {
    let clock = Clock::new();
    let mut d = running(config(2), &clock);
    let _ = d.submit(request(9, 60_000), clock.at(0)).unwrap(); // takes slot 0
    let _ = d
        .submit(streamed(1, 1000, 2, Some(100)), clock.at(0))
        .unwrap();
    for t in (50..1000).step_by(50) {
        assert_eq!(d.on_chunk(1, 101, 1, clock.at(t)), Chunked::Deliver(1));
    }
    let (deadline, effects) = d.check_deadline(1, clock.at(1000));
    assert_eq!(
        deadline,
        Deadline::Expired(
            Failure::Timeout {
                command: "cmd1".into(),
                timeout: ms(1000)
            },
            Timings {
                queue: ms(0),
                run: Some(ms(1000))
            }
        )
    );
    assert_eq!(effects.withdrawn, vec![1]);
    assert_eq!(effects.sends, vec![(101, Send::Cancel(1))]);
}

#[test]
fn a_worker_crash_mid_stream_fails_it_after_its_chunks() {
    let clock = Clock::new();
    let mut d = running(config(1), &clock);
    let _ = d.submit(streamed(1, 60_000, 8, None), clock.at(0)).unwrap();
    d.attach_monitor(1, 9).unwrap();
    assert_eq!(d.on_chunk(0, 100, 1, clock.at(1)), Chunked::Deliver(1));
    let (_, effects) = d.worker_down(0, 100, "killed", clock.at(2));
    assert_eq!(effects.failures, vec![(1, Failure::Lost("killed"))]);
    assert_eq!(effects.demonitors, vec![9]);
}

#[test]
fn a_stream_queued_for_a_worker_gets_its_window_when_it_starts() {
    let clock = Clock::new();
    let mut d = running(config(1), &clock);
    let _ = d.submit(request(1, 60_000), clock.at(0)).unwrap();
    let _ = d.submit(streamed(2, 60_000, 3, None), clock.at(0)).unwrap();
    d.attach_monitor(2, 9).unwrap();
    let (_, effects) = d.on_reply(0, 100, 1, false, clock.at(1));
    let [(100, Send::Frame(frame))] = effects.sends.as_slice() else {
        panic!("{:?}", effects.sends);
    };
    assert_eq!((frame_id(frame), frame_window(frame)), (2, Some(3)));
    // Its caller's monitor stays with it while it runs.
    assert!(effects.demonitors.is_empty());
    assert_eq!(d.on_chunk(0, 100, 2, clock.at(2)), Chunked::Deliver(2));
    let (_, effects) = d.on_reply(0, 100, 2, false, clock.at(3));
    assert_eq!(effects.demonitors, vec![9]);
}
