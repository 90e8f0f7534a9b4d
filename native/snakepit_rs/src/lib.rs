//! snakepit_rs: the worker-pool core of Snakepit, running inside the BEAM as a NIF.
//!
//! # Layout
//! - [`nif`]: the NIF entry points `Snakepit.Native` binds; thin wrappers over [`pool::Pool`].
//! - [`pool`]: slots, the bounded FIFO queue, dispatch, deadlines, counters.
//! - [`lifecycle`]: starting workers concurrently, reader threads, reaping and replacement.
//! - [`worker`]: launching one worker process (fd 3/4 pipes, process group, parent-death
//!   signal); [`request_pipe`]: writing frames to it without ever blocking the caller.
//! - [`request`]: framing a request; the rest of wire protocol v1 (frames, the worker's messages)
//!   lives in the `snakepit_protocol` crate, which has no BEAM dependency and is unit-tested.
//! - [`codec`]: Elixir terms ↔ JSON.
//! - [`resource`]: the resource Elixir holds; monitors the owner and queued callers.
//! - [`reply`]: delivering outcomes to callers; [`events`]: messages to the pool's owner.
//! - [`error`]: errors with the reason atoms of `Snakepit.Error`; [`atoms`]: atoms.
//! - [`registry`]: the run's pid file, read by `Snakepit.ProcessRegistry` at the next start.
//! - [`watchdog`]: registers worker process groups with `snakepit_watchdog`, which kills them
//!   if the BEAM dies.
//! - [`config`]: the pool configuration; [`runtime`]: the tokio runtime and spawner thread.

pub mod atoms;
pub mod codec;
pub mod config;
pub mod error;
pub mod events;
pub mod lifecycle;
pub mod nif;
pub mod pool;
pub mod registry;
pub mod reply;
pub mod request;
pub mod request_pipe;
pub mod resource;
pub mod runtime;
pub mod watchdog;
pub mod worker;

rustler::init!("Elixir.Snakepit.Native");
