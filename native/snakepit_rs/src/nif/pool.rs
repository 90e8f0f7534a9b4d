//! Pool life cycle and introspection NIFs.

use std::time::{Duration, Instant};

use rustler::{Encoder, Env, LocalPid, NifResult, ResourceArc, Term};

use snakepit_core::{Outcome, Percentiles, SlotStatus};

use crate::atoms;
use crate::config::PoolConfig;
use crate::pool::{Pool, PoolRef};

/// Creates a pool and starts its workers in the background. The owner receives
/// `{:snakepit_event, {:ready, n}}` or `{:snakepit_event, {:start_failed, message}}`.
#[rustler::nif]
fn pool_start(env: Env, config: PoolConfig, owner: LocalPid) -> NifResult<Term> {
    if config.size == 0 {
        return Err(rustler::Error::BadArg);
    }
    let (pool, jobs) = Pool::new(config, owner);
    let pool = ResourceArc::new(pool);
    // However the owner dies, the workers stop (see `resource.rs`).
    if env.monitor(&pool, &owner).is_none() {
        pool.begin_stop(Some(env));
        return Err(rustler::Error::BadArg);
    }
    crate::supervisor::start(pool.clone(), jobs);
    Ok(pool.encode(env))
}

/// Stops the pool: fails pending work with `:pool_shutdown`, SIGTERM, grace period, SIGKILL.
/// Returns when every worker has been reaped.
#[rustler::nif(schedule = "DirtyIo")]
fn pool_stop(env: Env, pool: PoolRef) -> rustler::Atom {
    pool.begin_stop(Some(env));
    pool.processes
        .await_gone(Duration::from_millis(pool.config.shutdown_grace_ms));
    atoms::ok()
}

/// Counters and occupancy, from one snapshot of the core (see `Snakepit.get_stats/1`).
#[rustler::nif]
fn pool_stats(env: Env, pool: PoolRef) -> Term {
    let stats = pool.stats();
    let c = &stats.counters;
    let answered = c.outcome(Outcome::Completed) + c.outcome(Outcome::WorkerError);
    let avg_ms = if answered == 0 {
        0.0
    } else {
        c.response_time.as_secs_f64() * 1000.0 / answered as f64
    };
    let counts = [
        ("workers", stats.workers as u64),
        ("available", stats.available as u64),
        ("busy", stats.busy as u64),
        ("queued", stats.queued as u64),
        ("in_flight", stats.in_flight as u64),
        ("requests", c.requests),
        ("completed", c.outcome(Outcome::Completed)),
        ("errors", c.errors()),
        ("worker_errors", c.outcome(Outcome::WorkerError)),
        ("timeouts", c.outcome(Outcome::Timeout)),
        ("queue_timeouts", c.outcome(Outcome::QueueTimeout)),
        ("requests_lost", c.outcome(Outcome::Lost)),
        ("shutdown_errors", c.outcome(Outcome::Shutdown)),
        ("circuit_errors", c.outcome(Outcome::CircuitOpen)),
        ("callers_gone", c.outcome(Outcome::CallerGone)),
        ("halted", c.outcome(Outcome::Halted)),
        ("streams", c.streams),
        ("chunks", c.chunks),
        ("session_worker_lost", c.outcome(Outcome::SessionWorkerGone)),
        ("pool_saturated", c.pool_saturated),
        ("circuit_rejections", c.circuit_rejections),
        ("worker_busy", c.worker_busy),
        ("session_worker_unavailable", c.session_worker_unavailable),
        ("sessions", stats.sessions as u64),
        ("worker_crashes", c.worker_crashes),
        ("worker_starts", c.worker_starts),
        ("worker_start_failures", c.worker_start_failures),
        ("workers_killed", c.workers_killed),
        ("worker_recycles", c.worker_recycles),
        ("health_checks", c.health_checks),
    ];
    let mut map = Term::map_new(env);
    for (key, value) in counts {
        map = map.map_put(atom(env, key), value).unwrap();
    }
    // Every accepted request that has its outcome.
    let finished: u64 = c.outcomes.iter().sum();
    let error_rate = if finished == 0 {
        0.0
    } else {
        c.errors() as f64 / finished as f64
    };
    map.map_put(atom(env, "avg_response_time_ms"), avg_ms)
        .and_then(|m| m.map_put(atom(env, "circuit_open"), stats.circuit_open))
        .and_then(|m| m.map_put(atom(env, "error_rate"), error_rate))
        .and_then(|m| {
            m.map_put(
                atom(env, "queue_time_ms"),
                percentiles(env, c.queue_percentiles()),
            )
        })
        .and_then(|m| {
            m.map_put(
                atom(env, "run_time_ms"),
                percentiles(env, c.run_percentiles()),
            )
        })
        .unwrap()
}

/// `%{p50: ms, p95: ms, p99: ms, samples: n}` (floats in milliseconds).
fn percentiles(env: Env, window: Percentiles) -> Term {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Term::map_new(env)
        .map_put(atom(env, "p50"), ms(window.p50))
        .and_then(|m| m.map_put(atom(env, "p95"), ms(window.p95)))
        .and_then(|m| m.map_put(atom(env, "p99"), ms(window.p99)))
        .and_then(|m| m.map_put(atom(env, "samples"), window.samples))
        .unwrap()
}

/// One map per slot in use: `id`, `os_pid`, `status`, `requests`, `errors`,
/// `last_used_ms_ago`, `uptime_ms`, `memory_rss_bytes`, and `pid` for a BEAM worker. Memory is
/// read from /proc after the pool's lock is released, so it never delays a request.
#[rustler::nif(schedule = "DirtyIo")]
fn pool_workers(env: Env, pool: PoolRef) -> Term {
    let now = Instant::now();
    let ms_since = |at: Instant| now.saturating_duration_since(at).as_millis() as u64;
    let workers: Vec<Term> = pool
        .workers()
        .into_iter()
        .map(|info| {
            let status = match info.status {
                SlotStatus::Idle => atoms::available(),
                SlotStatus::Busy => atoms::busy(),
                SlotStatus::Starting | SlotStatus::Waiting | SlotStatus::Vacant => {
                    atoms::starting()
                }
                SlotStatus::Draining => atoms::draining(),
            };
            let worker = info.worker.as_ref();
            let map = Term::map_new(env)
                .map_put(atom(env, "id"), worker.map(|w| w.id.as_str()))
                .and_then(|m| m.map_put(atom(env, "os_pid"), worker.and_then(|w| w.os_pid())))
                .and_then(|m| m.map_put(atom(env, "status"), status))
                .and_then(|m| m.map_put(atom(env, "requests"), info.requests))
                .and_then(|m| m.map_put(atom(env, "errors"), info.errors))
                .and_then(|m| {
                    let ago = info.last_used.map(ms_since);
                    m.map_put(atom(env, "last_used_ms_ago"), ago)
                })
                .and_then(|m| m.map_put(atom(env, "uptime_ms"), ms_since(info.installed)))
                .and_then(|m| {
                    let rss = worker.and_then(|w| w.os_pid()).and_then(rss_bytes);
                    m.map_put(atom(env, "memory_rss_bytes"), rss)
                })
                .unwrap();
            // A BEAM worker (os_pid nil) also gives its process.
            match worker.and_then(|w| w.beam_pid()) {
                Some(pid) => map.map_put(atom(env, "pid"), pid).unwrap(),
                None => map,
            }
        })
        .collect();
    workers.encode(env)
}

/// OS pids of every worker process not yet reaped (including ones still starting).
#[rustler::nif]
fn pool_os_pids(pool: PoolRef) -> Vec<u32> {
    pool.processes
        .snapshot()
        .iter()
        .filter_map(|w| w.os_pid())
        .collect()
}

/// The resident set size of OS process `pid` (/proc/<pid>/statm: pages), or `None` when it
/// cannot be read (gone, or not Linux).
fn rss_bytes(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page_size).ok()?)
}

fn atom<'a>(env: Env<'a>, name: &str) -> Term<'a> {
    rustler::Atom::from_str(env, name).unwrap().encode(env)
}
