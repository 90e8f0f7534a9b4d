//! Delivery of a request's outcome to the process that submitted it, as `{tag, outcome}`.

use parking_lot::Mutex;
use rustler::env::SavedTerm;
use rustler::{Binary, Encoder, Env, LocalPid, NewBinary, OwnedEnv, Term};
use serde_json::value::RawValue;

use crate::atoms;
use crate::error::PoolError;

/// Cleared environments kept for reuse: allocating and freeing one per request shows in
/// profiles of the hot path.
static SPARE_ENVS: Mutex<Vec<OwnedEnv>> = Mutex::new(Vec::new());
const MAX_SPARE_ENVS: usize = 256;

/// Where a request's outcome goes. Holds its own environment so the caller's tag (a reference made
/// by the caller just before submitting) survives until the reply is built on a worker's thread.
pub struct ReplyTo {
    pid: LocalPid,
    /// Always `Some` until sent or dropped, when it goes back to `SPARE_ENVS`.
    env: Option<OwnedEnv>,
    tag: SavedTerm,
}

impl ReplyTo {
    pub fn new(pid: LocalPid, tag: Term) -> Self {
        let env = SPARE_ENVS.lock().pop().unwrap_or_default();
        let tag = env.save(tag);
        ReplyTo {
            pid,
            env: Some(env),
            tag,
        }
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
        let mut env = self.env.take().expect("a ReplyTo is sent once");
        let tag = &self.tag;
        let _ = env.send_and_clear(&self.pid, move |env| {
            let tag = tag.load(env);
            (tag, outcome(env)).encode(env)
        });
        spare(env);
    }
}

impl Drop for ReplyTo {
    /// Not sent (the caller gave up or was answered otherwise): keep the environment for reuse.
    fn drop(&mut self) {
        if let Some(mut env) = self.env.take() {
            env.clear();
            spare(env);
        }
    }
}

/// Returns a cleared environment to the spares.
fn spare(env: OwnedEnv) {
    let mut spares = SPARE_ENVS.lock();
    if spares.len() < MAX_SPARE_ENVS {
        spares.push(env);
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
