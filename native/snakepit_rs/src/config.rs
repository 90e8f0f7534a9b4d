//! Pool configuration, validated on the Elixir side (`Snakepit.Pool`) and decoded here.

use rustler::NifMap;

#[derive(NifMap, Debug, Clone)]
pub struct PoolConfig {
    /// Pool name, used as the prefix of worker ids.
    pub name: String,
    /// Number of workers.
    pub size: usize,
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
}
