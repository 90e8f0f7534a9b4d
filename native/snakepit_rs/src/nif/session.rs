//! Session NIFs: forgetting a session's worker when the session ends, and what the pool knows
//! of a session (for `Snakepit.SessionHelpers`). Routing itself happens on submit
//! (`request.rs`), by the rules of `snakepit_core::session`.

use rustler::{Encoder, Env, Term};

use crate::atoms;
use crate::config::Affinity;
use crate::pool::PoolRef;

/// Session `session_id` ended: forgets its worker and tells the workers; whether the session was
/// bound to one.
#[rustler::nif]
fn pool_end_session(pool: PoolRef, session_id: &str) -> bool {
    pool.end_session(session_id)
}

/// `nil` when the session is not bound to a worker (never used, forgotten or expired), else
/// `%{worker_id: id | nil, os_pid: pid | nil, affinity: mode, idle_ms: ms}`: `worker_id` is
/// `nil` when the session's worker is gone, `affinity` the mode of its latest request, and
/// `idle_ms` the time since that request was submitted.
#[rustler::nif]
fn pool_session_info<'a>(env: Env<'a>, pool: PoolRef, session_id: &str) -> Term<'a> {
    let Some(info) = pool.session(session_id) else {
        return atoms::nil().encode(env);
    };
    let worker = info.worker.as_ref();
    let idle_ms = info.last_used.elapsed().as_millis() as u64;
    Term::map_new(env)
        .map_put(key(env, "worker_id"), worker.map(|w| w.id.as_str()))
        .and_then(|m| m.map_put(key(env, "os_pid"), worker.and_then(|w| w.os_pid())))
        .and_then(|m| m.map_put(key(env, "affinity"), Affinity::from(info.affinity)))
        .and_then(|m| m.map_put(key(env, "idle_ms"), idle_ms))
        .unwrap()
}

fn key<'a>(env: Env<'a>, name: &str) -> Term<'a> {
    rustler::Atom::from_str(env, name).unwrap().encode(env)
}
