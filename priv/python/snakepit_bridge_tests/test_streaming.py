"""Streamed replies of real worker processes running test/support/python/streaming_adapter.py:
chunks in order, the credit window (back-pressure), halting a stream by cancelling it, failures
mid-stream, and every form of streaming tool.

Nothing here waits for time. A worker's stream that runs out of credit says so on stderr (the
bridge's debug log: ``request N waits for credit after C chunks``), written once the worker has
decided to wait; from then on nothing more can arrive until a credit (or a cancel) is sent, so
the tests check the reply pipe without waiting, and the adapter's tools say on stdout how far
they got."""

import signal
import unittest

from snakepit_bridge_tests.bridge_process import BridgeProcess

ADAPTER = "streaming_adapter.StreamingAdapter"


class Worker(BridgeProcess):
    def __init__(self, *args, control=True, **kwargs):
        env = {"SNAKEPIT_LOG_LEVEL": "debug"}
        super().__init__("--adapter", ADAPTER, *args, control=control, env=env, **kwargs)
        self.ready = self.receive()
        self.pid = self.ready["pid"]

    def stream(self, request_id, tool, window=None, **args):
        request = {"id": request_id, "command": tool, "args": args, "stream": True}
        if window is not None:
            request["window"] = window
        self.send(request)

    def credit(self, request_id, credit):
        self.send_control({"id": request_id, "credit": credit})

    def cancel(self, request_id):
        self.send_control({"id": request_id, "cancel": True})

    def chunks(self, request_id, count):
        """The next ``count`` replies, which must be chunks of ``request_id``: their values."""
        values = []
        for _ in range(count):
            reply = self.receive()
            if reply.get("id") != request_id or "chunk" not in reply:
                raise AssertionError(f"expected a chunk of {request_id}, got {reply}")
            values.append(reply["chunk"])
        return values

    def rest(self, request_id):
        """The chunks of ``request_id`` up to its final reply: (values, final reply)."""
        values = []
        while True:
            reply = self.receive()
            if reply is None or reply.get("id") != request_id:
                raise AssertionError(f"expected a reply to {request_id}, got {reply}")
            if "chunk" not in reply:
                return values, reply
            values.append(reply["chunk"])

    def wait_until_waiting(self, request_id, sent):
        """Waits until stream ``request_id`` stopped for credit after ``sent`` chunks."""
        line = f"request {request_id} waits for credit after {sent} chunks\n"
        self.wait_for_output(line, "stderr")


def done(request_id):
    return {"id": request_id, "ok": True, "result": None, "done": True}


class StreamingTest(unittest.TestCase):
    def assert_serves_on(self, worker, request_id):
        """The same process answers the next request, with no stray reply before it."""
        self.assertEqual(worker.call(request_id, "whoami")["result"], {"pid": worker.pid})

    def assert_cancelled(self, reply, request_id):
        self.assertEqual((reply["id"], reply["ok"]), (request_id, False), reply)
        self.assertEqual(reply["error"]["type"], "Cancelled")

    def cancel(self, worker, request_id, tool, stops=1):
        """Cancels stream ``request_id`` of ``tool``; returns the chunks sent before its
        ``Cancelled`` final reply. The generator's finally block ran before that reply (so its
        line is on stdout by then): ``stops`` times so far."""
        worker.cancel(request_id)
        chunks, final = worker.rest(request_id)
        self.assert_cancelled(final, request_id)
        self.assertEqual(worker.printed().count(f"{tool} stopped\n"), stops)
        return chunks

    def assert_stalled(self, worker):
        """Nothing more can come: the worker waits for credit, and said so."""
        self.assertFalse(worker.reply_waiting(), "a reply came without credit")

    def test_the_handshake_announces_credits(self):
        with Worker() as worker:
            self.assertIn("credit", worker.ready["control"])

    def test_the_window_is_honoured_exactly(self):
        with Worker() as worker:
            worker.stream(1, "count_loudly", window=3, n=10)
            self.assertEqual(worker.chunks(1, 3), [0, 1, 2])
            worker.wait_until_waiting(1, 3)
            self.assert_stalled(worker)
            # The tool made item 3 and waits at its yield: it got no further.
            printed = worker.printed()
            self.assertIn("count_loudly yielding 3\n", printed)
            self.assertNotIn("count_loudly yielding 4\n", printed)

            worker.credit(1, 2)
            self.assertEqual(worker.chunks(1, 2), [3, 4])
            worker.wait_until_waiting(1, 5)
            self.assert_stalled(worker)

            worker.credit(1, 100)
            self.assertEqual(worker.rest(1), ([5, 6, 7, 8, 9], done(1)))
            self.assert_serves_on(worker, 2)

    def test_credits_for_other_requests_are_ignored(self):
        with Worker() as worker:
            worker.stream(1, "count_loudly", window=1, n=3)
            self.assertEqual(worker.chunks(1, 1), [0])
            worker.wait_until_waiting(1, 1)
            worker.credit(0, 5)  # an earlier stream's credit, crossing its end
            worker.credit(7, 5)  # a request not sent
            worker.credit(1, 1)
            self.assertEqual(worker.chunks(1, 1), [1])
            # Had the other credits counted, chunk 2 would follow without a wait.
            worker.wait_until_waiting(1, 2)
            self.assert_stalled(worker)
            worker.credit(1, 1)
            self.assertEqual(worker.rest(1), ([2], done(1)))

    def test_ten_thousand_chunks_arrive_in_order_with_credits(self):
        with Worker() as worker:
            window, n = 64, 10_000
            worker.stream(1, "count", window=window, n=n)
            received = []
            while len(received) < n:
                # Like the pool: credit what the consumer took, half a window at a time.
                batch = worker.chunks(1, min(window // 2, n - len(received)))
                received.extend(batch)
                worker.credit(1, len(batch))
            self.assertEqual(received, list(range(n)))
            self.assertEqual(worker.receive(), done(1))
            self.assert_serves_on(worker, 2)

    def test_without_a_window_a_stream_is_unlimited(self):
        with Worker() as worker:
            worker.stream(1, "count", n=10_000)
            self.assertEqual(worker.rest(1), (list(range(10_000)), done(1)))
            self.assertNotIn("waits for credit", worker.printed("stderr"))

    def test_without_a_control_descriptor_the_window_is_ignored(self):
        # No credit can reach such a worker, so it does not announce credits and streams freely.
        with Worker(control=False) as worker:
            self.assertNotIn("credit", worker.ready["control"])
            worker.stream(1, "count", window=2, n=5)
            self.assertEqual(worker.rest(1), ([0, 1, 2, 3, 4], done(1)))

    def test_a_cancel_ends_a_wait_for_credit_and_closes_the_generator(self):
        with Worker() as worker:
            worker.stream(1, "count_loudly", window=2, n=100)
            self.assertEqual(worker.chunks(1, 2), [0, 1])
            worker.wait_until_waiting(1, 2)
            self.assertEqual(self.cancel(worker, 1, "count_loudly"), [])
            self.assert_serves_on(worker, 2)

    def test_a_cancel_stops_a_running_generator(self):
        for window in (None, 1_000_000):
            with self.subTest(window=window), Worker() as worker:
                worker.stream(1, "forever", window=window)
                worker.wait_for_output("forever started\n")
                self.assertEqual(worker.chunks(1, 1), [{"i": 0}])
                chunks = self.cancel(worker, 1, "forever")
                self.assertEqual(chunks, [{"i": i} for i in range(1, len(chunks) + 1)])
                self.assert_serves_on(worker, 2)

    def test_async_generators_stream_and_are_cancelled(self):
        with Worker() as worker:
            worker.stream(1, "async_count", window=2, n=5)
            self.assertEqual(worker.chunks(1, 2), [0, 1])
            worker.wait_until_waiting(1, 2)
            worker.credit(1, 3)
            self.assertEqual(worker.rest(1), ([2, 3, 4], done(1)))

            worker.stream(2, "async_forever")  # cancelled while it runs
            worker.wait_for_output("async_forever started\n")
            chunks = self.cancel(worker, 2, "async_forever")
            self.assertEqual(chunks, list(range(len(chunks))))

            worker.stream(3, "async_forever", window=1)  # cancelled while it waits for credit
            self.assertEqual(worker.chunks(3, 1), [0])
            worker.wait_until_waiting(3, 1)
            self.assertEqual(self.cancel(worker, 3, "async_forever", stops=2), [])
            self.assert_serves_on(worker, 4)

    def test_a_failure_mid_stream_follows_the_chunks_before_it(self):
        with Worker() as worker:
            worker.stream(1, "fail_after", window=2, n=3)
            self.assertEqual(worker.chunks(1, 2), [0, 1])
            worker.credit(1, 2)
            chunks, final = worker.rest(1)
            self.assertEqual(chunks, [2])
            self.assertEqual((final["id"], final["ok"]), (1, False))
            error = final["error"]
            expected = ("ValueError", "failed after 3 chunks")
            self.assertEqual((error["type"], error["message"]), expected)
            self.assertIn("in fail_after", error["traceback"])
            self.assertNotIn("done", final)
            self.assert_serves_on(worker, 2)

    def test_upstream_chunk_objects_send_their_data_and_marks(self):
        with Worker() as worker:
            worker.stream(1, "upstream_chunks", n=2)
            self.assertEqual(worker.receive(), {"id": 1, "chunk": {"step": 1, "total": 2}})
            last = {"id": 1, "chunk": {"step": 2, "total": 2}, "is_final": True}
            self.assertEqual(worker.receive(), last)
            self.assertEqual(worker.receive(), done(1))

            worker.stream(2, "upstream_chunks", n=1, metadata=True)
            marked = {"step": 1, "total": 1}
            expected = {"id": 2, "chunk": marked, "is_final": True, "metadata": {"step": "1"}}
            self.assertEqual(worker.receive(), expected)
            self.assertEqual(worker.receive(), done(2))

    def test_every_form_of_streaming_tool(self):
        with Worker() as worker:
            worker.stream(1, "iterate", n=3)
            self.assertEqual(worker.rest(1), ([0, 1, 2], done(1)))
            worker.stream(2, "single", value={"a": 1})
            self.assertEqual(worker.rest(2), ([{"a": 1}], done(2)))
            worker.stream(3, "count", window=5, n=0)
            self.assertEqual(worker.rest(3), ([], done(3)))

    def test_streaming_a_plain_tool_is_refused_and_a_stream_called_plainly_is_collected(self):
        with Worker() as worker:
            worker.stream(1, "plain", window=4)
            refused = worker.receive()
            self.assertEqual(refused["error"]["type"], "StreamingNotSupported")
            self.assertEqual(worker.call(2, "count", args={"n": 3})["result"], [0, 1, 2])
            chunks = worker.call(3, "upstream_chunks", args={"n": 2})["result"]
            self.assertEqual(chunks, [{"step": 1, "total": 2}, {"step": 2, "total": 2}])

    def test_end_of_file_during_a_wait_for_credit_ends_the_worker_and_the_generator(self):
        with Worker() as worker:
            worker.stream(1, "forever", window=1)
            self.assertEqual(worker.chunks(1, 1), [{"i": 0}])
            worker.wait_until_waiting(1, 1)
            status, out, _err = worker.finish()  # closes the request and control pipes
            self.assertEqual(status, 0)
            self.assertIn("forever stopped\n", out)

    def test_sigterm_during_a_wait_for_credit_runs_the_generators_finally(self):
        with Worker() as worker:
            worker.stream(1, "forever", window=1)
            self.assertEqual(worker.chunks(1, 1), [{"i": 0}])
            worker.wait_until_waiting(1, 1)
            worker.process.send_signal(signal.SIGTERM)
            worker.wait_for_output("forever stopped\n")
            self.assertEqual(worker.finish()[0], 0)


if __name__ == "__main__":
    unittest.main()
