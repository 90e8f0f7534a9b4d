//! Wire protocol v1 of snakepit_rs (see `docs/protocol.md`): 4-byte big-endian length-prefixed
//! frames carrying JSON messages. Kept free of rustler so that it is unit-tested with plain
//! `cargo test` and shared by the NIF and by test workers.

pub mod frame;
pub mod message;
