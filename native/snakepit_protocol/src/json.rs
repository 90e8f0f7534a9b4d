//! JSON text written straight into frame buffers, and the error of the worker-side encoders.

use serde::Serialize;

use crate::frame::{begin_frame, finish_frame, FrameError};

/// Writes `text` as a JSON string literal, escaped as serde_json escapes (`"`, `\`, control
/// characters; everything else as UTF-8). Allocates nothing besides growing `out`.
pub fn write_json_str(out: &mut Vec<u8>, text: &str) {
    serde_json::to_writer(out, text).expect("writing to a Vec cannot fail");
}

/// Writes `n` in decimal, formatted on the stack.
pub(crate) fn write_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Why a message could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The value has no JSON form (e.g. a map with non-string keys).
    #[error("cannot encode as JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// The message is larger than the maximum frame size; a worker answers with a
    /// `FrameTooLarge` failure instead.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Writes `value` as compact JSON.
pub(crate) fn write_json<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    value: &T,
) -> Result<(), EncodeError> {
    serde_json::to_writer(out, value).map_err(EncodeError::Json)
}

/// A whole frame holding `value` as compact JSON.
pub(crate) fn encode_json_frame<T: Serialize + ?Sized>(
    value: &T,
    max_frame: usize,
) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    begin_frame(&mut out);
    write_json(&mut out, value)?;
    finish_frame(&mut out, max_frame)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_like_serde_json() {
        let mut out = Vec::new();
        write_json_str(&mut out, "a\"b\\c\n\u{1}é🐍/");
        assert_eq!(out, "\"a\\\"b\\\\c\\n\\u0001é🐍/\"".as_bytes());
    }

    #[test]
    fn numbers_in_decimal() {
        let mut out = Vec::new();
        write_u64(&mut out, u64::MAX);
        assert_eq!(out, b"18446744073709551615");
    }
}
