//! A worker's reader thread: its handshake, then its replies until the pipe closes; then it reaps
//! the process and tells the pool. Blocking reads on a dedicated thread are the fewest hops
//! between a reply and its caller.

use std::io::ErrorKind;
use std::process::Child;
use std::sync::Arc;

use rustler::Encoder;
use tokio::sync::oneshot;

use snakepit_core::{Completed, Removed};
use snakepit_protocol::frame::FrameDecoder;
use snakepit_protocol::handshake::{parse_handshake, Handshake, PROTOCOL_VERSION};
use snakepit_protocol::reply::{parse_reply, Reply};

use crate::atoms;
use crate::error::PoolError;
use crate::pool::PoolRef;
use crate::worker::WorkerHandle;

pub struct Reader {
    pub pool: PoolRef,
    pub slot: usize,
    pub handle: Arc<WorkerHandle>,
    pub os_pid: u32,
}

/// Why a worker's reply stream ended.
enum Ending {
    Eof,
    ReadFailed(std::io::Error),
    Violation(String),
}

impl Reader {
    pub fn run(
        self,
        mut replies: std::fs::File,
        mut child: Child,
        ready: oneshot::Sender<Result<(), String>>,
    ) {
        let mut decoder = FrameDecoder::new(self.pool.config.max_frame_size);
        let mut ready = Some(ready);
        let ending = loop {
            match decoder.next_frame() {
                Err(error) => break Ending::Violation(error.to_string()),
                Ok(Some(frame)) => {
                    let result = match ready.take() {
                        Some(ready) => handshake(frame, ready),
                        None => self.reply(frame),
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
        self.finish(ending, &mut child);
    }

    /// The worker is finished (it closed its replies or broke the protocol): nothing of it may
    /// be left; then the pool hears of it.
    fn finish(self, ending: Ending, child: &mut Child) {
        let Reader {
            pool,
            slot,
            handle,
            os_pid,
        } = self;
        // While stopping, the stop sequence signals the group (SIGTERM first).
        if !pool.processes.is_closed() {
            handle.kill(None);
        }
        let exit = describe_exit(child);
        // Kill anything the worker started that outlived it, then release the process group id.
        handle.signal_group(libc::SIGKILL);
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
        crate::watchdog::unwatch(os_pid);
        if let Some(registry) = &pool.config.registry_file {
            crate::registry::forget(registry, os_pid);
        }
        pool.processes.untrack(&handle);
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
        if let Reply::Chunk(_) = reply {
            return Err(format!(
                "stream chunk for request {id}, which asked for no stream"
            ));
        }
        let failed = matches!(reply, Reply::Error(_));
        match self
            .pool
            .on_reply(self.slot, self.handle.uid, id, failed, None)
        {
            Completed::Request(None) | Completed::Stale => Ok(()),
            Completed::Request(Some(reply_to)) => {
                match reply {
                    Reply::Ok(result) => reply_to.send_ok(&self.pool.spares, result),
                    Reply::Error(error) => {
                        reply_to.send_error(Some(&self.pool.spares), &PoolError::from_worker(error))
                    }
                    Reply::Chunk(_) => unreachable!("refused above"),
                }
                Ok(())
            }
            Completed::HealthCheck { ok: true } => Ok(()),
            Completed::HealthCheck { ok: false } => Err("health check failed".into()),
            Completed::Unexpected(detail) => Err(detail),
        }
    }
}

fn handshake(frame: &[u8], ready: oneshot::Sender<Result<(), String>>) -> Result<(), String> {
    let result = match parse_handshake(frame) {
        Ok(Handshake::Ready { protocol, .. }) if protocol == PROTOCOL_VERSION => Ok(()),
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
    };
    let _ = ready.send(result.clone());
    result
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
