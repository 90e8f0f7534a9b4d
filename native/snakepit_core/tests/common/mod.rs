//! A test host for the dispatch state machine: workers are uids, replies are request ids, and
//! time is a base instant plus milliseconds.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use std::num::NonZeroU64;

use snakepit_core::{Affinity, Config, Dispatch, Effects, Host, Request, Session, StreamRequest};

pub struct T;

impl Host for T {
    /// The worker's uid.
    type Worker = u64;
    /// The request's id.
    type Reply = u64;
    /// The monitor's number.
    type Monitor = u64;
    type Loss = &'static str;
    /// The stream's request id.
    type Sink = u64;

    /// Workers with an even uid take credit.
    fn takes_credit(worker: &u64) -> bool {
        worker.is_multiple_of(2)
    }

    /// The window follows the id in the frame.
    fn set_window(frame: &mut Vec<u8>, window: NonZeroU64) {
        frame.extend_from_slice(&window.get().to_le_bytes());
    }
}

pub type D = Dispatch<T>;
pub type E = Effects<T>;

/// A fixed origin; `at(ms)` is that many milliseconds after it.
pub struct Clock(Instant);

impl Clock {
    pub fn new() -> Self {
        Clock(Instant::now())
    }

    pub fn at(&self, ms: u64) -> Instant {
        self.0 + Duration::from_millis(ms)
    }
}

pub fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// A config with no health checks, for tests that do not want them.
pub fn config(size: usize) -> Config {
    let mut config = Config::new(size);
    config.health_check_interval = None;
    config
}

/// A request whose frame is its id's bytes.
pub fn request(id: u64, timeout_ms: u64) -> Request<T> {
    Request {
        id,
        command: format!("cmd{id}"),
        frame: id.to_le_bytes().to_vec(),
        reply: id,
        timeout: ms(timeout_ms),
        session: None,
        stream: None,
    }
}

/// A streamed request with credit window `window` and idle timeout `chunk_timeout_ms`.
pub fn streamed(
    id: u64,
    timeout_ms: u64,
    window: u64,
    chunk_timeout_ms: Option<u64>,
) -> Request<T> {
    Request {
        stream: Some(StreamRequest {
            sink: id,
            window: NonZeroU64::new(window),
            chunk_timeout: chunk_timeout_ms.map(ms),
        }),
        ..request(id, timeout_ms)
    }
}

/// A request of session `session` with `affinity`.
pub fn in_session(id: u64, session: &str, affinity: Affinity) -> Request<T> {
    Request {
        session: Some(Session {
            id: session.to_string(),
            affinity,
        }),
        ..request(id, 60_000)
    }
}

/// The request id a frame carries.
pub fn frame_id(frame: &[u8]) -> u64 {
    u64::from_le_bytes(frame[..8].try_into().unwrap())
}

/// The credit window a frame carries, if any.
pub fn frame_window(frame: &[u8]) -> Option<u64> {
    frame
        .get(8..)
        .filter(|rest| !rest.is_empty())
        .map(|rest| u64::from_le_bytes(rest.try_into().unwrap()))
}

/// A pool whose every slot `i` got worker uid `100 + i` at time 0.
pub fn running(config: Config, clock: &Clock) -> D {
    let size = config.size;
    let (mut dispatch, effects) = D::new(config, clock.at(0));
    assert_eq!(effects.starts, (0..size).collect::<Vec<_>>());
    for slot in 0..size {
        let _ = dispatch
            .worker_up(slot, 100 + slot as u64, 100 + slot as u64, clock.at(0))
            .unwrap();
    }
    dispatch
}
