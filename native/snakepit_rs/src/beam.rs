//! Workers that are BEAM processes: an Elixir adapter implementing `execute/3` runs in one
//! `Snakepit.BeamWorker` process per slot, and the same core serves it as it serves OS workers
//! (queue, timeouts, cancel and kill, health checks, recycling, stats).
//!
//! Life of one: the supervisor asks the pool's owner to spawn it (`{:snakepit_beam, {:start,
//! slot, uid, id}}`); the process runs the adapter's `init/1` and calls `beam_worker_ready`,
//! which installs it in the core from that very call — so its exit, which the owner reports
//! (`beam_worker_exit`) once the process is gone, always comes after its installation.
//! Requests, cancels and health checks reach it as messages; it answers through
//! `beam_worker_reply`, which completes the request in the core and sends the caller its reply
//! from the worker's own environment (a NIF call on a scheduler thread: `enif_send` with the
//! caller's environment, never an owned one). A NIF cannot send an exit signal, so the owner
//! kills it when the core says so.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rustler::{Binary, Encoder, Env, LocalPid, NewBinary, Term};
use tokio::sync::oneshot;

use snakepit_core::{Completed, Removed, Send};
use snakepit_protocol::reply::WorkerError;

use crate::atoms;
use crate::deliver;
use crate::error::PoolError;
use crate::pool::PoolRef;
use crate::reply::Finish;
use crate::worker::{worker_id, WorkerHandle};

/// Length of a frame's header, which a BEAM worker does not need.
const FRAME_HEADER: usize = 4;

/// A BEAM worker's process, and the owner that kills it.
pub struct BeamProcess {
    pid: LocalPid,
    owner: LocalPid,
    uid: u64,
}

impl BeamProcess {
    pub fn pid(&self) -> LocalPid {
        self.pid
    }

    /// `{:snakepit_request, json}` (the request's JSON object, as an OS worker reads it),
    /// `{:snakepit_cancel, id}` or `{:snakepit_health_check, id}`.
    pub fn send(&self, env: Option<Env>, send: Send) {
        match send {
            Send::Frame(frame) => deliver::send(env, &self.pid, move |env| {
                let json = frame.get(FRAME_HEADER..).unwrap_or_default();
                let mut binary = NewBinary::new(env, json.len());
                binary.as_mut_slice().copy_from_slice(json);
                let binary: Binary = binary.into();
                (atoms::snakepit_request(), binary).encode(env)
            }),
            Send::Cancel(id) => deliver::send(env, &self.pid, move |env| {
                (atoms::snakepit_cancel(), id).encode(env)
            }),
            Send::HealthCheck(id) => deliver::send(env, &self.pid, move |env| {
                (atoms::snakepit_health_check(), id).encode(env)
            }),
            // A BEAM worker never streams (its pool refuses streams), so it gets no credit.
            Send::Credit(..) => {}
        }
    }

    /// `:snakepit_close`: the worker runs the adapter's `terminate/2` and exits.
    pub fn close(&self, env: Option<Env>) {
        deliver::send(env, &self.pid, |env| atoms::snakepit_close().encode(env));
    }

    /// Asks the owner to kill the worker.
    pub fn kill(&self, env: Option<Env>) {
        kill(env, &self.owner, self.uid);
    }
}

/// `{:snakepit_beam, {:kill, uid}}` to the owner, which knows the process by its uid (also
/// before it is ready).
fn kill(env: Option<Env>, owner: &LocalPid, uid: u64) {
    deliver::send(env, owner, move |env| {
        (atoms::snakepit_beam(), (atoms::kill(), uid)).encode(env)
    });
}

/// The pool's BEAM workers by uid, from the request to start one until its exit. Empty for a
/// pool of OS workers.
#[derive(Default)]
pub struct BeamWorkers {
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    entries: HashMap<u64, Entry>,
    /// Stop has begun: nothing starts any more.
    closed: bool,
}

enum Entry {
    /// Asked of the owner; its starter waits on `ready`.
    Starting {
        slot: usize,
        id: String,
        ready: oneshot::Sender<Result<Arc<WorkerHandle>, String>>,
    },
    /// Installed in the core (or being installed, by its `beam_worker_ready` call).
    Up {
        slot: usize,
        handle: Arc<WorkerHandle>,
    },
}

impl BeamWorkers {
    /// Stop has begun: returns the workers to ask to exit. Starters still waiting are told.
    pub fn close(&self) -> Vec<Arc<WorkerHandle>> {
        let mut table = self.table.lock();
        table.closed = true;
        // Dropping a `Starting` entry's sender tells its starter.
        table
            .entries
            .retain(|_, entry| matches!(entry, Entry::Up { .. }));
        table
            .entries
            .values()
            .filter_map(|entry| match entry {
                Entry::Up { handle, .. } => Some(Arc::clone(handle)),
                Entry::Starting { .. } => None,
            })
            .collect()
    }

    fn remove(&self, uid: u64) -> Option<Entry> {
        self.table.lock().entries.remove(&uid)
    }

    /// A start ran out of time: forgets the worker unless it was installed meanwhile.
    fn give_up(&self, uid: u64) -> Option<Arc<WorkerHandle>> {
        let mut table = self.table.lock();
        match table.entries.get(&uid) {
            Some(Entry::Up { handle, .. }) => Some(Arc::clone(handle)),
            _ => {
                table.entries.remove(&uid);
                None
            }
        }
    }
}

/// Starts a BEAM worker in `slot` and waits, at most the pool's `startup_timeout`, until it is
/// installed in the core. A worker that is not ready in time is killed.
pub async fn start(pool: &PoolRef, slot: usize, uid: u64) -> Result<Arc<WorkerHandle>, String> {
    let id = worker_id(&pool.config, uid);
    let stopping = || format!("worker {id} not started: the pool is stopping");
    let (ready, installed) = oneshot::channel();
    {
        let mut table = pool.beam.table.lock();
        if table.closed {
            return Err(stopping());
        }
        let entry = Entry::Starting {
            slot,
            id: id.clone(),
            ready,
        };
        table.entries.insert(uid, entry);
    }
    let owner = pool.owner.pid();
    let start_id = id.clone();
    deliver::send(None, &owner, move |env| {
        let start = (atoms::start(), slot, uid, start_id.as_str());
        (atoms::snakepit_beam(), start).encode(env)
    });
    let startup = Duration::from_millis(pool.config.startup_timeout_ms);
    match tokio::time::timeout(startup, installed).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(stopping()),
        // Installed at the last moment: kept.
        Err(_) => pool.beam.give_up(uid).ok_or_else(|| {
            kill(None, &owner, uid);
            format!(
                "worker {id} failed to start: not ready within {} ms (:startup_timeout)",
                pool.config.startup_timeout_ms
            )
        }),
    }
}

/// BEAM worker `uid` finished its `init/1` (it is the calling process): installs it in the
/// core. False when it is not wanted (its start was given up, or the pool is stopping): the
/// worker then exits.
pub fn ready(pool: &PoolRef, env: Env, uid: u64) -> bool {
    let promoted = {
        let mut table = pool.beam.table.lock();
        let closed = table.closed;
        match table.entries.remove(&uid) {
            Some(Entry::Starting { slot, id, ready }) if !closed => {
                let process = BeamProcess {
                    pid: env.pid(),
                    owner: pool.owner.pid(),
                    uid,
                };
                let handle = Arc::new(WorkerHandle::beam(uid, id, process));
                let up = Entry::Up {
                    slot,
                    handle: Arc::clone(&handle),
                };
                table.entries.insert(uid, up);
                Some((slot, handle, ready))
            }
            _ => None,
        }
    };
    let Some((slot, handle, ready)) = promoted else {
        return false;
    };
    match pool.worker_up(slot, &handle, Some(env)) {
        Ok(()) => {
            let _ = ready.send(Ok(handle));
            true
        }
        Err(_not_wanted) => {
            pool.beam.remove(uid);
            let _ = ready.send(Err(format!(
                "worker {} not started: the pool is stopping",
                handle.id
            )));
            false
        }
    }
}

/// What a BEAM worker answered.
pub enum Answer<'a> {
    Ok(Term<'a>),
    Error(WorkerError),
}

/// BEAM worker `uid` of `slot` (the calling process) answered request `id`: the same steps as
/// a reader thread's (`reader.rs`), with the reply sent from the worker's environment.
pub fn reply<'a>(pool: &PoolRef, env: Env<'a>, slot: usize, uid: u64, id: u64, answer: Answer<'a>) {
    let failed = matches!(answer, Answer::Error(_));
    match pool.on_reply(slot, uid, id, failed, Some(env)) {
        Completed::Request(None) | Completed::Stale | Completed::HealthCheck { ok: true } => {}
        Completed::Request(Some((reply_to, timings))) => {
            let outcome = match answer {
                Answer::Ok(result) => (atoms::ok(), result).encode(env),
                Answer::Error(error) => {
                    let error = PoolError::from_worker(error);
                    (atoms::error(), error.to_term(env)).encode(env)
                }
            };
            let worker_id = worker_id(&pool.config, uid);
            let finish = Finish::new(Some(&worker_id), timings);
            reply_to.send_from(env, &pool.spares, outcome, finish);
        }
        // Not what it runs: broken, like an OS worker breaking the protocol.
        Completed::HealthCheck { ok: false } | Completed::Unexpected(_) => {
            kill(Some(env), &pool.owner.pid(), uid);
        }
    }
}

/// The owner saw BEAM worker `uid` exit (`exit` says how); the calling process is the owner.
pub fn exited(pool: &PoolRef, env: Env, uid: u64, exit: String) {
    match pool.beam.remove(uid) {
        Some(Entry::Starting { id, ready, .. }) => {
            let _ = ready.send(Err(format!("worker {id} failed to start: {exit}")));
        }
        Some(Entry::Up { slot, handle }) => {
            let id = handle.id.clone();
            let loss = PoolError::WorkerCrashed {
                worker_id: id.clone(),
                exit: exit.clone(),
            };
            let owner = pool.owner.pid();
            match pool.worker_down(slot, uid, loss, Some(env)) {
                Removed::Crashed => deliver::send(Some(env), &owner, move |env| {
                    let event = (
                        atoms::worker_exit(),
                        id.as_str(),
                        atoms::nil(),
                        exit.as_str(),
                    );
                    (atoms::snakepit_event(), event).encode(env)
                }),
                Removed::Retired => deliver::send(Some(env), &owner, move |env| {
                    let event = (atoms::worker_retired(), id.as_str(), atoms::nil());
                    (atoms::snakepit_event(), event).encode(env)
                }),
                Removed::NotInstalled | Removed::Stopping => {}
            }
        }
        None => {}
    }
}
