"""TestAdapter: tools the ExUnit suite uses to exercise workers.

Put test/support/python on PYTHONPATH and start workers with
``--adapter snakepit_test_adapter.TestAdapter``.
"""

import os
import sys
import time

from snakepit_bridge import BaseAdapter, tool


class TestAdapter(BaseAdapter):
    def initialize(self):
        """With SNAKEPIT_TEST_BARRIER_DIR and _COUNT set, finish starting only once that many
        workers are starting at the same time: proves the pool starts workers concurrently (a
        pool that started them one after another would see the first one fail) without timing."""
        barrier = os.environ.get("SNAKEPIT_TEST_BARRIER_DIR")
        if not barrier:
            return
        count = int(os.environ["SNAKEPIT_TEST_BARRIER_COUNT"])
        open(os.path.join(barrier, str(os.getpid())), "w").close()
        deadline = time.monotonic() + 20
        while len(os.listdir(barrier)) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(os.listdir(barrier))} of {count} workers started together")
            time.sleep(0.01)

    @tool(description="Sleep ms milliseconds; first append a line to the marker file if given")
    def sleep(self, ms, marker=None):
        if marker is not None:
            # Written before sleeping, so a test can tell whether the call started.
            with open(marker, "a") as file:
                file.write(f"{ms}\n")
        time.sleep(ms / 1000)
        return {"slept": ms, "pid": os.getpid()}

    @tool(description="Block until a line is written to the FIFO `fifo`; touch `marker` first")
    def block(self, fifo, marker=None):
        """Holds a request for as long as a test likes, without timing: opening the FIFO for
        reading waits until the test opens it for writing; the first line written is returned."""
        if marker is not None:
            open(marker, "w").close()  # before blocking, so a test can tell the call started
        with open(fifo, "rb") as pipe:
            line = pipe.readline()
        return {"released": line.decode().removesuffix("\n")}

    @tool(description="Run a shell command; return its exit status and the signals ignored")
    def run_command(self, command):
        import subprocess

        with open(f"/proc/{os.getpid()}/status") as status:
            ignored = next(line.split()[1] for line in status if line.startswith("SigIgn:"))
        return {"status": subprocess.run(["/bin/sh", "-c", command]).returncode, "sig_ign": ignored}

    @tool(description="Raise ValueError(message)")
    def raise_error(self, message):
        raise ValueError(message)

    @tool(description="This worker's pid and id, and the request's session")
    def whoami(self):
        return {"pid": os.getpid(), "worker_id": self.worker_id, "session_id": self.session_id}

    @tool(description="Return the keyword arguments as received")
    def echo_types(self, **kwargs):
        return kwargs

    @tool(description="Print lines to stdout and to stderr")
    def print_noise(self, lines):
        for i in range(lines):
            print(f"noise stdout {i}")
            print(f"noise stderr {i}", file=sys.stderr)
        return "ok"

    @tool(description="A string of size 'x' characters")
    def big(self, size):
        return "x" * size

    @tool(description="Return a list that contains itself, which JSON cannot represent")
    def not_serializable(self):
        loop = [1]
        loop.append(loop)
        return loop

    @tool(description="Stream {n: 1} .. {n: count}; raise after fail_after items if given")
    def stream_items(self, count, fail_after=None):
        for n in range(1, count + 1):
            if fail_after is not None and n > fail_after:
                raise RuntimeError(f"failed after {fail_after} items")
            yield {"n": n}

    @tool(description="Exit the worker process at once with the given status")
    def crash(self, status=1):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)

    @tool(description="Count this session's calls on this worker; return the count and pid")
    def bump(self):
        """State kept on the worker per session, as a user's adapter would keep it: a session
        whose calls all reach one worker counts 1, 2, 3, ...; a call on another worker starts
        over there."""
        counts = self.__dict__.setdefault("_session_counts", {})
        counts[self.session_id] = counts.get(self.session_id, 0) + 1
        return {"count": counts[self.session_id], "pid": os.getpid(), "session_id": self.session_id}
