//! The request loop and the scripted commands.
//!
//! | command | args | does |
//! | --- | --- | --- |
//! | `ping` | | `{"status":"pong","pid":N}` |
//! | `echo` | any | the args object |
//! | `sleep` | `ms` | sleeps, then `{"slept":ms}` |
//! | `block` | `fifo`, `marker` (optional) | touches `marker`, opens the FIFO `fifo` for reading (blocking until the test opens it for writing), reads one line, then `{"released":"<line without its newline>"}` |
//! | `hang` | | never answers |
//! | `crash` | `signal` (name or number) or `status` (default 1) | dies, without a reply |
//! | `fail` | `type`, `message` | a failure with them |
//! | `garbage` | | a frame that is not JSON |
//! | `garbage_raw` | | a header announcing ~4 GiB |
//! | `oversized` | `bytes` | a frame of that many bytes, whatever the maximum |
//! | `wrong_id` | | a reply to request id + 1000 |
//! | `spawn_child`, `spawn_detached_child` | `sleep_s` (default 60) | starts `sleep`, `{"child_pid":N}` |
//! | `print` | `stdout`, `stderr` | writes them as lines |
//! | `flood` | `bytes` | writes that many `x` to stdout with no newline, then `{"written":bytes}` |
//! | `cancels` | | ids of the cancel frames received, in order, without repeats |
//! | `count` | `n` | streamed: chunks `{"i":k,"credited":c}` for k in 0..n, then the final reply (see [`Worker::stream_count`]); not streamed: the list of those objects, `c` 0 |
//! | `health_checks` | | `{"heartbeats":H,"pings":P}`: heartbeat frames answered and `ping` requests served so far |
//! | `fail_pings` | | from now on `ping` answers with a failure (`PingFailed`): a worker health-checked with `ping` (`--no-heartbeat`) then fails its checks |

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::num::NonZeroU64;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::Duration;

use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use snakepit_protocol::frame::encode_frame;
use snakepit_protocol::request::{parse_request, BadRequest, Incoming};

use crate::wire::{Failure, Wire};

/// Every command, sorted, as listed in the handshake.
pub const COMMANDS: &[&str] = &[
    "block",
    "cancels",
    "count",
    "crash",
    "echo",
    "fail",
    "fail_pings",
    "flood",
    "garbage",
    "garbage_raw",
    "hang",
    "health_checks",
    "oversized",
    "ping",
    "print",
    "sleep",
    "spawn_child",
    "spawn_detached_child",
    "wrong_id",
];

type Args = Map<String, Value>;

/// Sleeps until a signal ends the process.
pub fn sleep_forever() -> ! {
    loop {
        sleep(Duration::from_secs(3600));
    }
}

/// Serves requests until end of file; returns the exit status.
pub struct Worker {
    wire: Wire,
    /// Request ids named by cancel frames so far, in arrival order, without repeats.
    cancels: Vec<u64>,
    /// Whether heartbeat frames are answered (announced in the handshake).
    heartbeat: bool,
    /// Heartbeat frames answered and `ping` requests served.
    heartbeats: u64,
    pings: u64,
    /// `fail_pings` was called: `ping` fails.
    failing_pings: bool,
}

impl Worker {
    pub fn new(wire: Wire, heartbeat: bool) -> Worker {
        Worker {
            wire,
            cancels: Vec::new(),
            heartbeat,
            heartbeats: 0,
            pings: 0,
            failing_pings: false,
        }
    }

    /// Reads and answers requests; returns 0 at end of file, 2 on a protocol or I/O error.
    pub fn serve(&mut self) -> i32 {
        loop {
            let frame = match self.wire.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return 0,
                Err(reason) => {
                    eprintln!("snakepit_test_worker: {reason}");
                    return 2;
                }
            };
            if let Err(error) = self.handle_frame(&frame) {
                eprintln!("snakepit_test_worker: cannot write a reply: {error}");
                return 2;
            }
        }
    }

    /// Handles one frame from the pool; an error means the reply descriptor failed.
    fn handle_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        match parse_request(frame) {
            Ok(Incoming::Request {
                id,
                command,
                args,
                stream,
                window,
                ..
            }) => {
                if stream && command == "count" {
                    return match args_object(args) {
                        Ok(args) => self.stream_count(id, &args, window),
                        Err(failure) => self.wire.reply(id, Err(failure)),
                    };
                }
                if stream {
                    let message = format!("{command} is not a streaming tool");
                    let failure = Failure::new("StreamingNotSupported", message);
                    return self.wire.reply(id, Err(failure));
                }
                match args_object(args) {
                    Ok(args) => self.run(id, &command, args),
                    Err(failure) => self.wire.reply(id, Err(failure)),
                }
            }
            Ok(Incoming::Cancel { id }) => {
                self.record_cancel(id);
                Ok(())
            }
            // A credit outside its stream crossed the stream's end: nothing to do.
            Ok(Incoming::Credit { .. }) => Ok(()),
            Ok(Incoming::Heartbeat { id }) if self.heartbeat => {
                self.heartbeats += 1;
                self.wire.reply(id, Ok(Value::Null))
            }
            Ok(Incoming::Heartbeat { .. }) => {
                eprintln!("snakepit_test_worker: ignoring a heartbeat frame (not announced)");
                Ok(())
            }
            Ok(Incoming::SessionEnd { .. }) => {
                eprintln!("snakepit_test_worker: ignoring a session_end frame (not announced)");
                Ok(())
            }
            Ok(Incoming::UnknownControl { kind, .. }) => {
                eprintln!(
                    "snakepit_test_worker: ignoring a control frame of unknown kind {kind:?}"
                );
                Ok(())
            }
            Err(BadRequest::Ignored(reason)) => {
                eprintln!("snakepit_test_worker: ignoring a frame: {reason}");
                Ok(())
            }
            Err(BadRequest::Malformed { id, message }) => self
                .wire
                .reply(id, Err(Failure::new("ProtocolError", message))),
        }
    }

    fn record_cancel(&mut self, id: u64) {
        if !self.cancels.contains(&id) {
            self.cancels.push(id);
        }
    }

    /// The `count` command streamed: chunks `{"i":k,"credited":c}` for k in 0..n, then the
    /// final reply. With a `window` it sends chunk k only when k < window + c, c being the credit
    /// received so far (so each chunk shows the window was kept); while it may not send, it reads
    /// the request stream for this stream's credit frames. A cancel frame for it read there ends
    /// it with a `Cancelled` failure (without a window, cancels are not read until it ends).
    fn stream_count(&mut self, id: u64, args: &Args, window: Option<NonZeroU64>) -> io::Result<()> {
        let n = match u64_arg(args, "n") {
            Ok(n) => n,
            Err(failure) => return self.wire.reply(id, Err(failure)),
        };
        let mut credited: u64 = 0;
        for i in 0..n {
            while window.is_some_and(|window| i >= window.get().saturating_add(credited)) {
                let Some(frame) = self.wire.next_frame().map_err(io::Error::other)? else {
                    return Ok(()); // end of file: the serve loop sees it next and exits
                };
                match parse_request(&frame) {
                    Ok(Incoming::Credit { id: of, credit }) if of == id => {
                        credited = credited.saturating_add(credit.get());
                    }
                    Ok(Incoming::Cancel { id: of }) => {
                        self.record_cancel(of);
                        if of == id {
                            let message = format!("request {id} was cancelled by the pool");
                            return self.wire.reply(id, Err(Failure::new("Cancelled", message)));
                        }
                    }
                    other => eprintln!(
                        "snakepit_test_worker: ignoring a frame during stream {id}: {other:?}"
                    ),
                }
            }
            self.wire
                .chunk(id, &json!({"i": i, "credited": credited}))?;
        }
        self.wire.done(id)
    }

    /// Runs one command. Most reply normally; the fault commands write what they were told to.
    fn run(&mut self, id: u64, command: &str, args: Args) -> io::Result<()> {
        let outcome = match command {
            "ping" if self.failing_pings => {
                self.pings += 1;
                Err(Failure::new(
                    "PingFailed",
                    "told to fail pings (fail_pings)",
                ))
            }
            "ping" => {
                self.pings += 1;
                Ok(json!({"status": "pong", "pid": std::process::id()}))
            }
            "fail_pings" => {
                self.failing_pings = true;
                Ok(Value::Bool(true))
            }
            "echo" => Ok(Value::Object(args)),
            "sleep" => u64_arg(&args, "ms").map(|ms| {
                sleep(Duration::from_millis(ms));
                json!({"slept": ms})
            }),
            "block" => block(&args),
            "hang" => sleep_forever(),
            "crash" => crash(&args),
            "garbage" => {
                let frame = encode_frame(b"not json{{", usize::MAX).expect("tiny frame");
                return self.wire.send_raw(&frame);
            }
            // A header announcing u32::MAX bytes: the pool must refuse it before reading on.
            "garbage_raw" => return self.wire.send_raw(&[0xff; 4]),
            "oversized" => match u64_arg(&args, "bytes").and_then(frame_length) {
                Ok(len) => return write_oversized(&mut WireWriter(&mut self.wire), len),
                Err(failure) => Err(failure),
            },
            "wrong_id" => {
                return self
                    .wire
                    .reply(id.wrapping_add(1000), Ok(json!("wrong id")))
            }
            "spawn_child" => spawn_sleep(&args, false),
            "spawn_detached_child" => spawn_sleep(&args, true),
            "print" => print(&args),
            "flood" => flood(&args),
            "cancels" => Ok(json!(self.cancels)),
            "count" => u64_arg(&args, "n").map(|n| {
                json!((0..n)
                    .map(|i| json!({"i": i, "credited": 0}))
                    .collect::<Vec<_>>())
            }),
            "health_checks" => Ok(json!({"heartbeats": self.heartbeats, "pings": self.pings})),
            "fail" => fail(&args),
            other => Err(Failure::new(
                "UnknownCommand",
                format!(
                    "unknown command {other:?}; available: {}",
                    COMMANDS.join(", ")
                ),
            )),
        };
        self.wire.reply(id, outcome)
    }
}

/// A request's args as a map; absent means empty. (The protocol has checked it is an object.)
fn args_object(args: Option<&RawValue>) -> Result<Args, Failure> {
    match args {
        None => Ok(Map::new()),
        Some(raw) => serde_json::from_str(raw.get())
            .map_err(|error| Failure::new("ProtocolError", format!("unreadable args: {error}"))),
    }
}

/// A required non-negative integer argument.
fn u64_arg(args: &Args, name: &str) -> Result<u64, Failure> {
    args.get(name).and_then(Value::as_u64).ok_or_else(|| {
        Failure::new(
            "TypeError",
            format!("{name} must be a non-negative integer"),
        )
    })
}

/// An optional string argument.
fn str_arg<'a>(args: &'a Args, name: &str) -> Result<Option<&'a str>, Failure> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(Failure::new(
            "TypeError",
            format!("{name} must be a string"),
        )),
    }
}

/// The `crash` command: dies by `signal` (a name such as "KILL" or "SIGSEGV", or a number), or
/// exits with `status` (default 1). Returns only to report a bad argument.
fn crash(args: &Args) -> Result<Value, Failure> {
    match args.get("signal") {
        None | Some(Value::Null) => {}
        Some(Value::String(name)) => match signal_number(name) {
            Some(signal) => die_by_signal(signal),
            None => {
                return Err(Failure::new(
                    "ValueError",
                    format!("unknown signal {name:?}"),
                ))
            }
        },
        Some(Value::Number(number)) => match number.as_i64() {
            Some(signal @ 1..=64) => die_by_signal(signal as libc::c_int),
            _ => return Err(Failure::new("ValueError", format!("bad signal {number}"))),
        },
        Some(_) => return Err(Failure::new("TypeError", "signal must be a name or number")),
    }
    let status = match args.get("status") {
        None | Some(Value::Null) => 1,
        Some(value) => value
            .as_i64()
            .and_then(|status| i32::try_from(status).ok())
            .ok_or_else(|| Failure::new("TypeError", "status must be an integer"))?,
    };
    std::process::exit(status)
}

/// Signals whose default action ends the process, by name without the `SIG` prefix.
const SIGNALS: &[(&str, libc::c_int)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("SYS", libc::SIGSYS),
];

/// Looks up a signal name, case-insensitively, with or without the `SIG` prefix.
fn signal_number(name: &str) -> Option<libc::c_int> {
    let name = name.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    SIGNALS
        .iter()
        .find(|(known, _)| *known == name)
        .map(|&(_, signal)| signal)
}

/// Raises `signal` on this process with its default action, so the parent sees the process
/// killed by it (even SIGTERM, which is otherwise handled or ignored).
fn die_by_signal(signal: libc::c_int) -> ! {
    // SAFETY: plain system calls on this process; no memory is shared with them.
    unsafe {
        // A deliberate crash is not worth a core file.
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
    // Reached only for a signal number whose default action is to be ignored.
    std::process::exit(1)
}

/// The `block` command: lets a test hold a request for as long as it likes, without timing.
/// Touches `marker` (if given) first, so the test can tell the request started; then opens the
/// FIFO `fifo` for reading, which blocks until the test opens it for writing, and answers with the
/// first line written to it.
fn block(args: &Args) -> Result<Value, Failure> {
    let fifo = str_arg(args, "fifo")?
        .ok_or_else(|| Failure::new("TypeError", "fifo must be the path of a FIFO"))?;
    let os_error = |what: &str, path: &str, error: io::Error| {
        Failure::new("OSError", format!("cannot {what} {path}: {error}"))
    };
    if let Some(marker) = str_arg(args, "marker")? {
        File::create(marker).map_err(|error| os_error("write", marker, error))?;
    }
    let pipe = File::open(fifo).map_err(|error| os_error("open", fifo, error))?;
    let mut line = String::new();
    BufReader::new(pipe)
        .read_line(&mut line)
        .map_err(|error| os_error("read", fifo, error))?;
    let line = line.strip_suffix('\n').unwrap_or(&line);
    Ok(json!({"released": line}))
}

/// The `fail` command: a failure of the given `type` and `message`.
fn fail(args: &Args) -> Result<Value, Failure> {
    Err(Failure::new(
        str_arg(args, "type")?.unwrap_or("TestError"),
        str_arg(args, "message")?.unwrap_or("test worker told to fail"),
    ))
}

/// A payload length that fits a frame header.
fn frame_length(bytes: u64) -> Result<u32, Failure> {
    u32::try_from(bytes).map_err(|_| Failure::new("ValueError", "bytes must fit in 32 bits"))
}

/// Writes a frame header announcing `len` bytes, then `len` bytes of JSON: a string of `x`s
/// (or `0` when `len` is 1). Written in pieces, so a huge `len` needs no huge buffer.
fn write_oversized<W: Write>(out: &mut W, len: u32) -> io::Result<()> {
    const PIECE: usize = 64 * 1024;
    out.write_all(&len.to_be_bytes())?;
    let len = len as usize;
    if len < 2 {
        return out.write_all(&b"0"[..len]);
    }
    out.write_all(b"\"")?;
    let mut left = len - 2;
    let filler = vec![b'x'; PIECE.min(left)];
    while left > 0 {
        let piece = PIECE.min(left);
        out.write_all(&filler[..piece])?;
        left -= piece;
    }
    out.write_all(b"\"")
}

/// Lets [`write_oversized`] write raw bytes to the reply descriptor.
struct WireWriter<'a>(&'a mut Wire);

impl Write for WireWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.send_raw(bytes)?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `spawn_child` and `spawn_detached_child`: starts `sleep S` (`sleep_s`, default 60) without
/// waiting for it. The plain child stays in the worker's process group; the detached one gets a
/// session (and so a process group) of its own, out of reach of a kill aimed at the group.
fn spawn_sleep(args: &Args, detach: bool) -> Result<Value, Failure> {
    let seconds = match args.get("sleep_s") {
        None | Some(Value::Null) => "60".to_string(),
        Some(Value::Number(n)) if n.as_f64().is_some_and(|s| s >= 0.0) => n.to_string(),
        Some(_) => return Err(Failure::new("TypeError", "sleep_s must be a number >= 0")),
    };
    let mut command = Command::new("sleep");
    command
        .arg(seconds)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: between fork and exec the closure only makes async-signal-safe calls.
    unsafe {
        command.pre_exec(move || {
            // An ignored SIGTERM (--ignore-sigterm) would otherwise be inherited by `sleep`.
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            if detach && libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // The child is neither waited for nor killed: dropping the handle leaves it running.
    let child = command
        .spawn()
        .map_err(|error| Failure::new("OSError", format!("cannot spawn sleep: {error}")))?;
    Ok(json!({"child_pid": child.id()}))
}

/// The `print` command: writes `stdout` and `stderr` (each optional) as lines.
/// A line that never ends: what a worker printing a huge blob without a newline does.
fn flood(args: &Args) -> Result<Value, Failure> {
    let bytes = args.get("bytes").and_then(Value::as_u64).unwrap_or(0);
    let chunk = vec![b'x'; 1 << 20];
    let mut stdout = io::stdout().lock();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        if stdout.write_all(&chunk[..n]).is_err() {
            break;
        }
        left -= n as u64;
    }
    let _ = stdout.flush();
    Ok(json!({ "written": bytes }))
}

fn print(args: &Args) -> Result<Value, Failure> {
    if let Some(text) = str_arg(args, "stdout")? {
        let mut stdout = io::stdout().lock();
        let _ = writeln!(stdout, "{text}").and_then(|_| stdout.flush());
    }
    if let Some(text) = str_arg(args, "stderr")? {
        let _ = writeln!(io::stderr(), "{text}");
    }
    Ok(json!("ok"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Value) -> Args {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn commands_are_sorted_and_unique() {
        assert!(COMMANDS.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_number("KILL"), Some(libc::SIGKILL));
        assert_eq!(signal_number("SIGSEGV"), Some(libc::SIGSEGV));
        assert_eq!(signal_number("term"), Some(libc::SIGTERM));
        assert_eq!(signal_number("CHLD"), None);
        assert_eq!(signal_number(""), None);
    }

    #[test]
    fn args_default_to_an_empty_object() {
        assert_eq!(args_object(None), Ok(Map::new()));
        let raw = RawValue::from_string(r#"{"a":1}"#.to_string()).unwrap();
        assert_eq!(args_object(Some(&raw)), Ok(object(json!({"a": 1}))));
    }

    #[test]
    fn argument_helpers() {
        let args = object(json!({"ms": 5, "neg": -1, "s": "x", "n": 3}));
        assert_eq!(u64_arg(&args, "ms"), Ok(5));
        assert_eq!(u64_arg(&args, "neg").unwrap_err().kind, "TypeError");
        assert_eq!(u64_arg(&args, "missing").unwrap_err().kind, "TypeError");
        assert_eq!(str_arg(&args, "s"), Ok(Some("x")));
        assert_eq!(str_arg(&args, "missing"), Ok(None));
        assert_eq!(str_arg(&args, "n").unwrap_err().kind, "TypeError");
    }

    #[test]
    fn oversized_writes_the_announced_json() {
        for len in [0u32, 1, 2, 10, 200_000] {
            let mut out = Vec::new();
            write_oversized(&mut out, len).unwrap();
            assert_eq!(&out[..4], &len.to_be_bytes());
            let payload = &out[4..];
            assert_eq!(payload.len(), len as usize);
            if len > 0 {
                serde_json::from_slice::<Value>(payload).expect("payload is JSON");
            }
        }
        assert!(frame_length(1 << 32).is_err());
    }
}
