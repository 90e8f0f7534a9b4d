//! Framing a request: `{"id":N,"command":"..","args":{..},"session_id":..,"stream":false}`, with
//! the args encoded straight from the term into the frame buffer.

use rustler::Term;
use snakepit_protocol::frame::{begin_frame, finish_frame, FrameError};

use crate::codec::{write_json_str, EncodeError, JsonWriter};

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

/// Writes a complete request frame into `out`:
/// `{"id":N,"command":"..","args":{..},"session_id":..,"stream":false}`.
pub fn encode_request<'a>(
    out: &mut Vec<u8>,
    id: u64,
    head: &RequestHead,
    args: Term<'a>,
    max_frame: usize,
) -> Result<(), RequestError> {
    begin_frame(out);
    out.extend_from_slice(b"{\"id\":");
    out.extend_from_slice(id.to_string().as_bytes());
    out.extend_from_slice(b",\"command\":");
    write_json_str(out, head.command);
    out.extend_from_slice(b",\"args\":");
    JsonWriter::new(out, "args")
        .write(args)
        .map_err(RequestError::Args)?;
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
