//! A scriptable fake worker speaking snakepit_rs protocol v1 (`docs/protocol.md`).
//!
//! Start-up flags make it fail before or during the handshake; after that each request's command
//! picks a behaviour (reply, sleep, hang, crash, send garbage...), so that tests of the pool's
//! fault handling are exact and fast. Run with no flags it is a well-behaved worker.

mod options;
mod wire;
mod worker;

use std::thread::sleep;
use std::time::Duration;

use snakepit_protocol::frame::encode_frame;
use snakepit_protocol::handshake::{
    Handshake, CONTROL_CANCEL, CONTROL_CREDIT, CONTROL_HEARTBEAT, PROTOCOL_VERSION,
};

use options::Options;
use wire::Wire;
use worker::{sleep_forever, Worker, COMMANDS};

/// SIGTERM and SIGINT end the worker with status 0, as the protocol asks.
extern "C" fn exit_cleanly(_signal: libc::c_int) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(0) }
}

fn install_signal_handlers(ignore_sigterm: bool) {
    let handler = exit_cleanly as extern "C" fn(libc::c_int) as *const () as libc::sighandler_t;
    let on_term = if ignore_sigterm {
        libc::SIG_IGN
    } else {
        handler
    };
    // SAFETY: the handler only calls _exit.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, on_term);
    }
}

/// Logs a fatal reason to stderr and exits.
fn die(status: i32, reason: &str) -> ! {
    eprintln!("snakepit_test_worker: {reason}");
    std::process::exit(status)
}

fn main() {
    let options = Options::parse(std::env::args().skip(1));
    install_signal_handlers(options.ignore_sigterm);
    if options.fail_start {
        std::process::exit(3);
    }
    let mut wire = Wire::from_env().unwrap_or_else(|reason| die(2, &reason));
    sleep(Duration::from_millis(options.start_delay_ms));

    if options.fatal_start {
        let _ = wire.send_handshake(&Handshake::Fatal {
            message: "test worker told to fail".to_string(),
            error_type: None,
            traceback: None,
        });
        std::process::exit(1);
    }
    if options.hang_start {
        sleep_forever();
    }
    // Cancel frames are understood (recorded for the `cancels` command), credits honoured by the
    // streamed `count`; heartbeats are answered unless --no-heartbeat.
    let mut control = vec![CONTROL_CANCEL.to_string(), CONTROL_CREDIT.to_string()];
    if !options.no_heartbeat {
        control.push(CONTROL_HEARTBEAT.to_string());
    }
    let sent = if options.bad_handshake {
        let frame = encode_frame(b"this is not a handshake", usize::MAX).expect("tiny frame");
        wire.send_raw(&frame)
    } else {
        wire.send_handshake(&Handshake::Ready {
            protocol: PROTOCOL_VERSION,
            pid: std::process::id(),
            adapter: None,
            commands: COMMANDS.iter().map(|command| command.to_string()).collect(),
            control,
            // It reads cancel and credit frames in its request stream.
            control_fd: false,
        })
    };
    if let Err(error) = sent {
        die(2, &format!("cannot write the handshake: {error}"));
    }
    std::process::exit(Worker::new(wire, !options.no_heartbeat).serve())
}
