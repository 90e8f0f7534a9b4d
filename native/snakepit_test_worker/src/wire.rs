//! The two protocol descriptors: request frames in, reply frames out.

use std::fs::File;
use std::io::{self, ErrorKind, Write};
use std::os::fd::{FromRawFd, RawFd};

use serde_json::Value;
use snakepit_protocol::frame::{FrameDecoder, FrameError};
use snakepit_protocol::handshake::{encode_handshake, Handshake};
use snakepit_protocol::json::EncodeError;
use snakepit_protocol::reply::{encode_chunk, encode_done, encode_error, encode_ok, WorkerError};

/// `SNAKEPIT_MAX_FRAME_SIZE` when the pool does not set it.
const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// A failure reply: `error.type` and `error.message`.
#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    pub kind: String,
    pub message: String,
}

impl Failure {
    pub fn new(kind: &str, message: impl Into<String>) -> Failure {
        Failure {
            kind: kind.to_string(),
            message: message.into(),
        }
    }
}

/// The protocol's error object; the traceback is `""`, as there is no stack to show.
impl From<Failure> for WorkerError {
    fn from(failure: Failure) -> WorkerError {
        WorkerError {
            kind: failure.kind,
            message: failure.message,
            traceback: Some(String::new()),
        }
    }
}

/// Reads a descriptor number or size from the environment.
fn env_number<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("{name}={text:?} is not a valid number")),
    }
}

/// Checks that `fd` is open and marks it close-on-exec, so that processes the worker spawns do
/// not hold the pool's pipes open.
fn claim_fd(fd: RawFd, name: &str) -> Result<File, String> {
    // SAFETY: fcntl on an arbitrary number only inspects or sets that descriptor's flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if fd < 0 || flags == -1 {
        return Err(format!("{name} descriptor {fd} is not open"));
    }
    // SAFETY: as above; `fd` is open.
    unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) };
    // SAFETY: the descriptor is open and nothing else in this process uses it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// The worker's end of the protocol.
pub struct Wire {
    requests: File,
    replies: File,
    decoder: FrameDecoder,
    /// Largest payload accepted or sent (`SNAKEPIT_MAX_FRAME_SIZE`).
    pub max_frame: usize,
}

impl Wire {
    /// Opens the descriptors named by the environment; an error means bad configuration.
    pub fn from_env() -> Result<Wire, String> {
        let request_fd = env_number("SNAKEPIT_REQUEST_FD", 3)?;
        let reply_fd = env_number("SNAKEPIT_REPLY_FD", 4)?;
        let max_frame = env_number("SNAKEPIT_MAX_FRAME_SIZE", DEFAULT_MAX_FRAME)?;
        if request_fd == reply_fd {
            return Err(format!("request and reply descriptors are both {reply_fd}"));
        }
        Ok(Wire {
            requests: claim_fd(request_fd, "request")?,
            replies: claim_fd(reply_fd, "reply")?,
            decoder: FrameDecoder::new(max_frame),
            max_frame,
        })
    }

    /// The next request frame's payload; `Ok(None)` at end of file between frames. An error is a
    /// protocol violation (oversized frame, end of file inside a frame) or a failed read.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, String> {
        loop {
            match self.decoder.next_frame() {
                Ok(Some(frame)) => return Ok(Some(frame.to_vec())),
                Ok(None) => {}
                Err(FrameError::TooLarge { len, max }) => {
                    return Err(format!(
                        "refusing a request frame of {len} bytes (max {max})"
                    ))
                }
            }
            match self.decoder.read_from(&mut self.requests) {
                Ok(0) if self.decoder.buffered() == 0 => return Ok(None),
                Ok(0) => return Err("end of file inside a request frame".to_string()),
                Ok(_) => {}
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) => return Err(format!("cannot read requests: {error}")),
            }
        }
    }

    /// Writes bytes as they are, frame or not.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.replies.write_all(bytes)
    }

    /// Writes the handshake frame.
    pub fn send_handshake(&mut self, handshake: &Handshake) -> io::Result<()> {
        let frame = encode_handshake(handshake, self.max_frame).map_err(io::Error::other)?;
        self.send_raw(&frame)
    }

    /// Writes one chunk of the stream answering request `id`.
    pub fn chunk(&mut self, id: u64, chunk: &Value) -> io::Result<()> {
        let mut frame = Vec::new();
        encode_chunk(&mut frame, id, chunk, self.max_frame).map_err(io::Error::other)?;
        self.send_raw(&frame)
    }

    /// Writes the final reply of the stream answering request `id`.
    pub fn done(&mut self, id: u64) -> io::Result<()> {
        let mut frame = Vec::new();
        encode_done(&mut frame, id, self.max_frame).map_err(io::Error::other)?;
        self.send_raw(&frame)
    }

    /// Writes the final reply to request `id`; a result too large for one frame becomes a
    /// `FrameTooLarge` failure, as the protocol asks.
    pub fn reply(&mut self, id: u64, outcome: Result<Value, Failure>) -> io::Result<()> {
        let mut frame = Vec::new();
        let encoded = match outcome {
            Ok(result) => encode_ok(&mut frame, id, &result, self.max_frame),
            Err(failure) => encode_error(&mut frame, id, &failure.into(), self.max_frame),
        };
        match encoded {
            Ok(()) => {}
            Err(EncodeError::Frame(error)) => {
                let failure = Failure::new("FrameTooLarge", error.to_string());
                encode_error(&mut frame, id, &failure.into(), self.max_frame)
                    .map_err(io::Error::other)?;
            }
            Err(error) => return Err(io::Error::other(error)),
        }
        self.send_raw(&frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_carry_an_empty_traceback() {
        let error: WorkerError = Failure::new("ValueError", "bad").into();
        assert_eq!(
            (error.kind.as_str(), error.message.as_str()),
            ("ValueError", "bad")
        );
        assert_eq!(error.traceback.as_deref(), Some(""));
    }
}
