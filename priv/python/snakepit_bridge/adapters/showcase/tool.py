"""``StreamChunk``, where upstream's adapters import it from
(``from snakepit_bridge.adapters.showcase.tool import StreamChunk``).

A streaming tool may yield these instead of plain values: the chunk sent is
``data``; ``is_final`` marks the last chunk (the pool then adds no final
chunk of its own), and an optional ``metadata`` dict travels beside the data
with its keys and values made strings (docs/protocol.md, Streaming).
"""


class StreamChunk:
    """One item of a streamed reply: ``data``, and whether it is the last."""

    __slots__ = ("data", "is_final", "metadata")

    def __init__(self, data, is_final=False, metadata=None):
        self.data = data
        self.is_final = is_final
        self.metadata = metadata

    def __repr__(self):
        return f"StreamChunk({self.data!r}, is_final={self.is_final!r})"
