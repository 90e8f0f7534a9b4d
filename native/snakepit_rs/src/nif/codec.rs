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

/// Decodes a worker's JSON result in the caller's process: `{:ok, term}`, or
/// `{:error, {:invalid_result, message, %{}}}` when it cannot become a term (nested deeper than
/// `codec::MAX_DEPTH`, not JSON, a lone surrogate).
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
    match crate::codec::json_to_term(env, json.as_slice()) {
        Ok(term) => (atoms::ok(), term).encode(env),
        Err(error) => {
            let error = (
                atoms::invalid_result(),
                error.to_string(),
                Term::map_new(env),
            );
            (atoms::error(), error).encode(env)
        }
    }
}
