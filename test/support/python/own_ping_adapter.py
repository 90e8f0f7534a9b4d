"""An adapter with its own ``ping`` tool that needs an argument, as upstream adapters define one:
health checks must never call it (the pool sends heartbeat frames, which the bridge answers)."""

import os

from snakepit_bridge import BaseAdapter, tool


class OwnPingAdapter(BaseAdapter):
    @tool(description="Answers a message; fails without one")
    def ping(self, message):
        return {"pong": message, "pid": os.getpid()}
