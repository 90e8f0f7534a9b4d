//! snakepit_watchdog: kills the process groups of snakepit_rs workers once the BEAM is gone.
//!
//! Each worker dies with the BEAM through `PR_SET_PDEATHSIG`, but that signal reaches only the
//! worker itself: processes the worker started (a model server, a `subprocess.Popen`) would be
//! left running. The BEAM starts this program once, with a pipe on its stdin, and tells it about
//! each worker's process group:
//!
//! ```text
//! +1234      worker group 1234 exists
//! -1234      worker group 1234 is gone
//! ```
//!
//! When the pipe reaches end of file — the BEAM exited, however it exited, since the kernel
//! closes a dead process's descriptors — every group still listed gets SIGKILL, and the watchdog
//! exits.

use std::collections::BTreeSet;
use std::io::{self, BufRead};

fn main() {
    // Its own process group: a Ctrl-C or hang-up meant for the BEAM's group must not reach it.
    unsafe {
        libc::setpgid(0, 0);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let mut groups = BTreeSet::new();
    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        apply(&mut groups, &line);
    }
    for group in groups {
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
    }
}

/// Applies one `+pgid` or `-pgid` line; anything else is ignored.
fn apply(groups: &mut BTreeSet<libc::pid_t>, line: &str) {
    let line = line.trim();
    let (sign, number) = line.split_at(line.len().min(1));
    // Group ids 0 and 1 would mean "my group" and init's: never signal those.
    let Ok(group) = number.parse::<libc::pid_t>() else {
        return;
    };
    if group <= 1 {
        return;
    }
    match sign {
        "+" => {
            groups.insert(group);
        }
        "-" => {
            groups.remove(&group);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_additions_and_removals() {
        let mut groups = BTreeSet::new();
        for line in [
            "+100", "+200", "-100", "+300\n", "junk", "", "+0", "+1", "+-5", "*7",
        ] {
            apply(&mut groups, line);
        }
        assert_eq!(groups.into_iter().collect::<Vec<_>>(), vec![200, 300]);
    }
}
