//! The first frame a worker sends: `ready` (with what it serves and which control frames it
//! understands) or `fatal`.

use serde::{Deserialize, Serialize};

use crate::json::{encode_json_frame, EncodeError};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u64 = 1;

/// The control frame kind that cancels a request (`{"id":N,"cancel":true}`), as listed in a ready
/// handshake's `control`.
pub const CONTROL_CANCEL: &str = "cancel";

/// The control frame kind of health checks (`{"id":N,"heartbeat":true}`), as listed in a ready
/// handshake's `control`. A worker that does not announce it is health-checked with an ordinary
/// `ping` request instead.
pub const CONTROL_HEARTBEAT: &str = "heartbeat";

/// The control frame kind that tells a worker a session ended
/// (`{"session_end":true,"session_id":"..."}`), as listed in a ready handshake's `control`. Only
/// workers that announce it are sent one.
pub const CONTROL_SESSION_END: &str = "session_end";

/// The control frame kind of stream credits (`{"id":N,"credit":K}`), as listed in a ready
/// handshake's `control`. Only a worker that announces it is sent a `window` in its streamed
/// requests, and credits; others stream without limit.
pub const CONTROL_CREDIT: &str = "credit";

/// The first frame a worker sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Handshake {
    Ready {
        protocol: u64,
        pid: u32,
        /// The adapter as named on the worker's command line; `null` for none.
        #[serde(default)]
        adapter: Option<String>,
        /// Every command the worker answers.
        #[serde(default)]
        commands: Vec<String>,
        /// The control frame kinds the worker acts on ([`CONTROL_CANCEL`],
        /// [`CONTROL_HEARTBEAT`], [`CONTROL_SESSION_END`], [`CONTROL_CREDIT`]). Absent means none, so workers written before the field existed
        /// keep working: the pool sends heartbeats only to workers that announce them (others get
        /// `ping` requests); cancel frames go to every worker, which skips them if it does not
        /// act on them.
        #[serde(default)]
        control: Vec<String>,
        /// The worker reads control frames (cancel) from the descriptor the pool names in
        /// `SNAKEPIT_CONTROL_FD`, beside the request stream, so it sees them while a tool runs.
        /// False (the default, and left out when encoding): control frames come in the request
        /// stream, between requests.
        #[serde(default, skip_serializing_if = "is_false")]
        control_fd: bool,
    },
    Fatal {
        message: String,
        #[serde(default)]
        error_type: Option<String>,
        #[serde(default)]
        traceback: Option<String>,
    },
}

impl Handshake {
    /// Whether this is a ready handshake announcing that the worker reads control frames from
    /// its control descriptor.
    pub fn reads_control_fd(&self) -> bool {
        matches!(
            self,
            Handshake::Ready {
                control_fd: true,
                ..
            }
        )
    }

    /// Whether this is a ready handshake announcing the control frame `kind`.
    pub fn accepts_control(&self, kind: &str) -> bool {
        match self {
            Handshake::Ready { control, .. } => control.iter().any(|known| known == kind),
            Handshake::Fatal { .. } => false,
        }
    }
}

fn is_false(value: &bool) -> bool {
    !value
}

/// Reads a handshake frame. Only a JSON object is one (serde's tagged enums would also take an
/// array starting with the type).
pub fn parse_handshake(frame: &[u8]) -> Result<Handshake, serde_json::Error> {
    if frame.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
        return Err(serde::de::Error::custom("a handshake is a JSON object"));
    }
    serde_json::from_slice(frame)
}

/// A whole handshake frame.
pub fn encode_handshake(handshake: &Handshake, max_frame: usize) -> Result<Vec<u8>, EncodeError> {
    encode_json_frame(handshake, max_frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_and_fatal() {
        let ready = parse_handshake(
            br#"{"type":"ready","protocol":1,"pid":42,"commands":["ping"],"adapter":null}"#,
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
        let fatal = parse_handshake(
            br#"{"type":"fatal","message":"no module","error_type":"ImportError"}"#,
        )
        .unwrap();
        assert!(matches!(fatal, Handshake::Fatal { message, .. } if message == "no module"));
    }

    #[test]
    fn control_defaults_to_none() {
        let ready = parse_handshake(br#"{"type":"ready","protocol":1,"pid":42}"#).unwrap();
        assert!(!ready.accepts_control(CONTROL_CANCEL));
        let ready =
            parse_handshake(br#"{"type":"ready","protocol":1,"pid":42,"control":["cancel"]}"#)
                .unwrap();
        assert!(ready.accepts_control(CONTROL_CANCEL));
        assert!(!ready.accepts_control(CONTROL_HEARTBEAT));
        assert!(!ready.reads_control_fd());
    }

    #[test]
    fn control_fd_is_announced_and_encoded_only_when_true() {
        let payload = br#"{"type":"ready","protocol":1,"pid":7,"adapter":null,"commands":[],"control":["cancel"],"control_fd":true}"#;
        let ready = parse_handshake(payload).unwrap();
        assert!(ready.reads_control_fd());
        assert_eq!(&encode_handshake(&ready, 1024).unwrap()[4..], payload);
    }

    #[test]
    fn encodes_with_the_type_first() {
        let ready = Handshake::Ready {
            protocol: PROTOCOL_VERSION,
            pid: 7,
            adapter: None,
            commands: vec!["ping".into()],
            control: vec![CONTROL_CANCEL.into(), CONTROL_HEARTBEAT.into()],
            control_fd: false,
        };
        let frame = encode_handshake(&ready, 1024).unwrap();
        let payload = br#"{"type":"ready","protocol":1,"pid":7,"adapter":null,"commands":["ping"],"control":["cancel","heartbeat"]}"#;
        assert_eq!(&frame[4..], payload);
        assert_eq!(parse_handshake(&frame[4..]).unwrap(), ready);
    }

    #[test]
    fn only_objects_are_handshakes() {
        assert!(parse_handshake(br#"["ready",1,42]"#).is_err());
        assert!(parse_handshake(b"").is_err());
    }
}
