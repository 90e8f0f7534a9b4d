"""The golden vectors of docs/protocol_vectors.json, checked against the bridge's own code: it
reads every frame the pool may send to the meaning the vector states (or refuses it as stated),
and encodes every frame a worker sends to the vector's JSON, with the same frame header. The
protocol crate's tests (native/snakepit_protocol/tests/vectors.rs) check the same file."""

import io
import json
import os
import unittest
from unittest import mock

from snakepit_bridge import BaseAdapter, control, framing, protocol, tool
from snakepit_bridge.dispatch import Dispatcher, ProtocolViolation
from snakepit_bridge_tests.bridge_process import REPO_ROOT

VECTORS = os.path.join(REPO_ROOT, "docs", "protocol_vectors.json")

# Room enough for every valid vector.
MAX_FRAME = 1 << 20


def load_cases():
    with open(VECTORS, encoding="utf-8") as file:
        return json.load(file)["cases"]


def recorder(command):
    """An adapter whose only tool is ``command``: a streaming tool recording each call and
    yielding one item, so its replies tell whether the request asked for a stream."""

    def run(self, **args):
        self.calls.append({"args": args, "session_id": self.session_id})
        yield "item"

    def init(self):
        self.calls = []

    return type("Recorder", (BaseAdapter,), {"__init__": init, "run": tool(name=command)(run)})()


class PoolToWorkerTest(unittest.TestCase):
    def cases(self):
        return [case for case in load_cases() if case["direction"] == "pool_to_worker"]

    def read(self, case):
        """The payload of the vector's frame, read by the bridge's framing."""
        frame = bytes.fromhex(case["frame"])
        reader = io.BytesIO(frame)
        payload = framing.read_frame(reader, case.get("max_frame", MAX_FRAME))
        self.assertEqual(reader.read(), b"", "one whole frame")
        return payload

    def handle(self, case):
        """Dispatches the vector's frame to a recording adapter: (calls, replies, violation)."""
        meaning = case.get("meaning") or {}
        adapter = recorder(meaning.get("command", "unused"))
        sent = []
        violation = None
        try:
            Dispatcher(adapter, MAX_FRAME).handle(self.read(case), sent.append)
        except ProtocolViolation as exc:
            violation = exc
        return adapter.calls, [json.loads(frame) for frame in sent], violation

    def test_requests(self):
        for case in self.cases():
            if case["kind"] != "request" or not case["valid"]:
                continue
            with self.subTest(case["name"]):
                meaning = case["meaning"]
                calls, replies, violation = self.handle(case)
                self.assertIsNone(violation)
                expected_args = meaning["args"] if meaning["args"] is not None else {}
                expected_call = {"args": expected_args, "session_id": meaning["session_id"]}
                self.assertEqual(calls, [expected_call])
                # Exact types too: 2**70 must arrive as an int, not a float.
                self.assertEqual(
                    json.dumps(calls[0]["args"], sort_keys=True),
                    json.dumps(expected_args, sort_keys=True),
                )
                request_id = meaning["id"]
                self.assertEqual(self.window_of(case), meaning.get("window"))
                if meaning["stream"]:
                    expected = [
                        {"id": request_id, "chunk": "item"},
                        {"id": request_id, "ok": True, "result": None, "done": True},
                    ]
                else:
                    expected = [{"id": request_id, "ok": True, "result": ["item"]}]
                self.assertEqual(replies, expected)

    def window_of(self, case):
        """The credit window of the Call the bridge makes of a request vector."""
        adapter = recorder(case["meaning"]["command"])
        call = Dispatcher(adapter, MAX_FRAME).accept(self.read(case), None)
        return call.window

    def test_the_control_reader_routes_cancels_and_credits(self):
        """What arrives on the control descriptor: cancel and credit frames reach the scope,
        invalid ones are logged and dropped."""
        checked = 0
        for case in self.cases():
            if case["kind"] not in ("cancel", "credit"):
                continue
            checked += 1
            with self.subTest(case["name"]):
                scope = mock.Mock(spec=control.CancelScope)
                logged = []
                reader = control.ControlReader(io.BytesIO(), scope, MAX_FRAME, logged.append)
                reader._route(self.read(case))
                if not case["valid"]:
                    self.assertEqual(scope.method_calls, [])
                    self.assertEqual(len(logged), 1)
                elif case["kind"] == "cancel":
                    self.assertEqual(scope.method_calls, [mock.call.cancel(case["meaning"]["id"])])
                else:
                    meaning = case["meaning"]
                    expected = [mock.call.credit(meaning["id"], meaning["credit"])]
                    self.assertEqual(scope.method_calls, expected)
        self.assertGreater(checked, 4)

    def test_control_frames_get_no_reply(self):
        checked = 0
        for case in self.cases():
            if case["kind"] not in ("cancel", "control", "session_end", "credit"):
                continue
            checked += 1
            with self.subTest(case["name"]):
                calls, replies, _violation = self.handle(case)
                self.assertEqual((calls, replies), ([], []))
        self.assertGreater(checked, 0)

    def test_invalid_frames_are_refused(self):
        for case in self.cases():
            if case["valid"]:
                continue
            with self.subTest(case["name"]):
                refusal = case["refusal"]
                if refusal == "frame_too_large":
                    with self.assertRaises(framing.FrameTooLarge):
                        self.read(case)
                    continue
                calls, replies, violation = self.handle(case)
                self.assertEqual(calls, [])
                if refusal == "ignored":
                    self.assertIsNotNone(violation)
                    self.assertEqual(replies, [])
                else:
                    self.assertEqual(refusal, "protocol_error")
                    self.assertIsNone(violation)
                    [reply] = replies
                    self.assertEqual((reply["id"], reply["ok"]), (case["meaning"]["id"], False))
                    self.assertEqual(reply["error"]["type"], "ProtocolError")


class WorkerToPoolTest(unittest.TestCase):
    def encode(self, case):
        """The payload the bridge writes for the vector's meaning."""
        meaning = case["meaning"]
        if case["kind"] == "handshake":
            if meaning["type"] == "ready":
                with mock.patch.object(protocol.os, "getpid", return_value=meaning["pid"]):
                    message = protocol.ready(
                        meaning["adapter"],
                        meaning["commands"],
                        meaning["control"],
                        meaning.get("control_fd", False),
                    )
            else:
                message = protocol.fatal(
                    meaning["message"], meaning["error_type"], meaning["traceback"]
                )
            return protocol.encode_lossy(message)
        request_id = meaning["id"]
        outcome = meaning["outcome"]
        if outcome == "ok":
            return protocol.encode_success(request_id, meaning["result"])
        if outcome == "error":
            error = meaning["error"]
            failure = protocol.failure(
                request_id, error["type"], error["message"], error["traceback"]
            )
            return protocol.encode_lossy(failure)
        if outcome == "chunk" and ("is_final" in meaning or "metadata" in meaning):
            return protocol.encode_marked_chunk(
                request_id, meaning["chunk"], meaning.get("is_final"), meaning.get("metadata")
            )
        if outcome == "chunk":
            return protocol.encode_chunk(request_id, meaning["chunk"])
        self.assertEqual(outcome, "done")
        return protocol.encode(protocol.done(request_id))

    def test_encodings(self):
        checked = 0
        for case in load_cases():
            if case["direction"] != "worker_to_pool" or not case["valid"] or case.get("parse_only"):
                continue
            checked += 1
            with self.subTest(case["name"]):
                payload = self.encode(case)
                self.assertEqual(json.loads(payload), json.loads(case["payload"]))
                frame = bytes.fromhex(case["frame"])
                self.assertEqual(framing.encode_frame(payload)[: framing.HEADER_SIZE], frame[:4])
        self.assertGreater(checked, 0)

    def test_the_bridge_announces_no_control_frames(self):
        ready = protocol.ready(None, ["ping"])
        self.assertEqual(ready["control"], [])


if __name__ == "__main__":
    unittest.main()
