//! Starting, watching and replacing workers.
//!
//! Each worker gets a dedicated reader thread (blocking reads on its reply pipe: the fewest hops
//! between a reply and the caller) that also reaps the process when the pipe closes. Start-up,
//! handshake deadlines, replacement back-off and log forwarding run on the tokio runtime.

use std::io::ErrorKind;
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use rustler::{Encoder, OwnedEnv};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::unix::pipe;
use tokio::sync::oneshot;

use crate::atoms;
use crate::error::PoolError;
use crate::pool::{Completed, Phase, Pool, Removed, Retiring};
use crate::runtime::{on_spawner_thread, runtime};
use crate::worker::{self, Spawned, WorkerHandle};
use snakepit_protocol::frame::FrameDecoder;
use snakepit_protocol::message::{parse_reply, Handshake, Reply, PROTOCOL_VERSION};

/// Worker uids are unique in the BEAM run, across pools.
static NEXT_WORKER_UID: AtomicU64 = AtomicU64::new(1);

/// Longest stdout/stderr line forwarded whole; longer ones are cut.
const MAX_LOG_LINE: usize = 16 * 1024;

/// Starts every slot's worker concurrently; the pool is ready when the slowest is.
pub async fn start_pool(pool: Arc<Pool>) {
    runtime().spawn(sweep(Arc::clone(&pool)));
    let starts = (0..pool.slot_count()).map(|slot| {
        let pool = Arc::clone(&pool);
        tokio::spawn(async move { (slot, start_worker(&pool, slot, None).await) })
    });
    let mut failed = Vec::new();
    let mut errors = Vec::new();
    for start in futures_join(starts).await {
        match start {
            (_, Ok(())) => {}
            (slot, Err(error)) => {
                failed.push(slot);
                errors.push(error);
            }
        }
    }
    let started = pool.slot_count() - failed.len();
    match pool.finish_start(started) {
        Phase::Running => {
            pool.owner
                .event(|env| (atoms::ready(), started).encode(env));
            for slot in failed {
                runtime().spawn(keep_slot_filled(Arc::clone(&pool), slot, 1, None));
            }
        }
        Phase::Failed => {
            let message = errors.first().cloned().unwrap_or_default();
            pool.owner
                .event(|env| (atoms::start_failed(), message.as_str()).encode(env));
        }
        Phase::Starting | Phase::Stopping => {}
    }
}

async fn futures_join<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let handles: Vec<_> = handles.collect();
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(handle.await.expect("worker start task panicked"));
    }
    results
}

/// How often the sweeper runs (deadlines, cancels, health checks, recycling by age).
const SWEEP_INTERVAL: Duration = Duration::from_millis(50);

/// Runs the pool's periodic duties until it stops.
async fn sweep(pool: Arc<Pool>) {
    let mut interval = tokio::time::interval(SWEEP_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if matches!(pool.phase(), Phase::Stopping | Phase::Failed) {
            return;
        }
        let effects = pool.sweep();
        pool.apply(effects, None);
    }
}

/// Starts workers for `slot` until one runs, backing off exponentially between failures, up to
/// 5 s: a failing program is retried, never spun on.
pub async fn keep_slot_filled(
    pool: Arc<Pool>,
    slot: usize,
    mut failures: u32,
    replaces: Option<Retiring>,
) {
    loop {
        if failures > 0 {
            let backoff =
                Duration::from_millis(100u64 << failures.min(6)).min(Duration::from_secs(5));
            tokio::time::sleep(backoff).await;
        }
        if !matches!(pool.phase(), Phase::Running | Phase::Starting) {
            return;
        }
        match start_worker(&pool, slot, replaces).await {
            Ok(()) => return,
            Err(_) => failures += 1,
        }
    }
}

/// Starts the worker that will replace (recycle) the worker of `replaces`, in `slot`.
pub fn start_replacement(pool: &Arc<Pool>, slot: usize, replaces: Retiring) {
    runtime().spawn(keep_slot_filled(Arc::clone(pool), slot, 0, Some(replaces)));
}

/// Tells the owner that the circuit opened or closed.
pub fn report_circuit(pool: &Pool, open: bool) {
    let failures = pool.config.max_start_failures;
    if open {
        pool.owner
            .event(|env| (atoms::circuit_open(), failures).encode(env));
    } else {
        pool.owner.event(|env| atoms::circuit_closed().encode(env));
    }
}

/// Spawns one worker for `slot`, waits for its handshake and installs it.
async fn start_worker(
    pool: &Arc<Pool>,
    slot: usize,
    replaces: Option<Retiring>,
) -> Result<(), String> {
    let uid = NEXT_WORKER_UID.fetch_add(1, Relaxed);
    let config = pool.config.clone();
    let spawned = on_spawner_thread(move || worker::spawn(&config, uid))
        .await
        .map_err(|error| {
            let message = format!(
                "cannot start worker program {:?}: {error}",
                pool.config.executable
            );
            report_start_failure(pool, &message);
            message
        })?;
    let Spawned {
        handle,
        child,
        replies,
        stdout,
        stderr,
    } = spawned;
    if !pool.track_process(&handle) {
        handle.signal_group(libc::SIGKILL);
    }
    forward_lines(pool, &handle, stdout, false);
    forward_lines(pool, &handle, stderr, true);

    let (ready_tx, ready_rx) = oneshot::channel();
    let reader_pool = Arc::clone(pool);
    let reader_handle = Arc::clone(&handle);
    std::thread::Builder::new()
        .name(format!("snakepit-{}", handle.uid))
        .spawn(move || read_worker(reader_pool, slot, reader_handle, replies, child, ready_tx))
        .map_err(|error| {
            // No reader to reap it: kill it here (the BEAM reaps its children itself).
            stop_worker(&handle);
            pool.untrack_process(&handle);
            let message = format!("cannot start a reader thread: {error}");
            report_start_failure(pool, &message);
            message
        })?;

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
        Ok(()) if pool.install(slot, Arc::clone(&handle), replaces) => {
            let (id, os_pid) = (handle.id.clone(), handle.os_pid);
            pool.owner
                .event(|env| (atoms::worker_ready(), id.as_str(), os_pid).encode(env));
            Ok(())
        }
        Ok(()) => {
            stop_worker(&handle);
            Err("pool is stopping".into())
        }
        Err(message) => {
            stop_worker(&handle);
            let message = format!("worker {} failed to start: {message}", handle.id);
            report_start_failure(pool, &message);
            Err(message)
        }
    }
}

fn report_start_failure(pool: &Pool, message: &str) {
    pool.start_failed();
    pool.owner
        .event(|env| (atoms::worker_start_failed(), message).encode(env));
}

fn stop_worker(handle: &WorkerHandle) {
    handle.close_requests();
    handle.signal_group(libc::SIGKILL);
}

/// Why a worker's reply stream ended.
enum Ending {
    Eof,
    ReadFailed(std::io::Error),
    Violation(String),
}

/// The reader thread: handshake, then replies until the pipe closes; then reaps the process.
fn read_worker(
    pool: Arc<Pool>,
    slot: usize,
    handle: Arc<WorkerHandle>,
    mut replies: std::fs::File,
    mut child: Child,
    ready: oneshot::Sender<Result<(), String>>,
) {
    let mut decoder = FrameDecoder::new(pool.config.max_frame_size);
    let mut ready = Some(ready);
    let ending = loop {
        match decoder.next_frame() {
            Err(error) => break Ending::Violation(error.to_string()),
            Ok(Some(frame)) => {
                let result = match ready.take() {
                    Some(ready) => handshake(frame, ready),
                    None => handle_reply(&pool, slot, &handle, frame),
                };
                if let Err(violation) = result {
                    break Ending::Violation(violation);
                }
                continue;
            }
            Ok(None) => {}
        }
        match decoder.read_from(&mut replies) {
            Ok(0) => break Ending::Eof,
            Ok(_) => {}
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => break Ending::ReadFailed(error),
        }
    };
    drop(replies);
    if let Some(ready) = ready {
        let _ = ready.send(Err(match &ending {
            Ending::Violation(detail) => format!("bad handshake: {detail}"),
            _ => "worker closed its reply pipe before its handshake".into(),
        }));
    }

    // While stopping, the stop sequence signals the group; otherwise this worker is finished
    // (it closed its replies or broke the protocol), so make sure nothing of it is left.
    let stopping = pool.phase() == Phase::Stopping;
    if !stopping {
        stop_worker(&handle);
    }
    let exit = describe_exit(&mut child);
    // Kill anything the worker started that outlived it, then release the process group id.
    handle.signal_group(libc::SIGKILL);
    let error = match ending {
        Ending::Violation(detail) => PoolError::ProtocolError {
            worker_id: handle.id.clone(),
            detail,
        },
        Ending::Eof => PoolError::WorkerCrashed {
            worker_id: handle.id.clone(),
            exit: exit.clone(),
        },
        Ending::ReadFailed(error) => PoolError::WorkerCrashed {
            worker_id: handle.id.clone(),
            exit: format!("{exit}; reading its replies failed: {error}"),
        },
    };
    let removed = pool.remove_worker(slot, &handle, error);
    crate::watchdog::unwatch(handle.os_pid);
    if let Some(registry) = &pool.config.registry_file {
        crate::registry::forget(registry, handle.os_pid);
    }
    pool.untrack_process(&handle);
    let (id, os_pid) = (handle.id.clone(), handle.os_pid);
    match removed {
        Removed::Crashed => {
            pool.owner.event(|env| {
                (atoms::worker_exit(), id.as_str(), os_pid, exit.as_str()).encode(env)
            });
            runtime().spawn(keep_slot_filled(pool, slot, 0, None));
        }
        Removed::Retired => pool
            .owner
            .event(|env| (atoms::worker_retired(), id.as_str(), os_pid).encode(env)),
        // A failed start is reported by its starter; a stopping pool expects exits.
        Removed::NotInstalled | Removed::Stopping => {}
    }
}

fn handshake(frame: &[u8], ready: oneshot::Sender<Result<(), String>>) -> Result<(), String> {
    match serde_json::from_slice::<Handshake>(frame) {
        Ok(Handshake::Ready { protocol, .. }) if protocol == PROTOCOL_VERSION => {
            let _ = ready.send(Ok(()));
            Ok(())
        }
        Ok(Handshake::Ready { protocol, .. }) => {
            let message =
                format!("worker speaks protocol {protocol}, this pool speaks {PROTOCOL_VERSION}");
            let _ = ready.send(Err(message.clone()));
            Err(message)
        }
        Ok(Handshake::Fatal {
            message,
            error_type,
            traceback,
        }) => {
            let mut text = match error_type {
                Some(kind) => format!("{kind}: {message}"),
                None => message,
            };
            if let Some(traceback) = traceback {
                text = format!("{text}\n{traceback}");
            }
            let _ = ready.send(Err(text.clone()));
            Err(text)
        }
        Err(error) => {
            let message = format!("invalid handshake: {error}");
            let _ = ready.send(Err(message.clone()));
            Err(message)
        }
    }
}

fn handle_reply(
    pool: &Pool,
    slot: usize,
    handle: &Arc<WorkerHandle>,
    frame: &[u8],
) -> Result<(), String> {
    let (id, reply) = parse_reply(frame).map_err(|violation| violation.to_string())?;
    let id = u64::try_from(id).map_err(|_| format!("reply carries invalid id {id}"))?;
    let failed = matches!(reply, Reply::Error(_));
    if let Reply::Chunk(_) = reply {
        return Err(format!(
            "stream chunk for request {id}, which asked for no stream"
        ));
    }
    match pool.complete(slot, handle, id, failed) {
        Completed::Request(None) => {}
        Completed::Request(Some(reply_to)) => match reply {
            Reply::Ok(result) => reply_to.send_ok(result),
            Reply::Error(error) => reply_to.send_error(&PoolError::from_worker(error)),
            Reply::Chunk(_) => unreachable!("refused above"),
        },
        Completed::HealthCheck if failed => return Err("health check failed".into()),
        Completed::HealthCheck => {}
        Completed::Unexpected(detail) => return Err(detail),
    }
    Ok(())
}

/// Waits for the child to be gone and says how it ended, when that can be known.
fn describe_exit(child: &mut Child) -> String {
    use std::os::unix::process::ExitStatusExt;
    match child.wait() {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            _ => status.to_string(),
        },
        // The BEAM ignores SIGCHLD, so the kernel reaps children itself and their status is
        // lost; `wait` still returns once the process is gone.
        Err(error) if error.raw_os_error() == Some(libc::ECHILD) => "exited".into(),
        Err(error) => format!("exit status unknown: {error}"),
    }
}

/// Forwards each line a worker prints to the owner, which logs it with the worker's id.
fn forward_lines(
    pool: &Arc<Pool>,
    handle: &WorkerHandle,
    output: impl Into<std::os::fd::OwnedFd>,
    stderr: bool,
) {
    let fd: std::os::fd::OwnedFd = output.into();
    let pool = Arc::clone(pool);
    let worker_id = handle.id.clone();
    runtime().spawn(async move {
        let Ok(receiver) = pipe::Receiver::from_owned_fd(fd) else {
            return;
        };
        let mut reader = BufReader::new(receiver);
        let mut env = OwnedEnv::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                line.pop();
            }
            line.truncate(MAX_LOG_LINE);
            let text = String::from_utf8_lossy(&line);
            pool.owner.log(&mut env, &worker_id, stderr, &text);
        }
    });
}
