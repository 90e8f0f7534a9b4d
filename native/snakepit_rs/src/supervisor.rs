//! The pool's supervisor: one task per pool that starts workers when the core asks for them
//! (first starts, replacements, recycling, retries after back-off), removes callers that died
//! while queued, stops the pool when its owner dies, and runs the core's timer — sleeping until
//! the next deadline the core reports instead of polling.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustler::Encoder;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::oneshot;

use crate::atoms;
use crate::pool::{Job, PoolRef};
use crate::runtime::{on_spawner_thread, runtime};
use crate::worker::{self, Spawned, WorkerHandle};

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

/// Starts one worker for `slot` — spawns an OS process and waits for its handshake, or has the
/// owner spawn a BEAM worker (`beam.rs`) — and installs it; a failure goes to the core, which
/// schedules the retry.
async fn start_worker(pool: PoolRef, slot: usize) {
    let uid = NEXT_WORKER_UID.fetch_add(1, Relaxed);
    let started = if pool.config.beam {
        // Installed by the worker's own `beam_worker_ready` call.
        crate::beam::start(&pool, slot, uid).await.map(Some)
    } else {
        spawn_and_handshake(&pool, slot, uid).await.map(|handle| {
            match pool.worker_up(slot, &handle, None) {
                Ok(()) => Some(handle),
                Err(_) => {
                    handle.kill(None);
                    None
                }
            }
        })
    };
    match started {
        Ok(Some(handle)) => {
            let (id, os_pid) = (handle.id.clone(), handle.os_pid());
            pool.owner
                .event(|env| (atoms::worker_ready(), id.as_str(), os_pid).encode(env));
        }
        Ok(None) => {}
        Err(message) => {
            pool.start_failed(slot, &message);
            pool.owner
                .event(|env| (atoms::worker_start_failed(), message.as_str()).encode(env));
        }
    }
}

async fn spawn_and_handshake(
    pool: &PoolRef,
    slot: usize,
    uid: u64,
) -> Result<Arc<WorkerHandle>, String> {
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

    let (ready_tx, ready_rx) = oneshot::channel();
    let reader = crate::reader::Reader {
        pool: pool.clone(),
        slot,
        handle: Arc::clone(&handle),
        os_pid,
    };
    let spawned = std::thread::Builder::new()
        .name(format!("snakepit-{}", handle.uid))
        .spawn(move || reader.run(replies, child, ready_tx));
    if let Err(error) = spawned {
        // No reader to reap it: kill it here (the BEAM reaps its children itself).
        handle.kill(None);
        pool.processes.untrack(&handle);
        return Err(format!("cannot start a reader thread: {error}"));
    }

    let startup = Duration::from_millis(pool.config.startup_timeout_ms);
    let outcome = match tokio::time::timeout(startup, ready_rx).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => Err("worker exited before its handshake".to_string()),
        Err(_) => Err(format!(
            "worker sent no handshake within {} ms",
            pool.config.startup_timeout_ms
        )),
    };
    match outcome {
        Ok(()) => Ok(handle),
        Err(message) => {
            handle.kill(None);
            Err(format!("worker {} failed to start: {message}", handle.id))
        }
    }
}
