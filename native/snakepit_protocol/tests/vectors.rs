//! The golden vectors of `docs/protocol_vectors.json`: the encoders produce their exact bytes, the
//! parsers read them to their stated meaning, and the invalid ones are refused. The Python
//! bridge's tests check the same file, so the implementations cannot drift apart.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU64;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use snakepit_protocol::frame::{encode_frame, FrameDecoder, FrameError, HEADER_LEN};
use snakepit_protocol::handshake::{encode_handshake, parse_handshake, Handshake};
use snakepit_protocol::reply::{
    encode_chunk, encode_done, encode_error, encode_marked_chunk, encode_ok, parse_reply, Reply,
    WorkerError,
};
use snakepit_protocol::request::{
    encode_cancel, encode_credit, encode_heartbeat, encode_session_end, encode_stream_request,
    parse_request, BadRequest, Incoming, RequestHead,
};

const VECTORS: &str = include_str!("../../../docs/protocol_vectors.json");

/// Room enough for every valid vector.
const MAX_FRAME: usize = 1 << 20;

#[derive(Deserialize)]
struct Vectors {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    direction: String,
    kind: String,
    valid: bool,
    #[serde(default)]
    parse_only: bool,
    payload: Option<String>,
    frame: String,
    max_frame: Option<usize>,
    /// Member name -> raw JSON, so that numbers keep every digit (2**70 would become a float).
    meaning: Option<BTreeMap<String, Box<RawValue>>>,
    refusal: Option<String>,
}

impl Case {
    fn frame(&self) -> Vec<u8> {
        let hex = self.frame.as_bytes();
        assert!(hex.len().is_multiple_of(2), "{}: odd hex", self.name);
        hex.chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect()
    }

    fn payload(&self) -> Vec<u8> {
        self.frame()[HEADER_LEN..].to_vec()
    }

    /// A member of the meaning as raw JSON text.
    fn raw(&self, member: &str) -> &RawValue {
        let meaning = self.meaning.as_ref().expect("a meaning");
        meaning
            .get(member)
            .unwrap_or_else(|| panic!("{}: meaning has no {member:?}", self.name))
    }

    /// A member of the meaning, typed.
    fn get<'a, T: Deserialize<'a>>(&'a self, member: &str) -> T {
        serde_json::from_str(self.raw(member).get())
            .unwrap_or_else(|error| panic!("{}: meaning.{member}: {error}", self.name))
    }

    /// A member of the meaning that may be absent, typed.
    fn optional<'a, T: Deserialize<'a>>(&'a self, member: &str) -> Option<T> {
        let meaning = self.meaning.as_ref().expect("a meaning");
        meaning.contains_key(member).then(|| self.get(member))
    }

    /// A member of the meaning as compact JSON (`None` for `null`).
    fn json(&self, member: &str) -> Option<String> {
        let text = compact(self.raw(member).get());
        (text != "null").then_some(text)
    }
}

fn cases() -> Vec<Case> {
    let vectors: Vectors = serde_json::from_str(VECTORS).expect("docs/protocol_vectors.json");
    vectors.cases
}

/// `raw` re-written compactly, members in their order, strings escaped as serde_json escapes
/// and numbers as written: the bytes an encoder writes for that value.
fn compact(raw: &str) -> String {
    let raw = raw.trim();
    match raw.as_bytes().first() {
        Some(b'{') => {
            let Members(members) = serde_json::from_str(raw).unwrap();
            let members: Vec<String> = members
                .iter()
                .map(|(key, value)| {
                    format!(
                        "{}:{}",
                        serde_json::to_string(key).unwrap(),
                        compact(value.get())
                    )
                })
                .collect();
            format!("{{{}}}", members.join(","))
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(raw).unwrap();
            let items: Vec<String> = items.iter().map(|item| compact(item.get())).collect();
            format!("[{}]", items.join(","))
        }
        Some(b'"') => serde_json::to_string(&serde_json::from_str::<String>(raw).unwrap()).unwrap(),
        _ => raw.to_string(),
    }
}

/// An object's members in order, values raw.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

fn raw_value(text: String) -> Box<RawValue> {
    RawValue::from_string(text).unwrap()
}

#[test]
fn frames_are_headers_and_payloads() {
    let cases = cases();
    let mut names: Vec<&str> = cases.iter().map(|case| case.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names are unique");
    for case in &cases {
        let frame = case.frame();
        assert!(frame.len() >= HEADER_LEN, "{}", case.name);
        let len = u32::from_be_bytes(frame[..HEADER_LEN].try_into().unwrap()) as usize;
        let expected = case
            .payload
            .as_ref()
            .map(|p| encode_frame(p.as_bytes(), usize::MAX));
        assert_eq!(
            len,
            frame.len() - HEADER_LEN,
            "{}: the header must give the payload's length; expected frame {:?}",
            case.name,
            expected
        );
        if let Some(payload) = &case.payload {
            assert_eq!(payload.as_bytes(), &frame[HEADER_LEN..], "{}", case.name);
        }
        assert!(
            ["pool_to_worker", "worker_to_pool"].contains(&case.direction.as_str()),
            "{}",
            case.name
        );
        assert_eq!(case.valid, case.refusal.is_none(), "{}", case.name);
    }
}

#[test]
fn the_decoder_cuts_every_frame_and_refuses_oversized_ones() {
    for case in cases() {
        let frame = case.frame();
        let max = case.max_frame.unwrap_or(MAX_FRAME);
        let mut decoder = FrameDecoder::new(max);
        decoder.push(&frame);
        if case.kind == "frame" {
            assert_eq!(case.refusal.as_deref(), Some("frame_too_large"));
            let len = frame.len() - HEADER_LEN;
            assert_eq!(
                decoder.next_frame(),
                Err(FrameError::TooLarge { len, max }),
                "{}",
                case.name
            );
            assert!(encode_frame(&case.payload(), max).is_err(), "{}", case.name);
        } else {
            assert_eq!(
                decoder.next_frame().unwrap(),
                Some(&case.payload()[..]),
                "{}",
                case.name
            );
        }
    }
}

#[test]
fn requests_cancels_heartbeats_and_control_frames() {
    let mut checked = 0;
    for case in cases() {
        if case.direction != "pool_to_worker" || case.kind == "frame" {
            continue;
        }
        checked += 1;
        let name = &case.name;
        let payload = case.payload();
        let parsed = parse_request(&payload);
        if !case.valid {
            match (case.refusal.as_deref(), parsed) {
                (Some("ignored"), Err(BadRequest::Ignored(_))) => {}
                (Some("protocol_error"), Err(BadRequest::Malformed { id, .. })) => {
                    assert_eq!(id, case.get::<u64>("id"), "{name}")
                }
                (refusal, other) => panic!("{name}: expected {refusal:?}, got {other:?}"),
            }
            continue;
        }
        match (case.kind.as_str(), parsed) {
            (
                "request",
                Ok(Incoming::Request {
                    id,
                    command,
                    args,
                    session_id,
                    stream,
                    window,
                }),
            ) => {
                assert_eq!(id, case.get::<u64>("id"), "{name}");
                assert_eq!(command, case.get::<String>("command"), "{name}");
                let args = args.map(|raw| compact(raw.get()));
                assert_eq!(args, case.json("args"), "{name}");
                let expected_session: Option<String> = case.get("session_id");
                assert_eq!(session_id.as_deref(), expected_session.as_deref(), "{name}");
                assert_eq!(stream, case.get::<bool>("stream"), "{name}");
                let expected_window = case.optional::<NonZeroU64>("window");
                assert_eq!(window, expected_window, "{name}");
                if !case.parse_only {
                    let command: String = case.get("command");
                    let head = RequestHead {
                        command: &command,
                        session_id: expected_session.as_deref(),
                        stream: case.get("stream"),
                    };
                    let args = case.json("args").expect("the pool always sends args");
                    let mut out = Vec::new();
                    let write_args = |out: &mut Vec<u8>| {
                        out.extend_from_slice(args.as_bytes());
                        Ok::<(), ()>(())
                    };
                    encode_stream_request(&mut out, id, &head, window, write_args, MAX_FRAME)
                        .unwrap();
                    assert_eq!(out, case.frame(), "{name}: encoded");
                }
            }
            ("cancel", Ok(Incoming::Cancel { id })) => {
                assert_eq!(id, case.get::<u64>("id"), "{name}");
                assert_eq!(encode_cancel(id), case.frame(), "{name}: encoded");
            }
            ("heartbeat", Ok(Incoming::Heartbeat { id })) => {
                assert_eq!(id, case.get::<u64>("id"), "{name}");
                if !case.parse_only {
                    assert_eq!(encode_heartbeat(id), case.frame(), "{name}: encoded");
                }
            }
            ("session_end", Ok(Incoming::SessionEnd { session_id })) => {
                let expected: String = case.get("session_id");
                assert_eq!(session_id, expected, "{name}");
                assert_eq!(
                    encode_session_end(&expected),
                    case.frame(),
                    "{name}: encoded"
                );
            }
            ("credit", Ok(Incoming::Credit { id, credit })) => {
                assert_eq!(id, case.get::<u64>("id"), "{name}");
                assert_eq!(credit, case.get::<NonZeroU64>("credit"), "{name}");
                assert_eq!(encode_credit(id, credit), case.frame(), "{name}: encoded");
            }
            ("control", Ok(Incoming::UnknownControl { id, kind })) => {
                assert!(
                    case.parse_only,
                    "{name}: nothing encodes unknown control frames"
                );
                assert_eq!(id, case.get::<Option<u64>>("id"), "{name}");
                assert_eq!(kind, case.get::<String>("kind"), "{name}");
            }
            (kind, other) => panic!("{name}: expected a {kind}, got {other:?}"),
        }
    }
    assert!(checked > 0);
}

#[test]
fn handshakes() {
    let mut checked = 0;
    for case in cases().iter().filter(|case| case.kind == "handshake") {
        checked += 1;
        let name = &case.name;
        let parsed = parse_handshake(&case.payload());
        if !case.valid {
            assert!(parsed.is_err(), "{name}: accepted {parsed:?}");
            continue;
        }
        let meaning: Handshake = serde_json::to_string(case.meaning.as_ref().unwrap())
            .and_then(|text| serde_json::from_str(&text))
            .unwrap_or_else(|error| panic!("{name}: meaning: {error}"));
        assert_eq!(parsed.unwrap(), meaning, "{name}");
        if !case.parse_only {
            let frame = encode_handshake(&meaning, MAX_FRAME).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&frame[HEADER_LEN..]),
                String::from_utf8_lossy(&case.payload()),
                "{name}: encoded"
            );
            assert_eq!(frame, case.frame(), "{name}: encoded");
        }
    }
    assert!(checked > 0);
}

#[test]
fn replies_chunks_and_final_replies() {
    let mut checked = 0;
    for case in cases().iter().filter(|case| case.kind == "reply") {
        checked += 1;
        let name = &case.name;
        let payload = case.payload();
        let parsed = parse_reply(&payload);
        if !case.valid {
            assert!(parsed.is_err(), "{name}: accepted {parsed:?}");
            continue;
        }
        let (id, reply) = parsed.unwrap_or_else(|error| panic!("{name}: {error}"));
        let expected_id: u64 = case.get("id");
        assert_eq!(id as u64, expected_id, "{name}");
        let outcome: String = case.get("outcome");
        let mut out = Vec::new();
        match (outcome.as_str(), reply) {
            ("ok", Reply::Ok(result)) => {
                assert_eq!(
                    result.map(|raw| compact(raw.get())),
                    case.json("result"),
                    "{name}"
                );
                let result = raw_value(compact(case.raw("result").get()));
                encode_ok(&mut out, expected_id, &*result, MAX_FRAME).unwrap();
            }
            ("done", Reply::Ok(None)) => encode_done(&mut out, expected_id, MAX_FRAME).unwrap(),
            ("error", Reply::Error(error)) => {
                let expected: WorkerError = case.get("error");
                assert_eq!(error, expected, "{name}");
                encode_error(&mut out, expected_id, &expected, MAX_FRAME).unwrap();
            }
            ("chunk", Reply::Chunk(chunk)) => {
                let expected = compact(case.raw("chunk").get());
                assert_eq!(compact(chunk.data.get()), expected, "{name}");
                let is_final = case.optional::<bool>("is_final").unwrap_or(false);
                assert_eq!(chunk.is_final, is_final, "{name}");
                let metadata = case
                    .optional::<&RawValue>("metadata")
                    .map(|raw| compact(raw.get()));
                let parsed = chunk.metadata.map(|raw| compact(raw.get()));
                assert_eq!(parsed, metadata, "{name}");
                let data = raw_value(expected);
                match metadata.map(raw_value) {
                    None if !is_final => encode_chunk(&mut out, expected_id, &*data, MAX_FRAME),
                    metadata => encode_marked_chunk(
                        &mut out,
                        expected_id,
                        &*data,
                        is_final,
                        metadata.as_deref(),
                        MAX_FRAME,
                    ),
                }
                .unwrap();
            }
            (outcome, other) => panic!("{name}: expected {outcome}, got {other:?}"),
        }
        if !case.parse_only {
            assert_eq!(
                String::from_utf8_lossy(&out[HEADER_LEN..]),
                String::from_utf8_lossy(&payload),
                "{name}: encoded"
            );
            assert_eq!(out, case.frame(), "{name}: encoded");
        }
    }
    assert!(checked > 0);
}

#[test]
fn every_kind_of_case_is_there() {
    let cases = cases();
    let count = |kind: &str, valid: bool| {
        cases
            .iter()
            .filter(|case| case.kind == kind && case.valid == valid)
            .count()
    };
    for kind in [
        "request",
        "cancel",
        "heartbeat",
        "session_end",
        "credit",
        "control",
        "handshake",
        "reply",
    ] {
        assert!(count(kind, true) > 0, "no valid {kind}");
    }
    for kind in [
        "request",
        "heartbeat",
        "session_end",
        "credit",
        "handshake",
        "reply",
        "frame",
    ] {
        assert!(count(kind, false) > 0, "no invalid {kind}");
    }
    for outcome in ["ok", "error", "chunk", "done"] {
        assert!(
            cases.iter().any(|case| case.kind == "reply"
                && case.valid
                && case.get::<String>("outcome") == outcome),
            "no {outcome} reply"
        );
    }
}
