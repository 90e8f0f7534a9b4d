//! What the pool sends a worker: requests
//! `{"id":N,"command":"..","args":{..},"session_id":..,"stream":false}` (a streamed one may add
//! `"window":W`) and control frames: cancel `{"id":N,"cancel":true}`, heartbeat
//! `{"id":N,"heartbeat":true}`, session end `{"session_end":true,"session_id":".."}` and stream
//! credit `{"id":N,"credit":K}`. The pool encodes them ([`encode_request`],
//! [`encode_stream_request`], [`encode_cancel`], [`encode_heartbeat`], [`encode_session_end`],
//! [`encode_credit`]); a worker parses them ([`parse_request`]).

use std::borrow::Cow;
use std::fmt;
use std::num::NonZeroU64;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::frame::{begin_frame, encode_frame, finish_frame, FrameError};
use crate::json::{write_json_str, write_u64};

/// Why a request could not be framed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError<E> {
    /// `write_args` failed.
    #[error("cannot encode the args: {0}")]
    Args(E),
    #[error(transparent)]
    Frame(FrameError),
}

/// Fields of a request besides its id and args.
pub struct RequestHead<'r> {
    pub command: &'r str,
    pub session_id: Option<&'r str>,
    pub stream: bool,
}

/// Writes a complete request frame into `out`; `write_args` writes the args object. On the hot
/// path: nothing is allocated besides growing `out`. A streamed request sent this way has no
/// window: the worker streams without waiting for credits.
pub fn encode_request<E>(
    out: &mut Vec<u8>,
    id: u64,
    head: &RequestHead,
    write_args: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    max_frame: usize,
) -> Result<(), RequestError<E>> {
    encode_stream_request(out, id, head, None, write_args, max_frame)
}

/// [`encode_request`] with a credit window: a worker that announced
/// [`CONTROL_CREDIT`](crate::handshake::CONTROL_CREDIT) sends at most `window` chunks of the
/// stream beyond those credited by [`encode_credit`] frames. Written only when `head.stream`
/// (a window means nothing for a plain request); `None` means no limit.
pub fn encode_stream_request<E>(
    out: &mut Vec<u8>,
    id: u64,
    head: &RequestHead,
    window: Option<NonZeroU64>,
    write_args: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    max_frame: usize,
) -> Result<(), RequestError<E>> {
    begin_frame(out);
    out.extend_from_slice(b"{\"id\":");
    write_u64(out, id);
    out.extend_from_slice(b",\"command\":");
    write_json_str(out, head.command);
    out.extend_from_slice(b",\"args\":");
    write_args(out).map_err(RequestError::Args)?;
    out.extend_from_slice(b",\"session_id\":");
    match head.session_id {
        Some(session) => write_json_str(out, session),
        None => out.extend_from_slice(b"null"),
    }
    match (head.stream, window) {
        (false, _) => out.extend_from_slice(b",\"stream\":false}"),
        (true, None) => out.extend_from_slice(b",\"stream\":true}"),
        (true, Some(window)) => {
            out.extend_from_slice(b",\"stream\":true,\"window\":");
            write_u64(out, window.get());
            out.push(b'}');
        }
    }
    finish_frame(out, max_frame).map_err(RequestError::Frame)
}

/// A cancel frame for request `id`.
pub fn encode_cancel(id: u64) -> Vec<u8> {
    control_frame(id, "cancel")
}

/// A heartbeat frame (a health check) numbered `id`; a worker that announced
/// [`CONTROL_HEARTBEAT`](crate::handshake::CONTROL_HEARTBEAT) answers it with an ordinary success
/// reply to `id`, in order with its requests.
pub fn encode_heartbeat(id: u64) -> Vec<u8> {
    control_frame(id, "heartbeat")
}

/// A session-end frame: session `session_id` ended (deleted, expired or cleaned up), so a worker
/// that announced [`CONTROL_SESSION_END`](crate::handshake::CONTROL_SESSION_END) drops what it
/// kept for it. It has no id and gets no reply; it comes in the request stream, between requests.
pub fn encode_session_end(session_id: &str) -> Vec<u8> {
    let mut payload = Vec::with_capacity(48 + session_id.len());
    payload.extend_from_slice(b"{\"session_end\":true,\"session_id\":");
    write_json_str(&mut payload, session_id);
    payload.push(b'}');
    encode_frame(&payload, usize::MAX).expect("a session id fits a frame")
}

/// A credit frame: the consumer of stream `id` took `credit` more chunks, so its worker may send
/// that many more beyond its window. Sent only to workers that announced
/// [`CONTROL_CREDIT`](crate::handshake::CONTROL_CREDIT), where their cancel frames go (the control
/// descriptor with `control_fd`, else the request stream), and only after a chunk of `id` arrived.
pub fn encode_credit(id: u64, credit: NonZeroU64) -> Vec<u8> {
    let payload = format!("{{\"id\":{id},\"credit\":{credit}}}");
    encode_frame(payload.as_bytes(), usize::MAX).expect("a control frame is small")
}

/// `{"id":N,"<kind>":true}`.
fn control_frame(id: u64, kind: &str) -> Vec<u8> {
    let payload = format!("{{\"id\":{id},\"{kind}\":true}}");
    encode_frame(payload.as_bytes(), usize::MAX).expect("a control frame is small")
}

/// A frame from the pool, as a worker reads it; text and args are borrowed from the frame where
/// JSON escapes allow.
#[derive(Debug)]
pub enum Incoming<'f> {
    Request {
        id: u64,
        command: Cow<'f, str>,
        /// The args object as raw JSON; `None` when absent or `null` (meaning `{}`).
        args: Option<&'f RawValue>,
        session_id: Option<Cow<'f, str>>,
        stream: bool,
        /// The credit window of a streamed request: how many chunks the worker may send beyond
        /// those credited; `None` (absent or `null`) means no limit.
        window: Option<NonZeroU64>,
    },
    /// Stop request `id` early if possible; gets no reply of its own.
    Cancel { id: u64 },
    /// A health check numbered `id`: answered with a success reply to `id`, in request order.
    Heartbeat { id: u64 },
    /// Session `session_id` ended: drop what was kept for it; no reply.
    SessionEnd { session_id: Cow<'f, str> },
    /// The consumer of stream `id` took `credit` more chunks; no reply.
    Credit { id: u64, credit: NonZeroU64 },
    /// A control frame of a kind this crate does not know (an object with no `command` and a
    /// member named after its kind). The pool sends only the kinds a worker announced, so a
    /// worker skips these.
    UnknownControl { id: Option<u64>, kind: Cow<'f, str> },
}

/// Why a frame from the pool cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadRequest {
    /// Not a JSON object, or no usable id (a non-negative integer): the frame gets no reply; a
    /// worker logs it and reads on.
    #[error("ignoring a frame: {0}")]
    Ignored(String),
    /// A request with a usable id but a missing or mistyped member: a worker answers it with a
    /// `ProtocolError` failure carrying `message`.
    #[error("request {id}: {message}")]
    Malformed { id: u64, message: String },
}

/// Parses a frame from the pool.
pub fn parse_request(frame: &[u8]) -> Result<Incoming<'_>, BadRequest> {
    let members: Members = serde_json::from_slice(frame)
        .map_err(|error| BadRequest::Ignored(format!("not a JSON object: {error}")))?;
    let id = members.id.and_then(usable_id);
    if members.cancel {
        let id = id.ok_or_else(|| ignored("a cancel frame without a usable id"))?;
        return Ok(Incoming::Cancel { id });
    }
    if members.heartbeat {
        let id = id.ok_or_else(|| ignored("a heartbeat frame without a usable id"))?;
        return Ok(Incoming::Heartbeat { id });
    }
    if members.session_end {
        let session_id = members
            .session_id
            .and_then(text)
            .ok_or_else(|| ignored("a session_end frame without a string session_id"))?;
        return Ok(Incoming::SessionEnd { session_id });
    }
    if let Some(credit) = members.credit {
        let id = id.ok_or_else(|| ignored("a credit frame without a usable id"))?;
        let credit = positive(credit)
            .ok_or_else(|| ignored("a credit frame whose credit is not a positive integer"))?;
        return Ok(Incoming::Credit { id, credit });
    }
    if let (None, Some(kind)) = (members.command, members.other) {
        return Ok(Incoming::UnknownControl { id, kind });
    }
    let id = id.ok_or_else(|| ignored("a frame without a usable id"))?;
    let malformed = |message: &str| BadRequest::Malformed {
        id,
        message: message.to_string(),
    };
    let command = members
        .command
        .and_then(text)
        .ok_or_else(|| malformed("request has no string \"command\""))?;
    let args = match members.args {
        Some(raw) if raw.get().starts_with('{') => Some(raw),
        None => None,
        Some(raw) if is_null(raw) => None,
        Some(_) => return Err(malformed("\"args\" is not an object")),
    };
    let session_id = match members.session_id {
        None => None,
        Some(raw) if is_null(raw) => None,
        Some(raw) => Some(text(raw).ok_or_else(|| malformed("\"session_id\" is not a string"))?),
    };
    let stream = match members.stream.map(RawValue::get) {
        None | Some("null") | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(malformed("\"stream\" is not a boolean")),
    };
    let window = match members.window {
        None => None,
        Some(raw) if is_null(raw) => None,
        Some(raw) => {
            Some(positive(raw).ok_or_else(|| malformed("\"window\" is not a positive integer"))?)
        }
    };
    Ok(Incoming::Request {
        id,
        command,
        args,
        session_id,
        stream,
        window,
    })
}

fn ignored(reason: &str) -> BadRequest {
    BadRequest::Ignored(reason.to_string())
}

fn usable_id(raw: &RawValue) -> Option<u64> {
    serde_json::from_str(raw.get()).ok()
}

/// A positive integer that fits 64 bits; `None` for anything else (`1.0` and `true` included).
fn positive(raw: &RawValue) -> Option<NonZeroU64> {
    serde_json::from_str(raw.get()).ok()
}

fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

/// A JSON string's text, borrowed unless it has escapes; `None` if `raw` is not a string.
fn text(raw: &RawValue) -> Option<Cow<'_, str>> {
    serde_json::from_str::<Text>(raw.get())
        .ok()
        .map(|Text(text)| text)
}

/// The members of a frame from the pool, each kept as raw JSON until the frame's kind is known.
#[derive(Default)]
struct Members<'f> {
    id: Option<&'f RawValue>,
    command: Option<&'f RawValue>,
    args: Option<&'f RawValue>,
    session_id: Option<&'f RawValue>,
    stream: Option<&'f RawValue>,
    window: Option<&'f RawValue>,
    credit: Option<&'f RawValue>,
    cancel: bool,
    heartbeat: bool,
    session_end: bool,
    /// The first member that is none of the above: the kind of a control frame.
    other: Option<Cow<'f, str>>,
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MembersVisitor)
    }
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Members<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    /// A repeated member keeps its last value, as most JSON readers (Python's included) do.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
        let mut members = Members::default();
        while let Some(Text(key)) = map.next_key()? {
            let value: &'de RawValue = map.next_value()?;
            match &*key {
                "id" => members.id = Some(value),
                "command" => members.command = Some(value),
                "args" => members.args = Some(value),
                "session_id" => members.session_id = Some(value),
                "stream" => members.stream = Some(value),
                "window" => members.window = Some(value),
                "credit" => members.credit = Some(value),
                "cancel" => members.cancel = true,
                "heartbeat" => members.heartbeat = true,
                "session_end" => members.session_end = true,
                _ if members.other.is_none() => members.other = Some(key),
                _ => {}
            }
        }
        Ok(members)
    }
}

/// A JSON string, borrowed from the input when it has no escapes.
struct Text<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Borrowed(text)))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(text.to_string())))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(text)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload_of(frame: &[u8]) -> &[u8] {
        let len = u32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(frame.len(), 4 + len);
        &frame[4..]
    }

    fn encode(id: u64, head: &RequestHead, args: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let write_args = |out: &mut Vec<u8>| {
            out.extend_from_slice(args.as_bytes());
            Ok::<(), ()>(())
        };
        encode_request(&mut out, id, head, write_args, 1 << 20).unwrap();
        out
    }

    #[test]
    fn encodes_the_fields_in_order() {
        let head = RequestHead {
            command: "add",
            session_id: Some("s-\"1\""),
            stream: true,
        };
        let frame = encode(7, &head, r#"{"a":1}"#);
        assert_eq!(
            payload_of(&frame),
            br#"{"id":7,"command":"add","args":{"a":1},"session_id":"s-\"1\"","stream":true}"#
        );
    }

    #[test]
    fn encoding_errors_are_kept_apart() {
        let head = RequestHead {
            command: "x",
            session_id: None,
            stream: false,
        };
        let mut out = Vec::new();
        let failed = encode_request(&mut out, 1, &head, |_| Err("no"), 1024);
        assert!(matches!(failed, Err(RequestError::Args("no"))));
        let too_big = encode_request(&mut out, 1, &head, |_| Ok::<(), ()>(()), 8);
        assert!(matches!(too_big, Err(RequestError::Frame(_))));
    }

    #[test]
    fn a_request_round_trips_borrowing_what_it_can() {
        let head = RequestHead {
            command: "tool\n",
            session_id: Some("s-1"),
            stream: false,
        };
        let frame = encode(u64::MAX, &head, r#"{ "a" : [1, 2] }"#);
        match parse_request(payload_of(&frame)).unwrap() {
            Incoming::Request {
                id,
                command,
                args,
                session_id,
                stream,
                window: None,
            } => {
                assert_eq!(id, u64::MAX);
                assert_eq!(command, "tool\n");
                assert!(
                    matches!(command, Cow::Owned(_)),
                    "escaped text is unescaped"
                );
                assert_eq!(args.unwrap().get(), r#"{ "a" : [1, 2] }"#);
                assert!(matches!(session_id, Some(Cow::Borrowed("s-1"))));
                assert!(!stream);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn optional_members_default() {
        for frame in [
            &br#"{"id":3,"command":"ping"}"#[..],
            br#"{"id":3,"command":"ping","args":null,"session_id":null,"stream":null}"#,
            br#" { "stream" : false , "command" : "ping", "id" : 3 } "#,
        ] {
            match parse_request(frame).unwrap() {
                Incoming::Request {
                    id: 3,
                    command,
                    args: None,
                    session_id: None,
                    stream: false,
                    window: None,
                } => assert_eq!(command, "ping"),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn cancel_and_unknown_control_frames() {
        let cancel = encode_cancel(7);
        assert_eq!(payload_of(&cancel), br#"{"id":7,"cancel":true}"#);
        assert!(matches!(
            parse_request(payload_of(&cancel)),
            Ok(Incoming::Cancel { id: 7 })
        ));
        match parse_request(br#"{"id":7,"pause":true,"for":3}"#).unwrap() {
            Incoming::UnknownControl { id, kind } => {
                assert_eq!((id, &*kind), (Some(7), "pause"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            parse_request(br#"{"pause":true}"#),
            Ok(Incoming::UnknownControl { id: None, .. })
        ));
        assert_eq!(
            parse_request(br#"{"cancel":true}"#).unwrap_err(),
            ignored("a cancel frame without a usable id")
        );
    }

    #[test]
    fn heartbeat_frames() {
        let heartbeat = encode_heartbeat(12);
        assert_eq!(payload_of(&heartbeat), br#"{"id":12,"heartbeat":true}"#);
        assert!(matches!(
            parse_request(payload_of(&heartbeat)),
            Ok(Incoming::Heartbeat { id: 12 })
        ));
        // Like a cancel member, a heartbeat member decides the frame's kind whatever else it
        // holds; cancel wins over heartbeat.
        assert!(matches!(
            parse_request(br#"{"command":"ping","heartbeat":1,"id":3}"#),
            Ok(Incoming::Heartbeat { id: 3 })
        ));
        assert!(matches!(
            parse_request(br#"{"id":3,"heartbeat":true,"cancel":true}"#),
            Ok(Incoming::Cancel { id: 3 })
        ));
        assert_eq!(
            parse_request(br#"{"heartbeat":true,"id":-1}"#).unwrap_err(),
            ignored("a heartbeat frame without a usable id")
        );
    }

    #[test]
    fn a_window_is_written_only_for_a_stream() {
        let window = NonZeroU64::new(16);
        let mut head = RequestHead {
            command: "count",
            session_id: None,
            stream: true,
        };
        let mut out = Vec::new();
        let no_args = |out: &mut Vec<u8>| {
            out.extend_from_slice(b"{}");
            Ok::<(), ()>(())
        };
        encode_stream_request(&mut out, 4, &head, window, no_args, 1024).unwrap();
        assert_eq!(
            payload_of(&out),
            br#"{"id":4,"command":"count","args":{},"session_id":null,"stream":true,"window":16}"#
        );
        match parse_request(payload_of(&out)).unwrap() {
            Incoming::Request { stream, window, .. } => {
                assert!(stream);
                assert_eq!(window, NonZeroU64::new(16));
            }
            other => panic!("unexpected {other:?}"),
        }
        head.stream = false;
        out.clear();
        encode_stream_request(&mut out, 4, &head, window, no_args, 1024).unwrap();
        assert!(payload_of(&out).ends_with(br#""stream":false}"#));
    }

    #[test]
    fn a_window_must_be_a_positive_integer() {
        for window in [
            "0",
            "-1",
            "1.5",
            "1.0",
            "true",
            "\"8\"",
            "[8]",
            "18446744073709551616",
        ] {
            let frame = format!(r#"{{"id":2,"command":"x","stream":true,"window":{window}}}"#);
            assert_eq!(
                parse_request(frame.as_bytes()).unwrap_err(),
                BadRequest::Malformed {
                    id: 2,
                    message: "\"window\" is not a positive integer".to_string()
                },
                "{window}"
            );
        }
        let frame = br#"{"id":2,"command":"x","stream":true,"window":null}"#;
        assert!(matches!(
            parse_request(frame),
            Ok(Incoming::Request { window: None, .. })
        ));
    }

    #[test]
    fn credit_frames() {
        let credit = encode_credit(9, NonZeroU64::new(4).unwrap());
        assert_eq!(payload_of(&credit), br#"{"id":9,"credit":4}"#);
        let parsed = parse_request(payload_of(&credit));
        assert!(matches!(parsed, Ok(Incoming::Credit { id: 9, credit }) if credit.get() == 4));
        assert_eq!(
            parse_request(br#"{"credit":4}"#).unwrap_err(),
            ignored("a credit frame without a usable id")
        );
        for credit in ["0", "-2", "2.5", "true", "null", "\"4\""] {
            let frame = format!(r#"{{"id":9,"credit":{credit}}}"#);
            assert_eq!(
                parse_request(frame.as_bytes()).unwrap_err(),
                ignored("a credit frame whose credit is not a positive integer"),
                "{credit}"
            );
        }
        // A cancel member wins, as over every other kind.
        assert!(matches!(
            parse_request(br#"{"id":9,"credit":4,"cancel":true}"#),
            Ok(Incoming::Cancel { id: 9 })
        ));
    }

    #[test]
    fn unanswerable_frames_are_ignored() {
        for frame in [
            &b"not json"[..],
            b"",
            b"[1,2]",
            b"\xff\xfe",
            br#"{"command":"ping"}"#,
            br#"{"id":-1,"command":"ping"}"#,
            br#"{"id":1.5,"command":"ping"}"#,
            br#"{"id":"1","command":"ping"}"#,
            br#"{"id":18446744073709551616,"command":"ping"}"#,
        ] {
            assert!(
                matches!(parse_request(frame), Err(BadRequest::Ignored(_))),
                "{}",
                String::from_utf8_lossy(frame)
            );
        }
    }

    #[test]
    fn malformed_requests_name_their_id() {
        for (frame, message) in [
            (&br#"{"id":2}"#[..], "request has no string \"command\""),
            (
                br#"{"id":2,"args":{}}"#,
                "request has no string \"command\"",
            ),
            (
                br#"{"id":2,"command":5}"#,
                "request has no string \"command\"",
            ),
            (
                br#"{"id":2,"command":"x","args":[1]}"#,
                "\"args\" is not an object",
            ),
            (
                br#"{"id":2,"command":"x","session_id":1}"#,
                "\"session_id\" is not a string",
            ),
            (
                br#"{"id":2,"command":"x","stream":"yes"}"#,
                "\"stream\" is not a boolean",
            ),
        ] {
            assert_eq!(
                parse_request(frame).unwrap_err(),
                BadRequest::Malformed {
                    id: 2,
                    message: message.to_string()
                }
            );
        }
    }
}
