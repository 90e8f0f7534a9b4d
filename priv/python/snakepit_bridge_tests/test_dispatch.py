import json
import unittest

from snakepit_bridge import BaseAdapter, tool
from snakepit_bridge.dispatch import Dispatcher, ProtocolViolation


class Sample(BaseAdapter):
    def __init__(self):
        self.calls = []

    @tool
    def add(self, a, b):
        self.calls.append("add")
        return a + b

    @tool
    def fail(self, message):
        raise ValueError(message)

    @tool
    def whoami(self):
        return self.session_id

    @tool(supports_streaming=True)
    def count(self, to, fail_at=None):
        for i in range(1, to + 1):
            if i == fail_at:
                raise RuntimeError(f"boom at {i}")
            yield i

    @tool(supports_streaming=True)
    def single(self):
        return {"whole": True}

    @tool
    def lazy(self):
        return map(str, range(3))

    @tool
    def circular(self):
        loop = {"k": 1}
        loop["self"] = loop
        return loop

    @tool
    def nan(self):
        return float("nan")

    @tool
    def bad_chunks(self):
        yield 1
        loop = []
        loop.append(loop)
        yield loop

    @tool
    def text(self, size):
        return "x" * size

    @tool
    async def later(self, value):
        return value * 2


class DispatchTest(unittest.TestCase):
    def setUp(self):
        self.adapter = Sample()
        self.dispatcher = Dispatcher(self.adapter, max_frame_size=1000)

    def replies(self, request):
        """Dispatch one request and decode every frame sent back."""
        sent = []
        payload = request if isinstance(request, bytes) else json.dumps(request).encode()
        self.dispatcher.handle(payload, sent.append)
        return [json.loads(frame) for frame in sent]

    def reply(self, request):
        [only] = self.replies(request)
        return only

    def test_success(self):
        self.assertEqual(
            self.reply({"id": 1, "command": "add", "args": {"a": 1, "b": 2}}),
            {"id": 1, "ok": True, "result": 3},
        )

    def test_heartbeats_are_answered_by_the_bridge_never_by_a_tool(self):
        class OwnPing(BaseAdapter):
            @tool
            def ping(self, message):  # a required argument: a health check must not call it
                raise AssertionError("a heartbeat reached the adapter's ping")

        dispatcher = Dispatcher(OwnPing(), max_frame_size=1000)
        sent = []
        dispatcher.handle(b'{"id":9,"heartbeat":true}', sent.append)
        replies = [json.loads(frame) for frame in sent]
        self.assertEqual(replies, [{"id": 9, "ok": True, "result": None}])

    def test_replies_are_compact_utf8(self):
        sent = []
        self.dispatcher.handle(b'{"id":2,"command":"echo","args":{"s":"\\u00e9"}}', sent.append)
        self.assertEqual(sent, ['{"id":2,"ok":true,"result":{"s":"\u00e9"}}'.encode()])

    def test_missing_args_and_session_mean_none(self):
        self.assertEqual(self.reply({"id": 3, "command": "whoami"})["result"], None)
        self.assertEqual(
            self.reply({"id": 4, "command": "whoami", "session_id": "s1"})["result"], "s1"
        )

    def test_exception_becomes_a_failure(self):
        reply = self.reply({"id": 5, "command": "fail", "args": {"message": "nope"}})
        self.assertEqual((reply["id"], reply["ok"]), (5, False))
        error = reply["error"]
        self.assertEqual((error["type"], error["message"]), ("ValueError", "nope"))
        self.assertIn("raise ValueError(message)", error["traceback"])
        self.assertIn("ValueError: nope", error["traceback"])
        self.assertNotIn("snakepit_bridge/dispatch.py", error["traceback"])

    def test_wrong_arguments_are_a_type_error(self):
        reply = self.reply({"id": 6, "command": "add", "args": {"a": 1, "c": 2}})
        self.assertEqual(reply["error"]["type"], "TypeError")

    def test_unknown_command(self):
        error = self.reply({"id": 7, "command": "nope"})["error"]
        self.assertEqual(error["type"], "UnknownCommand")
        self.assertIn("'nope'", error["message"])
        self.assertIn("add, bad_chunks, circular", error["message"])

    def test_builtins(self):
        self.assertEqual(self.reply({"id": 8, "command": "ping"})["result"]["status"], "pong")
        self.assertEqual(
            self.reply({"id": 9, "command": "echo", "args": {"k": [1]}})["result"], {"k": [1]}
        )
        names = [t["name"] for t in self.reply({"id": 10, "command": "describe"})["result"]]
        self.assertIn("count", names)

    def test_stream_sends_chunks_then_done(self):
        self.assertEqual(
            self.replies({"id": 11, "command": "count", "args": {"to": 3}, "stream": True}),
            [
                {"id": 11, "chunk": 1},
                {"id": 11, "chunk": 2},
                {"id": 11, "chunk": 3},
                {"id": 11, "ok": True, "result": None, "done": True},
            ],
        )

    def test_stream_failing_midway(self):
        replies = self.replies(
            {"id": 12, "command": "count", "args": {"to": 5, "fail_at": 3}, "stream": True}
        )
        self.assertEqual(replies[:2], [{"id": 12, "chunk": 1}, {"id": 12, "chunk": 2}])
        self.assertEqual(replies[2]["ok"], False)
        self.assertEqual(replies[2]["error"]["type"], "RuntimeError")
        self.assertEqual(len(replies), 3)

    def test_stream_of_a_non_iterator_result_is_one_chunk(self):
        self.assertEqual(
            self.replies({"id": 13, "command": "single", "stream": True}),
            [
                {"id": 13, "chunk": {"whole": True}},
                {"id": 13, "ok": True, "result": None, "done": True},
            ],
        )

    def test_stream_on_a_non_streaming_tool_is_refused_without_calling_it(self):
        reply = self.reply({"id": 14, "command": "add", "args": {"a": 1, "b": 2}, "stream": True})
        self.assertEqual(reply["error"]["type"], "StreamingNotSupported")
        self.assertEqual(self.adapter.calls, [])

    def test_iterators_are_materialized_without_stream(self):
        self.assertEqual(
            self.reply({"id": 15, "command": "count", "args": {"to": 3}})["result"], [1, 2, 3]
        )
        self.assertEqual(
            self.reply({"id": 16, "command": "lazy", "stream": False})["result"], ["0", "1", "2"]
        )

    def test_unserializable_results(self):
        error = self.reply({"id": 17, "command": "circular"})["error"]
        self.assertEqual(error["type"], "SerializationError")
        self.assertIn("circular reference", error["message"])
        # v0.13's graceful serialization: a whole result that is NaN is its name.
        self.assertEqual(self.reply({"id": 18, "command": "nan"})["result"], "NaN")

    def test_unserializable_chunk_ends_the_stream(self):
        replies = self.replies({"id": 19, "command": "bad_chunks", "stream": True})
        self.assertEqual(replies[0], {"id": 19, "chunk": 1})
        self.assertEqual(replies[1]["error"]["type"], "SerializationError")
        self.assertEqual(len(replies), 2)

    def test_reply_larger_than_the_max_frame_size(self):
        self.assertTrue(self.reply({"id": 20, "command": "text", "args": {"size": 900}})["ok"])
        error = self.reply({"id": 21, "command": "text", "args": {"size": 1000}})["error"]
        self.assertEqual(error["type"], "FrameTooLarge")

    def test_async_tool(self):
        self.assertEqual(
            self.reply({"id": 22, "command": "later", "args": {"value": 21}})["result"], 42
        )

    def test_protocol_errors_get_a_reply(self):
        self.assertEqual(self.reply({"id": 23})["error"]["type"], "ProtocolError")
        self.assertEqual(self.reply({"id": 24, "command": 5})["error"]["type"], "ProtocolError")
        self.assertEqual(
            self.reply({"id": 25, "command": "add", "args": [1, 2]})["error"]["type"],
            "ProtocolError",
        )

    def test_frames_without_a_usable_id_get_no_reply(self):
        for frame in (
            b"not json",
            b"\xff\xfe",
            b"[1,2]",
            b'{"command":"ping"}',
            b'{"id":-1,"command":"ping"}',
            b'{"id":"7","command":"ping"}',
            b'{"id":true,"command":"ping"}',
        ):
            with self.subTest(frame=frame), self.assertRaises(ProtocolViolation):
                self.replies(frame)

    def test_cancel_frames_are_ignored(self):
        self.assertEqual(self.replies({"id": 1, "cancel": True}), [])

    def test_command_names_are_sorted_and_include_builtins(self):
        names = self.dispatcher.command_names()
        self.assertEqual(names, sorted(names))
        self.assertTrue({"ping", "echo", "describe", "add"} <= set(names))


if __name__ == "__main__":
    unittest.main()
