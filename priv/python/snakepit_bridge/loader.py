"""Finding, constructing, initializing and finally cleaning up the adapter a
worker serves."""

import importlib

from . import coroutines, telemetry
from .base_adapter import BaseAdapter
from .logging_config import configure_logging


def load_adapter_class(path):
    """Import ``package.module.ClassName`` and return the class.

    It must subclass BaseAdapter, or define ``execute_tool`` as upstream's
    adapter template does (without subclassing BaseAdapter)."""
    module_name, _, class_name = path.rpartition(".")
    if not module_name or not class_name:
        raise ValueError(f"adapter must be given as package.module.ClassName, got {path!r}")
    module = importlib.import_module(module_name)
    try:
        cls = getattr(module, class_name)
    except AttributeError:
        raise AttributeError(f"module {module_name!r} has no attribute {class_name!r}") from None
    if not isinstance(cls, type) or not (
        issubclass(cls, BaseAdapter) or callable(getattr(cls, "execute_tool", None))
    ):
        raise TypeError(
            f"{path} is neither a subclass of snakepit_bridge.BaseAdapter "
            "nor a class with an execute_tool method"
        )
    return cls


def start_adapter(path=None):
    """Set up logging (log records carry the correlation id, as upstream's
    workers do), build the adapter named by ``path`` (BaseAdapter itself
    when None) and run its ``initialize`` hook, awaiting it if it is
    ``async``."""
    configure_logging()
    telemetry.setup_tracing()
    cls = BaseAdapter if path is None else load_adapter_class(path)
    adapter = cls()
    initialize = getattr(adapter, "initialize", None)
    if initialize is not None:
        coroutines.settle(initialize())
    return adapter


def stop_adapter(adapter):
    """Run the adapter's ``cleanup`` hook (awaiting it if it is ``async``),
    then close the event loop of its coroutines, if any."""
    try:
        cleanup = getattr(adapter, "cleanup", None)
        if cleanup is not None:
            coroutines.settle(cleanup())
    finally:
        coroutines.close()
