"""Runs ``python -m snakepit_bridge`` as a child process with its request
and reply pipes, the way the pool does (helper for the end-to-end tests)."""

import fcntl
import json
import os
import select
import subprocess
import sys
import time

from snakepit_bridge.framing import read_frame, write_frame

PYTHON_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_ROOT = os.path.dirname(os.path.dirname(PYTHON_ROOT))
TEST_ADAPTER_DIR = os.path.join(REPO_ROOT, "test", "support", "python")


class PipeReader:
    """``read(n)`` on a file descriptor that gives up after ``timeout`` seconds."""

    def __init__(self, fd, timeout):
        self.fd = fd
        self.timeout = timeout

    def read(self, n):
        ready, _, _ = select.select([self.fd], [], [], self.timeout)
        if not ready:
            raise TimeoutError(f"no reply within {self.timeout} s")
        return os.read(self.fd, n)


class BridgeProcess:
    """A worker child. With ``default_fds`` the pipes are placed on fds 3
    and 4 and no SNAKEPIT_*_FD variables are set (an Erlang port's view);
    otherwise the variables name wherever the pipes happen to be. With
    ``control`` it also gets a control pipe (SNAKEPIT_CONTROL_FD), as the
    pool gives it; ``send_control`` writes there."""

    def __init__(
        self, *args, env=None, default_fds=False, control=False, timeout=10, python=sys.executable
    ):
        request_read, self.request_fd = os.pipe()
        reply_read, reply_write = os.pipe()
        control_read, self.control_fd = os.pipe() if control else (None, None)
        environment = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEPIT_")}
        environment["PYTHONPATH"] = os.pathsep.join([PYTHON_ROOT, TEST_ADAPTER_DIR])
        environment["PYTHONUNBUFFERED"] = "1"
        if default_fds:
            options = {
                "close_fds": False,
                "preexec_fn": _move_to_3_and_4(request_read, reply_write),
            }
        else:
            environment["SNAKEPIT_REQUEST_FD"] = str(request_read)
            environment["SNAKEPIT_REPLY_FD"] = str(reply_write)
            options = {"pass_fds": (request_read, reply_write)}
        if control:
            environment["SNAKEPIT_CONTROL_FD"] = str(control_read)
            options["pass_fds"] = (*options.get("pass_fds", ()), control_read)
        environment.update(env or {})
        self.process = subprocess.Popen(
            [python, "-m", "snakepit_bridge", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment,
            **options,
        )
        os.close(request_read)
        os.close(reply_write)
        if control_read is not None:
            os.close(control_read)
        self.reply_fd = reply_read
        self.replies = PipeReader(reply_read, timeout)
        self.timeout = timeout
        # What the worker printed so far, per stream (see wait_for_output).
        self.output = {"stdout": b"", "stderr": b""}

    def send(self, message):
        write_frame(self.request_fd, json.dumps(message).encode())

    def send_control(self, message):
        write_frame(self.control_fd, json.dumps(message).encode())

    def send_raw(self, data):
        os.write(self.request_fd, data)

    def receive(self):
        """The next reply as a dict, or None at end of file."""
        payload = read_frame(self.replies)
        return None if payload is None else json.loads(payload)

    def call(self, request_id, command, **fields):
        self.send({"id": request_id, "command": command, **fields})
        return self.receive()

    def wait_for_output(self, text, stream="stdout"):
        """Waits until the worker has printed ``text`` on ``stream`` (stdout or stderr)
        since it started; fails after the timeout."""
        wanted = text.encode()
        deadline = time.monotonic() + self.timeout
        fd = getattr(self.process, stream).fileno()
        while wanted not in self.output[stream]:
            ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
            chunk = os.read(fd, 65536) if ready else b""
            if not chunk:
                raise AssertionError(f"no {text!r} on {stream}; got {self.output[stream]!r}")
            self.output[stream] += chunk

    def printed(self, stream="stdout"):
        """Everything the worker printed on ``stream`` so far, reading what is there without
        waiting."""
        fd = getattr(self.process, stream).fileno()
        while select.select([fd], [], [], 0)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            self.output[stream] += chunk
        return self.output[stream].decode()

    def reply_waiting(self):
        """Whether a reply frame (or end of file) can be read now, without waiting."""
        return bool(select.select([self.reply_fd], [], [], 0)[0])

    def finish(self):
        """Close the request pipe; return (exit status, stdout, stderr)."""
        if self.request_fd is not None:
            os.close(self.request_fd)
            self.request_fd = None
        if self.control_fd is not None:
            os.close(self.control_fd)
            self.control_fd = None
        out, err = self.process.communicate(timeout=self.timeout)
        if self.reply_fd is not None:
            os.close(self.reply_fd)
            self.reply_fd = None
        return self.process.returncode, (out or b"").decode(), (err or b"").decode()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        if self.process.poll() is None:
            self.process.kill()
        self.finish()


def _move_to_3_and_4(request_read, reply_write):
    """A preexec_fn putting the pipe ends on fds 3 and 4 in the child."""

    def move():
        # Park both above 4 first, in case either already sits on 3 or 4.
        parked_read = fcntl.fcntl(request_read, fcntl.F_DUPFD_CLOEXEC, 10)
        parked_write = fcntl.fcntl(reply_write, fcntl.F_DUPFD_CLOEXEC, 10)
        os.dup2(parked_read, 3)
        os.dup2(parked_write, 4)

    return move
