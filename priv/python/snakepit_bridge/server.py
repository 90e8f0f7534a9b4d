"""A worker's life: start the adapter, report ready (or fatal), answer
requests one at a time until the request pipe closes, clean up, exit.

Requests are read from fd 3 and replies written to fd 4 (Erlang's
``nouse_stdio`` convention), so stdout and stderr stay free for logs. The
main thread reads requests and runs tools; a control thread reads cancel
frames from fd 5 (``SNAKEPIT_CONTROL_FD``) and stops the running tool
(snakepit_bridge.control).
"""

import argparse
import functools
import os
import signal
import sys
import traceback

from . import control, framing, protocol
from .dispatch import Dispatcher, ProtocolViolation
from .loader import start_adapter, stop_adapter

EXIT_OK = 0  # request pipe closed, or SIGTERM/SIGINT
EXIT_FATAL = 1  # the adapter could not be started (a fatal frame was sent)
EXIT_PROTOCOL = 2  # bad configuration or a malformed/oversized frame

READ_BUFFER_SIZE = 64 * 1024


class Terminated(BaseException):
    """Raised in the main thread by the SIGTERM/SIGINT handler.

    A BaseException, so that tools' ``except Exception`` does not swallow it.
    """


def log(message):
    print(f"[snakepit_bridge] {message}", file=sys.stderr, flush=True)


def main(argv=None):
    """Run a worker; returns the process exit status."""
    try:
        request_fd = _env_int("SNAKEPIT_REQUEST_FD", 3)
        reply_fd = _env_int("SNAKEPIT_REPLY_FD", 4)
        max_frame_size = _env_int("SNAKEPIT_MAX_FRAME_SIZE", framing.DEFAULT_MAX_FRAME_SIZE)
        reader = _open_channel(request_fd, reply_fd)
    except (ValueError, OSError) as exc:
        log(f"cannot start: {exc} (see docs/protocol.md)")
        return EXIT_PROTOCOL

    try:
        adapter_path = _parse_args(sys.argv[1:] if argv is None else argv)
        adapter = start_adapter(adapter_path)
    except Exception as exc:
        text = traceback.format_exc()
        log(f"cannot start the adapter:\n{text}")
        message = f"cannot start the adapter: {exc}"
        fatal = protocol.fatal(message, type(exc).__name__, text)
        _send_quietly(reply_fd, protocol.encode_lossy(fatal))
        return EXIT_FATAL

    dispatcher = Dispatcher(adapter, max_frame_size)
    status = EXIT_OK
    try:
        _handle_signals(signal.SIGTERM, signal.SIGINT)
        scope = _start_control(max_frame_size)
        if scope is None:
            kinds = control.STREAM_KINDS
            ready = protocol.ready(adapter_path, dispatcher.command_names(), control=kinds)
        else:
            ready = protocol.ready(
                adapter_path, dispatcher.command_names(), control=control.KINDS, control_fd=True
            )
        framing.write_frame(reply_fd, protocol.encode_lossy(ready))
        serve(reader, reply_fd, dispatcher, max_frame_size, scope)
    except (Terminated, BrokenPipeError, control.Cancelled):
        pass  # asked to stop, or the pool is gone (or a cancel raced a stop)
    except framing.FrameError as exc:
        log(f"stopping: {exc}")
        status = EXIT_PROTOCOL
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _cleanup(adapter)
    return status


def serve(reader, reply_fd, dispatcher, max_frame_size, scope=None):
    """Answer request frames until the request stream ends; with a cancel
    ``scope``, each tool runs inside it."""
    send = functools.partial(framing.write_frame, reply_fd)
    read_frame = framing.read_frame
    if scope is None:
        handle = dispatcher.handle
    else:
        send_chunk = functools.partial(_send_chunk, scope, send)
        handle = functools.partial(_handle_cancellable, dispatcher, scope, send_chunk)
    while True:
        payload = read_frame(reader, max_frame_size)
        if payload is None:
            # End of file: from here on a stop signal must not interrupt the clean-up that
            # follows (the pool closes the pipe and signals SIGTERM together when it stops).
            _signals["stopping"] = True
            return
        try:
            handle(payload, send)
        except ProtocolViolation as exc:
            log(f"ignoring a frame: {exc}")


def _handle_cancellable(dispatcher, scope, send_chunk, payload, send):
    """``Dispatcher.handle`` with the tool inside ``scope``: a cancel frame
    stops it, and its final reply is then a ``Cancelled`` failure."""
    call = dispatcher.accept(payload, send)
    if call is None:
        return
    # exit() ends what a cancel can do: after it, the cancel is one that crossed the reply.
    try:
        scope.enter(call.request_id, call.context, call.window)
        final = dispatcher.reply(call, send_chunk)
        scope.exit()
    except control.Cancelled:
        scope.exit()  # a request is cancelled once: nothing more can fire
        final = dispatcher.cancelled(call.request_id)
    except BaseException:
        # A cancel raised just now must not replace what is leaving (a stop signal, a broken
        # pipe): exit() clears it, and a Cancelled that fires before it does is dropped.
        try:
            scope.exit()
        except control.Cancelled:
            scope.exit()
        raise
    send(final)


def _send_chunk(scope, send, chunk):
    """Sends one chunk of the running stream once it has credit (it may wait
    for the pool's credit frames; a cancel ends the wait with Cancelled)."""
    scope.hold_chunk()
    send(chunk)
    scope.release()


def _start_control(max_frame_size):
    """The cancel scope, with its control reader running, if the pool gave
    the worker a control descriptor; None otherwise (cancel frames are then
    skipped, and a tool that overruns its timeout costs its worker)."""
    try:
        control_fd = _env_int("SNAKEPIT_CONTROL_FD", -1)
    except ValueError as exc:
        log(f"no cancellation: {exc}")
        return None
    if control_fd < 0:
        return None
    try:
        stream = control.open_reader(control_fd)
    except OSError as exc:
        log(f"no cancellation: control fd {control_fd} is not open ({exc.strerror})")
        return None
    scope = control.CancelScope()
    control.install(scope)
    control.ControlReader(stream, scope, max_frame_size, log).start()
    return scope


def _env_int(name, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return number


def _open_channel(request_fd, reply_fd):
    """Check both pipe ends, keep them out of child processes, and return a
    buffered reader on the request end."""
    for fd, role in ((request_fd, "request"), (reply_fd, "reply")):
        try:
            os.set_inheritable(fd, False)
        except OSError as exc:
            raise OSError(f"{role} fd {fd} is not open ({exc.strerror})") from None
    return open(request_fd, "rb", buffering=READ_BUFFER_SIZE, closefd=False)


def _parse_args(argv):
    """The --adapter option; other arguments are ignored."""
    parser = argparse.ArgumentParser(
        prog="snakepit_bridge", add_help=False, allow_abbrev=False, exit_on_error=False
    )
    parser.add_argument("--adapter", default=None)
    options, _unknown = parser.parse_known_args(argv)
    return options.adapter


# Whether the worker is already stopping (end of file seen): a signal then has nothing to
# interrupt, and raising would cut the adapter's clean-up short.
_signals = {"stopping": False}


def _handle_signals(*signums):
    def on_signal(_signum, _frame):
        for signum in signums:  # one Terminated is enough; ignore repeats
            signal.signal(signum, signal.SIG_IGN)
        if not _signals["stopping"]:
            raise Terminated

    for signum in signums:
        signal.signal(signum, on_signal)


def _send_quietly(fd, payload):
    try:
        framing.write_frame(fd, payload)
    except OSError as exc:
        log(f"could not send the fatal frame: {exc}")


def _cleanup(adapter):
    try:
        stop_adapter(adapter)
    except Exception:
        log(f"adapter cleanup failed:\n{traceback.format_exc()}")
