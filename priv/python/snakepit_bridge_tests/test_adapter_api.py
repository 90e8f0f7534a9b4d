"""Upstream's adapter API: execute_tool routing, the session context, tool
metadata, get_tools/call_tool, async hooks."""

import asyncio
import json
import threading
import unittest

from snakepit_bridge import BaseAdapter, SessionContext, tool
from snakepit_bridge.base_adapter import UnknownCommand
from snakepit_bridge.dispatch import Call, Dispatcher
from snakepit_bridge.loader import start_adapter, stop_adapter
from snakepit_bridge.tools import ParameterSpec, ToolMetadata


def replies(dispatcher, request):
    sent = []
    dispatcher.handle(json.dumps(request).encode(), sent.append)
    return [json.loads(frame) for frame in sent]


def reply(dispatcher, request):
    [only] = replies(dispatcher, request)
    return only


class StreamChunk:
    """The chunk object upstream's showcase yields."""

    def __init__(self, data, is_final=False):
        self.data = data
        self.is_final = is_final


class Router(BaseAdapter):
    """Routes every request through execute_tool, as upstream's showcase does."""

    def __init__(self):
        super().__init__()
        self.handlers = {"greet": self._greet, "ping": self._ping}
        self.session_context = None
        self.routed = []

    def set_session_context(self, session_context):  # overridden without super(), as upstream's
        self.session_context = session_context

    def execute_tool(self, tool_name, arguments, context):
        self.routed.append(tool_name)
        if tool_name in self.handlers:
            return self.handlers[tool_name](context, **arguments)
        return self.call_tool(tool_name, **arguments)

    def _greet(self, ctx, name):
        return {"hello": name, "session": ctx.session_id, "same": ctx is self.session_context}

    def _ping(self, ctx, message):
        return {"message": message}

    @tool(description="Process text")
    def upper(self, text: str, repeat: int = 1) -> str:
        return text.upper() * repeat

    @tool(description="Stream", supports_streaming=True)
    def chunks(self, count):
        for i in range(count):
            yield StreamChunk({"i": i}, is_final=i == count - 1)


class OwnPing(BaseAdapter):
    @tool(description="Our own ping")
    def ping(self, message):
        return {"echo": message}


class Template:
    """Upstream's adapter template: no BaseAdapter, execute_tool and async hooks."""

    def __init__(self):
        self.session_context = None
        self.log = []

    def set_session_context(self, session_context):
        self.session_context = session_context

    async def initialize(self):
        await asyncio.sleep(0)
        self.loop = asyncio.get_running_loop()
        self.log.append("initialize")

    async def execute_tool(self, tool_name, arguments, context):
        await asyncio.sleep(0)
        return {"tool": tool_name, "same_loop": asyncio.get_running_loop() is self.loop}

    async def cleanup(self):
        await asyncio.sleep(0)
        self.log.append(("cleanup", asyncio.get_running_loop() is self.loop))


class SessionAware(BaseAdapter):
    @tool
    def whoami(self):
        context = self.session_context
        return {
            "session_id": self.session_id,
            "context": isinstance(context, SessionContext),
            "metadata": context.request_metadata,
            "request_id": context.request_id,
            "cancelled": context.cancelled,
        }


class ExecuteToolTest(unittest.TestCase):
    def setUp(self):
        self.adapter = Router()
        self.dispatcher = Dispatcher(self.adapter)

    def test_every_command_goes_through_execute_tool_with_the_context(self):
        result = reply(self.dispatcher, {"id": 1, "command": "greet", "args": {"name": "x"},
                                         "session_id": "s9"})["result"]
        self.assertEqual(result, {"hello": "x", "session": "s9", "same": True})
        # A @tool method and a built-in, reached by call_tool.
        self.assertEqual(
            reply(self.dispatcher, {"id": 2, "command": "upper", "args": {"text": "ab"}})["result"],
            "AB",
        )
        echoed = reply(self.dispatcher, {"id": 3, "command": "echo", "args": {"k": 1}})
        self.assertEqual(echoed["result"], {"k": 1})
        self.assertEqual(self.adapter.routed, ["greet", "upper", "echo"])

    def test_its_own_ping_answers(self):
        pong = reply(self.dispatcher, {"id": 1, "command": "ping", "args": {"message": "m"}})
        self.assertEqual(pong["result"], {"message": "m"})

    def test_unknown_through_call_tool_is_unknown_command(self):
        error = reply(self.dispatcher, {"id": 4, "command": "nope"})["error"]
        self.assertEqual(error["type"], "UnknownCommand")
        self.assertIn("'nope'", error["message"])
        # Not a tool, so not callable from a request, though a method of the adapter.
        self.assertEqual(
            reply(self.dispatcher, {"id": 5, "command": "set_session_context"})["error"]["type"],
            "UnknownCommand",
        )

    def test_streaming_through_execute_tool_unwraps_chunk_objects(self):
        self.assertEqual(
            replies(self.dispatcher, {"id": 6, "command": "chunks", "args": {"count": 2},
                                      "stream": True}),
            [
                {"id": 6, "chunk": {"i": 0}},
                {"id": 6, "chunk": {"i": 1}, "is_final": True},
                {"id": 6, "ok": True, "result": None, "done": True},
            ],
        )
        refused = reply(self.dispatcher, {"id": 7, "command": "upper", "stream": True})
        self.assertEqual(refused["error"]["type"], "StreamingNotSupported")
        self.assertEqual(self.adapter.routed, ["chunks"])

    def test_a_streaming_tool_called_without_stream_gives_its_chunks_data(self):
        # Upstream's showcase yields StreamChunk objects; collected into the
        # result they are their data, not unserializable markers.
        collected = reply(self.dispatcher, {"id": 8, "command": "chunks", "args": {"count": 2}})
        self.assertEqual(collected["result"], [{"i": 0}, {"i": 1}])

        class AsyncChunks(BaseAdapter):
            @tool(supports_streaming=True)
            async def chunks(self):
                yield StreamChunk([1], is_final=True)

        dispatcher = Dispatcher(AsyncChunks())
        self.assertEqual(reply(dispatcher, {"id": 9, "command": "chunks"})["result"], [[1]])
        stop_adapter(dispatcher.adapter)


class SessionContextPerRequestTest(unittest.TestCase):
    def test_each_request_gets_a_fresh_context(self):
        dispatcher = Dispatcher(SessionAware())
        first = reply(dispatcher, {"id": 1, "command": "whoami", "session_id": "a"})["result"]
        expected = {"session_id": "a", "context": True, "metadata": {}, "request_id": 1}
        self.assertEqual(first, dict(expected, cancelled=False))
        second = reply(dispatcher, {"id": 2, "command": "whoami"})["result"]
        self.assertEqual((second["session_id"], second["request_id"]), (None, 2))

    def test_accept_then_run_on_another_thread_sees_a_cancel(self):
        dispatcher = Dispatcher(SessionAware())
        sent = []
        call = dispatcher.accept(b'{"id":3,"command":"whoami","session_id":"s"}', sent.append)
        self.assertIsInstance(call, Call)
        self.assertEqual(
            (call.request_id, call.command, call.context.session_id), (3, "whoami", "s")
        )
        self.assertEqual(sent, [])
        call.context.cancel_event.set()
        runner = threading.Thread(target=dispatcher.run, args=(call, sent.append))
        runner.start()
        runner.join()
        [frame] = sent
        self.assertTrue(json.loads(frame)["result"]["cancelled"])

    def test_accept_answers_at_once_what_needs_no_tool(self):
        dispatcher = Dispatcher(SessionAware())
        sent = []
        self.assertIsNone(dispatcher.accept(b'{"id":4,"command":"nope"}', sent.append))
        self.assertEqual(json.loads(sent[0])["error"]["type"], "UnknownCommand")
        self.assertIsNone(dispatcher.accept(b'{"id":4,"cancel":true}', sent.append))
        self.assertEqual(len(sent), 1)


class ToolApiTest(unittest.TestCase):
    def test_tool_metadata_where_upstream_keeps_it(self):
        class A(BaseAdapter):
            @tool("Searches", True, ["api_key"])
            def search(self, query):
                yield query

        metadata = A.search._tool_metadata
        self.assertIsInstance(metadata, ToolMetadata)
        self.assertEqual(
            (metadata.description, metadata.supports_streaming, metadata.required_variables,
             metadata.parameters),
            ("Searches", True, ["api_key"], []),
        )
        # Upstream's way of finding tools: any attribute with _tool_metadata.
        found = [m for m in dir(A()) if hasattr(getattr(A(), m), "_tool_metadata")]
        self.assertEqual(sorted(found), ["describe", "echo", "ping", "search"])

    def test_get_tools_returns_upstreams_registrations(self):
        tools = Router().get_tools()
        self.assertEqual(
            [t.name for t in tools], ["chunks", "describe", "echo", "ping", "upper", "execute_tool"]
        )
        upper = tools[4]
        self.assertEqual((upper.description, upper.supports_streaming), ("Process text", False))
        self.assertEqual(upper.metadata, {"adapter_class": "Router", "module": __name__})
        self.assertEqual(
            upper.parameters,
            [
                ParameterSpec(name="text", type="str", description="", required=True,
                              validation_json=""),
                ParameterSpec(name="repeat", type="int", description="", required=False,
                              validation_json='{"default": 1}'),
            ],
        )
        self.assertEqual([t.name for t in BaseAdapter().get_tools()], ["describe", "echo", "ping"])

    def test_call_tool(self):
        class Named(BaseAdapter):
            @tool
            def lookup(self, tool_name):
                return tool_name

        adapter = Router()
        self.assertEqual(adapter.call_tool("upper", text="a", repeat=2), "AA")
        self.assertEqual(adapter.call_tool(tool_name="upper", text="b"), "B")
        # A tool's own argument called tool_name (upstream's showcase has one).
        self.assertEqual(Named().call_tool("lookup", tool_name="x"), "x")
        with self.assertRaises(AttributeError):  # as upstream raises for a missing tool
            adapter.call_tool("missing")
        self.assertTrue(issubclass(UnknownCommand, AttributeError))

    def test_an_adapters_ping_replaces_the_builtin_whatever_its_signature(self):
        dispatcher = Dispatcher(OwnPing())
        self.assertEqual(
            reply(dispatcher, {"id": 1, "command": "ping", "args": {"message": "hi"}})["result"],
            {"echo": "hi"},
        )
        error = reply(dispatcher, {"id": 2, "command": "ping"})["error"]
        self.assertEqual(error["type"], "TypeError")


class Response:
    def __init__(self, success=True, tool_ids=None, error_message=""):
        self.success = success
        self.tool_ids = tool_ids or {}
        self.error_message = error_message


class RecordingStub:
    """A tool registry client: answers RegisterTools with ``answer``."""

    def __init__(self, answer):
        self.answer = answer
        self.requests = []

    def RegisterTools(self, request):
        self.requests.append(request)
        return self.answer


class GrpcCall:
    """A gRPC call object: its response comes from result()."""

    def __init__(self, response):
        self.response = response

    def result(self):
        return self.response


class RegisterWithSessionTest(unittest.TestCase):
    def setUp(self):
        self.adapter = Router()
        self.names = [entry.name for entry in self.adapter.get_tools()]

    def test_without_a_stub_nothing_is_registered_and_every_tool_is_named(self):
        self.assertEqual(self.adapter.register_with_session("s"), self.names)
        self.assertIn("upper", self.names)
        self.assertEqual(asyncio.run(self.adapter.register_with_session_async("s")), self.names)

    def test_a_stub_is_called_and_its_answer_names_the_tools(self):
        stub = RecordingStub(Response(tool_ids={"upper": "id-1"}))
        self.assertEqual(self.adapter.register_with_session("s1", stub), ["upper"])
        [request] = stub.requests
        self.assertEqual(request.session_id, "s1")
        self.assertEqual([entry.name for entry in request.tools], self.names)
        self.assertTrue(request.worker_id)
        # A call object, a callable, a duplicate registration, a failure.
        call = RecordingStub(GrpcCall(Response(tool_ids={"a": 1})))
        self.assertEqual(self.adapter.register_with_session("s", call), ["a"])
        lazy = RecordingStub(lambda: Response(tool_ids={"b": 2}))
        self.assertEqual(self.adapter.register_with_session("s", lazy), ["b"])
        duplicate = RecordingStub(Response(False, error_message="duplicate_tool: upper"))
        self.assertEqual(self.adapter.register_with_session("s", duplicate), self.names)
        with self.assertLogs("snakepit.bridge.base_adapter", "ERROR"):
            refused = RecordingStub(Response(False, error_message="no"))
            self.assertEqual(self.adapter.register_with_session("s", refused), [])

    def test_async_variant_awaits_or_waits_in_the_executor(self):
        async def answer():
            return Response(tool_ids={"c": 3})

        async def main():
            awaited = await self.adapter.register_with_session_async(
                "s", RecordingStub(answer())
            )
            waited = await self.adapter.register_with_session_async(
                "s", RecordingStub(GrpcCall(Response(tool_ids={"d": 4})))
            )
            # Waiting synchronously inside the running loop is refused.
            pending = answer()
            with self.assertRaises(RuntimeError):
                self.adapter._coerce_stub_response(pending)
            pending.close()
            return awaited, waited

        self.assertEqual(asyncio.run(main()), (["c"], ["d"]))


class AsyncHooksTest(unittest.TestCase):
    def test_async_initialize_tools_and_cleanup_share_one_loop(self):
        import sys
        import types

        module = types.ModuleType("template_adapter_under_test")
        module.Template = Template
        sys.modules[module.__name__] = module
        self.addCleanup(sys.modules.pop, module.__name__)

        adapter = start_adapter(f"{module.__name__}.Template")
        self.assertEqual(adapter.log, ["initialize"])
        dispatcher = Dispatcher(adapter)
        self.assertEqual(dispatcher.command_names(), [])
        self.assertEqual(
            reply(dispatcher, {"id": 1, "command": "anything"})["result"],
            {"tool": "anything", "same_loop": True},
        )
        self.assertIsInstance(adapter.session_context, SessionContext)
        stop_adapter(adapter)
        self.assertEqual(adapter.log, ["initialize", ("cleanup", True)])

    def test_a_class_neither_adapter_nor_router_is_refused(self):
        import sys
        import types

        module = types.ModuleType("not_an_adapter_under_test")
        module.Thing = type("Thing", (), {})
        sys.modules[module.__name__] = module
        self.addCleanup(sys.modules.pop, module.__name__)
        with self.assertRaisesRegex(TypeError, "execute_tool"):
            start_adapter(f"{module.__name__}.Thing")

    def test_async_generator_tools(self):
        class Streams(BaseAdapter):
            @tool
            async def ticks(self, n):
                for i in range(n):
                    await asyncio.sleep(0)
                    yield i

        dispatcher = Dispatcher(Streams())
        collected = reply(dispatcher, {"id": 1, "command": "ticks", "args": {"n": 3}})
        self.assertEqual(collected["result"], [0, 1, 2])
        request = {"id": 2, "command": "ticks", "args": {"n": 2}, "stream": True}
        frames = replies(dispatcher, request)
        self.assertEqual([f.get("chunk") for f in frames[:2]], [0, 1])
        self.assertTrue(frames[2]["done"])


class InterruptedCoroutineTest(unittest.TestCase):
    def test_an_interrupted_async_tool_is_cancelled_not_resumed_later(self):
        from snakepit_bridge import coroutines

        self.addCleanup(coroutines.close)
        log = []

        def interrupt():
            raise KeyboardInterrupt  # escapes the loop, as SIGTERM's exception does

        async def waits_forever():
            asyncio.get_running_loop().call_soon(interrupt)
            try:
                await asyncio.get_running_loop().create_future()
            except asyncio.CancelledError:
                log.append("cancelled")
                raise

        with self.assertRaises(KeyboardInterrupt):
            coroutines.settle(waits_forever())
        self.assertEqual(coroutines.settle(asyncio.sleep(0, "next")), "next")
        self.assertEqual(log, ["cancelled"])


if __name__ == "__main__":
    unittest.main()
