"""Cancellation and stream credits: the pool's control frames, read while a
tool runs, how the running tool is stopped, and how a stream waits for
credit.

When a request's timeout passes the pool sends ``{"id":N,"cancel":true}``
and expects the request's final reply within its ``cancel_grace``, or it
kills the worker. The main thread reads requests and runs tools, so it
cannot see that frame in the request stream while the tool runs. The pool
therefore also gives the worker a control descriptor (``SNAKEPIT_CONTROL_FD``,
announced with ``"control_fd": true`` in the ready handshake), and:

- ``ControlReader``, a thread of its own, reads control frames from it and
  hands cancels and credits to the scope. Requests never pass through it:
  the main thread keeps reading them itself, with no hand-off between
  threads on the request path.
- ``CancelScope`` is the request the main thread runs and how to stop it:
  it sets the request's ``SessionContext.cancel_event`` (for tools that poll
  ``cancelled`` or wait on the event), cancels the task of a coroutine being
  awaited (``awaiting``), or else raises ``Cancelled`` in the main thread.
  That exception is asynchronous: it fires between two bytecodes of the
  tool's Python code, never inside a blocking C call (``time.sleep(60)``, a
  socket read); such a tool ends when the call returns, or is killed by the
  pool after the grace period.

A scope never lets the exception fire while a reply frame is written nor
after the request's final reply, so each request still gets exactly one
final reply (a ``Cancelled`` failure, which the pool discards, when it was
stopped).

**Credits.** A streamed request may carry a ``window``: the worker sends at
most that many chunks beyond those the pool credited since
(``{"id":N,"credit":K}``, one per K chunks its consumer took). Before each
chunk the main thread takes one credit (``CancelScope.hold_chunk``),
waiting on a condition while there is none; a cancel, or the end of the
control descriptor (no credit can come any more), ends the wait with
``Cancelled``. Requests without a window never wait, and plain requests
never touch the credit count.
"""

import contextlib
import logging
import os
import signal
import threading

from . import framing, protocol

# The control frame kinds the bridge acts on in its request stream (heartbeats, answered in
# order; session ends, between requests), and with a control descriptor too (cancels, credits).
STREAM_KINDS = ("heartbeat", "session_end")
KINDS = ("cancel", "credit", *STREAM_KINDS)

# Where a stream that waits for credit says so (at debug level), so a slow stream can be told
# from a stalled consumer.
_log = logging.getLogger("snakepit.bridge.stream")

# How many cancels of requests not read yet are remembered (see CancelScope.cancel).
_MAX_EARLY = 64

# PyThreadState_SetAsyncExc, looked up at the first cancel (ctypes costs a few ms to import,
# and most workers never cancel); False when unavailable (not CPython): tools then stop
# through the flag and task cancellation only.
_set_async_exc = None
_NULL = None  # a NULL PyObject pointer: clears a pending exception


class Cancelled(BaseException):
    """Raised in a tool when the pool cancels its request (its timeout passed,
    or the consumer of its stream halted it).

    A BaseException, like asyncio.CancelledError, so that a tool's
    ``except Exception`` does not swallow it; ``finally`` blocks and context
    managers still run.
    """


def _async_exc():
    """PyThreadState_SetAsyncExc, or False."""
    global _set_async_exc, _NULL
    if _set_async_exc is None:
        try:
            import ctypes

            function = ctypes.pythonapi.PyThreadState_SetAsyncExc
            function.argtypes = (ctypes.c_ulong, ctypes.py_object)
            function.restype = ctypes.c_int
            _NULL = ctypes.py_object()
            _set_async_exc = function
        except (ImportError, AttributeError):
            _set_async_exc = False
    return _set_async_exc


def open_reader(fd):
    """A buffered reader on control descriptor ``fd``, kept out of child
    processes. Raises OSError if ``fd`` is not open."""
    os.set_inheritable(fd, False)
    return open(fd, "rb", buffering=0, closefd=False)


class ControlReader:
    """Reads control frames on a thread of its own and hands cancels and
    credits to ``scope``. Other kinds, and frames that are not JSON objects
    or lack a usable id or credit, are logged and skipped; end of file (the
    pool closed the descriptor) or a broken frame ends the thread, and then
    no stream waits for credit any more (``scope.close``). The thread is a
    daemon: it never keeps the worker alive."""

    def __init__(self, stream, scope, max_frame_size, log):
        self._stream = stream
        self._scope = scope
        self._max_frame_size = max_frame_size
        self._log = log
        self.thread = threading.Thread(target=self._run, name="snakepit-control", daemon=True)

    def start(self):
        # SIGTERM and SIGINT must reach the main thread, which may be blocked reading a
        # request: the thread starts with them blocked (it inherits the mask).
        stops = {signal.SIGTERM, signal.SIGINT}
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, stops)
        try:
            self.thread.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def _run(self):
        try:
            while True:
                payload = framing.read_frame(self._stream, self._max_frame_size)
                if payload is None:
                    return
                self._route(payload)
        except (framing.FrameError, OSError) as exc:
            self._log(f"control channel closed: {exc}")
        finally:
            self._scope.close()

    def _route(self, payload):
        try:
            message = protocol.decode(payload)
        except ValueError as exc:  # also covers invalid UTF-8
            self._log(f"ignoring a control frame: not valid JSON: {exc}")
            return
        request_id = message.get("id") if type(message) is dict else None
        if type(request_id) is int and request_id >= 0:
            if "cancel" in message:
                self._scope.cancel(request_id)
                return
            credit = message.get("credit")
            if type(credit) is int and credit > 0 and not message.keys() & _OTHER_KINDS:
                self._scope.credit(request_id, credit)
                return
        self._log(f"ignoring a control frame: {payload[:200]!r}")


# Members that make a frame another kind than a credit (docs/protocol.md: which kind wins).
_OTHER_KINDS = frozenset(("cancel", "heartbeat", "session_end"))


class CancelScope:
    """The request the main thread runs, and how the reader thread stops it.

    Main thread: ``enter(id, context, window)`` before the request's tool
    runs (it raises Cancelled if the request was cancelled before it was
    read); ``hold_chunk()`` before writing a chunk (it takes a credit, waiting
    for one if the window is used up) and ``release()`` after it; ``exit()``
    once the final reply is made, before it is written. Reader thread:
    ``cancel(id)``, ``credit(id, k)``, ``close()``.
    """

    def __init__(self):
        # Guards the fields below between the two threads; taken only with ``with``, which an
        # asynchronous exception cannot split.
        self._lock = threading.Lock()
        # Notified when the running stream gets credit, is cancelled, or can get no more.
        self._credited = threading.Condition(self._lock)
        self._thread = threading.get_ident()
        self._request_id = None
        self._context = None
        # The newest request id entered: a cancel for a newer one came before its request
        # was read (ids grow in the order the pool sends requests to a worker).
        self._last_id = -1
        self._early = set()
        # Whether Cancelled may be raised in the main thread now (not while a frame is
        # written, after the final reply, or while a coroutine is awaited), whether it was
        # (and so may still be pending), and whether the running request was cancelled.
        self._armed = False
        self._raised = False
        self._cancelled = False
        self._task = None  # (loop, task) of the coroutine being awaited, if any
        # Chunks the running stream may still send; None without a window (no limit).
        self._credits = None
        self._chunks_sent = 0
        # The control descriptor is closed: no credit will come any more.
        self._closed = False

    def enter(self, request_id, context, window=None):
        """The main thread starts running request ``request_id``, whose tool
        sees ``context``; a stream with a ``window`` may send that many chunks
        before it needs credit."""
        with self._lock:
            self._request_id = request_id
            self._context = context
            self._credits = window
            self._chunks_sent = 0
            self._last_id = request_id
            self._cancelled = False
            if self._early:
                early = request_id in self._early
                self._early = {id_ for id_ in self._early if id_ > request_id}
                if early:
                    self._cancelled = True
                    context.cancel_event.set()
                    raise Cancelled
            self._armed = True

    def hold(self):
        """Before writing a reply frame: no Cancelled fires until ``release``,
        and none is pending."""
        with self._lock:
            self._disarm()

    def hold_chunk(self):
        """``hold`` before writing a chunk, after taking a credit for it:
        while the stream's window is used up it waits for the pool's credit.
        A cancel (or the end of the control descriptor) ends the wait with
        Cancelled."""
        with self._lock:
            self._disarm()
            if self._credits is not None:
                if self._credits == 0:
                    self._wait_for_credit()
                self._credits -= 1
            self._chunks_sent += 1

    def _wait_for_credit(self):
        """With the lock held and the scope disarmed: waits until the running
        stream has a credit; raises Cancelled if it is cancelled first or no
        credit can come."""
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug(
                "request %s waits for credit after %d chunks", self._request_id, self._chunks_sent
            )
        while self._credits == 0 and not self._cancelled and not self._closed:
            self._credited.wait()
        if self._credits == 0:
            self._cancelled = True
            self._context.cancel_event.set()
            raise Cancelled
    def release(self):
        """After writing a chunk: a cancel that came meanwhile stops the
        stream now."""
        with self._lock:
            if self._cancelled:
                raise Cancelled
            self._armed = True

    def exit(self):
        """The request's final reply is made: nothing can be raised for it any
        more, and a cancel for it from now on crossed its reply."""
        with self._lock:
            self._disarm()
            self._request_id = self._context = None

    def cancel(self, request_id):
        """Stops request ``request_id`` if it is the one running (or remembers
        it if it was not read yet); True if it acted."""
        with self._lock:
            if request_id != self._request_id:
                if request_id > self._last_id and len(self._early) < _MAX_EARLY:
                    self._early.add(request_id)
                    return True
                return False  # finished already: its reply crossed the cancel
            if self._cancelled:
                return False
            self._cancelled = True
            self._credited.notify()
            if self._task is not None:
                loop, task = self._task
                loop.call_soon_threadsafe(task.cancel)
            elif self._armed and _async_exc():
                self._raised = True
                _set_async_exc(self._thread, Cancelled)
            context = self._context
        context.cancel_event.set()
        return True

    def credit(self, request_id, credit):
        """The pool's consumer of stream ``request_id`` took ``credit`` more
        chunks; True if that stream is the one running. A credit for another
        request crossed the end of its stream, and is dropped (the pool sends
        credit only after it got a chunk, so never before the request runs)."""
        with self._lock:
            if request_id != self._request_id or self._credits is None:
                return False
            self._credits += credit
            self._credited.notify()
            return True

    def close(self):
        """The control descriptor is closed (the pool stops the worker or is
        gone): a stream waiting for credit stops, as none can come."""
        with self._lock:
            self._closed = True
            self._credited.notify()

    @contextlib.contextmanager
    def awaiting(self, loop, task):
        """While ``loop`` runs ``task`` (a tool's coroutine): a cancel cancels
        the task, and the asynchronous exception stays off (it would land in
        the event loop's own code). The task's CancelledError then leaves as
        Cancelled."""
        with self._lock:
            armed = self._armed
            self._disarm()
            self._task = (loop, task)
        try:
            yield
        except BaseException as exc:
            import asyncio  # imported already: the caller runs an event loop

            if self._cancelled and isinstance(exc, asyncio.CancelledError):
                raise Cancelled from None
            raise
        finally:
            with self._lock:
                self._task = None
                self._armed = armed and not self._cancelled

    def _disarm(self):
        """With the lock held: no Cancelled from now on, and none pending."""
        self._armed = False
        if self._raised:
            self._raised = False
            _set_async_exc(self._thread, _NULL)


# The scope of the worker's main thread, while it has a control channel.
_scope = None


def install(scope):
    """Makes ``scope`` the one ``awaiting`` uses."""
    global _scope
    _scope = scope


def awaiting(loop, task):
    """``CancelScope.awaiting`` of the worker's scope; without one, nothing.
    Wraps the ``run_until_complete`` of a tool's coroutine, so that the
    pool's cancel frames reach the task."""
    scope = _scope
    return contextlib.nullcontext() if scope is None else scope.awaiting(loop, task)
