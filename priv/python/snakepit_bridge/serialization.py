"""Results as upstream Snakepit v0.13 delivers them ("graceful serialization").

A tool may return values JSON has no type for. Instead of failing the
request, the bridge converts them the way upstream v0.13 does (with
``orjson``, which its requirements install), at any depth of the result:

- dataclass instances become dicts of their fields, ``uuid.UUID`` a
  string, an ``enum.Enum`` its value;
- an object with ``model_dump()``, ``to_dict()`` or ``_asdict()`` (tried in
  that order; one that raises is skipped) becomes what that returns, so
  Pydantic models and namedtuples become dicts;
- an object with ``tolist()`` (numpy arrays and scalars, pandas) becomes
  its list, unless it has more than ``SNAKEPIT_TOLIST_MAX_ELEMENTS``
  elements (default 1,000,000);
- an object with ``isoformat()`` (``datetime``, ``date``, ``time``) becomes
  that ISO 8601 string;
- a tuple becomes a list, and so does a set or frozenset (v0.13 gives a set
  the marker below; a list is what a caller can use);
- NaN and +/-Infinity become ``null`` inside a result, and the strings
  ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` when they are the whole result;
- anything else, ``bytes`` included, becomes the *unserializable marker*
  ``{"__ffi_unserializable__": true, "__type__": "module.ClassName"}``,
  which ``Snakepit.Serialization.unserializable?/1`` recognizes in Elixir.

``SNAKEPIT_UNSERIALIZABLE_DETAIL`` adds a ``"__repr__"`` to the marker:
``none`` (the default: nothing), ``type`` (``"<unserializable T>"``),
``repr_truncated`` (the object's repr, cut to
``SNAKEPIT_UNSERIALIZABLE_REPR_MAXLEN`` characters, default 500, at most
2000) or ``repr_redacted_truncated`` (the same with API keys, bearer tokens
and passwords replaced by ``<REDACTED>``, best effort). Variables are read
when the worker starts.

What stays an error (``SerializationError``): a value that contains itself,
a dict key that is not a string, number, boolean or None, nesting deeper
than Python can recurse, and text that is not valid Unicode.

Where snakepit_rs differs from v0.13 on purpose: integers stay exact
(v0.13 sends a whole result that is an integer as a float, and orjson
refuses integers beyond 64 bits), ``None`` stays ``null``, and a whole
result that is not a dict, list, string, number or boolean is converted as
above (v0.13 sends ``str(value)`` for it: ``"b'...'"`` for bytes,
``"None"`` for None, a repr for an object).
"""

import dataclasses
import enum
import json
import math
import os
import re
import uuid

from . import telemetry

# The marker's keys, as v0.13 writes them.
UNSERIALIZABLE_KEY = "__ffi_unserializable__"
TYPE_KEY = "__type__"
REPR_KEY = "__repr__"

# Types the standard library's encoder writes exactly as v0.13 would.
_SCALARS = frozenset((str, int, float, bool, type(None)))
_PLAIN = _SCALARS | {dict, list, tuple}

# Methods that turn an object into plain data, in the order v0.13 tries them.
_CONVERTERS = ("model_dump", "to_dict", "_asdict")

_NON_FINITE_NAMES = {math.inf: "Infinity", -math.inf: "-Infinity"}

# Telemetry for markers: the first marker of each type, at most this many
# types (upstream's names, which its tests set and clear).
_EMITTED_MARKER_TYPES_MAX = 10_000
_emitted_marker_types = set()


class SerializationError(Exception):
    """A tool returned or yielded a value that cannot be sent as JSON."""


class MarkerPolicy:
    """What a marker says about an object, and the ``tolist()`` size guard."""

    __slots__ = ("detail", "max_repr", "tolist_max")

    DETAILS = ("none", "type", "repr_truncated", "repr_redacted_truncated")

    def __init__(self, detail="none", max_repr=500, tolist_max=1_000_000):
        # An unknown mode means the safest one: no detail.
        self.detail = detail if detail in self.DETAILS else "none"
        self.max_repr = max(0, min(max_repr, 2000))
        self.tolist_max = max(0, tolist_max)

    @classmethod
    def from_env(cls, env):
        """The policy set by ``env``'s variables; a bad value means the default,
        so that a typo cannot stop a worker from starting."""
        return cls(
            env.get("SNAKEPIT_UNSERIALIZABLE_DETAIL", "none").strip().lower(),
            _env_int(env, "SNAKEPIT_UNSERIALIZABLE_REPR_MAXLEN", 500),
            _env_int(env, "SNAKEPIT_TOLIST_MAX_ELEMENTS", 1_000_000),
        )

    def detail_of(self, obj):
        """The marker's ``__repr__`` for ``obj``, or None for no such key.
        The object's repr is only computed when the mode asks for it."""
        if self.detail == "none":
            return None
        if self.detail == "type":
            return f"<unserializable {type_name(obj)}>"
        try:
            text = repr(obj)
        except Exception:
            text = f"<repr failed for {type_name(obj)}>"
        if self.detail == "repr_redacted_truncated":
            text = redact_secrets(text)
        return text[: self.max_repr]


def _env_int(env, name, default):
    try:
        return int(env.get(name, default))
    except (TypeError, ValueError):
        return default


# The policy of this worker, from its environment.
POLICY = MarkerPolicy.from_env(os.environ)
# The repr length it allows, under upstream's name (read-only: change POLICY).
_MAXLEN = POLICY.max_repr


def type_name(obj):
    """``module.ClassName`` of an object's type, as the marker names it."""
    kind = type(obj)
    return f"{kind.__module__}.{kind.__name__}"


def unserializable_marker(obj, policy=None):
    """The marker that stands for ``obj`` in a result."""
    policy = policy or POLICY
    name = type_name(obj)
    marker = {UNSERIALIZABLE_KEY: True, TYPE_KEY: name}
    detail = policy.detail_of(obj)
    if detail is not None:
        marker[REPR_KEY] = detail
    seen = _emitted_marker_types
    if name not in seen and len(seen) < _EMITTED_MARKER_TYPES_MAX:
        seen.add(name)
        try:
            telemetry.emit(
                "snakepit.serialization.unserializable_marker", {"first_seen": 1}, {"type": name}
            )
        except Exception:
            pass  # telemetry never breaks a result
    return marker


# Secrets a repr may show: (pattern, replacement). Best effort, not a boundary.
_SECRETS = (
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1<REDACTED>"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"), "sk-<REDACTED>"),
    (
        re.compile(
            r"(?i)((?:api[_-]?key|access[_-]?key|token|secret|password|passwd)[\"']?\s*[:=]\s*)"
            r"([\"'])(?!<REDACTED>)[^\"']*\2"
        ),
        r"\1\2<REDACTED>\2",
    ),
)


def redact_secrets(text):
    """``text`` with API keys, bearer tokens and quoted passwords, tokens and
    secrets replaced by ``<REDACTED>``."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def is_plain(value):
    """Whether ``value`` is made only of dicts, lists, tuples, strings,
    numbers, booleans and None (exact types), which the standard encoder
    writes as v0.13 would. Cheap for the common case: one pass over each
    container's element types, done in C."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is dict:
        items = value.values()
    elif kind is list or kind is tuple:
        items = value
    else:
        return False
    kinds = set(map(type, items))
    if kinds <= _SCALARS:
        return True
    if not kinds <= _PLAIN:
        return False
    return all(is_plain(item) for item in items if type(item) not in _SCALARS)


def to_json_value(value, policy=None):
    """A copy of ``value`` made only of JSON types, converted as the module
    docstring says. Raises SerializationError for what cannot be converted."""
    try:
        return _Converter(policy or POLICY).convert(value, True)
    except RecursionError:
        raise SerializationError("the value is nested too deeply") from None


class _Converter:
    __slots__ = ("policy", "active")

    def __init__(self, policy):
        self.policy = policy
        # ids of the containers and objects being converted: meeting one
        # again means the value contains itself.
        self.active = set()

    def convert(self, value, whole):
        """``whole``: the value is the whole result (or chunk), where a
        non-finite float becomes its name rather than null."""
        kind = type(value)
        if kind is str or kind is int or kind is bool or value is None:
            return value
        if kind is float:
            if math.isfinite(value):
                return value
            return _non_finite_name(value) if whole else None
        if kind is dict or kind is list or kind is tuple:
            return self._enter(value, self._container, value, kind is dict)
        if isinstance(value, enum.Enum):
            return self._enter(value, self.convert, value.value, whole)
        # Subclasses of JSON's types (numpy's float64, a str subclass): their plain value.
        if isinstance(value, str):
            return str.__str__(value)
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return self.convert(float(value), whole)
        if isinstance(value, (dict, list, set, frozenset)):
            return self._enter(value, self._container, value, isinstance(value, dict))
        return self._enter(value, self.convert, replacement_of(value, self.policy), whole)

    def _container(self, value, is_dict):
        convert = self.convert
        if is_dict:
            return {_key(key): convert(item, False) for key, item in value.items()}
        return [convert(item, False) for item in value]

    def _enter(self, value, step, *args):
        """``step(*args)`` while ``value`` is being converted."""
        ident = id(value)
        if ident in self.active:
            raise SerializationError(
                f"circular reference: a {type(value).__name__} contains itself"
            )
        self.active.add(ident)
        try:
            return step(*args)
        finally:
            self.active.discard(ident)


def replacement_of(obj, policy=None):
    """What one value that is not a JSON type stands for: converted once
    (the result may hold more such values), or its marker."""
    policy = policy or POLICY
    if isinstance(obj, tuple):  # a tuple subclass: a namedtuple has _asdict
        asdict = getattr(obj, "_asdict", None)
        if callable(asdict):
            try:
                return asdict()
            except Exception:
                pass
        return unserializable_marker(obj, policy)
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    if isinstance(obj, uuid.UUID):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {field.name: getattr(obj, field.name) for field in dataclasses.fields(obj)}
    for name in _CONVERTERS:
        method = getattr(obj, name, None)
        if method is not None:
            try:
                return method()
            except Exception:
                pass
    tolist = getattr(obj, "tolist", None)
    if tolist is not None and _may_list(obj, policy.tolist_max):
        try:
            listed = tolist()
            if _count(listed, policy.tolist_max) <= policy.tolist_max:
                return listed
        except Exception:  # MemoryError included: fall back to the marker
            pass
    isoformat = getattr(obj, "isoformat", None)
    if isoformat is not None:
        try:
            return isoformat()
        except Exception:
            pass
    return unserializable_marker(obj, policy)


def _may_list(obj, limit):
    """Whether ``obj.tolist()`` can be called without building more than
    ``limit`` elements, judged before calling it where the object tells its
    size: numpy and pandas (``size``), scipy sparse matrices (``shape``,
    whose product is what a dense list would hold)."""
    try:
        if hasattr(obj, "nnz") and hasattr(obj, "shape"):
            size = 1
            for dim in obj.shape:
                size *= int(dim)
            return size <= limit
        size = getattr(obj, "size", None)
        if size is not None and not callable(size):
            return int(size) <= limit
    except Exception:
        pass
    return True  # unknown: count the list afterwards


def _count(listed, limit):
    """Leaf elements of a nested list, counting no further than ``limit + 1``."""
    if not isinstance(listed, list):
        return 1
    count, stack = 0, [listed]
    while stack and count <= limit:
        for item in stack.pop():
            if isinstance(item, list):
                stack.append(item)
            else:
                count += 1
    return count


def _non_finite_name(value):
    return "NaN" if math.isnan(value) else _NON_FINITE_NAMES[value]


def _key(key):
    """A dict key as the standard encoder writes it; other types are refused."""
    if type(key) is str:
        return key
    if isinstance(key, str):
        return str.__str__(key)
    if key is True or key is False or key is None:
        return json.dumps(key)
    if isinstance(key, int):
        return int.__repr__(key)
    if isinstance(key, float):
        return float.__repr__(key) if math.isfinite(key) else _non_finite_name(key)
    raise SerializationError(
        f"a dict key of type {type(key).__name__} cannot be a JSON object key: {key!r}"
    )


class GracefulJSONEncoder(json.JSONEncoder):
    """A ``json.JSONEncoder`` that converts what it cannot write as the
    bridge does (``json.dumps(value, cls=GracefulJSONEncoder)``), for an
    adapter's own JSON."""

    def default(self, o):
        return replacement_of(o)


class TypeSerializer:
    """Upstream's protobuf ``Any`` codec. Results here cross the worker's pipe
    as JSON, so there is no ``Any`` to build: return plain values (converted
    as this module says) instead."""

    @staticmethod
    def encode_any(value, var_type=None):
        raise NotImplementedError(_NO_PROTOBUF)

    @staticmethod
    def decode_any(any_msg, binary_data=None):
        raise NotImplementedError(_NO_PROTOBUF)


_NO_PROTOBUF = (
    "TypeSerializer needs upstream's gRPC/protobuf transport; snakepit_rs sends results as "
    "JSON: return plain values (see snakepit_bridge.serialization)"
)

# Upstream's private names, which its own tests and some adapters use.
_unserializable_marker = unserializable_marker
_redact_secrets = redact_secrets
_orjson_default = replacement_of


def _unserializable_detail(obj):
    return POLICY.detail_of(obj)
