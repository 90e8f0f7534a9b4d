//! Stream NIFs: submit a streamed request, acknowledge the chunks its consumer took (credit for
//! the worker), halt it. Chunks and the end arrive as messages (see `stream.rs`).

use std::num::NonZeroU64;
use std::time::Duration;

use rustler::{Encoder, Env, Term};

use crate::atoms;
use crate::nif::request::{try_submit, Call, SessionArg, Streamed};
use crate::pool::PoolRef;

/// Submits a streamed request; `timeout_ms` (the whole stream's) and `chunk_timeout_ms` (the
/// longest wait for the next chunk) are `nil` for the pool's. Returns `{:ok, request_id,
/// window}` (the consumer acknowledges chunks in batches smaller than the window) or `{:error,
/// {reason, msg, details}}` at once; then `{tag, :chunk | :chunk_stall, json, marks}` per chunk
/// and `{tag, :done}` or `{tag, :error, error}` (see `stream.rs`).
#[rustler::nif]
#[allow(clippy::too_many_arguments)]
fn pool_stream<'a>(
    env: Env<'a>,
    pool: PoolRef,
    tag: Term<'a>,
    command: &str,
    request_args: Term<'a>,
    session: SessionArg<'a>,
    timeout_ms: Option<u64>,
    chunk_timeout_ms: Option<u64>,
) -> Term<'a> {
    stream(
        env,
        &pool,
        tag,
        command,
        request_args,
        session,
        timeout_ms,
        chunk_timeout_ms,
    )
}

/// `pool_stream/7` for args large enough that encoding them may outlast a scheduler slice.
#[rustler::nif(schedule = "DirtyCpu")]
#[allow(clippy::too_many_arguments)]
fn pool_stream_dirty<'a>(
    env: Env<'a>,
    pool: PoolRef,
    tag: Term<'a>,
    command: &str,
    request_args: Term<'a>,
    session: SessionArg<'a>,
    timeout_ms: Option<u64>,
    chunk_timeout_ms: Option<u64>,
) -> Term<'a> {
    stream(
        env,
        &pool,
        tag,
        command,
        request_args,
        session,
        timeout_ms,
        chunk_timeout_ms,
    )
}

#[allow(clippy::too_many_arguments)]
fn stream<'a>(
    env: Env<'a>,
    pool: &PoolRef,
    tag: Term<'a>,
    command: &str,
    args: Term<'a>,
    session: SessionArg,
    timeout_ms: Option<u64>,
    chunk_timeout_ms: Option<u64>,
) -> Term<'a> {
    let config = &pool.config;
    let window = NonZeroU64::new(config.stream_window);
    let chunk_timeout = chunk_timeout_ms
        .or((config.chunk_timeout_ms > 0).then_some(config.chunk_timeout_ms))
        .map(Duration::from_millis);
    let timeout_ms = timeout_ms.unwrap_or(config.stream_timeout_ms);
    let streamed = Streamed {
        window,
        chunk_timeout,
    };
    // A stream's end carries no timings: its consumer times it (`Snakepit.Stream`).
    let call = Call { tag, timed: false };
    match try_submit(
        env,
        pool,
        call,
        command,
        args,
        session,
        timeout_ms,
        Some(streamed),
    ) {
        Ok(id) => (atoms::ok(), id, config.stream_window).encode(env),
        Err(error) => (atoms::error(), error.to_term(env)).encode(env),
    }
}

/// The consumer of stream `request_id` took `taken` more chunks. `:ok`.
#[rustler::nif]
fn pool_stream_ack(env: Env, pool: PoolRef, request_id: u64, taken: u64) -> rustler::Atom {
    pool.stream_ack(env, request_id, taken);
    atoms::ok()
}

/// Halts stream `request_id`; its worker is sent a cancel. `:halted`: no message is sent for it
/// after this returns (those sent before may be in the mailbox). `:ended`: the stream had its
/// outcome already, and its last message (`{tag, :done}` or `{tag, :error, _}`) is in the
/// mailbox or on its way.
#[rustler::nif]
fn pool_stream_halt(env: Env, pool: PoolRef, request_id: u64) -> rustler::Atom {
    if pool.halt(env, request_id) {
        atoms::halted()
    } else {
        atoms::ended()
    }
}
