import threading
import unittest

import snakepit_bridge
from snakepit_bridge import SessionContext
from snakepit_bridge.session_context import SessionContext as ModuleSessionContext


class SessionContextTest(unittest.TestCase):
    def test_importable_as_upstreams_adapters_import_it(self):
        self.assertIs(snakepit_bridge.SessionContext, ModuleSessionContext)

    def test_upstreams_constructor(self):
        metadata = {"correlation_id": "c1"}
        context = SessionContext("a stub", "s1", request_metadata=metadata)
        self.assertEqual((context.stub, context.session_id), ("a stub", "s1"))
        self.assertEqual(context.request_metadata, metadata)
        self.assertIsNot(context.request_metadata, metadata)  # a copy, as upstream's
        self.assertEqual(SessionContext(None, None).request_metadata, {})
        self.assertEqual(repr(SessionContext(None, "s1")), "SessionContext(session_id='s1')")

    def test_cancelled_follows_cancel_event(self):
        context = SessionContext(None, "s", request_id=7)
        self.assertEqual(context.request_id, 7)
        self.assertFalse(context.cancelled)
        self.assertIsInstance(context.cancel_event, threading.Event)
        self.assertIs(context.cancel_event, context.cancel_event)
        self.assertFalse(context.cancelled)
        # Set from another thread, as the worker's control reader does.
        setter = threading.Thread(target=context.cancel_event.set)
        setter.start()
        setter.join()
        self.assertTrue(context.cancelled)
        self.assertFalse(SessionContext(None, "s").cancelled)  # one event per context

    def test_elixir_side_features_are_a_clear_error_or_empty(self):
        context = SessionContext(None, "s1")
        self.assertEqual(context.elixir_tools, {})
        with self.assertRaisesRegex(NotImplementedError, "call_elixir_tool\\('validate'\\).*gRPC"):
            context.call_elixir_tool("validate", data=1)
        # v0.4.3's session variables lived in Elixir's SessionStore.
        self.assertTrue(hasattr(context, "register_variable"))  # hasattr does not raise
        with self.assertRaisesRegex(NotImplementedError, "SessionContext.get_variable"):
            context.get_variable("temperature")
        with self.assertRaises(AttributeError):
            context.no_such_thing  # noqa: B018

    def test_cleanup_and_context_manager_do_nothing_harmful(self):
        with SessionContext(None, "s1") as context:
            self.assertEqual(context.session_id, "s1")
        context.cleanup()


if __name__ == "__main__":
    unittest.main()
