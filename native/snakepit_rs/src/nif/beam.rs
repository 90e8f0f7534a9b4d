//! BEAM worker NIFs, called by `Snakepit.BeamWorker` (ready, reply) and by the pool's owner
//! (exit); see `beam.rs`.

use rustler::{Atom, Env, NifResult, Term};

use snakepit_protocol::reply::WorkerError;

use crate::atoms;
use crate::beam::{self, Answer};
use crate::pool::PoolRef;

/// The calling process, BEAM worker `uid`, ran its adapter's `init/1`: `:ok` (installed; it
/// gets requests) or `:not_wanted` (it must exit).
#[rustler::nif]
fn beam_worker_ready(env: Env, pool: PoolRef, uid: u64) -> Atom {
    if beam::ready(&pool, env, uid) {
        atoms::ok()
    } else {
        atoms::not_wanted()
    }
}

/// The calling process, BEAM worker `uid` of `slot`, answers request `id` with `{:ok, result}`
/// or `{:error, {type, message, traceback | nil}}`. The result reaches the caller as it is.
#[rustler::nif]
fn beam_worker_reply<'a>(
    env: Env<'a>,
    pool: PoolRef,
    slot: usize,
    uid: u64,
    id: u64,
    answer: Term<'a>,
) -> NifResult<Atom> {
    let answer = match answer.decode::<(Atom, Term<'a>)>()? {
        (ok, result) if ok == atoms::ok() => Answer::Ok(result),
        (error, details) if error == atoms::error() => {
            let (kind, message, traceback) =
                details.decode::<(String, String, Option<String>)>()?;
            Answer::Error(WorkerError {
                kind,
                message,
                traceback,
            })
        }
        _ => return Err(rustler::Error::BadArg),
    };
    beam::reply(&pool, env, slot, uid, id, answer);
    Ok(atoms::ok())
}

/// The calling process, the pool's owner, saw BEAM worker `uid` exit; `exit` says how.
#[rustler::nif]
fn beam_worker_exit(env: Env, pool: PoolRef, uid: u64, exit: String) -> Atom {
    beam::exited(&pool, env, uid, exit);
    atoms::ok()
}
