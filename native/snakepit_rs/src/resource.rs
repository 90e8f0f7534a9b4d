//! The pool as the resource Elixir holds. It monitors the pool's owner (when the owner dies,
//! however it dies, the workers are stopped), callers waiting in the queue (when one dies, its
//! request is dropped) and callers of running streams (when one dies, its stream is halted). The callback runs on a scheduler thread: it only posts a job to the
//! pool's supervisor, never takes a lock.

use rustler::{Env, LocalPid, Monitor};

use crate::pool::{Job, Pool};

#[rustler::resource_impl]
impl rustler::Resource for Pool {
    fn down<'a>(&'a self, _env: Env<'a>, pid: LocalPid, monitor: Monitor) {
        if pid == self.owner.pid() {
            self.post(Job::OwnerDown);
        } else {
            self.post(Job::CallerDown(monitor));
        }
    }
}
