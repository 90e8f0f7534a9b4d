"""Per-session state on a worker: ``session_state`` per session id, dropped
(after the adapter's ``on_session_end`` hook) when the pool sends a
session_end frame."""

import json
import unittest
from unittest import mock

from snakepit_bridge import BaseAdapter, tool
from snakepit_bridge.dispatch import Dispatcher, ProtocolViolation
from snakepit_bridge_tests.bridge_process import BridgeProcess


class Counting(BaseAdapter):
    def __init__(self):
        super().__init__()
        self.ended = []

    @tool
    def bump(self):
        state = self.session_state
        if state is None:
            return None
        state["n"] = state.get("n", 0) + 1
        return state["n"]

    @tool
    def context_state(self):
        return self.session_context.session_state

    def on_session_end(self, session_id, state):
        self.ended.append((session_id, dict(state)))


class AsyncHook(Counting):
    async def on_session_end(self, session_id, state):
        self.ended.append((session_id, dict(state)))


class FailingHook(Counting):
    def on_session_end(self, session_id, state):
        raise RuntimeError("cannot release")


def run(dispatcher, request_id, command, session_id=None):
    sent = []
    frame = {"id": request_id, "command": command, "session_id": session_id}
    dispatcher.handle(json.dumps(frame).encode(), sent.append)
    [reply] = sent
    return json.loads(reply)["result"]


def end(dispatcher, session_id):
    sent = []
    frame = {"session_end": True, "session_id": session_id}
    dispatcher.handle(json.dumps(frame).encode(), sent.append)
    return sent


class SessionStateTest(unittest.TestCase):
    def setUp(self):
        self.adapter = Counting()
        self.dispatcher = Dispatcher(self.adapter)

    def test_each_session_has_its_own_state_across_calls(self):
        self.assertEqual([run(self.dispatcher, i, "bump", "a") for i in range(3)], [1, 2, 3])
        self.assertEqual(run(self.dispatcher, 4, "bump", "b"), 1)
        self.assertEqual(run(self.dispatcher, 5, "bump", "a"), 4)
        self.assertEqual(run(self.dispatcher, 6, "context_state", "a"), {"n": 4})

    def test_a_call_without_a_session_sees_none(self):
        run(self.dispatcher, 1, "bump", "a")
        self.assertIsNone(run(self.dispatcher, 2, "bump"))
        self.assertIsNone(run(self.dispatcher, 3, "context_state"))

    def test_session_end_drops_the_state_after_the_hook_and_gets_no_reply(self):
        run(self.dispatcher, 1, "bump", "a")
        run(self.dispatcher, 2, "bump", "a")
        run(self.dispatcher, 3, "bump", "b")
        self.assertEqual(end(self.dispatcher, "a"), [])
        self.assertEqual(self.adapter.ended, [("a", {"n": 2})])
        self.assertEqual(run(self.dispatcher, 4, "bump", "a"), 1)  # a fresh state
        self.assertEqual(run(self.dispatcher, 5, "bump", "b"), 2)  # untouched

    def test_the_hook_runs_only_for_sessions_this_worker_served(self):
        end(self.dispatcher, "never-seen")
        self.assertEqual(self.adapter.ended, [])
        self.assertEqual(self.dispatcher.session_states, {})

    def test_an_async_hook_is_awaited(self):
        adapter = AsyncHook()
        dispatcher = Dispatcher(adapter)
        run(dispatcher, 1, "bump", "a")
        end(dispatcher, "a")
        self.assertEqual(adapter.ended, [("a", {"n": 1})])

    def test_a_failing_hook_is_logged_and_the_state_dropped(self):
        dispatcher = Dispatcher(FailingHook())
        run(dispatcher, 1, "bump", "a")
        with mock.patch("sys.stderr") as stderr:
            end(dispatcher, "a")
        self.assertIn("cannot release", "".join(c.args[0] for c in stderr.write.call_args_list))
        self.assertEqual(dispatcher.session_states, {})
        self.assertEqual(run(dispatcher, 2, "bump", "a"), 1)

    def test_a_session_end_without_a_session_id_is_refused(self):
        with self.assertRaises(ProtocolViolation):
            end(self.dispatcher, None)
        with self.assertRaises(ProtocolViolation):
            end(self.dispatcher, 7)


class WorkerProcessTest(unittest.TestCase):
    def test_state_lasts_across_requests_until_the_session_ends(self):
        with BridgeProcess("--adapter", "session_adapter.SessionAdapter") as worker:
            ready = worker.receive()
            self.assertIn("session_end", ready["control"])
            bump = [worker.call(i, "bump", session_id="s-1")["result"]["count"] for i in (1, 2)]
            self.assertEqual(bump, [1, 2])
            worker.send({"session_end": True, "session_id": "s-1"})
            self.assertEqual(worker.call(3, "bump", session_id="s-1")["result"]["count"], 1)
            status, out, _err = worker.finish()
            self.assertEqual(status, 0)
            self.assertIn('session_adapter: ended s-1 {"count": 2}', out)


if __name__ == "__main__":
    unittest.main()
