"""snakepit_bridge: the Python side of snakepit_rs workers.

Write an adapter by subclassing BaseAdapter and marking methods with
@tool; a worker runs it with ``python -m snakepit_bridge --adapter
package.module.ClassName``. See docs/protocol.md for the wire protocol.
"""

from .base_adapter import BaseAdapter, tool

__version__ = "0.1.0"

__all__ = ["BaseAdapter", "tool", "__version__"]
