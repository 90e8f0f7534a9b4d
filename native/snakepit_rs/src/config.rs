//! Pool configuration, validated on the Elixir side (`Snakepit.Pool`) and decoded here.

use std::time::Duration;

use rustler::{NifMap, NifUnitEnum};

#[derive(NifMap, Debug, Clone)]
pub struct PoolConfig {
    /// Pool name, used as the prefix of worker ids.
    pub name: String,
    /// Number of workers.
    pub size: usize,
    /// Workers are BEAM processes running an Elixir adapter's `execute/3` (`beam.rs`), started
    /// by the owner; `executable`, `args`, `env` and `cwd` are then unused.
    pub beam: bool,
    /// Program each worker runs, and its arguments.
    pub executable: String,
    pub args: Vec<String>,
    /// Extra environment for workers.
    pub env: Vec<(String, String)>,
    /// Working directory of workers, `nil` for the BEAM's.
    pub cwd: Option<String>,
    /// Requests allowed to wait for a worker; more are refused with `:pool_saturated`.
    pub max_queue_size: usize,
    /// How long a request may wait for a worker before failing with `:queue_timeout`.
    pub queue_timeout_ms: u64,
    /// How long a worker may take to send its ready handshake.
    pub startup_timeout_ms: u64,
    /// Largest frame accepted in either direction.
    pub max_frame_size: usize,
    /// Time between SIGTERM and SIGKILL when stopping.
    pub shutdown_grace_ms: u64,
    /// Identifies this BEAM run; given to workers as `SNAKEPIT_RUN_ID`.
    pub run_id: String,
    /// After a request's timeout, how long its worker has to answer the cancel before it is killed.
    pub cancel_grace_ms: u64,
    /// Idle workers are pinged this often (0: never).
    pub health_check_interval_ms: u64,
    /// A health check not answered within this time gets the worker killed and replaced.
    pub health_check_timeout_ms: u64,
    /// A worker is recycled after this many requests (0: never).
    pub worker_max_requests: u64,
    /// A worker is recycled after this long (0: never).
    pub worker_ttl_ms: u64,
    /// Consecutive failed starts after which the circuit opens.
    pub max_start_failures: u32,
    /// The watchdog program that kills worker process groups if the BEAM dies.
    pub watchdog: Option<String>,
    /// File where worker OS pids are appended, for `Snakepit.ProcessRegistry`.
    pub registry_file: Option<String>,
    /// The session affinity of requests that do not choose one.
    pub affinity: Affinity,
    /// A session's binding to its worker expires after this long unused (0: never).
    pub session_ttl_ms: u64,
    /// Credit window of streams: chunks a worker may send beyond those its consumer took.
    pub stream_window: u64,
    /// Default whole-stream timeout.
    pub stream_timeout_ms: u64,
    /// Default longest wait for a stream's next chunk (0: none).
    pub chunk_timeout_ms: u64,
    /// Whether workers' stdout and stderr lines go to the owner (to be logged); when not, they
    /// are read and dropped here (a worker must never block on a full pipe).
    pub log_output: bool,
}

/// A session affinity mode, as the atoms `:hint`, `:strict_queue`, `:strict_fail_fast`.
#[derive(NifUnitEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Affinity {
    Hint,
    StrictQueue,
    StrictFailFast,
}

impl From<Affinity> for snakepit_core::Affinity {
    fn from(affinity: Affinity) -> Self {
        match affinity {
            Affinity::Hint => snakepit_core::Affinity::Hint,
            Affinity::StrictQueue => snakepit_core::Affinity::StrictQueue,
            Affinity::StrictFailFast => snakepit_core::Affinity::StrictFailFast,
        }
    }
}

impl From<snakepit_core::Affinity> for Affinity {
    fn from(affinity: snakepit_core::Affinity) -> Self {
        match affinity {
            snakepit_core::Affinity::Hint => Affinity::Hint,
            snakepit_core::Affinity::StrictQueue => Affinity::StrictQueue,
            snakepit_core::Affinity::StrictFailFast => Affinity::StrictFailFast,
        }
    }
}

impl PoolConfig {
    /// The rules the dispatch core enforces (0 means "never" for the optional ones).
    pub fn core(&self) -> snakepit_core::Config {
        let ms = Duration::from_millis;
        let positive = |value: u64| (value > 0).then_some(value);
        snakepit_core::Config {
            size: self.size,
            max_queue_size: self.max_queue_size,
            queue_timeout: ms(self.queue_timeout_ms),
            cancel_grace: ms(self.cancel_grace_ms),
            health_check_interval: positive(self.health_check_interval_ms).map(ms),
            health_check_timeout: ms(self.health_check_timeout_ms),
            worker_max_requests: positive(self.worker_max_requests),
            worker_ttl: positive(self.worker_ttl_ms).map(ms),
            max_start_failures: self.max_start_failures,
            session_ttl: positive(self.session_ttl_ms).map(ms),
            ..snakepit_core::Config::new(self.size)
        }
    }
}
