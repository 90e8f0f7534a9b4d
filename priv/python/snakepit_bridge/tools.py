"""The ``@tool`` decorator, and finding and describing an adapter's tools.

``@tool`` leaves the method as it is and records a ToolMetadata on it as
``method._tool_metadata``, the attribute upstream Snakepit uses (with the
same fields: ``description``, ``supports_streaming``, ``parameters``,
``required_variables``), so code that looks for tools that way finds them.
"""

import inspect
import json
import types

# co_flags bits of generator and async generator functions' code objects
# (see the inspect module).
_CO_GENERATORS = 0x20 | 0x200


class ToolMetadata:
    """What ``@tool`` records about a method."""

    __slots__ = (
        "name",
        "description",
        "supports_streaming",
        "parameters",
        "required_variables",
        "metadata",
    )

    def __init__(
        self, name, description="", supports_streaming=False, required_variables=None, metadata=None
    ):
        # The command name (the method's name unless @tool(name=...) gave another).
        self.name = name
        self.description = description
        self.supports_streaming = supports_streaming
        # Upstream's field, always empty there too: parameters come from the signature.
        self.parameters = []
        self.required_variables = list(required_variables or ())
        # Other keyword arguments given to @tool, kept for introspection only.
        self.metadata = dict(metadata or {})

    def __repr__(self):
        return (
            f"ToolMetadata(name={self.name!r}, description={self.description!r}, "
            f"supports_streaming={self.supports_streaming!r})"
        )


def tool(
    func=None,
    supports_streaming=False,
    required_variables=None,
    *,
    name=None,
    description=None,
    **metadata,
):
    """Mark a method as a command.

    Usable bare (``@tool``), empty (``@tool()``), with upstream's arguments
    (``@tool("description", supports_streaming, required_variables)``, also
    as keywords) and with ``name=`` to answer to another command name. The
    description defaults to the first line of the docstring. A generator
    function (also ``async``) is always a streaming tool. The method itself is returned
    unchanged, with ``_tool_metadata`` set.
    """
    if isinstance(func, str):
        func, description = None, func

    def mark(function):
        text = description
        if not text:
            doc = (function.__doc__ or "").strip()
            text = doc.splitlines()[0] if doc else ""
        streaming = bool(supports_streaming) or _is_generator_function(function)
        function._tool_metadata = ToolMetadata(
            name or function.__name__, text, streaming, required_variables, metadata
        )
        return function

    return mark if func is None else mark(func)


def _is_generator_function(function):
    code = getattr(function, "__code__", None)
    return code is not None and bool(code.co_flags & _CO_GENERATORS)


def spec_of(obj):
    """The ToolMetadata of a function, method, staticmethod or classmethod, or None."""
    spec = getattr(getattr(obj, "__func__", obj), "_tool_metadata", None)
    return spec if isinstance(spec, ToolMetadata) else None


def collect_tools(cls):
    """Map command name -> (attribute name, ToolMetadata) for an adapter class.

    A method counts only if the attribute as the class resolves it still
    carries the metadata, so a plain override hides a base-class tool. When
    two methods claim the same command name, the most derived class wins:
    an adapter's ``ping`` replaces the built-in one, whatever its signature.
    """
    tools = {}
    for klass in reversed(cls.__mro__):
        for attr, value in vars(klass).items():
            spec = spec_of(value)
            if spec is not None and spec_of(getattr(cls, attr, None)) is spec:
                tools[spec.name] = (attr, spec)
    return tools


class ToolRegistration(types.SimpleNamespace):
    """Upstream's ToolRegistration message as a plain object: ``name``,
    ``description``, ``parameters`` (ParameterSpecs), ``supports_streaming``,
    ``metadata`` (a dict of strings)."""


class ParameterSpec(types.SimpleNamespace):
    """Upstream's ParameterSpec: ``name``, ``type`` (the annotation's name,
    lowercased, or ``"any"``), ``description``, ``required``, and
    ``validation_json`` (``{"default": ...}`` as JSON, or "")."""


def registrations(adapter):
    """ToolRegistrations of an adapter's tools, sorted by name, as upstream's
    ``get_tools()`` returns them (with an ``execute_tool`` entry when the
    adapter defines one, as upstream adds for it)."""
    found = []
    for name, (attr, spec) in sorted(collect_tools(type(adapter)).items()):
        method = getattr(adapter, attr)
        info = {"adapter_class": type(adapter).__name__, "module": type(adapter).__module__}
        if spec.required_variables:
            info["required_variables"] = ",".join(spec.required_variables)
        found.append(
            ToolRegistration(
                name=name,
                description=spec.description,
                parameters=_parameters(method),
                supports_streaming=spec.supports_streaming,
                metadata=info,
            )
        )
    if callable(getattr(adapter, "execute_tool", None)) and all(
        entry.name != "execute_tool" for entry in found
    ):
        found.append(
            ToolRegistration(
                name="execute_tool",
                description="Legacy tool execution method",
                parameters=[],
                supports_streaming=False,
                metadata={},
            )
        )
    return found


def _parameters(method):
    try:
        signature = inspect.signature(method)
    except (TypeError, ValueError):
        return []
    specs = []
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = param.annotation
        if annotation is param.empty:
            kind = "any"
        else:
            kind = getattr(annotation, "__name__", str(annotation)).lower()
        required = param.default is param.empty
        specs.append(
            ParameterSpec(
                name=param.name,
                type=kind,
                description="",
                required=required,
                validation_json="" if required else _default_json(param.default),
            )
        )
    return specs


def _default_json(default):
    from .serialization import GracefulJSONEncoder

    try:
        return json.dumps({"default": default}, cls=GracefulJSONEncoder)
    except (TypeError, ValueError, RecursionError):
        return ""
