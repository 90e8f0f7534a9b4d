//! Property tests of the wire protocol: the frame decoder against a plain reference decoder, and
//! `parse_reply` against the protocol's definition of a reply.
//!
//! Each property runs 256 cases by default, well under a second in all; set `PROPTEST_CASES` to
//! run more, e.g. `PROPTEST_CASES=100000 cargo test --release -p snakepit_protocol --test
//! properties`.

use std::collections::VecDeque;
use std::io::{self, Read};

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{Map, Value};
use snakepit_protocol::frame::{encode_frame, FrameDecoder, FrameError, HEADER_LEN};
use snakepit_protocol::reply::{parse_reply, Reply, WorkerError};

/// 256 cases unless `PROPTEST_CASES` says otherwise. (`ProptestConfig::with_cases` would override
/// the variable, which only `ProptestConfig::default()` reads.) Failures are not persisted to a
/// regressions file: proptest prints the minimal failing input, to be made a unit test.
fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 256;
    }
    config.failure_persistence = None;
    config
}

// ---------------------------------------------------------------------------------------------
// Frames

/// Maximum frame size in the round-trip properties: large enough for the occasional big payload.
const BIG_MAX: usize = 1 << 20;

/// A payload: mostly small and random, sometimes larger than the decoder's 64 KiB read size.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => vec(any::<u8>(), 0..64),
        1 => (64 * 1024usize..200_000, any::<u8>())
            .prop_map(|(len, seed)| (0..len).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()),
    ]
}

/// Encodes and concatenates `payloads`, as a worker writes them to its pipe.
fn wire_of(payloads: &[Vec<u8>], max: usize) -> Vec<u8> {
    payloads
        .iter()
        .flat_map(|payload| encode_frame(payload, max).unwrap())
        .collect()
}

/// Cuts `wire` into consecutive non-empty pieces at `cuts` (taken modulo its length).
fn split<'w>(wire: &'w [u8], cuts: &[usize]) -> Vec<&'w [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|cut| cut % (wire.len() + 1)).collect();
    points.extend([0, wire.len()]);
    points.sort_unstable();
    points.dedup();
    points.windows(2).map(|w| &wire[w[0]..w[1]]).collect()
}

/// A pipe that hands out one piece per `read` (or part of it when the caller's buffer is smaller),
/// then end of file. Records the largest buffer it was offered.
struct Pieces<'w> {
    pieces: VecDeque<&'w [u8]>,
    largest_offer: usize,
}

impl<'w> Pieces<'w> {
    fn new(pieces: Vec<&'w [u8]>) -> Self {
        Pieces {
            pieces: pieces.into(),
            largest_offer: 0,
        }
    }
}

impl Read for Pieces<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.largest_offer = self.largest_offer.max(out.len());
        let Some(piece) = self.pieces.pop_front() else {
            return Ok(0);
        };
        let n = piece.len().min(out.len());
        out[..n].copy_from_slice(&piece[..n]);
        if n < piece.len() {
            self.pieces.push_front(&piece[n..]);
        }
        Ok(n)
    }
}

/// Takes every complete frame out of `decoder`, stopping at the first error.
fn drain(decoder: &mut FrameDecoder, frames: &mut Vec<Vec<u8>>) -> Result<(), FrameError> {
    while let Some(frame) = decoder.next_frame()? {
        frames.push(frame.to_vec());
    }
    Ok(())
}

/// The reference decoder: the frames a whole byte stream holds, and the error that ends it if any.
fn reference_decode(mut wire: &[u8], max: usize) -> (Vec<Vec<u8>>, Option<FrameError>) {
    let mut frames = Vec::new();
    while wire.len() >= HEADER_LEN {
        let len = u32::from_be_bytes(wire[..HEADER_LEN].try_into().unwrap()) as usize;
        if len > max {
            return (frames, Some(FrameError::TooLarge { len, max }));
        }
        let Some(payload) = wire.get(HEADER_LEN..HEADER_LEN + len) else {
            break;
        };
        frames.push(payload.to_vec());
        wire = &wire[HEADER_LEN + len..];
    }
    (frames, None)
}

/// Bytes mostly cut into frames of small lengths (around the small maxima used with them), with
/// stray headers and junk in between, so that frames, truncated frames and oversized
/// announcements all occur.
fn noisy_stream() -> impl Strategy<Value = Vec<u8>> {
    let frame = |lengths| {
        vec(any::<u8>(), lengths)
            .prop_map(|payload| [&(payload.len() as u32).to_be_bytes()[..], &payload].concat())
    };
    let segment = prop_oneof![
        8 => frame(0..40),
        1 => frame(0..96),
        1 => (0u32..80).prop_map(|len| len.to_be_bytes().to_vec()),
        1 => vec(any::<u8>(), 0..8),
    ];
    vec(segment, 0..12).prop_map(|segments| segments.concat())
}

proptest! {
    #![proptest_config(config())]

    /// Encoded payloads pushed in arbitrary pieces come out whole, in order, and nothing stays
    /// buffered; in between, `buffered()` is what was pushed minus what came out.
    #[test]
    fn pushed_pieces_decode_to_the_payloads(
        payloads in vec(payload(), 0..8),
        cuts in vec(any::<usize>(), 0..16),
    ) {
        let wire = wire_of(&payloads, BIG_MAX);
        let mut decoder = FrameDecoder::new(BIG_MAX);
        let mut frames = Vec::new();
        let mut pushed = 0;
        for piece in split(&wire, &cuts) {
            decoder.push(piece);
            pushed += piece.len();
            drain(&mut decoder, &mut frames).unwrap();
            let consumed: usize = frames.iter().map(|f| HEADER_LEN + f.len()).sum();
            prop_assert_eq!(decoder.buffered(), pushed - consumed);
        }
        prop_assert_eq!(frames, payloads);
        prop_assert_eq!(decoder.buffered(), 0);
    }

    /// The same through `read_from`, with a pipe that returns arbitrary chunk sizes.
    #[test]
    fn reads_of_any_size_decode_to_the_payloads(
        payloads in vec(payload(), 0..8),
        cuts in vec(any::<usize>(), 0..16),
    ) {
        let wire = wire_of(&payloads, BIG_MAX);
        let mut pipe = Pieces::new(split(&wire, &cuts));
        let mut decoder = FrameDecoder::new(BIG_MAX);
        let mut frames = Vec::new();
        while decoder.read_from(&mut pipe).unwrap() > 0 {
            drain(&mut decoder, &mut frames).unwrap();
        }
        prop_assert_eq!(frames, payloads);
        prop_assert_eq!(decoder.buffered(), 0);
    }

    /// Any bytes, in any pieces, against any maximum: no panic, the same frames and error as the
    /// reference decoder, no frame above `max`, and an error that sticks once reported.
    #[test]
    fn any_bytes_decode_like_the_reference(
        wire in prop_oneof![3 => noisy_stream(), 1 => vec(any::<u8>(), 0..256)],
        cuts in vec(any::<usize>(), 0..16),
        max in 0usize..64,
    ) {
        let mut decoder = FrameDecoder::new(max);
        let mut frames = Vec::new();
        let mut error = None;
        for piece in split(&wire, &cuts) {
            decoder.push(piece);
            if let Err(e) = drain(&mut decoder, &mut frames) {
                error = Some(e);
                break;
            }
        }
        prop_assert!(frames.iter().all(|frame| frame.len() <= max));
        let (expected_frames, expected_error) = reference_decode(&wire, max);
        prop_assert_eq!(&frames, &expected_frames);
        prop_assert_eq!(&error, &expected_error);
        if let Some(FrameError::TooLarge { len, max: reported_max }) = error {
            // The reported length is the one announced by the header after the last frame.
            let at: usize = frames.iter().map(|f| HEADER_LEN + f.len()).sum();
            let announced = u32::from_be_bytes(wire[at..at + HEADER_LEN].try_into().unwrap());
            prop_assert_eq!(len, announced as usize);
            prop_assert!(len > max && reported_max == max);
            prop_assert_eq!(decoder.next_frame(), Err(FrameError::TooLarge { len, max }));
        }
    }

    /// An oversized announcement is refused as soon as its 4 header bytes are in, without waiting
    /// for (or making room for) the payload: pushing the header byte by byte gives `None` three
    /// times, then the error.
    #[test]
    fn oversized_header_is_refused_on_sight(
        max in 0usize..(1 << 20),
        excess in any::<u32>(),
    ) {
        let len = (max as u64 + 1 + excess as u64).min(u32::MAX as u64) as usize;
        let header = (len as u32).to_be_bytes();
        let mut decoder = FrameDecoder::new(max);
        for byte in &header[..HEADER_LEN - 1] {
            decoder.push(std::slice::from_ref(byte));
            prop_assert_eq!(decoder.next_frame(), Ok(None));
        }
        decoder.push(&header[HEADER_LEN - 1..]);
        prop_assert_eq!(decoder.next_frame(), Err(FrameError::TooLarge { len, max }));
        prop_assert_eq!(decoder.buffered(), HEADER_LEN);
    }

    /// Through `read_from`, the room offered to the pipe after an oversized header does not grow
    /// with the announced length: it stays within the decoder's usual read size (64 KiB) or the
    /// largest acceptable frame, whichever is larger.
    #[test]
    fn oversized_header_does_not_size_the_reads(
        max in 0usize..(1 << 16),
        len in (1u32 << 17)..=u32::MAX,
    ) {
        let header = len.to_be_bytes();
        let tail = [0u8; 1024];
        let mut pipe = Pieces::new(vec![&header[..], &tail[..], &tail[..]]);
        let mut decoder = FrameDecoder::new(max);
        decoder.read_from(&mut pipe).unwrap();
        prop_assert_eq!(
            decoder.next_frame(),
            Err(FrameError::TooLarge { len: len as usize, max })
        );
        // Even a caller that keeps reading does not make the decoder reserve the announced size.
        while decoder.read_from(&mut pipe).unwrap() > 0 {}
        prop_assert!(pipe.largest_offer <= (64 * 1024).max(HEADER_LEN + max));
        prop_assert!(pipe.largest_offer < len as usize);
    }
}

// ---------------------------------------------------------------------------------------------
// Replies

/// Object keys: the reply's own field names often, random text otherwise.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(&["id", "ok", "result", "error", "chunk", "type", "message",
            "traceback"][..])
            .prop_map(str::to_string),
        1 => "\\PC{0,6}",
    ]
}

/// Any JSON value, nested a few levels.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from), // NaN and infinities become null
        "\\PC{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::Array),
            btree_map(key(), inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An `error` member as a worker would send it: each field absent, text, null or (rarely) any
/// other JSON value, and maybe a member the protocol does not know.
fn worker_error_object() -> impl Strategy<Value = Value> {
    let field = || {
        proptest::option::of(prop_oneof![
            6 => "\\PC{0,8}".prop_map(Value::String),
            1 => Just(Value::Null),
            1 => json(),
        ])
    };
    (field(), field(), field(), proptest::option::of(json())).prop_map(
        |(kind, message, traceback, extra)| {
            let members = [
                ("type", kind),
                ("message", message),
                ("traceback", traceback),
                ("extra", extra),
            ];
            let error = members
                .into_iter()
                .filter_map(|(name, value)| Some((name.to_string(), value?)))
                .collect();
            Value::Object(error)
        },
    )
}

/// An object shaped like a reply: each member absent, well-formed or of a wrong type.
fn reply_like() -> impl Strategy<Value = Value> {
    let id = prop_oneof![
        6 => any::<i64>().prop_map(Value::from),
        1 => (i64::MAX as u64 + 1..=u64::MAX).prop_map(Value::from),
        1 => json(),
    ];
    let ok = prop_oneof![
        6 => any::<bool>().prop_map(Value::Bool),
        1 => json(),
    ];
    let error = prop_oneof![
        6 => worker_error_object(),
        1 => json(),
    ];
    (
        proptest::option::weighted(0.9, id),
        proptest::option::weighted(0.8, ok),
        proptest::option::of(json()),
        proptest::option::weighted(0.7, error),
        proptest::option::weighted(0.3, prop_oneof![3 => json(), 1 => Just(Value::Null)]),
        btree_map("x\\PC{0,4}", json(), 0..2),
    )
        .prop_map(|(id, ok, result, error, chunk, extra)| {
            let mut reply: Map<String, Value> = extra.into_iter().collect();
            let members = [
                ("id", id),
                ("ok", ok),
                ("result", result),
                ("error", error),
                ("chunk", chunk),
            ];
            for (name, value) in members {
                if let Some(value) = value {
                    reply.insert(name.into(), value);
                }
            }
            Value::Object(reply)
        })
}

/// What a reply means, for comparison with `Reply` (raw JSON kept as text).
#[derive(Debug, PartialEq)]
enum Meaning {
    Ok(Option<String>),
    Error(WorkerError),
    Chunk(String),
}

impl From<Reply<'_>> for Meaning {
    fn from(reply: Reply<'_>) -> Self {
        match reply {
            Reply::Ok(result) => Meaning::Ok(result.map(|raw| raw.get().to_string())),
            Reply::Error(error) => Meaning::Error(error),
            Reply::Chunk(chunk) => Meaning::Chunk(chunk.data.get().to_string()),
        }
    }
}

/// An `error` member's fields, or `None` if they have the wrong types: `type`, `message` and
/// `traceback` are text when present and not null (`type` and `message` then default to "").
fn worker_error(error: &Map<String, Value>) -> Option<WorkerError> {
    let text = |name: &str| match error.get(name) {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s.clone())),
        Some(_) => None,
    };
    Some(WorkerError {
        kind: text("type")?.unwrap_or_default(),
        message: text("message")?.unwrap_or_default(),
        traceback: text("traceback")?,
    })
}

/// The protocol's reading of a frame holding `value`: an object with an integer `id` that is a
/// chunk (a `chunk` member, even `null`), a success (`ok: true`) or a failure (`ok: false` and an `error`
/// object). Members the reply uses must have their types when present and not null, whatever the
/// outcome: `ok` a boolean, `error` an object as in [`worker_error`]. Anything else is refused.
fn expected_reading(value: &Value) -> Option<(i64, Meaning)> {
    let reply = value.as_object()?;
    let id = reply.get("id")?.as_i64()?;
    let present = |name| reply.get(name).filter(|v| !v.is_null());
    let ok = match present("ok") {
        None => None,
        Some(v) => Some(v.as_bool()?),
    };
    let error = match present("error") {
        None => None,
        Some(v) => Some(worker_error(v.as_object()?)?),
    };
    let text = |v: &Value| serde_json::to_string(v).unwrap();
    let meaning = match (ok, error, reply.get("chunk")) {
        (_, _, Some(chunk)) => Meaning::Chunk(text(chunk)),
        (Some(true), _, _) => Meaning::Ok(present("result").map(text)),
        (Some(false), Some(error), _) => Meaning::Error(error),
        _ => return None,
    };
    Some((id, meaning))
}

/// `parse_reply`'s reading of `frame`, `None` when refused.
fn actual_reading(frame: &[u8]) -> Option<(i64, Meaning)> {
    parse_reply(frame)
        .ok()
        .map(|(id, reply)| (id, Meaning::from(reply)))
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary bytes never make `parse_reply` panic.
    #[test]
    fn parse_reply_survives_any_bytes(frame in vec(any::<u8>(), 0..256)) {
        let _ = parse_reply(&frame);
    }

    /// Arbitrary JSON, mostly reply-shaped objects, is read exactly as the protocol says.
    #[test]
    fn parse_reply_reads_json_per_protocol(
        value in prop_oneof![
            6 => reply_like(),
            2 => btree_map(key(), json(), 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            1 => json(),
        ],
    ) {
        let frame = serde_json::to_vec(&value).unwrap();
        prop_assert_eq!(actual_reading(&frame), expected_reading(&value), "frame: {}", value);
    }

    /// A reply and its `error` are JSON objects: arrays are refused, including those that would
    /// fill the fields in order (serde's derived `Deserialize` accepts that form for structs, so
    /// `parse_reply` once took `[id, false, null, ["type", "message"]]` for an error reply).
    #[test]
    fn parse_reply_refuses_arrays_as_objects(
        id in any::<i64>(),
        fields in vec("\\PC{0,8}", 0..3),
        top_level in any::<bool>(),
    ) {
        let error = Value::from(fields);
        let value = if top_level {
            serde_json::json!([id, false, null, error])
        } else {
            serde_json::json!({"id": id, "ok": false, "error": error})
        };
        let frame = serde_json::to_vec(&value).unwrap();
        prop_assert!(parse_reply(&frame).is_err(), "accepted {}", value);
    }
}
