"""Length-prefixed frames: a 4-byte big-endian length, then that many bytes.

This is the framing of Erlang's ``{packet, 4}`` ports. The module knows
nothing about JSON; it only moves byte strings in and out of file
descriptors.
"""

import os

HEADER_SIZE = 4
DEFAULT_MAX_FRAME_SIZE = 16 * 1024 * 1024


class FrameError(Exception):
    """The byte stream does not hold a well-formed frame."""


class FrameTooLarge(FrameError):
    """A frame announces more bytes than the configured maximum."""

    def __init__(self, size, max_size, what="frame"):
        super().__init__(
            f"{what} of {size} bytes exceeds the maximum frame size of {max_size} bytes"
        )
        self.size = size
        self.max_size = max_size


class TruncatedFrame(FrameError):
    """The stream ended in the middle of a frame."""


def read_frame(reader, max_size=DEFAULT_MAX_FRAME_SIZE):
    """Read one frame's payload from ``reader`` (anything with ``read(n)``).

    Returns ``None`` on a clean end of file (no byte of a new frame read).
    Raises ``FrameTooLarge`` as soon as the header is seen, before the
    payload is read or allocated, and ``TruncatedFrame`` on end of file
    inside a frame. ``reader.read`` may return fewer bytes than asked for.
    """
    header = reader.read(HEADER_SIZE)
    if len(header) != HEADER_SIZE:
        if not header:
            return None
        header += _read_exactly(reader, HEADER_SIZE - len(header), "header")
    size = int.from_bytes(header, "big")
    if size > max_size:
        raise FrameTooLarge(size, max_size)
    payload = reader.read(size)
    if len(payload) != size:
        payload += _read_exactly(reader, size - len(payload), "payload")
    return payload


def _read_exactly(reader, count, part):
    """Keep reading until ``count`` more bytes have arrived."""
    chunks = []
    while count > 0:
        chunk = reader.read(count)
        if not chunk:
            raise TruncatedFrame(f"end of file inside a frame {part}")
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def encode_frame(payload):
    """Header and payload as one byte string."""
    if len(payload) > 0xFFFFFFFF:
        raise FrameTooLarge(len(payload), 0xFFFFFFFF)
    return len(payload).to_bytes(HEADER_SIZE, "big") + payload


def write_frame(fd, payload):
    """Write one frame to file descriptor ``fd``, in a single write if the
    kernel takes it all, looping on partial writes otherwise."""
    data = encode_frame(payload)
    written = os.write(fd, data)
    if written != len(data):
        rest = memoryview(data)[written:]
        while rest:
            rest = rest[os.write(fd, rest) :]
