"""logging_config and telemetry, as upstream's adapters call them."""

import logging
import os
import subprocess
import sys
import unittest

from snakepit_bridge import configure_logging, get_logger, logging_config, telemetry
from snakepit_bridge_tests.bridge_process import PYTHON_ROOT


class GetLoggerTest(unittest.TestCase):
    def test_names_under_upstreams_namespace(self):
        self.assertEqual(get_logger("snakepit_bridge.x").name, "snakepit.bridge.x")
        self.assertEqual(get_logger("my_adapter").name, "snakepit.my_adapter")
        self.assertEqual(get_logger("snakepit.pool").name, "snakepit.pool")
        self.assertIs(logging_config.configure_logging, configure_logging)


class ConfigureLoggingTest(unittest.TestCase):
    """In a child interpreter: configure_logging changes the root logger."""

    def run_python(self, code, **env):
        environment = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEPIT_")}
        environment.update(env, PYTHONPATH=PYTHON_ROOT)
        done = subprocess.run(
            [sys.executable, "-c", code], env=environment, capture_output=True, text=True,
            timeout=30,
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        return done.stderr

    CODE = (
        "from snakepit_bridge import configure_logging, get_logger, telemetry\n"
        "configure_logging()\n"
        "log = get_logger('adapter')\n"
        "log.info('info line')\n"
        "token = telemetry.set_correlation_id('c-42')\n"
        "log.error('error line')\n"
    )

    def test_level_from_the_environment_and_correlation_ids_in_lines(self):
        default = self.run_python(self.CODE)
        self.assertNotIn("info line", default)  # upstream's default level: error
        self.assertRegex(default, r"snakepit\.adapter - ERROR - \[corr=c-42\] error line")
        verbose = self.run_python(self.CODE, SNAKEPIT_LOG_LEVEL="debug")
        self.assertRegex(verbose, r"INFO - \[corr=-\] info line")
        self.assertEqual(self.run_python(self.CODE, SNAKEPIT_LOG_LEVEL="none"), "")


class CorrelationOnEveryRecordTest(ConfigureLoggingTest):
    """An adapter's own handler may format %(correlation_id)s, as in
    upstream's workers: the worker puts it on every log record."""

    CODE = (
        "import logging, sys\n"
        "from snakepit_bridge import telemetry\n"
        "from snakepit_bridge.loader import start_adapter\n"
        "{setup}\n"
        "handler = logging.StreamHandler(sys.stderr)\n"
        "handler.setFormatter(logging.Formatter('own %(correlation_id)s %(message)s'))\n"
        "log = logging.getLogger('adapter.own')\n"
        "log.addHandler(handler)\n"
        "log.propagate = False\n"
        "log.setLevel(logging.INFO)\n"
        "log.warning('before')\n"
        "token = telemetry.set_correlation_id('c-7')\n"
        "log.warning('inside')\n"
        "telemetry.setup_tracing()\n"
        "log.warning('again')\n"
    )

    def test_setup_tracing_and_the_worker_start_add_it(self):
        for setup in ("telemetry.setup_tracing()", "start_adapter()"):
            with self.subTest(setup=setup):
                lines = self.run_python(self.CODE.format(setup=setup)).splitlines()
                self.assertEqual(lines, ["own - before", "own c-7 inside", "own c-7 again"])

    # The parent's test, not run again here.
    test_level_from_the_environment_and_correlation_ids_in_lines = None


class TelemetryTest(unittest.TestCase):
    def setUp(self):
        self.addCleanup(telemetry.set_backend, None)

    def test_without_a_backend_everything_is_a_no_op(self):
        self.assertFalse(telemetry.is_enabled())
        telemetry.emit("tool.start", {"n": 1}, {"tool": "x"}, correlation_id="c")
        with telemetry.span("tool.execution", {"tool": "x"}):
            pass
        telemetry.setup_tracing()
        self.assertIsNone(telemetry.get_tracer())

    def test_a_backend_of_the_adapters_own_receives_events(self):
        events = []

        class Backend:
            def emit(self, event, measurements, metadata, correlation_id):
                events.append((event, sorted(measurements), metadata, correlation_id))

        telemetry.set_backend(Backend())
        self.assertTrue(telemetry.is_enabled())
        with self.assertRaises(ValueError):
            with telemetry.span("op", {"k": 1}, "c1"):
                raise ValueError("bad")
        self.assertEqual(
            events,
            [
                ("op.start", ["system_time"], {"k": 1}, "c1"),
                ("op.exception", ["duration"],
                 {"k": 1, "error_type": "ValueError", "error_message": "bad"}, "c1"),
            ],
        )

    def test_correlation_ids(self):
        self.assertEqual(telemetry.get_correlation_id("-"), "-")
        token = telemetry.set_correlation_id("abc")
        self.assertEqual(telemetry.outgoing_metadata([("k", "v")]),
                         [("k", "v"), (telemetry.CORRELATION_HEADER, "abc")])
        telemetry.reset_correlation_id(token)
        self.assertIsNone(telemetry.get_correlation_id())
        with telemetry.otel_span("x", context_metadata=[("X-Snakepit-Correlation-Id", "hdr")]):
            self.assertEqual(telemetry.get_correlation_id(), "hdr")
        record = logging.LogRecord("n", logging.INFO, "f", 1, "m", None, None)
        telemetry.correlation_filter().filter(record)
        self.assertEqual(record.correlation_id, "-")


if __name__ == "__main__":
    unittest.main()
