//! The resource Elixir holds for a pool. It monitors the pool's owner (when the owner dies,
//! however it dies, the workers are stopped) and callers waiting in the queue (when one dies,
//! its request is dropped).

use std::sync::Arc;
use std::time::Duration;

use rustler::{Env, LocalPid, Monitor};

use crate::pool::Pool;
use crate::runtime::runtime;

pub struct PoolResource {
    pub pool: Arc<Pool>,
    /// The process that owns the pool (`Snakepit.Pool`).
    pub owner: LocalPid,
}

// Both callbacks run on scheduler threads: they hand their work to the runtime rather than wait
// for the pool's lock there (a callback waiting on a lock held while ERTS is entered could
// deadlock, and a scheduler must not wait anyway).
#[rustler::resource_impl]
impl rustler::Resource for PoolResource {
    fn down<'a>(&'a self, _env: Env<'a>, pid: LocalPid, monitor: Monitor) {
        let pool = Arc::clone(&self.pool);
        if pid == self.owner {
            runtime().spawn_blocking(move || stop(&pool));
        } else {
            runtime().spawn_blocking(move || pool.caller_down(monitor));
        }
    }
}

impl Drop for PoolResource {
    fn drop(&mut self) {
        let pool = Arc::clone(&self.pool);
        runtime().spawn_blocking(move || stop(&pool));
    }
}

/// Stops the pool (on a runtime thread, where waiting is fine).
fn stop(pool: &Pool) {
    if pool.begin_stop(None) {
        pool.await_stopped(Duration::from_millis(pool.config.shutdown_grace_ms));
    }
}
