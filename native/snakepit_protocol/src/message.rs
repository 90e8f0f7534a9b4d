//! The JSON messages a worker sends: its handshake and replies.

use serde::Deserialize;
use serde_json::value::RawValue;

/// The protocol version this core speaks.
pub const PROTOCOL_VERSION: u64 = 1;

/// The first frame a worker sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Handshake {
    Ready {
        protocol: u64,
        pid: u32,
        #[serde(default)]
        commands: Vec<String>,
    },
    Fatal {
        message: String,
        #[serde(default)]
        error_type: Option<String>,
        #[serde(default)]
        traceback: Option<String>,
    },
}

/// An error a worker reports for one request. Read from a JSON object only (serde's derived
/// `Deserialize` would also take an array filling the fields in order).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
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
    #[serde(borrow, default)]
    pub chunk: Option<&'f RawValue>,
}

/// What a reply frame means for the request it answers.
#[derive(Debug)]
pub enum Reply<'f> {
    /// Final success; `None` stands for JSON `null`.
    Ok(Option<&'f RawValue>),
    Error(WorkerError),
    /// One chunk of a stream; the final frame follows.
    Chunk(&'f RawValue),
}

/// Why a worker's frame was rejected: the worker is then no longer trusted.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolViolation {
    #[error("worker sent invalid JSON: {0}")]
    InvalidJson(#[from] serde_json::Error),
    #[error("worker sent a reply that is not an object with a result, an error or a chunk")]
    Malformed,
}

/// Parses a reply frame into its request id and meaning.
pub fn parse_reply(frame: &[u8]) -> Result<(i64, Reply<'_>), ProtocolViolation> {
    // A reply is an object; serde's derived `Deserialize` would also take an array.
    if frame.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ProtocolViolation::Malformed);
    }
    let reply: ReplyFrame = serde_json::from_slice(frame)?;
    let meaning = match (reply.ok, reply.error, reply.chunk) {
        (_, _, Some(chunk)) => Reply::Chunk(chunk),
        (Some(true), _, _) => Reply::Ok(reply.result),
        (Some(false), Some(error), _) => Reply::Error(error),
        _ => return Err(ProtocolViolation::Malformed),
    };
    Ok((reply.id, meaning))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn parses_chunks() {
        let (_, reply) = parse_reply(br#"{"id":3,"chunk":{"i":1}}"#).unwrap();
        assert!(matches!(reply, Reply::Chunk(raw) if raw.get() == r#"{"i":1}"#));
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
    fn handshake_ready_and_fatal() {
        let ready: Handshake = serde_json::from_str(
            r#"{"type":"ready","protocol":1,"pid":42,"commands":["ping"],"adapter":null}"#,
        )
        .unwrap();
        assert!(matches!(
            ready,
            Handshake::Ready {
                protocol: 1,
                pid: 42,
                ..
            }
        ));
        let fatal: Handshake = serde_json::from_str(
            r#"{"type":"fatal","message":"no module","error_type":"ImportError"}"#,
        )
        .unwrap();
        assert!(matches!(fatal, Handshake::Fatal { message, .. } if message == "no module"));
    }
}
