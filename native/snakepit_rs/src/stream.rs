//! A stream's way to its caller: chunks as they arrive, then one end — straight from the reader
//! thread to the caller's mailbox, nothing buffered (back-pressure is the core's credit window,
//! `snakepit_core::stream`).
//!
//! Messages, all tagged with the reference the caller made before submitting:
//!
//! - `{tag, :chunk, json, marks}`: one chunk, its value as JSON text (the caller decodes it on its
//!   own scheduler, as results are); `marks` is `nil`, or `{is_final, metadata_json | nil}` for
//!   a chunk the worker marked (upstream's chunk objects, see docs/protocol.md);
//! - `{tag, :chunk_stall, json, marks}`: the same, for a chunk that used up the worker's credit
//!   window: the consumer's mailbox is full and the worker now waits for it (a credit stall);
//! - `{tag, :done}`: the stream ended well;
//! - `{tag, :error, {reason, message, details}}`: it failed (after the chunks sent before).
//!
//! One lock orders them: every message is sent under it, and the end closes the sink, so no
//! chunk can follow the end — also when the end comes from another thread (the timer's timeout,
//! a worker crash seen by its reader, a stop) than the chunks. A halted stream is closed without
//! a message. The lock is a leaf: nothing else is locked, and nothing calls back, while it is
//! held (`enif_send` only enqueues).

use std::num::NonZeroU64;

use parking_lot::Mutex;
use rustler::env::SavedTerm;
use rustler::{Binary, Encoder, Env, LocalPid, NewBinary, OwnedEnv, Term};

use snakepit_protocol::reply::Chunk;

use crate::atoms;
use crate::error::PoolError;
use crate::reply::Spares;

/// Where one stream's messages go.
pub struct StreamSink {
    pid: LocalPid,
    state: Mutex<State>,
}

struct State {
    /// No end sent (nor halted) yet.
    open: bool,
    /// Holds the caller's tag for the stream's life (a spare environment is cleared after each
    /// message; this one never is).
    tag_env: OwnedEnv,
    tag: SavedTerm,
}

impl StreamSink {
    pub fn new(pid: LocalPid, tag: Term) -> Self {
        let tag_env = OwnedEnv::new();
        let tag = tag_env.save(tag);
        StreamSink {
            pid,
            state: Mutex::new(State {
                open: true,
                tag_env,
                tag,
            }),
        }
    }

    /// Sends one chunk (from a thread the BEAM does not manage: a reader thread); `stalled`:
    /// the worker waits for credit after it.
    pub fn chunk(&self, spares: &Spares, chunk: &Chunk, stalled: bool) {
        let kind = if stalled {
            atoms::chunk_stall()
        } else {
            atoms::chunk()
        };
        let state = self.state.lock();
        if !state.open {
            return;
        }
        let mut env = spares.take();
        let _ = env.send_and_clear(&self.pid, |env| {
            let tag = state.tag_env.run(|own| state.tag.load(own).in_env(env));
            let data = binary(env, chunk.data.get());
            let marks = match (chunk.is_final, chunk.metadata) {
                (false, None) => atoms::nil().encode(env),
                (is_final, metadata) => {
                    let metadata = metadata.map(|raw| binary(env, raw.get()));
                    (is_final, metadata).encode(env)
                }
            };
            (tag, kind, data, marks).encode(env)
        });
        spares.give(env);
    }

    /// The stream ended well: `{tag, :done}`.
    pub fn done(&self, spares: Option<&Spares>) {
        self.end(None, spares, |env, tag| (tag, atoms::done()).encode(env));
    }

    /// The stream failed: `{tag, :error, error}`. `env`: the calling NIF's environment, on a
    /// scheduler thread (where an owned environment cannot send).
    pub fn fail(&self, env: Option<Env>, spares: Option<&Spares>, error: &PoolError) {
        self.end(env, spares, |env, tag| {
            (tag, atoms::error(), error.to_term(env)).encode(env)
        });
    }

    /// The stream has its outcome without a message (halted, or its caller gave up).
    pub fn close(&self) {
        self.state.lock().open = false;
    }

    /// Sends the stream's last message, built by `message` from the tag, once.
    fn end(
        &self,
        env: Option<Env>,
        spares: Option<&Spares>,
        message: impl for<'a> FnOnce(Env<'a>, Term<'a>) -> Term<'a>,
    ) {
        let mut state = self.state.lock();
        if !std::mem::replace(&mut state.open, false) {
            return;
        }
        let state = &*state;
        match env.filter(|_| rustler::thread::is_scheduler_thread()) {
            Some(env) => {
                let tag = state.tag_env.run(|own| state.tag.load(own).in_env(env));
                let _ = env.send(&self.pid, message(env, tag));
            }
            None => {
                let mut owned = spares.map(Spares::take).unwrap_or_default();
                let _ = owned.send_and_clear(&self.pid, |env| {
                    let tag = state.tag_env.run(|own| state.tag.load(own).in_env(env));
                    message(env, tag)
                });
                if let Some(spares) = spares {
                    spares.give(owned);
                }
            }
        }
    }
}

/// A term made from raw bytes (JSON text).
fn binary<'a>(env: Env<'a>, bytes: &str) -> Term<'a> {
    let mut binary = NewBinary::new(env, bytes.len());
    binary.as_mut_slice().copy_from_slice(bytes.as_bytes());
    let binary: Binary = binary.into();
    binary.encode(env)
}

/// Writes the credit window into a streamed request's frame (a 4-byte length, then a JSON
/// object): `,"window":W` goes before the object's closing brace, and the length grows. Valid
/// for any object with at least one member, which a request always has.
pub fn set_window(frame: &mut Vec<u8>, window: NonZeroU64) {
    debug_assert_eq!(frame.last(), Some(&b'}'));
    let member = format!(",\"window\":{window}}}");
    frame.pop();
    frame.extend_from_slice(member.as_bytes());
    let length = (frame.len() - 4) as u32;
    frame[..4].copy_from_slice(&length.to_be_bytes());
}
