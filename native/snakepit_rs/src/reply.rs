//! Delivery of a request's outcome to the process that submitted it, as `{tag, outcome}`.

use rustler::env::SavedTerm;
use rustler::{Binary, Encoder, Env, LocalPid, NewBinary, OwnedEnv, Term};
use serde_json::value::RawValue;

use crate::atoms;
use crate::error::PoolError;

/// Where a request's outcome goes. Holds its own environment so the caller's tag (a reference made
/// by the caller just before submitting) survives until the reply is built on a worker's thread.
pub struct ReplyTo {
    pid: LocalPid,
    env: OwnedEnv,
    tag: SavedTerm,
}

impl ReplyTo {
    pub fn new(pid: LocalPid, tag: Term) -> Self {
        let env = OwnedEnv::new();
        let tag = env.save(tag);
        ReplyTo { pid, env, tag }
    }

    /// Sends `{tag, {:ok_json, json}}`, or `{tag, {:ok, nil}}` for a `null` result. The caller
    /// decodes the JSON on its own scheduler (`json_decode`): terms are then built once, on its
    /// heap, instead of here and again by the copy `enif_send` makes; and the BEAM cannot build
    /// large (hashed) maps from a thread it does not manage.
    pub fn send_ok(self, result: Option<&RawValue>) {
        self.send(|env| match result {
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
    pub fn send_error(self, error: &PoolError) {
        self.send(|env| (atoms::error(), error.to_term(env)).encode(env));
    }

    /// Must run on a thread the BEAM does not manage (`enif_send` rules); a dead caller is fine.
    fn send(mut self, outcome: impl for<'a> FnOnce(Env<'a>) -> Term<'a>) {
        debug_assert!(!rustler::thread::is_scheduler_thread());
        let tag = self.tag;
        let _ = self.env.send_and_clear(&self.pid, move |env| {
            let tag = tag.load(env);
            (tag, outcome(env)).encode(env)
        });
    }
}

/// Sends outcomes from a thread where that is allowed: here if this is not a BEAM thread, else on
/// the runtime (a NIF that must fail requests, such as stop, runs on a BEAM thread).
pub fn deliver_errors(failed: Vec<(ReplyTo, PoolError)>) {
    if failed.is_empty() {
        return;
    }
    if rustler::thread::is_scheduler_thread() {
        crate::runtime::runtime().spawn_blocking(move || deliver_errors(failed));
    } else {
        for (reply_to, error) in failed {
            reply_to.send_error(&error);
        }
    }
}
