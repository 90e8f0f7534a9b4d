"""control.py: reading control frames, and stopping the running request when
it is cancelled. The cancel comes from another thread, as the control
reader's does; the "tool" runs in the test's own thread."""

import io
import json
import threading
import time
import unittest
from unittest import mock

from snakepit_bridge import SessionContext, control, coroutines, framing

# Bounds every wait, so a broken build fails instead of hanging.
TIMEOUT = 10


def frame(message):
    return framing.encode_frame(json.dumps(message).encode())


def spin(seconds=TIMEOUT):
    """Python code that never looks at cancellation."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass


def in_thread(function):
    """Runs ``function`` in a thread; returns a function that joins it and gives its result."""
    result = []
    thread = threading.Thread(target=lambda: result.append(function()))
    thread.start()

    def join():
        thread.join(TIMEOUT)
        return result[0]

    return join


class RecordingScope:
    def __init__(self):
        self.cancels = []
        self.credits = []
        self.closed = False

    def cancel(self, request_id):
        self.cancels.append(request_id)

    def credit(self, request_id, credit):
        self.credits.append((request_id, credit))

    def close(self):
        self.closed = True


class ControlReaderTest(unittest.TestCase):
    def read(self, data, max_frame=1024):
        self.scope, logs = RecordingScope(), []
        reader = control.ControlReader(io.BytesIO(data), self.scope, max_frame, logs.append)
        reader.start()
        reader.thread.join(TIMEOUT)
        self.assertFalse(reader.thread.is_alive())
        # However the channel ends, the scope hears of it: no credit can come any more.
        self.assertTrue(self.scope.closed)
        return self.scope.cancels, logs

    def test_cancels_reach_the_scope_in_order_and_anything_else_is_logged(self):
        data = b"".join(
            [
                frame({"id": 1, "cancel": True}),
                framing.encode_frame(b"not json"),
                frame({"id": 2, "pause": True}),
                frame({"id": -1, "cancel": True}),
                frame({"id": "3", "cancel": True}),
                frame([4]),
                frame({"id": 5, "cancel": True}),
            ]
        )
        cancels, logs = self.read(data)
        self.assertEqual(cancels, [1, 5])
        self.assertEqual(len(logs), 5)
        self.assertIn("not valid JSON", logs[0])
        self.assertTrue(all(line.startswith("ignoring a control frame") for line in logs), logs)

    def test_credits_reach_the_scope_and_bad_ones_are_logged(self):
        data = b"".join(
            frame(message)
            for message in [
                {"id": 1, "credit": 4},
                {"id": 1, "credit": 0},
                {"id": 1, "credit": 2.0},
                {"id": 1, "credit": True},
                {"credit": 3},
                {"id": 2, "credit": 10**30},
                {"id": 3, "credit": 1, "cancel": True},  # a cancel member wins
                {"id": 4, "credit": 1, "heartbeat": True},  # so does a heartbeat
            ]
        )
        cancels, logs = self.read(data)
        self.assertEqual(self.scope.credits, [(1, 4), (2, 10**30)])
        self.assertEqual(cancels, [3])
        self.assertEqual(len(logs), 5, logs)

    def test_an_oversized_frame_ends_the_reader(self):
        data = frame({"id": 1, "cancel": True}) + (5000).to_bytes(4, "big")
        cancels, logs = self.read(data)
        self.assertEqual(cancels, [1])
        self.assertEqual(len(logs), 1)
        self.assertIn("control channel closed", logs[0])


class CancelScopeTest(unittest.TestCase):
    def setUp(self):
        self.context = SessionContext()
        self.scope = control.CancelScope()

    def cancel_from_another_thread(self, request_id, after=None):
        """Cancels ``request_id`` from a thread, once ``after`` (an Event) is set."""
        def cancel():
            return (after is None or after.wait(TIMEOUT)) and self.scope.cancel(request_id)

        return in_thread(cancel)

    def test_a_cancel_raises_in_the_running_python_code_and_sets_the_flag(self):
        self.scope.enter(7, self.context)
        started = threading.Event()
        cancelled = self.cancel_from_another_thread(7, after=started)
        with self.assertRaises(control.Cancelled):
            started.set()
            spin()
        self.scope.hold()
        self.scope.exit()
        self.assertTrue(cancelled())
        self.assertTrue(self.context.cancelled)

    def test_without_the_exception_the_flag_alone_ends_a_wait(self):
        # As where ctypes is missing (not CPython): tools stop through the flag only.
        with mock.patch.object(control, "_set_async_exc", False):
            self.scope.enter(8, self.context)
            cancelled = self.cancel_from_another_thread(8)
            self.assertTrue(self.context.cancel_event.wait(TIMEOUT))
            spin(0.01)  # and no exception
            self.scope.exit()
        self.assertTrue(cancelled())

    def test_a_cancel_for_a_finished_request_changes_nothing(self):
        self.scope.enter(1, self.context)
        self.scope.hold()
        self.scope.exit()
        self.assertFalse(self.cancel_from_another_thread(1)())
        self.scope.enter(2, SessionContext())
        spin(0.01)  # nothing fires for request 2
        self.scope.exit()
        self.assertFalse(self.context.cancelled)

    def test_a_cancel_before_its_request_was_read_stops_it_at_once(self):
        self.scope.enter(1, SessionContext())
        self.scope.exit()
        self.assertTrue(self.cancel_from_another_thread(3)())  # 3 is newer than 1: not read yet
        self.scope.enter(2, SessionContext())  # not cancelled
        self.scope.exit()
        with self.assertRaises(control.Cancelled):
            self.scope.enter(3, self.context)
        self.scope.hold()
        self.scope.exit()
        self.assertTrue(self.context.cancelled)
        self.scope.enter(4, SessionContext())  # the early cancel is spent
        self.scope.exit()

    def test_nothing_fires_while_a_frame_is_written_nor_after_the_final_reply(self):
        self.scope.enter(3, self.context)
        self.scope.hold()
        self.assertTrue(self.cancel_from_another_thread(3)())
        spin(0.01)  # the write would happen here: nothing fires
        with self.assertRaises(control.Cancelled):
            self.scope.release()  # after a chunk: the stream stops now
        self.scope.hold()
        self.scope.exit()

        self.scope.enter(4, SessionContext())
        self.scope.hold()
        self.scope.exit()
        self.assertFalse(self.cancel_from_another_thread(4)())
        spin(0.01)

    def test_a_request_is_cancelled_once(self):
        self.scope.enter(5, self.context)
        self.scope.hold()
        self.assertTrue(self.cancel_from_another_thread(5)())
        self.assertFalse(self.cancel_from_another_thread(5)())
        self.scope.exit()

    def test_an_awaited_coroutine_is_cancelled_through_its_task(self):
        import asyncio

        started = threading.Event()
        finished = []

        async def tool():
            started.set()
            try:
                await asyncio.sleep(TIMEOUT)
            finally:
                finished.append("finally")

        async def answer():
            return 42

        control.install(self.scope)
        self.addCleanup(control.install, None)
        self.scope.enter(9, self.context)
        cancelled = self.cancel_from_another_thread(9, after=started)
        with self.assertRaises(control.Cancelled):
            coroutines.settle(tool())  # the worker's one event loop, as a tool's runs
        self.scope.hold()
        self.scope.exit()
        self.assertTrue(cancelled())
        self.assertEqual(finished, ["finally"])
        # The loop goes on serving.
        self.assertEqual(coroutines.settle(answer()), 42)

    def test_without_a_scope_awaiting_changes_nothing(self):
        with control.awaiting(None, None):
            pass


class CreditTest(unittest.TestCase):
    """A stream's window and the credits that extend it. The stream sends in the test's thread;
    credits, cancels and the end of the control channel come from another, in either order
    with the wait (the outcome is the same)."""

    def setUp(self):
        self.context = SessionContext()
        self.scope = control.CancelScope()

    def send_chunks(self, count):
        for _ in range(count):
            self.scope.hold_chunk()
            self.scope.release()

    def test_without_a_window_chunks_never_wait(self):
        self.scope.enter(1, self.context)
        self.send_chunks(1000)
        self.assertFalse(self.scope.credit(1, 5), "no window: a credit means nothing")
        self.scope.exit()

    def test_a_window_is_spent_then_credits_extend_it(self):
        self.scope.enter(1, self.context, window=2)
        self.send_chunks(2)
        self.assertFalse(self.scope.credit(7, 1), "another request's credit")
        credited = in_thread(lambda: self.scope.credit(1, 3))
        self.send_chunks(3)  # waits for the credit unless it came first
        self.assertTrue(credited())
        self.assertEqual(self.scope._credits, 0)
        self.scope.exit()
        self.assertFalse(self.scope.credit(1, 1), "the stream ended: a crossing credit")

    def test_a_cancel_ends_the_wait_for_credit(self):
        self.scope.enter(1, self.context, window=1)
        self.send_chunks(1)
        # Disarmed, as while a frame is written: the cancel must end the wait, not come as an
        # exception raised in this thread before it.
        self.scope.hold()
        cancelled = in_thread(lambda: self.scope.cancel(1))
        with self.assertRaises(control.Cancelled):
            self.scope.hold_chunk()
        self.assertTrue(cancelled())
        self.assertTrue(self.context.cancelled)
        self.scope.exit()

    def test_the_end_of_the_control_channel_ends_the_wait(self):
        self.scope.enter(1, self.context, window=1)
        self.send_chunks(1)
        in_thread(self.scope.close)()
        with self.assertRaises(control.Cancelled):
            self.scope.hold_chunk()
        self.scope.exit()
        # Later streams stop as soon as their window is spent; others are unaffected.
        self.scope.enter(2, SessionContext(), window=2)
        self.send_chunks(2)
        with self.assertRaises(control.Cancelled):
            self.scope.hold_chunk()
        self.scope.exit()
        self.scope.enter(3, SessionContext())
        self.send_chunks(3)
        self.scope.exit()

    def test_a_credit_wait_is_not_a_busy_loop(self):
        """The waiting thread sleeps on a condition: a credit from another thread wakes it, and
        no CPU is spent meanwhile (the wait returns only when notified)."""
        self.scope.enter(1, self.context, window=1)
        self.send_chunks(1)
        waiting = in_thread(self.scope.hold_chunk)
        # The credit may come before the thread waits: the outcome is the same.
        self.assertTrue(self.scope.credit(1, 1))
        waiting()
        self.assertEqual(self.scope._credits, 0)
        self.scope.exit()


if __name__ == "__main__":
    unittest.main()
