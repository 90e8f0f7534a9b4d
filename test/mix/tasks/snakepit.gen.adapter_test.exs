defmodule Mix.Tasks.Snakepit.Gen.AdapterTest do
  use ExUnit.Case, async: true

  import ExUnit.CaptureIO

  @moduletag :tmp_dir

  test "generates an adapter whose tests pass and which a pool serves", %{tmp_dir: dir} do
    output =
      capture_io(fn -> Mix.Task.rerun("snakepit.gen.adapter", ["text_tools", "--path", dir]) end)

    package = Path.join(dir, "text_tools")

    for file <-
          ~w(__init__.py adapter.py requirements.txt tests/__init__.py tests/test_adapter.py) do
      assert File.regular?(Path.join(package, file))
      assert output =~ "* creating #{Path.join(package, file)}"
    end

    assert File.read!(Path.join(package, "adapter.py")) =~
             "class TextToolsAdapter(BaseAdapter):"

    # The config lines printed: outside priv/, the directory's own path.
    adapter_args = ~s(["--adapter", "text_tools.adapter.TextToolsAdapter"])
    assert output =~ "adapter_args: #{adapter_args}"
    assert output =~ ~s(env: [{"PYTHONPATH", #{inspect(dir)}}])
    assert output =~ ~s(adapter_env: [{"PYTHONPATH", #{inspect(dir)}}])

    # Its unittest file passes, run as the printed command runs it.
    bridge = Snakepit.Adapters.Python.bridge_path()
    assert output =~ "PYTHONPATH=#{bridge}:#{dir} python3 -m unittest discover"

    {test_output, status} =
      System.cmd(
        "python3",
        ["-m", "unittest", "discover", "-s", Path.join(package, "tests"), "-t", dir],
        env: [{"PYTHONPATH", "#{bridge}:#{dir}"}],
        stderr_to_stdout: true
      )

    assert status == 0, test_output
    assert test_output =~ "Ran 4 tests"

    # A pool started with the printed options serves its tools, the stream too.
    pool = :"gen_adapter_#{System.unique_integer([:positive])}"

    start_supervised!(
      {Snakepit.Pool,
       name: pool,
       size: 1,
       adapter_args: ["--adapter", "text_tools.adapter.TextToolsAdapter"],
       env: [{"PYTHONPATH", dir}]}
    )

    :ok = Snakepit.Pool.await_ready(pool, 30_000)
    assert {:ok, "Hello, Ada!"} = Snakepit.execute("greet", %{name: "Ada"}, pool: pool)
    assert [0, 1, 2] = Snakepit.stream("count", %{n: 3}, pool: pool) |> Enum.to_list()
  end

  test "inside priv/, the pool finds the adapter through Application.app_dir" do
    # Only the printed lines are checked: the files go to a directory removed at once.
    name = "gen_adapter_probe_#{System.unique_integer([:positive])}"
    root = Path.join("priv", "gen_adapter_test_#{System.unique_integer([:positive])}")
    on_exit(fn -> File.rm_rf!(root) end)

    output = capture_io(fn -> Mix.Task.rerun("snakepit.gen.adapter", [name, "--path", root]) end)

    assert output =~
             ~s<env: [{"PYTHONPATH", Application.app_dir(:snakepit_rs, #{inspect(root)})}]>
  end

  test "refuses to overwrite an existing adapter", %{tmp_dir: dir} do
    capture_io(fn -> Mix.Task.rerun("snakepit.gen.adapter", ["mine", "--path", dir]) end)
    adapter = Path.join([dir, "mine", "adapter.py"])
    File.write!(adapter, "# edited\n")

    assert_raise Mix.Error, ~r/mine exists; not overwriting it/, fn ->
      Mix.Task.rerun("snakepit.gen.adapter", ["mine", "--path", dir])
    end

    assert File.read!(adapter) == "# edited\n"
  end

  test "validates NAME", %{tmp_dir: dir} do
    for {name, message} <- [
          {"TextTools", ~r/must be a Python package name.*got: "TextTools"/},
          {"1st", ~r/must be a Python package name/},
          {"my-adapter", ~r/must be a Python package name/},
          {"class", ~r/cannot be a Python keyword, got: "class"/},
          {"snakepit_bridge", ~r/would shadow the bridge/}
        ] do
      assert_raise Mix.Error, message, fn ->
        Mix.Task.rerun("snakepit.gen.adapter", [name, "--path", dir])
      end
    end

    assert_raise Mix.Error, ~r/usage: mix snakepit.gen.adapter NAME/, fn ->
      Mix.Task.rerun("snakepit.gen.adapter", [])
    end

    assert File.ls!(dir) == []
  end
end
