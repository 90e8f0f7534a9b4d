//! Delivery of a request's outcome to the process that submitted it, as `{tag, outcome}` — or,
//! for a stream, through its sink (`stream.rs`).
//!
//! A call submitted *timed* (its caller emits telemetry) gets `{tag, outcome, worker_id,
//! queue_us, run_us}` instead: the core's [`Timings`] of the request (the very numbers its
//! stats recorded) and the id of the worker that answered (`nil` when none did; `run_us` is
//! `nil` when it never reached a worker). An untimed call pays nothing for them.

use std::sync::Arc;

use parking_lot::Mutex;
use rustler::env::SavedTerm;
use rustler::{Binary, Encoder, Env, LocalPid, NewBinary, OwnedEnv, Term};
use serde_json::value::RawValue;

use snakepit_core::Timings;

use crate::atoms;
use crate::error::PoolError;
use crate::stream::StreamSink;

/// Cleared environments of one pool, kept for reuse: allocating and freeing one per request
/// shows in profiles of the hot path.
#[derive(Default)]
pub struct Spares(Mutex<Vec<OwnedEnv>>);

const MAX_SPARES: usize = 256;

impl Spares {
    pub(crate) fn take(&self) -> OwnedEnv {
        self.0.lock().pop().unwrap_or_default()
    }

    /// Keeps a cleared environment for reuse.
    pub(crate) fn give(&self, env: OwnedEnv) {
        let mut spares = self.0.lock();
        if spares.len() < MAX_SPARES {
            spares.push(env);
        }
    }
}

/// Where a request's outcome goes: a call's caller, or a stream's sink, which has sent its
/// chunks before.
pub enum ReplyTo {
    Call(CallReply),
    Stream(Arc<StreamSink>),
}

/// A call's caller. Holds its own environment so the caller's tag (a reference made by the
/// caller just before submitting) survives until the reply is built on a worker's thread.
pub struct CallReply {
    pid: LocalPid,
    env: OwnedEnv,
    tag: SavedTerm,
    /// The reply carries the request's timings and worker (see the module doc).
    timed: bool,
}

/// How a request ended besides its outcome: who answered it and its timings, for a timed call.
#[derive(Clone, Copy)]
pub struct Finish<'a> {
    pub worker_id: Option<&'a str>,
    pub timings: Timings,
}

impl<'a> Finish<'a> {
    pub fn new(worker_id: Option<&'a str>, timings: Timings) -> Self {
        Finish { worker_id, timings }
    }

    /// The message `{tag, outcome}`, or `{tag, outcome, worker_id, queue_us, run_us}` when timed.
    fn message<'e>(self, env: Env<'e>, tag: Term<'e>, outcome: Term<'e>, timed: bool) -> Term<'e> {
        if !timed {
            return (tag, outcome).encode(env);
        }
        let Timings { queue, run } = self.timings;
        let run = run.map(micros);
        (tag, outcome, self.worker_id, micros(queue), run).encode(env)
    }
}

/// Whole microseconds, as the BEAM's integers take them.
pub fn micros(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

impl ReplyTo {
    /// Where a call's outcome goes; `timed`: with its timings and worker.
    pub fn new(spares: &Spares, pid: LocalPid, tag: Term, timed: bool) -> Self {
        let env = spares.take();
        let tag = env.save(tag);
        ReplyTo::Call(CallReply {
            pid,
            env,
            tag,
            timed,
        })
    }

    /// Sends the outcome of a request that failed; `env` is the calling NIF's environment when
    /// on a scheduler thread.
    pub fn fail(self, env: Option<Env>, spares: &Spares, error: &PoolError, finish: Finish) {
        match (self, env.filter(|_| rustler::thread::is_scheduler_thread())) {
            (ReplyTo::Stream(sink), env) => sink.fail(env, Some(spares), error),
            (call, Some(env)) => {
                let outcome = (atoms::error(), error.to_term(env)).encode(env);
                call.send_from(env, spares, outcome, finish);
            }
            (call, None) => call.send_error(Some(spares), error, finish),
        }
    }

    /// Sends `{tag, {:ok_json, json}}`, or `{tag, {:ok, nil}}` for a `null` result. The caller
    /// decodes the JSON on its own scheduler (`json_decode`): terms are then built once, on its
    /// heap, instead of here and again by the copy `enif_send` makes; and the BEAM cannot build
    /// large (hashed) maps from a thread it does not manage.
    pub fn send_ok(self, spares: &Spares, result: Option<&RawValue>, finish: Finish) {
        let call = match self {
            ReplyTo::Call(call) => call,
            // A stream's final success carries no result.
            ReplyTo::Stream(sink) => return sink.done(Some(spares)),
        };
        call.send(Some(spares), finish, |env| match result {
            None => (atoms::ok(), atoms::nil()).encode(env),
            Some(raw) => {
                let mut binary = NewBinary::new(env, raw.get().len());
                binary.as_mut_slice().copy_from_slice(raw.get().as_bytes());
                let binary: Binary = binary.into();
                (atoms::ok_json(), binary).encode(env)
            }
        });
    }

    /// Sends `{tag, {:error, {reason, message, details}}}`.
    pub fn send_error(self, spares: Option<&Spares>, error: &PoolError, finish: Finish) {
        let call = match self {
            ReplyTo::Call(call) => call,
            ReplyTo::Stream(sink) => return sink.fail(None, spares, error),
        };
        call.send(spares, finish, |env| {
            (atoms::error(), error.to_term(env)).encode(env)
        });
    }

    /// A reply that will never be sent: its environment is cleared and kept for reuse.
    pub fn recycle(self, spares: &Spares) {
        match self {
            ReplyTo::Call(CallReply { mut env, .. }) => {
                env.clear();
                spares.give(env);
            }
            ReplyTo::Stream(sink) => sink.close(),
        }
    }

    /// Sends `{tag, outcome}` from a NIF call's environment (a BEAM worker answering, on a
    /// scheduler thread, where an owned environment cannot send): the tag is copied into `env`.
    pub fn send_from<'a>(self, env: Env<'a>, spares: &Spares, outcome: Term<'a>, finish: Finish) {
        let CallReply {
            pid,
            env: mut owned,
            tag,
            timed,
        } = match self {
            ReplyTo::Call(call) => call,
            // Streams run on worker processes only (a BEAM worker's pool refuses them).
            ReplyTo::Stream(sink) => return sink.close(),
        };
        let tag = owned.run(|owned_env| tag.load(owned_env).in_env(env));
        let _ = env.send(&pid, finish.message(env, tag, outcome, timed));
        owned.clear();
        spares.give(owned);
    }
}

impl CallReply {
    /// Must run on a thread the BEAM does not manage (`enif_send` rules); a dead caller is fine.
    /// The environment goes back to `spares` when given.
    fn send(
        self,
        spares: Option<&Spares>,
        finish: Finish,
        outcome: impl for<'a> FnOnce(Env<'a>) -> Term<'a>,
    ) {
        debug_assert!(!rustler::thread::is_scheduler_thread());
        let CallReply {
            pid,
            mut env,
            tag,
            timed,
        } = self;
        let _ = env.send_and_clear(&pid, move |env| {
            let tag = tag.load(env);
            let outcome = outcome(env);
            finish.message(env, tag, outcome, timed)
        });
        if let Some(spares) = spares {
            spares.give(env);
        }
    }
}
