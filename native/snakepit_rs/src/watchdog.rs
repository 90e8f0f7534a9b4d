//! The BEAM's side of `snakepit_watchdog` (native/snakepit_watchdog): one watchdog process per
//! BEAM, told about every worker process group so that it can kill them all if the BEAM dies.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};

use parking_lot::Mutex;

struct Watchdog {
    /// Its stdin: closed by the kernel when the BEAM dies, which is the watchdog's cue.
    stdin: ChildStdin,
    /// Kept so the process is not reported as a zombie-to-be by anyone; never waited on.
    _child: Child,
}

struct State {
    watchdog: Option<Watchdog>,
    /// Groups registered, to re-register with a new watchdog if the old one died.
    groups: BTreeSet<u32>,
}

static STATE: Mutex<State> = Mutex::new(State {
    watchdog: None,
    groups: BTreeSet::new(),
});

/// Registers a worker's process group, starting the watchdog at `program` if none runs.
pub fn watch(program: &str, group: u32) {
    let mut state = STATE.lock();
    state.groups.insert(group);
    if state.watchdog.is_none() {
        match start(program) {
            Ok(watchdog) => state.watchdog = Some(watchdog),
            Err(_) => return,
        }
        let lines: String = state.groups.iter().map(|g| format!("+{g}\n")).collect();
        send(&mut state, &lines);
    } else {
        send(&mut state, &format!("+{group}\n"));
    }
}

/// Unregisters a group whose worker has been reaped.
pub fn unwatch(group: u32) {
    let mut state = STATE.lock();
    if state.groups.remove(&group) {
        send(&mut state, &format!("-{group}\n"));
    }
}

fn start(program: &str) -> std::io::Result<Watchdog> {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(program);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: close_range is async-signal-safe. It keeps the BEAM's descriptors (listening
    // sockets among them) from living on in the watchdog.
    unsafe {
        command.pre_exec(|| {
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    let stdin = child.stdin.take().expect("piped stdin");
    Ok(Watchdog {
        stdin,
        _child: child,
    })
}

/// Writes to the watchdog; if it is gone, forgets it (the next `watch` starts another).
fn send(state: &mut State, lines: &str) {
    if let Some(watchdog) = state.watchdog.as_mut() {
        if watchdog.stdin.write_all(lines.as_bytes()).is_err() {
            state.watchdog = None;
        }
    }
}
