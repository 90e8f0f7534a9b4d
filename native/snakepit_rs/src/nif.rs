//! The NIF entry points (`Snakepit.Native`). Each is thin: decode, call the pool, encode.

use std::sync::Arc;
use std::time::Duration;

use rustler::{Binary, Encoder, Env, LocalPid, NifResult, ResourceArc, Term};

use crate::atoms;
use crate::config::PoolConfig;
use crate::lifecycle::start_pool;
use crate::pool::{Deadline, Pool, SlotStatus};
use crate::resource::PoolResource;
use crate::runtime::runtime;

/// Creates a pool and starts its workers in the background. The owner receives
/// `{:snakepit_event, {:ready, n}}` or `{:snakepit_event, {:start_failed, message}}`.
#[rustler::nif]
fn pool_start(env: Env, config: PoolConfig, owner: LocalPid) -> NifResult<Term> {
    if config.size == 0 {
        return Err(rustler::Error::BadArg);
    }
    let pool = Pool::new(config, owner);
    let resource = ResourceArc::new(PoolResource {
        pool: Arc::clone(&pool),
        owner,
    });
    pool.set_resource(resource.clone());
    // However the owner dies, the workers stop (see `PoolResource::down`).
    env.monitor(&resource, &owner);
    runtime().spawn(start_pool(pool));
    Ok(resource.encode(env))
}

/// Submits a request; the outcome arrives as `{tag, {:ok_json, json} | {:ok, nil} | {:error,
/// {reason, msg, details}}}`. Returns `{:ok, request_id}` or `{:error, {reason, msg, details}}`
/// at once.
#[rustler::nif]
fn pool_submit<'a>(
    env: Env<'a>,
    resource: ResourceArc<PoolResource>,
    tag: Term<'a>,
    command: &str,
    request_args: Term<'a>,
    session_id: Option<&str>,
    timeout_ms: u64,
) -> Term<'a> {
    submit(
        env,
        &resource,
        tag,
        command,
        request_args,
        session_id,
        timeout_ms,
    )
}

/// `pool_submit/6` for args large enough that encoding them may outlast a scheduler slice.
#[rustler::nif(schedule = "DirtyCpu")]
fn pool_submit_dirty<'a>(
    env: Env<'a>,
    resource: ResourceArc<PoolResource>,
    tag: Term<'a>,
    command: &str,
    request_args: Term<'a>,
    session_id: Option<&str>,
    timeout_ms: u64,
) -> Term<'a> {
    submit(
        env,
        &resource,
        tag,
        command,
        request_args,
        session_id,
        timeout_ms,
    )
}

fn submit<'a>(
    env: Env<'a>,
    resource: &ResourceArc<PoolResource>,
    tag: Term<'a>,
    command: &str,
    args: Term<'a>,
    session_id: Option<&str>,
    timeout_ms: u64,
) -> Term<'a> {
    let caller = env.pid();
    let monitor_caller = || env.monitor(resource, &caller);
    match resource.pool.submit(
        caller,
        tag,
        command,
        args,
        session_id,
        timeout_ms,
        monitor_caller,
    ) {
        Ok(id) => (atoms::ok(), id).encode(env),
        Err(error) => (atoms::error(), error.to_term(env)).encode(env),
    }
}

/// `{:wait, ms}`, `{:expired, {reason, msg, details}}` (withdrawn; no reply will come) or
/// `:replied` (the reply is in or on its way to the caller's mailbox).
#[rustler::nif]
fn pool_check_deadline(env: Env, resource: ResourceArc<PoolResource>, request_id: u64) -> Term {
    match resource.pool.check_deadline(env, request_id) {
        Deadline::Wait(ms) => (atoms::wait(), ms).encode(env),
        Deadline::Expired(error) => (atoms::expired(), error.to_term(env)).encode(env),
        Deadline::Replied => atoms::replied().encode(env),
    }
}

#[rustler::nif]
fn pool_stats(env: Env, resource: ResourceArc<PoolResource>) -> Term {
    use std::sync::atomic::Ordering::Relaxed;
    let pool = &resource.pool;
    let c = &pool.counters;
    let (workers, available, busy, queued) = pool.occupancy();
    let completed = c.completed.load(Relaxed);
    let avg_ms = if completed == 0 {
        0.0
    } else {
        c.response_micros.load(Relaxed) as f64 / completed as f64 / 1000.0
    };
    let counts = [
        ("workers", workers as u64),
        ("available", available as u64),
        ("busy", busy as u64),
        ("queued", queued as u64),
        ("requests", c.requests.load(Relaxed)),
        ("completed", completed),
        ("errors", c.errors.load(Relaxed)),
        ("queue_timeouts", c.queue_timeouts.load(Relaxed)),
        ("pool_saturated", c.pool_saturated.load(Relaxed)),
        ("timeouts", c.timeouts.load(Relaxed)),
        ("worker_crashes", c.worker_crashes.load(Relaxed)),
        ("worker_starts", c.worker_starts.load(Relaxed)),
        (
            "worker_start_failures",
            c.worker_start_failures.load(Relaxed),
        ),
        ("workers_killed", c.workers_killed.load(Relaxed)),
        ("worker_recycles", c.worker_recycles.load(Relaxed)),
        ("health_checks", c.health_checks.load(Relaxed)),
        ("callers_gone", c.callers_gone.load(Relaxed)),
    ];
    let mut stats = Term::map_new(env);
    for (key, value) in counts {
        stats = stats.map_put(atom(env, key), value).unwrap();
    }
    stats
        .map_put(atom(env, "avg_response_time_ms"), avg_ms)
        .and_then(|m| m.map_put(atom(env, "circuit_open"), pool.circuit_open()))
        .unwrap()
}

fn atom<'a>(env: Env<'a>, name: &str) -> Term<'a> {
    rustler::Atom::from_str(env, name).unwrap().encode(env)
}

#[rustler::nif]
fn pool_workers(env: Env, resource: ResourceArc<PoolResource>) -> Term {
    let workers: Vec<Term> = resource
        .pool
        .workers()
        .into_iter()
        .map(|worker| {
            let status = match worker.status {
                SlotStatus::Idle => atoms::available(),
                SlotStatus::Busy => atoms::busy(),
                SlotStatus::Starting | SlotStatus::Vacant => atoms::starting(),
                SlotStatus::Draining => atoms::draining(),
            };
            Term::map_new(env)
                .map_put(rustler::Atom::from_str(env, "id").unwrap(), worker.id)
                .and_then(|m| {
                    m.map_put(
                        rustler::Atom::from_str(env, "os_pid").unwrap(),
                        worker.os_pid,
                    )
                })
                .and_then(|m| m.map_put(rustler::Atom::from_str(env, "status").unwrap(), status))
                .and_then(|m| {
                    m.map_put(
                        rustler::Atom::from_str(env, "requests").unwrap(),
                        worker.requests,
                    )
                })
                .unwrap()
        })
        .collect();
    workers.encode(env)
}

/// OS pids of every worker process not yet reaped (including ones still starting).
#[rustler::nif]
fn pool_os_pids(resource: ResourceArc<PoolResource>) -> Vec<u32> {
    resource.pool.processes().iter().map(|w| w.os_pid).collect()
}

/// Stops the pool: fails pending work with `:pool_shutdown`, SIGTERM, grace period, SIGKILL.
/// Returns when every worker has been reaped.
#[rustler::nif(schedule = "DirtyIo")]
fn pool_stop(env: Env, resource: ResourceArc<PoolResource>) -> rustler::Atom {
    let pool = &resource.pool;
    pool.begin_stop(Some(env));
    pool.await_stopped(Duration::from_millis(pool.config.shutdown_grace_ms));
    atoms::ok()
}

/// Encodes a term as the JSON a worker would receive (for tests of the codec).
#[rustler::nif]
fn codec_to_json<'a>(env: Env<'a>, term: Term<'a>) -> Term<'a> {
    let mut out = Vec::new();
    match crate::codec::JsonWriter::new(&mut out, "args").write(term) {
        Ok(()) => (atoms::ok(), String::from_utf8(out).unwrap()).encode(env),
        Err(error) => (atoms::error(), error.to_string()).encode(env),
    }
}

/// Decodes a worker's JSON result in the caller's process: `{:ok, term}`, or
/// `{:error, {:invalid_result, message, %{}}}` when it cannot become a term (nested deeper than
/// `codec::MAX_DEPTH`, not JSON, a lone surrogate).
#[rustler::nif]
fn json_decode<'a>(env: Env<'a>, json: Binary<'a>) -> Term<'a> {
    decode_json(env, json)
}

/// `json_decode/1` for large results, which may take longer than a scheduler slice.
#[rustler::nif(schedule = "DirtyCpu")]
fn json_decode_dirty<'a>(env: Env<'a>, json: Binary<'a>) -> Term<'a> {
    decode_json(env, json)
}

fn decode_json<'a>(env: Env<'a>, json: Binary<'a>) -> Term<'a> {
    match crate::codec::json_to_term(env, json.as_slice()) {
        Ok(term) => (atoms::ok(), term).encode(env),
        Err(error) => {
            let error = (
                atoms::invalid_result(),
                error.to_string(),
                Term::map_new(env),
            );
            (atoms::error(), error).encode(env)
        }
    }
}
