//! Framing what the pool sends a worker: requests
//! `{"id":N,"command":"..","args":{..},"session_id":..,"stream":false}`, with the args encoded
//! straight into the frame buffer, and cancel frames `{"id":N,"cancel":true}`.

use snakepit_protocol::frame::{begin_frame, encode_frame, finish_frame, FrameError};

use crate::codec::{write_json_str, EncodeError};

/// Why a request could not be framed.
#[derive(Debug)]
pub enum RequestError {
    Args(EncodeError),
    Frame(FrameError),
}

/// Fields of a request besides its id and args.
pub struct RequestHead<'r> {
    pub command: &'r str,
    pub session_id: Option<&'r str>,
    pub stream: bool,
}

/// Writes a complete request frame into `out`; `write_args` writes the args object.
pub fn encode_request(
    out: &mut Vec<u8>,
    id: u64,
    head: &RequestHead,
    write_args: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
    max_frame: usize,
) -> Result<(), RequestError> {
    begin_frame(out);
    out.extend_from_slice(b"{\"id\":");
    out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
    out.extend_from_slice(b",\"command\":");
    write_json_str(out, head.command);
    out.extend_from_slice(b",\"args\":");
    write_args(out).map_err(RequestError::Args)?;
    out.extend_from_slice(b",\"session_id\":");
    match head.session_id {
        Some(session) => write_json_str(out, session),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(if head.stream {
        b",\"stream\":true}"
    } else {
        b",\"stream\":false}"
    });
    finish_frame(out, max_frame).map_err(RequestError::Frame)
}

/// A cancel frame for request `id`.
pub fn encode_cancel(id: u64) -> Vec<u8> {
    let payload = format!("{{\"id\":{id},\"cancel\":true}}");
    encode_frame(payload.as_bytes(), usize::MAX).expect("a cancel frame is small")
}
