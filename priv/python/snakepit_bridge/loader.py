"""Finding, constructing and initializing the adapter a worker serves."""

import importlib

from .base_adapter import BaseAdapter


def load_adapter_class(path):
    """Import ``package.module.ClassName`` and return the class."""
    module_name, _, class_name = path.rpartition(".")
    if not module_name or not class_name:
        raise ValueError(f"adapter must be given as package.module.ClassName, got {path!r}")
    module = importlib.import_module(module_name)
    try:
        cls = getattr(module, class_name)
    except AttributeError:
        raise AttributeError(f"module {module_name!r} has no attribute {class_name!r}") from None
    if not (isinstance(cls, type) and issubclass(cls, BaseAdapter)):
        raise TypeError(f"{path} is not a subclass of snakepit_bridge.BaseAdapter")
    return cls


def start_adapter(path=None):
    """Build the adapter named by ``path`` (BaseAdapter itself when None)
    and run its ``initialize`` hook."""
    cls = BaseAdapter if path is None else load_adapter_class(path)
    adapter = cls()
    adapter.initialize()
    return adapter
