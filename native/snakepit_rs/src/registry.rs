//! The run's pid file for `Snakepit.ProcessRegistry`: the OS pids of live workers, so that a
//! later run can find leftovers of this one if it dies without stopping them.
//!
//! Pids are appended as workers spawn; a reaped worker is forgotten in memory, and once the file
//! holds more dead lines than live ones it is rewritten (atomically) with the live set only, so
//! recycling workers for days does not grow it without bound. The first line, written by
//! Elixir, identifies the BEAM and is kept.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io::Write;
use std::sync::LazyLock;

use parking_lot::Mutex;

struct PidFile {
    live: BTreeSet<u32>,
    /// Pid lines currently in the file.
    lines: usize,
}

static FILES: LazyLock<Mutex<HashMap<String, PidFile>>> = LazyLock::new(Default::default);

/// Records a spawned worker.
pub fn record(path: &str, os_pid: u32) {
    let mut files = FILES.lock();
    let file = files.entry(path.to_string()).or_insert_with(|| PidFile {
        live: BTreeSet::new(),
        lines: 0,
    });
    file.live.insert(os_pid);
    // Never create the file: Elixir does, with the header that identifies this BEAM. A file
    // without it would look like a dead run's to another BEAM's clean-up.
    let appended = fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut out| writeln!(out, "{os_pid}"));
    if appended.is_ok() {
        file.lines += 1;
    }
}

/// Forgets a reaped worker, compacting the file when it is mostly dead lines.
pub fn forget(path: &str, os_pid: u32) {
    let mut files = FILES.lock();
    let Some(file) = files.get_mut(path) else {
        return;
    };
    file.live.remove(&os_pid);
    if file.lines > 2 * file.live.len() + 32 && rewrite(path, &file.live).is_ok() {
        file.lines = file.live.len();
    }
}

fn rewrite(path: &str, live: &BTreeSet<u32>) -> std::io::Result<()> {
    let current = fs::read_to_string(path)?;
    let header = current.lines().next().unwrap_or_default();
    let mut text = format!("{header}\n");
    for pid in live {
        text.push_str(&format!("{pid}\n"));
    }
    let tmp = format!("{path}.tmp");
    fs::write(&tmp, text)?;
    fs::rename(tmp, path)
}
