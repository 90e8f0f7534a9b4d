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

import os
import time

from .tools import ToolMetadata, collect_tools, registrations, spec_of, tool

__all__ = ["BaseAdapter", "UnknownCommand", "ToolMetadata", "collect_tools", "spec_of", "tool"]


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
        """Upstream registers the tools with Elixir's tool registry over gRPC.
        There is none here: nothing is registered; returns the tools' names."""
        return [entry.name for entry in self.get_tools()]

    async def register_with_session_async(self, session_id, stub=None):
        return self.register_with_session(session_id, stub)

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
