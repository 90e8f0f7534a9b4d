"""StreamingAdapter: streaming tools in each form a tool can take, for the streaming tests
(the Python bridge's and the pool's).

Tools that tests must follow print ``streaming_adapter: <tool> <what>`` lines to stdout (the pool
logs a worker's stdout), so a test waits for those lines instead of for time: ``<tool> started``
when they start, ``<tool> yielding <i>`` before each item where noted, and ``<tool> stopped`` from
their ``finally`` block, which runs however the stream ends (done, halted, cancelled, failed,
worker stopped).
"""

import asyncio
import os
import time

from snakepit_bridge import BaseAdapter, tool
from snakepit_bridge.adapters.showcase.tool import StreamChunk

# Bounds a stream that halting or cancellation failed to stop, so a broken build cannot run
# forever.
RUNAWAY_S = 60


def say(tool_name, what):
    print(f"streaming_adapter: {tool_name} {what}", flush=True)


class StreamingAdapter(BaseAdapter):
    @tool(description="This worker's pid")
    def whoami(self):
        return {"pid": os.getpid()}

    @tool(description="Yield 0, 1, ..., n - 1")
    def count(self, n):
        yield from range(n)

    @tool(description="Yield 0, 1, ..., n - 1, saying so before each item", supports_streaming=True)
    def count_loudly(self, n):
        """Prints ``count_loudly yielding <i>`` before yielding i: how far the tool got."""
        try:
            for i in range(n):
                say("count_loudly", f"yielding {i}")
                yield i
        finally:
            say("count_loudly", "stopped")

    @tool(description="Yield 0, 1, ..., n - 1, sleeping delay_ms before each")
    def count_slowly(self, n, delay_ms=10):
        for i in range(n):
            time.sleep(delay_ms / 1000)
            yield i

    @tool(description="Yield 0, 1, ..., n - 1, then raise ValueError")
    def fail_after(self, n):
        yield from range(n)
        raise ValueError(f"failed after {n} chunks")

    @tool(description="Yield {'i': 0}, {'i': 1}, ... until stopped")
    def forever(self):
        """Its finally block prints ``forever stopped``, however it is stopped."""
        try:
            say("forever", "started")
            deadline = time.monotonic() + RUNAWAY_S
            i = 0
            while time.monotonic() < deadline:
                yield {"i": i}
                i += 1
        finally:
            say("forever", "stopped")

    @tool(description="An async generator: yield 0, 1, ..., n - 1")
    async def async_count(self, n):
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    @tool(description="An async generator yielding 0, 1, ... until stopped")
    async def async_forever(self):
        try:
            say("async_forever", "started")
            deadline = time.monotonic() + RUNAWAY_S
            i = 0
            while time.monotonic() < deadline:
                await asyncio.sleep(0)
                yield i
                i += 1
        finally:
            say("async_forever", "stopped")

    @tool(description="Upstream's chunk objects: {step, total}, the last marked final")
    def upstream_chunks(self, n, metadata=False):
        """``StreamChunk({"step": i, "total": n}, is_final=(i == n))`` for i in 1..n, as
        upstream's showcase yields them; with ``metadata``, each carries ``{"step": i}``."""
        for step in range(1, n + 1):
            chunk = StreamChunk({"step": step, "total": n}, is_final=step == n)
            if metadata:
                chunk.metadata = {"step": step}
            yield chunk

    @tool(description="Return an iterator over 0..n - 1 (not a generator)", supports_streaming=True)
    def iterate(self, n):
        return iter(range(n))

    @tool(description="Return one value: a streaming tool that does not iterate",
          supports_streaming=True)
    def single(self, value):
        return value

    @tool(description="A plain tool: not a streaming tool")
    def plain(self):
        return {"plain": True}
