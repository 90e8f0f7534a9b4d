"""SessionContext: what a tool knows about the request it is serving.

The worker builds one for every request and hands it to the adapter
before the tool runs: ``adapter.set_session_context(context)`` (so
``self.session_context``), and as the ``context`` argument of an
adapter's ``execute_tool``. It carries:

- ``session_id``: the request's session id, or None;
- ``request_metadata``: a dict; empty today, as the protocol carries no
  per-request metadata (upstream fills it from gRPC request metadata);
- ``request_id``: the protocol's id of the request;
- ``session_state``: a dict kept on this worker for the request's session,
  the same dict for every call of that session this worker serves (None
  without a session); dropped when the session ends;
- ``cancel_event`` (a ``threading.Event``) and ``cancelled`` (a bool): set
  once the pool has cancelled the request (its caller's timeout passed). A
  long tool may poll ``self.session_context.cancelled`` and stop early.

Upstream's context is also a gRPC client of the BEAM (its ``stub``):
``elixir_tools`` and ``call_elixir_tool`` call Elixir tools, and v0.4.3's
variables (``register_variable``, ``get_variable``, ...) live in Elixir's
SessionStore. A snakepit_rs worker has no channel back into the BEAM, so
``stub`` is None, ``elixir_tools`` is empty, and ``call_elixir_tool`` and
the variable methods raise NotImplementedError saying so; ``cleanup()``
(a best-effort hint upstream) does nothing.
"""

import threading

_NO_CHANNEL = (
    "needs upstream's gRPC channel back into the BEAM; a snakepit_rs worker has none. Keep "
    "per-session state in the adapter (self.session_id names the session) or pass what the "
    "tool needs in its arguments"
)

# v0.4.3's SessionContext methods that read or write Elixir's SessionStore.
_SESSION_STORE_METHODS = frozenset(
    (
        "register_variable",
        "get_variable",
        "update_variable",
        "list_variables",
        "delete_variable",
        "get_variables",
        "update_variables",
        "variable",
        "batch_updates",
    )
)


# Guards the lazy creation of each context's cancel_event.
_EVENT_LOCK = threading.Lock()


class SessionContext:
    """The context of one request; see the module docstring."""

    def __init__(
        self,
        stub=None,
        session_id=None,
        request_metadata=None,
        *,
        request_id=None,
        session_state=None,
    ):
        self.stub = stub
        self.session_id = session_id
        self.session_state = session_state
        self.request_metadata = {} if request_metadata is None else dict(request_metadata)
        self.request_id = request_id
        # The Event behind cancel_event, made on first use: most requests are
        # never cancelled, and making an Event costs more than the rest of a
        # small request's dispatch.
        self._cancel_event = None

    @property
    def cancel_event(self):
        """A ``threading.Event`` the worker sets when the pool cancels this
        request. Safe to use from any thread."""
        event = self._cancel_event
        if event is None:
            with _EVENT_LOCK:
                event = self._cancel_event
                if event is None:
                    event = self._cancel_event = threading.Event()
        return event

    @property
    def cancelled(self):
        """Whether the pool cancelled this request (its timeout passed)."""
        event = self._cancel_event
        return event is not None and event.is_set()

    @property
    def elixir_tools(self):
        """Elixir tools exposed to Python: none, as there is no channel to the BEAM."""
        return {}

    def call_elixir_tool(self, tool_name, **kwargs):
        raise NotImplementedError(f"call_elixir_tool({tool_name!r}) {_NO_CHANNEL}")

    def cleanup(self):
        """Upstream asks Elixir to drop the session (a hint); nothing to do here."""

    def __getattr__(self, name):
        # Only reached for attributes the class does not define.
        if name in _SESSION_STORE_METHODS:

            def unavailable(*_args, **_kwargs):
                raise NotImplementedError(f"SessionContext.{name} {_NO_CHANNEL}")

            return unavailable
        raise AttributeError(f"'SessionContext' object has no attribute {name!r}")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, tb):
        self.cleanup()
        return False

    def __repr__(self):
        return f"SessionContext(session_id={self.session_id!r})"
