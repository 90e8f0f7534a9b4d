//! A worker's stdout and stderr: each line goes to the pool's owner, which logs it with the
//! worker's id, and the session of the request the worker runs when the line is read. Lines are cut at `MAX_LOG_LINE` while they stream (`snakepit_core::log_line`),
//! so what a worker prints costs the BEAM a bounded amount of memory. With the pool's
//! `log_output` off (`config :snakepit, log_python_output: false`) the lines are read and
//! dropped: no message, no log.

use std::os::fd::OwnedFd;

use rustler::OwnedEnv;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::unix::pipe;

use snakepit_core::log_line::{Line, LineCutter};

use crate::pool::PoolRef;
use crate::runtime::runtime;
use crate::worker::WorkerHandle;

/// Longest stdout/stderr line forwarded whole; longer ones are cut.
const MAX_LOG_LINE: usize = 16 * 1024;

/// Forwards `output` (the worker's stdout, or its stderr) line by line until it closes.
pub fn forward(pool: &PoolRef, handle: &WorkerHandle, output: impl Into<OwnedFd>, stderr: bool) {
    let fd: OwnedFd = output.into();
    let pool = pool.clone();
    let worker_id = handle.id.clone();
    let uid = handle.uid;
    let log = pool.config.log_output;
    runtime().spawn(async move {
        let Ok(receiver) = pipe::Receiver::from_owned_fd(fd) else {
            return;
        };
        let mut reader = BufReader::with_capacity(8 * 1024, receiver);
        let mut cutter = LineCutter::new(MAX_LOG_LINE);
        let mut env = OwnedEnv::new();
        let mut send = |line: Line| {
            if !log {
                return;
            }
            let mut text = String::from_utf8_lossy(line.text).into_owned();
            if line.cut > 0 {
                text.push_str(&format!(" [… {} more bytes cut]", line.cut));
            }
            let session_id = pool.session_running_on(uid);
            pool.owner
                .log(&mut env, &worker_id, stderr, &text, session_id.as_deref());
        };
        loop {
            let read = match reader.fill_buf().await {
                Ok([]) | Err(_) => break,
                Ok(bytes) => {
                    cutter.feed(bytes, &mut send);
                    bytes.len()
                }
            };
            reader.consume(read);
        }
        cutter.finish(&mut send);
    });
}
