//! Wire protocol v1 of snakepit_rs (see `docs/protocol.md`), both directions: 4-byte big-endian
//! length-prefixed frames carrying JSON messages. Kept free of rustler so that it is unit-tested
//! with plain `cargo test` and shared by the NIF and by Rust workers. `docs/protocol_vectors.json`
//! holds golden vectors that this crate (`tests/vectors.rs`) and the Python bridge are both
//! checked against.
//!
//! Layout:
//! - [`frame`]: the length-prefixed frames, and the incremental decoder.
//! - [`request`]: pool → worker: requests and control frames (cancel, heartbeat); encoded by the
//!   pool, parsed by workers.
//! - [`handshake`]: a worker's first frame, `ready` (commands, control frames understood) or
//!   `fatal`.
//! - [`reply`]: worker → pool: success, failure, stream chunks, a stream's final reply; parsed by
//!   the pool, encoded by workers.
//! - [`json`]: JSON text written straight into frame buffers; the encoders' error.

pub mod frame;
pub mod handshake;
pub mod json;
pub mod reply;
pub mod request;
