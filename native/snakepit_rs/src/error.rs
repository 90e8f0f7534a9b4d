//! Errors that reach callers, each with the reason atom `Snakepit.Error` carries.

use rustler::{Atom, Encoder, Env, Term};

use crate::atoms;
use snakepit_core::{Failure, Rejected};
use snakepit_protocol::reply::WorkerError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum PoolError {
    #[error("{0}")]
    InvalidCommand(String),
    #[error("{0}")]
    InvalidArgs(String),
    #[error("request of {size} bytes exceeds the maximum frame size of {max} bytes")]
    ArgsTooLarge { size: usize, max: usize },
    #[error("pool queue is full ({max} requests waiting)")]
    PoolSaturated { max: usize },
    #[error("request waited {waited_ms} ms in the queue without a free worker")]
    QueueTimeout { waited_ms: u64 },
    #[error("command {command:?} did not finish within {timeout_ms} ms")]
    Timeout { command: String, timeout_ms: u64 },
    #[error("streaming command {command:?} sent nothing for {timeout_ms} ms (:chunk_timeout)")]
    ChunkTimeout { command: String, timeout_ms: u64 },
    #[error("{0}")]
    StreamingNotSupported(String),
    #[error("worker {worker_id} exited while running the request ({exit})")]
    WorkerCrashed { worker_id: String, exit: String },
    #[error("worker {worker_id} broke the protocol: {detail}")]
    ProtocolError { worker_id: String, detail: String },
    #[error("{0}")]
    PoolNotInitialized(String),
    #[error("pool is shutting down")]
    PoolShutdown,
    #[error("no worker is running: the last {failures} attempts to start one failed")]
    CircuitOpen { failures: u32 },
    #[error("{}: {}", .0.kind, .0.message)]
    WorkerError(WorkerError),
    #[error("{}", .0.message)]
    UnknownCommand(WorkerError),
    #[error("the session's worker is busy (affinity :strict_fail_fast)")]
    WorkerBusy,
    #[error(
        "the session's worker is gone (it exited or was recycled) and its state with it; \
         forget the session, or call with affinity :hint to move it to another worker"
    )]
    SessionWorkerUnavailable,
}

impl PoolError {
    pub fn reason(&self) -> Atom {
        match self {
            PoolError::InvalidCommand(_) => atoms::invalid_command(),
            PoolError::InvalidArgs(_) => atoms::invalid_args(),
            PoolError::ArgsTooLarge { .. } => atoms::args_too_large(),
            PoolError::PoolSaturated { .. } => atoms::pool_saturated(),
            PoolError::QueueTimeout { .. } => atoms::queue_timeout(),
            PoolError::Timeout { .. } | PoolError::ChunkTimeout { .. } => atoms::timeout(),
            PoolError::StreamingNotSupported(_) => atoms::streaming_not_supported(),
            PoolError::WorkerCrashed { .. } => atoms::worker_crashed(),
            PoolError::ProtocolError { .. } => atoms::protocol_error(),
            PoolError::PoolNotInitialized(_) => atoms::pool_not_initialized(),
            PoolError::PoolShutdown => atoms::pool_shutdown(),
            PoolError::CircuitOpen { .. } => atoms::circuit_open(),
            PoolError::WorkerError(_) => atoms::worker_error(),
            PoolError::UnknownCommand(_) => atoms::unknown_command(),
            PoolError::WorkerBusy => atoms::worker_busy(),
            PoolError::SessionWorkerUnavailable => atoms::session_worker_unavailable(),
        }
    }

    /// Builds `{reason, message, details}`, which `Snakepit.Error.from_native/1` turns into a struct.
    pub fn to_term<'a>(&self, env: Env<'a>) -> Term<'a> {
        let details = match self {
            PoolError::WorkerError(error) | PoolError::UnknownCommand(error) => Term::map_new(env)
                .map_put("type", error.kind.as_str())
                .and_then(|m| m.map_put("message", error.message.as_str()))
                .and_then(|m| m.map_put("traceback", error.traceback.as_deref()))
                .unwrap(),
            PoolError::WorkerCrashed { worker_id, exit } => Term::map_new(env)
                .map_put("worker_id", worker_id.as_str())
                .and_then(|m| m.map_put("exit", exit.as_str()))
                .unwrap(),
            PoolError::ProtocolError { worker_id, .. } => Term::map_new(env)
                .map_put("worker_id", worker_id.as_str())
                .unwrap(),
            PoolError::PoolSaturated { max } => {
                Term::map_new(env).map_put("max_queue_size", *max).unwrap()
            }
            PoolError::QueueTimeout { waited_ms } => {
                Term::map_new(env).map_put("waited_ms", *waited_ms).unwrap()
            }
            PoolError::Timeout { timeout_ms, .. } | PoolError::ChunkTimeout { timeout_ms, .. } => {
                Term::map_new(env)
                    .map_put("timeout_ms", *timeout_ms)
                    .unwrap()
            }
            _ => Term::map_new(env),
        };
        (self.reason(), self.to_string(), details).encode(env)
    }

    /// A worker's error reply: unknown commands, and streams of tools that do not stream, get
    /// their own reasons.
    pub fn from_worker(error: WorkerError) -> Self {
        match error.kind.as_str() {
            "UnknownCommand" => PoolError::UnknownCommand(error),
            "StreamingNotSupported" => PoolError::StreamingNotSupported(error.message),
            _ => PoolError::WorkerError(error),
        }
    }
}

impl From<Failure<PoolError>> for PoolError {
    fn from(failure: Failure<PoolError>) -> Self {
        match failure {
            Failure::QueueTimeout { waited } => PoolError::QueueTimeout {
                waited_ms: waited.as_millis() as u64,
            },
            Failure::Timeout { command, timeout } => PoolError::Timeout {
                command,
                timeout_ms: timeout.as_millis() as u64,
            },
            Failure::ChunkTimeout { command, timeout } => PoolError::ChunkTimeout {
                command,
                timeout_ms: timeout.as_millis() as u64,
            },
            Failure::Lost(error) => error,
            Failure::Shutdown => PoolError::PoolShutdown,
            Failure::CircuitOpen { failures } => PoolError::CircuitOpen { failures },
            Failure::SessionWorkerUnavailable => PoolError::SessionWorkerUnavailable,
        }
    }
}

impl From<Rejected> for PoolError {
    fn from(rejected: Rejected) -> Self {
        match rejected {
            Rejected::Shutdown => PoolError::PoolShutdown,
            Rejected::Saturated { max } => PoolError::PoolSaturated { max },
            Rejected::CircuitOpen { failures } => PoolError::CircuitOpen { failures },
            Rejected::WorkerBusy => PoolError::WorkerBusy,
            Rejected::SessionWorkerUnavailable => PoolError::SessionWorkerUnavailable,
        }
    }
}
