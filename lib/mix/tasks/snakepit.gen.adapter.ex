defmodule Mix.Tasks.Snakepit.Gen.Adapter do
  @shortdoc "Generates a Python adapter: a class with tools, its tests, its config lines"

  @moduledoc """
  Generates a Python adapter package for snakepit_rs workers and prints how to test and use it.

      mix snakepit.gen.adapter text_tools
      mix snakepit.gen.adapter text_tools --path lib/python

  `NAME` is the Python package's name: lowercase letters, digits and `_`, starting with a
  letter (a Python identifier that is not a keyword). In `--path` (default: `priv/python`) it
  writes:

    * `NAME/__init__.py`
    * `NAME/adapter.py` - a `BaseAdapter` subclass (`TextToolsAdapter` for `text_tools`) with
      three `@tool` methods to start from: a plain one, one using `initialize/0`'s state, and a
      generator (a stream);
    * `NAME/requirements.txt` - empty; what it lists, `mix snakepit.setup` installs;
    * `NAME/tests/test_adapter.py` - unittest cases calling the tools directly.

  An existing `NAME` directory is never overwritten: the task stops, leaving it as it is.
  """

  use Mix.Task

  @default_path "priv/python"

  # Python's keywords, which cannot name a package.
  @keywords ~w(and as assert async await break class continue def del elif else except finally
               for from global if import in is lambda nonlocal not or pass raise return try
               while with yield)

  @impl Mix.Task
  def run(args) do
    {opts, argv, invalid} = OptionParser.parse(args, strict: [path: :string])

    name =
      case {argv, invalid} do
        {[name], []} -> validate_name!(name)
        _ -> Mix.raise("usage: mix snakepit.gen.adapter NAME [--path DIR]")
      end

    root = opts[:path] || @default_path
    dir = Path.join(root, name)

    if File.exists?(dir),
      do: Mix.raise("mix snakepit.gen.adapter: #{dir} exists; not overwriting it")

    class = class_name(name)

    files = [
      {"__init__.py", init_py(name, class)},
      {"adapter.py", adapter_py(name, class)},
      {"requirements.txt", requirements_txt(name)},
      {"tests/__init__.py", ""},
      {"tests/test_adapter.py", test_py(name, class)}
    ]

    for {file, content} <- files do
      path = Path.join(dir, file)
      File.mkdir_p!(Path.dirname(path))
      File.write!(path, content)
      Mix.shell().info("* creating #{path}")
    end

    Mix.shell().info(instructions(root, dir, name, class))
  end

  defp validate_name!(name) do
    cond do
      not Regex.match?(~r/^[a-z][a-z0-9_]*$/, name) ->
        Mix.raise(
          "mix snakepit.gen.adapter: NAME must be a Python package name: lowercase letters, " <>
            "digits and _, starting with a letter, got: #{inspect(name)}"
        )

      name in @keywords ->
        Mix.raise(
          "mix snakepit.gen.adapter: NAME cannot be a Python keyword, got: #{inspect(name)}"
        )

      String.starts_with?(name, "snakepit_bridge") ->
        Mix.raise("mix snakepit.gen.adapter: NAME would shadow the bridge, got: #{inspect(name)}")

      true ->
        name
    end
  end

  defp class_name(name) do
    camel = Macro.camelize(name)
    if String.ends_with?(camel, "Adapter"), do: camel, else: camel <> "Adapter"
  end

  defp instructions(root, dir, name, class) do
    bridge = Snakepit.Adapters.Python.bridge_path()
    adapter_args = inspect(["--adapter", "#{name}.adapter.#{class}"])
    python_path = python_path(root)

    """

    Run its tests:

        PYTHONPATH=#{bridge}:#{root} python3 -m unittest discover -s #{dir}/tests -t #{root}

    Start a pool with it:

        Snakepit.Pool.start_link(
          adapter_args: #{adapter_args},
          env: [{"PYTHONPATH", #{python_path}}]
        )

    or configure the application's pool (in config/runtime.exs):

        config :snakepit,
          pooling_enabled: true,
          pool_config: %{
            adapter_args: #{adapter_args},
            adapter_env: [{"PYTHONPATH", #{python_path}}]
          }

    Then `Snakepit.execute("greet", %{name: "Ada"})`. Its Python dependencies go in
    #{dir}/requirements.txt; `mix snakepit.setup --requirements #{dir}/requirements.txt`
    installs them in a virtualenv.\
    """
  end

  # The directory's path as the pool should compute it: inside the project's priv, where a
  # release has it too; else as it is here.
  defp python_path(root) do
    app = Mix.Project.config()[:app]
    priv = Path.expand("priv")
    full = Path.expand(root)

    if app && (full == priv or String.starts_with?(full, priv <> "/")),
      do:
        ~s[Application.app_dir(#{inspect(app)}, #{inspect(Path.relative_to(full, Path.expand(".")))})],
      else: inspect(full)
  end

  defp init_py(name, class) do
    """
    \"\"\"#{name}: a snakepit_rs adapter (see adapter.py).\"\"\"

    from .adapter import #{class}

    __all__ = ["#{class}"]
    """
  end

  defp adapter_py(name, class) do
    """
    \"\"\"#{name}: the commands snakepit_rs workers answer with this adapter.

    Each @tool method is a command: ``Snakepit.execute("greet", %{name: "Ada"})``
    calls ``greet(name="Ada")`` on a worker and returns what it returns (anything
    JSON can carry). A generator tool streams what it yields
    (``Snakepit.stream("count", %{n: 3})``). One instance serves every request of
    a worker, so what ``initialize`` loads is loaded once per worker.
    \"\"\"

    from snakepit_bridge import BaseAdapter, tool


    class #{class}(BaseAdapter):
        def initialize(self):
            # Runs once per worker, before it takes requests: load models, open
            # connections here.
            self.greeting = "Hello"

        @tool(description="Greets someone by name")
        def greet(self, name):
            return f"{self.greeting}, {name}!"

        @tool(description="Adds two numbers")
        def add(self, a, b):
            return a + b

        @tool(description="Counts from 0 up to n - 1, one item at a time")
        def count(self, n):
            yield from range(n)
    """
  end

  defp requirements_txt(name) do
    """
    # Python packages the #{name} adapter needs, one per line (pip's format);
    # `mix snakepit.setup --requirements <this file>` installs them.
    """
  end

  defp test_py(name, class) do
    """
    \"\"\"Tests of #{class}: its tools are plain methods, called directly.\"\"\"

    import unittest

    from #{name}.adapter import #{class}


    class #{class}Test(unittest.TestCase):
        def setUp(self):
            self.adapter = #{class}()
            self.adapter.initialize()

        def test_greet(self):
            self.assertEqual(self.adapter.greet(name="Ada"), "Hello, Ada!")

        def test_add(self):
            self.assertEqual(self.adapter.add(a=40, b=2), 42)

        def test_count_streams_its_items(self):
            self.assertEqual(list(self.adapter.count(n=3)), [0, 1, 2])

        def test_tools_are_registered(self):
            names = {entry.name for entry in self.adapter.get_tools()}
            self.assertTrue({"greet", "add", "count"} <= names)


    if __name__ == "__main__":
        unittest.main()
    """
  end
end
