//! Sending a message to a BEAM process from whatever thread we are on. `enif_send` takes the
//! calling process's environment on a scheduler thread and an owned one elsewhere
//! (`OwnedEnv::send_and_clear` panics on a scheduler thread). With neither — a scheduler thread
//! outside a NIF call, which no caller of this module is today — the send goes to a runtime
//! thread.

use rustler::{Env, LocalPid, OwnedEnv, Term};

/// Sends what `message` builds to `pid`. `env` is the calling NIF's environment when on a BEAM
/// thread. A dead recipient is fine.
pub fn send<F>(env: Option<Env>, pid: &LocalPid, message: F)
where
    F: for<'a> FnOnce(Env<'a>) -> Term<'a> + std::marker::Send + 'static,
{
    if !rustler::thread::is_scheduler_thread() {
        let _ = OwnedEnv::new().send_and_clear(pid, message);
        return;
    }
    match env {
        Some(env) => {
            let _ = env.send(pid, message(env));
        }
        None => {
            let pid = *pid;
            crate::runtime::runtime().spawn_blocking(move || {
                let _ = OwnedEnv::new().send_and_clear(&pid, message);
            });
        }
    }
}
