defmodule Snakepit.ExecuteTest do
  use ExUnit.Case, async: true

  import Bitwise

  alias Snakepit.{Error, TestPool}

  setup do
    %{pool: TestPool.start!(size: 2)}
  end

  test "ping answers pong with the worker's OS pid", %{pool: pool} do
    assert {:ok, %{"status" => "pong", "pid" => pid}} = Snakepit.execute("ping", %{}, pool: pool)
    assert pid in Enum.map(Snakepit.list_workers(pool), & &1.os_pid)
  end

  test "echo returns its args with string keys", %{pool: pool} do
    args = %{name: "x", list: [1, 2.5, "three", nil, true], nested: %{"k" => [%{}]}}

    assert {:ok,
            %{"name" => "x", "list" => [1, 2.5, "three", nil, true], "nested" => %{"k" => [%{}]}}} =
             Snakepit.execute("echo", args, pool: pool)
  end

  test "adapter tools receive args as keyword arguments", %{pool: pool} do
    assert {:ok, %{"a" => 1, "b" => "two"}} =
             Snakepit.execute("echo_types", %{a: 1, b: "two"}, pool: pool)
  end

  test "a Python exception becomes :worker_error with type, message and traceback", %{pool: pool} do
    assert {:error, %Error{reason: :worker_error, category: :python_error} = error} =
             Snakepit.execute("raise_error", %{message: "boom"}, pool: pool)

    assert error.details.type == "ValueError"
    assert error.details.message == "boom"
    assert error.details.traceback =~ "raise_error"
    assert error.message =~ "ValueError: boom"
    # The worker that raised keeps serving.
    assert {:ok, _} = Snakepit.execute("ping", %{}, pool: pool)
  end

  test "an unknown command is an error reply, not a success", %{pool: pool} do
    assert {:error, %Error{reason: :unknown_command, message: message}} =
             Snakepit.execute("no_such_command", %{}, pool: pool)

    assert message =~ "no_such_command"
  end

  test "wrong arguments to a tool are a TypeError", %{pool: pool} do
    assert {:error, %Error{reason: :worker_error, details: %{type: "TypeError"}}} =
             Snakepit.execute("raise_error", %{unexpected: 1}, pool: pool)
  end

  test "a result JSON cannot carry is an error", %{pool: pool} do
    assert {:error, %Error{reason: :worker_error, details: %{type: "SerializationError"}}} =
             Snakepit.execute("not_serializable", %{}, pool: pool)
  end

  test "large args and results cross intact", %{pool: pool} do
    text = String.duplicate("é", 200_000)
    assert {:ok, %{"text" => ^text}} = Snakepit.execute("echo", %{text: text}, pool: pool)
    assert {:ok, big} = Snakepit.execute("big", %{size: 1_000_000}, pool: pool)
    assert byte_size(big) == 1_000_000
  end

  test "large maps in results (built on the caller's scheduler)", %{pool: pool} do
    # Regression: building a map of more than 32 keys from a reader thread crashed the VM.
    args =
      Map.new(
        1..2_000,
        &{"key#{&1}", %{"n" => &1, "inner" => Map.new(1..40, fn i -> {"#{i}", i} end)}}
      )

    assert {:ok, ^args} = Snakepit.execute("echo", args, pool: pool)
  end

  test "workers start with default signal handling: subprocess exit statuses are real", %{
    pool: pool
  } do
    # The BEAM ignores SIGCHLD; inherited, that made every child's exit status read as 0.
    assert {:ok, %{"status" => 3, "sig_ign" => ignored}} =
             Snakepit.execute("run_command", %{command: "exit 3"}, pool: pool)

    sigchld = 1 <<< (17 - 1)
    assert (String.to_integer(ignored, 16) &&& sigchld) == 0
  end

  test "what workers print is logged with the worker's id", %{pool: pool} do
    Snakepit.LogForwarder.forward_to_self()
    assert {:ok, "ok"} = Snakepit.execute("print_noise", %{lines: 2}, pool: pool)

    assert_receive {:log, :info, "[" <> _ = line, %{snakepit_worker: worker_id}}, 5_000
    assert line =~ worker_id
    assert_receive {:log, :warning, stderr_line, %{snakepit_worker: ^worker_id}}, 5_000
    assert stderr_line =~ "noise stderr"
  end

  describe "bad input never reaches a worker and never crashes the caller" do
    test "args must be a map", %{pool: pool} do
      assert {:error, %Error{reason: :invalid_args, category: :validation}} =
               Snakepit.execute("echo", [1, 2], pool: pool)
    end

    test "command must be a non-empty printable string", %{pool: pool} do
      assert {:error, %Error{reason: :invalid_command}} = Snakepit.execute(:ping, %{}, pool: pool)
      assert {:error, %Error{reason: :invalid_command}} = Snakepit.execute("", %{}, pool: pool)

      assert {:error, %Error{reason: :invalid_command}} =
               Snakepit.execute("a\nb", %{}, pool: pool)

      assert {:error, %Error{reason: :invalid_command}} =
               Snakepit.execute(<<255>>, %{}, pool: pool)

      assert {:error, %Error{reason: :invalid_command}} =
               Snakepit.execute(String.duplicate("a", 2000), %{}, pool: pool)
    end

    test "terms JSON cannot carry are refused, naming where they were", %{pool: pool} do
      for {args, path} <- [
            {%{pid: self()}, "args.pid"},
            {%{deep: %{list: [1, make_ref()]}}, "args.deep.list[1]"},
            {%{"f" => fn -> :ok end}, ~s(args["f"])},
            {%{bin: <<255, 0>>}, "args.bin"},
            {%{improper: [1 | 2]}, "args.improper"},
            {%{1 => 1, "1" => 2}, "args"},
            {%{{:tuple, :key} => 1}, "args"}
          ] do
        assert {:error, %Error{reason: :invalid_args, message: message}} =
                 Snakepit.execute("echo", args, pool: pool)

        assert message =~ path
      end

      assert Snakepit.get_stats(pool).requests == 0
    end

    test "call options are checked: an unknown or invalid one is an error naming it", %{
      pool: pool
    } do
      for {opts, name} <- [
            {[timeout: -1], ":timeout"},
            {[timeout: nil], ":timeout"},
            {[pool: "name"], ":pool"},
            {[tiemout: 5_000], ":tiemout"}
          ] do
        assert {:error, %Error{reason: :invalid_option, category: :validation} = error} =
                 Snakepit.execute("ping", %{}, [{:pool, pool} | opts])

        assert error.message =~ name
        assert error.message =~ "got:"
      end

      assert {:error, %Error{reason: :invalid_option}} =
               Snakepit.execute("ping", %{}, %{pool: pool})

      assert {:error, %Error{reason: :invalid_option}} =
               Snakepit.execute("ping", %{}, [{:pool, pool}, :timeout])

      assert Snakepit.get_stats(pool).requests == 0
    end

    test "valid call options reach the worker", %{pool: pool} do
      assert {:ok, %{"session_id" => "s-1"}} =
               Snakepit.execute("whoami", %{}, pool: pool, session_id: "s-1", timeout: :infinity)
    end

    test "an unknown pool is :pool_not_initialized" do
      assert {:error, %Error{reason: :pool_not_initialized}} =
               Snakepit.execute("ping", %{}, pool: :no_such_pool)
    end
  end

  test "stats and worker listing", %{pool: pool} do
    for _ <- 1..10, do: {:ok, _} = Snakepit.execute("ping", %{}, pool: pool)
    {:error, _} = Snakepit.execute("raise_error", %{message: "x"}, pool: pool)

    stats = Snakepit.get_stats(pool)
    assert %{workers: 2, available: 2, busy: 0, queued: 0, requests: 11, errors: 1} = stats
    assert stats.queue_timeouts == 0 and stats.pool_saturated == 0
    assert is_float(stats.avg_response_time_ms) and stats.avg_response_time_ms > 0

    workers = Snakepit.list_workers(pool)
    assert length(workers) == 2
    assert Enum.sum(Enum.map(workers, & &1.requests)) == 11

    for worker <- workers do
      assert %{id: id, os_pid: os_pid, status: :available} = worker
      assert is_binary(id) and is_integer(os_pid)
    end
  end
end
