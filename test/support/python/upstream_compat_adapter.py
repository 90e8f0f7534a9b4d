"""CompatAdapter: an adapter written the way upstream Snakepit's are (its
showcase adapter and adapter template), used by
test/snakepit/python_adapter_compat_test.exs and the bridge's own tests.

It imports what upstream's adapters import, initializes and cleans up
asynchronously, routes every request through ``execute_tool`` to handler
functions that take the context first, defines a ``ping`` with a required
argument, and returns values JSON has no type for.

Put test/support/python on PYTHONPATH and start workers with
``--adapter upstream_compat_adapter.CompatAdapter``. With COMPAT_CLEANUP_FILE
set, ``cleanup`` appends a line to that file.
"""

import asyncio
import datetime
import os
from collections import namedtuple
from typing import Any, Dict

from snakepit_bridge import SessionContext, serialization, telemetry
from snakepit_bridge.base_adapter import BaseAdapter, tool
from snakepit_bridge.logging_config import configure_logging, get_logger

logger = get_logger(__name__)

Version = namedtuple("Version", "major minor")


class ApiResponse:
    def __init__(self, code):
        self.code = code

    def to_dict(self):
        return {"code": self.code, "at": datetime.date(2024, 5, 6)}


class ModelLike:
    def model_dump(self):
        return {"model": "m1"}


class Vector:
    def __init__(self, *values):
        self.values = values
        self.size = len(values)

    def tolist(self):
        return list(self.values)


class Client:
    """Nothing to convert it with: becomes a marker."""

    def __repr__(self):
        return "Client(api_key='sk-secretsecret123')"


class CompatAdapter(BaseAdapter):
    def __init__(self):
        super().__init__()
        self.session_context = None
        self.state = "constructed"
        self.handlers = {"ping": self.handle_ping, "context_info": self.handle_context_info}

    def set_session_context(self, session_context):
        self.session_context = session_context

    async def initialize(self):
        configure_logging()
        await asyncio.sleep(0)
        self.loop = asyncio.get_running_loop()
        self.state = "initialized"
        logger.info("CompatAdapter initialized")

    async def cleanup(self):
        await asyncio.sleep(0)
        path = os.environ.get("COMPAT_CLEANUP_FILE")
        if path:
            with open(path, "a") as file:
                file.write(f"cleanup same_loop={asyncio.get_running_loop() is self.loop}\n")

    def execute_tool(self, tool_name: str, arguments: Dict[str, Any], context) -> Any:
        handler = self.handlers.get(tool_name)
        if handler is not None:
            return handler(context, **arguments)
        return self.call_tool(tool_name, **arguments)

    def handle_ping(self, ctx, message):
        return {"message": message, "pid": os.getpid()}

    def handle_context_info(self, ctx):
        return {
            "state": self.state,
            "is_session_context": isinstance(ctx, SessionContext),
            "same_as_adapter": ctx is self.session_context,
            "session_id": ctx.session_id,
            "adapter_session_id": self.session_id,
            "request_metadata": ctx.request_metadata,
            "cancelled": ctx.cancelled,
            "elixir_tools": ctx.elixir_tools,
        }

    @tool(description="Whether async tools run on the loop initialize ran on")
    async def same_loop(self) -> bool:
        await asyncio.sleep(0)
        return asyncio.get_running_loop() is self.loop

    @tool(description="Values JSON has no type for, as v0.13's showcase returns them")
    def graceful(self) -> Dict[str, Any]:
        return {
            "when": datetime.datetime(2024, 1, 2, 3, 4, 5),
            "day": datetime.date(2024, 1, 2),
            "tags": {"only"},
            "pair": (1, 2),
            "version": Version(1, 13),
            "response": ApiResponse(200),
            "model": ModelLike(),
            "vector": Vector(0.5, float("nan")),
            "client": Client(),
            "raw": b"\x00\xff",
            "big": 2**70,
        }

    @tool(description="A whole result JSON has no value for")
    def whole(self, kind: str) -> Any:
        return {
            "nan": float("nan"),
            "inf": float("inf"),
            "-inf": float("-inf"),
            "datetime": datetime.datetime(2024, 1, 2, 3, 4, 5),
            "set": {7},
            "bytes": b"abc",
        }[kind]

    @tool(description="A list that contains itself")
    def circular(self):
        loop = ["x"]
        loop.append(loop)
        return loop

    @tool(description="Telemetry calls, which go nowhere")
    def telemetry_demo(self) -> Dict[str, Any]:
        with telemetry.span("tool.execution", {"tool": "telemetry_demo"}):
            telemetry.emit("tool.result_size", {"bytes": 1})
        return {
            "enabled": telemetry.is_enabled(),
            "marker_key": serialization.UNSERIALIZABLE_KEY,
        }
