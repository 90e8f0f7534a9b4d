"""Answering one request: find the tool, call it, send its reply frames.

This is the hot path of a worker, so the common case (a known command
returning a plain JSON value) does one decode, one dict lookup, one call,
one encode and one send.

A request is handled in two steps, which ``handle`` runs back to back:
``accept`` reads the frame and sends at once the replies that need no tool
(protocol errors, unknown commands), returning a ``Call`` otherwise; ``run``
calls the tool and sends its reply frames. The worker's serve loop puts a
cancel scope (snakepit_bridge.control) around the second step, using
``reply``, which sends a stream's chunks and returns the final reply frame.
The Call's ``context`` (a SessionContext) is what the tool sees, and
``context.cancel_event`` is how the worker tells it the request was
cancelled.
"""

import functools
import sys
import traceback
from collections.abc import Iterator

from . import coroutines, protocol, serialization
from .framing import DEFAULT_MAX_FRAME_SIZE, FrameTooLarge
from .serialization import SerializationError
from .session_context import SessionContext
from .tools import collect_tools

# The members of a request; a frame without "command" that has any other
# member is a control frame named after that member.
_REQUEST_MEMBERS = frozenset(("id", "command", "args", "session_id", "stream", "window"))

# Result types that are sent as they are, skipping the iterator and awaitable checks.
_PLAIN_TYPES = frozenset((dict, list, str, int, float, bool, type(None)))

__all__ = ["Call", "Dispatcher", "ProtocolViolation", "SerializationError"]


class ProtocolViolation(Exception):
    """A frame that gets no reply because it has no usable request id."""


class Call:
    """An accepted request: what ``Dispatcher.run`` needs to answer it."""

    __slots__ = ("request_id", "command", "args", "stream", "context", "function", "window")

    def __init__(self, request_id, command, args, stream, context, function, window=None):
        self.request_id = request_id
        self.command = command
        self.args = args
        # True when the request asked for a streamed reply (and the tool may stream).
        self.stream = stream
        # A stream's credit window (chunks it may send before the pool's credits), or None.
        self.window = window
        # The SessionContext the tool sees; set context.cancel_event to cancel.
        self.context = context
        # The tool's bound method, or None when the adapter's execute_tool routes it.
        self.function = function


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
        # An adapter's execute_tool(tool_name, arguments, context) answers
        # every command, as with upstream; None when it has none.
        router = getattr(adapter, "execute_tool", None)
        self.router = router if callable(router) else None
        self._set_context = getattr(adapter, "set_session_context", None) or (
            lambda context: setattr(adapter, "session_context", context)
        )
        # session id -> the dict a tool sees as its context's session_state, for every session
        # this worker served; dropped when the pool says the session ended.
        self.session_states = {}

    def command_names(self):
        return sorted(self.commands)

    def handle(self, payload, send):
        """Answer one request frame, passing each reply frame to ``send``.

        Raises ProtocolViolation for frames that cannot be answered.
        """
        call = self.accept(payload, send)
        if call is not None:
            self.run(call, send)

    def accept(self, payload, send):
        """Read one frame. Returns the Call to ``run`` for a request a tool
        answers; otherwise sends the reply that needs no tool, if any, and
        returns None. Raises ProtocolViolation for frames that cannot be
        answered."""
        try:
            request = protocol.decode(payload)
        except ValueError as exc:  # also covers invalid UTF-8
            raise ProtocolViolation(f"request is not valid JSON: {exc}") from None
        if type(request) is not dict:
            raise ProtocolViolation("request is not a JSON object")
        if "cancel" in request:
            return None  # a cancel frame: the control reader's (snakepit_bridge.control)
        if "session_end" in request and "heartbeat" not in request:
            self.end_session(request.get("session_id"))
            return None
        request_id = request.get("id")
        if type(request_id) is not int or request_id < 0:
            raise ProtocolViolation(f"request has no usable id: {request_id!r}")
        if "heartbeat" in request:
            # The pool's health check (docs/protocol.md): answered here, never by a tool, so an
            # adapter's own `ping` (whatever its arguments) is never a health check.
            send(protocol.encode_success(request_id, None))
            return None
        if "credit" in request:
            raise ProtocolViolation("a credit frame in the request stream (they come on fd 5)")

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
            return None
        window = request.get("window")
        if window is not None and (type(window) is not int or window < 1):
            message = f"request {request_id}: window must be a positive integer, got {window!r}"
            send(protocol.encode_lossy(protocol.failure(request_id, "ProtocolError", message)))
            return None
        entry = self.commands.get(command)
        if entry is None and self.router is None:
            send(self._unknown_command(request_id, command))
            return None
        stream = bool(request.get("stream"))
        if stream and entry is not None and not entry[1]:
            message = f"command {command!r} is not a streaming tool"
            send(
                protocol.encode_lossy(
                    protocol.failure(request_id, "StreamingNotSupported", message)
                )
            )
            return None
        session_id = request.get("session_id")
        if type(session_id) is str:
            state = self.session_states.get(session_id)
            if state is None:
                state = self.session_states[session_id] = {}
        else:
            session_id = state = None
        context = SessionContext(None, session_id, request_id=request_id, session_state=state)
        function = None if self.router is not None else entry[0]
        window = window if stream else None
        return Call(request_id, command, args, stream, context, function, window)

    def end_session(self, session_id):
        """Session ``session_id`` ended: drop its state, and call the
        adapter's ``on_session_end(session_id, state)`` hook (sync or async)
        if this worker served the session. A failing hook is logged."""
        if type(session_id) is not str:
            raise ProtocolViolation(f"session_end frame without a session id: {session_id!r}")
        state = self.session_states.pop(session_id, None)
        hook = getattr(self.adapter, "on_session_end", None)
        if state is None or not callable(hook):
            return
        try:
            coroutines.settle(hook(session_id, state))
        except Exception:
            text = traceback.format_exc()
            message = f"[snakepit_bridge] on_session_end({session_id!r}) failed:\n{text}"
            print(message, file=sys.stderr, flush=True)

    def run(self, call, send):
        """Call the tool of an accepted request and send its reply frames:
        exactly one final reply, after the chunks of a streamed one."""
        send(self.reply(call, send))

    def reply(self, call, send_chunk):
        """Call the tool of an accepted request; returns its final reply
        frame, after passing a streamed reply's chunks to ``send_chunk``."""
        if call.stream:
            return self._stream(call, send_chunk)
        return self._call(call)

    @staticmethod
    def cancelled(request_id):
        """The final reply of a request its cancellation stopped."""
        message = f"request {request_id} was cancelled by the pool"
        return protocol.encode_lossy(protocol.failure(request_id, "Cancelled", message))

    def _invoke(self, call):
        """The tool's return value, as it returned it. The adapter's session
        context is set first, so the tool sees this request's."""
        self._set_context(call.context)
        if call.function is not None:
            return call.function(**call.args)
        return self.router(tool_name=call.command, arguments=call.args, context=call.context)

    def _call(self, call):
        """The one reply frame of a plain call."""
        try:
            result = self._invoke(call)
            if type(result) not in _PLAIN_TYPES:
                result = _settle(result)
            return self._encode(protocol.encode_success, call.request_id, result, "result")
        except Exception as exc:
            return self._failure(call.request_id, exc)

    def _stream(self, call, send_chunk):
        """Send each item the tool yields as a chunk; returns the final reply.

        A tool that returns something other than an iterator streams it as a
        single chunk. Should ``send_chunk`` fail, the failure reply is
        returned, and sending it fails the same way, reaching the caller.
        """
        request_id = call.request_id
        items = ()
        try:
            result = coroutines.settle(self._invoke(call))
            if isinstance(result, Iterator):
                items = result
            elif hasattr(result, "__anext__"):
                items = _async_items(result)
            else:
                items = iter((result,))
            for item in items:
                if type(item) in _PLAIN_TYPES or not _is_chunk_object(item):
                    chunk = self._encode(protocol.encode_chunk, request_id, item, "chunk")
                else:
                    chunk = self._encode(_marked_encoder(item), request_id, item.data, "chunk")
                send_chunk(chunk)
        except Exception as exc:
            return self._failure(request_id, exc)
        else:
            return protocol.encode(protocol.done(request_id))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # run a generator's finally blocks if it stopped early

    def _encode(self, encoder, request_id, value, what):
        """``encoder(request_id, value)``, checked to fit a frame. A value the
        standard encoder cannot write as upstream v0.13 would is converted
        first (snakepit_bridge.serialization)."""
        payload = None
        try:
            if serialization.is_plain(value):
                payload = encoder(request_id, value)
        except protocol.ENCODE_ERRORS:
            pass  # NaN, a cycle or deep nesting: the conversion says which
        if payload is None:
            try:
                payload = encoder(request_id, serialization.to_json_value(value))
            except (SerializationError, *protocol.ENCODE_ERRORS) as exc:
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
    """Turn a non-plain tool result into the value to send: awaitables
    (async tools) are awaited, iterators and async iterators drained into a
    list of what each item would send as a chunk (so upstream's chunk
    objects give their ``data``, as in a streamed reply)."""
    result = coroutines.settle(result)
    if isinstance(result, Iterator):
        return _drain(result)
    if hasattr(result, "__anext__"):
        return _drain(_async_items(result))
    return result


def _drain(items):
    return [_chunk_data(item) for item in items]


def _async_items(iterator):
    """The items of an async iterator (an ``async def`` generator), each
    awaited on the worker's event loop."""
    try:
        while True:
            try:
                item = coroutines.settle(iterator.__anext__())
            except StopAsyncIteration:
                return
            yield item
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            coroutines.settle(aclose())


def _is_chunk_object(item):
    """Whether a streamed item is one of upstream's chunk objects
    (``StreamChunk(data, is_final)``), whose ``data`` is the chunk."""
    return hasattr(item, "is_final") and hasattr(item, "data")


def _chunk_data(item):
    """What a streamed item sends: a chunk object's ``data``, other items as they are."""
    return item.data if _is_chunk_object(item) else item


def _marked_encoder(item):
    """``encode(request_id, data)`` for a chunk object: its frame carries the
    object's ``is_final`` and ``metadata`` (a dict, its keys and values made
    strings, as upstream's ToolChunk metadata map), which the pool needs to
    hand callbacks what upstream hands them."""
    metadata = getattr(item, "metadata", None)
    if isinstance(metadata, dict) and metadata:
        metadata = {str(key): str(value) for key, value in metadata.items()}
    else:
        metadata = None
    is_final = bool(item.is_final)
    return functools.partial(protocol.encode_marked_chunk, is_final=is_final, metadata=metadata)
