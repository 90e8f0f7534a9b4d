"""Graceful serialization: results converted as upstream v0.13 delivers them."""

import collections
import dataclasses
import datetime
import decimal
import enum
import json
import unittest
import uuid

from snakepit_bridge import serialization, telemetry
from snakepit_bridge.serialization import (
    REPR_KEY,
    TYPE_KEY,
    UNSERIALIZABLE_KEY,
    GracefulJSONEncoder,
    MarkerPolicy,
    SerializationError,
    is_plain,
    redact_secrets,
    to_json_value,
)

Pair = collections.namedtuple("Pair", "left right")


class Opaque:
    def __repr__(self):
        return "Opaque(api_key='sk-abcdefghijklmnop', password=\"hunter2\")"


class Dumps:
    def model_dump(self):
        return {"via": "model_dump", "when": datetime.date(2024, 2, 3)}

    def to_dict(self):
        return {"via": "to_dict"}


class BrokenDump:
    def model_dump(self):
        raise RuntimeError("no")

    def to_dict(self):
        return {"via": "to_dict"}


class ArrayLike:
    """numpy's shape of things: size, and tolist() giving floats."""

    def __init__(self, values, size=None):
        self.values = values
        self.size = len(values) if size is None else size
        self.listed = False

    def tolist(self):
        self.listed = True
        return list(self.values)


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    at: datetime.datetime


class ConversionTest(unittest.TestCase):
    def test_dates_and_times_are_iso_strings(self):
        moment = datetime.datetime(2024, 1, 2, 3, 4, 5, 678, tzinfo=datetime.timezone.utc)
        value = {"at": moment, "day": datetime.date(2024, 1, 2), "t": datetime.time(1, 2)}
        self.assertEqual(
            to_json_value(value),
            {"at": "2024-01-02T03:04:05.000678+00:00", "day": "2024-01-02", "t": "01:02:00"},
        )
        self.assertEqual(to_json_value(datetime.date(2024, 1, 2)), "2024-01-02")

    def test_sets_and_tuples_are_lists(self):
        self.assertEqual(to_json_value({"s": {3}, "f": frozenset([4]), "t": (1, (2,))}),
                         {"s": [3], "f": [4], "t": [1, [2]]})

    def test_conversion_methods_in_upstreams_order(self):
        value = to_json_value([Dumps(), BrokenDump(), Pair(1, {2})])
        self.assertEqual(
            value,
            [
                {"via": "model_dump", "when": "2024-02-03"},  # and its result is converted too
                {"via": "to_dict"},  # a method that raises is skipped
                {"left": 1, "right": [2]},  # a namedtuple through _asdict
            ],
        )

    def test_tolist_with_its_size_guard(self):
        policy = MarkerPolicy(tolist_max=3)
        small = ArrayLike([1.5, float("nan")])
        self.assertEqual(to_json_value({"a": small}, policy), {"a": [1.5, None]})
        big = ArrayLike([1, 2, 3, 4])
        marker = to_json_value(big, policy)
        self.assertFalse(big.listed)  # refused before building the list
        self.assertEqual(marker, {UNSERIALIZABLE_KEY: True, TYPE_KEY: f"{__name__}.ArrayLike"})
        # An object that does not tell its size is counted after listing.
        unsized = ArrayLike([[1, 2], [3, 4]], size=None)
        unsized.size = None
        self.assertTrue(to_json_value(unsized, policy)[UNSERIALIZABLE_KEY])

    def test_values_orjson_writes_natively(self):
        ident = uuid.UUID(int=1)
        moment = datetime.datetime(2020, 5, 6)
        self.assertEqual(
            to_json_value([ident, Colour.RED, Point(1, moment)]),
            [str(ident), "red", {"x": 1, "at": "2020-05-06T00:00:00"}],
        )

    def test_what_cannot_be_converted_is_a_marker(self):
        value = to_json_value(
            {"obj": Opaque(), "bytes": b"\x00\x01", "money": decimal.Decimal("1.5"), "n": 1}
        )
        self.assertEqual(value["obj"], {UNSERIALIZABLE_KEY: True, TYPE_KEY: f"{__name__}.Opaque"})
        self.assertEqual(value["bytes"], {UNSERIALIZABLE_KEY: True, TYPE_KEY: "builtins.bytes"})
        self.assertEqual(value["money"][TYPE_KEY], "decimal.Decimal")
        self.assertEqual(value["n"], 1)
        # Bytes as the whole result: the marker too (v0.13 sends str(b"...") there).
        self.assertEqual(to_json_value(b"x")[TYPE_KEY], "builtins.bytes")

    def test_non_finite_floats(self):
        self.assertEqual(
            [to_json_value(v) for v in (float("nan"), float("inf"), float("-inf"))],
            ["NaN", "Infinity", "-Infinity"],
        )
        self.assertEqual(
            to_json_value({"a": [float("nan"), float("-inf"), 1.5]}), {"a": [None, None, 1.5]}
        )

    def test_integers_stay_exact_and_keys_as_the_standard_encoder_writes_them(self):
        self.assertEqual(
            to_json_value({1: 2**70, False: None, None: 1.0, 2.5: {5}}),
            {"1": 2**70, "false": None, "null": 1.0, "2.5": [5]},
        )

    def test_what_stays_an_error(self):
        loop = [1]
        loop.append(loop)
        with self.assertRaisesRegex(SerializationError, "circular reference: a list"):
            to_json_value({"x": loop})

        class SelfDict:
            def to_dict(self):
                return {"me": self}

        with self.assertRaisesRegex(SerializationError, "circular reference: a SelfDict"):
            to_json_value(SelfDict())
        with self.assertRaisesRegex(SerializationError, "dict key of type tuple"):
            to_json_value({(1, 2): 3, "d": datetime.date.today()})
        deep = []
        for _ in range(100_000):
            deep = [deep, {1}]
        with self.assertRaisesRegex(SerializationError, "nested too deeply"):
            to_json_value(deep)

    def test_shared_values_are_not_cycles(self):
        shared = {"d": datetime.date(2024, 1, 1)}
        self.assertEqual(to_json_value([shared, shared]), [{"d": "2024-01-01"}] * 2)


class MarkerPolicyTest(unittest.TestCase):
    def test_detail_modes(self):
        def marker(**env):
            return to_json_value(Opaque(), MarkerPolicy.from_env(env))

        self.assertNotIn(REPR_KEY, marker())
        self.assertNotIn(REPR_KEY, marker(SNAKEPIT_UNSERIALIZABLE_DETAIL="bogus"))
        self.assertEqual(
            marker(SNAKEPIT_UNSERIALIZABLE_DETAIL="type")[REPR_KEY],
            f"<unserializable {__name__}.Opaque>",
        )
        self.assertEqual(
            marker(SNAKEPIT_UNSERIALIZABLE_DETAIL="repr_truncated")[REPR_KEY], repr(Opaque())
        )
        self.assertEqual(
            marker(SNAKEPIT_UNSERIALIZABLE_DETAIL="repr_truncated",
                   SNAKEPIT_UNSERIALIZABLE_REPR_MAXLEN="6")[REPR_KEY],
            "Opaque",
        )
        self.assertEqual(
            marker(SNAKEPIT_UNSERIALIZABLE_DETAIL=" Repr_Redacted_Truncated ")[REPR_KEY],
            "Opaque(api_key='<REDACTED>', password=\"<REDACTED>\")",
        )

    def test_bad_numbers_fall_back_to_defaults_and_limits_are_clamped(self):
        policy = MarkerPolicy.from_env(
            {"SNAKEPIT_UNSERIALIZABLE_REPR_MAXLEN": "x", "SNAKEPIT_TOLIST_MAX_ELEMENTS": "-"}
        )
        self.assertEqual((policy.max_repr, policy.tolist_max), (500, 1_000_000))
        self.assertEqual(MarkerPolicy(max_repr=99_999).max_repr, 2000)

    def test_repr_is_not_computed_unless_asked_for(self):
        class NoRepr:
            def __repr__(self):
                raise AssertionError("repr called")

        self.assertNotIn(REPR_KEY, to_json_value(NoRepr(), MarkerPolicy()))
        failed = to_json_value(NoRepr(), MarkerPolicy("repr_truncated"))[REPR_KEY]
        self.assertIn("repr failed", failed)

    def test_redaction(self):
        self.assertEqual(
            redact_secrets("Authorization: Bearer abc.def-123 key sk-0123456789abcdef token='t0k'"),
            "Authorization: Bearer <REDACTED> key sk-<REDACTED> token='<REDACTED>'",
        )

    def test_first_marker_of_a_type_is_a_telemetry_event(self):
        events = []

        class Backend:
            def emit(self, event, measurements, metadata, correlation_id):
                events.append((event, measurements, metadata))

        class NeverSeenBefore:
            pass

        telemetry.set_backend(Backend())
        self.addCleanup(telemetry.set_backend, None)
        to_json_value([NeverSeenBefore(), NeverSeenBefore()])
        name = f"{__name__}.NeverSeenBefore"
        self.assertEqual(
            [e for e in events if e[2] == {"type": name}],
            [("snakepit.serialization.unserializable_marker", {"first_seen": 1}, {"type": name})],
        )


    def test_upstreams_names_for_the_marker_telemetry_state(self):
        # Upstream's tests clear _emitted_marker_types and lower
        # _EMITTED_MARKER_TYPES_MAX; both act on the module's behaviour.
        events = []

        class Backend:
            def emit(self, event, measurements, metadata, correlation_id):
                events.append(metadata["type"])

        telemetry.set_backend(Backend())
        self.addCleanup(telemetry.set_backend, None)
        cap = serialization._EMITTED_MARKER_TYPES_MAX
        self.addCleanup(setattr, serialization, "_EMITTED_MARKER_TYPES_MAX", cap)
        serialization._emitted_marker_types.clear()
        serialization._EMITTED_MARKER_TYPES_MAX = 2
        kinds = [type(f"Kind{i}", (), {}) for i in range(3)]
        to_json_value([kind() for kind in kinds])
        self.assertEqual(len(events), 2)
        self.assertEqual(serialization._emitted_marker_types, set(events))
        serialization._emitted_marker_types.clear()
        to_json_value(kinds[2]())
        self.assertEqual(len(events), 3)
        self.assertEqual(serialization._MAXLEN, serialization.POLICY.max_repr)


class PlainTest(unittest.TestCase):
    def test_plain_values(self):
        for value in (None, 1, "s", 1.5, True, [1, "a", None], (1, 2), {"a": [{"b": (1,)}]}, {}):
            with self.subTest(value=value):
                self.assertTrue(is_plain(value))

    def test_values_that_need_converting(self):
        for value in ({1}, [Pair(1, 2)], {"a": [datetime.date.today()]}, collections.OrderedDict(),
                      b"x", [[[object()]]]):
            with self.subTest(value=value):
                self.assertFalse(is_plain(value))


class UpstreamNamesTest(unittest.TestCase):
    def test_graceful_json_encoder(self):
        text = json.dumps({"when": datetime.date(2024, 1, 1), "o": Opaque(), "s": {1}},
                          cls=GracefulJSONEncoder)
        self.assertEqual(
            json.loads(text),
            {"when": "2024-01-01", "o": {UNSERIALIZABLE_KEY: True, TYPE_KEY: f"{__name__}.Opaque"},
             "s": [1]},
        )

    def test_type_serializer_says_why_it_is_absent(self):
        with self.assertRaisesRegex(NotImplementedError, "protobuf"):
            serialization.TypeSerializer.encode_any(1, "integer")

    def test_private_aliases(self):
        self.assertIs(serialization._unserializable_marker, serialization.unserializable_marker)
        self.assertIs(serialization._redact_secrets, serialization.redact_secrets)


if __name__ == "__main__":
    unittest.main()
