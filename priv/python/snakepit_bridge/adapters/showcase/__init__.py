"""ShowcaseAdapter: a few small tools for demos and examples.

Run it with ``--adapter snakepit_bridge.adapters.showcase.ShowcaseAdapter``.
"""

import re
import statistics
import time
from collections import Counter

from snakepit_bridge.adapters.showcase.tool import StreamChunk
from snakepit_bridge.base_adapter import BaseAdapter, tool

_WORD = re.compile(r"\w+")


class ShowcaseAdapter(BaseAdapter):
    @tool(description="Add two numbers")
    def add(self, a, b):
        return a + b

    @tool(description="The n-th Fibonacci number, computed iteratively")
    def fibonacci(self, n):
        if type(n) is not int or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        current, following = 0, 1
        for _ in range(n):
            current, following = following, current + following
        return {"n": n, "value": current}

    @tool(description="Count the occurrences of each (lowercased) word in a text")
    def word_count(self, text):
        return dict(Counter(_WORD.findall(text.lower())))

    @tool(description="Count, mean, min, max and sample standard deviation of numbers")
    def stats(self, numbers):
        if not numbers:
            raise ValueError("numbers must not be empty")
        return {
            "count": len(numbers),
            "mean": statistics.fmean(numbers),
            "min": min(numbers),
            "max": max(numbers),
            "stdev": statistics.stdev(numbers) if len(numbers) > 1 else 0.0,
        }

    @tool(description="Stream {i: 1}, {i: 2}, ... up to {i: to}", supports_streaming=True)
    def count_up(self, to, delay_ms=0):
        for i in range(1, to + 1):
            if delay_ms:
                time.sleep(delay_ms / 1000)
            yield {"i": i}

    @tool(description="Stream progress updates, as upstream's showcase does")
    def stream_progress(self, steps=10, delay_ms=500):
        """``{"step", "total", "progress", "message", "elapsed_ms"}`` per step,
        the last one marked final: what upstream's streaming examples expect."""
        start = time.perf_counter()
        for step in range(1, steps + 1):
            elapsed_ms = (time.perf_counter() - start) * 1000
            update = {
                "step": step,
                "total": steps,
                "progress": round(step / steps * 100, 1),
                "message": f"Processing step {step}/{steps}",
                "elapsed_ms": round(elapsed_ms, 1),
            }
            yield StreamChunk(update, is_final=step == steps)
            if step < steps and delay_ms > 0:
                time.sleep(delay_ms / 1000)

    @tool(description="Count the calls made in the current session (on this worker)")
    def session_counter(self):
        state = self.session_state
        if state is None:
            return {"session_id": None, "count": None}
        state["count"] = state.get("count", 0) + 1
        return {"session_id": self.session_id, "count": state["count"]}

    @tool(description="Sleep duration_ms, then say which task slept (as upstream's showcase)")
    def sleep_task(self, duration_ms, task_number=0):
        time.sleep(duration_ms / 1000)
        return {"task_number": task_number, "slept_ms": duration_ms}
