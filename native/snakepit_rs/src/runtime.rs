//! Process-wide threads: the tokio runtime for everything off the request path (start-up,
//! handshake timeouts, log forwarding, replacements, slow writes), and the spawner thread.
//!
//! Workers are forked from the spawner thread alone because `PR_SET_PDEATHSIG` fires when the
//! *thread* that forked the child exits, not the process: a tokio blocking thread that retires
//! after idling would take its workers with it. The spawner lives as long as the BEAM.

use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

use tokio::runtime::{Builder, Runtime};
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("snakepit-rt")
            .enable_all()
            .build()
            .expect("cannot start the snakepit tokio runtime")
    })
}

fn spawner() -> &'static Mutex<mpsc::Sender<Job>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (sender, receiver) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("snakepit-spawner".into())
            .spawn(move || {
                while let Ok(job) = receiver.recv() {
                    job();
                }
            })
            .expect("cannot start the snakepit spawner thread");
        Mutex::new(sender)
    })
}

/// Runs `job` on the spawner thread and awaits its result.
pub async fn on_spawner_thread<R: Send + 'static>(job: impl FnOnce() -> R + Send + 'static) -> R {
    let (sender, receiver) = oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = sender.send(job());
    });
    spawner()
        .lock()
        .unwrap()
        .send(job)
        .expect("spawner thread is gone");
    receiver.await.expect("spawner thread dropped a job")
}
