//! What a worker sends for a request: a success, a failure, stream chunks and a stream's final
//! reply. The pool parses them ([`parse_reply`]); a Rust worker encodes them (`encode_*`).
//!
//! ```text
//! {"id":7,"ok":true,"result":R}
//! {"id":7,"ok":false,"error":{"type":T,"message":M,"traceback":B}}
//! {"id":9,"chunk":C}
//! {"id":9,"chunk":C,"is_final":true,"metadata":{"k":"v"}}
//! {"id":9,"ok":true,"result":null,"done":true}
//! ```
//!
//! A chunk's `is_final` (only `true` is written) and `metadata` (an object) come from upstream's
//! chunk objects (`StreamChunk(data, is_final)`, optionally with a `metadata` dict): the pool
//! needs them to hand callbacks the maps upstream hands them.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::frame::{begin_frame, finish_frame};
use crate::json::{write_json, write_u64, EncodeError};

/// An error a worker reports for one request. Read from a JSON object only (serde's derived
/// `Deserialize` would also take an array filling the fields in order).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(try_from = "ErrorObject")]
pub struct WorkerError {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub traceback: Option<String>,
}

/// The shape `WorkerError` is read through: a map, so that arrays are refused.
#[derive(Deserialize)]
struct ErrorObject(serde_json::Map<String, serde_json::Value>);

impl TryFrom<ErrorObject> for WorkerError {
    type Error = String;

    fn try_from(ErrorObject(mut map): ErrorObject) -> Result<Self, String> {
        let mut text = |key: &str| match map.remove(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(format!("error field {key:?} is not a string: {other}")),
        };
        Ok(WorkerError {
            kind: text("type")?.unwrap_or_default(),
            message: text("message")?.unwrap_or_default(),
            traceback: text("traceback")?,
        })
    }
}

/// Any frame a worker sends after its handshake, borrowed from the frame bytes.
#[derive(Debug, Deserialize)]
pub struct ReplyFrame<'f> {
    pub id: i64,
    #[serde(default)]
    pub ok: Option<bool>,
    #[serde(borrow, default)]
    pub result: Option<&'f RawValue>,
    #[serde(default)]
    pub error: Option<WorkerError>,
    /// Present, even as `null`, in a chunk frame: a streamed tool may yield `null`.
    #[serde(borrow, default, deserialize_with = "present")]
    pub chunk: Option<&'f RawValue>,
    /// A chunk's: the tool marked it the last one. Absent or `null` means false.
    #[serde(default)]
    pub is_final: Option<bool>,
    /// A chunk's metadata object, if the tool gave one.
    #[serde(borrow, default)]
    pub metadata: Option<&'f RawValue>,
}

/// A member that is there, whatever its value (`Option`'s own `Deserialize` reads `null` as
/// absent).
fn present<'de, D: Deserializer<'de>>(member: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue>::deserialize(member).map(Some)
}

/// What a reply frame means for the request it answers.
#[derive(Debug)]
pub enum Reply<'f> {
    /// Final success; `None` stands for JSON `null`. A stream's final reply is one too.
    Ok(Option<&'f RawValue>),
    Error(WorkerError),
    /// One chunk of a stream; the final frame follows.
    Chunk(Chunk<'f>),
}

/// One chunk of a streamed reply.
#[derive(Debug, Clone, Copy)]
pub struct Chunk<'f> {
    /// The value the tool yielded (for upstream's chunk objects, their `data`).
    pub data: &'f RawValue,
    /// The tool marked this chunk the last one (upstream's `StreamChunk.is_final`). The stream
    /// still ends only with its final reply.
    pub is_final: bool,
    /// The metadata object of upstream's chunk objects (string values), if any.
    pub metadata: Option<&'f RawValue>,
}

/// Why a worker's frame was rejected: the worker is then no longer trusted.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolViolation {
    #[error("worker sent invalid JSON: {0}")]
    InvalidJson(#[from] serde_json::Error),
    #[error("worker sent a reply that is not an object with a result, an error or a chunk")]
    Malformed,
    #[error("worker sent a chunk whose metadata is not an object")]
    ChunkMetadata,
}

/// Parses a reply frame into its request id and meaning.
pub fn parse_reply(frame: &[u8]) -> Result<(i64, Reply<'_>), ProtocolViolation> {
    // A reply is an object; serde's derived `Deserialize` would also take an array.
    if frame.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ProtocolViolation::Malformed);
    }
    let reply: ReplyFrame = serde_json::from_slice(frame)?;
    let meaning = match (reply.ok, reply.error, reply.chunk) {
        (_, _, Some(data)) => {
            let metadata = reply.metadata.filter(|raw| raw.get() != "null");
            if metadata.is_some_and(|raw| !raw.get().starts_with('{')) {
                return Err(ProtocolViolation::ChunkMetadata);
            }
            Reply::Chunk(Chunk {
                data,
                is_final: reply.is_final.unwrap_or(false),
                metadata,
            })
        }
        (Some(true), _, _) => Reply::Ok(reply.result),
        (Some(false), Some(error), _) => Reply::Error(error),
        _ => return Err(ProtocolViolation::Malformed),
    };
    Ok((reply.id, meaning))
}

/// Writes the success reply to request `id` into `out` (a whole frame; on error `out` holds no
/// valid frame). `result` is any serializable value, e.g. a `serde_json::Value` or a `RawValue`.
pub fn encode_ok<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    id: u64,
    result: &T,
    max_frame: usize,
) -> Result<(), EncodeError> {
    begin_reply(out, id, b",\"ok\":true,\"result\":");
    write_json(out, result)?;
    end_reply(out, b"}", max_frame)
}

/// Writes the failure reply to request `id` into `out`; a `None` traceback is written as `null`.
pub fn encode_error(
    out: &mut Vec<u8>,
    id: u64,
    error: &WorkerError,
    max_frame: usize,
) -> Result<(), EncodeError> {
    begin_reply(out, id, b",\"ok\":false,\"error\":");
    write_json(out, error)?;
    end_reply(out, b"}", max_frame)
}

/// Writes one chunk of a streamed reply to request `id` into `out`.
pub fn encode_chunk<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    id: u64,
    chunk: &T,
    max_frame: usize,
) -> Result<(), EncodeError> {
    begin_reply(out, id, b",\"chunk\":");
    write_json(out, chunk)?;
    end_reply(out, b"}", max_frame)
}

/// Writes one chunk of a streamed reply to request `id` into `out`, with upstream's chunk marks:
/// `"is_final":true` when `is_final`, and `metadata` (an object) when given.
pub fn encode_marked_chunk<T: Serialize + ?Sized, M: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    id: u64,
    chunk: &T,
    is_final: bool,
    metadata: Option<&M>,
    max_frame: usize,
) -> Result<(), EncodeError> {
    begin_reply(out, id, b",\"chunk\":");
    write_json(out, chunk)?;
    if is_final {
        out.extend_from_slice(b",\"is_final\":true");
    }
    if let Some(metadata) = metadata {
        out.extend_from_slice(b",\"metadata\":");
        write_json(out, metadata)?;
    }
    end_reply(out, b"}", max_frame)
}

/// Writes the final reply of a stream that ended well into `out`. (A stream that fails ends
/// with an ordinary failure reply instead.)
pub fn encode_done(out: &mut Vec<u8>, id: u64, max_frame: usize) -> Result<(), EncodeError> {
    begin_reply(out, id, b"");
    end_reply(
        out,
        b",\"ok\":true,\"result\":null,\"done\":true}",
        max_frame,
    )
}

/// Starts a reply frame: header room, `{"id":N` and `rest`.
fn begin_reply(out: &mut Vec<u8>, id: u64, rest: &[u8]) {
    begin_frame(out);
    out.extend_from_slice(b"{\"id\":");
    write_u64(out, id);
    out.extend_from_slice(rest);
}

fn end_reply(out: &mut Vec<u8>, tail: &[u8], max_frame: usize) -> Result<(), EncodeError> {
    out.extend_from_slice(tail);
    Ok(finish_frame(out, max_frame)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameError;

    #[test]
    fn parses_success_with_any_result() {
        let (id, reply) = parse_reply(br#"{"id":7,"ok":true,"result":{"a":[1,2]}}"#).unwrap();
        assert_eq!(id, 7);
        match reply {
            Reply::Ok(Some(raw)) => assert_eq!(raw.get(), r#"{"a":[1,2]}"#),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn null_result_is_none() {
        let (_, reply) = parse_reply(br#"{"ok":true,"id":1,"result":null}"#).unwrap();
        assert!(matches!(reply, Reply::Ok(None)));
    }

    #[test]
    fn parses_error_with_traceback() {
        let frame = br#"{"id":3,"ok":false,"error":{"type":"ValueError","message":"bad","traceback":"tb"}}"#;
        let (_, reply) = parse_reply(frame).unwrap();
        match reply {
            Reply::Error(error) => {
                assert_eq!(error.kind, "ValueError");
                assert_eq!(error.message, "bad");
                assert_eq!(error.traceback.as_deref(), Some("tb"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn parses_chunks_null_included() {
        let (_, reply) = parse_reply(br#"{"id":3,"chunk":{"i":1}}"#).unwrap();
        assert!(matches!(
            reply,
            Reply::Chunk(Chunk { data, is_final: false, metadata: None })
                if data.get() == r#"{"i":1}"#
        ));
        let (_, reply) = parse_reply(br#"{"id":3,"chunk":null}"#).unwrap();
        assert!(matches!(reply, Reply::Chunk(chunk) if chunk.data.get() == "null"));
    }

    #[test]
    fn chunks_carry_upstreams_marks() {
        let mut out = Vec::new();
        let metadata = serde_json::json!({"stage": "2"});
        encode_marked_chunk(&mut out, 3, &[1, 2], true, Some(&metadata), 1024).unwrap();
        assert_eq!(
            &out[4..],
            br#"{"id":3,"chunk":[1,2],"is_final":true,"metadata":{"stage":"2"}}"#
        );
        match parse_reply(&out[4..]).unwrap() {
            (3, Reply::Chunk(chunk)) => {
                assert_eq!(chunk.data.get(), "[1,2]");
                assert!(chunk.is_final);
                assert_eq!(chunk.metadata.unwrap().get(), r#"{"stage":"2"}"#);
            }
            other => panic!("unexpected {other:?}"),
        }
        out.clear();
        encode_marked_chunk::<_, ()>(&mut out, 3, "x", false, None, 1024).unwrap();
        assert_eq!(&out[4..], br#"{"id":3,"chunk":"x"}"#);
        let frame = br#"{"id":3,"chunk":1,"is_final":null,"metadata":null}"#;
        assert!(matches!(
            parse_reply(frame),
            Ok((
                3,
                Reply::Chunk(Chunk {
                    is_final: false,
                    metadata: None,
                    ..
                })
            ))
        ));
        assert!(matches!(
            parse_reply(br#"{"id":3,"chunk":1,"metadata":["a"]}"#),
            Err(ProtocolViolation::ChunkMetadata)
        ));
        assert!(matches!(
            parse_reply(br#"{"id":3,"chunk":1,"is_final":"yes"}"#),
            Err(ProtocolViolation::InvalidJson(_))
        ));
    }

    #[test]
    fn invalid_json_is_a_violation() {
        assert!(matches!(
            parse_reply(b"{\"id\":1,\"ok\":tru"),
            Err(ProtocolViolation::InvalidJson(_))
        ));
        assert!(matches!(
            parse_reply(b"{\xff\xfe}"),
            Err(ProtocolViolation::InvalidJson(_))
        ));
    }

    #[test]
    fn only_objects_are_replies() {
        for frame in [&b"\xff\xfe"[..], b"[1,true,null]", b"  7", b""] {
            assert!(matches!(
                parse_reply(frame),
                Err(ProtocolViolation::Malformed)
            ));
        }
        // Nor is an array an error object.
        let frame = br#"{"id":1,"ok":false,"error":["T","m"]}"#;
        assert!(matches!(
            parse_reply(frame),
            Err(ProtocolViolation::InvalidJson(_))
        ));
    }

    #[test]
    fn reply_without_outcome_is_malformed() {
        assert!(matches!(
            parse_reply(br#"{"id":1}"#),
            Err(ProtocolViolation::Malformed)
        ));
        assert!(matches!(
            parse_reply(br#"{"id":1,"ok":false}"#),
            Err(ProtocolViolation::Malformed)
        ));
    }

    #[test]
    fn encoders_write_whole_frames() {
        let mut out = Vec::new();
        encode_ok(&mut out, 7, &serde_json::json!({"a": 1}), 1024).unwrap();
        let payload = br#"{"id":7,"ok":true,"result":{"a":1}}"#;
        assert_eq!(&out[..4], &(payload.len() as u32).to_be_bytes());
        assert_eq!(&out[4..], payload);

        let error = WorkerError {
            kind: "ValueError".into(),
            message: "bad".into(),
            traceback: None,
        };
        encode_error(&mut out, 8, &error, 1024).unwrap();
        let expected = br#"{"id":8,"ok":false,"error":{"type":"ValueError","message":"bad","traceback":null}}"#;
        assert_eq!(&out[4..], expected);
        match parse_reply(&out[4..]).unwrap() {
            (8, Reply::Error(parsed)) => assert_eq!(parsed, error),
            other => panic!("unexpected {other:?}"),
        }

        encode_chunk(&mut out, 9, "é", 1024).unwrap();
        assert_eq!(&out[4..], r#"{"id":9,"chunk":"é"}"#.as_bytes());
        encode_done(&mut out, 9, 1024).unwrap();
        assert_eq!(
            &out[4..],
            br#"{"id":9,"ok":true,"result":null,"done":true}"#
        );
    }

    #[test]
    fn encoders_refuse_oversized_replies() {
        let mut out = Vec::new();
        let result = encode_ok(&mut out, 1, &"x".repeat(64), 32);
        assert!(matches!(
            result,
            Err(EncodeError::Frame(FrameError::TooLarge { max: 32, .. }))
        ));
    }
}
