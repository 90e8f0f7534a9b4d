//! snakepit_rs: the worker-pool core of Snakepit, running inside the BEAM as a NIF.
//!
//! # Layout
//! Dependencies point one way: [`nif`] → [`pool`] / [`supervisor`] → `snakepit_core` (the
//! dispatch state machine: no rustler, no I/O, the clock passed in) and `snakepit_protocol`
//! (wire protocol v1, both directions). Nothing calls into the BEAM while a Rust lock is held.
//!
//! - [`nif`]: the entry points `Snakepit.Native` binds (`nif/pool.rs`, `nif/request.rs`,
//!   `nif/stream.rs`, `nif/session.rs`, `nif/beam.rs`, `nif/codec.rs`); thin: decode, call the pool, encode.
//! - [`pool`]: the core's `Dispatch` behind one mutex, and the carrying out of its effects after
//!   unlocking (frames, replies, signals, monitors, jobs for the supervisor). The pool is the
//!   resource Elixir holds; [`resource`] has its `down` callback, which only posts a job.
//! - [`supervisor`]: one task per pool — worker starts (first ones, replacements, recycling,
//!   retries after the core's back-off), dropped callers, stop, and the core's timer, which sleeps
//!   until the next deadline.
//! - [`reader`]: a worker's reader thread (handshake, replies → callers, reaping).
//! - [`output`]: a worker's stdout/stderr → bounded log lines for the owner.
//! - [`beam`]: workers that are BEAM processes (an Elixir adapter's `execute/3`): started by
//!   the pool's owner, served by the same core; [`deliver`]: sending to a BEAM process from any
//!   thread.
//! - [`worker`]: a worker's handle (an OS process or a BEAM process); launching one worker
//!   process (fd 3/4 pipes, process group, parent-death signal); [`request_pipe`]: writing frames to it without ever blocking the caller;
//!   [`processes`]: the pool's live processes, for stop.
//! - [`codec`]: Elixir terms ↔ JSON.
//! - [`reply`]: delivering outcomes to callers, with each pool's reusable environments;
//!   [`stream`]: a stream's chunks and end, in order, to its caller;
//!   [`events`]: messages to the pool's owner.
//! - [`error`]: errors with the reason atoms of `Snakepit.Error`; [`atoms`]: atoms.
//! - [`registry`]: the run's pid file, read by `Snakepit.ProcessRegistry` at the next start.
//! - [`watchdog`]: registers worker process groups with `snakepit_watchdog`, which kills them
//!   if the BEAM dies.
//! - [`config`]: the pool configuration; [`runtime`]: the tokio runtime and spawner thread.

pub mod atoms;
pub mod beam;
pub mod codec;
pub mod config;
pub mod deliver;
pub mod error;
pub mod events;
pub mod nif;
pub mod output;
pub mod pool;
pub mod processes;
pub mod reader;
pub mod registry;
pub mod reply;
pub mod request_pipe;
pub mod resource;
pub mod runtime;
pub mod stream;
pub mod supervisor;
pub mod watchdog;
pub mod worker;

rustler::init!("Elixir.Snakepit.Native");
