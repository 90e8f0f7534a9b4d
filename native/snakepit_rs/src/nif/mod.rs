//! The NIF entry points `Snakepit.Native` binds, one file per group (the Elixir stubs carry the
//! same prefixes): `pool_*` life cycle and introspection, requests, streams, sessions, BEAM workers (`beam_worker_*`), and the
//! codec. Each is thin:
//! decode arguments, call the pool, encode the answer.

mod beam;
mod codec;
mod pool;
mod request;
mod session;
mod stream;
