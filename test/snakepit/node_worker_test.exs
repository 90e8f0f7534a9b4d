defmodule Snakepit.NodeWorkerTest do
  # Workers in another language: the Node.js worker of examples/node_worker, run by
  # `Snakepit.Adapters.Executable`, served by the same pool as Python workers — calls, errors,
  # health checks, streaming with credits, cancellation that keeps the worker, session state.
  # Its tools print "tools: ..." lines; the pool logs them; the tests wait for those lines.
  use ExUnit.Case, async: true

  alias Snakepit.{Error, TestPool}

  @node System.find_executable("node")
  @worker Path.expand("../../examples/node_worker/worker.js", __DIR__)

  if @node == nil do
    IO.puts("Snakepit.NodeWorkerTest skipped: no `node` on PATH")
    @moduletag skip: "no node on PATH"
  end

  setup do
    Snakepit.LogForwarder.forward_to_self()
    :ok
  end

  defp start_pool(opts \\ []) do
    TestPool.start!(
      Keyword.merge(
        [
          size: 1,
          adapter_module: Snakepit.Adapters.Executable,
          adapter_args: ["node", @worker]
        ],
        opts
      )
    )
  end

  defp assert_logged(pool, text), do: Snakepit.LogForwarder.assert_worker_logged(pool, text)

  test "calls, exact big integers, errors, and the worker's own pid" do
    pool = start_pool()
    os_pid = TestPool.only_worker_pid(pool)

    assert {:ok, %{"pid" => ^os_pid}} = Snakepit.execute("whoami", %{}, pool: pool)
    assert {:ok, 42} = Snakepit.execute("add", %{a: 40, b: 2}, pool: pool)
    big = 2 ** 70
    assert {:ok, sum} = Snakepit.execute("add", %{a: big, b: 1}, pool: pool)
    assert sum == big + 1

    assert {:error, %Error{reason: :unknown_command}} = Snakepit.execute("nope", %{}, pool: pool)

    assert {:error, %Error{category: :python_error, details: %{type: "RangeError"}}} =
             Snakepit.execute("fail", %{message: "boom"}, pool: pool)

    assert {:ok, %{"pid" => ^os_pid}} = Snakepit.execute("whoami", %{}, pool: pool)
  end

  test "streams within its credit window, in order, and halts with its finally run" do
    pool = start_pool(stream_window: 8)

    assert Snakepit.stream("count", %{n: 1_000}, pool: pool) |> Enum.to_list() ==
             Enum.to_list(0..999)

    assert [0, 1, 2] = Snakepit.stream("count", %{n: 100_000}, pool: pool) |> Enum.take(3)
    assert_logged(pool, &(&1 =~ ~r/tools: count \d+ stopped after/))
    assert {:ok, 3} = Snakepit.execute("add", %{a: 1, b: 2}, pool: pool)
  end

  test "a timeout cancels the tool and the worker stays" do
    pool = start_pool(cancel_grace: 30_000)
    os_pid = TestPool.only_worker_pid(pool)

    assert {:error, %Error{reason: :timeout}} =
             Snakepit.execute("wait", %{ms: 60_000}, pool: pool, timeout: 200)

    assert {:ok, %{"pid" => ^os_pid}} = Snakepit.execute("whoami", %{}, pool: pool)
    assert %{timeouts: 1, workers_killed: 0} = Snakepit.get_stats(pool)
  end

  test "session state lasts across calls and is dropped when the session ends" do
    pool = start_pool(affinity: :strict_queue)

    assert {:ok, 1} = Snakepit.execute_in_session("node-s1", "session_counter", %{}, pool: pool)
    assert {:ok, 2} = Snakepit.execute_in_session("node-s1", "session_counter", %{}, pool: pool)

    Snakepit.Pool.end_session(pool, "node-s1")
    assert_logged(pool, "tools: session node-s1 ended after 2 calls")
    assert {:ok, 1} = Snakepit.execute_in_session("node-s1", "session_counter", %{}, pool: pool)
  end

  test "a program that is not there is a clear start error" do
    assert {:error, message} =
             Snakepit.Adapters.Executable.init(adapter_args: ["/nonexistent/worker"])

    assert message =~ "/nonexistent/worker"

    assert {:error, message} = Snakepit.Adapters.Executable.init(adapter_args: [])
    assert message =~ ":adapter_args"
  end
end
