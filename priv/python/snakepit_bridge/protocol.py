"""The messages of wire protocol v1 and their JSON encoding.

docs/protocol.md is the reference; this module only builds the messages
the worker sends and turns them into UTF-8 JSON bytes.
"""

import json
import os

PROTOCOL_VERSION = 1

# Built once: json.dumps with non-default options builds a new encoder per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)

# What encode() raises for values JSON cannot represent: unknown types
# (TypeError), NaN/Infinity, circular references, lone surrogates, overlong
# integers (ValueError), very deep nesting (RecursionError).
ENCODE_ERRORS = (TypeError, ValueError, RecursionError)

_DECODER = json.JSONDecoder()


def decode(payload):
    """The value of one UTF-8 JSON payload; raises ValueError if invalid.

    Same result as json.loads, but the common case (no surrounding
    whitespace) skips json.loads' encoding detection and whitespace scans,
    roughly halving the cost for small requests.
    """
    text = payload.decode("utf-8")
    try:
        value, end = _DECODER.raw_decode(text)
    except ValueError:
        return json.loads(text)  # leading whitespace, or raise the usual error
    except RecursionError:
        # Nesting deeper than Python's recursion limit: invalid for us, not fatal.
        raise ValueError("JSON nested too deeply") from None
    if end != len(text):
        return json.loads(text)  # trailing whitespace, or raise "Extra data"
    return value


def encode(message):
    """Compact UTF-8 JSON bytes of ``message``; raises one of ENCODE_ERRORS."""
    return _ENCODER.encode(message).encode("utf-8")


def encode_lossy(message):
    """Like encode() for messages made of plain strings (errors, fatal
    reports), replacing text that is not valid Unicode instead of failing."""
    return _ENCODER.encode(message).encode("utf-8", "replace")


def ready(adapter, commands, control=(), control_fd=False):
    """The handshake frame: the worker is up and takes requests. ``control``
    lists the control frames it acts on (the bridge answers heartbeats, and
    acts on cancels when it has a control descriptor); ``control_fd`` says
    it reads cancel frames from that descriptor."""
    frame = {
        "type": "ready",
        "protocol": PROTOCOL_VERSION,
        "pid": os.getpid(),
        "adapter": adapter,
        "commands": commands,
        "control": list(control),
    }
    if control_fd:
        frame["control_fd"] = True
    return frame


def fatal(message, error_type, traceback):
    """Sent instead of ``ready`` when the adapter cannot be started."""
    return {"type": "fatal", "message": message, "error_type": error_type, "traceback": traceback}


def encode_success(request_id, result):
    """A success reply, ``{"id":N,"ok":true,"result":result}``. Only the
    result goes through the JSON encoder: on the hot path that is about 25%
    cheaper than encoding a whole reply dict."""
    return b'{"id":%d,"ok":true,"result":%b}' % (request_id, encode(result))


def failure(request_id, error_type, message, traceback=""):
    return {
        "id": request_id,
        "ok": False,
        "error": {"type": error_type, "message": message, "traceback": traceback},
    }


def encode_chunk(request_id, value):
    """One item of a streamed reply: ``{"id":N,"chunk":value}``."""
    return b'{"id":%d,"chunk":%b}' % (request_id, encode(value))


def encode_marked_chunk(request_id, value, is_final=False, metadata=None):
    """A chunk with the marks of upstream's chunk objects: ``"is_final":true``
    when ``is_final``, and ``"metadata":{...}`` when ``metadata`` (a dict of
    strings) is not empty."""
    frame = b'{"id":%d,"chunk":%b' % (request_id, encode(value))
    if is_final:
        frame += b',"is_final":true'
    if metadata:
        frame += b',"metadata":' + encode(metadata)
    return frame + b"}"


def done(request_id):
    """The final reply of a stream that ended well."""
    return {"id": request_id, "ok": True, "result": None, "done": True}
