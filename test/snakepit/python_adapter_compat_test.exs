defmodule Snakepit.PythonAdapterCompatTest do
  @moduledoc """
  An adapter written as upstream Snakepit's are (test/support/python/upstream_compat_adapter.py)
  runs unchanged on real Python workers, and its results arrive as v0.13 delivers them.
  """
  use ExUnit.Case, async: true

  alias Snakepit.{Error, Serialization, TestPool}

  doctest Snakepit.Serialization

  @adapter ["--adapter", "upstream_compat_adapter.CompatAdapter"]

  defp start_pool!(opts \\ []) do
    # No health checks: the adapter's own `ping` needs an argument the pool's pings do not give.
    TestPool.start!([size: 1, adapter_args: @adapter, health_check_interval: nil] ++ opts)
  end

  describe "upstream's adapter API" do
    setup do
      %{pool: start_pool!()}
    end

    test "its imports resolve, async initialize is awaited, and each request gets a SessionContext",
         %{pool: pool} do
      assert {:ok, info} = Snakepit.execute("context_info", %{}, pool: pool, session_id: "s-1")

      assert info == %{
               "state" => "initialized",
               "is_session_context" => true,
               "same_as_adapter" => true,
               "session_id" => "s-1",
               "adapter_session_id" => "s-1",
               "request_metadata" => %{},
               "cancelled" => false,
               "elixir_tools" => %{}
             }

      assert {:ok, %{"session_id" => nil, "adapter_session_id" => nil}} =
               Snakepit.execute("context_info", %{}, pool: pool)
    end

    test "execute_tool routes every request; @tool methods are reached through call_tool",
         %{pool: pool} do
      assert {:ok, %{"enabled" => false, "marker_key" => "__ffi_unserializable__"}} =
               Snakepit.execute("telemetry_demo", %{}, pool: pool)

      assert {:ok, true} = Snakepit.execute("same_loop", %{}, pool: pool)

      assert {:error, %Error{reason: :unknown_command, message: message}} =
               Snakepit.execute("no_such_tool", %{}, pool: pool)

      assert message =~ "no_such_tool"
    end

    test "the adapter's own ping, with a required argument, answers instead of the built-in",
         %{pool: pool} do
      os_pid = TestPool.only_worker_pid(pool)

      assert {:ok, %{"message" => "hi", "pid" => ^os_pid}} =
               Snakepit.execute("ping", %{message: "hi"}, pool: pool)

      assert {:error, %Error{details: %{type: "TypeError"}}} =
               Snakepit.execute("ping", %{}, pool: pool)
    end
  end

  describe "results as v0.13 delivers them" do
    setup do
      %{pool: start_pool!()}
    end

    test "values JSON has no type for are converted, the rest become markers", %{pool: pool} do
      assert {:ok, result} = Snakepit.execute("graceful", %{}, pool: pool)

      assert %{
               "when" => "2024-01-02T03:04:05",
               "day" => "2024-01-02",
               "tags" => ["only"],
               "pair" => [1, 2],
               "version" => %{"major" => 1, "minor" => 13},
               "response" => %{"code" => 200, "at" => "2024-05-06"},
               "model" => %{"model" => "m1"},
               "vector" => [0.5, nil],
               "big" => 1_180_591_620_717_411_303_424
             } = result

      assert result["client"] == %{
               "__ffi_unserializable__" => true,
               "__type__" => "upstream_compat_adapter.Client"
             }

      assert Serialization.unserializable?(result["client"])

      assert {:ok, %{type: "builtins.bytes", repr: nil}} =
               Serialization.unserializable_info(result["raw"])

      refute Serialization.unserializable?(result["response"])
    end

    test "a whole result that is not JSON", %{pool: pool} do
      whole = fn kind -> Snakepit.execute("whole", %{kind: kind}, pool: pool) end

      assert {:ok, "NaN"} = whole.("nan")
      assert {:ok, "Infinity"} = whole.("inf")
      assert {:ok, "-Infinity"} = whole.("-inf")
      assert {:ok, "2024-01-02T03:04:05"} = whole.("datetime")
      assert {:ok, [7]} = whole.("set")
      assert {:ok, bytes} = whole.("bytes")

      assert Serialization.unserializable_info(bytes) ==
               {:ok, %{type: "builtins.bytes", repr: nil}}
    end

    test "a value that contains itself is still a SerializationError; the worker stays",
         %{pool: pool} do
      os_pid = TestPool.only_worker_pid(pool)

      assert {:error,
              %Error{reason: :worker_error, details: %{type: "SerializationError"} = details}} =
               Snakepit.execute("circular", %{}, pool: pool)

      assert details.message =~ "circular reference"
      assert {:ok, _} = Snakepit.execute("same_loop", %{}, pool: pool)
      assert TestPool.only_worker_pid(pool) == os_pid
    end
  end

  test "SNAKEPIT_UNSERIALIZABLE_DETAIL adds a redacted repr to markers" do
    pool = start_pool!(env: [{"SNAKEPIT_UNSERIALIZABLE_DETAIL", "repr_redacted_truncated"}])
    assert {:ok, %{"client" => client}} = Snakepit.execute("graceful", %{}, pool: pool)

    assert Serialization.unserializable_info(client) ==
             {:ok,
              %{type: "upstream_compat_adapter.Client", repr: "Client(api_key='<REDACTED>')"}}
  end

  @tag :tmp_dir
  test "async cleanup is awaited, on the loop initialize ran on, when the worker stops",
       %{tmp_dir: tmp_dir} do
    file = Path.join(tmp_dir, "cleanup")
    pool = start_pool!(env: [{"COMPAT_CLEANUP_FILE", file}])
    assert {:ok, true} = Snakepit.execute("same_loop", %{}, pool: pool)
    # Stopping a pool returns once its workers are gone.
    stop_supervised!(pool)
    assert File.read!(file) == "cleanup same_loop=True\n"
  end
end
