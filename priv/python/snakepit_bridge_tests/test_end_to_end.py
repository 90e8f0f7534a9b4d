"""Runs real worker processes over real pipes."""

import os
import signal
import tempfile
import textwrap
import time
import unittest

from snakepit_bridge_tests.bridge_process import PYTHON_ROOT, BridgeProcess

SHOWCASE = "snakepit_bridge.adapters.showcase.ShowcaseAdapter"


class ShowcaseWorkerTest(unittest.TestCase):
    def test_lifecycle(self):
        with BridgeProcess(
            "--adapter", SHOWCASE, "--unknown-flag", "x", env={"SNAKEPIT_WORKER_ID": "w7"}
        ) as worker:
            ready = worker.receive()
            self.assertEqual(ready["type"], "ready")
            self.assertEqual(ready["protocol"], 1)
            self.assertEqual(ready["pid"], worker.process.pid)
            self.assertEqual(ready["adapter"], SHOWCASE)
            self.assertEqual(ready["commands"], sorted(ready["commands"]))
            self.assertTrue(
                {"ping", "echo", "describe", "add", "count_up"} <= set(ready["commands"])
            )

            self.assertEqual(
                worker.call(1, "add", args={"a": 2, "b": 3}), {"id": 1, "ok": True, "result": 5}
            )
            self.assertEqual(
                worker.call(2, "fibonacci", args={"n": 10})["result"], {"n": 10, "value": 55}
            )
            self.assertEqual(worker.call(3, "ping")["result"]["worker_id"], "w7")
            self.assertEqual(
                worker.call(4, "word_count", args={"text": "a b a"})["result"], {"a": 2, "b": 1}
            )
            stats = worker.call(5, "stats", args={"numbers": [1, 2, 3, 4]})["result"]
            self.assertEqual(
                (stats["count"], stats["mean"], stats["min"], stats["max"]), (4, 2.5, 1, 4)
            )

            worker.send({"id": 6, "command": "count_up", "args": {"to": 2}, "stream": True})
            self.assertEqual(
                [worker.receive() for _ in range(3)],
                [
                    {"id": 6, "chunk": {"i": 1}},
                    {"id": 6, "chunk": {"i": 2}},
                    {"id": 6, "ok": True, "result": None, "done": True},
                ],
            )

            for expected in (1, 2):
                result = worker.call(7, "session_counter", session_id="s1")["result"]
                self.assertEqual(result, {"session_id": "s1", "count": expected})
            self.assertEqual(
                worker.call(8, "session_counter")["result"], {"session_id": None, "count": None}
            )

            error = worker.call(9, "fibonacci", args={"n": -1})["error"]
            self.assertEqual(error["type"], "ValueError")

            worker.send({"id": 10, "cancel": True})  # reserved: ignored, no reply
            worker.send_raw(b"\x00\x00\x00\x03abc")  # not JSON: logged, no reply
            self.assertEqual(
                worker.call(11, "echo", args={"x": "\u2603"})["result"], {"x": "\u2603"}
            )

            status, _out, err = worker.finish()
            self.assertEqual(status, 0)
            self.assertIn("not valid JSON", err)

    def test_default_fds_without_environment(self):
        with BridgeProcess(default_fds=True) as worker:
            ready = worker.receive()
            self.assertEqual((ready["type"], ready["adapter"]), ("ready", None))
            self.assertEqual(ready["commands"], ["describe", "echo", "ping"])
            self.assertEqual(worker.call(1, "ping")["result"]["status"], "pong")
            self.assertEqual(worker.finish()[0], 0)


class FailureTest(unittest.TestCase):
    def test_unimportable_adapter_is_fatal(self):
        with BridgeProcess("--adapter", "no_such_module.Adapter") as worker:
            fatal = worker.receive()
            self.assertEqual(fatal["type"], "fatal")
            self.assertEqual(fatal["error_type"], "ModuleNotFoundError")
            self.assertIn("no_such_module", fatal["message"])
            self.assertIn("Traceback", fatal["traceback"])
            self.assertIsNone(worker.receive())
            self.assertEqual(worker.finish()[0], 1)

    def test_missing_adapter_class_is_fatal(self):
        with BridgeProcess("--adapter", "snakepit_bridge.adapters.showcase.Nope") as worker:
            fatal = worker.receive()
            self.assertEqual((fatal["type"], fatal["error_type"]), ("fatal", "AttributeError"))
            self.assertEqual(worker.finish()[0], 1)

    def test_oversized_request_ends_the_worker(self):
        with BridgeProcess(env={"SNAKEPIT_MAX_FRAME_SIZE": "100"}) as worker:
            worker.receive()
            worker.send_raw((101).to_bytes(4, "big"))
            status, _out, err = worker.finish()
            self.assertEqual(status, 2)
            self.assertIn("exceeds the maximum frame size", err)

    def test_sigterm_exits_cleanly(self):
        with BridgeProcess() as worker:
            worker.receive()
            worker.process.send_signal(signal.SIGTERM)
            self.assertEqual(worker.process.wait(timeout=10), 0)

    def test_unopened_fds_are_reported(self):
        with BridgeProcess(env={"SNAKEPIT_REPLY_FD": "987"}) as worker:
            status, _out, err = worker.finish()
            self.assertEqual(status, 2)
            self.assertIn("reply fd 987 is not open", err)


HOOKS_ADAPTER = textwrap.dedent("""
    import os, threading, time
    from snakepit_bridge import BaseAdapter, tool

    def note(text):
        with open(os.environ["HOOKS_LOG"], "a") as file:
            file.write(text + "\\n")

    class HooksAdapter(BaseAdapter):
        def initialize(self):
            note("initialize")
            # A non-daemon thread that would keep a normal interpreter alive.
            threading.Thread(target=time.sleep, args=(3600,)).start()

        def cleanup(self):
            note("cleanup")

        @tool
        def hello(self):
            note("hello")
            return "hi"

    class BrokenAdapter(BaseAdapter):
        def initialize(self):
            raise RuntimeError("cannot initialize")
    """)


class LifecycleHooksTest(unittest.TestCase):
    def setUp(self):
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        with open(os.path.join(directory.name, "hooks_adapter.py"), "w") as file:
            file.write(HOOKS_ADAPTER)
        self.log = os.path.join(directory.name, "log")
        self.env = {
            "HOOKS_LOG": self.log,
            "PYTHONPATH": os.pathsep.join([PYTHON_ROOT, directory.name]),
        }

    def notes(self):
        with open(self.log) as file:
            return file.read().split()

    def test_hooks_run_around_requests_and_stray_threads_do_not_block_exit(self):
        with BridgeProcess("--adapter", "hooks_adapter.HooksAdapter", env=self.env) as worker:
            self.assertEqual(worker.receive()["type"], "ready")
            self.assertEqual(self.notes(), ["initialize"])
            self.assertEqual(worker.call(1, "hello")["result"], "hi")
            self.assertEqual(worker.finish()[0], 0)
        self.assertEqual(self.notes(), ["initialize", "hello", "cleanup"])

    def test_sigterm_runs_cleanup(self):
        with BridgeProcess("--adapter", "hooks_adapter.HooksAdapter", env=self.env) as worker:
            worker.receive()
            worker.process.send_signal(signal.SIGTERM)
            self.assertEqual(worker.process.wait(timeout=10), 0)
        self.assertEqual(self.notes(), ["initialize", "cleanup"])

    def test_failing_initialize_is_fatal(self):
        with BridgeProcess("--adapter", "hooks_adapter.BrokenAdapter", env=self.env) as worker:
            fatal = worker.receive()
            self.assertEqual((fatal["type"], fatal["error_type"]), ("fatal", "RuntimeError"))
            self.assertIn("cannot initialize", fatal["message"])
            self.assertEqual(worker.finish()[0], 1)


class TestAdapterWorkerTest(unittest.TestCase):
    """The adapter ExUnit uses (test/support/python) behaves as its tests expect."""

    def test_output_does_not_disturb_the_protocol(self):
        with BridgeProcess("--adapter", "snakepit_test_adapter.TestAdapter") as worker:
            worker.receive()
            self.assertEqual(worker.call(1, "print_noise", args={"lines": 3})["result"], "ok")
            self.assertEqual(
                worker.call(2, "not_serializable")["error"]["type"], "SerializationError"
            )
            self.assertEqual(
                len(worker.call(3, "big", args={"size": 1_000_000})["result"]), 1_000_000
            )
            whoami = worker.call(4, "whoami", session_id="abc")["result"]
            self.assertEqual((whoami["pid"], whoami["session_id"]), (worker.process.pid, "abc"))
            status, out, err = worker.finish()
            self.assertEqual(status, 0)
            self.assertIn("noise stdout 2", out)
            self.assertIn("noise stderr 2", err)

    def test_sleep_marks_before_sleeping(self):
        marker = os.path.join(self.tmp_dir(), "marker")
        with BridgeProcess("--adapter", "snakepit_test_adapter.TestAdapter") as worker:
            worker.receive()
            reply = worker.call(1, "sleep", args={"ms": 5, "marker": marker})
            self.assertEqual(reply["result"], {"slept": 5, "pid": worker.process.pid})
            self.assertEqual(worker.finish()[0], 0)
        with open(marker) as file:
            self.assertEqual(file.read(), "5\n")

    def test_sigterm_interrupts_a_running_tool(self):
        marker = os.path.join(self.tmp_dir(), "marker")
        with BridgeProcess("--adapter", "snakepit_test_adapter.TestAdapter") as worker:
            worker.receive()
            worker.send({"id": 1, "command": "sleep", "args": {"ms": 60_000, "marker": marker}})
            deadline = time.monotonic() + 10
            while not os.path.exists(marker) and time.monotonic() < deadline:
                time.sleep(0.01)
            worker.process.send_signal(signal.SIGTERM)
            self.assertEqual(worker.process.wait(timeout=5), 0)

    def tmp_dir(self):
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        return directory.name


if __name__ == "__main__":
    unittest.main()
