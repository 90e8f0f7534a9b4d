"""Cancel frames sent on the control descriptor of real worker processes
running test/support/python/cancellation_adapter.py. A tool says on stdout
when it has started, so the cancel frame is sent while it runs."""

import unittest

from snakepit_bridge_tests.bridge_process import BridgeProcess

ADAPTER = "cancellation_adapter.CancellationAdapter"


class Worker(BridgeProcess):
    def __init__(self, *args, control=True, **kwargs):
        super().__init__("--adapter", ADAPTER, *args, control=control, **kwargs)
        self.ready = self.receive()
        self.pid = self.ready["pid"]

    def wait_for_line(self, line):
        """Waits until the worker printed ``line`` to stdout."""
        self.wait_for_output(line + "\n")

    def start(self, request_id, tool, **fields):
        """Sends a request for ``tool`` and waits until the tool runs."""
        self.send({"id": request_id, "command": tool, **fields})
        self.wait_for_line(f"cancellation_adapter: {tool} started")

    def cancel(self, request_id):
        self.send_control({"id": request_id, "cancel": True})


class CancellationTest(unittest.TestCase):
    def assert_cancelled(self, reply, request_id):
        self.assertEqual((reply["id"], reply["ok"]), (request_id, False), reply)
        self.assertEqual(reply["error"]["type"], "Cancelled")

    def assert_serves_on(self, worker, request_id):
        """The same process answers the next request, with no stray reply before it."""
        self.assertEqual(worker.call(request_id, "whoami")["result"], {"pid": worker.pid})

    def test_the_handshake_announces_cancel_and_the_control_descriptor(self):
        with Worker() as worker:
            self.assertEqual(
                worker.ready["control"], ["cancel", "credit", "heartbeat", "session_end"]
            )
            self.assertIs(worker.ready["control_fd"], True)

    def test_without_a_control_descriptor_cancels_are_not_announced(self):
        with Worker(control=False) as worker:
            self.assertEqual(worker.ready["control"], ["heartbeat", "session_end"])
            self.assertNotIn("control_fd", worker.ready)

    def test_a_python_loop_is_stopped_by_the_exception(self):
        with Worker() as worker:
            worker.start(1, "spin")
            worker.cancel(1)
            self.assert_cancelled(worker.receive(), 1)
            worker.wait_for_line("cancellation_adapter: spin cancelled")
            self.assert_serves_on(worker, 2)

    def test_a_wait_on_the_cancel_event_is_ended_by_the_flag(self):
        with Worker() as worker:
            worker.start(1, "wait_for_cancel")
            worker.cancel(1)
            # The tool waits 60 s unless the flag ends its wait; receive gives up after 10.
            self.assert_cancelled(worker.receive(), 1)
            self.assert_serves_on(worker, 2)

    def test_a_tool_polling_cancelled_stops_and_answers(self):
        with Worker() as worker:
            worker.start(1, "poll_cancelled")
            worker.cancel(1)
            # It catches Cancelled (if that came first) and returns: a normal reply.
            self.assertEqual(worker.receive(), {"id": 1, "ok": True, "result": "stopped"})
            self.assert_serves_on(worker, 2)

    def test_an_async_tool_has_its_task_cancelled(self):
        with Worker() as worker:
            worker.start(1, "async_sleep", args={"seconds": 60})
            worker.cancel(1)
            self.assert_cancelled(worker.receive(), 1)
            worker.wait_for_line("cancellation_adapter: async_sleep cancelled")
            self.assert_serves_on(worker, 2)

    def test_a_stream_keeps_its_chunks_and_ends_with_the_failure(self):
        with Worker() as worker:
            worker.start(1, "ticks", stream=True)
            self.assertEqual(worker.receive(), {"id": 1, "chunk": 0})
            worker.cancel(1)
            chunks = []
            for reply in iter(worker.receive, None):
                if "chunk" not in reply:
                    break
                chunks.append(reply["chunk"])
            self.assertEqual(chunks, list(range(1, len(chunks) + 1)))
            self.assert_cancelled(reply, 1)
            worker.wait_for_line("cancellation_adapter: ticks stopped")
            self.assert_serves_on(worker, 2)

    def test_a_cancel_that_crosses_the_reply_changes_nothing(self):
        with Worker() as worker:
            self.assertEqual(worker.call(1, "whoami")["result"], {"pid": worker.pid})
            worker.cancel(1)  # too late: answered already
            self.assert_serves_on(worker, 2)
            self.assert_serves_on(worker, 3)

    def test_a_cancel_in_the_request_stream_is_skipped(self):
        # Only the control descriptor carries cancels for this worker; one in the request
        # stream gets no reply and stops nothing.
        with Worker() as worker:
            worker.send({"id": 1, "cancel": True})
            self.assert_serves_on(worker, 2)

    def test_garbage_on_the_control_descriptor_is_logged_and_skipped(self):
        with Worker() as worker:
            worker.send_control({"id": 1, "pause": True})
            worker.send_control([1])
            worker.start(2, "spin")
            worker.cancel(2)
            self.assert_cancelled(worker.receive(), 2)
            self.assert_serves_on(worker, 3)
            _status, _out, err = worker.finish()
            self.assertIn("ignoring a control frame", err)

    def test_a_tool_blocked_in_c_answers_when_the_call_returns(self):
        # The exception cannot interrupt time.sleep; the flag is set, the reply comes after.
        with Worker() as worker:
            worker.start(1, "sleep", args={"seconds": 0.3})
            worker.cancel(1)
            reply = worker.receive()
            self.assertEqual(reply["id"], 1)
            self.assert_serves_on(worker, 2)

    def test_end_of_file_on_both_descriptors_ends_the_worker(self):
        with Worker() as worker:
            self.assert_serves_on(worker, 1)
            self.assertEqual(worker.finish()[0], 0)


if __name__ == "__main__":
    unittest.main()
