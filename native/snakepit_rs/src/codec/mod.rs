//! Terms ↔ JSON.
//!
//! Encoding walks the term once and writes JSON straight into the request frame, keeping the path
//! from the root so that a term that cannot cross (a pid, a ref, a fun, a port, a non-UTF-8 binary,
//! an improper list, map keys that would become the same JSON key) is reported with where it was,
//! e.g. `args.user["ids"][2]`.
//!
//! Structs are maps with an atom under `__struct__`: the calendar ones (`Date`, `Time`,
//! `NaiveDateTime`, `DateTime` in `Calendar.ISO`) are written as the ISO 8601 strings Jason
//! writes for them (`calendar`), any other is refused, naming it and where it was.
//!
//! Decoding parses the JSON text and builds terms as it goes (no intermediate value): objects
//! become maps with string keys, arrays lists, `null` `nil`. It is a parser of its own rather than
//! serde_json's because serde_json turns an integer beyond 64 bits into a float (its exact digits
//! need the `arbitrary_precision` feature, which allocates a string per number) and nests at most
//! 127 levels.
//!
//! Integers of any size cross exactly both ways; those beyond 64 bits go through `num-bigint`
//! (rustler's `big_integer` feature), off the common path. Both ways nest at most [`MAX_DEPTH`]
//! levels, so that whatever can be sent can be received back.

mod calendar;
mod decode;
mod encode;

pub use decode::{json_to_term, DecodeError};
pub use encode::{EncodeError, JsonWriter};

/// Deepest nesting of lists, tuples and maps (JSON arrays and objects) accepted, the same both
/// ways: `[[1]]` nests 2 levels. Encoding and decoding recurse, and a scheduler thread's stack is
/// small.
pub const MAX_DEPTH: usize = 128;
