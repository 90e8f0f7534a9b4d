"""Upstream's Python telemetry API, with no channel to the BEAM.

Upstream v0.13 streams events emitted here to Elixir over its gRPC service
and re-emits them as ``:telemetry`` events. A snakepit_rs worker has no
such channel, so by default every function here is a no-op that adapters
may call freely: ``emit`` and ``span`` send nothing, ``is_enabled()`` is
False, ``setup_tracing`` sets up no tracer and ``otel_span`` only sets the
correlation id. An adapter that wants its events can install a backend of
its own, any object with ``emit(event, measurements, metadata,
correlation_id)`` (``set_backend``); it then receives every event,
including those ``span`` emits.

Correlation ids work as upstream's: a ``contextvars`` value per thread or
task, put on every log record once ``setup_tracing()`` ran (the worker runs
it at start), and by the ``correlation_filter()`` logging filter.
"""

import contextlib
import contextvars
import logging
import threading
import time
import uuid

# The gRPC metadata key upstream sends the correlation id under.
CORRELATION_HEADER = "x-snakepit-correlation-id"

_backend = None
_correlation_id = contextvars.ContextVar("snakepit_correlation_id", default=None)

# setup_tracing() wraps the log record factory once.
_record_factory_installed = False
_setup_lock = threading.Lock()


def set_backend(backend):
    """Send events to ``backend`` (None: send them nowhere, the default)."""
    global _backend
    _backend = backend


def get_backend():
    return _backend


def is_enabled():
    """Whether events go anywhere: only once an adapter set a backend."""
    return _backend is not None


def emit(event, measurements, metadata=None, correlation_id=None):
    """Pass one event to the backend, if there is one."""
    backend = _backend
    if backend is not None:
        backend.emit(event, measurements, metadata, correlation_id)


@contextlib.contextmanager
def span(operation, metadata=None, correlation_id=None):
    """Emit ``operation.start``, then ``operation.stop`` with the duration in
    nanoseconds, or ``operation.exception`` (with ``error_type`` and
    ``error_message``) if the block raises."""
    started = time.time_ns()
    emit(f"{operation}.start", {"system_time": started}, metadata, correlation_id)
    try:
        yield
    except Exception as exc:
        failed = dict(metadata or {}, error_type=type(exc).__name__, error_message=str(exc))
        duration = time.time_ns() - started
        emit(f"{operation}.exception", {"duration": duration}, failed, correlation_id)
        raise
    emit(f"{operation}.stop", {"duration": time.time_ns() - started}, metadata, correlation_id)


def new_correlation_id():
    return uuid.uuid4().hex


def set_correlation_id(value):
    """Set the current correlation id; returns a token for ``reset_correlation_id``."""
    return _correlation_id.set(value)


def reset_correlation_id(token):
    if token is not None:
        _correlation_id.reset(token)


def get_correlation_id(default=None):
    value = _correlation_id.get()
    return default if value is None else value


def outgoing_metadata(initial=None):
    """``initial`` (pairs) plus the correlation id's header, if one is set."""
    pairs = list(initial or ())
    correlation = get_correlation_id()
    if correlation:
        pairs.append((CORRELATION_HEADER, correlation))
    return pairs


@contextlib.contextmanager
def otel_span(name, *, context_metadata=None, attributes=None):
    """Upstream's OpenTelemetry span. There is no tracer here: this only makes
    a correlation id current for the block (from ``context_metadata``, the
    current one, or a new one) and yields None."""
    correlation = _header_value(context_metadata) or get_correlation_id() or new_correlation_id()
    token = set_correlation_id(correlation)
    try:
        yield None
    finally:
        reset_correlation_id(token)


def setup_tracing():
    """Make every log record carry ``record.correlation_id`` (the current
    one, "-" when none), so that an adapter's own handlers may format it, as
    upstream's workers do; the worker calls this at start. There is no
    OpenTelemetry exporter in a snakepit_rs worker: no tracer is set up.
    Calling it again does nothing."""
    global _record_factory_installed
    with _setup_lock:
        if _record_factory_installed:
            return
        make_record = logging.getLogRecordFactory()

        def record_with_correlation(*args, **kwargs):
            record = make_record(*args, **kwargs)
            if not getattr(record, "correlation_id", None):
                record.correlation_id = get_correlation_id("-")
            return record

        logging.setLogRecordFactory(record_with_correlation)
        _record_factory_installed = True


def get_tracer():
    return None


class _CorrelationFilter(logging.Filter):
    def filter(self, record):
        record.correlation_id = get_correlation_id("-")
        return True


def correlation_filter():
    """A logging filter that sets ``record.correlation_id`` ("-" when none)."""
    return _CorrelationFilter()


def _header_value(metadata):
    for key, value in metadata or ():
        if key.lower() == CORRELATION_HEADER:
            return value
    return None
