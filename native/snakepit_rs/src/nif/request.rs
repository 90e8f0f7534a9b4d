//! Request NIFs: submit (frames the request and hands it to the pool) and the caller's deadline
//! check. Streams are submitted the same way (`nif/stream.rs`).

use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

use rustler::{Encoder, Env, Term};

use snakepit_core::{Deadline, Request, Send, Session, StreamRequest, Submitted};
use snakepit_protocol::request::{encode_request, RequestError, RequestHead};

use crate::atoms;
use crate::codec::JsonWriter;
use crate::config::Affinity;
use crate::error::PoolError;
use crate::pool::{CallerMonitor, PoolRef};
use crate::reply::{micros, ReplyTo};
use crate::stream::StreamSink;

/// Longest command name accepted.
pub const MAX_COMMAND_BYTES: usize = 1024;

/// A request's session, as the caller gives it: `nil`, or `{session_id, affinity}` with the
/// affinity `nil` for the pool's.
pub(crate) type SessionArg<'a> = Option<(&'a str, Option<Affinity>)>;

/// What a streamed request adds.
pub(crate) struct Streamed {
    pub window: Option<NonZeroU64>,
    pub chunk_timeout: Option<Duration>,
}

/// Submits a request; the outcome arrives as `{tag, {:ok_json, json} | {:ok, nil} | {:error,
/// {reason, msg, details}}}` — or, `timed`, as `{tag, outcome, worker_id, queue_us, run_us}`
/// (`reply.rs`). Returns `{:ok, request_id}` or `{:error, {reason, msg, details}}` at once.
#[rustler::nif]
#[allow(clippy::too_many_arguments)]
fn pool_submit<'a>(
    env: Env<'a>,
    pool: PoolRef,
    tag: Term<'a>,
    command: &str,
    request_args: Term<'a>,
    session: SessionArg<'a>,
    timeout_ms: u64,
    timed: bool,
) -> Term<'a> {
    let call = Call { tag, timed };
    submit(env, &pool, call, command, request_args, session, timeout_ms)
}

/// `pool_submit/7` for args large enough that encoding them may outlast a scheduler slice.
#[rustler::nif(schedule = "DirtyCpu")]
#[allow(clippy::too_many_arguments)]
fn pool_submit_dirty<'a>(
    env: Env<'a>,
    pool: PoolRef,
    tag: Term<'a>,
    command: &str,
    request_args: Term<'a>,
    session: SessionArg<'a>,
    timeout_ms: u64,
    timed: bool,
) -> Term<'a> {
    let call = Call { tag, timed };
    submit(env, &pool, call, command, request_args, session, timeout_ms)
}

/// Who a call's reply goes to: the caller's tag, and whether it wants timings.
pub(crate) struct Call<'a> {
    pub tag: Term<'a>,
    pub timed: bool,
}

fn submit<'a>(
    env: Env<'a>,
    pool: &PoolRef,
    call: Call<'a>,
    command: &str,
    args: Term<'a>,
    session: SessionArg,
    timeout_ms: u64,
) -> Term<'a> {
    match try_submit(env, pool, call, command, args, session, timeout_ms, None) {
        Ok(id) => (atoms::ok(), id).encode(env),
        Err(error) => (atoms::error(), error.to_term(env)).encode(env),
    }
}

/// Frames a request (streamed when `stream` says how) and hands it to the pool; its id.
#[allow(clippy::too_many_arguments)]
pub(crate) fn try_submit<'a>(
    env: Env<'a>,
    pool: &PoolRef,
    Call { tag, timed }: Call<'a>,
    command: &str,
    args: Term<'a>,
    session: SessionArg,
    timeout_ms: u64,
    stream: Option<Streamed>,
) -> Result<u64, PoolError> {
    let session_id = session.map(|(id, _)| id);
    validate_command(command)?;
    if stream.is_some() && pool.config.beam {
        return Err(PoolError::StreamingNotSupported(
            "Streaming not supported by adapter: its pool's workers are BEAM processes \
             (an Elixir adapter's execute/3)"
                .into(),
        ));
    }
    let id = pool.next_id();
    let max_frame = pool.config.max_frame_size;
    let mut frame = Vec::with_capacity(256);
    let head = RequestHead {
        command,
        session_id,
        stream: stream.is_some(),
    };
    let write_args = |out: &mut Vec<u8>| JsonWriter::new(out, "args").write(args);
    encode_request(&mut frame, id, &head, write_args, max_frame).map_err(|error| match error {
        RequestError::Args(error) => PoolError::InvalidArgs(error.to_string()),
        RequestError::Frame(_) => PoolError::ArgsTooLarge {
            size: frame.len(),
            max: max_frame,
        },
    })?;
    let caller = env.pid();
    // A stream's chunks and end go through its sink; a call's reply straight to the caller.
    let (reply, stream) = match stream {
        None => (ReplyTo::new(&pool.spares, caller, tag, timed), None),
        Some(Streamed {
            window,
            chunk_timeout,
        }) => {
            let sink = Arc::new(StreamSink::new(caller, tag));
            let stream = StreamRequest {
                sink: Arc::clone(&sink),
                window,
                chunk_timeout,
            };
            (ReplyTo::Stream(sink), Some(stream))
        }
    };
    let streamed = stream.is_some();
    let request = Request {
        id,
        command: command.to_string(),
        frame,
        reply,
        timeout: Duration::from_millis(timeout_ms),
        // The one allocation a session adds to the request path.
        session: session.map(|(id, affinity)| Session {
            id: id.to_string(),
            affinity: affinity.unwrap_or(pool.config.affinity).into(),
        }),
        stream,
    };
    match pool.submit(request) {
        Ok(Submitted::Run { worker, frame }) => {
            worker.send(Some(env), Send::Frame(frame));
            if streamed {
                monitor_caller(env, pool, id);
            }
        }
        Ok(Submitted::Queued) => monitor_caller(env, pool, id),
        Err((rejected, request)) => {
            request.reply.recycle(&pool.spares);
            return Err(rejected.into());
        }
    }
    Ok(id)
}

/// Monitors the calling process while its request `id` waits — and a stream until it ends —
/// outside the pool's lock: so that a caller that dies in the queue is dropped, and one that
/// dies mid-stream halts it (see `resource.rs`).
fn monitor_caller(env: Env, pool: &PoolRef, id: u64) {
    if let Some(monitor) = env.monitor(pool, &env.pid()) {
        let caller = CallerMonitor {
            pool: pool.clone(),
            monitor,
        };
        if let Err(caller) = pool.attach_monitor(id, caller) {
            caller.pool.demonitor(Some(env), &caller.monitor);
        }
    }
}

/// `{:wait, ms}`, `{:expired, {reason, msg, details}, queue_us, run_us | nil}` (withdrawn; no
/// reply will come; its timings as a timed reply's) or `:replied` (the reply is in or on its
/// way to the caller's mailbox).
#[rustler::nif]
fn pool_check_deadline(env: Env, pool: PoolRef, request_id: u64) -> Term {
    match pool.check_deadline(env, request_id) {
        Deadline::Wait(left) => {
            // `receive ... after` takes at most 2^32 - 1 ms: a longer wait is checked again then.
            let ms = (left.as_micros() as u64)
                .div_ceil(1000)
                .clamp(1, u64::from(u32::MAX));
            (atoms::wait(), ms).encode(env)
        }
        Deadline::Expired(failure, timings) => {
            let error = PoolError::from(failure).to_term(env);
            let run = timings.run.map(micros);
            (atoms::expired(), error, micros(timings.queue), run).encode(env)
        }
        Deadline::Replied => atoms::replied().encode(env),
    }
}

fn validate_command(command: &str) -> Result<(), PoolError> {
    if command.is_empty() {
        return Err(PoolError::InvalidCommand(
            "command must not be empty".into(),
        ));
    }
    if command.len() > MAX_COMMAND_BYTES {
        return Err(PoolError::InvalidCommand(format!(
            "command is {} bytes long; the limit is {MAX_COMMAND_BYTES}",
            command.len()
        )));
    }
    if command.chars().any(char::is_control) {
        return Err(PoolError::InvalidCommand(format!(
            "command {command:?} contains control characters"
        )));
    }
    Ok(())
}
