//! The write end of a worker's request pipe.
//!
//! The pipe is non-blocking. A worker given a request has drained its pipe, so a frame usually
//! goes through in one `write` from the calling thread — the submitting NIF or a reader thread —
//! with no hand-off. A frame larger than the pipe's buffer is finished by a blocking task, and any
//! frame sent meanwhile (a cancel) waits behind it, so frames never interleave. The lock is never
//! held across a wait: no scheduler thread can be blocked by a worker that does not read.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use parking_lot::Mutex;

/// How often a blocked write checks whether the pipe was closed meanwhile.
const POLL_MS: libc::c_int = 100;

pub struct RequestPipe {
    state: Mutex<State>,
}

struct State {
    /// `None` once closed (the worker is asked to exit). Shared with a running drain, which
    /// keeps the descriptor open until it notices.
    fd: Option<Arc<OwnedFd>>,
    /// Frames waiting behind a partial write; the first has `written` bytes already sent.
    backlog: VecDeque<Vec<u8>>,
    written: usize,
    /// A drain task owns writing until the backlog is empty.
    draining: bool,
}

impl RequestPipe {
    /// Takes the write end and makes it non-blocking.
    pub fn new(fd: OwnedFd) -> io::Result<Arc<Self>> {
        set_nonblocking(fd.as_raw_fd())?;
        Ok(Arc::new(RequestPipe {
            state: Mutex::new(State {
                fd: Some(Arc::new(fd)),
                backlog: VecDeque::new(),
                written: 0,
                draining: false,
            }),
        }))
    }

    /// Writes a whole frame, now if the pipe has room, else in the background. Errors mean the
    /// worker is gone; its reader sees end of file and deals with it.
    pub fn send(self: &Arc<Self>, frame: Vec<u8>) {
        let mut state = self.state.lock();
        let Some(fd) = state.fd.clone() else { return };
        if state.draining {
            state.backlog.push_back(frame);
            return;
        }
        if let Ok(written) = write_nonblocking(fd.as_raw_fd(), &frame) {
            if written < frame.len() {
                state.backlog.push_back(frame);
                state.written = written;
                state.draining = true;
                drop(state);
                let pipe = Arc::clone(self);
                crate::runtime::runtime().spawn_blocking(move || pipe.drain());
            }
        }
    }

    /// Closes the pipe: a well-behaved worker exits on end of file.
    pub fn close(&self) {
        let mut state = self.state.lock();
        state.fd = None;
        state.backlog.clear();
    }

    /// Writes the backlog out, waiting for room without holding the lock.
    fn drain(&self) {
        loop {
            // Decided under one lock with `send`: either there is a frame to write, or draining
            // ends here and the next `send` writes directly again.
            let next = {
                let mut state = self.state.lock();
                match (state.fd.clone(), state.backlog.pop_front()) {
                    (Some(fd), Some(frame)) => {
                        Some((fd, frame, std::mem::take(&mut state.written)))
                    }
                    _ => {
                        state.draining = false;
                        state.backlog.clear();
                        None
                    }
                }
            };
            let Some((fd, frame, written)) = next else {
                return;
            };
            if !self.write_rest(&fd, &frame, written) {
                // Closed or broken: the worker is going away; what waits is dropped.
                let mut state = self.state.lock();
                state.draining = false;
                state.backlog.clear();
                return;
            }
        }
    }

    /// Writes `frame[written..]`, waiting for room. False if the pipe was closed or broke.
    fn write_rest(&self, fd: &OwnedFd, frame: &[u8], mut written: usize) -> bool {
        while written < frame.len() {
            if self.state.lock().fd.is_none() {
                return false;
            }
            match wait_writable(fd.as_raw_fd()) {
                Ok(false) => {}
                Ok(true) => match write_nonblocking(fd.as_raw_fd(), &frame[written..]) {
                    Ok(n) => written += n,
                    Err(_) => return false,
                },
                Err(_) => return false,
            }
        }
        true
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One `write`, treating "would block" as zero bytes written.
fn write_nonblocking(fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
    loop {
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let error = io::Error::last_os_error();
        match error.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(0),
            _ => return Err(error),
        }
    }
}

/// Waits up to `POLL_MS` for room: `Ok(true)` when writable, `Ok(false)` on time-out.
fn wait_writable(fd: RawFd) -> io::Result<bool> {
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    loop {
        let n = unsafe { libc::poll(&mut poll, 1, POLL_MS) };
        if n > 0 {
            if poll.revents & (libc::POLLERR | libc::POLLHUP) != 0 {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            return Ok(true);
        }
        if n == 0 {
            return Ok(false);
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}
