"""CancellationAdapter: tools that overrun their timeout in each way a tool can.

Each long tool prints ``cancellation_adapter: <tool> started`` when it starts and
``cancellation_adapter: <tool> cancelled`` when cancellation stops it, so a test waits for
those lines (the pool logs a worker's stdout) instead of for time.
"""

import asyncio
import os
import time

from snakepit_bridge import BaseAdapter, Cancelled, tool

# Bounds a tool that cancellation failed to stop, so a broken build cannot spin forever.
RUNAWAY_S = 60


def say(tool_name, what):
    print(f"cancellation_adapter: {tool_name} {what}", flush=True)


class CancellationAdapter(BaseAdapter):
    @tool(description="This worker's pid")
    def whoami(self):
        return {"pid": os.getpid()}

    @tool(description="A Python loop that never looks at cancellation")
    def spin(self):
        """Only the exception raised in the tool's thread stops it."""
        try:
            say("spin", "started")  # inside the try: the cancel may come as soon as it is out
            deadline = time.monotonic() + RUNAWAY_S
            while time.monotonic() < deadline:
                pass
        except Cancelled:
            say("spin", "cancelled")
            raise
        return "not cancelled"

    @tool(description="Wait for the request's cancel event")
    def wait_for_cancel(self):
        """Blocks in a C-level wait that an exception raised in the thread cannot interrupt:
        only the context's cancel flag ends it."""
        try:
            say("wait_for_cancel", "started")
            self.session_context.cancel_event.wait(RUNAWAY_S)
        except Cancelled:
            say("wait_for_cancel", "cancelled")
            raise
        return "not cancelled"

    @tool(description="Poll self.session_context.cancelled, as a cooperative tool does")
    def poll_cancelled(self):
        try:
            say("poll_cancelled", "started")
            deadline = time.monotonic() + RUNAWAY_S
            while not self.session_context.cancelled and time.monotonic() < deadline:
                time.sleep(0.005)
        except Cancelled:
            pass  # the exception may come first; either way the tool stops
        say("poll_cancelled", "cancelled")
        return "stopped"

    @tool(description="time.sleep(seconds): blocks in C, where cancellation cannot reach")
    def sleep(self, seconds):
        say("sleep", "started")
        time.sleep(seconds)
        return "slept"

    @tool(description="await asyncio.sleep(seconds)")
    async def async_sleep(self, seconds):
        say("async_sleep", "started")
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            say("async_sleep", "cancelled")
            raise
        return "slept"

    @tool(description="Yield 0, 1, 2, ... until cancelled", supports_streaming=True)
    def ticks(self):
        """Cancellation stops it inside (Cancelled) or between two chunks (the generator is
        closed: GeneratorExit); either way its finally block runs."""
        try:
            say("ticks", "started")
            for tick in range(RUNAWAY_S * 100):
                yield tick
                time.sleep(0.01)
        finally:
            say("ticks", "stopped")
