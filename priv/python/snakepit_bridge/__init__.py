"""snakepit_bridge: the Python side of snakepit_rs workers.

Write an adapter by subclassing BaseAdapter and marking methods with
@tool; a worker runs it with ``python -m snakepit_bridge --adapter
package.module.ClassName``. See docs/protocol.md for the wire protocol.

Adapters written for upstream Snakepit find the names they import here:
``SessionContext``, ``configure_logging``, ``get_logger``, and the modules
``snakepit_bridge.base_adapter``, ``.session_context``, ``.logging_config``,
``.serialization`` and ``.telemetry``. What needs upstream's gRPC service
(calling Elixir tools, session variables, telemetry to the BEAM) is a
documented no-op or error in those modules. ``Cancelled`` is raised in a
tool whose request the pool cancelled (snakepit_bridge.control).
"""

from .base_adapter import BaseAdapter, tool
from .control import Cancelled
from .logging_config import configure_logging, get_logger
from .session_context import SessionContext

__version__ = "0.1.0"

__all__ = [
    "BaseAdapter",
    "Cancelled",
    "SessionContext",
    "configure_logging",
    "get_logger",
    "tool",
    "__version__",
]
