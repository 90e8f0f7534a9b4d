//! A worker's reader thread: its handshake, then its replies until the pipe closes; then it reaps
//! the process and tells the pool. Blocking reads on a dedicated thread are the fewest hops
//! between a reply and its caller.

use std::io::ErrorKind;
use std::process::Child;
use std::sync::{Arc, OnceLock};

use rustler::Encoder;
use tokio::sync::oneshot;

use snakepit_core::{Chunked, Completed, Removed};
use snakepit_protocol::frame::FrameDecoder;
use snakepit_protocol::handshake::{parse_handshake, Handshake, PROTOCOL_VERSION};
use snakepit_protocol::reply::{parse_reply, Reply};

use crate::atoms;
use crate::error::PoolError;
use crate::pool::PoolRef;
use crate::reply::Finish;
use crate::worker::WorkerHandle;

pub struct Reader {
    pub pool: PoolRef,
    pub slot: usize,
    pub handle: Arc<WorkerHandle>,
    /// Until the handshake: how the start is going. `None` once the worker is installed.
    pub startup: Option<Startup>,
    /// The OS process (a reader is for OS-process workers only).
    pub os_pid: u32,
}

/// The start of a worker, as its starter and its reader share it.
pub struct Startup {
    /// Tells the starter that the handshake arrived (its startup timeout no longer applies).
    pub handshaken: oneshot::Sender<()>,
    /// Why the start failed, once it has: set by the starter when the startup timeout passed
    /// (it then kills the worker), or here when the handshake is bad.
    pub failure: Arc<OnceLock<String>>,
}

/// Why a worker's reply stream ended.
enum Ending {
    Eof,
    ReadFailed(std::io::Error),
    Violation(String),
}

impl Reader {
    pub fn run(mut self, mut replies: std::fs::File, mut child: Child) {
        let mut decoder = FrameDecoder::new(self.pool.config.max_frame_size);
        let ending = loop {
            match decoder.next_frame() {
                Err(error) => break Ending::Violation(error.to_string()),
                Ok(Some(frame)) => {
                    let result = match self.startup.is_some() {
                        true => self.handshake(frame),
                        false => self.reply(frame),
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
        self.finish(ending, &mut child);
    }

    /// The first frame: the worker is installed (and gets work), or its start failed.
    fn handshake(&mut self, frame: &[u8]) -> Result<(), String> {
        let startup = self
            .startup
            .take()
            .expect("called before the handshake only");
        let _ = startup.handshaken.send(());
        if let Some(failure) = startup.failure.get() {
            self.startup = Some(startup_failed(failure.clone()));
            return Err(failure.clone());
        }
        match check_handshake(frame) {
            Ok(ready) => self.handle.handshaken(&ready),
            Err(message) => {
                self.startup = Some(startup_failed(message.clone()));
                return Err(message);
            }
        }
        match self.pool.worker_up(self.slot, &self.handle, None) {
            Ok(()) => {
                let (id, os_pid) = (self.handle.id.as_str(), self.os_pid);
                self.pool
                    .owner
                    .event(|env| (atoms::worker_ready(), id, os_pid).encode(env));
            }
            // The pool is stopping: this worker goes at once.
            Err(_) => self.handle.kill(None),
        }
        Ok(())
    }

    /// The worker is finished (it closed its replies or broke the protocol): nothing of it may
    /// be left; then the pool hears of it.
    fn finish(self, ending: Ending, child: &mut Child) {
        let Reader {
            pool,
            slot,
            handle,
            startup,
            os_pid,
        } = self;
        // While stopping, the stop sequence signals the group (SIGTERM first).
        if !pool.processes.is_closed() {
            handle.kill(None);
        }
        let exit = describe_exit(child);
        // Kill anything the worker started that outlived it, then release the process group id.
        handle.signal_group(libc::SIGKILL);
        if let Some(startup) = startup {
            let why = match (startup.failure.get(), &ending) {
                (Some(failure), _) => failure.clone(),
                (None, Ending::Violation(detail)) => format!("bad handshake: {detail}"),
                (None, _) => "worker closed its reply pipe before its handshake".into(),
            };
            let message = format!("worker {} failed to start: {why}", handle.id);
            forget(&pool, &handle, os_pid);
            return report_start_failure(&pool, slot, &message);
        }
        let worker_id = handle.id.clone();
        let loss = match ending {
            Ending::Violation(detail) => PoolError::ProtocolError { worker_id, detail },
            Ending::Eof => PoolError::WorkerCrashed {
                worker_id,
                exit: exit.clone(),
            },
            Ending::ReadFailed(error) => PoolError::WorkerCrashed {
                worker_id,
                exit: format!("{exit}; reading its replies failed: {error}"),
            },
        };
        let removed = pool.worker_down(slot, handle.uid, loss, None);
        forget(&pool, &handle, os_pid);
        let id = handle.id.as_str();
        match removed {
            Removed::Crashed => pool
                .owner
                .event(|env| (atoms::worker_exit(), id, os_pid, exit.as_str()).encode(env)),
            Removed::Retired => pool
                .owner
                .event(|env| (atoms::worker_retired(), id, os_pid).encode(env)),
            // A failed start is reported by its starter; a stopping pool expects exits.
            Removed::NotInstalled | Removed::Stopping => {}
        }
    }

    /// One reply frame: answers its caller. Err when the worker broke the protocol.
    fn reply(&self, frame: &[u8]) -> Result<(), String> {
        let (id, reply) = parse_reply(frame).map_err(|violation| violation.to_string())?;
        let id = u64::try_from(id).map_err(|_| format!("reply carries invalid id {id}"))?;
        if let Reply::Chunk(chunk) = reply {
            // Straight to the caller; only a stream's worker may send one (the core checks).
            return match self.pool.on_chunk(self.slot, self.handle.uid, id) {
                (Chunked::Deliver(sink), stalled) => {
                    sink.chunk(&self.pool.spares, &chunk, stalled);
                    Ok(())
                }
                (Chunked::Discard | Chunked::Stale, _) => Ok(()),
                (Chunked::Unexpected(detail), _) => Err(detail),
            };
        }
        let failed = matches!(reply, Reply::Error(_));
        match self
            .pool
            .on_reply(self.slot, self.handle.uid, id, failed, None)
        {
            Completed::Request(None) | Completed::Stale => Ok(()),
            Completed::Request(Some((reply_to, timings))) => {
                let finish = Finish::new(Some(&self.handle.id), timings);
                let spares = &self.pool.spares;
                match reply {
                    Reply::Ok(result) => reply_to.send_ok(spares, result, finish),
                    Reply::Error(error) => {
                        let error = PoolError::from_worker(error);
                        reply_to.send_error(Some(spares), &error, finish)
                    }
                    Reply::Chunk(_) => unreachable!("refused above"),
                }
                Ok(())
            }
            Completed::HealthCheck { ok: true } => Ok(()),
            Completed::HealthCheck { ok: false } => {
                let reason = match &reply {
                    Reply::Error(error) => error.message.as_str(),
                    _ => "the worker answered its health check with an error",
                };
                let (id, os_pid) = (self.handle.id.as_str(), self.os_pid);
                self.pool
                    .owner
                    .event(|env| (atoms::health_check_failed(), id, os_pid, reason).encode(env));
                Err("health check failed".into())
            }
            Completed::Unexpected(detail) => Err(detail),
        }
    }
}

/// A failed start: the pool schedules the retry; the owner logs why.
pub fn report_start_failure(pool: &PoolRef, slot: usize, message: &str) {
    pool.start_failed(slot, message);
    pool.owner
        .event(|env| (atoms::worker_start_failed(), message).encode(env));
}

/// The reaped worker's process group leaves the watchdog, the registry and the pool's list.
fn forget(pool: &PoolRef, handle: &WorkerHandle, os_pid: u32) {
    crate::watchdog::unwatch(os_pid);
    if let Some(registry) = &pool.config.registry_file {
        crate::registry::forget(registry, os_pid);
    }
    pool.processes.untrack(handle);
}

/// A startup already decided as failed (the handshake was late or bad), with why: kept until
/// the worker is gone, so that the failure is reported once, by `finish`.
fn startup_failed(why: String) -> Startup {
    let (handshaken, _) = oneshot::channel();
    Startup {
        handshaken,
        failure: Arc::new(OnceLock::from(why)),
    }
}

/// The worker's first frame must be a ready handshake in our protocol version.
fn check_handshake(frame: &[u8]) -> Result<Handshake, String> {
    match parse_handshake(frame) {
        Ok(ready @ Handshake::Ready { protocol, .. }) if protocol == PROTOCOL_VERSION => Ok(ready),
        Ok(Handshake::Ready { protocol, .. }) => Err(format!(
            "worker speaks protocol {protocol}, this pool speaks {PROTOCOL_VERSION}"
        )),
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
            Err(text)
        }
        Err(error) => Err(format!("invalid handshake: {error}")),
    }
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
