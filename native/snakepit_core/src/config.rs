//! The pool's rules, as the state machine needs them.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    /// Number of worker slots.
    pub size: usize,
    /// Requests allowed to wait; more are rejected as saturated.
    pub max_queue_size: usize,
    /// How long a request may wait for a worker.
    pub queue_timeout: Duration,
    /// After a request's execution timeout, how long its worker has to answer (it is sent a
    /// cancel) before it is killed.
    pub cancel_grace: Duration,
    /// Idle workers are checked this often; `None`: never.
    pub health_check_interval: Option<Duration>,
    /// How long a health check may run.
    pub health_check_timeout: Duration,
    /// Recycle a worker after this many requests; `None`: never.
    pub worker_max_requests: Option<u64>,
    /// Recycle a worker after this long; `None`: never.
    pub worker_ttl: Option<Duration>,
    /// Consecutive failed starts after which the circuit opens.
    pub max_start_failures: u32,
    /// Wait before the first retry of a failed start; doubles per failure up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// A session's binding to its worker expires after this long unused; `None`: never.
    pub session_ttl: Option<Duration>,
}

impl Config {
    /// Defaults matching `Snakepit.Pool`'s, for `size` workers.
    pub fn new(size: usize) -> Self {
        Config {
            size,
            max_queue_size: 1000,
            queue_timeout: Duration::from_millis(5000),
            cancel_grace: Duration::from_millis(2000),
            health_check_interval: Some(Duration::from_millis(30_000)),
            health_check_timeout: Duration::from_millis(5000),
            worker_max_requests: None,
            worker_ttl: None,
            max_start_failures: 5,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            session_ttl: Some(Duration::from_secs(3600)),
        }
    }

    /// Wait before retrying a slot whose last `failures` (≥ 1) starts failed: 100 ms, 200 ms,
    /// 400 ms, … up to 5 s.
    pub fn backoff(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(16);
        self.backoff_base
            .saturating_mul(factor)
            .min(self.backoff_max)
    }
}
