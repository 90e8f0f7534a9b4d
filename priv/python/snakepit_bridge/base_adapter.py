"""The adapter base class.

An adapter is a class whose ``@tool`` methods are the commands a worker
answers. The worker calls a tool with the request's ``args`` as keyword
arguments and sends back what it returns::

    from snakepit_bridge import BaseAdapter, tool

    class MathAdapter(BaseAdapter):
        @tool(description="Add two numbers")
        def add(self, a, b):
            return a + b

An adapter may instead route every request itself, as upstream's adapters
do, by defining ``execute_tool(self, tool_name, arguments, context)``; it
is then called for every command, and ``self.call_tool(name, **args)``
reaches the ``@tool`` methods.

Every adapter inherits the built-in tools ``ping``, ``echo`` and
``describe``; a subclass tool of the same name replaces the built-in one.

One instance serves every request of a worker: ``initialize()`` runs once
before the worker reports ready, ``cleanup()`` once when it stops (both may
be ``async def``), and state kept on ``self`` lasts (upstream builds an
instance per request; see guides/migrating.md).
"""

import inspect
import os
import sys
import time
import types

from . import coroutines
from .logging_config import get_logger
from .tools import ToolMetadata, collect_tools, registrations, spec_of, tool

__all__ = ["BaseAdapter", "UnknownCommand", "ToolMetadata", "collect_tools", "spec_of", "tool"]


_LOG = get_logger(__name__)


class UnknownCommand(AttributeError):
    """No tool of that name. Its class name is the protocol's error type for
    unknown commands, so an adapter's ``execute_tool`` that lets it through
    answers as a worker without ``execute_tool`` would."""


class BaseAdapter:
    """Base class for adapters; construct with no arguments."""

    # The current request's SessionContext (None before the first request).
    # Class attributes, so that subclasses whose __init__ skips
    # super().__init__() still have them.
    session_context = None
    _session_context = None

    # The pool's id for this worker. The environment is fixed for the life
    # of a worker process, so reading it once here serves every instance.
    worker_id = os.environ.get("SNAKEPIT_WORKER_ID")

    def __init__(self):
        self._tools_cache = None

    @property
    def session_id(self):
        """The current request's session id, or None."""
        context = self.session_context or self._session_context
        return context.session_id if context is not None else None

    @property
    def session_state(self):
        """A dict kept on this worker for the current request's session: what a
        tool stores in it is there for the session's next call on this worker
        (None for a call without a session). Dropped when the session ends,
        after ``on_session_end(session_id, state)`` if the adapter defines it."""
        context = self.session_context or self._session_context
        return context.session_state if context is not None else None

    def set_session_context(self, session_context):
        """Called by the worker before each request with its SessionContext.
        An override should call this or set ``self.session_context``."""
        self._session_context = session_context
        self.session_context = session_context

    def initialize(self):
        """Called once after construction, before the worker reports ready."""

    def cleanup(self):
        """Called once when the worker shuts down."""

    def get_tools(self):
        """ToolRegistrations of this adapter's tools (name, description,
        parameters, supports_streaming, metadata), sorted by name, as
        upstream's ``get_tools()`` (which returns its protobuf messages)."""
        if getattr(self, "_tools_cache", None) is None:
            self._tools_cache = registrations(self)
        return self._tools_cache

    def call_tool(self, tool_name=None, /, **kwargs):
        """Call the tool answering to ``tool_name`` with ``kwargs`` and return
        what it returns. Raises UnknownCommand (an AttributeError) if there is
        none: unlike upstream's, only tools can be called this way, not any
        method, since ``execute_tool`` passes it names from the request.

        The name is positional-only, so a tool may itself take an argument
        called ``tool_name`` (upstream's showcase has one);
        ``call_tool(tool_name="x", ...)`` also works when it does not."""
        if tool_name is None:
            if "tool_name" not in kwargs:
                raise TypeError("call_tool() needs the name of a tool")
            tool_name = kwargs.pop("tool_name")
        tools = collect_tools(type(self))
        entry = tools.get(tool_name)
        if entry is None:
            names = ", ".join(sorted(tools))
            raise UnknownCommand(f"unknown command {tool_name!r}; available: {names}")
        return getattr(self, entry[0])(**kwargs)

    def register_with_session(self, session_id, stub=None):
        """Register this adapter's tools for a session; returns the names
        registered.

        Upstream registers them with Elixir's tool registry through the
        gRPC stub its SessionContext carries. A snakepit_rs worker has no
        such channel (``session_context.stub`` is None): without a stub
        nothing is registered and the names of all tools are returned. A stub
        given explicitly (a test double, an adapter's own registry client) is
        called as upstream calls it: ``stub.RegisterTools(request)``, the
        request having ``session_id``, ``tools`` (``get_tools()``) and
        ``worker_id``; the response (or its ``result()``, or what calling it
        returns) tells ``success``, ``tool_ids`` and ``error_message``. As
        upstream, a failure is logged and gives ``[]``, except a duplicate
        registration, which gives the names of all tools."""
        if stub is None:
            return [entry.name for entry in self.get_tools()]
        try:
            raw = stub.RegisterTools(self._registration_request(session_id))
            return self._registered_names(session_id, self._coerce_stub_response(raw))
        except Exception as exc:
            _LOG.error("registering the tools of session %s failed: %s", session_id, exc)
            return []

    async def register_with_session_async(self, session_id, stub=None):
        """``register_with_session`` for async code: an awaitable response
        is awaited, a blocking one waited for in the loop's executor."""
        if stub is None:
            return self.register_with_session(session_id)
        try:
            raw = stub.RegisterTools(self._registration_request(session_id))
            response = await self._await_stub_response(raw)
            return self._registered_names(session_id, response)
        except Exception as exc:
            _LOG.error("registering the tools of session %s failed: %s", session_id, exc)
            return []

    def _registration_request(self, session_id):
        worker_id = self.worker_id or f"python-{os.getpid()}"
        return types.SimpleNamespace(
            session_id=session_id, tools=self.get_tools(), worker_id=worker_id
        )

    def _registered_names(self, session_id, response):
        if getattr(response, "success", False):
            return list(getattr(response, "tool_ids", None) or ())
        message = getattr(response, "error_message", "") or ""
        if "duplicate_tool" in message:
            return [entry.name for entry in self.get_tools()]
        _LOG.error("registering the tools of session %s failed: %s", session_id, message)
        return []

    @staticmethod
    def _coerce_stub_response(response):
        """A stub's response as a value, waiting for it: an awaitable is run on
        the worker's event loop (refused with RuntimeError inside a running
        loop, where waiting would block it: use the async variant), a call
        object's ``result()`` or a callable is called."""
        if inspect.isawaitable(response):
            if _loop_running():
                raise RuntimeError(
                    "cannot wait for an awaitable RegisterTools response inside a running "
                    "event loop: await register_with_session_async() instead"
                )
            return coroutines.settle(response)
        result = getattr(response, "result", None)
        if callable(result):
            return result()
        if callable(response):
            return response()
        return response

    @staticmethod
    async def _await_stub_response(response):
        """``_coerce_stub_response`` without blocking the running loop: blocking
        waits run in its default executor."""
        if inspect.isawaitable(response):
            return await response
        wait = getattr(response, "result", None)
        if not callable(wait):
            if not callable(response):
                return response
            wait = response
        import asyncio

        return await asyncio.get_running_loop().run_in_executor(None, wait)

    @tool(description="Health check: this worker's pid, id and clock")
    def ping(self, **args):
        reply = {
            "status": "pong",
            "pid": os.getpid(),
            "worker_id": self.worker_id,
            "timestamp": time.time(),
        }
        if args:
            reply["args"] = args
        return reply

    @tool(description="Return the arguments unchanged")
    def echo(self, **args):
        return args

    @tool(description="List this adapter's tools")
    def describe(self):
        return [
            {
                "name": name,
                "description": spec.description,
                "supports_streaming": spec.supports_streaming,
            }
            for name, (_, spec) in sorted(collect_tools(type(self)).items())
        ]


def _loop_running():
    """Whether an asyncio event loop runs in this thread (without importing
    asyncio for adapters that never use it)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
