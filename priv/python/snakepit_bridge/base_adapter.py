"""The adapter base class and the ``@tool`` decorator.

An adapter is a class whose ``@tool`` methods are the commands a worker
answers. The worker calls a tool with the request's ``args`` as keyword
arguments and sends back what it returns::

    from snakepit_bridge import BaseAdapter, tool

    class MathAdapter(BaseAdapter):
        @tool(description="Add two numbers")
        def add(self, a, b):
            return a + b

Every adapter inherits the built-in tools ``ping``, ``echo`` and
``describe``; a subclass tool of the same name replaces the built-in one.
"""

import os
import time

# Attribute under which @tool stores a function's ToolSpec.
_SPEC_ATTR = "__snakepit_tool__"

# co_flags bit of a generator function's code object (see the inspect module).
_CO_GENERATOR = 0x20


class ToolSpec:
    """What ``@tool`` records about a method."""

    __slots__ = ("name", "description", "supports_streaming", "metadata")

    def __init__(self, name, description, supports_streaming, metadata):
        self.name = name
        self.description = description
        self.supports_streaming = supports_streaming
        # Extra keyword arguments given to @tool (e.g. upstream's
        # required_variables), kept for introspection only.
        self.metadata = metadata

    def to_dict(self):
        return {
            "description": self.description,
            "supports_streaming": self.supports_streaming,
        }


def tool(func=None, *, name=None, description=None, supports_streaming=False, **metadata):
    """Mark a method as a command.

    Usable bare (``@tool``), empty (``@tool()``) or with options
    (``@tool(description=..., supports_streaming=..., name=...)``); a lone
    string argument is taken as the description. The description defaults
    to the first line of the docstring. A generator function is always a
    streaming tool. The method itself is returned unchanged.
    """
    if isinstance(func, str):
        func, description = None, func

    def mark(function):
        text = description
        if text is None:
            doc = (function.__doc__ or "").strip()
            text = doc.splitlines()[0] if doc else ""
        streaming = bool(supports_streaming) or _is_generator_function(function)
        spec = ToolSpec(name or function.__name__, text, streaming, metadata)
        setattr(function, _SPEC_ATTR, spec)
        return function

    return mark if func is None else mark(func)


def _is_generator_function(function):
    code = getattr(function, "__code__", None)
    return code is not None and bool(code.co_flags & _CO_GENERATOR)


def _spec_of(obj):
    """The ToolSpec of a function, method, staticmethod or classmethod, or None."""
    spec = getattr(getattr(obj, "__func__", obj), _SPEC_ATTR, None)
    return spec if isinstance(spec, ToolSpec) else None


def collect_tools(cls):
    """Map command name -> (attribute name, ToolSpec) for an adapter class.

    A method counts only if the attribute as the class resolves it still
    carries the spec, so a plain override hides a base-class tool. When two
    methods claim the same command name, the most derived class wins.
    """
    tools = {}
    for klass in reversed(cls.__mro__):
        for attr, value in vars(klass).items():
            spec = _spec_of(value)
            if spec is not None and _spec_of(getattr(cls, attr, None)) is spec:
                tools[spec.name] = (attr, spec)
    return tools


class BaseAdapter:
    """Base class for adapters; construct with no arguments."""

    # The request's session_id (or None), set by the worker before each call.
    session_id = None

    # The pool's id for this worker. The environment is fixed for the life
    # of a worker process, so reading it once here serves every instance,
    # including those of subclasses whose __init__ skips super().__init__().
    worker_id = os.environ.get("SNAKEPIT_WORKER_ID")

    def initialize(self):
        """Called once after construction, before the worker reports ready."""

    def cleanup(self):
        """Called once when the worker shuts down."""

    def get_tools(self):
        """Map each command name to its description and streaming support."""
        return {name: spec.to_dict() for name, (_, spec) in collect_tools(type(self)).items()}

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
        return [{"name": name, **info} for name, info in sorted(self.get_tools().items())]
