//! Messages to the process that owns the pool (`Snakepit.Pool`): life-cycle events and the
//! lines workers print, which it logs.

use rustler::{Encoder, Env, LocalPid, OwnedEnv, Term};

use crate::atoms;

#[derive(Clone)]
pub struct Owner {
    pid: LocalPid,
}

impl Owner {
    pub fn new(pid: LocalPid) -> Self {
        Owner { pid }
    }

    pub fn pid(&self) -> LocalPid {
        self.pid
    }

    /// Sends `{:snakepit_event, event}`. Only from threads the BEAM does not manage.
    pub fn event(&self, event: impl for<'a> FnOnce(Env<'a>) -> Term<'a>) {
        let mut env = OwnedEnv::new();
        let _ = env.send_and_clear(&self.pid, |env| {
            (atoms::snakepit_event(), event(env)).encode(env)
        });
    }

    /// Sends `{:snakepit_log, worker_id, :stdout | :stderr, line, session_id | nil}`, reusing
    /// `env`.
    pub fn log(
        &self,
        env: &mut OwnedEnv,
        worker_id: &str,
        stderr: bool,
        line: &str,
        session_id: Option<&str>,
    ) {
        let stream = if stderr {
            atoms::stderr()
        } else {
            atoms::stdout()
        };
        let _ = env.send_and_clear(&self.pid, |env| {
            (atoms::snakepit_log(), worker_id, stream, line, session_id).encode(env)
        });
    }
}
