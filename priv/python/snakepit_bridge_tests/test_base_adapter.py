import unittest

import snakepit_bridge
from snakepit_bridge import BaseAdapter, tool
from snakepit_bridge.base_adapter import collect_tools


class Sample(BaseAdapter):
    @tool
    def bare(self):
        """Bare decorator.

        More text that is not part of the description.
        """

    @tool()
    def empty_call(self):
        pass

    @tool(description="Adds", supports_streaming=False)
    def add(self, a, b):
        return a + b

    @tool("Positional description")
    def positional(self):
        pass

    @tool(name="renamed", description="Has another name")
    def internal_name(self):
        pass

    @tool(description="Declared streaming", supports_streaming=True)
    def declared(self):
        return [1, 2]

    @tool
    def generator(self):
        yield 1

    @tool(description="Overrides the built-in")
    def ping(self):
        return "custom pong"

    def helper(self):
        """Not a tool."""


class PlainOverride(BaseAdapter):
    def echo(self, **args):  # no @tool: hides the built-in echo
        return args


class Base(BaseAdapter):
    @tool(description="base version")
    def thing(self):
        return "base"


class Derived(Base):
    @tool(name="thing", description="derived version")
    def other_thing(self):
        return "derived"


class ToolDecoratorTest(unittest.TestCase):
    def test_package_exports(self):
        self.assertIs(snakepit_bridge.BaseAdapter, BaseAdapter)
        self.assertIs(snakepit_bridge.tool, tool)
        self.assertEqual(snakepit_bridge.__version__, "0.1.0")

    def test_decorated_methods_still_work(self):
        self.assertEqual(Sample().add(a=1, b=2), 3)

    def test_tool_metadata_describes_every_form(self):
        tools = {name: spec for name, (_, spec) in collect_tools(Sample).items()}
        self.assertEqual(
            (tools["bare"].description, tools["bare"].supports_streaming),
            ("Bare decorator.", False),
        )
        self.assertEqual(tools["empty_call"].description, "")
        self.assertEqual(
            (tools["add"].description, tools["add"].supports_streaming), ("Adds", False)
        )
        self.assertEqual(tools["positional"].description, "Positional description")
        self.assertEqual(tools["renamed"].description, "Has another name")
        self.assertNotIn("internal_name", tools)
        self.assertTrue(tools["declared"].supports_streaming)
        self.assertTrue(tools["generator"].supports_streaming)
        self.assertEqual(tools["ping"].description, "Overrides the built-in")
        self.assertNotIn("helper", tools)

    def test_builtins_are_tools_of_every_adapter(self):
        self.assertEqual(sorted(collect_tools(BaseAdapter)), ["describe", "echo", "ping"])

    def test_a_plain_override_hides_a_tool(self):
        self.assertNotIn("echo", collect_tools(PlainOverride))

    def test_the_most_derived_tool_wins_a_name(self):
        attr, spec = collect_tools(Derived)["thing"]
        self.assertEqual((attr, spec.description), ("other_thing", "derived version"))

    def test_extra_decorator_options_are_kept(self):
        @tool(description="d", required_variables=["x"], cost="high")
        def f():
            pass

        spec = collect_tools(type("A", (BaseAdapter,), {"f": f}))["f"][1]
        self.assertEqual((spec.required_variables, spec.metadata), (["x"], {"cost": "high"}))


class BuiltinsTest(unittest.TestCase):
    def test_ping(self):
        reply = BaseAdapter().ping()
        self.assertEqual(reply["status"], "pong")
        self.assertIsInstance(reply["pid"], int)
        self.assertIsInstance(reply["timestamp"], float)
        self.assertIn("worker_id", reply)
        self.assertNotIn("args", reply)
        self.assertEqual(BaseAdapter().ping(x=1)["args"], {"x": 1})

    def test_echo(self):
        self.assertEqual(BaseAdapter().echo(a=[1, {"b": None}]), {"a": [1, {"b": None}]})

    def test_describe(self):
        described = BaseAdapter().describe()
        self.assertEqual([entry["name"] for entry in described], ["describe", "echo", "ping"])
        self.assertEqual(set(described[0]), {"name", "description", "supports_streaming"})

    def test_session_defaults(self):
        self.assertIsNone(BaseAdapter().session_id)


if __name__ == "__main__":
    unittest.main()
