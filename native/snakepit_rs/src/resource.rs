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

#[rustler::resource_impl]
impl rustler::Resource for PoolResource {
    fn down<'a>(&'a self, env: Env<'a>, pid: LocalPid, monitor: Monitor) {
        if pid == self.owner {
            stop_in_background(&self.pool, Some(env));
        } else {
            self.pool.caller_down(monitor);
        }
    }
}

impl Drop for PoolResource {
    fn drop(&mut self) {
        stop_in_background(&self.pool, None);
    }
}

/// Stops the pool without blocking the calling (scheduler) thread.
fn stop_in_background(pool: &Arc<Pool>, env: Option<Env>) {
    if pool.begin_stop(env) {
        let pool = Arc::clone(pool);
        let grace = Duration::from_millis(pool.config.shutdown_grace_ms);
        runtime().spawn_blocking(move || pool.await_stopped(grace));
    }
}
