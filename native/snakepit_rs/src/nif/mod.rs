//! The NIF entry points `Snakepit.Native` binds, one file per group (the Elixir stubs carry the
//! same prefixes): `pool_*` life cycle and introspection, requests, and the codec. Each is thin:
//! decode arguments, call the pool, encode the answer.

mod codec;
mod pool;
mod request;
