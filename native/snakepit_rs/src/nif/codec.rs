//! Codec NIFs: results are decoded in the caller's process; `codec_to_json` shows what a worker
//! receives (for tests of the codec).

use rustler::{Binary, Encoder, Env, Term};

use crate::atoms;

/// Encodes a term as the JSON a worker would receive (for tests of the codec).
#[rustler::nif]
fn codec_to_json<'a>(env: Env<'a>, term: Term<'a>) -> Term<'a> {
    let mut out = Vec::new();
    match crate::codec::JsonWriter::new(&mut out, "args").write(term) {
        Ok(()) => (atoms::ok(), String::from_utf8(out).unwrap()).encode(env),
        Err(error) => (atoms::error(), error.to_string()).encode(env),
    }
}

/// Decodes a worker's JSON result in the caller's process: `{:ok, term}` or `{:error, message}`.
#[rustler::nif]
fn json_decode<'a>(env: Env<'a>, json: Binary<'a>) -> Term<'a> {
    decode_json(env, json)
}

/// `json_decode/1` for large results, which may take longer than a scheduler slice.
#[rustler::nif(schedule = "DirtyCpu")]
fn json_decode_dirty<'a>(env: Env<'a>, json: Binary<'a>) -> Term<'a> {
    decode_json(env, json)
}

fn decode_json<'a>(env: Env<'a>, json: Binary<'a>) -> Term<'a> {
    let decoded = std::str::from_utf8(json.as_slice())
        .map_err(|error| error.to_string())
        .and_then(|text| crate::codec::json_to_term(env, text).map_err(|e| e.to_string()));
    match decoded {
        Ok(term) => (atoms::ok(), term).encode(env),
        Err(message) => (atoms::error(), message).encode(env),
    }
}
