//! The names the NIF has used since the first slice, kept here so that its imports stand; new
//! code imports from [`crate::handshake`] and [`crate::reply`].

pub use crate::handshake::{Handshake, PROTOCOL_VERSION};
pub use crate::reply::{parse_reply, ProtocolViolation, Reply, ReplyFrame, WorkerError};
