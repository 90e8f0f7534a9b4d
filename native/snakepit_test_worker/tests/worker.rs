//! Drives the built worker binary over real pipes, as the pool does.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use snakepit_protocol::frame::{encode_frame, FrameDecoder, FrameError};
use snakepit_protocol::handshake::{parse_handshake, Handshake};
use std::num::NonZeroU64;

use snakepit_protocol::request::{
    encode_cancel, encode_credit, encode_heartbeat, encode_request, encode_stream_request,
    RequestHead,
};

/// How long any single wait may take before the test fails instead of hanging.
const TIMEOUT: Duration = Duration::from_secs(10);

const ALL_COMMANDS: &[&str] = &[
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

/// A running worker with the pool's ends of its pipes.
struct Worker {
    child: Child,
    /// Our end of the request pipe; `None` once closed.
    requests: Option<File>,
    replies: File,
    decoder: FrameDecoder,
}

/// In the child between fork and exec: puts `request` and `reply` on descriptors `targets`,
/// without close-on-exec. Both are first copied above the targets so placing one cannot
/// overwrite the other.
fn place_fds(request: RawFd, reply: RawFd, targets: (RawFd, RawFd)) -> io::Result<()> {
    let check = |fd: RawFd| {
        if fd == -1 {
            Err(io::Error::last_os_error())
        } else {
            Ok(fd)
        }
    };
    // SAFETY: descriptor calls only, async-signal-safe.
    unsafe {
        let request = check(libc::fcntl(request, libc::F_DUPFD_CLOEXEC, 20))?;
        let reply = check(libc::fcntl(reply, libc::F_DUPFD_CLOEXEC, 20))?;
        // dup2 clears close-on-exec on the new descriptor.
        check(libc::dup2(request, targets.0))?;
        check(libc::dup2(reply, targets.1))?;
    }
    Ok(())
}

impl Worker {
    fn start(args: &[&str]) -> Worker {
        Worker::start_with(args, &[], (3, 4))
    }

    /// Starts the worker with its request and reply pipes on descriptors `targets`.
    fn start_with(args: &[&str], env: &[(&str, &str)], targets: (RawFd, RawFd)) -> Worker {
        // std's pipes are close-on-exec, so workers started by parallel tests do not inherit them.
        let (request_read, request_write) = io::pipe().unwrap();
        let (reply_read, reply_write) = io::pipe().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_snakepit_test_worker"));
        command
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let (request_fd, reply_fd) = (request_read.as_raw_fd(), reply_write.as_raw_fd());
        // SAFETY: place_fds only makes async-signal-safe calls.
        unsafe {
            command.pre_exec(move || place_fds(request_fd, reply_fd, targets));
        }
        let child = command.spawn().expect("spawn the worker");
        Worker {
            child,
            requests: Some(File::from(OwnedFd::from(request_write))),
            replies: File::from(OwnedFd::from(reply_read)),
            decoder: FrameDecoder::new(1 << 20),
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits up to `timeout` for reply bytes (or end of file); false if none came.
    fn readable_within(&self, timeout: Duration) -> bool {
        let mut poll = libc::pollfd {
            fd: self.replies.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut poll, 1, timeout.as_millis() as libc::c_int) };
        ready > 0
    }

    /// The next frame's payload, `None` at end of file.
    fn try_recv(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        loop {
            if let Some(frame) = self.decoder.next_frame()? {
                return Ok(Some(frame.to_vec()));
            }
            assert!(self.readable_within(TIMEOUT), "no reply within {TIMEOUT:?}");
            if self.decoder.read_from(&mut self.replies).unwrap() == 0 {
                return Ok(None);
            }
        }
    }

    fn recv_frame(&mut self) -> Vec<u8> {
        self.try_recv().unwrap().expect("a frame, not end of file")
    }

    fn recv(&mut self) -> Value {
        serde_json::from_slice(&self.recv_frame()).expect("a JSON frame")
    }

    fn handshake(&mut self) -> Handshake {
        parse_handshake(&self.recv_frame()).expect("a handshake")
    }

    /// Starts a worker and checks its ready handshake.
    fn ready(args: &[&str]) -> Worker {
        let mut worker = Worker::start(args);
        match worker.handshake() {
            Handshake::Ready { protocol, pid, .. } => {
                assert_eq!(protocol, 1);
                assert_eq!(pid as i32, worker.pid());
            }
            other => panic!("expected ready, got {other:?}"),
        }
        worker
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        let requests = self.requests.as_mut().expect("request pipe open");
        requests.write_all(bytes).unwrap();
    }

    fn send(&mut self, message: Value) {
        let frame = encode_frame(&serde_json::to_vec(&message).unwrap(), 1 << 20).unwrap();
        self.send_raw(&frame);
    }

    /// Sends a request, encoded as the pool encodes it.
    fn request(&mut self, id: u64, command: &str, args: &Value) {
        let head = RequestHead {
            command,
            session_id: None,
            stream: false,
        };
        let mut frame = Vec::new();
        let write_args = |out: &mut Vec<u8>| serde_json::to_writer(out, args);
        encode_request(&mut frame, id, &head, write_args, 1 << 20).unwrap();
        self.send_raw(&frame);
    }

    /// Sends a streamed request for `count` chunks with a credit window, encoded as the pool
    /// encodes it.
    fn stream_count(&mut self, id: u64, count: u64, window: Option<u64>) {
        let head = RequestHead {
            command: "count",
            session_id: None,
            stream: true,
        };
        let mut frame = Vec::new();
        let write_args = |out: &mut Vec<u8>| serde_json::to_writer(out, &json!({"n": count}));
        let window = window.and_then(NonZeroU64::new);
        encode_stream_request(&mut frame, id, &head, window, write_args, 1 << 20).unwrap();
        self.send_raw(&frame);
    }

    fn credit(&mut self, id: u64, credit: u64) {
        self.send_raw(&encode_credit(id, NonZeroU64::new(credit).unwrap()));
    }

    /// Sends a request and returns the reply to it.
    fn call(&mut self, id: u64, command: &str, args: Value) -> Value {
        self.request(id, command, &args);
        let reply = self.recv();
        assert_eq!(reply["id"], id, "reply {reply}");
        reply
    }

    /// Sends a request and returns its result, failing on an error reply.
    fn result(&mut self, id: u64, command: &str, args: Value) -> Value {
        let reply = self.call(id, command, args);
        assert_eq!(reply["ok"], true, "reply {reply}");
        reply["result"].clone()
    }

    /// Closes our end of the request pipe: the worker sees end of file.
    fn close_requests(&mut self) {
        self.requests = None;
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "worker did not exit");
            sleep(Duration::from_millis(5));
        }
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: signals our own child, by pid.
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0);
    }

    fn stdout(&mut self) -> String {
        let mut text = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    fn stderr(&mut self) -> String {
        let mut text = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        text
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn handshake_lists_every_command() {
    let mut worker = Worker::start(&["--adapter", "ignored.Flag"]);
    match worker.handshake() {
        Handshake::Ready {
            commands, control, ..
        } => {
            assert_eq!(commands, ALL_COMMANDS);
            assert_eq!(control, ["cancel", "credit", "heartbeat"]);
        }
        other => panic!("expected ready, got {other:?}"),
    }
}

#[test]
fn heartbeats_are_answered_in_order_and_counted() {
    let mut worker = Worker::ready(&[]);
    worker.send_raw(&encode_heartbeat(40));
    worker.request(41, "ping", &json!({}));
    worker.send_raw(&encode_heartbeat(42));
    assert_eq!(worker.recv(), json!({"id": 40, "ok": true, "result": null}));
    assert_eq!(worker.recv()["id"], 41);
    assert_eq!(worker.recv(), json!({"id": 42, "ok": true, "result": null}));
    assert_eq!(
        worker.result(43, "health_checks", json!({})),
        json!({"heartbeats": 2, "pings": 1})
    );
}

#[test]
fn without_heartbeat_it_announces_cancel_only_and_skips_heartbeats() {
    let mut worker = Worker::start(&["--no-heartbeat"]);
    match worker.handshake() {
        Handshake::Ready { control, .. } => assert_eq!(control, ["cancel", "credit"]),
        other => panic!("expected ready, got {other:?}"),
    }
    worker.send_raw(&encode_heartbeat(1));
    // The next reply is the request's: the heartbeat got none.
    assert_eq!(
        worker.result(2, "health_checks", json!({})),
        json!({"heartbeats": 0, "pings": 0})
    );
}

#[test]
fn ping_echo_fail_and_unknown() {
    let mut worker = Worker::ready(&[]);
    let pong = worker.result(1, "ping", json!({}));
    assert_eq!(pong, json!({"status": "pong", "pid": worker.pid()}));

    let args = json!({"a": [1, 2, {"b": null}], "s": "é\n"});
    assert_eq!(worker.result(2, "echo", args.clone()), args);

    let reply = worker.call(3, "fail", json!({"type": "ValueError", "message": "nope"}));
    assert_eq!(reply["ok"], false);
    assert_eq!(reply["error"]["type"], "ValueError");
    assert_eq!(reply["error"]["message"], "nope");

    let reply = worker.call(4, "no_such_command", json!({}));
    assert_eq!(reply["error"]["type"], "UnknownCommand");

    assert_eq!(
        worker.result(5, "sleep", json!({"ms": 20})),
        json!({"slept": 20})
    );
}

#[test]
fn protocol_errors_and_ignored_frames() {
    let mut worker = Worker::ready(&[]);
    // Neither a JSON object nor a frame with a usable id gets a reply.
    worker.send_raw(&encode_frame(b"not json", 1024).unwrap());
    worker.send(json!({"id": -1, "command": "ping"}));
    worker.send(json!({"command": "ping"}));
    let reply = worker.call(1, "echo", json!([1]));
    assert_eq!(reply["error"]["type"], "ProtocolError");
    worker.send(json!({"id": 2}));
    assert_eq!(worker.recv()["error"]["type"], "ProtocolError");
    worker.send(json!({"id": 3, "command": "echo", "stream": true}));
    assert_eq!(worker.recv()["error"]["type"], "StreamingNotSupported");
}

#[test]
fn cancels_are_recorded_without_a_reply() {
    let mut worker = Worker::ready(&[]);
    assert_eq!(worker.result(1, "cancels", json!({})), json!([]));
    worker.send(json!({"id": 7, "cancel": true}));
    worker.send(json!({"id": 3, "cancel": true}));
    worker.send(json!({"id": 7, "cancel": true}));
    assert_eq!(worker.result(2, "cancels", json!({})), json!([7, 3]));
}

#[test]
fn count_streams_within_its_window_and_credits() {
    let mut worker = Worker::ready(&[]);
    worker.stream_count(1, 7, Some(2));
    // Each chunk says how much credit had come when it was sent: chunk i needs i < 2 + credited.
    assert_eq!(
        worker.recv(),
        json!({"id": 1, "chunk": {"i": 0, "credited": 0}})
    );
    assert_eq!(
        worker.recv(),
        json!({"id": 1, "chunk": {"i": 1, "credited": 0}})
    );
    worker.credit(99, 5); // another stream's credit changes nothing
    worker.credit(1, 1);
    assert_eq!(
        worker.recv(),
        json!({"id": 1, "chunk": {"i": 2, "credited": 1}})
    );
    worker.credit(1, 4);
    for i in 3..7 {
        assert_eq!(
            worker.recv(),
            json!({"id": 1, "chunk": {"i": i, "credited": 5}})
        );
    }
    let done = json!({"id": 1, "ok": true, "result": null, "done": true});
    assert_eq!(worker.recv(), done);
    // Without a window it streams at once; not streamed, it is a list.
    worker.stream_count(2, 3, None);
    for i in 0..3 {
        assert_eq!(worker.recv()["chunk"], json!({"i": i, "credited": 0}));
    }
    assert_eq!(worker.recv()["done"], true);
    let list = json!([{"i": 0, "credited": 0}, {"i": 1, "credited": 0}]);
    assert_eq!(worker.result(3, "count", json!({"n": 2})), list);
}

#[test]
fn a_cancel_ends_a_stream_waiting_for_credit() {
    let mut worker = Worker::ready(&[]);
    worker.stream_count(1, 100, Some(1));
    assert_eq!(worker.recv()["chunk"]["i"], 0);
    worker.send_raw(&encode_cancel(1));
    let reply = worker.recv();
    assert_eq!(
        (reply["id"].clone(), reply["ok"].clone()),
        (json!(1), json!(false))
    );
    assert_eq!(reply["error"]["type"], "Cancelled");
    assert_eq!(worker.result(2, "cancels", json!({})), json!([1]));
}

#[test]
fn eof_exits_zero() {
    let mut worker = Worker::ready(&[]);
    worker.close_requests();
    assert_eq!(worker.try_recv().unwrap(), None);
    assert_eq!(worker.wait_exit().code(), Some(0));
}

#[test]
fn eof_inside_a_frame_exits_two() {
    let mut worker = Worker::ready(&[]);
    worker.send_raw(&[0, 0, 0, 10, b'{']);
    worker.close_requests();
    assert_eq!(worker.wait_exit().code(), Some(2));
}

#[test]
fn oversized_request_is_refused_from_its_header() {
    let mut worker = Worker::start_with(&[], &[("SNAKEPIT_MAX_FRAME_SIZE", "1000")], (3, 4));
    assert!(matches!(worker.handshake(), Handshake::Ready { .. }));
    worker.send_raw(&1001u32.to_be_bytes());
    assert_eq!(worker.wait_exit().code(), Some(2));
    assert!(worker
        .stderr()
        .contains("refusing a request frame of 1001 bytes"));
}

#[test]
fn crash_by_signal_and_status() {
    for (name, signal) in [
        ("KILL", libc::SIGKILL),
        ("SEGV", libc::SIGSEGV),
        ("TERM", libc::SIGTERM),
    ] {
        let mut worker = Worker::ready(&[]);
        worker.send(json!({"id": 1, "command": "crash", "args": {"signal": name}}));
        assert_eq!(worker.try_recv().unwrap(), None, "no reply to crash {name}");
        assert_eq!(worker.wait_exit().signal(), Some(signal), "crash {name}");
    }
    let mut worker = Worker::ready(&[]);
    worker.send(json!({"id": 1, "command": "crash", "args": {"status": 7}}));
    assert_eq!(worker.wait_exit().code(), Some(7));

    let mut worker = Worker::ready(&[]);
    worker.send(json!({"id": 1, "command": "crash"}));
    assert_eq!(worker.wait_exit().code(), Some(1));

    let mut worker = Worker::ready(&[]);
    let reply = worker.call(1, "crash", json!({"signal": "NOPE"}));
    assert_eq!(reply["error"]["type"], "ValueError");
}

#[test]
fn garbage_frames_then_the_loop_goes_on() {
    let mut worker = Worker::ready(&[]);
    worker.send(json!({"id": 1, "command": "garbage"}));
    let frame = worker.recv_frame();
    assert_eq!(frame, b"not json{{");
    assert!(serde_json::from_slice::<Value>(&frame).is_err());
    assert_eq!(worker.result(2, "ping", json!({}))["status"], "pong");

    worker.send(json!({"id": 3, "command": "wrong_id"}));
    assert_eq!(worker.recv()["id"], 1003);

    worker.send(json!({"id": 4, "command": "oversized", "args": {"bytes": 100}}));
    let frame = worker.recv_frame();
    assert_eq!(frame.len(), 100);
    assert!(serde_json::from_slice::<Value>(&frame).unwrap().is_string());

    worker.send(json!({"id": 5, "command": "garbage_raw"}));
    assert_eq!(
        worker.try_recv(),
        Err(FrameError::TooLarge {
            len: u32::MAX as usize,
            max: 1 << 20
        })
    );
}

#[test]
fn print_goes_to_stdout_and_stderr() {
    let mut worker = Worker::ready(&[]);
    let args = json!({"stdout": "to stdout", "stderr": "to stderr"});
    assert_eq!(worker.result(1, "print", args), "ok");
    worker.close_requests();
    assert_eq!(worker.wait_exit().code(), Some(0));
    assert_eq!(worker.stdout(), "to stdout\n");
    assert_eq!(worker.stderr(), "to stderr\n");
}

#[test]
fn spawned_children_and_process_groups() {
    let mut worker = Worker::ready(&[]);
    let plain = worker.result(1, "spawn_child", json!({"sleep_s": 30}))["child_pid"]
        .as_i64()
        .unwrap() as i32;
    let detached = worker.result(2, "spawn_detached_child", json!({"sleep_s": 30}))["child_pid"]
        .as_i64()
        .unwrap() as i32;
    // SAFETY: process-group queries and kills of the two sleeps this test had started.
    unsafe {
        let worker_group = libc::getpgid(worker.pid());
        assert_eq!(libc::getpgid(plain), worker_group);
        assert_eq!(libc::getpgid(detached), detached);
        assert_eq!(libc::getsid(detached), detached);
        libc::kill(plain, libc::SIGKILL);
        libc::kill(detached, libc::SIGKILL);
    }
}

#[test]
fn descriptors_from_the_environment() {
    let env = [("SNAKEPIT_REQUEST_FD", "7"), ("SNAKEPIT_REPLY_FD", "8")];
    let mut worker = Worker::start_with(&[], &env, (7, 8));
    assert!(matches!(worker.handshake(), Handshake::Ready { .. }));
    assert_eq!(worker.result(1, "echo", json!({"x": 1})), json!({"x": 1}));
}

#[test]
fn missing_descriptor_exits_two() {
    let env = [("SNAKEPIT_REQUEST_FD", "40")];
    let mut worker = Worker::start_with(&[], &env, (3, 4));
    assert_eq!(worker.wait_exit().code(), Some(2));
}

#[test]
fn start_flags() {
    let mut worker = Worker::start(&["--fail-start"]);
    assert_eq!(worker.try_recv().unwrap(), None);
    assert_eq!(worker.wait_exit().code(), Some(3));

    let mut worker = Worker::start(&["--fatal-start"]);
    match worker.handshake() {
        Handshake::Fatal { message, .. } => assert_eq!(message, "test worker told to fail"),
        other => panic!("expected fatal, got {other:?}"),
    }
    assert_eq!(worker.wait_exit().code(), Some(1));

    let mut worker = Worker::start(&["--bad-handshake"]);
    assert!(serde_json::from_slice::<Value>(&worker.recv_frame()).is_err());

    let started = Instant::now();
    let _worker = Worker::ready(&["--start-delay-ms", "300"]);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[test]
fn hang_start_and_sigterm() {
    let mut worker = Worker::start(&["--hang-start"]);
    assert!(!worker.readable_within(Duration::from_millis(300)));
    assert!(worker.child.try_wait().unwrap().is_none());
    worker.signal(libc::SIGTERM);
    assert_eq!(worker.wait_exit().code(), Some(0));
}

#[test]
fn hang_command_and_sigterm() {
    let mut worker = Worker::ready(&[]);
    worker.send(json!({"id": 1, "command": "hang"}));
    assert!(!worker.readable_within(Duration::from_millis(200)));
    worker.signal(libc::SIGTERM);
    assert_eq!(worker.wait_exit().code(), Some(0));
}

#[test]
fn ignore_sigterm_needs_sigkill() {
    let mut worker = Worker::ready(&["--ignore-sigterm"]);
    worker.signal(libc::SIGTERM);
    assert_eq!(worker.result(1, "ping", json!({}))["status"], "pong");
    worker.signal(libc::SIGKILL);
    assert_eq!(worker.wait_exit().signal(), Some(libc::SIGKILL));
}

/// A fresh directory for one test's files, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "snakepit_test_worker-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        TempDir(dir)
    }

    /// A FIFO in the directory.
    fn fifo(&self, name: &str) -> PathBuf {
        let path = self.0.join(name);
        let text = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(text.as_ptr(), 0o600) }, 0);
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Opens `fifo` for writing, which waits until the worker has opened it for reading; fails the
/// test, rather than hang it, if the worker never does.
fn open_for_writing(fifo: &Path) -> File {
    let (opened, open) = std::sync::mpsc::channel();
    let path = fifo.to_owned();
    std::thread::spawn(move || {
        let _ = opened.send(File::options().write(true).open(path));
    });
    let file = open.recv_timeout(TIMEOUT);
    file.expect("the worker opens the FIFO").unwrap()
}

#[test]
fn block_holds_a_request_until_the_test_releases_it() {
    let dir = TempDir::new("block");
    let fifo = dir.fifo("release");
    let marker = dir.0.join("started");
    let mut worker = Worker::ready(&[]);
    worker.request(
        1,
        "block",
        &json!({"fifo": text(&fifo), "marker": text(&marker)}),
    );

    // Opening the FIFO for writing waits for the worker to open it for reading: the request has
    // started, the marker is there, and the worker now waits for a line.
    let mut release = open_for_writing(&fifo);
    assert!(marker.exists());
    assert!(
        !worker.readable_within(Duration::ZERO),
        "no reply before release"
    );
    release.write_all(b"go on\n").unwrap();
    drop(release);
    let reply = worker.recv();
    assert_eq!(reply["id"], 1);
    assert_eq!(reply["result"], json!({"released": "go on"}));

    // Without a marker, and closing without a newline, works too.
    let fifo = dir.fifo("again");
    worker.request(2, "block", &json!({"fifo": text(&fifo)}));
    open_for_writing(&fifo).write_all(b"last").unwrap();
    assert_eq!(worker.recv()["result"], json!({"released": "last"}));

    let reply = worker.call(3, "block", json!({}));
    assert_eq!(reply["error"]["type"], "TypeError");
}

/// The golden vectors' frames from the pool, sent to the real worker.
#[test]
fn golden_vectors_from_the_pool() {
    let vectors: Value = serde_json::from_str(include_str!("../../../docs/protocol_vectors.json"))
        .expect("docs/protocol_vectors.json");
    let mut worker = Worker::ready(&[]);
    let mut cancelled = Vec::new();
    let mut sentinel = 1_000_000;
    for case in vectors["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        if case["direction"] != "pool_to_worker" || case["kind"] == "frame" {
            continue;
        }
        let hex = case["frame"].as_str().unwrap().as_bytes();
        let frame: Vec<u8> = hex
            .chunks(2)
            .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
            .collect();
        worker.send_raw(&frame);
        let meaning = &case["meaning"];
        let answered = case["kind"] == "request"
            && (case["valid"] == true || case["refusal"] == "protocol_error");
        if case["kind"] == "heartbeat" && case["valid"] == true {
            let reply = worker.recv();
            assert_eq!(
                reply,
                json!({"id": meaning["id"], "ok": true, "result": null}),
                "{name}"
            );
        }
        if answered {
            let reply = worker.recv();
            assert_eq!(reply["id"], meaning["id"], "{name}: {reply}");
            if case["valid"] == false {
                assert_eq!(reply["error"]["type"], "ProtocolError", "{name}: {reply}");
            } else if meaning["stream"] == true {
                assert_eq!(reply["error"]["type"], "StreamingNotSupported", "{name}");
            } else if meaning["command"] == "echo" {
                assert_eq!(reply["result"], meaning["args"], "{name}");
            } else if meaning["command"] != "ping" {
                assert_eq!(reply["error"]["type"], "UnknownCommand", "{name}: {reply}");
            }
        }
        if case["kind"] == "cancel" {
            cancelled.push(meaning["id"].clone());
        }
        // Replies come in request order: the sentinel's reply coming next shows that the frame
        // got no reply of its own (and did not stop the worker).
        sentinel += 1;
        assert_eq!(worker.result(sentinel, "ping", json!({}))["status"], "pong");
    }
    assert!(!cancelled.is_empty());
    assert_eq!(worker.result(1, "cancels", json!({})), json!(cancelled));
}
