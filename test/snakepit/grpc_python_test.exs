defmodule Snakepit.GRPCPythonTest do
  # `adapter_module: Snakepit.Adapters.GRPCPython` (upstream's documented configuration) runs
  # the Python bridge; with no `:adapter_args`, upstream's showcase adapter.
  use ExUnit.Case, async: false

  alias Snakepit.Adapters.{GRPCPython, Python}
  alias Snakepit.TestPool

  test "a pool of GRPCPython runs the showcase adapter when given no adapter_args" do
    pool = TestPool.start!(size: 1, adapter_module: GRPCPython, adapter_args: [])
    # `add` is a showcase tool: the bare adapter has none.
    assert {:ok, 42} = Snakepit.execute("add", %{a: 40, b: 2}, pool: pool)
  end

  test "a pool of GRPCPython runs the adapter its adapter_args name" do
    pool = TestPool.start!(size: 1, adapter_module: GRPCPython)
    assert {:ok, %{"pid" => _}} = Snakepit.execute("whoami", %{}, pool: pool)
  end

  describe "upstream's functions" do
    setup do
      saved =
        Application.get_all_env(:snakepit) |> Keyword.take([:pool_config, :python_executable])

      on_exit(fn ->
        for key <- [:pool_config, :python_executable], do: Application.delete_env(:snakepit, key)
        for {key, value} <- saved, do: Application.put_env(:snakepit, key, value)
      end)
    end

    test "script_args/0 reads pool_config's adapter_args, else names the showcase" do
      Application.delete_env(:snakepit, :pool_config)

      assert GRPCPython.script_args() == [
               "--adapter",
               "snakepit_bridge.adapters.showcase.ShowcaseAdapter"
             ]

      Application.put_env(:snakepit, :pool_config, %{
        adapter_args: ["--adapter", "custom.Adapter"]
      })

      assert GRPCPython.script_args() == ["--adapter", "custom.Adapter"]
    end

    test "executable_path/0 is the interpreter the workers run; nil when there is none" do
      Application.delete_env(:snakepit, :python_executable)
      assert GRPCPython.executable_path() == Python.executable_path([])

      Application.put_env(:snakepit, :python_executable, "/nonexistent/python")
      assert GRPCPython.executable_path() == nil
    end

    test "script_path/0 names the bridge's entry; there is no gRPC" do
      assert File.regular?(GRPCPython.script_path())
      refute GRPCPython.uses_grpc?()
      refute GRPCPython.grpc_available?()
    end
  end
end
