import os
import unittest
from unittest import mock

from snakepit_bridge import framing
from snakepit_bridge.framing import FrameTooLarge, TruncatedFrame, read_frame, write_frame


class ByteReader:
    """A reader over fixed bytes handing out at most `step` bytes per read,
    recording how many bytes each read asked for."""

    def __init__(self, data, step=None):
        self.data = data
        self.step = step
        self.asked = []

    def read(self, n):
        self.asked.append(n)
        take = n if self.step is None else min(n, self.step)
        chunk, self.data = self.data[:take], self.data[take:]
        return chunk


def frame(payload):
    return len(payload).to_bytes(4, "big") + payload


class FramingTest(unittest.TestCase):
    def test_round_trip_through_a_pipe(self):
        read_fd, write_fd = os.pipe()
        with os.fdopen(read_fd, "rb") as reader:
            for payload in (b'{"id":1}', b"", "h\u00e9llo \u2603".encode()):
                write_frame(write_fd, payload)
            os.close(write_fd)
            self.assertEqual(read_frame(reader), b'{"id":1}')
            self.assertEqual(read_frame(reader), b"")
            self.assertEqual(read_frame(reader), "h\u00e9llo \u2603".encode())
            self.assertIsNone(read_frame(reader))

    def test_reads_one_byte_at_a_time(self):
        reader = ByteReader(frame(b"abc") + frame(b"defgh"), step=1)
        self.assertEqual(read_frame(reader), b"abc")
        self.assertEqual(read_frame(reader), b"defgh")
        self.assertIsNone(read_frame(reader))

    def test_oversized_frame_is_refused_before_reading_its_payload(self):
        reader = ByteReader(b"\xff\xff\xff\xff" + b"x" * 16)
        with self.assertRaises(FrameTooLarge) as raised:
            read_frame(reader)
        self.assertEqual(reader.asked, [4])
        self.assertEqual(raised.exception.size, 0xFFFFFFFF)
        self.assertEqual(raised.exception.max_size, framing.DEFAULT_MAX_FRAME_SIZE)

    def test_max_size_is_configurable_and_inclusive(self):
        self.assertEqual(read_frame(ByteReader(frame(b"12345")), max_size=5), b"12345")
        with self.assertRaises(FrameTooLarge):
            read_frame(ByteReader(frame(b"123456")), max_size=5)

    def test_end_of_file_inside_the_header(self):
        with self.assertRaises(TruncatedFrame):
            read_frame(ByteReader(b"\x00\x00", step=1))

    def test_end_of_file_inside_the_payload(self):
        with self.assertRaises(TruncatedFrame):
            read_frame(ByteReader(frame(b"abcdef")[:-2], step=3))

    def test_write_loops_on_partial_writes(self):
        written = []

        def write_three_bytes(_fd, data):
            written.append(bytes(data[:3]))
            return len(written[-1])

        with mock.patch.object(framing.os, "write", write_three_bytes):
            write_frame(99, b"hello world")
        self.assertEqual(b"".join(written), frame(b"hello world"))
        self.assertGreater(len(written), 1)

    def test_write_uses_one_call_when_possible(self):
        calls = []

        def write_all(_fd, data):
            calls.append(bytes(data))
            return len(data)

        with mock.patch.object(framing.os, "write", write_all):
            write_frame(99, b"payload")
        self.assertEqual(calls, [frame(b"payload")])


if __name__ == "__main__":
    unittest.main()
