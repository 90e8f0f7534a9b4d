//! The pool's supervisor: one task per pool that starts workers when the core asks for them
//! (first starts, replacements, recycling, retries after back-off), removes callers that died
//! while queued, stops the pool when its owner dies, and runs the core's timer — sleeping until
//! the next deadline the core reports instead of polling.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rustler::Encoder;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::oneshot;

use crate::atoms;
use crate::pool::{Job, PoolRef};
use crate::reader::{Reader, Startup};
use crate::runtime::{on_spawner_thread, runtime};
use crate::worker::{self, Spawned};

/// Worker uids are unique in the BEAM run, across pools.
static NEXT_WORKER_UID: AtomicU64 = AtomicU64::new(1);

/// Starts the supervisor of `pool`, which takes its jobs from `jobs`.
pub fn start(pool: PoolRef, jobs: UnboundedReceiver<Job>) {
    runtime().spawn(supervise(pool, jobs));
}

async fn supervise(pool: PoolRef, mut jobs: UnboundedReceiver<Job>) {
    let mut next: Option<Instant> = pool.tick();
    loop {
        let timer = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        // A wake-up (an earlier deadline appeared) and the timer both lead to a tick, which
        // reports the next deadline; jobs are handled as they come.
        tokio::select! {
            job = jobs.recv() => match job {
                Some(Job::Start(slot)) => {
                    tokio::spawn(start_worker(pool.clone(), slot));
                    continue;
                }
                Some(Job::CallerDown(monitor)) => {
                    pool.caller_down(monitor);
                    continue;
                }
                Some(Job::OwnerDown) => {
                    let pool = pool.clone();
                    runtime().spawn_blocking(move || stop(&pool));
                    return;
                }
                Some(Job::Stop) | None => return,
            },
            _ = pool.timer.notified() => {}
            _ = timer => {}
        }
        next = pool.tick();
    }
}

/// Stops the pool and waits for its workers (blocking).
pub fn stop(pool: &PoolRef) {
    pool.begin_stop(None);
    pool.processes
        .await_gone(Duration::from_millis(pool.config.shutdown_grace_ms));
}

/// Starts one worker for `slot`: has the owner spawn a BEAM worker (`beam.rs`), which installs
/// itself with its `beam_worker_ready` call, or spawns an OS process whose reader thread reads
/// the handshake and tells the pool the outcome — installed, or failed — so that a worker's
/// start and its end are reported in order, by one thread. This task only enforces the startup
/// timeout.
async fn start_worker(pool: PoolRef, slot: usize) {
    let uid = NEXT_WORKER_UID.fetch_add(1, Relaxed);
    if pool.config.beam {
        match crate::beam::start(&pool, slot, uid).await {
            Ok(handle) => {
                let (id, os_pid) = (handle.id.clone(), handle.os_pid());
                pool.owner
                    .event(|env| (atoms::worker_ready(), id.as_str(), os_pid).encode(env));
            }
            Err(message) => crate::reader::report_start_failure(&pool, slot, &message),
        }
    } else if let Err(message) = spawn_worker(&pool, slot, uid).await {
        crate::reader::report_start_failure(&pool, slot, &message);
    }
}

async fn spawn_worker(pool: &PoolRef, slot: usize, uid: u64) -> Result<(), String> {
    let config = pool.config.clone();
    let Spawned {
        handle,
        os_pid,
        child,
        replies,
        stdout,
        stderr,
    } = on_spawner_thread(move || worker::spawn(&config, uid))
        .await
        .map_err(|error| {
            format!(
                "cannot start worker program {:?}: {error}",
                pool.config.executable
            )
        })?;
    if !pool.processes.track(&handle) {
        handle.kill(None);
    }
    crate::output::forward(pool, &handle, stdout, false);
    crate::output::forward(pool, &handle, stderr, true);

    let (handshaken, handshake_seen) = oneshot::channel();
    let failure = Arc::new(OnceLock::new());
    let reader = Reader {
        pool: pool.clone(),
        slot,
        handle: Arc::clone(&handle),
        startup: Some(Startup {
            handshaken,
            failure: Arc::clone(&failure),
        }),
        os_pid,
    };
    let spawned = std::thread::Builder::new()
        .name(format!("snakepit-{}", handle.uid))
        .spawn(move || reader.run(replies, child));
    if let Err(error) = spawned {
        // No reader to reap it: kill it here (the BEAM reaps its children itself).
        handle.kill(None);
        pool.processes.untrack(&handle);
        return Err(format!("cannot start a reader thread: {error}"));
    }
    let startup = Duration::from_millis(pool.config.startup_timeout_ms);
    if tokio::time::timeout(startup, handshake_seen).await.is_err() {
        // The reader reports the failure once the worker is gone.
        let _ = failure.set(format!(
            "worker sent no handshake within {} ms",
            pool.config.startup_timeout_ms
        ));
        handle.kill(None);
    }
    Ok(())
}
