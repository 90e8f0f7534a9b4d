"""A worker running an upstream-style adapter (test/support/python/upstream_compat_adapter.py)
over real pipes."""

import os
import signal
import tempfile
import unittest

from snakepit_bridge_tests.bridge_process import BridgeProcess

ADAPTER = "upstream_compat_adapter.CompatAdapter"


class UpstreamWorkerTest(unittest.TestCase):
    def setUp(self):
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        self.cleanup_file = os.path.join(directory.name, "cleanup")
        self.env = {"COMPAT_CLEANUP_FILE": self.cleanup_file}

    def cleanups(self):
        with open(self.cleanup_file) as file:
            return file.read()

    def test_serves_and_cleans_up_asynchronously_at_end_of_input(self):
        with BridgeProcess("--adapter", ADAPTER, env=self.env) as worker:
            ready = worker.receive()
            self.assertEqual(ready["type"], "ready")
            self.assertIn("graceful", ready["commands"])
            info = worker.call(1, "context_info", session_id="s")["result"]
            self.assertEqual((info["state"], info["session_id"]), ("initialized", "s"))
            result = worker.call(2, "graceful")["result"]
            self.assertEqual((result["when"], result["tags"]), ("2024-01-02T03:04:05", ["only"]))
            self.assertEqual(worker.call(3, "whole", args={"kind": "nan"})["result"], "NaN")
            self.assertEqual(worker.finish()[0], 0)
        self.assertEqual(self.cleanups(), "cleanup same_loop=True\n")

    def test_sigterm_runs_the_async_cleanup(self):
        with BridgeProcess("--adapter", ADAPTER, env=self.env) as worker:
            worker.receive()
            worker.process.send_signal(signal.SIGTERM)
            self.assertEqual(worker.process.wait(timeout=10), 0)
        self.assertEqual(self.cleanups(), "cleanup same_loop=True\n")


if __name__ == "__main__":
    unittest.main()
