"""Answering one request: find the tool, call it, send its reply frames.

This is the hot path of a worker, so the common case (a known command
returning a plain JSON value) does one decode, one dict lookup, one call,
one encode and one send.
"""

import traceback
from collections.abc import Coroutine, Iterator

from . import protocol
from .base_adapter import collect_tools
from .framing import DEFAULT_MAX_FRAME_SIZE, FrameTooLarge

# The members of a request; a frame without "command" that has any other
# member is a control frame named after that member.
_REQUEST_MEMBERS = frozenset(("id", "command", "args", "session_id", "stream"))

# Result types that are sent as they are, skipping the iterator check.
_PLAIN_TYPES = frozenset((dict, list, str, int, float, bool, type(None)))


class ProtocolViolation(Exception):
    """A frame that gets no reply because it has no usable request id."""


class SerializationError(Exception):
    """A tool returned or yielded a value that JSON cannot represent."""


class Dispatcher:
    """Calls an adapter's tools for request frames."""

    def __init__(self, adapter, max_frame_size=DEFAULT_MAX_FRAME_SIZE):
        self.adapter = adapter
        self.max_frame_size = max_frame_size
        # command name -> (bound method, is a streaming tool), resolved once.
        self.commands = {
            name: (getattr(adapter, attr), spec.supports_streaming)
            for name, (attr, spec) in collect_tools(type(adapter)).items()
        }

    def command_names(self):
        return sorted(self.commands)

    def handle(self, payload, send):
        """Answer one request frame, passing each reply frame to ``send``.

        Raises ProtocolViolation for frames that cannot be answered.
        """
        try:
            request = protocol.decode(payload)
        except ValueError as exc:  # also covers invalid UTF-8
            raise ProtocolViolation(f"request is not valid JSON: {exc}") from None
        if type(request) is not dict:
            raise ProtocolViolation("request is not a JSON object")
        if "cancel" in request:
            return  # cancel: tools run one at a time here, so there is nothing to stop
        request_id = request.get("id")
        if type(request_id) is not int or request_id < 0:
            raise ProtocolViolation(f"request has no usable id: {request_id!r}")

        command = request.get("command")
        args = request.get("args")
        if args is None:
            args = {}
        if type(command) is not str or type(args) is not dict:
            if command is None and not request.keys() <= _REQUEST_MEMBERS:
                # A control frame of a kind the bridge does not know (docs/protocol.md): no reply.
                kind = next(key for key in request if key not in _REQUEST_MEMBERS)
                raise ProtocolViolation(f"unknown control frame {kind!r}")
            send(self._protocol_error(request_id, command, args))
            return
        entry = self.commands.get(command)
        if entry is None:
            send(self._unknown_command(request_id, command))
            return

        function, streaming = entry
        self.adapter.session_id = request.get("session_id")
        if not request.get("stream"):
            send(self._call(request_id, function, args))
        elif streaming:
            self._stream(request_id, function, args, send)
        else:
            message = f"command {command!r} is not a streaming tool"
            send(
                protocol.encode_lossy(
                    protocol.failure(request_id, "StreamingNotSupported", message)
                )
            )

    def _call(self, request_id, function, args):
        """The one reply frame of a plain call."""
        try:
            result = function(**args)
            if type(result) not in _PLAIN_TYPES:
                result = _settle(result)
            return self._encode(protocol.encode_success, request_id, result, "result")
        except Exception as exc:
            return self._failure(request_id, exc)

    def _stream(self, request_id, function, args, send):
        """Send each item the tool yields as a chunk, then the final reply.

        A tool that returns something other than an iterator streams it as a
        single chunk. Should ``send`` itself fail, sending the failure reply
        fails the same way and that error reaches the caller.
        """
        items = ()
        try:
            result = function(**args)
            items = result if isinstance(result, Iterator) else iter((result,))
            for item in items:
                send(self._encode(protocol.encode_chunk, request_id, item, "chunk"))
        except Exception as exc:
            send(self._failure(request_id, exc))
        else:
            send(protocol.encode(protocol.done(request_id)))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # run a generator's finally blocks if it stopped early

    def _encode(self, encoder, request_id, value, what):
        """``encoder(request_id, value)``, checked to be JSON and to fit a frame."""
        try:
            payload = encoder(request_id, value)
        except protocol.ENCODE_ERRORS as exc:
            raise SerializationError(f"{what} is not JSON-serializable: {exc}") from None
        if len(payload) > self.max_frame_size:
            raise FrameTooLarge(len(payload), self.max_frame_size, what)
        return payload

    def _failure(self, request_id, exc):
        """The failure reply for an exception, its traceback starting at the
        tool (frames of this module are left out)."""
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next
        text = "".join(traceback.format_exception(type(exc), exc, tb))
        return protocol.encode_lossy(
            protocol.failure(request_id, type(exc).__name__, str(exc), text)
        )

    def _unknown_command(self, request_id, command):
        message = f"unknown command {command!r}; available: {', '.join(self.command_names())}"
        return protocol.encode_lossy(protocol.failure(request_id, "UnknownCommand", message))

    @staticmethod
    def _protocol_error(request_id, command, args):
        if type(command) is not str:
            message = f"request {request_id} has no command name (got {command!r})"
        else:
            message = f"request {request_id}: args must be a JSON object, got {type(args).__name__}"
        return protocol.encode_lossy(protocol.failure(request_id, "ProtocolError", message))


def _settle(result):
    """Turn a non-plain tool result into the value to send: iterators are
    drained into a list and coroutines (async tools) are run."""
    if isinstance(result, Iterator):
        return list(result)
    if isinstance(result, Coroutine):
        import asyncio  # only async tools pay for importing asyncio

        return asyncio.run(result)
    return result
