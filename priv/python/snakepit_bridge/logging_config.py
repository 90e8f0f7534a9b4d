"""Logging as upstream's adapters expect it: ``get_logger`` and ``configure_logging``.

The level comes from ``SNAKEPIT_LOG_LEVEL`` (``debug``, ``info``,
``warning``, ``error``, ``none``; default ``error``), which the pool sets
from the ``log_level`` configuration. Records go to stderr, which the pool
logs line by line; the protocol never uses stderr, so logging cannot
disturb it. The worker calls ``configure_logging()`` once before loading
the adapter.
"""

import logging
import os
import sys

from .telemetry import correlation_filter

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "none": logging.CRITICAL + 1,
}

_FORMAT = (
    "%(asctime)s - [%(threadName)s] - %(name)s - %(levelname)s "
    "- [corr=%(correlation_id)s] %(message)s"
)


def configure_logging(force=False):
    """Set up the root logger from ``SNAKEPIT_LOG_LEVEL``: a stderr handler
    whose lines carry the correlation id. Like ``logging.basicConfig``, it
    leaves a root logger that already has handlers alone unless ``force``."""
    name = os.environ.get("SNAKEPIT_LOG_LEVEL", "error").strip().lower()
    level = _LEVELS.get(name, logging.ERROR)
    logging.disable(logging.CRITICAL if name == "none" else logging.NOTSET)
    root = logging.getLogger()
    if root.handlers and not force:
        return
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    handler = logging.StreamHandler(sys.stderr)
    # On the handler, not the logger: a logger's filters do not see records
    # that propagate up from child loggers, and the format needs the field.
    handler.addFilter(correlation_filter())
    handler.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries that are chatty at INFO.
    for noisy in ("grpc", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name):
    """The logger for ``name`` under upstream's ``snakepit`` namespace:
    ``snakepit_bridge.x`` becomes ``snakepit.bridge.x``, ``foo`` becomes
    ``snakepit.foo``; names already under ``snakepit.`` are kept."""
    if name.startswith("snakepit."):
        return logging.getLogger(name)
    if name.startswith("snakepit_bridge."):
        return logging.getLogger("snakepit.bridge." + name[len("snakepit_bridge.") :])
    return logging.getLogger("snakepit." + name)
