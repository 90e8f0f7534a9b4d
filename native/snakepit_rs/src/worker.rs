//! One worker: an OS process (how it is launched — fd 3 requests, fd 4 replies, fd 5 control
//! frames, own process group, parent-death signal, no inherited descriptors — and signalled), or a BEAM process
//! running an Elixir adapter (`beam.rs`). The pool and its core treat both alike.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustler::{Env, LocalPid};

use snakepit_core::Send;
use snakepit_protocol::handshake::{
    Handshake, CONTROL_CREDIT, CONTROL_HEARTBEAT, CONTROL_SESSION_END,
};
use snakepit_protocol::request::{
    encode_cancel, encode_credit, encode_heartbeat, encode_request, encode_session_end, RequestHead,
};

use crate::beam::BeamProcess;
use crate::config::PoolConfig;
use crate::request_pipe::RequestPipe;

/// The fds a worker reads requests from and writes replies to (Erlang's `:nouse_stdio` convention).
const CHILD_REQUEST_FD: RawFd = 3;
const CHILD_REPLY_FD: RawFd = 4;
/// The fd a worker may read control frames (cancel) from while a tool runs, if its handshake says
/// it does (`control_fd`); other workers get them in the request stream.
const CHILD_CONTROL_FD: RawFd = 5;

/// The command health checks send to an OS process that does not announce heartbeat frames.
const HEALTH_CHECK_COMMAND: &str = "ping";

/// Shared handle to a running worker, held by the pool and by the worker's reader thread.
pub struct WorkerHandle {
    /// Unique across the BEAM run; tells a replacement apart from the worker it replaced.
    pub uid: u64,
    /// Human-readable id (`<pool>_worker_<uid>`), used in logs, stats and errors.
    pub id: String,
    endpoint: Endpoint,
    /// Whether the worker's handshake announced heartbeat frames: its health checks are then
    /// heartbeats, never a request that an adapter's own `ping` tool could answer. Set once, by
    /// the reader, before the worker is installed (and so before any health check).
    heartbeat: AtomicBool,
    /// Whether the worker's handshake said it reads control frames from its control descriptor:
    /// its cancel frames then go there, where it sees them while the tool runs. Set with
    /// `heartbeat`.
    control_fd: AtomicBool,
    /// Whether the worker's handshake announced session-end frames (it keeps per-session
    /// state). Set with `heartbeat`.
    session_end: AtomicBool,
    /// Whether the worker's handshake announced stream credit: its streams then get a window,
    /// and credit frames where its cancel frames go. Set with `heartbeat`.
    credit: AtomicBool,
}

/// Where a worker's requests go.
enum Endpoint {
    /// An OS process: frames are written to its request pipe.
    Process {
        os_pid: u32,
        requests: Arc<RequestPipe>,
        control: Arc<RequestPipe>,
    },
    /// A BEAM process: requests are sent as messages.
    Beam(BeamProcess),
}

/// A freshly spawned worker: its handle plus the ends only the reader and log tasks use.
pub struct Spawned {
    pub handle: Arc<WorkerHandle>,
    pub os_pid: u32,
    pub child: Child,
    pub replies: File,
    pub stdout: ChildStdout,
    pub stderr: ChildStderr,
}

impl WorkerHandle {
    /// A worker that is a BEAM process.
    pub fn beam(uid: u64, id: String, process: BeamProcess) -> Self {
        WorkerHandle {
            uid,
            id,
            endpoint: Endpoint::Beam(process),
            heartbeat: AtomicBool::new(false),
            control_fd: AtomicBool::new(false),
            session_end: AtomicBool::new(false),
            credit: AtomicBool::new(false),
        }
    }

    /// Keeps what the worker's ready handshake said it understands.
    pub fn handshaken(&self, handshake: &Handshake) {
        let heartbeat = handshake.accepts_control(CONTROL_HEARTBEAT);
        self.heartbeat.store(heartbeat, Ordering::Release);
        let control_fd = handshake.reads_control_fd();
        self.control_fd.store(control_fd, Ordering::Release);
        let session_end = handshake.accepts_control(CONTROL_SESSION_END);
        self.session_end.store(session_end, Ordering::Release);
        let credit = handshake.accepts_control(CONTROL_CREDIT);
        self.credit.store(credit, Ordering::Release);
    }

    /// Whether the worker's streams get a credit window (`snakepit_core::stream`).
    pub fn takes_credit(&self) -> bool {
        self.credit.load(Ordering::Acquire)
    }

    /// Whether health checks reach this worker as heartbeat frames.
    pub fn takes_heartbeats(&self) -> bool {
        self.heartbeat.load(Ordering::Acquire)
    }

    /// The OS process id; `None` for a BEAM worker.
    pub fn os_pid(&self) -> Option<u32> {
        match &self.endpoint {
            Endpoint::Process { os_pid, .. } => Some(*os_pid),
            Endpoint::Beam(_) => None,
        }
    }

    /// The BEAM process of a BEAM worker.
    pub fn beam_pid(&self) -> Option<LocalPid> {
        match &self.endpoint {
            Endpoint::Process { .. } => None,
            Endpoint::Beam(process) => Some(process.pid()),
        }
    }

    /// Hands the worker a request, a cancel, a stream credit or a health check. `env` is the calling NIF's
    /// environment when on a BEAM thread (a BEAM worker's message is sent from it).
    pub fn send(&self, env: Option<Env>, send: Send) {
        match &self.endpoint {
            // An OS process gets a frame (see `RequestPipe::send`).
            Endpoint::Process {
                requests, control, ..
            } => match send {
                Send::Frame(frame) => requests.send(frame),
                Send::Cancel(id) if self.control_fd.load(Ordering::Acquire) => {
                    control.send(encode_cancel(id))
                }
                Send::Cancel(id) => requests.send(encode_cancel(id)),
                Send::Credit(id, credit) if self.control_fd.load(Ordering::Acquire) => {
                    control.send(encode_credit(id, credit))
                }
                Send::Credit(id, credit) => requests.send(encode_credit(id, credit)),
                Send::HealthCheck(id) if self.takes_heartbeats() => {
                    requests.send(encode_heartbeat(id))
                }
                Send::HealthCheck(id) => requests.send(ping_frame(id)),
            },
            Endpoint::Beam(process) => process.send(env, send),
        }
    }

    /// Tells an OS worker that announced session-end frames that session `session_id` ended, in
    /// its request stream (it acts between requests). Others keep no per-session state the
    /// pool knows of: nothing is sent.
    pub fn end_session(&self, session_id: &str) {
        if let Endpoint::Process { requests, .. } = &self.endpoint {
            if self.session_end.load(Ordering::Acquire) {
                requests.send(encode_session_end(session_id));
            }
        }
    }

    /// Asks the worker to exit: closes an OS process's request and control pipes (a well-behaved
    /// worker exits on end of file); tells a BEAM worker to finish.
    pub fn close_requests(&self, env: Option<Env>) {
        match &self.endpoint {
            Endpoint::Process {
                requests, control, ..
            } => {
                requests.close();
                control.close();
            }
            Endpoint::Beam(process) => process.close(env),
        }
    }

    /// Asks the worker to go and makes sure it does: SIGKILL to an OS process's group; a BEAM
    /// process is killed by the pool's owner.
    pub fn kill(&self, env: Option<Env>) {
        match &self.endpoint {
            Endpoint::Process { .. } => {
                self.close_requests(env);
                self.signal_group(libc::SIGKILL);
            }
            Endpoint::Beam(process) => process.kill(env),
        }
    }

    /// Signals an OS worker's whole process group (the worker and anything it started). A BEAM
    /// worker has no process group: nothing happens.
    pub fn signal_group(&self, signal: libc::c_int) {
        if let Endpoint::Process { os_pid, .. } = &self.endpoint {
            unsafe {
                libc::kill(-(*os_pid as libc::pid_t), signal);
            }
        }
    }
}

/// A health check for a worker that does not take heartbeats: an ordinary `ping` request (see
/// docs/protocol.md).
fn ping_frame(id: u64) -> Vec<u8> {
    let mut frame = Vec::with_capacity(96);
    let head = RequestHead {
        command: HEALTH_CHECK_COMMAND,
        session_id: None,
        stream: false,
    };
    let no_args = |out: &mut Vec<u8>| {
        out.extend_from_slice(b"{}");
        Ok::<(), ()>(())
    };
    encode_request(&mut frame, id, &head, no_args, usize::MAX)
        .expect("a health check frame is small");
    frame
}

/// A worker's human-readable id: `<pool>_worker_<uid>`.
pub fn worker_id(config: &PoolConfig, uid: u64) -> String {
    format!("{}_worker_{}", config.name, uid)
}

/// Spawns a worker. Must run on the spawner thread (see `runtime`).
pub fn spawn(config: &PoolConfig, uid: u64) -> io::Result<Spawned> {
    let id = worker_id(config, uid);
    let (request_read, request_write) = pipe()?;
    let (reply_read, reply_write) = pipe()?;
    let (control_read, control_write) = pipe()?;

    let mut command = Command::new(&config.executable);
    command
        .args(&config.args)
        .envs(config.env.iter().map(|(k, v)| (k, v)))
        .env("SNAKEPIT_PROTOCOL", "1")
        .env("SNAKEPIT_REQUEST_FD", CHILD_REQUEST_FD.to_string())
        .env("SNAKEPIT_REPLY_FD", CHILD_REPLY_FD.to_string())
        .env("SNAKEPIT_CONTROL_FD", CHILD_CONTROL_FD.to_string())
        .env("SNAKEPIT_WORKER_ID", &id)
        .env("SNAKEPIT_RUN_ID", &config.run_id)
        .env("SNAKEPIT_MAX_FRAME_SIZE", config.max_frame_size.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(cwd) = &config.cwd {
        command.current_dir(cwd);
    }
    let parent = unsafe { libc::getpid() };
    let child_fds = [
        request_read.as_raw_fd(),
        reply_write.as_raw_fd(),
        control_read.as_raw_fd(),
    ];
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            place_fds(child_fds)?;
            // Nothing else of the BEAM's (sockets, other workers' pipes) leaks into the worker.
            libc::syscall(libc::SYS_close_range, 6u32, u32::MAX, 0u32);
            // The BEAM ignores SIGCHLD (and SIGFPE), and ignored signals survive exec: a worker
            // would then get no exit status from its own children (Python's subprocess reports 0
            // for every command). Start with every signal at its default.
            for signal in 1..32 {
                if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                    libc::signal(signal, libc::SIG_DFL);
                }
            }
            // Own process group, so stopping the worker reaches everything it started.
            if libc::setpgid(0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // Die with the BEAM even when it is killed with SIGKILL.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    drop((request_read, reply_write, control_read));
    let os_pid = child.id();
    if let Some(watchdog) = &config.watchdog {
        crate::watchdog::watch(watchdog, os_pid);
    }
    if let Some(registry) = &config.registry_file {
        crate::registry::record(registry, os_pid);
    }
    let handle = Arc::new(WorkerHandle {
        uid,
        id,
        endpoint: Endpoint::Process {
            os_pid,
            requests: RequestPipe::new(request_write)?,
            control: RequestPipe::new(control_write)?,
        },
        heartbeat: AtomicBool::new(false),
        control_fd: AtomicBool::new(false),
        session_end: AtomicBool::new(false),
        credit: AtomicBool::new(false),
    });
    Ok(Spawned {
        handle,
        os_pid,
        stdout: child.stdout.take().expect("piped stdout"),
        stderr: child.stderr.take().expect("piped stderr"),
        child,
        replies: File::from(reply_read),
    })
}

/// Puts the pipe ends (requests, replies, control) on fds 3, 4 and 5 in the child. All are first
/// copied above 10 (closed on exec) so that no `dup2` can overwrite another end, wherever the
/// originals happen to sit. Async-signal-safe: no allocation.
unsafe fn place_fds(fds: [RawFd; 3]) -> io::Result<()> {
    let targets = [CHILD_REQUEST_FD, CHILD_REPLY_FD, CHILD_CONTROL_FD];
    let mut copies = [-1; 3];
    for (copy, fd) in copies.iter_mut().zip(fds) {
        *copy = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10);
        if *copy < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    for (copy, target) in copies.into_iter().zip(targets) {
        if libc::dup2(copy, target) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
